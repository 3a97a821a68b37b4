#!/usr/bin/env python3
"""Write the chart README's values table from the `# --` comments of values.yaml (helm-docs' convention).

A comment block starting with `# -- ` documents the key on the line right below it (continuation lines
are plain `# ` comments); the key's default is its value in values.yaml. The table goes between the
README's `<!-- BEGIN values -->` and `<!-- END values -->` markers. tests/packaging fails when it is stale.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts/clickhouse-privatelink-operator"
VALUES = CHART / "values.yaml"
README = CHART / "README.md"

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w-]*):(?:\s|$)")
DOC_START = re.compile(r"^\s*# -- (?P<text>.*)$")
DOC_MORE = re.compile(r"^\s*#(?: (?P<text>.*))?$")
BLOCK = re.compile(r"(<!-- BEGIN values[^\n]*-->\n)(.*?)(<!-- END values -->)", re.DOTALL)


@dataclass(frozen=True)
class Value:
    key: str
    type: str
    default: Any
    description: str


def documented_keys(text: str) -> list[tuple[str, str]]:
    """(dotted key, description) for every key that a `# --` comment block documents, in file order."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in text.splitlines():
        start = DOC_START.match(line)
        if start:
            pending = [start.group("text").strip()]
            continue
        more = DOC_MORE.match(line)
        if more:
            if pending is not None:
                pending.append((more.group("text") or "").strip())
            continue
        key = KEY_LINE.match(line)
        if key:
            indent = len(key.group("indent"))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, key.group("key")))
            if pending is not None:
                found.append((".".join(k for _, k in stack), " ".join(p for p in pending if p)))
        pending = None
    return found


def type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def lookup(values: dict[str, Any], key: str) -> Any:
    node: Any = values
    for part in key.split("."):
        node = node[part]
    return node


def documented_values(text: str) -> list[Value]:
    values = yaml.safe_load(text)
    return [
        Value(key, type_of(lookup(values, key)), lookup(values, key), description)
        for key, description in documented_keys(text)
    ]


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def values_table(text: str) -> str:
    rows = [
        f"| `{v.key}` | {v.type} | `{cell(json.dumps(v.default, separators=(',', ':')))}` | {cell(v.description)} |"
        for v in documented_values(text)
    ]
    return "| Key | Type | Default | Description |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"


def readme(current: str, values_text: str) -> str:
    """The README with its values table rewritten from values.yaml."""
    new, count = BLOCK.subn(lambda m: m.group(1) + values_table(values_text) + m.group(3), current)
    if count != 1:
        raise ValueError(f"expected one values block in {README.name}, found {count}")
    return new


def main() -> int:
    README.write_text(
        readme(README.read_text(encoding="utf-8"), VALUES.read_text(encoding="utf-8")), encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
