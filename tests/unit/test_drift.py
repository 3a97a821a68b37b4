"""The drift scheduler (wiring/drift.py): when each settled resource is checked, with which body, and never
while a pass of it runs or once it is being deleted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import kopf
import pytest

from clickhouse_privatelink.wiring.drift import DriftScheduler, phase


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def body(uid: str, *, version: str = "1", deleting: bool = False) -> kopf.Body:
    meta: dict[str, object] = {"uid": uid, "resourceVersion": version}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-05T12:00:00Z"
    return kopf.Body({"metadata": meta})


def uids(found: list[tuple[str, kopf.Body]]) -> list[str]:
    return [uid for uid, _ in found]


def test_the_first_check_comes_an_interval_and_the_resources_phase_after_it_settles() -> None:
    clock = Clock()
    drift = DriftScheduler(10.0, clock=clock)
    drift.settle("a", body("a"))
    first = 1000.0 + 10.0 * (1 + phase("a"))
    assert drift.next_due() == first
    assert drift.due(first - 0.001) == []
    assert uids(drift.due(first)) == ["a"]
    # Then once an interval, at the same phase.
    assert drift.due(first + 9.999) == []
    assert uids(drift.due(first + 10.0)) == ["a"]
    assert drift.next_due() == first + 20.0


def test_phases_spread_a_thousand_resources_over_the_interval() -> None:
    clock = Clock()
    drift = DriftScheduler(10.0, clock=clock)
    for n in range(1000):
        drift.settle(f"uid-{n}", body(f"uid-{n}"))
    per_second = [len(drift.due(1010.0 + s + 1)) for s in range(10)]
    assert sum(per_second) == 1000
    assert max(per_second) < 150, per_second  # about 100 a second, none all at once


def test_no_check_while_a_pass_runs_and_the_phase_begins_again_when_it_settles() -> None:
    clock = Clock()
    drift = DriftScheduler(10.0, clock=clock)
    drift.settle("a", body("a"))
    drift.unsettle("a")  # an update pass began
    assert drift.body("a") is None
    assert drift.due(10_000.0) == []  # due, but not settled: it leaves the schedule
    assert drift.next_due() is None
    clock.now = 5000.0
    drift.settle("a", body("a"))  # the pass is done
    assert uids(drift.due(5000.0 + 10.0 * (1 + phase("a")))) == ["a"]


def test_a_check_reads_the_newest_body_the_watch_brought() -> None:
    drift = DriftScheduler(10.0, clock=Clock())
    drift.seen(body("a", version="1"))
    drift.settle("a", body("a", version="0"))  # the pass's own body is older than the watch's
    assert drift.body("a") is not None and drift.body("a")["metadata"]["resourceVersion"] == "1"
    drift.seen(body("a", version="2"))  # our status write came back
    (found,) = drift.due(float("inf"))
    assert found[1]["metadata"]["resourceVersion"] == "2"


def test_a_resource_being_deleted_is_checked_no_more() -> None:
    drift = DriftScheduler(10.0, clock=Clock())
    drift.settle("a", body("a"))
    drift.seen(body("a", deleting=True))
    assert drift.body("a") is None and drift.due(float("inf")) == []
    # A pass that ends after the deletion came does not settle it again.
    drift.settle("b", body("b"))
    drift.unsettle("b")
    drift.seen(body("b", deleting=True))
    drift.settle("b", body("b"))
    assert drift.body("b") is None


def test_after_a_stall_one_check_now_and_the_next_an_interval_later() -> None:
    drift = DriftScheduler(10.0, clock=Clock())
    drift.settle("a", body("a"))
    late = 1000.0 + 10.0 * (1 + phase("a")) + 35.0  # three and a half intervals late
    assert uids(drift.due(late)) == ["a"]
    assert drift.next_due() == late + 10.0


def test_a_forgotten_resource_leaves_no_trace() -> None:
    drift = DriftScheduler(10.0, clock=Clock())
    drift.seen(body("a"))
    drift.settle("a", body("a"))
    drift.forget("a")
    assert drift.body("a") is None and drift.due(float("inf")) == []


async def test_the_running_scheduler_checks_due_resources_and_logs_a_failed_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    drift = DriftScheduler(0.01, clock=loop.time)
    checked: list[str] = []
    done = asyncio.Event()

    async def check(b: kopf.Body) -> None:
        uid = b["metadata"]["uid"]
        checked.append(uid)
        if checked.count("b") >= 2 and "a" in checked:
            done.set()
        if uid == "a":
            raise RuntimeError("boom")

    drift.start(check)
    drift.settle("a", body("a"))
    drift.settle("b", body("b"))
    with caplog.at_level(logging.ERROR, logger="clickhouse_privatelink.wiring.drift"):
        await asyncio.wait_for(done.wait(), timeout=10)
        await drift.stop()
    assert {"a", "b"} <= set(checked)
    assert any("drift check of resource a failed" in r.getMessage() for r in caplog.records)


async def test_a_check_still_running_is_not_started_twice() -> None:
    loop = asyncio.get_running_loop()
    drift = DriftScheduler(0.001, clock=loop.time)
    started = 0
    release = asyncio.Event()

    async def check(_: kopf.Body) -> None:
        nonlocal started
        started += 1
        await release.wait()

    async def until(condition: Callable[[], bool]) -> None:
        deadline = loop.time() + 10
        while not condition():
            assert loop.time() < deadline, "not reached in 10 s"
            await asyncio.sleep(0.001)

    drift.start(check)
    drift.settle("a", body("a"))
    await until(lambda: started == 1)
    began = loop.time()
    await until(lambda: (drift.next_due() or 0.0) > began + 0.01)  # ten intervals on
    assert started == 1  # due again and again while it ran, never started twice
    release.set()
    await drift.stop()
