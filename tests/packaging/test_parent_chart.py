"""The chart as a dependency of a parent chart: the usual `<name>.enabled` condition and the parent's
`global` values, through `helm dependency update` on a file:// dependency and `helm template`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.packaging.support import (
    CHART,
    HELM,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    Manifest,
    kubernetes_errors,
    load_documents,
    of_kind,
    the_one,
)

NAME = "clickhouse-privatelink-operator"


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A parent chart that depends on this one, as platform teams write them."""
    root = tmp_path_factory.mktemp("parent") / "platform"
    (root / "templates").mkdir(parents=True)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    (root / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": "platform",
                "version": "1.0.0",
                "dependencies": [
                    {
                        "name": NAME,
                        "version": chart["version"],
                        "repository": f"file://{CHART}",
                        "condition": f"{NAME}.enabled",
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    (root / "values.yaml").write_text(
        yaml.safe_dump(
            {
                "global": {"imagePullSecrets": [{"name": "platform-registry"}], "storageClass": "gp3"},
                NAME: {"enabled": True, "clusterName": "prod-eu-1"},
            }
        ),
        encoding="utf-8",
    )
    (root / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: platform\ndata:\n  team: platform\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [str(HELM), "dependency", "update", str(root)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def helm_parent(parent: Path, command: str, values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    values_file = parent.parent / "override.json"
    values_file.write_text(json.dumps(values), encoding="utf-8")
    args = ["platform"] if command == "template" else ["--strict"]
    return subprocess.run(
        [str(HELM), command, *args, str(parent), "--namespace", NAMESPACE, "--values", str(values_file)],
        capture_output=True,
        text=True,
        check=False,
    )


def rendered(parent: Path, values: dict[str, Any]) -> list[Manifest]:
    result = helm_parent(parent, "template", values)
    assert result.returncode == 0, result.stderr
    return load_documents(result.stdout)


def test_enabled_subchart_renders_with_the_parents_global_pull_secrets(parent: Path) -> None:
    manifests = rendered(parent, {})
    pod_spec = the_one(manifests, "StatefulSet")["spec"]["template"]["spec"]
    assert pod_spec["imagePullSecrets"] == [{"name": "platform-registry"}]
    container = pod_spec["containers"][0]
    assert {"name": "CHPL_CLUSTER_NAME", "value": "prod-eu-1"} in container["env"]
    assert len(of_kind(manifests, "CustomResourceDefinition")) == 4  # ours two, kopf's peering two


def test_own_and_global_pull_secrets_are_joined_without_repeats(parent: Path) -> None:
    values = {
        "global": {"imagePullSecrets": ["platform-registry", {"name": "mirror"}]},
        NAME: {"imagePullSecrets": [{"name": "mirror"}]},
    }
    pod_spec = the_one(rendered(parent, values), "StatefulSet")["spec"]["template"]["spec"]
    assert pod_spec["imagePullSecrets"] == [{"name": "mirror"}, {"name": "platform-registry"}]


def test_disabled_subchart_renders_nothing_of_the_operator(parent: Path) -> None:
    manifests = rendered(parent, {NAME: {"enabled": False}})
    assert [m["kind"] for m in manifests] == ["ConfigMap"]


def test_parent_chart_lints_strictly(parent: Path) -> None:
    result = helm_parent(parent, "lint", {})
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_typo_in_the_subcharts_values_is_still_refused(parent: Path) -> None:
    result = helm_parent(parent, "template", {NAME: {"replicas": 2}})
    assert result.returncode != 0
    assert "replicas" in result.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_subchart_manifests_are_valid(parent: Path, version: str) -> None:
    errors = [error for m in rendered(parent, {}) for error in kubernetes_errors(m, version)]
    assert errors == []
