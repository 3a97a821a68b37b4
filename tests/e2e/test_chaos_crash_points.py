"""Crash points: the operator SIGKILLs itself right after one kind of external write (the test-only
``CHPL_TEST_CRASH_AFTER``), the resource is deleted while it is down, and a restarted operator must finish the
deletion leaving nothing behind and making nothing twice.

Random kills (test_kills.py) rarely land between a write to AWS or ClickHouse and the status write that
records it; these land there every time, at each write a pass makes:

- a first pass (one resource alone in its VPC): endpoint create, zone create (also before its tags are
  written: Route 53 tags a new zone in a second call), record change, allow-list PATCH;
- a joining pass (a resource for a second service joining an endpoint another resource uses): record change,
  allow-list PATCH; the other resource and its objects must come through untouched;
- a deletion: allow-list PATCH, record change, zone delete, endpoint delete, organization PATCH.

``make chaos`` runs every point (``CHPL_CHAOS_CRASH_POINTS=all``); the test command runs a short pass of one
point per kind of pass. Each point adds to ``crash points`` in the chaos summary line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from clickhouse_privatelink.engine import crash_points as crash
from tests.e2e import chaos_report
from tests.e2e.conftest import READY_TIMEOUT, Cloud, Link, LinkFactory, OperatorProcess
from tests.fixtures.clickhouse import ClickHouseApi, ClickHouseOrg
from tests.fixtures.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.standin_only]


@dataclass(frozen=True)
class Point:
    pass_kind: str  # first, joining, joining-survives or deletion
    write: str  # a crash_points name

    @property
    def id(self) -> str:
        return f"{self.pass_kind}-{self.write}"


ALL = (
    Point("first", crash.ENDPOINT_CREATE),
    Point("first", crash.ZONE_CREATE_UNTAGGED),
    Point("first", crash.ZONE_CREATE),
    Point("first", crash.RECORD_CHANGE),
    Point("first", crash.ALLOW_LIST_PATCH),
    Point("joining", crash.RECORD_CHANGE),
    Point("joining", crash.ALLOW_LIST_PATCH),
    # The joining resource is not deleted while the operator is down: once restarted it must still know the
    # entry it added as its own, and remove it when it is deleted later.
    Point("joining-survives", crash.ALLOW_LIST_PATCH),
    Point("deletion", crash.ALLOW_LIST_PATCH),
    Point("deletion", crash.RECORD_CHANGE),
    Point("deletion", crash.ZONE_DELETE),
    Point("deletion", crash.ENDPOINT_DELETE),
    Point("deletion", crash.ORGANIZATION_PATCH),
)
SHORT = tuple(
    p for p in ALL if p.id in ("first-allow-list-patch", "joining-allow-list-patch", "deletion-zone-delete")
)
POINTS = ALL if os.environ.get("CHPL_CHAOS_CRASH_POINTS") == "all" else SHORT


@pytest.fixture
def armed(operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """The shared operator, to be restarted with a crash point; started normally again afterwards."""
    plain = dict(operator.env)
    try:
        yield operator
    finally:
        operator.kill()
        operator.env = plain
        operator.start()


def arm(operator: OperatorProcess, write: str) -> None:
    operator.kill()
    operator.env = {**operator.env, "CHPL_TEST_CRASH_AFTER": write}
    operator.start()


def wait_killed(operator: OperatorProcess, write: str) -> None:
    """The operator killed itself at the crash point (SIGKILL: exit status -9), and says where."""
    proc = operator.proc
    assert proc is not None
    wait_for(lambda: proc.poll() is not None, timeout=READY_TIMEOUT, message=f"the crash after {write}")
    assert proc.returncode == -9, operator.logs()[-3000:]
    assert f"test crash point: killing the operator right after {write}" in operator.log_path.read_text()
    operator.proc = None
    operator.env = {k: v for k, v in operator.env.items() if k != "CHPL_TEST_CRASH_AFTER"}


def leftovers(cloud: Cloud, services: list[str]) -> dict[str, list[Any]]:
    return {
        "endpoints": [e["VpcEndpointId"] for e in cloud.live_endpoints()],
        "zones": [z["HostedZoneId"] for z in cloud.zones()],
        "allow-list entries": [(s, e) for s in services for e in cloud.allow_list(s)],
        "organization entries": cloud.org_entries(),
    }


def nothing_left(cloud: Cloud, services: list[str]) -> dict[str, list[Any]] | None:
    left = {k: v for k, v in leftovers(cloud, services).items() if v}
    return left or None


def endpoints_made(cloud: Cloud) -> int:
    """Endpoints in the VPC not yet deleted, deleting ones included (a duplicate made and deleted counts)."""
    eps = cloud.ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [cloud.network.vpc_id]}])
    return sum(1 for e in eps["VpcEndpoints"] if e["State"] != "deleted")


def snapshot(cloud: Cloud, link: Link, service_id: str) -> dict[str, Any]:
    """What another resource's connection consists of: its endpoint, record and allow-list entry."""
    status = link.status()
    return {
        "endpoint": status["vpcEndpointId"],
        "zone": status["hostedZoneId"],
        "endpoint live": cloud.endpoint(status["vpcEndpointId"]) is not None,
        "record": cloud.records(status["hostedZoneId"], status["privateDnsHostname"]),
        "allow list": cloud.allow_list(service_id),
        "ready": (link.condition("Ready") or {}).get("status"),
    }


