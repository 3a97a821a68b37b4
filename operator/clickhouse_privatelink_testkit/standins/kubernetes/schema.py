"""Structural OpenAPI v3 schemas of CRDs: pruning, defaulting, validation and CEL rules.

The order follows kube-apiserver: prune unknown fields, drop non-nullable nulls, apply defaults
(recursing into values that a default just created), validate the schema, and only then, if no
type or enum error makes the object unusable, evaluate the ``x-kubernetes-validations`` rules.
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
_cel_env = celpy.Environment()
# Errors after which CEL rules are skipped, as kube-apiserver's hasBlockingErr does.
_BLOCKING = {"TypeInvalid", "NotSupported"}


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


def validate(obj: dict[str, Any], schema: Schema, old: dict[str, Any] | None = None) -> list[FieldError]:
    """Schema errors of ``obj``, then (unless blocked) its CEL rule failures; ``old`` for transition rules."""
    errors: list[FieldError] = []
    props = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in obj:
            errors.append(FieldError("Required", key))
    for key, value in obj.items():
        if key in props and key != "metadata":
            _validate(value, props[key], key, errors)
    if any(e.kind in _BLOCKING for e in errors):
        errors.append(
            FieldError(
                "Invalid",
                "<nil>",
                None,
                "some validation rules were not checked because the object was invalid; "
                "correct the existing errors to complete validation",
            )
        )
        return errors
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
    return [
        dataclasses.replace(
            e, path=path + ("" if not e.path else e.path if e.path[0] == "[" else "." + e.path)
        )
        for e in errors
    ]


def _validate(value: Any, schema: Schema, path: str, errors: list[FieldError]) -> None:
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
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        supported = ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in enum)
        errors.append(FieldError("NotSupported", path, value, f"supported values: {supported}"))
    if isinstance(value, str):
        _validate_string(value, schema, path, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, schema, path, errors)
    elif isinstance(value, list):
        _validate_array(value, schema, path, errors)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, errors)


def _validate_string(value: str, schema: Schema, path: str, errors: list[FieldError]) -> None:
    max_length = schema.get("maxLength")
    if max_length is not None and len(value) > max_length:
        unit = "byte" if max_length == 1 else "bytes"
        errors.append(FieldError("TooLong", path, value, f"may not be more than {max_length} {unit}"))
    min_length = schema.get("minLength")
    if min_length is not None and len(value) < min_length:
        errors.append(
            FieldError("Invalid", path, value, f"{path} in body should be at least {min_length} chars long")
        )
    pattern = schema.get("pattern")
    if pattern is not None and not _regex(pattern).search(value):
        errors.append(FieldError("Invalid", path, value, f"{path} in body should match '{pattern}'"))
    if schema.get("format") == "date-time" and not _DATE_TIME.match(value):
        errors.append(
            FieldError("Invalid", path, value, f'{path} in body must be of type date-time: "{value}"')
        )


def _validate_number(value: float, schema: Schema, path: str, errors: list[FieldError]) -> None:
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    if minimum is not None:
        if schema.get("exclusiveMinimum") and value <= minimum:
            errors.append(
                FieldError("Invalid", path, value, f"{path} in body should be greater than {minimum}")
            )
        elif value < minimum:
            detail = f"{path} in body should be greater than or equal to {minimum}"
            errors.append(FieldError("Invalid", path, value, detail))
    if maximum is not None:
        if schema.get("exclusiveMaximum") and value >= maximum:
            errors.append(FieldError("Invalid", path, value, f"{path} in body should be less than {maximum}"))
        elif value > maximum:
            errors.append(
                FieldError(
                    "Invalid", path, value, f"{path} in body should be less than or equal to {maximum}"
                )
            )
    multiple = schema.get("multipleOf")
    if multiple and value % multiple:
        errors.append(
            FieldError("Invalid", path, value, f"{path} in body should be a multiple of {multiple}")
        )


def _map_keys(item: Any, keys: list[str]) -> tuple[Any, ...]:
    return tuple(repr(item.get(k)) if isinstance(item, dict) else None for k in keys)


def _validate_array(value: list[Any], schema: Schema, path: str, errors: list[FieldError]) -> None:
    max_items, min_items = schema.get("maxItems"), schema.get("minItems")
    if max_items is not None and len(value) > max_items:
        errors.append(FieldError("TooMany", path, len(value), f"must have at most {max_items} items"))
    if min_items is not None and len(value) < min_items:
        errors.append(
            FieldError("Invalid", path, len(value), f"{path} in body should have at least {min_items} items")
        )
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(item, items, f"{path}[{i}]", errors)
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


def _validate_object(value: dict[str, Any], schema: Schema, path: str, errors: list[FieldError]) -> None:
    for key in schema.get("required", []):
        if key not in value:
            errors.append(FieldError("Required", _child(path, key)))
    max_props, min_props = schema.get("maxProperties"), schema.get("minProperties")
    if max_props is not None and len(value) > max_props:
        errors.append(FieldError("TooMany", path, len(value), f"must have at most {max_props} items"))
    if min_props is not None and len(value) < min_props:
        detail = f"{path} in body should have at least {min_props} properties"
        errors.append(FieldError("Invalid", path, len(value), detail))
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in props:
            _validate(item, props[key], _child(path, key), errors)
        elif isinstance(extra, dict):
            _validate(item, extra, f"{path}[{key}]", errors)


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
        old_index: dict[Any, Any] = {}
        if has_old and isinstance(old, list):
            if list_type == "map":
                keys = schema.get("x-kubernetes-list-map-keys", [])
                old_index = {_map_keys(o, keys): o for o in old}
            elif list_type == "set":
                old_index = {repr(o): o for o in old}
        for i, item in enumerate(value):
            if list_type == "map":
                marker: Any = _map_keys(item, schema.get("x-kubernetes-list-map-keys", []))
            elif list_type == "set":
                marker = repr(item)
            else:
                marker = OMIT  # atomic lists: items have no identity across updates
            yield item, items, f"{path}[{i}]", old_index.get(marker), marker in old_index


_REASONS = {
    "FieldValueRequired": "Required",
    "FieldValueForbidden": "Forbidden",
    "FieldValueDuplicate": "Duplicate",
}


@functools.lru_cache(maxsize=8192)
def _evaluate(rule: str, value_json: str, old_json: str | None) -> tuple[bool, str]:
    """(passed, evaluation error) of one rule; memoized because celpy interprets the AST slowly."""
    activation: dict[str, Any] = {"self": json_to_cel(json.loads(value_json))}
    if old_json is not None:
        activation["oldSelf"] = json_to_cel(json.loads(old_json))
    try:
        result = _program(rule).evaluate(activation)
    except Exception as exc:  # celpy raises its own error types for no-such-key, overloads...
        return False, str(exc)
    if isinstance(result, CELEvalError):
        return False, str(result)
    return isinstance(result, celpy.celtypes.BoolType) and bool(result), ""


def _cel(value: Any, schema: Schema, path: str, old: Any, has_old: bool, errors: list[FieldError]) -> None:
    if value is None:
        return
    if has_old and value == old:
        # Validation ratcheting (GA in Kubernetes 1.33): an unchanged value keeps passing, so skip it.
        return
    for rule in schema.get("x-kubernetes-validations", []):
        text = rule["rule"]
        transition = bool(_OLD_SELF.search(text))
        if transition and not has_old and not rule.get("optionalOldSelf"):
            continue
        old_json = json.dumps(old, sort_keys=True) if transition and has_old else None
        passed, failure = _evaluate(text, json.dumps(value, sort_keys=True), old_json)
        field = path + rule["fieldPath"] if rule.get("fieldPath") else path
        if failure:
            errors.append(
                FieldError("Invalid", field, _type_name(value), f"rule evaluation error: {failure}")
            )
        elif not passed:
            message = rule.get("message") or f"failed rule: {text}"
            if rule.get("messageExpression"):
                try:
                    activation = {"self": json_to_cel(value)}
                    message = str(_program(rule["messageExpression"]).evaluate(activation))
                except Exception:
                    message = rule.get("message") or f"failed rule: {text}"
            kind = _REASONS.get(rule.get("reason", ""), "Invalid")
            errors.append(FieldError(kind, field, schema.get("type", _type_name(value)), message))
    for item, sub, child, old_item, item_has_old in _correlated_children(value, schema, path, old, has_old):
        _cel(item, sub, child, old_item, item_has_old, errors)
