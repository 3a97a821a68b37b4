"""One worker per shared VPC endpoint key: the passes ask, the worker decides the endpoint and writes it.

A pass whose resource needs the key's endpoint made, changed or taken over (after its intent is durable), or
that lets go of it, enqueues an ``EndpointRequest`` and awaits its answer. The worker gathers requests into
**rounds**: a round starts as soon as no round of the key is running (the requests of one loop turn go
together; those that come during a round wait for the next). A round reads the VPC's endpoints once (the
gateway's shared read, as young as the youngest request asks, and fresh before a create or a delete), asks
``decisions.endpoints`` for one plan, makes its one write (create, modify or delete, and the Retain mark put on
or taken off) and hands each request its answer. A failed write or read fails every request of its round,
and the key's next round reads the VPC fresh.

Rounds of one key never overlap, and this process writes a key's endpoint only here: the key is the lock.
Everything a round creates carries the key's tags (``ownership.shared_endpoint_tags``) and a ClientToken of
the key and its oldest user, so a process killed mid-round leaves nothing that the next one's round does not
find and plan again from the index.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.decisions.endpoints import (
    EndpointAnswer,
    EndpointOutcome,
    EndpointPlan,
    EndpointRequest,
    KeyAction,
    plan_endpoint_key,
)
from clickhouse_privatelink.decisions.plan import ObservedEndpoint, plan_endpoint
from clickhouse_privatelink.decisions.usage import EndpointKey, Usage, endpoint_users
from clickhouse_privatelink.engine.ports import AwsPort
from clickhouse_privatelink.engine.zone_worker import run_round

log = logging.getLogger(__name__)


# The key's users as this process knows them when called (the index and the passes' claims: Pass.users).
UsersNow = Callable[[], Iterable[Usage]]


@dataclass
class _Waiting:
    request: EndpointRequest
    max_age: float
    done: asyncio.Future[EndpointAnswer]
    users: UsersNow


class EndpointWorker:
    """The rounds of one endpoint key of one AWS gateway (see the module docstring)."""

    def __init__(self, aws: AwsPort, key: EndpointKey) -> None:
        self.aws = aws
        self.key = key
        self._queue: list[_Waiting] = []  # the requests gathering now
        self._due: asyncio.Handle | None = None
        self._running: asyncio.Task[None] | None = None
        self._fresh = False  # a round failed: the next one reads the VPC now
        # Rounds that wrote (or tried to), counted: a pass that read the VPC while one ran (its read may be from
        # before the write) sees the count moved and asks, rather than deciding from that read.
        self.writes = 0

    @property
    def busy(self) -> bool:
        """Whether a request is gathering or a round is running: a pass then asks rather than deciding alone
        from its shared read (the round may be about to change what it read)."""
        return bool(self._queue) or self._running is not None

    async def ask(
        self, request: EndpointRequest, *, max_age: float, users: UsersNow = tuple
    ) -> EndpointAnswer:
        """The request's answer, from the key's next round; the round's AWS error, raised.

        ``max_age``: how old a read of the VPC's endpoints the asking pass accepts. ``users``: the users of the
        VPC as this process knows them when called; the round calls it as it plans, so it plans from every user
        of the key as they are then (a handful named by each request could all be leaving in the same round,
        with a live user none of them named), and a request holds no list of them while it waits.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[EndpointAnswer] = loop.create_future()
        self._queue.append(_Waiting(request, max_age, done, users))
        self._schedule()
        return await asyncio.shield(done)

    def _schedule(self) -> None:
        if self._running is not None or self._due is not None or not self._queue:
            return
        self._due = asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._due = None
        if self._running is not None or not self._queue:
            return
        batch, self._queue = self._queue, []
        self._running = asyncio.ensure_future(self._round(batch))
        self._running.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running = None
        if not task.cancelled() and task.exception() is not None:
            log.error("endpoint key %s: a round failed: %s", self.key.digest, task.exception())
        self._schedule()

    async def _round(self, batch: list[_Waiting]) -> None:
        await run_round(self._decide_and_write(batch), [w.done for w in batch])

    async def _plan(self, batch: list[_Waiting], max_age: float) -> EndpointPlan:
        listed = await self.aws.endpoints(self.key.vpc_id, max_age=max_age)
        # The users after the read, with nothing awaited before the plan: each request's view is the same
        # process's (they differ only when a test gives none), so every distinct one is asked once.
        views = {id(w.users): w.users for w in batch}
        users = [u for view in views.values() for u in endpoint_users(view(), self.key)]
        return plan_endpoint_key(self.key, [w.request for w in batch], listed, users)

    async def _decide_and_write(self, batch: list[_Waiting]) -> None:
        max_age = 0.0 if self._fresh else min(w.max_age for w in batch)
        plan = await self._plan(batch, max_age)
        if plan.writes and max_age > 0.0:
            # Before a write, a fresh look: the shared read may be from before someone's create or deletion.
            plan = await self._plan(batch, 0.0)
        # Until the write is done, the next round reads fresh: a failure leaves it to look again.
        self._fresh = True
        if plan.writes:
            self.writes += 1
        written = await self._write(plan)
        self._fresh = False
        for waiting, answer in zip(batch, plan.results, strict=True):
            if waiting.done.done():
                continue
            changed = plan.action in (KeyAction.CREATE, KeyAction.MODIFY) or plan.unmark
            if answer.outcome is EndpointOutcome.IN_USE and answer.decision is not None and changed:
                answer = self._in_use(plan, answer, written)
            waiting.done.set_result(answer)

    async def _write(self, plan: EndpointPlan) -> ObservedEndpoint | None:
        """Carry out the plan's one write; the endpoint as it is after it (None: none, or it vanished)."""
        vpc_id = self.key.vpc_id
        endpoint = plan.endpoint
        if endpoint is not None and plan.unmark:
            await self.aws.unmark_retained(vpc_id, endpoint.id)
            endpoint = replace(endpoint, tags={k: v for k, v in endpoint.tags.items() if k != c.TAG_RETAINED})
        if endpoint is not None and plan.mark is not None:
            await self.aws.mark_retained(vpc_id, endpoint.id, plan.mark)
        if plan.action is KeyAction.CREATE:
            assert plan.desired is not None
            return await self.aws.create_endpoint(
                plan.desired, tags=dict(plan.tags), client_token=plan.client_token
            )
        if plan.action is KeyAction.MODIFY:
            assert endpoint is not None and plan.decision is not None
            return await self.aws.modify_endpoint(endpoint, plan.decision)
        if plan.action is KeyAction.DELETE:
            assert endpoint is not None
            await self.aws.delete_endpoint(vpc_id, endpoint.id)
            return None
        return endpoint

    @staticmethod
    def _in_use(
        plan: EndpointPlan, answer: EndpointAnswer, written: ObservedEndpoint | None
    ) -> EndpointAnswer:
        """An apply's answer with the endpoint as the round left it (created, modified, taken over)."""
        if written is None or plan.desired is None:
            return replace(answer, endpoint=None)
        return replace(answer, endpoint=written, decision=plan_endpoint(plan.desired, written, adopted=False))


class EndpointWorkers:
    """The process's endpoint workers, one per (AWS gateway, endpoint key), made on first use (wiring/state.py
    holds it)."""

    def __init__(self) -> None:
        self._workers: dict[tuple[int, EndpointKey], tuple[AwsPort, EndpointWorker]] = {}

    def get(self, aws: AwsPort, key: EndpointKey) -> EndpointWorker:
        held = self._workers.get((id(aws), key))
        if held is None or held[0] is not aws:
            held = self._workers[(id(aws), key)] = (aws, EndpointWorker(aws, key))
        return held[1]


__all__ = ["EndpointWorker", "EndpointWorkers"]
