"""One zone's records for every request of a round at once (decisions/zone_records.py, no I/O)."""

from __future__ import annotations

from dataclasses import replace

from clickhouse_privatelink.decisions.ownership import DnsOwner
from clickhouse_privatelink.decisions.plan import ObservedRecords
from clickhouse_privatelink.decisions.reasons import Reason
from clickhouse_privatelink.decisions.usage import Usage
from clickhouse_privatelink.decisions.zone_records import (
    RecordOutcome,
    RecordRemoval,
    RecordRequest,
    RecordWrite,
    host_key,
    plan_zone_records,
    zone_release,
)
from tests.unit.test_usage import usage

CLUSTER = "prod"
ZONE = "Z1"
TARGET = ("vpce-1.example.com", "ZHUB")
OTHER_TARGET = ("vpce-2.example.com", "ZHUB")
HOST = "a.us-east-1.vpce.aws.clickhouse.cloud"


def user(uid: str, created: str = "2026-01-01T00:00:00Z", **values: object) -> Usage:
    """A resource of vpc-1 whose record is HOST in zone Z1."""
    return usage(uid, created, hostname=HOST, **values)


def apply(me: Usage, target: tuple[str, str] = TARGET) -> RecordRequest:
    return RecordRequest(me, me.hostname or HOST, target)


def release(me: Usage, users: list[Usage] | None = None) -> RecordRequest:
    me = replace(me, deleting=True)
    return RecordRequest(me, me.hostname or HOST, None, users or [me])


def ours(vpc: str = "vpc-1", target: tuple[str, str] = TARGET, cluster: str = CLUSTER) -> ObservedRecords:
    return ObservedRecords(alias=target, owner=DnsOwner(cluster, vpc=vpc))


def listing(observed: ObservedRecords) -> dict[str, ObservedRecords]:
    return {host_key(HOST): observed}


def test_a_vacant_name_is_written_with_create() -> None:
    plan = plan_zone_records(CLUSTER, ZONE, [apply(user("a"))], {})
    assert plan.changes == (RecordWrite(HOST, TARGET, "vpc-1", create=True),)
    (result,) = plan.results
    assert result.outcome is RecordOutcome.WRITTEN and result.changes == (0,)


def test_a_record_already_ours_and_right_is_kept_without_a_write() -> None:
    plan = plan_zone_records(CLUSTER, ZONE, [apply(user("a"))], listing(ours()))
    assert plan.changes == ()
    (result,) = plan.results
    assert result.outcome is RecordOutcome.KEPT and result.changes == ()
    assert result.reason is Reason.RECORD_WRITTEN


def test_a_record_of_ours_pointing_elsewhere_is_upserted() -> None:
    plan = plan_zone_records(CLUSTER, ZONE, [apply(user("a"))], listing(ours(target=OTHER_TARGET)))
    assert plan.changes == (RecordWrite(HOST, TARGET, "vpc-1", create=False),)


def test_a_record_someone_else_wrote_is_a_conflict_and_never_written_over() -> None:
    for foreign in (
        ObservedRecords(alias=TARGET),
        ObservedRecords(other_address=True),
        ObservedRecords(foreign_txt=True),
        ours(cluster="staging"),
        ours(vpc="vpc-2"),
    ):
        plan = plan_zone_records(CLUSTER, ZONE, [apply(user("a"))], listing(foreign))
        assert plan.changes == ()
        (result,) = plan.results
        assert result.outcome is RecordOutcome.CONFLICT and result.reason is Reason.DNS_RECORD_CONFLICT
        assert result.changes == ()


def test_two_users_of_one_vpc_asking_in_one_round_make_one_write_both_depend_on() -> None:
    a, b = user("a"), user("b", created="2026-02-01T00:00:00Z")
    plan = plan_zone_records(CLUSTER, ZONE, [apply(b), apply(a)], {})
    assert plan.changes == (RecordWrite(HOST, TARGET, "vpc-1", create=True),)
    assert [r.outcome for r in plan.results] == [RecordOutcome.KEPT, RecordOutcome.WRITTEN]
    assert [r.changes for r in plan.results] == [(0,), (0,)]


