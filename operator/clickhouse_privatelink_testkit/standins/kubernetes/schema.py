"""Structural OpenAPI v3 schemas of CRDs: pruning, defaulting, validation and CEL rules.

The order follows kube-apiserver: prune unknown fields, drop non-nullable nulls, apply defaults
(recursing into values that a default just created), validate the schema, check list types, and only
then, if no blocking error (type, enum, required, too long, too many) makes the object unusable, evaluate
the ``x-kubernetes-validations`` rules. Messages are those of Kubernetes 1.33-1.36: a failed rule shows
the value of a scalar (``Invalid value: "vpc-XYZ": ...``) and no value for an object or a list.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Iterator
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from clickhouse_privatelink_testkit.standins.kubernetes.errors import OMIT, FieldError
from clickhouse_privatelink_testkit.standins.kubernetes.patch import clone

Schema = dict[str, Any]
_ROOT_META = ("apiVersion", "kind", "metadata")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_OLD_SELF = re.compile(r"\boldSelf\b")
# How cel-go names the Go type of a value that does not fit its schema.
_GO_TYPES = {
    "null": "nil",
    "boolean": "bool",
    "integer": "int64",
    "number": "float64",
    "string": "string",
    "array": "[]interface {}",
    "object": "map[string]interface {}",
}
_NO_SUCH_MEMBER = re.compile(r"^no such member in mapping: '(.*)'$")
_cel_env = celpy.Environment()
# Errors after which CEL rules are skipped, as kube-apiserver's hasBlockingErr does (type, enum, required,
# maxLength, maxItems and maxProperties failures).
_BLOCKING = {"TypeInvalid", "NotSupported", "Required", "TooLong", "TooMany"}


@functools.lru_cache(maxsize=1024)
def _program(rule: str) -> Any:
    return _cel_env.program(_cel_env.compile(rule))


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, schema: Schema) -> bool:
    expected = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, int | str) and not isinstance(value, bool)
    if expected is None:
        return True
    actual = _type_name(value)
    return actual == expected or (expected == "number" and actual == "integer")


def prune(obj: dict[str, Any], schema: Schema) -> tuple[dict[str, Any], list[str]]:
    """Drop fields the schema does not declare; return the new object and the dropped paths."""
    dropped: list[str] = []
    result = clone(obj)
    props = schema.get("properties", {})
    for key in list(result):
        if key in _ROOT_META:
            continue
        if key in props:
            result[key] = _prune(result[key], props[key], key, dropped)
        elif not schema.get("x-kubernetes-preserve-unknown-fields"):
            dropped.append(key)
            del result[key]
    return result, dropped


def _prune(value: Any, schema: Schema, path: str, dropped: list[str]) -> Any:
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        if schema.get("x-kubernetes-embedded-resource"):
            preserve = preserve or props is None
        for key in list(value):
            if props is not None and key in props:
                value[key] = _prune(value[key], props[key], _child(path, key), dropped)
            elif isinstance(extra, dict):
                value[key] = _prune(value[key], extra, f"{path}[{key}]", dropped)
            elif extra is True or preserve:
                continue
            else:
                dropped.append(_child(path, key))
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            value[i] = _prune(item, schema["items"], f"{path}[{i}]", dropped)
    return value


def default(obj: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """Apply defaults in place (also inside values that a default creates) and return ``obj``."""
    _default(obj, schema)
    return obj


def _default(value: Any, schema: Schema) -> None:
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value and value[key] is None and not sub.get("nullable"):
                del value[key]  # non-nullable nulls are pruned before defaulting
            if key not in value and "default" in sub:
                value[key] = clone(sub["default"])
            if key in value:
                _default(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for item in value.values():
                _default(item, extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default(item, schema["items"])


_NOT_CHECKED = FieldError(
    "Invalid",
    "<nil>",
    None,
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation",
)


def validate(
    obj: dict[str, Any],
    schema: Schema,
    old: dict[str, Any] | None = None,
    *,
    earlier: list[FieldError] | None = None,
    schema_checked: bool = True,
    status_only: bool = False,
) -> list[FieldError]:
    """The errors of ``obj`` in kube-apiserver's order: schema, list types, then CEL rules.

    ``earlier`` are the errors found before (metadata, type meta): a Required, TooLong, TooMany, type or
    enum error among them or the schema's own blocks the CEL rules, and the answer ends with the note
    ``hasBlockingErr`` adds instead. A wrong ``kind`` skips the schema (``schema_checked=False``), as
    the custom resource validator returns its type-meta errors alone; a write through the status
    subresource checks only ``status`` against the schema (``status_only``).

    On an update (``old``), validation ratchets as it does since Kubernetes 1.33: a value equal to its old
    counterpart (where the two correlate: object fields, map values, map-list items by key) keeps passing
    whatever the schema now says, and list duplicates count only if the old object had none; ``old``
    also feeds transition rules.
    """
    errors: list[FieldError] = []
    props = schema.get("properties", {})
    if schema_checked:
        for key, value in obj.items():
            if key == "status" and status_only and key in props:
                # The status subresource validates the status as a root of its own: messages name its fields
                # relative to it (``handlerProgress in body ...``), the error paths start at ``status``.
                found: list[FieldError] = []
                _validate(value, props[key], "", found, _old_of(old, key))
                errors.extend(_rooted(found, key))
            elif key in props and key != "metadata" and not status_only:
                _validate(value, props[key], key, errors, _old_of(old, key))
        if not status_only:
            errors.extend(FieldError("Required", key) for key in schema.get("required", []) if key not in obj)
    if old is None or not _list_type_errors(old, schema):
        errors.extend(_list_type_errors(obj, schema))
    if any(e.kind in _BLOCKING for e in (*(earlier or []), *errors)):
        return [*errors, _NOT_CHECKED]
    for key, value in obj.items():
        if key in props and key != "metadata":
            has_old = old is not None and key in old
            _cel(value, props[key], key, old[key] if has_old and old is not None else None, has_old, errors)
    return errors


def validate_value(value: Any, schema: Schema, path: str) -> list[FieldError]:
    """Errors of one value against its own schema, then its CEL rules, reported under ``path`` (CRD defaults).

    As kube-apiserver validates a default, the value is the root of its own validation: messages name fields
    relative to it (`` in body should match`` for the value itself), the error paths start at ``path``.
    """
    errors: list[FieldError] = []
    _validate(value, schema, "", errors)
    if not errors:
        _cel(value, schema, "", None, False, errors)
    return _rooted(errors, path)


def _rooted(errors: list[FieldError], path: str) -> list[FieldError]:
    """Errors of a value validated as its own root, their paths put back under ``path`` (messages unchanged)."""
    return [
        dataclasses.replace(
            e, path=path + ("" if not e.path else e.path if e.path[0] == "[" else "." + e.path)
        )
        for e in errors
    ]


def _old_of(old: Any, key: str) -> Any:
    """The old value of an object's field or map value, OMIT where there is none."""
    return old.get(key, OMIT) if isinstance(old, dict) else OMIT


