"""The operator as a real process: create, keep, change and delete PrivateLink connections.

Each test reads the AWS and ClickHouse stand-ins directly to prove what exists, not just the status.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from clickhouse_privatelink import constants as c
from clickhouse_privatelink_testkit.sandbox import Kube
from clickhouse_privatelink_testkit.standins.aws import Network
from tests.e2e.conftest import Cloud, Link, LinkFactory, OperatorProcess, assert_quiet_over_drift_checks
from tests.fixtures.clickhouse import ClickHouseApi, ClickHouseOrg
from tests.fixtures.polling import wait_for

pytestmark = pytest.mark.e2e


def assert_connected(link: Link, cloud: Cloud, org: ClickHouseOrg) -> dict[str, Any]:
    status = link.wait_ready()
    assert status["privateDnsHostname"] == org.private_dns_hostname
    assert status["endpointServiceId"] == org.endpoint_service_id
    assert status["vpcEndpointState"] == "available"
    endpoints = cloud.live_endpoints()
    assert [e["VpcEndpointId"] for e in endpoints] == [status["vpcEndpointId"]]
    ep = endpoints[0]
    assert ep["ServiceName"] == org.endpoint_service_id
    assert ep["VpcEndpointType"] == "Interface" and ep["PrivateDnsEnabled"] is False
    assert sorted(ep["SubnetIds"]) == sorted(cloud.network.subnet_ids)
    return status


# ------------------------------------------------------------------------------------------ happy path


@pytest.mark.standin_only
def test_resource_becomes_ready_with_one_endpoint_one_record_and_one_allow_list_entry(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg
) -> None:
    link = make_link()
    status = assert_connected(link, cloud, clickhouse_org)
    endpoint_id = status["vpcEndpointId"]

    tags = {t["Key"]: t["Value"] for t in cloud.live_endpoints()[0]["Tags"]}
    obj = link.get()
    assert obj is not None
    # A shared endpoint: named by its key (VPC and endpoint service), not by one resource.
    assert tags[c.TAG_MANAGED_BY] == c.OPERATOR_NAME
    assert tags[c.TAG_CLUSTER] == "e2e"
    assert tags[c.TAG_ENDPOINT_SERVICE] == clickhouse_org.endpoint_service_id
    assert len(tags[c.TAG_ENDPOINT_KEY]) == 32
    assert c.TAG_RESOURCE_UID not in tags
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert {(e["protocol"], e["port"]) for e in status["endpoints"]} == {
        ("https", 8443),
        ("nativesecure", 9440),
        ("mysql", 3306),
    }
    for type_ in ("ServiceResolved", "VpcEndpointReady", "DnsReady", "AllowListed", "Ready"):
        cond = link.condition(type_)
        assert cond is not None and cond["status"] == "True", type_
        assert cond["observedGeneration"] == obj["metadata"]["generation"]

    zones = cloud.zones()
    assert [z["Name"].rstrip(".") for z in zones] == [clickhouse_org.private_dns_hostname.split(".", 1)[1]]
    assert status["hostedZoneId"] == zones[0]["HostedZoneId"].rsplit("/", 1)[-1]
    records = cloud.records(status["hostedZoneId"], clickhouse_org.private_dns_hostname)
    alias = [r for r in records if r["Type"] == "A"]
    assert len(alias) == 1
    assert (
        alias[0]["AliasTarget"]["DNSName"].rstrip(".")
        == cloud.live_endpoints()[0]["DnsEntries"][0]["DnsName"]
    )
    assert any(r["Type"] == "TXT" for r in records)

    assert cloud.allow_list() == [endpoint_id]
    assert cloud.org_entries() == [endpoint_id]
    link.wait_events("EndpointCreated", "HostedZoneCreated", "DnsRecordWritten", "AllowListed", "Ready")

    link.delete()
    link.wait_gone()
    assert cloud.live_endpoints() == []
    assert cloud.zones() == []
    assert cloud.allow_list() == []
    assert cloud.org_entries() == []


@pytest.mark.standin_only
def test_reapplying_or_restarting_the_operator_creates_nothing_new(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg, operator: OperatorProcess
) -> None:
    link = make_link()
    first = assert_connected(link, cloud, clickhouse_org)
    writes = cloud.writes()

    link.patch_spec({"aws": {"tags": {"team": "data"}}})  # a spec change: a new generation, same resources
    wait_for(lambda: link.status().get("observedGeneration") == 2, timeout=30)
    operator.restart()
    wait_for(lambda: operator.metric("chpl_reconciles_total", kind="reconcile") >= 1, timeout=30)

    again = link.wait_ready()
    assert again["vpcEndpointId"] == first["vpcEndpointId"]
    assert [e["VpcEndpointId"] for e in cloud.live_endpoints()] == [first["vpcEndpointId"]]
    assert (
        len(
            [
                r
                for r in cloud.records(first["hostedZoneId"], clickhouse_org.private_dns_hostname)
                if r["Type"] == "A"
            ]
        )
        == 1
    )
    assert len(cloud.zones()) == 1
    assert cloud.allow_list() == [first["vpcEndpointId"]]
    assert cloud.writes() == writes


DIFF_BASE_ANNOTATION = f"{c.GROUP}/last-handled-configuration"


def diff_base(link: Link) -> Any:
    """kopf's diff-base (the resource as last handled) from the status, once it is there."""
    encoded = link.status().get("lastHandledConfiguration")
    return None if encoded is None else json.loads(encoded)


