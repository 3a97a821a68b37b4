"""Can a client in the VPC connect? What the operator measured from its pod, classified as ClickHouse's guide does.

ClickHouse's PrivateLink guide ends with the cases where everything exists and nothing works: a connection
that *times out* (security groups), a *host not found* (DNS), a *connection reset by peer* (the endpoint ID
is not on the service's allow list: read ``privateEndpointIds``). The probe (adapters/network/probe.py)
resolves the private hostname through the pod's resolver, opens TCP to 8443 and 9440, completes a TLS
handshake with the hostname as SNI and asks ``GET /ping`` on 8443; this module turns what it saw into the
``Reachable`` condition, the first failure in the order a connection meets them:

1. the name does not resolve (``DnsNotResolving``) or resolves to addresses that are not the endpoint's
   network interfaces (``DnsPointsElsewhere``);
2. a port times out (``ConnectTimeout``: naming the inbound rule the security-group check finds missing), is
   refused (``ConnectionRefused``) or is reset (``ConnectionReset``: with what ``privateEndpointIds`` says now);
3. the TLS handshake fails (``TlsFailed``), or ``/ping`` does not answer ``Ok.`` (``PingFailed``).

Where the operator is not in the resource's VPC nothing is measured: ``Reachable`` is Unknown and says how
that was found (``OperatorOutsideVpc``, ``OperatorVpcUnknown``, ``ReachabilityCheckOff``). Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from clickhouse_privatelink.decisions.status import StepResult

# HTTPS (where /ping answers) and the native protocol over TLS: the two ports clients use over PrivateLink.
PROBED_PORTS: Final = (8443, 9440)
PING_PORT: Final = 8443
PING_ANSWER: Final = "Ok."
_GUIDE: Final = "https://clickhouse.com/docs/manage/security/aws-privatelink#troubleshooting"


class DnsOutcome(StrEnum):
    OK = "ok"
    NXDOMAIN = "nxdomain"  # the name does not exist
    NO_ANSWER = "no-answer"  # it exists, without an A record
    NO_REPLY = "no-reply"  # the resolver did not answer in time (or refused)


class PortOutcome(StrEnum):
    OK = "ok"
    TIMEOUT = "timeout"  # no answer to the SYN: dropped on the way (security groups, NACLs)
    REFUSED = "refused"
    RESET = "reset"  # connected, then reset by the peer (during the TLS handshake or after)
    TLS = "tls"  # the handshake failed (certificate, protocol) or timed out
    PING = "ping"  # TLS is up, /ping did not answer Ok.


@dataclass(frozen=True)
class DnsAnswer:
    outcome: DnsOutcome
    addresses: tuple[str, ...] = ()
    resolver: str = ""  # whom the pod asked, e.g. "10.100.0.10"
    detail: str = ""


@dataclass(frozen=True)
class PortProbe:
    address: str
    port: int
    outcome: PortOutcome
    detail: str = ""


@dataclass(frozen=True)
class ProbeReport:
    """What one measurement saw: the name's answer and, when it resolved, each address and port."""

    hostname: str
    dns: DnsAnswer
    ports: tuple[PortProbe, ...] = ()


@dataclass(frozen=True)
class Context:
    """What the operator knows beside the measurement, to name the thing to fix."""

    endpoint_id: str
    interface_addresses: tuple[str, ...]  # the endpoint's network interfaces; () when unknown
    service_name: str = ""
    dns_managed: bool = True  # dns.mode Route53 (False: the user keeps the record)
    closed_ports: tuple[int, ...] | None = None  # from the security-group check; None when it could not tell
    security_groups: tuple[str, ...] = ()
    vpc_cidrs: tuple[str, ...] = ()
    # privateEndpointIds re-read after a reset: None when not read (or unreadable).
    allow_list: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Placement:
    """Where the operator runs: its VPC (None when unknown) and how that was found out."""

    vpc_id: str | None
    how: str  # e.g. "CHPL_OPERATOR_VPC_ID", "the instance metadata service", or why it is unknown
    enabled: bool = True


