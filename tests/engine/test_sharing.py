"""Shared objects in memory: one endpoint and zone per VPC, a record and an entry per service, released
only by their last user; deletionPolicy Retain; an endpoint made per resource before endpoints were shared."""

from __future__ import annotations

import pytest

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.adapters.aws.route53 import record_changes
from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from tests.engine.harness import (
    ENDPOINT_SERVICE,
    GROUP,
    SERVICE_A,
    SERVICE_B,
    SERVICES,
    SUBNETS,
    VPC_A,
    VPC_B,
    ZONE_NAME,
    Harness,
)

HOST_A, HOST_B = SERVICES[SERVICE_A][2], SERVICES[SERVICE_B][2]


def types_at(h: Harness, hostname: str) -> set[str]:
    (zone,) = h.aws.zones.values()
    return {rs["Type"] for rs in h.aws.record_sets(zone.id, hostname)}


async def two_users() -> tuple[Harness, str, str]:
    """Two resources of one VPC for two services behind the same endpoint service, both Ready."""
    h = Harness()
    a = h.create("a", service_id=SERVICE_A)
    b = h.create("b", service_id=SERVICE_B)
    await h.settle()
    return h, a, b


async def test_two_resources_of_a_vpc_share_one_endpoint_and_zone_with_a_record_and_entry_each() -> None:
    h, a, b = await two_users()
    (endpoint,) = h.aws.endpoints.values()
    assert h.status(a)["vpcEndpointId"] == h.status(b)["vpcEndpointId"] == endpoint.id
    (zone,) = h.aws.zones.values()
    assert h.status(a)["hostedZoneId"] == h.status(b)["hostedZoneId"] == zone.id
    assert types_at(h, HOST_A) == types_at(h, HOST_B) == {"A", "TXT"}
    assert h.clickhouse.allow_list(SERVICE_A) == h.clickhouse.allow_list(SERVICE_B) == [endpoint.id]
    assert h.clickhouse.organization_entries == [endpoint.id]
    assert [w for w in h.aws.writes if w[0] in ("CreateVpcEndpoint", "CreateHostedZone")] == [
        ("CreateVpcEndpoint", endpoint.id),
        ("CreateHostedZone", zone.id),
    ]


async def test_releasing_one_user_keeps_what_the_other_still_uses() -> None:
    h, a, b = await two_users()
    (endpoint,) = h.aws.endpoints.values()
    h.delete(a)
    await h.settle()
    assert list(h.bodies) == [b]
    assert h.aws.endpoints[endpoint.id].state == "available"
    assert types_at(h, HOST_A) == set() and types_at(h, HOST_B) == {"A", "TXT"}
    assert h.clickhouse.allow_list(SERVICE_A) == [] and h.clickhouse.allow_list(SERVICE_B) == [endpoint.id]
    assert h.clickhouse.organization_entries == [endpoint.id]  # service B still lists it
    assert h.posted("EndpointKept")


async def test_releasing_the_last_user_removes_endpoint_record_zone_and_entries() -> None:
    h, a, b = await two_users()
    h.delete(a)
    await h.settle()
    h.delete(b)
    await h.settle()
    assert h.bodies == {} and h.aws.endpoints == {} and h.aws.zones == {}
    assert h.clickhouse.allow_list(SERVICE_A) == h.clickhouse.allow_list(SERVICE_B) == []
    assert h.clickhouse.organization_entries == []


async def test_both_users_deleted_together_leave_nothing() -> None:
    h, a, b = await two_users()
    h.delete(a)
    h.delete(b)
    await h.settle()
    assert h.bodies == {} and h.aws.endpoints == {} and h.aws.zones == {}
    assert h.clickhouse.organization_entries == []


async def test_retain_as_the_last_user_keeps_everything_and_marks_the_endpoint() -> None:
    h = Harness()
    a = h.create("a", retain=True)
    await h.settle()
    h.delete(a)
    await h.settle()
    assert h.bodies == {}
    (endpoint,) = h.aws.endpoints.values()
    assert endpoint.state == "available" and endpoint.tags[c.TAG_RETAINED] == "ns/a"
    assert types_at(h, HOST_A) == {"A", "TXT"}
    assert h.clickhouse.allow_list(SERVICE_A) == [endpoint.id]
    assert h.posted("Retained")


