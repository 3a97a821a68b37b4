"""The CRD comes from the models: the committed file is the rendered one, and it carries the whole API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from clickhouse_privatelink.api.crd import render_crd, render_crd_yaml
from clickhouse_privatelink.api.models import ClickHousePrivateLinkSpec, DeletionPolicy, DnsMode

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
