"""CustomResourceDefinition validation as kube-apiserver's apiextensions strategy does it (create and update).

What is checked, with the real server's paths and messages (``k8s.io/apiextensions-apiserver``'s
``pkg/apis/apiextensions/validation`` and ``pkg/apiserver/schema``):

- the spec: group, scope, names, exactly one storage version, ``metadata.name`` = plural.group, immutable group
  and plural on update;
- where a schema is reported: a v1 CRD whose versions all carry the same schema (or printer columns, or
  subresources) is converted to the internal form with that schema at ``spec.validation`` (columns at
  ``spec.additionalPrinterColumns``), so the errors name those paths, as the real server's do;
- structural schemas (``ValidateStructural``): a ``type`` everywhere except under ``x-kubernetes-int-or-string``
  or ``x-kubernetes-preserve-unknown-fields``; ``type: object`` at the root; no ``additionalProperties`` at the
  root; the root ``metadata`` may only restrict ``name`` and ``generateName`` (anything else, even a
  description, is refused); value validations (``allOf``/``anyOf``/``oneOf``/``not``) must not carry types,
  defaults, descriptions... and may only name properties the structural part declares; ``pattern`` must be a
  regular expression Go's RE2 accepts; the errors of this check are sorted, as the real server sorts them;
- defaults (``ValidateDefaults``): pruned (no unknown fields) and valid against their own schema (enum,
  pattern, bounds...) and its CEL rules;
- the OpenAPI rules (``ValidateCustomResourceDefinitionOpenAPISchema``): supported types, forbidden keywords
  (``$ref``, ``id``, ``patternProperties``, ``definitions``, ``dependencies``, ``additionalItems``,
  ``uniqueItems``, ``type: null``), ``additionalProperties`` together with ``properties``, list types (``set``
  only of scalars or atomic items, ``map`` of objects whose ``x-kubernetes-list-map-keys`` are scalar
  properties that are required or defaulted), map types, defaults forbidden in the root ``metadata``, the
  ``x-kubernetes-validations`` fields (rule, message, messageExpression, reason, fieldPath);
- CEL rules compiled at CRD creation (only once the schema above is valid, as the real server does): syntax
  errors (cel-go's ``ERROR: <input>:L:C: ...`` text with the caret line), fields not declared in the schema
  (``undefined field 'x'``), undeclared identifiers, a result that is not a bool, ``messageExpression`` the
  same way (it must evaluate to a string), ``oldSelf`` where a transition rule cannot be correlated (under the
  items of lists that are not ``map`` lists), ``optionalOldSelf`` without ``oldSelf``;
- printer columns: name, type (``integer``, ``number``, ``string``, ``boolean``, ``date``), format, JSONPath.

Cost estimate: an approximation of cel-go's static estimator (``checker/cost.go``) with Kubernetes' size
estimator and library costs (``apiserver/pkg/cel/library/cost.go``), written over celpy's parse tree:

- every identifier and field select costs 1 (a select on an object or map adds 1 to its operand), literals 0,
  list literals 10, map literals 30; a function call costs 1 plus its arguments, except the ones cel-go prices
  by size: comparisons and ``==`` of strings/bytes/lists (0.1 per element of the smaller operand),
  ``startsWith``/``endsWith`` (0.1 per character of the argument), ``contains`` (product of both traversals),
  ``matches``/``find``/``findAll`` ((size+1)*0.1 times 0.25 per regex character), ``+`` of strings (0.1 per
  character of the result), ``in`` on lists (one per element), ``lowerAscii``/``upperAscii``/``trim``/
  ``substring``/``url``/``quantity``... (0.1 per character), ``split``/``replace`` (0.2 per character),
  ``join``, ``isSorted``/``sum``/``min``/``max``/``indexOf`` (one per element plus string traversal);
  ``&&``/``||`` cost both operands, ``?:`` the condition plus the dearer branch;
- the macros are costed as cel-go expands them: ``all``/``exists`` cost the range size times (3 or 4 + the
  predicate), ``exists_one`` times (predicate + 2), ``map`` times (function + 12), ``filter`` times
  (predicate + 13), plus the range and the accumulator;
- sizes come from the schema as Kubernetes declares them to CEL: ``maxLength`` (times 4, in bytes),
  ``maxItems``, ``maxProperties``, or, where there is no bound, what fits in a 3 MiB request (a string
  3,145,726 characters, a list ``3,145,726 / (min item size + 1)`` items, a map ``/ (min size + 6)``); enum
  strings are as long as the longest value; date-times 32 characters;
- the rule's cost is multiplied by how often it can run: the product of ``maxItems``/``maxProperties`` of the
  lists and maps above it, or, when one of them is unbounded, ``3 MiB / (min serialized size + 1)``; a rule
  over 10,000,000 (``StaticEstimatedCostLimit``) is refused with the real server's
  ``estimated rule cost exceeds budget by factor of ...`` and all rules of a schema together over 100,000,000
  with the ``... total for entire OpenAPIv3 schema`` errors.

Left out: the exact cost of functions and types this table does not list (they cost 1 plus their arguments, a
lower bound), full CEL overload type checking (``found no matching overload`` errors are not produced),
ANTLR's exact recovery for every syntax error (the common ones — a missing operand, a stray or missing
parenthesis, an unknown character — carry cel-go's text), conversion webhooks and the status subresource's root
restrictions.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import lark
from celpy.celparser import CELParser

from clickhouse_privatelink_testkit.standins.kubernetes import schema as kube_schema
from clickhouse_privatelink_testkit.standins.kubernetes.errors import FieldError, GoRendered
from clickhouse_privatelink_testkit.standins.kubernetes.patch import clone

Schema = dict[str, Any]

STATIC_ESTIMATED_COST_LIMIT = 10_000_000
STATIC_ESTIMATED_CRD_COST_LIMIT = 100_000_000
MAX_REQUEST_SIZE_BYTES = 3 * 1024 * 1024
_UINT64_MAX = 2**64 - 1

_OPENAPI_TYPES = ["array", "boolean", "integer", "number", "object", "string"]
_COLUMN_TYPES = ["boolean", "date", "integer", "number", "string"]
_COLUMN_FORMATS = ["byte", "date", "date-time", "double", "float", "int32", "int64", "password"]
_RULE_REASONS = ["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"]
_META_FIELDS = ("metadata", "kind", "apiVersion")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_DNS1123_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def _child(path: str, name: str) -> str:
    return f"{path}.{name}"


def _key(path: str, key: str | int) -> str:
    return f"{path}[{key}]"


# --------------------------------------------------------------------------------------------------- the CRD


def validate_crd(crd: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> list[FieldError]:
    """Every error kube-apiserver reports for this CRD (``old``: the stored CRD on update)."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [FieldError("Required", "spec")]
    errors = _validate_spec_basics(crd, spec)
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
    schema_paths = _hoisted(versions, "schema", "spec.validation")
    column_paths = _hoisted(versions, "additionalPrinterColumns", "spec.additionalPrinterColumns")
    for i, version in enumerate(versions):
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if isinstance(schema, dict) and i in schema_paths:
            unchanged = old is not None and _old_schema(old, version.get("name")) == schema
            errors.extend(SchemaValidator(suppress_cost=unchanged).validate(schema, schema_paths[i]))
        for j, column in enumerate(version.get("additionalPrinterColumns") or []):
            if i in column_paths:
                errors.extend(_validate_column(column, _key(column_paths[i], j)))
    if old is not None:
        old_spec = old.get("spec") or {}
        for name, value, old_value in (
            ("spec.group", spec.get("group"), old_spec.get("group")),
            ("spec.names.plural", (spec.get("names") or {}).get("plural"), (old_spec.get("names") or {}).get("plural")),
        ):  # fmt: skip
            if value != old_value:
                errors.append(FieldError("Invalid", name, value, "field is immutable"))
    return errors


def _old_schema(old: Mapping[str, Any], version: Any) -> Any:
    for v in (old.get("spec") or {}).get("versions") or []:
        if isinstance(v, dict) and v.get("name") == version:
            return (v.get("schema") or {}).get("openAPIV3Schema")
    return None


def _hoisted(versions: list[dict[str, Any]], key: str, top: str) -> dict[int, str]:
    """Where each version's ``key`` is reported: the top-level path when all versions carry the same value
    (the v1 -> internal conversion moves it there, and reports only that one), else per version."""
    values = [v.get(key) for v in versions]
    if values and all(values) and all(value == values[0] for value in values):
        return {0: top}
    return {i: f"spec.versions[{i}].{key}" for i, value in enumerate(values) if value}


