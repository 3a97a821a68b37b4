"""In-memory AWS, ClickHouse and Secrets for the engine's in-process tests (they implement engine/ports.py).

The *cloud* objects (``AwsCloud``, ``ClickHouseCloud``) are what AWS and ClickHouse hold: they outlive an
operator process. The *views* (``FakeAws``, ``FakeClickHouse``) are one process's gateways: they keep reads
for ``max_age`` by an injected ``Clock`` (no real time anywhere), drop what their own writes make stale, and
raise what the real gateways raise (``AwsError`` with AWS's code, ``NotFound``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.adapters.aws import route53 as route53_api
from clickhouse_privatelink.adapters.aws.clients import AwsError, AwsProblem
from clickhouse_privatelink.adapters.aws.route53 import ObservedZone
from clickhouse_privatelink.adapters.clickhouse.client import (
    ClickHouseApiError,
    IpAccessEntry,
    NotFound,
    PrivateEndpointConfig,
    Service,
)
from clickhouse_privatelink.adapters.kubernetes.secrets import ApiKey, CredentialsError
from clickhouse_privatelink.api.models import SecretKeyRef
from clickhouse_privatelink.decisions.plan import (
    DesiredEndpoint,
    EndpointDecision,
    ObservedEndpoint,
    ObservedRecords,
)
from clickhouse_privatelink.decisions.reasons import Reason
from clickhouse_privatelink.decisions.security_groups import IngressRule, SecurityGroup
from clickhouse_privatelink.engine.ports import AwsPort, ClickHousePort, SecretsPort

T = TypeVar("T")


class Clock:
    """Seconds since the test began, moved only by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def aws_error(code: str, message: str = "", reason: Reason = Reason.INVALID_AWS_CONFIGURATION) -> AwsError:
    return AwsError(AwsProblem(reason, f"{code}: {message}".strip(), False, code))


# --------------------------------------------------------------------------------------------------- AWS


@dataclass
class Endpoint:
    id: str
    vpc_id: str
    service_name: str
    service_region: str
    state: str
    subnet_ids: set[str]
    security_group_ids: set[str]
    tags: dict[str, str]

    def observed(self) -> ObservedEndpoint:
        dns = (f"{self.id}-abc.vpce-svc.{self.service_region}.vpce.amazonaws.com", "Z7HUB22UULQXV")
        return ObservedEndpoint(
            id=self.id,
            vpc_id=self.vpc_id,
            service_name=self.service_name,
            state=self.state,
            subnet_ids=frozenset(self.subnet_ids),
            security_group_ids=frozenset(self.security_group_ids),
            dns_entries=(dns,),
            tags=dict(self.tags),
            service_region=self.service_region,
        )


@dataclass
class Zone:
    id: str
    name: str
    private: bool
    vpc_ids: set[str]
    tags: dict[str, str]
    sets: list[dict[str, Any]] = field(default_factory=list)
    comment_tags: dict[str, str] = field(default_factory=dict)  # what CreateHostedZone wrote in its comment

    def observed(self, *, with_tags: bool = False) -> ObservedZone:
        return ObservedZone(
            id=self.id,
            name=self.name,
            private=self.private,
            tags=dict(self.tags) if with_tags else {},
            vpc_ids=frozenset(self.vpc_ids),
            comment_tags=dict(self.comment_tags),
        )


def _key(rs: dict[str, Any]) -> tuple[str, str]:
    return (route53_api.name_key(rs["Name"]), rs["Type"])


