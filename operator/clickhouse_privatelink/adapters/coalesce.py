"""Coalescing for the gateways: one read in flight per key, kept for callers that accept its age."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """At most one call of ``fetch`` in flight; its result is kept with the time it was read.

    Concurrent callers wait on the call in flight; a caller accepting ``max_age`` seconds gets the last result
    when it is that young. A failed call is not kept: the next caller tries again.
    """

    def __init__(self, fetch: Callable[[], Awaitable[T]]) -> None:
        self._fetch = fetch
        self._value: T | None = None
        self._read_at = float("-inf")
        self._inflight: asyncio.Task[T] | None = None

    async def get(self, max_age: float) -> T:
        if self._value is not None and time.monotonic() - self._read_at <= max_age:
            return self._value
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._run())
        return await asyncio.shield(self._inflight)

    async def _run(self) -> T:
        try:
            value = await self._fetch()
            self._value, self._read_at = value, time.monotonic()
            return value
        finally:
            self._inflight = None

    def peek(self) -> T | None:
        """The last result, however old (for keeping it in step with a write)."""
        return self._value

    def forget(self) -> None:
        """The next caller reads again (a write changed what was read)."""
        self._value, self._read_at = None, float("-inf")
