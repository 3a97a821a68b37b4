"""Upgrading a 0.1.0 release: what `helm upgrade --reuse-values` would render, and the documented command.

Helm's `--reuse-values` upgrades with the old release's values coalesced with the OLD chart's defaults, and
drops the new chart's defaults altogether (pkg/action/upgrade.go: `chart.Values = {}`): every value that is
new in this chart is simply absent. `--reset-then-reuse-values` starts from the new chart's defaults and
applies only what the user had set. Both are rendered here the way Helm computes them.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.packaging.support import (
    CHART,
    DOCS,
    HELM,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    RELEASE,
    ROLE_ARN,
    Manifest,
    assert_restricted,
    kubernetes_errors,
    load_documents,
    of_kind,
    operator_container,
    the_one,
)

OLD_DEFAULTS: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parent / "testdata" / "chart-0.1.0-values.yaml").read_text(encoding="utf-8")
)
# What a 0.1.0 user typically set (helm get values): IRSA, a cluster name, one more Secret name.
OLD_USER_VALUES: dict[str, Any] = {
    "clusterName": "prod-eu-1",
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": ROLE_ARN}},
    "rbac": {"secretNames": ["clickhouse-api-key", "reporting-key"]},
}
UPGRADING = DOCS / "upgrading.md"


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of two value maps: override wins, maps merge key by key."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def documented_upgrade() -> list[str]:
    """The `helm upgrade` command of upgrading.md's 0.1.0 section, as arguments (continuations joined)."""
    text = UPGRADING.read_text(encoding="utf-8").replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.strip().startswith("helm upgrade $RELEASE")]
    return shlex.split(line)


def set_flags(args: list[str]) -> dict[str, Any]:
    """The --set flags of a command as a values map (true/false as booleans, like Helm)."""
    values: dict[str, Any] = {}
    for flag, value in itertools.pairwise(args):
        if flag != "--set":
            continue
        path, _, raw = value.partition("=")
        leaf: Any = {"true": True, "false": False}.get(raw, raw)
        for key in reversed(path.split(".")):
            leaf = {key: leaf}
        values = merged(values, leaf)
    return values


def render_with(
    tmp_path: Path, values: dict[str, Any], *, chart_defaults: bool
) -> subprocess.CompletedProcess[str]:
    """helm template of this chart with these values; without the chart's own defaults when asked."""
    chart = CHART
    if not chart_defaults:
        chart = tmp_path / "chart"
        shutil.copytree(CHART, chart)
        (chart / "values.yaml").write_text("{}\n", encoding="utf-8")
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values), encoding="utf-8")
    return subprocess.run(
        [str(HELM), "template", RELEASE, str(chart), "--namespace", NAMESPACE, "--values", str(values_file)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_reuse_values_from_0_1_0_would_strip_the_new_defaults(tmp_path: Path) -> None:
    # What `helm upgrade --reuse-values --set crds...` (the former advice) computes: the old chart's
    # defaults and the user's values, the new chart's defaults gone. It renders, and loses: the pods' security
    # contexts (refused in a namespace enforcing restricted Pod Security), the aggregated roles, and the
    # allowed ClickHouse API URLs (every resource would be refused with ApiUrlNotAllowed).
    flags = {"crds": {"enabled": True, "keep": True, "kopfPeering": {"enabled": True}}}
    values = merged(merged(OLD_DEFAULTS, OLD_USER_VALUES), flags)
    result = render_with(tmp_path, values, chart_defaults=False)
    assert result.returncode == 0, result.stderr
    manifests = load_documents(result.stdout)
    pod_spec = the_one(manifests, "StatefulSet")["spec"]["template"]["spec"]
    assert "securityContext" not in pod_spec
    assert "securityContext" not in operator_container(manifests)
    assert {r["metadata"]["name"] for r in of_kind(manifests, "ClusterRole")} == {RELEASE}
    env = {e["name"]: e.get("value") for e in operator_container(manifests)["env"]}
    assert env["CHPL_CLICKHOUSE_API_URLS"] == ""


def test_upgrading_md_documents_reset_then_reuse_values_not_reuse_values() -> None:
    args = documented_upgrade()
    assert "--reset-then-reuse-values" in args
    assert "--reuse-values" not in args
    text = UPGRADING.read_text(encoding="utf-8")
    # --reuse-values is named only to warn against it.
    for line in text.splitlines():
        if "--reuse-values" in line and not line.lstrip().startswith(("#", "-", ">")):
            assert re.search(r"\b(not|never|drops?|strips?)\b", line, re.IGNORECASE), line


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    """The documented command on a 0.1.0 release: the new chart's defaults, the user's old values, --set."""
    values = merged(OLD_USER_VALUES, set_flags(documented_upgrade()))
    result = render_with(tmp_path_factory.mktemp("upgrade"), values, chart_defaults=True)
    assert result.returncode == 0, result.stderr
    return load_documents(result.stdout)


def test_the_documented_upgrade_keeps_pod_security_restricted(upgraded: list[Manifest]) -> None:
    assert_restricted(the_one(upgraded, "StatefulSet")["spec"]["template"]["spec"])


def test_the_documented_upgrade_keeps_the_users_values_and_the_new_roles(upgraded: list[Manifest]) -> None:
    env = {e["name"]: e.get("value") for e in operator_container(upgraded)["env"]}
    assert env["CHPL_CLUSTER_NAME"] == "prod-eu-1"
    assert env["CHPL_CLICKHOUSE_API_URLS"] == "https://api.clickhouse.cloud"
    account = the_one(upgraded, "ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE_ARN
    roles = {r["metadata"]["name"] for r in of_kind(upgraded, "ClusterRole")}
    assert {f"{RELEASE}-view", f"{RELEASE}-edit"} <= roles
    assert len(of_kind(upgraded, "CustomResourceDefinition")) == 4  # ours two, kopf's peering two


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_documented_upgrade_renders_valid_manifests(upgraded: list[Manifest], version: str) -> None:
    assert [error for manifest in upgraded for error in kubernetes_errors(manifest, version)] == []
