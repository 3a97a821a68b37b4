"""One resource through the engine in memory: created to Ready, deleted to nothing left."""

from __future__ import annotations

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.decisions.intent import recorded_status
from clickhouse_privatelink.decisions.reasons import ConditionType
from clickhouse_privatelink.engine import crash_points
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


async def test_the_first_write_of_a_new_resource_holds_it_with_its_intent_in_one_patch() -> None:
    """The finalizer and the first intent, one PATCH of the resource (its intent annotation), before the endpoint
    is made; read as the status until the pass ends, which writes them all in the status."""
    h = Harness()
    uid = h.create("a")
    h.crash_after(crash_points.ENDPOINT_CREATE)
    await h.run(uid)
    assert h.kube_writes == [(uid, "hold+intent")]
    assert h.held(uid) and h.status(uid) == {}
    recorded = recorded_status(h.bodies[uid])
    assert recorded["serviceId"] == SERVICE_A and recorded["privateDnsHostname"] == SERVICES[SERVICE_A][2]
    await h.settle()
    assert h.held(uid) and h.status(uid)["observedGeneration"] == 1
    assert all(kind != "hold+intent" for _, kind in h.kube_writes[1:])  # once: later intents go to the status


async def test_a_pass_that_makes_nothing_leaves_no_finalizer_and_no_claim_and_the_resource_goes_at_once() -> (
    None
):
    h = Harness()
    uid = h.create("a", service_id="00000000-0000-4000-8000-000000000000")  # no such service
    out = await h.run(uid)
    assert out is not None and not out.ready().ok
    assert h.reason(uid) == "ServiceNotFound"
    assert not h.held(uid) and h.kube_writes == []
    assert h.reconciler.book.claimed(uid) is None  # gone without a cleanup pass, it would be a user forever
    h.delete(uid)
    assert h.bodies == {}
    assert h.aws.endpoints == {} and h.aws.zones == {} and h.clickhouse.allow_list(SERVICE_A) == []


async def test_a_resource_finding_all_it_uses_made_by_another_holds_it_before_its_pass_ends() -> None:
    h = Harness()
    first = h.create("a")
    await h.settle()
    second = h.create("b")  # the same VPC and service: the endpoint, record and entry are there
    await h.settle()
    ready = h.ready(second)
    assert ready is not None and ready["status"] == "True"
    assert h.held(second) and h.kube_writes.count((second, "hold+intent")) == 1
    h.delete(first)
    await h.settle()
    assert h.clickhouse.allow_list(SERVICE_A) != []  # still used by the second
    h.delete(second)
    await h.settle()
    assert h.bodies == {} and h.aws.endpoints == {} and h.clickhouse.allow_list(SERVICE_A) == []