@dataclass
class AwsCloud:
    """What EC2 and Route 53 hold (one account and region): survives any operator process."""

    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    zones: dict[str, Zone] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # ClientToken -> endpoint ID
    references: dict[str, str] = field(default_factory=dict)  # CallerReference -> zone ID
    writes: list[tuple[str, str]] = field(default_factory=list)  # (call, object ID), in order
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):017x}"

    def settle(self) -> None:
        """AWS finishes what it was doing: pending endpoints become available, deleting ones go."""
        for endpoint in list(self.endpoints.values()):
            if endpoint.state == "pending":
                endpoint.state = "available"
            elif endpoint.state == "deleting":
                del self.endpoints[endpoint.id]

    def add_endpoint(
        self, vpc_id: str, service_name: str, *, tags: dict[str, str], subnet_ids: set[str], groups: set[str]
    ) -> Endpoint:
        """An endpoint made by someone else (a person, an older operator), available."""
        endpoint = Endpoint(
            self.new_id("vpce-"), vpc_id, service_name, "us-east-1", "available", subnet_ids, groups, tags
        )
        self.endpoints[endpoint.id] = endpoint
        return endpoint

    def live_endpoints(self) -> list[Endpoint]:
        return [e for e in self.endpoints.values() if e.state != "deleting"]

    def add_zone(self, name: str, *, vpc_ids: set[str], tags: dict[str, str] | None = None) -> Zone:
        """A private zone made by someone (a tenant, a person), with the SOA and NS Route 53 gives it."""
        zone = Zone(self.new_id("Z").upper(), name.rstrip("."), True, set(vpc_ids), dict(tags or {}))
        fqdn = route53_api.name_key(zone.name)
        zone.sets = [
            {"Name": fqdn, "Type": "SOA", "TTL": 900, "ResourceRecords": [{"Value": "ns-1. hostmaster. 1"}]},
            {"Name": fqdn, "Type": "NS", "TTL": 172800, "ResourceRecords": [{"Value": "ns-1."}]},
        ]
        self.zones[zone.id] = zone
        return zone

    def record_sets(self, zone_id: str, hostname: str) -> list[dict[str, Any]]:
        wanted = route53_api.name_key(hostname)
        return [rs for rs in self.zones[zone_id].sets if route53_api.name_key(rs["Name"]) == wanted]

    def change(self, zone_id: str, changes: Sequence[dict[str, Any]]) -> None:
        """ChangeResourceRecordSets: all or nothing; CREATE of a set that exists and DELETE of one that does
        not (or differs) are refused with InvalidChangeBatch."""
        zone = self.zones.get(zone_id)
        if zone is None:
            raise aws_error("NoSuchHostedZone", zone_id, Reason.HOSTED_ZONE_NOT_FOUND)
        by_key = {_key(rs): rs for rs in zone.sets}
        for change in changes:
            rs = change["ResourceRecordSet"]
            action, key = change["Action"], _key(rs)
            if action == "CREATE" and key in by_key:
                raise aws_error(
                    "InvalidChangeBatch", f"[Tried to create resource record set {key} but it exists]"
                )
            if action == "DELETE" and by_key.get(key) != rs:
                raise aws_error(
                    "InvalidChangeBatch", f"[Tried to delete resource record set {key} but not found]"
                )
            if action == "DELETE":
                del by_key[key]
            else:
                by_key[key] = dict(rs)
        zone.sets = list(by_key.values())
        self.writes.append(("ChangeResourceRecordSets", zone_id))


