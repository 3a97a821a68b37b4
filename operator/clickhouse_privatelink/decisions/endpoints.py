"""The shared VPC endpoint of one EndpointKey, decided for every request of a round at once: pure, no I/O.

The key's worker (engine/endpoint_worker.py) gathers the requests of many passes, reads the VPC's endpoints
once and asks ``plan_endpoint_key`` for one action (create, modify, delete, keep or wait), the Retain mark to
set or take off, and one result per request. The rules are those a pass applied alone before, now applied
once to every user the round knows of:

- the settings in force are the oldest live user's (``usage.settings_leader``): its subnets, security groups
  and tags, and a ClientToken derived from it (``usage.endpoint_client_token``);
- while a live user holds the key its endpoint stays; a new user of an endpoint left marked ``retained-by``
  takes it over (the mark comes off);
- a Retain user that is the last live user leaves the endpoint marked; one that shares it with live users
  pins nothing (``usage.decide_retain``);
- with no live user left the endpoint is deleted, and one leaving user, the oldest, stays until AWS has
  deleted it (a rule of the users alone: a restarted process keeps the same one).

Legacy endpoints (made for one resource before endpoints were shared) and adopted ones are not the key's:
their resource's pass handles them alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.decisions.ownership import is_shared_endpoint_for, shared_endpoint_tags
from clickhouse_privatelink.decisions.plan import (
    DesiredEndpoint,
    EndpointAction,
    EndpointDecision,
    ObservedEndpoint,
    pick_owned_endpoint,
    plan_endpoint,
)
from clickhouse_privatelink.decisions.release import names
from clickhouse_privatelink.decisions.usage import (
    EndpointKey,
    Usage,
    by_uid,
    decide_retain,
    endpoint_client_token,
    endpoint_users,
    live_users,
    oldest,
    oldest_user,
    settings_leader,
)


class EndpointKind(StrEnum):
    APPLY = "Apply"  # the pass's resource uses the key's endpoint (it has written its intent before asking)
    RELEASE = "Release"  # a resource being deleted lets go of it
    RETAIN = "Retain"  # a resource being deleted with deletionPolicy Retain asks whether it keeps it


@dataclass(frozen=True)
class EndpointRequest:
    """One pass's request to the key's worker. ``me``: the resource as its pass sees it (the fresher word on
    it). No users: the round plans from the key's users as they are when it runs (engine/endpoint_worker.py)."""

    kind: EndpointKind
    me: Usage


class KeyAction(StrEnum):
    CREATE = "Create"
    MODIFY = "Modify"
    DELETE = "Delete"
    KEEP = "Keep"  # nothing to write (ready, failed, kept, or nothing there)
    WAIT = "Wait"  # AWS is changing it (pending, deleting): nothing to write


class EndpointOutcome(StrEnum):
    IN_USE = "InUse"  # apply: ``endpoint`` is the one in use (``decision`` says its state), or none: failed
    KEPT = "Kept"  # release: the endpoint stays (``message`` says why)
    RELEASED = "Released"  # release: nothing of the key is left to this resource
    WAIT = "Wait"  # release: this resource stays until AWS has deleted ``endpoint``
    RETAINED = "Retained"  # retain: the endpoint is left (marked when there is one)
    NOT_RETAINED = "NotRetained"  # retain: others hold it (``holders``), or it is being deleted: release


@dataclass(frozen=True)
class EndpointAnswer:
    """What the round does for one request.

    ``write``: the round's write this request's pass reports (its Event, its crash point): one request per write.
    ``change``: for a modify, what changed. ``taken_over``: the ``retained-by`` this request's round took off.
    """

    outcome: EndpointOutcome
    message: str = ""
    endpoint: ObservedEndpoint | None = None
    decision: EndpointDecision | None = None
    write: KeyAction | None = None
    change: EndpointDecision | None = None
    taken_over: str | None = None
    leader: Usage | None = None
    shared: bool = False  # another live user uses the endpoint
    holders: tuple[Usage, ...] = ()


