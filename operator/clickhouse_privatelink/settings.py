"""Operator settings, read once at start-up from the environment."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from clickhouse_privatelink.constants import DEFAULT_API_URL


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


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"{name} must be true or false, got {raw!r}")
    return raw in ("true", "1", "yes")


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _urls(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    urls = tuple(u.strip() for u in raw.split(",") if u.strip())
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{name}: {url!r} is not an http(s) URL")
    return urls


def _rate_limit(name: str, default: tuple[int, float] | None) -> tuple[int, float] | None:
    """``N/PERIOD`` such as ``10/10s`` or ``600/1m`` (units s, m, h) -> ``(N, seconds)``; ``off`` -> None."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in ("off", "none", "0", ""):
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([smh]?)\s*", raw)
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"{name} must be N/PERIOD such as 10/10s, or off, got {raw!r}")
    period = float(m.group(2) or 1) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(3)]
    if period <= 0:
        raise ValueError(f"{name} must have a positive period, got {raw!r}")
    return int(m.group(1)), period


@dataclass(frozen=True)
class Settings:
    """How the operator paces itself. Every value has an environment variable (see README)."""

    cluster_name: str = "default"
    # The ClickHouse API URLs resources may name in spec.clickhouse.apiUrl (compared without a trailing / or
    # /v1; decisions.tenancy.api_url_allowed). It bounds every tenancy policy.
    clickhouse_api_urls: tuple[str, ...] = (DEFAULT_API_URL,)
    # While waiting for something that happens by itself (service provisioning, endpoint pending).
    poll_interval: float = 15.0
    # After an error a person must fix (bad key, missing Secret): retried this slowly, never in a hot loop.
    error_retry_interval: float = 300.0
    # Longest back-off after transient errors (throttling, 5xx).
    max_backoff: float = 300.0
    # Drift repair: how often a Ready resource is checked against AWS and ClickHouse.
    drift_interval: float = 300.0
    # Watch the API-key Secrets (needs list/watch on Secrets): a change re-reconciles the resources using it
    # at once. Without it a changed key is read at the next drift check, or as soon as ClickHouse refuses
    # the old one.
    watch_secrets: bool = False
    # ClickHouse client retries: 5xx/transport back-off base and cap, and the margin added to X-RateLimit-Reset.
    clickhouse_backoff_base: float = 4.0
    clickhouse_backoff_max: float = 60.0
    clickhouse_reset_padding: float = 1.0
    # Client-side pace per ClickHouse API key: (requests, seconds), ClickHouse Cloud's own 10 per 10 s;
    # None: no client-side limit (the server's 429s are still honoured).
    clickhouse_rate_limit: tuple[int, float] | None = (10, 10.0)
    # Allow-list changes for one service (and organization-entry removals) within this window: one PATCH.
    clickhouse_batch_window: float = 0.2
    # A reconcile pass accepts shared reads (the services list, the VPC's endpoints, a zone's records) this
    # old; drift checks accept half a drift interval, so a period costs the same few reads for 10 or 1,000
    # resources. Kept reads take in the operator's own writes: the window only bounds how late a change made
    # by someone else is seen (and a read showing an endpoint AWS is still changing is kept a second at most).
    read_window: float = 10.0
    # A zone's worker (engine/zone_worker.py) starts its round of record requests once none has joined for
    # this long, but at most CHPL_ROUTE53_MAX_BATCH_WINDOW after the first while requests keep coming: a burst
    # of new resources then costs a few ChangeResourceRecordSets. (A record takes Route 53 about a minute to
    # propagate; external-dns writes once a minute. Requests filling a request by Route 53's limits go at once.)
    route53_batch_window: float = 3.0
    route53_max_batch_window: float = 30.0
    # The Reachable check (decisions/reachability.py): "auto" measures the private hostname from the operator's
    # pod for resources in the operator's own VPC (CHPL_OPERATOR_VPC_ID, else asked of the instance metadata
    # service once), "off" never does. Required makes a failed check Ready's reason too (not by default).
    reachability: str = "auto"
    operator_vpc_id: str | None = None
    reachability_required: bool = False
    reachability_timeout: float = 5.0  # each connect, TLS handshake, DNS query and /ping answer
    # Test-only (the test kit's data-plane stand-in; never set in a deployment): the resolver to ask instead
    # of /etc/resolv.conf's ("HOST:PORT"), where the endpoint's interface addresses are reached instead
    # ("10.0.0.0/8=127.0.0.0/8": an address of the first block is dialled at the same offset in the second),
    # and a CA file trusted beside the system's.
    test_dns_resolver: str | None = None
    test_address_map: str | None = None
    test_ca_file: str | None = None
    # TEST ONLY: SIGKILL the process right after this kind of external write (engine/crash_points.py);
    # empty (the default) in production.
    test_crash_after: str = ""
    # The log: JSON lines carrying the resource's namespace and name, or kopf's plain or full text.
    log_format: str = "json"

    @classmethod
    def from_env(cls) -> Settings:
        """Every setting from its environment variable; ValueError names the first one it cannot use."""
        return cls(
            cluster_name=os.environ.get("CHPL_CLUSTER_NAME", "") or "default",
            clickhouse_api_urls=_urls("CHPL_CLICKHOUSE_API_URLS", cls.clickhouse_api_urls),
            watch_secrets=_bool("CHPL_WATCH_SECRETS", cls.watch_secrets),
            poll_interval=_float("CHPL_POLL_INTERVAL", cls.poll_interval),
            error_retry_interval=_float("CHPL_ERROR_RETRY_INTERVAL", cls.error_retry_interval),
            max_backoff=_float("CHPL_MAX_BACKOFF", cls.max_backoff),
            drift_interval=_float("CHPL_DRIFT_INTERVAL", cls.drift_interval),
            clickhouse_backoff_base=_float("CHPL_CLICKHOUSE_BACKOFF_BASE", cls.clickhouse_backoff_base),
            clickhouse_backoff_max=_float("CHPL_CLICKHOUSE_BACKOFF_MAX", cls.clickhouse_backoff_max),
            clickhouse_reset_padding=_float("CHPL_CLICKHOUSE_RESET_PADDING", cls.clickhouse_reset_padding),
            clickhouse_rate_limit=_rate_limit("CHPL_CLICKHOUSE_RATE_LIMIT", cls.clickhouse_rate_limit),
            clickhouse_batch_window=_float("CHPL_CLICKHOUSE_BATCH_WINDOW", cls.clickhouse_batch_window),
            read_window=_float("CHPL_READ_WINDOW", cls.read_window),
            route53_batch_window=_float("CHPL_ROUTE53_BATCH_WINDOW", cls.route53_batch_window),
            route53_max_batch_window=_float("CHPL_ROUTE53_MAX_BATCH_WINDOW", cls.route53_max_batch_window),
            reachability=_choice("CHPL_REACHABILITY", cls.reachability, ("auto", "off")),
            operator_vpc_id=os.environ.get("CHPL_OPERATOR_VPC_ID", "").strip() or None,
            reachability_required=_bool("CHPL_REACHABILITY_REQUIRED", cls.reachability_required),
            reachability_timeout=_float("CHPL_REACHABILITY_TIMEOUT", cls.reachability_timeout),
            test_dns_resolver=os.environ.get("CHPL_TEST_DNS_RESOLVER") or None,
            test_address_map=os.environ.get("CHPL_TEST_ADDRESS_MAP") or None,
            test_ca_file=os.environ.get("CHPL_TEST_CA_FILE") or None,
            test_crash_after=os.environ.get("CHPL_TEST_CRASH_AFTER", "").strip(),
            log_format=_choice("CHPL_LOG_FORMAT", cls.log_format, ("json", "text", "full")),
        )

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (0-based) after a transient error."""
        return float(min(self.poll_interval * 2 ** min(attempt, 16), self.max_backoff))
