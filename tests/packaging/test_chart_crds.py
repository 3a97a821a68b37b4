"""The chart manages the CRDs as cert-manager does: as templates rendered from files/crds/ (so that
`helm upgrade` updates them), kept on uninstall, with kopf's shared peering CRDs behind their own switch."""

from __future__ import annotations

from typing import Any

import pytest

from tests.packaging.support import (
    RELEASE,
    crd_files,
    helm,
    load_documents,
    of_kind,
    render,
    render_scenario,
)

OUR_CRDS = {
    "clickhouseprivatelinks.privatelink.clickhouse.dev",
    "clickhouseprivatelinkpolicies.privatelink.clickhouse.dev",  # the tenancy policy
}
PEERING_CRDS = {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
KEEP = "helm.sh/resource-policy"
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"


def crd_names(manifests: list[dict[str, Any]]) -> set[str]:
    return {m["metadata"]["name"] for m in of_kind(manifests, "CustomResourceDefinition")}


def repository_crds() -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["name"]: doc
        for path in crd_files()
        for doc in load_documents(path.read_text("utf-8"))
    }


def test_default_rendering_holds_every_crd_with_the_keep_annotation() -> None:
    crds = of_kind(render_scenario("default"), "CustomResourceDefinition")
    assert {c["metadata"]["name"] for c in crds} == OUR_CRDS | PEERING_CRDS
    for crd in crds:
        assert crd["metadata"]["annotations"][KEEP] == "keep"
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_rendered_crds_are_the_repository_crds_plus_helms_metadata() -> None:
    source = repository_crds()
    for crd in of_kind(render_scenario("default"), "CustomResourceDefinition"):
        original = source[crd["metadata"]["name"]]
        assert crd["spec"] == original["spec"]
        assert crd["apiVersion"] == original["apiVersion"]
        # The repository's own labels and annotations (ArgoCD's sync wave, server-side apply) survive.
        assert original["metadata"].get("labels", {}).items() <= crd["metadata"]["labels"].items()
        annotations = dict(original["metadata"].get("annotations", {}))
        rendered = dict(crd["metadata"]["annotations"])
        assert sync_options(annotations) <= sync_options(rendered)
        annotations.pop(SYNC_OPTIONS, None)
        assert annotations.items() <= rendered.items()


def sync_options(annotations: dict[str, str]) -> set[str]:
    """ArgoCD's sync options of an object: one annotation, comma-separated."""
    return {option for option in annotations.get(SYNC_OPTIONS, "").split(",") if option}


@pytest.mark.parametrize(
    "values",
    [{}, {"crds": {"kopfPeering": {"enabled": False}}}, {"watchNamespaces": ["team-a"]}],
    ids=["default", "without-peering-crds", "namespaced"],
)
def test_kept_crds_are_never_pruned_by_argocd(values: dict[str, Any]) -> None:
    # ArgoCD reads helm.sh/resource-policy: keep as "do not delete the Application's objects", not as "do not
    # prune": with `prune: true`, a CRD that leaves the rendering (crds.enabled=false) would be pruned, and
    # every ClickHousePrivateLink with it. Prune=false joins the CRD's own options (ServerSideApply=true).
    source = repository_crds()
    crds = of_kind(render(values), "CustomResourceDefinition")
    assert crds
    for crd in crds:
        options = sync_options(crd["metadata"]["annotations"])
        assert "Prune=false" in options, crd["metadata"]["name"]
        assert "Prune=true" not in options
        assert sync_options(source[crd["metadata"]["name"]]["metadata"].get("annotations", {})) <= options
        value = crd["metadata"]["annotations"][SYNC_OPTIONS]
        assert " " not in value and value.count(",") == len(options) - 1  # ArgoCD's syntax: a,b


def test_crds_not_kept_may_be_pruned() -> None:
    for crd in of_kind(render({"crds": {"keep": False}}), "CustomResourceDefinition"):
        assert "Prune=false" not in sync_options(crd["metadata"].get("annotations", {}))


def test_crds_can_be_left_out_entirely() -> None:
    assert crd_names(render({"crds": {"enabled": False}})) == set()


def test_keep_annotation_can_be_turned_off() -> None:
    crds = of_kind(render({"crds": {"keep": False}}), "CustomResourceDefinition")
    assert crds
    assert all(KEEP not in c["metadata"].get("annotations", {}) for c in crds)