@pytest.mark.standin_only
def test_kopfs_diff_base_is_kept_in_the_status_and_a_steady_state_writes_nothing(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg, operator: OperatorProcess, k8s: Kube
) -> None:
    link = make_link()
    assert_connected(link, cloud, clickhouse_org)
    wait_for(lambda: diff_base(link), timeout=30, message="kopf's diff-base in the status")
    obj = link.get()
    assert obj is not None
    assert diff_base(link) == {"spec": obj["spec"]}  # nothing kopf must tell apart: spec, no labels
    assert DIFF_BASE_ANNOTATION not in (obj["metadata"].get("annotations") or {})
    assert_quiet_over_drift_checks(link, operator, k8s)


@pytest.mark.standin_only
def test_an_older_versions_diff_base_annotation_is_read_and_moved_into_the_status(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg, operator: OperatorProcess, k8s: Kube
) -> None:
    """Upgraded from a version that kept kopf's diff-base in an annotation, the operator does not take a
    resource for a new one: it resumes it, finds everything in place and stores nothing; the next change
    moves the diff-base into the status and removes the annotation."""
    link = make_link()
    assert_connected(link, cloud, clickhouse_org)
    encoded = wait_for(lambda: link.status().get("lastHandledConfiguration"), timeout=30, message="diff-base")
    operator.stop()
    # As the older version left it: the diff-base in the annotation (kopf ends it with a newline), none in the status.
    k8s.custom.patch_namespaced_custom_object(
        c.GROUP, c.VERSION, link.namespace, c.PLURAL, link.name,
        {"metadata": {"annotations": {DIFF_BASE_ANNOTATION: encoded + "\n"}}},
    )  # fmt: skip
    k8s.custom.patch_namespaced_custom_object_status(
        c.GROUP,
        c.VERSION,
        link.namespace,
        c.PLURAL,
        link.name,
        {"status": {"lastHandledConfiguration": None}},
    )
    before = link.get()
    assert before is not None
    writes = cloud.writes()
    operator.start()
    # kopf resumes it (a resource without a diff-base would be created: "Creation is processed").
    wait_for(lambda: "Resuming is processed" in operator.log_path.read_text(), timeout=30, message="resume")
    assert "Creation is processed" not in operator.log_path.read_text()
    obj = link.get()
    assert obj is not None
    assert obj["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # nothing stored
    assert obj["metadata"]["annotations"][DIFF_BASE_ANNOTATION] == encoded + "\n"
    assert cloud.writes() == writes

    link.patch_spec({"aws": {"tags": {"team": "data"}}})
    wait_for(lambda: link.status().get("observedGeneration") == 2 and diff_base(link), timeout=30)
    obj = link.get()
    assert obj is not None
    assert diff_base(link) == {"spec": obj["spec"]}
    assert DIFF_BASE_ANNOTATION not in (obj["metadata"].get("annotations") or {})


@pytest.mark.standin_only
def test_changed_subnets_modify_the_endpoint_in_place(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg, aws_network: Network
) -> None:
    link = make_link(aws={"subnetIds": [aws_network.subnet_ids[0]]})
    first = link.wait_ready()
    link.patch_spec({"aws": {"subnetIds": list(aws_network.subnet_ids)}})

    def both_subnets() -> bool:
        ep = cloud.endpoint(first["vpcEndpointId"])
        return ep is not None and sorted(ep["SubnetIds"]) == sorted(aws_network.subnet_ids)

    wait_for(both_subnets, timeout=30)
    assert [e["VpcEndpointId"] for e in cloud.live_endpoints()] == [first["vpcEndpointId"]]
    link.wait_events("EndpointModified")


@pytest.mark.standin_only
def test_service_name_resolves_to_the_service(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg
) -> None:
    link = make_link(clickhouse={"serviceId": None, "serviceName": clickhouse_org.service_name})
    status = assert_connected(link, cloud, clickhouse_org)
    assert status["serviceId"] == clickhouse_org.service_id


@pytest.mark.standin_only
def test_ambiguous_service_name_is_reported(
    make_link: LinkFactory, clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg, cloud: Cloud
) -> None:
    assert clickhouse_api.control is not None
    clickhouse_api.control.seed_service(
        clickhouse_org.org_id, name=clickhouse_org.service_name, region="us-east-1"
    )
    link = make_link(clickhouse={"serviceId": None, "serviceName": clickhouse_org.service_name})
    cond = link.wait_condition("Ready", status="False", reason="ServiceAmbiguous")
    assert "serviceId" in cond["message"]
    assert cloud.live_endpoints() == []


@pytest.mark.standin_only
def test_a_provisioning_service_is_waited_for(
    make_link: LinkFactory, clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg, cloud: Cloud
) -> None:
    assert clickhouse_api.control is not None
    svc = clickhouse_api.control.seed_service(
        clickhouse_org.org_id, region="us-east-1", state="provisioning", provisioning_seconds=60
    )
    link = make_link(clickhouse={"serviceId": svc["id"]})
    cond = link.wait_condition("ServiceResolved", status="False", reason="ServiceProvisioning")
    assert "provisioning" in cond["message"]
    assert cloud.live_endpoints() == []
    status = link.wait_ready()
    assert (
        status["privateDnsHostname"]
        == clickhouse_api.control.service(clickhouse_org.org_id, svc["id"])["private_dns_hostname"]
    )
    assert cloud.allow_list(svc["id"]) == [status["vpcEndpointId"]]


@pytest.mark.standin_only
def test_cross_region_service_sets_the_endpoint_service_region(
    make_link: LinkFactory, clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg, cloud: Cloud
) -> None:
    assert clickhouse_api.control is not None
    svc = clickhouse_api.control.seed_service(clickhouse_org.org_id, region="us-west-2", state="running")
    link = make_link(clickhouse={"serviceId": svc["id"]})
    status = link.wait_ready()
    ep = cloud.endpoint(status["vpcEndpointId"])
    assert ep is not None
    assert ep["ServiceRegion"] == "us-west-2"
    assert ep["ServiceName"] == svc["endpoint_service_id"]
    assert status["serviceRegion"] == "us-west-2"
    assert [z["Name"].rstrip(".") for z in cloud.zones()] == ["us-west-2.vpce.aws.clickhouse.cloud"]


# ---------------------------------------------------------------------------------------- what we keep


def endpoint_made_by_hand(cloud: Cloud, org: ClickHouseOrg, network: Network) -> str:
    """An endpoint to the service made as the guide says, without the operator: its ID."""
    return str(
        cloud.ec2.create_vpc_endpoint(
            VpcEndpointType="Interface",
            VpcId=network.vpc_id,
            ServiceName=org.endpoint_service_id,
            SubnetIds=list(network.subnet_ids),
            PrivateDnsEnabled=False,
        )["VpcEndpoint"]["VpcEndpointId"]
    )


@pytest.mark.standin_only
def test_an_adopted_endpoint_is_used_and_survives_deletion(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg, aws_network: Network
) -> None:
    existing = endpoint_made_by_hand(cloud, clickhouse_org, aws_network)
    link = make_link(aws={"vpcEndpointId": existing})
    status = link.wait_ready(timeout=60)
    assert status["vpcEndpointId"] == existing and status["vpcEndpointOwned"] is False
    assert [e["VpcEndpointId"] for e in cloud.live_endpoints()] == [existing]
    assert cloud.allow_list() == [existing]

    link.delete()
    link.wait_gone()
    ep = cloud.endpoint(existing)
    assert ep is not None and ep["State"] == "available"
    assert cloud.allow_list() == []
    assert cloud.zones() == []  # our record went, and with it the zone we created


@pytest.mark.standin_only
def test_an_allow_list_entry_someone_else_added_is_never_removed(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg, aws_network: Network
) -> None:
    existing = endpoint_made_by_hand(cloud, clickhouse_org, aws_network)
    # A person followed the guide by hand: the endpoint is on the service's allow list already.
    path = f"/v1/organizations/{clickhouse_org.org_id}/services/{clickhouse_org.service_id}"
    body = {"privateEndpointIds": {"add": [existing]}}
    auth = (clickhouse_org.key_id, clickhouse_org.key_secret)
    httpx.patch(cloud.clickhouse.url + path, json=body, auth=auth, timeout=10).raise_for_status()

    link = make_link(aws={"vpcEndpointId": existing})
    status = link.wait_ready(timeout=60)
    assert status["allowListEntryAdded"] is False
    link.delete()
    link.wait_gone()
    assert cloud.allow_list() == [existing]  # not the operator's to remove
    assert existing in cloud.org_entries()


@pytest.mark.standin_only
def test_retain_keeps_endpoint_record_and_allow_list_entry(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg
) -> None:
    link = make_link(deletionPolicy="Retain")
    status = assert_connected(link, cloud, clickhouse_org)
    link.delete()
    link.wait_gone()
    assert [e["VpcEndpointId"] for e in cloud.live_endpoints()] == [status["vpcEndpointId"]]
    assert [
        r["Type"]
        for r in cloud.records(status["hostedZoneId"], clickhouse_org.private_dns_hostname)
        if r["Type"] == "A"
    ] == ["A"]
    assert cloud.allow_list() == [status["vpcEndpointId"]]


@pytest.mark.standin_only
def test_a_dns_record_we_did_not_write_is_never_overwritten(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg
) -> None:
    zone_id = cloud.create_private_zone(clickhouse_org.private_dns_hostname.split(".", 1)[1])
    foreign = {
        "Name": clickhouse_org.private_dns_hostname + ".",
        "Type": "A",
        "TTL": 60,
        "ResourceRecords": [{"Value": "10.9.9.9"}],
    }
    cloud.r53.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": foreign}]}
    )
    link = make_link()
    cond = link.wait_condition("DnsReady", status="False", reason="DnsRecordConflict")
    assert clickhouse_org.private_dns_hostname in cond["message"]
    ready = link.condition("Ready")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "DnsRecordConflict"
    records = cloud.records(zone_id, clickhouse_org.private_dns_hostname)
    assert [(r["Type"], r.get("ResourceRecords")) for r in records] == [("A", [{"Value": "10.9.9.9"}])]
    link.wait_events("DnsRecordConflict")

    link.delete()
    link.wait_gone()
    assert [
        (r["Type"], r.get("ResourceRecords"))
        for r in cloud.records(zone_id, clickhouse_org.private_dns_hostname)
    ] == [("A", [{"Value": "10.9.9.9"}])]
    assert [z["HostedZoneId"].rsplit("/", 1)[-1] for z in cloud.zones()] == [zone_id]
    assert cloud.live_endpoints() == []


