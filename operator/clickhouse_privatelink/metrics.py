"""Prometheus metrics: one definition of each, served on /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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
    "chpl_resources", "ClickHousePrivateLink resources handled by this instance, by Ready status.", ["ready"]
)
DRIFT_REPAIRS = Counter(
    "chpl_drift_repairs_total", "Changes made to repair drift found by the periodic check.", ["what"]
)


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
