"""The security-group preflight: which of ClickHouse's ports the endpoint's groups leave closed to the VPC,
the advisory SecurityGroupReady condition (never holding Ready back), and its component's reads and Events."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from clickhouse_privatelink.adapters.aws import security_groups as adapter
from clickhouse_privatelink.adapters.aws.clients import AwsClients
from clickhouse_privatelink.adapters.aws.gateway import AwsGateway
from clickhouse_privatelink.decisions.plan import ObservedEndpoint
from clickhouse_privatelink.decisions.reasons import (
    PROGRESSING_REASONS,
    TERMINAL_REASONS,
    ConditionType,
    Reason,
)
from clickhouse_privatelink.decisions.security_groups import (
    CLICKHOUSE_PORTS,
    IngressRule,
    SecurityGroup,
    changed,
    check_ports,
    port_check_result,
    unreadable_result,
)
from clickhouse_privatelink.decisions.status import (
    StepResult,
    condition,
    steps_to_conditions,
    summarise_ready,
)
from clickhouse_privatelink.engine.context import EndpointResult, Outcome, Pass, Resolved
from clickhouse_privatelink.engine.security_group_component import SecurityGroupComponent

VPC = ["10.0.0.0/16"]


def tcp(low: int, high: int | None = None, *cidrs: str, **sources: tuple[str, ...]) -> IngressRule:
    return IngressRule("tcp", low, low if high is None else high, cidrs=cidrs, **sources)


def group(*rules: IngressRule, id_: str = "sg-1") -> SecurityGroup:
    return SecurityGroup(id_, tuple(rules))


def closed(*groups: SecurityGroup, cidrs: list[str] = VPC) -> tuple[int, ...]:
    return check_ports(list(groups), cidrs).closed


# ------------------------------------------------------------------------------------------------ decision


def test_every_port_admitted_from_the_vpc_cidr_is_open() -> None:
    rules = [tcp(port, None, "10.0.0.0/16") for port in CLICKHOUSE_PORTS]
    assert closed(group(*rules)) == ()


def test_missing_port_is_named_in_port_order() -> None:
    assert closed(group(tcp(443, None, "10.0.0.0/16"), tcp(8443, None, "10.0.0.0/16"))) == (9440, 3306)
    assert closed(group()) == CLICKHOUSE_PORTS


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 65535, ()),
        (443, 9440, ()),  # 443..9440 holds 3306 and 8443 too
        (444, 9440, (443,)),
        (3306, 3306, (443, 8443, 9440)),
        (9000, 9999, (443, 8443, 3306)),
    ],
)
def test_port_ranges_are_inclusive(low: int, high: int, expected: tuple[int, ...]) -> None:
    assert closed(group(tcp(low, high, "10.0.0.0/16"))) == expected


@pytest.mark.parametrize("protocol", ["-1", "all"])
def test_all_traffic_admits_every_port_whatever_its_port_fields(protocol: str) -> None:
    assert closed(group(IngressRule(protocol, None, None, cidrs=("10.0.0.0/16",)))) == ()
    assert closed(group(IngressRule(protocol, -1, -1, cidrs=("10.0.0.0/16",)))) == ()


def test_tcp_by_number_counts_and_udp_or_icmp_do_not() -> None:
    assert closed(group(IngressRule("6", 0, 65535, cidrs=("10.0.0.0/16",)))) == ()
    assert closed(group(IngressRule("udp", 0, 65535, cidrs=("10.0.0.0/16",)))) == CLICKHOUSE_PORTS
    assert closed(group(IngressRule("icmp", -1, -1, cidrs=("10.0.0.0/16",)))) == CLICKHOUSE_PORTS
    assert closed(group(IngressRule("17", 0, 65535, cidrs=("0.0.0.0/0",)))) == CLICKHOUSE_PORTS


@pytest.mark.parametrize(
    "source",
    [
        "0.0.0.0/0",
        "10.0.0.0/8",  # contains the VPC
        "10.0.0.0/16",  # the VPC itself
        "10.0.3.0/24",  # one of its subnets: a deliberate narrower rule admits the clients there
        "10.0.3.7/32",
        "10.0.0.0/16 ",  # written loosely
    ],
)
def test_a_cidr_overlapping_the_vpc_admits(source: str) -> None:
    assert closed(group(tcp(0, 65535, source.strip()))) == ()


@pytest.mark.parametrize("source", ["192.168.0.0/16", "10.1.0.0/16", "172.16.0.0/12", "not-a-cidr", "::/0"])
def test_a_cidr_outside_the_vpc_or_of_another_family_does_not_admit(source: str) -> None:
    assert closed(group(tcp(0, 65535, source))) == CLICKHOUSE_PORTS


def test_any_of_several_vpc_cidr_blocks_counts() -> None:
    cidrs = ["10.0.0.0/16", "100.64.0.0/16"]
    assert closed(group(tcp(0, 65535, "100.64.0.0/10")), cidrs=cidrs) == ()


def test_ipv6_rules_count_against_the_vpcs_ipv6_blocks() -> None:
    cidrs = ["10.0.0.0/16", "2600:1f18:abc:de00::/56"]
    assert closed(group(tcp(0, 65535, "::/0")), cidrs=cidrs) == ()
    assert closed(group(tcp(0, 65535, "2600:1f18:abc:de00::/64")), cidrs=cidrs) == ()
    assert closed(group(tcp(0, 65535, "2600:1f18:ffff::/48")), cidrs=cidrs) == CLICKHOUSE_PORTS


def test_group_references_and_prefix_lists_count_as_admitting() -> None:
    by_group = IngressRule("tcp", 0, 65535, group_ids=("sg-clients",))
    by_list = IngressRule("tcp", 0, 65535, prefix_list_ids=("pl-123",))
    assert closed(group(by_group)) == ()
    assert closed(group(by_list)) == ()
    # ... but only on the ports and protocol the rule names.
    assert closed(group(IngressRule("tcp", 443, 443, group_ids=("sg-x",)))) == (8443, 9440, 3306)
    assert closed(group(IngressRule("udp", 0, 65535, group_ids=("sg-x",)))) == CLICKHOUSE_PORTS


def test_rules_of_all_the_endpoints_groups_add_up() -> None:
    a = group(tcp(443, None, "10.0.0.0/16"), tcp(8443, None, "10.0.0.0/16"), id_="sg-a")
    b = group(tcp(9440, None, "0.0.0.0/0"), id_="sg-b")
    assert closed(a, b) == (3306,)
    assert check_ports([b, a], VPC).group_ids == ("sg-a", "sg-b")


def test_a_port_and_a_source_must_be_on_the_same_rule() -> None:
    wrong = group(tcp(9440, None, "192.168.0.0/16"), tcp(443, None, "10.0.0.0/16"))
    assert 9440 in closed(wrong)


def test_closed_result_names_groups_vpc_and_ports() -> None:
    groups = [group(tcp(443, None, "10.0.0.0/16"), tcp(8443, None, "10.0.0.0/16"), id_="sg-2"), group()]
    result = port_check_result(check_ports(groups, VPC))
    assert (result.type, result.ok, result.reason) == (
        ConditionType.SECURITY_GROUP_READY,
        False,
        Reason.SECURITY_GROUP_PORTS_CLOSED,
    )
    assert result.message.startswith(
        "security groups sg-1, sg-2 admit no inbound TCP from the VPC (10.0.0.0/16) on 9440, 3306: "
    )
    assert "add inbound rules" in result.message and "aws-privatelink" in result.message


def test_open_result_is_true() -> None:
    result = port_check_result(check_ports([group(tcp(0, 65535, "0.0.0.0/0"))], VPC))
    assert result.ok and result.reason is Reason.SECURITY_GROUP_PORTS_OPEN
    assert result.message == "security group sg-1 admits TCP 443, 8443, 9440, 3306 from the VPC (10.0.0.0/16)"


def test_advisory_reasons_neither_block_nor_wait() -> None:
    advisory = {
        Reason.SECURITY_GROUP_PORTS_OPEN,
        Reason.SECURITY_GROUP_PORTS_CLOSED,
        Reason.SECURITY_GROUPS_UNREADABLE,
    }
    assert not advisory & (TERMINAL_REASONS | PROGRESSING_REASONS)


# ------------------------------------------------------------------------------------------------- status


def done_steps() -> list[StepResult]:
    return [
        StepResult(ConditionType.SERVICE_RESOLVED, True, Reason.RESOLVED, "ok"),
        StepResult(ConditionType.VPC_ENDPOINT_READY, True, Reason.AVAILABLE, "ok"),
        StepResult(ConditionType.DNS_READY, True, Reason.RECORD_WRITTEN, "ok"),
        StepResult(ConditionType.ALLOW_LISTED, True, Reason.ALLOW_LISTED, "ok"),
    ]


def test_ready_stays_true_when_only_the_security_group_check_fails() -> None:
    closed_ports = port_check_result(check_ports([group()], VPC))
    steps = [*done_steps(), closed_ports]
    assert summarise_ready(steps).ok
    conditions = steps_to_conditions([], steps, generation=3)
    assert [c["type"] for c in conditions] == [
        "ServiceResolved",
        "VpcEndpointReady",
        "DnsReady",
        "AllowListed",
        "SecurityGroupReady",
        "Ready",
    ]
    by_type = {c["type"]: c for c in conditions}
    assert by_type["Ready"]["status"] == "True"
    assert by_type["SecurityGroupReady"]["status"] == "False"
    assert by_type["SecurityGroupReady"]["reason"] == "SecurityGroupPortsClosed"
    assert by_type["SecurityGroupReady"]["observedGeneration"] == 3


def test_unreadable_is_written_unknown_and_does_not_block_ready() -> None:
    unknown = unreadable_result("AWS UnauthorizedOperation: no")
    conditions = steps_to_conditions([], [*done_steps(), unknown], generation=1)
    cond = condition(conditions, ConditionType.SECURITY_GROUP_READY)
    assert cond is not None and cond["status"] == "Unknown"
    assert cond["reason"] == "SecurityGroupsUnreadable"
    assert "ec2:DescribeSecurityGroups" in cond["message"]
    assert condition(conditions, ConditionType.READY)["status"] == "True"  # type: ignore[index]


def test_a_pass_that_stops_early_leaves_the_advisory_condition_and_does_not_wait_on_it() -> None:
    before = steps_to_conditions([], [*done_steps(), unreadable_result("x")], generation=1)
    failed = [StepResult(ConditionType.SERVICE_RESOLVED, False, Reason.UNAUTHORIZED, "401")]
    after = steps_to_conditions(before, failed, generation=2)
    assert condition(after, ConditionType.SECURITY_GROUP_READY) == condition(
        before, ConditionType.SECURITY_GROUP_READY
    )
    dns = condition(after, ConditionType.DNS_READY)
    assert dns is not None and dns["message"] == "waiting for ServiceResolved"
    # An advisory failure alone never makes the steps "wait" for it.
    only_advisory = steps_to_conditions([], [port_check_result(check_ports([group()], VPC))], generation=1)
    assert condition(only_advisory, ConditionType.DNS_READY) is None


def test_changed_compares_status_reason_and_message() -> None:
    result = port_check_result(check_ports([group()], VPC))
    written = condition(steps_to_conditions([], [result], generation=1), ConditionType.SECURITY_GROUP_READY)
    assert changed(None, result)
    assert not changed(written, result)
    other = port_check_result(check_ports([group(tcp(443, None, "0.0.0.0/0"))], VPC))
    assert changed(written, other)


# ------------------------------------------------------------------------------------------------ adapter


@pytest.fixture
def ec2() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client(
            "ec2", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )


def test_adapter_reads_rules_of_every_kind_and_the_vpcs_blocks(ec2: Any) -> None:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.associate_vpc_cidr_block(VpcId=vpc, CidrBlock="10.1.0.0/16")
    sg = ec2.create_security_group(GroupName="ch", Description="ch", VpcId=vpc)["GroupId"]
    other = ec2.create_security_group(GroupName="clients", Description="clients", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]},
            {"IpProtocol": "tcp", "FromPort": 8443, "ToPort": 8443, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
            {"IpProtocol": "tcp", "FromPort": 9440, "ToPort": 9440, "UserIdGroupPairs": [{"GroupId": other}]},
        ],
    )
    (found,) = adapter.describe(ec2, [sg])
    assert found.id == sg
    by_port = {r.from_port: r for r in found.rules}
    assert by_port[443].cidrs == ("10.0.0.0/16",) and by_port[443].protocol == "tcp"
    assert by_port[8443].cidrs == ("::/0",)
    assert by_port[9440].group_ids == (other,)
    assert adapter.vpc_cidrs(ec2, vpc) == ["10.0.0.0/16", "10.1.0.0/16"]
    assert check_ports([found], adapter.vpc_cidrs(ec2, vpc)).closed == (8443, 3306)
    (default,) = adapter.default_group(ec2, vpc)
    assert default.id not in (sg, other)
    assert adapter.describe(ec2, []) == []


# ---------------------------------------------------------------------------------------------- component


class FakeEc2:
    """describe_security_groups and describe_vpcs answering from fixed data, or failing with a code."""

    def __init__(self, rules: list[dict[str, Any]], *, error: str | None = None) -> None:
        self.rules = rules
        self.error = error
        self.calls: list[str] = []

    def _maybe_fail(self, op: str) -> None:
        self.calls.append(op)
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "denied"}}, op)

    def describe_security_groups(self, **kwargs: Any) -> dict[str, Any]:
        self._maybe_fail("DescribeSecurityGroups")
        ids = kwargs.get("GroupIds") or ["sg-default"]
        return {"SecurityGroups": [{"GroupId": gid, "IpPermissions": self.rules} for gid in ids]}

    def describe_vpcs(self, **kwargs: Any) -> dict[str, Any]:
        self._maybe_fail("DescribeVpcs")
        return {"Vpcs": [{"VpcId": kwargs["VpcIds"][0], "CidrBlock": "10.0.0.0/16"}]}


def endpoint(groups: frozenset[str] = frozenset({"sg-1"})) -> ObservedEndpoint:
    return ObservedEndpoint("vpce-1", "vpc-1", "com.amazonaws.vpce.x", "available", frozenset(), groups)


def run(
    ec2: FakeEc2, previous: list[dict[str, Any]] | None = None, ep: ObservedEndpoint | None = None
) -> Outcome:
    out = Outcome()
    fake = SimpleNamespace(
        res=SimpleNamespace(status={"conditions": previous or []}),
        aws=AwsGateway(cast(AwsClients, SimpleNamespace(ec2=ec2, route53=None))),
        out=out,
        read_age=0.0,
    )
    found = Resolved(endpoint=EndpointResult(ep or endpoint()))
    asyncio.run(SecurityGroupComponent().apply(cast(Pass, fake), found))
    return out


ALL_OPEN = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
NO_9440 = [
    {"IpProtocol": "tcp", "FromPort": p, "ToPort": p, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}
    for p in (443, 8443, 3306)
]


def written(out: Outcome) -> list[dict[str, Any]]:
    return steps_to_conditions([], out.steps, generation=1)


def test_component_reports_closed_ports_with_a_warning_once() -> None:
    out = run(FakeEc2(NO_9440))
    (step,) = out.steps
    assert step.reason is Reason.SECURITY_GROUP_PORTS_CLOSED and "on 9440:" in step.message
    assert [(e.type, e.reason) for e in out.events] == [("Warning", "SecurityGroupPortsClosed")]
    again = run(FakeEc2(NO_9440), previous=written(out))
    assert again.steps == out.steps and again.events == []


def test_component_reports_open_ports_quietly_and_the_fix_with_a_normal_event() -> None:
    out = run(FakeEc2(ALL_OPEN))
    assert out.steps[0].ok and out.events == []
    closed_before = written(run(FakeEc2(NO_9440)))
    fixed = run(FakeEc2(ALL_OPEN), previous=closed_before)
    assert [(e.type, e.reason) for e in fixed.events] == [("Normal", "SecurityGroupPortsOpen")]


def test_component_with_no_groups_checks_the_vpcs_default_group() -> None:
    ec2 = FakeEc2(ALL_OPEN)
    out = run(ec2, ep=endpoint(frozenset()))
    assert out.steps[0].ok and "sg-default" in out.steps[0].message


def test_access_denied_is_unknown_never_a_failed_pass() -> None:
    out = run(FakeEc2(ALL_OPEN, error="UnauthorizedOperation"))
    (step,) = out.steps
    assert (step.ok, step.unknown, step.reason) == (False, True, Reason.SECURITY_GROUPS_UNREADABLE)
    assert "UnauthorizedOperation" in step.message
    assert [(e.type, e.reason) for e in out.events] == [("Warning", "SecurityGroupsUnreadable")]
    assert out.ready().ok is False  # only because the other steps did not run here
    assert summarise_ready([*done_steps(), step]).ok


def test_throttling_keeps_the_last_word_and_is_unknown_only_the_first_time() -> None:
    before = written(run(FakeEc2(ALL_OPEN)))
    kept = run(FakeEc2(ALL_OPEN, error="Throttling"), previous=before)
    assert kept.steps == [] and kept.events == []
    first = run(FakeEc2(ALL_OPEN, error="Throttling"))
    assert first.steps[0].reason is Reason.SECURITY_GROUPS_UNREADABLE


def test_component_without_an_endpoint_does_nothing() -> None:
    ec2 = FakeEc2(ALL_OPEN)
    out = Outcome()
    fake = SimpleNamespace(
        res=SimpleNamespace(status={}),
        aws=AwsGateway(cast(AwsClients, SimpleNamespace(ec2=ec2, route53=None))),
        out=out,
        read_age=0.0,
    )
    asyncio.run(SecurityGroupComponent().apply(cast(Pass, fake), Resolved()))
    assert out.steps == [] and ec2.calls == []
    asyncio.run(SecurityGroupComponent().release(cast(Pass, fake)))