def _validate(value: Any, schema: Schema, path: str, errors: list[FieldError], old: Any = OMIT) -> None:
    """One value against its schema, validator by validator in kube-openapi's order; ``old`` ratchets."""
    if old is not OMIT and value == old:
        return  # unchanged since the last write: kept even if the schema has become stricter
    if value is None:
        if not schema.get("nullable"):
            expected = schema.get("type", "object")
            errors.append(
                FieldError("TypeInvalid", path, "null", f'{path} in body must be of type {expected}: "null"')
            )
        return
    if not _type_ok(value, schema):
        actual = _type_name(value)
        errors.append(
            FieldError(
                "TypeInvalid", path, actual, f'{path} in body must be of type {schema["type"]}: "{actual}"'
            )
        )
        return
    if isinstance(value, str):
        _validate_string(value, schema, path, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, schema, path, errors)
    elif isinstance(value, list):
        _validate_array(value, schema, path, errors, old)
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        supported = ", ".join(f'"{v}"' if isinstance(v, str) else f'"{json.dumps(v)}"' for v in enum)
        errors.append(FieldError("NotSupported", path, value, f"supported values: {supported}"))
    if isinstance(value, dict):
        _validate_object(value, schema, path, errors, old)


def _validate_string(value: str, schema: Schema, path: str, errors: list[FieldError]) -> None:
    # The string validator stops at its first failure: maxLength, then minLength, then pattern.
    max_length = schema.get("maxLength")
    min_length = schema.get("minLength")
    pattern = schema.get("pattern")
    if max_length is not None and len(value) > max_length:
        unit = "byte" if max_length == 1 else "bytes"
        errors.append(FieldError("TooLong", path, value, f"may not be more than {max_length} {unit}"))
    elif min_length is not None and len(value) < min_length:
        errors.append(
            FieldError("Invalid", path, value, f"{path} in body should be at least {min_length} chars long")
        )
    elif pattern is not None and not _regex(pattern).search(value):
        errors.append(FieldError("Invalid", path, value, f"{path} in body should match '{pattern}'"))
    if schema.get("format") == "date-time" and not _DATE_TIME.match(value):
        errors.append(
            FieldError("Invalid", path, value, f'{path} in body must be of type date-time: "{value}"')
        )


