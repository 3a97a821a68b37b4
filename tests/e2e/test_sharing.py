"""One VPC endpoint per VPC and endpoint service, one private zone per VPC, shared by every resource there.

ClickHouse puts a region's services behind one endpoint service (the stand-in does the same by default), so
resources for several services in one VPC need one endpoint, as ClickHouse's guide says; each still gets its
own record and allow-list entry, and a shared object goes only with its last user.
"""

from __future__ import annotations

from typing import Any

import pytest

from clickhouse_privatelink import constants as c
from clickhouse_privatelink_testkit.standins.aws_faults import AwsFaultControl
from tests.e2e.conftest import Cloud, Link, LinkFactory, OperatorProcess
from tests.fixtures.clickhouse import ClickHouseApi, ClickHouseOrg
from tests.fixtures.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.standin_only]


def more_services(clickhouse_api: ClickHouseApi, org: ClickHouseOrg, count: int) -> list[dict[str, Any]]:
    assert clickhouse_api.control is not None
    return [
        clickhouse_api.control.seed_service(org.org_id, region="us-east-1", state="running")
        for _ in range(count)
    ]


def delete_all(links: list[Link]) -> None:
    for link in links:
        link.delete()
    for link in links:
        link.wait_gone()


def test_five_services_in_one_vpc_share_one_endpoint_and_the_last_user_removes_it(
    make_link: LinkFactory, cloud: Cloud, clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg
) -> None:
    services = [
        {"id": clickhouse_org.service_id, "private_dns_hostname": clickhouse_org.private_dns_hostname},
        *more_services(clickhouse_api, clickhouse_org, 4),
    ]
    links = [make_link(clickhouse={"serviceId": s["id"]}) for s in services]
    statuses = [link.wait_ready() for link in links]

    endpoints = cloud.live_endpoints()
    assert len(endpoints) == 1
    endpoint_id = endpoints[0]["VpcEndpointId"]
    assert {s["vpcEndpointId"] for s in statuses} == {endpoint_id}
    zones = cloud.zones()
    assert len(zones) == 1
    zone_id = zones[0]["HostedZoneId"].rsplit("/", 1)[-1]
    for service in services:
        assert [r["Type"] for r in cloud.records(zone_id, service["private_dns_hostname"])] == ["A", "TXT"]
        assert cloud.allow_list(service["id"]) == [endpoint_id]

    delete_all(links[:4])
    last = links[4]
    ready = last.condition("Ready")
    assert ready is not None and ready["status"] == "True"
    assert [e["VpcEndpointId"] for e in cloud.live_endpoints()] == [endpoint_id]
    assert cloud.allow_list(services[4]["id"]) == [endpoint_id]
    assert len(cloud.records(zone_id, services[4]["private_dns_hostname"])) == 2
    for service in services[:4]:
        assert cloud.allow_list(service["id"]) == []
        assert cloud.records(zone_id, service["private_dns_hostname"]) == []
    assert set(last.event_reasons()) >= {"Ready"}

    delete_all([last])
    assert cloud.live_endpoints() == []
    assert cloud.zones() == []
    assert all(cloud.allow_list(s["id"]) == [] for s in services)
    assert cloud.org_entries() == []


def test_two_resources_for_one_service_share_its_record_and_entry(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg
) -> None:
    first, second = make_link(), make_link()
    status = first.wait_ready()
    assert second.wait_ready()["vpcEndpointId"] == status["vpcEndpointId"]
    delete_all([first])
    ready = second.condition("Ready")
    assert ready is not None and ready["status"] == "True"
    assert cloud.allow_list() == [status["vpcEndpointId"]]
    assert len(cloud.records(status["hostedZoneId"], clickhouse_org.private_dns_hostname)) == 2
    delete_all([second])
    assert cloud.allow_list() == [] and cloud.live_endpoints() == [] and cloud.zones() == []


