"""The plain-YAML install, deploy/ as a kustomize base: built from crds/ itself and from the chart rendered
with its default values, so that neither the CRDs nor the operator's manifests have a second definition."""

from __future__ import annotations

import copy
from types import ModuleType

import pytest

from tests.packaging.support import (
    DEPLOY,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    ROOT,
    Manifest,
    crd_files,
    kubernetes_errors,
    kustomize_build,
    load_documents,
    load_script,
    of_kind,
    render_scenario,
    the_one,
)

# Cluster-scoped kinds in the base; everything else must land in the operator's namespace.
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterKopfPeering",
}


def render_packaging() -> ModuleType:
    return load_script(ROOT / "scripts" / "render_packaging.py")


def built() -> list[Manifest]:
    return load_documents(kustomize_build())


def without_labels(manifest: Manifest, *labels: str) -> Manifest:
    stripped = copy.deepcopy(manifest)
    for label in labels:
        stripped["metadata"].get("labels", {}).pop(label, None)
    if stripped["metadata"].get("labels") == {}:
        del stripped["metadata"]["labels"]
    return stripped


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kustomize_base_builds_into_objects_valid_for_each_supported_kubernetes_version(version: str) -> None:
    errors = [error for manifest in built() for error in kubernetes_errors(manifest, version)]
    assert errors == []


def test_operator_manifest_is_the_chart_rendered_with_default_values() -> None:
    committed = (DEPLOY / "operator.yaml").read_text(encoding="utf-8")
    assert committed == render_packaging().deploy_operator_manifest(), "run `make packaging`"


def test_kustomize_base_installs_the_repository_crds_unchanged() -> None:
    from_repository = [
        doc for path in crd_files() for doc in load_documents(path.read_text(encoding="utf-8"))
    ]
    from_kustomize = [
        without_labels(m, "app.kubernetes.io/managed-by")
        for m in of_kind(built(), "CustomResourceDefinition")
    ]
    by_name = {m["metadata"]["name"]: m for m in from_kustomize}
    assert sorted(by_name) == sorted(doc["metadata"]["name"] for doc in from_repository)
    for doc in from_repository:
        assert by_name[doc["metadata"]["name"]] == doc


def test_kustomize_base_runs_the_operator_as_the_chart_does_by_default() -> None:
    chart = {
        (m["kind"], m["metadata"]["name"])
        for m in render_scenario("default")
        if m["metadata"].get("annotations", {}).get("helm.sh/hook") != "test"  # `helm test`'s, Helm's only
    }
    base = {(m["kind"], m["metadata"]["name"]) for m in built()}
    assert base == chart | {("Namespace", NAMESPACE)} | {
        ("CustomResourceDefinition", m["metadata"]["name"])
        for m in of_kind(built(), "CustomResourceDefinition")
    }
    statefulset = the_one(built(), "StatefulSet")
    assert statefulset["spec"]["replicas"] == 2
    assert "--all-namespaces" in statefulset["spec"]["template"]["spec"]["containers"][0]["args"]


def test_every_namespaced_object_lands_in_the_operator_namespace() -> None:
    for manifest in built():
        if manifest["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in manifest["metadata"], manifest["kind"]
        else:
            assert manifest["metadata"]["namespace"] == NAMESPACE, manifest["kind"]
    (binding,) = of_kind(built(), "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == NAMESPACE


def test_operator_namespace_enforces_pod_security_restricted() -> None:
    labels = the_one(built(), "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_plain_yaml_carries_no_helm_labels() -> None:
    assert "helm.sh/chart" not in kustomize_build()
    assert "managed-by: Helm" not in kustomize_build()
