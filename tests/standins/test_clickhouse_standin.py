"""The ClickHouse Cloud stand-in behaves as the contract (shared/reference/clickhouse-cloud-api.md) says."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from clickhouse_privatelink_testkit.launch import start_standin, stop_process
from clickhouse_privatelink_testkit.standins.clickhouse_cloud import (
    ClickHouseCloudStandIn,
    Fault,
    StandInControl,
)
from tests.fixtures.clickhouse import ClickHouseApi, ClickHouseOrg

pytestmark = pytest.mark.standin_only

VPCE_A = "vpce-0a1b2c3d4e5f60718"
VPCE_B = "vpce-0b1b2c3d4e5f60718"
ERROR_TEXT = re.compile(r"^[A-Z][A-Z_]+: .+")


@pytest.fixture
def control(clickhouse_api: ClickHouseApi) -> StandInControl:
    assert clickhouse_api.control is not None
    return clickhouse_api.control


@pytest.fixture
def http(clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg) -> Iterator[httpx.Client]:
    """An HTTP client with the organization's admin key."""
    with httpx.Client(
        base_url=clickhouse_api.url, auth=(clickhouse_org.key_id, clickhouse_org.key_secret)
    ) as c:
        yield c


def svc_path(org: ClickHouseOrg, suffix: str = "") -> str:
    return f"/v1/organizations/{org.org_id}/services/{org.service_id}{suffix}"


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    """The error envelope: status, a UUID request ID and "CODE: message"; returns the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    uuid.UUID(body["requestId"])
    assert ERROR_TEXT.match(body["error"]), body["error"]
    assert body["error"].startswith(f"{code}: ")
    return str(body["error"])


def patch_ids(
    http: httpx.Client, org: ClickHouseOrg, *, add: Sequence[str] = (), remove: Sequence[str] = ()
) -> httpx.Response:
    return http.patch(svc_path(org), json={"privateEndpointIds": {"add": list(add), "remove": list(remove)}})


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# ------------------------------------------------------------------------------------------ auth


def test_success_envelope_and_realistic_values(http: httpx.Client, clickhouse_org: ClickHouseOrg) -> None:
    r = http.get(svc_path(clickhouse_org))
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == 200
    uuid.UUID(body["requestId"])
    svc = body["result"]
    assert (svc["id"], svc["provider"], svc["region"], svc["state"]) == (
        clickhouse_org.service_id,
        "aws",
        "us-east-1",
        "running",
    )
    assert {(e["protocol"], e["port"]) for e in svc["endpoints"]} == {
        ("https", 8443),
        ("nativesecure", 9440),
        ("mysql", 3306),
    }
    assert all(
        re.fullmatch(r"[a-z0-9]{10}\.us-east-1\.aws\.clickhouse\.cloud", e["host"]) for e in svc["endpoints"]
    )
    config = http.get(svc_path(clickhouse_org, "/privateEndpointConfig")).json()["result"]
    assert re.fullmatch(
        r"com\.amazonaws\.vpce\.us-east-1\.vpce-svc-[0-9a-f]{17}", config["endpointServiceId"]
    )
    assert re.fullmatch(
        r"[a-z0-9]{10}\.us-east-1\.vpce\.aws\.clickhouse\.cloud", config["privateDnsHostname"]
    )
    assert config == {
        "endpointServiceId": clickhouse_org.endpoint_service_id,
        "privateDnsHostname": clickhouse_org.private_dns_hostname,
    }


@pytest.mark.parametrize(
    "auth",
    [None, ("no-such-key", "whatever"), "wrong-secret"],
    ids=["missing", "unknown-key", "wrong-secret"],
)
def test_bad_key_gets_401(clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg, auth: Any) -> None:
    if auth == "wrong-secret":
        auth = (clickhouse_org.key_id, clickhouse_org.key_secret + "x")
    r = httpx.get(f"{clickhouse_api.url}{svc_path(clickhouse_org)}", auth=auth)
    assert_error(r, 401, "UNAUTHORIZED")


def test_developer_key_reads_but_cannot_write(
    clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    dev = control.seed_key(clickhouse_org.org_id, role="developer")
    with httpx.Client(base_url=clickhouse_api.url, auth=(dev["id"], dev["secret"])) as c:
        assert c.get(svc_path(clickhouse_org)).status_code == 200
        assert_error(patch_ids(c, clickhouse_org, add=[VPCE_A]), 403, "FORBIDDEN")
        org_patch = {
            "privateEndpoints": {"remove": [{"id": VPCE_A, "cloudProvider": "aws", "region": "us-east-1"}]}
        }
        assert_error(c.patch(f"/v1/organizations/{clickhouse_org.org_id}", json=org_patch), 403, "FORBIDDEN")
        attach = c.post(svc_path(clickhouse_org, "/privateEndpoint"), json={"id": VPCE_A, "description": "x"})
        assert_error(attach, 403, "FORBIDDEN")
    assert control.service(clickhouse_org.org_id, clickhouse_org.service_id)["private_endpoint_ids"] == []


def test_key_of_another_organization_is_refused(
    clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    other = control.seed_org()
    key = control.seed_key(other["id"])
    r = httpx.get(f"{clickhouse_api.url}{svc_path(clickhouse_org)}", auth=(key["id"], key["secret"]))
    assert_error(r, 403, "FORBIDDEN")


# ------------------------------------------------------------------------------------------ services


def test_unknown_service_is_404(http: httpx.Client, clickhouse_org: ClickHouseOrg) -> None:
    base = f"/v1/organizations/{clickhouse_org.org_id}/services/{uuid.uuid4()}"
    assert_error(http.get(base), 404, "NOT_FOUND")
    assert_error(http.get(f"{base}/privateEndpointConfig"), 404, "NOT_FOUND")
    assert_error(http.patch(base, json={"privateEndpointIds": {"add": [VPCE_A]}}), 404, "NOT_FOUND")


def test_deleted_service_is_404(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    control.delete_service(clickhouse_org.org_id, clickhouse_org.service_id)
    assert_error(http.get(svc_path(clickhouse_org)), 404, "NOT_FOUND")


def test_list_services_filters_by_tag(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    tagged = control.seed_service(clickhouse_org.org_id, tags={"env": "prod", "team": "data"})
    control.seed_service(clickhouse_org.org_id, tags={"env": "dev"})
    base = f"/v1/organizations/{clickhouse_org.org_id}/services"
    assert len(http.get(base).json()["result"]) == 3
    only = http.get(base, params=[("filter", "tag:env=prod"), ("filter", "tag:team")]).json()["result"]
    assert [s["id"] for s in only] == [tagged["id"]]
    assert only[0]["tags"] == [{"key": "env", "value": "prod"}, {"key": "team", "value": "data"}]
    assert_error(http.get(base, params={"filter": "name:x"}), 400, "BAD_REQUEST")


def test_provisioning_service_has_empty_config_until_running_after_reads(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    svc = control.seed_service(clickhouse_org.org_id, state="provisioning", provisioning_reads=2)
    path = f"/v1/organizations/{clickhouse_org.org_id}/services/{svc['id']}"
    empty = {"endpointServiceId": "", "privateDnsHostname": ""}
    for _ in range(2):
        assert http.get(f"{path}/privateEndpointConfig").json()["result"] == empty
        assert http.get(path).json()["result"]["state"] == "provisioning"
    config = http.get(f"{path}/privateEndpointConfig").json()["result"]
    assert config == {
        "endpointServiceId": svc["endpoint_service_id"],
        "privateDnsHostname": svc["private_dns_hostname"],
    }
    assert http.get(path).json()["result"]["state"] == "running"


def test_provisioning_ends_after_its_scaled_time(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    # 2 virtual seconds at the fixture's time scale: 0.1 s of wall-clock time.
    svc = control.seed_service(clickhouse_org.org_id, state="provisioning", provisioning_seconds=2)
    path = f"/v1/organizations/{clickhouse_org.org_id}/services/{svc['id']}"
    assert http.get(f"{path}/privateEndpointConfig").json()["result"]["endpointServiceId"] == ""
    # Polled through the control API, which is not rate limited.
    wait_until(lambda: control.service(clickhouse_org.org_id, svc["id"])["state"] == "running")
    assert http.get(path).json()["result"]["state"] == "running"
    assert (
        http.get(f"{path}/privateEndpointConfig").json()["result"]["endpointServiceId"]
        == svc["endpoint_service_id"]
    )


def test_control_sets_state(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    svc = control.seed_service(clickhouse_org.org_id, state="provisioning")
    path = f"/v1/organizations/{clickhouse_org.org_id}/services/{svc['id']}"
    assert http.get(f"{path}/privateEndpointConfig").json()["result"]["privateDnsHostname"] == ""
    control.set_service_state(clickhouse_org.org_id, svc["id"], "running")
    assert (
        http.get(f"{path}/privateEndpointConfig").json()["result"]["privateDnsHostname"]
        == svc["private_dns_hostname"]
    )


def test_transitioning_service_refuses_changes_with_409(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    control.set_service_state(clickhouse_org.org_id, clickhouse_org.service_id, "stopping")
    assert_error(patch_ids(http, clickhouse_org, add=[VPCE_A]), 409, "CONFLICT")
    control.set_service_state(clickhouse_org.org_id, clickhouse_org.service_id, "running")
    assert patch_ids(http, clickhouse_org, add=[VPCE_A]).status_code == 200


def test_basic_tier_has_no_private_link(clickhouse_api: ClickHouseApi, control: StandInControl) -> None:
    org = control.seed_org(tier="basic")
    key = control.seed_key(org["id"])
    svc = control.seed_service(org["id"])
    path = f"/v1/organizations/{org['id']}/services/{svc['id']}"
    with httpx.Client(base_url=clickhouse_api.url, auth=(key["id"], key["secret"])) as c:
        assert c.get(path).status_code == 200
        message = assert_error(c.get(f"{path}/privateEndpointConfig"), 403, "FORBIDDEN")
        assert "Basic tier" in message and "Scale or Enterprise" in message
        assert_error(c.patch(path, json={"privateEndpointIds": {"add": [VPCE_A]}}), 403, "FORBIDDEN")


# ------------------------------------------------------------------------------------------ allow list


def test_patch_removes_before_adding_and_is_idempotent(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    assert patch_ids(http, clickhouse_org, add=[VPCE_A]).json()["result"]["privateEndpointIds"] == [VPCE_A]
    # The Terraform provider's "re-assert": remove then add of the same ID leaves it present.
    assert patch_ids(http, clickhouse_org, add=[VPCE_A], remove=[VPCE_A]).json()["result"][
        "privateEndpointIds"
    ] == [VPCE_A]
    # Adding a present ID and removing an absent one are no-ops, not errors.
    r = patch_ids(http, clickhouse_org, add=[VPCE_A, VPCE_B], remove=["vpce-0000000000000000f"])
    assert r.status_code == 200
    assert r.json()["result"]["privateEndpointIds"] == [VPCE_A, VPCE_B]
    assert patch_ids(http, clickhouse_org, remove=[VPCE_A]).json()["result"]["privateEndpointIds"] == [VPCE_B]
    assert control.service(clickhouse_org.org_id, clickhouse_org.service_id)["private_endpoint_ids"] == [
        VPCE_B
    ]


def test_patch_rejects_malformed_bodies(http: httpx.Client, clickhouse_org: ClickHouseOrg) -> None:
    assert_error(
        http.patch(svc_path(clickhouse_org), json={"privateEndpointIds": {"add": "vpce-1"}}),
        400,
        "BAD_REQUEST",
    )
    assert_error(
        http.patch(svc_path(clickhouse_org), json={"privateEndpointIds": {"put": []}}), 400, "BAD_REQUEST"
    )
    assert_error(http.patch(svc_path(clickhouse_org), json={"bogus": 1}), 400, "BAD_REQUEST")
    assert_error(http.patch(svc_path(clickhouse_org), content=b"{not json"), 400, "BAD_REQUEST")


def test_attach_registers_on_org_and_org_cleanup_removes(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    org_path = f"/v1/organizations/{clickhouse_org.org_id}"
    patch_ids(http, clickhouse_org, add=[VPCE_A])
    entry = {"id": VPCE_A, "description": "", "cloudProvider": "aws", "region": "us-east-1"}
    assert http.get(org_path).json()["result"]["privateEndpoints"] == [entry]
    # Detaching from the service leaves the organization entry: cleaning it is a separate, admin-only call.
    patch_ids(http, clickhouse_org, remove=[VPCE_A])
    assert http.get(org_path).json()["result"]["privateEndpoints"] == [entry]
    service = http.get(svc_path(clickhouse_org)).json()["result"]
    assert service["availablePrivateEndpointIds"] == [VPCE_A]
    remove = {"privateEndpoints": {"remove": [{"id": VPCE_A, "cloudProvider": "aws", "region": "us-east-1"}]}}
    assert http.patch(org_path, json=remove).json()["result"]["privateEndpoints"] == []
    assert control.organization(clickhouse_org.org_id)["private_endpoints"] == []
    # Removing an entry that is not there is not an error either.
    assert http.patch(org_path, json=remove).status_code == 200


def test_attach_with_description(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    r = http.post(
        svc_path(clickhouse_org, "/privateEndpoint"), json={"id": VPCE_A, "description": "prod VPC"}
    )
    assert r.json()["result"] == {
        "id": VPCE_A,
        "description": "prod VPC",
        "cloudProvider": "aws",
        "region": "us-east-1",
    }
    state = control.state()
    service = next(s for s in state["services"] if s["id"] == clickhouse_org.service_id)
    org = next(o for o in state["organizations"] if o["id"] == clickhouse_org.org_id)
    assert service["private_endpoint_ids"] == [VPCE_A]
    assert org["private_endpoints"][0]["description"] == "prod VPC"
    assert_error(
        http.post(svc_path(clickhouse_org, "/privateEndpoint"), json={"description": "x"}), 400, "BAD_REQUEST"
    )


def test_unknown_route_gets_the_envelope(http: httpx.Client, clickhouse_org: ClickHouseOrg) -> None:
    assert_error(http.get(f"/v1/organizations/{clickhouse_org.org_id}/nothing"), 404, "NOT_FOUND")


# ------------------------------------------------------------------------------------------ rate limit


async def test_eleventh_request_in_a_window_gets_429_with_reset_header() -> None:
    # A real 10-second window (time scale 1): eleven quick requests all land in it.
    async with ClickHouseCloudStandIn(time_scale=1.0) as standin:
        org = standin.state.seed_org()
        key = standin.state.seed_key(org_id=org.id)
        other = standin.state.seed_key(org_id=org.id)
        async with httpx.AsyncClient(base_url=standin.url, auth=(key.id, key.secret)) as c:
            statuses = [(await c.get(f"/v1/organizations/{org.id}")).status_code for _ in range(11)]
            assert statuses == [200] * 10 + [429]
            r = await c.get(f"/v1/organizations/{org.id}")
        assert_error(r, 429, "TOO_MANY_REQUESTS")
        reset = int(r.headers["X-RateLimit-Reset"])
        # The window opened a moment ago with the first request: nearly all of its 10 s remain.
        assert 8 <= reset <= 10
        # The limit is per key: another key of the same organization is unaffected.
        async with httpx.AsyncClient(base_url=standin.url, auth=(other.id, other.secret)) as c:
            assert (await c.get(f"/v1/organizations/{org.id}")).status_code == 200


async def test_window_resets() -> None:
    async with ClickHouseCloudStandIn(time_scale=0.02, rate_limit="3/10s") as standin:  # 0.2 s windows
        org = standin.state.seed_org()
        key = standin.state.seed_key(org_id=org.id)
        async with httpx.AsyncClient(base_url=standin.url, auth=(key.id, key.secret)) as c:
            for _ in range(3):
                assert (await c.get(f"/v1/organizations/{org.id}")).status_code == 200
            assert (await c.get(f"/v1/organizations/{org.id}")).status_code == 429
            deadline = time.monotonic() + 5
            while (await c.get(f"/v1/organizations/{org.id}")).status_code == 429:
                assert time.monotonic() < deadline
        assert standin.state.rate_limit == (3, 10.0)


def test_rate_limit_is_configurable_through_control(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    try:
        assert control.set_rate_limit(2, 600) == {"enabled": True, "limit": 2, "period": 600}
        assert [http.get(svc_path(clickhouse_org)).status_code for _ in range(3)] == [200, 200, 429]
        control.set_rate_limit(None)
        assert all(http.get(svc_path(clickhouse_org)).status_code == 200 for _ in range(12))
    finally:
        control.set_rate_limit(10, 10)


# ------------------------------------------------------------------------------------------ faults


def test_fault_error_for_the_next_n_requests(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    control.add_fault("error", status=503, count=2, path=re.escape(clickhouse_org.service_id))
    assert_error(http.get(svc_path(clickhouse_org)), 503, "SERVICE_UNAVAILABLE")
    assert_error(http.get(svc_path(clickhouse_org)), 503, "SERVICE_UNAVAILABLE")
    assert http.get(svc_path(clickhouse_org)).status_code == 200
    assert control.faults() == []


def test_fault_error_with_raw_body(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    control.add_fault("error", status=502, body="<html>502 Bad Gateway</html>")
    r = http.get(svc_path(clickhouse_org))
    assert (r.status_code, r.text) == (502, "<html>502 Bad Gateway</html>")


def test_fault_matches_method_and_path(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    control.add_fault("error", status=500, method="PATCH", path=r"/services/[^/]+$")
    assert http.get(svc_path(clickhouse_org)).status_code == 200
    assert http.get(svc_path(clickhouse_org, "/privateEndpointConfig")).status_code == 200
    assert_error(patch_ids(http, clickhouse_org, add=[VPCE_A]), 500, "INTERNAL_SERVER_ERROR")
    assert patch_ids(http, clickhouse_org, add=[VPCE_A]).status_code == 200


def test_fault_rate_limit(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl, clickhouse_api: ClickHouseApi
) -> None:
    control.add_fault("rate_limit", reset=7)
    r = http.get(svc_path(clickhouse_org))
    assert_error(r, 429, "TOO_MANY_REQUESTS")
    # 7 virtual seconds, told in wall-clock seconds as the real API tells them.
    assert float(r.headers["X-RateLimit-Reset"]) == pytest.approx(7 * clickhouse_api.time_scale)


def test_fault_latency(
    clickhouse_api: ClickHouseApi, http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    control.add_fault("latency", seconds=6)  # virtual: 0.3 s at the fixture's time scale
    started = time.monotonic()
    assert http.get(svc_path(clickhouse_org)).status_code == 200
    assert time.monotonic() - started >= 6 * clickhouse_api.time_scale
    started = time.monotonic()
    assert http.get(svc_path(clickhouse_org)).status_code == 200
    assert time.monotonic() - started < 6 * clickhouse_api.time_scale


def test_fault_drop_closes_the_connection(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    control.add_fault("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(svc_path(clickhouse_org))
    assert http.get(svc_path(clickhouse_org)).status_code == 200


def test_bad_fault_is_refused(control: StandInControl) -> None:
    with pytest.raises(RuntimeError, match="fault kind"):
        control.add_fault("explode")


async def _fault_pattern(standin: ClickHouseCloudStandIn, n: int) -> list[int]:
    """Statuses of n GETs of the seeded service (the stand-in's only organization)."""
    org = next(iter(standin.state.orgs.values()))
    key = next(iter(standin.state.keys.values()))
    svc = next(iter(standin.state.services.values()))
    async with httpx.AsyncClient(base_url=standin.url, auth=(key.id, key.secret)) as c:
        return [(await c.get(f"/v1/organizations/{org.id}/services/{svc.id}")).status_code for _ in range(n)]


def _seeded(standin: ClickHouseCloudStandIn) -> None:
    org = standin.state.seed_org()
    standin.state.seed_key(org_id=org.id)
    standin.state.seed_service(org_id=org.id)


async def test_fault_by_rate_is_random_reproducible_and_lasts_until_removed() -> None:
    async with ClickHouseCloudStandIn(time_scale=0.01, rate_limit=None, fault_seed=11) as standin:
        _seeded(standin)
        control = f"{standin.url}/_control"
        async with httpx.AsyncClient(base_url=control) as c:
            faults = (await c.post("/faults", json={"kind": "error", "status": 503, "rate": 0.5})).json()
        assert faults["faults"][0]["count"] is None  # no count: fires until removed
        first = await _fault_pattern(standin, 40)
        assert set(first) == {200, 503}
        assert 5 < first.count(503) < 35
        (fault,) = standin.state.faults
        assert fault.fired == first.count(503)
        async with httpx.AsyncClient(base_url=control) as c:  # the same seed: the same faults
            await c.put(
                "/faults", json={"faults": [{"kind": "error", "status": 503, "rate": 0.5}], "seed": 11}
            )
        assert await _fault_pattern(standin, 40) == first
        async with httpx.AsyncClient(base_url=control) as c:
            await c.delete("/faults")
        assert await _fault_pattern(standin, 5) == [200] * 5


async def test_fault_by_rate_with_a_count_stops_when_spent() -> None:
    async with ClickHouseCloudStandIn(time_scale=0.01, rate_limit=None) as standin:
        _seeded(standin)
        with StandInControl(standin.url) as control:
            await asyncio.to_thread(control.add_fault, "error", status=500, rate=1.0, count=3)
            assert await _fault_pattern(standin, 5) == [500, 500, 500, 200, 200]
            assert await asyncio.to_thread(control.faults) == []
            await asyncio.to_thread(control.add_fault, "rate_limit", rate=0.0, count=1)
            assert await _fault_pattern(standin, 5) == [200] * 5
            (fault,) = await asyncio.to_thread(control.faults)
            assert (fault["count"], fault["fired"], fault["rate"]) == (1, 0, 0.0)


async def test_fault_by_rate_latency_and_terminal_faults_draw_separately() -> None:
    async with ClickHouseCloudStandIn(time_scale=0.01, rate_limit=None, fault_seed=5) as standin:
        _seeded(standin)
        standin.state.faults = [
            Fault.from_dict({"kind": "latency", "seconds": 1, "rate": 1.0}),
            Fault.from_dict({"kind": "drop", "rate": 0.0}),
        ]
        assert await _fault_pattern(standin, 3) == [200] * 3
        assert [f.fired for f in standin.state.faults] == [3, 0]


def test_bad_fault_rate_is_refused(control: StandInControl) -> None:
    with pytest.raises(RuntimeError, match="rate"):
        control.add_fault("error", rate=1.5)


def test_cli_fault_seed_makes_rate_faults_reproducible() -> None:
    patterns = []
    for _ in range(2):
        proc, url = start_standin("clickhouse", ["--fault-seed", "42", "--rate-limit", "off"])
        try:
            with StandInControl(url) as control, httpx.Client(base_url=url) as http:
                org = control.seed_org()
                key = control.seed_key(org["id"])
                svc = control.seed_service(org["id"])
                control.add_fault("error", status=503, rate=0.3)
                path = f"/v1/organizations/{org['id']}/services/{svc['id']}"
                auth = (key["id"], key["secret"])
                patterns.append([http.get(path, auth=auth).status_code for _ in range(30)])
        finally:
            stop_process(proc)
    assert patterns[0] == patterns[1]
    assert 503 in patterns[0] and 200 in patterns[0]


# ------------------------------------------------------------------------------------------ control API


def test_request_log_counts_calls_and_never_holds_secrets(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    since = max((e["seq"] for e in control.requests()), default=0)
    control.add_fault("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(svc_path(clickhouse_org))
    http.get(svc_path(clickhouse_org))
    patch_ids(http, clickhouse_org, add=[VPCE_A])
    entries = control.requests(since=since, key_id=clickhouse_org.key_id)
    assert [(e["method"], e["status"], e["fault"]) for e in entries] == [
        ("GET", None, "drop"),
        ("GET", 200, None),
        ("PATCH", 200, None),
    ]
    assert all(
        e["key_id"] == clickhouse_org.key_id and e["path"] == svc_path(clickhouse_org) for e in entries
    )
    assert clickhouse_org.key_secret not in json.dumps(control.requests())
    assert clickhouse_org.key_secret not in json.dumps(control.state())


def test_state_shows_services_and_org_endpoints(
    http: httpx.Client, clickhouse_org: ClickHouseOrg, control: StandInControl
) -> None:
    patch_ids(http, clickhouse_org, add=[VPCE_A])
    state = control.state()
    service = next(s for s in state["services"] if s["id"] == clickhouse_org.service_id)
    org = next(o for o in state["organizations"] if o["id"] == clickhouse_org.org_id)
    assert service["private_endpoint_ids"] == [VPCE_A]
    assert org["private_endpoints"] == [
        {"id": VPCE_A, "description": "", "cloudProvider": "aws", "region": "us-east-1"}
    ]
    assert {"id": clickhouse_org.key_id, "role": "admin", "org_id": clickhouse_org.org_id} in state["keys"]


async def test_reset_forgets_everything_but_the_start_up_settings() -> None:
    async with ClickHouseCloudStandIn(time_scale=0.5, rate_limit="5/1s") as standin:
        org = standin.state.seed_org()
        standin.state.seed_service(org_id=org.id)
        async with httpx.AsyncClient(base_url=f"{standin.url}/_control") as c:
            await c.put("/rate-limit", json={"enabled": False})
            await c.post("/faults", json={"kind": "drop", "count": 3})
            assert (await c.post("/reset")).status_code == 200
            state = (await c.get("/state")).json()
        assert state["organizations"] == state["services"] == state["faults"] == []
        assert state["rate_limit"] == {"enabled": True, "limit": 5, "period": 1.0}
        assert state["time_scale"] == 0.5


def test_cli_process_serves_a_seed_file_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    org_id, svc_id = str(uuid.uuid4()), str(uuid.uuid4())
    seed = {
        "organizations": [
            {
                "id": org_id,
                "name": "Acme",
                "tier": "enterprise",
                "keys": [{"id": "SEEDKEY", "secret": "seed-secret", "role": "developer"}],
                "services": [{"id": svc_id, "name": "analytics", "region": "eu-west-1", "state": "idle"}],
                "private_endpoints": [{"id": VPCE_B, "region": "eu-west-1"}],
            }
        ]
    }
    seed_file = tmp_path / "seed.yaml"
    seed_file.write_text(yaml.safe_dump(seed))
    proc, url = start_standin("clickhouse", ["--seed", str(seed_file), "--rate-limit", "off"])
    try:
        with httpx.Client(base_url=url, auth=("SEEDKEY", "seed-secret")) as c:
            svc = c.get(f"/v1/organizations/{org_id}/services/{svc_id}").json()["result"]
            assert (svc["name"], svc["region"], svc["state"]) == ("analytics", "eu-west-1", "idle")
            assert svc["availablePrivateEndpointIds"] == [VPCE_B]
            assert all(c.get(f"/v1/organizations/{org_id}").status_code == 200 for _ in range(12))
        with StandInControl(url) as control:
            assert control.rate_limit() == {"enabled": False}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