def _validate_number(value: float, schema: Schema, path: str, errors: list[FieldError]) -> None:
    multiple = schema.get("multipleOf")
    if multiple and value % multiple:
        errors.append(
            FieldError("Invalid", path, value, f"{path} in body should be a multiple of {multiple}")
        )
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    if maximum is not None:
        if schema.get("exclusiveMaximum") and value >= maximum:
            errors.append(FieldError("Invalid", path, value, f"{path} in body should be less than {maximum}"))
        elif value > maximum:
            errors.append(
                FieldError(
                    "Invalid", path, value, f"{path} in body should be less than or equal to {maximum}"
                )
            )
    if minimum is not None:
        if schema.get("exclusiveMinimum") and value <= minimum:
            errors.append(
                FieldError("Invalid", path, value, f"{path} in body should be greater than {minimum}")
            )
        elif value < minimum:
            detail = f"{path} in body should be greater than or equal to {minimum}"
            errors.append(FieldError("Invalid", path, value, detail))


def _map_keys(item: Any, keys: list[str]) -> tuple[Any, ...]:
    return tuple(repr(item.get(k)) if isinstance(item, dict) else None for k in keys)


def _validate_array(value: list[Any], schema: Schema, path: str, errors: list[FieldError], old: Any) -> None:
    items = schema.get("items")
    if isinstance(items, dict):
        old_items = _old_map_list_items(schema, old)
        for i, item in enumerate(value):
            keys = _map_keys(item, schema.get("x-kubernetes-list-map-keys", []))
            _validate(item, items, f"{path}[{i}]", errors, old_items.get(keys, OMIT))
    max_items, min_items = schema.get("maxItems"), schema.get("minItems")
    if min_items is not None and len(value) < min_items:
        errors.append(
            FieldError("Invalid", path, len(value), f"{path} in body should have at least {min_items} items")
        )
    if max_items is not None and len(value) > max_items:
        errors.append(FieldError("TooMany", path, len(value), f"must have at most {max_items} items"))


def _validate_object(
    value: dict[str, Any], schema: Schema, path: str, errors: list[FieldError], old: Any
) -> None:
    max_props, min_props = schema.get("maxProperties"), schema.get("minProperties")
    if min_props is not None and len(value) < min_props:
        detail = f"{path} in body should have at least {min_props} properties"
        errors.append(FieldError("Invalid", path, len(value), detail))
    if max_props is not None and len(value) > max_props:
        errors.append(FieldError("TooMany", path, len(value), f"must have at most {max_props} items"))
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, item in value.items():
            if key not in props:
                _validate(
                    item, extra, _child(path, key), errors, _old_of(old, key)
                )  # spec.aws.tags.k, not [k]
    for key, item in value.items():
        if key in props:
            _validate(item, props[key], _child(path, key), errors, _old_of(old, key))
    errors.extend(
        FieldError("Required", _child(path, key)) for key in schema.get("required", []) if key not in value
    )


def _old_map_list_items(schema: Schema, old: Any) -> dict[tuple[Any, ...], Any]:
    """Old items of a map list by their keys: the only list items Kubernetes correlates across updates."""
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(old, list):
        return {}
    return {_map_keys(o, schema.get("x-kubernetes-list-map-keys", [])): o for o in old}


def _list_type_errors(obj: dict[str, Any], schema: Schema) -> list[FieldError]:
    errors: list[FieldError] = []
    props = schema.get("properties", {})
    for key, value in obj.items():
        if key in props and key != "metadata":
            _validate_list_types(value, props[key], key, errors)
    return errors


