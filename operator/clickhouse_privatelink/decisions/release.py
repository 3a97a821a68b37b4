"""What a resource being deleted lets go of: pure decisions over the users of each shared object, no I/O.

Releasing is the plan of a shared object with the leaving resource taken out of its users: an object another
live user still needs stays (whoever made it, whatever the leaving resource's policy), an object nobody needs
any more goes if it is ours, and what is not ours is never touched. The engine's components read what AWS and
ClickHouse hold, ask these functions, and carry out the answer (engine/components.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from clickhouse_privatelink.decisions.ownership import dns_owner_is
from clickhouse_privatelink.decisions.plan import ObservedRecords, same_target
from clickhouse_privatelink.decisions.usage import (
    Usage,
    allow_list_users,
    oldest,
    others,
    record_users,
    zone_users,
)


def names(users: Sequence[Usage], total: int | None = None) -> str:
    """The oldest three users by name, and how many more (for Events). ``total``: how many there are, when
    ``users`` holds only the oldest of them."""
    shown = ", ".join(u.resource for u in oldest(users, 3))
    count = len(users) if total is None else total
    return shown + (f" and {count - 3} more" if count > 3 else "")


@dataclass(frozen=True)
class Release:
    """Whether to remove one shared object, and if not, why (an Event's message; empty: say nothing)."""

    remove: bool
    why: str = ""


def record_holders(me: Usage, users: Iterable[Usage]) -> Release | None:
    """Whether other users keep the record of ``me``'s private hostname (decided before anything is read).

    A record serves one VPC (its marker names it): its users are the live resources of that VPC for the same
    zone and hostname. None: nobody else holds it (``plan_record_release`` decides from what the zone holds).
    """
    hostname = me.hostname or ""
    holders = others(record_users(users, me.hosted_zone_id or "", hostname, me.vpc_id), me.uid)
    if holders:
        return Release(False, f"the record for {hostname} is still used by {names(holders)}")
    return None


def plan_record_release(me: Usage, cluster: str, observed: ObservedRecords | None) -> Release:
    """The record of ``me``'s private hostname, no other user holding it (``record_holders``): removed only
    when its marker names this cluster and ``me``'s VPC. ``observed``: what the zone holds at the hostname;
    None: the zone is gone, and the record with it.
    """
    if observed is None:
        return Release(False)
    if dns_owner_is(observed.owner, cluster, me.vpc_id, me.uid):
        return Release(True)
    if observed.alias is not None or observed.other_address:
        return Release(False, f"the record for {me.hostname} is not ours: left in place")
    return Release(False)


def plan_allow_list_release(
    me: Usage, users: Iterable[Usage], *, adopted: bool, recorded: bool | None
) -> Release:
    """The entry of ``me``'s endpoint on its service's allow list.

    The entry of an endpoint this cluster made is ours, whoever added it (it is of no use without the
    endpoint); for an adopted endpoint, only an entry the operator added (for this or another user of it,
    ``allow_list_added``) is. ``recorded``: what the status says of this resource's own entry (None: it does
    not say). It stays while another live user needs it.
    """
    service_id, endpoint_id = me.service_id or "", me.endpoint_id or ""
    entry_users = allow_list_users(users, service_id, endpoint_id)
    ours = not adopted or me.allow_list_added or any(u.allow_list_added for u in entry_users)
    if not ours and recorded is False:
        return Release(False, f"{endpoint_id} was on the allow list before the operator: left there")
    holders = others(entry_users, me.uid)
    if holders:
        return Release(False, f"{endpoint_id} stays on the allow list: used by {names(holders)}")
    return Release(True)


def zone_in_use(me: Usage, users: Iterable[Usage]) -> bool:
    """Whether a live user other than ``me`` writes into ``me``'s zone, from any VPC (a zone named in
    dns.hostedZoneId may serve several): then it stays, and nothing about it is read. Otherwise it goes only
    when it holds nothing but its SOA and NS and its tags say this cluster made it (the zone's round decides).
    """
    return bool(zone_holders(me, users))


def zone_holders(me: Usage, users: Iterable[Usage]) -> list[Usage]:
    """The live users other than ``me`` of ``me``'s zone, from any VPC: what a release of the zone carries."""
    return others(zone_users(users, me.hosted_zone_id or ""), me.uid)


def stray_records(
    users: Iterable[Usage],
    cluster: str,
    vpc_id: str,
    zone_id: str,
    target: tuple[str, str],
    records: Mapping[str, ObservedRecords],
) -> list[str]:
    """The hostnames of zone ``zone_id`` whose record points at an endpoint being deleted (``target``: its
    regional DNS name) and that no user tracks: left by a Retain whose endpoint another user took over.

    ``records``: what the zone holds, by hostname. A record is removed only when its marker names this
    cluster and ``vpc_id`` (another VPC's or cluster's record is never touched) and no user of the VPC,
    live or being deleted (those release their own), has it; a record a user has is reported as kept.
    """
    claimed = {
        (u.hosted_zone_id, (u.hostname or "").rstrip(".").lower()) for u in users if u.vpc_id == vpc_id
    }
    stray = []
    for hostname, observed in records.items():
        owner = observed.owner
        if owner is None or owner.cluster != cluster or owner.vpc != vpc_id:
            continue
        if observed.alias is None or not same_target(observed.alias, target):
            continue
        if (zone_id, hostname.rstrip(".").lower()) not in claimed:
            stray.append(hostname)
    return sorted(stray)


def stray_entries(users: Iterable[Usage], endpoint_id: str, listed: Mapping[str, Sequence[str]]) -> list[str]:
    """The services whose allow list holds ``endpoint_id`` (an endpoint of ours being deleted) that no user,
    live or being deleted (those release their own), needs it on: the entry is of no use without the
    endpoint, whoever added it. ``listed``: each service's ``privateEndpointIds``, by service ID.
    """
    claimed = {u.service_id for u in users if u.endpoint_id == endpoint_id}
    return sorted(s for s, ids in listed.items() if endpoint_id in ids and s not in claimed)


__all__ = [
    "Release",
    "names",
    "plan_allow_list_release",
    "plan_record_release",
    "record_holders",
    "stray_entries",
    "stray_records",
    "zone_holders",
    "zone_in_use",
]
