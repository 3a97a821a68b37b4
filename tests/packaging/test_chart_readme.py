"""The chart README's values table is generated from the `# --` comments of values.yaml."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import yaml

from tests.packaging.support import CHART, ROOT, load_script

VALUES = CHART / "values.yaml"
README = CHART / "README.md"


def chart_readme() -> ModuleType:
    return load_script(ROOT / "scripts" / "chart_readme.py")


def leaf_paths(values: Any, prefix: str = "") -> set[str]:
    if isinstance(values, dict) and values:
        return {p for key, child in values.items() for p in leaf_paths(child, f"{prefix}{key}.")}
    return {prefix.rstrip(".")}


def test_readme_values_table_is_current() -> None:
    current = README.read_text(encoding="utf-8")
    assert current == chart_readme().readme(current, VALUES.read_text(encoding="utf-8")), (
        "run `make packaging` (scripts/chart_readme.py)"
    )


def test_every_value_is_documented_by_itself_or_an_enclosing_key() -> None:
    documented = {v.key for v in chart_readme().documented_values(VALUES.read_text(encoding="utf-8"))}
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    undocumented = {
        path
        for path in leaf_paths(values)
        if not any(path == key or path.startswith(key + ".") for key in documented)
    }
    assert undocumented == set()


def test_parser_reads_nested_keys_multi_line_comments_and_defaults() -> None:
    text = (
        "# Not documentation.\n"
        "top: 1\n"
        "outer:\n"
        "  # -- First line\n"
        "  # and second line.\n"
        "  inner: [a, b]\n"
        "  plain: x\n"
        "  # -- A map.\n"
        "  nested:\n"
        "    deep: true\n"
    )
    values = chart_readme().documented_values(text)
    assert [(v.key, v.type, v.default, v.description) for v in values] == [
        ("outer.inner", "list", ["a", "b"], "First line and second line."),
        ("outer.nested", "object", {"deep": True}, "A map."),
    ]
    table = chart_readme().values_table(text)
    assert '| `outer.inner` | list | `["a","b"]` | First line and second line. |' in table
    assert "top" not in table and "plain" not in table


def test_readme_table_names_the_new_values() -> None:
    text = README.read_text(encoding="utf-8")
    for key in (
        "enabled",
        "global.imagePullSecrets",
        "crds.enabled",
        "crds.keep",
        "crds.kopfPeering.enabled",
        "rbac.allowAllSecrets",
        "rbac.secretNamespaces",
        "rbac.aggregateToDefaultRoles",
        "podSecurityContext",
        "securityContext",
        "serviceAccount.automountServiceAccountToken",
        "commonLabels",
        "extraArgs",
        "envFrom",
        "extraVolumes",
        "extraVolumeMounts",
        "logLevel",
        "metrics.serviceMonitor.namespace",
        "metrics.serviceMonitor.relabelings",
    ):
        assert f"| `{key}` |" in text, key
