"""Coalescing for the gateways: one read in flight per key, kept for callers that accept its age."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Reads of one thing, shared: a caller accepting ``max_age`` seconds gets a result read no longer ago.

    The age of a kept result counts from when its read *started*. A read in flight is joined by every caller
    but one asking for fresh data (``max_age`` 0), and a write that happened meanwhile (``forget``, ``wrote``)
    is never hidden by a read that began before it: that read's result is not kept. A failed read is not kept
    either.
    """

    def __init__(self, fetch: Callable[[], Awaitable[T]]) -> None:
        self._fetch = fetch
        self._value: T | None = None
        self._read_at = float("-inf")  # when the kept value's read started
        self._forgotten_at = float("-inf")
        self._inflight: asyncio.Task[T] | None = None
        self._inflight_started = float("-inf")

    async def get(self, max_age: float) -> T:
        now = time.monotonic()
        if self._value is not None and now - self._read_at <= max_age:
            return self._value
        # A read in flight is joined unless the caller wants data newer than its start (max_age 0): under a
        # rate limit a read may wait its turn for seconds, and starting others beside it only adds to the queue.
        if self._inflight is None or (max_age <= 0 and self._inflight_started < now):
            self._inflight_started = now
            self._inflight = asyncio.ensure_future(self._run(now))
        return await asyncio.shield(self._inflight)

    async def _run(self, started: float) -> T:
        try:
            value = await self._fetch()
        finally:  # done or failed, this read is no longer in flight (a failure is never joined later)
            if self._inflight_started == started:
                self._inflight = None
        if started >= self._forgotten_at and started >= self._read_at:
            self._value, self._read_at = value, started
        return value

    def peek(self) -> T | None:
        """The last result, however old (for keeping it in step with a write)."""
        return self._value

    def wrote(self) -> None:
        """A write was applied to the kept value in place: reads that began before it are not kept."""
        self._forgotten_at = time.monotonic()
        self._inflight = None

    def forget(self) -> None:
        """A write changed what was read: the next caller reads again, and older reads are not kept."""
        self._value, self._read_at = None, float("-inf")
        self._forgotten_at = time.monotonic()
        self._inflight = None
