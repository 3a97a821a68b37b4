"""A zone's worker (engine/zone_worker.py) over the in-memory AWS: how requests gather into rounds, one
write per round, and what a failed change does to the requests in it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from clickhouse_privatelink.adapters.aws import route53 as route53_api
from clickhouse_privatelink.decisions.usage import Usage
from clickhouse_privatelink.decisions.zone_records import RecordOutcome, RecordRequest, zone_release
from clickhouse_privatelink.engine.ports import AwsError
from clickhouse_privatelink.engine.zone_worker import ZoneWorker
from tests.engine.fakes import AwsCloud, Clock, FakeAws, aws_error
from tests.engine.harness import CLUSTER, VPC_A, ZONE_NAME
from tests.fixtures.polling import until

TARGET = ("vpce-1.example.com", "Z1HUB23NMQ6GUK")


class CountingAws(FakeAws):
    """The in-memory AWS, counting the rounds' writes and how many are in flight at once."""

    def __init__(self, cloud: AwsCloud, clock: Clock, *, write_takes: float = 0.0) -> None:
        super().__init__(cloud, clock)
        self.write_takes = write_takes
        self.in_flight = 0
        self.most_in_flight = 0
        self.submitted: list[int] = []  # groups per submit_records

    async def submit_records(
        self, zone_id: str, groups: Sequence[Sequence[dict[str, Any]]]
    ) -> list[AwsError | None]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.write_takes)  # the call to Route 53 takes a while
            self.submitted.append(len(groups))
            return await super().submit_records(zone_id, groups)
        finally:
            self.in_flight -= 1


def setup(
    *, batch_window: float = 0.05, max_window: float = 5.0, write_takes: float = 0.0
) -> tuple[AwsCloud, CountingAws, ZoneWorker]:
    cloud = AwsCloud()
    zone = cloud.add_zone(ZONE_NAME, vpc_ids={VPC_A})
    aws = CountingAws(cloud, Clock(), write_takes=write_takes)
    worker = ZoneWorker(aws, zone.id, CLUSTER, batch_window=batch_window, max_window=max_window)
    return cloud, aws, worker


def user(n: int) -> Usage:
    return Usage(
        uid=f"u{n}",
        resource=f"ns/u{n}",
        created="2026-01-01T00:00:00Z",
        deleting=False,
        region="us-east-1",
        vpc_id=VPC_A,
        hostname=f"h{n}.{ZONE_NAME}",
    )


def ask(worker: ZoneWorker, n: int) -> Any:
    me = user(n)
    return worker.ask(RecordRequest(me, me.hostname or "", TARGET), max_age=10.0)


async def test_requests_within_the_quiet_gap_are_one_round_and_one_write() -> None:
    cloud, aws, worker = setup()
    results = await asyncio.gather(*(ask(worker, n) for n in range(5)))
    assert [r.outcome for r in results] == [RecordOutcome.WRITTEN] * 5
    assert aws.submitted == [5]
    assert aws.calls.count("ListResourceRecordSets") == 1
    (zone,) = cloud.zones.values()
    assert len(cloud.record_sets(zone.id, f"h4.{ZONE_NAME}")) == 2


async def test_a_steady_stream_of_requests_waits_at_most_the_longest_window() -> None:
    _, aws, worker = setup(batch_window=0.1, max_window=0.5)

    async def one_every_50_ms(n: int) -> None:
        await asyncio.sleep(n * 0.05)  # a stream of arrivals, never quiet for the 0.1 s window
        await ask(worker, n)

    await asyncio.gather(*(one_every_50_ms(n) for n in range(20)))
    # 1 s of arrivals cut by the 0.5 s longest window: two or three rounds, not one per record.
    assert 2 <= len(aws.submitted) <= 3 and sum(aws.submitted) == 20


async def test_requests_filling_a_route53_request_start_their_round_at_once_without_the_next() -> None:
    _, aws, worker = setup(batch_window=60.0, max_window=60.0)
    txt = route53_api.record_changes(f"h0.{ZONE_NAME}", TARGET, cluster=CLUSTER, vpc_id=VPC_A, create=True)[0]
    fit = route53_api.MAX_VALUE_CHARACTERS // route53_api.change_size(txt)[1]
    asked = [asyncio.ensure_future(ask(worker, n)) for n in range(fit + 1)]
    try:
        # the request that does not fit starts the next gathering, and the full one goes at once
        results = await asyncio.wait_for(asyncio.gather(*asked[:fit]), timeout=10)
        assert all(r.outcome is RecordOutcome.WRITTEN for r in results)
        assert aws.submitted == [fit] and not asked[fit].done()
    finally:
        asked[fit].cancel()


async def test_a_release_of_the_zone_itself_waits_for_no_window() -> None:
    """Passes leaving an empty zone wait for its answer: its round starts at once, with what gathered before it
    (a mass deletion's leaving passes waited out the longest window behind one another)."""
    cloud, aws, worker = setup(batch_window=60.0, max_window=60.0)
    (zone,) = cloud.zones.values()
    gathered = asyncio.ensure_future(ask(worker, 0))
    await asyncio.sleep(0)
    leaving = replace(user(1), deleting=True)
    result = await asyncio.wait_for(worker.ask(zone_release(leaving, [leaving]), max_age=10.0), timeout=10)
    assert await asyncio.wait_for(gathered, timeout=10) is not None
    assert result.outcome is not None and aws.submitted == [1]
    assert zone.id in cloud.zones  # a record in it: the zone stays


