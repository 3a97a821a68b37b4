"""The records of one private zone, decided for every request of a round at once: pure, no I/O.

The zone's worker (engine/zone_worker.py) gathers the requests of many passes, reads the zone's listing once
and asks ``plan_zone_records`` for one change list and one result per request. The rules are those of one
hostname at a time (``plan.plan_record``, ``release.plan_record_release``, ``release.record_holders``) applied
in turn to what the zone holds *as planned so far*: a second request for a hostname in the same round sees the
first one's write, so two users of one VPC make one write, and a second VPC finds the first VPC's record (a
conflict) instead of writing over it.

- A record is ours only when its marker names this cluster and the resource's VPC; a conflict never writes.
- A release never removes a record another live user holds (that user's pass, running or not, counts: the
  users its pass sees, with each request of the round as the fresher word on its own resource).
- A release of the zone itself (``zone_release``) lets it go only when no live user of the zone is left (any
  VPC: a zone named in dns.hostedZoneId may serve several) and, after the round's changes, it holds nothing
  but its SOA and NS. The worker then deletes it if its tags say this cluster made it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from clickhouse_privatelink.decisions.ownership import DnsOwner
from clickhouse_privatelink.decisions.plan import ObservedRecords, RecordAction, plan_record
from clickhouse_privatelink.decisions.reasons import Reason
from clickhouse_privatelink.decisions.release import names, plan_record_release, stray_records
from clickhouse_privatelink.decisions.usage import Usage, Users, others, record_users, zone_users

# The record types Route 53 makes with a zone: a zone holding only these may be deleted.
ZONE_APEX_TYPES = frozenset({"SOA", "NS"})
# The record types the operator writes at a hostname (alias A record and TXT marker).
RECORD_TYPES = frozenset({"A", "TXT"})


def host_key(hostname: str) -> str:
    """A hostname as the plan compares them (no trailing dot, lower case)."""
    return hostname.rstrip(".").lower()


@dataclass(frozen=True)
class RecordRequest:
    """One pass's request to the zone: point ``hostname`` at ``target`` (apply), or let it go (``target``
    None: release). ``me``: the resource as its pass sees it; ``users``: the users its pass sees (a release
    reads its holders from them: the record's are enough). ``sweep``: remove every record of ``me``'s VPC that points at ``target``
    (an endpoint of ours being deleted) and that no user has (``release.stray_records``); no hostname.
    ``zone``: ``me`` lets go of the zone itself (see ``zone_release``); ``users``: the zone's users its pass
    sees; no hostname."""

    me: Usage
    hostname: str
    target: tuple[str, str] | None = None
    users: Sequence[Usage] = ()
    sweep: bool = False
    zone: bool = False

    @property
    def releasing(self) -> bool:
        return self.target is None


def zone_release(me: Usage, users: Sequence[Usage] = ()) -> RecordRequest:
    """The request of a resource being deleted that lets go of its zone (``me.hosted_zone_id``). ``users``: the
    zone's users its pass saw (a pass asks only when it saw no live one)."""
    return RecordRequest(me, "", None, users, zone=True)


class RecordOutcome(StrEnum):
    WRITTEN = "Written"  # this round writes the record for it
    KEPT = "Kept"  # the record is as it needs it (perhaps by another request's write of this round)
    CONFLICT = "Conflict"  # the name holds a record that is not this VPC's: nothing written
    HELD = "Held"  # release: another live user holds the record, so it stays
    REMOVED = "Removed"  # release: this round deletes the record (a zone release: the zone)
    LEFT = "Left"  # release: the record is not ours, left in place (a zone release: records are left in it)
    NOTHING = "Nothing"  # release: nothing of ours is there (or the zone is gone)


@dataclass(frozen=True)
class RecordResult:
    """What the round does for one request. ``changes``: the indices in ``ZonePlan.changes`` whose success the
    outcome depends on (a failure of one is the request's failure); none when it depends on no write."""

    outcome: RecordOutcome
    reason: Reason
    message: str
    changes: tuple[int, ...] = ()


@dataclass(frozen=True)
class RecordWrite:
    """Point ``hostname`` at ``target`` with the marker of ``vpc_id``; ``create``: the name was vacant when
    read (CREATE, refused should someone have written it since), else UPSERT of records of ours."""

    hostname: str
    target: tuple[str, str]
    vpc_id: str
    create: bool


@dataclass(frozen=True)
class RecordRemoval:
    """Delete the alias record and marker at ``hostname`` (as the listing shows them)."""

    hostname: str


ZoneChange = RecordWrite | RecordRemoval


@dataclass(frozen=True)
class ZonePlan:
    """One change per hostname for the zone's one write, and one result per request (in request order).

    ``delete_zone``: the index of the zone release on whose behalf the round deletes the zone once its changes
    have all gone through (that request's result is REMOVED; the worker makes it LEFT when the zone's tags do
    not say this cluster made it). None: the zone stays.
    """

    changes: tuple[ZoneChange, ...]
    results: tuple[RecordResult, ...]
    delete_zone: int | None = None


def _vacant(observed: ObservedRecords) -> bool:
    return observed.owner is None and observed.alias is None and not observed.other_address


def plan_zone_records(
    cluster: str,
    zone_id: str,
    requests: Sequence[RecordRequest],
    listing: Mapping[str, ObservedRecords] | None,
    kinds: Mapping[str, frozenset[str]] | None = None,
) -> ZonePlan:
    """The round's changes and results. ``listing``: what the zone holds at each requested hostname (and at
    every name, when a request sweeps), by ``host_key``; a name not in it is vacant. None: the zone is gone.
    ``kinds``: the record types at every name of the zone, by ``host_key`` (read when a request releases the
    zone; without it a zone release finds records left).

    Requests are taken oldest resource first (a rule of the users, so a restarted process decides alike).
    """
    origin: dict[str, ObservedRecords] = {}
    state: dict[str, ObservedRecords] = {}
    written: dict[str, ZoneChange] = {}  # the net change per hostname, in the order first changed
    results: dict[int, tuple[RecordResult, tuple[str, ...]]] = {}
    in_round = _grouped({r.me.uid: r.me for r in requests})
    order = sorted(range(len(requests)), key=lambda i: requests[i].me.age)
    for i in order:
        request = requests[i]
        if request.zone:
            continue  # decided below, from the zone as the round's changes leave it
        if request.sweep:
            result, swept = _sweep(cluster, zone_id, request, listing or {}, state, in_round)
            for host in swept:
                origin.setdefault(host, state.get(host, ObservedRecords()))
                state[host] = ObservedRecords()
                written[host] = RecordRemoval(host)
            results[i] = (result, tuple(swept))
            continue
        host = host_key(request.hostname)
        if host not in state:
            found = (listing or {}).get(host, ObservedRecords())
            origin[host] = state[host] = found
        observed = state[host]
        if request.target is None:
            result = _release(cluster, zone_id, request, observed, listing is not None, in_round)
            if result.outcome is RecordOutcome.REMOVED:
                state[host] = ObservedRecords()
                written[host] = RecordRemoval(request.hostname)
        else:
            vpc_id = request.me.vpc_id
            decision = plan_record(cluster, vpc_id, request.hostname, request.target, observed)
            if decision.action is RecordAction.CONFLICT:
                result = RecordResult(RecordOutcome.CONFLICT, decision.reason, decision.message)
            elif decision.action is RecordAction.KEEP:
                result = RecordResult(RecordOutcome.KEPT, decision.reason, decision.message)
            else:
                state[host] = ObservedRecords(alias=request.target, owner=DnsOwner(cluster, vpc=vpc_id))
                create = _vacant(origin[host])
                written[host] = RecordWrite(request.hostname, request.target, vpc_id, create)
                result = RecordResult(RecordOutcome.WRITTEN, decision.reason, decision.message)
        results[i] = (result, (host,))
    hosts = list(written)
    changes = tuple(written[h] for h in hosts)
    index = {h: n for n, h in enumerate(hosts)}
    depends = (RecordOutcome.WRITTEN, RecordOutcome.KEPT, RecordOutcome.REMOVED)
    releasing = [i for i in order if requests[i].zone]
    deleter = None
    if releasing:
        gone = listing is None
        empty = not gone and kinds is not None and _only_apex(_kinds_after(kinds, changes))
        deleter = _release_zone(zone_id, requests, releasing, gone, empty, in_round, results)
    final = []
    for i in range(len(requests)):
        result, on = results[i]
        if i == deleter:  # deleted only once every change of the round has gone through
            result = replace(result, changes=tuple(range(len(changes))))
        elif result.outcome in depends and not requests[i].zone:
            result = replace(result, changes=tuple(index[h] for h in on if h in index))
        final.append(result)
    return ZonePlan(changes, tuple(final), deleter)


def _kinds_after(
    kinds: Mapping[str, frozenset[str]], changes: Sequence[ZoneChange]
) -> dict[str, frozenset[str]]:
    """The record types at each name once ``changes`` have gone through."""
    after = dict(kinds)
    for change in changes:
        host = host_key(change.hostname)
        held = after.get(host, frozenset())
        after[host] = held | RECORD_TYPES if isinstance(change, RecordWrite) else held - RECORD_TYPES
    return after


def _only_apex(kinds: Mapping[str, frozenset[str]]) -> bool:
    return all(held <= ZONE_APEX_TYPES for held in kinds.values())


def _release_zone(
    zone_id: str,
    requests: Sequence[RecordRequest],
    releasing: Sequence[int],
    gone: bool,
    empty: bool,
    in_round: _InRound,
    results: dict[int, tuple[RecordResult, tuple[str, ...]]],
) -> int | None:
    """The results of the round's zone releases (``releasing``, oldest first); the index of the one the zone
    is deleted for, or None while a live user or a record is left (or the zone is gone). ``empty``: the zone
    holds only its SOA and NS once the round's changes have gone through."""
    leaving = {requests[i].me.uid for i in releasing}
    # The zone's users as the releasing passes saw them, each resource with a request in the round as that
    # request says (fresher), and every request of the round writing into the zone.
    seen: dict[str, Usage] = {}
    for i in releasing:
        for u in zone_users(requests[i].users, zone_id):
            seen[u.uid] = in_round.by_uid.get(u.uid, u)
    seen.update({u.uid: u for u in zone_users(in_round.by_uid.values(), zone_id)})
    holders = [u for u in others(seen.values(), "") if u.uid not in leaving]
    deleter = None
    for n, i in enumerate(releasing):
        if gone:
            result = RecordResult(RecordOutcome.NOTHING, Reason.DELETING, "")
        elif holders:
            why = f"the private zone {zone_id} is still used by {names(holders)}"
            result = RecordResult(RecordOutcome.HELD, Reason.DELETING, why)
        elif not empty:
            why = f"the private zone {zone_id} still holds records: left in place"
            result = RecordResult(RecordOutcome.LEFT, Reason.DELETING, why)
        elif n == 0:
            deleter = i
            result = RecordResult(
                RecordOutcome.REMOVED, Reason.DELETING, f"deleted the private zone {zone_id}"
            )
        else:  # the oldest release of the round deletes it
            result = RecordResult(RecordOutcome.NOTHING, Reason.DELETING, "")
        results[i] = (result, ())
    return deleter


def _sweep(
    cluster: str,
    zone_id: str,
    request: RecordRequest,
    listing: Mapping[str, ObservedRecords],
    state: Mapping[str, ObservedRecords],
    in_round: _InRound,
) -> tuple[RecordResult, list[str]]:
    """The records left pointing at an endpoint being deleted that no user has (the round's included)."""
    assert request.target is not None
    records = {host: state.get(host, observed) for host, observed in listing.items()}
    users = [*request.users, *in_round.by_uid.values()]
    stray = stray_records(users, cluster, request.me.vpc_id, zone_id, request.target, records)
    if not stray:
        return RecordResult(RecordOutcome.NOTHING, Reason.DELETING, ""), []
    return RecordResult(RecordOutcome.REMOVED, Reason.DELETING, ", ".join(stray)), stray


def _release(
    cluster: str,
    zone_id: str,
    request: RecordRequest,
    observed: ObservedRecords,
    zone_exists: bool,
    in_round: _InRound,
) -> RecordResult:
    me = request.me
    hostname = request.hostname
    holders = others(_record_users(request.users, in_round, zone_id, hostname, me.vpc_id), me.uid)
    if holders:
        why = f"the record for {hostname} is still used by {names(holders)}"
        return RecordResult(RecordOutcome.HELD, Reason.RECORD_WRITTEN, why)
    release = plan_record_release(me, cluster, observed if zone_exists else None)
    if release.remove:
        return RecordResult(RecordOutcome.REMOVED, Reason.DELETING, f"deleted the record for {hostname}")
    if release.why:
        return RecordResult(RecordOutcome.LEFT, Reason.DNS_RECORD_CONFLICT, release.why)
    return RecordResult(RecordOutcome.NOTHING, Reason.DELETING, "")


@dataclass(frozen=True)
class _InRound:
    """The resources with a request in the round: by UID, and as users grouped by record (found at once)."""

    by_uid: Mapping[str, Usage]
    users: Users


def _grouped(by_uid: Mapping[str, Usage]) -> _InRound:
    groups: dict[object, list[Usage]] = {}
    for u in by_uid.values():
        groups.setdefault(u.record_match, []).append(u)

    def find(name: str, value: object) -> list[Usage] | None:
        return list(groups.get(value, [])) if name == "record_match" else None

    return _InRound(by_uid, Users(by_uid.values(), find))


def _record_users(
    users: Iterable[Usage], in_round: _InRound, zone_id: str, hostname: str, vpc_id: str
) -> list[Usage]:
    """The record's users as the pass saw them, each resource with a request in the round as that request
    says (fresher), and those of the round's requests for the same record."""
    key = (zone_id, vpc_id, host_key(hostname))
    fresher = in_round.by_uid
    seen = {u.uid: fresher.get(u.uid, u) for u in record_users(users, zone_id, hostname, vpc_id)}
    seen.update({u.uid: u for u in record_users(in_round.users, zone_id, hostname, vpc_id)})
    return [u for u in seen.values() if u.record_match == key]


__all__ = [
    "RecordOutcome",
    "RecordRemoval",
    "RecordRequest",
    "RecordResult",
    "RecordWrite",
    "ZoneChange",
    "ZonePlan",
    "host_key",
    "plan_zone_records",
    "zone_release",
]