def test_ten_resources_created_at_once_make_one_zone_and_leave_none(
    make_link: LinkFactory, cloud: Cloud, clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg
) -> None:
    services = more_services(clickhouse_api, clickhouse_org, 10)
    links = [make_link(clickhouse={"serviceId": s["id"]}) for s in services]
    for link in links:
        link.wait_ready(timeout=120)
    assert len(cloud.zones()) == 1
    assert len(cloud.live_endpoints()) == 1
    delete_all(links)
    assert cloud.zones() == []
    assert cloud.live_endpoints() == []
    assert cloud.org_entries() == []


def test_different_subnets_on_a_shared_endpoint_name_whose_settings_are_in_force(
    make_link: LinkFactory, cloud: Cloud, clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg
) -> None:
    (other,) = more_services(clickhouse_api, clickhouse_org, 1)
    subnets = list(cloud.network.subnet_ids)
    oldest = make_link()
    oldest.wait_ready()
    younger = make_link(clickhouse={"serviceId": other["id"]}, aws={"subnetIds": subnets[:1]})
    younger.wait_ready()
    cond = younger.wait_condition("VpcEndpointReady", status="True", reason="EndpointSettingsOfOtherResource")
    assert f"{oldest.namespace}/{oldest.name}" in cond["message"]
    own = oldest.condition("VpcEndpointReady")
    assert own is not None and own["reason"] == "Available"
    # The oldest user's subnets stay in force: the endpoint never flaps to the younger one's.
    (endpoint,) = cloud.live_endpoints()
    assert sorted(endpoint["SubnetIds"]) == sorted(subnets)
    assert "EndpointModified" not in younger.event_reasons() + oldest.event_reasons()


def test_an_endpoint_made_per_resource_before_sharing_keeps_serving_until_its_resource_goes(
    make_link: LinkFactory, cloud: Cloud, operator: OperatorProcess, clickhouse_org: ClickHouseOrg
) -> None:
    # An older operator made one endpoint per resource, tagged with the resource's UID.
    operator.stop()
    try:
        link = make_link()
        obj = wait_for(link.get, message="the resource")
        legacy = cloud.ec2.create_vpc_endpoint(
            VpcEndpointType="Interface",
            VpcId=cloud.network.vpc_id,
            ServiceName=clickhouse_org.endpoint_service_id,
            SubnetIds=list(cloud.network.subnet_ids),
            SecurityGroupIds=[cloud.network.security_group_id],
            TagSpecifications=[
                {
                    "ResourceType": "vpc-endpoint",
                    "Tags": [
                        {"Key": c.TAG_MANAGED_BY, "Value": c.OPERATOR_NAME},
                        {"Key": c.TAG_CLUSTER, "Value": "e2e"},
                        {"Key": c.TAG_RESOURCE, "Value": f"{link.namespace}/{link.name}"},
                        {"Key": c.TAG_RESOURCE_UID, "Value": obj["metadata"]["uid"]},
                    ],
                }
            ],
        )["VpcEndpoint"]["VpcEndpointId"]
    finally:
        operator.start()
    status = link.wait_ready()
    assert status["vpcEndpointId"] == legacy and status["vpcEndpointOwned"] is True
    assert [e["VpcEndpointId"] for e in cloud.live_endpoints()] == [legacy]
    assert cloud.allow_list() == [legacy]
    delete_all([link])
    assert cloud.live_endpoints() == [] and cloud.allow_list() == [] and cloud.org_entries() == []


