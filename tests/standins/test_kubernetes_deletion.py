"""Deletion in the Kubernetes stand-in: finalizers, DeleteOptions, namespaces, CRDs."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.kubernetes import JSON_PATCH, MERGE_PATCH, AsyncKube, KubeApiError
from tests.standins.kube_samples import chpl, cr_path, sample_crd, widget

FINALIZER = "privatelink.clickhouse.dev/finalizer"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


async def _with_finalizer(akube: AsyncKube, name: str, namespace: str = "default") -> dict:
    body = chpl(name)
    body["metadata"]["finalizers"] = [FINALIZER]
    return dict(await akube.request("POST", cr_path(namespace), body=body))


async def test_delete_without_finalizers_removes_the_object(akube: AsyncKube) -> None:
    created = await akube.request("POST", cr_path("default"), body=chpl("gone"))
    response = await akube.http.delete(cr_path("default", "gone"))
    # As kube-apiserver answers for a custom resource deleted at once: a Success Status, not the object.
    assert response.status_code == 200
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": "gone",
            "group": "privatelink.clickhouse.dev",
            "kind": "clickhouseprivatelinks",
            "uid": created["metadata"]["uid"],
        },
    }
    with pytest.raises(KubeApiError) as err:
        await akube.request("GET", cr_path("default", "gone"))
    assert err.value.status == 404


async def test_delete_with_finalizers_only_marks_the_object(akube: AsyncKube) -> None:
    created = await _with_finalizer(akube, "held")
    response = await akube.http.delete(cr_path("default", "held"))
    assert response.status_code == 200  # not 202: that is only for orphanDependents=false
    marked = response.json()
    meta = marked["metadata"]
    assert meta["deletionTimestamp"].endswith("Z")
    assert meta["deletionGracePeriodSeconds"] == 0
    assert meta["finalizers"] == [FINALIZER]
    assert meta["generation"] == created["metadata"]["generation"] + 1
    still = await akube.request("GET", cr_path("default", "held"))
    assert still["metadata"]["deletionTimestamp"] == meta["deletionTimestamp"]


async def test_delete_held_by_finalizers_is_202_only_when_orphan_dependents_is_false(
    akube: AsyncKube,
) -> None:
    for name, options, code in (
        ("again", None, 200),
        ("orphan", {"orphanDependents": False}, 202),
        ("foreground", {"propagationPolicy": "Foreground"}, 200),
    ):
        await _with_finalizer(akube, name)
        content = (
            None if options is None else json.dumps({"kind": "DeleteOptions", "apiVersion": "v1", **options})
        )
        response = await akube.http.request(
            "DELETE", cr_path("default", name), content=content, headers={"Content-Type": "application/json"}
        )
        assert (name, response.status_code) == (name, code)
        assert response.json()["metadata"]["deletionTimestamp"]
    again = await akube.http.delete(cr_path("default", "again"))  # already being deleted
    assert again.status_code == 200 and again.json()["metadata"]["name"] == "again"


async def test_removing_the_last_finalizer_deletes_the_object(akube: AsyncKube) -> None:
    created = await _with_finalizer(akube, "held")
    await akube.request("DELETE", cr_path("default", "held"))
    since = created["metadata"]["resourceVersion"]
    await akube.request("PATCH", cr_path("default", "held"), body={"metadata": {"finalizers": None}},
                        content_type=MERGE_PATCH)  # fmt: skip
    with pytest.raises(KubeApiError) as err:
        await akube.request("GET", cr_path("default", "held"))
    assert err.value.status == 404
    events = await akube.watch(cr_path("default"), {"resourceVersion": since}, until=2)
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert events[0]["object"]["metadata"]["deletionTimestamp"]
    assert "finalizers" not in events[1]["object"]["metadata"]


async def test_no_new_finalizers_on_an_object_being_deleted(akube: AsyncKube) -> None:
    await _with_finalizer(akube, "held")
    await akube.request("DELETE", cr_path("default", "held"))
    ops = [{"op": "add", "path": "/metadata/finalizers/-", "value": "other.example.com/f"}]
    with pytest.raises(KubeApiError) as err:
        await akube.request("PATCH", cr_path("default", "held"), body=ops, content_type=JSON_PATCH)
    assert err.value.status == 422
    assert "no new finalizers can be added if the object is being deleted" in err.value.body["message"]


async def test_delete_preconditions_must_match(akube: AsyncKube) -> None:
    created = await akube.request("POST", cr_path("default"), body=chpl("pre"))
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "not-the-uid"}}
    with pytest.raises(KubeApiError) as err:
        await akube.request("DELETE", cr_path("default", "pre"), body=options)
    assert err.value.status == 409
    options["preconditions"] = {
        "uid": created["metadata"]["uid"],
        "resourceVersion": created["metadata"]["resourceVersion"],
    }
    options["propagationPolicy"] = "Foreground"
    await akube.request("DELETE", cr_path("default", "pre"), body=options)


async def test_builtin_delete_answers_a_success_status(akube: AsyncKube) -> None:
    await akube.request("POST", "/api/v1/namespaces/default/configmaps", body={"metadata": {"name": "c"}})
    answer = await akube.request("DELETE", "/api/v1/namespaces/default/configmaps/c")
    assert answer["kind"] == "Status" and answer["status"] == "Success"
    assert answer["details"]["name"] == "c"


async def test_delete_collection_by_label(akube: AsyncKube) -> None:
    configmaps = "/api/v1/namespaces/default/configmaps"
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        await akube.request("POST", configmaps, body={"metadata": {"name": name, "labels": {"team": team}}})
    await akube.request("DELETE", configmaps, params={"labelSelector": "team=x"})
    left = await akube.request("GET", configmaps)
    assert [i["metadata"]["name"] for i in left["items"]] == ["c"]


async def test_deleting_a_namespace_deletes_its_objects_respecting_finalizers(akube: AsyncKube) -> None:
    await akube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "doomed"}})
    await akube.request("POST", "/api/v1/namespaces/doomed/secrets", body={"metadata": {"name": "s"}})
    await _with_finalizer(akube, "held", "doomed")
    terminating = await akube.request("DELETE", "/api/v1/namespaces/doomed")
    assert terminating["status"]["phase"] == "Terminating"
    secrets = await akube.request("GET", "/api/v1/namespaces/doomed/secrets")
    assert secrets["items"] == []
    held = await akube.request("GET", cr_path("doomed", "held"))
    assert held["metadata"]["deletionTimestamp"]
    with pytest.raises(KubeApiError) as err:
        await akube.request("POST", "/api/v1/namespaces/doomed/secrets", body={"metadata": {"name": "late"}})
    assert err.value.status == 403
    await akube.request("PATCH", cr_path("doomed", "held"), body={"metadata": {"finalizers": []}},
                        content_type=MERGE_PATCH)  # fmt: skip
    with pytest.raises(KubeApiError) as err:
        await akube.request("GET", "/api/v1/namespaces/doomed")
    assert err.value.status == 404


async def test_crd_registered_at_run_time_is_served_and_established(akube: AsyncKube) -> None:
    crd = await akube.request("POST", CRDS, body=sample_crd())
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True" and conditions["NamesAccepted"] == "True"
    assert crd["status"]["acceptedNames"]["kind"] == "Widget"
    assert crd["status"]["acceptedNames"]["listKind"] == "WidgetList"
    resources = await akube.request("GET", "/apis/example.com/v1")
    assert [r["name"] for r in resources["resources"]] == ["widgets"]
    created = await akube.request("POST", "/apis/example.com/v1/namespaces/default/widgets",
                                  body=widget("w", spec={"size": 3}))  # fmt: skip
    assert created["kind"] == "Widget" and created["spec"] == {"size": 3}


async def test_deleting_a_crd_stops_serving_it_and_deletes_its_objects(akube: AsyncKube) -> None:
    await akube.request("POST", CRDS, body=sample_crd())
    widgets = "/apis/example.com/v1/namespaces/default/widgets"
    await akube.request("POST", widgets, body=widget("w"))
    await akube.request("DELETE", f"{CRDS}/widgets.example.com")
    with pytest.raises(KubeApiError) as err:
        await akube.request("GET", widgets)
    assert err.value.status == 404
    with pytest.raises(KubeApiError):
        await akube.request("GET", f"{CRDS}/widgets.example.com")
    groups = await akube.request("GET", "/apis")
    assert "example.com" not in [g["name"] for g in groups["groups"]]


async def test_crd_deletion_waits_for_finalizers_of_its_objects(akube: AsyncKube) -> None:
    await akube.request("POST", CRDS, body=sample_crd())
    widgets = "/apis/example.com/v1/namespaces/default/widgets"
    await akube.request("POST", widgets, body=widget("w", metadata={"finalizers": ["example.com/f"]}))
    await akube.request("DELETE", f"{CRDS}/widgets.example.com")
    crd = await akube.request("GET", f"{CRDS}/widgets.example.com")
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Terminating"] == "True"
    with pytest.raises(KubeApiError) as err:
        await akube.request("POST", widgets, body=widget("new"))
    assert err.value.status == 405
    await akube.request(
        "PATCH", f"{widgets}/w", body={"metadata": {"finalizers": None}}, content_type=MERGE_PATCH
    )
    with pytest.raises(KubeApiError) as err:
        await akube.request("GET", f"{CRDS}/widgets.example.com")
    assert err.value.status == 404


async def test_cluster_scoped_custom_resources(akube: AsyncKube) -> None:
    peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "p"},
               "status": {"some-pod": {"priority": 0}}}  # fmt: skip
    created = await akube.request("POST", "/apis/kopf.dev/v1/clusterkopfpeerings", body=peering)
    assert "namespace" not in created["metadata"]
    assert created["status"] == {"some-pod": {"priority": 0}}
