"""deploy/iam-policy.json: the least AWS permissions, evaluated on the requests the operator makes.

A small evaluator of the policy's own grammar (Allow statements, wildcards, StringEquals/StringLike and
their ForAllValues forms) answers "would this request be allowed?"; the tests ask it the questions that
matter: can the operator touch an endpoint it does not own, write a record outside ClickHouse's names?
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from typing import Any

import pytest

from clickhouse_privatelink.constants import OPERATOR_NAME, TAG_MANAGED_BY
from tests.packaging.support import DEPLOY, ROOT

POLICY: dict[str, Any] = json.loads((DEPLOY / "iam-policy.json").read_text(encoding="utf-8"))
OPERATOR = ROOT / "operator" / "clickhouse_privatelink"

ACCOUNT = "111122223333"
ENDPOINT = f"arn:aws:ec2:us-east-1:{ACCOUNT}:vpc-endpoint/vpce-0123456789abcdef0"
ZONE = "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ"
OWNED = {f"aws:ResourceTag/{TAG_MANAGED_BY}": OPERATOR_NAME}
HOSTNAME = "abcd1234ef.us-east-1.vpce.aws.clickhouse.cloud"

# The AWS calls the operator makes (the contract the IAM policy is written from).
CONTRACT = {
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribeVpcs",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeNetworkInterfaces",  # the Reachable check: the endpoint's interface addresses
    "ec2:DescribeVpcEndpointServices",
    "ec2:CreateVpcEndpoint",
    "ec2:ModifyVpcEndpoint",
    "ec2:DeleteVpcEndpoints",
    "ec2:CreateTags",
    "route53:ListHostedZonesByName",
    "route53:ListHostedZonesByVPC",
    "route53:GetHostedZone",
    "route53:ListResourceRecordSets",
    "route53:ChangeResourceRecordSets",
    "route53:CreateHostedZone",
    "route53:DeleteHostedZone",
    "route53:ChangeTagsForResource",
    "route53:ListTagsForResource",
    "route53:GetChange",
    "route53:AssociateVPCWithHostedZone",
    "sts:AssumeRole",
}


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def condition_holds(operator: str, key: str, expected: list[str], context: dict[str, Any]) -> bool:
    qualifier, _, test = operator.rpartition(":")
    match = {"StringEquals": lambda a, b: a == b, "StringLike": fnmatch.fnmatchcase}[test]
    if qualifier == "ForAllValues":
        return all(any(match(v, e) for e in expected) for v in context.get(key, []))
    assert qualifier == "", f"unsupported condition operator {operator}"
    return key in context and any(match(context[key], e) for e in expected)


def allowed(action: str, resource: str, context: dict[str, Any] | None = None) -> bool:
    """Whether the policy allows this request (there are no Deny statements to weigh)."""
    context = context or {}
    for statement in POLICY["Statement"]:
        assert statement["Effect"] == "Allow"
        if not any(fnmatch.fnmatchcase(action, a) for a in as_list(statement["Action"])):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in as_list(statement["Resource"])):
            continue
        conditions = statement.get("Condition", {})
        if all(
            condition_holds(operator, key, as_list(expected), context)
            for operator, keys in conditions.items()
            for key, expected in keys.items()
        ):
            return True
    return False


def policy_actions() -> set[str]:
    return {action for s in POLICY["Statement"] for action in as_list(s["Action"])}


def test_policy_grants_exactly_the_actions_of_the_contract_and_no_wildcards() -> None:
    assert policy_actions() == CONTRACT


@pytest.mark.parametrize("action", ["ec2:DeleteVpcEndpoints", "ec2:ModifyVpcEndpoint"])
def test_delete_and_modify_only_endpoints_tagged_as_managed_by_the_operator(action: str) -> None:
    assert allowed(action, ENDPOINT, OWNED)
    assert not allowed(action, ENDPOINT)
    assert not allowed(action, ENDPOINT, {f"aws:ResourceTag/{TAG_MANAGED_BY}": "someone-else"})


def test_create_endpoints_only_with_the_ownership_tag_in_the_request() -> None:
    assert allowed("ec2:CreateVpcEndpoint", ENDPOINT, {f"aws:RequestTag/{TAG_MANAGED_BY}": OPERATOR_NAME})
    assert not allowed("ec2:CreateVpcEndpoint", ENDPOINT)
    # The endpoint's network resources carry no tag of ours.
    assert allowed(
        "ec2:CreateVpcEndpoint", f"arn:aws:ec2:us-east-1:{ACCOUNT}:subnet/subnet-0123456789abcdef0"
    )


def test_tags_only_at_creation_so_no_endpoint_can_be_tagged_into_the_operators_ownership() -> None:
    assert allowed("ec2:CreateTags", ENDPOINT, {"ec2:CreateAction": "CreateVpcEndpoint"})
    assert not allowed("ec2:CreateTags", ENDPOINT)
    assert not allowed("ec2:CreateTags", ENDPOINT, {"ec2:CreateAction": "CreateVpc"})
    assert not allowed("ec2:CreateTags", f"arn:aws:ec2:us-east-1:{ACCOUNT}:vpc/vpc-0123456789abcdef0")


def test_nothing_that_writes_is_granted_on_every_resource() -> None:
    read_only = re.compile(r"^(ec2:Describe|route53:List|route53:Get)")
    for statement in POLICY["Statement"]:
        if "*" in as_list(statement["Resource"]):
            writes = {a for a in as_list(statement["Action"]) if not read_only.match(a)}
            # Route 53 cannot scope zone creation to a resource: the zone does not exist yet.
            assert writes <= {"route53:CreateHostedZone"}, statement["Sid"]


def test_records_are_written_only_under_clickhouses_private_names_and_types() -> None:
    ours = {
        "route53:ChangeResourceRecordSetsNormalizedRecordNames": [HOSTNAME],
        "route53:ChangeResourceRecordSetsRecordTypes": ["A", "TXT"],
    }
    assert allowed("route53:ChangeResourceRecordSets", ZONE, ours)
    elsewhere = {
        **ours,
        "route53:ChangeResourceRecordSetsNormalizedRecordNames": [HOSTNAME, "www.example.com"],
    }
    assert not allowed("route53:ChangeResourceRecordSets", ZONE, elsewhere)
    other_type = {**ours, "route53:ChangeResourceRecordSetsRecordTypes": ["CNAME"]}
    assert not allowed("route53:ChangeResourceRecordSets", ZONE, other_type)


def test_hosted_zone_actions_are_scoped_to_hosted_zones() -> None:
    for action in ("route53:DeleteHostedZone", "route53:GetHostedZone", "route53:AssociateVPCWithHostedZone"):
        assert allowed(action, ZONE)
        assert not allowed(action, "arn:aws:route53:::healthcheck/abc")


def test_cross_account_roles_follow_a_naming_convention() -> None:
    assert allowed("sts:AssumeRole", "arn:aws:iam::444455556666:role/clickhouse-privatelink-operator-prod")
    assert not allowed("sts:AssumeRole", "arn:aws:iam::444455556666:role/OrganizationAccountAccessRole")


def boto3_calls() -> set[str]:
    """Every EC2, Route 53 and STS API the operator's code calls (clients named ec2, r53 or route53)."""
    service_of = {"ec2": "ec2", "r53": "route53", "route53": "route53"}
    found: set[str] = set()
    for path in OPERATOR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            receiver = node.func.value
            name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", None)
            if name not in service_of:
                continue
            method = node.func.attr
            if method == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                method = str(node.args[0].value)
            found.add(f"{service_of[name]}:{''.join(part.title() for part in method.split('_'))}")
        if "AssumeRoleCredentialFetcher" in path.read_text(encoding="utf-8"):
            found.add("sts:AssumeRole")
    return found


def test_every_aws_call_in_the_operators_code_is_allowed_by_the_policy() -> None:
    calls = boto3_calls()
    assert calls, "no AWS calls found: has the code moved?"
    # boto3's snake_case drops the capitals of acronyms (VPC): compare case-insensitively.
    granted = {action.lower() for action in policy_actions()}
    assert {call for call in calls if call.lower() not in granted} == set()
