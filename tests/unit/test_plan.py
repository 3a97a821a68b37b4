"""The decision logic, without any I/O: what to create, keep, change or delete."""

from __future__ import annotations

from clickhouse_privatelink.decisions.ownership import DnsOwner, ResourceRef, dns_owner_is
from clickhouse_privatelink.decisions.plan import (
    DesiredEndpoint,
    EndpointAction,
    ObservedEndpoint,
    ObservedRecords,
    RecordAction,
    ServiceSummary,
    choose_service,
    connection_endpoints,
    org_entry_removable,
    pick_owned_endpoint,
    plan_endpoint,
    plan_record,
    service_readiness,
    zone_contains,
    zone_name_for,
)
from clickhouse_privatelink.decisions.reasons import Reason

REF = ResourceRef(namespace="team-a", name="analytics", uid="uid-1", cluster="prod")
SVC = "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0"
TARGET = ("vpce-1-abc.vpce-svc-0123.us-east-1.vpce.amazonaws.com", "Z7HUB22UULQXV")


def desired(**kw: object) -> DesiredEndpoint:
    base: dict[str, object] = {
        "vpc_id": "vpc-1",
        "vpc_region": "us-east-1",
        "service_name": SVC,
        "service_region": "us-east-1",
        "subnet_ids": frozenset({"subnet-a", "subnet-b"}),
        "security_group_ids": frozenset({"sg-1"}),
    }
    base.update(kw)
    return DesiredEndpoint(**base)  # type: ignore[arg-type]


