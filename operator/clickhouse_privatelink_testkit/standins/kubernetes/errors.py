"""Errors of the Kubernetes API stand-in, shaped like kube-apiserver's ``Status`` objects."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# field.ErrorType -> (cause reason, human text), as in k8s.io/apimachinery/pkg/util/validation/field.
_ERROR_TYPES = {
    "Required": ("FieldValueRequired", "Required value"),
    "Invalid": ("FieldValueInvalid", "Invalid value"),
    "TypeInvalid": ("FieldValueTypeInvalid", "Invalid value"),
    "NotSupported": ("FieldValueNotSupported", "Unsupported value"),
    "Forbidden": ("FieldValueForbidden", "Forbidden"),
    "TooLong": ("FieldValueTooLong", "Too long"),
    "TooMany": ("FieldValueTooMany", "Too many"),
    "Duplicate": ("FieldValueDuplicate", "Duplicate value"),
    "NotFound": ("FieldValueNotFound", "Not found"),
}
# Types whose message never shows the offending value (ErrorBody in field/errors.go).
_NO_VALUE = {"Required", "Forbidden", "TooLong"}
OMIT: Any = object()


class GoRendered(str):
    """A bad value already rendered as Go prints it (e.g. ``json.Marshal`` of a struct, fields in order)."""


def _go_value(value: Any) -> str:
    """Render a bad value the way Go's ``%q`` / ``%v`` does in field errors."""
    if isinstance(value, GoRendered):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"  # json.Marshal(nil)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class FieldError:
    """One field error; ``kind`` is a key of the Go ``field.ErrorType`` table above."""

    kind: str
    path: str
    value: Any = OMIT
    detail: str = ""

    @property
    def reason(self) -> str:
        return _ERROR_TYPES[self.kind][0]

    def body(self) -> str:
        """The text after ``path: `` (``field.Error.ErrorBody``)."""
        text = _ERROR_TYPES[self.kind][1]
        if self.kind not in _NO_VALUE and self.value is not OMIT:
            text = f"{text}: {_go_value(self.value)}"
        if self.detail:
            text = f"{text}: {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.path}: {self.body()}"


@dataclass
class ApiError(Exception):
    """An API failure rendered as a ``Status`` body with the matching HTTP code."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # Warning headers (warning_headers), one each

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        """The ``v1 Status`` body of this error."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def qualified(group: str, resource: str) -> str:
    """``resource.group`` (or just ``resource`` in the core group), as in error messages."""
    return f"{resource}.{group}" if group else resource


def _details(group: str, kind: str, name: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": kind}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return details


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{qualified(group, plural)} "{name}" not found', _details(group, plural, name)
    )


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(group, plural)} "{name}" already exists',
        _details(group, plural, name),
    )


def conflict(group: str, plural: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(group, plural)} "{name}": {why}',
        _details(group, plural, name),
    )


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(group: str, kind: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid listing every field error, like ``errors.NewInvalid`` (``kind`` as the body names it)."""
    summary = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    details = _details(group, kind, name)
    details["causes"] = [{"reason": e.reason, "message": e.body(), "field": e.path} for e in errors]
    return ApiError(422, "Invalid", f'{qualified(group, kind)} "{name}" is invalid: {summary}', details)


def go_json(value: Any) -> str:
    """``value`` as Go's ``json.Marshal`` writes an unstructured object: keys sorted, compact, ``<``, ``>``,
    ``&``, U+2028 and U+2029 escaped, other text as it is."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def strict_patch_error(patched: Any, detail: str) -> ApiError:
    """422 for a PATCH whose patched object fails strict decoding (``fieldValidation=Strict``): kube-apiserver
    names no kind or object, only the field ``patch`` with the whole patched object as its value
    (``errors.NewInvalid(schema.GroupKind{}, "", ...)`` in the patcher; checked on 1.36, 2026-12-05)."""
    error = FieldError("Invalid", "patch", go_json(patched), detail)
    cause = {"reason": error.reason, "message": error.body(), "field": error.path}
    return ApiError(422, "Invalid", f' "" is invalid: {error}', {"causes": [cause]})


def warning_headers(warnings: list[str]) -> list[str]:
    """The ``Warning`` headers of a response: one header per warning, a ``299`` agent warning, quoted, as
    kube-apiserver sends them (checked on 1.36, 2026-12-05: three unknown fields, three headers). A warning
    holding a control character (an unknown field's name may hold a line break or a tab) is dropped, as
    kube-apiserver's warning recorder drops it."""
    kept = [w for w in warnings if not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in w)]
    quoted = (w.replace("\\", "\\\\").replace('"', '\\"') for w in kept)
    return [f'299 - "{w}"' for w in quoted]


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unsupported_media_type(accepted: tuple[str, ...]) -> ApiError:
    """415 naming the media types the endpoint accepts (``negotiation.NewUnsupportedMediaTypeError``)."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
    )


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def forbidden(group: str, plural: str, name: str, message: str) -> ApiError:
    return ApiError(
        403,
        "Forbidden",
        f'{qualified(group, plural)} "{name}" is forbidden: {message}',
        _details(group, plural, name),
    )


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