def test_two_vpcs_asking_for_one_name_in_one_round_the_older_writes_the_other_conflicts() -> None:
    a, b = user("a"), user("b", created="2026-02-01T00:00:00Z", vpc_id="vpc-2")
    plan = plan_zone_records(CLUSTER, ZONE, [apply(b, OTHER_TARGET), apply(a)], {})
    assert plan.changes == (RecordWrite(HOST, TARGET, "vpc-1", create=True),)
    conflict, written = plan.results
    assert written.outcome is RecordOutcome.WRITTEN
    assert conflict.outcome is RecordOutcome.CONFLICT and "record of VPC vpc-1" in conflict.message
    assert conflict.changes == ()


def test_the_last_user_releasing_removes_the_record() -> None:
    a = user("a")
    plan = plan_zone_records(CLUSTER, ZONE, [release(a)], listing(ours()))
    assert plan.changes == (RecordRemoval(HOST),)
    (result,) = plan.results
    assert result.outcome is RecordOutcome.REMOVED and result.changes == (0,)


def test_a_release_keeps_the_record_another_live_user_holds_and_says_who() -> None:
    a, b = user("a"), user("b")
    plan = plan_zone_records(CLUSTER, ZONE, [release(a, [a, b])], listing(ours()))
    assert plan.changes == ()
    (result,) = plan.results
    assert (
        result.outcome is RecordOutcome.HELD
        and result.message == f"the record for {HOST} is still used by ns/b"
    )


def test_a_user_asking_in_the_same_round_holds_the_record_a_release_would_remove() -> None:
    a, b = user("a"), user("b", created="2026-02-01T00:00:00Z")
    plan = plan_zone_records(CLUSTER, ZONE, [release(a), apply(b)], listing(ours()))
    assert plan.changes == ()
    assert [r.outcome for r in plan.results] == [RecordOutcome.HELD, RecordOutcome.KEPT]


def test_users_releasing_together_remove_the_record_once() -> None:
    a, b = user("a"), user("b", created="2026-02-01T00:00:00Z")
    both = [replace(a, deleting=True), replace(b, deleting=True)]
    plan = plan_zone_records(CLUSTER, ZONE, [release(b, both), release(a, both)], listing(ours()))
    assert plan.changes == (RecordRemoval(HOST),)
    assert [r.outcome for r in plan.results] == [RecordOutcome.NOTHING, RecordOutcome.REMOVED]


def test_a_user_another_request_says_is_leaving_holds_nothing() -> None:
    a, b = user("a"), user("b", created="2026-02-01T00:00:00Z")
    # a's pass saw b live; b's own request in the round says it is being deleted
    plan = plan_zone_records(CLUSTER, ZONE, [release(a, [a, b]), release(b, [a, b])], listing(ours()))
    assert plan.changes == (RecordRemoval(HOST),)


def test_users_of_other_vpcs_or_records_hold_nothing() -> None:
    a = user("a")
    elsewhere = [user("b", vpc_id="vpc-2"), usage("c"), user("d", hosted_zone_id="Z2")]
    plan = plan_zone_records(CLUSTER, ZONE, [release(a, [a, *elsewhere])], listing(ours()))
    assert plan.changes == (RecordRemoval(HOST),)


def test_a_release_never_removes_a_record_that_is_not_ours() -> None:
    a = user("a")
    for foreign in (ObservedRecords(alias=TARGET), ours(vpc="vpc-2"), ours(cluster="staging")):
        plan = plan_zone_records(CLUSTER, ZONE, [release(a)], listing(foreign))
        assert plan.changes == ()
        (result,) = plan.results
        assert result.outcome is RecordOutcome.LEFT and "not ours" in result.message


def test_a_release_from_a_vacant_name_or_a_gone_zone_does_nothing() -> None:
    a = user("a")
    for found in ({}, None):
        plan = plan_zone_records(CLUSTER, ZONE, [release(a)], found)
        assert plan.changes == ()
        assert plan.results[0].outcome is RecordOutcome.NOTHING