async def test_retain_while_another_user_holds_the_endpoint_pins_nothing() -> None:
    h = Harness()
    a = h.create("a", service_id=SERVICE_A, retain=True)
    b = h.create("b", service_id=SERVICE_B)
    await h.settle()
    h.delete(a)
    await h.settle()
    (endpoint,) = h.aws.endpoints.values()
    assert c.TAG_RETAINED not in endpoint.tags
    (refused,) = h.posted("RetainNotApplied")
    assert "also used by ns/b" in refused.message
    assert types_at(h, HOST_A) == set() and h.clickhouse.allow_list(SERVICE_A) == []
    h.delete(b)
    await h.settle()
    assert h.aws.endpoints == {} and h.aws.zones == {} and h.clickhouse.organization_entries == []


async def test_a_later_user_takes_over_a_retained_endpoint_and_its_own_policy_decides() -> None:
    h = Harness()
    a = h.create("a", service_id=SERVICE_A, retain=True)
    await h.settle()
    h.delete(a)
    await h.settle()
    (kept,) = h.aws.endpoints.values()
    c_uid = h.create("c", service_id=SERVICE_B)
    await h.settle()
    assert h.status(c_uid)["vpcEndpointId"] == kept.id
    assert c.TAG_RETAINED not in kept.tags
    assert [e.resource for e in h.posted("EndpointTakenOver")] == ["ns/c"]
    assert len(h.aws.endpoints) == 1  # taken over, not made again
    assert len([w for w in h.aws.writes if w[0] == "CreateVpcEndpoint"]) == 1
    assert types_at(h, HOST_A) == {"A", "TXT"} and h.clickhouse.allow_list(SERVICE_A) == [kept.id]
    h.delete(c_uid)
    await h.settle()
    # a's Retain ended with the takeover: what it left (its record, its entry) goes with the endpoint
    # (issue 17: a Retain never outlives its own user's claim), and the zone, empty now, with them.
    assert h.aws.endpoints == {} and h.aws.zones == {}
    assert h.clickhouse.allow_list(SERVICE_A) == h.clickhouse.allow_list(SERVICE_B) == []
    assert h.clickhouse.organization_entries == []


async def test_an_endpoint_made_per_resource_before_sharing_serves_until_its_resource_goes() -> None:
    h = Harness()
    uid = h.create("a")
    legacy = h.aws.add_endpoint(
        "vpc-0a0a0a0a0a0a0a0a0",
        ENDPOINT_SERVICE,
        tags={
            c.TAG_MANAGED_BY: c.OPERATOR_NAME,
            c.TAG_CLUSTER: h.cluster,
            c.TAG_RESOURCE: "ns/a",
            c.TAG_RESOURCE_UID: uid,
        },
        subnet_ids=set(SUBNETS),
        groups={GROUP},
    )
    await h.settle()
    status = h.status(uid)
    assert status["vpcEndpointId"] == legacy.id and status["vpcEndpointOwned"] is True
    assert list(h.aws.endpoints) == [legacy.id]
    assert h.clickhouse.allow_list(SERVICE_A) == [legacy.id]
    h.delete(uid)
    await h.settle()
    assert h.aws.endpoints == {} and h.aws.zones == {}
    assert h.clickhouse.allow_list(SERVICE_A) == [] and h.clickhouse.organization_entries == []


async def test_a_record_made_by_someone_since_the_read_fails_the_create_and_the_next_round_reads_fresh() -> (
    None
):
    h = Harness()
    h.create("a", service_id=SERVICE_A)
    await h.settle()
    (endpoint,) = h.aws.endpoints.values()
    (zone,) = h.aws.zones.values()
    target = endpoint.observed().regional_dns
    assert target is not None
    await h.aws_view.zone_sets(zone.id, max_age=0)  # this process's listing of the zone, read now
    # Someone outside this process (a restarted one, a person) wrote B's record after the listing was read:
    # the listing still shows the name vacant, so the round's CREATE is refused (InvalidChangeBatch).
    h.aws.change(zone.id, record_changes(HOST_B, target, cluster=h.cluster, vpc_id=VPC_A, create=True))
    written = len(h.aws.writes)
    b = h.create("b", service_id=SERVICE_B)
    out = await h.run(b)  # no time passes: the zone's listing is the kept one
    assert out is not None and not out.done
    assert h.reason(b, ConditionType.DNS_READY) == Reason.INVALID_AWS_CONFIGURATION.value
    assert h.aws.writes[written:] == []  # refused: nothing written over
    read = len(h.aws_view.calls)
    again = await h.run(b)  # still no time passes: the refusal dropped the kept listing
    assert again is not None and again.done
    assert h.aws_view.calls[read:].count("ListResourceRecordSets") == 1
    assert h.aws.writes[written:] == []  # found ours and right: nothing written
    assert types_at(h, HOST_B) == {"A", "TXT"}


