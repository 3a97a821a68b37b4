"""One worker per private zone: the passes ask, the worker decides the zone's records and writes them.

A pass that needs its record written or let go enqueues a ``RecordRequest`` (after its intent is durable) and
awaits its result. The worker gathers requests into **rounds**: a round starts once the zone has been quiet for
``batch_window`` seconds (not quiet while its shared listing is being read: the passes waiting for it ask
next), ``max_window`` seconds after the first request waiting, or at once when the requests
gathered fill a Route 53 request by its limits (waiting longer could not make it fewer calls: a request that
would not fit starts the next gathering). A round takes every gathering that filled a request, or else every
request gathered so far; reads the zone's listing once, asks ``decisions.zone_records`` for one plan,
sends its changes in one ``submit_records`` (split only by Route 53's limits, and in halves on a failure) and
hands each request its result, or the error of the change its result depends on.

Rounds of one zone never overlap, and this process writes a zone's records only here: the listing a round reads
is changed by nobody else of ours, so the per-record locks and the retry of a CREATE that lost a race are gone.
(A record written since by someone else, another cluster or a person, still makes a CREATE fail: the failed
request gets the error, and the zone's next round reads the listing fresh.)

The zone itself is made and deleted here too. A release of the zone (``zone_records.zone_release``) is a request
of the same rounds: when the plan finds no live user left and the zone holding only its SOA and NS once the
round's changes are through, the round deletes it after those changes, if its tags say this cluster made it.
Before a zone exists its key is (VPC region, VPC, name): ``ZoneCreator`` finds it or makes it, once, for every
pass that found none in the shared read.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_privatelink.adapters.aws.route53 import (
    MAX_RECORD_ELEMENTS,
    MAX_VALUE_CHARACTERS,
    ObservedZone,
    change_size,
    name_key,
    record_changes,
    records_at,
)
from clickhouse_privatelink.decisions.ownership import is_managed_zone, zone_tags
from clickhouse_privatelink.decisions.plan import ObservedRecords
from clickhouse_privatelink.decisions.zone_records import (
    RecordOutcome,
    RecordRequest,
    RecordResult,
    RecordWrite,
    ZoneChange,
    host_key,
    plan_zone_records,
)
from clickhouse_privatelink.engine import crash_points as crash
from clickhouse_privatelink.engine.crash_points import Wrote
from clickhouse_privatelink.engine.ports import AwsError, AwsPort
from clickhouse_privatelink.engine.rounds import PerGateway, run_round

log = logging.getLogger(__name__)


def deletions(sets: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The changes that delete the operator's sets of a name: its alias A record and its TXT marker."""
    return [{"Action": "DELETE", "ResourceRecordSet": rs} for rs in sets if rs["Type"] in ("A", "TXT")]


@dataclass
class _Waiting:
    request: RecordRequest
    max_age: float
    done: asyncio.Future[RecordResult]


