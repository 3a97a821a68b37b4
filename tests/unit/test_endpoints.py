"""The shared endpoint of one key, decided for a round's requests at once (decisions/endpoints.py, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.decisions.endpoints import (
    EndpointKind,
    EndpointOutcome,
    EndpointPlan,
    EndpointRequest,
    KeyAction,
    plan_endpoint_key,
)
from clickhouse_privatelink.decisions.ownership import shared_endpoint_tags
from clickhouse_privatelink.decisions.plan import EndpointAction, ObservedEndpoint
from clickhouse_privatelink.decisions.reasons import Reason
from clickhouse_privatelink.decisions.usage import EndpointKey, Usage, endpoint_client_token
from tests.unit.test_usage import KEY, SVC, usage


def endpoint(
    endpoint_id: str = "vpce-1",
    state: str = "available",
    *,
    subnets: tuple[str, ...] = ("subnet-a",),
    key_tags: bool = True,
    **tags: str,
) -> ObservedEndpoint:
    shared = shared_endpoint_tags(KEY, {}) if key_tags else {}
    return ObservedEndpoint(
        id=endpoint_id,
        vpc_id="vpc-1",
        service_name=SVC,
        state=state,
        subnet_ids=frozenset(subnets),
        security_group_ids=frozenset(),
        tags={**shared, **tags},
    )


def young(uid: str, created: str = "2026-02-01T00:00:00Z", **values: object) -> Usage:
    return usage(uid, created, **values)


@dataclass(frozen=True)
class Asked:
    """A request, and the other users its pass saw (the round knows of them: they are in its users)."""

    request: EndpointRequest
    seen: tuple[Usage, ...]


def apply(me: Usage, *seen: Usage) -> Asked:
    return Asked(EndpointRequest(EndpointKind.APPLY, me), seen)


def release(me: Usage, *seen: Usage) -> Asked:
    return Asked(EndpointRequest(EndpointKind.RELEASE, replace(me, deleting=True)), seen)


def retain(me: Usage, *seen: Usage) -> Asked:
    return Asked(EndpointRequest(EndpointKind.RETAIN, replace(me, deleting=True)), seen)


def planned(
    key: EndpointKey, asked: Sequence[Asked], listed: Sequence[ObservedEndpoint], users: Sequence[Usage] = ()
) -> EndpointPlan:
    """The round's plan, the users it is given being those the requests' passes saw and then ``users`` (the
    fresher word)."""
    seen = [u for a in asked for u in a.seen]
    return plan_endpoint_key(key, [a.request for a in asked], listed, [*seen, *users])


def test_users_asking_for_a_missing_endpoint_make_one_with_the_oldest_users_settings_and_token() -> None:
    old, new = usage("a", subnet_ids=("subnet-old",)), young("b", subnet_ids=("subnet-new",))
    plan = planned(KEY, [apply(new, old), apply(old, new)], [])
    assert plan.action is KeyAction.CREATE
    assert plan.desired is not None and plan.desired.subnet_ids == {"subnet-old"}
    assert plan.client_token == endpoint_client_token(KEY, "a")
    assert plan.tags[c.TAG_ENDPOINT_KEY] == KEY.digest
    # one pass reports the create (its Event and crash point): the oldest's
    assert [r.write for r in plan.results] == [None, KeyAction.CREATE]
    assert all(r.outcome is EndpointOutcome.IN_USE and r.leader == old and r.shared for r in plan.results)


def test_an_endpoint_as_it_should_be_writes_nothing_and_those_of_other_keys_or_legacy_ones_are_not_it() -> (
    None
):
    me = usage("a")
    plan = planned(KEY, [apply(me)], [endpoint()])
    assert plan.action is KeyAction.KEEP and not plan.writes
    (answer,) = plan.results
    assert answer.endpoint == endpoint() and answer.decision is not None
    assert answer.decision.action is EndpointAction.READY and not answer.shared
    other = endpoint("vpce-9", key_tags=False, **{c.TAG_MANAGED_BY: c.OPERATOR_NAME, c.TAG_CLUSTER: "prod"})
    assert planned(KEY, [apply(me)], [other]).action is KeyAction.CREATE


def test_the_leaders_settings_changed_modify_the_endpoint_once() -> None:
    me = usage("a", subnet_ids=("subnet-b",))
    plan = planned(KEY, [apply(me), apply(young("b"), me)], [endpoint()])
    assert plan.action is KeyAction.MODIFY and plan.decision is not None
    assert plan.decision.add_subnet_ids == ("subnet-b",) and plan.decision.remove_subnet_ids == ("subnet-a",)
    assert [r.write for r in plan.results] == [KeyAction.MODIFY, None]
    assert plan.results[0].change == plan.decision


def test_a_cross_region_endpoint_from_an_unsupported_region_fails_without_a_write() -> None:
    key = replace(KEY, region="mx-central-1")
    me = usage("a", region="mx-central-1", service_region="us-east-1")
    plan = planned(key, [apply(me)], [])
    assert plan.action is KeyAction.KEEP and not plan.writes
    (answer,) = plan.results
    assert answer.endpoint is None and answer.decision is not None
    assert answer.decision.reason is Reason.CROSS_REGION_NOT_SUPPORTED


def test_the_last_user_leaving_deletes_the_endpoint_and_waits_for_it() -> None:
    me = usage("a")
    plan = planned(KEY, [release(me)], [endpoint()])
    assert plan.action is KeyAction.DELETE and plan.endpoint == endpoint()
    (answer,) = plan.results
    assert answer.outcome is EndpointOutcome.WAIT and answer.write is KeyAction.DELETE


def test_a_user_leaving_while_another_lives_keeps_the_endpoint_and_says_who() -> None:
    me, other = usage("a"), young("b")
    plan = planned(KEY, [release(me, other)], [endpoint()])
    assert plan.action is KeyAction.KEEP and not plan.writes
    (answer,) = plan.results
    assert (
        answer.outcome is EndpointOutcome.KEPT and answer.message == "endpoint vpce-1 is still used by ns/b"
    )


def test_a_user_joining_in_the_round_another_leaves_keeps_the_endpoint() -> None:
    leaving, joining = usage("a"), young("b")
    plan = planned(KEY, [release(leaving), apply(joining)], [endpoint()])
    assert plan.action is KeyAction.KEEP
    assert plan.results[0].outcome is EndpointOutcome.KEPT
    assert plan.results[1].endpoint == endpoint()


def test_every_user_leaving_at_once_deletes_once_and_only_the_oldest_stays_for_aws() -> None:
    old, mid, new = usage("a"), young("b"), young("c")
    gone = [replace(u, deleting=True) for u in (old, mid, new)]
    plan = planned(KEY, [release(new, *gone), release(mid, *gone)], [endpoint()])
    assert plan.action is KeyAction.DELETE
    # the oldest is not in this round: nobody of it waits, and the first request reports the delete
    assert [r.outcome for r in plan.results] == [EndpointOutcome.RELEASED] * 2
    assert [r.write for r in plan.results] == [None, KeyAction.DELETE]
    later = planned(KEY, [release(old, *gone)], [endpoint(state="deleting")])
    assert later.action is KeyAction.WAIT and not later.writes
    assert later.results[0].outcome is EndpointOutcome.WAIT and later.results[0].write is None


def test_once_aws_has_deleted_the_endpoint_the_waiting_user_is_released() -> None:
    plan = planned(KEY, [release(usage("a"))], [endpoint(state="deleted")])
    assert plan.action is KeyAction.KEEP and plan.results[0].outcome is EndpointOutcome.RELEASED


def test_a_retain_of_the_last_user_marks_the_endpoint_and_later_releases_keep_it() -> None:
    me = usage("a")
    plan = planned(KEY, [retain(me)], [endpoint()])
    assert plan.action is KeyAction.KEEP and plan.mark == "ns/a" and plan.writes
    assert plan.results[0].outcome is EndpointOutcome.RETAINED
    marked = endpoint(**{c.TAG_RETAINED: "ns/a"})
    again = planned(KEY, [retain(me)], [marked])
    assert again.mark is None and not again.writes  # marked so already
    other = planned(KEY, [release(young("b"))], [marked])
    assert other.action is KeyAction.KEEP and not other.writes
    assert other.results[0].message == "endpoint vpce-1 is kept: deletionPolicy Retain of ns/a"


def test_a_retain_whose_status_names_no_endpoint_yet_still_marks_the_keys_endpoint() -> None:
    me = usage("a", endpoint_id=None)  # killed right after the create, before its status named it
    plan = planned(KEY, [retain(me)], [endpoint()])
    assert plan.action is KeyAction.KEEP and plan.mark == "ns/a"
    assert plan.results[0].outcome is EndpointOutcome.RETAINED


def test_a_retain_and_a_release_of_the_last_users_in_one_round_mark_the_endpoint_and_keep_it() -> None:
    keeper, leaver = usage("a"), young("b")
    plan = planned(KEY, [release(leaver, keeper), retain(keeper, leaver)], [endpoint()])
    assert plan.action is KeyAction.KEEP and plan.mark == "ns/a"
    assert [r.outcome for r in plan.results] == [EndpointOutcome.KEPT, EndpointOutcome.RETAINED]
    assert plan.results[0].message == "endpoint vpce-1 is kept: deletionPolicy Retain of ns/a"


def test_a_retain_while_another_user_lives_pins_nothing() -> None:
    me, other = usage("a"), young("b")
    plan = planned(KEY, [retain(me, other)], [endpoint()])
    assert plan.mark is None and not plan.writes
    (answer,) = plan.results
    assert answer.outcome is EndpointOutcome.NOT_RETAINED and answer.holders == (other,)


def test_a_retain_and_a_new_user_in_one_round_leave_the_endpoint_to_the_new_user() -> None:
    plan = planned(KEY, [retain(usage("a")), apply(young("b"))], [endpoint()])
    assert plan.mark is None and plan.results[0].outcome is EndpointOutcome.NOT_RETAINED


def test_a_retain_of_an_endpoint_being_deleted_keeps_nothing() -> None:
    plan = planned(KEY, [retain(usage("a"))], [endpoint(state="deleting")])
    assert plan.results[0].outcome is EndpointOutcome.NOT_RETAINED and not plan.writes


def test_a_new_user_takes_a_retained_endpoint_over() -> None:
    marked = endpoint(**{c.TAG_RETAINED: "ns/old"})
    plan = planned(KEY, [apply(usage("a")), apply(young("b"))], [marked])
    assert plan.unmark and plan.action is KeyAction.KEEP and plan.writes
    assert [r.taken_over for r in plan.results] == ["ns/old", None]


def test_leaving_users_naming_only_one_another_keep_the_endpoint_for_a_live_user_the_round_knows_of() -> None:
    """Four users deleted at once, each pass having seen the other three live: the round's own view of the key's
    users (a fifth, live) keeps the endpoint, and a round given none would have deleted it."""
    leaving = [usage(uid, created=f"2026-01-0{n + 1}T00:00:00Z") for n, uid in enumerate("abcd")]
    requests = [release(me, *(u for u in leaving if u is not me)) for me in leaving]
    live = young("e")
    view = [*(replace(u, deleting=True) for u in leaving), live]
    plan = planned(KEY, requests, [endpoint()], view)
    assert plan.action is KeyAction.KEEP and not plan.writes
    assert {r.outcome for r in plan.results} == {EndpointOutcome.KEPT}
    assert all("ns/e" in r.message for r in plan.results)
    assert planned(KEY, requests, [endpoint()]).action is KeyAction.DELETE
    # The round's view of a user is fresher than a request's copy of it: a user the view shows leaving holds
    # nothing, though a request saw it live.
    stale = [release(leaving[0], live)]
    assert planned(KEY, stale, [endpoint()], [replace(live, deleting=True)]).action is KeyAction.DELETE


def test_a_release_kept_by_many_names_the_oldest_three_and_counts_the_rest() -> None:
    leaving = usage("a", created="2025-01-01T00:00:00Z")
    live = [young(f"u{n:02d}", created=f"2026-02-{n + 1:02d}T00:00:00Z") for n in range(10)]
    plan = planned(KEY, [release(leaving)], [endpoint()], [leaving, *reversed(live)])
    (answer,) = plan.results
    assert answer.outcome is EndpointOutcome.KEPT
    assert answer.message == "endpoint vpce-1 is still used by ns/u00, ns/u01, ns/u02 and 7 more"
    assert [u.uid for u in answer.holders] == ["u00", "u01", "u02"]
    # one live user left, and it is the leaving one's only holder
    (alone,) = planned(KEY, [release(leaving)], [endpoint()], [leaving, live[4]]).results
    assert alone.message == "endpoint vpce-1 is still used by ns/u04"
