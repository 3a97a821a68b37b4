"""Discovery and OpenAPI documents of the Kubernetes stand-in, as kubectl and kopf read them."""

from __future__ import annotations

from typing import Any

from tests.fixtures.kubernetes import AsyncKube


def _resources(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in doc["resources"]}


async def test_version(akube: AsyncKube) -> None:
    version = await akube.request("GET", "/version")
    assert (version["major"], version["minor"]) == ("1", "35")
    assert version["gitVersion"].startswith("v1.35.")


async def test_core_api_versions_and_resources(akube: AsyncKube) -> None:
    assert (await akube.request("GET", "/api"))["versions"] == ["v1"]
    core = _resources(await akube.request("GET", "/api/v1"))
    assert core["namespaces"]["namespaced"] is False and core["namespaces"]["shortNames"] == ["ns"]
    assert core["secrets"]["kind"] == "Secret" and core["secrets"]["namespaced"] is True
    assert core["configmaps"]["shortNames"] == ["cm"]
    assert core["events"]["singularName"] == "event"
    assert set(core["secrets"]["verbs"]) >= {"create", "delete", "get", "list", "patch", "update", "watch"}


async def test_api_groups(akube: AsyncKube) -> None:
    groups = {g["name"]: g for g in (await akube.request("GET", "/apis"))["groups"]}
    assert {"apiextensions.k8s.io", "coordination.k8s.io", "kopf.dev", "privatelink.clickhouse.dev"} <= set(
        groups
    )
    assert groups["privatelink.clickhouse.dev"]["preferredVersion"]["version"] == "v1alpha1"
    group = await akube.request("GET", "/apis/coordination.k8s.io")
    assert group["kind"] == "APIGroup" and group["versions"][0]["groupVersion"] == "coordination.k8s.io/v1"
    assert "leases" in _resources(await akube.request("GET", "/apis/coordination.k8s.io/v1"))
    crds = _resources(await akube.request("GET", "/apis/apiextensions.k8s.io/v1"))
    assert crds["customresourcedefinitions"]["shortNames"] == ["crd", "crds"]


async def test_kopf_peering_resources_are_preregistered(akube: AsyncKube) -> None:
    kopf = _resources(await akube.request("GET", "/apis/kopf.dev/v1"))
    assert kopf["clusterkopfpeerings"]["namespaced"] is False
    assert kopf["kopfpeerings"]["namespaced"] is True
    crd = await akube.request(
        "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/kopfpeerings.kopf.dev"
    )
    assert crd["spec"]["names"]["kind"] == "KopfPeering"


async def test_custom_resource_discovery_carries_names_and_status_subresource(akube: AsyncKube) -> None:
    resources = _resources(await akube.request("GET", "/apis/privatelink.clickhouse.dev/v1alpha1"))
    chpl = resources["clickhouseprivatelinks"]
    assert chpl["singularName"] == "clickhouseprivatelink"
    assert chpl["shortNames"] == ["chpl"] and chpl["categories"] == ["clickhouse"]
    assert chpl["kind"] == "ClickHousePrivateLink" and chpl["namespaced"] is True
    assert "watch" in chpl["verbs"]
    assert resources["clickhouseprivatelinks/status"]["verbs"] == ["get", "patch", "update"]


async def test_openapi_v3_declares_server_side_field_validation(akube: AsyncKube) -> None:
    index = await akube.request("GET", "/openapi/v3")
    url = index["paths"]["apis/privatelink.clickhouse.dev/v1alpha1"]["serverRelativeURL"]
    doc = await akube.request("GET", url)
    path = doc["paths"][
        "/apis/privatelink.clickhouse.dev/v1alpha1/namespaces/{namespace}/clickhouseprivatelinks/{name}"
    ]
    patch = path["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "privatelink.clickhouse.dev",
        "version": "v1alpha1",
        "kind": "ClickHousePrivateLink",
    }
    assert {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}} in patch["parameters"]
    schema = doc["components"]["schemas"]["dev.clickhouse.privatelink.v1alpha1.ClickHousePrivateLink"]
    assert schema["required"] == ["spec"]
    assert "api/v1" in index["paths"]


async def test_unknown_paths_are_404_status(akube: AsyncKube) -> None:
    response = await akube.http.get("/apis/nope.example.com/v1/things")
    assert response.status_code == 404
    assert response.json()["kind"] == "Status"
