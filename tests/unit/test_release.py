"""What a leaving resource lets go of (decisions/release.py, no I/O): the shared object's plan without it."""

from __future__ import annotations

from dataclasses import replace

from clickhouse_privatelink.adapters.aws.route53 import only_soa_and_ns
from clickhouse_privatelink.decisions.ownership import DnsOwner, is_managed, zone_tags
from clickhouse_privatelink.decisions.plan import ObservedRecords
from clickhouse_privatelink.decisions.release import (
    names,
    plan_allow_list_release,
    plan_record_release,
    record_holders,
    stray_entries,
    stray_records,
    zone_holders,
    zone_in_use,
)
from tests.unit.test_usage import usage

CLUSTER = "prod"


def test_a_record_goes_with_its_last_user_of_the_vpc_when_its_marker_names_this_cluster_and_vpc() -> None:
    me = usage("a")
    ours = ObservedRecords(alias=("x", "Z"), owner=DnsOwner(cluster=CLUSTER, vpc="vpc-1"))
    assert record_holders(me, [me]) is None
    assert plan_record_release(me, CLUSTER, ours).remove
    # the same hostname written for another VPC (another tenant's) is never ours to delete
    theirs = ObservedRecords(alias=("x", "Z"), owner=DnsOwner(cluster=CLUSTER, vpc="vpc-2"))
    kept = plan_record_release(me, CLUSTER, theirs)
    assert not kept.remove and "not ours" in kept.why
    assert not plan_record_release(me, CLUSTER, None).remove  # the zone is gone


def test_a_record_stays_while_a_user_of_the_same_vpc_holds_it_but_not_for_another_vpcs_user() -> None:
    me = usage("a", hostname="h.example", service_id="svc")
    same_vpc = usage("b", hostname="h.example", service_id="svc")
    other_vpc = usage("c", hostname="h.example", service_id="svc", vpc_id="vpc-2")
    held = record_holders(me, [me, same_vpc])
    assert held is not None and not held.remove
    assert held.why == "the record for h.example is still used by ns/b"
    assert record_holders(me, [me, other_vpc]) is None
    assert record_holders(me, [me, replace(same_vpc, deleting=True)]) is None  # letting go too


def test_the_entry_of_an_endpoint_we_made_is_ours_and_goes_with_its_last_user() -> None:
    me = usage("a", service_id="svc")
    assert plan_allow_list_release(me, [me], adopted=False, recorded=None).remove
    other = usage("b", service_id="svc")
    held = plan_allow_list_release(me, [me, other], adopted=False, recorded=None)
    assert not held.remove and held.why == "vpce-1 stays on the allow list: used by ns/b"


def test_an_adopted_endpoints_entry_that_was_there_before_the_operator_is_left() -> None:
    me = usage("a", service_id="svc", adopted_endpoint_id="vpce-1")
    before = plan_allow_list_release(me, [me], adopted=True, recorded=False)
    assert not before.remove and "before the operator" in before.why
    added = replace(me, allow_list_added=True)
    assert plan_allow_list_release(added, [added], adopted=True, recorded=True).remove
    # another user of the adopted endpoint added it: the operator's entry, removed by the last user
    other = usage("b", service_id="svc", adopted_endpoint_id="vpce-1", allow_list_added=True, deleting=True)
    assert plan_allow_list_release(me, [me, other], adopted=True, recorded=False).remove


def test_a_zone_goes_only_when_empty_unused_from_any_vpc_and_tagged_ours() -> None:
    me = usage("a")
    assert not zone_in_use(me, [me])
    other_vpc = usage("b", vpc_id="vpc-2")  # writes into the same zone from another VPC
    assert zone_in_use(me, [me, other_vpc])
    assert not zone_in_use(me, [me, replace(other_vpc, deleting=True)])
    # What the component reads next: only SOA and NS left, and this cluster's tags on the zone.
    soa_ns = [{"Name": "z.", "Type": "SOA"}, {"Name": "z.", "Type": "NS"}]
    assert only_soa_and_ns(soa_ns) and not only_soa_and_ns([*soa_ns, {"Name": "h.z.", "Type": "A"}])
    assert is_managed(zone_tags(CLUSTER, "vpc-1"), CLUSTER) and not is_managed({}, CLUSTER)


def test_a_zone_s_holders_are_its_live_users_other_than_me_from_any_vpc() -> None:
    me = usage("a")
    other_vpc = usage("b", vpc_id="vpc-2")
    leaving = usage("c", deleting=True)
    elsewhere = usage("d", hosted_zone_id="Z2")
    assert zone_holders(me, [me, other_vpc, leaving, elsewhere]) == [other_vpc]
    assert zone_holders(me, [me, leaving, elsewhere]) == []


def test_names_shows_the_oldest_three_and_counts_the_rest() -> None:
    users = [usage(f"u{i}", created=f"2026-01-0{i}T00:00:00Z") for i in range(1, 6)]
    assert names(users) == "ns/u1, ns/u2, ns/u3 and 2 more"


TARGET = ("vpce-1-abc.vpce-svc.us-east-1.vpce.amazonaws.com", "Z7HUB22UULQXV")


def record(cluster: str = CLUSTER, vpc: str = "vpc-1", target: tuple[str, str] = TARGET) -> ObservedRecords:
    return ObservedRecords(alias=target, owner=DnsOwner(cluster=cluster, vpc=vpc))


def test_a_record_ours_at_a_doomed_endpoint_that_no_user_has_is_stray() -> None:
    a = usage("a")  # has a.us-east-1... in Z1
    records = {
        "a.us-east-1.vpce.aws.clickhouse.cloud.": record(),  # a's own: its user releases it
        "r.us-east-1.vpce.aws.clickhouse.cloud.": record(),  # a Retain's, taken over: nobody's
        "S.us-east-1.vpce.aws.clickhouse.cloud.": record(target=(TARGET[0].upper() + ".", TARGET[1])),
    }
    assert stray_records([a], CLUSTER, "vpc-1", "Z1", TARGET, records) == [
        "S.us-east-1.vpce.aws.clickhouse.cloud.",
        "r.us-east-1.vpce.aws.clickhouse.cloud.",
    ]
    # the same names in another zone are not a's
    assert len(stray_records([a], CLUSTER, "vpc-1", "Z2", TARGET, records)) == 3


def test_a_record_of_another_vpc_cluster_or_endpoint_or_a_user_being_deleted_is_never_stray() -> None:
    leaving = usage("b", deleting=True)  # releases its own record
    records = {
        "x.": record(vpc="vpc-2"),
        "y.": record(cluster="staging"),
        "z.": record(target=("vpce-2-def.vpce-svc.us-east-1.vpce.amazonaws.com", TARGET[1])),
        "w.": ObservedRecords(alias=TARGET),  # no marker: someone else's
        "b.us-east-1.vpce.aws.clickhouse.cloud.": record(),
    }
    assert stray_records([leaving], CLUSTER, "vpc-1", "Z1", TARGET, records) == []


def test_entries_of_a_doomed_endpoint_on_services_no_user_needs_it_on_are_stray() -> None:
    a, leaving = usage("a"), usage("b", deleting=True)
    listed = {"svc-a": ["vpce-1"], "svc-b": ["vpce-1"], "svc-r": ["vpce-9", "vpce-1"], "svc-x": ["vpce-9"]}
    assert stray_entries([a, leaving], "vpce-1", listed) == ["svc-r"]
    # another endpoint's entries (ours or not) are never touched
    assert stray_entries([], "vpce-7", listed) == []
