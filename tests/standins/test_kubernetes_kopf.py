"""A real kopf operator process against the Kubernetes stand-in: handlers, status patches, finalizers."""

from __future__ import annotations

import contextlib
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from clickhouse_privatelink_testkit.standins.kubernetes.server import (
    EmulatorThread,
    load_crd_file,
    write_kubeconfig,
)
from tests.fixtures.kubernetes import CRD_FILE, KubeApi, KubeClient
from tests.fixtures.polling import wait_for
from tests.standins.kube_samples import API_VERSION, PLURAL, chpl

OPERATOR = pathlib.Path(__file__).with_name("minimal_operator.py")
FINALIZER = "privatelink.clickhouse.dev/test-finalizer"


@contextlib.contextmanager
def kopf_run(api: KubeApi, workdir: pathlib.Path) -> Iterator[pathlib.Path]:
    """``kopf run`` of the minimal operator as a separate process against ``api``; yields its log file."""
    log = workdir / "kopf.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", "--verbose", str(OPERATOR)],
            stdout=out, stderr=subprocess.STDOUT, env=api.env(), cwd=workdir,
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