def test_a_retain_user_pins_nothing_while_another_user_is_responsible_for_the_endpoint(
    make_link: LinkFactory, cloud: Cloud, clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg
) -> None:
    (other,) = more_services(clickhouse_api, clickhouse_org, 1)
    kept = make_link(deletionPolicy="Retain")
    endpoint_id = kept.wait_ready()["vpcEndpointId"]
    user = make_link(clickhouse={"serviceId": other["id"]})
    assert user.wait_ready()["vpcEndpointId"] == endpoint_id
    delete_all([kept])
    kept.wait_events("RetainNotApplied")
    # The endpoint stays with its other user, unmarked; the Retain resource's own record and entry went (they
    # would point at an endpoint its other user deletes one day).
    (endpoint,) = cloud.live_endpoints()
    assert c.TAG_RETAINED not in {t["Key"] for t in endpoint["Tags"]}
    assert cloud.allow_list() == []
    assert cloud.allow_list(other["id"]) == [endpoint_id]
    zone_id = user.status()["hostedZoneId"]
    assert cloud.records(zone_id, clickhouse_org.private_dns_hostname) == []
    assert user.wait_ready()["vpcEndpointId"] == endpoint_id
    delete_all([user])
    # Its last user went with it: nothing is left that nobody tracks.
    wait_for(lambda: not cloud.live_endpoints(), timeout=60, message="the endpoint to go")
    assert cloud.zones() == [] and cloud.org_entries() == []


def test_a_retain_user_alone_keeps_the_endpoint_until_a_new_user_takes_it_over(
    make_link: LinkFactory, cloud: Cloud, clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg
) -> None:
    kept = make_link(deletionPolicy="Retain")
    endpoint_id = kept.wait_ready()["vpcEndpointId"]
    delete_all([kept])
    (endpoint,) = cloud.live_endpoints()
    tags = {t["Key"]: t["Value"] for t in endpoint["Tags"]}
    assert tags[c.TAG_RETAINED] == f"{kept.namespace}/{kept.name}"
    assert cloud.allow_list() == [endpoint_id]
    # A new user of the same endpoint key takes it over (the Retain ended with its resource) and, deleted
    # with deletionPolicy Delete, removes it.
    (other,) = more_services(clickhouse_api, clickhouse_org, 1)
    user = make_link(clickhouse={"serviceId": other["id"]})
    assert user.wait_ready()["vpcEndpointId"] == endpoint_id
    user.wait_events("EndpointTakenOver")
    (endpoint,) = cloud.live_endpoints()
    assert c.TAG_RETAINED not in {t["Key"] for t in endpoint["Tags"]}
    delete_all([user])
    wait_for(lambda: not cloud.live_endpoints(), timeout=60, message="the endpoint to go")
    assert cloud.allow_list(other["id"]) == []
    # The Retain ended with the takeover: its record and entry, left pointing at the endpoint and tracked by
    # no resource, went with it, and the zone (empty now) and the organization entry with them.
    assert cloud.allow_list() == []
    assert cloud.zones() == [] and cloud.org_entries() == []


def test_when_every_user_goes_at_once_only_the_oldest_waits_for_aws_to_delete_the_endpoint(
    make_link: LinkFactory,
    cloud: Cloud,
    clickhouse_api: ClickHouseApi,
    clickhouse_org: ClickHouseOrg,
    aws_control: AwsFaultControl,
) -> None:
    services = [
        clickhouse_org.service_id,
        *(s["id"] for s in more_services(clickhouse_api, clickhouse_org, 2)),
    ]
    links = [make_link(clickhouse={"serviceId": s}) for s in services]
    (endpoint_id,) = {link.wait_ready()["vpcEndpointId"] for link in links}

    def age(link: Link) -> tuple[str, str]:
        meta = (link.get() or {})["metadata"]
        return (meta["creationTimestamp"], meta["uid"])  # the operator's rule: oldest, then by UID

    steward, *younger = sorted(links, key=age)
    aws_control.set_endpoint_pending(600)  # AWS takes its time deleting it
    for link in links:
        link.delete()
    for link in younger:
        link.wait_gone()  # they leave while AWS is still deleting the endpoint ...
    assert (cloud.endpoint(endpoint_id) or {}).get("State") == "deleting"
    steward.wait_condition("VpcEndpointReady", status="False", reason="Deleting")  # ... the oldest stays
    assert steward.get() is not None

    aws_control.set_endpoint_pending(0)  # AWS is done
    steward.wait_gone()
    assert cloud.endpoint(endpoint_id) is None
    assert all(cloud.allow_list(s) == [] for s in services)
    assert cloud.zones() == [] and cloud.org_entries() == []
