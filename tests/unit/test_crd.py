"""The CRD comes from the models: the committed file is the rendered one, and it carries the whole API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from clickhouse_privatelink.api.crd import render_crd, render_crd_yaml
from clickhouse_privatelink.api.models import ClickHousePrivateLinkSpec, DeletionPolicy, DnsMode
from tests.fixtures.kubernetes import AsyncKube, KubeApiError
from tests.standins.kube_samples import chpl, cr_path

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "clickhouseprivatelinks.yaml"


def spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return dict(schema["properties"]["spec"])


def test_committed_crd_is_the_one_rendered_from_the_models() -> None:
    assert CRD_FILE.read_text(encoding="utf-8") == render_crd_yaml(), "run `make crd` and commit the result"


def test_crd_names_scope_and_version() -> None:
    crd = render_crd()
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "clickhouseprivatelinks.privatelink.clickhouse.dev"
    assert spec["group"] == "privatelink.clickhouse.dev" and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "ClickHousePrivateLink"
    assert spec["names"]["plural"] == "clickhouseprivatelinks"
    assert spec["names"]["shortNames"] == ["chpl"] and spec["names"]["categories"] == ["clickhouse"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns_show_ready_hostname_endpoint_and_age() -> None:
    columns = render_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    shown = [c["name"] for c in columns if not c.get("priority")]
    assert shown == ["Ready", "Hostname", "Endpoint", "Age"]
    by_name = {c["name"]: c["jsonPath"] for c in columns}
    assert by_name["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert by_name["Hostname"] == ".status.privateDnsHostname"


def test_schema_has_patterns_required_fields_and_defaults() -> None:
    spec = spec_schema()
    ch, aws, dns = (spec["properties"][k] for k in ("clickhouse", "aws", "dns"))
    assert set(spec["required"]) == {"clickhouse", "aws"}
    assert set(ch["required"]) == {"organizationId", "credentialsSecretRef"}
    assert set(aws["required"]) == {"region", "vpcId"}
    assert aws["properties"]["vpcId"]["pattern"].startswith("^vpc-")
    assert aws["properties"]["subnetIds"]["items"]["pattern"].startswith("^subnet-")
    assert aws["properties"]["securityGroupIds"]["items"]["pattern"].startswith("^sg-")
    assert aws["properties"]["vpcEndpointId"]["pattern"].startswith("^vpce-")
    assert "[0-9a-fA-F]{8}-" in ch["properties"]["organizationId"]["pattern"]
    assert dns["properties"]["mode"] == {
        **dns["properties"]["mode"],
        "enum": ["Route53", "None"],
        "default": "Route53",
    }
    assert spec["properties"]["deletionPolicy"]["default"] == "Delete"
    assert dns["default"] == {}
    assert ch["properties"]["credentialsSecretRef"]["properties"]["keyIdKey"]["default"] == "keyId"


def test_cel_rules_cover_one_of_service_and_immutability() -> None:
    spec = spec_schema()
    ch, aws = spec["properties"]["clickhouse"], spec["properties"]["aws"]
    assert [r["rule"] for r in ch["x-kubernetes-validations"]] == [
        "has(self.serviceId) != has(self.serviceName)"
    ]
    for node in (ch["properties"]["organizationId"], aws["properties"]["vpcId"], aws["properties"]["region"]):
        assert node["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"


def _nodes(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every property of ``schema`` (and object-typed list items, ``[]``), with its dotted path."""
    out: list[tuple[str, dict[str, Any]]] = []
    for name, sub in schema.get("properties", {}).items():
        out.append((f"{path}.{name}", sub))
        out.extend(_nodes(sub, f"{path}.{name}"))
    items = schema.get("items")
    if isinstance(items, dict):
        out.append((f"{path}[]", items))
        out.extend(_nodes(items, f"{path}[]"))
    return out


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    root = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    nodes = _nodes(root)
    assert len(nodes) > 46 and any(p == ".status.conditions[].reason" for p, _ in nodes)
    # The structural-schema rules forbid anything but `type` under the root's metadata (a description
    # there made every real kube-apiserver refuse the CRD): kubectl explain takes metadata from ObjectMeta.
    assert root["properties"]["metadata"] == {"type": "object"}
    missing = [
        path for path, node in nodes if path != ".metadata" and not str(node.get("description", "")).strip()
    ]
    assert missing == [], f"fields without a description (kubectl explain shows nothing): {missing}"


