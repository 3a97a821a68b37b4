"""Who uses which shared external object, derived from the resources themselves: pure, no I/O.

Every ClickHousePrivateLink says in its spec and status what it uses: the VPC endpoint of its VPC to its
service's endpoint service, a record for its service's private hostname in the VPC's private zone, and an
allow-list entry on its service. Several resources share one endpoint (ClickHouse groups a region's services
behind one endpoint service), one zone, and for the same service one record and one entry. A shared object is
released only by the last user that goes: the users are read from the resources (a kopf index of them, which
survives restarts because it is rebuilt from the cluster), never from a counter in memory.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, filterfalse, repeat
from operator import attrgetter, eq, ne, not_
from typing import Any

from clickhouse_privatelink.decisions.intent import recorded_status


@dataclass(frozen=True, order=True)
class EndpointKey:
    """The identity of a shared VPC endpoint: one per cluster, VPC and ClickHouse endpoint service."""

    cluster: str
    region: str
    vpc_id: str
    service_name: str  # the ClickHouse service's endpointServiceId
    service_region: str

    @property
    def digest(self) -> str:
        """A short stable tag value naming this key (AWS tag values allow 256 characters)."""
        raw = "/".join((self.cluster, self.region, self.vpc_id, self.service_name, self.service_region))
        return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Usage:
    """What one ClickHousePrivateLink uses, as its spec and last written status say."""

    uid: str
    resource: str  # namespace/name
    created: str  # creationTimestamp (RFC 3339 sorts as text)
    deleting: bool
    region: str
    vpc_id: str
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    adopted_endpoint_id: str | None = None
    endpoint_service_id: str | None = None
    service_region: str | None = None
    service_id: str | None = None
    hostname: str | None = None
    endpoint_id: str | None = None
    dns_route53: bool = True
    hosted_zone_id: str | None = None  # the zone the record is in (given in the spec or found)
    zone_given: bool = False  # spec.dns.hostedZoneId set: the zone is the user's, never released by us
    allow_list_added: bool = False  # the operator (for this or an earlier user) added the allow-list entry
    tags: tuple[
        tuple[str, str], ...
    ] = ()  # spec.aws.tags, sorted: a shared endpoint carries its oldest user's
    # What the lookups below compare, worked out once per usage: every pass asks them of a thousand users,
    # and comparing one value each, at C speed, costs a fraction of comparing field by field in Python.
    endpoint_match: tuple[str | None, ...] | None = field(init=False, repr=False, compare=False)
    zone_match: str | None = field(init=False, repr=False, compare=False)
    record_match: tuple[str | None, str, str] | None = field(init=False, repr=False, compare=False)
    age: tuple[str, str] = field(init=False, repr=False, compare=False)  # oldest first: see ``oldest``

    def __post_init__(self) -> None:
        endpoint = None
        if not self.adopted_endpoint_id:
            endpoint = (self.endpoint_service_id, self.service_region, self.vpc_id, self.region)
        record = None
        if self.dns_route53 and self.hostname is not None:
            record = (self.hosted_zone_id, self.vpc_id, _host(self.hostname))
        object.__setattr__(self, "endpoint_match", endpoint)
        object.__setattr__(self, "zone_match", self.hosted_zone_id if self.dns_route53 else None)
        object.__setattr__(self, "record_match", record)
        object.__setattr__(self, "age", (self.created, self.uid))

    def endpoint_key(self, cluster: str) -> EndpointKey | None:
        if self.adopted_endpoint_id or not self.endpoint_service_id or not self.service_region:
            return None
        return EndpointKey(cluster, self.region, self.vpc_id, self.endpoint_service_id, self.service_region)


def usage_from_body(body: Mapping[str, Any], *, status: Mapping[str, Any] | None = None) -> Usage:
    """The usage a ClickHousePrivateLink object declares (tolerant of partial or invalid specs).

    ``status``: the status to read instead of the body's recorded one (one known to be newer).
    """
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = recorded_status(body) if status is None else status
    aws = spec.get("aws") or {}
    dns = spec.get("dns") or {}
    clickhouse = spec.get("clickhouse") or {}
    return Usage(
        uid=str(meta.get("uid") or ""),
        resource=f"{meta.get('namespace', '')}/{meta.get('name', '')}",
        created=str(meta.get("creationTimestamp") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
        region=str(aws.get("region") or ""),
        vpc_id=str(aws.get("vpcId") or ""),
        subnet_ids=tuple(sorted(aws.get("subnetIds") or ())),
        security_group_ids=tuple(sorted(aws.get("securityGroupIds") or ())),
        adopted_endpoint_id=aws.get("vpcEndpointId") or None,
        endpoint_service_id=status.get("endpointServiceId") or None,
        service_region=status.get("serviceRegion") or None,
        service_id=status.get("serviceId") or clickhouse.get("serviceId") or None,
        hostname=status.get("privateDnsHostname") or None,
        endpoint_id=status.get("vpcEndpointId") or aws.get("vpcEndpointId") or None,
        dns_route53=(dns.get("mode") or "Route53") == "Route53",
        hosted_zone_id=dns.get("hostedZoneId") or status.get("hostedZoneId") or None,
        zone_given=bool(dns.get("hostedZoneId")),
        allow_list_added=bool(status.get("allowListEntryAdded")),
        tags=tuple(sorted((str(k), str(v)) for k, v in (aws.get("tags") or {}).items())),
    )


def vpc_index_key(usage: Usage) -> tuple[str, str]:
    """Resources are indexed by (region, VPC): every shared object lives inside one VPC."""
    return (usage.region, usage.vpc_id)


def _host(hostname: str) -> str:
    return hostname.rstrip(".").lower()


_uid = attrgetter("uid")
_deleting = attrgetter("deleting")
# The values the lookups below compare, by name: a book of users may keep its users grouped by them.
LOOKUPS = ("endpoint_match", "zone_match", "record_match", "service_id")
_GETTERS = {name: attrgetter(name) for name in LOOKUPS}

Find = Callable[[str, object], "list[Usage] | None"]
# The settings leader of the users whose ``endpoint_match`` is the value: (True, leader), or (False, None) once
# the book's kept leaders no longer describe the list.
Lead = Callable[[object], "tuple[bool, Usage | None]"]


class Users(list[Usage]):
    """Users as a plain list, with ``find``: the users whose lookup value ``name`` equals ``value`` (in no
    particular order), from groups kept beside the list, or None once they no longer describe this list; and
    ``lead``: an endpoint's settings leader, kept beside the list (see ``endpoint_leader``)."""

    def __init__(self, users: Iterable[Usage], find: Find, lead: Lead | None = None) -> None:
        super().__init__(users)
        self.find = find
        self.lead = lead


