"""Coalescing for the gateways: one read in flight per key, kept for callers that accept its age."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Reads of one thing, shared: a caller accepting ``max_age`` seconds gets a result read no longer ago.

    The age of a kept result counts from when its read *returned*: a read behind a rate limit may wait its turn
    for seconds, but what it returns is what the API said just then. A read in flight is joined by every
    caller but one asking for fresh data (``max_age`` 0). Our own writes are never lost to a read that began
    before them: ``wrote`` applies a write's outcome to the kept result and, when they return, to the reads
    that were in flight then; ``forget`` drops what was read and keeps no read that began before it. A failed
    read is not kept.
    """

    def __init__(self, fetch: Callable[[], Awaitable[T]]) -> None:
        self._fetch = fetch
        self._kept: tuple[T] | None = None  # boxed: a result may itself be None ("no such zone")
        self._read_at = float("-inf")  # when the kept value's read returned
        self._kept_started = float("-inf")  # and when it began (an older read never replaces a newer one)
        self._forgotten_at = float("-inf")
        self._inflight: asyncio.Task[T] | None = None
        self._inflight_started = float("-inf")
        self._running: list[float] = []  # start times of the reads in flight (a fresh one may overlap)
        self._writes: list[tuple[float, Callable[[T], T]]] = []  # made while reads were in flight

    async def get(self, max_age: float) -> T:
        now = time.monotonic()
        if self._kept is not None and now - self._read_at <= max_age:
            return self._kept[0]
        # A read in flight is joined unless the caller wants data newer than its start (max_age 0): under a
        # rate limit a read may wait its turn for seconds, and starting others beside it only adds to the queue.
        if self._inflight is None or (max_age <= 0 and self._inflight_started < now):
            self._inflight_started = now
            self._inflight = asyncio.ensure_future(self._run(now))
        return await asyncio.shield(self._inflight)

    async def _run(self, started: float) -> T:
        self._running.append(started)
        try:
            value = await self._fetch()
        finally:  # done or failed, this read is no longer in flight (a failure is never joined later)
            self._running.remove(started)
            if self._inflight_started == started:
                self._inflight = None
        for at, apply in self._writes:
            if at >= started:
                value = apply(value)
        oldest = min(self._running, default=float("inf"))
        self._writes = [(at, apply) for at, apply in self._writes if at >= oldest]
        if started >= self._forgotten_at and started >= self._kept_started:
            self._kept, self._read_at, self._kept_started = (value,), time.monotonic(), started
        return value

    @property
    def reading(self) -> bool:
        """Whether a read is in flight (its callers have not had their answer yet)."""
        return bool(self._running)

    def wrote(self, apply: Callable[[T], T]) -> None:
        """One of our writes: ``apply`` puts its outcome into a result (now the kept one, later those in flight)."""
        if self._kept is not None:
            self._kept = (apply(self._kept[0]),)
        if self._running:
            self._writes.append((time.monotonic(), apply))

    def forget(self) -> None:
        """What was read is no longer true: the next caller reads again, and older reads are not kept."""
        self._kept, self._read_at, self._kept_started = None, float("-inf"), float("-inf")
        self._forgotten_at = time.monotonic()
        self._inflight = None
