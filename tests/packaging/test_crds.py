"""One source of truth for the CRDs: crds/ at the repository root. The chart carries byte-identical
copies in files/crds/ (`make packaging`), rendered by templates/crds.yaml; the kustomize base uses crds/
itself."""

from __future__ import annotations

import pytest
import yaml
from kopf._cogs.structs import references

from tests.packaging.support import (
    CHART,
    CRDS,
    KUBERNETES_VERSIONS,
    crd_files,
    kubernetes_errors,
    load_documents,
)


def test_chart_crds_are_byte_identical_copies_of_the_repository_crds() -> None:
    copies = CHART / "files" / "crds"
    assert sorted(p.name for p in copies.iterdir()) == [p.name for p in crd_files()], "run `make packaging`"
    for source in crd_files():
        copy = copies / source.name
        assert copy.read_bytes() == source.read_bytes(), f"{copy} differs from {source}: run `make packaging`"


def test_chart_has_no_crds_folder_that_helm_upgrade_would_never_update() -> None:
    assert not (CHART / "crds").exists()


def test_crds_kustomization_lists_every_crd_file() -> None:
    kustomization = yaml.safe_load((CRDS / "kustomization.yaml").read_text(encoding="utf-8"))
    assert sorted(kustomization["resources"]) == [p.name for p in crd_files()]


def test_crd_files_hold_only_crds() -> None:
    for path in crd_files():
        kinds = {doc["kind"] for doc in load_documents(path.read_text(encoding="utf-8"))}
        assert kinds == {"CustomResourceDefinition"}, path


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_crds_are_valid_for_each_supported_kubernetes_version(version: str) -> None:
    errors = [
        error
        for path in crd_files()
        for doc in load_documents(path.read_text(encoding="utf-8"))
        for error in kubernetes_errors(doc, version)
    ]
    assert errors == []


@pytest.mark.parametrize(
    ("selector", "namespaced"),
    [(references.CLUSTER_PEERINGS_K, False), (references.NAMESPACED_PEERINGS_K, True)],
)
def test_kopf_peering_crds_serve_what_kopf_looks_for(selector: references.Selector, namespaced: bool) -> None:
    crds = load_documents((CRDS / "kopf-peering.yaml").read_text(encoding="utf-8"))
    served = [
        (crd, version)
        for crd in crds
        for version in crd["spec"]["versions"]
        if selector.check(
            references.Resource(
                group=crd["spec"]["group"],
                version=version["name"],
                plural=crd["spec"]["names"]["plural"],
                kind=crd["spec"]["names"]["kind"],
                namespaced=crd["spec"]["scope"] == "Namespaced",
            )
        )
    ]
    assert len(served) == 1, f"kopf's {selector} must match exactly one served version"
    ((crd, version),) = served
    assert (crd["spec"]["scope"] == "Namespaced") is namespaced
    assert version["served"] and version["storage"]
    # kopf writes each peer's keep-alive under status.<identity>: the schema must keep those fields.
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