class _Kept:
    """Reads kept by key, each for as long as its caller accepts (by the clock)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._kept: dict[Any, tuple[float, Any]] = {}

    async def get(self, key: Any, max_age: float, read: Callable[[], T]) -> T:
        kept = self._kept.get(key)
        if kept is not None and self.clock() - kept[0] <= max_age:
            value: T = kept[1]
            return value
        value = read()
        self._kept[key] = (self.clock(), value)
        return value

    def forget(self, key: Any) -> None:
        self._kept.pop(key, None)

    def update(self, key: Any, apply: Callable[[Any], Any]) -> None:
        kept = self._kept.get(key)
        if kept is not None:
            self._kept[key] = (kept[0], apply(kept[1]))


OPEN = (IngressRule(protocol="-1", from_port=None, to_port=None, cidrs=("0.0.0.0/0",)),)


class FakeAws:
    """One process's AWS gateway over an ``AwsCloud`` (engine/ports.py AwsPort)."""

    def __init__(self, cloud: AwsCloud, clock: Clock) -> None:
        self.cloud = cloud
        self.reads = _Kept(clock)
        self.calls: list[str] = []

    # ---- EC2

    async def endpoints(self, vpc_id: str, *, max_age: float) -> list[ObservedEndpoint]:
        def read() -> list[ObservedEndpoint]:
            self.calls.append("DescribeVpcEndpoints")
            found = [e for e in self.cloud.endpoints.values() if e.vpc_id == vpc_id]
            return [e.observed() for e in found if e.tags.get(c.TAG_MANAGED_BY) == c.OPERATOR_NAME]

        return await self.reads.get(("endpoints", vpc_id), max_age, read)

    async def endpoint(self, endpoint_id: str) -> ObservedEndpoint | None:
        found = self.cloud.endpoints.get(endpoint_id)
        return found.observed() if found is not None else None

    async def create_endpoint(
        self, desired: DesiredEndpoint, *, tags: dict[str, str], client_token: str
    ) -> ObservedEndpoint:
        known = self.cloud.tokens.get(client_token)
        if known is not None and known in self.cloud.endpoints:  # AWS answers a repeated token with the first
            return self.cloud.endpoints[known].observed()
        endpoint = Endpoint(
            id=self.cloud.new_id("vpce-"),
            vpc_id=desired.vpc_id,
            service_name=desired.service_name,
            service_region=desired.service_region,
            state="pending",
            subnet_ids=set(desired.subnet_ids),
            security_group_ids=set(desired.security_group_ids),
            tags=dict(tags),
        )
        self.cloud.endpoints[endpoint.id] = endpoint
        self.cloud.tokens[client_token] = endpoint.id
        self.cloud.writes.append(("CreateVpcEndpoint", endpoint.id))
        self.reads.forget(("endpoints", desired.vpc_id))
        return endpoint.observed()

    async def modify_endpoint(
        self, endpoint: ObservedEndpoint, decision: EndpointDecision
    ) -> ObservedEndpoint | None:
        found = self.cloud.endpoints.get(endpoint.id)
        if found is None:
            raise aws_error("InvalidVpcEndpointId.NotFound", endpoint.id)
        found.subnet_ids = (found.subnet_ids | set(decision.add_subnet_ids)) - set(decision.remove_subnet_ids)
        found.security_group_ids = (found.security_group_ids | set(decision.add_security_group_ids)) - set(
            decision.remove_security_group_ids
        )
        self.cloud.writes.append(("ModifyVpcEndpoint", endpoint.id))
        self.reads.forget(("endpoints", endpoint.vpc_id))
        return await self.endpoint(endpoint.id)

    async def delete_endpoint(self, vpc_id: str, endpoint_id: str) -> None:
        found = self.cloud.endpoints.get(endpoint_id)
        if found is not None:
            found.state = "deleting"
            self.cloud.writes.append(("DeleteVpcEndpoints", endpoint_id))
        self.reads.forget(("endpoints", vpc_id))

    async def mark_retained(self, vpc_id: str, endpoint_id: str, by: str) -> None:
        self.cloud.endpoints[endpoint_id].tags[c.TAG_RETAINED] = by
        self.cloud.writes.append(("CreateTags", endpoint_id))
        self.reads.forget(("endpoints", vpc_id))

    async def unmark_retained(self, vpc_id: str, endpoint_id: str) -> None:
        self.cloud.endpoints[endpoint_id].tags.pop(c.TAG_RETAINED, None)
        self.cloud.writes.append(("DeleteTags", endpoint_id))
        self.reads.forget(("endpoints", vpc_id))

    async def security_groups(self, ids: Sequence[str], *, max_age: float) -> list[SecurityGroup]:
        return [SecurityGroup(id=i, rules=OPEN) for i in sorted(ids)]

    async def default_group(self, vpc_id: str, *, max_age: float) -> list[SecurityGroup]:
        return [SecurityGroup(id=f"sg-default-{vpc_id}", rules=OPEN)]

    async def vpc_cidrs(self, vpc_id: str, *, max_age: float) -> list[str]:
        return ["10.0.0.0/16"]

    async def interface_addresses(self, endpoint_id: str, *, max_age: float) -> tuple[str, ...]:
        return ("10.0.1.10",)

    # ---- Route 53

    async def private_zone(
        self, name: str, *, vpc_id: str, vpc_region: str, max_age: float
    ) -> ObservedZone | None:
        def read() -> ObservedZone | None:
            self.calls.append("ListHostedZonesByVPC")
            wanted = route53_api.name_key(name)
            for zone in self.cloud.zones.values():
                if zone.private and vpc_id in zone.vpc_ids and route53_api.name_key(zone.name) == wanted:
                    return ObservedZone(id=zone.id, name=zone.name, private=True)
            return None

        key = ("zone", vpc_id, name.lower())
        zone = await self.reads.get(key, max_age, read)
        if zone is None:
            self.reads.forget(key)  # never keep "no zone"
        return zone

    async def zone(self, zone_id: str, *, with_tags: bool = False) -> ObservedZone | None:
        found = self.cloud.zones.get(zone_id)
        return found.observed(with_tags=with_tags) if found is not None else None

    async def create_private_zone(
        self,
        name: str,
        *,
        vpc_id: str,
        vpc_region: str,
        tags: dict[str, str],
        caller_reference: str,
        created: Callable[[], None] | None = None,
    ) -> ObservedZone:
        self.reads.forget(("zone", vpc_id, name.lower()))
        existing = await self.private_zone(name, vpc_id=vpc_id, vpc_region=vpc_region, max_age=0)
        if caller_reference in self.cloud.references or existing is not None:
            if existing is None:
                raise aws_error("HostedZoneAlreadyExists", caller_reference)
            return existing  # ConflictingDomainExists: the adapter uses the zone already there
        zone = self.cloud.add_zone(name, vpc_ids={vpc_id})  # Route 53 tags a new zone in a second call
        zone.comment_tags = dict(tags)
        self.cloud.references[caller_reference] = zone.id
        self.cloud.writes.append(("CreateHostedZone", zone.id))
        if created is not None:
            created()
        zone.tags = dict(tags)
        self.reads.forget(("zone", vpc_id, name.lower()))
        return zone.observed(with_tags=True)

    async def delete_zone_if_empty(self, zone_id: str, *, vpc_id: str, name: str) -> bool:
        zone = self.cloud.zones.get(zone_id)
        if zone is not None:
            if not route53_api.only_soa_and_ns(zone.sets):
                return False
            del self.cloud.zones[zone_id]
            self.cloud.writes.append(("DeleteHostedZone", zone_id))
        self.reads.forget(("zone", vpc_id, name.lower()))
        self.reads.forget(("sets", zone_id))
        return True

    async def zone_sets(self, zone_id: str, *, max_age: float) -> list[dict[str, Any]] | None:
        def read() -> list[dict[str, Any]] | None:
            self.calls.append("ListResourceRecordSets")
            zone = self.cloud.zones.get(zone_id)
            return [dict(rs) for rs in zone.sets] if zone is not None else None

        return await self.reads.get(("sets", zone_id), max_age, read)

    async def zone_names(self, zone_id: str, *, max_age: float) -> Mapping[str, list[dict[str, Any]]] | None:
        sets = await self.zone_sets(zone_id, max_age=max_age)
        return None if sets is None else route53_api.by_name(sets)

    async def records(
        self, zone_id: str, hostname: str, *, max_age: float
    ) -> tuple[ObservedRecords, list[dict[str, Any]]]:
        sets = await self.zone_sets(zone_id, max_age=max_age) or []
        return route53_api.records_at(sets, hostname)

    def reading_records(self, zone_id: str) -> bool:
        return False  # a read here returns at once: never in flight

    async def read_records(self, zone_id: str, hostname: str) -> tuple[ObservedRecords, list[dict[str, Any]]]:
        zone = self.cloud.zones.get(zone_id)
        sets = [dict(rs) for rs in self.cloud.record_sets(zone_id, hostname)] if zone is not None else []
        return route53_api.records_at(sets, hostname)

    async def submit_records(
        self, zone_id: str, groups: Sequence[Sequence[dict[str, Any]]]
    ) -> list[AwsError | None]:
        """One call for all the groups; when it is refused, one call per group (the gateway halves)."""
        try:
            await self.change_records(zone_id, [change for group in groups for change in group])
            return [None] * len(groups)
        except AwsError as refused:
            if len(groups) == 1:
                return [refused]
        errors: list[AwsError | None] = []
        for group in groups:
            try:
                await self.change_records(zone_id, group)
                errors.append(None)
            except AwsError as exc:
                errors.append(exc)
        return errors

    async def change_records(self, zone_id: str, changes: Sequence[dict[str, Any]]) -> None:
        try:
            self.cloud.change(zone_id, changes)
        except AwsError:
            self.reads.forget(("sets", zone_id))
            raise
        self.reads.update(
            ("sets", zone_id), lambda sets: None if sets is None else route53_api.apply_changes(sets, changes)
        )


