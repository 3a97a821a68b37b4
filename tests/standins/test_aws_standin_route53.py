"""The AWS stand-in's Route 53 behaves as Route 53 does where moto differs (boto3, no retries, real HTTP)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from botocore.exceptions import ClientError

from clickhouse_privatelink_testkit.standins.aws import Network, seed_network
from tests.fixtures.aws import AwsStandInProcess

Factory = Callable[[Sequence[str]], AwsStandInProcess]


@pytest.fixture(scope="module")
def standin(aws_standin_factory: Factory) -> AwsStandInProcess:
    return aws_standin_factory([])


@pytest.fixture
def r53(standin: AwsStandInProcess) -> Any:
    return standin.client("route53")


@pytest.fixture
def network(standin: AwsStandInProcess) -> Network:
    return seed_network(standin.url, "us-east-1")


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response: Any = exc.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def private_zone(r53: Any, name: str, vpc_id: str, reference: str | None = None) -> str:
    return str(
        r53.create_hosted_zone(
            Name=name,
            CallerReference=reference or str(uuid.uuid4()),
            VPC={"VPCRegion": "us-east-1", "VPCId": vpc_id},
            HostedZoneConfig={"Comment": "", "PrivateZone": True},
        )["HostedZone"]["Id"]
    )


def unique_name() -> str:
    return f"z{uuid.uuid4().hex[:10]}.example.com"


def a_record(name: str, value: str = "10.0.0.1", ttl: int = 60) -> dict[str, Any]:
    return {"Name": name, "Type": "A", "TTL": ttl, "ResourceRecords": [{"Value": value}]}


def change(r53: Any, zone_id: str, *changes: tuple[str, dict[str, Any]]) -> Any:
    return r53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": action, "ResourceRecordSet": rs} for action, rs in changes]},
    )


def records(r53: Any, zone_id: str) -> set[tuple[str, str]]:
    sets = r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return {(rs["Name"], rs["Type"]) for rs in sets if rs["Type"] not in ("NS", "SOA")}


# ---- private zones: one name per VPC


def test_concurrent_private_zone_creations_make_exactly_one(r53: Any, network: Network) -> None:
    name = unique_name()
    results: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(10)

    def create(i: int) -> None:
        client = r53  # boto3 clients are thread-safe
        barrier.wait()
        try:
            outcome = private_zone(client, name, network.vpc_id)
        except ClientError as e:
            outcome = f"{e.response['Error']['Code']} {e.response['ResponseMetadata']['HTTPStatusCode']}"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = [r for r in results if r.startswith("/hostedzone/")]
    assert len(created) == 1, results
    assert sorted(r for r in results if r not in created) == ["ConflictingDomainExists 400"] * 9
    summaries = r53.list_hosted_zones_by_vpc(VPCId=network.vpc_id, VPCRegion="us-east-1")[
        "HostedZoneSummaries"
    ]
    assert [s["Name"] for s in summaries] == [f"{name}."]


def test_same_name_in_another_vpc_or_public_is_allowed(
    r53: Any, network: Network, standin: AwsStandInProcess
) -> None:
    name = unique_name()
    private_zone(r53, name, network.vpc_id)
    other = seed_network(standin.url, "us-east-1", cidr="10.43.0.0/16")
    private_zone(r53, name, other.vpc_id)
    r53.create_hosted_zone(Name=name, CallerReference=str(uuid.uuid4()))
    with pytest.raises(ClientError) as info:
        private_zone(r53, name.upper() + ".", network.vpc_id)  # names compare without case or final dot
    assert error(info)[:2] == ("ConflictingDomainExists", 400)


def test_a_zone_freed_by_deletion_can_be_made_again(r53: Any, network: Network) -> None:
    name = unique_name()
    r53.delete_hosted_zone(Id=private_zone(r53, name, network.vpc_id))
    private_zone(r53, name, network.vpc_id)


def test_associating_a_vpc_that_has_the_name_conflicts(
    r53: Any, network: Network, standin: AwsStandInProcess
) -> None:
    name = unique_name()
    other = seed_network(standin.url, "us-east-1", cidr="10.44.0.0/16")
    private_zone(r53, name, network.vpc_id)
    second = private_zone(r53, name, other.vpc_id)
    with pytest.raises(ClientError) as info:
        r53.associate_vpc_with_hosted_zone(
            HostedZoneId=second, VPC={"VPCRegion": "us-east-1", "VPCId": network.vpc_id}
        )
    assert error(info)[:2] == ("ConflictingDomainExists", 400)


def test_a_reused_caller_reference_is_refused(r53: Any, network: Network) -> None:
    reference = str(uuid.uuid4())
    private_zone(r53, unique_name(), network.vpc_id, reference)
    with pytest.raises(ClientError) as info:
        private_zone(r53, unique_name(), network.vpc_id, reference)
    assert error(info)[:2] == ("HostedZoneAlreadyExists", 409)
    # A retry of the very same creation: the reference is checked first.
    name = unique_name()
    reference = str(uuid.uuid4())
    private_zone(r53, name, network.vpc_id, reference)
    with pytest.raises(ClientError) as info:
        private_zone(r53, name, network.vpc_id, reference)
    assert error(info)[0] == "HostedZoneAlreadyExists"


# ---- change batches: all or nothing


@pytest.fixture
def zone(r53: Any, network: Network) -> tuple[str, str]:
    name = unique_name()
    return private_zone(r53, name, network.vpc_id), name


def test_a_failing_change_leaves_the_whole_batch_unapplied(r53: Any, zone: tuple[str, str]) -> None:
    zone_id, name = zone
    with pytest.raises(ClientError) as info:
        change(r53, zone_id, ("CREATE", a_record(f"new.{name}")), ("DELETE", a_record(f"missing.{name}")))
    code, status, message = error(info)
    assert (code, status) == ("InvalidChangeBatch", 400)
    assert message == (
        f"[Tried to delete resource record set [name='missing.{name}.', type='A'] but it was not found]"
    )
    assert records(r53, zone_id) == set()


def test_create_of_an_existing_set_fails(r53: Any, zone: tuple[str, str]) -> None:
    zone_id, name = zone
    change(r53, zone_id, ("CREATE", a_record(f"a.{name}")))
    with pytest.raises(ClientError) as info:
        change(r53, zone_id, ("UPSERT", a_record(f"b.{name}")), ("CREATE", a_record(f"a.{name}", "10.0.0.2")))
    code, _, message = error(info)
    assert code == "InvalidChangeBatch"
    assert "Tried to create resource record set [name='a." in message and "but it already exists" in message
    assert records(r53, zone_id) == {(f"a.{name}.", "A")}


def test_delete_must_match_the_current_values(r53: Any, zone: tuple[str, str]) -> None:
    zone_id, name = zone
    change(r53, zone_id, ("CREATE", a_record(f"a.{name}", ttl=60)))
    for wrong in (a_record(f"a.{name}", ttl=300), a_record(f"a.{name}", value="10.9.9.9")):
        with pytest.raises(ClientError) as info:
            change(r53, zone_id, ("DELETE", wrong))
        code, _, message = error(info)
        assert code == "InvalidChangeBatch"
        assert message.endswith("but the values provided do not match the current values]")
    assert records(r53, zone_id) == {(f"a.{name}.", "A")}
    change(r53, zone_id, ("DELETE", a_record(f"a.{name}", ttl=60)))
    assert records(r53, zone_id) == set()


def test_sets_read_back_delete_exactly(r53: Any, zone: tuple[str, str]) -> None:
    """What the operator does: read the sets (an alias A and a TXT) and delete them as read, in one batch."""
    zone_id, name = zone
    host = f"svc.{name}."
    alias = {
        "Name": host,
        "Type": "A",
        "AliasTarget": {
            "DNSName": "vpce-0123-abcd.vpce-svc-0123.us-east-1.vpce.amazonaws.com",
            "HostedZoneId": "Z7HUB22UULQXV",
            "EvaluateTargetHealth": False,
        },
    }
    txt = {"Name": host, "Type": "TXT", "TTL": 300, "ResourceRecords": [{"Value": '"owner=x"'}]}
    change(r53, zone_id, ("UPSERT", txt), ("UPSERT", alias))
    change(r53, zone_id, ("UPSERT", txt), ("UPSERT", alias))  # UPSERT twice: still one set each
    sets = [
        rs
        for rs in r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        if rs["Name"] == host
    ]
    assert sorted(rs["Type"] for rs in sets) == ["A", "TXT"]
    change(r53, zone_id, *[("DELETE", rs) for rs in sets])
    assert records(r53, zone_id) == set()


def test_changes_apply_in_order_within_a_batch(r53: Any, zone: tuple[str, str]) -> None:
    zone_id, name = zone
    change(r53, zone_id, ("CREATE", a_record(f"a.{name}")))
    change(r53, zone_id, ("DELETE", a_record(f"a.{name}")), ("CREATE", a_record(f"a.{name}", "10.0.0.7")))
    sets = r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    assert [rs["ResourceRecords"] for rs in sets if rs["Type"] == "A"] == [[{"Value": "10.0.0.7"}]]
    with pytest.raises(ClientError) as info:  # the second DELETE sees the set the first one removed
        change(
            r53,
            zone_id,
            ("DELETE", a_record(f"a.{name}", "10.0.0.7")),
            ("DELETE", a_record(f"a.{name}", "10.0.0.7")),
        )
    assert "but it was not found" in error(info)[2]
    assert records(r53, zone_id) == {(f"a.{name}.", "A")}


def test_a_name_outside_the_zone_fails_the_batch(r53: Any, zone: tuple[str, str]) -> None:
    zone_id, name = zone
    with pytest.raises(ClientError) as info:
        change(r53, zone_id, ("CREATE", a_record(f"a.{name}")), ("CREATE", a_record("elsewhere.example.org")))
    code, _, message = error(info)
    assert code == "InvalidChangeBatch"
    assert "is not permitted in zone" in message
    assert records(r53, zone_id) == set()


# ---- change status


def test_changes_have_their_own_ids_and_are_insync_by_default(r53: Any, zone: tuple[str, str]) -> None:
    zone_id, name = zone
    first = change(r53, zone_id, ("UPSERT", a_record(f"a.{name}")))["ChangeInfo"]
    second = change(r53, zone_id, ("UPSERT", a_record(f"b.{name}")))["ChangeInfo"]
    assert first["Id"] != second["Id"]
    assert first["Status"] == "INSYNC"
    assert r53.get_change(Id=first["Id"])["ChangeInfo"]["Status"] == "INSYNC"


def test_changes_pending_for_a_while(aws_standin_factory: Factory) -> None:
    other = aws_standin_factory(["--change-pending-seconds", "1"])
    r53 = other.client("route53")
    created = r53.create_hosted_zone(Name=unique_name(), CallerReference=str(uuid.uuid4()))
    assert created["ChangeInfo"]["Status"] == "PENDING"
    zone_id, name = created["HostedZone"]["Id"], created["HostedZone"]["Name"]
    info = change(r53, zone_id, ("UPSERT", a_record(f"a.{name}")))["ChangeInfo"]
    assert info["Status"] == "PENDING"
    assert r53.get_change(Id=info["Id"])["ChangeInfo"]["Status"] == "PENDING"
    deadline = time.monotonic() + 5
    while r53.get_change(Id=info["Id"])["ChangeInfo"]["Status"] == "PENDING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert r53.get_change(Id=created["ChangeInfo"]["Id"])["ChangeInfo"]["Status"] == "INSYNC"
