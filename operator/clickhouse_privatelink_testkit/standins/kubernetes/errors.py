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


def warning_header(warnings: list[str]) -> str | None:
    """The ``Warning`` header of a response: each warning as a ``299`` agent warning, quoted; None if none is
    left. A warning holding a control character (an unknown field's name may hold a line break or a tab) is
    dropped, as kube-apiserver's warning recorder drops it (checked on 1.36, 2026-12-05)."""
    kept = [w for w in warnings if not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in w)]
    quoted = (w.replace("\\", "\\\\").replace('"', '\\"') for w in kept)
    return ", ".join(f'299 - "{w}"' for w in quoted) or None


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