# --------------------------------------------------------------------------------------------- ClickHouse


@dataclass
class ClickHouseCloud:
    """One organization's services, their PrivateLink configuration and the organization's entries."""

    org_id: str = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
    services: dict[str, Service] = field(default_factory=dict)
    configs: dict[str, PrivateEndpointConfig] = field(default_factory=dict)
    organization_entries: list[str] = field(default_factory=list)
    writes: list[tuple[str, str]] = field(default_factory=list)  # (call, service or endpoint ID), in order
    fail_patches: list[ClickHouseApiError] = field(default_factory=list)  # the next PATCHes refused, in turn

    def add_service(self, service_id: str, name: str, *, endpoint_service: str, hostname: str) -> Service:
        service = Service(id=service_id, name=name, provider="aws", region="us-east-1", state="running")
        self.services[service_id] = service
        self.configs[service_id] = PrivateEndpointConfig(
            endpointServiceId=endpoint_service, privateDnsHostname=hostname
        )
        return service

    def allow_list(self, service_id: str) -> list[str]:
        return list(self.services[service_id].private_endpoint_ids)

    def patch(self, service_id: str, *, add: Sequence[str], remove: Sequence[str]) -> None:
        """One PATCH of the service's privateEndpointIds (``remove`` runs before ``add``, as the API does)."""
        if service_id not in self.services:
            raise NotFound(status=404, message=f"service {service_id} not found", operation="update")
        if self.fail_patches:
            raise self.fail_patches.pop(0)
        ids = [i for i in self.allow_list(service_id) if i not in remove]
        ids += [i for i in add if i not in ids]
        self._set(service_id, ids)
        for endpoint_id in add:  # ClickHouse registers an added endpoint on the organization
            if endpoint_id not in self.organization_entries:
                self.organization_entries.append(endpoint_id)
        self.writes.append(("PATCH", service_id))

    def _set(self, service_id: str, ids: list[str]) -> None:
        self.services[service_id] = replace(self.services[service_id], private_endpoint_ids=tuple(ids))


