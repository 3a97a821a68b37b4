"""The process's settings and state: read once at start-up, held in one object carried in kopf's memo
(wiring/state.py), and the handlers registered from the settings (wiring/handlers.py: register)."""

from __future__ import annotations

import ast
import asyncio
import collections
import enum
import logging
import os
import ssl
import subprocess
import sys
import time
import types
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest

import clickhouse_privatelink
from clickhouse_privatelink import constants as c
from clickhouse_privatelink.decisions.intent import encode_intent
from clickhouse_privatelink.decisions.reasons import Reason
from clickhouse_privatelink.decisions.status import STEP_CONDITIONS, StepResult
from clickhouse_privatelink.engine.context import Outcome
from clickhouse_privatelink.engine.status import EngineStatus
from clickhouse_privatelink.settings import Settings
from clickhouse_privatelink.wiring import handlers
from clickhouse_privatelink.wiring import state as state_module
from clickhouse_privatelink.wiring.drift import phase
from clickhouse_privatelink.wiring.progress import PROGRESS_FIELD, TOUCH_FIELD
from clickhouse_privatelink.wiring.runner import run_operator
from clickhouse_privatelink.wiring.state import Hold, ProcessState
from tests.standins.kube_samples import chpl

# Where state is kept: two states share nothing when no such object is reachable from both. (Objects that
# only lead to these, such as the engine's stateless components, may be shared.)
HOLDERS = (
    dict, list, set, bytearray, collections.deque, weakref.WeakKeyDictionary, weakref.WeakValueDictionary,
    asyncio.Lock, asyncio.Event, asyncio.Semaphore, asyncio.Condition, asyncio.Future, asyncio.Queue,
)  # fmt: skip
LEAVES = (
    str, bytes, int, float, bool, type(None), enum.Enum, types.FunctionType, types.BuiltinFunctionType,
    types.ModuleType, type, ssl.SSLContext,
)  # fmt: skip


def holders(root: object, depth: int = 8) -> Iterator[object]:
    """Every object that keeps state, reachable from ``root`` through attributes and containers."""
    seen: set[int] = set()
    todo = [(root, 0)]
    while todo:
        obj, level = todo.pop()
        if isinstance(obj, LEAVES) or id(obj) in seen or level > depth:
            continue
        seen.add(id(obj))
        if isinstance(obj, HOLDERS):
            yield obj
        children: list[Any]
        if isinstance(obj, dict | weakref.WeakKeyDictionary | weakref.WeakValueDictionary):
            children = [*obj.keys(), *obj.values()]
        elif isinstance(obj, list | tuple | set | frozenset | collections.deque):
            children = list(obj)
        elif isinstance(obj, types.MethodType):
            children = [obj.__self__]
        else:
            children = list(getattr(obj, "__dict__", {}).values())
            children += [getattr(obj, slot) for slot in getattr(obj, "__slots__", ()) if hasattr(obj, slot)]
        todo += [(child, level + 1) for child in children]


def memo(state: ProcessState) -> kopf.Memo:
    return kopf.Memo(state=state)


def test_two_states_built_from_different_settings_share_nothing() -> None:
    one = ProcessState(Settings(cluster_name="one", drift_interval=60.0, poll_interval=1.0))
    two = ProcessState(Settings(cluster_name="two", drift_interval=120.0, poll_interval=2.0))
    mine = {id(obj): obj for obj in holders(one)}
    shared = [type(obj).__name__ for obj in holders(two) if id(obj) in mine]
    assert not shared, f"state both hold: {shared}"
    # The walk reached what the handlers keep and what the reconciler, its gateways and components keep.
    assert {id(one.locks), id(one.posted), id(one.drift._settled)} <= mine.keys()
    assert len([obj for obj in holders(one.reconciler) if id(obj) in mine]) >= 5
    assert one.reconciler.settings.cluster_name == "one" and two.reconciler.settings.cluster_name == "two"


