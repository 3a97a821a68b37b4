"""``clickhouse-privatelink-operator diagnose NAMESPACE/NAME``: the troubleshooting checklist of ClickHouse's
PrivateLink guide, for one resource, from wherever it is run.

It reads (never writes) the resource, its API key Secret, the service's ``privateEndpointIds`` and PrivateLink
configuration, the VPC endpoint, its security groups, the private zone and the record, then measures the
private hostname from this machine (DNS, TCP 8443 and 9440, TLS, ``GET /ping``) as the Reachable condition
does, and names the first thing to fix. Credentials as the operator finds them: $KUBECONFIG (or the pod's
service account), the AWS SDK's chain, the resource's own Secret; the CHPL_* settings apply (the ClickHouse
API URLs it may call, CHPL_REACHABILITY_TIMEOUT, and the test-only CHPL_TEST_* ones).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.adapters.aws import route53 as route53_api
from clickhouse_privatelink.adapters.aws import security_groups, vpc_endpoints
from clickhouse_privatelink.adapters.aws.clients import AwsClients, classify
from clickhouse_privatelink.adapters.clickhouse.client import (
    ClickHouseApiError,
    ClickHouseCloudClient,
    Service,
    rate_limiter,
)
from clickhouse_privatelink.adapters.kubernetes.api import (
    ConnectionHolder,
    KubernetesApiError,
    custom_object_path,
    get_json,
)
from clickhouse_privatelink.adapters.kubernetes.secrets import CredentialsError, SecretReader
from clickhouse_privatelink.adapters.network.probe import ProbeConfig, Prober
from clickhouse_privatelink.api.models import ClickHousePrivateLinkSpec, DnsMode
from clickhouse_privatelink.decisions import public_access
from clickhouse_privatelink.decisions.plan import zone_name_for
from clickhouse_privatelink.decisions.reachability import Context
from clickhouse_privatelink.decisions.reachability import classify as classify_reachability
from clickhouse_privatelink.decisions.reasons import Reason
from clickhouse_privatelink.decisions.security_groups import check_ports, port_check_result
from clickhouse_privatelink.decisions.tenancy import api_url_allowed
from clickhouse_privatelink.settings import Settings

Status = Literal["ok", "fail", "skip"]
T = TypeVar("T")


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    reason: str = ""


@dataclass
class Report:
    resource: str
    checks: list[Check] = field(default_factory=list)

    @property
    def first_to_fix(self) -> Check | None:
        return next((check for check in self.checks if check.status == "fail"), None)

    def add(self, name: str, status: Status, detail: str, reason: str = "") -> bool:
        self.checks.append(Check(name, status, detail, reason))
        return status != "fail"

    def to_json(self) -> str:
        first = self.first_to_fix
        body = {
            "resource": self.resource,
            "checks": [asdict(check) for check in self.checks],
            "firstToFix": asdict(first) if first else None,
        }
        return json.dumps(body, indent=2)

    def to_text(self) -> str:
        width = max((len(check.name) for check in self.checks), default=0)
        lines = [f"diagnose {self.resource}"]
        for check in self.checks:
            reason = f" [{check.reason}]" if check.reason else ""
            lines.append(f"  {check.status.upper():4}  {check.name:<{width}}  {check.detail}{reason}")
        first = self.first_to_fix
        lines.append(
            f"first thing to fix: {first.name}: {first.detail}"
            if first
            else "nothing to fix: every check passed"
        )
        return "\n".join(lines)


async def _aws(call: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(call, *args)


def _aws_problem(exc: Exception) -> str:
    return f"AWS {classify(exc).message}"


async def diagnose(namespace: str, name: str, settings: Settings, *, probe: bool = True) -> Report:
    """Run the checklist; stop at a check the next ones need (they could only repeat its failure)."""
    connection = ConnectionHolder()
    try:
        return await _diagnose(namespace, name, settings, connection, probe=probe)
    finally:
        await connection.aclose()


async def _diagnose(
    namespace: str, name: str, settings: Settings, connection: ConnectionHolder, *, probe: bool
) -> Report:
    report = Report(f"{namespace}/{name}")
    try:
        body = await get_json(
            custom_object_path(c.GROUP, c.VERSION, namespace, c.PLURAL, name), connection=connection
        )
    except KubernetesApiError as exc:
        report.add("resource", "fail", f"could not read it: {exc}")
        return report
    if body is None:
        report.add("resource", "fail", f"no {c.KIND} {name} in namespace {namespace}")
        return report
    try:
        spec = ClickHousePrivateLinkSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        report.add("resource", "fail", f"invalid spec: {exc.errors()[0]['msg']}", "InvalidSpec")
        return report
    status: dict[str, Any] = dict(body.get("status") or {})
    ready: dict[str, Any] = next((x for x in status.get("conditions", []) if x.get("type") == "Ready"), {})
    report.add(
        "resource",
        "ok",
        f"Ready={ready.get('status', 'unknown')} ({ready.get('reason', 'not reconciled yet')})",
    )
    if ready.get("reason") == "NotPermitted":
        # The tenancy policy refused it: nothing it names is read on its behalf, by the operator or here.
        report.add("tenancy policy", "fail", str(ready.get("message", "")), "NotPermitted")
        return report
    public: list[Check] = []
    await _checklist(report, namespace, spec, status, settings, connection, probe=probe, public=public)
    # Last: the public IP access list is no part of a private connection, so it is never the first thing
    # to fix while the connection fails (and it is said however far the checklist got).
    report.checks.extend(public)
    return report


async def _checklist(
    report: Report,
    namespace: str,
    spec: ClickHousePrivateLinkSpec,
    status: dict[str, Any],
    settings: Settings,
    connection: ConnectionHolder,
    *,
    probe: bool,
    public: list[Check],
) -> None:
    ch = spec.clickhouse
    # 1. ClickHouse: the service, its PrivateLink configuration and its allow list (the guide's endpoint filters).
    if not api_url_allowed(ch.api_url, settings.clickhouse_api_urls):
        report.add(
            "clickhouse service",
            "fail",
            f"apiUrl {ch.api_url} is not in CHPL_CLICKHOUSE_API_URLS",
            "ApiUrlNotAllowed",
        )
        return
    try:
        key = await SecretReader(connection).api_key(namespace, ch.credentials_secret_ref)
    except CredentialsError as exc:
        reason = "CredentialsSecretNotFound" if exc.missing else "CredentialsInvalid"
        report.add("clickhouse service", "fail", f"API key: {exc}", reason)
        return
    except KubernetesApiError as exc:
        report.add("clickhouse service", "fail", f"API key Secret not readable: {exc}")
        return
    limiter = rate_limiter(settings.clickhouse_rate_limit)
    async with ClickHouseCloudClient(
        ch.api_url, key.key_id, key.key_secret, limiter=limiter, timeout=15
    ) as api:
        try:
            service_id = ch.service_id or status.get("serviceId")
            if not service_id:
                named = [s for s in await api.list_services(ch.organization_id) if s.name == ch.service_name]
                if len(named) != 1:
                    report.add(
                        "clickhouse service", "fail", f"{len(named)} services named {ch.service_name!r}"
                    )
                    return
                service_id = named[0].id
            service = await api.get_service(ch.organization_id, service_id)
            config = await api.get_private_endpoint_config(ch.organization_id, service.id)
        except ClickHouseApiError as exc:
            report.add("clickhouse service", "fail", f"ClickHouse API: {exc}")
            return
    public.append(_public_access(spec, service))
    host = config.private_dns_hostname
    allowed = tuple(service.private_endpoint_ids)
    if not config.ready:
        report.add(
            "clickhouse service",
            "fail",
            f"{service.name} is {service.state}: no PrivateLink configuration yet",
        )
        return
    report.add(
        "clickhouse service",
        "ok",
        f"{service.name} ({service.id}) is {service.state}; privateDnsHostname {host}, endpointServiceId "
        f"{config.endpoint_service_id}",
    )
    # 2. The endpoint.
    endpoint_id = spec.aws.vpc_endpoint_id or status.get("vpcEndpointId")
    if not endpoint_id:
        report.add("endpoint", "fail", "the resource has no VPC endpoint yet: see its Ready condition")
        return
    aws = AwsClients(spec.aws.region, spec.aws.role_arn)
    try:
        endpoint = await _aws(vpc_endpoints.get, aws.ec2, endpoint_id)
    except (ClientError, BotoCoreError) as exc:
        report.add("endpoint", "fail", _aws_problem(exc))
        return
    if endpoint is None:
        report.add("endpoint", "fail", f"{endpoint_id} does not exist", "EndpointNotFound")
        return
    if endpoint.state != "available" or endpoint.service_name != config.endpoint_service_id:
        detail = f"{endpoint_id} is {endpoint.state}, to {endpoint.service_name}"
        report.add("endpoint", "fail", f"{detail} (the service's is {config.endpoint_service_id})")
        return
    report.add("endpoint", "ok", f"{endpoint_id} is available in {endpoint.vpc_id}")
    # 3. The allow list (the guide's "connection reset by peer").
    if endpoint_id in allowed:
        report.add("allow list", "ok", f"{endpoint_id} is in privateEndpointIds of {service.name}")
    else:
        listed = ", ".join(allowed) or "none"
        detail = (
            f"{endpoint_id} is not in privateEndpointIds of {service.name} (now: {listed}): add it; the operator "
            "does at its next pass, and its AllowListed condition says why it could not"
        )
        report.add("allow list", "fail", detail, "ConnectionReset")
    # 4. The security groups (the guide's "connection timed out").
    closed: tuple[int, ...] | None = None
    cidrs: tuple[str, ...] = ()
    try:
        ids = sorted(endpoint.security_group_ids)
        groups = await (
            _aws(security_groups.describe, aws.ec2, ids)
            if ids
            else _aws(security_groups.default_group, aws.ec2, endpoint.vpc_id)
        )
        check = check_ports(groups, await _aws(security_groups.vpc_cidrs, aws.ec2, endpoint.vpc_id))
    except (ClientError, BotoCoreError) as exc:
        report.add("security groups", "skip", f"not readable: {_aws_problem(exc)}")
    else:
        closed, cidrs = check.closed, check.vpc_cidrs
        result = port_check_result(check)
        report.add(
            "security groups",
            "ok" if result.ok else "fail",
            result.message,
            "" if result.ok else "ConnectTimeout",
        )
    # 5. The zone and the record (the guide's "host not found").
    await _dns(report, spec, status, aws, host, endpoint.regional_dns)
    # 6. From here: what a client meets.
    if not probe:
        report.add("reachability", "skip", "not measured (--no-probe)")
        return
    try:
        interfaces = await _aws(vpc_endpoints.interface_addresses, aws.ec2, endpoint_id)
    except (ClientError, BotoCoreError):
        interfaces = ()
    measured = await Prober(ProbeConfig.from_settings(settings)).measure(host)
    ctx = Context(
        endpoint_id=endpoint_id,
        interface_addresses=interfaces,
        service_name=service.name,
        dns_managed=spec.dns.mode is not DnsMode.NONE,
        closed_ports=closed,
        security_groups=tuple(sorted(endpoint.security_group_ids)),
        vpc_cidrs=cidrs,
        allow_list=allowed,
    )
    result = classify_reachability(measured, ctx)
    where = f" (measured from here: this must run in {spec.aws.vpc_id} to use its private zone)"
    report.add(
        "reachability",
        "ok" if result.ok else "fail",
        result.message + ("" if result.ok else where),
        result.reason.value,
    )


def _public_access(spec: ClickHousePrivateLinkSpec, service: Service) -> Check:
    """How the service's IP access list stands against spec.clickhouse.publicAccess (skip when Unchanged)."""
    raw = spec.clickhouse.public_access
    setting = public_access.setting_from_spec(raw.model_dump(mode="json") if raw is not None else None)
    live = public_access.entries_from(service.ip_access_list)
    met, detail = public_access.diagnosis(setting, live, service.name)
    if met is None:
        return Check("public access", "skip", detail)
    reason = "" if met else Reason.PUBLIC_ACCESS_CHANGED_BY_OTHERS.value
    return Check("public access", "ok" if met else "fail", detail, reason)


