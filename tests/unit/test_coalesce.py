"""Shared reads: joined while young enough, never kept when a write happened after they began."""

from __future__ import annotations

import asyncio

import pytest

from clickhouse_privatelink.adapters.coalesce import SingleFlight


class Source:
    def __init__(self) -> None:
        self.value = 0
        self.reads = 0
        self.gate = asyncio.Event()
        self.started = asyncio.Event()

    async def read(self) -> int:
        self.reads += 1
        seen = self.value
        self.started.set()
        await self.gate.wait()
        return seen


async def test_concurrent_callers_share_one_read_and_keep_it_while_young() -> None:
    source = Source()
    flight = SingleFlight(source.read)
    source.gate.set()
    assert await asyncio.gather(*(flight.get(10) for _ in range(5))) == [0] * 5
    assert source.reads == 1
    assert await flight.get(10) == 0 and source.reads == 1


async def test_a_read_begun_before_a_write_is_not_kept() -> None:
    source = Source()
    flight = SingleFlight(source.read)
    stale = asyncio.ensure_future(flight.get(10))
    await source.started.wait()  # the read has begun and waits at the gate
    source.value = 1
    flight.forget()  # the write
    source.gate.set()
    assert await stale == 0  # its caller gets what it read...
    assert await flight.get(10) == 1  # ...but the next caller reads again
    assert source.reads == 2


async def test_a_caller_wanting_fresh_data_does_not_join_an_older_read() -> None:
    source = Source()
    flight = SingleFlight(source.read)
    older = asyncio.ensure_future(flight.get(10))
    await source.started.wait()
    source.value = 2
    source.started.clear()
    fresh = asyncio.ensure_future(flight.get(0))
    await source.started.wait()
    source.gate.set()
    assert (await older, await fresh) == (0, 2)
    assert source.reads == 2


async def test_a_failed_read_is_not_joined_by_later_callers() -> None:
    attempts = 0

    async def flaky() -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("refused")
        return attempts

    flight = SingleFlight(flaky)
    with pytest.raises(RuntimeError, match="refused"):
        await flight.get(60)
    assert await flight.get(60) == 2