async def test_deleting_the_last_user_removes_untracked_records_and_entries_pointing_at_its_endpoint() -> (
    None
):
    h = Harness()
    a = h.create("a", service_id=SERVICE_A)
    await h.settle()
    (endpoint,) = h.aws.endpoints.values()
    (zone,) = h.aws.zones.values()
    target = endpoint.observed().regional_dns
    assert target is not None
    # Left by a resource gone since (say, deleted while its API key was missing): B's record, ours by its
    # marker, and the endpoint on B's allow list; no resource uses either.
    h.aws.change(zone.id, record_changes(HOST_B, target, cluster=h.cluster, vpc_id=VPC_A, create=True))
    h.clickhouse._set(SERVICE_B, [endpoint.id])
    h.delete(a)
    await h.settle()
    assert h.bodies == {} and h.aws.endpoints == {} and h.aws.zones == {}
    assert h.clickhouse.allow_list(SERVICE_A) == h.clickhouse.allow_list(SERVICE_B) == []
    assert h.clickhouse.organization_entries == []
    assert any(HOST_B in e.message for e in h.posted("DnsRecordDeleted"))


def record_writes(h: Harness) -> int:
    return len([w for w in h.aws.writes if w[0] == "ChangeResourceRecordSets"])


async def test_two_resources_of_a_vpc_for_one_service_asking_together_make_one_record_write() -> None:
    h = Harness(batch_window=0.05)
    a = h.create("a", service_id=SERVICE_A)
    b = h.create("b", service_id=SERVICE_A)
    await h.settle(together=True)
    assert h.reason(a) == h.reason(b) == Reason.READY.value
    assert types_at(h, HOST_A) == {"A", "TXT"}
    assert record_writes(h) == 1
    assert len(h.posted("DnsRecordWritten")) == 1  # the other's pass found it written by the same round


async def test_two_vpcs_naming_one_zone_for_one_service_the_first_holds_the_name_the_other_conflicts() -> (
    None
):
    h = Harness(batch_window=0.05)
    shared = h.aws.add_zone(ZONE_NAME, vpc_ids={VPC_A, VPC_B})
    a = h.create("a", service_id=SERVICE_A, hosted_zone_id=shared.id)
    b = h.create("b", service_id=SERVICE_A, vpc_id=VPC_B, hosted_zone_id=shared.id)
    with pytest.raises(AssertionError, match="not settled"):
        await h.settle(together=True, rounds=6)
    assert h.reason(a) == Reason.READY.value
    assert h.reason(b, ConditionType.DNS_READY) == Reason.DNS_RECORD_CONFLICT.value
    assert f"record of VPC {VPC_A}" in h.posted(Reason.DNS_RECORD_CONFLICT.value)[-1].message
    # no flip-flop: the name was written once, for VPC A, and every later round left it alone
    assert record_writes(h) == 1
    owner_txt = [rs for rs in h.aws.record_sets(shared.id, HOST_A) if rs["Type"] == "TXT"]
    assert VPC_A in owner_txt[0]["ResourceRecords"][0]["Value"]


async def test_a_release_while_another_user_of_the_record_is_reconciled_keeps_the_record() -> None:
    h = Harness(batch_window=0.05)
    a = h.create("a", service_id=SERVICE_A)
    b = h.create("b", service_id=SERVICE_A)
    await h.settle()
    written = record_writes(h)
    h.delete(a)
    h.bodies[b]["metadata"]["generation"] = 2  # b is being reconciled in the same rounds
    h._settled.discard(b)
    await h.settle(together=True)
    assert list(h.bodies) == [b] and h.reason(b) == Reason.READY.value
    assert types_at(h, HOST_A) == {"A", "TXT"}
    assert record_writes(h) == written
    assert any("still used by ns/b" in e.message for e in h.posted("DnsRecordKept"))