def test_a_marker_from_before_sharing_is_removed_only_by_its_own_resource() -> None:
    a = user("a")
    legacy = ObservedRecords(alias=TARGET, owner=DnsOwner(CLUSTER, resource="ns/a", uid="a"))
    assert plan_zone_records(CLUSTER, ZONE, [release(a)], listing(legacy)).changes == (RecordRemoval(HOST),)
    theirs = ObservedRecords(alias=TARGET, owner=DnsOwner(CLUSTER, resource="ns/x", uid="x"))
    assert plan_zone_records(CLUSTER, ZONE, [release(a)], listing(theirs)).changes == ()


def test_a_release_then_another_vpcs_write_in_one_round_is_one_upsert() -> None:
    a, b = user("a"), user("b", created="2026-02-01T00:00:00Z", vpc_id="vpc-2")
    plan = plan_zone_records(CLUSTER, ZONE, [apply(b, OTHER_TARGET), release(a)], listing(ours()))
    assert plan.changes == (RecordWrite(HOST, OTHER_TARGET, "vpc-2", create=False),)
    assert [r.outcome for r in plan.results] == [RecordOutcome.WRITTEN, RecordOutcome.REMOVED]
    assert [r.changes for r in plan.results] == [(0,), (0,)]


def test_requests_for_different_names_make_one_change_each() -> None:
    a, b = user("a"), usage("b")
    plan = plan_zone_records(CLUSTER, ZONE, [apply(a), apply(b)], {})
    assert [c.hostname for c in plan.changes if isinstance(c, RecordWrite)] == [HOST, b.hostname]
    assert [r.changes for r in plan.results] == [(0,), (1,)]


def sweep(me: Usage, users: list[Usage], target: tuple[str, str] = TARGET) -> RecordRequest:
    return RecordRequest(replace(me, deleting=True), "", target, users, sweep=True)


def test_a_sweep_removes_records_of_this_vpc_pointing_at_the_endpoint_that_no_user_has() -> None:
    a = user("a")  # its own record is HOST; a Retain's left one at B pointed at the same endpoint
    left = "b.us-east-1.vpce.aws.clickhouse.cloud"
    found = {
        host_key(HOST): ours(),
        host_key(left): ours(),
        "c.us-east-1.vpce.aws.clickhouse.cloud": ours(target=OTHER_TARGET),  # another endpoint's
        "d.us-east-1.vpce.aws.clickhouse.cloud": ours(vpc="vpc-2"),  # another VPC's
        "e.us-east-1.vpce.aws.clickhouse.cloud": ours(cluster="staging"),  # another cluster's
    }
    plan = plan_zone_records(CLUSTER, ZONE, [sweep(a, [a])], found)
    assert plan.changes == (RecordRemoval(left),)
    (result,) = plan.results
    assert result.outcome is RecordOutcome.REMOVED and result.message == left and result.changes == (0,)


def test_a_sweep_leaves_a_record_a_request_of_the_round_has() -> None:
    a = user("a")
    b = usage("b", hostname="b.us-east-1.vpce.aws.clickhouse.cloud", created="2026-02-01T00:00:00Z")
    found = {host_key(HOST): ours(), host_key(b.hostname or ""): ours()}
    plan = plan_zone_records(CLUSTER, ZONE, [sweep(a, [a]), apply(b)], found)
    assert plan.changes == ()
    assert [r.outcome for r in plan.results] == [RecordOutcome.NOTHING, RecordOutcome.KEPT]


# ---- the zone itself: let go of in the round of its ID

APEX = {host_key("us-east-1.vpce.aws.clickhouse.cloud"): frozenset({"SOA", "NS"})}


def leaving(me: Usage, users: list[Usage] | None = None) -> RecordRequest:
    me = replace(me, deleting=True)
    return zone_release(me, users or [me])


def with_record(host: str = HOST) -> dict[str, frozenset[str]]:
    return {**APEX, host_key(host): frozenset({"A", "TXT"})}