def test_every_pattern_has_a_cel_rule_with_a_message_and_a_bounded_length() -> None:
    """Where a pattern fails, the CEL rule beside it tells the user what the value should look like."""
    shaped = {
        ".spec.clickhouse.organizationId",
        ".spec.clickhouse.serviceId",
        ".spec.aws.region",
        ".spec.aws.vpcId",
        ".spec.aws.subnetIds[]",
        ".spec.aws.securityGroupIds[]",
        ".spec.aws.vpcEndpointId",
        ".spec.aws.roleArn",
        ".spec.dns.hostedZoneId",
    }
    nodes = dict(_nodes(spec_schema(), ".spec"))
    for path in shaped:
        node = nodes[path]
        rules = {r["rule"]: r["message"] for r in node["x-kubernetes-validations"]}
        message = rules[f"self.matches('{node['pattern']}')"]
        assert path.rstrip("[]").rsplit(".", 1)[-1] in message and "like" in message, (path, message)
        assert "^" not in message and 0 < node["maxLength"] <= 2048, path


async def _causes(akube: AsyncKube, body: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(KubeApiError) as err:
        await akube.request("POST", cr_path("default"), body=body)
    assert err.value.status == 422, err.value.body
    return [(c["field"], c["message"]) for c in err.value.body["details"]["causes"]]


@pytest.mark.parametrize(
    ("section", "field", "value", "message"),
    [
        ("aws", "vpcId", "vpc-XYZ", "vpcId must look like vpc-0123456789abcdef0"),
        ("aws", "vpcEndpointId", "endpoint-1", "vpcEndpointId must look like vpce-0123456789abcdef0"),
        ("aws", "region", "US East", "region must be an AWS region code like us-east-1"),
        ("aws", "roleArn", "chpl", "roleArn must look like arn:aws:iam::123456789012:role/NAME"),
        ("clickhouse", "organizationId", "org-1", "organizationId must be a UUID like"),
        (
            "dns",
            "hostedZoneId",
            "zone-1",
            "hostedZoneId must be a Route 53 hosted zone ID like Z0123456789AB",
        ),
    ],
)
async def test_kubernetes_api_answers_a_bad_id_with_the_rule_message(
    akube: AsyncKube, section: str, field: str, value: str, message: str
) -> None:
    body = chpl("bad-id")
    body["spec"].setdefault(section, {})[field] = value
    causes = await _causes(akube, body)
    assert any(f == f"spec.{section}.{field}" and message in m for f, m in causes), causes


async def test_kubernetes_api_names_the_bad_list_entry(akube: AsyncKube) -> None:
    body = chpl("bad-list")
    body["spec"]["aws"]["subnetIds"] = ["subnet-0123456789abcdef0", "subnet-A"]
    body["spec"]["aws"]["securityGroupIds"] = ["default"]
    causes = await _causes(akube, body)
    assert (
        "spec.aws.subnetIds[1]",
        'Invalid value: "subnet-A": each of subnetIds must look like subnet-0123456789abcdef0',
    ) in causes, causes
    assert any(
        f == "spec.aws.securityGroupIds[0]" and "must look like sg-0123456789abcdef0" in m for f, m in causes
    ), causes


@pytest.mark.parametrize(
    ("public_access", "field", "message"),
    [
        (
            {"mode": "AllowList"},
            "spec.clickhouse.publicAccess",
            "publicAccess.sources is required with mode AllowList and allowed only with it",
        ),
        (
            {"mode": "PrivateOnly", "sources": ["10.0.0.0/8"]},
            "spec.clickhouse.publicAccess",
            "publicAccess.sources is required with mode AllowList and allowed only with it",
        ),
        (
            {"mode": "AllowList", "sources": ["10.0.0.0/8", "10.0.0.300"]},
            "spec.clickhouse.publicAccess.sources[1]",
            "each of publicAccess.sources must be an IPv4 address or CIDR like 203.0.113.0/24",
        ),
        ({"mode": "Closed"}, "spec.clickhouse.publicAccess.mode", "Unsupported value"),
    ],
)
async def test_kubernetes_api_explains_a_bad_public_access(
    akube: AsyncKube, public_access: dict[str, Any], field: str, message: str
) -> None:
    body = chpl("bad-public-access")
    body["spec"]["clickhouse"]["publicAccess"] = public_access
    causes = await _causes(akube, body)
    assert any(f == field and message in m for f, m in causes), causes


def test_status_schema_carries_every_reported_field() -> None:
    status = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"][
        "properties"
    ]
    for key in (
        "observedGeneration", "conditions", "privateDnsHostname", "endpointServiceId", "serviceId",
        "vpcEndpointId", "vpcEndpointState", "hostedZoneId", "endpoints",
    ):  # fmt: skip
        assert key in status, key
    assert status["conditions"]["x-kubernetes-list-type"] == "map"


