"""Two replicas in one kopf peering, as the chart runs them: only the active one says so (chpl_active) and
counts resources (chpl_resources); the one standing by counts none, so sums over replicas are true."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import LinkFactory, OperatorProcess
from tests.fixtures.kubernetes import KubeClient
from tests.fixtures.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.standin_only]


@pytest.fixture
def replicas(operator: OperatorProcess, kube: KubeClient, tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    """Two operator processes peering in a ClusterKopfPeering of their own, priorities 1 and 2 (not started).

    The session's standalone operator steps aside meanwhile: it would serve the same resources outside the
    peering. It is back before the test's resources are deleted.
    """
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
    kube.create("kopf.dev/v1", "clusterkopfpeerings", body)

    def replica(priority: int) -> OperatorProcess:
        log_dir = tmp_path / f"priority-{priority}"
        log_dir.mkdir()
        args = ["--peering", name, "--priority", str(priority)]
        return OperatorProcess(
            env=operator.env, log_dir=log_dir, clickhouse_url=operator.clickhouse_url, peering_args=args
        )

    operator.stop()
    pair = [replica(1), replica(2)]
    try:
        yield pair
    finally:
        for process in pair:
            process.stop()
        operator.start()
        kube.delete("kopf.dev/v1", "clusterkopfpeerings", name)


def counted(process: OperatorProcess) -> float:
    return process.metric("chpl_resources")


def test_only_the_active_replica_says_so_and_counts_resources(
    replicas: list[OperatorProcess], make_link: LinkFactory
) -> None:
    standby, active = replicas
    standby.start()
    wait_for(lambda: standby.metric("chpl_active") == 1, timeout=30, message="the only replica to be active")
    link = make_link()
    link.wait_ready()
    wait_for(lambda: standby.metric("chpl_resources", ready="true") >= 1, timeout=10)

    # A replica of higher priority joins: the first one stands by and stops counting at once.
    active.start()
    wait_for(lambda: active.metric("chpl_active") == 1, timeout=30, message="the new replica to take over")
    wait_for(lambda: standby.metric("chpl_active") == 0, timeout=30, message="the first to stand by")
    assert counted(standby) == 0
    wait_for(lambda: active.metric("chpl_resources", ready="true") >= 1, timeout=30)
    assert standby.metric("chpl_build_info") == 1 and active.metric("chpl_build_info") == 1

    # It stops (SIGTERM: kopf leaves the peering): the other is active again and counts what it serves.
    active.stop()
    wait_for(lambda: standby.metric("chpl_active") == 1, timeout=30, message="the standby to take over")
    wait_for(lambda: standby.metric("chpl_resources", ready="true") >= 1, timeout=60)
