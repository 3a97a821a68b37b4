"""Prometheus metrics: one definition of each, served on /metrics."""

from __future__ import annotations

import platform
import threading
import time
from importlib import metadata

from prometheus_client import Counter, Gauge, Histogram, Info, start_http_server

from clickhouse_privatelink.constants import OPERATOR_NAME

RECONCILES = Counter(
    "chpl_reconciles_total",
    "Reconcile passes by kind (reconcile, cleanup, drift) and outcome.",
    ["kind", "outcome"],
)
RECONCILE_DURATION = Histogram(
    "chpl_reconcile_duration_seconds",
    "Duration of one reconcile pass.",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
API_CALLS = Counter(
    "chpl_external_api_calls_total",
    "Calls to external APIs by service, operation and status.",
    ["service", "operation", "status"],
)
THROTTLED = Counter("chpl_throttled_calls_total", "External calls answered with throttling.", ["service"])
RESOURCES = Gauge(
    "chpl_resources",
    "ClickHousePrivateLink resources this replica serves, by Ready status and reason (none while it stands by).",
    ["ready", "reason"],
)
ACTIVE = Gauge(
    "chpl_active", "1 on the replica that serves the resources (kopf peering), 0 on a replica standing by."
)
DELETING = Gauge(
    "chpl_resources_deleting", "Resources being deleted whose cleanup this replica has not finished yet."
)
OLDEST_DELETION = Gauge(
    "chpl_oldest_deletion_age_seconds",
    "Seconds since the deletion of the oldest resource whose cleanup has not finished (0: none).",
)
BUILD = Info("chpl_build", "The operator's version, and the kopf and Python versions it runs on.")
BUILD.info(
    {
        "version": metadata.version(OPERATOR_NAME),
        "kopf": metadata.version("kopf"),
        "python": platform.python_version(),
    }
)
DRIFT_REPAIRS = Counter(
    "chpl_drift_repairs_total", "Changes made to repair drift found by the periodic check.", ["what"]
)


class ResourceBook:
    """The resources behind ``chpl_resources`` and the deletion gauges: each one's Ready status and reason, and
    when its deletion began. Only the active replica keeps it: standing by empties it (the active replica
    counts those resources), and a pass that finishes after that is not counted.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the metrics thread reads the deletions
        self._state: dict[str, tuple[str, str]] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._deleting: dict[str, float] = {}
        self.active = False
        ACTIVE.set(0)
        OLDEST_DELETION.set_function(self.oldest_deletion_age)

    def set_active(self, active: bool) -> None:
        with self._lock:
            self.active = active
            ACTIVE.set(1 if active else 0)
            if not active:
                self._state.clear()
                self._counts.clear()
                self._deleting.clear()
                RESOURCES.clear()
                DELETING.set(0)

    def record(self, uid: str, *, ready: bool, reason: str, deleting_since: float | None = None) -> None:
        """A pass's outcome for one resource; ``deleting_since`` (epoch seconds) while it is being deleted."""
        with self._lock:
            if not self.active:
                return
            key = ("true" if ready else "false", reason)
            old = self._state.get(uid)
            if old != key:
                if old is not None:
                    self._counts[old] -= 1
                    RESOURCES.labels(*old).set(self._counts[old])
                self._state[uid] = key
                self._counts[key] = self._counts.get(key, 0) + 1
                RESOURCES.labels(*key).set(self._counts[key])
            if deleting_since is not None and uid not in self._deleting:
                self._deleting[uid] = deleting_since
                DELETING.set(len(self._deleting))

    def forget(self, uid: str) -> None:
        """The resource is gone (its cleanup finished)."""
        with self._lock:
            old = self._state.pop(uid, None)
            if old is not None:
                self._counts[old] -= 1
                RESOURCES.labels(*old).set(self._counts[old])
            if self._deleting.pop(uid, None) is not None:
                DELETING.set(len(self._deleting))

    def oldest_deletion_age(self) -> float:
        with self._lock:
            oldest = min(self._deleting.values(), default=None)
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)


def record_clickhouse_call(operation: str, status: int | str) -> None:
    """The ClickHouse client's call hook: count calls; throttling (a 429, or our own limiter) separately."""
    if str(status) in ("429", "throttled"):
        THROTTLED.labels("clickhouse").inc()
    if str(status) != "throttled":  # the limiter's delay is followed by the call's own outcome
        API_CALLS.labels("clickhouse", operation, str(status)).inc()


def record_aws_call(service: str, operation: str, status: int | str) -> None:
    API_CALLS.labels(service, operation, str(status)).inc()
    if str(status) in ("Throttling", "RequestLimitExceeded", "ThrottlingException"):
        THROTTLED.labels(service).inc()


def serve(port: int) -> None:
    """Serve /metrics on ``port`` in a background thread."""
    start_http_server(port)