async def _dns(
    report: Report,
    spec: ClickHousePrivateLinkSpec,
    status: dict[str, Any],
    aws: Any,
    host: str,
    target: tuple[str, str] | None,
) -> None:
    zone_id = spec.dns.hosted_zone_id or status.get("hostedZoneId")
    mode_none = spec.dns.mode is DnsMode.NONE
    try:
        if not zone_id:
            name, vpc, region = zone_name_for(host), spec.aws.vpc_id, spec.aws.region
            zone = await _aws(
                lambda: route53_api.find_private_zone(aws.route53, name, vpc_id=vpc, vpc_region=region)
            )
            zone_id = zone.id if zone is not None else None
        if not zone_id:
            yours = " (dns.mode is None: yours to create)" if mode_none else ""
            report.add(
                "dns zone",
                "fail",
                f"no private zone {zone_name_for(host)} associated with {spec.aws.vpc_id}{yours}",
                "DnsNotResolving",
            )
            return
        report.add("dns zone", "ok", f"{zone_id} holds {zone_name_for(host)}")
        observed, sets = await _aws(route53_api.read_records, aws.route53, zone_id, host)
    except (ClientError, BotoCoreError) as exc:
        report.add("dns zone", "skip", f"not readable: {_aws_problem(exc)}")
        return
    wanted = target[0].rstrip(".").lower() if target else ""
    if observed.alias is not None and observed.alias[0].rstrip(".").lower() == wanted:
        report.add("dns record", "ok", f"{host} is an alias of the endpoint's {target[0] if target else ''}")
    elif observed.alias is None and not observed.other_address:
        yours = " (dns.mode is None: yours to create)" if mode_none else ""
        report.add("dns record", "fail", f"no record for {host} in {zone_id}{yours}", "DnsNotResolving")
    else:
        types = ", ".join(sorted({rs["Type"] for rs in sets}))
        report.add(
            "dns record",
            "fail",
            f"{host} in {zone_id} ({types}) does not alias the endpoint's {wanted or 'DNS name'}",
            "DnsPointsElsewhere",
        )


def run(target: str, *, output: str, probe: bool) -> int:
    """The command: print the report; 0 when nothing is to fix, 1 when something is, 2 for a bad target."""
    namespace, sep, name = target.partition("/")
    if not sep or not namespace or not name:
        print("diagnose: give the resource as NAMESPACE/NAME")
        return 2
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"diagnose: {exc}")
        return 2
    report = asyncio.run(_with_timeout(diagnose(namespace, name, settings, probe=probe)))
    print(report.to_json() if output == "json" else report.to_text())
    return 0 if report.first_to_fix is None else 1


async def _with_timeout(work: Awaitable[Report]) -> Report:
    return await asyncio.wait_for(work, 120)
