"""A thread with an event loop of its own for the calls to a rate-limited API.

The rate limiter lets a call go at the moment the budget allows, but the request is sent only once the
event loop has run the dozen or so steps of the HTTP client. While the operator's loop is busy (a thousand
resources created or deleted at once: kopf takes in their events, passes start), each step waits for a
whole turn of that loop: measured at N=1000, calls the limiter let go over 0.7 s reached ClickHouse in a
bunch, so the budget went unused at first and the bunch was refused (429). On a loop that runs nothing
else, a call is sent within milliseconds of its turn, and requests leave paced as the limiter meant.

The callers stay on the operator's loop: ``Lane.run`` hands a coroutine to the lane's loop and waits for
its result; cancelling the caller cancels the call. The lane's loop is libuv's (uvloop), as the operator's is.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


class Lane:
    """A daemon thread running an event loop for API calls, until :meth:`close`."""

    def __init__(self, name: str) -> None:
        self._loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
            # Closed: whatever was still running is cancelled and let finish before the loop goes.
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()

    async def run(self, call: Coroutine[Any, Any, T]) -> T:
        """Run ``call`` on the lane's loop and return its result (or raise its error) on the caller's."""
        if self._loop.is_closed() or not self._thread.is_alive():
            call.close()
            raise RuntimeError("the lane is closed")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call, self._loop))

    def close(self) -> None:
        """Stop the loop (calls still running are cancelled) and wait for the thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()

    def __repr__(self) -> str:
        return f"Lane({self._thread.name!r})"
