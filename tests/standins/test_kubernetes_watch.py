"""Watch streams and selectors of the Kubernetes stand-in."""

from __future__ import annotations

import asyncio
import json

import pytest

from clickhouse_privatelink_testkit.standins.kubernetes.errors import ApiError
from clickhouse_privatelink_testkit.standins.kubernetes.selectors import labels_match, parse_label_selector
from clickhouse_privatelink_testkit.standins.kubernetes.server import KubernetesEmulator
from tests.fixtures.kubernetes import MERGE_PATCH, AsyncKube, KubeApiError
from tests.standins.kube_samples import API_VERSION, chpl, cr_path, sample_crd

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


async def _rv(akube: AsyncKube, path: str = CONFIGMAPS) -> str:
    return str((await akube.request("GET", path))["metadata"]["resourceVersion"])


async def test_watch_replays_events_after_the_resource_version(akube: AsyncKube) -> None:
    since = await _rv(akube)
    await akube.request("POST", CONFIGMAPS, body={"metadata": {"name": "a"}})
    await akube.request("PATCH", f"{CONFIGMAPS}/a", body={"data": {"k": "v"}}, content_type=MERGE_PATCH)
    await akube.request("DELETE", f"{CONFIGMAPS}/a")
    events = await akube.watch(CONFIGMAPS, {"resourceVersion": since}, until=3)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(since)
    assert events[0]["object"]["kind"] == "ConfigMap" and events[0]["object"]["apiVersion"] == "v1"


async def test_watch_streams_live_events(akube: AsyncKube) -> None:
    since = await _rv(akube)
    watching = asyncio.ensure_future(akube.watch(CONFIGMAPS, {"resourceVersion": since}, until=2))
    await asyncio.sleep(0)  # let the watch connect; events are replayed from `since` anyway
    await akube.request("POST", CONFIGMAPS, body={"metadata": {"name": "live"}})
    await akube.request("DELETE", f"{CONFIGMAPS}/live")
    events = await watching
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "live"),
        ("DELETED", "live"),
    ]


async def test_watch_without_resource_version_starts_with_the_current_state(akube: AsyncKube) -> None:
    await akube.request("POST", CONFIGMAPS, body={"metadata": {"name": "existing"}})
    events = await akube.watch(CONFIGMAPS, {}, until=1)
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "existing"


async def test_watch_with_send_initial_events_ends_them_with_a_bookmark(akube: AsyncKube) -> None:
    await akube.request("POST", CONFIGMAPS, body={"metadata": {"name": "existing"}})
    params = {
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
    }
    events = await akube.watch(CONFIGMAPS, params, until=2)
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_watch_from_a_compacted_resource_version_is_410_gone(akube: AsyncKube) -> None:
    since = await _rv(akube)
    for i in range(60):  # the test emulator keeps 50 events per resource
        await akube.request("POST", CONFIGMAPS, body={"metadata": {"name": f"c{i}"}})
    events = await akube.watch(CONFIGMAPS, {"resourceVersion": since})
    assert len(events) == 1
    assert events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"
    # The second number is the oldest version a watch may still start from.
    oldest = int(status["message"].rpartition("(")[2].rstrip(")"))
    assert status["message"] == f"too old resource version: {since} ({oldest})" and oldest > int(since)
    assert (await akube.watch(CONFIGMAPS, {"resourceVersion": str(oldest)}, until=1))[0]["type"] == "ADDED"


async def test_watch_from_before_its_type_existed_is_410_gone(akube: AsyncKube) -> None:
    since = await _rv(akube)
    await akube.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=sample_crd())
    registered = await _rv(akube)  # a new type's watch window starts when it is served, as a watch cache's
    widgets = "/apis/example.com/v1/namespaces/default/widgets"
    events = await akube.watch(widgets, {"resourceVersion": since})
    assert events == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {since} ({registered})",
                "reason": "Expired",
                "code": 410,
            },
        }
    ]
    assert await akube.watch(widgets, {"resourceVersion": registered, "timeoutSeconds": "1"}, within=5) == []


async def test_a_watch_timing_out_sends_a_bookmark_two_seconds_before() -> None:
    emulator = KubernetesEmulator(bookmark_interval=60.0)  # kube-apiserver's: about a minute
    await emulator.start()
    client = AsyncKube(emulator)
    try:
        since = await _rv(client)
        params = {"resourceVersion": since, "allowWatchBookmarks": "true", "watch": "true"}
        loop = asyncio.get_running_loop()
        started = loop.time()
        arrivals: list[tuple[str, float]] = []
        async with client.http.stream(
            "GET", CONFIGMAPS, params={**params, "timeoutSeconds": "3"}
        ) as response:
            async for line in response.aiter_lines():
                if line.strip():
                    arrivals.append((json.loads(line)["type"], loop.time() - started))
        ended = loop.time() - started
        # One bookmark at the timeout (3 s) less 2 s, then the stream ends at the timeout.
        assert [kind for kind, _ in arrivals] == ["BOOKMARK"]
        assert 0.8 <= arrivals[0][1] < 2.5 and 2.9 <= ended < 5
        # A watch of 2 s or less has no time left for one.
        assert await client.watch(CONFIGMAPS, {**params, "timeoutSeconds": "2"}, within=10) == []
    finally:
        await client.close()
        await emulator.stop()


async def test_watch_sends_periodic_bookmarks(akube: AsyncKube) -> None:
    since = await _rv(akube)
    events = await akube.watch(CONFIGMAPS, {"resourceVersion": since, "allowWatchBookmarks": "true"}, until=2)
    assert [e["type"] for e in events] == ["BOOKMARK", "BOOKMARK"]
    assert events[0]["object"]["kind"] == "ConfigMap"
    assert int(events[0]["object"]["metadata"]["resourceVersion"]) >= int(since)


