"""The external objects a ClickHousePrivateLink needs, one component each: observe, decide, apply, release.

The engine (reconciler.py) runs ``apply`` forward (service, endpoint, zone, record, allow-list entry) and
``release`` on deletion in the reverse order, the allow-list entry and record side by side: cleanup
is the same components seen the other way (the AWS Load Balancer Controller's synthesizers; crossplane's
Observe/Create/Update/Delete). Decisions come from the pure
``decisions`` package; every shared object is released only when ``decisions.usage`` finds no other user.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Iterable
from typing import Protocol

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.adapters.aws.route53 import (
    only_soa_and_ns,
    records_at,
)
from clickhouse_privatelink.adapters.clickhouse.client import (
    ClickHouseApiError,
    Forbidden,
    PrivateEndpointConfig,
    Service,
)
from clickhouse_privatelink.api.models import DnsMode
from clickhouse_privatelink.decisions.allow_list import AllowKind, AllowOutcome, AllowRequest
from clickhouse_privatelink.decisions.endpoints import (
    EndpointAnswer,
    EndpointKind,
    EndpointOutcome,
    EndpointRequest,
    KeyAction,
    plan_endpoint_key,
    settings_in_force,
)
from clickhouse_privatelink.decisions.ownership import (
    is_owned_by,
    is_shared_endpoint_for,
)
from clickhouse_privatelink.decisions.plan import (
    LIVE_ENDPOINT_STATES,
    DesiredEndpoint,
    EndpointAction,
    EndpointDecision,
    ObservedEndpoint,
    RecordAction,
    ServiceSummary,
    choose_service,
    connection_endpoints,
    pick_owned_endpoint,
    plan_endpoint,
    plan_record,
    service_readiness,
    zone_contains,
    zone_name_for,
)
from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from clickhouse_privatelink.decisions.release import (
    plan_allow_list_release,
    plan_record_release,
    record_holders,
    stray_entries,
    stray_records,
    zone_in_use,
)
from clickhouse_privatelink.decisions.status import StepResult
from clickhouse_privatelink.decisions.usage import (
    EndpointKey,
    Usage,
    allow_list_users,
    endpoint_leader,
    endpoint_users,
    record_users,
)
from clickhouse_privatelink.decisions.zone_records import RecordOutcome, RecordRequest, zone_release
from clickhouse_privatelink.engine import crash_points as crash
from clickhouse_privatelink.engine.context import (
    EndpointResult,
    Found,
    Pass,
    Resolved,
    ResolvedService,
    StepFailed,
    ZoneResult,
    aws_await,
    clickhouse_call,
)
from clickhouse_privatelink.engine.ports import ClickHousePort
from clickhouse_privatelink.engine.security_group_component import SecurityGroupComponent
from clickhouse_privatelink.engine.status import EngineStatus

CREDENTIAL_REASONS = frozenset(
    {Reason.CREDENTIALS_SECRET_NOT_FOUND, Reason.CREDENTIALS_INVALID, Reason.UNAUTHORIZED}
)


class Component(Protocol):
    """One external object: brought to its desired state forward, let go of in reverse.

    Forward, it is handed what the components before it found (``resolved``) and returns what it found for
    those after it, if anything (the reconciler adds it).
    """

    async def apply(self, p: Pass, resolved: Resolved) -> Found: ...

    async def release(self, p: Pass) -> None: ...


# ------------------------------------------------------------------------------------------------ service


class ServiceComponent:
    """The ClickHouse service and its PrivateLink configuration (read only: nothing to release)."""

    async def apply(self, p: Pass, resolved: Resolved) -> ResolvedService:
        step = ConditionType.SERVICE_RESOLVED
        spec = p.res.spec.clickhouse
        api = await p.clickhouse()
        service_id = spec.service_id
        if service_id is None:
            services = await clickhouse_call(step, api.services(max_age=p.read_age))
            choice = choose_service(
                [ServiceSummary(s.id, s.name, s.provider, s.region, s.state) for s in services],
                service_name=spec.service_name or "",
            )
            if choice.service is None:
                raise StepFailed(step, choice.reason, choice.message)
            service_id = choice.service.id
        service = await clickhouse_call(step, api.service(service_id, max_age=p.read_age))
        p.out.status.service_id = service.id
        p.out.status.service_region = service.region
        if service.provider != "aws":
            raise StepFailed(
                step, Reason.SERVICE_NOT_AWS, f"service {service.name!r} runs on {service.provider}, not aws"
            )
        config = _kept_config(p.recorded, service.id)
        if config is None:
            config = await clickhouse_call(step, api.private_endpoint_config(service.id), private_link=True)
        usable, reason, message = service_readiness(service.state, config_ready=config.ready)
        if not usable:
            raise StepFailed(step, reason, f"{service.name}: {message}")
        p.out.status.endpoint_service_id = config.endpoint_service_id
        p.out.status.private_dns_hostname = config.private_dns_hostname
        p.out.status.endpoints = connection_endpoints(config.private_dns_hostname)
        p.learn(
            service_id=service.id,
            service_region=service.region,
            endpoint_service_id=config.endpoint_service_id,
            hostname=config.private_dns_hostname,
        )
        p.out.steps.append(
            StepResult(
                step, True, Reason.RESOLVED, f"service {service.name} ({service.id}) is {service.state}"
            )
        )
        return ResolvedService(service, config)

    async def release(self, p: Pass) -> None:
        return None


def _kept_config(status: EngineStatus, service_id: str) -> PrivateEndpointConfig | None:
    """The PrivateLink configuration this resource's status already holds for the same service.

    It does not change while the service lives, so it is read from ClickHouse once, not every pass.
    """
    if status.service_id != service_id:
        return None
    kept = PrivateEndpointConfig(
        endpointServiceId=status.endpoint_service_id or "",
        privateDnsHostname=status.private_dns_hostname or "",
    )
    return kept if kept.ready else None


# ----------------------------------------------------------------------------------------------- endpoint


def _legacy(endpoints: list[ObservedEndpoint], p: Pass) -> list[ObservedEndpoint]:
    """Endpoints made for this one resource before endpoints were shared (kept until it is deleted)."""
    return [e for e in endpoints if is_owned_by(e.tags, p.res.ref) and c.TAG_ENDPOINT_KEY not in e.tags]


class EndpointComponent:
    """The VPC endpoint: shared by every resource of the VPC whose service has the same endpoint service.

    Made, changed, marked and deleted only by its key's worker (engine/endpoint_worker.py): a pass asks it and
    reports the answer. A pass whose shared read shows the endpoint as it should be, with no request of its key
    at the worker, asks nothing. An endpoint made for this resource alone before endpoints were shared
    (legacy) and an adopted one stay on the pass's own path: nobody else writes them.
    """

    async def apply(self, p: Pass, resolved: Resolved) -> EndpointResult:
        step = ConditionType.VPC_ENDPOINT_READY
        assert resolved.service is not None
        service, config = resolved.service.service, resolved.service.config
        aws_spec = p.res.spec.aws
        desired = DesiredEndpoint(
            vpc_id=aws_spec.vpc_id,
            vpc_region=aws_spec.region,
            service_name=config.endpoint_service_id,
            service_region=service.region,
            subnet_ids=frozenset(aws_spec.subnet_ids),
            security_group_ids=frozenset(aws_spec.security_group_ids),
        )
        if aws_spec.vpc_endpoint_id is not None:
            return await self._adopted(p, desired, aws_spec.vpc_endpoint_id)
        key = EndpointKey(
            p.cluster, aws_spec.region, aws_spec.vpc_id, desired.service_name, desired.service_region
        )
        worker = p.endpoints.get(p.aws, key)
        writes = worker.writes
        managed = await p.managed_endpoints()
        legacy = pick_owned_endpoint(_legacy(managed, p))
        if legacy is not None and legacy.service_name == desired.service_name:
            # This resource's own: no other pass writes it (kopf runs one handler of a resource at a time).
            decision = plan_endpoint(desired, legacy, adopted=False)
            observed = await self._modify_legacy(p, legacy, decision)
            return self._report(
                p, observed, decision=plan_endpoint(desired, observed, adopted=False), owned=True
            )
        p.book.claim(p.me)  # (the zone's and the allow list's releases still read users from claims)
        everyone = p.users()
        leader = endpoint_leader(everyone, key) or p.me
        in_force = settings_in_force(key, leader)
        found = pick_owned_endpoint([e for e in managed if is_shared_endpoint_for(e.tags, key)])
        decision = plan_endpoint(in_force, found, adopted=False)
        if (
            not worker.busy
            and worker.writes == writes
            and found is not None
            and c.TAG_RETAINED not in found.tags
            and decision.action not in (EndpointAction.CREATE, EndpointAction.MODIFY)
        ):
            # Most passes find the endpoint as it should be and write nothing: they decide from the shared
            # read, without a request (at a thousand resources they would queue for rounds that do nothing).
            shared = any(u.uid != p.me.uid and not u.deleting for u in endpoint_users(everyone, key))
            return self._report(p, found, decision=decision, owned=True, shared=shared, leader=leader)
        if decision.action is EndpointAction.CREATE and p.res.deleting():
            raise StepFailed(step, Reason.DELETING, "being deleted: no new endpoint")
        await p.before_write(step)
        # The round plans from the key's users as they are when it runs (p.users), this resource among them.
        request = EndpointRequest(EndpointKind.APPLY, p.me)
        answer = await aws_await(step, worker.ask(request, max_age=p.read_age, users=p.users))
        answered, found = answer.decision, answer.endpoint
        if answered is None:
            raise StepFailed(step, Reason.DELETING, "being deleted: no new endpoint")
        if found is None:
            if answered.action is EndpointAction.FAIL:
                raise StepFailed(step, answered.reason, answered.message)
            raise StepFailed(step, Reason.ENDPOINT_NOT_FOUND, "the endpoint vanished while being modified")
        observed, decision = found, answered
        if answer.taken_over is not None:
            p.out.event(
                "EndpointTakenOver",
                f"endpoint {observed.id} was kept by deletionPolicy Retain of {answer.taken_over}: "
                "this resource uses it now",
            )
        if answer.write is KeyAction.CREATE:
            p.wrote(crash.ENDPOINT_CREATE)
            where = f" (cross-region to {key.service_region})" if in_force.cross_region else ""
            p.out.event("EndpointCreated", f"created VPC endpoint {observed.id}{where}")
            p.out.changes.append("endpoint_created")
        elif answer.write is KeyAction.MODIFY and answer.change is not None:
            p.out.event("EndpointModified", _modification(observed.id, answer.change))
            p.out.changes.append("endpoint_modified")
        return self._report(
            p, observed, decision=decision, owned=True, shared=answer.shared, leader=answer.leader or leader
        )

    async def _adopted(self, p: Pass, desired: DesiredEndpoint, endpoint_id: str) -> EndpointResult:
        step = ConditionType.VPC_ENDPOINT_READY
        observed = await aws_await(step, p.aws.endpoint(endpoint_id))
        decision = plan_endpoint(desired, observed, adopted=True)
        if decision.action is EndpointAction.FAIL or observed is None:
            raise StepFailed(step, decision.reason, decision.message)
        return self._report(p, observed, decision=decision, owned=False)

    async def _modify_legacy(
        self, p: Pass, observed: ObservedEndpoint, decision: EndpointDecision
    ) -> ObservedEndpoint:
        step = ConditionType.VPC_ENDPOINT_READY
        if decision.action is EndpointAction.FAIL:
            raise StepFailed(step, decision.reason, decision.message)
        if decision.action is not EndpointAction.MODIFY:
            return observed
        modified = await aws_await(step, p.aws.modify_endpoint(observed, decision))
        p.out.event("EndpointModified", _modification(observed.id, decision))
        p.out.changes.append("endpoint_modified")
        if modified is None:
            raise StepFailed(step, Reason.ENDPOINT_NOT_FOUND, "the endpoint vanished while being modified")
        return modified

    def _report(
        self,
        p: Pass,
        observed: ObservedEndpoint,
        *,
        decision: EndpointDecision,
        owned: bool,
        shared: bool = False,
        leader: Usage | None = None,
    ) -> EndpointResult:
        step = ConditionType.VPC_ENDPOINT_READY
        p.learn(endpoint_id=observed.id)
        p.out.status.vpc_endpoint_id = observed.id
        p.out.status.vpc_endpoint_state = observed.state
        p.out.status.vpc_endpoint_owned = owned
        if decision.action is EndpointAction.FAIL:
            raise StepFailed(step, decision.reason, decision.message)
        if observed.state == "deleting":
            # Its last users are being deleted (or someone deleted it): point nothing at it; the pass after it
            # is gone makes another if this resource still needs one.
            raise StepFailed(step, decision.reason, decision.message)
        ok = decision.action is EndpointAction.READY
        reason, message = decision.reason, decision.message
        if shared:
            # Not who or how many: that would rewrite every user's status whenever one comes or goes.
            message += "; shared with other resources of this VPC"
        me = p.me
        if leader is not None and leader.uid != me.uid:
            if me.subnet_ids != leader.subnet_ids or me.security_group_ids != leader.security_group_ids:
                message += (
                    f"; the subnets and security groups of {leader.resource} (its oldest user) are in force, "
                    "not this resource's"
                )
                if ok:
                    reason = Reason.ENDPOINT_SETTINGS_OF_OTHER_RESOURCE
            if me.tags != leader.tags:
                message += f"; the endpoint carries the tags of {leader.resource} (its oldest user), not this resource's"
                if ok:
                    reason = Reason.ENDPOINT_SETTINGS_OF_OTHER_RESOURCE
        p.out.steps.append(StepResult(step, ok, reason, message))
        return EndpointResult(observed)

    async def release(self, p: Pass) -> None:
        step = ConditionType.VPC_ENDPOINT_READY
        aws_spec = p.res.spec.aws
        if aws_spec.vpc_endpoint_id:
            p.out.event("EndpointKept", f"adopted endpoint {aws_spec.vpc_endpoint_id} is left in place")
            return
        key = p.me.endpoint_key(p.cluster)
        worker = p.endpoints.get(p.aws, key) if key is not None else None
        writes = worker.writes if worker is not None else 0
        # One shared read of the VPC's endpoints serves every resource being deleted in it.
        managed = await p.managed_endpoints()
        wait_for = await self._release_legacy(p, managed)
        answer: EndpointAnswer | None = None
        if key is not None and worker is not None:
            request = EndpointRequest(EndpointKind.RELEASE, p.me)
            if not worker.busy and worker.writes == writes:
                # As on apply: a resource that finds its endpoint kept by others, or already being deleted
                # (most of a mass deletion), decides from the shared read and asks nothing.
                alone = plan_endpoint_key(key, [request], managed, endpoint_users(p.users(), key))
                if not alone.writes:
                    answer = alone.results[0]
            if answer is None:
                answer = await aws_await(step, worker.ask(request, max_age=p.read_age, users=p.users))
            if answer.write is KeyAction.DELETE and answer.endpoint is not None:
                p.wrote(crash.ENDPOINT_DELETE)
                p.out.event("EndpointDeleting", f"deleting VPC endpoint {answer.endpoint.id}")
            if answer.outcome is EndpointOutcome.KEPT:
                p.out.event("EndpointKept", answer.message)
            elif answer.outcome is EndpointOutcome.WAIT and answer.endpoint is not None:
                wait_for.append(answer.endpoint)
        for endpoint in wait_for:
            # Whoever waits for a deletion sweeps what still points at the endpoint, on every pass until AWS
            # has deleted it (a process killed half way does it again).
            await _release_strays(p, endpoint)
        if wait_for:
            message = f"waiting for AWS to delete {', '.join(e.id for e in wait_for)}"
            p.out.steps.append(StepResult(step, False, Reason.DELETING, message))
            raise ReleasePending()
        # Organization entries of what we deleted (AWS forgets deleted endpoints; the status remembers).
        kept = answer is not None and answer.outcome is EndpointOutcome.KEPT
        if p.out.status.vpc_endpoint_owned and p.me.endpoint_id and not kept:
            await _remove_org_entries(p, [p.me.endpoint_id])

    async def _release_legacy(self, p: Pass, managed: list[ObservedEndpoint]) -> list[ObservedEndpoint]:
        """An endpoint made for this resource alone: deleted, and waited for (this resource's own, always)."""
        legacy = [e for e in _legacy(managed, p) if e.state != "deleted"]
        for endpoint in legacy:
            if endpoint.state != "deleting":
                await aws_await(
                    ConditionType.VPC_ENDPOINT_READY,
                    p.aws.delete_endpoint(p.res.spec.aws.vpc_id, endpoint.id),
                )
                p.wrote(crash.ENDPOINT_DELETE)
                p.out.event("EndpointDeleting", f"deleting VPC endpoint {endpoint.id}")
        return legacy


async def _release_strays(p: Pass, endpoint: ObservedEndpoint) -> None:
    """What still points at an endpoint of ours being deleted that no user tracks (a Retain's record and
    allow-list entry, its endpoint taken over since): removed with it (decisions/release.py).

    Done by whoever waits for the deletion (the leaving user the key's round keeps, or a legacy endpoint's
    resource), on every pass
    until AWS has deleted it, so a process killed half way does it again.
    """
    await _release_stray_records(p, endpoint)
    await _release_stray_entries(p, endpoint)


async def _release_stray_records(p: Pass, endpoint: ObservedEndpoint) -> None:
    """The records of this VPC's zones left pointing at ``endpoint`` that no user has: swept in the zone's
    round (a zone whose shared listing shows none asks nothing)."""
    step = ConditionType.DNS_READY
    target = endpoint.regional_dns
    if target is None:
        return
    users = p.users()
    zone_ids = {u.hosted_zone_id for u in [p.me, *users] if u.vpc_id == p.me.vpc_id and u.hosted_zone_id}
    for zone_id in sorted(zone_ids):
        named = await aws_await(step, p.aws.zone_names(zone_id, max_age=p.read_age))
        if named is None:
            continue  # the zone is gone, and its records with it
        records = {name: records_at(named[name], name)[0] for name in named}
        if not stray_records(users, p.cluster, p.me.vpc_id, zone_id, target, records):
            continue
        request = RecordRequest(p.me, "", target, users, sweep=True)
        result = await aws_await(
            step, p.zones.get(p.aws, zone_id, p.cluster).ask(request, max_age=p.read_age)
        )
        if result.outcome is RecordOutcome.REMOVED:
            p.wrote(crash.RECORD_CHANGE)
            p.out.event(
                "DnsRecordDeleted",
                f"deleted the record for {result.message}: it pointed at {endpoint.id}, which is being "
                "deleted, and no resource uses it",
            )


async def _release_stray_entries(p: Pass, endpoint: ObservedEndpoint) -> None:
    """The allow-list entries of ``endpoint`` (ours, being deleted) that no user has: swept in each service's
    round (a service whose shared list shows none asks nothing)."""
    step = ConditionType.ALLOW_LISTED
    try:
        api = await p.clickhouse()
    except StepFailed as failed:
        if failed.reason not in CREDENTIAL_REASONS:
            raise
        return  # without the key nothing can be read: the entry's own release has said what stays
    services = await clickhouse_call(step, api.services(max_age=p.read_age))
    listed = {s.id: s.private_endpoint_ids for s in services}
    for service_id in stray_entries(p.users(), endpoint.id, listed):
        # The entry's users as they are now (see the release), and no others: a request is held until its round.
        holders = allow_list_users(p.users(), service_id, endpoint.id)
        request = AllowRequest(AllowKind.SWEEP, p.me, endpoint.id, holders)
        try:
            result = await clickhouse_call(
                step, p.allow_lists.get(api, service_id).ask(request, max_age=p.read_age), write=True
            )
        except StepFailed as failed:
            if failed.upstream_status != 404:
                raise
            continue  # the service is gone, and its allow list with it
        if result.outcome is AllowOutcome.REMOVED:
            p.wrote(crash.ALLOW_LIST_PATCH)
            p.out.event(
                "AllowListRemoved",
                f"removed {endpoint.id} from service {service_id}: it is being deleted, and no resource uses "
                "it there",
            )


class ReleasePending(Exception):
    """Release cannot finish this pass (AWS is still deleting): look again soon."""


async def _gateway_for_release(p: Pass, reason: str, left: str) -> ClickHousePort | None:
    """The ClickHouse gateway, or None with a Warning naming what stays (``left``) when the key is gone.

    Cleanup goes on without the key (a namespace torn down Secret first): the AWS objects still go.
    """
    try:
        return await p.clickhouse()
    except StepFailed as failed:
        if failed.reason not in CREDENTIAL_REASONS:
            raise
        p.out.event(reason, f"{left}: {failed.message}", warning=True)
        return None


async def _remove_org_entries(p: Pass, endpoint_ids: list[str]) -> None:
    """Remove the organization's entries for endpoints we deleted, once no service lists them."""
    left = f"{', '.join(endpoint_ids)} may stay listed on the organization"
    api = await _gateway_for_release(p, "OrganizationEntryKept", left)
    if api is None:
        return
    try:
        gone = await api.remove_organization_entries(endpoint_ids, max_age=p.read_age)
    except Forbidden as exc:
        p.out.event(
            "OrganizationEntryKept",
            f"the API key may not edit the organization ({exc.message}): "
            f"{', '.join(endpoint_ids)} may stay listed there; an Admin key can remove it",
            warning=True,
        )
        return
    except ClickHouseApiError as exc:
        p.out.event("OrganizationEntryKept", f"could not remove the organization entry: {exc}", warning=True)
        return
    if gone:
        p.wrote(crash.ORGANIZATION_PATCH)
        p.out.event("OrganizationEntryRemoved", f"removed {', '.join(gone)} from the organization")


def _modification(endpoint_id: str, decision: EndpointDecision) -> str:
    parts = []
    for label, ids in (
        ("added subnets", decision.add_subnet_ids),
        ("removed subnets", decision.remove_subnet_ids),
        ("added security groups", decision.add_security_group_ids),
        ("removed security groups", decision.remove_security_group_ids),
    ):
        if ids:
            parts.append(f"{label} {', '.join(ids)}")
    return f"endpoint {endpoint_id}: " + "; ".join(parts)


# ---------------------------------------------------------------------------------------------------- DNS


async def _check_named_zone(p: Pass, zone_id: str, hostname: str) -> ZoneResult:
    """The zone named in dns.hostedZoneId must be able to serve the resource: it exists, holds the hostname,
    is private and is associated with the resource's VPC; else a terminal reason (HostedZoneNotFound)."""
    step = ConditionType.DNS_READY
    vpc_id = p.res.spec.aws.vpc_id
    zone = await aws_await(step, p.aws.zone(zone_id))
    if zone is None:
        raise StepFailed(step, Reason.HOSTED_ZONE_NOT_FOUND, f"hosted zone {zone_id} does not exist")
    if not zone_contains(zone.name, hostname):
        raise StepFailed(
            step,
            Reason.HOSTED_ZONE_NOT_FOUND,
            f"hosted zone {zone_id} ({zone.name}) cannot hold {hostname}",
        )
    # A public zone would publish the name; a zone of other VPCs does not resolve it in this one (and
    # may hold another tenant's record for it).
    if not zone.private:
        raise StepFailed(
            step,
            Reason.HOSTED_ZONE_NOT_FOUND,
            f"hosted zone {zone_id} ({zone.name}) is public: name a private zone associated with "
            f"VPC {vpc_id}, or leave dns.hostedZoneId unset",
        )
    if vpc_id not in zone.vpc_ids:
        raise StepFailed(
            step,
            Reason.HOSTED_ZONE_NOT_FOUND,
            f"hosted zone {zone_id} ({zone.name}) is not associated with VPC {vpc_id}: "
            "associate it with this VPC, or leave dns.hostedZoneId unset",
        )
    p.learn(hosted_zone_id=zone.id)
    p.out.status.hosted_zone_id = zone.id
    return ZoneResult(zone.id)


class NamedZoneComponent:
    """A zone named in dns.hostedZoneId, checked right after the service, before anything is made: a zone that
    cannot serve the resource's VPC is a terminal reason with no endpoint created for it (read only)."""

    async def apply(self, p: Pass, resolved: Resolved) -> ZoneResult | None:
        zone_id = p.res.spec.dns.hosted_zone_id
        if p.res.spec.dns.mode is DnsMode.NONE or resolved.service is None or zone_id is None:
            return None
        return await _check_named_zone(p, zone_id, resolved.service.config.private_dns_hostname)

    async def release(self, p: Pass) -> None:
        return None


class ZoneComponent:
    """The private zone of the VPC (``<region>.vpce.aws.clickhouse.cloud``), shared by its resources.

    Made and deleted only by the zone's worker (engine/zone_worker.py): before it exists, the creator of the
    VPC's zone name finds or makes it; once it does, the rounds of its ID delete it when their plan finds it
    unused and empty. A pass that finds the zone in the shared read, or sees another live user of it, or records
    left in its shared listing, asks nothing.
    """

    async def apply(self, p: Pass, resolved: Resolved) -> ZoneResult | None:
        if p.res.spec.dns.mode is DnsMode.NONE or resolved.service is None:
            p.out.status.hosted_zone_id = None
            return None
        step = ConditionType.DNS_READY
        hostname = resolved.service.config.private_dns_hostname
        aws_spec = p.res.spec.aws
        zone_id = p.res.spec.dns.hosted_zone_id
        if zone_id is not None:
            return None  # the user's zone, checked (and put in the status) by NamedZoneComponent
        name = zone_name_for(hostname)
        zone = await aws_await(
            step,
            p.aws.private_zone(name, vpc_id=aws_spec.vpc_id, vpc_region=aws_spec.region, max_age=p.read_age),
        )
        if zone is None:
            creator = p.zones.creator(
                p.aws, p.cluster, vpc_region=aws_spec.region, vpc_id=aws_spec.vpc_id, name=name
            )
            if not creator.running:
                # Intent first, from the pass that starts the round (one that waits for a running round writes
                # nothing): a process killed after the create leaves a status that names the service, whose
                # cleanup finds the zone by name and VPC (its tags say whose it is, or its comment before them).
                await p.before_write(step)
            found = await aws_await(step, creator.ask(p.wrote))  # (no await between the look and the ask)
            zone = found.zone
            if found.created:
                p.wrote(crash.ZONE_CREATE)
                p.out.event("HostedZoneCreated", f"created private zone {name} ({zone.id})")
                p.out.changes.append("zone_created")
        p.learn(hosted_zone_id=zone.id)
        p.out.status.hosted_zone_id = zone.id
        return ZoneResult(zone.id)

    async def release(self, p: Pass) -> None:
        step = ConditionType.DNS_READY
        zone_id = p.me.hosted_zone_id
        if not p.me.dns_route53 or not zone_id:
            return
        # Its users from any VPC (a zone named in dns.hostedZoneId may serve several): only a zone this
        # cluster made (its tags, read by the round) is ever deleted, whether found or named.
        if zone_in_use(p.me, p.zone_users()):
            return
        # The zone's shared listing (our own rounds' changes are in it; this pass's record release is done)
        # says whether records are left: the pass that lets go of the last one asks the round.
        sets = await aws_await(step, p.aws.zone_sets(zone_id, max_age=p.read_age))
        if sets is None or not only_soa_and_ns(sets):
            return
        # Its live users again, as they are now (no await before the request is queued): one that came during
        # the read keeps it; one that asks the zone's worker for a record before the round is in the round.
        if zone_in_use(p.me, p.zone_users()):
            return
        request = zone_release(p.me)
        result = await aws_await(
            step, p.zones.get(p.aws, zone_id, p.cluster).ask(request, max_age=p.read_age)
        )
        if result.outcome is RecordOutcome.REMOVED:
            p.wrote(crash.ZONE_DELETE)
            p.out.event("HostedZoneDeleted", result.message)


class RecordComponent:
    """The alias record of the service's private hostname, shared by resources for the same service.

    Written and let go of only by the zone's worker (engine/zone_worker.py): a pass asks it and reports the
    result. A pass whose record the zone's shared listing shows as it should be asks nothing.
    """

    async def apply(self, p: Pass, resolved: Resolved) -> None:
        step = ConditionType.DNS_READY
        assert resolved.service is not None and resolved.endpoint is not None
        hostname, endpoint = resolved.service.config.private_dns_hostname, resolved.endpoint.observed
        if p.res.spec.dns.mode is DnsMode.NONE:
            message = f"dns.mode is None: point {hostname} at {endpoint.id} yourself"
            p.out.steps.append(StepResult(step, True, Reason.DNS_DISABLED, message))
            return
        target = endpoint.regional_dns
        if target is None:
            message = f"endpoint {endpoint.id} has no DNS name yet"
            p.out.steps.append(StepResult(step, False, Reason.WAITING_FOR_ENDPOINT, message))
            return
        assert resolved.zone is not None
        zone_id = resolved.zone.zone_id
        observed, _ = await aws_await(step, p.aws.records(zone_id, hostname, max_age=p.read_age))
        decision = plan_record(p.cluster, p.res.spec.aws.vpc_id, hostname, target, observed)
        if decision.action is RecordAction.CONFLICT:
            raise StepFailed(step, decision.reason, decision.message)
        if decision.action is RecordAction.WRITE:
            await p.before_write(step)
            request = RecordRequest(p.me, hostname, target)
            worker = p.zones.get(p.aws, zone_id, p.cluster)
            result = await aws_await(step, worker.ask(request, max_age=p.read_age))
            if result.outcome is RecordOutcome.CONFLICT:
                raise StepFailed(step, result.reason, result.message)
            if result.outcome is RecordOutcome.WRITTEN:
                p.wrote(crash.RECORD_CHANGE)
                p.out.event("DnsRecordWritten", f"{hostname} now points to endpoint {endpoint.id}")
                p.out.changes.append("dns_record_written")
        message = f"{hostname} resolves to endpoint {endpoint.id}"
        p.out.steps.append(StepResult(step, True, Reason.RECORD_WRITTEN, message))

    async def release(self, p: Pass) -> None:
        step = ConditionType.DNS_READY
        hostname, zone_id = p.me.hostname, p.me.hosted_zone_id
        if not p.me.dns_route53 or not hostname or not zone_id:
            return
        # A record serves one VPC (its marker names it), so its users are all in this VPC's view; other
        # VPCs' resources naming the zone (the zone index) neither hold nor release it.
        held = record_holders(p.me, p.users())  # (no list of every user kept while the pass waits below)
        if held is not None:
            p.out.event("DnsRecordKept", held.why)
            return
        # One listing of the zone, shared by every resource released in the same window: a record that is not
        # ours, or nothing, asks the worker nothing.
        if await aws_await(step, p.aws.zone_sets(zone_id, max_age=p.read_age)) is None:
            return  # the zone is gone, and the record with it
        observed, _ = await aws_await(step, p.aws.records(zone_id, hostname, max_age=p.read_age))
        release = plan_record_release(p.me, p.cluster, observed)
        if release.remove:
            worker = p.zones.get(p.aws, zone_id, p.cluster)
            # The record's users as they are now (no await before the request is queued: one that claims the
            # record later asks the same rounds), and no others (a thousand deletions wait in rounds).
            holders = record_users(p.users(), zone_id, hostname, p.me.vpc_id)
            request = RecordRequest(p.me, hostname, None, holders)
            result = await aws_await(step, worker.ask(request, max_age=p.read_age))
            if result.outcome is RecordOutcome.REMOVED:
                p.wrote(crash.RECORD_CHANGE)
                p.out.event("DnsRecordDeleted", f"deleted the record for {hostname}")
            elif result.outcome in (RecordOutcome.HELD, RecordOutcome.LEFT):
                p.out.event("DnsRecordKept", result.message)
        elif release.why:
            p.out.event("DnsRecordKept", release.why)


# --------------------------------------------------------------------------------------------- allow list


class AllowListComponent:
    """The endpoint's entry on the service's allow list (privateEndpointIds), shared by its users.

    Added and let go of only by the service's worker (engine/allow_list_worker.py): a pass asks it and reports
    the result. A pass whose entry the shared list of services shows as it should be, with no request for the
    entry at the worker, asks nothing.
    """

    async def apply(self, p: Pass, resolved: Resolved) -> None:
        step = ConditionType.ALLOW_LISTED
        assert resolved.service is not None and resolved.endpoint is not None
        service, endpoint = resolved.service.service, resolved.endpoint.observed
        # The entry of an endpoint this replaced goes first: by the time the new entry shows, the old is gone.
        await self._retire_replaced(p, service, endpoint)
        api = await p.clickhouse()
        worker = p.allow_lists.get(api, service.id)
        # The list as kept (never older than the one this pass resolved the service from, and our own rounds'
        # writes are in it): an entry a round removed since shows as missing.
        kept = await clickhouse_call(step, api.service(service.id, max_age=math.inf))
        listed = endpoint.id in kept.private_endpoint_ids
        # Whether the entry is ours to remove one day: the entry of an endpoint this cluster made is ours
        # (it dies with the endpoint), whoever added it; for an adopted endpoint, only one we add now or
        # (for this resource or another user of it) added before; someone else's is never removed.
        sharing = allow_list_users(p.users(), service.id, endpoint.id)
        # (A status from before this field, with an endpoint already, was made by an operator that always
        # added the entry itself.)
        recorded = p.recorded
        earlier = recorded.allow_list_entry_added
        if earlier is None:
            earlier = recorded.vpc_endpoint_id is not None
        adopted = bool(p.res.spec.aws.vpc_endpoint_id)
        added = (
            not listed
            or not adopted
            or bool(earlier)
            or p.me.allow_list_added
            or any(u.allow_list_added for u in sharing if u.uid != p.me.uid)
        )
        p.out.status.allow_list_entry_added = added
        p.learn(allow_list_added=added)
        if not listed or worker.pending(endpoint.id):
            # The entry of an endpoint this cluster made is ours by that alone; only an adopted one's
            # needs its flag on the resource before the PATCH.
            await p.before_write(step, also=("allow_list_entry_added",) if adopted else ())
            request = AllowRequest(AllowKind.ADD, p.me, endpoint.id)
            result = await clickhouse_call(step, worker.ask(request, max_age=p.read_age), write=True)
            if result.outcome is AllowOutcome.ADDED:
                if not added:  # listed when looked at, removed by the round before: added by us now
                    p.out.status.allow_list_entry_added = True
                    p.learn(allow_list_added=True)
                p.wrote(crash.ALLOW_LIST_PATCH)
                p.out.event("AllowListed", f"added {endpoint.id} to the allow list of {service.name}")
                p.out.changes.append("allow_listed")
        message = f"{endpoint.id} is on the allow list of {service.name}"
        p.out.steps.append(StepResult(step, True, Reason.ALLOW_LISTED, message))

    async def _retire_replaced(self, p: Pass, service: Service, endpoint: ObservedEndpoint) -> None:
        """An endpoint of ours that is gone (deleted out of band, replaced): its entries go too.

        Only an endpoint AWS no longer has, and only one the operator made: an adopted one is never touched.
        """
        previous = p.recorded.vpc_endpoint_id
        if (
            not previous
            or previous == endpoint.id
            or not p.recorded.vpc_endpoint_owned
            or previous not in service.private_endpoint_ids
            or any(e.id == previous and e.state in LIVE_ENDPOINT_STATES for e in await p.managed_endpoints())
        ):
            return
        api = await p.clickhouse()
        request = AllowRequest(AllowKind.RETIRE, p.me, previous)
        result = await clickhouse_call(
            ConditionType.ALLOW_LISTED,
            p.allow_lists.get(api, service.id).ask(request, max_age=p.read_age),
            write=True,
        )
        if result.outcome is not AllowOutcome.REMOVED:
            return
        p.wrote(crash.ALLOW_LIST_PATCH)
        p.out.event(
            "AllowListRemoved",
            f"removed {previous} (gone, replaced by {endpoint.id}) from {service.name}",
        )
        await _remove_org_entries(p, [previous])

    async def release(self, p: Pass) -> None:
        step = ConditionType.ALLOW_LISTED
        service_id, endpoint_id = p.me.service_id, p.me.endpoint_id
        if not service_id or not endpoint_id:
            return  # never resolved or never had an endpoint: nothing was allow-listed
        adopted = bool(p.res.spec.aws.vpc_endpoint_id)
        recorded = p.recorded.allow_list_entry_added
        # Decided first from what this pass sees (most of a mass deletion leaves the entry to others and asks
        # nothing); the worker's round decides again with every request of its round.
        release = plan_allow_list_release(p.me, p.users(), adopted=adopted, recorded=recorded)
        if not release.remove:
            p.out.event("AllowListKept", release.why)
            return
        left = f"{endpoint_id} is left on the allow list of service {service_id}"
        api = await _gateway_for_release(p, "AllowListEntryLeft", left)
        if api is None:
            return
        try:
            service = await clickhouse_call(step, api.service(service_id, max_age=p.read_age))
            worker = p.allow_lists.get(api, service.id)
            if endpoint_id not in service.private_endpoint_ids and not worker.pending(endpoint_id):
                return
            # The users as they are now, with no await before the request is queued: a resource that joins
            # later finds the request pending and asks for the entry itself (the round keeps it, or the next
            # round adds it back).
            # Only the entry's users go with it (a thousand deletions wait in rounds: not a thousand lists of
            # every user of the VPC).
            holders = allow_list_users(p.users(), service_id, endpoint_id)
            request = AllowRequest(AllowKind.RELEASE, p.me, endpoint_id, holders, adopted, recorded)
            result = await clickhouse_call(step, worker.ask(request, max_age=p.read_age), write=True)
        except StepFailed as failed:
            if failed.upstream_status == 404:
                return  # the service is gone, and its allow list with it
            raise
        if result.outcome is AllowOutcome.REMOVED:
            p.wrote(crash.ALLOW_LIST_PATCH)
            p.out.event("AllowListRemoved", f"removed {endpoint_id} from {service.name}")
        elif result.outcome is AllowOutcome.KEPT:
            p.out.event("AllowListKept", result.message)


class Together:
    """Components that need what came before them but not each other, applied and released side by side.

    The record waits for its zone's Route 53 batch and the allow-list entry for its turn at the ClickHouse
    rate limit: one after the other, a thousand passes leave the rate limit idle while a batch gathers, then
    queue their PATCHes all at once when it goes, ahead of other passes' reads (whose records then stop coming,
    and the next batch is sent early, split by the quiet gap). A failure of either is the pass's failure (the
    first, in order), once both have finished.

    Side by side is safe for a kill at any instant: the intent is durable before either write (Pass.before_write,
    taken in turns), and an entry of an endpoint this cluster made is its own whatever the status says (an
    adopted endpoint's entry has ``allowListEntryAdded`` written before its PATCH).
    """

    def __init__(self, *parts: Component) -> None:
        self.parts = parts

    async def apply(self, p: Pass, resolved: Resolved) -> None:
        """Every part, each handed what the components before them found (nothing is passed on after them)."""
        await _all(part.apply(p, resolved) for part in self.parts)

    async def release(self, p: Pass) -> None:
        await _all(part.release(p) for part in self.parts)


async def _all(calls: Iterable[Awaitable[object]]) -> None:
    """Await the calls side by side; once all have finished, raise the first failure (in order)."""
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


FORWARD: tuple[Component, ...] = (
    ServiceComponent(),
    NamedZoneComponent(),
    EndpointComponent(),
    SecurityGroupComponent(),
    ZoneComponent(),
    Together(RecordComponent(), AllowListComponent()),
)

__all__ = ["FORWARD", "Component", "ReleasePending"]