def test_kopf_peering_crds_have_their_own_switch() -> None:
    manifests = render({"crds": {"kopfPeering": {"enabled": False}}})
    assert crd_names(manifests) == OUR_CRDS
    # The peering object itself is still made; its kind is served by whoever owns kopf's CRDs.
    assert len(of_kind(manifests, "ClusterKopfPeering")) == 1


def test_helm_template_without_include_crds_still_renders_the_crds() -> None:
    # A crds/ folder would only show with --include-crds (and would never be upgraded).
    result = helm("template", RELEASE)
    assert result.returncode == 0, result.stderr
    assert crd_names(load_documents(result.stdout)) == OUR_CRDS | PEERING_CRDS


@pytest.mark.parametrize("peering_served", [False, True], ids=["first-install", "kind-served"])
def test_peering_object_is_a_post_install_hook_only_while_its_kind_is_not_served(
    peering_served: bool,
) -> None:
    # Helm maps every object to a served kind before creating any: on a first install that also creates
    # kopf's CRDs, the peering object must wait for them (a hook). Once served, it is an ordinary object.
    args = ["--api-versions", "kopf.dev/v1/ClusterKopfPeering"] if peering_served else []
    result = helm("template", RELEASE, *args)
    assert result.returncode == 0, result.stderr
    (peering,) = of_kind(load_documents(result.stdout), "ClusterKopfPeering")
    annotations = peering["metadata"]["annotations"]
    if peering_served:
        assert "helm.sh/hook" not in annotations
    else:
        assert annotations["helm.sh/hook"] == "post-install"
        # Helm's ownership metadata, so that the next upgrade adopts it into the release.
        assert annotations["meta.helm.sh/release-name"] == RELEASE
        assert annotations["meta.helm.sh/release-namespace"] == peering_namespace_of_release()
        assert peering["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def peering_namespace_of_release() -> str:
    from tests.packaging.support import NAMESPACE

    return NAMESPACE


def test_peering_object_is_never_a_hook_when_the_chart_does_not_make_its_crd() -> None:
    for values in ({"crds": {"enabled": False}}, {"crds": {"kopfPeering": {"enabled": False}}}):
        (peering,) = of_kind(render(values), "ClusterKopfPeering")
        assert "helm.sh/hook" not in peering["metadata"]["annotations"]


def test_upgrade_from_chart_0_1_0_values_renders_the_crds_as_kept_templates() -> None:
    # Chart 0.1.0 had no crds.* values and installed the CRDs from crds/ (absent from `helm template`).
    # The same values rendered by this chart put every CRD into the release, with the keep annotation,
    # so `helm upgrade` now applies CRD changes, and never deletes the CRDs.
    old_values = {
        "watchNamespaces": ["team-a"],
        "clusterName": "prod-eu-1",
        "rbac": {"secretNames": ["clickhouse-api-key"]},
    }
    upgraded = render(old_values)
    crds = of_kind(upgraded, "CustomResourceDefinition")
    assert {c["metadata"]["name"] for c in crds} == OUR_CRDS | PEERING_CRDS
    assert all(c["metadata"]["annotations"][KEEP] == "keep" for c in crds)
    assert {(p["kind"], p["metadata"]["namespace"]) for p in of_kind(upgraded, "KopfPeering")} == {
        ("KopfPeering", "team-a")
    }


def test_the_argocd_applications_rendering_keeps_its_crds_from_pruning() -> None:
    # What ArgoCD renders for deploy/argocd/application.yaml (its values, with prune: true).
    import yaml

    from tests.packaging.support import ARGOCD

    app = yaml.safe_load((ARGOCD / "application.yaml").read_text(encoding="utf-8"))
    assert app["spec"]["syncPolicy"]["automated"]["prune"] is True
    crds = of_kind(render(app["spec"]["source"]["helm"]["valuesObject"]), "CustomResourceDefinition")
    assert {c["metadata"]["name"] for c in crds} == OUR_CRDS | PEERING_CRDS
    assert all("Prune=false" in sync_options(c["metadata"]["annotations"]) for c in crds)


def test_the_repositorys_crds_are_never_pruned_by_argocd_either() -> None:
    # ArgoCD may sync the kustomize base (deploy/, which installs crds/) as well as the chart.
    for name, crd in repository_crds().items():
        assert "Prune=false" in sync_options(crd["metadata"].get("annotations", {})), name
