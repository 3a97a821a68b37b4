"""One gateway per AWS region and role: where every resource's EC2 and Route 53 calls meet.

- ``endpoints(vpc)``: one ``DescribeVpcEndpoints`` (filtered by the operator's tag) per VPC in flight, kept
  for callers that accept its age: a drift period costs one read per VPC, not one per resource.
- ``private_zone(name, vpc)`` and ``records(zone)``: one ``ListHostedZonesByVPC`` per VPC and one listing
  of a zone's record sets per zone, shared the same way; the listing takes in our own changes as they
  succeed, so writing records never makes the zone be listed again.
- ``submit_records(zone, groups)``: a zone's changes, gathered by the zone's worker (engine/zone_worker.py,
  which owns the time window), go out in as few ``ChangeResourceRecordSets`` as Route 53's limits allow
  (1,000 records, 32,000 characters of values per request). Each group's changes stay together; a request
  that fails is split in halves until the bad groups stand alone, so one bad record does not block the others
  (external-dns splits a failed batch too).

- Every other call the engine makes (an endpoint by ID, create, modify, delete, the Retain mark, a zone by ID,
  create and delete a zone, a fresh read of one name, security groups, a VPC's CIDRs, an endpoint's
  addresses) is a method here too, and each write drops the cached reads it makes stale: callers never do.

Blocking boto3 calls run in threads; errors reach the caller as ``AwsError`` (never a botocore exception).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from clickhouse_privatelink.adapters.aws import route53 as route53_api
from clickhouse_privatelink.adapters.aws import security_groups as security_groups_api
from clickhouse_privatelink.adapters.aws import vpc_endpoints
from clickhouse_privatelink.adapters.aws.clients import AwsClients, AwsError
from clickhouse_privatelink.adapters.coalesce import SingleFlight
from clickhouse_privatelink.decisions.plan import (
    CHANGING_ENDPOINT_STATES,
    DesiredEndpoint,
    EndpointDecision,
    ObservedEndpoint,
    ObservedRecords,
)
from clickhouse_privatelink.decisions.security_groups import SecurityGroup

T = TypeVar("T")
log = logging.getLogger(__name__)
_SPLIT_ALONE = 4  # a failed batch of this many callers or fewer is split into one call per caller
CHANGING_READ_AGE = 1.0  # seconds a read of endpoints that AWS is still changing may be reused


class AwsGateway:
    """Coalesced reads and batched record changes for one region and role (see the module docstring)."""

    def __init__(self, clients: AwsClients) -> None:
        self.clients = clients
        self._endpoints: dict[str, SingleFlight[list[ObservedEndpoint]]] = {}
        self._zones: dict[tuple[str, str], SingleFlight[route53_api.ObservedZone | None]] = {}
        self._records: dict[str, SingleFlight[list[dict[str, Any]] | None]] = {}
        self._by_name: dict[str, tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]] = {}
        self._reads: dict[tuple[str, ...], SingleFlight[Any]] = {}

    async def _thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking boto3 call in a thread; its botocore errors become ``AwsError``."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise AwsError.of(exc) from exc

    # ---- EC2

    async def endpoints(self, vpc_id: str, *, max_age: float) -> list[ObservedEndpoint]:
        """The operator's endpoints in the VPC (any cluster: callers check ownership), read ``max_age`` ago.

        A read showing an endpoint AWS is still changing (pending, deleting) is kept at most
        ``CHANGING_READ_AGE`` seconds: the callers are waiting for that change.
        """
        flight = self._endpoints.get(vpc_id)
        if flight is None:
            flight = self._endpoints[vpc_id] = SingleFlight(
                lambda: self._thread(vpc_endpoints.find_managed, self.clients.ec2, vpc_id)
            )
        found = await flight.get(max_age)
        if max_age > CHANGING_READ_AGE and any(e.state in CHANGING_ENDPOINT_STATES for e in found):
            found = await flight.get(CHANGING_READ_AGE)
        return found

    def forget_endpoints(self, vpc_id: str) -> None:
        if vpc_id in self._endpoints:
            self._endpoints[vpc_id].forget()

    async def _shared_read(self, key: tuple[str, ...], fn: Callable[[], T], *, max_age: float) -> T:
        """Any other read (security groups, a VPC's CIDRs): one in flight per key, kept ``max_age``."""
        flight = self._reads.get(key)
        if flight is None:
            flight = self._reads[key] = SingleFlight(lambda: self._thread(fn))
        value: T = await flight.get(max_age)
        return value

    async def endpoint(self, endpoint_id: str) -> ObservedEndpoint | None:
        """The endpoint with this ID, read now; None when AWS does not know it (or only as deleted)."""
        return await self._thread(vpc_endpoints.get, self.clients.ec2, endpoint_id)

    async def create_endpoint(
        self, desired: DesiredEndpoint, *, tags: dict[str, str], client_token: str
    ) -> ObservedEndpoint:
        """Create the endpoint, tagged at creation, idempotent through ``client_token``."""
        made = await self._thread(
            vpc_endpoints.create, self.clients.ec2, desired, tags=tags, client_token=client_token
        )
        self.forget_endpoints(desired.vpc_id)
        return made

    async def modify_endpoint(
        self, endpoint: ObservedEndpoint, decision: EndpointDecision
    ) -> ObservedEndpoint | None:
        """Apply the decision's subnet and group changes; the endpoint as read after (None: it vanished)."""
        await self._thread(vpc_endpoints.modify, self.clients.ec2, endpoint.id, decision)
        self.forget_endpoints(endpoint.vpc_id)
        return await self.endpoint(endpoint.id)

    async def delete_endpoint(self, vpc_id: str, endpoint_id: str) -> None:
        """Ask AWS to delete the endpoint (one already gone counts as deleted)."""
        await self._thread(vpc_endpoints.delete, self.clients.ec2, endpoint_id)
        self.forget_endpoints(vpc_id)

    async def mark_retained(self, vpc_id: str, endpoint_id: str, by: str) -> None:
        """Tag the endpoint as kept by ``by``'s deletionPolicy Retain; the VPC's read shows the mark."""
        await self._thread(vpc_endpoints.mark_retained, self.clients.ec2, endpoint_id, by)
        self.forget_endpoints(vpc_id)

    async def unmark_retained(self, vpc_id: str, endpoint_id: str) -> None:
        """Take the Retain mark off an endpoint a resource uses again."""
        await self._thread(vpc_endpoints.unmark_retained, self.clients.ec2, endpoint_id)
        self.forget_endpoints(vpc_id)

    async def security_groups(self, ids: Sequence[str], *, max_age: float) -> list[SecurityGroup]:
        """The security groups with these IDs and their inbound rules, shared by the readers of the same IDs."""
        wanted = sorted(ids)
        ec2 = self.clients.ec2
        return await self._shared_read(
            ("security-groups", *wanted), lambda: security_groups_api.describe(ec2, wanted), max_age=max_age
        )

    async def default_group(self, vpc_id: str, *, max_age: float) -> list[SecurityGroup]:
        """The VPC's default security group (what an endpoint created without groups gets)."""
        ec2 = self.clients.ec2
        return await self._shared_read(
            ("default-group", vpc_id), lambda: security_groups_api.default_group(ec2, vpc_id), max_age=max_age
        )

    async def vpc_cidrs(self, vpc_id: str, *, max_age: float) -> list[str]:
        """The VPC's IPv4 and IPv6 CIDR blocks, primary first."""
        ec2 = self.clients.ec2
        return await self._shared_read(
            ("vpc-cidrs", vpc_id), lambda: security_groups_api.vpc_cidrs(ec2, vpc_id), max_age=max_age
        )

    async def interface_addresses(self, endpoint_id: str, *, max_age: float) -> tuple[str, ...]:
        """The private addresses of the endpoint's network interfaces, sorted."""
        ec2 = self.clients.ec2
        return await self._shared_read(
            ("endpoint-interfaces", endpoint_id),
            lambda: vpc_endpoints.interface_addresses(ec2, endpoint_id),
            max_age=max_age,
        )

    # ---- Route 53

    async def private_zone(
        self, name: str, *, vpc_id: str, vpc_region: str, max_age: float
    ) -> route53_api.ObservedZone | None:
        """The private zone ``name`` associated with the VPC, if any."""
        key = (vpc_id, name.lower())
        flight = self._zones.get(key)
        if flight is None:
            flight = self._zones[key] = SingleFlight(
                lambda: self._thread(
                    route53_api.find_private_zone,
                    self.clients.route53,
                    name,
                    vpc_id=vpc_id,
                    vpc_region=vpc_region,
                )
            )
        zone = await flight.get(max_age)
        if zone is None:
            flight.forget()  # never keep "no zone": the next caller looks again
        return zone

    def forget_zone(self, vpc_id: str, name: str) -> None:
        flight = self._zones.get((vpc_id, name.lower()))
        if flight is not None:
            flight.forget()

    async def zone(self, zone_id: str, *, with_tags: bool = False) -> route53_api.ObservedZone | None:
        """The hosted zone with this ID, read now (None when it does not exist); its tags only when asked."""
        return await self._thread(route53_api.get_zone, self.clients.route53, zone_id, with_tags=with_tags)

    async def create_private_zone(
        self,
        name: str,
        *,
        vpc_id: str,
        vpc_region: str,
        tags: dict[str, str],
        caller_reference: str,
        created: Callable[[], None] | None = None,
    ) -> route53_api.ObservedZone:
        """Create a private zone associated with the VPC, tagged (the one already there when another won).
        ``created``: told between the create and the tagging (in the call's thread)."""
        zone = await self._thread(
            route53_api.create_private_zone,
            self.clients.route53,
            name,
            vpc_id=vpc_id,
            vpc_region=vpc_region,
            tags=tags,
            caller_reference=caller_reference,
            created=created,
        )
        self.forget_zone(vpc_id, name)
        return zone

    async def delete_zone_if_empty(self, zone_id: str, *, vpc_id: str, name: str) -> bool:
        """Delete the zone when only its SOA and NS records are left; True when it is gone."""
        gone = await self._thread(route53_api.delete_zone_if_empty, self.clients.route53, zone_id)
        if gone:
            self.forget_zone(vpc_id, name)
            self.forget_records(zone_id)
        return gone

    async def read_records(self, zone_id: str, hostname: str) -> tuple[ObservedRecords, list[dict[str, Any]]]:
        """What is at ``hostname`` in the zone, read now on its own (not from the shared listing)."""
        return await self._thread(route53_api.read_records, self.clients.route53, zone_id, hostname)

    async def zone_sets(self, zone_id: str, *, max_age: float) -> list[dict[str, Any]] | None:
        """Every record set of the zone from one listing shared by its readers; None when the zone is gone."""
        flight = self._records.get(zone_id)
        if flight is None:
            flight = self._records[zone_id] = SingleFlight(
                lambda: self._thread(route53_api.zone_record_sets, self.clients.route53, zone_id)
            )
        return await flight.get(max_age)

    async def records(
        self, zone_id: str, hostname: str, *, max_age: float
    ) -> tuple[ObservedRecords, list[dict[str, Any]]]:
        """What is at ``hostname`` in the zone, from the zone's shared listing (nothing when it is gone).

        The listing is indexed by name once per version, not scanned by each of a thousand readers.
        """
        named = await self.zone_names(zone_id, max_age=max_age) or {}
        return route53_api.records_at(named.get(route53_api.name_key(hostname), []), hostname)

    async def zone_names(self, zone_id: str, *, max_age: float) -> Mapping[str, list[dict[str, Any]]] | None:
        """The zone's shared listing by name (``route53.name_key``), indexed once per listing; None when the
        zone is gone."""
        sets = await self.zone_sets(zone_id, max_age=max_age)
        if sets is None:
            return None
        indexed = self._by_name.get(zone_id)
        if indexed is None or indexed[0] is not sets:
            indexed = self._by_name[zone_id] = (sets, route53_api.by_name(sets))
        return indexed[1]

    def reading_records(self, zone_id: str) -> bool:
        """Whether the zone's shared listing is being read now."""
        flight = self._records.get(zone_id)
        return flight is not None and flight.reading

    def forget_records(self, zone_id: str) -> None:
        if zone_id in self._records:
            self._records[zone_id].forget()

    async def submit_records(
        self, zone_id: str, groups: Sequence[Sequence[dict[str, Any]]]
    ) -> list[AwsError | None]:
        """Apply each group of changes (kept together, atomically) now, in as few ``ChangeResourceRecordSets``
        as Route 53's request limits allow; each group's error, or None where it was applied.

        A request that fails is split in halves until the bad groups stand alone, so one bad record does not
        block the others (external-dns splits a failed batch too). The zone's worker gathers the groups
        (engine/zone_worker.py): this sends them, in order.
        """
        errors: list[AwsError | None] = [None] * len(groups)
        request: list[int] = []
        records = characters = 0
        for i, group in enumerate(groups):
            size = _size(group)
            if request and not _fits(records + size[0], characters + size[1]):
                await self._submit(zone_id, [(n, groups[n]) for n in request], errors)
                request, records, characters = [], 0, 0
            request.append(i)
            records, characters = records + size[0], characters + size[1]
        if request:
            await self._submit(zone_id, [(n, groups[n]) for n in request], errors)
        return errors

    async def _submit(
        self,
        zone_id: str,
        groups: list[tuple[int, Sequence[dict[str, Any]]]],
        errors: list[AwsError | None],
    ) -> None:
        changes = [change for _, group in groups for change in group]
        actions = Counter(str(change["Action"]) for change in changes)
        summary = ", ".join(f"{n} {action}" for action, n in sorted(actions.items()))
        try:
            await self._thread(route53_api.change_record_sets, self.clients.route53, zone_id, changes)
        except AwsError as exc:
            log.info("Route 53 zone %s: %s for %d groups failed: %s", zone_id, summary, len(groups), exc)
            if len(groups) == 1:
                self.forget_records(zone_id)  # what the zone holds now is not known: read it again
                errors[groups[0][0]] = exc
                return
            # One bad record must not block the others: the request is split in halves until each bad
            # group stands alone (one bad group among 1,000 costs about 20 calls, not 1,000).
            half = len(groups) // 2
            parts = [[g] for g in groups] if len(groups) <= _SPLIT_ALONE else [groups[:half], groups[half:]]
            for part in parts:
                await self._submit(zone_id, part, errors)
            return
        log.info("Route 53 zone %s: %s for %d groups", zone_id, summary, len(groups))
        # The zone's shared listing takes the changes in, so its readers neither undo nor repeat them.
        flight = self._records.get(zone_id)
        if flight is not None:
            flight.wrote(partial(_applied, changes))


def _applied(changes: list[dict[str, Any]], sets: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    return None if sets is None else route53_api.apply_changes(sets, changes)


def _size(changes: Sequence[dict[str, Any]]) -> tuple[int, int]:
    sizes = [route53_api.change_size(change) for change in changes]
    return sum(r for r, _ in sizes), sum(c for _, c in sizes)


def _fits(records: int, characters: int) -> bool:
    """Whether changes of this size go in one request by Route 53's limits."""
    return records <= route53_api.MAX_RECORD_ELEMENTS and characters <= route53_api.MAX_VALUE_CHARACTERS


class AwsGateways:
    """One gateway per (region, role), made on first use."""

    def __init__(self, clients: Callable[[str, str | None], AwsClients]) -> None:
        self._clients = clients
        self._gateways: dict[tuple[str, str | None], AwsGateway] = {}

    def get(self, region: str, role_arn: str | None) -> AwsGateway:
        gateway = self._gateways.get((region, role_arn))
        if gateway is None:
            gateway = self._gateways[(region, role_arn)] = AwsGateway(self._clients(region, role_arn))
        return gateway