def _validate_spec_basics(crd: Mapping[str, Any], spec: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    raw_names = spec.get("names")
    names: dict[str, Any] = raw_names if isinstance(raw_names, dict) else {}
    group = spec.get("group")
    if not group:
        errors.append(FieldError("Required", "spec.group"))
    elif not _DNS1123_SUBDOMAIN.match(str(group)) or len(str(group)) > 253:
        errors.append(FieldError("Invalid", "spec.group", group, _DNS1123_MSG))
    elif "." not in str(group):
        errors.append(FieldError("Invalid", "spec.group", group, "should be a domain with at least one dot"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        if not spec.get("scope"):
            errors.append(FieldError("Required", "spec.scope"))
        else:
            errors.append(
                FieldError(
                    "NotSupported",
                    "spec.scope",
                    spec.get("scope"),
                    'supported values: "Cluster", "Namespaced"',
                )
            )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        errors.append(
            FieldError(
                "Invalid",
                "spec.versions",
                versions,
                "must have exactly one version marked as storage version",
            )
        )
    else:
        seen: set[Any] = set()
        for i, version in enumerate(versions):
            name = version.get("name") if isinstance(version, dict) else None
            if not isinstance(name, str) or not _DNS1035.match(name) or len(name) > 63:
                errors.append(FieldError("Invalid", f"spec.versions[{i}].name", name, _DNS1035_MSG))
            if name in seen:
                errors.append(
                    FieldError("Invalid", "spec.versions", None, "must contain unique version names")
                )
            seen.add(name)
            schema = (
                (version.get("schema") or {}).get("openAPIV3Schema") if isinstance(version, dict) else None
            )
            if not isinstance(schema, dict):
                errors.append(FieldError("Required", f"spec.versions[{i}].schema.openAPIV3Schema"))
        if sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
            errors.append(
                FieldError(
                    "Invalid",
                    "spec.versions",
                    None,
                    "must have exactly one version marked as storage version",
                )
            )
    for key in ("plural", "kind"):
        if not names.get(key):
            errors.append(FieldError("Required", f"spec.names.{key}"))
    for key in ("plural", "singular", "kind", "listKind"):
        value = names.get(key)
        if (
            isinstance(value, str)
            and value
            and not _DNS1035.match(value if key in ("plural", "singular") else value.lower())
        ):
            detail = (
                _DNS1035_MSG
                if key in ("plural", "singular")
                else ("may have mixed case, but should otherwise match: " + _DNS1035_MSG)
            )
            errors.append(FieldError("Invalid", f"spec.names.{key}", value, detail))
    for key in ("shortNames", "categories"):
        for i, value in enumerate(names.get(key) or []):
            if not isinstance(value, str) or not _DNS1035.match(value):
                errors.append(FieldError("Invalid", f"spec.names.{key}[{i}]", value, _DNS1035_MSG))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        errors.append(
            FieldError(
                "Invalid", "spec.names.listKind", names["listKind"], "kind and listKind may not be the same"
            )
        )
    if not errors and names.get("plural") and group:
        expected = f"{names['plural']}.{group}"
        if crd["metadata"].get("name") != expected:
            errors.append(
                FieldError(
                    "Invalid",
                    "metadata.name",
                    crd["metadata"].get("name"),
                    'must be spec.names.plural+"."+spec.group',
                )
            )
    return errors  # fmt: skip


def _validate_column(column: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not isinstance(column, dict):
        return [FieldError("Invalid", path, column, "must be an object")]
    if not column.get("name"):
        errors.append(FieldError("Required", _child(path, "name")))
    types = ",".join(_COLUMN_TYPES)
    kind = column.get("type")
    if not kind:
        errors.append(FieldError("Required", _child(path, "type"), detail=f"must be one of {types}"))
    elif kind not in _COLUMN_TYPES:
        errors.append(FieldError("Invalid", _child(path, "type"), kind, f"must be one of {types}"))
    fmt = column.get("format")
    if fmt and fmt not in _COLUMN_FORMATS:
        errors.append(
            FieldError("Invalid", _child(path, "format"), fmt, f"must be one of {','.join(_COLUMN_FORMATS)}")
        )
    json_path = column.get("jsonPath")
    if not json_path:
        errors.append(FieldError("Required", _child(path, "JSONPath")))
    elif not str(json_path).startswith("."):
        errors.append(
            FieldError(
                "Invalid", _child(path, "JSONPath"), json_path, "must be a simple json path starting with ."
            )
        )
    return errors  # fmt: skip


# ------------------------------------------------------------------------------------ structural schemas


_FORBIDDEN_KEYS = (
    ("id", "id is not supported"),
    ("additionalItems", "additionalItems is not supported"),
    ("patternProperties", "patternProperties is not supported"),
    ("definitions", "definitions is not supported"),
    ("dependencies", "dependencies is not supported"),
    ("$ref", "$ref is not supported"),
)
_JUNCTORS = ("allOf", "anyOf", "oneOf")
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def _is_structural_convertible(schema: Schema) -> bool:
    """Whether ``NewStructural`` accepts the schema (no unsupported keywords anywhere)."""
    for s in _all_schemas(schema):
        if any(
            key in s
            for key in (
                "id",
                "$schema",
                "$ref",
                "patternProperties",
                "dependencies",
                "additionalItems",
                "definitions",
            )
        ):
            return False
        if isinstance(s.get("items"), list):
            return False
    return True  # fmt: skip


def _all_schemas(schema: Any) -> Iterator[Schema]:
    if not isinstance(schema, dict):
        return
    yield schema
    items = schema.get("items")
    for sub in items if isinstance(items, list) else [items]:
        yield from _all_schemas(sub)
    for sub in (schema.get("properties") or {}).values():
        yield from _all_schemas(sub)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _all_schemas(schema["additionalProperties"])
    for junctor in _JUNCTORS:
        for sub in schema.get(junctor) or []:
            yield from _all_schemas(sub)
    yield from _all_schemas(schema.get("not"))


def _validate_structural(schema: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    _structural_invariants(schema, "root", path, errors)
    _completeness(schema, schema, path, path, errors)
    errors.sort(key=str)
    return errors


def _structural_invariants(s: Schema, level: str, path: str, errors: list[FieldError]) -> None:
    kind = s.get("type") or ""
    items = s.get("items")
    if kind == "array" and items is None:
        errors.append(FieldError("Required", _child(path, "items"), detail="must be specified"))
    if isinstance(items, dict):
        _structural_invariants(items, "item", _child(path, "items"), errors)
    for name, sub in (s.get("properties") or {}).items():
        if isinstance(sub, dict):
            _structural_invariants(sub, "field", _key(_child(path, "properties"), name), errors)
    extra = s.get("additionalProperties")
    if extra is not None:
        if level == "root":
            errors.append(
                FieldError(
                    "Forbidden", _child(path, "additionalProperties"), detail="must not be used at the root"
                )
            )
        if isinstance(extra, dict):
            _structural_invariants(extra, "field", _child(path, "additionalProperties"), errors)
    int_or_string = bool(s.get("x-kubernetes-int-or-string"))
    preserve = bool(s.get("x-kubernetes-preserve-unknown-fields"))
    embedded = bool(s.get("x-kubernetes-embedded-resource"))
    if int_or_string and preserve:
        errors.append(
            FieldError(
                "Invalid",
                _child(path, "x-kubernetes-preserve-unknown-fields"),
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    if int_or_string and embedded:
        errors.append(
            FieldError(
                "Invalid",
                _child(path, "x-kubernetes-embedded-resource"),
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    skip_any_of = s.get("anyOf") == _INT_OR_STRING_ANY_OF
    all_of = s.get("allOf") or []
    skip_first_all_of_any_of = (
        bool(all_of) and isinstance(all_of[0], dict) and all_of[0].get("anyOf") == _INT_OR_STRING_ANY_OF
    )
    _value_validation(s, skip_any_of, skip_first_all_of_any_of, path, errors, nested=False)
    if embedded and kind != "object":
        if not kind:
            errors.append(
                FieldError(
                    "Required",
                    _child(path, "type"),
                    detail="must be object if x-kubernetes-embedded-resource is true",
                )
            )
        else:
            errors.append(
                FieldError(
                    "Invalid",
                    _child(path, "type"),
                    kind,
                    "must be object if x-kubernetes-embedded-resource is true",
                )
            )
    elif not kind and not int_or_string and not preserve:
        where = {
            "root": "at the root",
            "item": "for specified array items",
            "field": "for specified object fields",
        }[level]
        errors.append(FieldError("Required", _child(path, "type"), detail=f"must not be empty {where}"))
    if embedded and extra is not None:
        errors.append(
            FieldError(
                "Forbidden",
                _child(path, "additionalProperties"),
                detail="must not be used if x-kubernetes-embedded-resource is set",
            )
        )
    if level == "root" and kind and kind != "object":
        errors.append(FieldError("Invalid", _child(path, "type"), kind, "must be object at the root"))
    check_metadata = level == "root" or embedded
    props = s.get("properties") or {}
    for name in ("kind", "apiVersion"):
        if name in props and check_metadata and (props[name] or {}).get("type", "") != "string":
            errors.append(
                FieldError(
                    "Invalid",
                    _child(_key(_child(path, "properties"), name), "type"),
                    (props[name] or {}).get("type", ""),
                    "must be string",
                )
            )
    if isinstance(props.get("metadata"), dict):
        _metadata_invariants(
            props["metadata"], check_metadata, level, _key(_child(path, "properties"), "metadata"), errors
        )
    if embedded and not preserve and not props:
        errors.append(FieldError("Required", _child(path, "properties"), detail="must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"))  # fmt: skip


def _metadata_invariants(s: Schema, check: bool, level: str, path: str, errors: list[FieldError]) -> None:
    if check and s.get("type", "") != "object":
        errors.append(FieldError("Invalid", _child(path, "type"), s.get("type", ""), "must be object"))
    if level != "root":
        return
    rest = {k: v for k, v in s.items() if k not in ("type", "default")}
    props = rest.get("properties")
    if isinstance(props, dict) and props and set(props) <= {"name", "generateName"}:
        del rest["properties"]
    # What is left must be empty, as Structural{} is; empty lists and false flags count as unset.
    if any(value not in (None, False, "", [], {}) for value in rest.values()) or "properties" in rest:
        errors.append(
            FieldError(
                "Forbidden",
                path,
                detail="must not specify anything other than name and generateName, but metadata is implicitly specified",
            )
        )


_NESTED_FORBIDDEN = (
    ("type", "must be empty to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"),
    ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
    ("x-kubernetes-embedded-resource", "must be false to be structural"),
    ("x-kubernetes-int-or-string", "must be false to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
    ("x-kubernetes-map-type", "must be undefined to be structural"),
    ("x-kubernetes-validations", "must be empty to be structural"),
)


def _value_validation(
    s: Schema,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: str,
    errors: list[FieldError],
    *,
    nested: bool,
) -> None:
    if not skip_any_of:
        for i, sub in enumerate(s.get("anyOf") or []):
            _nested_value_validation(sub, False, _key(_child(path, "anyOf"), i), errors)
    for i, sub in enumerate(s.get("allOf") or []):
        _nested_value_validation(
            sub, skip_first_all_of_any_of and i == 0, _key(_child(path, "allOf"), i), errors
        )
    for i, sub in enumerate(s.get("oneOf") or []):
        _nested_value_validation(sub, False, _key(_child(path, "oneOf"), i), errors)
    if isinstance(s.get("not"), dict):
        _nested_value_validation(s["not"], False, _child(path, "not"), errors)
    pattern = s.get("pattern")
    if isinstance(pattern, str) and pattern:
        problem = go_regexp_error(pattern)
        if problem:
            errors.append(FieldError("Invalid", _child(path, "pattern"), pattern, f"must be a valid regular expression, but isn't: {problem}"))  # fmt: skip


def _nested_value_validation(v: Any, skip_any_of: bool, path: str, errors: list[FieldError]) -> None:
    if not isinstance(v, dict):
        return
    _value_validation(v, skip_any_of, False, path, errors, nested=True)
    if isinstance(v.get("items"), dict):
        _nested_value_validation(v["items"], False, _child(path, "items"), errors)
    for name, sub in (v.get("properties") or {}).items():
        _nested_value_validation(sub, False, _key(_child(path, "properties"), name), errors)
    for key, detail in _NESTED_FORBIDDEN[:1]:
        if v.get(key):
            errors.append(FieldError("Forbidden", _child(path, key), detail=detail))
    if v.get("additionalProperties") not in (None, False):
        errors.append(
            FieldError(
                "Forbidden", _child(path, "additionalProperties"), detail="must be undefined to be structural"
            )
        )
    if "default" in v:
        errors.append(
            FieldError("Forbidden", _child(path, "default"), detail="must be undefined to be structural")
        )
    for key, detail in _NESTED_FORBIDDEN[1:]:
        if v.get(key):
            errors.append(FieldError("Forbidden", _child(path, key), detail=detail))
    if "metadata" in (v.get("properties") or {}):
        errors.append(FieldError("Forbidden", _key(_child(path, "properties"), "metadata"), detail="must not be specified in a nested context"))  # fmt: skip


def _completeness(v: Schema, s: Schema | None, s_path: str, v_path: str, errors: list[FieldError]) -> None:
    """Value validations may only name what the structural part of the schema declares."""
    for junctor in _JUNCTORS:
        for i, sub in enumerate(v.get(junctor) or []):
            _nested_completeness(sub, s, s_path, _key(_child(v_path, junctor), i), errors)
    if isinstance(v.get("not"), dict):
        _nested_completeness(v["not"], s, s_path, _child(v_path, "not"), errors)


def _nested_completeness(
    v: Any, s: Schema | None, s_path: str, v_path: str, errors: list[FieldError]
) -> None:
    if not isinstance(v, dict):
        return
    if s is None:
        errors.append(FieldError("Required", s_path, detail=f"because it is defined in {v_path}"))
        return
    _completeness(v, s, s_path, v_path, errors)
    if isinstance(v.get("items"), dict):
        items = s.get("items") if isinstance(s.get("items"), dict) else None
        _nested_completeness(v["items"], items, _child(s_path, "items"), _child(v_path, "items"), errors)
    s_props = s.get("properties") or {}
    for name, sub in (v.get("properties") or {}).items():
        if name not in s_props:
            where = _key(_child(v_path, "properties"), name)
            errors.append(
                FieldError(
                    "Required",
                    _key(_child(s_path, "properties"), name),
                    detail=f"because it is defined in {where}",
                )
            )
        else:
            _nested_completeness(sub, s_props[name], _key(_child(s_path, "properties"), name), _key(_child(v_path, "properties"), name), errors)  # fmt: skip


# ----------------------------------------------------------------------------------- Go regular expressions


_PERL_GROUP = re.compile(r"\(\?(?:[=!>]|<[=!])")
_BAD_ESCAPE = re.compile(r"\\([1-9]|[ZGgkK])")


def go_regexp_error(pattern: str) -> str | None:
    """What Go's ``regexp.Compile`` (RE2 syntax) says of the pattern, or ``None`` if it compiles."""
    in_class = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            escape = _BAD_ESCAPE.match(pattern, i)
            if escape and not in_class:
                return f"error parsing regexp: invalid escape sequence: `{escape.group(0)}`"
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
            i += 2 if pattern[i + 1 : i + 2] in ("]", "^") else 1
            continue
        if c == "]" and in_class:
            in_class = False
        elif c == "(" and not in_class:
            perl = _PERL_GROUP.match(pattern, i)
            if perl:
                return f"error parsing regexp: invalid or unsupported Perl syntax: `{perl.group(0)}`"
        i += 1
    try:
        re.compile(pattern)
    except re.error as exc:
        return _go_regexp_message(pattern, exc)
    return None


def _go_regexp_message(pattern: str, exc: re.error) -> str:
    text = str(exc.msg)
    pos = exc.pos or 0
    if text.startswith("missing ), unterminated subpattern"):
        return f"error parsing regexp: missing closing ): `{pattern}`"
    if text.startswith("unbalanced parenthesis"):
        return f"error parsing regexp: unexpected ): `{pattern}`"
    if text.startswith("unterminated character set"):
        return f"error parsing regexp: missing closing ]: `{pattern[pos:]}`"
    if text.startswith("nothing to repeat"):
        return f"error parsing regexp: missing argument to repetition operator: `{pattern[pos]}`"
    if text.startswith("multiple repeat"):
        return f"error parsing regexp: invalid nested repetition operator: `{pattern[pos - 1 : pos + 1]}`"
    if text.startswith("bad character range"):
        return f"error parsing regexp: invalid character class range: `{text.rsplit(' ', 1)[-1]}`"
    if text.startswith("bad escape"):
        return f"error parsing regexp: invalid escape sequence: `{pattern[pos : pos + 2]}`"
    return f"error parsing regexp: {text}: `{pattern}`"


# --------------------------------------------------------------------------------------- defaults


def _validate_defaults(schema: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    root = dict(schema)
    root["x-kubernetes-embedded-resource"] = True  # ValidateDefaults treats the resource root as embedded
    _defaults(root, path, errors, inside_meta=False, is_root=True)
    return errors


def _defaults(s: Schema, path: str, errors: list[FieldError], *, inside_meta: bool, is_root: bool) -> None:
    if s.get("x-kubernetes-embedded-resource"):
        inside_meta = False
    if "default" in s and not inside_meta:
        value = s["default"]
        pruned = _pruned(clone(value), s)
        if pruned != value:
            errors.append(
                FieldError("Invalid", _child(path, "default"), value, "must not have unknown fields")
            )
        found = kube_schema.validate_value(value, s, _child(path, "default"))
        errors.extend(found)
    if isinstance(s.get("items"), dict):
        _defaults(s["items"], _child(path, "items"), errors, inside_meta=inside_meta, is_root=False)
    for name, sub in (s.get("properties") or {}).items():
        if isinstance(sub, dict):
            meta = inside_meta or (bool(s.get("x-kubernetes-embedded-resource")) and name in _META_FIELDS)
            _defaults(sub, _key(_child(path, "properties"), name), errors, inside_meta=meta, is_root=False)


def _pruned(value: Any, s: Schema) -> Any:
    if isinstance(value, dict):
        props = s.get("properties")
        extra = s.get("additionalProperties")
        if s.get("x-kubernetes-preserve-unknown-fields") and props is None and not isinstance(extra, dict):
            return value
        for key in list(value):
            if props is not None and key in props:
                value[key] = _pruned(value[key], props[key])
            elif isinstance(extra, dict):
                value[key] = _pruned(value[key], extra)
            elif (
                extra is True
                or s.get("x-kubernetes-preserve-unknown-fields")
                or (s.get("x-kubernetes-embedded-resource") and key in ("apiVersion", "kind", "metadata"))
            ):
                continue
            else:
                del value[key]
    elif isinstance(value, list) and isinstance(s.get("items"), dict):
        return [_pruned(item, s["items"]) for item in value]
    return value


# ------------------------------------------------------------------------ the OpenAPI schema, recursively


@dataclass(frozen=True)
class _Context:
    """What ``specStandardValidatorV3`` and ``CELSchemaContext`` carry down the schema."""

    allow_defaults: bool = True
    defaults_reason: str = ""
    inside_meta: bool = False
    uncorrelatable: str | None = None
    cel: bool = False  # whether CEL rules here are compiled (the structural checks passed)
    cardinality: int | None = 1  # None: unbounded
    decl: CelType | None = None

    def without_defaults(self, reason: str) -> _Context:
        return _replace(self, allow_defaults=False, defaults_reason=reason)

    def forbid_old_self(self, path: str) -> _Context:
        return self if self.uncorrelatable is not None else _replace(self, uncorrelatable=path)


def _replace(ctx: _Context, **changes: Any) -> _Context:
    values = {name: getattr(ctx, name) for name in ctx.__dataclass_fields__}
    values.update(changes)
    return _Context(**values)


class SchemaValidator:
    """One version's (or the top-level) ``openAPIV3Schema``; ``validate`` returns its errors."""

    def __init__(self, *, suppress_cost: bool = False) -> None:
        self.suppress_cost = suppress_cost
        self.total_cost = 0
        self.most_expensive: list[tuple[int, str]] = []
        self.costs: dict[str, int] = {}  # each rule's (and messageExpression's) estimated cost, by path

    def validate(self, schema: Schema, base: str) -> list[FieldError]:
        path = _child(base, "openAPIV3Schema")
        errors: list[FieldError] = []
        if schema.get("nullable"):
            errors.append(
                FieldError(
                    "Forbidden", _child(path, "nullable"), detail="nullable cannot be true at the root"
                )
            )
        init_errors: list[FieldError] = []
        ctx = _Context()
        if not _is_structural_convertible(schema):
            init_errors.append(FieldError("Invalid", path, "", _structural_init_error(schema)))
        else:
            structural = _validate_structural(schema, path)
            if structural:
                errors.extend(structural)
            else:
                defaults = _validate_defaults(schema, path)
                if defaults:
                    errors.extend(defaults)
                else:
                    ctx = _replace(ctx, cel=True, decl=schema_decl_type(schema, is_root=True))
        schema_errors, cel_errors = self._openapi(schema, path, ctx, is_root=True)
        errors.extend(schema_errors + cel_errors)
        if not errors:
            errors.extend(init_errors)
        if self.total_cost > STATIC_ESTIMATED_CRD_COST_LIMIT:
            for _, where in self.most_expensive:
                detail = "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema"
                errors.append(FieldError("Forbidden", where, detail=detail))
            errors.append(
                FieldError(
                    "Forbidden",
                    path,
                    detail=_cost_message(
                        "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
                        self.total_cost,
                        STATIC_ESTIMATED_CRD_COST_LIMIT,
                    ),
                )
            )
        return errors

    def _observe(self, path: str, cost: int) -> None:
        self.costs[path] = cost
        self.total_cost = min(self.total_cost + cost, _UINT64_MAX)
        if cost < STATIC_ESTIMATED_CRD_COST_LIMIT // 100:
            return
        self.most_expensive.append((cost, path))
        self.most_expensive.sort(key=lambda item: -item[0])
        del self.most_expensive[4:]

    def _openapi(
        self, s: Any, path: str, ctx: _Context, *, is_root: bool = False
    ) -> tuple[list[FieldError], list[FieldError]]:
        schema_errors: list[FieldError] = []
        cel_errors: list[FieldError] = []
        if not isinstance(s, dict):
            return schema_errors, cel_errors

        def recurse(sub: Any, sub_path: str, sub_ctx: _Context) -> None:
            found_schema, found_cel = self._openapi(sub, sub_path, sub_ctx)
            schema_errors.extend(found_schema)
            cel_errors.extend(found_cel)

        schema_errors.extend(_standard(s, path, ctx))
        if s.get("uniqueItems"):
            schema_errors.append(FieldError("Forbidden", _child(path, "uniqueItems"), detail="uniqueItems cannot be set to true since the runtime complexity becomes quadratic"))  # fmt: skip
        extra = s.get("additionalProperties")
        props = s.get("properties") or {}
        if extra is not None:
            if props and extra is not True:
                schema_errors.append(FieldError("Forbidden", _child(path, "additionalProperties"), detail="additionalProperties and properties are mutual exclusive"))  # fmt: skip
            sub_ctx = (
                ctx.without_defaults("inside additionalProperties applying to object metadata")
                if ctx.inside_meta
                else ctx
            )
            recurse(
                extra, _child(path, "additionalProperties"), self._child_ctx(sub_ctx, s, extra, "@values")
            )
        for name, sub in props.items():
            sub_ctx = ctx
            if s.get("x-kubernetes-map-type") not in (None, "granular", "atomic"):  # cel.MapIsCorrelatable
                sub_ctx = sub_ctx.forbid_old_self(path)
            if (is_root or s.get("x-kubernetes-embedded-resource")) and name in _META_FIELDS:
                sub_ctx = _replace(sub_ctx, inside_meta=True)
                if is_root:
                    sub_ctx = sub_ctx.without_defaults(f"in top-level {name}")
            recurse(sub, _key(_child(path, "properties"), name), self._child_ctx(sub_ctx, s, sub, name))
        if isinstance(s.get("not"), dict):
            recurse(s["not"], _child(path, "not"), _replace(ctx, cel=False))
        for junctor in _JUNCTORS:
            for i, sub in enumerate(s.get(junctor) or []):
                recurse(sub, _key(_child(path, junctor), i), _replace(ctx, cel=False))
        for name, sub in (s.get("definitions") or {}).items():
            recurse(sub, _key(_child(path, "definitions"), name), _replace(ctx, cel=False))
        items = s.get("items")
        if items is not None:
            sub_ctx = ctx if s.get("x-kubernetes-list-type") == "map" else ctx.forbid_old_self(path)
            if isinstance(items, dict):
                recurse(items, _child(path, "items"), self._child_ctx(sub_ctx, s, items, "@items"))
            elif isinstance(items, list):
                for i, sub in enumerate(items):
                    recurse(sub, _key(_child(path, "items"), i), self._child_ctx(sub_ctx, s, sub, "@items"))
        schema_errors.extend(_extensions(s, path))
        rules = s.get("x-kubernetes-validations") or []
        if rules:
            schema_errors.extend(_rule_fields(rules, s, path))
            if not schema_errors and ctx.cel and ctx.decl is not None:
                cel_errors.extend(self._compile(rules, s, path, ctx))
        return schema_errors, cel_errors

    def _child_ctx(self, ctx: _Context, parent: Schema, child: Any, step: str) -> _Context:
        decl = None
        if ctx.decl is not None:
            if step == "@items" or step == "@values":
                decl = ctx.decl.elem
            elif ctx.decl.fields is not None:
                escaped = cel_escape(step)
                if escaped is not None and escaped in ctx.decl.fields:
                    decl = ctx.decl.fields[escaped].type
        if decl is None and isinstance(child, dict) and child.get("x-kubernetes-validations") and ctx.cel:
            decl = schema_decl_type(child, is_root=bool(child.get("x-kubernetes-embedded-resource")))
        cardinality: int | None = None
        if ctx.cardinality is not None:
            factor = _max_elements(parent)
            if factor is not None:
                cardinality = min(ctx.cardinality * factor, _UINT64_MAX)
        return _replace(ctx, decl=decl, cardinality=cardinality)

    def _compile(self, rules: list[Any], s: Schema, path: str, ctx: _Context) -> list[FieldError]:
        errors: list[FieldError] = []
        decl = ctx.decl
        assert decl is not None
        unbounded_cardinality = MAX_REQUEST_SIZE_BYTES // (decl.min_size + 1)
        for i, rule in enumerate(rules):
            rule_path = _key(_child(path, "x-kubernetes-validations"), i)
            text = str(rule.get("rule") or "")
            if not text.strip():
                continue
            optional_old_self = bool(rule.get("optionalOldSelf"))
            compiled = compile_expression(text, decl, optional_old_self=optional_old_self)
            cardinality = ctx.cardinality if ctx.cardinality is not None else unbounded_cardinality
            cost = _mul(compiled.cost, cardinality)
            if not self.suppress_cost and cost > STATIC_ESTIMATED_COST_LIMIT:
                detail = _cost_message("estimated rule cost", cost, STATIC_ESTIMATED_COST_LIMIT)
                errors.append(FieldError("Forbidden", _child(rule_path, "rule"), detail=detail))
            self._observe(_child(rule_path, "rule"), cost)
            if compiled.error:
                errors.append(
                    FieldError("Invalid", _child(rule_path, "rule"), _go_rule(rule), compiled.error)
                )
                continue
            expression = rule.get("messageExpression")
            if expression:
                message = compile_expression(str(expression), decl, message=True)
                if message.error:
                    errors.append(FieldError("Invalid", _child(rule_path, "messageExpression"), _go_rule(rule), message.error))  # fmt: skip
                else:
                    message_cost = _mul(message.cost, cardinality)
                    if not self.suppress_cost and message_cost > STATIC_ESTIMATED_COST_LIMIT:
                        detail = _cost_message(
                            "estimated messageExpression cost", message_cost, STATIC_ESTIMATED_COST_LIMIT
                        )
                        errors.append(
                            FieldError("Forbidden", _child(rule_path, "messageExpression"), detail=detail)
                        )
                    self._observe(_child(rule_path, "messageExpression"), message_cost)
            if compiled.uses_old_self:
                if ctx.uncorrelatable is not None:
                    detail = f"oldSelf cannot be used on the uncorrelatable portion of the schema within {ctx.uncorrelatable}"
                    errors.append(FieldError("Invalid", _child(rule_path, "rule"), text, detail))
            elif "optionalOldSelf" in rule and rule["optionalOldSelf"] is not None:
                errors.append(FieldError("Invalid", _child(rule_path, "optionalOldSelf"), rule["optionalOldSelf"], "may not be set if oldSelf is not used in rule"))  # fmt: skip
        return errors


def _go_rule(rule: Mapping[str, Any]) -> GoRendered:
    """A rule as Go's ``json.Marshal`` renders the internal ``ValidationRule`` struct (no JSON tags, fields in
    declaration order, ``<``, ``>`` and ``&`` escaped)."""
    fields = {
        "Rule": str(rule.get("rule") or ""),
        "Message": str(rule.get("message") or ""),
        "MessageExpression": str(rule.get("messageExpression") or ""),
        "Reason": rule.get("reason"),
        "FieldPath": str(rule.get("fieldPath") or ""),
        "OptionalOldSelf": rule.get("optionalOldSelf"),
    }
    text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return GoRendered(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _structural_init_error(schema: Schema) -> str:
    for s in _all_schemas(schema):
        for key, name in (("id", "id"), ("$schema", "schema"), ("$ref", "$ref"), ("patternProperties", "patternProperties"),
                          ("dependencies", "dependencies"), ("additionalItems", "additionalItems"), ("definitions", "definitions")):  # fmt: skip
            if key in s:
                return f"OpenAPIV3Schema '{name}' is not supported"
        if isinstance(s.get("items"), list):
            return "OpenAPIV3Schema 'items' must be a schema, but is an array"
    return ""


def _standard(s: Schema, path: str, ctx: _Context) -> list[FieldError]:
    """``specStandardValidatorV3.validate``."""
    errors: list[FieldError] = []
    kind = s.get("type")
    if kind and kind not in _OPENAPI_TYPES and kind != "null":
        errors.append(FieldError("NotSupported", _child(path, "type"), kind, "supported values: " + ", ".join(f'"{t}"' for t in _OPENAPI_TYPES)))  # fmt: skip
    if "default" in s and s["default"] is not None and not ctx.allow_defaults:
        detail = "must not be set" + (f" {ctx.defaults_reason}" if ctx.defaults_reason else "")
        errors.append(FieldError("Forbidden", _child(path, "default"), detail=detail))
    for key, detail in _FORBIDDEN_KEYS:
        if key in s and s[key] not in (None, "", {}, []):
            errors.append(FieldError("Forbidden", _child(path, key), detail=detail))
    if kind == "null":
        errors.append(FieldError("Forbidden", _child(path, "type"), detail="type cannot be set to null, use nullable as an alternative"))  # fmt: skip
    if isinstance(s.get("items"), list) and s["items"]:
        errors.append(FieldError("Forbidden", _child(path, "items"), detail="items must be a schema object and not an array"))  # fmt: skip
    if ctx.inside_meta and s.get("x-kubernetes-embedded-resource"):
        errors.append(FieldError("Forbidden", _child(path, "x-kubernetes-embedded-resource"), detail="must not be used inside of resource meta"))  # fmt: skip
    return errors


def _extensions(s: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    kind = s.get("type") or ""
    if s.get("x-kubernetes-preserve-unknown-fields") is False:
        errors.append(FieldError("Invalid", _child(path, "x-kubernetes-preserve-unknown-fields"), False, "must be true or undefined"))  # fmt: skip
    map_type = s.get("x-kubernetes-map-type")
    if map_type is not None and kind != "object":
        if not kind:
            errors.append(FieldError("Required", _child(path, "type"), detail="must be object if x-kubernetes-map-type is specified"))  # fmt: skip
        else:
            errors.append(FieldError("Invalid", _child(path, "type"), kind, "must be object if x-kubernetes-map-type is specified"))  # fmt: skip
    if map_type is not None and map_type not in ("atomic", "granular"):
        errors.append(FieldError("NotSupported", _child(path, "x-kubernetes-map-type"), map_type, 'supported values: "atomic", "granular"'))  # fmt: skip
    list_type = s.get("x-kubernetes-list-type")
    items = s.get("items") if isinstance(s.get("items"), dict) else None
    if list_type is not None and kind != "array":
        if not kind:
            errors.append(FieldError("Required", _child(path, "type"), detail="must be array if x-kubernetes-list-type is specified"))  # fmt: skip
        else:
            errors.append(FieldError("Invalid", _child(path, "type"), kind, "must be array if x-kubernetes-list-type is specified"))  # fmt: skip
    elif list_type == "set" and items is not None:
        if items.get("type") == "array" and items.get("x-kubernetes-list-type") not in (None, "atomic"):
            errors.append(FieldError("Invalid", _child(_child(path, "items"), "x-kubernetes-list-type"), items.get("x-kubernetes-list-type"), "must be atomic as item of a list with x-kubernetes-list-type=set"))  # fmt: skip
        if items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic":
            # The real server reports the item's list type here (nil for an object), rendered as null.
            errors.append(FieldError("Invalid", _child(_child(path, "items"), "x-kubernetes-map-type"), GoRendered("null"), "must be atomic as item of a list with x-kubernetes-list-type=set"))  # fmt: skip
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        errors.append(FieldError("NotSupported", _child(path, "x-kubernetes-list-type"), list_type, 'supported values: "atomic", "set", "map"'))  # fmt: skip
    keys = s.get("x-kubernetes-list-map-keys") or []
    if keys:
        if list_type is None:
            errors.append(FieldError("Required", _child(path, "x-kubernetes-list-type"), detail="must be map if x-kubernetes-list-map-keys is non-empty"))  # fmt: skip
        elif list_type != "map":
            errors.append(FieldError("Invalid", _child(path, "x-kubernetes-list-type"), list_type, "must be map if x-kubernetes-list-map-keys is non-empty"))  # fmt: skip
    if list_type == "map":
        if not keys:
            errors.append(FieldError("Required", _child(path, "x-kubernetes-list-map-keys"), detail="must not be empty if x-kubernetes-list-type is map"))  # fmt: skip
        if s.get("items") is None:
            errors.append(FieldError("Required", _child(path, "items"), detail="must have a schema if x-kubernetes-list-type is map"))  # fmt: skip
        elif items is None:
            errors.append(FieldError("Invalid", _child(path, "items"), s.get("items"), "must only have a single schema if x-kubernetes-list-type is map"))  # fmt: skip
        elif items.get("type") != "object":
            errors.append(FieldError("Invalid", _child(_child(path, "items"), "type"), items.get("type", ""), "must be object if parent array's x-kubernetes-list-type is map"))  # fmt: skip
        else:
            seen: set[str] = set()
            item_props = items.get("properties") or {}
            for key in keys:
                if key in item_props:
                    if (item_props[key] or {}).get("type") in ("array", "object"):
                        errors.append(FieldError("Invalid", _child(_key(_child(_child(path, "items"), "properties"), key), "type"), "object", "must be a scalar type if parent array's x-kubernetes-list-type is map"))  # fmt: skip
                else:
                    errors.append(FieldError("Invalid", _child(path, "x-kubernetes-list-map-keys"), keys, "entries must all be names of item properties"))  # fmt: skip
                if key in seen:
                    errors.append(FieldError("Invalid", _child(path, "x-kubernetes-list-map-keys"), keys, "must not contain duplicate entries"))  # fmt: skip
                seen.add(key)
    if list_type in ("set", "map") and items is not None:
        if items.get("nullable"):
            errors.append(FieldError("Forbidden", _child(_child(path, "items"), "nullable"), detail=f"cannot be nullable when x-kubernetes-list-type is {list_type}"))  # fmt: skip
        if list_type == "map":
            required = set(items.get("required") or [])
            for key in keys:
                prop = (items.get("properties") or {}).get(key)
                if not isinstance(prop, dict):
                    continue
                prop_path = _key(_child(_child(path, "items"), "properties"), key)
                if key not in required and prop.get("default") is None:
                    errors.append(FieldError("Required", _child(prop_path, "default"), detail="this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"))  # fmt: skip
                if prop.get("nullable"):
                    errors.append(FieldError("Forbidden", _child(prop_path, "nullable"), detail="this property is in x-kubernetes-list-map-keys, so it cannot be nullable"))  # fmt: skip
    return errors


def _rule_fields(rules: list[Any], s: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, rule in enumerate(rules):
        rule_path = _key(_child(path, "x-kubernetes-validations"), i)
        if not isinstance(rule, dict):
            continue
        text = str(rule.get("rule") or "")
        message = str(rule.get("message") or "")
        if not text.strip():
            errors.append(FieldError("Required", _child(rule_path, "rule"), detail="rule is not specified"))
        elif message and not message.strip():
            errors.append(
                FieldError("Invalid", _child(rule_path, "message"), message, "must be non-empty if specified")
            )
        elif re.search(r"[\n\r]", message.strip()):
            errors.append(
                FieldError("Invalid", _child(rule_path, "message"), message, "must not contain line breaks")
            )
        elif re.search(r"[\n\r]", text.strip()) and not message.strip():
            errors.append(FieldError("Required", _child(rule_path, "message"), detail="message must be specified if rule contains line breaks"))  # fmt: skip
        expression = rule.get("messageExpression")
        if expression is not None and expression != "" and not str(expression).strip():
            errors.append(FieldError("Required", _child(rule_path, "messageExpression"), detail="messageExpression must be non-empty if specified"))  # fmt: skip
        reason = rule.get("reason")
        if reason is not None and reason not in _RULE_REASONS:
            errors.append(FieldError("NotSupported", _child(rule_path, "reason"), reason, "supported values: " + ", ".join(f'"{r}"' for r in _RULE_REASONS)))  # fmt: skip
        field_path = rule.get("fieldPath")
        if field_path:
            if not str(field_path).strip():
                errors.append(FieldError("Invalid", _child(rule_path, "fieldPath"), field_path, "must be non-empty if specified"))  # fmt: skip
            if re.search(r"[\n\r]", str(field_path)):
                errors.append(FieldError("Invalid", _child(rule_path, "fieldPath"), field_path, "must not contain line breaks"))  # fmt: skip
            if not _field_path_valid(s, str(field_path)):
                errors.append(FieldError("Invalid", _child(rule_path, "fieldPath"), field_path, "must be a valid path"))  # fmt: skip
    return errors


_FIELD_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['([^']*)'\]|\[(\d+)\]")


def _field_path_valid(s: Schema, path: str) -> bool:
    """A fieldPath names a declared property through ``.name``, ``['name']`` or ``[index]`` steps."""
    pos, current = 0, s
    while pos < len(path):
        step = _FIELD_PATH_STEP.match(path, pos)
        if step is None:
            return False
        pos = step.end()
        if step.group(3) is not None:
            if not isinstance(current.get("items"), dict):
                return False
            current = current["items"]
            continue
        name = step.group(1) or step.group(2)
        props = current.get("properties") or {}
        if name in props:
            current = props[name]
        elif isinstance(current.get("additionalProperties"), dict):
            current = current["additionalProperties"]
        else:
            return False
    return pos > 0


def _max_elements(s: Schema) -> int | None:
    """By how much a schema multiplies how often its children occur (``extractMaxElements``)."""
    kind = s.get("type")
    if kind == "object":
        if s.get("additionalProperties") is not None:
            max_props = s.get("maxProperties")
            return max(int(max_props), 0) if max_props is not None else None
        return 1
    if kind == "array":
        max_items = s.get("maxItems")
        return max(int(max_items), 0) if max_items is not None else None
    return 1


def _mul(x: int, y: int) -> int:
    return min(x * y, _UINT64_MAX)


def _cost_message(name: str, cost: int, limit: int) -> str:
    factor = cost / limit
    if factor > 100.0:
        text = "more than 100x"
    elif factor < 1.5:
        text = f"{factor:f}x"
    else:
        text = f"{factor:.1f}x"
    return (
        f"{name} exceeds budget by factor of {text} (try simplifying the rule, or adding maxItems, "
        "maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )


# ----------------------------------------------------------------------------- CEL declarations of a schema


@dataclass
class CelField:
    type: CelType
    required: bool


@dataclass
class CelType:
    """What Kubernetes declares to CEL for a schema (``SchemaDeclType``): kind, fields, element, sizes."""

    kind: str  # object map list string bytes int uint double bool timestamp duration dyn null type
    fields: dict[str, CelField] | None = None
    elem: CelType | None = None
    key: CelType | None = None
    max_elements: int = 0
    min_size: int = 1

    @property
    def name(self) -> str:
        if self.kind == "list":
            return f"list({self.elem.name if self.elem else 'dyn'})"
        if self.kind == "map":
            return f"map(string, {self.elem.name if self.elem else 'dyn'})"
        return self.kind


_STRING_MAX = MAX_REQUEST_SIZE_BYTES - 2
_DYN = CelType("dyn")
_CEL_RESERVED = {
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if",
    "import", "let", "loop", "package", "namespace", "return", "var", "void", "while",
}  # fmt: skip


def cel_escape(name: str) -> str | None:
    """The CEL field name of a property (``apiservercel.Escape``), or None if it cannot be named."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    if not re.match(r"^[_a-zA-Z][_a-zA-Z0-9./-]*$", name):
        return None
    escaped = name.replace("__", "__underscores__")
    return escaped.replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")


def schema_decl_type(s: Schema, *, is_root: bool) -> CelType | None:
    if s.get("x-kubernetes-int-or-string"):
        max_length = s.get("maxLength")
        return CelType("dyn", max_elements=max(int(max_length), 0) * 4 if max_length is not None else _STRING_MAX, min_size=1)  # fmt: skip
    kind = s.get("type")
    if kind == "array":
        items = s.get("items")
        if not isinstance(items, dict):
            return None
        elem = schema_decl_type(items, is_root=bool(items.get("x-kubernetes-embedded-resource")))
        if elem is None:
            return None
        max_items = s.get("maxItems")
        count = (
            max(int(max_items), 0)
            if max_items is not None
            else (MAX_REQUEST_SIZE_BYTES - 2) // (elem.min_size + 1)
        )
        return CelType("list", elem=elem, max_elements=count, min_size=2)
    if kind == "object":
        extra = s.get("additionalProperties")
        if isinstance(extra, dict):
            elem = schema_decl_type(extra, is_root=bool(extra.get("x-kubernetes-embedded-resource")))
            if elem is None:
                return None
            max_props = s.get("maxProperties")
            count = (
                max(int(max_props), 0)
                if max_props is not None
                else (MAX_REQUEST_SIZE_BYTES - 2) // (elem.min_size + 6)
            )
            return CelType("map", elem=elem, key=CelType("string", max_elements=_STRING_MAX, min_size=2), max_elements=count, min_size=2)  # fmt: skip
        props = dict(s.get("properties") or {})
        if is_root:
            props.setdefault("kind", {"type": "string"})
            props.setdefault("apiVersion", {"type": "string"})
            meta = props.get("metadata") or {}
            meta_props = dict((meta.get("properties") or {}) if isinstance(meta, dict) else {})
            meta_props.setdefault("name", {"type": "string"})
            meta_props.setdefault("generateName", {"type": "string"})
            if not (meta_props.keys() - {"name", "generateName"}):
                props["metadata"] = {"type": "object", "properties": meta_props}
        required = set(s.get("required") or [])
        fields: dict[str, CelField] = {}
        min_size = 2
        for name, prop in props.items():
            if not isinstance(prop, dict):
                continue
            decl = schema_decl_type(prop, is_root=bool(prop.get("x-kubernetes-embedded-resource")))
            if decl is None:
                continue
            escaped = cel_escape(name)
            if escaped is not None:
                fields[escaped] = CelField(decl, name in required)
            if name in required and prop.get("default") is None:
                min_size += len(name) + decl.min_size + 4
        return CelType("object", fields=fields, min_size=min_size)
    if kind == "string":
        fmt = s.get("format")
        if fmt == "byte":
            max_length = s.get("maxLength")
            return CelType("bytes", max_elements=max(int(max_length), 0) if max_length is not None else _STRING_MAX, min_size=2)  # fmt: skip
        if fmt == "duration":
            return CelType("duration", max_elements=32, min_size=3)
        if fmt == "date":
            return CelType("timestamp", max_elements=12, min_size=12)
        if fmt == "date-time":
            return CelType("timestamp", max_elements=32, min_size=21)
        max_length = s.get("maxLength")
        if max_length is not None:
            size = max(int(max_length), 0) * 4
        elif s.get("enum"):
            size = max((len(v) for v in s["enum"] if isinstance(v, str)), default=0)
        else:
            size = _STRING_MAX
        return CelType("string", max_elements=size, min_size=2)
    if kind == "boolean":
        return CelType("bool", min_size=4)
    if kind == "number":
        return CelType("double", min_size=1)
    if kind == "integer":
        return CelType("int", min_size=1)
    return None


# ---------------------------------------------------------------------------------------- CEL expressions


@dataclass
class Node:
    """One node of a CEL expression after macro expansion, with cel-go's source position (0-based)."""

    op: str  # lit ident select call list map comp
    line: int = 1
    col: int = 0
    name: str = ""  # identifier, field or function name; comprehension: the macro
    value: Any = None  # literal value
    lit_kind: str = ""  # literal: int uint double string bytes bool null
    target: Node | None = None
    args: list[Node] = field(default_factory=list)
    test_only: bool = False
    iter_var: str = ""


@dataclass
class Compiled:
    error: str = ""
    uses_old_self: bool = False
    cost: int = 0


class _CelError(Exception):
    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


_PARSER: lark.Lark | None = None


def _parser() -> lark.Lark:
    global _PARSER
    if _PARSER is None:
        CELParser()
        _PARSER = CELParser.CEL_PARSER
        assert _PARSER is not None
    return _PARSER


def _display(source: str, errors: list[_CelError]) -> str:
    """cel-go's ``Errors.ToDisplayString``: each error with its source line and a caret under the column."""
    lines = source.split("\n")
    shown = []
    for err in sorted(errors, key=lambda e: (e.line, e.col)):
        text = f"ERROR: <input>:{err.line}:{err.col + 1}: {err.message}"
        if 0 < err.line <= len(lines):
            snippet = lines[err.line - 1].replace("\t", " ")
            text += f"\n | {snippet}\n | " + "." * min(err.col, len(snippet)) + "^"
        shown.append(text)
    return "\n".join(shown)


# The tokens ANTLR's CEL grammar expects where an operand is missing (cel-go's "expecting {...}" sets).
_OPERAND_START = "{'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}"


def _syntax_error(source: str, exc: lark.exceptions.UnexpectedInput) -> _CelError:
    if isinstance(exc, lark.exceptions.UnexpectedToken):
        token = exc.token
        if token.type == "$END":
            line, col = _end_position(source)
            if "RPAR" in exc.expected and not (exc.expected - {"RPAR", "COMMA"} - _BINARY_TOKENS):
                return _CelError(line, col, "Syntax error: missing ')' at '<EOF>'")
            return _CelError(line, col, f"Syntax error: mismatched input '<EOF>' expecting {_OPERAND_START}")
        line, col = token.line or 1, (token.column or 1) - 1
        if not exc.expected & _OPERAND_TOKENS:
            return _CelError(line, col, f"Syntax error: extraneous input '{token.value}' expecting <EOF>")
        return _CelError(
            line, col, f"Syntax error: mismatched input '{token.value}' expecting {_OPERAND_START}"
        )
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        char = source[pos] if pos < len(source) else ""
        return _CelError(exc.line, exc.column - 1, f"Syntax error: token recognition error at: '{char}'")
    return _CelError(1, 0, f"Syntax error: {exc}")


_OPERAND_TOKENS = {
    "IDENT",
    "INT_LIT",
    "UINT_LIT",
    "FLOAT_LIT",
    "STRING_LIT",
    "MLSTRING_LIT",
    "BYTES_LIT",
    "BOOL_LIT",
    "NULL_LIT",
}
_BINARY_TOKENS = {
    "LESSTHAN", "MORETHAN", "__ANON_0", "__ANON_1", "__ANON_2", "__ANON_3", "__ANON_4", "__ANON_5", "IN",
    "PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "QMARK", "DOT", "LSQB", "LBRACE", "LPAR",
}  # fmt: skip


def _end_position(source: str) -> tuple[int, int]:
    lines = source.split("\n")
    return len(lines), len(lines[-1])


def parse_expression(source: str) -> Node:
    """The expression's tree, or :class:`_SyntaxErrors` with the errors ANTLR would report.

    ANTLR recovers after an unknown character (the lexer drops it) and after a token it can delete
    (``extraneous input``), then reports what follows; the same is done here by blanking the offending
    character or token and parsing again.
    """
    errors: list[_CelError] = []
    text = source
    for _ in range(8):
        try:
            tree = _parser().parse(text)
        except lark.exceptions.UnexpectedCharacters as exc:
            errors.append(_syntax_error(source, exc))
            pos = exc.pos_in_stream or 0
            text = text[:pos] + " " + text[pos + 1 :]
            continue
        except lark.exceptions.UnexpectedToken as exc:
            token = exc.token
            if token.type != "$END" and token.start_pos is not None and token.end_pos is not None:
                blanked = text[: token.start_pos] + " " * len(token.value) + text[token.end_pos :]
                if _recovers_after(blanked, token.end_pos or 0):
                    expected = _OPERAND_START if exc.expected & _OPERAND_TOKENS else "<EOF>"
                    line, col = token.line or 1, (token.column or 1) - 1
                    errors.append(_CelError(line, col, f"Syntax error: extraneous input '{token.value}' expecting {expected}"))  # fmt: skip
                    text = blanked
                    continue
            errors.append(_syntax_error(source, exc))
            break
        if not errors:
            return _Builder(source).build(tree)
        break
    raise _SyntaxErrors(errors)


def _recovers_after(text: str, position: int) -> bool:
    """Whether parsing ``text`` gets past ``position`` (ANTLR's single-token deletion would succeed)."""
    try:
        _parser().parse(text)
    except lark.exceptions.UnexpectedToken as exc:
        return exc.token.type == "$END" or (exc.token.start_pos or 0) >= position
    except lark.exceptions.UnexpectedInput:
        return True
    return True


class _SyntaxErrors(Exception):
    def __init__(self, errors: list[_CelError]) -> None:
        super().__init__("syntax")
        self.errors = errors


_MACROS = {"all", "exists", "exists_one", "map", "filter"}
_RELATIONS = {
    "relation_lt": "_<_", "relation_le": "_<=_", "relation_gt": "_>_", "relation_ge": "_>=_",
    "relation_eq": "_==_", "relation_ne": "_!=_", "relation_in": "@in",
    "addition_add": "_+_", "addition_sub": "_-_",
    "multiplication_mul": "_*_", "multiplication_div": "_/_", "multiplication_mod": "_%_",
}  # fmt: skip


class _Builder:
    """celpy's lark tree -> :class:`Node` (macros expanded to comprehensions, ``has()`` to a test-only select)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def build(self, tree: Any) -> Node:
        return self.node(tree)

    def node(self, t: Any) -> Node:
        kind = t.data
        children = [c for c in t.children]
        if kind == "expr":
            if len(children) == 1:
                return self.node(children[0])
            cond, yes, no = (self.node(c) for c in children)
            return Node("call", cond.line, cond.col, name="_?_:_", args=[cond, yes, no])
        if kind in ("conditionalor", "conditionaland"):
            if len(children) == 1:
                return self.node(children[0])
            lhs, rhs = self.node(children[0]), self.node(children[1])
            name = "_||_" if kind == "conditionalor" else "_&&_"
            return Node("call", lhs.line, lhs.col, name=name, args=[lhs, rhs])
        if kind in ("relation", "addition", "multiplication"):
            if len(children) == 1:
                return self.node(children[0])
            op_tree, rhs_tree = children
            lhs = self.node(op_tree.children[0])
            rhs = self.node(rhs_tree)
            return Node("call", lhs.line, lhs.col, name=_RELATIONS[op_tree.data], args=[lhs, rhs])
        if kind == "unary":
            if len(children) == 1:
                return self.node(children[0])
            op, operand = children
            inner = self.node(operand)
            line, col = _pos(op)
            return Node("call", line, col, name="!_" if op.data == "unary_not" else "-_", args=[inner])
        if kind in ("member", "primary"):
            return self.node(children[0])
        if kind == "member_dot":
            operand = self.node(children[0])
            ident = children[1]
            return Node("select", ident.line, ident.column - 2, name=str(ident), target=operand)
        if kind == "member_dot_arg":
            operand = self.node(children[0])
            ident = children[1]
            args = self.exprlist(children[2]) if len(children) > 2 else []
            return self.call(str(ident), operand, args, ident.line, ident.column - 1)
        if kind == "member_index":
            operand = self.node(children[0])
            index = self.node(children[1])
            return Node("call", operand.line, operand.col, name="_[_]", args=[operand, index])
        if kind == "member_object":
            line, col = _pos(t)
            return Node("call", line, col, name="@struct", args=[])
        if kind == "ident":
            token = children[0]
            return Node("ident", token.line, token.column - 1, name=str(token))
        if kind in ("ident_arg", "dot_ident_arg"):
            token = children[0]
            args = self.exprlist(children[1]) if len(children) > 1 else []
            return self.call(str(token), None, args, token.line, token.column - 1)
        if kind == "dot_ident":
            token = children[0]
            return Node("ident", token.line, token.column - 1, name=str(token))
        if kind == "paren_expr":
            return self.node(children[0])
        if kind == "list_lit":
            line, col = _pos(t)
            return Node("list", line, col, args=self.exprlist(children[0]) if children else [])
        if kind == "map_lit":
            line, col = _pos(t)
            entries = [self.node(c) for c in children[0].children] if children else []
            return Node("map", line, col, args=entries)
        if kind == "literal":
            return self.literal(children[0])
        line, col = _pos(t)
        return Node("call", line, col, name="@unknown")

    def exprlist(self, t: Any) -> list[Node]:
        return [self.node(c) for c in t.children]

    def call(self, name: str, target: Node | None, args: list[Node], line: int, col: int) -> Node:
        if name == "has" and target is None and len(args) == 1 and args[0].op == "select":
            return Node("select", line, col, name=args[0].name, target=args[0].target, test_only=True)
        if target is not None and name in _MACROS and args and args[0].op == "ident" and len(args) in (2, 3):
            return Node("comp", line, col, name=name, target=target, iter_var=args[0].name, args=args[1:])
        return Node("call", line, col, name=name, target=target, args=args)

    def literal(self, token: Any) -> Node:
        text = str(token)
        line, col = token.line, token.column - 1
        kind = token.type
        if kind == "BOOL_LIT":
            return Node("lit", line, col, value=text == "true", lit_kind="bool")
        if kind == "NULL_LIT":
            return Node("lit", line, col, value=None, lit_kind="null")
        if kind == "UINT_LIT":
            return Node("lit", line, col, value=int(text[:-1], 0), lit_kind="uint")
        if kind == "INT_LIT":
            return Node("lit", line, col, value=int(text, 0), lit_kind="int")
        if kind == "FLOAT_LIT":
            return Node("lit", line, col, value=float(text), lit_kind="double")
        if kind == "BYTES_LIT":
            return Node("lit", line, col, value=_unquote(text[1:]), lit_kind="bytes")
        return Node("lit", line, col, value=_unquote(text), lit_kind="string")


def _pos(t: Any) -> tuple[int, int]:
    meta = getattr(t, "meta", None)
    if meta is not None and not getattr(meta, "empty", True):
        return meta.line, meta.column - 1
    return 1, 0


def _unquote(text: str) -> str:
    raw = text[:1] in "rR"
    body = text[1:] if raw else text
    quote = 3 if body[:3] in ('"""', "'''") else 1
    inner = body[quote:-quote]
    if raw:
        return inner
    try:
        return str(json.loads('"' + inner.replace('"', '\\"').replace("\\'", "'") + '"'))
    except ValueError:
        return inner


# ---------------------------------------------------------------------------- type check and cost estimate


_BOOL = CelType("bool", min_size=4)
_INT = CelType("int")
_UINT = CelType("uint")
_DOUBLE = CelType("double")
_STRING = CelType("string", max_elements=_STRING_MAX, min_size=2)
_BYTES = CelType("bytes", max_elements=_STRING_MAX, min_size=2)
_BOOL_FUNCTIONS = {
    "_<_", "_<=_", "_>_", "_>=_", "_==_", "_!=_", "@in", "!_", "_&&_", "_||_", "startsWith", "endsWith",
    "contains", "matches", "isSorted", "isURL", "isIP", "isCIDR", "isQuantity", "isSemver", "isInteger",
    "isGreaterThan", "isLessThan", "containsIP", "containsCIDR", "isLoopback", "isUnspecified",
    "isLinkLocalMulticast", "isLinkLocalUnicast", "isGlobalUnicast", "isCanonical", "bool", "hasValue",
}  # fmt: skip
_STRING_FUNCTIONS = {
    "string", "lowerAscii", "upperAscii", "trim", "substring", "replace", "join", "format", "charAt",
    "getScheme", "getHost", "getHostname", "getPort", "getEscapedPath", "quote", "find", "reverse",
}  # fmt: skip
_INT_FUNCTIONS = {
    "size", "int", "indexOf", "lastIndexOf", "getFullYear", "getMonth", "getDayOfMonth", "getDate",
    "getDayOfWeek", "getDayOfYear", "getHours", "getMinutes", "getSeconds", "getMilliseconds", "sign",
    "compareTo", "asInteger", "major", "minor", "patch", "prefixLength", "family",
}  # fmt: skip
_KNOWN_FUNCTIONS = _BOOL_FUNCTIONS | _STRING_FUNCTIONS | _INT_FUNCTIONS | {
    "_?_:_", "_+_", "_-_", "_*_", "_/_", "_%_", "-_", "_[_]", "@struct", "@unknown", "dyn", "type", "double",
    "uint", "bytes", "duration", "timestamp", "split", "findAll", "sum", "min", "max", "url", "ip", "cidr",
    "quantity", "semver", "masked", "getQuery", "add", "sub", "asApproximateFloat", "lists", "optional",
    "of", "none", "orValue", "value", "or", "ofNonZeroValue", "sets", "equivalent", "intersects",
    "strings", "base64", "encode", "decode", "math", "greatest", "least", "ceil", "floor", "round", "abs",
    "isNaN", "isInf", "isFinite", "bitAnd", "bitOr", "bitXor", "bitNot", "bitShiftLeft", "bitShiftRight",
    "trunc", "range", "slice", "flatten", "distinct", "sort", "sortBy", "first", "last", "format.named",
    "validate", "errors", "fieldSelector", "labelSelector", "jsonpatch", "escapeKey", "with",
}  # fmt: skip
_GLOBALS = {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "dyn",
            "duration", "timestamp", "google", "math", "strings", "lists", "sets", "optional", "base64",
            "format", "jsonpatch"}  # fmt: skip


@dataclass
class _Info:
    """What the checker knows of one node: its type, its size estimate and its path from ``self``."""

    type: CelType
    cost: tuple[int, int]
    size: tuple[int, int] | None = None
    path: tuple[str, ...] | None = None


class _Checker:
    """A small CEL checker: resolves ``self``/``oldSelf`` field selects against the schema's declaration,
    infers simple result types, and estimates the cost as cel-go does (see the module docstring)."""

    def __init__(self, decl: CelType, *, optional_old_self: bool) -> None:
        self.decl = decl
        self.optional_old_self = optional_old_self
        self.errors: list[_CelError] = []
        self.uses_old_self = False
        self.scopes: list[dict[str, _Info]] = []

    def check(self, node: Node) -> _Info:
        method = getattr(self, f"_{node.op}")
        info: _Info = method(node)
        return info

    def _lit(self, node: Node) -> _Info:
        kind = node.lit_kind
        size: tuple[int, int] | None = (1, 1)
        if kind in ("string", "bytes"):
            length = len(node.value) if node.value is not None else 0
            size = (length, length)
        types = {"bool": _BOOL, "int": _INT, "uint": _UINT, "double": _DOUBLE, "string": _STRING,
                 "bytes": _BYTES, "null": CelType("null")}  # fmt: skip
        return _Info(types[kind], (0, 0), size)

    def _ident(self, node: Node) -> _Info:
        for scope in reversed(self.scopes):
            if node.name in scope:
                local = scope[node.name]
                return _Info(local.type, (1, 1), local.size, local.path)
        if node.name == "self":
            return _Info(self.decl, (1, 1), None, ("self",))
        if node.name == "oldSelf":
            self.uses_old_self = True
            return _Info(self.decl if not self.optional_old_self else _DYN, (1, 1), None, ("self",))
        if node.name not in _GLOBALS:
            self.errors.append(
                _CelError(node.line, node.col, f"undeclared reference to '{node.name}' (in container '')")
            )
        return _Info(_DYN, (1, 1))

    def _select(self, node: Node) -> _Info:
        assert node.target is not None
        operand = self.check(node.target)
        t = operand.type
        cost = operand.cost
        result = _DYN
        if t.kind in ("object", "map", "dyn"):
            cost = _add(cost, (1, 1))
        if t.kind == "object" and t.fields is not None:
            declared = t.fields.get(node.name)
            if declared is None:
                self.errors.append(_CelError(node.line, node.col, f"undefined field '{node.name}'"))
            else:
                result = declared.type
        elif t.kind == "map" and t.elem is not None:
            result = t.elem
        if node.test_only:  # Kubernetes charges nothing for the presence test itself
            return _Info(_BOOL, operand.cost, (1, 1))
        path = (*operand.path, node.name) if operand.path is not None else None
        return _Info(result, cost, None, path)

    def _list(self, node: Node) -> _Info:
        infos = [self.check(a) for a in node.args]
        cost = (10, 10)
        for info in infos:
            cost = _add(cost, info.cost)
        elem = infos[0].type if infos and all(i.type.kind == infos[0].type.kind for i in infos) else _DYN
        n = len(infos)
        return _Info(CelType("list", elem=elem, max_elements=n, min_size=2), cost, (n, n))

    def _map(self, node: Node) -> _Info:
        cost = (30, 30)
        for entry in node.args:
            cost = _add(cost, self.check(entry).cost)
        n = len(node.args) // 2
        return _Info(CelType("map", elem=_DYN, key=_DYN, max_elements=n), cost, (n, n))

    def _comp(self, node: Node) -> _Info:
        assert node.target is not None
        rng = self.check(node.target)
        rng_size = self._size(rng)
        elem = (
            rng.type.elem if rng.type.kind == "list" else (rng.type.key if rng.type.kind == "map" else None)
        )
        elem = elem or _DYN
        step = "@items" if rng.type.kind == "list" else "@keys"
        elem_path = (*rng.path, step) if rng.path is not None else None
        self.scopes.append({node.iter_var: _Info(elem, (1, 1), _decl_size(elem), elem_path)})
        try:
            bodies = [self.check(a) for a in node.args]
        finally:
            self.scopes.pop()
        body = (0, 0)
        for b in bodies:
            body = _add(body, b.cost)
        # Per iteration: the loop condition and the step cel-go's macro expansion builds around the body.
        overhead = {
            "all": (3, 3),
            "exists": (4, 4),
            "exists_one": (2, 2),
            "map": (12, 12),
            "filter": (13, 13),
        }[node.name]
        if node.name == "filter":
            overhead = (1, 13)
        per_iteration = _add(body, overhead)
        accu_init = (10, 10) if node.name in ("map", "filter") else (0, 0)
        result_cost = {
            "all": (1, 1),
            "exists": (1, 1),
            "exists_one": (2, 2),
            "map": (1, 1),
            "filter": (1, 1),
        }[node.name]
        cost = _add(_add(_add(rng.cost, accu_init), result_cost), _mul_pair(rng_size, per_iteration))
        if node.name in ("map", "filter"):
            out_elem = bodies[-1].type if node.name == "map" else elem
            return _Info(CelType("list", elem=out_elem, max_elements=rng_size[1]), cost, rng_size)
        return _Info(_BOOL, cost, (1, 1))

    def _size(self, info: _Info) -> tuple[int, int]:
        if info.size is not None:
            return info.size
        if info.path is not None:
            decl = self._decl_at(info.path)
            if decl is not None:
                return (0, decl.max_elements)
        if info.type.kind in ("bool", "int", "uint", "double", "timestamp", "duration"):
            return (1, 1)
        size = _decl_size(info.type)
        return size if size is not None else (0, _UINT64_MAX)

    def _decl_at(self, path: tuple[str, ...]) -> CelType | None:
        current: CelType | None = self.decl
        for step in path[1:]:
            if current is None:
                return None
            if step in ("@items", "@values"):
                current = current.elem
            elif step == "@keys":
                current = current.key
            else:
                declared = (current.fields or {}).get(step)
                current = declared.type if declared is not None else None
        return current

    def _call(self, node: Node) -> _Info:
        target = self.check(node.target) if node.target is not None else None
        args = [self.check(a) for a in node.args]
        arg_cost = (0, 0)
        for a in args:
            arg_cost = _add(arg_cost, a.cost)
        if target is not None:
            arg_cost = _add(arg_cost, target.cost)
        name = node.name
        result = self._result_type(name, target, args)
        size: tuple[int, int] | None = None
        call_cost: tuple[int, int] = (1, 1)
        if name in ("_&&_", "_||_"):
            lhs, rhs = args[0].cost, args[1].cost
            return _Info(_BOOL, (lhs[0], _sat(lhs[1] + rhs[1])), (1, 1))
        if name == "_?_:_":
            cond, yes, no = args
            branch = (min(yes.cost[0], no.cost[0]), max(yes.cost[1], no.cost[1]))
            return _Info(result, _add(cond.cost, branch), _union(self._size(yes), self._size(no)))
        if name in ("_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_"):
            if name in ("_==_", "_!=_") or args[0].type.kind in ("string", "bytes"):
                smallest = min(self._size(args[0])[1], self._size(args[1])[1])
                call_cost = (1 if smallest > 0 else 0, _factor(smallest, 0.1))
                call_cost = (_factor(call_cost[0], 0.1), call_cost[1])
        elif name in ("startsWith", "endsWith") and len(args) == 1:
            call_cost = _factor_pair(self._size(args[0]), 0.1)
        elif name == "@in" and len(args) == 2 and args[1].type.kind == "list":
            call_cost = self._size(args[1])
        elif name == "matches" and target is not None and len(args) == 1:
            text = _factor_pair(_add(self._size(target), (1, 1)), 0.1)
            regex = _factor_pair(self._size(args[0]), 0.25)
            call_cost = _mul_pair(text, regex)
        elif name == "contains" and target is not None and len(args) == 1:
            call_cost = _mul_pair(
                _factor_pair(self._size(target), 0.1), _factor_pair(self._size(args[0]), 0.1)
            )
        elif name == "_+_" and result.kind in ("string", "bytes"):
            size = _add(self._size(args[0]), self._size(args[1]))
            call_cost = _factor_pair(size, 0.1)
        elif name == "_+_" and result.kind == "list":
            size = _add(self._size(args[0]), self._size(args[1]))
        elif name in ("lowerAscii", "upperAscii", "substring", "trim") and target is not None:
            size = self._size(target)
            call_cost = _factor_pair(size, 0.1)
        elif (
            name
            in (
                "url",
                "quantity",
                "isQuantity",
                "semver",
                "isSemver",
                "isURL",
                "cidr",
                "isIP",
                "isCIDR",
                "ip",
            )
            and args
        ):
            call_cost = _factor_pair(self._size(args[0]), 0.1)
        elif name in ("replace", "split") and target is not None:
            call_cost = _factor_pair(self._size(target), 0.2)
            size = (0, self._size(target)[1])
        elif name in ("find", "findAll") and target is not None and args:
            text = _factor_pair(_add(self._size(target), (1, 1)), 0.1)
            call_cost = _mul_pair(text, _factor_pair(self._size(args[0]), 0.25))
            size = (0, self._size(target)[1])
        elif name in ("isSorted", "sum", "min", "max", "indexOf", "lastIndexOf") and target is not None:
            if target.type.kind == "list":
                elem = target.type.elem or _DYN
                per = (1, 1)
                if elem.kind in ("string", "bytes"):
                    elem_size = self._size(
                        _Info(elem, (0, 0), None, (*target.path, "@items") if target.path else None)
                    )
                    per = _add(per, _factor_pair(elem_size, 0.1))
                call_cost = _mul_pair(self._size(target), per)
            else:
                call_cost = _factor_pair(self._size(target), 0.1)
        elif name == "join" and target is not None:
            lst = self._size(target)
            elem = target.type.elem or _DYN
            elem_size = self._size(
                _Info(elem, (0, 0), None, (*target.path, "@items") if target.path else None)
            )
            size = _mul_pair(lst, elem_size)
            call_cost = _factor_pair(size, 0.1)
            return _Info(result, _add(call_cost, arg_cost), size)
        elif name == "_[_]" and len(args) == 2:
            base = args[0]
            step = "@items" if base.type.kind == "list" else "@values"
            path = (*base.path, step) if base.path is not None else None
            return _Info(result, _add(call_cost, arg_cost), None, path)
        elif name == "dyn" and args:
            return _Info(args[0].type, _add((1, 1), args[0].cost), args[0].size, args[0].path)
        if name not in _KNOWN_FUNCTIONS:
            self.errors.append(
                _CelError(node.line, node.col, f"undeclared reference to '{name}' (in container '')")
            )
        return _Info(result, _add(call_cost, arg_cost), size)

    def _result_type(self, name: str, target: _Info | None, args: list[_Info]) -> CelType:
        if name in _BOOL_FUNCTIONS:
            return _BOOL
        if name in _STRING_FUNCTIONS:
            return _STRING
        if name in _INT_FUNCTIONS:
            return _INT
        if name == "double":
            return _DOUBLE
        if name in ("split", "findAll"):
            return CelType("list", elem=_STRING, max_elements=_STRING_MAX)
        if name == "_?_:_":
            return args[1].type if args[1].type.kind == args[2].type.kind else _DYN
        if name in ("_+_", "_-_", "_*_", "_/_", "_%_", "-_"):
            kinds = {a.type.kind for a in args}
            if len(kinds) == 1:
                return args[0].type
            return _DYN
        if name == "_[_]" and len(args) == 2:
            base = args[0].type
            if base.kind in ("list", "map") and base.elem is not None:
                return base.elem
        return _DYN


def _decl_size(t: CelType) -> tuple[int, int] | None:
    if t.kind in ("bool", "int", "uint", "double", "timestamp", "duration"):
        return (1, 1)
    if t.kind in ("string", "bytes", "list", "map") and t.max_elements:
        return (0, t.max_elements)
    return None


def _sat(x: int) -> int:
    return min(x, _UINT64_MAX)


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (_sat(a[0] + b[0]), _sat(a[1] + b[1]))


def _mul_pair(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (_sat(a[0] * b[0]), _sat(a[1] * b[1]))


def _union(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (min(a[0], b[0]), max(a[1], b[1]))


def _factor(x: int, f: float) -> int:
    return _sat(math.ceil(x * f)) if x < _UINT64_MAX else _UINT64_MAX


def _factor_pair(a: tuple[int, int], f: float) -> tuple[int, int]:
    return (_factor(a[0], f), _factor(a[1], f))


def compile_expression(
    source: str, decl: CelType, *, message: bool = False, optional_old_self: bool = False
) -> Compiled:
    """Compile a rule (or, with ``message``, a messageExpression) against the schema's CEL declaration."""
    prefix = "messageExpression compilation failed: " if message else "compilation failed: "
    try:
        tree = parse_expression(source)
    except _SyntaxErrors as exc:
        return Compiled(error=prefix + _display(source, exc.errors))
    checker = _Checker(decl, optional_old_self=optional_old_self)
    info = checker.check(tree)
    if checker.errors:
        return Compiled(error=prefix + _display(source, checker.errors), uses_old_self=checker.uses_old_self)
    want = "string" if message else "bool"
    if info.type.kind not in (want, "dyn"):
        detail = (
            "messageExpression must evaluate to a string"
            if message
            else "cel expression must evaluate to a bool"
        )
        return Compiled(error=detail, uses_old_self=checker.uses_old_self)
    return Compiled(uses_old_self=checker.uses_old_self, cost=info.cost[1])
