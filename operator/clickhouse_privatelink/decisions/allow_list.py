"""The allow list of one ClickHouse service, decided for every request of a round at once: pure, no I/O.

The service's worker (engine/allow_list_worker.py) gathers the requests of many passes, reads the service's
``privateEndpointIds`` once and asks ``plan_service_allow_list`` for one delta (one PATCH) and one result per
request. The rules are today's, of one entry at a time (``release.plan_allow_list_release``,
``release.stray_entries``), applied in turn to the allow list *as planned so far*, with each request of the
round as the fresher word on its own resource:

- an entry is added for a pass whose endpoint needs it (it has written its intent before asking);
- an entry of ours is removed only when no live user needs it: a resource asking for the entry in the same
  round is such a user, whatever the releasing pass saw;
- an entry that is not ours (an adopted endpoint's, there before the operator) is never removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from clickhouse_privatelink.decisions.release import plan_allow_list_release, stray_entries
from clickhouse_privatelink.decisions.usage import Usage, allow_list_users


class AllowKind(StrEnum):
    ADD = "Add"  # the pass's endpoint needs its entry (apply)
    RELEASE = "Release"  # a resource being deleted lets go of its entry (``release.plan_allow_list_release``)
    SWEEP = "Sweep"  # an endpoint of ours being deleted: its entry goes unless a user has it (stray_entries)
    RETIRE = "Retire"  # an endpoint of ours AWS no longer has (replaced): its entry goes, unless asked for


@dataclass(frozen=True)
class AllowRequest:
    """One pass's request to the service's allow list, for the entry ``endpoint_id``.

    ``me``: the resource as its pass sees it; ``users``: the users its pass sees of the entry (a release and a
    sweep read its holders from them; others may be left out). ``adopted`` and ``recorded``: what a release needs to know whether the entry is
    ours (``release.plan_allow_list_release``).
    """

    kind: AllowKind
    me: Usage
    endpoint_id: str
    users: Sequence[Usage] = ()
    adopted: bool = False
    recorded: bool | None = None


class AllowOutcome(StrEnum):
    ADDED = "Added"  # this round's PATCH adds the entry the request asked for
    LISTED = "Listed"  # the entry was listed already: nothing written for it
    KEPT = "Kept"  # release: the entry stays (a live user needs it, or it is not ours): ``message`` says
    REMOVED = "Removed"  # this round's PATCH removes the entry
    NOTHING = "Nothing"  # nothing of ours to remove: the entry is not listed, or a user has it (a sweep)


@dataclass(frozen=True)
class AllowResult:
    """What the round does for one request. ``written``: the outcome depends on the round's PATCH (its failure
    is the request's failure)."""

    outcome: AllowOutcome
    message: str = ""
    written: bool = False


@dataclass(frozen=True)
class AllowListPlan:
    """The service's one delta for the round's PATCH, and one result per request (in request order)."""

    add: tuple[str, ...]
    remove: tuple[str, ...]
    results: tuple[AllowResult, ...]

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove


def plan_service_allow_list(
    service_id: str, requests: Sequence[AllowRequest], listed: Sequence[str]
) -> AllowListPlan:
    """The round's delta and results. ``listed``: the service's ``privateEndpointIds`` as read for the round.

    Requests are taken oldest resource first (a rule of the users, so a restarted process decides alike).
    """
    origin = set(listed)
    state = set(listed)
    in_round = {r.me.uid: r.me for r in requests}
    wanted = {r.endpoint_id for r in requests if r.kind is AllowKind.ADD}  # needed by a user in this round
    decided: dict[int, AllowResult] = {}
    order = sorted(range(len(requests)), key=lambda i: requests[i].me.age)
    for i in order:
        request = requests[i]
        endpoint_id = request.endpoint_id
        if request.kind is AllowKind.ADD:
            state.add(endpoint_id)
            decided[i] = AllowResult(AllowOutcome.ADDED)  # or LISTED: settled below, once the delta is known
            continue
        users = _entry_users(service_id, endpoint_id, request.users, in_round)
        if request.kind is AllowKind.RELEASE:
            release = plan_allow_list_release(
                request.me, users, adopted=request.adopted, recorded=request.recorded
            )
            if not release.remove:
                decided[i] = AllowResult(AllowOutcome.KEPT, release.why)
                continue
        elif request.kind is AllowKind.SWEEP:
            listing = {service_id: sorted(state)}
            if not stray_entries(users, endpoint_id, listing):
                decided[i] = AllowResult(AllowOutcome.NOTHING)
                continue
        elif endpoint_id in wanted:  # RETIRE: a user of this round asks for the same entry
            decided[i] = AllowResult(AllowOutcome.NOTHING)
            continue
        if endpoint_id in state and endpoint_id not in wanted:
            state.discard(endpoint_id)
            decided[i] = AllowResult(AllowOutcome.REMOVED, written=True)
        else:
            decided[i] = AllowResult(AllowOutcome.NOTHING)
    add = tuple(sorted(state - origin))
    remove = tuple(sorted(origin - state))
    results = []
    for i, request in enumerate(requests):
        result = decided[i]
        if request.kind is AllowKind.ADD:
            added = request.endpoint_id in add
            result = AllowResult(AllowOutcome.ADDED if added else AllowOutcome.LISTED, written=added)
        results.append(result)
    return AllowListPlan(add, remove, tuple(results))


def _entry_users(
    service_id: str, endpoint_id: str, users: Iterable[Usage], in_round: Mapping[str, Usage]
) -> list[Usage]:
    """The entry's users as the pass saw them, each resource with a request in the round as that request says
    (fresher), and those of the round's requests for the same entry."""
    seen = {u.uid: in_round.get(u.uid, u) for u in allow_list_users(users, service_id, endpoint_id)}
    seen.update({u.uid: u for u in allow_list_users(in_round.values(), service_id, endpoint_id)})
    return [u for u in seen.values() if u.service_id == service_id and u.endpoint_id == endpoint_id]


__all__ = [
    "AllowKind",
    "AllowListPlan",
    "AllowOutcome",
    "AllowRequest",
    "AllowResult",
    "plan_service_allow_list",
]
