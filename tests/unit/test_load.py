"""Keeping the operator's own work cheap under load: drift checks step aside while many create, update and
delete passes are in flight (wiring/handlers.py, wiring/state.py); garbage collection tuned for a large heap (wiring/runner.py)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from typing import Any, cast

import kopf
import pytest

from clickhouse_privatelink import constants as c
from clickhouse_privatelink import metrics
from clickhouse_privatelink.adapters.aws.clients import AwsClients, AwsModels
from clickhouse_privatelink.adapters.kubernetes.api import KubernetesApiError
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


# -------------------------------------------------------------------------------- the finalizer, from the first pass


def resource_body(*, finalizers: list[str] | None = None, **parts: Any) -> kopf.Body:
    meta: dict[str, Any] = {"name": "a", "namespace": "ns", "uid": "u", "resourceVersion": "7"}
    if finalizers is not None:
        meta["finalizers"] = finalizers
    meta.update(parts.pop("metadata", {}))
    return kopf.Body({"metadata": meta, "spec": {}, **parts})


def test_kopf_keeps_the_finalizer_only_once_the_resource_has_it_or_was_handled() -> None:
    """A new resource's first pass adds it itself (one kopf cycle fewer); from then on kopf holds it, and puts it
    back on a handled resource that lost it."""
    keeps = handlers.kopf_keeps_the_finalizer
    assert not keeps(body=resource_body())  # new: the first pass adds it, in the creation event's cycle
    assert keeps(body=resource_body(finalizers=["other/x", c.FINALIZER]))
    assert keeps(body=resource_body(status={"lastHandledConfiguration": '{"spec":{}}'}))
    older = {"annotations": {f"{c.GROUP}/last-handled-configuration": '{"spec":{}}'}}
    assert keeps(body=resource_body(metadata=older))  # handled by a version that kept its diff-base there


class Holding:
    """What ``hold`` asks of the process's state: the finalizer PATCH, answered as told."""

    def __init__(self, answer: int = 200) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str, str, list[str]]] = []

    async def hold(self, namespace: str, name: str, version: str, finalizers: list[str]) -> None:
        self.calls.append((namespace, name, version, finalizers))
        if self.answer >= 400:
            raise KubernetesApiError(f"PATCH: {self.answer}", status=self.answer)


async def test_a_first_pass_adds_the_finalizer_to_the_resource_as_it_read_it() -> None:
    state = Holding()
    assert await handlers.hold(cast(Any, state), resource_body(finalizers=["other/x"]))
    # Conditional on the version read, with what else holds the resource kept.
    assert state.calls == [("ns", "a", "7", ["other/x"])]
    held = Holding()
    assert await handlers.hold(cast(Any, held), resource_body(finalizers=[c.FINALIZER]))
    assert held.calls == []  # already there: no write


async def test_a_resource_gone_before_its_first_pass_gets_none_and_a_changed_one_is_passed_again() -> None:
    assert not await handlers.hold(cast(Any, Holding(404)), resource_body())  # nothing made, nothing to hold
    with pytest.raises(kopf.TemporaryError, match="could not add the finalizer first"):
        await handlers.hold(
            cast(Any, Holding(409)), resource_body()
        )  # changed since: again, from its newer body


# ------------------------------------------------------------------------------------------- botocore's models


def test_botocore_models_are_loaded_once_for_every_region_and_role(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loaded at start (``warm``), they serve every client the process makes: nothing is read again."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    models = AwsModels()
    models.warm()

    def again(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"botocore data read again: {args}")

    monkeypatch.setattr(models.loader.file_loader, "load_file", again)  # the loader's caches sit above it
    for region, role in (("us-east-1", None), ("eu-west-1", None), ("us-east-1", "arn:aws:iam::1:role/x")):
        clients = AwsClients(region, role, models=models)
        assert (
            clients.ec2.meta.region_name == region
            and clients.route53.meta.service_model.service_name == "route53"
        )
        assert clients.ec2._loader is models.loader  # type: ignore[attr-defined]


async def test_the_process_loads_botocore_models_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    warmed = asyncio.Event()
    loop = asyncio.get_running_loop()
    state = ProcessState(Settings())
    monkeypatch.setattr(state.aws_models, "warm", lambda: loop.call_soon_threadsafe(warmed.set))
    state.start()
    await asyncio.wait_for(warmed.wait(), timeout=10)
