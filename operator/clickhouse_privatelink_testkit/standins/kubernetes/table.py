"""``meta.k8s.io/v1 Table`` output (what ``kubectl get`` asks for) and the JSONPath it needs."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources "
    "may allow a client to request the generation of an appropriate name automatically."
)
AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created."
)


class JsonPathError(ValueError):
    """An expression outside the supported JSONPath subset."""


@dataclass(frozen=True)
class _Step:
    kind: str  # "field", "index", "wildcard", "filter", "slice"
    arg: Any = None


_FILTER_RE = re.compile(r"^\s*@((?:\.[A-Za-z0-9_\-/]+)*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*$")


def _literal(text: str) -> Any:
    text = text.strip()
    if text[:1] in ("'", '"') and text[-1:] == text[:1]:
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return text


@functools.lru_cache(maxsize=256)
def compile_jsonpath(expr: str) -> tuple[_Step, ...]:
    """Compile the kubectl JSONPath subset: ``.a.b``, ``['a']``, ``[0]``, ``[*]``, ``[1:2]``, ``[?(@.x=="y")]``."""
    text = expr.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if text.startswith("$"):
        text = text[1:]
    steps: list[_Step] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == ".":
            j = i + 1
            while j < len(text) and text[j] not in ".[":
                j += 1
            name = text[i + 1 : j]
            if name == "*":
                steps.append(_Step("wildcard"))
            elif name:
                steps.append(_Step("field", name))
            i = j
        elif ch == "[":
            depth, j, quote = 0, i, ""
            while j < len(text):
                c = text[j]
                if quote:
                    quote = "" if c == quote else quote
                elif c in "'\"":
                    quote = c
                elif c == "[":
                    depth += 1
                elif c == "]":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            else:
                raise JsonPathError(f"unclosed [ in {expr!r}")
            inner = text[i + 1 : j].strip()
            steps.append(_bracket(inner, expr))
            i = j + 1
        else:
            raise JsonPathError(f"unexpected {ch!r} in {expr!r}")
    return tuple(steps)


def _bracket(inner: str, expr: str) -> _Step:
    if inner == "*":
        return _Step("wildcard")
    if inner.startswith("?(") and inner.endswith(")"):
        m = _FILTER_RE.match(inner[2:-1])
        if m is None:
            raise JsonPathError(f"unsupported filter in {expr!r}")
        path = tuple(p for p in m.group(1).split(".") if p)
        op = m.group(2)
        return _Step("filter", (path, op, _literal(m.group(3)) if op else None))
    if inner[:1] in ("'", '"'):
        return _Step("field", inner[1:-1])
    if ":" in inner:
        start, _, end = inner.partition(":")
        return _Step(
            "slice", (int(start) if start else None, int(end.split(":")[0]) if end.split(":")[0] else None)
        )
    try:
        return _Step("index", int(inner))
    except ValueError as exc:
        raise JsonPathError(f"unsupported subscript [{inner}] in {expr!r}") from exc


_MISSING = object()


def _get_path(value: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    try:
        return bool({"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op])
    except TypeError:
        return False


def jsonpath(expr: str, data: Any) -> list[Any]:
    """All values that ``expr`` selects in ``data`` (empty when nothing matches)."""
    current = [data]
    for step in compile_jsonpath(expr):
        found: list[Any] = []
        for value in current:
            if step.kind == "field":
                if isinstance(value, Mapping) and step.arg in value:
                    found.append(value[step.arg])
            elif step.kind == "index":
                if isinstance(value, list) and -len(value) <= step.arg < len(value):
                    found.append(value[step.arg])
            elif step.kind == "slice":
                if isinstance(value, list):
                    found.extend(value[step.arg[0] : step.arg[1]])
            elif step.kind == "wildcard":
                if isinstance(value, Mapping):
                    found.extend(value.values())
                elif isinstance(value, list):
                    found.extend(value)
            elif step.kind == "filter" and isinstance(value, list):
                path, op, literal = step.arg
                for item in value:
                    got = _get_path(item, path)
                    if got is _MISSING:
                        continue
                    if op is None or _compare(got, op, literal):
                        found.append(item)
        current = found
    return current


def parse_time(value: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """apimachinery's ``duration.HumanDuration``: the AGE column text."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: Any, now: dt.datetime | None = None) -> str:
    """Human-readable time since an RFC 3339 timestamp (``ConvertToHumanReadableDateType``)."""
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    when = parse_time(timestamp)
    if when is None:
        return "<invalid>"
    now = now or dt.datetime.now(dt.UTC)
    return human_duration((now - when).total_seconds())


