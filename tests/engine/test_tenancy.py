"""Across tenants in memory: a record another VPC's resource owns is never overwritten, and a named zone
must be a private zone of the resource's VPC."""

from __future__ import annotations

import copy

from clickhouse_privatelink.adapters.aws.route53 import record_changes
from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from tests.engine.harness import (
    SERVICE_A,
    SERVICE_B,
    SERVICE_C,
    SERVICES,
    VPC_A,
    VPC_B,
    ZONE_NAME,
    Harness,
)

HOST_A, HOST_B, HOST_C = (SERVICES[s][2] for s in (SERVICE_A, SERVICE_B, SERVICE_C))


async def test_a_record_whose_marker_names_another_vpc_is_a_conflict_and_stays_as_it_is() -> None:
    h = Harness()
    shared_zone = h.aws.add_zone(ZONE_NAME, vpc_ids={VPC_A, VPC_B})
    tenant_b = h.create("b", namespace="other", vpc_id=VPC_B, hosted_zone_id=shared_zone.id)
    await h.settle()
    before = copy.deepcopy(h.aws.record_sets(shared_zone.id, HOST_A))
    assert {rs["Type"] for rs in before} == {"A", "TXT"}

    tenant_a = h.create("a", vpc_id=VPC_A, hosted_zone_id=shared_zone.id)
    for _ in range(3):
        h.clock.advance(20.0)
        h.aws.settle()
        await h.run(tenant_a)
    assert h.reason(tenant_a, ConditionType.DNS_READY) == Reason.DNS_RECORD_CONFLICT.value
    assert h.aws.record_sets(shared_zone.id, HOST_A) == before

    h.delete(tenant_a)
    await h.settle()
    assert h.aws.record_sets(shared_zone.id, HOST_A) == before
    ready = h.ready(tenant_b)
    assert ready is not None and ready["status"] == "True"
    assert shared_zone.id in h.aws.zones  # a zone the operator did not make is never deleted


async def test_a_named_zone_not_associated_with_the_vpc_is_refused_before_anything_is_made() -> None:
    h = Harness()
    foreign_zone = h.aws.add_zone(ZONE_NAME, vpc_ids={VPC_B})
    before = copy.deepcopy(foreign_zone.sets)
    uid = h.create("a", vpc_id=VPC_A, hosted_zone_id=foreign_zone.id)
    for _ in range(3):
        h.clock.advance(20.0)
        h.aws.settle()
        out = await h.run(uid)
        assert out is not None and not out.done
    assert h.reason(uid, ConditionType.DNS_READY) == Reason.HOSTED_ZONE_NOT_FOUND.value
    assert Reason.HOSTED_ZONE_NOT_FOUND.value in {e.reason for e in h.events if e.type == "Warning"}
    assert foreign_zone.sets == before
    assert h.aws.writes == [] and h.clickhouse.writes == []  # no endpoint for a resource that cannot be Ready
    h.delete(uid)
    await h.settle()
    assert foreign_zone.sets == before and h.aws.endpoints == {}


async def test_deleting_an_endpoint_leaves_other_tenants_records_and_entries_pointing_elsewhere_alone() -> (
    None
):
    h = Harness()
    shared_zone = h.aws.add_zone(ZONE_NAME, vpc_ids={VPC_A, VPC_B})
    a = h.create("a", vpc_id=VPC_A, hosted_zone_id=shared_zone.id)
    await h.settle()
    (endpoint,) = h.aws.endpoints.values()
    target = endpoint.observed().regional_dns
    assert target is not None
    # Records at the endpoint's DNS name that are not ours to remove: another VPC's marker, another cluster's.
    other_vpc = record_changes(HOST_B, target, cluster=h.cluster, vpc_id=VPC_B, create=True)
    other_cluster = record_changes(HOST_C, target, cluster="staging", vpc_id=VPC_A, create=True)
    h.aws.change(shared_zone.id, other_vpc + other_cluster)
    foreign = {host: copy.deepcopy(h.aws.record_sets(shared_zone.id, host)) for host in (HOST_B, HOST_C)}
    # An endpoint this cluster does not own, on the allow lists of A's service and another.
    h.clickhouse._set(SERVICE_A, [*h.clickhouse.allow_list(SERVICE_A), "vpce-0f0f0f0f0f0f0f0f0"])
    h.clickhouse._set(SERVICE_B, ["vpce-0f0f0f0f0f0f0f0f0"])
    h.delete(a)
    await h.settle()
    assert h.bodies == {} and h.aws.endpoints == {}
    assert {host: h.aws.record_sets(shared_zone.id, host) for host in (HOST_B, HOST_C)} == foreign
    assert h.aws.record_sets(shared_zone.id, HOST_A) == []
    assert (
        h.clickhouse.allow_list(SERVICE_A) == h.clickhouse.allow_list(SERVICE_B) == ["vpce-0f0f0f0f0f0f0f0f0"]
    )
    assert shared_zone.id in h.aws.zones
