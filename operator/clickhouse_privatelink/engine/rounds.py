"""What the workers of shared objects have in common: rounds that never overlap, run one after another.

A pass asks a worker and awaits its answer; the worker gathers the requests into a round, decides for all of
them at once and writes. ``run_round`` hands a failed round's error to every request it had not answered;
``GatheringWorker`` is the gathering of the allow list's and the endpoint's workers (a window after the first
request); ``PerGateway`` holds a process's workers, one per gateway and key. The zone's worker gathers by
Route 53's request limits as well (engine/zone_worker.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

Request = TypeVar("Request")
Answer = TypeVar("Answer")
Worker = TypeVar("Worker")


async def run_round(work: Awaitable[None], waiting: Sequence[asyncio.Future[Any]]) -> None:
    """Run a worker's round; when it fails, every request it has not answered gets its error (or is cancelled
    with it), and a cancellation goes on up."""
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
class Waiting(Generic[Request, Answer]):
    """A request in a worker's queue: how old a read its pass accepts, and where its answer goes."""

    request: Request
    max_age: float
    done: asyncio.Future[Answer]


class GatheringWorker(Generic[Request, Answer]):
    """Rounds of one key: a round starts ``window`` seconds after the first request of its gathering (0: on the
    next loop turn), or when the round before it ends if that is later; it takes every request gathered."""

    def __init__(self, window: float, name: str) -> None:
        self.window = window
        self.name = name  # for the log
        self._queue: list[Waiting[Request, Answer]] = []  # the requests gathering now
        self._first = 0.0  # when the first of them came (loop time)
        self._batch: list[Waiting[Request, Answer]] = []  # the requests of the round running
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """Whether a request is gathering or a round is running."""
        return bool(self._queue) or self._running is not None

    def waiting(self) -> list[Request]:
        """The requests gathering and those of the round running."""
        return [w.request for w in (*self._queue, *self._batch)]

    async def ask(self, request: Request, *, max_age: float) -> Answer:
        """The request's answer, from the key's next round (its error, raised, as the round decides).

        ``max_age``: how old a read the asking pass accepts (the round reads the youngest asked for).
        """
        loop = asyncio.get_running_loop()
        if not self._queue:
            self._first = loop.time()
        done: asyncio.Future[Answer] = loop.create_future()
        self._queue.append(Waiting(request, max_age, done))
        self._schedule()
        return await asyncio.shield(done)

    def _schedule(self) -> None:
        """Start the next round when it is due (after the round running, if one is)."""
        if self._running is not None or self._timer is not None or not self._queue:
            return
        self._timer = asyncio.get_running_loop().call_at(self._first + self.window, self._start)

    def _start(self) -> None:
        self._timer = None
        if self._running is not None or not self._queue:
            return
        batch = self._batch = self._queue
        self._queue = []
        self._running = asyncio.ensure_future(
            run_round(self._decide_and_write(batch), [w.done for w in batch])
        )
        self._running.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running = None
        self._batch = []
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: a round failed: %s", self.name, task.exception())
        self._schedule()  # requests that came during the round: their window began when the first came

    async def _decide_and_write(self, batch: list[Waiting[Request, Answer]]) -> None:
        raise NotImplementedError


class PerGateway(Generic[Worker]):
    """A process's workers, one per (gateway, key), made on first use. A gateway is told apart by identity (a
    replaced gateway gets new workers, never an old one's)."""

    def __init__(self) -> None:
        self._held: dict[tuple[int, Hashable], tuple[object, Worker]] = {}

    def get(self, gateway: object, key: Hashable, make: Callable[[], Worker]) -> Worker:
        at = (id(gateway), key)
        held = self._held.get(at)
        if held is None or held[0] is not gateway:
            held = self._held[at] = (gateway, make())
        return held[1]


__all__ = ["GatheringWorker", "PerGateway", "Waiting", "run_round"]
