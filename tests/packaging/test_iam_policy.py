"""deploy/iam-policy.json: the least AWS permissions, evaluated on the requests the operator makes.

A small evaluator of the policy's own grammar (Allow statements, wildcards, StringEquals/StringLike and
their ForAllValues forms) answers "would this request be allowed?"; the tests ask it the questions that
matter: can the operator touch an endpoint it does not own, write a record outside ClickHouse's names?
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore import xform_name

from clickhouse_privatelink.constants import OPERATOR_NAME, TAG_MANAGED_BY, TAG_RETAINED
from tests.packaging.support import DEPLOY, ROOT

POLICY: dict[str, Any] = json.loads((DEPLOY / "iam-policy.json").read_text(encoding="utf-8"))
OPERATOR = ROOT / "operator" / "clickhouse_privatelink"
# API call -> the IAM actions it needs (the Service Authorization Reference's dependent actions), as data.
REQUIRED: dict[str, dict[str, Any]] = yaml.safe_load(
    (DEPLOY / "iam-actions.yaml").read_text(encoding="utf-8")
)
# The pod identities docs/install.md documents: the policy must work under each.
IDENTITIES = ("irsa", "eks-pod-identity")

ACCOUNT = "111122223333"
ENDPOINT = f"arn:aws:ec2:us-east-1:{ACCOUNT}:vpc-endpoint/vpce-0123456789abcdef0"
ZONE = "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ"
OWNED = {f"aws:ResourceTag/{TAG_MANAGED_BY}": OPERATOR_NAME}
HOSTNAME = "abcd1234ef.us-east-1.vpce.aws.clickhouse.cloud"


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


def test_only_the_retained_mark_comes_off_and_only_from_the_operators_endpoints() -> None:
    retained = {"aws:TagKeys": [TAG_RETAINED]}
    assert allowed("ec2:DeleteTags", ENDPOINT, {**OWNED, **retained})
    assert not allowed("ec2:DeleteTags", ENDPOINT, retained)
    assert not allowed("ec2:DeleteTags", ENDPOINT, {**OWNED, "aws:TagKeys": [TAG_MANAGED_BY]})


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
    for action in ("route53:DeleteHostedZone", "route53:GetHostedZone", "route53:ChangeTagsForResource"):
        assert allowed(action, ZONE)
        assert not allowed(action, "arn:aws:route53:::healthcheck/abc")


@pytest.mark.parametrize("action", ["sts:AssumeRole", "sts:TagSession"])
def test_cross_account_roles_follow_a_naming_convention(action: str) -> None:
    assert allowed(action, "arn:aws:iam::444455556666:role/clickhouse-privatelink-operator-prod")
    assert not allowed(action, "arn:aws:iam::444455556666:role/OrganizationAccountAccessRole")


def test_cross_region_endpoints_are_allowed_only_on_endpoints_and_endpoint_services() -> None:
    assert allowed("vpce:AllowMultiRegion", ENDPOINT)
    service = f"arn:aws:ec2:eu-west-1:{ACCOUNT}:vpc-endpoint-service/vpce-svc-0123456789abcdef0"
    assert allowed("vpce:AllowMultiRegion", service)
    assert not allowed("vpce:AllowMultiRegion", f"arn:aws:ec2:us-east-1:{ACCOUNT}:vpc/vpc-0123456789abcdef0")


# -- The policy derived from the code: every AWS call it makes, with the parameters it passes. --------------

SERVICE_OF_CLIENT = {"ec2": "ec2", "r53": "route53", "route53": "route53"}


@dataclass(frozen=True)
class AwsCall:
    """One AWS API call in the operator's code: its IAM-style name and the request parameters it may pass."""

    api: str  # "ec2:CreateVpcEndpoint"
    parameters: dict[str, Any]  # name -> constant value, or ... when the code computes it
    where: str


@functools.cache
def _operations(service: str) -> dict[str, str]:
    """boto3's snake_case method names -> the API's operation names (ListHostedZonesByVPC, not ...Vpc)."""
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(name): name for name in model.operation_names}


def _input_members(service: str, operation: str) -> set[str]:
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    return set(shape.members) if shape is not None else set()


def _parameters(call: ast.Call, scope: ast.AST, members: set[str]) -> dict[str, Any]:
    """The request parameters a call may pass: its keywords, and for ``**params`` every member name the
    enclosing function writes as a string (a dict key, a subscript, a tuple of names looped over). A value is
    known only when the code writes it as a constant right beside the name."""
    found: dict[str, Any] = {}

    def note(name: str, value: ast.AST | None) -> None:
        if name in members:
            known = isinstance(value, ast.Constant)
            found[name] = value.value if known and isinstance(value, ast.Constant) else ...

    for keyword in call.keywords:
        if keyword.arg is not None:
            note(keyword.arg, keyword.value)
    if any(keyword.arg is None for keyword in call.keywords):
        for node in ast.walk(scope):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        note(key.value, value)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value not in found:
                note(node.value, None)
    return found


