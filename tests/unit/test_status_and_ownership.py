"""Conditions keep honest transition times; ownership tags and markers identify exactly one resource."""

from __future__ import annotations

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.decisions.ownership import (
    ResourceRef,
    client_token,
    dns_owner_value,
    is_owned_by,
    ownership_tags,
    parse_dns_owner,
    resource_tags,
)
from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from clickhouse_privatelink.decisions.status import (
    Event,
    StepResult,
    WrittenStatus,
    fold_events,
    set_condition,
    summarise_ready,
)

REF = ResourceRef(namespace="ns", name="link", uid="uid-1", cluster="prod")


def test_transition_time_changes_only_when_status_flips() -> None:
    pending = StepResult(ConditionType.VPC_ENDPOINT_READY, False, Reason.ENDPOINT_PENDING, "pending")
    first = set_condition([], pending, generation=1, now="2026-01-01T00:00:00Z")
    again = set_condition(first, pending, generation=2, now="2026-01-01T00:05:00Z")
    assert again[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert again[0]["observedGeneration"] == 2
    ready = StepResult(ConditionType.VPC_ENDPOINT_READY, True, Reason.AVAILABLE, "ok")
    flipped = set_condition(again, ready, generation=2, now="2026-01-01T00:09:00Z")
    assert flipped[0]["status"] == "True" and flipped[0]["lastTransitionTime"] == "2026-01-01T00:09:00Z"


def test_ready_carries_the_first_failing_step() -> None:
    steps = [
        StepResult(ConditionType.SERVICE_RESOLVED, True, Reason.RESOLVED, "ok"),
        StepResult(ConditionType.VPC_ENDPOINT_READY, False, Reason.ENDPOINT_PENDING, "pending"),
    ]
    ready = summarise_ready(steps)
    assert not ready.ok and ready.reason is Reason.ENDPOINT_PENDING


def test_ready_is_true_only_when_every_step_is() -> None:
    steps = [
        StepResult(t, True, Reason.RESOLVED, "ok") for t in ConditionType if t is not ConditionType.READY
    ]
    assert summarise_ready(steps).ok
    assert not summarise_ready(steps[:2]).ok


def test_ownership_tags_cannot_be_overridden_by_user_tags() -> None:
    tags = resource_tags(REF, {c.TAG_RESOURCE_UID: "forged", "team": "data"})
    assert tags[c.TAG_RESOURCE_UID] == "uid-1" and tags["team"] == "data"
    assert is_owned_by(tags, REF)
    assert not is_owned_by(ownership_tags(ResourceRef("ns", "link", "uid-2", "prod")), REF)
    assert not is_owned_by(ownership_tags(ResourceRef("ns", "link", "uid-1", "staging")), REF)


def test_client_token_is_stable_short_and_distinct_per_purpose() -> None:
    assert client_token(REF, "a") == client_token(REF, "a")
    assert client_token(REF, "a") != client_token(REF, "b")
    assert len(client_token(REF, "a")) <= 64


def test_dns_owner_marker_round_trips() -> None:
    owner = parse_dns_owner([dns_owner_value("prod", "vpc-1")])
    assert owner is not None and (owner.cluster, owner.vpc, owner.uid) == ("prod", "vpc-1", "")
    legacy = parse_dns_owner(
        ['"heritage=clickhouse-privatelink-operator,cluster=prod,resource=ns/link,uid=uid-1"']
    )
    assert legacy is not None and (legacy.uid, legacy.cluster, legacy.resource) == (
        "uid-1",
        "prod",
        "ns/link",
    )
    assert parse_dns_owner(['"v=spf1 -all"']) is None


def test_ready_prefers_a_problem_a_person_must_fix_over_waiting() -> None:
    steps = [
        StepResult(ConditionType.SERVICE_RESOLVED, True, Reason.RESOLVED, "ok"),
        StepResult(ConditionType.VPC_ENDPOINT_READY, False, Reason.ENDPOINT_PENDING, "pending"),
        StepResult(ConditionType.DNS_READY, False, Reason.DNS_RECORD_CONFLICT, "conflict"),
    ]
    assert summarise_ready(steps).reason is Reason.DNS_RECORD_CONFLICT


def test_a_status_write_is_believed_over_a_body_that_does_not_show_it_yet() -> None:
    clock = [0.0]
    written = WrittenStatus(patience=60, clock=lambda: clock[0])
    old_body = {"serviceId": "svc", "hostedZoneId": "Z1"}
    written.record("uid", {"vpcEndpointId": "vpce-1", "hostedZoneId": None})
    # The watch has not brought the write back: the handler's body is older than what we wrote.
    assert written.view("uid", old_body) == {"serviceId": "svc", "vpcEndpointId": "vpce-1"}
    assert written.view("other", old_body) == old_body
    # Once the body shows it, the body is the truth again (a later change by someone else included).
    caught_up = {"serviceId": "svc", "vpcEndpointId": "vpce-1"}
    assert written.view("uid", caught_up) == caught_up
    assert written.view("uid", {"serviceId": "svc"}) == {"serviceId": "svc"}


def test_a_status_write_never_seen_is_written_again_after_the_patience() -> None:
    clock = [0.0]
    written = WrittenStatus(patience=60, clock=lambda: clock[0])
    written.record("uid", {"observedGeneration": 2})
    clock[0] = 30
    written.record("uid", {"vpcEndpointState": "available"})  # merged, and the patience starts again
    clock[0] = 80
    assert written.view("uid", {}) == {"observedGeneration": 2, "vpcEndpointState": "available"}
    clock[0] = 91
    assert written.view("uid", {"observedGeneration": 1}) == {"observedGeneration": 1}
    written.record("uid", {"observedGeneration": 3})
    written.drop("uid")
    assert written.view("uid", {}) == {}


def test_a_pass_posts_one_normal_event_with_every_change_s_reason_in_its_message() -> None:
    written = Event("Normal", "DnsRecordWritten", "h points to vpce-1")
    listed = Event("Normal", "AllowListed", "added vpce-1 to svc-1")
    assert fold_events([written, listed], "h resolves", cleanup=False) == Event(
        "Normal",
        "Ready",
        "h resolves (DnsRecordWritten: h points to vpce-1; AllowListed: added vpce-1 to svc-1)",
    )
    assert fold_events([], "h resolves", cleanup=False) == Event("Normal", "Ready", "h resolves")
    assert fold_events([written], None, cleanup=False) == written  # one change keeps its own reason
    assert fold_events([written, listed], None, cleanup=False) == Event(
        "Normal", "Reconciled", "DnsRecordWritten: h points to vpce-1; AllowListed: added vpce-1 to svc-1"
    )
    assert fold_events([written, listed], None, cleanup=True).reason == "Released"  # type: ignore[union-attr]
    assert fold_events([], None, cleanup=True) is None
    # A drift check's pass says what it repaired first (one Event, not DriftRepaired beside each change).
    assert fold_events([written], None, cleanup=False, repaired=["dns_record_written"]) == Event(
        "Normal", "DriftRepaired", "repaired: dns_record_written (DnsRecordWritten: h points to vpce-1)"
    )
    assert fold_events([], None, cleanup=False, repaired=["subnets"]) == Event(
        "Normal", "DriftRepaired", "repaired: subnets"
    )
