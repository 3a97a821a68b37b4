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

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace

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
from clickhouse_privatelink.engine.rounds import GatheringWorker, PerGateway, Waiting

log = logging.getLogger(__name__)


# The key's users as this process knows them when called (the index and the passes' claims: Pass.users).
UsersNow = Callable[[], Iterable[Usage]]


class EndpointWorker(GatheringWorker[EndpointRequest, EndpointAnswer]):
    """The rounds of one endpoint key of one AWS gateway (see the module docstring)."""

    def __init__(self, aws: AwsPort, key: EndpointKey) -> None:
        super().__init__(0.0, f"endpoint key {key.digest}")
        self.aws = aws
        self.key = key
        self._users: UsersNow = tuple  # the process's view of the VPC's users, as the last request gave it
        self._fresh = False  # a round failed: the next one reads the VPC now
        # Rounds that wrote (or tried to), counted: a pass that read the VPC while one ran (its read may be from
        # before the write) sees the count moved and asks, rather than deciding from that read.
        self.writes = 0

    async def ask(
        self, request: EndpointRequest, *, max_age: float, users: UsersNow | None = None
    ) -> EndpointAnswer:
        """The request's answer, from the key's next round; the round's AWS error, raised.

        ``max_age``: how old a read of the VPC's endpoints the asking pass accepts. ``users``: the users of the
        VPC as this process knows them when called (every pass of the VPC gives the same view of them). The
        round calls it once, as it plans, so it plans from every user of the key as they are then (a handful
        named by each request could all be leaving in the same round, with a live user none of them named), and
        a request holds no list of them while it waits.
        """
        if users is not None:
            self._users = users
        return await super().ask(request, max_age=max_age)

    async def _plan(self, requests: list[EndpointRequest], max_age: float) -> EndpointPlan:
        listed = await self.aws.endpoints(self.key.vpc_id, max_age=max_age)
        # The users after the read, with nothing awaited before the plan.
        return plan_endpoint_key(self.key, requests, listed, endpoint_users(self._users(), self.key))

    async def _decide_and_write(self, batch: list[Waiting[EndpointRequest, EndpointAnswer]]) -> None:
        requests = [w.request for w in batch]
        max_age = 0.0 if self._fresh else min(w.max_age for w in batch)
        plan = await self._plan(requests, max_age)
        if plan.writes and max_age > 0.0:
            # Before a write, a fresh look: the shared read may be from before someone's create or deletion.
            plan = await self._plan(requests, 0.0)
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
        self._workers: PerGateway[EndpointWorker] = PerGateway()

    def get(self, aws: AwsPort, key: EndpointKey) -> EndpointWorker:
        return self._workers.get(aws, key, lambda: EndpointWorker(aws, key))


__all__ = ["EndpointWorker", "EndpointWorkers"]