def skip_result(placement: Placement, resource_vpc: str) -> StepResult | None:
    """Reachable when the operator cannot measure it for a resource in ``resource_vpc``; None: measure it.

    Stable for a stable placement (the steady state writes nothing) and costs no call.
    """
    step = ConditionType.REACHABLE
    later = "run `clickhouse-privatelink-operator diagnose` from inside the VPC to check it"
    if not placement.enabled:
        message = f"the reachability check is off (CHPL_REACHABILITY=off); {later}"
        return StepResult(step, False, Reason.REACHABILITY_CHECK_OFF, message, unknown=True)
    if placement.vpc_id is None:
        message = (
            f"not measured: the operator's VPC is unknown ({placement.how}); set CHPL_OPERATOR_VPC_ID "
            f"(the chart's extraEnv) when it runs in {resource_vpc}, or {later}"
        )
        return StepResult(step, False, Reason.OPERATOR_VPC_UNKNOWN, message, unknown=True)
    if placement.vpc_id != resource_vpc:
        message = (
            f"not measured: the operator runs in {placement.vpc_id} (from {placement.how}), not in "
            f"{resource_vpc}, whose private zone it cannot resolve; {later}"
        )
        return StepResult(step, False, Reason.OPERATOR_OUTSIDE_VPC, message, unknown=True)
    return None


def _addresses(addresses: Sequence[str]) -> str:
    return ", ".join(addresses) or "none"


def first_failure(report: ProbeReport) -> PortProbe | None:
    """The first failed port probe, ports in ``PROBED_PORTS`` order, then addresses in the order resolved."""
    order = {port: i for i, port in enumerate(PROBED_PORTS)}
    failed = [p for p in report.ports if p.outcome is not PortOutcome.OK]
    return min(failed, key=lambda p: order.get(p.port, len(order)), default=None)


def needs_allow_list(report: ProbeReport) -> bool:
    """Whether the classification wants ``privateEndpointIds`` re-read (only after a reset: a success costs no
    ClickHouse call)."""
    failure = first_failure(report)
    return failure is not None and failure.outcome is PortOutcome.RESET


def _points_elsewhere(answer: Sequence[str], expected: Sequence[str]) -> list[str]:
    if not expected:
        return []  # the endpoint's interfaces are unknown: nothing to compare with
    wanted = {ipaddress.ip_address(a) for a in expected}
    return [a for a in answer if ipaddress.ip_address(a) not in wanted]


