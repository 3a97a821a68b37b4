"""Keeping the operator's own work cheap under load: drift checks step aside while many create, update and
delete passes are in flight (wiring/handlers.py, wiring/state.py); garbage collection tuned for a large heap (wiring/runner.py)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from typing import Any

import kopf
import pytest

from clickhouse_privatelink import constants as c
from clickhouse_privatelink import metrics
from clickhouse_privatelink.adapters.aws.clients import AwsClients, AwsModels
from clickhouse_privatelink.adapters.kubernetes.api import KubernetesApiError
from clickhouse_privatelink.decisions.intent import encode_intent
from clickhouse_privatelink.settings import Settings
from clickhouse_privatelink.wiring import handlers
from clickhouse_privatelink.wiring import state as state_module
from clickhouse_privatelink.wiring.state import DRIFT_STEPS_ASIDE_AT, Hold, ProcessState, hold_operations


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
    """A new resource's first pass adds it itself, with its first write (one kopf cycle fewer); from then on kopf
    holds it, and puts it back on a handled resource that lost it."""
    keeps = handlers.kopf_keeps_the_finalizer
    assert not keeps(body=resource_body())  # new: the first pass adds it, in the creation event's cycle
    assert keeps(body=resource_body(finalizers=["other/x", c.FINALIZER]))
    assert keeps(body=resource_body(status={"lastHandledConfiguration": '{"spec":{}}'}))
    older = {"annotations": {f"{c.GROUP}/last-handled-configuration": '{"spec":{}}'}}
    assert keeps(body=resource_body(metadata=older))  # handled by a version that kept its diff-base there


def test_a_pass_has_a_resource_without_the_finalizer_in_hand_as_it_read_it() -> None:
    assert handlers.hold(resource_body(finalizers=["other/x", c.FINALIZER])) is None  # held: nothing to add
    new = handlers.hold(resource_body(finalizers=["other/x"]))
    assert new is not None
    assert (new.version, new.finalizers, new.annotated, new.first) == ("7", ["other/x"], False, True)
    ended = handlers.hold(
        resource_body(metadata={"annotations": {"a": "b"}}, status={"observedGeneration": 1})
    )
    assert ended is not None and ended.annotated and not ended.first  # a pass has ended: the status reads


def test_the_finalizer_goes_on_as_the_pass_read_the_resource_with_the_first_intent_beside_it() -> None:
    bare = Hold(version="7", finalizers=["other/x"], annotated=False, first=True)
    test, finalizers = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["other/x", c.FINALIZER]},
    ]
    assert hold_operations(bare, "u", None) == [test, finalizers]  # what else holds it is kept
    value = encode_intent("u", {"serviceId": "s"})
    assert hold_operations(bare, "u", {"serviceId": "s"})[2] == {
        "op": "add",
        "path": "/metadata/annotations",
        "value": {c.ANNOTATION_INTENT: value},
    }
    annotated = Hold(version="7", finalizers=[], annotated=True, first=True)
    assert hold_operations(annotated, "u", {"serviceId": "s"})[2] == {
        "op": "add",
        "path": f"/metadata/annotations/{c.GROUP}~1intent",  # the key's "/" escaped in the JSON pointer
        "value": value,
    }


class Patches:
    """The Kubernetes API as ``hold_first`` sees it: JSON patches, answered as told."""

    def __init__(self, answer: int = 200) -> None:
        self.answer = answer
        self.sent: list[list[dict[str, Any]]] = []

    async def __call__(self, path: str, operations: list[dict[str, Any]], **_: Any) -> None:
        self.sent.append(operations)
        if self.answer >= 400:
            raise KubernetesApiError(f"PATCH: {self.answer}", status=self.answer)


async def test_the_first_write_holds_a_new_resource_in_one_patch_and_only_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patches = Patches()
    monkeypatch.setattr(state_module, "json_patch", patches)
    state = ProcessState(Settings())
    state.holds["u"] = Hold(version="7", finalizers=[], annotated=False, first=True)
    assert await state.hold_first("ns", "a", "u", {"serviceId": "s"})  # the intent went with it
    assert len(patches.sent) == 1 and len(patches.sent[0]) == 3 and "u" not in state.holds
    assert state.written.view("u", {}) == {}  # not the status's: the pass's end writes it there
    assert not await state.hold_first("ns", "a", "u", {"serviceId": "s"})  # held: the status takes it
    assert len(patches.sent) == 1

    state.holds["w"] = Hold(version="9", finalizers=[], annotated=False, first=True)
    assert not await state.hold_first("ns", "c", "w", {})  # nothing to say: the finalizer alone
    assert len(patches.sent[1]) == 2 and "w" not in state.holds

    state.holds["v"] = Hold(version="8", finalizers=[], annotated=False, first=False)
    assert not await state.hold_first("ns", "b", "v", {"serviceId": "s"})  # a pass has ended: status next
    assert len(patches.sent[2]) == 2 and "v" not in state.holds


async def test_a_refused_hold_keeps_the_resource_unheld(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "json_patch", Patches(409))
    state = ProcessState(Settings())
    state.holds["u"] = Hold(version="7", finalizers=[], annotated=False, first=True)
    with pytest.raises(KubernetesApiError):
        await state.hold_first("ns", "a", "u", {"serviceId": "s"})
    assert "u" in state.holds  # no write may follow as if it were held
    assert state.written.view("u", {}) == {}


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
