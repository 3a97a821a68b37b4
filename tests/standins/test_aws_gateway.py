"""The operator's AWS gateway against the AWS stand-in: shared reads, and Route 53 changes in as few requests as
AWS's limits allow (split when refused). The gathering of changes is the zone worker's (tests/engine)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.adapters.aws import route53 as route53_api
from clickhouse_privatelink.adapters.aws import security_groups as security_groups_api
from clickhouse_privatelink.adapters.aws import vpc_endpoints
from clickhouse_privatelink.adapters.aws.clients import AwsClients, AwsError
from clickhouse_privatelink.adapters.aws.gateway import AwsGateway
from clickhouse_privatelink.decisions.plan import DesiredEndpoint, EndpointAction, EndpointDecision
from clickhouse_privatelink.decisions.reasons import Reason
from clickhouse_privatelink_testkit.standins.aws import Network
from tests.fixtures.aws import AwsTarget

pytestmark = pytest.mark.standin_only


@pytest.fixture
def gateway(aws_target: AwsTarget, monkeypatch: pytest.MonkeyPatch) -> AwsGateway:
    for name, value in aws_target.env.items():
        monkeypatch.setenv(name, value)
    return AwsGateway(AwsClients("us-east-1"))


def counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[Any]:
    calls: list[Any] = []
    original = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[2:] if len(args) > 2 else args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def private_zone(gateway: AwsGateway, network: Network) -> tuple[str, str]:
    """A new private zone of the VPC: (ID, name)."""
    zone = route53_api.create_private_zone(
        gateway.clients.route53,
        f"{uuid.uuid4().hex[:8]}.us-east-1.vpce.aws.clickhouse.cloud",
        vpc_id=network.vpc_id,
        vpc_region=network.region,
        tags={"test": "aws-gateway"},
        caller_reference=str(uuid.uuid4()),
    )
    return zone.id, zone.name


def upserts(zone_name: str, host: str) -> list[dict[str, Any]]:
    return route53_api.record_changes(
        f"{host}.{zone_name}", ("vpce-1.example.com", "Z1HUB23NMQ6GUK"), cluster="c", vpc_id="vpc-1"
    )


def missing_delete(zone_name: str) -> list[dict[str, Any]]:
    """A change Route 53 refuses: deleting a record that is not there."""
    return [{"Action": "DELETE", "ResourceRecordSet": upserts(zone_name, "missing")[0]["ResourceRecordSet"]}]


async def change_all(
    gateway: AwsGateway, zone_id: str, groups: list[list[dict[str, Any]]]
) -> list[AwsError | None]:
    """The groups submitted together; each group's outcome, in order."""
    return await gateway.submit_records(zone_id, groups)