def classify(report: ProbeReport, ctx: Context) -> StepResult:
    """The ``Reachable`` condition for a measurement: True, or the first thing a client would trip over."""
    step = ConditionType.REACHABLE
    host, dns = report.hostname, report.dns
    via = f" (resolver {dns.resolver})" if dns.resolver else ""
    if dns.outcome is not DnsOutcome.OK or not dns.addresses:
        what = {
            DnsOutcome.NXDOMAIN: "does not exist (NXDOMAIN)",
            DnsOutcome.NO_ANSWER: "has no A record",
            DnsOutcome.NO_REPLY: f"got no answer ({dns.detail or 'timed out'})",
            DnsOutcome.OK: "has no address",
        }[dns.outcome]
        if ctx.dns_managed:
            fix = (
                f"the record in the VPC's private zone must alias {ctx.endpoint_id}, and the zone must be "
                "associated with the VPC; the pod's resolver must reach the VPC's resolver"
            )
        else:
            fix = f"dns.mode is None: create the record for {host} pointing at {ctx.endpoint_id} yourself"
        return StepResult(
            step, False, Reason.DNS_NOT_RESOLVING, f"{host}{via} {what}: clients get 'host not found'; {fix}"
        )
    elsewhere = _points_elsewhere(dns.addresses, ctx.interface_addresses)
    if elsewhere:
        message = (
            f"{host}{via} resolves to {_addresses(dns.addresses)}, but endpoint {ctx.endpoint_id}'s network "
            f"interfaces are {_addresses(ctx.interface_addresses)}: clients go elsewhere; point the record "
            f"at {ctx.endpoint_id} (another record or zone for this name wins in this VPC)"
        )
        return StepResult(step, False, Reason.DNS_POINTS_ELSEWHERE, message)
    failure = first_failure(report)
    if failure is None:
        ports = " and ".join(str(p) for p in PROBED_PORTS)
        message = (
            f"{host} resolves to endpoint {ctx.endpoint_id} ({_addresses(sorted(dns.addresses))}); "
            f"TLS on {ports} and GET /ping on {PING_PORT} answered {PING_ANSWER!r}"
        )
        return StepResult(step, True, Reason.REACHABLE, message)
    where = f"{host} ({failure.address}) port {failure.port}"
    if failure.outcome is PortOutcome.TIMEOUT:
        return StepResult(
            step,
            False,
            Reason.CONNECT_TIMEOUT,
            f"{where}: connect timed out; {_timeout_fix(ctx, failure.port)}",
        )
    if failure.outcome is PortOutcome.REFUSED:
        message = (
            f"{where}: connection refused; the endpoint does not serve this port: check the endpoint service"
        )
        return StepResult(step, False, Reason.CONNECTION_REFUSED, message)
    if failure.outcome is PortOutcome.RESET:
        return StepResult(
            step, False, Reason.CONNECTION_RESET, f"{where}: connection reset by peer; {_reset_fix(ctx)}"
        )
    if failure.outcome is PortOutcome.TLS:
        message = (
            f"{where}: TLS handshake with SNI {host} failed ({failure.detail or 'no detail'}): "
            "clients connect but cannot verify the service; use the private hostname, not an address"
        )
        return StepResult(step, False, Reason.TLS_FAILED, message)
    message = f"{where}: GET /ping answered {failure.detail or 'nothing'}, not {PING_ANSWER!r}: the service is not answering"
    return StepResult(step, False, Reason.PING_FAILED, message)


def _timeout_fix(ctx: Context, port: int) -> str:
    groups = ", ".join(ctx.security_groups) or "the VPC's default group"
    cidrs = ", ".join(ctx.vpc_cidrs) or "the VPC's CIDR"
    if ctx.closed_ports is not None and port in ctx.closed_ports:
        closed = ", ".join(str(p) for p in ctx.closed_ports)
        return (
            f"the endpoint's security groups ({groups}) admit no inbound TCP {closed} from the VPC: add an "
            f"inbound rule TCP {port} from {cidrs} (see {_GUIDE})"
        )
    if ctx.closed_ports is not None:
        return (
            f"the endpoint's security groups ({groups}) admit TCP {port} from the VPC: check the operator's own "
            "outbound rules and the subnets' network ACLs"
        )
    return f"check that the endpoint's security groups ({groups}) admit inbound TCP {port} from the VPC ({_GUIDE})"


def _reset_fix(ctx: Context) -> str:
    service = f"service {ctx.service_name}" if ctx.service_name else "the service"
    if ctx.allow_list is None:
        return f"{ctx.endpoint_id} may not be on the allow list of {service} (privateEndpointIds could not be read)"
    if ctx.endpoint_id not in ctx.allow_list:
        listed = ", ".join(ctx.allow_list) or "none"
        return (
            f"{ctx.endpoint_id} is not on the allow list of {service} (privateEndpointIds, read now: {listed}); "
            "the operator adds it back at its next pass"
        )
    return (
        f"{ctx.endpoint_id} is on the allow list of {service} (privateEndpointIds, read now): ClickHouse may still "
        "be applying the change; looked at again at the next drift check"
    )


def ready_result(reachable: StepResult) -> StepResult | None:
    """With CHPL_REACHABILITY_REQUIRED: Ready's own result for a failed measurement (None when it passed or
    was not measured: a check that cannot be made holds nothing back)."""
    if reachable.ok or reachable.unknown:
        return None
    return StepResult(ConditionType.READY, False, reachable.reason, reachable.message)


def changed_to_problem(previous_status: str | None, previous_reason: str | None, result: StepResult) -> bool:
    """Whether a Warning Event is due: the check newly fails, or fails for another reason."""
    if result.ok or result.unknown:
        return False
    return previous_status != "False" or previous_reason != result.reason.value