@pytest.mark.parametrize("point", POINTS, ids=lambda p: p.id)
def test_kill_right_after_a_write_then_delete_while_down_leaves_nothing(
    point: Point,
    make_link: LinkFactory,
    cloud: Cloud,
    armed: OperatorProcess,
    clickhouse_api: ClickHouseApi,
    clickhouse_org: ClickHouseOrg,
) -> None:
    operator = armed
    services = [clickhouse_org.service_id]
    other: Link | None = None
    before: dict[str, Any] = {}
    if point.pass_kind.startswith("joining"):
        other = make_link(name="already-there")
        other.wait_ready()
        before = snapshot(cloud, other, clickhouse_org.service_id)
        assert clickhouse_api.control is not None
        second = clickhouse_api.control.seed_service(
            clickhouse_org.org_id, region="us-east-1", state="running"
        )
        services.append(second["id"])
        arm(operator, point.write)
        link = make_link(name="joining", clickhouse={"serviceId": second["id"]})
    elif point.pass_kind == "first":
        arm(operator, point.write)
        link = make_link(name="first")
    else:
        link = make_link(name="leaving")
        link.wait_ready()
        arm(operator, point.write)
        link.delete()
    wait_killed(operator, point.write)
    most = endpoints_made(cloud)
    assert len(cloud.zones()) <= 1, cloud.zones()  # one private zone per VPC, never a second

    if point.pass_kind == "joining-survives":
        operator.start()
        link.wait_ready()
        most = max(most, endpoints_made(cloud))
        assert len(cloud.zones()) == 1
        link.delete()
    elif point.pass_kind != "deletion":
        link.delete()  # while the operator is down
        operator.start()
    else:
        operator.start()
    link.wait_gone(timeout=READY_TIMEOUT)

    if other is None:
        try:
            wait_for(
                lambda: nothing_left(cloud, services) is None, timeout=READY_TIMEOUT, message="nothing left"
            )
        except TimeoutError:
            left = nothing_left(cloud, services) or {}
            chaos_report.record(leaked=sum(len(v) for v in left.values()))
            raise AssertionError(f"left behind: {left}") from None
    else:
        # The resource already there keeps everything it had, and the joiner's own objects are gone.
        zone, host = str(before["zone"]), link_host(clickhouse_api, clickhouse_org, services[1])
        wait_for(
            lambda: cloud.allow_list(services[1]) == [] and cloud.records(zone, host) == [],
            timeout=READY_TIMEOUT,
            message="the joiner's record and allow-list entry to go",
        )
        assert snapshot(cloud, other, clickhouse_org.service_id) == before
        assert cloud.org_entries() == [before["endpoint"]]
        most = max(most, endpoints_made(cloud))
    assert most <= 1, f"{most} endpoints for one endpoint service"
    chaos_report.record(crash_points=1)


def link_host(clickhouse_api: ClickHouseApi, org: ClickHouseOrg, service_id: str) -> str:
    assert clickhouse_api.control is not None
    return str(clickhouse_api.control.service(org.org_id, service_id)["private_dns_hostname"])
