"""Start the operator: logging, metrics and kopf's reactor with our handlers."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Callable, Sequence

import kopf
import uvloop

from clickhouse_privatelink import metrics
from clickhouse_privatelink.api.models import ClickHousePrivateLinkSpec  # noqa: F401 - fail fast on a broken install, before kopf starts
from clickhouse_privatelink.settings import Settings
from clickhouse_privatelink.wiring import handlers
from clickhouse_privatelink.wiring.state import ProcessState

LOG_FORMATS = {"json": kopf.LogFormat.JSON, "text": kopf.LogFormat.PLAIN, "full": kopf.LogFormat.FULL}


def configure_logging(log_format: str, *, verbose: bool) -> None:
    """JSON lines by default (each line carries the resource's namespace and name), text on request
    (``log_format``: a key of ``LOG_FORMATS``, Settings.log_format)."""
    kopf.configure(verbose=verbose, log_format=LOG_FORMATS[log_format], log_refkey="k8s")
    # botocore and aiohttp log request details (headers included) at DEBUG: keep them quiet even with -v.
    for noisy in ("botocore", "boto3", "urllib3", "aiohttp", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def tune_garbage_collection() -> None:
    """Collect cycles less often than CPython's default, and never scan what was loaded at start.

    A thousand resources make a large heap of long-lived objects. With the default thresholds (700, 10, 10)
    a full collection ran every few seconds under load, each holding the GIL for 100-350 ms (measured at
    N=1000: 23 of them, 4 s in all), and the paced ClickHouse calls stalled with everything else. Modules,
    models and schemas loaded so far live as long as the process: frozen, a collection skips them.
    """
    gc.collect()  # what start-up left behind goes first: frozen, it would stay
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 10, 10)


class PeeringActivity(logging.Filter):
    """Whether this replica is the active one, from kopf's own peering decisions, as kopf announces them.

    kopf keeps its pause to itself (a toggle inside ``kopf.run``) and says it in its peering log: "Pausing
    operations in favour of ..." (a live peer has a higher priority), "Pausing all operators, including self"
    (equal priorities), "Resuming operations after the pause" (nothing stands in the way). With peering, kopf
    starts paused until its first look at the peering object. Each peering object (one per served namespace
    in namespaced mode) is seen by a task of its own: the replica is active when every one it has seen has
    resumed. The filter only listens; every record passes. kopf is pinned (pyproject.toml) and
    tests/e2e/test_peering.py checks the wording with two real replicas.
    """

    PAUSING = ("Pausing operations in favour of", "Pausing all operators, including self")
    RESUMING = "Resuming operations after the pause"

    def __init__(self, on_change: Callable[[bool], None]) -> None:
        super().__init__()
        self._on_change = on_change
        self._paused: dict[str, bool] = {}
        self._active = False

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(self.PAUSING):
            paused = True
        elif message.startswith(self.RESUMING):
            paused = False
        else:
            return True
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        self._paused[task.get_name() if task is not None else ""] = paused
        active = not any(self._paused.values())
        if active != self._active:
            self._active = active
            self._on_change(active)
        return True


PEERING_LOGGER = "kopf._core.engines.peering"


def follow_peering(book: metrics.ResourceBook, *, standalone: bool) -> None:
    """Keep ``chpl_active`` and the resource gauges (``book``) true to this replica's part in the peering."""
    if standalone:
        book.set_active(True)
        return
    logger = logging.getLogger(PEERING_LOGGER)
    logger.addFilter(PeeringActivity(book.set_active))
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)  # the announcements are INFO records


# Net allocations between young collections (CPython's default: 700): they, and so the full ones, come 7 times rarer.
GC_THRESHOLD = 5_000


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
    # The settings are read once, here: a wrong value stops the operator before kopf starts.
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, verbose=verbose)
    registry = handlers.register(kopf.OperatorRegistry(), settings)
    state = ProcessState(settings, metrics_port=metrics_port)
    follow_peering(state.resource_book, standalone=standalone)
    tune_garbage_collection()
    # libuv's loop, as kopf's own CLI runs on when uvloop is installed (kopf.run alone does not pick it).
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        kopf.run(
            loop=loop,
            standalone=standalone or None,
            clusterwide=all_namespaces,
            namespaces=list(namespaces),
            priority=priority,
            peering_name=None if standalone else peering,
            liveness_endpoint=liveness or None,
            registry=registry,
            memo=kopf.Memo(state=state),
        )
    except kopf.LoginError as exc:
        print(
            f"error: cannot reach the Kubernetes API ({exc}): set KUBECONFIG or run in a cluster",
            file=sys.stderr,
        )
        return 1
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return 0