class SlowListingAws(CountingAws):
    """The in-memory AWS whose zone listing takes ``list_takes`` seconds to read (moto lists 1,560 records in
    about 2.6 s), telling the worker while it is in flight, as the gateway's shared read does."""

    def __init__(self, cloud: AwsCloud, clock: Clock, *, list_takes: float) -> None:
        super().__init__(cloud, clock)
        self.list_takes = list_takes
        self.listing = 0

    async def zone_sets(self, zone_id: str, *, max_age: float) -> list[dict[str, Any]] | None:
        self.listing += 1
        try:
            await asyncio.sleep(self.list_takes)
            return await super().zone_sets(zone_id, max_age=max_age)
        finally:
            self.listing -= 1

    def reading_records(self, zone_id: str) -> bool:
        return self.listing > 0


def slow_listing(
    *, batch_window: float, max_window: float, list_takes: float
) -> tuple[SlowListingAws, ZoneWorker]:
    cloud = AwsCloud()
    zone = cloud.add_zone(ZONE_NAME, vpc_ids={VPC_A})
    aws = SlowListingAws(cloud, Clock(), list_takes=list_takes)
    return aws, ZoneWorker(aws, zone.id, CLUSTER, batch_window=batch_window, max_window=max_window)


async def reads_then_asks(aws: FakeAws, worker: ZoneWorker, n: int) -> Any:
    """A pass at its record step: the zone's listing first, then its request."""
    await aws.records(worker.zone_id, f"h{n}.{ZONE_NAME}", max_age=0.0)
    return await ask(worker, n)


async def test_the_gap_is_not_quiet_while_passes_wait_for_the_zone_listing() -> None:
    """A pass reading the listing asks as soon as it has it: a round started while the read takes longer than
    the quiet gap would go without it, and the zone's records would take one more Route 53 call."""
    aws, worker = slow_listing(batch_window=0.03, max_window=5.0, list_takes=0.1)
    results = await asyncio.gather(ask(worker, 0), reads_then_asks(aws, worker, 1))
    assert [r.outcome for r in results] == [RecordOutcome.WRITTEN] * 2
    assert aws.submitted == [2]


async def test_a_listing_read_holds_a_round_back_no_longer_than_the_longest_window() -> None:
    aws, worker = slow_listing(batch_window=0.03, max_window=0.05, list_takes=0.15)
    results = await asyncio.gather(ask(worker, 0), reads_then_asks(aws, worker, 1))
    assert [r.outcome for r in results] == [RecordOutcome.WRITTEN] * 2
    assert aws.submitted == [1, 1]  # the first went at its longest window, before the slow read returned


async def test_rounds_of_a_zone_never_overlap_and_requests_during_one_wait_for_the_next() -> None:
    _, aws, worker = setup(batch_window=0.01, write_takes=0.2)
    first = asyncio.ensure_future(ask(worker, 0))
    await until(lambda: aws.in_flight > 0)  # the first round is writing
    later = await asyncio.gather(*(ask(worker, n) for n in range(1, 4)))
    assert (await first).outcome is RecordOutcome.WRITTEN
    assert all(r.outcome is RecordOutcome.WRITTEN for r in later)
    assert aws.most_in_flight == 1 and aws.submitted == [1, 3]


async def test_a_refused_change_fails_only_its_requests_and_the_next_round_reads_fresh() -> None:
    cloud, aws, worker = setup()
    (zone,) = cloud.zones.values()
    await aws.zone_sets(zone.id, max_age=0)  # the worker's listing, kept
    # written by someone else since the listing: the round's CREATE of h1 is refused
    cloud.change(zone.id, route53_api.record_changes(f"h1.{ZONE_NAME}", TARGET, cluster="other", vpc_id="x"))
    results = await asyncio.gather(*(ask(worker, n) for n in range(3)), return_exceptions=True)
    assert isinstance(results[1], AwsError) and results[1].code == "InvalidChangeBatch"
    assert [getattr(r, "outcome", None) for r in (results[0], results[2])] == [RecordOutcome.WRITTEN] * 2
    reads = aws.calls.count("ListResourceRecordSets")
    again = await ask(worker, 1)
    assert aws.calls.count("ListResourceRecordSets") == reads + 1  # fresh after the failure
    assert again.outcome is RecordOutcome.CONFLICT  # another cluster's record, seen now: never written over


async def test_a_failed_read_of_the_zone_fails_every_request_of_the_round() -> None:
    _, aws, worker = setup()

    async def refused(zone_id: str, *, max_age: float) -> Any:
        raise aws_error("Throttling", "Rate exceeded")

    aws.zone_names = refused  # type: ignore[method-assign]
    results = await asyncio.gather(*(ask(worker, n) for n in range(2)), return_exceptions=True)
    assert all(isinstance(r, AwsError) for r in results)
    with pytest.raises(AwsError):
        await ask(worker, 3)  # the worker goes on: the next round runs (and fails the same way)
