"""What should exist, decided from what is observed: pure functions, no I/O.

Each ``plan_*`` function takes the desired state and an observation and returns a decision that the
reconciler carries out. Keeping them free of boto3, aiohttp and kopf lets the decision logic be tested
exhaustively and lets later features (shared endpoints, batching) reuse it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from clickhouse_privatelink.constants import CONNECTION_PORTS, CROSS_REGION_SUPPORTED
from clickhouse_privatelink.decisions.ownership import DnsOwner
from clickhouse_privatelink.decisions.reasons import Reason

# ---------------------------------------------------------------------------------------------- service


@dataclass(frozen=True)
class ServiceSummary:
    id: str
    name: str
    provider: str
    region: str
    state: str


@dataclass(frozen=True)
class ServiceChoice:
    service: ServiceSummary | None
    reason: Reason
    message: str


def choose_service(services: Sequence[ServiceSummary], *, service_name: str) -> ServiceChoice:
    """Pick the one AWS service named ``service_name``; fail clearly on none or several."""
    named = [s for s in services if s.name == service_name]
    aws = [s for s in named if s.provider == "aws"]
    if len(aws) == 1:
        return ServiceChoice(aws[0], Reason.RESOLVED, f"service {service_name!r} is {aws[0].id}")
    if len(aws) > 1:
        ids = ", ".join(sorted(s.id for s in aws))
        return ServiceChoice(
            None,
            Reason.SERVICE_AMBIGUOUS,
            f"{len(aws)} AWS services are named {service_name!r} ({ids}): set serviceId",
        )
    if named:
        providers = ", ".join(sorted({s.provider for s in named}))
        return ServiceChoice(
            None,
            Reason.SERVICE_NOT_AWS,
            f"service {service_name!r} runs on {providers}, not aws: PrivateLink needs AWS",
        )
    return ServiceChoice(
        None, Reason.SERVICE_NOT_FOUND, f"no service named {service_name!r} in the organization"
    )


# Service states in which the PrivateLink configuration may still be settling: wait, do not fail.
SERVICE_WAIT_STATES = frozenset({"provisioning", "starting", "awaking", "partially_running"})
# States from which the service will not come back by itself.
SERVICE_DEAD_STATES = frozenset({"terminating", "terminated", "softdeleting", "softdeleted", "failed"})


def service_readiness(state: str, *, config_ready: bool) -> tuple[bool, Reason, str]:
    """Whether the service can be connected now; if not, why (waiting or terminal)."""
    if state in SERVICE_DEAD_STATES:
        return False, Reason.SERVICE_UNUSABLE, f"service is {state}: it cannot be connected"
    if not config_ready:
        if state in SERVICE_WAIT_STATES:
            return (
                False,
                Reason.SERVICE_PROVISIONING,
                f"service is {state}: waiting for its PrivateLink configuration",
            )
        return (
            False,
            Reason.SERVICE_PROVISIONING,
            f"service is {state} and has no PrivateLink configuration yet: waiting",
        )
    return True, Reason.RESOLVED, f"service is {state}"


# --------------------------------------------------------------------------------------------- endpoint


@dataclass(frozen=True)
class DesiredEndpoint:
    vpc_id: str
    vpc_region: str
    service_name: str  # the ClickHouse service's endpointServiceId
    service_region: str  # the ClickHouse service's region
    subnet_ids: frozenset[str]
    security_group_ids: frozenset[str]

    @property
    def cross_region(self) -> bool:
        return self.service_region != self.vpc_region


@dataclass(frozen=True)
class ObservedEndpoint:
    id: str
    vpc_id: str
    service_name: str
    state: str
    subnet_ids: frozenset[str]
    security_group_ids: frozenset[str]
    dns_entries: tuple[tuple[str, str], ...] = ()  # (DnsName, HostedZoneId), regional first
    tags: dict[str, str] = field(default_factory=dict)
    service_region: str | None = None

    @property
    def regional_dns(self) -> tuple[str, str] | None:
        return self.dns_entries[0] if self.dns_entries else None


class EndpointAction(StrEnum):
    CREATE = "Create"
    MODIFY = "Modify"
    WAIT = "Wait"
    READY = "Ready"
    FAIL = "Fail"


@dataclass(frozen=True)
class EndpointDecision:
    action: EndpointAction
    reason: Reason
    message: str
    add_subnet_ids: tuple[str, ...] = ()
    remove_subnet_ids: tuple[str, ...] = ()
    add_security_group_ids: tuple[str, ...] = ()
    remove_security_group_ids: tuple[str, ...] = ()


_STATE_DECISIONS: dict[str, tuple[EndpointAction, Reason, str]] = {
    "available": (EndpointAction.READY, Reason.AVAILABLE, "endpoint {id} is available"),
    "pending": (
        EndpointAction.WAIT,
        Reason.ENDPOINT_PENDING,
        "endpoint {id} is pending: AWS is provisioning it",
    ),
    "pendingAcceptance": (
        EndpointAction.WAIT,
        Reason.ENDPOINT_PENDING_ACCEPTANCE,
        "endpoint {id} waits for the endpoint service to accept the connection",
    ),
    "partial": (EndpointAction.WAIT, Reason.ENDPOINT_PENDING, "endpoint {id} is partially available"),
    "rejected": (
        EndpointAction.FAIL,
        Reason.ENDPOINT_REJECTED,
        "endpoint {id} was rejected by the ClickHouse endpoint service: check the service's region and plan",
    ),
    "failed": (EndpointAction.FAIL, Reason.ENDPOINT_FAILED, "endpoint {id} failed: AWS could not create it"),
    "expired": (EndpointAction.FAIL, Reason.ENDPOINT_FAILED, "endpoint {id} expired before it was accepted"),
    "deleting": (EndpointAction.WAIT, Reason.ENDPOINT_PENDING, "endpoint {id} is being deleted"),
    "deleted": (EndpointAction.FAIL, Reason.ENDPOINT_NOT_FOUND, "endpoint {id} was deleted"),
}

# States AWS moves an endpoint out of by itself, soon: a read showing one is old after a second or so.
CHANGING_ENDPOINT_STATES = frozenset({"pendingAcceptance", "pending", "partial", "deleting"})

LIVE_ENDPOINT_STATES = frozenset(
    {"pendingAcceptance", "pending", "available", "partial", "rejected", "failed"}
)


def check_cross_region(desired: DesiredEndpoint) -> EndpointDecision | None:
    """A failure decision when cross-region PrivateLink is needed from a region that does not support it."""
    if desired.cross_region and desired.vpc_region not in CROSS_REGION_SUPPORTED:
        return EndpointDecision(
            EndpointAction.FAIL,
            Reason.CROSS_REGION_NOT_SUPPORTED,
            f"the service is in {desired.service_region} but the VPC is in {desired.vpc_region}, which ClickHouse "
            "does not support for cross-region PrivateLink: use a VPC in a supported region or contact support",
        )
    return None


def plan_endpoint(
    desired: DesiredEndpoint, observed: ObservedEndpoint | None, *, adopted: bool
) -> EndpointDecision:
    """Decide what to do with the VPC endpoint: create, modify, wait, accept or fail."""
    if observed is None:
        if adopted:
            return EndpointDecision(
                EndpointAction.FAIL, Reason.ENDPOINT_NOT_FOUND, "the adopted VPC endpoint does not exist"
            )
        return check_cross_region(desired) or EndpointDecision(
            EndpointAction.CREATE, Reason.RECONCILING, f"creating an endpoint to {desired.service_name}"
        )
    if observed.vpc_id != desired.vpc_id:
        return EndpointDecision(
            EndpointAction.FAIL,
            Reason.ENDPOINT_MISMATCH,
            f"endpoint {observed.id} is in {observed.vpc_id}, not in {desired.vpc_id}",
        )
    if observed.service_name != desired.service_name:
        return EndpointDecision(
            EndpointAction.FAIL,
            Reason.ENDPOINT_MISMATCH,
            f"endpoint {observed.id} connects to {observed.service_name}, but the ClickHouse service "
            f"needs {desired.service_name}",
        )
    action, reason, template = _STATE_DECISIONS.get(
        observed.state, (EndpointAction.WAIT, Reason.ENDPOINT_PENDING, "endpoint {id} is " + observed.state)
    )
    if action is EndpointAction.READY and not adopted:
        add_subnets = tuple(sorted(desired.subnet_ids - observed.subnet_ids))
        remove_subnets = tuple(sorted(observed.subnet_ids - desired.subnet_ids))
        add_sgs = tuple(sorted(desired.security_group_ids - observed.security_group_ids))
        # An empty securityGroupIds means "the VPC's default group", which AWS attaches itself: keep it.
        remove_sgs = (
            tuple(sorted(observed.security_group_ids - desired.security_group_ids))
            if desired.security_group_ids
            else ()
        )
        if add_subnets or remove_subnets or add_sgs or remove_sgs:
            return EndpointDecision(
                EndpointAction.MODIFY,
                Reason.RECONCILING,
                f"updating subnets and security groups of endpoint {observed.id}",
                add_subnet_ids=add_subnets,
                remove_subnet_ids=remove_subnets,
                add_security_group_ids=add_sgs,
                remove_security_group_ids=remove_sgs,
            )
    return EndpointDecision(action, reason, template.format(id=observed.id))


def pick_owned_endpoint(candidates: Sequence[ObservedEndpoint]) -> ObservedEndpoint | None:
    """The live endpoint among those tagged as ours (oldest first: a duplicate is never preferred)."""
    live = [e for e in candidates if e.state in LIVE_ENDPOINT_STATES]
    return live[0] if live else None


# --------------------------------------------------------------------------------------------------- DNS


def zone_name_for(hostname: str) -> str:
    """The private zone that holds ``hostname``: ``<region>.vpce.aws.clickhouse.cloud``."""
    return hostname.split(".", 1)[1].rstrip(".")


def zone_contains(zone_name: str, hostname: str) -> bool:
    zone = zone_name.rstrip(".").lower()
    host = hostname.rstrip(".").lower()
    return host == zone or host.endswith("." + zone)


@dataclass(frozen=True)
class ObservedRecords:
    """The record sets at the private hostname."""

    alias: tuple[str, str] | None = None  # A alias target (DNSName, HostedZoneId)
    other_address: bool = False  # an A without alias, an AAAA or a CNAME: written by someone else
    owner: DnsOwner | None = None  # the operator's TXT ownership marker
    foreign_txt: bool = False  # a TXT record without our marker


class RecordAction(StrEnum):
    WRITE = "Write"
    KEEP = "Keep"
    CONFLICT = "Conflict"


@dataclass(frozen=True)
class RecordDecision:
    action: RecordAction
    reason: Reason
    message: str


def same_target(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Whether two alias targets (DNSName, HostedZoneId) are the same, as Route 53 compares names."""
    return a[0].rstrip(".").lower() == b[0].rstrip(".").lower() and a[1] == b[1]