def _matching(usages: Iterable[Usage], name: str, value: object) -> list[Usage]:
    """The usages whose ``name`` equals ``value``: found in their groups, else filtered in C (no Python call
    per usage)."""
    if isinstance(usages, Users):
        found = usages.find(name, value)
        if found is not None:
            return found
    usages = usages if isinstance(usages, list | tuple) else list(usages)
    return list(compress(usages, map(eq, map(_GETTERS[name], usages), repeat(value))))


def others(users: Iterable[Usage], me: str) -> list[Usage]:
    """The users other than ``me`` that still hold on: resources being deleted are letting go."""
    live = live_users(users)
    return list(compress(live, map(ne, map(_uid, live), repeat(me))))


def endpoint_users(usages: Iterable[Usage], key: EndpointKey) -> list[Usage]:
    """Resources that use the shared endpoint ``key``, in no particular order (see ``oldest``).

    (``u.endpoint_key(key.cluster) == key``, and unsorted: every pass of every resource asks, at scale;
    sorting a thousand users on every call cost more than all the rest.)
    """
    return _matching(usages, "endpoint_match", _endpoint_match(key))


def _endpoint_match(key: EndpointKey) -> tuple[str, ...]:
    return (key.service_name, key.service_region, key.vpc_id, key.region)


# Oldest first; the UID breaks ties between resources created in the same second.
_oldest_first = attrgetter("age")  # (created, uid)


def oldest(users: Iterable[Usage], count: int) -> list[Usage]:
    """The ``count`` oldest of ``users``, oldest first (without sorting them all)."""
    return heapq.nsmallest(count, users, key=_oldest_first)


def oldest_user(users: Iterable[Usage]) -> Usage | None:
    """The oldest of ``users`` (no Python call per user: a mass deletion's every pass asks of a thousand)."""
    return min(users, key=_oldest_first, default=None)


def live_users(users: Iterable[Usage]) -> list[Usage]:
    """The users not being deleted."""
    return list(filterfalse(_deleting, users))


