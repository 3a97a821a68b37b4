"""One worker per private zone: the passes ask, the worker decides the zone's records and writes them.

A pass that needs its record written or let go enqueues a ``RecordRequest`` (after its intent is durable) and
awaits its result. The worker gathers requests into **rounds**: a round starts once the zone has been quiet for
``batch_window`` seconds, ``max_window`` seconds after the first request waiting, or at once when the requests
gathered fill a Route 53 request by its limits (waiting longer could not make it fewer calls: a request that
would not fit starts the next gathering). A round takes every gathering that filled a request, or else every
request gathered so far; reads the zone's listing once, asks ``decisions.zone_records`` for one plan,
sends its changes in one ``submit_records`` (split only by Route 53's limits, and in halves on a failure) and
hands each request its result, or the error of the change its result depends on.

Rounds of one zone never overlap, and this process writes a zone's records only here: the listing a round reads
is changed by nobody else of ours, so the per-record locks and the retry of a CREATE that lost a race are gone.
(A record written since by someone else, another cluster or a person, still makes a CREATE fail: the failed
request gets the error, and the zone's next round reads the listing fresh.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_privatelink.adapters.aws.route53 import (
    MAX_RECORD_ELEMENTS,
    MAX_VALUE_CHARACTERS,
    change_size,
    name_key,
    record_changes,
    records_at,
)
from clickhouse_privatelink.decisions.plan import ObservedRecords
from clickhouse_privatelink.decisions.zone_records import (
    RecordRequest,
    RecordResult,
    RecordWrite,
    ZoneChange,
    host_key,
    plan_zone_records,
)
from clickhouse_privatelink.engine.ports import AwsError, AwsPort

log = logging.getLogger(__name__)


def deletions(sets: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The changes that delete the operator's sets of a name: its alias A record and its TXT marker."""
    return [{"Action": "DELETE", "ResourceRecordSet": rs} for rs in sets if rs["Type"] in ("A", "TXT")]


async def run_round(work: Awaitable[None], waiting: Sequence[asyncio.Future[Any]]) -> None:
    """Run a worker's round; when it fails, every request it has not answered gets its error (or is cancelled
    with it), and a cancellation goes on up. The zone's and the allow list's workers both run theirs so."""
    try:
        await work
    except BaseException as exc:
        for done in waiting:
            if not done.done():
                if isinstance(exc, Exception):
                    done.set_exception(exc)
                else:
                    done.cancel()
        if not isinstance(exc, Exception):
            raise


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
        if named is not None:
            if any(r.sweep for r in requests):  # a sweep looks at every name of the zone
                listing = {host_key(name): records_at(sets, name)[0] for name, sets in named.items()}
            else:
                listing = {
                    host_key(r.hostname): records_at(named.get(name_key(r.hostname), []), r.hostname)[0]
                    for r in requests
                }
        plan = plan_zone_records(self.cluster, self.zone_id, requests, listing)
        groups = [self._changes(change, named or {}) for change in plan.changes]
        sent = [i for i, group in enumerate(groups) if group]
        errors: dict[int, AwsError] = {}
        if sent:
            outcome = await self.aws.submit_records(self.zone_id, [groups[i] for i in sent])
            errors = {i: error for i, error in zip(sent, outcome, strict=True) if error is not None}
        self._fresh = bool(errors)
        for waiting, result in zip(batch, plan.results, strict=True):
            if waiting.done.done():
                continue
            error = next((errors[n] for n in result.changes if n in errors), None)
            if error is not None:
                waiting.done.set_exception(error)
            else:
                waiting.done.set_result(result)

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
    target = request.target or ("", "")
    changes = record_changes(request.hostname, target, cluster=cluster, vpc_id=request.me.vpc_id, create=True)
    sizes = [change_size(c) for c in changes]
    return sum(r for r, _ in sizes), sum(c for _, c in sizes)


class ZoneWorkers:
    """The process's zone workers, one per (AWS gateway, zone), made on first use (wiring/state.py holds it)."""

    def __init__(self, *, batch_window: float = 0.2, max_window: float = 15.0) -> None:
        self.batch_window = batch_window
        self.max_window = max_window
        self._workers: dict[tuple[int, str], tuple[AwsPort, ZoneWorker]] = {}

    def get(self, aws: AwsPort, zone_id: str, cluster: str) -> ZoneWorker:
        key = (id(aws), zone_id)
        held = self._workers.get(key)
        if held is None or held[0] is not aws:
            worker = ZoneWorker(
                aws, zone_id, cluster, batch_window=self.batch_window, max_window=self.max_window
            )
            held = self._workers[key] = (aws, worker)
        return held[1]


__all__ = ["ZoneWorker", "ZoneWorkers", "deletions"]