def observed(**kw: object) -> ObservedEndpoint:
    base: dict[str, object] = {
        "id": "vpce-1",
        "vpc_id": "vpc-1",
        "service_name": SVC,
        "state": "available",
        "subnet_ids": frozenset({"subnet-a", "subnet-b"}),
        "security_group_ids": frozenset({"sg-1"}),
        "dns_entries": (TARGET,),
    }
    base.update(kw)
    return ObservedEndpoint(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ service


def svc(id_: str, name: str, provider: str = "aws") -> ServiceSummary:
    return ServiceSummary(id=id_, name=name, provider=provider, region="us-east-1", state="running")


def test_service_name_resolves_to_the_one_aws_service_with_that_name() -> None:
    choice = choose_service([svc("1", "prod"), svc("2", "prod", "gcp"), svc("3", "dev")], service_name="prod")
    assert choice.service is not None and choice.service.id == "1"
    assert choice.reason is Reason.RESOLVED


def test_service_name_matching_several_aws_services_is_ambiguous() -> None:
    choice = choose_service([svc("1", "prod"), svc("2", "prod")], service_name="prod")
    assert choice.service is None
    assert choice.reason is Reason.SERVICE_AMBIGUOUS
    assert "1, 2" in choice.message and "serviceId" in choice.message


def test_service_name_matching_nothing_is_not_found() -> None:
    choice = choose_service([svc("1", "prod")], service_name="staging")
    assert choice.service is None and choice.reason is Reason.SERVICE_NOT_FOUND


def test_service_name_only_on_another_cloud_says_so() -> None:
    choice = choose_service([svc("1", "prod", "gcp")], service_name="prod")
    assert choice.reason is Reason.SERVICE_NOT_AWS and "gcp" in choice.message


def test_provisioning_service_without_config_is_waited_for_not_failed() -> None:
    usable, reason, _ = service_readiness("provisioning", config_ready=False)
    assert not usable and reason is Reason.SERVICE_PROVISIONING


def test_running_service_with_empty_config_is_still_waited_for() -> None:
    usable, reason, _ = service_readiness("running", config_ready=False)
    assert not usable and reason is Reason.SERVICE_PROVISIONING


def test_terminated_service_is_unusable() -> None:
    usable, reason, _ = service_readiness("terminated", config_ready=True)
    assert not usable and reason is Reason.SERVICE_UNUSABLE


def test_idle_service_with_config_can_be_connected() -> None:
    assert service_readiness("idle", config_ready=True)[0]


# ----------------------------------------------------------------------------------------- endpoint


def test_missing_endpoint_is_created() -> None:
    assert plan_endpoint(desired(), None, adopted=False).action is EndpointAction.CREATE


def test_missing_adopted_endpoint_fails_and_is_never_created() -> None:
    decision = plan_endpoint(desired(), None, adopted=True)
    assert decision.action is EndpointAction.FAIL and decision.reason is Reason.ENDPOINT_NOT_FOUND


def test_available_endpoint_matching_spec_is_ready() -> None:
    decision = plan_endpoint(desired(), observed(), adopted=False)
    assert decision.action is EndpointAction.READY and decision.reason is Reason.AVAILABLE


def test_changed_subnets_and_groups_modify_the_endpoint_in_place() -> None:
    want = desired(subnet_ids=frozenset({"subnet-b", "subnet-c"}), security_group_ids=frozenset({"sg-2"}))
    decision = plan_endpoint(want, observed(), adopted=False)
    assert decision.action is EndpointAction.MODIFY
    assert decision.add_subnet_ids == ("subnet-c",) and decision.remove_subnet_ids == ("subnet-a",)
    assert decision.add_security_group_ids == ("sg-2",) and decision.remove_security_group_ids == ("sg-1",)


def test_empty_security_groups_keep_the_default_group_aws_attached() -> None:
    decision = plan_endpoint(desired(security_group_ids=frozenset()), observed(), adopted=False)
    assert decision.action is EndpointAction.READY


def test_adopted_endpoint_is_never_modified() -> None:
    want = desired(subnet_ids=frozenset({"subnet-z"}))
    assert plan_endpoint(want, observed(), adopted=True).action is EndpointAction.READY


def test_pending_endpoint_is_waited_for_without_modifying() -> None:
    want = desired(subnet_ids=frozenset({"subnet-z"}))
    decision = plan_endpoint(want, observed(state="pending"), adopted=False)
    assert decision.action is EndpointAction.WAIT and decision.reason is Reason.ENDPOINT_PENDING


def test_endpoint_states_map_to_their_meaning() -> None:
    cases = {
        "pendingAcceptance": (EndpointAction.WAIT, Reason.ENDPOINT_PENDING_ACCEPTANCE),
        "rejected": (EndpointAction.FAIL, Reason.ENDPOINT_REJECTED),
        "failed": (EndpointAction.FAIL, Reason.ENDPOINT_FAILED),
        "expired": (EndpointAction.FAIL, Reason.ENDPOINT_FAILED),
    }
    for state, (action, reason) in cases.items():
        decision = plan_endpoint(desired(), observed(state=state), adopted=False)
        assert (decision.action, decision.reason) == (action, reason), state


def test_endpoint_to_another_service_or_vpc_is_a_mismatch() -> None:
    other_service = plan_endpoint(desired(), observed(service_name="com.amazonaws.vpce.x"), adopted=True)
    other_vpc = plan_endpoint(desired(), observed(vpc_id="vpc-2"), adopted=True)
    assert other_service.reason is Reason.ENDPOINT_MISMATCH and other_vpc.reason is Reason.ENDPOINT_MISMATCH


def test_cross_region_from_a_supported_region_creates() -> None:
    want = desired(vpc_region="eu-west-1", service_region="us-east-1")
    assert want.cross_region
    assert plan_endpoint(want, None, adopted=False).action is EndpointAction.CREATE


def test_cross_region_from_an_unsupported_region_fails_before_creating() -> None:
    want = desired(vpc_region="mx-central-1", service_region="us-east-1")
    decision = plan_endpoint(want, None, adopted=False)
    assert decision.action is EndpointAction.FAIL and decision.reason is Reason.CROSS_REGION_NOT_SUPPORTED


def test_oldest_live_owned_endpoint_is_chosen_and_deleted_ones_ignored() -> None:
    candidates = [observed(id="vpce-old", state="deleted"), observed(id="vpce-a"), observed(id="vpce-b")]
    chosen = pick_owned_endpoint(candidates)
    assert chosen is not None and chosen.id == "vpce-a"
    assert pick_owned_endpoint([observed(state="deleted")]) is None


# ---------------------------------------------------------------------------------------------- DNS


def test_zone_for_the_hostname_is_its_parent_domain() -> None:
    assert (
        zone_name_for("abc123.us-west-2.vpce.aws.clickhouse.cloud") == "us-west-2.vpce.aws.clickhouse.cloud"
    )
    assert zone_contains("us-west-2.vpce.aws.clickhouse.cloud.", "abc.us-west-2.vpce.aws.clickhouse.cloud")
    assert not zone_contains("example.com", "abc.us-west-2.vpce.aws.clickhouse.cloud")


def test_empty_name_gets_the_record_written() -> None:
    assert plan_record("prod", "vpc-1", "h", TARGET, ObservedRecords()).action is RecordAction.WRITE


def test_our_record_pointing_right_is_kept() -> None:
    owner = DnsOwner(cluster="prod", vpc="vpc-1")
    decision = plan_record("prod", "vpc-1", "h", TARGET, ObservedRecords(alias=TARGET, owner=owner))
    assert decision.action is RecordAction.KEEP


def test_our_record_pointing_elsewhere_is_repaired() -> None:
    owner = DnsOwner(cluster="prod", vpc="vpc-1")
    decision = plan_record(
        "prod", "vpc-1", "h", TARGET, ObservedRecords(alias=("old.example", "Z1"), owner=owner)
    )
    assert decision.action is RecordAction.WRITE


def test_record_without_our_marker_is_a_conflict_never_overwritten() -> None:
    for observed_records in (
        ObservedRecords(alias=TARGET),
        ObservedRecords(other_address=True),
        ObservedRecords(foreign_txt=True),
    ):
        decision = plan_record("prod", "vpc-1", "h", TARGET, observed_records)
        assert decision.action is RecordAction.CONFLICT and decision.reason is Reason.DNS_RECORD_CONFLICT


def test_record_marked_for_one_resource_before_sharing_is_re_marked_as_shared() -> None:
    owner = DnsOwner(cluster="prod", resource="team-b/other", uid="uid-2")
    decision = plan_record("prod", "vpc-1", "h", TARGET, ObservedRecords(alias=TARGET, owner=owner))
    assert decision.action is RecordAction.WRITE


def test_record_marked_before_sharing_pointing_at_another_endpoint_is_a_conflict() -> None:
    owner = DnsOwner(cluster="prod", resource="team-b/other", uid="uid-2")
    observed = ObservedRecords(alias=("old.example", "Z1"), owner=owner)
    decision = plan_record("prod", "vpc-1", "h", TARGET, observed)
    assert decision.action is RecordAction.CONFLICT


def test_record_of_another_vpc_of_this_cluster_is_a_conflict_never_taken_over() -> None:
    owner = DnsOwner(cluster="prod", vpc="vpc-b")
    for alias in (("b-endpoint.example", "Z1"), TARGET):
        decision = plan_record("prod", "vpc-a", "h", TARGET, ObservedRecords(alias=alias, owner=owner))
        assert decision.action is RecordAction.CONFLICT and decision.reason is Reason.DNS_RECORD_CONFLICT
        assert "vpc-b" in decision.message


def test_a_record_is_ours_to_delete_only_with_our_cluster_and_vpc() -> None:
    assert dns_owner_is(DnsOwner(cluster="prod", vpc="vpc-1"), "prod", "vpc-1", "uid-1")
    assert not dns_owner_is(DnsOwner(cluster="prod", vpc="vpc-2"), "prod", "vpc-1", "uid-1")
    assert not dns_owner_is(DnsOwner(cluster="staging", vpc="vpc-1"), "prod", "vpc-1", "uid-1")
    assert not dns_owner_is(None, "prod", "vpc-1", "uid-1")
    legacy = DnsOwner(cluster="prod", resource="ns/a", uid="uid-1")
    assert dns_owner_is(legacy, "prod", "vpc-1", "uid-1")
    assert not dns_owner_is(legacy, "prod", "vpc-1", "uid-2")


def test_record_of_another_cluster_is_a_conflict() -> None:
    owner = DnsOwner(cluster="staging", vpc="vpc-1")
    decision = plan_record("prod", "vpc-1", "h", TARGET, ObservedRecords(alias=TARGET, owner=owner))
    assert decision.action is RecordAction.CONFLICT and "staging" in decision.message


# --------------------------------------------------------------------------------------- allow list


def test_org_entry_goes_only_when_no_service_lists_the_endpoint() -> None:
    assert org_entry_removable("vpce-1", ["vpce-1"], [["vpce-2"], []])
    assert not org_entry_removable("vpce-1", ["vpce-1"], [["vpce-1"]])
    assert not org_entry_removable("vpce-1", [], [[]])


def test_connection_endpoints_are_on_the_private_hostname() -> None:
    eps = connection_endpoints("h.example")
    assert {(e["protocol"], e["port"]) for e in eps} == {
        ("https", 8443),
        ("nativesecure", 9440),
        ("mysql", 3306),
    }
    assert {e["host"] for e in eps} == {"h.example"}