@pytest.mark.standin_only
def test_dns_mode_none_skips_dns_and_says_so(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg
) -> None:
    link = make_link(dns={"mode": "None"})
    status = assert_connected(link, cloud, clickhouse_org)
    cond = link.condition("DnsReady")
    assert (
        cond is not None
        and cond["reason"] == "DnsDisabled"
        and clickhouse_org.private_dns_hostname in cond["message"]
    )
    assert "hostedZoneId" not in status
    assert cloud.zones() == []


@pytest.mark.standin_only
def test_a_given_hosted_zone_gets_the_record_and_is_never_deleted(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg
) -> None:
    zone_id = cloud.create_private_zone(clickhouse_org.private_dns_hostname.split(".", 1)[1])
    link = make_link(dns={"mode": "Route53", "hostedZoneId": zone_id})
    status = assert_connected(link, cloud, clickhouse_org)
    assert status["hostedZoneId"] == zone_id
    assert [r["Type"] for r in cloud.records(zone_id, clickhouse_org.private_dns_hostname)].count("A") == 1

    link.delete()
    link.wait_gone()
    assert cloud.records(zone_id, clickhouse_org.private_dns_hostname) == []
    assert [z["HostedZoneId"].rsplit("/", 1)[-1] for z in cloud.zones()] == [zone_id]
