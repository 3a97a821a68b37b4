"""The tenancy policy: which namespace may name which VPC, role, zone, organization, API URL and Secret keys."""

from __future__ import annotations

from typing import Any

import pytest

from clickhouse_privatelink.api.models import ClickHousePrivateLinkPolicySpec, ClickHousePrivateLinkSpec
from clickhouse_privatelink.decisions.tenancy import Policy, api_url_allowed, decide

ORG = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
OTHER_ORG = "11111111-2222-4333-8444-555555555555"
VPC = "vpc-0123456789abcdef0"
ROLE = "arn:aws:iam::123456789012:role/chpl"


def spec(**changes: Any) -> ClickHousePrivateLinkSpec:
    body: dict[str, Any] = {
        "clickhouse": {
            "organizationId": ORG,
            "serviceName": "analytics",
            "credentialsSecretRef": {"name": "clickhouse-api-key"},
        },
        "aws": {"region": "us-east-1", "vpcId": VPC, "subnetIds": ["subnet-0123456789abcdef0"]},
    }
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = body
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return ClickHousePrivateLinkSpec.model_validate(body)


def policy(name: str = "team-a", *, names: list[str] | None = None, **allow: Any) -> Policy:
    body: dict[str, Any] = {
        "namespaces": {"names": ["team-a"] if names is None else names},
        "allow": {"vpcIds": [VPC], "organizationIds": [ORG], **allow},
    }
    return Policy(name, ClickHousePrivateLinkPolicySpec.model_validate(body))


def test_without_any_policy_every_namespace_is_refused_and_told_why() -> None:
    verdict = decide("team-a", {}, spec(), [])
    assert not verdict.permitted
    assert "no ClickHousePrivateLinkPolicy selects namespace team-a" in verdict.message


def test_a_policy_permits_what_it_lists_for_the_namespaces_it_names() -> None:
    verdict = decide("team-a", {}, spec(), [policy()])
    assert verdict.permitted and verdict.require_opt_in
    assert not decide("team-b", {}, spec(), [policy()]).permitted


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (
            {"aws__vpcId": "vpc-0fedcba9876543210"},
            "spec.aws.vpcId vpc-0fedcba9876543210 is not in allow.vpcIds",
        ),
        ({"aws__roleArn": ROLE}, f"spec.aws.roleArn {ROLE} is not in allow.roleArns"),
        (
            {"dns__hostedZoneId": "Z0123456789ABC"},
            "spec.dns.hostedZoneId Z0123456789ABC is not in allow.hostedZoneIds",
        ),
        (
            {"clickhouse__organizationId": OTHER_ORG},
            f"spec.clickhouse.organizationId {OTHER_ORG} is not in allow.organizationIds",
        ),
        (
            {"clickhouse__credentialsSecretRef": {"name": "db", "keyIdKey": "username"}},
            "spec.clickhouse.credentialsSecretRef.keyIdKey 'username' is not one of the keys",
        ),
        (
            {"clickhouse__credentialsSecretRef": {"name": "db", "keySecretKey": "password"}},
            "spec.clickhouse.credentialsSecretRef.keySecretKey 'password' is not one of the keys",
        ),
    ],
)
def test_a_foreign_object_is_refused_naming_the_policy_and_the_field(
    changes: dict[str, Any], field: str
) -> None:
    verdict = decide("team-a", {}, spec(**changes), [policy()])
    assert not verdict.permitted
    assert verdict.message.startswith("not permitted by the tenancy policy: policy team-a: ")
    assert field in verdict.message


def test_globs_and_star_allow_families_of_values() -> None:
    wide = policy(names=["team-*"], vpcIds=["*"], roleArns=["arn:aws:iam::123456789012:role/*"])
    assert decide("team-z", {}, spec(aws__vpcId="vpc-0fedcba9876543210", aws__roleArn=ROLE), [wide]).permitted
    other_account = "arn:aws:iam::999999999999:role/chpl"
    assert not decide("team-z", {}, spec(aws__roleArn=other_account), [wide]).permitted
    assert not decide("platform", {}, spec(), [wide]).permitted


def test_one_policy_must_allow_everything_policies_are_never_combined_field_by_field() -> None:
    vpc_only = policy("vpc", vpcIds=["vpc-0fedcba9876543210"], organizationIds=[ORG])
    org_only = policy("org", vpcIds=[VPC], organizationIds=[OTHER_ORG])
    mixed = spec(aws__vpcId="vpc-0fedcba9876543210", clickhouse__organizationId=OTHER_ORG)
    verdict = decide("team-a", {}, mixed, [vpc_only, org_only])
    assert not verdict.permitted
    # Both refusals are named, in the policies' order.
    assert verdict.message.index("policy org:") < verdict.message.index("policy vpc:")


