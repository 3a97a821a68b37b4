"""Drift checks of every settled resource, from one scheduler of the process.

Each resource is checked once per drift interval, at its own phase within the interval (a fraction from its
UID), so a thousand resources created together do not all check at once. The first check comes one interval
plus that share of another after the resource settles (its create, update or resume pass is done).

One scheduler rather than a kopf timer per resource: a timer is a task of its own, with kopf's handler
machinery, a log line and daemon bookkeeping on every watch event of its resource, and it holds the
resource's finalizer until it has stopped. At 1,000 resources the timers cost about 2 ms of operator CPU per
resource created (benchmarks/README.md, 2026-12-05) and nothing here needs them: a check reads the newest
body the watch brought (the resource index hands every one to ``seen``), with the status the process wrote
that the watch has not brought back yet (state.WrittenStatus).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import heapq
import logging
import time
import zlib
from collections.abc import Callable, Coroutine
from typing import Any

import kopf

log = logging.getLogger(__name__)

Check = Callable[[kopf.Body], Coroutine[Any, Any, None]]


def phase(uid: str) -> float:
    """The resource's own share of the interval, in [0, 1): the same for a UID in every process."""
    return zlib.crc32(uid.encode()) / 2**32


class DriftScheduler:
    """When each settled resource's next drift check is due, and the task that runs the due ones."""

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._bodies: dict[str, kopf.Body] = {}  # every resource's newest body, from the watch
        self._settled: set[str] = set()
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []  # (due, uid); entries whose due has changed are skipped
        self._checks: dict[str, asyncio.Task[None]] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        # kopf hands its Event queue to each object's processing task in a context variable (kopf.event reads
        # it): checks run in a copy of the context of the last handler that settled a resource.
        self._context: contextvars.Context | None = None

    # ---- what the handlers tell it

    def seen(self, body: kopf.Body) -> None:
        """A watch event of a resource (the resource index hands on every one): its checks read this body. One
        being deleted is checked no more (cleanup has it)."""
        uid = body.metadata.uid or ""
        self._bodies[uid] = body
        if body.metadata.get("deletionTimestamp"):
            self._settled.discard(uid)

    def settle(self, uid: str, body: kopf.Body) -> None:
        """The resource's pass is done: check it from now on (at its phase, if it has none yet). ``body`` is the
        pass's, kept only if the watch has brought none (a newer one may have come during the pass)."""
        self._context = contextvars.copy_context()
        if self._bodies.setdefault(uid, body).metadata.get("deletionTimestamp"):
            return  # its deletion came during the pass: cleanup has it
        self._settled.add(uid)
        if uid not in self._due:
            self._schedule(uid, self._clock() + self.interval * (1 + phase(uid)))

    def unsettle(self, uid: str) -> None:
        """A pass of the resource (create, update, delete) has begun: no check until it settles again."""
        self._settled.discard(uid)

    def body(self, uid: str) -> kopf.Body | None:
        """The newest body of a settled resource; None when it is not settled."""
        return self._bodies.get(uid) if uid in self._settled else None

    def forget(self, uid: str) -> None:
        """The resource is gone."""
        self._bodies.pop(uid, None)
        self._settled.discard(uid)
        self._due.pop(uid, None)

    # ---- the schedule

    def _schedule(self, uid: str, due: float) -> None:
        earliest = self._heap[0][0] if self._heap else None
        self._due[uid] = due
        heapq.heappush(self._heap, (due, uid))
        if self._wake is not None and (earliest is None or due < earliest):
            self._wake.set()

    def due(self, now: float) -> list[tuple[str, kopf.Body]]:
        """The settled resources whose check is due at ``now``, each scheduled again one interval on.

        A resource no longer settled leaves the schedule (it gets a new phase start when it settles again).
        """
        found: list[tuple[str, kopf.Body]] = []
        while self._heap and self._heap[0][0] <= now:
            due, uid = heapq.heappop(self._heap)
            if self._due.get(uid) != due:
                continue  # rescheduled or forgotten since
            body = self.body(uid)
            if body is None:
                del self._due[uid]
                continue
            found.append((uid, body))
        for uid, _ in found:
            following = self._due[uid] + self.interval
            # After a stall of more than an interval, one check now and the next an interval later.
            self._schedule(uid, following if following > now else now + self.interval)
        return found

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    # ---- running

    def start(self, check: Check) -> None:
        """Run the due checks with ``check`` from now on (in the running loop). A check still running when
        the resource is due again is not started twice."""
        self._wake = asyncio.Event()
        self._task = asyncio.ensure_future(self._run(check))

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._checks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    async def _run(self, check: Check) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            now = self._clock()
            for uid, body in self.due(now):
                if uid not in self._checks:
                    context = self._context.copy() if self._context is not None else None
                    self._checks[uid] = task = loop.create_task(check(body), context=context)
                    task.add_done_callback(functools.partial(self._finished, uid))
            following = self.next_due()
            self._wake.clear()
            if following is None:
                await self._wake.wait()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(following - self._clock(), 0.0))

    def _finished(self, uid: str, task: asyncio.Task[None]) -> None:
        if self._checks.get(uid) is task:
            del self._checks[uid]
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error(
                "drift check of resource %s failed; the next one comes an interval later", uid, exc_info=error
            )
