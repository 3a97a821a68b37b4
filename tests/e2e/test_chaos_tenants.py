"""Cross-tenant safety: a tenant's resource never changes another tenant's objects, whatever it names.

Tenant B (its own namespace) is Ready; tenant A, in another namespace, tries what a hostile or careless
tenant would: naming B's private zone from another VPC (not associated, then associated with A's VPC too,
where B's record for the same service is there to take over), sharing B's endpoint with
``deletionPolicy: Retain``, and adopting B's endpoint by ID. Each case takes a snapshot of B's objects (its
endpoint with its tags, its zone, its record, its allow-list and organization entries, its Ready condition)
before A comes and after A has come, been reconciled a few times and gone; every difference is counted in
``foreign objects changed`` in the chaos summary line, and must be 0.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from clickhouse_privatelink_testkit.sandbox import Kube
from clickhouse_privatelink_testkit.standins.aws import Network, seed_network
from tests.e2e import chaos_report
from tests.e2e.conftest import READY_TIMEOUT, Cloud, Link, LinkFactory, OperatorProcess
from tests.fixtures.aws import AwsTarget
from tests.fixtures.clickhouse import ClickHouseOrg
from tests.fixtures.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.standin_only]

Tenant = Callable[[Network], LinkFactory]


@pytest.fixture
def tenant_a(k8s: Kube, operator: OperatorProcess, clickhouse_org: ClickHouseOrg) -> Iterator[Tenant]:
    """Another tenant: its own namespace and API-key Secret, in a VPC of the test's choosing."""
    factories: list[tuple[str, LinkFactory]] = []

    def make(network: Network) -> LinkFactory:
        namespace = f"tenant-a-{uuid.uuid4().hex[:8]}"
        k8s.core.create_namespace({"metadata": {"name": namespace}})
        factory = LinkFactory(k8s, operator, namespace, clickhouse_org, network)
        factory.secret(LinkFactory.SECRET, clickhouse_org.key_id, clickhouse_org.key_secret)
        factories.append((namespace, factory))
        return factory

    yield make
    for namespace, factory in factories:
        factory.cleanup()
        with contextlib.suppress(ApiException):
            k8s.core.delete_namespace(namespace)


def snapshot(cloud: Cloud, b: Link, service_id: str) -> dict[str, Any]:
    """Tenant B's objects, as AWS and ClickHouse hold them."""
    status = b.status()
    endpoint = cloud.endpoint(status["vpcEndpointId"]) or {}
    zone_id = status["hostedZoneId"]
    zone = cloud.r53.get_hosted_zone(Id=zone_id)
    zone_tags = cloud.r53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id)
    return {
        "endpoint": endpoint.get("VpcEndpointId"),
        "endpoint state": endpoint.get("State"),
        "endpoint tags": sorted((t["Key"], t["Value"]) for t in endpoint.get("Tags", [])),
        "endpoint subnets": sorted(endpoint.get("SubnetIds", [])),
        "zone": zone["HostedZone"]["Id"],
        "zone tags": sorted((t["Key"], t["Value"]) for t in zone_tags["ResourceTagSet"].get("Tags", [])),
        "record": cloud.records(zone_id, status["privateDnsHostname"]),
        # B's own entries (A's endpoint may have entries of its own beside them).
        "allow-list entry": status["vpcEndpointId"] in cloud.allow_list(service_id),
        "organization entry": status["vpcEndpointId"] in cloud.org_entries(),
        "ready": (b.condition("Ready") or {}).get("status"),
    }


def tenant_b(make_link: LinkFactory, cloud: Cloud, org: ClickHouseOrg) -> tuple[Link, dict[str, Any]]:
    """Tenant B, Ready, and the snapshot of its objects before tenant A comes."""
    b = make_link(name="b")
    b.wait_ready()
    return b, snapshot(cloud, b, org.service_id)


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [k for k in before if before[k] != after.get(k)]


def settle(operator: OperatorProcess, passes: int = 3) -> None:
    """Let every resource be checked again a few times (drift checks every 2 s here): a flip-flop would show."""
    start = operator.metric("chpl_reconciles_total", kind="drift")
    wait_for(
        lambda: operator.metric("chpl_reconciles_total", kind="drift") >= start + passes,
        timeout=READY_TIMEOUT,
        message=f"{passes} more drift checks",
    )


def count(name: str, before: dict[str, Any], after: dict[str, Any]) -> None:
    diff = changed(before, after)
    chaos_report.record(foreign_objects_changed=len(diff))
    chaos_report.REPORT.detail(f"tenants: {name}", diff)
    assert diff == [], {k: (before[k], after.get(k)) for k in diff}


