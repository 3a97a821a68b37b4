"""Conditions on the resource's status: set one, keep transition times honest, summarise Ready; and the one
Normal Event a pass posts."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_privatelink.decisions.reasons import TERMINAL_REASONS, ConditionType, Reason

# The order in which the steps happen; Ready summarises them.
STEP_CONDITIONS = (
    ConditionType.SERVICE_RESOLVED,
    ConditionType.VPC_ENDPOINT_READY,
    ConditionType.DNS_READY,
    ConditionType.ALLOW_LISTED,
)

# Checks written beside the steps that never hold Ready back: a person should look, nothing is broken yet.
# Written only when a pass computed them (a pass that stops earlier leaves the last word in place).
# Reachable is one of them; with CHPL_REACHABILITY_REQUIRED its failures are also written as Ready's reason.
# PublicAccessRestricted is written only for resources that ask for (or asked for) publicAccess.
ADVISORY_CONDITIONS = (
    ConditionType.SECURITY_GROUP_READY,
    ConditionType.REACHABLE,
    ConditionType.PUBLIC_ACCESS_RESTRICTED,
)


@dataclass(frozen=True)
class StepResult:
    """The outcome of one reconcile step, written as a condition."""

    type: ConditionType
    ok: bool
    reason: Reason
    message: str
    unknown: bool = False  # written as status Unknown (the check could not tell), only when not ok


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


def fold_events(
    events: Sequence[Event], ready: str | None, *, cleanup: bool, repaired: Sequence[str] = ()
) -> Event | None:
    """The one Normal Event a pass posts for what it did (``events``, Normal ones) and, when it made the resource
    Ready, the Ready condition's message (``ready``); ``repaired``: what a drift check put back. None when there
    is nothing to say.

    Each Event is a write to the API server: one per change cost three per resource created, most of the
    operator's Kubernetes writes at scale. The reasons of the changes stay in the message, in order, each as
    ``Reason: message``: ``Ready`` (what it says, then the changes in parentheses), ``DriftRepaired`` (what was
    repaired, then the changes), a single change as its own Event, several as ``Reconciled`` (or ``Released``
    by a cleanup pass). Warnings are never folded.
    """
    changes = "; ".join(f"{e.reason}: {e.message}" for e in events)
    if ready is not None:
        return Event("Normal", "Ready", f"{ready} ({changes})" if changes else ready)
    if repaired:
        head = f"repaired: {', '.join(repaired)}"
        return Event("Normal", "DriftRepaired", f"{head} ({changes})" if changes else head)
    if len(events) <= 1:
        return events[0] if events else None
    return Event("Normal", "Released" if cleanup else "Reconciled", changes)


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    result: StepResult,
    *,
    generation: int | None,
    now: str | None = None,
) -> list[dict[str, Any]]:
    """Return ``conditions`` with ``result`` set; lastTransitionTime changes only when the status flips."""
    status = "True" if result.ok else "Unknown" if result.unknown else "False"
    out: list[dict[str, Any]] = []
    found = False
    for cond in conditions:
        if cond.get("type") != result.type.value:
            out.append(dict(cond))
            continue
        found = True
        changed = cond.get("status") != status
        out.append(
            _condition(
                result,
                status,
                cond["lastTransitionTime"] if not changed else now or now_rfc3339(),
                generation,
            )
        )
    if not found:
        out.append(_condition(result, status, now or now_rfc3339(), generation))
    return out


def _condition(result: StepResult, status: str, when: str, generation: int | None) -> dict[str, Any]:
    cond: dict[str, Any] = {
        "type": result.type.value,
        "status": status,
        "reason": result.reason.value,
        "message": result.message,
        "lastTransitionTime": when,
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def summarise_ready(steps: Sequence[StepResult]) -> StepResult:
    """Ready is True when every step is; otherwise it carries the first step a person must fix, if any,
    else the first step still in progress."""
    steps = [s for s in steps if s.type not in ADVISORY_CONDITIONS]
    failing = [s for s in steps if not s.ok]
    for step in sorted(failing, key=lambda s: s.reason not in TERMINAL_REASONS):
        return StepResult(ConditionType.READY, False, step.reason, step.message)
    missing = [t.value for t in STEP_CONDITIONS if t not in {s.type for s in steps}]
    if missing:
        return StepResult(ConditionType.READY, False, Reason.RECONCILING, f"waiting for {', '.join(missing)}")
    return StepResult(ConditionType.READY, True, Reason.READY, "PrivateLink connection is ready")


def condition(conditions: Sequence[Mapping[str, Any]], type_: ConditionType) -> Mapping[str, Any] | None:
    """The condition of the given type, if present."""
    return next((c for c in conditions if c.get("type") == type_.value), None)


def steps_to_conditions(
    conditions: list[dict[str, Any]], steps: list[StepResult], *, generation: int
) -> list[dict[str, Any]]:
    """Write every step's condition, in step order, then Ready; a step not reached waits for the failed one."""
    by_type = {s.type: s for s in steps}
    now = now_rfc3339()  # one clock reading for every condition this write flips
    first_failed = next((s for s in steps if not s.ok and s.type not in ADVISORY_CONDITIONS), None)
    for step_type in STEP_CONDITIONS:
        step = by_type.get(step_type)
        if step is None and first_failed is not None:
            step = StepResult(step_type, False, Reason.RECONCILING, f"waiting for {first_failed.type.value}")
        if step is not None:
            conditions = set_condition(conditions, step, generation=generation, now=now)
    for advisory in ADVISORY_CONDITIONS:
        if advisory in by_type:
            conditions = set_condition(conditions, by_type[advisory], generation=generation, now=now)
    conditions = set_condition(
        conditions, by_type.get(ConditionType.READY) or summarise_ready(steps), generation=generation, now=now
    )
    order = {t.value: i for i, t in enumerate((*STEP_CONDITIONS, *ADVISORY_CONDITIONS, ConditionType.READY))}
    return sorted(conditions, key=lambda cond: order.get(str(cond.get("type")), len(order)))


class WrittenStatus:
    """The status fields this process wrote that the body it was last handed may not show yet.

    kopf hands a handler the body of the last watch event it processed; under load the watch runs behind
    our own writes, and a pass working from such a body would write the same status again (and post Ready
    again). So a write is believed over the body until the body shows it, or for ``patience`` seconds (a
    write that never shows is written again then).
    """

    def __init__(self, patience: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.patience = patience
        self._clock = clock
        self._pending: dict[str, tuple[float, dict[str, Any]]] = {}

    def view(self, uid: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """``status`` with the writes it does not show yet (a written ``None`` removed the field)."""
        seen = dict(status)
        entry = self._pending.get(uid)
        if entry is None:
            return seen
        at, written = entry
        if self._clock() - at > self.patience:
            del self._pending[uid]
            return seen
        unseen = {k: v for k, v in written.items() if status.get(k) != v}
        if not unseen:
            del self._pending[uid]
        for key, value in unseen.items():
            if value is None:
                seen.pop(key, None)
            else:
                seen[key] = value
        return seen

    def record(self, uid: str, written: Mapping[str, Any]) -> None:
        if not written:
            return
        _, earlier = self._pending.get(uid, (0.0, {}))
        self._pending[uid] = (self._clock(), {**earlier, **written})

    def drop(self, uid: str) -> None:
        self._pending.pop(uid, None)