def plan_record(
    cluster: str, vpc_id: str, hostname: str, target: tuple[str, str], observed: ObservedRecords
) -> RecordDecision:
    """Decide whether to write the alias record; never overwrite a record someone else wrote.

    A record is ours only when its marker names this cluster **and** this resource's VPC (every resource of
    the VPC for the same service shares it); a record of another VPC, even of this cluster, is a conflict,
    reported and left alone (two VPCs rewriting one name would flip it between their endpoints). A marker
    of the per-resource format that came before (no VPC) is ours only while it points at our endpoint.
    """
    owner = observed.owner
    if observed.other_address or observed.foreign_txt or (observed.alias is not None and owner is None):
        return RecordDecision(
            RecordAction.CONFLICT,
            Reason.DNS_RECORD_CONFLICT,
            f"{hostname} already has a record the operator did not write: remove it or set dns.mode None",
        )
    if owner is not None and owner.cluster != cluster:
        return RecordDecision(
            RecordAction.CONFLICT,
            Reason.DNS_RECORD_CONFLICT,
            f"{hostname} is managed by the operator of cluster {owner.cluster}: "
            "give each cluster its own CHPL_CLUSTER_NAME and VPC, or set dns.mode None",
        )
    same = observed.alias is not None and same_target(observed.alias, target)
    if owner is not None and owner.vpc and owner.vpc != vpc_id:
        return RecordDecision(
            RecordAction.CONFLICT,
            Reason.DNS_RECORD_CONFLICT,
            f"{hostname} in this zone is the record of VPC {owner.vpc}, not of {vpc_id}: a record serves one "
            "VPC's endpoint; use a private zone of this VPC (leave dns.hostedZoneId unset) or set dns.mode None",
        )
    if owner is not None and not owner.vpc and not same:
        return RecordDecision(
            RecordAction.CONFLICT,
            Reason.DNS_RECORD_CONFLICT,
            f"{hostname} was marked by an earlier operator version for {owner.resource or 'another resource'} "
            "and points at another endpoint: remove it or set dns.mode None",
        )
    if same and owner is not None:
        if not owner.vpc:  # a per-resource marker from before records were shared: rewrite it as shared
            return RecordDecision(RecordAction.WRITE, Reason.RECONCILING, f"re-marking {hostname} as shared")
        return RecordDecision(RecordAction.KEEP, Reason.RECORD_WRITTEN, f"{hostname} points to {target[0]}")
    return RecordDecision(RecordAction.WRITE, Reason.RECONCILING, f"pointing {hostname} to {target[0]}")


# -------------------------------------------------------------------------------------------- allow list


def org_entry_removable(
    endpoint_id: str, org_endpoint_ids: Sequence[str], services_ids: Sequence[Sequence[str]]
) -> bool:
    """Whether the organization's entry for the endpoint can go: listed there, and no service uses it."""
    return endpoint_id in org_endpoint_ids and not any(endpoint_id in ids for ids in services_ids)


# -------------------------------------------------------------------------------------------- connection


def connection_endpoints(hostname: str) -> list[dict[str, object]]:
    """The client endpoints on the private hostname (https, native TLS, MySQL)."""
    return [{"protocol": proto, "host": hostname, "port": port} for proto, port in CONNECTION_PORTS.items()]
