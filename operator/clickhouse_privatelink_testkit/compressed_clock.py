"""The operator's ordinary settings for a ClickHouse stand-in whose clock runs ``time_scale`` times real time.

The operator knows nothing of compressed clocks: its rate limit and retry waits are plain settings, and the
stand-in's ``X-RateLimit-Reset`` is in wall-clock seconds. These helpers scale those settings to match.
"""

from __future__ import annotations

from typing import Any

from clickhouse_privatelink.adapters.clickhouse.client import RetryPolicy


def operator_env(time_scale: float) -> dict[str, str]:
    """``CHPL_CLICKHOUSE_*`` settings for an operator process talking to a stand-in at ``time_scale``."""
    default = RetryPolicy()
    return {
        "CHPL_CLICKHOUSE_RATE_LIMIT": f"10/{10 * time_scale}s",
        "CHPL_CLICKHOUSE_BACKOFF_BASE": str(default.backoff_base * time_scale),
        "CHPL_CLICKHOUSE_BACKOFF_MAX": str(default.backoff_max * time_scale),
        "CHPL_CLICKHOUSE_RESET_PADDING": str(default.reset_padding * time_scale),
    }


def retry_policy(time_scale: float, **overrides: Any) -> RetryPolicy:
    """The default retry policy with every wait scaled by ``time_scale`` (in-process clients in tests)."""
    default = RetryPolicy()
    return RetryPolicy(
        **{
            "backoff_base": default.backoff_base * time_scale,
            "backoff_max": default.backoff_max * time_scale,
            "reset_padding": default.reset_padding * time_scale,
            **overrides,
        }
    )