def test_a_zone_not_associated_with_the_resources_vpc_is_refused_with_a_clear_reason(
    make_link: LinkFactory,
    cloud: Cloud,
    aws_target: AwsTarget,
    clickhouse_org: ClickHouseOrg,
    tenant_a: Tenant,
) -> None:
    b, before = tenant_b(make_link, cloud, clickhouse_org)
    assert aws_target.endpoint_url is not None
    network_a = seed_network(aws_target.endpoint_url, "us-east-1", cidr="10.43.0.0/16")
    a = tenant_a(network_a)(
        name="a", dns={"mode": "Route53", "hostedZoneId": before["zone"].rsplit("/", 1)[-1]}
    )
    cond = a.wait_condition("Ready", status="False", reason="HostedZoneNotFound")
    assert network_a.vpc_id in cond["message"] and "not associated" in cond["message"]
    count("zone of another VPC", before, snapshot(cloud, b, clickhouse_org.service_id))
    a.delete()
    a.wait_gone()
    count("zone of another VPC, A deleted", before, snapshot(cloud, b, clickhouse_org.service_id))


def test_another_vpc_sharing_a_tenants_zone_never_takes_its_record_over(
    make_link: LinkFactory,
    cloud: Cloud,
    operator: OperatorProcess,
    aws_target: AwsTarget,
    clickhouse_org: ClickHouseOrg,
    tenant_a: Tenant,
) -> None:
    b, before = tenant_b(make_link, cloud, clickhouse_org)
    zone_id = b.status()["hostedZoneId"]
    assert aws_target.endpoint_url is not None
    network_a = seed_network(aws_target.endpoint_url, "us-east-1", cidr="10.43.0.0/16")
    # B's zone associated with A's VPC too (as a careless administrator might): B's record is still B's.
    cloud.r53.associate_vpc_with_hosted_zone(
        HostedZoneId=zone_id, VPC={"VPCRegion": network_a.region, "VPCId": network_a.vpc_id}
    )
    a = tenant_a(network_a)(name="a", dns={"mode": "Route53", "hostedZoneId": zone_id})
    cond = a.wait_condition("DnsReady", status="False", reason="DnsRecordConflict")
    assert b.status()["privateDnsHostname"] in cond["message"] and network_a.vpc_id in cond["message"]
    settle(operator)
    assert (a.condition("DnsReady") or {}).get("reason") == "DnsRecordConflict"  # no flip-flop
    count("record takeover", before, snapshot(cloud, b, clickhouse_org.service_id))

    a.delete()
    a.wait_gone()
    settle(operator)
    count("record takeover, A deleted", before, snapshot(cloud, b, clickhouse_org.service_id))


def test_a_retain_user_of_a_shared_endpoint_pins_nothing_its_owner_is_responsible_for(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg, tenant_a: Tenant
) -> None:
    b, before = tenant_b(make_link, cloud, clickhouse_org)
    a = tenant_a(make_link.network)(name="a", deletionPolicy="Retain")
    status = a.wait_ready()
    assert status["vpcEndpointId"] == before["endpoint"]  # one endpoint, shared
    a.delete()
    a.wait_gone()
    count("retain", before, snapshot(cloud, b, clickhouse_org.service_id))
    a.wait_events("RetainNotApplied")

    # B, the endpoint's last user, goes with everything: nothing kept alive by A's Retain.
    b.delete()
    b.wait_gone()
    wait_for(
        lambda: not cloud.live_endpoints() and not cloud.zones() and not cloud.org_entries(),
        timeout=READY_TIMEOUT,
        message="B's endpoint, zone and organization entry to go",
    )
    assert cloud.allow_list(clickhouse_org.service_id) == []


def test_adopting_another_tenants_endpoint_changes_none_of_its_objects(
    make_link: LinkFactory,
    cloud: Cloud,
    operator: OperatorProcess,
    clickhouse_org: ClickHouseOrg,
    tenant_a: Tenant,
) -> None:
    b, before = tenant_b(make_link, cloud, clickhouse_org)
    a = tenant_a(make_link.network)(name="a", aws={"vpcEndpointId": before["endpoint"]})
    a.wait_ready()
    assert a.status()["vpcEndpointOwned"] is False
    settle(operator)
    count("adoption", before, snapshot(cloud, b, clickhouse_org.service_id))
    a.delete()
    a.wait_gone()
    settle(operator)
    count("adoption, A deleted", before, snapshot(cloud, b, clickhouse_org.service_id))
