"""One worker per ClickHouse service: the passes ask, the worker decides the service's allow list and writes it.

A pass that needs its endpoint's entry added (after its intent is durable), or that lets go of it, enqueues an
``AllowRequest`` and awaits its result. The worker gathers requests into **rounds**: a round starts
``write_window`` seconds after the first request of its gathering (the window the gateway's PATCH batches had),
or as soon as the round before it has finished when that is later. A round reads the service's
``privateEndpointIds`` once (the organization's shared list of services, as young as the youngest request
asks; our own writes are in it), asks ``decisions.allow_list`` for one plan and sends its delta in one
``PATCH`` (none when the plan changes nothing). Each request then gets its result, or, when its result depends
on the PATCH and the PATCH failed, the PATCH's error.

Rounds of one service never overlap, and this process changes a service's allow list only here, so no lock
guards an entry: the key is the lock.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from clickhouse_privatelink.decisions.allow_list import AllowRequest, AllowResult, plan_service_allow_list
from clickhouse_privatelink.engine.ports import ClickHousePort
from clickhouse_privatelink.engine.zone_worker import run_round

log = logging.getLogger(__name__)


@dataclass
class _Waiting:
    request: AllowRequest
    max_age: float
    done: asyncio.Future[AllowResult]


class AllowListWorker:
    """The rounds of one service of one ClickHouse gateway (see the module docstring)."""

    def __init__(self, api: ClickHousePort, service_id: str, *, write_window: float) -> None:
        self.api = api
        self.service_id = service_id
        self.write_window = write_window
        self._queue: list[_Waiting] = []  # the requests gathering now
        self._first = 0.0  # when the first of them came (loop time)
        self._round: list[_Waiting] = []  # the requests of the round running
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None

    def pending(self, endpoint_id: str) -> bool:
        """Whether a request for this entry is gathering or in the round running (a pass that found the entry
        listed asks too: the round may be about to remove it)."""
        return any(w.request.endpoint_id == endpoint_id for w in (*self._queue, *self._round))

    async def ask(self, request: AllowRequest, *, max_age: float) -> AllowResult:
        """The request's result, from the service's next round; the PATCH's error, raised, when the result
        depends on it and it failed (a failed read of the service fails every request of the round).

        ``max_age``: how old a list of services the asking pass accepts (the round reads the youngest asked).
        """
        loop = asyncio.get_running_loop()
        if not self._queue:
            self._first = loop.time()
        done: asyncio.Future[AllowResult] = loop.create_future()
        self._queue.append(_Waiting(request, max_age, done))
        self._schedule()
        return await asyncio.shield(done)

    def _schedule(self) -> None:
        """Start the next round when it is due (after the round running, if one is)."""
        if self._running is not None or self._timer is not None or not self._queue:
            return
        due = self._first + self.write_window
        self._timer = asyncio.get_running_loop().call_at(due, self._start)

    def _start(self) -> None:
        self._timer = None
        if self._running is not None or not self._queue:
            return
        self._round, self._queue = self._queue, []
        self._running = asyncio.ensure_future(self._run(self._round))
        self._running.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running = None
        self._round = []
        if not task.cancelled() and task.exception() is not None:
            log.error("service %s: an allow-list round failed: %s", self.service_id, task.exception())
        self._schedule()  # requests that came during the round: their window began when the first came

    async def _run(self, batch: list[_Waiting]) -> None:
        await run_round(self._decide_and_write(batch), [w.done for w in batch])

    async def _decide_and_write(self, batch: list[_Waiting]) -> None:
        requests = [w.request for w in batch]
        service = await self.api.service(self.service_id, max_age=min(w.max_age for w in batch))
        plan = plan_service_allow_list(self.service_id, requests, service.private_endpoint_ids)
        error: Exception | None = None
        if not plan.empty:
            try:
                await self.api.update_private_endpoint_ids(self.service_id, add=plan.add, remove=plan.remove)
            except Exception as exc:  # the requests that depend on it get its error; the others their result
                error = exc
        for waiting, result in zip(batch, plan.results, strict=True):
            if waiting.done.done():
                continue
            if error is not None and result.written:
                waiting.done.set_exception(error)
            else:
                waiting.done.set_result(result)


class AllowListWorkers:
    """The process's allow-list workers, one per (ClickHouse gateway, service), made on first use (wiring/state.py
    holds it)."""

    def __init__(self, *, write_window: float = 0.2) -> None:
        self.write_window = write_window
        self._workers: dict[tuple[int, str], tuple[ClickHousePort, AllowListWorker]] = {}

    def get(self, api: ClickHousePort, service_id: str) -> AllowListWorker:
        key = (id(api), service_id)
        held = self._workers.get(key)
        if held is None or held[0] is not api:
            worker = AllowListWorker(api, service_id, write_window=self.write_window)
            held = self._workers[key] = (api, worker)
        return held[1]


__all__ = ["AllowListWorker", "AllowListWorkers"]
