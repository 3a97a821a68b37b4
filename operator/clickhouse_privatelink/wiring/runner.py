"""Start the operator: logging, metrics and kopf's reactor with our handlers."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import kopf

from clickhouse_privatelink.api.models import ClickHousePrivateLinkSpec  # noqa: F401 - fail fast on a broken install, before kopf starts


def configure_logging(*, verbose: bool) -> None:
    """JSON lines by default (each line carries the resource's namespace and name), text on request."""
    fmt = os.environ.get("CHPL_LOG_FORMAT", "json").lower()
    log_format = {"json": kopf.LogFormat.JSON, "text": kopf.LogFormat.PLAIN, "full": kopf.LogFormat.FULL}.get(
        fmt
    )
    if log_format is None:
        raise SystemExit(f"CHPL_LOG_FORMAT must be json, text or full, not {fmt!r}")
    kopf.configure(verbose=verbose, log_format=log_format, log_refkey="k8s")
    # botocore and httpx log request details (headers included) at DEBUG: keep them quiet even with -v.
    for noisy in ("botocore", "boto3", "urllib3", "httpx", "httpcore", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_operator(
    *,
    namespaces: Sequence[str],
    all_namespaces: bool,
    standalone: bool,
    peering: str,
    priority: int,
    liveness: str,
    metrics_port: int,
    verbose: bool,
) -> int:
    """Run until SIGINT/SIGTERM; return the exit code."""
    if bool(namespaces) == all_namespaces:
        print("error: pass either --all-namespaces or one or more --namespace", file=sys.stderr)
        return 2
    configure_logging(verbose=verbose)
    # Log in with kopf's built-in logins (no Kubernetes client library), shared with the Secret reader.
    from clickhouse_privatelink.adapters.kubernetes import login  # noqa: F401 - registers @kopf.on.login()
    from clickhouse_privatelink.wiring import handlers  # registers the handlers with kopf's default registry

    try:
        kopf.run(
            standalone=standalone or None,
            clusterwide=all_namespaces,
            namespaces=list(namespaces),
            priority=priority,
            peering_name=None if standalone else peering,
            liveness_endpoint=liveness or None,
            memo=kopf.Memo(handlers.metrics_memo(metrics_port)),
        )
    except kopf.LoginError as exc:
        print(
            f"error: cannot reach the Kubernetes API ({exc}): set KUBECONFIG or run in a cluster",
            file=sys.stderr,
        )
        return 1
    return 0