@dataclass(frozen=True)
class EndpointPlan:
    """The key's one write for the round, and one answer per request (in request order)."""

    action: KeyAction
    endpoint: ObservedEndpoint | None = None  # the endpoint acted on (modified, deleted, marked), or found
    desired: DesiredEndpoint | None = None  # the settings in force (create, modify)
    decision: EndpointDecision | None = None  # for a modify: what to change
    tags: Mapping[str, str] = field(default_factory=dict)  # for a create
    client_token: str = ""  # for a create
    mark: str | None = None  # set ``retained-by`` to this (a Retain of the last user)
    unmark: bool = False  # take ``retained-by`` off (a new user takes the endpoint over)
    results: tuple[EndpointAnswer, ...] = ()

    @property
    def writes(self) -> bool:
        """Whether the round writes anything to AWS."""
        return (
            self.action in (KeyAction.CREATE, KeyAction.MODIFY, KeyAction.DELETE)
            or self.mark is not None
            or self.unmark
        )


def settings_in_force(key: EndpointKey, leader: Usage) -> DesiredEndpoint:
    """The endpoint of ``key`` as its settings leader (the oldest live user) wants it."""
    return DesiredEndpoint(
        vpc_id=key.vpc_id,
        vpc_region=key.region,
        service_name=key.service_name,
        service_region=key.service_region,
        subnet_ids=frozenset(leader.subnet_ids),
        security_group_ids=frozenset(leader.security_group_ids),
    )


