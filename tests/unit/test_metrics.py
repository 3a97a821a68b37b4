"""The gauges a replica exports: its resources by Ready and reason only while it is the active replica,
its part in the peering (chpl_active, from kopf's own announcements), the deletion backlog, and the build."""

from __future__ import annotations

import asyncio
import logging
import platform
import time
from collections.abc import Iterator
from importlib import metadata

import pytest
from prometheus_client import REGISTRY

from clickhouse_privatelink import metrics
from clickhouse_privatelink.wiring.runner import PEERING_LOGGER, PeeringActivity


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


@pytest.fixture
def book() -> Iterator[metrics.ResourceBook]:
    """A process's book (its gauges are process-wide), active, and emptied afterwards."""
    book = metrics.ResourceBook()
    book.set_active(True)
    yield book
    book.set_active(False)


def test_resources_are_counted_by_ready_and_reason_and_moved_when_they_change(
    book: metrics.ResourceBook,
) -> None:
    book.record("a", ready=True, reason="Available")
    book.record("b", ready=False, reason="ServiceProvisioning")
    book.record("c", ready=False, reason="ServiceProvisioning")
    assert sample("chpl_resources", ready="false", reason="ServiceProvisioning") == 2
    book.record("b", ready=True, reason="Available")
    book.record("b", ready=True, reason="Available")  # the same again changes nothing
    assert sample("chpl_resources", ready="true", reason="Available") == 2
    assert sample("chpl_resources", ready="false", reason="ServiceProvisioning") == 1
    book.forget("c")
    book.forget("c")
    assert sample("chpl_resources", ready="false", reason="ServiceProvisioning") == 0


def test_standing_by_empties_the_gauges_and_ignores_late_passes(book: metrics.ResourceBook) -> None:
    book.record("a", ready=True, reason="Available")
    book.record("b", ready=False, reason="Deleting", deleting_since=time.time() - 60)
    assert sample("chpl_active") == 1
    book.set_active(False)
    assert sample("chpl_active") == 0
    assert sample("chpl_resources", ready="true", reason="Available") is None
    assert sample("chpl_resources_deleting") == 0
    assert sample("chpl_oldest_deletion_age_seconds") == 0
    # A pass that was already running when the replica stood by finishes afterwards: not counted.
    book.record("a", ready=True, reason="Available")
    assert sample("chpl_resources", ready="true", reason="Available") is None


def test_the_deletion_backlog_and_its_oldest_age(book: metrics.ResourceBook) -> None:
    now = time.time()
    book.record("a", ready=False, reason="Deleting", deleting_since=now - 600)
    book.record("b", ready=False, reason="Deleting", deleting_since=now - 60)
    book.record("a", ready=False, reason="Deleting", deleting_since=now)  # the first time stays
    assert sample("chpl_resources_deleting") == 2
    assert 599 <= (sample("chpl_oldest_deletion_age_seconds") or 0) <= 660
    book.forget("a")
    assert sample("chpl_resources_deleting") == 1
    assert 59 <= (sample("chpl_oldest_deletion_age_seconds") or 0) <= 120


def test_build_info_names_the_version_and_what_it_runs_on() -> None:
    labels = {
        "version": metadata.version("clickhouse-privatelink-operator"),
        "kopf": metadata.version("kopf"),
        "python": platform.python_version(),
    }
    assert sample("chpl_build_info", **labels) == 1


def peering_log(activity: PeeringActivity, message: str, task: str) -> None:
    """A peering announcement as kopf logs it, from the task that watches one peering object."""
    logger = logging.getLogger(PEERING_LOGGER)

    async def announce() -> None:
        record = logger.makeRecord(PEERING_LOGGER, logging.INFO, __file__, 0, message, (), None)
        assert activity.filter(record)

    async def main() -> None:
        await asyncio.create_task(announce(), name=task)

    asyncio.run(main())


def test_peering_announcements_drive_the_activity() -> None:
    changes: list[bool] = []
    activity = PeeringActivity(changes.append)
    peering_log(activity, "Resuming operations after the pause. Conflicting operators ...", "worker for ns-a")
    assert changes == [True]
    peering_log(activity, "Pausing operations in favour of [<Peer op-1: priority=1>].", "worker for ns-a")
    assert changes == [True, False]
    peering_log(activity, "Something else entirely", "worker for ns-a")
    peering_log(activity, "Resuming operations after the pause.", "worker for ns-a")
    assert changes == [True, False, True]


def test_a_replica_paused_in_one_peering_is_not_active() -> None:
    # Namespaced mode: one peering object per namespace, each with its own watcher task.
    changes: list[bool] = []
    activity = PeeringActivity(changes.append)
    peering_log(activity, "Resuming operations after the pause.", "worker for ns-a")
    peering_log(activity, "Pausing all operators, including self: [...]", "worker for ns-b")
    assert changes == [True, False]
    peering_log(activity, "Resuming operations after the pause.", "worker for ns-b")
    assert changes == [True, False, True]
