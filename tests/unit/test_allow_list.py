"""One service's allow list for every request of a round at once (decisions/allow_list.py, no I/O)."""

from __future__ import annotations

from dataclasses import replace

from clickhouse_privatelink.decisions.allow_list import (
    AllowKind,
    AllowOutcome,
    AllowRequest,
    AllowResult,
    plan_service_allow_list,
)
from clickhouse_privatelink.decisions.usage import Usage
from tests.unit.test_usage import usage

SERVICE = "svc"


def user(uid: str, created: str = "2026-01-01T00:00:00Z", **values: object) -> Usage:
    """A resource of service SERVICE whose endpoint is vpce-1."""
    return usage(uid, created, service_id=SERVICE, **values)


def add(me: Usage) -> AllowRequest:
    return AllowRequest(AllowKind.ADD, me, me.endpoint_id or "")


def release(
    me: Usage, users: list[Usage] | None = None, *, adopted: bool = False, recorded: bool | None = None
) -> AllowRequest:
    me = replace(me, deleting=True)
    return AllowRequest(
        AllowKind.RELEASE, me, me.endpoint_id or "", users or [me], adopted=adopted, recorded=recorded
    )


def test_an_entry_not_listed_is_added_and_a_listed_one_is_left_alone() -> None:
    plan = plan_service_allow_list(SERVICE, [add(user("a"))], ["vpce-other"])
    assert (plan.add, plan.remove) == (("vpce-1",), ())
    assert plan.results == (AllowResult(AllowOutcome.ADDED, written=True),)
    plan = plan_service_allow_list(SERVICE, [add(user("a"))], ["vpce-1"])
    assert plan.empty and plan.results == (AllowResult(AllowOutcome.LISTED),)


def test_two_users_of_one_entry_and_another_endpoint_in_one_round_are_one_delta() -> None:
    a, b = user("a"), user("b")
    c = user("c", endpoint_id="vpce-2")
    plan = plan_service_allow_list(SERVICE, [add(a), add(b), add(c)], [])
    assert (plan.add, plan.remove) == (("vpce-1", "vpce-2"), ())
    # each asker's entry is added by the round's PATCH: each depends on it
    assert [r.outcome for r in plan.results] == [AllowOutcome.ADDED] * 3
    assert all(r.written for r in plan.results)


def test_the_last_users_release_removes_the_entry() -> None:
    a = user("a")
    plan = plan_service_allow_list(SERVICE, [release(a)], ["vpce-1", "vpce-other"])
    assert (plan.add, plan.remove) == ((), ("vpce-1",))
    assert plan.results == (AllowResult(AllowOutcome.REMOVED, written=True),)


def test_a_release_while_another_live_user_holds_the_entry_keeps_it() -> None:
    a, b = user("a"), user("b")
    plan = plan_service_allow_list(SERVICE, [release(a, [a, b])], ["vpce-1"])
    assert plan.empty
    (result,) = plan.results
    assert result.outcome is AllowOutcome.KEPT and not result.written
    assert result.message == "vpce-1 stays on the allow list: used by ns/b"


def test_a_user_asking_in_the_same_round_holds_the_entry_though_the_release_did_not_see_it() -> None:
    a, b = user("a", "2026-01-01T00:00:00Z"), user("b", "2026-01-01T00:00:01Z")
    for requests in ([release(a), add(b)], [add(b), release(a)]):
        plan = plan_service_allow_list(SERVICE, requests, ["vpce-1"])
        assert plan.empty
        outcomes = {r.me.uid: res.outcome for r, res in zip(requests, plan.results, strict=True)}
        assert outcomes == {"a": AllowOutcome.KEPT, "b": AllowOutcome.LISTED}


def test_the_round_says_the_fresher_word_on_a_user_the_release_saw_live() -> None:
    a, b = user("a"), user("b")
    # the pass of a saw b live; b's own release in the same round says it is leaving too: the entry goes
    requests = [release(a, [a, b]), release(b, [a, b])]
    plan = plan_service_allow_list(SERVICE, requests, ["vpce-1"])
    assert plan.remove == ("vpce-1",)
    assert {r.outcome for r in plan.results} == {AllowOutcome.REMOVED, AllowOutcome.NOTHING}
    # the first to let go removes it; the other finds it gone as planned
    assert plan.results[0].outcome is AllowOutcome.REMOVED