def _calls_in(path: Path) -> Iterator[AwsCall]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            call, receiver = node, node.func.value
            if node.func.attr == "paginate" and isinstance(receiver, ast.Call):
                # client.get_paginator("describe_vpc_endpoints").paginate(...): the paginator's call
                inner = receiver
                if not (isinstance(inner.func, ast.Attribute) and inner.func.attr == "get_paginator"):
                    continue
                method = inner.args[0].value if isinstance(inner.args[0], ast.Constant) else None
                receiver = inner.func.value
            else:
                method = node.func.attr
            name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", None)
            if name not in SERVICE_OF_CLIENT or method == "get_paginator":
                continue
            service = SERVICE_OF_CLIENT[name]
            operations = _operations(service)
            assert method in operations, f"{path.name}:{node.lineno}: {service} has no operation {method}"
            operation = operations[str(method)]
            members = _input_members(service, operation)
            yield AwsCall(
                f"{service}:{operation}",
                _parameters(call, function, members),
                f"{path.relative_to(ROOT)}:{node.lineno}",
            )
        for node in ast.walk(function):
            if isinstance(node, ast.Name) and node.id == "AssumeRoleCredentialFetcher":
                # botocore assumes the role itself (spec.aws.roleArn), with these extra arguments.
                yield AwsCall(
                    "sts:AssumeRole", {"RoleSessionName": ...}, f"{path.relative_to(ROOT)}:{node.lineno}"
                )


@functools.cache
def aws_calls() -> tuple[AwsCall, ...]:
    return tuple(call for path in sorted(OPERATOR.rglob("*.py")) for call in _calls_in(path))


def _condition_holds(condition: str, parameters: dict[str, Any]) -> bool:
    name, has_value, value = condition.partition("=")
    if name not in parameters:
        return False
    passed = parameters[name]
    return not has_value or passed is ... or repr(passed) == value


def required_actions(call: AwsCall, identity: str) -> set[str]:
    """The IAM actions a call needs, per deploy/iam-actions.yaml."""
    entry = REQUIRED.get(call.api)
    assert entry is not None, f"{call.where}: {call.api} is not in deploy/iam-actions.yaml: add what it needs"
    needed = set(entry["actions"])
    for condition, actions in (entry.get("when") or {}).items():
        if _condition_holds(condition, call.parameters):
            needed |= set(actions)
    needed |= set((entry.get("identity") or {}).get(identity, []))
    return needed


def needed_by_the_code() -> dict[str, set[str]]:
    """Every action the code's calls need, under every documented pod identity -> where it is needed."""
    needed: dict[str, set[str]] = {}
    for call in aws_calls():
        for identity in IDENTITIES:
            for action in required_actions(call, identity):
                needed.setdefault(action, set()).add(f"{call.where} ({call.api})")
    return needed


def test_the_calls_are_found_with_their_parameters() -> None:
    calls = {call.api: call for call in aws_calls()}
    assert {"ec2:CreateVpcEndpoint", "route53:ChangeResourceRecordSets", "sts:AssumeRole"} <= set(calls)
    create = calls["ec2:CreateVpcEndpoint"].parameters
    assert {"ServiceRegion", "TagSpecifications", "PrivateDnsEnabled"} <= set(create)
    assert create["PrivateDnsEnabled"] is False


def test_a_cross_region_endpoint_needs_allow_multi_region_and_the_policy_grants_it() -> None:
    (create,) = [c for c in aws_calls() if c.api == "ec2:CreateVpcEndpoint"]
    assert "vpce:AllowMultiRegion" in required_actions(create, "irsa")
    same_region = AwsCall(
        create.api, {k: v for k, v in create.parameters.items() if k != "ServiceRegion"}, ""
    )
    assert "vpce:AllowMultiRegion" not in required_actions(same_region, "irsa")
    assert allowed("vpce:AllowMultiRegion", ENDPOINT)


def test_the_policy_grants_every_action_the_code_needs() -> None:
    granted = policy_actions()
    missing = {
        action: sorted(where) for action, where in needed_by_the_code().items() if action not in granted
    }
    assert missing == {}


def test_the_policy_grants_nothing_the_code_does_not_need() -> None:
    assert policy_actions() - set(needed_by_the_code()) == set()


def test_the_table_lists_only_calls_the_code_makes() -> None:
    assert set(REQUIRED) - {call.api for call in aws_calls()} == set()
