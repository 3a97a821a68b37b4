"""deploy/samples: resources a user can apply as they are (after replacing the placeholders)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.packaging.support import (
    ARGOCD,
    DEPLOY,
    KUBERNETES_VERSIONS,
    Manifest,
    custom_resource_errors,
    kubernetes_errors,
    load_documents,
)

SAMPLES = DEPLOY / "samples"


def sample_links() -> list[Manifest]:
    return [
        doc
        for path in sorted(SAMPLES.glob("*.yaml"))
        for doc in load_documents(path.read_text(encoding="utf-8"))
        if doc["kind"] == "ClickHousePrivateLink"
    ]


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_sample_passes_the_schema_the_api_server_applies(path: Path) -> None:
    for doc in load_documents(path.read_text(encoding="utf-8")):
        for version in KUBERNETES_VERSIONS:
            assert kubernetes_errors(doc, version) == []


def test_samples_cover_a_service_by_id_with_route53_and_one_by_name_without_dns() -> None:
    shapes = {
        ("serviceId" in link["spec"]["clickhouse"], link["spec"].get("dns", {}).get("mode", "Route53"))
        for link in sample_links()
    }
    assert shapes == {(True, "Route53"), (False, "None")}


def test_sample_links_reference_the_sample_secret_in_their_own_namespace() -> None:
    (secret,) = [d for d in load_documents((SAMPLES / "secret.yaml").read_text()) if d["kind"] == "Secret"]
    for link in sample_links():
        assert link["metadata"]["namespace"] == secret["metadata"]["namespace"]
        assert link["spec"]["clickhouse"]["credentialsSecretRef"]["name"] == secret["metadata"]["name"]


def test_sample_secret_holds_placeholders_clearly_marked_as_such() -> None:
    text = (SAMPLES / "secret.yaml").read_text(encoding="utf-8")
    (secret,) = load_documents(text)
    assert set(secret["stringData"]) == {"keyId", "keySecret"}
    assert all(value.startswith("REPLACE_WITH_") for value in secret["stringData"].values())
    assert "PLACEHOLDERS" in text


def test_schema_check_catches_what_the_api_server_would_reject() -> None:
    # The check used above is not vacuous: each of these is refused by the CRD (or a typo it would drop).
    (link, *_) = sample_links()
    both_service_keys = {
        **link,
        "spec": {**link["spec"], "clickhouse": {**link["spec"]["clickhouse"], "serviceName": "x"}},
    }
    assert "exactly one of serviceId or serviceName is required" in " ".join(
        custom_resource_errors(both_service_keys)
    )
    bad_vpc = {**link, "spec": {**link["spec"], "aws": {**link["spec"]["aws"], "vpcId": "vpc-XYZ"}}}
    assert custom_resource_errors(bad_vpc) != []
    typo = {**link, "spec": {**link["spec"], "deletionPolicies": "Retain"}}
    assert custom_resource_errors(typo) != []


@pytest.mark.parametrize("path", sorted((ARGOCD / "testdata").glob("*.yaml")), ids=lambda p: p.name)
def test_argocd_health_inputs_are_objects_the_api_server_would_hold(path: Path) -> None:
    (obj,) = load_documents(path.read_text(encoding="utf-8"))
    assert custom_resource_errors(obj) == []