def _validate_list_types(value: Any, schema: Schema, path: str, errors: list[FieldError]) -> None:
    """Duplicates in ``set`` and ``map`` lists, a pass of its own after the schema (structurallisttype)."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra)
            if isinstance(sub, dict):
                _validate_list_types(
                    item, sub, _child(path, key) if key in props else f"{path}[{key}]", errors
                )
        return
    if not isinstance(value, list):
        return
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set" or schema.get("uniqueItems"):
        seen: set[str] = set()
        for i, item in enumerate(value):
            marker = repr(item)
            if marker in seen:
                errors.append(FieldError("Duplicate", f"{path}[{i}]", item))
            seen.add(marker)
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen_keys: set[tuple[Any, ...]] = set()
        for i, item in enumerate(value):
            marker_keys = _map_keys(item, keys)
            if marker_keys in seen_keys:
                dup = {k: item.get(k) for k in keys} if isinstance(item, dict) else item
                errors.append(FieldError("Duplicate", f"{path}[{i}]", dup))
            seen_keys.add(marker_keys)
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate_list_types(item, items, f"{path}[{i}]", errors)


def _correlated_children(
    value: Any, schema: Schema, path: str, old: Any, has_old: bool
) -> Iterator[tuple[Any, Schema, str, Any, bool]]:
    """Child values with their old counterparts, where Kubernetes can correlate them."""
    if isinstance(value, dict):
        old_map = old if has_old and isinstance(old, dict) else {}
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key) if key in props else (extra if isinstance(extra, dict) else None)
            if sub is None:
                continue
            child = _child(path, key) if key in props else f"{path}[{key}]"
            yield item, sub, child, old_map.get(key), key in old_map
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = schema["items"]
        list_type = schema.get("x-kubernetes-list-type")
        old_index = _old_map_list_items(schema, old if has_old else None)
        for i, item in enumerate(value):
            # Only map-list items have an identity across updates (not a set's, not an atomic list's).
            marker: Any = (
                _map_keys(item, schema.get("x-kubernetes-list-map-keys", [])) if list_type == "map" else OMIT
            )
            yield item, items, f"{path}[{i}]", old_index.get(marker), marker in old_index


@functools.lru_cache(maxsize=8192)
def _evaluate(rule: str, value_json: str, old_json: str | None) -> tuple[bool, str]:
    """(passed, evaluation error) of one rule; memoized because celpy interprets the AST slowly."""
    activation: dict[str, Any] = {"self": json_to_cel(json.loads(value_json))}
    if old_json is not None:
        activation["oldSelf"] = json_to_cel(json.loads(old_json))
    try:
        result = _program(rule).evaluate(activation)
    except Exception as exc:  # celpy raises its own error types for no-such-key, overloads...
        return False, _eval_error(exc)
    if isinstance(result, CELEvalError):
        return False, _eval_error(result)
    return isinstance(result, celpy.celtypes.BoolType) and bool(result), ""


def _eval_error(exc: Exception) -> str:
    """celpy's error in cel-go's words where they differ (``no such key: a``)."""
    text = str(exc.args[0]) if exc.args else str(exc)
    missing = _NO_SUCH_MEMBER.match(text)
    return f"no such key: {missing.group(1)}" if missing else text


def _cel(value: Any, schema: Schema, path: str, old: Any, has_old: bool, errors: list[FieldError]) -> None:
    if value is None:
        return
    if has_old and value == old:
        # Validation ratcheting (GA in Kubernetes 1.33): an unchanged value keeps passing, so skip it.
        return
    kind_of = schema.get("type", "")
    # A failed rule shows a scalar's value; an object's or a list's is omitted (field.OmitValueType).
    shown = OMIT if kind_of in ("object", "array") else value
    for rule in schema.get("x-kubernetes-validations", []):
        text = rule["rule"]
        transition = bool(_OLD_SELF.search(text))
        if transition and not has_old and not rule.get("optionalOldSelf"):
            continue
        old_json = json.dumps(old, sort_keys=True) if transition and has_old else None
        if _type_ok(value, schema):  # a wrong type reaches CEL only past a wrong kind (schema skipped)
            passed, failure = _evaluate(text, json.dumps(value, sort_keys=True), old_json)
        else:
            passed, failure = False, f"invalid data, expected {kind_of}, got {_GO_TYPES[_type_name(value)]}"
        if failure:
            # Evaluation errors name the schema type and the rule's message (or the rule), at the rule's node.
            named = rule.get("message") or text
            if failure.startswith("no such overload"):
                detail = (
                    f"'{failure}': call arguments did not match a supported operator, function or macro "
                    f"signature for rule: {named}"
                )
            else:
                detail = f"{failure} evaluating rule: {named}"
            errors.append(FieldError("Invalid", path, kind_of, detail))
            continue
        if passed:
            continue
        field = path + rule["fieldPath"] if rule.get("fieldPath") else path
        message = rule.get("message") or f"failed rule: {text}"
        if rule.get("messageExpression"):
            try:
                message = str(_program(rule["messageExpression"]).evaluate({"self": json_to_cel(value)}))
            except Exception:
                message = rule.get("message") or f"failed rule: {text}"
        reason = rule.get("reason", "")
        if reason == "FieldValueForbidden":
            errors.append(FieldError("Forbidden", field, detail=message))
        elif reason == "FieldValueRequired":
            errors.append(FieldError("Required", field, detail=message))
        elif reason == "FieldValueDuplicate":
            errors.append(FieldError("Duplicate", field, shown))
        else:
            errors.append(FieldError("Invalid", field, shown, message))
    for item, sub, child, old_item, item_has_old in _correlated_children(value, schema, path, old, has_old):
        _cel(item, sub, child, old_item, item_has_old, errors)
