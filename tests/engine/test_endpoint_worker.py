"""An endpoint key's worker (engine/endpoint_worker.py) over the in-memory AWS: rounds that never overlap, one
write per round, what a failed write does; and through whole passes: sharing, the last user leaving, a Retain
and a Delete leaving together, every user leaving at once, a kill right after the create, and the steady
state asking nothing (Retain alone, shared and taken over: test_sharing.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.decisions.endpoints import (
    EndpointAnswer,
    EndpointKind,
    EndpointOutcome,
    EndpointRequest,
    KeyAction,
)
from clickhouse_privatelink.decisions.plan import DesiredEndpoint, ObservedEndpoint
from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from clickhouse_privatelink.decisions.usage import EndpointKey, Usage
from clickhouse_privatelink.engine import crash_points as crash
from clickhouse_privatelink.engine.endpoint_worker import EndpointWorker
from clickhouse_privatelink.engine.ports import AwsError
from tests.engine.fakes import AwsCloud, Clock, FakeAws, aws_error
from tests.engine.harness import (
    CLUSTER,
    ENDPOINT_SERVICE,
    GROUP,
    PASS_INTERVAL,
    REGION,
    SERVICE_A,
    SERVICE_B,
    SERVICES,
    SUBNETS,
    VPC_A,
    Harness,
)
from tests.fixtures.polling import until

KEY = EndpointKey(CLUSTER, REGION, VPC_A, ENDPOINT_SERVICE, REGION)


class GatedAws(FakeAws):
    """The in-memory AWS, counting creates in flight; ``gate`` (when set) holds each create until the test
    opens it, and ``refuse`` (when set) refuses the next create."""

    def __init__(self, cloud: AwsCloud, clock: Clock) -> None:
        super().__init__(cloud, clock)
        self.gate: asyncio.Event | None = None
        self.refuse: AwsError | None = None
        self.in_flight = 0
        self.most_in_flight = 0
        self.read_ages: list[float] = []

    async def endpoints(self, vpc_id: str, *, max_age: float) -> list[ObservedEndpoint]:
        self.read_ages.append(max_age)
        return await super().endpoints(vpc_id, max_age=max_age)

    async def create_endpoint(
        self, desired: DesiredEndpoint, *, tags: dict[str, str], client_token: str
    ) -> ObservedEndpoint:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.refuse is not None:
                refused, self.refuse = self.refuse, None
                raise refused
            return await super().create_endpoint(desired, tags=tags, client_token=client_token)
        finally:
            self.in_flight -= 1


def setup() -> tuple[AwsCloud, GatedAws, EndpointWorker]:
    cloud = AwsCloud()
    aws = GatedAws(cloud, Clock())
    return cloud, aws, EndpointWorker(aws, KEY)


def user(n: int, **values: Any) -> Usage:
    base = Usage(
        uid=f"u{n}",
        resource=f"ns/u{n}",
        created=f"2026-01-01T00:00:{n:02d}Z",
        deleting=False,
        region=REGION,
        vpc_id=VPC_A,
        subnet_ids=SUBNETS,
        security_group_ids=(GROUP,),
        endpoint_service_id=ENDPOINT_SERVICE,
        service_region=REGION,
    )
    return replace(base, **values)


def apply(n: int) -> EndpointRequest:
    return EndpointRequest(EndpointKind.APPLY, user(n))


def calls(h: Harness, call: str) -> int:
    return len([w for w in h.aws.writes if w[0] == call])


# ---- the worker alone


async def test_users_asking_together_are_one_round_and_one_create() -> None:
    cloud, aws, worker = setup()
    answers = await asyncio.gather(*(worker.ask(apply(n), max_age=10.0) for n in range(5)))
    (endpoint,) = cloud.endpoints.values()
    assert [a.endpoint.id if a.endpoint else None for a in answers] == [endpoint.id] * 5
    assert [a.write for a in answers] == [KeyAction.CREATE, None, None, None, None]  # the oldest reports it
    assert endpoint.tags[c.TAG_ENDPOINT_KEY] == KEY.digest
    assert aws.read_ages == [10.0, 0.0]  # the shared read, then a fresh one before the create
    assert not worker.busy


async def test_rounds_of_a_key_never_overlap_and_requests_during_one_wait_for_the_next() -> None:
    cloud, aws, worker = setup()
    aws.gate = asyncio.Event()
    first = asyncio.ensure_future(worker.ask(apply(0), max_age=10.0))
    await until(lambda: aws.in_flight == 1)  # the first round's create is under way
    later = [asyncio.ensure_future(worker.ask(apply(n), max_age=10.0)) for n in (1, 2)]
    await until(lambda: len(worker._queue) == 2)
    assert worker.busy
    aws.gate.set()
    created = await first
    answers = await asyncio.gather(*later)
    assert created.write is KeyAction.CREATE and [a.write for a in answers] == [None, None]
    assert aws.most_in_flight == 1 and len(cloud.endpoints) == 1
    assert created.endpoint is not None
    assert [a.endpoint.id if a.endpoint else None for a in answers] == [created.endpoint.id] * 2


async def test_a_refused_create_fails_every_request_of_its_round_and_the_next_round_reads_fresh() -> None:
    cloud, aws, worker = setup()
    aws.refuse = aws_error("VpcEndpointLimitExceeded", "too many")
    results = await asyncio.gather(
        *(worker.ask(apply(n), max_age=10.0) for n in (0, 1)), return_exceptions=True
    )
    assert all(isinstance(r, AwsError) for r in results) and cloud.endpoints == {}
    aws.read_ages.clear()
    answer = await worker.ask(apply(0), max_age=10.0)
    assert answer.write is KeyAction.CREATE and aws.read_ages[0] == 0.0


async def test_a_user_leaving_while_another_asks_keeps_the_endpoint() -> None:
    cloud, _, worker = setup()
    made = await worker.ask(apply(0), max_age=10.0)
    assert made.endpoint is not None
    cloud.settle()
    leaving = EndpointRequest(EndpointKind.RELEASE, user(0, deleting=True))
    answers: list[EndpointAnswer] = list(
        await asyncio.gather(worker.ask(leaving, max_age=10.0), worker.ask(apply(1), max_age=10.0))
    )
    assert answers[0].outcome is EndpointOutcome.KEPT and answers[1].endpoint is not None
    assert cloud.endpoints[made.endpoint.id].state == "available"


async def test_a_round_plans_from_the_users_as_they_are_when_it_runs() -> None:
    """Users leaving together that named only one another keep the endpoint for a live user of the key the
    process knows of when the round runs (the view each asks with), and it goes once that one leaves too."""
    cloud, _, worker = setup()
    made = await worker.ask(apply(0), max_age=10.0)
    assert made.endpoint is not None
    cloud.settle()
    view = [user(n) for n in range(5)]

    def users_now() -> list[Usage]:
        return list(view)

    leaving = [EndpointRequest(EndpointKind.RELEASE, user(n, deleting=True)) for n in range(4)]
    view[:4] = [user(n, deleting=True) for n in range(4)]
    answers = await asyncio.gather(*(worker.ask(r, max_age=10.0, users=users_now) for r in leaving))
    assert {a.outcome for a in answers} == {EndpointOutcome.KEPT}
    assert cloud.endpoints[made.endpoint.id].state == "available"
    view[4] = user(4, deleting=True)
    last = await worker.ask(
        EndpointRequest(EndpointKind.RELEASE, user(4, deleting=True)), max_age=10.0, users=users_now
    )
    assert last.write is KeyAction.DELETE and cloud.endpoints[made.endpoint.id].state == "deleting"


# ---- whole passes


async def test_two_resources_asking_together_share_one_endpoint_made_once() -> None:
    h = Harness()
    a = h.create("a", service_id=SERVICE_A)
    b = h.create("b", service_id=SERVICE_B)
    await h.settle(together=True)
    (endpoint,) = h.aws.endpoints.values()
    assert h.status(a)["vpcEndpointId"] == h.status(b)["vpcEndpointId"] == endpoint.id
    assert calls(h, "CreateVpcEndpoint") == 1 and len(h.posted("EndpointCreated")) == 1


async def test_the_steady_state_asks_the_worker_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness()
    uids = [h.create(f"r{n}", service_id=(SERVICE_A, SERVICE_B)[n % 2]) for n in range(6)]
    await h.settle(together=True)
    asked: list[EndpointRequest] = []
    ask = EndpointWorker.ask

    async def counted(self: EndpointWorker, request: EndpointRequest, *, max_age: float) -> EndpointAnswer:
        asked.append(request)
        return await ask(self, request, max_age=max_age)

    monkeypatch.setattr(EndpointWorker, "ask", counted)
    writes = list(h.aws.writes)
    h.clock.advance(PASS_INTERVAL)
    outcomes = await asyncio.gather(*(h.run(uid) for uid in uids))  # drift passes, side by side
    assert all(o is not None and o.done for o in outcomes)
    assert asked == [] and h.aws.writes == writes


async def test_the_last_user_leaving_deletes_the_endpoint_and_goes_once_aws_has_deleted_it() -> None:
    h = Harness()
    a = h.create("a")
    await h.settle()
    (endpoint,) = h.aws.endpoints.values()
    h.delete(a)
    h.clock.advance(PASS_INTERVAL)
    await h.run(a)
    assert h.aws.endpoints[endpoint.id].state == "deleting" and a in h.bodies  # it waits for AWS
    assert h.reason(a, ConditionType.VPC_ENDPOINT_READY) == Reason.DELETING.value
    await h.settle()
    assert h.bodies == {} and h.aws.endpoints == {} and calls(h, "DeleteVpcEndpoints") == 1


async def test_every_user_leaving_at_once_is_one_delete_and_only_the_oldest_waits_for_aws() -> None:
    h = Harness()
    uids = [h.create(f"r{n:02d}", service_id=(SERVICE_A, SERVICE_B)[n % 2]) for n in range(12)]
    await h.settle(together=True)
    (endpoint,) = h.aws.endpoints.values()
    for uid in uids:
        h.delete(uid)
    h.clock.advance(PASS_INTERVAL)
    await asyncio.gather(*(h.run(uid) for uid in uids))  # every cleanup side by side, AWS still deleting
    assert h.aws.endpoints[endpoint.id].state == "deleting"
    assert list(h.bodies) == [uids[0]]  # the oldest stays until AWS is done
    assert calls(h, "DeleteVpcEndpoints") == 1 and len(h.posted("EndpointDeleting")) == 1
    await h.settle()
    assert h.bodies == {} and h.aws.endpoints == {} and h.aws.zones == {}
    assert all(h.clickhouse.allow_list(s) == [] for s in SERVICES)
    assert h.clickhouse.organization_entries == []


async def test_a_retain_and_a_delete_leaving_together_leave_the_endpoint_marked() -> None:
    h = Harness()
    a = h.create("a", service_id=SERVICE_A, retain=True)
    b = h.create("b", service_id=SERVICE_B)
    await h.settle()
    h.delete(a)
    h.delete(b)
    await h.settle()
    (endpoint,) = h.aws.endpoints.values()
    assert h.bodies == {} and endpoint.tags[c.TAG_RETAINED] == "ns/a" and endpoint.state == "available"


async def test_killed_right_after_a_create_asked_by_two_the_next_process_makes_no_second() -> None:
    h = Harness()
    a = h.create("a", service_id=SERVICE_A)
    b = h.create("b", service_id=SERVICE_B)
    h.crash_after(crash.ENDPOINT_CREATE)
    await h.settle(together=True)
    assert h.crashes == [crash.ENDPOINT_CREATE]
    (endpoint,) = h.aws.endpoints.values()
    assert h.status(a)["vpcEndpointId"] == h.status(b)["vpcEndpointId"] == endpoint.id
    assert calls(h, "CreateVpcEndpoint") == 1
    h.delete(a)
    h.delete(b)
    await h.settle()
    assert h.bodies == {} and h.aws.endpoints == {}


class HeldAws(FakeAws):
    """The in-memory AWS whose next read of a VPC's endpoints, once armed, answers what it read only when the
    test lets it go (a read that a round's write overtakes)."""

    def __init__(self, cloud: AwsCloud, clock: Clock) -> None:
        super().__init__(cloud, clock)
        self.armed = False
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def endpoints(self, vpc_id: str, *, max_age: float) -> list[ObservedEndpoint]:
        found = await super().endpoints(vpc_id, max_age=max_age)
        if self.armed:
            self.armed = False
            self.held.set()
            await self.release.wait()
        return found


async def test_a_pass_whose_read_a_rounds_write_overtook_asks_rather_than_trusting_it() -> None:
    h = Harness()
    a = h.create("a")
    await h.settle()
    (old,) = h.aws.endpoints.values()
    aws = h.aws_view = HeldAws(h.aws, h.clock)
    h.clock.advance(PASS_INTERVAL)
    aws.armed = True
    drift = asyncio.ensure_future(h.run(a))  # its read of the endpoints is held, showing the endpoint ready
    await until(aws.held.is_set)
    # Meanwhile a round deletes the endpoint (a stale view of its users: nobody live).
    leaving = user(0, uid="z", resource="ns/z", deleting=True)
    worker = h.reconciler.endpoints.get(aws, KEY)
    answer = await worker.ask(EndpointRequest(EndpointKind.RELEASE, leaving), max_age=0.0)
    assert answer.write is KeyAction.DELETE and h.aws.endpoints[old.id].state == "deleting"
    aws.release.set()
    await drift
    # The pass did not report the endpoint Ready from its old read: it asked, and the round found it deleting.
    assert h.reason(a, ConditionType.VPC_ENDPOINT_READY) == Reason.ENDPOINT_PENDING.value
    ready = h.ready(a)
    assert ready is not None and ready["status"] == "False"
    h._settled.discard(a)
    await h.settle()  # once AWS has deleted it, the key's round makes another
    assert h.status(a)["vpcEndpointId"] != old.id and calls(h, "CreateVpcEndpoint") == 2
