"""One reconcile pass: observe AWS and ClickHouse, decide with plan.py, act through the adapters.

The reconciler knows nothing of kopf: it takes a typed resource and returns an ``Outcome`` (the status
to write, the Events to post, when to look again). handlers.py carries outcomes to Kubernetes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from clickhouse_privatelink.adapters.aws import route53, vpc_endpoints
from clickhouse_privatelink.adapters.aws.clients import AwsClients, classify
from clickhouse_privatelink.adapters.clickhouse.client import (
    ClickHouseApiError,
    ClickHouseCloudClient,
    Forbidden,
    NotFound,
    PrivateEndpointConfig,
    Service,
    Unauthorized,
)
from clickhouse_privatelink.adapters.kubernetes.secrets import ApiKey, CredentialsError, SecretReader
from clickhouse_privatelink.api.models import ClickHousePrivateLinkSpec, DeletionPolicy, DnsMode
from clickhouse_privatelink.decisions.ownership import (
    ResourceRef,
    client_token,
    is_managed,
    is_owned_by,
    ownership_tags,
    resource_tags,
)
from clickhouse_privatelink.decisions.plan import (
    DesiredEndpoint,
    EndpointAction,
    EndpointDecision,
    ObservedEndpoint,
    RecordAction,
    ServiceSummary,
    choose_service,
    connection_endpoints,
    org_entry_removable,
    pick_owned_endpoint,
    plan_allow_list,
    plan_endpoint,
    plan_record,
    service_readiness,
    zone_contains,
    zone_name_for,
)
from clickhouse_privatelink.decisions.reasons import (
    PROGRESSING_REASONS,
    TERMINAL_REASONS,
    ConditionType,
    Reason,
)
from clickhouse_privatelink.decisions.status import StepResult, summarise_ready
from clickhouse_privatelink.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass
class Outcome:
    """What a pass found and did: status fields, conditions, Events, and when to look again."""

    status: dict[str, Any] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    done: bool = False  # cleanup finished (deletion) / everything Ready (reconcile)
    changes: list[str] = field(default_factory=list)  # what this pass changed, for drift metrics

    def ready(self) -> StepResult:
        return summarise_ready(self.steps)


@dataclass(frozen=True)
class Resource:
    """The parts of a ClickHousePrivateLink a pass needs."""

    ref: ResourceRef
    spec: ClickHousePrivateLinkSpec
    generation: int
    status: Mapping[str, Any]


class StepFailed(Exception):
    """A step cannot go on this pass: why, and whether to look again soon or slowly."""

    def __init__(
        self,
        step: ConditionType,
        reason: Reason,
        message: str,
        *,
        retry_after: float | None = None,
        upstream_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.step = step
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        self.upstream_status = upstream_status


ClickHouseFactory = Callable[[str, ApiKey], ClickHouseCloudClient]
AwsFactory = Callable[[str, str | None], AwsClients]


class Reconciler:
    """Carries one resource toward its desired state, one idempotent pass at a time."""

    def __init__(
        self,
        settings: Settings,
        secrets: SecretReader,
        clickhouse: ClickHouseFactory,
        aws: AwsFactory,
    ) -> None:
        self.settings = settings
        self._secrets = secrets
        self._clickhouse = clickhouse
        self._aws = aws

    # ------------------------------------------------------------------------------------------ reconcile

    async def reconcile(self, res: Resource, *, attempt: int = 0) -> Outcome:
        """Observe, decide, act: make the endpoint, DNS record and allow-list entry exist."""
        out = Outcome(status=_carried_status(res.status))
        try:
            api = await self._client(res)
            service, config = await self._resolve(res, api, out)
            endpoint = await self._ensure_endpoint(res, service, config, out)
            await self._ensure_dns(res, config.private_dns_hostname, endpoint, out)
            await self._ensure_allow_list(res, api, service, endpoint, out)
        except StepFailed as failed:
            self._fail(out, failed, attempt)
        out.done = out.ready().ok
        if not out.done and out.requeue_after is None:
            out.requeue_after = self.settings.poll_interval  # e.g. an endpoint still pending or modifying
        return out

    async def _client(self, res: Resource) -> ClickHouseCloudClient:
        try:
            key = await self._secrets.api_key(res.ref.namespace, res.spec.clickhouse.credentials_secret_ref)
        except CredentialsError as exc:
            reason = Reason.CREDENTIALS_SECRET_NOT_FOUND if exc.missing else Reason.CREDENTIALS_INVALID
            raise StepFailed(ConditionType.SERVICE_RESOLVED, reason, str(exc)) from None
        return self._clickhouse(res.spec.clickhouse.api_url, key)

    async def _resolve(
        self, res: Resource, api: ClickHouseCloudClient, out: Outcome
    ) -> tuple[Service, PrivateEndpointConfig]:
        step = ConditionType.SERVICE_RESOLVED
        org = res.spec.clickhouse.organization_id
        service_id = res.spec.clickhouse.service_id
        if service_id is None:
            services = await _clickhouse_call(step, api.list_services(org))
            choice = choose_service(
                [ServiceSummary(s.id, s.name, s.provider, s.region, s.state) for s in services],
                service_name=res.spec.clickhouse.service_name or "",
            )
            if choice.service is None:
                raise StepFailed(step, choice.reason, choice.message)
            service_id = choice.service.id
        service = await _clickhouse_call(step, api.get_service(org, service_id))
        out.status["serviceId"] = service.id
        out.status["serviceRegion"] = service.region
        if service.provider != "aws":
            raise StepFailed(
                step, Reason.SERVICE_NOT_AWS, f"service {service.name!r} runs on {service.provider}, not aws"
            )
        config = await _clickhouse_call(
            step, api.get_private_endpoint_config(org, service.id), private_link=True
        )
        usable, reason, message = service_readiness(service.state, config_ready=config.ready)
        if not usable:
            raise StepFailed(step, reason, f"{service.name}: {message}")
        out.status["endpointServiceId"] = config.endpoint_service_id
        out.status["privateDnsHostname"] = config.private_dns_hostname
        out.status["endpoints"] = connection_endpoints(config.private_dns_hostname)
        out.steps.append(
            StepResult(
                step, True, Reason.RESOLVED, f"service {service.name} ({service.id}) is {service.state}"
            )
        )
        return service, config

    async def _ensure_endpoint(
        self, res: Resource, service: Service, config: PrivateEndpointConfig, out: Outcome
    ) -> ObservedEndpoint:
        step = ConditionType.VPC_ENDPOINT_READY
        aws_spec = res.spec.aws
        clients = self._aws(aws_spec.region, aws_spec.role_arn)
        desired = DesiredEndpoint(
            vpc_id=aws_spec.vpc_id,
            vpc_region=aws_spec.region,
            service_name=config.endpoint_service_id,
            service_region=service.region,
            subnet_ids=frozenset(aws_spec.subnet_ids),
            security_group_ids=frozenset(aws_spec.security_group_ids),
        )
        adopted = aws_spec.vpc_endpoint_id is not None
        if aws_spec.vpc_endpoint_id is not None:
            observed = await _aws_call(step, vpc_endpoints.get, clients.ec2, aws_spec.vpc_endpoint_id)
        else:
            observed = pick_owned_endpoint(await self._owned_endpoints(res, clients))
        decision = plan_endpoint(desired, observed, adopted=adopted)
        if decision.action is EndpointAction.FAIL:
            raise StepFailed(step, decision.reason, decision.message)
        if decision.action is EndpointAction.CREATE:
            observed = await _aws_call(
                step,
                vpc_endpoints.create,
                clients.ec2,
                desired,
                tags=resource_tags(res.ref, aws_spec.tags),
                client_token=client_token(res.ref, f"endpoint/{aws_spec.vpc_id}/{desired.service_name}"),
            )
            where = f" (cross-region to {desired.service_region})" if desired.cross_region else ""
            out.events.append(
                Event("Normal", "EndpointCreated", f"created VPC endpoint {observed.id}{where}")
            )
            out.changes.append("endpoint_created")
            decision = plan_endpoint(desired, observed, adopted=False)
        elif decision.action is EndpointAction.MODIFY:
            assert observed is not None
            await _aws_call(step, vpc_endpoints.modify, clients.ec2, observed.id, decision)
            out.events.append(Event("Normal", "EndpointModified", _modification(observed.id, decision)))
            out.changes.append("endpoint_modified")
            observed = await _aws_call(step, vpc_endpoints.get, clients.ec2, observed.id)
            if observed is None:
                raise StepFailed(
                    step, Reason.ENDPOINT_NOT_FOUND, "the endpoint vanished while being modified"
                )
            decision = plan_endpoint(desired, observed, adopted=False)
        assert observed is not None
        out.status["vpcEndpointId"] = observed.id
        out.status["vpcEndpointState"] = observed.state
        out.status["vpcEndpointOwned"] = not adopted
        if decision.action is EndpointAction.FAIL:
            raise StepFailed(step, decision.reason, decision.message)
        out.steps.append(
            StepResult(step, decision.action is EndpointAction.READY, decision.reason, decision.message)
        )
        return observed

    async def _owned_endpoints(self, res: Resource, clients: AwsClients) -> list[ObservedEndpoint]:
        """Endpoints tagged for this resource; the tag filter runs in AWS, the full ownership check here."""
        step = ConditionType.VPC_ENDPOINT_READY
        tagged = await _aws_call(
            step, vpc_endpoints.find_owned, clients.ec2, res.spec.aws.vpc_id, res.ref.uid
        )
        return [e for e in tagged if is_owned_by(e.tags, res.ref)]

    async def _ensure_dns(
        self, res: Resource, hostname: str, endpoint: ObservedEndpoint, out: Outcome
    ) -> None:
        step = ConditionType.DNS_READY
        if res.spec.dns.mode is DnsMode.NONE:
            out.status.pop("hostedZoneId", None)
            out.steps.append(
                StepResult(
                    step,
                    True,
                    Reason.DNS_DISABLED,
                    f"dns.mode is None: point {hostname} at {endpoint.id} yourself",
                )
            )
            return
        target = endpoint.regional_dns
        if target is None:
            out.steps.append(
                StepResult(
                    step, False, Reason.WAITING_FOR_ENDPOINT, f"endpoint {endpoint.id} has no DNS name yet"
                )
            )
            return
        aws_spec = res.spec.aws
        r53 = self._aws(aws_spec.region, aws_spec.role_arn).route53
        zone = await self._zone(res, hostname, out)
        observed, _ = await _aws_call(step, route53.read_records, r53, zone.id, hostname)
        decision = plan_record(res.ref, hostname, target, observed)
        if decision.action is RecordAction.CONFLICT:
            raise StepFailed(step, decision.reason, decision.message)
        if decision.action is RecordAction.WRITE:
            await _aws_call(step, route53.write_records, r53, zone.id, hostname, target, res.ref)
            out.events.append(
                Event("Normal", "DnsRecordWritten", f"{hostname} now points to endpoint {endpoint.id}")
            )
            out.changes.append("dns_record_written")
        out.steps.append(
            StepResult(step, True, Reason.RECORD_WRITTEN, f"{hostname} resolves to endpoint {endpoint.id}")
        )

    async def _zone(self, res: Resource, hostname: str, out: Outcome) -> route53.ObservedZone:
        step = ConditionType.DNS_READY
        aws_spec = res.spec.aws
        r53 = self._aws(aws_spec.region, aws_spec.role_arn).route53
        zone_id = res.spec.dns.hosted_zone_id
        if zone_id is not None:
            zone = await _aws_call(step, route53.get_zone, r53, zone_id)
            if zone is None:
                raise StepFailed(step, Reason.HOSTED_ZONE_NOT_FOUND, f"hosted zone {zone_id} does not exist")
            if not zone_contains(zone.name, hostname):
                raise StepFailed(
                    step,
                    Reason.HOSTED_ZONE_NOT_FOUND,
                    f"hosted zone {zone_id} ({zone.name}) cannot hold {hostname}",
                )
        else:
            name = zone_name_for(hostname)
            zone = await _aws_call(
                step, route53.find_private_zone, r53, name, vpc_id=aws_spec.vpc_id, vpc_region=aws_spec.region
            )
            if zone is None:
                zone = await _aws_call(
                    step,
                    route53.create_private_zone,
                    r53,
                    name,
                    vpc_id=aws_spec.vpc_id,
                    vpc_region=aws_spec.region,
                    tags=ownership_tags(res.ref),
                    caller_reference=client_token(res.ref, f"zone/{aws_spec.vpc_id}/{name}"),
                )
                out.events.append(
                    Event("Normal", "HostedZoneCreated", f"created private zone {name} ({zone.id})")
                )
                out.changes.append("zone_created")
        out.status["hostedZoneId"] = zone.id
        return zone

    async def _ensure_allow_list(
        self,
        res: Resource,
        api: ClickHouseCloudClient,
        service: Service,
        endpoint: ObservedEndpoint,
        out: Outcome,
    ) -> None:
        step = ConditionType.ALLOW_LISTED
        org = res.spec.clickhouse.organization_id
        change = plan_allow_list(service.private_endpoint_ids, endpoint.id, attach=True)
        if not change.empty:
            await _clickhouse_call(
                step, api.update_private_endpoint_ids(org, service.id, add=change.add), write=True
            )
            out.events.append(
                Event("Normal", "AllowListed", f"added {endpoint.id} to the allow list of {service.name}")
            )
            out.changes.append("allow_listed")
        out.steps.append(
            StepResult(
                step, True, Reason.ALLOW_LISTED, f"{endpoint.id} is on the allow list of {service.name}"
            )
        )

    # -------------------------------------------------------------------------------------------- cleanup

    async def cleanup(self, res: Resource, *, attempt: int = 0) -> Outcome:
        """Undo what the operator made, in reverse order; ``done`` once nothing of ours is left."""
        out = Outcome(status=_carried_status(res.status))
        if res.spec.deletion_policy is DeletionPolicy.RETAIN:
            kept = res.status.get("vpcEndpointId") or "no endpoint"
            out.events.append(
                Event(
                    "Normal",
                    "Retained",
                    f"deletionPolicy is Retain: left {kept}, its DNS record and allow-list entry",
                )
            )
            out.done = True
            return out
        try:
            aws_spec = res.spec.aws
            clients = self._aws(aws_spec.region, aws_spec.role_arn)
            step = ConditionType.VPC_ENDPOINT_READY
            tagged = await _aws_call(
                step, vpc_endpoints.find_owned, clients.ec2, aws_spec.vpc_id, res.ref.uid
            )
            # Endpoints ever created for this resource: tagged ones (AWS forgets deleted ones after a while)
            # and the one the status recorded as ours.
            owned_ids = {e.id for e in tagged}
            if res.status.get("vpcEndpointOwned") and res.status.get("vpcEndpointId"):
                owned_ids.add(str(res.status["vpcEndpointId"]))
            live = [e for e in tagged if e.state != "deleted"]
            endpoint_ids = sorted(
                owned_ids | ({aws_spec.vpc_endpoint_id} if aws_spec.vpc_endpoint_id else set())
            )
            api = await self._client(res) if endpoint_ids else None
            if api is not None:
                await self._detach(res, api, endpoint_ids, out)
            await self._remove_dns(res, out)
            remaining = await self._delete_endpoints(res, clients, live, out)
            if remaining:
                out.steps.append(
                    StepResult(
                        step, False, Reason.DELETING, f"waiting for AWS to delete {', '.join(remaining)}"
                    )
                )
                out.requeue_after = self.settings.poll_interval
                return out
            if api is not None and owned_ids:
                await self._remove_org_entries(res, api, sorted(owned_ids), out)
            if aws_spec.vpc_endpoint_id:
                kept = f"adopted endpoint {aws_spec.vpc_endpoint_id} is left in place"
                out.events.append(Event("Normal", "EndpointKept", kept))
        except StepFailed as failed:
            self._fail(out, failed, attempt)
            return out
        out.done = True
        return out

    async def _detach(
        self, res: Resource, api: ClickHouseCloudClient, endpoint_ids: list[str], out: Outcome
    ) -> None:
        step = ConditionType.ALLOW_LISTED
        org = res.spec.clickhouse.organization_id
        service_id = res.status.get("serviceId") or res.spec.clickhouse.service_id
        if not service_id:
            return  # never resolved: nothing was allow-listed
        try:
            service = await _clickhouse_call(step, api.get_service(org, service_id))
        except StepFailed as failed:
            if failed.upstream_status == 404:
                return  # the service is gone, and its allow list with it
            raise
        remove = tuple(
            i
            for i in endpoint_ids
            if not plan_allow_list(service.private_endpoint_ids, i, attach=False).empty
        )
        if remove:
            try:
                await _clickhouse_call(
                    step, api.update_private_endpoint_ids(org, service.id, remove=remove), write=True
                )
            except StepFailed as failed:
                if failed.upstream_status != 404:
                    raise
            out.events.append(
                Event("Normal", "AllowListRemoved", f"removed {', '.join(remove)} from {service.name}")
            )

    async def _remove_dns(self, res: Resource, out: Outcome) -> None:
        step = ConditionType.DNS_READY
        hostname = res.status.get("privateDnsHostname")
        zone_id = res.status.get("hostedZoneId") or res.spec.dns.hosted_zone_id
        if res.spec.dns.mode is DnsMode.NONE or not hostname or not zone_id:
            return
        aws_spec = res.spec.aws
        r53 = self._aws(aws_spec.region, aws_spec.role_arn).route53
        zone = await _aws_call(step, route53.get_zone, r53, zone_id, with_tags=True)
        if zone is None:
            return
        observed, sets = await _aws_call(step, route53.read_records, r53, zone.id, hostname)
        if observed.owner is not None and observed.owner.uid == res.ref.uid:
            ours = [rs for rs in sets if rs["Type"] in ("A", "TXT")]
            await _aws_call(step, route53.delete_records, r53, zone.id, ours)
            out.events.append(Event("Normal", "DnsRecordDeleted", f"deleted the record for {hostname}"))
        elif observed.alias is not None or observed.other_address:
            out.events.append(
                Event("Normal", "DnsRecordKept", f"the record for {hostname} is not ours: left in place")
            )
        # A zone the operator created is removed by whichever resource leaves it empty.
        if (
            res.spec.dns.hosted_zone_id is None
            and is_managed(zone.tags, res.ref.cluster)
            and await _aws_call(step, route53.delete_zone_if_empty, r53, zone.id)
        ):
            out.events.append(
                Event("Normal", "HostedZoneDeleted", f"deleted the empty private zone {zone.name}")
            )

    async def _delete_endpoints(
        self, res: Resource, clients: AwsClients, owned: list[ObservedEndpoint], out: Outcome
    ) -> list[str]:
        step = ConditionType.VPC_ENDPOINT_READY
        remaining = []
        for endpoint in owned:
            current = await _aws_call(step, vpc_endpoints.get, clients.ec2, endpoint.id)
            if current is None:
                continue
            if current.state != "deleting":
                await _aws_call(step, vpc_endpoints.delete, clients.ec2, endpoint.id)
                out.events.append(Event("Normal", "EndpointDeleting", f"deleting VPC endpoint {endpoint.id}"))
                current = await _aws_call(step, vpc_endpoints.get, clients.ec2, endpoint.id)
            if current is not None:
                remaining.append(endpoint.id)
        return remaining

    async def _remove_org_entries(
        self, res: Resource, api: ClickHouseCloudClient, endpoint_ids: list[str], out: Outcome
    ) -> None:
        step = ConditionType.ALLOW_LISTED
        org_id = res.spec.clickhouse.organization_id
        org = await _clickhouse_call(step, api.get_organization(org_id))
        services = await _clickhouse_call(step, api.list_services(org_id))
        used = [s.private_endpoint_ids for s in services]
        listed = [e.id for e in org.private_endpoints]
        gone = [
            e
            for e in org.private_endpoints
            if e.id in endpoint_ids and org_entry_removable(e.id, listed, used)
        ]
        if not gone:
            return
        try:
            await api.remove_organization_private_endpoints(org_id, gone)
        except Forbidden as exc:
            out.events.append(
                Event(
                    "Warning",
                    "OrganizationEntryKept",
                    f"the API key may not edit the organization ({exc.message}): "
                    f"{', '.join(e.id for e in gone)} stays listed there; an Admin key can remove it",
                )
            )
            return
        except ClickHouseApiError as exc:
            out.events.append(
                Event("Warning", "OrganizationEntryKept", f"could not remove the organization entry: {exc}")
            )
            return
        out.events.append(
            Event(
                "Normal",
                "OrganizationEntryRemoved",
                f"removed {', '.join(e.id for e in gone)} from the organization",
            )
        )

    # ------------------------------------------------------------------------------------------- failures

    def _fail(self, out: Outcome, failed: StepFailed, attempt: int) -> None:
        out.steps.append(StepResult(failed.step, False, failed.reason, failed.message))
        if failed.reason in TERMINAL_REASONS:
            out.requeue_after = self.settings.error_retry_interval
            out.events.append(Event("Warning", failed.reason.value, failed.message))
        elif failed.retry_after is not None:
            out.requeue_after = min(failed.retry_after, self.settings.max_backoff)
        elif failed.reason in (Reason.THROTTLED, Reason.UPSTREAM_UNAVAILABLE):
            out.requeue_after = self.settings.backoff(attempt)
        else:
            out.requeue_after = self.settings.poll_interval
        if failed.reason not in PROGRESSING_REASONS and failed.reason not in TERMINAL_REASONS:
            log.warning("unclassified failure reason %s", failed.reason)


# ----------------------------------------------------------------------------------------------- helpers


def _carried_status(status: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("serviceId", "serviceRegion", "endpointServiceId", "privateDnsHostname", "vpcEndpointId", "vpcEndpointState",
            "vpcEndpointOwned", "hostedZoneId", "endpoints")  # fmt: skip
    return {k: status[k] for k in keep if k in status}


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


async def _aws_call(step: ConditionType, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking boto3 adapter call off the event loop; turn AWS errors into a failed step."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except (ClientError, BotoCoreError) as exc:
        problem = classify(exc)
        raise StepFailed(step, problem.reason, f"AWS {problem.message}") from None


async def _clickhouse_call(
    step: ConditionType, call: Awaitable[T], *, private_link: bool = False, write: bool = False
) -> T:
    """Await a ClickHouse API call; turn its errors into a failed step with the upstream message."""
    try:
        return await call
    except Unauthorized as exc:
        raise StepFailed(
            step,
            Reason.UNAUTHORIZED,
            f"ClickHouse rejected the API key (401 {exc.message}): check keyId and keySecret",
        ) from None
    except Forbidden as exc:
        if private_link:
            raise StepFailed(
                step,
                Reason.PRIVATE_LINK_NOT_AVAILABLE,
                f"PrivateLink is not available to this service (403 {exc.message})",
            ) from None
        hint = ": writing needs an Admin key (a Developer key is read-only)" if write else ""
        raise StepFailed(
            step, Reason.FORBIDDEN, f"ClickHouse refused the request (403 {exc.message}){hint}"
        ) from None
    except NotFound as exc:
        raise StepFailed(
            step,
            Reason.SERVICE_NOT_FOUND,
            f"the service was not found (404 {exc.message})",
            upstream_status=404,
        ) from None
    except ClickHouseApiError as exc:
        if exc.retryable:
            reason = Reason.THROTTLED if exc.status == 429 else Reason.UPSTREAM_UNAVAILABLE
            raise StepFailed(step, reason, f"ClickHouse API: {exc}", retry_after=exc.retry_after) from None
        if private_link and 400 <= exc.status < 500:
            raise StepFailed(
                step,
                Reason.PRIVATE_LINK_NOT_AVAILABLE,
                f"PrivateLink is not available ({exc.status} {exc.message})",
            ) from None
        raise StepFailed(step, Reason.CLICKHOUSE_REQUEST_REJECTED, f"ClickHouse API: {exc}") from None


__all__ = ["Event", "Outcome", "Reconciler", "Resource", "StepFailed"]
