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


async def test_a_read_that_waited_its_turn_is_as_young_as_its_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a rate limit a read may wait long before it is sent: its age counts from its answer."""
    clock = [1000.0]
    monkeypatch.setattr("clickhouse_privatelink.adapters.coalesce.time.monotonic", lambda: clock[0])
    source = Source()
    flight = SingleFlight(source.read)
    waiting = asyncio.ensure_future(flight.get(1))
    await source.started.wait()
    clock[0] += 30  # thirty seconds in the limiter's queue
    source.gate.set()
    assert await waiting == 0
    clock[0] += 0.5
    assert await flight.get(1) == 0 and source.reads == 1  # half a second old: kept
    clock[0] += 1
    source.value = 3
    assert await flight.get(1) == 3 and source.reads == 2  # older than a second: read again


async def test_an_older_read_answering_last_does_not_replace_a_newer_one() -> None:
    gates = [asyncio.Event(), asyncio.Event()]
    calls = 0

    async def read() -> int:
        nonlocal calls
        mine = calls
        calls += 1
        await gates[mine].wait()
        return mine  # what the API said when this read was sent: the first 0, the second 1

    flight = SingleFlight(read)
    older = asyncio.ensure_future(flight.get(10))
    await asyncio.sleep(0)
    fresh = asyncio.ensure_future(flight.get(0))
    await asyncio.sleep(0)
    gates[1].set()
    assert await fresh == 1
    gates[0].set()  # the older read answers last
    assert await older == 0
    assert await flight.get(10) == 1 and calls == 2


async def test_our_write_reaches_the_kept_result_and_a_read_already_in_flight() -> None:
    source = Source()
    flight = SingleFlight(source.read)
    source.gate.set()
    assert await flight.get(10) == 0
    source.value = 10  # a write: the API has it, and so does the kept result at once
    flight.wrote(lambda _: 10)
    assert await flight.get(10) == 10 and source.reads == 1
    source.gate.clear()
    source.started.clear()
    waiting = asyncio.ensure_future(flight.get(0))
    await source.started.wait()  # a read is sent (it sees 10) before our next write lands
    source.value = 15
    flight.wrote(lambda _: 15)
    source.gate.set()
    assert await waiting == 15  # the read in flight does not lose the write
    assert await flight.get(10) == 15 and source.reads == 2


async def test_an_answer_of_none_is_kept_like_any_other() -> None:
    """ "No such zone" is an answer too: a hundred deletions after the zone went ask once, not a hundred times."""
    reads = 0

    async def gone() -> None:
        nonlocal reads
        reads += 1

    flight: SingleFlight[None] = SingleFlight(gone)
    assert [await flight.get(10) for _ in range(3)] == [None] * 3
    assert reads == 1


async def test_reading_is_true_while_a_read_is_in_flight_and_false_once_it_returned_or_failed() -> None:
    source = Source()
    flight = SingleFlight(source.read)
    assert not flight.reading
    pending = asyncio.ensure_future(flight.get(10))
    await source.started.wait()
    assert flight.reading
    source.gate.set()
    assert await pending == 0 and not flight.reading

    async def fails() -> int:
        raise RuntimeError("throttled")

    failing = SingleFlight(fails)
    with pytest.raises(RuntimeError):
        await failing.get(10)
    assert not failing.reading