def test_what_one_state_remembers_of_a_resource_the_other_does_not_know() -> None:
    one, two = ProcessState(Settings()), ProcessState(Settings())
    one.drift.settle("uid-1", kopf.Body({"metadata": {"uid": "uid-1"}}))
    one.written.record("uid-1", {"vpcEndpointId": "vpce-0123456789abcdef0"})
    one.posted.setdefault("uid-1", set()).add(("Normal", "Deleted", "gone"))
    with one.in_flight():
        assert (one.busy, two.busy) == (1, 0)
    assert one.lock("uid-1") is one.lock("uid-1") and one.lock("uid-1") is not two.lock("uid-1")
    assert one.drift.body("uid-1") is not None and two.drift.body("uid-1") is None
    assert two.written.view("uid-1", {}) == {} and "uid-1" not in two.posted

    one.forget("uid-1")
    assert one.drift.body("uid-1") is None and one.drift.due(float("inf")) == []
    assert one.written.view("uid-1", {}) == {} and "uid-1" not in one.posted and "uid-1" not in one.locks


def test_a_pass_believes_its_own_status_writes_but_not_kopfs_progress_records() -> None:
    """kopf may purge progress records into the patch before the handler runs: they are not the pass's writes."""
    state = ProcessState(Settings())
    raw = chpl("x")
    raw["metadata"].update(namespace="ns", uid="uid-1", generation=1)
    raw["status"] = {PROGRESS_FIELD: {"reconcile": {"retries": 1}}, TOUCH_FIELD: "t"}
    body = kopf.Body(raw)
    res = handlers._resource(state, body, {"chpl_namespace_labels": {}, "chpl_policies": {}})
    patch = kopf.Patch()
    patch.status[PROGRESS_FIELD] = {"policy-changed": None}  # a superseded cause's record, purged first
    handlers._write(state, body, patch, res, Outcome(), kind="reconcile")
    assert patch.status["observedGeneration"] == 1 and patch.status[PROGRESS_FIELD] == {
        "policy-changed": None
    }
    seen = state.written.view("uid-1", raw["status"])
    assert seen[PROGRESS_FIELD] == raw["status"][PROGRESS_FIELD] and seen["observedGeneration"] == 1
    # Once the watch shows the pass's own fields, nothing is believed over the body any more.
    shown = {**raw["status"], "observedGeneration": 1, "conditions": patch.status["conditions"]}
    assert state.written.view("uid-1", shown) == shown
    assert state.written.view("uid-1", {}) == {}


