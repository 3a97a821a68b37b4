"""ClickHouse calls on a lane of their own (adapters/clickhouse/lane.py): paced by the rate limiter, not by how
busy the caller's event loop is; results, errors and cancellation carried back to the caller."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import pytest

from clickhouse_privatelink.adapters.clickhouse.client import ClickHouseCloudClient, NotFound, RateLimiter
from clickhouse_privatelink.adapters.clickhouse.lane import Lane
from clickhouse_privatelink_testkit.standins.clickhouse_cloud import ClickHouseCloudStandIn


@pytest.fixture
async def lane() -> AsyncIterator[Lane]:
    lane = Lane("test-calls")
    try:
        yield lane
    finally:
        lane.close()


@pytest.fixture
async def standin() -> AsyncIterator[ClickHouseCloudStandIn]:
    """The stand-in served from a thread of its own: it answers while the test's loop is blocked."""
    server = Lane("test-standin")
    standin = ClickHouseCloudStandIn(time_scale=0.01)
    await server.run(standin.start())
    standin.state.rate_limit = None
    try:
        yield standin
    finally:
        await server.run(standin.stop())
        server.close()


async def test_calls_go_out_at_the_limiters_pace_while_the_callers_loop_is_busy(
    lane: Lane, standin: ClickHouseCloudStandIn
) -> None:
    org = standin.state.seed_org()
    key = standin.state.seed_key(org_id=org.id)
    sent: list[float] = []
    client = ClickHouseCloudClient(
        standin.url,
        key.id,
        key.secret,
        limiter=RateLimiter(5, 0.1),
        lane=lane,
        on_call=lambda operation, outcome: sent.append(time.monotonic()),
    )
    async with client:
        calls = [asyncio.ensure_future(client.get_organization(org.id)) for _ in range(20)]
        await asyncio.sleep(0)  # each call is handed to the lane
        busy_from = time.monotonic()
        time.sleep(0.5)  # noqa: ASYNC251 - on purpose: the caller's loop runs nothing, as under load
        busy_to = time.monotonic()
        assert all(o.id == org.id for o in await asyncio.gather(*calls))
    # 5 per 0.1 s allows about 25 in 0.5 s: the 20 calls went out while the caller's loop was blocked.
    assert sum(busy_from <= t <= busy_to for t in sent) >= 10, sent


async def test_a_lane_carries_errors_and_cancellation_back_and_closes_what_still_runs(lane: Lane) -> None:
    async def fail() -> None:
        raise NotFound(status=404, message="no such service")

    with pytest.raises(NotFound, match="no such service"):
        await lane.run(fail())

    started, cancelled = threading.Event(), threading.Event()

    async def wait_forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    waiting = asyncio.ensure_future(lane.run(wait_forever()))
    assert await asyncio.to_thread(started.wait, 5)
    waiting.cancel()  # the caller gives up: the call on the lane is cancelled too
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await asyncio.to_thread(cancelled.wait, 5)

    started.clear()
    cancelled.clear()
    orphan = asyncio.ensure_future(lane.run(wait_forever()))
    assert await asyncio.to_thread(started.wait, 5)
    lane.close()  # a call still running when the lane closes is cancelled
    assert cancelled.is_set()
    with pytest.raises(asyncio.CancelledError):
        await orphan
    with pytest.raises(RuntimeError, match="closed"):
        await lane.run(asyncio.sleep(0))
