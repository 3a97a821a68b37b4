"""A real kopf operator process against the Kubernetes stand-in: handlers, status patches, finalizers."""

from __future__ import annotations

import contextlib
import json
import pathlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import kopf
import pytest

from clickhouse_privatelink.wiring.progress import (
    DIFF_BASE_FIELD,
    MARKER,
    PROGRESS_FIELD,
    TOUCH_FIELD,
    EssenceDiffBaseStorage,
    FreshOnChangeProgressStorage,
)
from clickhouse_privatelink_testkit.standins.kubernetes.server import (
    EmulatorThread,
    load_crd_file,
    write_kubeconfig,
)
from tests.fixtures.kubernetes import CRD_FILE, KubeApi, KubeClient, resource_path
from tests.fixtures.polling import wait_for
from tests.standins.kube_samples import API_VERSION, PLURAL, chpl

OPERATOR = pathlib.Path(__file__).with_name("minimal_operator.py")
FINALIZER = "privatelink.clickhouse.dev/test-finalizer"
ANNOTATION = "privatelink.clickhouse.dev/last-handled-configuration"


@contextlib.contextmanager
def kopf_run(api: KubeApi, workdir: pathlib.Path, *, storages: str = "kopf") -> Iterator[pathlib.Path]:
    """``kopf run`` of the minimal operator as a separate process against ``api``; yields its log file.

    ``storages="operator"``: kopf keeps its progress and diff-base as the operator has it keep them."""
    log = workdir / "kopf.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", "--verbose", str(OPERATOR)],
            stdout=out, stderr=subprocess.STDOUT, env=api.env(MINIMAL_OPERATOR_STORAGES=storages), cwd=workdir,
        )  # fmt: skip
    try:
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def kopf_operator(kube_api: KubeApi, tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """The minimal operator on the session's stand-in; yields its log file."""
    with kopf_run(kube_api, tmp_path) as log:
        yield log


def test_kopf_operator_handles_create_and_finalizes_delete(
    kopf_operator: pathlib.Path, kube: KubeClient, kube_namespace: str
) -> None:
    kube.create(API_VERSION, PLURAL, chpl("kopf-demo"), kube_namespace)

    def hostname() -> str | None:
        return (
            kube.get(API_VERSION, PLURAL, "kopf-demo", kube_namespace)
            .get("status", {})
            .get("privateDnsHostname")
        )

    try:
        assert (
            wait_for(hostname, timeout=30, message="kopf's status patch")
            == f"kopf-demo.{kube_namespace}.example"
        )
    except TimeoutError:
        raise AssertionError(kopf_operator.read_text()) from None
    obj = kube.get(API_VERSION, PLURAL, "kopf-demo", kube_namespace)
    assert FINALIZER in obj["metadata"]["finalizers"]

    events = wait_for(
        lambda: kube.list("v1", "events", kube_namespace, field_selector="involvedObject.name=kopf-demo")[
            "items"
        ],
        timeout=15,
        message="kopf's events",
    )
    assert [(e["reason"], e["involvedObject"]["uid"]) for e in events] == [
        ("HostnameAssigned", obj["metadata"]["uid"])
    ]

    kube.delete(API_VERSION, PLURAL, "kopf-demo", kube_namespace)
    wait_for(
        lambda: kube.get_or_none(API_VERSION, PLURAL, "kopf-demo", kube_namespace) is None,
        timeout=30,
        message="kopf to remove its finalizer",
    )
    assert "cleaning up kopf-demo" in kopf_operator.read_text()


def writes_since(
    kube: KubeClient, namespace: str, name: str, version: str, until: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The object as each write after ``version`` left it (its watch events), up to the first ``until`` holds for."""
    params = {
        "watch": "true",
        "resourceVersion": version,
        "fieldSelector": f"metadata.name={name}",
        "timeoutSeconds": "30",
    }
    seen: list[dict[str, Any]] = []
    with kube.http.stream("GET", resource_path(API_VERSION, PLURAL, namespace), params=params) as response:
        for line in response.iter_lines():
            event = json.loads(line) if line.strip() else {"type": "BOOKMARK"}
            if event["type"] != "BOOKMARK":
                seen.append(event["object"])
                if until(event["object"]):
                    break
    return seen


def diff_base(obj: dict[str, Any]) -> Any:
    encoded = obj.get("status", {}).get(DIFF_BASE_FIELD)
    return None if encoded is None else json.loads(encoded)


def ours(obj: dict[str, Any]) -> dict[str, str]:
    """The object's annotations of our group (kopf's progress records, diff-base and marker)."""
    annotations = obj["metadata"].get("annotations") or {}
    return {k: v for k, v in annotations.items() if k.startswith("privatelink.clickhouse.dev/")}


def test_a_first_pass_ends_with_one_status_write_holding_kopfs_diff_base(
    kube_api: KubeApi, kube: KubeClient, kube_namespace: str, tmp_path: pathlib.Path
) -> None:
    """With the operator's storages, kopf writes a created object twice: its finalizer, then the status (the
    handler's fields and the diff-base in one PATCH). Nothing of kopf's stays in the annotations."""
    with kopf_run(kube_api, tmp_path, storages="operator") as log:
        created = kube.create(API_VERSION, PLURAL, chpl("one-write"), kube_namespace)
        try:
            writes = writes_since(
                kube, kube_namespace, "one-write", created["metadata"]["resourceVersion"], diff_base
            )
        except httpx.ReadTimeout:
            raise AssertionError(log.read_text()) from None
    assert len(writes) == 2, [(w["metadata"].get("finalizers"), w.get("status"), ours(w)) for w in writes]
    finalizer, status = writes
    assert finalizer["metadata"]["finalizers"] == [FINALIZER] and "status" not in finalizer
    assert status["status"]["privateDnsHostname"] == f"one-write.{kube_namespace}.example"
    assert diff_base(status) == {"spec": status["spec"]}
    assert ours(finalizer) == ours(status) == {}


def resource_part(obj: dict[str, Any]) -> dict[str, Any]:
    """What a PATCH of the resource itself (not of its status subresource) changes."""
    meta = {k: v for k, v in obj["metadata"].items() if k not in ("resourceVersion", "managedFields")}
    return {"metadata": meta, "spec": obj.get("spec")}


def test_a_pass_retried_writes_only_the_status_after_the_finalizer(
    kube_api: KubeApi, kube: KubeClient, kube_namespace: str, tmp_path: pathlib.Path
) -> None:
    """A handler that fails once and then succeeds: kopf's progress record, its wake-up at the retry time and the
    end of the pass are each one status PATCH; the resource itself is written once, for the finalizer."""
    with kopf_run(kube_api, tmp_path, storages="operator") as log:
        obj = chpl("retried")
        obj["metadata"]["annotations"] = {"minimal/fail-first": "1"}
        created = kube.create(API_VERSION, PLURAL, obj, kube_namespace)
        try:
            writes = writes_since(
                kube, kube_namespace, "retried", created["metadata"]["resourceVersion"], diff_base
            )
        except httpx.ReadTimeout:
            raise AssertionError(log.read_text()) from None
    summary = [(w["metadata"].get("finalizers"), w.get("status"), ours(w)) for w in writes]
    finalizer, *status_writes = writes
    assert finalizer["metadata"]["finalizers"] == [FINALIZER] and "status" not in finalizer, summary
    # Every later write is of the status: the resource itself is as the finalizer left it.
    assert all(resource_part(w) == resource_part(finalizer) for w in status_writes), summary
    assert all(ours(w) == {} for w in writes), summary  # no annotation of kopf's, nor its marker
    retrying, *woken, done = status_writes
    record = retrying["status"][PROGRESS_FIELD]["created"]
    assert record["retries"] == 1 and record["message"] == "not yet" and "delayed" in record, summary
    # kopf wakes the object at the retry time (unless the watch event came after it: then no wake-up).
    assert len(woken) <= 1 and all(TOUCH_FIELD in w["status"] for w in woken), summary
    assert done["status"]["privateDnsHostname"] == f"retried.{kube_namespace}.example"
    assert PROGRESS_FIELD not in done["status"] and TOUCH_FIELD not in done["status"], summary
    assert diff_base(done) == {
        "spec": done["spec"],
        "metadata": {"annotations": {"minimal/fail-first": "1"}},
    }


def test_a_diff_base_an_older_version_left_in_the_annotation_is_used_then_moved(
    kube_api: KubeApi, kube: KubeClient, kube_namespace: str, tmp_path: pathlib.Path
) -> None:
    """An object handled by an older version (diff-base annotation, no status field) is not created again:
    kopf reads the annotation; its next change moves the diff-base into the status and drops the annotation."""
    created = kube.create(API_VERSION, PLURAL, chpl("older"), kube_namespace)
    # The annotation as the older version's storage wrote it, for the object as the server keeps it.
    older = EssenceDiffBaseStorage(prefix="privatelink.clickhouse.dev", key="last-handled-configuration")
    essence = FreshOnChangeProgressStorage(prefix="privatelink.clickhouse.dev").clear(
        essence=older.build(body=kopf.Body(created))
    )
    patch = kopf.Patch()
    older.store(body=kopf.Body(created), patch=patch, essence=essence)
    handled = kube.patch(API_VERSION, PLURAL, "older", dict(patch), kube_namespace)
    assert set(ours(handled)) == {ANNOTATION, MARKER}

    with kopf_run(kube_api, tmp_path, storages="operator") as log:
        # kopf adds its finalizer, sees no change (a create would write status.privateDnsHostname), and waits.
        wait_for(
            lambda: (
                FINALIZER
                in (
                    kube.get(API_VERSION, PLURAL, "older", kube_namespace)["metadata"].get("finalizers") or []
                )
            ),
            timeout=30,
            message=f"kopf's finalizer: {log}",
        )
        changed = kube.patch(
            API_VERSION, PLURAL, "older", {"spec": {"aws": {"tags": {"team": "a"}}}}, kube_namespace
        )
        try:
            writes = writes_since(
                kube, kube_namespace, "older", changed["metadata"]["resourceVersion"], diff_base
            )
        except httpx.ReadTimeout:
            raise AssertionError(log.read_text()) from None
    moved = writes[-1]
    assert diff_base(moved) == {"spec": changed["spec"]}
    assert ours(moved) == {MARKER: "yes"}  # the annotation went in the same patch; kopf's marker stays
    # The older diff-base was read throughout: the create handler never ran.
    assert "privateDnsHostname" not in moved["status"]
    assert "Creation is in progress" not in log.read_text()


@pytest.fixture
def own_emulator(tmp_path: pathlib.Path) -> Iterator[tuple[EmulatorThread, KubeApi]]:
    """A private stand-in keeping 20 events per resource (the session's is shared), with our CRD."""
    thread = EmulatorThread(history_limit=20, bookmark_interval=1.0)
    emulator = thread.start()
    try:
        for crd in load_crd_file(CRD_FILE):
            thread.call(lambda crd=crd: emulator.apply_crd(crd))
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, emulator.url)
        yield thread, KubeApi(url=emulator.url, kubeconfig=kubeconfig, emulator=emulator, thread=thread)
    finally:
        thread.stop()


def test_kopf_relists_after_a_watch_from_a_compacted_version_gets_410(
    own_emulator: tuple[EmulatorThread, KubeApi], tmp_path: pathlib.Path
) -> None:
    thread, api = own_emulator
    emulator = api.emulator
    assert emulator is not None
    with kopf_run(api, tmp_path) as log, contextlib.closing(api.client()) as kube:

        def hostname(name: str) -> str | None:
            obj = kube.get_or_none(API_VERSION, PLURAL, name, "default") or {}
            return obj.get("status", {}).get("privateDnsHostname")

        kube.create(API_VERSION, PLURAL, chpl("before"), "default")
        wait_for(lambda: hostname("before"), timeout=30, message=f"kopf to handle 'before': {log}")
        # kopf's watch ends and its reconnect waits while more changes than the history keeps go by.
        thread.call(emulator.hold_watches)
        kube.create(API_VERSION, PLURAL, chpl("during"), "default")
        for i in range(25):
            patch = {"metadata": {"labels": {"round": str(i)}}}
            kube.patch(API_VERSION, PLURAL, "before", patch, "default")
        thread.call(emulator.release_watches)
        # The resumed watch gets ERROR 410; kopf lists again and so finds the object created meanwhile.
        wait_for(
            lambda: hostname("during"), timeout=30, message=f"kopf to handle 'during': {log.read_text()}"
        )
        assert "Restarting the watch-stream for clickhouseprivatelinks" in log.read_text()