class ZoneWorker:
    """The rounds of one zone of one AWS gateway (see the module docstring)."""

    def __init__(
        self, aws: AwsPort, zone_id: str, cluster: str, *, batch_window: float, max_window: float
    ) -> None:
        self.aws = aws
        self.zone_id = zone_id
        self.cluster = cluster
        self.batch_window = batch_window
        self.max_window = max(max_window, batch_window)
        self._queue: list[_Waiting] = []  # the requests gathering now
        self._first = 0.0  # when the first of them came (loop time)
        self._last = 0.0  # when the latest came
        self._records = 0  # what they would take of one Route 53 request
        self._characters = 0
        self._full: list[_Waiting] = []  # gatherings that filled a request: due as soon as no round runs
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None
        self._fresh = False  # a change failed: the next round reads the zone now

    async def ask(self, request: RecordRequest, *, max_age: float) -> RecordResult:
        """The request's result, from the zone's next round; the error of the change it depends on, raised.

        ``max_age``: how old a listing the asking pass accepts (the round reads the youngest asked for).
        """
        loop = asyncio.get_running_loop()
        records, characters = _estimate(request, self.cluster)
        if self._queue and not _fits(self._records + records, self._characters + characters):
            # The requests gathered fill a Route 53 request: waiting longer cannot make them fewer calls.
            self._full.extend(self._queue)
            self._queue, self._records, self._characters = [], 0, 0
        now = loop.time()
        if not self._queue:
            self._first = now
        self._last = now
        done: asyncio.Future[RecordResult] = loop.create_future()
        self._queue.append(_Waiting(request, max_age, done))
        self._records += records
        self._characters += characters
        if request.zone:
            # A release of the zone itself gathers nothing worth waiting for: due as soon as no round runs. (In
            # a mass deletion every leaving pass that finds the zone empty asks it and waits for its answer: the
            # quiet gap never came while passes kept arriving, and they all waited out the longest window.)
            self._full.extend(self._queue)
            self._queue, self._records, self._characters = [], 0, 0
        self._schedule()
        return await asyncio.shield(done)

    def _schedule(self) -> None:
        """Start the next round when it is due (after the round running, if one is)."""
        if self._running is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._full:
            self._start()
        elif self._queue:
            due = min(self._last + self.batch_window, self._first + self.max_window)
            self._timer = asyncio.get_running_loop().call_at(due, self._start)

    def _start(self) -> None:
        self._timer = None
        if self._running is not None:
            return
        if not self._full and self._queue and self.aws.reading_records(self.zone_id):
            # Passes waiting for the zone's listing have not asked yet: the gap is not quiet while it is read
            # (a listing of thousands of records may take longer than the gap; the round would go half full).
            loop = asyncio.get_running_loop()
            now, limit = loop.time(), self._first + self.max_window
            if now < limit:
                self._timer = loop.call_at(min(now + self.batch_window, limit), self._start)
                return
        if self._full:  # the gathering now goes on gathering
            batch, self._full = self._full, []
        elif self._queue:
            batch, self._queue = self._queue, []
            self._records = self._characters = 0
        else:
            return
        self._running = asyncio.ensure_future(self._round(batch))
        self._running.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running = None
        if not task.cancelled() and task.exception() is not None:
            log.error("zone %s: a round failed: %s", self.zone_id, task.exception())
        self._schedule()  # requests that came during the round: their window began when they came

    async def _round(self, batch: list[_Waiting]) -> None:
        await run_round(self._decide_and_write(batch), [w.done for w in batch])

    async def _decide_and_write(self, batch: list[_Waiting]) -> None:
        requests = [w.request for w in batch]
        max_age = 0.0 if self._fresh else min(w.max_age for w in batch)
        named = await self.aws.zone_names(self.zone_id, max_age=max_age)
        listing: dict[str, ObservedRecords] | None = None
        kinds: dict[str, frozenset[str]] | None = None
        if named is not None:
            if any(r.sweep for r in requests):  # a sweep looks at every name of the zone
                listing = {host_key(name): records_at(sets, name)[0] for name, sets in named.items()}
            else:
                listing = {
                    host_key(r.hostname): records_at(named.get(name_key(r.hostname), []), r.hostname)[0]
                    for r in requests
                    if not r.zone
                }
            if any(r.zone for r in requests):  # a zone release looks at every name's record types
                kinds = {host_key(name): frozenset(rs["Type"] for rs in sets) for name, sets in named.items()}
        plan = plan_zone_records(self.cluster, self.zone_id, requests, listing, kinds)
        groups = [self._changes(change, named or {}) for change in plan.changes]
        sent = [i for i, group in enumerate(groups) if group]
        errors: dict[int, AwsError] = {}
        if sent:
            outcome = await self.aws.submit_records(self.zone_id, [groups[i] for i in sent])
            errors = {i: error for i, error in zip(sent, outcome, strict=True) if error is not None}
        self._fresh = bool(errors)
        results = list(plan.results)
        deleter = plan.delete_zone
        failed: AwsError | None = None  # the zone's deletion: its request's alone (the others have theirs)
        if deleter is not None and not errors:
            try:
                results[deleter] = await self._delete_zone(batch[deleter].request, results[deleter])
            except AwsError as exc:
                failed = exc
        for n, (waiting, result) in enumerate(zip(batch, results, strict=True)):
            if waiting.done.done():
                continue
            error = next((errors[i] for i in result.changes if i in errors), None)
            if n == deleter and failed is not None:
                waiting.done.set_exception(failed)
            elif error is not None:
                waiting.done.set_exception(error)
            else:
                waiting.done.set_result(result)

    async def _delete_zone(self, request: RecordRequest, planned: RecordResult) -> RecordResult:
        """Delete the zone the plan let go of, if its tags (or, untagged, its comment) say this cluster made it
        (an AWS error: raised, for the request the deletion is for)."""
        zone = await self.aws.zone(self.zone_id, with_tags=True)
        if zone is None:
            return RecordResult(RecordOutcome.NOTHING, planned.reason, "")
        if not is_managed_zone(zone.tags, zone.comment_tags, self.cluster):
            why = f"the private zone {zone.name} ({zone.id}) was not made by this operator: left in place"
            return RecordResult(RecordOutcome.LEFT, planned.reason, why)
        # Route 53 refuses a zone that holds records (someone outside this process wrote one since the read).
        if not await self.aws.delete_zone_if_empty(zone.id, vpc_id=request.me.vpc_id, name=zone.name):
            why = f"the private zone {zone.name} ({zone.id}) holds records: left in place"
            return RecordResult(RecordOutcome.LEFT, planned.reason, why)
        self._fresh = True  # the listing kept is of a zone that is gone: a later round reads afresh
        return RecordResult(
            planned.outcome, planned.reason, f"deleted the private zone {zone.name} ({zone.id})"
        )

    def _changes(self, change: ZoneChange, named: Mapping[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        if isinstance(change, RecordWrite):
            return record_changes(
                change.hostname,
                change.target,
                cluster=self.cluster,
                vpc_id=change.vpc_id,
                create=change.create,
            )
        return deletions(named.get(name_key(change.hostname), []))


def _fits(records: int, characters: int) -> bool:
    """Whether changes of this size go in one request by Route 53's limits."""
    return records <= MAX_RECORD_ELEMENTS and characters <= MAX_VALUE_CHARACTERS


def _estimate(request: RecordRequest, cluster: str) -> tuple[int, int]:
    """What a request's change would take of a Route 53 request (its record's marker and alias)."""
    if request.zone:
        return 0, 0
    target = request.target or ("", "")
    changes = record_changes(request.hostname, target, cluster=cluster, vpc_id=request.me.vpc_id, create=True)
    sizes = [change_size(c) for c in changes]
    return sum(r for r, _ in sizes), sum(c for _, c in sizes)


@dataclass(frozen=True)
class ZoneFound:
    """A creator's answer: the zone, and whether this request's round created it (else found it)."""

    zone: ObservedZone
    created: bool


class ZoneCreator:
    """The private zone ``name`` of one VPC before it exists: found, or created once, for the passes that ask.

    A round reads the VPC's zones afresh (the gateway never keeps "no zone") and creates the zone, tagged as this
    cluster's, only when none is there. A pass asking while a round runs waits for that round: it too found no
    zone before asking, and the round's zone serves it. The pass that started the round is told whether it
    created the zone (it reports it). A process killed after the create leaves a zone the next one finds by
    name and VPC (Route 53 refuses a second of the same name for the VPC: the adapter then uses the first).
    """

    def __init__(self, aws: AwsPort, cluster: str, *, vpc_region: str, vpc_id: str, name: str) -> None:
        self.aws = aws
        self.cluster = cluster
        self.vpc_region = vpc_region
        self.vpc_id = vpc_id
        self.name = name
        self._running: asyncio.Task[ZoneFound] | None = None

    @property
    def running(self) -> bool:
        """Whether a round runs now: a pass asking now waits for it and starts no create of its own."""
        return self._running is not None

    async def ask(self, wrote: Wrote = crash.never) -> ZoneFound:
        """The zone, found or created by the round running (or one started now); an AWS error, raised.
        ``wrote``: the asking pass's crash-point hook, told when a round it starts has made the zone, untagged."""
        running = self._running
        if running is not None:
            found = await asyncio.shield(running)
            return ZoneFound(found.zone, created=False)
        running = self._running = asyncio.ensure_future(self._round(wrote))
        running.add_done_callback(self._finished)
        return await asyncio.shield(running)

    def _finished(self, task: asyncio.Task[ZoneFound]) -> None:
        self._running = None
        if not task.cancelled() and task.exception() is not None:  # (retrieved: every waiter has it)
            log.info("zone %s of %s: not made: %s", self.name, self.vpc_id, task.exception())

    async def _round(self, wrote: Wrote) -> ZoneFound:
        zone = await self.aws.private_zone(
            self.name, vpc_id=self.vpc_id, vpc_region=self.vpc_region, max_age=0.0
        )
        if zone is not None:
            return ZoneFound(zone, created=False)
        zone = await self.aws.create_private_zone(
            self.name,
            vpc_id=self.vpc_id,
            vpc_region=self.vpc_region,
            tags=zone_tags(self.cluster, self.vpc_id),
            caller_reference=f"chpl-{uuid.uuid4()}",
            created=lambda: wrote(crash.ZONE_CREATE_UNTAGGED),
        )
        return ZoneFound(zone, created=True)


class ZoneWorkers:
    """The process's zone workers, one per (AWS gateway, zone), and zone creators, one per (AWS gateway, VPC
    region, VPC, zone name), each made on first use (wiring/state.py holds it)."""

    def __init__(self, *, batch_window: float = 0.2, max_window: float = 15.0) -> None:
        self.batch_window = batch_window
        self.max_window = max_window
        self._workers: PerGateway[ZoneWorker] = PerGateway()
        self._creators: PerGateway[ZoneCreator] = PerGateway()

    def creator(self, aws: AwsPort, cluster: str, *, vpc_region: str, vpc_id: str, name: str) -> ZoneCreator:
        return self._creators.get(
            aws,
            (vpc_region, vpc_id, name.lower()),
            lambda: ZoneCreator(aws, cluster, vpc_region=vpc_region, vpc_id=vpc_id, name=name),
        )

    def get(self, aws: AwsPort, zone_id: str, cluster: str) -> ZoneWorker:
        return self._workers.get(
            aws,
            zone_id,
            lambda: ZoneWorker(
                aws, zone_id, cluster, batch_window=self.batch_window, max_window=self.max_window
            ),
        )


__all__ = ["ZoneCreator", "ZoneFound", "ZoneWorker", "ZoneWorkers", "deletions"]
