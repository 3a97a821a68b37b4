"""Keeping the operator's own work cheap under load: drift checks step aside while many create, update and
delete passes are in flight (wiring/handlers.py, wiring/state.py); garbage collection tuned for a large heap (wiring/runner.py)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import Any

import kopf
import pytest

from clickhouse_privatelink import metrics
from clickhouse_privatelink.settings import Settings
from clickhouse_privatelink.wiring import handlers
from clickhouse_privatelink.wiring.state import DRIFT_STEPS_ASIDE_AT, ProcessState


def deferred() -> float:
    return metrics.RECONCILES.labels("drift", "deferred")._value.get()


async def test_drift_checks_step_aside_while_many_passes_are_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked: list[str] = []

    async def run(kind: str, *args: Any, **kwargs: Any) -> None:
        checked.append(kind)

    monkeypatch.setattr(handlers, "_run", run)
    state = ProcessState(Settings())
    indices: dict[str, Any] = {"chpl_resources": {}}
    body = kopf.Body({"metadata": {"uid": "uid-1"}})
    before = deferred()
    with contextlib.ExitStack() as passes:
        for _ in range(DRIFT_STEPS_ASIDE_AT):
            passes.enter_context(state.in_flight())
        await handlers.check_drift(state, indices, body)
        assert checked == ["drift"] and deferred() == before  # at the threshold: checks go on

        passes.enter_context(state.in_flight())
        await handlers.check_drift(state, indices, body)
        assert checked == ["drift"] and deferred() == before + 1  # above it: deferred, and counted
    assert state.busy == 0  # every pass counted out again
    await handlers.check_drift(state, indices, body)
    assert checked == ["drift", "drift"]


def test_the_operator_collects_cycles_rarely_and_never_scans_what_it_loaded_at_start() -> None:
    code = (
        "import gc\n"
        "from clickhouse_privatelink.wiring import runner\n"
        "runner.tune_garbage_collection()\n"
        "assert gc.get_threshold() == (runner.GC_THRESHOLD, 10, 10), gc.get_threshold()\n"
        "assert runner.GC_THRESHOLD > 700 and gc.get_freeze_count() > 10_000, gc.get_freeze_count()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # its own process: gc is global
