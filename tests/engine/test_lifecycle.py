"""One resource through the engine in memory: created to Ready, deleted to nothing left."""

from __future__ import annotations

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.decisions.reasons import ConditionType
from tests.engine.harness import SERVICE_A, SERVICES, VPC_A, ZONE_NAME, Harness


async def test_a_new_resource_becomes_ready_with_its_endpoint_zone_record_and_allow_list_entry() -> None:
    h = Harness()
    uid = h.create("a")
    await h.settle()

    status = h.status(uid)
    ready = h.ready(uid)
    assert ready is not None and ready["status"] == "True"
    (endpoint,) = h.aws.endpoints.values()
    assert endpoint.state == "available" and endpoint.vpc_id == VPC_A
    assert endpoint.tags[c.TAG_MANAGED_BY] == c.OPERATOR_NAME and endpoint.tags[c.TAG_CLUSTER] == h.cluster
    (zone,) = h.aws.zones.values()
    assert zone.name == ZONE_NAME and zone.vpc_ids == {VPC_A}
    hostname = SERVICES[SERVICE_A][2]
    assert {rs["Type"] for rs in h.aws.record_sets(zone.id, hostname)} == {"A", "TXT"}
    assert h.clickhouse.allow_list(SERVICE_A) == [endpoint.id]
    assert h.clickhouse.organization_entries == [endpoint.id]
    assert status["serviceId"] == SERVICE_A
    assert status["vpcEndpointId"] == endpoint.id and status["vpcEndpointOwned"] is True
    assert status["vpcEndpointState"] == "available"
    assert status["hostedZoneId"] == zone.id
    assert status["privateDnsHostname"] == hostname
    assert status["allowListEntryAdded"] is True
    assert h.reason(uid, ConditionType.DNS_READY) == "RecordWritten"
    assert [e.reason for e in h.events if e.type == "Warning"] == []


async def test_deleting_the_only_resource_removes_everything_it_made() -> None:
    h = Harness()
    uid = h.create("a")
    await h.settle()
    h.delete(uid)
    await h.settle()

    assert h.bodies == {}
    assert h.aws.endpoints == {} and h.aws.zones == {}
    assert h.clickhouse.allow_list(SERVICE_A) == []
    assert h.clickhouse.organization_entries == []
