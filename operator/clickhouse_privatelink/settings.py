"""Operator settings, read once at start-up from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from exc
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """How the operator paces itself. Every value has an environment variable (see README)."""

    cluster_name: str = "default"
    # While waiting for something that happens by itself (service provisioning, endpoint pending).
    poll_interval: float = 15.0
    # After an error a person must fix (bad key, missing Secret): retried this slowly, never in a hot loop.
    error_retry_interval: float = 300.0
    # Longest back-off after transient errors (throttling, 5xx).
    max_backoff: float = 300.0
    # Drift repair: how often a Ready resource is checked against AWS and ClickHouse.
    drift_interval: float = 300.0
    # ClickHouse client retries: 5xx/transport back-off base and cap, and the margin added to X-RateLimit-Reset.
    clickhouse_backoff_base: float = 4.0
    clickhouse_backoff_max: float = 60.0
    clickhouse_reset_padding: float = 1.0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            cluster_name=os.environ.get("CHPL_CLUSTER_NAME", "") or "default",
            poll_interval=_float("CHPL_POLL_INTERVAL", cls.poll_interval),
            error_retry_interval=_float("CHPL_ERROR_RETRY_INTERVAL", cls.error_retry_interval),
            max_backoff=_float("CHPL_MAX_BACKOFF", cls.max_backoff),
            drift_interval=_float("CHPL_DRIFT_INTERVAL", cls.drift_interval),
            clickhouse_backoff_base=_float("CHPL_CLICKHOUSE_BACKOFF_BASE", cls.clickhouse_backoff_base),
            clickhouse_backoff_max=_float("CHPL_CLICKHOUSE_BACKOFF_MAX", cls.clickhouse_backoff_max),
            clickhouse_reset_padding=_float("CHPL_CLICKHOUSE_RESET_PADDING", cls.clickhouse_reset_padding),
        )

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (0-based) after a transient error."""
        return float(min(self.poll_interval * 2 ** min(attempt, 16), self.max_backoff))
