"""Do the endpoint's security groups let the VPC's clients reach ClickHouse's ports? (pure; advisory)

ClickHouse's PrivateLink guide: connections to the private hostname that *time out* come from security groups
that do not admit 443, 8443, 9440 and 3306. This check reads the inbound rules of the endpoint's groups and
names the ports no rule admits from the VPC. A port counts as admitted when any inbound rule of any of the
endpoint's groups (their rules add up) has

- protocol TCP (``tcp`` or ``6``) with the port in its range, or protocol ``-1`` (all traffic), and
- a source that reaches the VPC's clients:
  - an IPv4 or IPv6 CIDR that overlaps one of the VPC's CIDR blocks of the same family: ``0.0.0.0/0``
    and ``::/0``, a wider block containing the VPC's, the VPC's own block, or a subnet of it (a rule for
    the application's subnets only is a deliberate choice, not a mistake);
  - a security group (of the endpoint, of the VPC or of a peered VPC): the operator does not follow the
    reference and counts it as admitting;
  - a managed prefix list: likewise counted as admitting, without reading its entries.

Clients outside the VPC (peering, Transit Gateway, VPN) that the rules admit by their own CIDR are not
recognised: the condition then says a port is closed although those clients connect. It is advisory only:
``Ready`` does not depend on it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from clickhouse_privatelink.decisions.status import StepResult

# HTTPS, HTTPS (the SQL console's and clients' second port), native protocol over TLS, MySQL.
CLICKHOUSE_PORTS: Final = (443, 8443, 9440, 3306)

_TCP: Final = frozenset({"tcp", "6"})
_ALL: Final = frozenset({"-1", "all"})
_GUIDE: Final = "https://clickhouse.com/docs/manage/security/aws-privatelink"


@dataclass(frozen=True)
class IngressRule:
    """One inbound permission of a security group (one entry of ``IpPermissions``)."""

    protocol: str  # "tcp", "udp", "icmp", "-1" (all) or a protocol number
    from_port: int | None = None  # None (or -1) with "-1": every port
    to_port: int | None = None
    cidrs: tuple[str, ...] = ()  # IPv4 and IPv6 blocks
    group_ids: tuple[str, ...] = ()  # referenced security groups
    prefix_list_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    rules: tuple[IngressRule, ...] = ()


@dataclass(frozen=True)
class PortCheck:
    """Which of ClickHouse's ports the groups admit from the VPC, and which they do not."""

    group_ids: tuple[str, ...]
    vpc_cidrs: tuple[str, ...]
    closed: tuple[int, ...]

    @property
    def ok(self) -> bool:
        return not self.closed


def _covers_port(rule: IngressRule, port: int) -> bool:
    protocol = rule.protocol.lower()
    if protocol in _ALL:
        return True
    if protocol not in _TCP:
        return False
    low = rule.from_port if rule.from_port is not None and rule.from_port >= 0 else 0
    high = rule.to_port if rule.to_port is not None and rule.to_port >= 0 else 65535
    return low <= port <= high


def _networks(cidrs: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for cidr in cidrs:
        try:
            out.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue  # not a block AWS would return; never admits
    return out


def _reaches_vpc(rule: IngressRule, vpc: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if rule.group_ids or rule.prefix_list_ids:
        return True  # not followed: counted as admitting (see the module's docstring)
    return any(
        source.version == block.version and source.overlaps(block)
        for source in _networks(rule.cidrs)
        for block in vpc
    )


def check_ports(
    groups: Sequence[SecurityGroup],
    vpc_cidrs: Sequence[str],
    ports: Sequence[int] = CLICKHOUSE_PORTS,
) -> PortCheck:
    """The ports no inbound rule of ``groups`` admits from ``vpc_cidrs``, in the order of ``ports``."""
    vpc = _networks(vpc_cidrs)
    rules = [rule for group in groups for rule in group.rules if _reaches_vpc(rule, vpc)]
    closed = tuple(port for port in ports if not any(_covers_port(rule, port) for rule in rules))
    return PortCheck(group_ids=tuple(sorted(g.id for g in groups)), vpc_cidrs=tuple(vpc_cidrs), closed=closed)


def port_check_result(check: PortCheck) -> StepResult:
    """The SecurityGroupReady condition for a check."""
    step = ConditionType.SECURITY_GROUP_READY
    groups = ", ".join(check.group_ids) or "(none)"
    cidrs = ", ".join(check.vpc_cidrs) or "no CIDR blocks"
    label = "security group" if len(check.group_ids) == 1 else "security groups"
    verb = "admits" if len(check.group_ids) == 1 else "admit"
    if check.ok:
        ports = ", ".join(str(p) for p in CLICKHOUSE_PORTS)
        message = f"{label} {groups} {verb} TCP {ports} from the VPC ({cidrs})"
        return StepResult(step, True, Reason.SECURITY_GROUP_PORTS_OPEN, message)
    closed = ", ".join(str(p) for p in check.closed)
    message = (
        f"{label} {groups} {verb} no inbound TCP from the VPC ({cidrs}) on {closed}: "
        f"clients will time out on these ports; add inbound rules, see {_GUIDE}"
    )
    return StepResult(step, False, Reason.SECURITY_GROUP_PORTS_CLOSED, message)


def unreadable_result(problem: str) -> StepResult:
    """The SecurityGroupReady condition when the groups or the VPC could not be read (status Unknown)."""
    message = (
        f"could not check the endpoint's security groups: {problem}; "
        "the check needs ec2:DescribeSecurityGroups and ec2:DescribeVpcs (deploy/iam-policy.json)"
    )
    return StepResult(
        ConditionType.SECURITY_GROUP_READY, False, Reason.SECURITY_GROUPS_UNREADABLE, message, unknown=True
    )


def changed(previous: Mapping[str, Any] | None, result: StepResult) -> bool:
    """Whether writing ``result`` changes the condition a person sees (status, reason or message)."""
    if previous is None:
        return True
    status = "True" if result.ok else "Unknown" if result.unknown else "False"
    return (previous.get("status"), previous.get("reason"), previous.get("message")) != (
        status,
        result.reason.value,
        result.message,
    )