def test_the_last_user_letting_go_of_an_empty_zone_has_it_deleted() -> None:
    a = user("a")
    plan = plan_zone_records(CLUSTER, ZONE, [leaving(a)], {}, APEX)
    assert plan.changes == () and plan.delete_zone == 0
    (result,) = plan.results
    assert result.outcome is RecordOutcome.REMOVED and result.changes == ()


def test_a_live_user_of_the_zone_in_another_vpc_keeps_it_and_is_named() -> None:
    a, b = user("a"), user("b", vpc_id="vpc-2")  # b names the zone in dns.hostedZoneId
    plan = plan_zone_records(CLUSTER, ZONE, [leaving(a, [a, b])], {}, APEX)
    assert plan.delete_zone is None
    (result,) = plan.results
    assert result.outcome is RecordOutcome.HELD
    assert result.message == f"the private zone {ZONE} is still used by ns/b"


def test_a_user_of_another_zone_or_one_being_deleted_keeps_nothing() -> None:
    a = user("a")
    others = [user("b", hosted_zone_id="Z2"), user("c", deleting=True), user("d", dns_route53=False)]
    plan = plan_zone_records(CLUSTER, ZONE, [leaving(a, [a, *others])], {}, APEX)
    assert plan.delete_zone == 0


def test_a_record_asked_for_in_the_same_round_keeps_the_zone() -> None:
    a, b = user("a"), usage("b", hostname="b.us-east-1.vpce.aws.clickhouse.cloud")
    plan = plan_zone_records(CLUSTER, ZONE, [leaving(a), apply(b)], {}, APEX)
    assert plan.delete_zone is None
    assert [r.outcome for r in plan.results] == [RecordOutcome.HELD, RecordOutcome.WRITTEN]


def test_a_user_whose_own_request_says_it_is_leaving_keeps_nothing() -> None:
    a, b = user("a"), user("b", created="2026-02-01T00:00:00Z")
    # a's pass saw b live; b's record release in the same round says b is being deleted
    plan = plan_zone_records(
        CLUSTER, ZONE, [leaving(a, [a, b]), release(b, [a, b])], listing(ours()), with_record()
    )
    assert plan.changes == (RecordRemoval(HOST),)
    assert plan.delete_zone == 0


def test_records_left_in_the_zone_keep_it() -> None:
    a = user("a")
    for kinds in (with_record(), {**APEX, "x.example": frozenset({"CNAME"})}, None):
        plan = plan_zone_records(CLUSTER, ZONE, [leaving(a)], {}, kinds)
        assert plan.delete_zone is None
        (result,) = plan.results
        assert result.outcome is RecordOutcome.LEFT


def test_a_zone_whose_last_record_the_round_removes_is_deleted_after_that_change() -> None:
    a, b = user("a"), user("b", created="2026-02-01T00:00:00Z", deleting=True)
    plan = plan_zone_records(
        CLUSTER, ZONE, [release(b, [a, b]), leaving(a, [a, b])], listing(ours()), with_record()
    )
    assert plan.changes == (RecordRemoval(HOST),)
    assert plan.delete_zone == 1
    assert [r.outcome for r in plan.results] == [RecordOutcome.REMOVED, RecordOutcome.REMOVED]
    assert plan.results[1].changes == (0,)  # a failed removal fails the deletion's request


def test_users_letting_go_together_delete_the_zone_once_for_the_oldest() -> None:
    a, b = user("a"), user("b", created="2026-02-01T00:00:00Z")
    both = [replace(a, deleting=True), replace(b, deleting=True)]
    plan = plan_zone_records(CLUSTER, ZONE, [leaving(b, both), leaving(a, both)], {}, APEX)
    assert plan.delete_zone == 1
    assert [r.outcome for r in plan.results] == [RecordOutcome.NOTHING, RecordOutcome.REMOVED]


def test_a_zone_already_gone_is_nothing_to_delete() -> None:
    plan = plan_zone_records(CLUSTER, ZONE, [leaving(user("a"))], None, None)
    assert plan.delete_zone is None
    assert [r.outcome for r in plan.results] == [RecordOutcome.NOTHING]