async def test_watch_ends_after_timeout_seconds(akube: AsyncKube) -> None:
    since = await _rv(akube)
    loop = asyncio.get_running_loop()
    started = loop.time()
    events = await akube.watch(CONFIGMAPS, {"resourceVersion": since, "timeoutSeconds": "1"}, within=5)
    assert events == []
    assert 0.9 <= loop.time() - started < 4


async def test_watch_label_selector_turns_leaving_objects_into_deleted(akube: AsyncKube) -> None:
    since = await _rv(akube)
    await akube.request("POST", CONFIGMAPS, body={"metadata": {"name": "a", "labels": {"app": "x"}}})
    await akube.request("POST", CONFIGMAPS, body={"metadata": {"name": "b", "labels": {"app": "y"}}})
    await akube.request(
        "PATCH", f"{CONFIGMAPS}/a", body={"metadata": {"labels": {"app": "z"}}}, content_type=MERGE_PATCH
    )
    await akube.request(
        "PATCH", f"{CONFIGMAPS}/b", body={"metadata": {"labels": {"app": "x"}}}, content_type=MERGE_PATCH
    )
    events = await akube.watch(CONFIGMAPS, {"resourceVersion": since, "labelSelector": "app=x"}, until=3)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("DELETED", "a"),
        ("ADDED", "b"),
    ]


async def test_watch_field_selector_on_name(akube: AsyncKube) -> None:
    since = await _rv(akube)
    await akube.request("POST", CONFIGMAPS, body={"metadata": {"name": "other"}})
    await akube.request("POST", CONFIGMAPS, body={"metadata": {"name": "mine"}})
    events = await akube.watch(
        CONFIGMAPS, {"resourceVersion": since, "fieldSelector": "metadata.name=mine"}, until=1
    )
    assert events[0]["object"]["metadata"]["name"] == "mine"


async def test_cluster_wide_watch_sees_all_namespaces(akube: AsyncKube) -> None:
    since = await _rv(akube, cr_path("default"))
    await akube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "other"}})
    await akube.request("POST", cr_path("default"), body=chpl("one"))
    await akube.request("POST", cr_path("other"), body=chpl("two"))
    events = await akube.watch(
        f"/apis/{API_VERSION}/clickhouseprivatelinks", {"resourceVersion": since}, until=2
    )
    assert [e["object"]["metadata"]["namespace"] for e in events] == ["default", "other"]


async def test_namespaced_watch_sees_only_its_namespace(akube: AsyncKube) -> None:
    since = await _rv(akube, cr_path("default"))
    await akube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "other"}})
    await akube.request("POST", cr_path("other"), body=chpl("two"))
    await akube.request("POST", cr_path("default"), body=chpl("one"))
    events = await akube.watch(cr_path("default"), {"resourceVersion": since}, until=1)
    assert events[0]["object"]["metadata"]["name"] == "one"


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=x", {"a"}),
        ("app==x", {"a"}),
        ("app!=x", {"b", "c"}),
        ("app in (x, y)", {"a", "b"}),
        ("app notin (x)", {"b", "c"}),
        ("app", {"a", "b"}),
        ("!app", {"c"}),
        ("app in (x,y),tier=web", {"a"}),
        ("", {"a", "b", "c"}),
    ],
)
async def test_label_selectors_filter_lists(akube: AsyncKube, selector: str, expected: set[str]) -> None:
    labels = {"a": {"app": "x", "tier": "web"}, "b": {"app": "y"}, "c": {}}
    for name, value in labels.items():
        await akube.request("POST", CONFIGMAPS, body={"metadata": {"name": name, "labels": value}})
    listed = await akube.request("GET", CONFIGMAPS, params={"labelSelector": selector})
    assert {i["metadata"]["name"] for i in listed["items"]} == expected


def test_label_selector_parser_rejects_garbage() -> None:
    with pytest.raises(ApiError):
        parse_label_selector("app in x")
    assert labels_match(parse_label_selector("a.b/c-d=e_f"), {"metadata": {"labels": {"a.b/c-d": "e_f"}}})


async def test_unsupported_field_selector_is_a_bad_request(akube: AsyncKube) -> None:
    with pytest.raises(KubeApiError) as err:
        await akube.request("GET", CONFIGMAPS, params={"fieldSelector": "spec.foo=bar"})
    assert err.value.status == 400
    assert err.value.body["message"] == "field label not supported: spec.foo"


async def test_events_are_selectable_by_involved_object(akube: AsyncKube) -> None:
    events = "/api/v1/namespaces/default/events"
    for name, uid in (("demo", "u1"), ("other", "u2")):
        await akube.request(
            "POST",
            events,
            body={
                "metadata": {"generateName": f"{name}-"},
                "involvedObject": {
                    "kind": "ClickHousePrivateLink",
                    "name": name,
                    "namespace": "default",
                    "uid": uid,
                },
                "reason": "Created",
                "message": f"hello {name}",
                "type": "Normal",
            },
        )
    selector = (
        "involvedObject.name=demo,involvedObject.namespace=default,"
        "involvedObject.kind=ClickHousePrivateLink,involvedObject.uid=u1"
    )
    listed = await akube.request("GET", events, params={"fieldSelector": selector})
    assert [e["message"] for e in listed["items"]] == ["hello demo"]
    listed = await akube.request("GET", events, params={"fieldSelector": "involvedObject.name!=demo"})
    assert [e["message"] for e in listed["items"]] == ["hello other"]
