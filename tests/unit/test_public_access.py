"""The service's public IP access list (decisions/public_access.py): deltas, records, who is in force."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from clickhouse_privatelink.api.models import PublicAccess
from clickhouse_privatelink.decisions import public_access as pa
from clickhouse_privatelink.decisions.reasons import Reason

ANYWHERE = pa.Entry("0.0.0.0/0", "Anywhere")
OFFICE = pa.Entry("203.0.113.0/24", "office")
VPN = pa.Entry("198.51.100.7", "vpn")
OURS = "clickhouse-privatelink-operator prod: ns/a"
PRIVATE = pa.Setting(pa.PRIVATE_ONLY)


def allow(*sources: str) -> pa.Setting:
    return pa.Setting(pa.ALLOW_LIST, sources)


def user(uid: str, created: str, setting: pa.Setting | None, **values: Any) -> pa.User:
    return pa.User(uid, f"ns/{uid}", created, values.pop("deleting", False), "svc-1", setting, **values)


def apply(live: list[pa.Entry], delta: pa.Delta) -> list[pa.Entry]:
    """What ClickHouse does with a delta: remove (by source) before add."""
    gone = {e.source for e in delta.remove}
    kept = [e for e in live if e.source not in gone]
    return kept + [e for e in delta.add if e.key not in {k.key for k in kept}]


def test_private_only_removes_every_entry_and_records_them() -> None:
    live = [ANYWHERE, OFFICE]
    delta = pa.plan(PRIVATE, live, description=OURS)
    assert delta == pa.Delta((ANYWHERE, OFFICE), (), "PrivateOnly")
    record = pa.fold(pa.Record("svc-1"), delta)
    assert record.removed == (ANYWHERE, OFFICE) and record.added == () and record.applied == "PrivateOnly"
    assert apply(live, delta) == []


def test_allow_list_adds_only_what_is_missing_and_removes_the_rest() -> None:
    live = [ANYWHERE, pa.Entry("203.0.113.0/24", "someone's")]
    delta = pa.plan(allow("203.0.113.0/24", "198.51.100.7/32"), live, description=OURS)
    assert delta.remove == (ANYWHERE,)
    assert delta.add == (pa.Entry("198.51.100.7/32", OURS),)  # 203.0.113.0/24 is there already: untouched
    assert delta.applied == "AllowList:198.51.100.7/32,203.0.113.0/24"


def test_sources_compare_as_networks() -> None:
    assert pa.source_key("198.51.100.7") == pa.source_key("198.51.100.7/32")
    assert pa.plan(allow("198.51.100.7/32"), [VPN], description=OURS).empty
    assert allow("10.0.0.0/8", "10.0.0.0/8").key == allow("10.0.0.0/8").key


def test_restore_undoes_exactly_what_was_changed() -> None:
    live = [ANYWHERE, OFFICE]
    delta = pa.plan(allow("198.51.100.7/32"), live, description=OURS)
    record = pa.fold(pa.Record("svc-1"), delta)
    closed = apply(live, delta)
    back = pa.restore(record, closed)
    assert set(back.add) == {ANYWHERE, OFFICE}  # with their own descriptions
    assert [e.source for e in back.remove] == ["198.51.100.7/32"]
    assert sorted(e.source for e in apply(closed, back)) == ["0.0.0.0/0", "203.0.113.0/24"]


def test_restore_keeps_what_a_person_changed_since() -> None:
    record = pa.Record("svc-1", "AllowList:198.51.100.7/32", removed=(ANYWHERE, OFFICE), added=(VPN,))
    # Since: a person put OFFICE back themselves, removed our VPN entry, and added their own entry.
    theirs = pa.Entry("192.0.2.1/32", "person")
    live = [OFFICE, theirs]
    back = pa.restore(record, live)
    assert back.add == (ANYWHERE,)  # OFFICE is listed already: not added twice
    assert back.remove == ()  # VPN is gone already; the person's entry is never removed
    observed = pa.observe(record, live)
    assert observed.removed == (ANYWHERE,) and observed.added == ()  # OFFICE and VPN are theirs now


def test_an_entry_a_person_removed_after_putting_it_back_is_not_put_back() -> None:
    record = pa.Record("svc-1", "PrivateOnly", removed=(ANYWHERE,))
    record = pa.observe(record, [ANYWHERE])  # seen back: the person's
    assert pa.restore(record, []).empty  # and removed again by them: never re-added


def test_undoing_our_own_change_cancels_it_in_the_record() -> None:
    record = pa.fold(pa.Record("svc-1"), pa.plan(allow("198.51.100.7/32"), [ANYWHERE], description=OURS))
    assert record.removed == (ANYWHERE,) and [e.source for e in record.added] == ["198.51.100.7/32"]
    live = [pa.Entry("198.51.100.7/32", OURS)]
    delta = pa.with_intent(record, pa.plan(allow("0.0.0.0/0"), live, description=OURS)).intent
    assert delta is not None
    assert delta.add == (ANYWHERE,)  # put back with its own description, not ours
    record = pa.fold(record, delta)
    assert record.removed == () and record.added == () and record.applied == "AllowList:0.0.0.0/0"


def test_an_intent_is_completed_against_the_live_list() -> None:
    intent = pa.Delta((ANYWHERE, OFFICE), (pa.Entry("198.51.100.7/32", OURS),), "AllowList:198.51.100.7/32")
    # Killed before the PATCH: all of it is still to do.
    assert pa.remaining(intent, [ANYWHERE, OFFICE]) == intent
    # Killed after it: nothing left to send.
    assert pa.remaining(intent, [pa.Entry("198.51.100.7/32", OURS)]).empty
    # The record round-trips through the status, intent included.
    record = pa.Record("svc-1", None, (VPN,), (), intent)
    assert pa.record_from_status(record.to_json()) == record
    assert pa.record_from_status(pa.fold(record, intent).to_json()) == pa.fold(record, intent)


def test_the_oldest_user_with_a_setting_is_in_force() -> None:
    a = user("a", "2026-01-02T00:00:00Z", PRIVATE)
    b = user("b", "2026-01-01T00:00:00Z", allow("10.0.0.0/8"), deleting=True)
    c = user("c", "2026-01-03T00:00:00Z", allow("10.0.0.0/8"))
    unchanged = user("u", "2025-01-01T00:00:00Z", None)
    force = pa.in_force([a, b, c, unchanged])
    assert force == a  # b is being deleted; an Unchanged resource has no say
    ok, reason, message = pa.verdict(c, force, [], "analytics")
    assert not ok and reason is Reason.PUBLIC_ACCESS_SETTING_OF_OTHER_RESOURCE and "ns/a" in message
    ok, reason, _ = pa.verdict(a, force, [], "analytics")
    assert ok and reason is Reason.PUBLIC_ACCESS_PRIVATE_ONLY
    ok, reason, message = pa.verdict(a, force, [OFFICE], "analytics")
    assert not ok and reason is Reason.PUBLIC_ACCESS_CHANGED_BY_OTHERS and "203.0.113.0/24 listed" in message


def test_records_of_several_holders_merge_by_source() -> None:
    one = pa.Record("svc-1", "PrivateOnly", removed=(ANYWHERE,))
    two = pa.Record("svc-1", "PrivateOnly", removed=(ANYWHERE, OFFICE))
    both = pa.merged("svc-1", [one, None, two], applied="PrivateOnly")
    assert both.removed == (ANYWHERE, OFFICE)


def test_resources_left_at_unchanged_are_not_users() -> None:
    body: dict[str, Any] = {
        "metadata": {"uid": "u", "namespace": "ns", "name": "n", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"clickhouse": {"serviceId": "svc-1"}},
        "status": {"serviceId": "svc-1"},
    }
    assert pa.user_from_body(body) is None
    body["spec"]["clickhouse"]["publicAccess"] = {"mode": "Unchanged"}
    assert pa.user_from_body(body) is None
    # Back to Unchanged while still holding a record: a user until it has let go.
    body["status"]["publicAccess"] = pa.Record("svc-1", "PrivateOnly", removed=(ANYWHERE,)).to_json()
    found = pa.user_from_body(body)
    assert found is not None and found.setting is None and found.record is not None


@pytest.mark.parametrize(
    "raw",
    [
        {"mode": "AllowList"},
        {"mode": "AllowList", "sources": []},
        {"mode": "PrivateOnly", "sources": ["10.0.0.0/8"]},
        {"mode": "AllowList", "sources": ["10.0.0.0/33"]},
        {"mode": "AllowList", "sources": ["2001:db8::/32"]},
    ],
)
def test_bad_settings_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PublicAccess.model_validate(raw)


def test_diagnosis_says_whether_the_list_stands_as_set_and_what_an_unset_list_admits() -> None:
    assert pa.diagnosis(None, [ANYWHERE], "svc") == (
        None,
        "publicAccess is Unchanged: the operator leaves the IP access list of svc alone (it admits: 0.0.0.0/0)",
    )
    assert pa.diagnosis(PRIVATE, [], "svc") == (
        True,
        "the IP access list of svc is as publicAccess asks: no public entry (PrivateLink only)",
    )
    met, detail = pa.diagnosis(allow("203.0.113.0/24"), [ANYWHERE], "svc")
    assert met is False
    assert detail == (
        "the IP access list of svc differs from publicAccess (only 203.0.113.0/24): 0.0.0.0/0 listed; "
        "203.0.113.0/24 missing; see the resource's PublicAccessRestricted condition"
    )