def plan_endpoint_key(
    key: EndpointKey,
    requests: Sequence[EndpointRequest],
    listed: Sequence[ObservedEndpoint],
    users: Iterable[Usage] = (),
) -> EndpointPlan:
    """The round's write and answers. ``listed``: the VPC's endpoints as read for the round (those of other
    keys, clusters and legacy ones are left out here). ``users``: the key's users as the round sees them.

    Each request's ``me`` is the fresher word on its resource.
    """
    mine = [e for e in listed if is_shared_endpoint_for(e.tags, key)]
    found = pick_owned_endpoint(mine)
    deleting = next((e for e in mine if e.state == "deleting"), None)
    merged = by_uid(users)
    for request in requests:
        merged[request.me.uid] = request.me
    users = endpoint_users(merged.values(), key)
    live = live_users(users)
    leader = settings_leader(live)
    # Each request's holders are the live users but itself: the oldest few, once, not a list per request (a
    # round of a mass deletion holds hundreds of requests, a thousand users).
    eldest = oldest(live, 4)
    retained = found is not None and c.TAG_RETAINED in found.tags
    order = sorted(range(len(requests)), key=lambda i: requests[i].me.age)  # oldest resource first
    answers: dict[int, EndpointAnswer] = {}

    # A Retain: kept only by the last live user, and only while the endpoint is not being deleted.
    mark: str | None = None
    for i in order:
        request = requests[i]
        if request.kind is not EndpointKind.RETAIN:
            continue
        retain = decide_retain(users, request.me, key.cluster, owned=found is not None)
        if not retain.keep:
            answers[i] = EndpointAnswer(
                EndpointOutcome.NOT_RETAINED,
                f"also used by {', '.join(u.resource for u in retain.holders)}",
                endpoint=found,
                holders=retain.holders,
            )
        elif found is None and deleting is not None:
            answers[i] = EndpointAnswer(EndpointOutcome.NOT_RETAINED, "being deleted", endpoint=deleting)
        else:
            if found is not None and mark is None:  # the key's endpoint is ours, whatever the status names
                mark = request.me.resource
            answers[i] = EndpointAnswer(EndpointOutcome.RETAINED, endpoint=found)
    if mark is not None and found is not None and found.tags.get(c.TAG_RETAINED) == mark:
        mark = None  # marked so already
    kept_by = mark or (found.tags.get(c.TAG_RETAINED) if found is not None else None)

    appliers = [i for i in order if requests[i].kind is EndpointKind.APPLY]
    plan = EndpointPlan(KeyAction.KEEP, endpoint=found, mark=mark)
    if live and leader is not None:
        desired = settings_in_force(key, leader)
        decision = plan_endpoint(desired, found, adopted=False)
        unmark = retained and bool(appliers)
        action = KeyAction.KEEP
        if appliers and decision.action is EndpointAction.CREATE:
            action = KeyAction.CREATE
        elif appliers and decision.action is EndpointAction.MODIFY:
            action = KeyAction.MODIFY
        elif decision.action is EndpointAction.WAIT:
            action = KeyAction.WAIT
        plan = EndpointPlan(
            action,
            endpoint=found,
            desired=desired,
            decision=decision,
            tags=shared_endpoint_tags(key, dict(leader.tags)),
            client_token=endpoint_client_token(key, leader.uid),
            unmark=unmark,
        )
        # The write (create, modify, takeover) is reported by one pass: the leader's, else the oldest's.
        carrier = next((i for i in appliers if requests[i].me.uid == leader.uid), None)
        if carrier is None and appliers:
            carrier = appliers[0]
        for i in appliers:
            me = requests[i].me
            carries = i == carrier
            answers[i] = EndpointAnswer(
                EndpointOutcome.IN_USE,
                decision.message,
                endpoint=found,
                decision=decision,
                write=action if carries and action in (KeyAction.CREATE, KeyAction.MODIFY) else None,
                change=decision if carries and action is KeyAction.MODIFY else None,
                taken_over=found.tags[c.TAG_RETAINED] if carries and unmark and found is not None else None,
                leader=leader,
                shared=len(live) > 1 or any(u.uid != me.uid for u in eldest),
            )
        for i in order:
            if requests[i].kind is not EndpointKind.RELEASE:
                continue
            me = requests[i].me
            if found is None:
                answers[i] = EndpointAnswer(EndpointOutcome.RELEASED)
            elif retained and not unmark:
                answers[i] = EndpointAnswer(
                    EndpointOutcome.KEPT,
                    f"endpoint {found.id} is kept: deletionPolicy Retain of {kept_by}",
                    endpoint=found,
                )
            else:
                holders = [u for u in eldest if u.uid != me.uid][:3]
                count = len(live) - (0 if me.deleting else 1)  # ``me`` is in ``live`` unless it is leaving
                answers[i] = EndpointAnswer(
                    EndpointOutcome.KEPT,
                    f"endpoint {found.id} is still used by {names(holders, count)}",
                    endpoint=found,
                    holders=tuple(holders),
                )
    else:
        # Nobody holds the key: its endpoint goes, unless a Retain keeps it (marked now or before).
        # Only a release deletes it: a round of Retains alone (one that keeps nothing) leaves it to theirs.
        releases = [i for i in order if requests[i].kind is EndpointKind.RELEASE]
        doomed = deleting if found is None else found
        action = KeyAction.WAIT if found is None and deleting is not None else KeyAction.KEEP
        if found is not None and kept_by is None and releases:
            action = KeyAction.DELETE
        plan = EndpointPlan(action, endpoint=doomed, mark=mark)
        waiter = oldest_user(users)
        in_round = {requests[i].me.uid: i for i in releases}
        carrier = None
        if action is KeyAction.DELETE and releases:
            carrier = in_round.get(waiter.uid, releases[0]) if waiter is not None else releases[0]
        for i in releases:
            me = requests[i].me
            if found is not None and kept_by is not None:
                why = f"endpoint {found.id} is kept: deletionPolicy Retain of {kept_by}"
                answers[i] = EndpointAnswer(EndpointOutcome.KEPT, why, endpoint=found)
            elif action in (KeyAction.DELETE, KeyAction.WAIT) and doomed is not None:
                waits = waiter is not None and waiter.uid == me.uid
                answers[i] = EndpointAnswer(
                    EndpointOutcome.WAIT if waits else EndpointOutcome.RELEASED,
                    f"endpoint {doomed.id} is being deleted",
                    endpoint=doomed,
                    write=KeyAction.DELETE if i == carrier else None,
                )
            else:
                answers[i] = EndpointAnswer(EndpointOutcome.RELEASED)
        for i in appliers:  # (a pass of a resource that is not live: it uses nothing)
            answers[i] = EndpointAnswer(EndpointOutcome.IN_USE, "being deleted: no new endpoint")
    return replace(plan, results=tuple(answers[i] for i in range(len(requests))))


__all__ = [
    "EndpointAnswer",
    "EndpointKind",
    "EndpointOutcome",
    "EndpointPlan",
    "EndpointRequest",
    "KeyAction",
    "plan_endpoint_key",
    "settings_in_force",
]
