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

from clickhouse_privatelink.decisions.allow_list import AllowRequest, AllowResult, plan_service_allow_list
from clickhouse_privatelink.engine.ports import ClickHousePort
from clickhouse_privatelink.engine.rounds import GatheringWorker, PerGateway, Waiting


class AllowListWorker(GatheringWorker[AllowRequest, AllowResult]):
    """The rounds of one service of one ClickHouse gateway (see the module docstring)."""

    def __init__(self, api: ClickHousePort, service_id: str, *, write_window: float) -> None:
        super().__init__(write_window, f"service {service_id}: allow list")
        self.api = api
        self.service_id = service_id

    def pending(self, endpoint_id: str) -> bool:
        """Whether a request for this entry is gathering or in the round running (a pass that found the entry
        listed asks too: the round may be about to remove it)."""
        return any(r.endpoint_id == endpoint_id for r in self.waiting())

    async def _decide_and_write(self, batch: list[Waiting[AllowRequest, AllowResult]]) -> None:
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
        self._workers: PerGateway[AllowListWorker] = PerGateway()

    def get(self, api: ClickHousePort, service_id: str) -> AllowListWorker:
        return self._workers.get(
            api, service_id, lambda: AllowListWorker(api, service_id, write_window=self.write_window)
        )


__all__ = ["AllowListWorker", "AllowListWorkers"]