def test_a_release_of_an_entry_not_listed_removes_nothing() -> None:
    plan = plan_service_allow_list(SERVICE, [release(user("a"))], ["vpce-other"])
    assert plan.empty and plan.results == (AllowResult(AllowOutcome.NOTHING),)


def test_an_adopted_endpoints_entry_there_before_the_operator_is_left() -> None:
    a = user("a", adopted_endpoint_id="vpce-1")
    plan = plan_service_allow_list(SERVICE, [release(a, adopted=True, recorded=False)], ["vpce-1"])
    assert plan.empty
    (result,) = plan.results
    assert result.outcome is AllowOutcome.KEPT and "before the operator" in result.message
    added = replace(a, allow_list_added=True)
    plan = plan_service_allow_list(SERVICE, [release(added, adopted=True, recorded=True)], ["vpce-1"])
    assert plan.remove == ("vpce-1",)


def test_a_sweep_removes_an_entry_no_user_has_and_leaves_one_a_user_has() -> None:
    steward = replace(usage("s", service_id="svc-s"), deleting=True)
    sweep = AllowRequest(AllowKind.SWEEP, steward, "vpce-1", [steward])
    plan = plan_service_allow_list(SERVICE, [sweep], ["vpce-1"])
    assert plan.remove == ("vpce-1",) and plan.results[0].outcome is AllowOutcome.REMOVED
    # a user of the entry on this service, live or being deleted (it releases its own), keeps it from the sweep
    for holder in (user("h"), replace(user("h"), deleting=True)):
        plan = plan_service_allow_list(SERVICE, [replace(sweep, users=[steward, holder])], ["vpce-1"])
        assert plan.empty and plan.results[0].outcome is AllowOutcome.NOTHING
    # nor does it remove an entry a request of the round adds
    plan = plan_service_allow_list(SERVICE, [sweep, add(user("n"))], [])
    assert plan.add == ("vpce-1",) and plan.results[0].outcome is AllowOutcome.NOTHING


def test_a_retired_endpoints_entry_goes_unless_a_request_of_the_round_needs_it() -> None:
    a = user("a", endpoint_id="vpce-new")
    retire = AllowRequest(AllowKind.RETIRE, a, "vpce-old")
    plan = plan_service_allow_list(SERVICE, [retire], ["vpce-old", "vpce-new"])
    assert (plan.add, plan.remove) == ((), ("vpce-old",))
    assert plan.results == (AllowResult(AllowOutcome.REMOVED, written=True),)
    plan = plan_service_allow_list(SERVICE, [retire], ["vpce-new"])
    assert plan.empty and plan.results[0].outcome is AllowOutcome.NOTHING
    plan = plan_service_allow_list(SERVICE, [retire, add(user("b", endpoint_id="vpce-old"))], ["vpce-old"])
    assert plan.empty and [r.outcome for r in plan.results] == [AllowOutcome.NOTHING, AllowOutcome.LISTED]


def test_adds_and_removals_of_different_entries_are_one_delta() -> None:
    leaving = user("a", endpoint_id="vpce-1")
    joining = user("b", endpoint_id="vpce-2")
    plan = plan_service_allow_list(SERVICE, [release(leaving), add(joining)], ["vpce-1", "vpce-x"])
    assert (plan.add, plan.remove) == (("vpce-2",), ("vpce-1",))
    assert [r.outcome for r in plan.results] == [AllowOutcome.REMOVED, AllowOutcome.ADDED]


def test_another_services_users_neither_hold_nor_need_the_entry() -> None:
    a = user("a")
    elsewhere = usage("b", service_id="svc-other")  # the same endpoint, another service's allow list
    plan = plan_service_allow_list(SERVICE, [release(a, [a, elsewhere])], ["vpce-1"])
    assert plan.remove == ("vpce-1",)
