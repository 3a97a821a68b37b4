"""A test-only hook: SIGKILL the operator right after one kind of external write (``CHPL_TEST_CRASH_AFTER``).

The crash-point tests (tests/e2e/test_chaos_crash_points.py) start the operator with it, so that a kill lands
deterministically between a write to AWS or ClickHouse and the status write that would have recorded it:
the window that random kills rarely hit. Off (empty) in production; the chart never sets it. The in-process
engine tests (tests/engine) give ``Reconciler(wrote=...)`` a hook of their own that raises instead.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

log = logging.getLogger(__name__)

# Every external write a pass makes, by name (a record created or deleted is a record change; an entry added
# to or removed from a service's allow list is an allow-list PATCH).
ENDPOINT_CREATE = "endpoint-create"
ENDPOINT_DELETE = "endpoint-delete"
ZONE_CREATE = "zone-create"
# A zone created, its tags not yet written: Route 53 takes a new zone's tags only in a second call.
ZONE_CREATE_UNTAGGED = "zone-create-untagged"
ZONE_DELETE = "zone-delete"
RECORD_CHANGE = "record-change"
ALLOW_LIST_PATCH = "allow-list-patch"
ORGANIZATION_PATCH = "organization-patch"
POINTS = (
    ENDPOINT_CREATE,
    ENDPOINT_DELETE,
    ZONE_CREATE,
    ZONE_CREATE_UNTAGGED,
    ZONE_DELETE,
    RECORD_CHANGE,
    ALLOW_LIST_PATCH,
    ORGANIZATION_PATCH,
)

Wrote = Callable[[str], None]


def never(point: str) -> None:
    """The production hook: a write is just a write."""


def kill_after(armed: str) -> Wrote:
    """A hook that SIGKILLs this process right after the first write named ``armed`` (no cleanup at all)."""
    if armed not in POINTS:
        raise ValueError(f"CHPL_TEST_CRASH_AFTER must be one of {', '.join(POINTS)}, got {armed!r}")

    def wrote(point: str) -> None:
        if point == armed:
            log.warning("test crash point: killing the operator right after %s", point)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    return wrote
