"""The security-group preflight: SecurityGroupReady names the ClickHouse ports the endpoint's groups leave closed
to the VPC, without holding Ready back, and follows the rules as a person fixes them."""

from __future__ import annotations

from typing import Any

import pytest

from clickhouse_privatelink_testkit.standins.aws import seed_network
from clickhouse_privatelink_testkit.standins.aws_faults import AwsFaultControl
from tests.e2e.conftest import Cloud, Link, LinkFactory
from tests.fixtures.aws import AwsTarget

pytestmark = [pytest.mark.e2e, pytest.mark.standin_only]

# Rules are re-read at every drift check (CHPL_DRIFT_INTERVAL is 2 s in e2e).
DRIFT_TIMEOUT = 30.0


def test_a_group_missing_9440_is_named_while_ready_stays_true_and_the_fix_is_seen(
    make_link: LinkFactory, cloud: Cloud, aws_target: AwsTarget
) -> None:
    assert aws_target.endpoint_url is not None
    network = seed_network(
        aws_target.endpoint_url, cloud.network.region, cidr="10.46.0.0/16", ports=(443, 8443, 3306)
    )
    link = make_link(
        aws={
            "vpcId": network.vpc_id,
            "subnetIds": network.subnet_ids,
            "securityGroupIds": [network.security_group_id],
        }
    )
    link.wait_ready()
    cond = link.wait_condition("SecurityGroupReady", status="False", reason="SecurityGroupPortsClosed")
    assert cond["message"].startswith(
        f"security group {network.security_group_id} admits no inbound TCP from the VPC (10.46.0.0/16) on 9440:"
    )
    ready = link.condition("Ready")
    assert ready is not None and ready["status"] == "True"
    link.wait_events("SecurityGroupPortsClosed")
    assert [e.type for e in events(link, "SecurityGroupPortsClosed")] == ["Warning"]

    cloud.ec2.authorize_security_group_ingress(
        GroupId=network.security_group_id,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 9440, "ToPort": 9440, "IpRanges": [{"CidrIp": "10.46.0.0/16"}]}
        ],
    )
    cond = link.wait_condition(
        "SecurityGroupReady", status="True", reason="SecurityGroupPortsOpen", timeout=DRIFT_TIMEOUT
    )
    assert "443, 8443, 9440, 3306" in cond["message"]
    link.wait_events("SecurityGroupPortsOpen")
    ready = link.condition("Ready")
    assert ready is not None and ready["status"] == "True"
    # One Warning for the one change, not one per drift check.
    assert len(events(link, "SecurityGroupPortsClosed")) == 1


def events(link: Link, reason: str) -> list[Any]:
    return [e for e in link.k8s.events(link.namespace, link.name) if e.reason == reason]


def test_access_denied_on_the_read_is_unknown_and_never_fails_the_reconcile(
    make_link: LinkFactory, aws_control: AwsFaultControl
) -> None:
    aws_control.add_fault(
        "error",
        service="ec2",
        operation="DescribeSecurityGroups",
        status=403,
        code="UnauthorizedOperation",
        message="You are not authorized to perform this operation.",
        rate=1.0,
    )
    link = make_link()
    link.wait_ready()
    cond = link.wait_condition("SecurityGroupReady", status="Unknown", reason="SecurityGroupsUnreadable")
    assert "UnauthorizedOperation" in cond["message"]
    assert "ec2:DescribeSecurityGroups" in cond["message"]
    ready = link.condition("Ready")
    assert ready is not None and ready["status"] == "True"
    aws_control.clear()
    # The seeded group admits the four ports from the VPC: the next drift check says so.
    link.wait_condition(
        "SecurityGroupReady", status="True", reason="SecurityGroupPortsOpen", timeout=DRIFT_TIMEOUT
    )