class FakeClickHouse:
    """One process's ClickHouse gateway over a ``ClickHouseCloud`` (engine/ports.py ClickHousePort)."""

    def __init__(self, cloud: ClickHouseCloud, clock: Clock) -> None:
        self.cloud = cloud
        self.reads = _Kept(clock)

    async def services(self, *, max_age: float) -> list[Service]:
        return await self.reads.get("services", max_age, lambda: list(self.cloud.services.values()))

    async def service(self, service_id: str, *, max_age: float) -> Service:
        for service in await self.services(max_age=max_age):
            if service.id == service_id:
                return service
        if service_id in self.cloud.services:
            return self.cloud.services[service_id]
        raise NotFound(status=404, message=f"service {service_id} not found", operation="get_service")

    async def private_endpoint_config(self, service_id: str) -> PrivateEndpointConfig:
        return self.cloud.configs[service_id]

    async def update_private_endpoint_ids(
        self, service_id: str, *, add: Sequence[str], remove: Sequence[str]
    ) -> Service:
        self.cloud.patch(service_id, add=add, remove=remove)
        self.reads.forget("services")
        return self.cloud.services[service_id]

    async def update_ip_access_list(
        self, service_id: str, *, add: Sequence[IpAccessEntry], remove: Sequence[IpAccessEntry]
    ) -> Service:
        service = self.cloud.services[service_id]
        gone = {e.source for e in remove}
        entries = [e for e in service.ip_access_list if e.source not in gone] + list(add)
        self.cloud.services[service_id] = replace(service, ip_access_list=tuple(entries))
        self.reads.forget("services")
        return self.cloud.services[service_id]

    async def remove_organization_entries(self, endpoint_ids: Sequence[str], *, max_age: float) -> list[str]:
        used = {i for s in self.cloud.services.values() for i in s.private_endpoint_ids}
        gone = [i for i in endpoint_ids if i in self.cloud.organization_entries and i not in used]
        if gone:
            self.cloud.organization_entries = [i for i in self.cloud.organization_entries if i not in gone]
            self.cloud.writes.extend(("organization-remove", i) for i in gone)
        return gone


# ------------------------------------------------------------------------------------------------ Secrets


class FakeSecrets:
    """API-key Secrets by (namespace, name); a missing one is CredentialsError as the real reader says."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], ApiKey] = {}

    def put(self, namespace: str, name: str) -> None:
        self.keys[(namespace, name)] = ApiKey("key-id", "key-secret")

    async def api_key(
        self, namespace: str, ref: SecretKeyRef, *, max_age: float = 0.0, require_opt_in: bool = True
    ) -> ApiKey:
        key = self.keys.get((namespace, ref.name))
        if key is None:
            raise CredentialsError(f"Secret {namespace}/{ref.name} not found", missing=True)
        return key

    def forget(self, namespace: str, name: str) -> None:
        return None


def _conforms(
    aws: FakeAws, clickhouse: FakeClickHouse, secrets: FakeSecrets
) -> tuple[AwsPort, ClickHousePort, SecretsPort]:
    """mypy checks the fakes against the engine's ports here (never called)."""
    return aws, clickhouse, secrets