def test_models_apply_the_same_defaults_and_patterns_as_the_crd() -> None:
    spec = ClickHousePrivateLinkSpec.model_validate(
        {
            "clickhouse": {
                "organizationId": "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
                "serviceName": "analytics",
                "credentialsSecretRef": {"name": "key"},
            },
            "aws": {
                "region": "us-east-1",
                "vpcId": "vpc-0123456789abcdef0",
                "subnetIds": ["subnet-0123456789abcdef0"],
            },
        }
    )
    assert spec.dns.mode is DnsMode.ROUTE53 and spec.deletion_policy is DeletionPolicy.DELETE
    assert spec.clickhouse.credentials_secret_ref.key_id_key == "keyId"
    with pytest.raises(ValidationError):
        ClickHousePrivateLinkSpec.model_validate(
            {
                "clickhouse": {"organizationId": "not-a-uuid", "credentialsSecretRef": {"name": "key"}},
                "aws": {"region": "us-east-1", "vpcId": "vpc-1"},
            }
        )


BAD_TAGS = [
    ({"": "v"}, "tag keys must be 1 to 128 characters long"),
    ({"k" * 129: "v"}, "tag keys must be 1 to 128 characters long"),
    ({"line\nbreak": "v"}, "tag keys may hold only letters, digits, spaces and _ . : / = + - @"),
    ({"nul\x00": "v"}, "tag keys may hold only"),
    ({"team": "esc\x1b[31m"}, "tag values may hold only"),
    ({"team": "a\tb"}, "tag values may hold only"),
    ({"team": "x" * 257}, "256"),
    ({"aws:cost": "v"}, "tag keys may not start with aws: in any case"),
    ({"AWS:cost": "v"}, "tag keys may not start with aws: in any case"),
    ({"Aws:cost": "v"}, "tag keys may not start with aws: in any case"),
    (
        {"privatelink.clickhouse.dev/cluster": "v"},
        "may not start with privatelink.clickhouse.dev/ in any case",
    ),
    (
        {"PrivateLink.ClickHouse.dev/cluster": "v"},
        "may not start with privatelink.clickhouse.dev/ in any case",
    ),
    ({"Name": "mine"}, "the Name tag is the operator's"),
]


@pytest.mark.parametrize(("tags", "message"), BAD_TAGS)
async def test_kubernetes_api_refuses_tags_aws_would_refuse(
    akube: AsyncKube, tags: dict[str, str], message: str
) -> None:
    body = chpl("bad-tags")
    body["spec"]["aws"]["tags"] = tags
    causes = await _causes(akube, body)
    assert any(f.startswith("spec.aws.tags") and message in m for f, m in causes), causes
    with pytest.raises(ValidationError):  # the operator's own model agrees (a spec read past the schema)
        ClickHousePrivateLinkSpec.model_validate(body["spec"])


async def test_tags_aws_accepts_are_accepted(akube: AsyncKube) -> None:
    body = chpl("good-tags")
    tags = {
        "team": "analytics",
        "cost-center": "42",
        "owner@corp": "a.b:c/d=e+f-g",
        "Ümlaut 数据": "",
        "name": "x",
    }
    body["spec"]["aws"]["tags"] = tags
    await akube.request("POST", cr_path("default"), body=body)
    assert ClickHousePrivateLinkSpec.model_validate(body["spec"]).aws.tags == tags
