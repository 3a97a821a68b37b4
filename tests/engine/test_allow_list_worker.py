"""A service's allow-list worker (engine/allow_list_worker.py) over the in-memory ClickHouse: how requests gather
into rounds, one PATCH per round, and what a failed PATCH does to the requests in it; and the same through
whole passes (one PATCH for two users, a release while another user holds the entry)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import pytest

from clickhouse_privatelink.adapters.clickhouse.client import ClickHouseApiError, NotFound, Service
from clickhouse_privatelink.decisions.allow_list import AllowKind, AllowOutcome, AllowRequest, AllowResult
from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from clickhouse_privatelink.decisions.usage import Usage
from clickhouse_privatelink.engine.allow_list_worker import AllowListWorker
from tests.engine.fakes import ClickHouseCloud, Clock, FakeClickHouse
from tests.engine.harness import SERVICE_A, SERVICE_B, VPC_A, Harness
from tests.fixtures.polling import until


class GatedClickHouse(FakeClickHouse):
    """The in-memory ClickHouse, counting PATCHes and how many are in flight; ``gate`` (when set) holds each
    PATCH until the test opens it."""

    def __init__(self, cloud: ClickHouseCloud, clock: Clock) -> None:
        super().__init__(cloud, clock)
        self.gate: asyncio.Event | None = None
        self.in_flight = 0
        self.most_in_flight = 0
        self.patches: list[tuple[tuple[str, ...], tuple[str, ...]]] = []  # (add, remove) per PATCH

    async def update_private_endpoint_ids(
        self, service_id: str, *, add: Sequence[str], remove: Sequence[str]
    ) -> Service:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            self.patches.append((tuple(add), tuple(remove)))
            return await super().update_private_endpoint_ids(service_id, add=add, remove=remove)
        finally:
            self.in_flight -= 1


def setup(*, write_window: float = 0.02) -> tuple[ClickHouseCloud, GatedClickHouse, AllowListWorker]:
    cloud = ClickHouseCloud()
    cloud.add_service(SERVICE_A, "alpha", endpoint_service="svc", hostname="alpha.example")
    api = GatedClickHouse(cloud, Clock())
    return cloud, api, AllowListWorker(api, SERVICE_A, write_window=write_window)


def user(n: int, endpoint: int | None = None) -> Usage:
    return Usage(
        uid=f"u{n}",
        resource=f"ns/u{n}",
        created=f"2026-01-01T00:00:{n:02d}Z",
        deleting=False,
        region="us-east-1",
        vpc_id=VPC_A,
        service_id=SERVICE_A,
        endpoint_id=f"vpce-{n if endpoint is None else endpoint}",
    )


def add(me: Usage) -> AllowRequest:
    return AllowRequest(AllowKind.ADD, me, me.endpoint_id or "")


async def test_requests_within_the_window_are_one_round_and_one_patch() -> None:
    cloud, api, worker = setup()
    results = await asyncio.gather(*(worker.ask(add(user(n)), max_age=10.0) for n in range(5)))
    assert [r.outcome for r in results] == [AllowOutcome.ADDED] * 5
    assert api.patches == [(tuple(f"vpce-{n}" for n in range(5)), ())]
    assert cloud.allow_list(SERVICE_A) == [f"vpce-{n}" for n in range(5)]


async def test_a_round_that_changes_nothing_sends_no_patch() -> None:
    cloud, api, worker = setup()
    cloud._set(SERVICE_A, ["vpce-1"])
    results = await asyncio.gather(
        worker.ask(add(user(1)), max_age=10.0),
        worker.ask(AllowRequest(AllowKind.RETIRE, user(2), "vpce-9"), max_age=10.0),
    )
    assert list(results) == [AllowResult(AllowOutcome.LISTED), AllowResult(AllowOutcome.NOTHING)]
    assert api.patches == []


async def test_rounds_of_a_service_never_overlap_and_requests_during_one_wait_for_the_next() -> None:
    _, api, worker = setup()
    api.gate = asyncio.Event()
    first = asyncio.ensure_future(worker.ask(add(user(0)), max_age=10.0))
    await until(lambda: api.in_flight == 1)  # the first round's PATCH is under way
    later = [asyncio.ensure_future(worker.ask(add(user(n)), max_age=10.0)) for n in range(1, 4)]
    await until(lambda: worker.pending("vpce-3"))  # gathering for the next round
    assert worker.pending("vpce-0") and worker.pending("vpce-2") and not worker.pending("vpce-7")
    api.gate.set()
    assert (await first).outcome is AllowOutcome.ADDED
    assert all(r.outcome is AllowOutcome.ADDED for r in await asyncio.gather(*later))
    assert api.most_in_flight == 1
    assert api.patches == [(("vpce-0",), ()), (("vpce-1", "vpce-2", "vpce-3"), ())]
    assert not worker.pending("vpce-0")


async def test_a_failed_patch_fails_only_the_requests_of_its_round_that_depend_on_it() -> None:
    cloud, api, worker = setup()
    cloud._set(SERVICE_A, ["vpce-1"])
    refused = ClickHouseApiError(status=400, message="refused", operation="update_private_endpoint_ids")
    cloud.fail_patches.append(refused)
    api.gate = asyncio.Event()
    asked = [worker.ask(add(user(n)), max_age=10.0) for n in (1, 2)]  # vpce-1 is listed: no PATCH for it
    first = asyncio.ensure_future(asyncio.gather(*asked, return_exceptions=True))
    await until(lambda: api.in_flight == 1)
    second = asyncio.ensure_future(worker.ask(add(user(3)), max_age=10.0))  # the next round
    api.gate.set()
    listed, failed = await first
    assert listed == AllowResult(AllowOutcome.LISTED)
    assert failed is refused
    assert (await second).outcome is AllowOutcome.ADDED  # the next round goes on, and writes
    assert cloud.allow_list(SERVICE_A) == ["vpce-1", "vpce-3"]


async def test_a_failed_read_of_the_service_fails_every_request_of_the_round() -> None:
    _, api, worker = setup()

    async def gone(service_id: str, *, max_age: float) -> Service:
        raise NotFound(status=404, message="gone", operation="get_service")

    api.service = gone  # type: ignore[method-assign]
    results = await asyncio.gather(
        *(worker.ask(add(user(n)), max_age=10.0) for n in range(2)), return_exceptions=True
    )
    assert all(isinstance(r, NotFound) for r in results)
    assert api.patches == []
    with pytest.raises(NotFound):
        await worker.ask(add(user(3)), max_age=10.0)  # the worker goes on: the next round runs


# ---- whole passes


def patches(h: Harness, service_id: str = SERVICE_A) -> int:
    return h.clickhouse.writes.count(("PATCH", service_id))


async def test_two_users_of_a_service_asking_together_make_one_patch() -> None:
    h = Harness(batch_window=0.05)
    a = h.create("a", service_id=SERVICE_A)
    b = h.create("b", service_id=SERVICE_A)
    c = h.create("c", service_id=SERVICE_B)  # another service behind the same endpoint: its own PATCH
    await h.settle(together=True)
    assert h.reason(a) == h.reason(b) == h.reason(c) == Reason.READY.value
    (endpoint,) = h.aws.endpoints.values()
    assert h.clickhouse.allow_list(SERVICE_A) == h.clickhouse.allow_list(SERVICE_B) == [endpoint.id]
    assert patches(h, SERVICE_A) == patches(h, SERVICE_B) == 1
    # a and b asked in the same round, whose PATCH added the entry for both
    assert sorted(e.resource for e in h.posted("AllowListed")) == ["ns/a", "ns/b", "ns/c"]


async def test_a_release_while_another_user_of_the_entry_is_reconciled_keeps_the_entry() -> None:
    h = Harness(batch_window=0.05)
    a = h.create("a", service_id=SERVICE_A)
    b = h.create("b", service_id=SERVICE_A)
    await h.settle()
    (endpoint,) = h.aws.endpoints.values()
    written = patches(h)
    h.delete(a)
    h.bodies[b]["metadata"]["generation"] = 2  # b is being reconciled in the same rounds
    h._settled.discard(b)
    await h.settle(together=True)
    assert list(h.bodies) == [b] and h.reason(b) == Reason.READY.value
    assert h.clickhouse.allow_list(SERVICE_A) == [endpoint.id]
    assert patches(h) == written
    assert any("used by ns/b" in e.message for e in h.posted("AllowListKept"))


async def test_a_refused_patch_fails_the_pass_that_asked_and_the_next_pass_adds_the_entry() -> None:
    h = Harness(batch_window=0.05)
    refused = ClickHouseApiError(status=400, message="refused", operation="update_private_endpoint_ids")
    h.clickhouse.fail_patches.append(refused)
    a = h.create("a", service_id=SERVICE_A)
    await h.run(a)
    assert h.reason(a, ConditionType.ALLOW_LISTED) == Reason.CLICKHOUSE_REQUEST_REJECTED.value
    assert h.clickhouse.allow_list(SERVICE_A) == []
    await h.settle()
    (endpoint,) = h.aws.endpoints.values()
    assert h.clickhouse.allow_list(SERVICE_A) == [endpoint.id]
    ready = h.ready(a)
    assert ready is not None and ready["status"] == "True"


async def test_a_user_leaving_and_one_joining_one_entry_in_the_same_round_keep_it() -> None:
    cloud, api, worker = setup()
    cloud._set(SERVICE_A, ["vpce-1"])
    leaving = replace(user(0, endpoint=1), deleting=True)
    joining = user(1)
    release = AllowRequest(AllowKind.RELEASE, leaving, "vpce-1", [leaving])  # its pass saw no other user
    results = await asyncio.gather(worker.ask(release, max_age=10.0), worker.ask(add(joining), max_age=10.0))
    assert [r.outcome for r in results] == [AllowOutcome.KEPT, AllowOutcome.LISTED]
    assert api.patches == [] and cloud.allow_list(SERVICE_A) == ["vpce-1"]