def test_namespaces_selected_by_label() -> None:
    labelled = Policy(
        "by-label",
        ClickHousePrivateLinkPolicySpec.model_validate(
            {
                "namespaces": {
                    "selector": {
                        "matchLabels": {"tenant": "analytics"},
                        "matchExpressions": [
                            {"key": "tier", "operator": "In", "values": ["prod", "dev"]},
                            {"key": "frozen", "operator": "DoesNotExist"},
                        ],
                    }
                },
                "allow": {"vpcIds": [VPC], "organizationIds": [ORG]},
            }
        ),
    )
    assert decide("x", {"tenant": "analytics", "tier": "dev"}, spec(), [labelled]).permitted
    assert not decide("x", {"tenant": "analytics", "tier": "qa"}, spec(), [labelled]).permitted
    assert not decide("x", {"tenant": "analytics", "tier": "dev", "frozen": ""}, spec(), [labelled]).permitted
    assert not decide("x", None, spec(), [labelled]).permitted  # labels not known (yet): not selected


def test_api_urls_are_compared_normalized_and_star_leaves_it_to_the_operators_list() -> None:
    pinned = policy(apiUrls=["https://api.clickhouse.cloud/v1/"])
    assert decide(
        "team-a", {}, spec(clickhouse__apiUrl="https://API.clickhouse.cloud:443"), [pinned]
    ).permitted
    assert not decide("team-a", {}, spec(clickhouse__apiUrl="https://api.example"), [pinned]).permitted
    assert decide("team-a", {}, spec(clickhouse__apiUrl="https://api.example"), [policy()]).permitted


def test_a_policy_may_allow_more_secret_keys_and_waive_the_opt_in() -> None:
    custom = spec(clickhouse__credentialsSecretRef={"name": "k", "keyIdKey": "id", "keySecretKey": "secret"})
    base = {"namespaces": {"names": ["team-a"]}, "allow": {"vpcIds": [VPC], "organizationIds": [ORG]}}
    loose = Policy(
        "loose",
        ClickHousePrivateLinkPolicySpec.model_validate(
            {**base, "secrets": {"keys": ["id", "secret"], "requireOptIn": False}}
        ),
    )
    verdict = decide("team-a", {}, custom, [loose])
    assert verdict.permitted and not verdict.require_opt_in
    # With another permitting policy that wants the opt-in, it is wanted.
    assert decide("team-a", {}, spec(), [loose, policy()]).require_opt_in


@pytest.mark.parametrize(
    "url",
    ["https://api.clickhouse.cloud/v1", "https://api.clickhouse.cloud/v1/", "https://api.clickhouse.cloud/"],
)
def test_api_url_with_the_version_is_accepted_stripped_and_allowed(url: str) -> None:
    assert spec(clickhouse__apiUrl=url).clickhouse.api_url == "https://api.clickhouse.cloud"
    assert api_url_allowed(url, ["https://api.clickhouse.cloud"])
    assert api_url_allowed("https://api.clickhouse.cloud", [url])
    assert not api_url_allowed("https://api.clickhouse.cloud/v2", [url])


def test_a_namespace_not_seen_yet_is_refused_for_now_only_when_a_policy_selects_by_label() -> None:
    by_label = Policy(
        "by-label",
        ClickHousePrivateLinkPolicySpec.model_validate(
            {"namespaces": {"selector": {"matchLabels": {"tenant": "a"}}}, "allow": {"vpcIds": ["*"]}}
        ),
    )
    assert not decide("new", None, spec(), [by_label]).settled
    assert decide("new", {}, spec(), [by_label]).settled
    assert decide("new", None, spec(), [policy()]).settled


def test_an_empty_selector_selects_no_namespace_as_the_api_server_defaults_an_absent_one_to_it() -> None:
    named = Policy(
        "named",
        ClickHousePrivateLinkPolicySpec.model_validate(
            {
                "namespaces": {"names": ["team-a"], "selector": {}},
                "allow": {"vpcIds": [VPC], "organizationIds": [ORG]},
            }
        ),
    )
    assert decide("team-a", {}, spec(), [named]).permitted
    assert not decide("team-b", {"any": "label"}, spec(), [named]).permitted
