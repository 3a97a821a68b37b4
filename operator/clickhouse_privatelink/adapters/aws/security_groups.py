"""EC2 security groups and VPC CIDR blocks, read only. No business rules (see decisions/security_groups.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from clickhouse_privatelink.decisions.security_groups import IngressRule, SecurityGroup

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client


def _port(value: Any) -> int | None:
    return int(value) if value is not None else None


def _rule(raw: Mapping[str, Any]) -> IngressRule:
    return IngressRule(
        protocol=str(raw.get("IpProtocol", "")),
        from_port=_port(raw.get("FromPort")),
        to_port=_port(raw.get("ToPort")),
        cidrs=tuple(
            [r["CidrIp"] for r in raw.get("IpRanges", []) if "CidrIp" in r]
            + [r["CidrIpv6"] for r in raw.get("Ipv6Ranges", []) if "CidrIpv6" in r]
        ),
        group_ids=tuple(g["GroupId"] for g in raw.get("UserIdGroupPairs", []) if g.get("GroupId")),
        prefix_list_ids=tuple(
            p["PrefixListId"] for p in raw.get("PrefixListIds", []) if p.get("PrefixListId")
        ),
    )


def _group(raw: Mapping[str, Any]) -> SecurityGroup:
    return SecurityGroup(id=raw["GroupId"], rules=tuple(_rule(r) for r in raw.get("IpPermissions", [])))


def describe(ec2: EC2Client, group_ids: Sequence[str]) -> list[SecurityGroup]:
    """The security groups with these IDs and their inbound rules (one DescribeSecurityGroups)."""
    if not group_ids:
        return []
    found = ec2.describe_security_groups(GroupIds=sorted(group_ids))["SecurityGroups"]
    return [_group(g) for g in found]


def default_group(ec2: EC2Client, vpc_id: str) -> list[SecurityGroup]:
    """The VPC's default security group (what AWS gives an endpoint created without groups)."""
    found = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": ["default"]},
        ]
    )["SecurityGroups"]
    return [_group(g) for g in found]


def vpc_cidrs(ec2: EC2Client, vpc_id: str) -> list[str]:
    """Every IPv4 and IPv6 CIDR block associated with the VPC, primary first (one DescribeVpcs)."""
    vpcs = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]
    cidrs: list[str] = []
    for vpc in vpcs:
        primary = vpc.get("CidrBlock")
        if primary:
            cidrs.append(primary)
        for assoc in vpc.get("CidrBlockAssociationSet", []):
            state = assoc.get("CidrBlockState", {}).get("State", "associated")
            block = assoc.get("CidrBlock")
            if block and state == "associated" and block not in cidrs:
                cidrs.append(block)
        for assoc6 in vpc.get("Ipv6CidrBlockAssociationSet", []):
            state = assoc6.get("Ipv6CidrBlockState", {}).get("State", "associated")
            block = assoc6.get("Ipv6CidrBlock")
            if block and state == "associated" and block not in cidrs:
                cidrs.append(block)
    return cidrs