def by_uid(users: Iterable[Usage]) -> dict[str, Usage]:
    """``users`` by UID (the last of a UID wins)."""
    users = users if isinstance(users, list | tuple) else list(users)
    return dict(zip(map(_uid, users), users, strict=True))


def joined(users: list[Usage], more: Iterable[Usage]) -> list[Usage]:
    """``users``, then those of ``more`` whose UID is not among them (``users`` itself when there are none:
    no Python call per user, a mass deletion's every pass asks of a thousand)."""
    more = list(more)
    if not more:
        return users
    seen = set(map(_uid, users))
    outside = list(compress(more, map(not_, map(seen.__contains__, map(_uid, more)))))
    return users + outside if outside else users


def settings_leader(users: Sequence[Usage]) -> Usage | None:
    """Whose subnets, security groups and tags a shared endpoint gets: the oldest user still present.

    One rule, stable while that resource lives, so two users asking for different settings never make the
    endpoint flap between them; the others are told whose settings are in force.
    """
    return oldest_user(live_users(users))


def endpoint_leader(usages: Iterable[Usage], key: EndpointKey) -> Usage | None:
    """``settings_leader(endpoint_users(usages, key))``: kept by the book of users when ``usages`` is its list
    (every pass and drift check asks, and finding the oldest of a thousand users each time cost more than the
    rest of the endpoint's decision)."""
    if isinstance(usages, Users) and usages.lead is not None:
        known, leader = usages.lead(_endpoint_match(key))
        if known:
            return leader
    return settings_leader(endpoint_users(usages, key))


def record_users(usages: Iterable[Usage], zone_id: str, hostname: str, vpc_id: str) -> list[Usage]:
    """Resources whose private hostname record is ``hostname`` in zone ``zone_id``, for VPC ``vpc_id``.

    A record serves one VPC's endpoint (its marker names the VPC): resources of other VPCs naming the same
    zone and hostname never share it, so they neither hold it nor release it.
    """
    return _matching(usages, "record_match", (zone_id, vpc_id, _host(hostname)))


def zone_users(usages: Iterable[Usage], zone_id: str) -> list[Usage]:
    """Resources writing into the private zone ``zone_id`` (from any VPC associated with it)."""
    return _matching(usages, "zone_match", zone_id)


def zone_index_key(usage: Usage) -> str | None:
    """Resources are also indexed by the zone they write into: a named zone may serve several VPCs."""
    return usage.hosted_zone_id if usage.dns_route53 else None


def allow_list_users(usages: Iterable[Usage], service_id: str, endpoint_id: str) -> list[Usage]:
    """Resources that need ``endpoint_id`` on the allow list of service ``service_id``."""
    return [u for u in _matching(usages, "service_id", service_id) if u.endpoint_id == endpoint_id]


@dataclass(frozen=True)
class RetainDecision:
    """What ``deletionPolicy: Retain`` does for a resource being deleted."""

    keep: bool  # leave the endpoint, record and allow-list entry (else: release as on Delete)
    mark: bool  # tag the endpoint retained-by this resource, so that the operator never deletes it
    holders: tuple[Usage, ...] = ()  # the other users responsible for the endpoint (when not kept)


def decide_retain(users: Iterable[Usage], me: Usage, cluster: str, *, owned: bool) -> RetainDecision:
    """Retain keeps only what this resource is the last user of; it never pins what others are responsible
    for (they release it by their own policies), so while others use its endpoint it lets go as on Delete.

    ``owned``: the endpoint is the operator's (not adopted), so it may be marked.
    """
    key = me.endpoint_key(cluster)
    holders = tuple(oldest(others(endpoint_users(users, key), me.uid), 3)) if key is not None else ()
    if holders:
        return RetainDecision(keep=False, mark=False, holders=holders)
    return RetainDecision(keep=True, mark=owned and bool(me.endpoint_id))


def endpoint_client_token(key: EndpointKey, leader_uid: str) -> str:
    """The ClientToken for creating the endpoint of ``key``.

    Derived from the key and the oldest user, so concurrent creators (or a creator restarted half-way) send
    the same token and AWS returns one endpoint; once every user is gone a later user starts a new token.
    """
    digest = hashlib.sha256(f"{key.digest}/{leader_uid}".encode()).hexdigest()
    return f"chpl-{digest[:59]}"
