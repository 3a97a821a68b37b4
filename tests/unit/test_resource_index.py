"""The one index of ClickHousePrivateLinks (wiring/index.py): every key a handler looks a resource up by."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import kopf

from clickhouse_privatelink.decisions.usage import usage_from_body
from clickhouse_privatelink.wiring import index


def _body(name: str = "db", *, namespace: str = "team-a", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "creationTimestamp": "t"},
        "spec": {
            "clickhouse": {"serviceId": "svc-1", "credentialsSecretRef": {"name": "ch-key"}},
            "aws": {"region": "us-east-1", "vpcId": "vpc-1", "subnetIds": ["subnet-1"]},
        },
        "status": {"hostedZoneId": "Z1"},
    }
    for key, value in extra.items():
        body[key] = {**body[key], **value}
    return body


async def _keys(body: dict[str, Any], *, secrets: bool = False) -> dict[Hashable, Any]:
    return await index.index_function(secrets=secrets)(body=kopf.Body(body))


async def test_a_resource_is_filed_by_its_vpc_and_its_zone() -> None:
    body = _body()
    keys = await _keys(body)
    usage = usage_from_body(kopf.Body(body))
    assert keys == {("us-east-1", "vpc-1"): usage, "Z1": usage}
    resources: dict[Hashable, list[Any]] = {key: [value] for key, value in keys.items()}
    assert list(index.vpc_users(resources, usage)) == [usage]
    assert list(index.zone_users(resources, usage)) == [usage]
    assert index.refused_namespaces(resources) == []
    assert index.public_access_users(resources, "svc-1") == []


async def test_a_pass_reads_the_index_as_it_is_not_as_it_was() -> None:
    """A pass holds its VPC's and zone's users for its whole life: it reads the index through them each time,
    and holds no copy (a thousand passes waiting in rounds held a list of every user of the VPC each)."""
    first, second = usage_from_body(kopf.Body(_body("a"))), usage_from_body(kopf.Body(_body("b")))
    resources: dict[Hashable, list[Any]] = {}
    in_vpc, in_zone = index.vpc_users(resources, first), index.zone_users(resources, first)
    assert list(in_vpc) == [] and list(in_zone) == []
    resources[("us-east-1", "vpc-1")] = [first, second]
    resources["Z1"] = [second]
    assert list(in_vpc) == [first, second]
    assert list(in_zone) == [second]
    del resources[("us-east-1", "vpc-1")]
    assert list(in_vpc) == []


async def test_refused_public_access_and_secret_keys() -> None:
    refused = {"conditions": [{"type": "Ready", "status": "False", "reason": "NotPermitted"}]}
    body = _body(
        status=refused,
        spec={
            "clickhouse": {
                "serviceId": "svc-1",
                "credentialsSecretRef": {"name": "ch-key"},
                "publicAccess": {"mode": "PrivateOnly"},
            }
        },
    )
    keys = await _keys(body, secrets=True)
    assert keys[index.Refused("team-a")] == "db"
    assert keys[index.PublicAccessOf("svc-1")].resource == "team-a/db"
    assert keys[index.SecretUsers("team-a", "ch-key")] == "db"
    resources = {key: [value, value] for key, value in keys.items()}
    assert index.refused_namespaces(resources) == ["team-a"]
    assert index.refused_in(resources, "team-a") == ["db"]
    assert index.refused_in(resources, "team-b") == []
    assert index.secret_users(resources, "team-a", "ch-key") == ["db"]
    assert [u.service_id for u in index.public_access_users(resources, "svc-1")] == ["svc-1", "svc-1"]
    # Without the Secret watch, nothing is filed by Secret.
    assert not any(isinstance(key, index.SecretUsers) for key in await _keys(body))


def test_keys_of_different_kinds_never_meet() -> None:
    # A namespace, a service ID and a Secret never stand for one another or for a zone ID or a (region, VPC).
    kinds: list[Hashable] = [
        index.Refused("x"),
        index.PublicAccessOf("x"),
        index.SecretUsers("x", "y"),
        "x",
        ("x", "y"),
    ]
    assert len(set(kinds)) == len(kinds)
