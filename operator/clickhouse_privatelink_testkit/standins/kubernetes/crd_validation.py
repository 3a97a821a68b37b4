"""CustomResourceDefinition validation as kube-apiserver's apiextensions strategy does it (create and update).

What is checked, with the real server's paths and messages (``k8s.io/apiextensions-apiserver``'s
``pkg/apis/apiextensions/validation`` and ``pkg/apiserver/schema``):

- the body decodes into a v1 CRD (else a 400 with Go's ``json: cannot unmarshal ...``);
- the spec: group, scope, names, exactly one storage version, ``metadata.name`` = plural.group, immutable group
  and plural on update, ``preserveUnknownFields`` not true, the ``api-approved.kubernetes.io`` annotation for
  groups under ``k8s.io`` and ``kubernetes.io``;
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

The CEL rules are compiled, and their cost estimated, by :mod:`.cel_compile` (its docstring documents the
approximation of cel-go's cost estimator); a rule over 10,000,000 (``StaticEstimatedCostLimit``) times how
often it can run is refused, as are all rules of a schema together over 100,000,000.

Left out: conversion webhooks, the status subresource's restrictions on the root schema, scale subresource
paths and selectable fields; RE2 syntax Python's ``re`` does not know (``\\pL``, ``\\z``) is refused where the
real server accepts it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from clickhouse_privatelink_testkit.standins.kubernetes import schema as kube_schema
from clickhouse_privatelink_testkit.standins.kubernetes.cel_compile import (
    MAX_REQUEST_SIZE_BYTES,
    UINT64_MAX,
    CelType,
    cel_escape,
    compile_expression,
    schema_decl_type,
)
from clickhouse_privatelink_testkit.standins.kubernetes.errors import FieldError, GoRendered, bad_request
from clickhouse_privatelink_testkit.standins.kubernetes.patch import clone

Schema = dict[str, Any]

STATIC_ESTIMATED_COST_LIMIT = 10_000_000
STATIC_ESTIMATED_CRD_COST_LIMIT = 100_000_000

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


def _required(path: str, detail: str = "") -> FieldError:
    return FieldError("Required", path, detail=detail)


def _forbidden(path: str, detail: str) -> FieldError:
    return FieldError("Forbidden", path, detail=detail)


def _invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError("Invalid", path, value, detail)


# --------------------------------------------------------------------------------------------------- the CRD


def validate_crd(crd: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> list[FieldError]:
    """Every error kube-apiserver reports for this CRD (``old``: the stored CRD on update).

    Raises a 400 :class:`ApiError` for a body Go could not decode into a CRD (a string where a number
    belongs...), as kube-apiserver does before validating.
    """
    problem = decoding_error(crd)
    if problem:
        raise bad_request(
            'CustomResourceDefinition in version "v1" cannot be handled as a CustomResourceDefinition: '
            + problem
        )
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [_required("spec")]
    errors = _validate_spec_basics(crd, spec)
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
    schema_paths = _hoisted(versions, "schema", "spec.validation")
    column_paths = _hoisted(versions, "additionalPrinterColumns", "spec.additionalPrinterColumns")
    # Per-version schemas and columns first, then the hoisted ones, in the real server's order.
    hoisted = [i for i, path in schema_paths.items() if not path.startswith("spec.versions")]
    hoisted_columns = [i for i, path in column_paths.items() if not path.startswith("spec.versions")]
    for i in [*(i for i in range(len(versions)) if i not in hoisted), *hoisted]:
        if i in schema_paths:
            errors.extend(_validate_version_schema(versions[i], schema_paths[i], old))
        if i in column_paths and i not in hoisted_columns:
            errors.extend(_validate_columns(versions[i], column_paths[i]))
    for i in hoisted_columns:
        errors.extend(_validate_columns(versions[i], column_paths[i]))
    errors.extend(_validate_api_approval(crd, old))
    if spec.get("preserveUnknownFields") is True and not (
        old and (old.get("spec") or {}).get("preserveUnknownFields")
    ):
        detail = "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead"
        errors.append(_invalid("spec.preserveUnknownFields", True, detail))
    if old is not None:
        old_spec = old.get("spec") or {}
        for name, value, old_value in (
            ("spec.group", spec.get("group"), old_spec.get("group")),
            (
                "spec.names.plural",
                (spec.get("names") or {}).get("plural"),
                (old_spec.get("names") or {}).get("plural"),
            ),
        ):
            if value != old_value:
                errors.append(_invalid(name, value, "field is immutable"))
    return errors


_APPROVAL = "api-approved.kubernetes.io"
_APPROVAL_HELP = "see https://github.com/kubernetes/enhancements/pull/1111"


def _approval_state(crd: Mapping[str, Any] | None) -> str:
    """``GetAPIApprovalState``: missing, bypassed (``unapproved...``), approved (a URL) or invalid."""
    meta = (crd or {}).get("metadata")
    annotations = (meta.get("annotations") if isinstance(meta, dict) else None) or {}
    value = str(annotations.get(_APPROVAL) or "")
    if not value:
        return "missing"
    if value.startswith("unapproved"):
        return "bypassed"
    url = urlsplit(value)
    return "approved" if url.scheme and url.netloc else "invalid"


def _validate_api_approval(crd: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
    """Groups under k8s.io and kubernetes.io need the API approval annotation (unless it did not change)."""
    group = str((crd.get("spec") or {}).get("group") or "")
    if not any(group == root or group.endswith("." + root) for root in ("k8s.io", "kubernetes.io")):
        return []
    state = _approval_state(crd)
    if (old is not None and _approval_state(old) == state) or state in ("approved", "bypassed"):
        return []
    path = f"metadata.annotations[{_APPROVAL}]"
    if state == "missing":
        return [
            _required(path, f'protected groups must have approval annotation "{_APPROVAL}", {_APPROVAL_HELP}')
        ]
    value = crd["metadata"]["annotations"][_APPROVAL]
    detail = (
        f'protected groups must have approval annotation "{_APPROVAL}" with either a URL or a reason starting '
        f'with "unapproved", {_APPROVAL_HELP}'
    )
    return [_invalid(path, value, detail)]


def _validate_version_schema(
    version: dict[str, Any], path: str, old: Mapping[str, Any] | None
) -> list[FieldError]:
    schema = (version.get("schema") or {}).get("openAPIV3Schema")
    if not isinstance(schema, dict):
        return []
    # On update, an unchanged schema keeps its rules even if they cost more than today's limit.
    unchanged = old is not None and _old_schema(old, version.get("name")) == schema
    return SchemaValidator(suppress_cost=unchanged).validate(schema, path)


def _validate_columns(version: dict[str, Any], path: str) -> list[FieldError]:
    return [
        error
        for j, column in enumerate(version.get("additionalPrinterColumns") or [])
        for error in _validate_column(column, _key(path, j))
    ]


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
        errors.append(_required("spec.group"))
    elif not _DNS1123_SUBDOMAIN.match(str(group)) or len(str(group)) > 253:
        errors.append(_invalid("spec.group", group, _DNS1123_MSG))
    elif "." not in str(group):
        errors.append(_invalid("spec.group", group, "should be a domain with at least one dot"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        if not spec.get("scope"):
            errors.append(_required("spec.scope"))
        else:
            errors.append(
                FieldError(
                    "NotSupported",
                    "spec.scope",
                    spec.get("scope"),
                    'supported values: "Cluster", "Namespaced"',
                )
            )
    if spec.get("preserveUnknownFields") is True and any("default" in sub for sub in _crd_schemas(spec)):
        errors.append(
            _invalid(
                "spec.preserveUnknownFields", True, "must be false in order to use defaults in the schema"
            )
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        errors.append(
            _invalid("spec.versions", versions, "must have exactly one version marked as storage version")
        )
    else:
        seen: set[Any] = set()
        for i, version in enumerate(versions):
            name = version.get("name") if isinstance(version, dict) else None
            if not isinstance(name, str) or not _DNS1035.match(name) or len(name) > 63:
                errors.append(_invalid(f"spec.versions[{i}].name", name, _DNS1035_MSG))
            if name in seen:
                errors.append(_invalid("spec.versions", None, "must contain unique version names"))
            seen.add(name)
            schema = (
                (version.get("schema") or {}).get("openAPIV3Schema") if isinstance(version, dict) else None
            )
            if not isinstance(schema, dict):
                errors.append(_required(f"spec.versions[{i}].schema.openAPIV3Schema"))
        if sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
            errors.append(
                _invalid("spec.versions", None, "must have exactly one version marked as storage version")
            )
    for key in ("plural", "kind"):
        if not names.get(key):
            errors.append(_required(f"spec.names.{key}"))
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
            errors.append(_invalid(f"spec.names.{key}", value, detail))
    for key in ("shortNames", "categories"):
        for i, value in enumerate(names.get(key) or []):
            if not isinstance(value, str) or not _DNS1035.match(value):
                errors.append(_invalid(f"spec.names.{key}[{i}]", value, _DNS1035_MSG))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        errors.append(
            _invalid("spec.names.listKind", names["listKind"], "kind and listKind may not be the same")
        )
    if not errors and names.get("plural") and group:
        expected = f"{names['plural']}.{group}"
        if _name(crd) != expected:
            errors.append(_invalid("metadata.name", _name(crd), 'must be spec.names.plural+"."+spec.group'))
    return errors


def _name(crd: Mapping[str, Any]) -> Any:
    meta = crd.get("metadata")
    return meta.get("name") if isinstance(meta, dict) else None


def _crd_schemas(spec: dict[str, Any]) -> Iterator[Schema]:
    for version in spec.get("versions") or []:
        if isinstance(version, dict):
            yield from _all_schemas((version.get("schema") or {}).get("openAPIV3Schema"))


def _validate_column(column: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not isinstance(column, dict):
        return [_invalid(path, column, "must be an object")]
    if not column.get("name"):
        errors.append(_required(_child(path, "name")))
    types = ",".join(_COLUMN_TYPES)
    kind = column.get("type")
    if not kind:
        errors.append(_required(_child(path, "type"), f"must be one of {types}"))
    elif kind not in _COLUMN_TYPES:
        errors.append(_invalid(_child(path, "type"), kind, f"must be one of {types}"))
    fmt = column.get("format")
    if fmt and fmt not in _COLUMN_FORMATS:
        errors.append(_invalid(_child(path, "format"), fmt, f"must be one of {','.join(_COLUMN_FORMATS)}"))
    json_path = column.get("jsonPath")
    if not json_path:
        errors.append(_required(_child(path, "JSONPath")))
    elif not str(json_path).startswith("."):
        errors.append(
            _invalid(_child(path, "JSONPath"), json_path, "must be a simple json path starting with .")
        )
    return errors


# ------------------------------------------------------------------------------------------ decoding


# Go's types of the v1 CRD fields, as ``encoding/json`` decodes them: a type name, or a struct (field -> type).
_STR, _BOOLEAN, _I64, _F64, _STRS = "string", "bool", "int64", "float64", "[]string"
_SCHEMA = "v1.JSONSchemaProps"
_STRUCTS: dict[str, dict[str, str]] = {
    "CustomResourceDefinition": {"apiVersion": _STR, "kind": _STR, "spec": "CustomResourceDefinitionSpec"},
    "CustomResourceDefinitionSpec": {
        "group": _STR, "names": "CustomResourceDefinitionNames", "scope": _STR,
        "versions": "[]CustomResourceDefinitionVersion", "preserveUnknownFields": _BOOLEAN,
    },
    "CustomResourceDefinitionNames": {
        "plural": _STR, "singular": _STR, "kind": _STR, "listKind": _STR, "shortNames": _STRS, "categories": _STRS,
    },
    "CustomResourceDefinitionVersion": {
        "name": _STR, "served": _BOOLEAN, "storage": _BOOLEAN, "deprecated": _BOOLEAN, "deprecationWarning": _STR,
        "schema": "CustomResourceValidation", "additionalPrinterColumns": "[]CustomResourceColumnDefinition",
        "selectableFields": "[]SelectableField",
    },
    "CustomResourceValidation": {"openAPIV3Schema": _SCHEMA},
    "CustomResourceColumnDefinition": {
        "name": _STR, "type": _STR, "format": _STR, "description": _STR, "priority": "int32", "jsonPath": _STR,
    },
    "SelectableField": {"jsonPath": _STR},
    "JSONSchemaProps": {
        "id": _STR, "$schema": _STR, "$ref": _STR, "description": _STR, "type": _STR, "format": _STR,
        "title": _STR, "pattern": _STR, "maximum": _F64, "minimum": _F64, "multipleOf": _F64,
        "exclusiveMaximum": _BOOLEAN, "exclusiveMinimum": _BOOLEAN, "uniqueItems": _BOOLEAN, "nullable": _BOOLEAN,
        "maxLength": _I64, "minLength": _I64, "maxItems": _I64, "minItems": _I64, "maxProperties": _I64,
        "minProperties": _I64, "required": _STRS, "enum": "[]v1.JSON", "allOf": "[]v1.JSONSchemaProps",
        "oneOf": "[]v1.JSONSchemaProps", "anyOf": "[]v1.JSONSchemaProps", "not": _SCHEMA,
        "properties": "map[string]v1.JSONSchemaProps", "patternProperties": "map[string]v1.JSONSchemaProps",
        "definitions": "map[string]v1.JSONSchemaProps", "additionalProperties": "v1.JSONSchemaPropsOrBool",
        "additionalItems": "v1.JSONSchemaPropsOrBool", "items": "v1.JSONSchemaPropsOrArray",
        "x-kubernetes-preserve-unknown-fields": _BOOLEAN, "x-kubernetes-embedded-resource": _BOOLEAN,
        "x-kubernetes-int-or-string": _BOOLEAN, "x-kubernetes-list-map-keys": _STRS,
        "x-kubernetes-list-type": _STR, "x-kubernetes-map-type": _STR,
        "x-kubernetes-validations": "[]ValidationRule",
    },
    "ValidationRule": {
        "rule": _STR, "message": _STR, "messageExpression": _STR, "reason": _STR, "fieldPath": _STR,
        "optionalOldSelf": _BOOLEAN,
    },
}  # fmt: skip


def decoding_error(crd: Mapping[str, Any]) -> str | None:
    """Go's first ``json: cannot unmarshal ...`` error decoding this body into a v1 CRD, or ``None``.

    kube-apiserver answers such a body with 400 before validating anything.
    """
    return _decode(crd, "CustomResourceDefinition", "", "")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _decode(value: Any, go_type: str, struct: str, path: str) -> str | None:
    if value is None:
        return None
    ok = {
        _STR: isinstance(value, str),
        _BOOLEAN: isinstance(value, bool),
        _F64: isinstance(value, int | float) and not isinstance(value, bool),
        _I64: isinstance(value, int) and not isinstance(value, bool),
        "int32": isinstance(value, int) and not isinstance(value, bool),
        "v1.JSONSchemaPropsOrBool": isinstance(value, bool | dict),
        "v1.JSONSchemaPropsOrArray": isinstance(value, dict | list),
    }
    if go_type.startswith("[]"):
        if not isinstance(value, list):
            return _unmarshal(value, go_type, struct, path)
        for item in value:
            found = _decode(item, go_type[2:], struct, path)
            if found:
                return found
        return None
    if go_type.startswith("map[string]"):
        if not isinstance(value, dict):
            return _unmarshal(value, go_type, struct, path)
        for item in value.values():
            found = _decode(item, go_type[len("map[string]") :], struct, path)
            if found:
                return found
        return None
    if go_type in ok:
        if not ok[go_type]:
            return _unmarshal(value, go_type, struct, path)
        if go_type == "v1.JSONSchemaPropsOrBool" and isinstance(value, dict):
            return _decode(value, _SCHEMA, struct, path)
        if go_type == "v1.JSONSchemaPropsOrArray":
            return _decode(
                value, _SCHEMA if isinstance(value, dict) else "[]v1.JSONSchemaProps", struct, path
            )
        return None
    name = go_type.removeprefix("v1.")
    fields = _STRUCTS.get(name)
    if fields is None:
        return None  # any JSON (v1.JSON, defaults, examples)
    if not isinstance(value, dict):
        return _unmarshal(value, go_type if go_type.startswith("v1.") else f"v1.{go_type}", struct, path)
    for key, item in value.items():
        if key in fields:
            found = _decode(item, fields[key], name, f"{path}.{key}" if path else key)
            if found:
                return found
    return None


def _unmarshal(value: Any, go_type: str, struct: str, path: str) -> str:
    kind = _json_kind(value)
    if kind == "number" and go_type in (_I64, "int32") and isinstance(value, float):
        kind = f"number {value:g}"
    return f"json: cannot unmarshal {kind} into Go struct field {struct}.{path} of type {go_type}"


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
    return True


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
        errors.append(_required(_child(path, "items"), "must be specified"))
    if isinstance(items, dict):
        _structural_invariants(items, "item", _child(path, "items"), errors)
    for name, sub in (s.get("properties") or {}).items():
        if isinstance(sub, dict):
            _structural_invariants(sub, "field", _key(_child(path, "properties"), name), errors)
    extra = s.get("additionalProperties")
    if extra is not None:
        if level == "root":
            errors.append(_forbidden(_child(path, "additionalProperties"), "must not be used at the root"))
        if isinstance(extra, dict):
            _structural_invariants(extra, "field", _child(path, "additionalProperties"), errors)
    int_or_string = bool(s.get("x-kubernetes-int-or-string"))
    preserve = bool(s.get("x-kubernetes-preserve-unknown-fields"))
    embedded = bool(s.get("x-kubernetes-embedded-resource"))
    if int_or_string and preserve:
        errors.append(
            _invalid(
                _child(path, "x-kubernetes-preserve-unknown-fields"),
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    if int_or_string and embedded:
        errors.append(
            _invalid(
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
                _required(_child(path, "type"), "must be object if x-kubernetes-embedded-resource is true")
            )
        else:
            errors.append(
                _invalid(
                    _child(path, "type"), kind, "must be object if x-kubernetes-embedded-resource is true"
                )
            )
    elif not kind and not int_or_string and not preserve:
        where = {
            "root": "at the root",
            "item": "for specified array items",
            "field": "for specified object fields",
        }[level]
        errors.append(_required(_child(path, "type"), f"must not be empty {where}"))
    if embedded and extra is not None:
        errors.append(
            _forbidden(
                _child(path, "additionalProperties"),
                "must not be used if x-kubernetes-embedded-resource is set",
            )
        )
    if level == "root" and kind and kind != "object":
        errors.append(_invalid(_child(path, "type"), kind, "must be object at the root"))
    check_metadata = level == "root" or embedded
    props = s.get("properties") or {}
    for name in ("kind", "apiVersion"):
        if name in props and check_metadata and (props[name] or {}).get("type", "") != "string":
            errors.append(
                _invalid(
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
        errors.append(
            _required(
                _child(path, "properties"),
                "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
            )
        )


def _metadata_invariants(s: Schema, check: bool, level: str, path: str, errors: list[FieldError]) -> None:
    if check and s.get("type", "") != "object":
        errors.append(_invalid(_child(path, "type"), s.get("type", ""), "must be object"))
    if level != "root":
        return
    rest = {k: v for k, v in s.items() if k not in ("type", "default")}
    props = rest.get("properties")
    if isinstance(props, dict) and props and set(props) <= {"name", "generateName"}:
        del rest["properties"]
    # What is left must be empty, as Structural{} is; empty lists and false flags count as unset.
    if any(value not in (None, False, "", [], {}) for value in rest.values()) or "properties" in rest:
        errors.append(
            _forbidden(
                path,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
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
            errors.append(
                _invalid(
                    _child(path, "pattern"),
                    pattern,
                    f"must be a valid regular expression, but isn't: {problem}",
                )
            )


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
            errors.append(_forbidden(_child(path, key), detail))
    if v.get("additionalProperties") not in (None, False):
        errors.append(_forbidden(_child(path, "additionalProperties"), "must be undefined to be structural"))
    if "default" in v:
        errors.append(_forbidden(_child(path, "default"), "must be undefined to be structural"))
    for key, detail in _NESTED_FORBIDDEN[1:]:
        if v.get(key):
            errors.append(_forbidden(_child(path, key), detail))
    if "metadata" in (v.get("properties") or {}):
        errors.append(
            _forbidden(
                _key(_child(path, "properties"), "metadata"), "must not be specified in a nested context"
            )
        )


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
        errors.append(_required(s_path, f"because it is defined in {v_path}"))
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
                _required(_key(_child(s_path, "properties"), name), f"because it is defined in {where}")
            )
        else:
            _nested_completeness(
                sub,
                s_props[name],
                _key(_child(s_path, "properties"), name),
                _key(_child(v_path, "properties"), name),
                errors,
            )


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


# Python's re error -> Go's message (``regexp/syntax``), from the pattern and the error's position.
_GO_REGEXP_ERRORS: list[tuple[str, Callable[[str, int, str], str]]] = [
    ("missing ), unterminated subpattern", lambda p, _, __: f"missing closing ): `{p}`"),
    ("unbalanced parenthesis", lambda p, _, __: f"unexpected ): `{p}`"),
    ("unterminated character set", lambda p, pos, _: f"missing closing ]: `{p[pos:]}`"),
    ("nothing to repeat", lambda p, pos, _: f"missing argument to repetition operator: `{p[pos]}`"),
    ("multiple repeat", lambda p, pos, _: f"invalid nested repetition operator: `{p[pos - 1 : pos + 1]}`"),
    (
        "bad character range",
        lambda _, __, text: f"invalid character class range: `{text.rsplit(' ', 1)[-1]}`",
    ),
    ("bad escape", lambda p, pos, _: f"invalid escape sequence: `{p[pos : pos + 2]}`"),
]


def _go_regexp_message(pattern: str, exc: re.error) -> str:
    text = str(exc.msg)
    for prefix, render in _GO_REGEXP_ERRORS:
        if text.startswith(prefix):
            return "error parsing regexp: " + render(pattern, exc.pos or 0, text)
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
            errors.append(_invalid(_child(path, "default"), value, "must not have unknown fields"))
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
            errors.append(_forbidden(_child(path, "nullable"), "nullable cannot be true at the root"))
        init_errors: list[FieldError] = []
        ctx = _Context()
        if not _is_structural_convertible(schema):
            init_errors.append(_invalid(path, "", _structural_init_error(schema)))
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
                errors.append(_forbidden(where, detail))
            errors.append(
                _forbidden(
                    path,
                    _cost_message(
                        "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
                        self.total_cost,
                        STATIC_ESTIMATED_CRD_COST_LIMIT,
                    ),
                )
            )
        return errors

    def _observe(self, path: str, cost: int) -> None:
        self.costs[path] = cost
        self.total_cost = min(self.total_cost + cost, UINT64_MAX)
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
            schema_errors.append(
                _forbidden(
                    _child(path, "uniqueItems"),
                    "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
                )
            )
        extra = s.get("additionalProperties")
        props = s.get("properties") or {}
        if extra is not None:
            if props and extra is not True:
                schema_errors.append(
                    _forbidden(
                        _child(path, "additionalProperties"),
                        "additionalProperties and properties are mutual exclusive",
                    )
                )
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
                cardinality = min(ctx.cardinality * factor, UINT64_MAX)
        return _replace(ctx, decl=decl, cardinality=cardinality)

    def _compile(self, rules: list[Any], s: Schema, path: str, ctx: _Context) -> list[FieldError]:
        errors: list[FieldError] = []
        decl = ctx.decl
        assert decl is not None
        unbounded_cardinality = MAX_REQUEST_SIZE_BYTES // (decl.min_size + 1)
        for i, entry in enumerate(rules):
            rule = entry if isinstance(entry, dict) else {}
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
                errors.append(_forbidden(_child(rule_path, "rule"), detail))
            self._observe(_child(rule_path, "rule"), cost)
            if compiled.error:
                errors.append(_invalid(_child(rule_path, "rule"), _go_rule(rule), compiled.error))
                continue
            expression = rule.get("messageExpression")
            if expression:
                message = compile_expression(str(expression), decl, message=True)
                if message.error:
                    errors.append(
                        _invalid(_child(rule_path, "messageExpression"), _go_rule(rule), message.error)
                    )
                else:
                    message_cost = _mul(message.cost, cardinality)
                    if not self.suppress_cost and message_cost > STATIC_ESTIMATED_COST_LIMIT:
                        detail = _cost_message(
                            "estimated messageExpression cost", message_cost, STATIC_ESTIMATED_COST_LIMIT
                        )
                        errors.append(_forbidden(_child(rule_path, "messageExpression"), detail))
                    self._observe(_child(rule_path, "messageExpression"), message_cost)
            if compiled.uses_old_self:
                if ctx.uncorrelatable is not None:
                    detail = f"oldSelf cannot be used on the uncorrelatable portion of the schema within {ctx.uncorrelatable}"
                    errors.append(_invalid(_child(rule_path, "rule"), text, detail))
            elif "optionalOldSelf" in rule and rule["optionalOldSelf"] is not None:
                errors.append(
                    _invalid(
                        _child(rule_path, "optionalOldSelf"),
                        rule["optionalOldSelf"],
                        "may not be set if oldSelf is not used in rule",
                    )
                )
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
        for key, name in (
            ("id", "id"),
            ("$schema", "schema"),
            ("$ref", "$ref"),
            ("patternProperties", "patternProperties"),
            ("dependencies", "dependencies"),
            ("additionalItems", "additionalItems"),
            ("definitions", "definitions"),
        ):
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
        errors.append(
            FieldError(
                "NotSupported",
                _child(path, "type"),
                kind,
                "supported values: " + ", ".join(f'"{t}"' for t in _OPENAPI_TYPES),
            )
        )
    if "default" in s and s["default"] is not None and not ctx.allow_defaults:
        detail = "must not be set" + (f" {ctx.defaults_reason}" if ctx.defaults_reason else "")
        errors.append(_forbidden(_child(path, "default"), detail))
    for key, detail in _FORBIDDEN_KEYS:
        if key in s and s[key] not in (None, "", {}, []):
            errors.append(_forbidden(_child(path, key), detail))
    if kind == "null":
        errors.append(
            _forbidden(_child(path, "type"), "type cannot be set to null, use nullable as an alternative")
        )
    if isinstance(s.get("items"), list) and s["items"]:
        errors.append(_forbidden(_child(path, "items"), "items must be a schema object and not an array"))
    if ctx.inside_meta and s.get("x-kubernetes-embedded-resource"):
        errors.append(
            _forbidden(
                _child(path, "x-kubernetes-embedded-resource"), "must not be used inside of resource meta"
            )
        )
    return errors


def _type_required_by(kind: str, expected: str, extension: str, path: str) -> FieldError:
    detail = f"must be {expected} if {extension} is specified"
    return _invalid(_child(path, "type"), kind, detail) if kind else _required(_child(path, "type"), detail)


def _extensions(s: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    kind = s.get("type") or ""
    if s.get("x-kubernetes-preserve-unknown-fields") is False:
        errors.append(
            _invalid(_child(path, "x-kubernetes-preserve-unknown-fields"), False, "must be true or undefined")
        )
    map_type = s.get("x-kubernetes-map-type")
    if map_type is not None and kind != "object":
        errors.append(_type_required_by(kind, "object", "x-kubernetes-map-type", path))
    if map_type is not None and map_type not in ("atomic", "granular"):
        errors.append(
            FieldError(
                "NotSupported",
                _child(path, "x-kubernetes-map-type"),
                map_type,
                'supported values: "atomic", "granular"',
            )
        )
    list_type = s.get("x-kubernetes-list-type")
    items = s.get("items") if isinstance(s.get("items"), dict) else None
    if list_type is not None and kind != "array":
        errors.append(_type_required_by(kind, "array", "x-kubernetes-list-type", path))
    elif list_type == "set" and items is not None:
        if items.get("type") == "array" and items.get("x-kubernetes-list-type") not in (None, "atomic"):
            errors.append(
                _invalid(
                    _child(_child(path, "items"), "x-kubernetes-list-type"),
                    items.get("x-kubernetes-list-type"),
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                )
            )
        if items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic":
            # The real server reports the item's list type here (nil for an object), rendered as null.
            errors.append(
                _invalid(
                    _child(_child(path, "items"), "x-kubernetes-map-type"),
                    GoRendered("null"),
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                )
            )
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        errors.append(
            FieldError(
                "NotSupported",
                _child(path, "x-kubernetes-list-type"),
                list_type,
                'supported values: "atomic", "set", "map"',
            )
        )
    keys = s.get("x-kubernetes-list-map-keys") or []
    if keys:
        if list_type is None:
            errors.append(
                _required(
                    _child(path, "x-kubernetes-list-type"),
                    "must be map if x-kubernetes-list-map-keys is non-empty",
                )
            )
        elif list_type != "map":
            errors.append(
                _invalid(
                    _child(path, "x-kubernetes-list-type"),
                    list_type,
                    "must be map if x-kubernetes-list-map-keys is non-empty",
                )
            )
    if list_type == "map":
        if not keys:
            errors.append(
                _required(
                    _child(path, "x-kubernetes-list-map-keys"),
                    "must not be empty if x-kubernetes-list-type is map",
                )
            )
        if s.get("items") is None:
            errors.append(
                _required(_child(path, "items"), "must have a schema if x-kubernetes-list-type is map")
            )
        elif items is None:
            errors.append(
                _invalid(
                    _child(path, "items"),
                    s.get("items"),
                    "must only have a single schema if x-kubernetes-list-type is map",
                )
            )
        elif items.get("type") != "object":
            errors.append(
                _invalid(
                    _child(_child(path, "items"), "type"),
                    items.get("type", ""),
                    "must be object if parent array's x-kubernetes-list-type is map",
                )
            )
        else:
            seen: set[str] = set()
            item_props = items.get("properties") or {}
            for key in keys:
                if key in item_props:
                    if (item_props[key] or {}).get("type") in ("array", "object"):
                        errors.append(
                            _invalid(
                                _child(_key(_child(_child(path, "items"), "properties"), key), "type"),
                                "object",
                                "must be a scalar type if parent array's x-kubernetes-list-type is map",
                            )
                        )
                else:
                    errors.append(
                        _invalid(
                            _child(path, "x-kubernetes-list-map-keys"),
                            keys,
                            "entries must all be names of item properties",
                        )
                    )
                if key in seen:
                    errors.append(
                        _invalid(
                            _child(path, "x-kubernetes-list-map-keys"),
                            keys,
                            "must not contain duplicate entries",
                        )
                    )
                seen.add(key)
    if list_type in ("set", "map") and items is not None:
        if items.get("nullable"):
            errors.append(
                _forbidden(
                    _child(_child(path, "items"), "nullable"),
                    f"cannot be nullable when x-kubernetes-list-type is {list_type}",
                )
            )
        if list_type == "map":
            required = set(items.get("required") or [])
            for key in keys:
                prop = (items.get("properties") or {}).get(key)
                if not isinstance(prop, dict):
                    continue
                prop_path = _key(_child(_child(path, "items"), "properties"), key)
                if key not in required and prop.get("default") is None:
                    errors.append(
                        _required(
                            _child(prop_path, "default"),
                            "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                        )
                    )
                if prop.get("nullable"):
                    errors.append(
                        _forbidden(
                            _child(prop_path, "nullable"),
                            "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                        )
                    )
    return errors


def _rule_fields(rules: list[Any], s: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, rule in enumerate(rules):
        rule_path = _key(_child(path, "x-kubernetes-validations"), i)
        rule = rule if isinstance(rule, dict) else {}  # a null entry decodes to an empty rule
        text = str(rule.get("rule") or "")
        message = str(rule.get("message") or "")
        if not text.strip():
            errors.append(_required(_child(rule_path, "rule"), "rule is not specified"))
        elif message and not message.strip():
            errors.append(_invalid(_child(rule_path, "message"), message, "must be non-empty if specified"))
        elif re.search(r"[\n\r]", message.strip()):
            errors.append(_invalid(_child(rule_path, "message"), message, "must not contain line breaks"))
        elif re.search(r"[\n\r]", text.strip()) and not message.strip():
            errors.append(
                _required(
                    _child(rule_path, "message"), "message must be specified if rule contains line breaks"
                )
            )
        expression = rule.get("messageExpression")
        if expression is not None and expression != "" and not str(expression).strip():
            errors.append(
                _required(
                    _child(rule_path, "messageExpression"), "messageExpression must be non-empty if specified"
                )
            )
        reason = rule.get("reason")
        if reason is not None and reason not in _RULE_REASONS:
            errors.append(
                FieldError(
                    "NotSupported",
                    _child(rule_path, "reason"),
                    reason,
                    "supported values: " + ", ".join(f'"{r}"' for r in _RULE_REASONS),
                )
            )
        field_path = rule.get("fieldPath")
        if field_path:
            if not str(field_path).strip():
                errors.append(
                    _invalid(_child(rule_path, "fieldPath"), field_path, "must be non-empty if specified")
                )
            if re.search(r"[\n\r]", str(field_path)):
                errors.append(
                    _invalid(_child(rule_path, "fieldPath"), field_path, "must not contain line breaks")
                )
            if not _field_path_valid(s, str(field_path)):
                errors.append(_invalid(_child(rule_path, "fieldPath"), field_path, "must be a valid path"))
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
    return min(x * y, UINT64_MAX)


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
