"""A process killed right after each external write, the resource deleted while it is down, and a new process
cleaning up: nothing leaks, nothing is made twice, the finalizer goes (issue 17, item 6, in memory)."""

from __future__ import annotations

import pytest

from clickhouse_privatelink.engine import crash_points as crash
from tests.engine.harness import SERVICE_A, SERVICE_B, SERVICE_C, SERVICES, Harness

HOST_A = SERVICES[SERVICE_A][2]


async def until_crash(h: Harness, *, rounds: int = 6) -> None:
    """Passes until the armed write has killed the process (and a new one has started)."""
    for _ in range(rounds):
        h.clock.advance(20.0)
        h.aws.settle()
        for uid in list(h.bodies):
            if uid in h.bodies and not h.crashes:
                await h.run(uid)
        if h.crashes:
            return
    raise AssertionError("the armed write never happened")


def created(h: Harness, call: str) -> int:
    return len([w for w in h.aws.writes if w[0] == call])


def nothing_left(h: Harness) -> None:
    assert h.bodies == {}, "the finalizer stayed"
    assert h.aws.endpoints == {}, "an endpoint leaked"
    assert h.aws.zones == {}, "a zone leaked"
    assert all(h.clickhouse.allow_list(s) == [] for s in SERVICES), "an allow-list entry leaked"
    assert h.clickhouse.organization_entries == [], "an organization entry leaked"


FIRST_PASS = (
    crash.ENDPOINT_CREATE,
    crash.ZONE_CREATE_UNTAGGED,
    crash.ZONE_CREATE,
    crash.RECORD_CHANGE,
    crash.ALLOW_LIST_PATCH,
)


@pytest.mark.parametrize("point", FIRST_PASS)
async def test_killed_after_a_write_of_a_first_pass_and_deleted_while_down_leaves_nothing(point: str) -> None:
    h = Harness()
    uid = h.create("a")
    h.crash_after(point)
    await until_crash(h)
    assert h.crashes == [point]
    if point == crash.ZONE_CREATE_UNTAGGED:
        (zone,) = h.aws.zones.values()
        assert zone.tags == {}, "killed before the tags: only the zone's comment says whose it is"
    h.delete(uid)
    await h.settle()
    nothing_left(h)
    assert created(h, "CreateVpcEndpoint") == 1
    assert created(h, "CreateHostedZone") == (0 if point == crash.ENDPOINT_CREATE else 1)


@pytest.mark.parametrize("point", FIRST_PASS)
async def test_killed_after_a_write_of_a_first_pass_the_next_process_finishes_without_duplicates(
    point: str,
) -> None:
    h = Harness()
    uid = h.create("a")
    h.crash_after(point)
    await h.settle()
    assert h.crashes == [point]
    ready = h.ready(uid)
    assert ready is not None and ready["status"] == "True"
    assert created(h, "CreateVpcEndpoint") == 1 and created(h, "CreateHostedZone") == 1
    (endpoint,) = h.aws.endpoints.values()
    assert h.clickhouse.allow_list(SERVICE_A) == [endpoint.id]


# A resource joining: for another service behind the same endpoint service (record and entry only), or
# behind another endpoint service (an endpoint of its own in the same VPC and zone).
JOINING = [
    *(
        pytest.param(p, SERVICE_B, id=f"{p}-shared-endpoint")
        for p in (crash.RECORD_CHANGE, crash.ALLOW_LIST_PATCH)
    ),
    *(
        pytest.param(p, SERVICE_C, id=f"{p}-own-endpoint")
        for p in (crash.ENDPOINT_CREATE, crash.RECORD_CHANGE, crash.ALLOW_LIST_PATCH)
    ),
]


@pytest.mark.parametrize(("point", "service"), JOINING)
async def test_killed_after_a_write_of_a_joining_pass_and_deleted_while_down_leaves_the_first_user_intact(
    point: str, service: str
) -> None:
    h = Harness()
    first = h.create("first", service_id=SERVICE_A)
    await h.settle()
    (shared,) = h.aws.endpoints.values()
    joining = h.create("joining", service_id=service)
    h.crash_after(point)
    await until_crash(h)
    assert h.crashes == [point]
    h.delete(joining)
    await h.settle()

    assert list(h.bodies) == [first]
    ready = h.ready(first)
    assert ready is not None and ready["status"] == "True"
    assert [e.id for e in h.aws.live_endpoints()] == [shared.id]
    (zone,) = h.aws.zones.values()
    assert {rs["Type"] for rs in h.aws.record_sets(zone.id, HOST_A)} == {"A", "TXT"}
    assert {rs["Type"] for rs in h.aws.record_sets(zone.id, SERVICES[service][2])} == set()
    assert h.clickhouse.allow_list(SERVICE_A) == [shared.id]
    assert h.clickhouse.allow_list(service) == [], "the joining resource's entry leaked"
    assert h.clickhouse.organization_entries == [shared.id]
    h.delete(first)
    await h.settle()
    nothing_left(h)


@pytest.mark.parametrize(
    "point", (crash.ENDPOINT_DELETE, crash.RECORD_CHANGE, crash.ZONE_DELETE, crash.ORGANIZATION_PATCH)
)
async def test_killed_after_a_write_of_a_cleanup_the_next_process_finishes_it(point: str) -> None:
    h = Harness()
    uid = h.create("a")
    await h.settle()
    h.delete(uid)
    h.crash_after(point)
    await h.settle()
    assert h.crashes == [point]
    nothing_left(h)