async def test_groups_of_changes_submitted_together_are_one_call(
    gateway: AwsGateway, aws_network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone_id, zone_name = private_zone(gateway, aws_network)
    calls = counting(monkeypatch, route53_api, "change_record_sets")
    assert await change_all(gateway, zone_id, [upserts(zone_name, f"h{i}") for i in range(5)]) == [None] * 5
    assert len(calls) == 1
    listed = await gateway.records(zone_id, f"h3.{zone_name}", max_age=0)
    assert listed[0].alias is not None and listed[0].owner is not None


async def test_a_failed_batch_is_split_so_the_good_changes_still_land(
    gateway: AwsGateway, aws_network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone_id, zone_name = private_zone(gateway, aws_network)
    bad = missing_delete(zone_name)
    calls = counting(monkeypatch, route53_api, "change_record_sets")
    results = await change_all(
        gateway, zone_id, [upserts(zone_name, "good1"), bad, upserts(zone_name, "good2")]
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], AwsError) and results[1].code == "InvalidChangeBatch"
    assert len(calls) == 4  # the request, then each group's changes on their own
    for host in ("good1", "good2"):
        observed, _ = await gateway.records(zone_id, f"{host}.{zone_name}", max_age=0)
        assert observed.alias is not None


async def test_a_large_failed_batch_is_halved_not_sent_one_caller_at_a_time(
    gateway: AwsGateway, aws_network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone_id, zone_name = private_zone(gateway, aws_network)
    bad = missing_delete(zone_name)
    calls = counting(monkeypatch, route53_api, "change_record_sets")
    batch = [upserts(zone_name, f"g{i}") for i in range(31)]
    batch.insert(7, bad)
    results = await change_all(gateway, zone_id, batch)
    assert [i for i, r in enumerate(results) if r is not None] == [7]
    # 32 groups: the request; halves of 16, 8 and 4 groups (a good one lands in one call each, a bad one
    # is halved again); the bad 4 one group at a time. 11 calls, not 33.
    assert len(calls) == 11
    observed, _ = await gateway.records(zone_id, f"g30.{zone_name}", max_age=0)
    assert observed.alias is not None


async def test_concurrent_readers_share_one_describe_of_the_vpcs_endpoints(
    gateway: AwsGateway, aws_network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting(monkeypatch, vpc_endpoints, "find_managed")
    found = await asyncio.gather(*(gateway.endpoints(aws_network.vpc_id, max_age=5) for _ in range(20)))
    assert all(f == [] for f in found)
    assert len(calls) == 1
    await gateway.endpoints(aws_network.vpc_id, max_age=5)
    assert len(calls) == 1
    gateway.forget_endpoints(aws_network.vpc_id)
    await gateway.endpoints(aws_network.vpc_id, max_age=5)
    assert len(calls) == 2


async def test_changes_beyond_route53s_request_limits_go_out_in_as_few_requests_as_they_allow(
    gateway: AwsGateway, aws_network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 records, 32,000 characters of values per request (AWS's limits; the stand-in keeps them)."""
    zone_id, zone_name = private_zone(gateway, aws_network)
    too_big = [change for i in range(400) for change in upserts(zone_name, f"big{i}")]
    with pytest.raises(ClientError, match="32000"):
        route53_api.change_record_sets(gateway.clients.route53, zone_id, too_big)
    calls = counting(monkeypatch, route53_api, "change_record_sets")
    creates = [
        route53_api.record_changes(
            f"c{i}.{zone_name}",
            ("vpce-1.example.com", "Z1HUB23NMQ6GUK"),
            cluster="c",
            vpc_id="vpc-1",
            create=True,
        )
        for i in range(400)
    ]
    assert await gateway.submit_records(zone_id, creates) == [None] * 400
    per_txt = route53_api.change_size(creates[0][0])[1]
    assert len(calls) == -(-400 * per_txt // route53_api.MAX_VALUE_CHARACTERS)  # as few as the limit allows
    observed, _ = await gateway.records(zone_id, f"c399.{zone_name}", max_age=0)
    assert observed.alias is not None and observed.owner is not None


def desired(network: Network, *, subnet_ids: list[str] | None = None) -> DesiredEndpoint:
    return DesiredEndpoint(
        vpc_id=network.vpc_id,
        vpc_region=network.region,
        service_name="com.amazonaws.vpce.us-east-1.vpce-svc-gateway0000000",
        service_region=network.region,
        subnet_ids=frozenset(network.subnet_ids[:1] if subnet_ids is None else subnet_ids),
        security_group_ids=frozenset({network.security_group_id}),
    )


MANAGED = {c.TAG_MANAGED_BY: c.OPERATOR_NAME}


async def test_endpoint_writes_drop_the_vpcs_cached_read(gateway: AwsGateway, aws_network: Network) -> None:
    vpc = aws_network.vpc_id
    assert await gateway.endpoints(vpc, max_age=300) == []  # kept for five minutes from now on
    made = await gateway.create_endpoint(desired(aws_network), tags=MANAGED, client_token=uuid.uuid4().hex)
    assert [e.id for e in await gateway.endpoints(vpc, max_age=300)] == [made.id]
    fetched = await gateway.endpoint(made.id)
    assert fetched is not None and fetched.id == made.id

    await gateway.mark_retained(vpc, made.id, "ns/a")
    (marked,) = await gateway.endpoints(vpc, max_age=300)
    assert marked.tags[c.TAG_RETAINED] == "ns/a"
    await gateway.unmark_retained(vpc, made.id)
    (unmarked,) = await gateway.endpoints(vpc, max_age=300)
    assert c.TAG_RETAINED not in unmarked.tags

    decision = EndpointDecision(
        EndpointAction.MODIFY, Reason.RECONCILING, "", add_subnet_ids=(aws_network.subnet_ids[1],)
    )
    after = await gateway.modify_endpoint(made, decision)
    assert after is not None and after.subnet_ids == frozenset(aws_network.subnet_ids[:2])
    (listed,) = await gateway.endpoints(vpc, max_age=300)
    assert listed.subnet_ids == after.subnet_ids

    await gateway.delete_endpoint(vpc, made.id)
    assert all(
        e.id != made.id or e.state in ("deleting", "deleted")
        for e in await gateway.endpoints(vpc, max_age=300)
    )
    await gateway.delete_endpoint(vpc, made.id)  # gone already counts as deleted
    assert await gateway.endpoint("vpce-0123456789abcdef0") is None


async def test_zone_writes_drop_the_cached_reads(gateway: AwsGateway, aws_network: Network) -> None:
    vpc, region = aws_network.vpc_id, aws_network.region
    name = f"{uuid.uuid4().hex[:8]}.us-east-1.vpce.aws.clickhouse.cloud"
    assert await gateway.private_zone(name, vpc_id=vpc, vpc_region=region, max_age=300) is None
    zone = await gateway.create_private_zone(
        name, vpc_id=vpc, vpc_region=region, tags={"test": "gateway"}, caller_reference=uuid.uuid4().hex
    )
    found = await gateway.private_zone(name, vpc_id=vpc, vpc_region=region, max_age=300)
    assert found is not None and found.id == zone.id
    read = await gateway.zone(zone.id, with_tags=True)
    assert read is not None and read.private and vpc in read.vpc_ids and read.tags == {"test": "gateway"}
    # Its tags are in its comment too, written by CreateHostedZone itself (the tags take a second call).
    assert read.comment_tags == {"test": "gateway"}
    sets = await gateway.zone_sets(zone.id, max_age=300)  # kept: the delete below must drop it

    host = f"h.{name}"
    assert await gateway.submit_records(zone.id, [upserts(name, "h")]) == [None]
    assert not await gateway.delete_zone_if_empty(zone.id, vpc_id=vpc, name=name)  # a record is left
    fresh, raw = await gateway.read_records(zone.id, host)
    assert fresh.alias is not None and {rs["Type"] for rs in raw} == {"A", "TXT"}
    deletes = [{"Action": "DELETE", "ResourceRecordSet": rs} for rs in raw]
    assert await gateway.submit_records(zone.id, [deletes]) == [None]

    assert sets is not None and await gateway.delete_zone_if_empty(zone.id, vpc_id=vpc, name=name)
    assert await gateway.zone_sets(zone.id, max_age=300) is None
    assert await gateway.private_zone(name, vpc_id=vpc, vpc_region=region, max_age=300) is None
    assert await gateway.zone(zone.id) is None


async def test_a_refused_record_change_arrives_as_an_aws_error_with_its_code(
    gateway: AwsGateway, aws_network: Network
) -> None:
    zone_id, zone_name = private_zone(gateway, aws_network)
    creates = route53_api.record_changes(
        f"dup.{zone_name}", ("vpce-1.example.com", "Z1HUB23NMQ6GUK"), cluster="c", vpc_id="vpc-1", create=True
    )
    assert await gateway.submit_records(zone_id, [creates]) == [None]
    (refused,) = await gateway.submit_records(zone_id, [creates])  # CREATE of a set that is there
    assert isinstance(refused, AwsError) and refused.code == "InvalidChangeBatch"


async def test_ec2_errors_arrive_as_aws_errors_with_their_meaning(
    gateway: AwsGateway, aws_network: Network
) -> None:
    with pytest.raises(AwsError) as bad_subnet:
        await gateway.create_endpoint(
            desired(aws_network, subnet_ids=["subnet-0123456789abcdef0"]), tags=MANAGED, client_token="t"
        )
    assert bad_subnet.value.reason is Reason.INVALID_AWS_CONFIGURATION
    assert bad_subnet.value.code.startswith("InvalidSubnet")
    with pytest.raises(AwsError) as no_group:
        await gateway.security_groups(["sg-0123456789abcdef0"], max_age=0)
    assert no_group.value.code.startswith("InvalidGroup")


async def test_check_reads_are_shared_by_key_and_kept_for_their_age(
    gateway: AwsGateway, aws_network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    vpc = aws_network.vpc_id
    calls = counting(monkeypatch, security_groups_api, "vpc_cidrs")
    cidrs = await asyncio.gather(*(gateway.vpc_cidrs(vpc, max_age=300) for _ in range(5)))
    assert cidrs[0] == ["10.42.0.0/16"] and len(calls) == 1
    (group,) = await gateway.security_groups([aws_network.security_group_id], max_age=300)
    assert group.id == aws_network.security_group_id and group.rules
    (default,) = await gateway.default_group(vpc, max_age=300)
    assert default.id != aws_network.security_group_id
    made = await gateway.create_endpoint(desired(aws_network), tags=MANAGED, client_token=uuid.uuid4().hex)
    addresses = await gateway.interface_addresses(made.id, max_age=300)
    assert len(addresses) == 1  # one network interface per subnet (the stand-in's addresses are its own)


def test_a_zone_comment_holds_its_tags_when_they_fit_and_only_ours_otherwise() -> None:
    tags = {c.TAG_MANAGED_BY: c.OPERATOR_NAME, c.TAG_CLUSTER: "prod", c.TAG_VPC: "vpc-1"}
    comment = route53_api.zone_comment(tags)
    assert comment.startswith(route53_api.ZONE_COMMENT) and len(comment) <= route53_api.COMMENT_LIMIT
    assert route53_api.comment_tags(comment) == tags
    long = {**tags, c.TAG_CLUSTER: "x" * 300}
    assert route53_api.zone_comment(long) == route53_api.ZONE_COMMENT
    for other in (
        route53_api.ZONE_COMMENT,
        "",
        "someone's zone",
        f"{route53_api.ZONE_COMMENT} [1]",
        f"{route53_api.ZONE_COMMENT} {{",
    ):
        assert route53_api.comment_tags(other) == {}