def _print_value(value: Any) -> str:
    # Go's jsonpath PrintResults: strings verbatim, other scalars by fmt, containers as JSON.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def printer_cell(column: Mapping[str, Any], obj: Mapping[str, Any]) -> Any:
    """One cell of a CRD ``additionalPrinterColumns`` column, as the apiextensions table convertor makes it."""
    try:
        results = jsonpath(column["jsonPath"], obj)
    except JsonPathError:
        return None
    if not results or results[0] is None:
        return None
    value = results[0]
    kind = column.get("type", "string")
    if kind == "string":
        return _print_value(value)
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        return age(value) if parse_time(value) else "<invalid>"
    return None


@dataclass(frozen=True)
class Column:
    """A column of a built-in kind's table; ``cell`` computes the value from the object."""

    name: str
    cell: Callable[[Mapping[str, Any]], Any]
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


def _meta(obj: Mapping[str, Any], key: str) -> Any:
    return obj.get("metadata", {}).get(key)


NAME_COLUMN = Column("Name", lambda o: _meta(o, "name"), format="name", description=NAME_DESCRIPTION)
AGE_COLUMN = Column("Age", lambda o: age(_meta(o, "creationTimestamp")), description=AGE_DESCRIPTION)


def crd_columns(printer_columns: Sequence[Mapping[str, Any]]) -> list[Column]:
    """Columns of a custom resource: Name, then the CRD's printer columns (an Age column if none)."""
    if not printer_columns:
        printer_columns = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    columns = [NAME_COLUMN]
    for spec in printer_columns:
        columns.append(
            Column(
                spec["name"],
                functools.partial(printer_cell, spec),
                type=spec.get("type", "string"),
                format=spec.get("format", ""),
                description=spec.get("description", ""),
                priority=int(spec.get("priority", 0)),
            )
        )
    return columns


def _event_object(obj: Mapping[str, Any]) -> str:
    involved = obj.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _event_last_seen(obj: Mapping[str, Any]) -> str:
    when = obj.get("lastTimestamp") or obj.get("eventTime") or _meta(obj, "creationTimestamp")
    return age(when)


BUILTIN_COLUMNS: dict[str, list[Column]] = {
    "Namespace": [
        NAME_COLUMN,
        Column("Status", lambda o: (o.get("status") or {}).get("phase", "")),
        AGE_COLUMN,
    ],
    "Secret": [
        NAME_COLUMN,
        Column("Type", lambda o: o.get("type", "")),
        Column("Data", lambda o: len(o.get("data") or {}), type="integer"),
        AGE_COLUMN,
    ],
    "ConfigMap": [
        NAME_COLUMN,
        Column("Data", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}), type="integer"),
        AGE_COLUMN,
    ],
    "Event": [
        Column("Last Seen", _event_last_seen),
        Column("Type", lambda o: o.get("type", "")),
        Column("Reason", lambda o: o.get("reason", "")),
        Column("Object", _event_object),
        Column("Message", lambda o: o.get("message", "")),
    ],
    "Lease": [
        NAME_COLUMN,
        Column("Holder", lambda o: (o.get("spec") or {}).get("holderIdentity", "")),
        AGE_COLUMN,
    ],
    "CustomResourceDefinition": [
        NAME_COLUMN,
        Column("Created At", lambda o: _meta(o, "creationTimestamp"), type="date"),
    ],
}


def _row_object(obj: Mapping[str, Any], include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return dict(obj)
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def render_table(
    columns: Sequence[Column],
    objects: Sequence[Mapping[str, Any]],
    *,
    resource_version: str,
    include_object: str = "Metadata",
    continue_token: str = "",
    with_definitions: bool = True,
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1 Table`` of ``objects``."""
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [c.cell(obj) for c in columns]}
        partial = _row_object(obj, include_object)
        if partial is not None:
            row["object"] = partial
        rows.append(row)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    table: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}
    table["columnDefinitions"] = [c.definition() for c in columns] if with_definitions else None
    table["rows"] = rows
    return table