async def test_the_first_status_write_names_what_the_intent_annotation_said(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new resource's first intent rides its annotation (decisions/intent.py), read as its status until a pass
    has ended: the pass's end writes it all into the status, since nobody reads the annotation afterwards."""

    async def patched(*_: Any, **__: Any) -> None:
        return None

    monkeypatch.setattr(state_module, "json_patch", patched)
    state = ProcessState(Settings())
    state.holds["uid-1"] = Hold(version="1", finalizers=[], annotated=False, first=True)
    assert await state.hold_first("ns", "x", "uid-1", {"serviceId": "svc"})  # this process wrote it
    raw = chpl("x")
    intent = {"serviceId": "svc", "vpcEndpointId": "vpce-1", "vpcEndpointOwned": True}
    raw["metadata"].update(
        namespace="ns",
        uid="uid-1",
        generation=1,
        finalizers=[c.FINALIZER],
        annotations={c.ANNOTATION_INTENT: encode_intent("uid-1", intent)},
    )
    raw["status"] = {}
    body = kopf.Body(raw)
    res = handlers._resource(state, body, {"chpl_namespace_labels": {}, "chpl_policies": {}})
    assert res.usage.endpoint_id == "vpce-1" and res.status["serviceId"] == "svc"
    patch = kopf.Patch()
    handlers._write(
        state, body, patch, res, Outcome(status=EngineStatus.from_status(res.status)), kind="reconcile"
    )
    assert {k: patch.status[k] for k in intent} == intent and patch.status["observedGeneration"] == 1


def test_a_pass_that_makes_a_resource_ready_posts_one_event_and_each_warning_of_its_own(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One Normal Event per pass, the changes' reasons in its message (decisions/status.py fold_events); every
    change still in the log, each on its own line."""
    posted: list[tuple[str, str, str]] = []

    def event(_: Any, *, type: str, reason: str, message: str) -> None:
        posted.append((type, reason, message))

    monkeypatch.setattr(handlers.kopf, "event", event)
    state = ProcessState(Settings())
    raw = chpl("x")
    raw["metadata"].update(namespace="ns", uid="uid-1", generation=1, finalizers=[c.FINALIZER])
    raw["status"] = {}
    body = kopf.Body(raw)
    res = handlers._resource(state, body, {"chpl_namespace_labels": {}, "chpl_policies": {}})
    steps = [StepResult(step, True, Reason.READY, "ok") for step in STEP_CONDITIONS]
    outcome = Outcome(steps=steps)
    outcome.event("DnsRecordWritten", "h now points to vpce-1")
    outcome.event("SecurityGroupPortsClosed", "sg-1 lets nothing in", warning=True)
    outcome.event("AllowListed", "added vpce-1 to svc-1")
    with caplog.at_level(logging.INFO, logger=handlers.__name__):
        handlers._write(state, body, kopf.Patch(), res, outcome, kind="reconcile")
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [
        "ns/x DnsRecordWritten: h now points to vpce-1",
        "ns/x SecurityGroupPortsClosed: sg-1 lets nothing in",
        "ns/x AllowListed: added vpce-1 to svc-1",
    ]
    assert posted == [
        ("Warning", "SecurityGroupPortsClosed", "sg-1 lets nothing in"),
        (
            "Normal",
            "Ready",
            "PrivateLink connection is ready"
            " (DnsRecordWritten: h now points to vpce-1; AllowListed: added vpce-1 to svc-1)",
        ),
    ]


def test_each_resource_s_first_drift_check_follows_its_own_state_s_interval() -> None:
    short, long = ProcessState(Settings(drift_interval=10.0)), ProcessState(Settings(drift_interval=100.0))
    for state in (short, long):
        state.drift.settle("some-uid", kopf.Body({"metadata": {"uid": "some-uid"}}))
    now = time.monotonic()
    first, later = short.drift.next_due(), long.drift.next_due()
    assert first is not None and later is not None
    assert now - 1 < first - 10.0 * (1 + phase("some-uid")) <= now
    assert now - 1 < later - 100.0 * (1 + phase("some-uid")) <= now


def registered(registry: kopf.OperatorRegistry) -> dict[str, list[str]]:
    return {
        kind: sorted(h.id for h in getattr(registry, f"_{kind}").get_all_handlers())
        for kind in ("activities", "indexing", "watching", "changing", "spawning")
    }


# The handler ids kopf keeps in each resource's progress annotations: an upgrade must find the same ones.
RESOURCE_HANDLER_IDS = [
    "cleanup",
    "policy-changed/metadata.annotations.privatelink.clickhouse.dev/policy-version",
    "reconcile",
    "reconcile",
    "reconcile/spec",
    "secret-changed/metadata.annotations.privatelink.clickhouse.dev/secret-version",
]


def test_the_registry_is_built_from_the_settings() -> None:
    plain = handlers.register(kopf.OperatorRegistry(), Settings(drift_interval=42.0))
    watching = handlers.register(kopf.OperatorRegistry(), Settings(watch_secrets=True))
    assert registered(plain)["changing"] == registered(watching)["changing"] == RESOURCE_HANDLER_IDS
    # No timers or daemons: drift checks have their own scheduler (wiring/drift.py).
    assert registered(plain)["spawning"] == registered(watching)["spawning"] == []
    # The Secret watch (and its server-side label selector) only when asked for.
    assert registered(plain)["watching"] == ["namespace_changed", "policy_changed"]
    assert registered(watching)["watching"] == ["namespace_changed", "policy_changed", "secret_changed"]
    assert "watch_opted_in_secrets_only" not in registered(plain)["activities"]
    assert registered(watching)["activities"] == [
        "close_clients", "configure", "log_in", "watch_opted_in_secrets_only",
    ]  # fmt: skip


class _CountingCause:
    """A watch event's cause as kopf's prematch reads it, counting how often the handler kwargs are built."""

    def __init__(self, resource: kopf.Resource) -> None:
        self.resource = resource
        self.body = kopf.Body(chpl("x"))
        self.built = 0

    @property
    def kwargs(self) -> dict[str, Any]:
        self.built += 1
        return {}


def test_kopf_s_prematch_of_a_watch_event_builds_no_handler_kwargs() -> None:
    """On every watch event kopf asks whether any resource handler could match, trying them in registration
    order: an unfiltered one first answers at once, where a field or ``when`` filter builds every kwarg."""
    registry = handlers.register(kopf.OperatorRegistry(), Settings())
    resource = kopf.Resource(*handlers.RESOURCE, namespaced=True)
    cause = _CountingCause(resource)
    assert registry._changing.prematch(cause)  # type: ignore[arg-type]
    assert cause.built == 0
    first = registry._changing.get_all_handlers()[0]
    assert (first.id, first.field, first.when) == ("reconcile", None, None)


def test_nothing_is_registered_with_kopf_s_default_registry() -> None:
    ours = [
        h.id
        for kind in ("_activities", "_indexing", "_watching", "_changing", "_spawning")
        for h in getattr(kopf.get_default_registry(), kind).get_all_handlers()
        if getattr(h.fn, "__module__", "").startswith("clickhouse_privatelink.")
    ]
    assert ours == []


def test_the_operator_modules_read_no_environment_at_import() -> None:
    """A wrong setting does not break an import (a test, a tool): it is reported when the operator starts."""
    code = "import clickhouse_privatelink.cli, clickhouse_privatelink.wiring.runner, clickhouse_privatelink.wiring.handlers\n"
    env = {**os.environ, "CHPL_POLL_INTERVAL": "soon", "CHPL_WATCH_SECRETS": "perhaps"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CHPL_POLL_INTERVAL", "soon", "CHPL_POLL_INTERVAL must be a number of seconds, got 'soon'"),
        ("CHPL_DRIFT_INTERVAL", "-5", "CHPL_DRIFT_INTERVAL must be positive, got '-5'"),
        ("CHPL_WATCH_SECRETS", "perhaps", "CHPL_WATCH_SECRETS must be true or false, got 'perhaps'"),
    ],
)
def test_a_wrong_setting_stops_the_operator_at_start_with_its_name(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv(variable, value)

    def never(**_: Any) -> None:
        raise AssertionError("kopf started with a wrong setting")

    monkeypatch.setattr(kopf, "run", never)
    code = run_operator(
        namespaces=[], all_namespaces=True, standalone=True, peering="p", priority=0, liveness="",
        metrics_port=0, verbose=False,
    )  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


PACKAGE = Path(clickhouse_privatelink.__file__).parent


def environment_reads(tree: ast.AST) -> Iterator[ast.AST]:
    """``os.environ.get(...)``, ``os.environ[...]`` and ``os.getenv(...)`` in ``tree``."""
    for node in ast.walk(tree):
        target = (
            node.func
            if isinstance(node, ast.Call)
            else node.value
            if isinstance(node, ast.Subscript)
            else None
        )
        text = ast.unparse(target) if target is not None else ""
        if text in ("os.environ.get", "os.getenv", "os.environ"):
            yield node


def test_the_operator_reads_no_environment_at_import() -> None:
    """Nothing outside a function body reads the environment or the settings: importing a module decides
    nothing, and the settings are read when the operator starts."""
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        top = [
            n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        ]
        for statement in top:
            reads = list(environment_reads(statement))
            reads += [
                n
                for n in ast.walk(statement)
                if isinstance(n, ast.Call) and "from_env" in ast.unparse(n.func)
            ]
            found += [f"{path.relative_to(PACKAGE)}:{n.lineno}" for n in reads]  # type: ignore[attr-defined]
    assert not found, f"read at import: {found}"


def test_the_chpl_variables_are_read_in_settings_only() -> None:
    elsewhere: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "settings.py" and path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in environment_reads(tree):
            if "CHPL_" in ast.unparse(node):
                elsewhere.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")  # type: ignore[attr-defined]
    assert not elsewhere, f"CHPL_* read outside settings.py: {elsewhere}"


def test_the_log_format_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHPL_LOG_FORMAT", "TEXT")
    assert Settings.from_env().log_format == "text"
    monkeypatch.setenv("CHPL_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="CHPL_LOG_FORMAT must be one of json, text, full, got 'xml'"):
        Settings.from_env()
