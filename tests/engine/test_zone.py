"""The private zone itself, made and deleted only by its worker (engine/zone_worker.py): before it exists by the
creator of the VPC's zone name, then in the rounds of its ID; over the in-memory AWS."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from typing import Any

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.adapters.aws.route53 import ObservedZone, record_changes
from clickhouse_privatelink.decisions.ownership import zone_tags
from clickhouse_privatelink.decisions.reasons import Reason
from clickhouse_privatelink.decisions.usage import Users
from clickhouse_privatelink.decisions.zone_records import (
    RecordOutcome,
    RecordRequest,
    RecordResult,
    zone_release,
)
from clickhouse_privatelink.engine import crash_points as crash
from clickhouse_privatelink.engine.context import Resource
from clickhouse_privatelink.engine.ports import AwsError
from clickhouse_privatelink.engine.status import EngineStatus
from clickhouse_privatelink.engine.zone_worker import ZoneCreator, ZoneWorker
from tests.engine.fakes import AwsCloud, Clock, FakeAws, Zone, aws_error
from tests.engine.harness import (
    CLUSTER,
    REGION,
    SERVICE_A,
    SERVICE_B,
    SERVICES,
    VPC_A,
    VPC_B,
    ZONE_NAME,
    Harness,
)
from tests.engine.test_zone_worker import TARGET, user
from tests.fixtures.polling import until

HOST_A, HOST_B = SERVICES[SERVICE_A][2], SERVICES[SERVICE_B][2]


class GatedAws(FakeAws):
    """The in-memory AWS whose CreateHostedZone takes until the test opens the gate; every attempt counted."""

    def __init__(self, cloud: AwsCloud, clock: Clock) -> None:
        super().__init__(cloud, clock)
        self.gate = asyncio.Event()
        self.attempts = 0
        self.refuse = False

    async def create_private_zone(self, name: str, **kwargs: Any) -> ObservedZone:
        self.attempts += 1
        await self.gate.wait()
        if self.refuse:
            raise aws_error("Throttling", "rate exceeded", Reason.THROTTLED)
        return await super().create_private_zone(name, **kwargs)


def creator() -> tuple[AwsCloud, GatedAws, ZoneCreator]:
    cloud = AwsCloud()
    aws = GatedAws(cloud, Clock())
    return cloud, aws, ZoneCreator(aws, CLUSTER, vpc_region=REGION, vpc_id=VPC_A, name=ZONE_NAME)


def creates(h: Harness) -> int:
    return len([w for w in h.aws.writes if w[0] == "CreateHostedZone"])


def deletes(h: Harness) -> int:
    return len([w for w in h.aws.writes if w[0] == "DeleteHostedZone"])


# ---- creation


async def test_passes_asking_at_once_get_one_zone_created_once_and_only_the_first_is_its_creator() -> None:
    cloud, aws, zones = creator()
    asking = [asyncio.ensure_future(zones.ask()) for _ in range(5)]
    await until(lambda: aws.attempts == 1)
    aws.gate.set()
    found = await asyncio.gather(*asking)
    (zone,) = cloud.zones.values()
    assert {f.zone.id for f in found} == {zone.id}
    assert [f.created for f in found] == [True, False, False, False, False]
    assert aws.attempts == 1
    assert zone.tags == zone_tags(CLUSTER, VPC_A) and zone.vpc_ids == {VPC_A}


async def test_a_zone_made_since_the_pass_looked_is_found_not_made_again() -> None:
    cloud, aws, zones = creator()
    made = cloud.add_zone(ZONE_NAME, vpc_ids={VPC_A})  # by another process of ours, or a person
    found = await zones.ask()
    assert found.zone.id == made.id and not found.created
    assert aws.attempts == 0


async def test_a_refused_create_fails_every_pass_waiting_and_the_next_ask_tries_again() -> None:
    cloud, aws, zones = creator()
    aws.refuse = True
    asking = [asyncio.ensure_future(zones.ask()) for _ in range(3)]
    await until(lambda: aws.attempts == 1)
    aws.gate.set()
    failed = await asyncio.gather(*asking, return_exceptions=True)
    assert all(isinstance(f, AwsError) and f.code == "Throttling" for f in failed), failed
    assert cloud.zones == {}
    aws.refuse = False
    found = await zones.ask()
    assert found.created and list(cloud.zones) == [found.zone.id]


async def test_many_resources_of_a_vpc_at_once_make_one_zone_and_one_event() -> None:
    h = Harness(batch_window=0.05)
    uids = [h.create(f"r{n}", service_id=(SERVICE_A, SERVICE_B)[n % 2]) for n in range(6)]
    await h.settle(together=True)
    (zone,) = h.aws.zones.values()
    assert {h.status(uid)["hostedZoneId"] for uid in uids} == {zone.id}
    assert creates(h) == 1
    assert len(h.posted("HostedZoneCreated")) == 1


async def test_passes_waiting_for_the_zone_s_creation_write_no_intent_for_it() -> None:
    h = Harness(batch_window=0.05)
    uids = [h.create(f"r{n}", service_id=(SERVICE_A, SERVICE_B)[n % 2]) for n in range(6)]
    intents: Counter[str] = Counter()
    intend = h.reconciler._intend

    async def counting(res: Resource, fields: EngineStatus) -> None:
        intents[res.ref.uid] += 1
        await intend(res, fields)

    h.reconciler._intend = counting
    await h.settle(together=True)
    assert creates(h) == 1
    # The first writes its intent before each of its creates. The others write theirs twice: before asking
    # the endpoint's round (every pass that asks it has its intent written) and before their record; none for
    # the zone they waited for.
    assert [intents[uid] for uid in uids[1:]] == [2] * 5


async def test_killed_after_the_zone_is_made_with_others_waiting_the_next_process_uses_it() -> None:
    h = Harness(batch_window=0.05)
    uids = [h.create(f"r{n}") for n in range(4)]
    h.crash_after(crash.ZONE_CREATE)
    await h.settle(together=True)
    assert h.crashes == [crash.ZONE_CREATE]
    (zone,) = h.aws.zones.values()
    assert {h.status(uid)["hostedZoneId"] for uid in uids} == {zone.id}
    assert creates(h) == 1


# ---- deletion


async def test_the_last_users_leaving_together_delete_the_zone_once() -> None:
    h = Harness(batch_window=0.05)
    uids = [h.create(f"r{n}", service_id=(SERVICE_A, SERVICE_B)[n % 2]) for n in range(4)]
    await h.settle(together=True)
    for uid in uids:
        h.delete(uid)
    await h.settle(together=True)
    assert h.bodies == {} and h.aws.zones == {}
    assert deletes(h) == 1
    assert len(h.posted("HostedZoneDeleted")) == 1


async def test_a_user_leaving_while_another_stays_keeps_the_zone() -> None:
    h = Harness(batch_window=0.05)
    a = h.create("a", service_id=SERVICE_A)
    b = h.create("b", service_id=SERVICE_B)
    await h.settle(together=True)
    h.delete(a)
    await h.settle(together=True)
    assert list(h.bodies) == [b] and len(h.aws.zones) == 1 and deletes(h) == 0
    h.delete(b)
    await h.settle(together=True)
    assert h.aws.zones == {} and deletes(h) == 1


async def test_a_user_in_another_vpc_naming_the_zone_keeps_it_until_it_leaves() -> None:
    h = Harness()
    a = h.create("a", service_id=SERVICE_A)
    await h.settle()
    (zone,) = h.aws.zones.values()
    zone.vpc_ids.add(VPC_B)  # its owner associated it with VPC B too
    b = h.create("b", service_id=SERVICE_B, vpc_id=VPC_B, hosted_zone_id=zone.id)
    await h.settle()
    assert h.reason(b) == Reason.READY.value
    h.delete(a)
    await h.settle()
    assert list(h.bodies) == [b] and list(h.aws.zones) == [zone.id] and deletes(h) == 0
    assert {rs["Type"] for rs in h.aws.record_sets(zone.id, HOST_A)} == set()
    assert {rs["Type"] for rs in h.aws.record_sets(zone.id, HOST_B)} == {"A", "TXT"}
    h.delete(b)
    await h.settle()
    assert h.bodies == {} and h.aws.zones == {}  # ours (its tags), and its last user gone


async def test_a_zone_not_made_by_this_cluster_is_never_deleted() -> None:
    for tags in ({}, {**zone_tags("staging", VPC_A)}, {c.TAG_CLUSTER: CLUSTER}):
        h = Harness()
        theirs = h.aws.add_zone(ZONE_NAME, vpc_ids={VPC_A}, tags=tags)
        uid = h.create("a")
        await h.settle()
        assert h.status(uid)["hostedZoneId"] == theirs.id and creates(h) == 0
        h.delete(uid)
        await h.settle()
        assert h.bodies == {} and list(h.aws.zones) == [theirs.id] and deletes(h) == 0
        assert {rs["Type"] for rs in theirs.sets} == {"SOA", "NS"}  # our record went, the zone stays


async def test_a_zone_killed_before_its_tags_were_written_is_known_by_its_comment() -> None:
    """CreateHostedZone writes the zone's comment; its tags take a second call, which a SIGKILL can precede."""
    h = Harness()
    uid = h.create("a")
    await h.settle()
    (zone,) = h.aws.zones.values()
    assert zone.comment_tags == zone_tags(CLUSTER, VPC_A)
    zone.tags = {}  # as a process killed between the two calls left it
    h.delete(uid)
    await h.settle()
    assert h.bodies == {} and h.aws.zones == {} and deletes(h) == 1
    # Another cluster's comment, or our comment on a zone whose tags are someone else's: never ours.
    for tags, comment in (
        ({}, zone_tags("staging", VPC_A)),
        (zone_tags("staging", VPC_A), zone_tags(CLUSTER, VPC_A)),
    ):
        h = Harness()
        theirs = h.aws.add_zone(ZONE_NAME, vpc_ids={VPC_A}, tags=tags)
        theirs.comment_tags = comment
        uid = h.create("a")
        await h.settle()
        h.delete(uid)
        await h.settle()
        assert h.bodies == {} and list(h.aws.zones) == [theirs.id] and deletes(h) == 0


def ours_with_one_record() -> tuple[AwsCloud, Zone, FakeAws, str, ZoneWorker]:
    """A zone this cluster made, holding one record of ours, and its worker."""
    cloud = AwsCloud()
    zone = cloud.add_zone(ZONE_NAME, vpc_ids={VPC_A}, tags=zone_tags(CLUSTER, VPC_A))
    aws = FakeAws(cloud, Clock())
    host = f"h1.{ZONE_NAME}"
    cloud.change(zone.id, record_changes(host, TARGET, cluster=CLUSTER, vpc_id=VPC_A, create=True))
    return cloud, zone, aws, host, ZoneWorker(aws, zone.id, CLUSTER, batch_window=0.05, max_window=1.0)


async def test_a_zone_release_in_the_round_that_removes_the_last_record_deletes_it_after_the_change() -> None:
    cloud, zone, _, host, worker = ours_with_one_record()
    cloud.writes.clear()
    # one leaving user's record release and another's release of the zone, gathered in one round
    first = replace(user(1), hosted_zone_id=zone.id, deleting=True)
    second = replace(user(2), hostname=None, hosted_zone_id=zone.id, deleting=True)
    removed, deleted = await asyncio.gather(
        worker.ask(RecordRequest(first, host, None, [first]), max_age=10.0),
        worker.ask(zone_release(second, [first, second]), max_age=10.0),
    )
    assert removed.outcome is RecordOutcome.REMOVED and deleted.outcome is RecordOutcome.REMOVED
    assert cloud.zones == {}
    assert [w[0] for w in cloud.writes] == ["ChangeResourceRecordSets", "DeleteHostedZone"]


async def test_a_zone_release_whose_round_change_fails_fails_and_the_zone_stays() -> None:
    cloud, zone, aws, host, worker = ours_with_one_record()
    await aws.zone_sets(zone.id, max_age=0)  # the listing the round reads, kept
    cloud.zones[zone.id].sets = [
        rs for rs in zone.sets if rs["Type"] in ("SOA", "NS")
    ]  # gone since: DELETE fails
    first = replace(user(1), hosted_zone_id=zone.id, deleting=True)
    second = replace(user(2), hostname=None, hosted_zone_id=zone.id, deleting=True)
    outcomes = await asyncio.gather(
        worker.ask(RecordRequest(first, host, None, [first]), max_age=10.0),
        worker.ask(zone_release(second, [first, second]), max_age=10.0),
        return_exceptions=True,
    )
    assert all(isinstance(o, AwsError) for o in outcomes), outcomes
    assert list(cloud.zones) == [zone.id] and "DeleteHostedZone" not in [w[0] for w in cloud.writes]
    again = await worker.ask(zone_release(second, [first, second]), max_age=10.0)
    assert again.outcome is RecordOutcome.REMOVED and cloud.zones == {}  # the next round reads fresh


async def test_a_refused_deletion_fails_only_its_request_and_the_round_s_changes_stand() -> None:
    cloud, zone, aws, host, worker = ours_with_one_record()

    async def refused(zone_id: str, *, vpc_id: str, name: str) -> bool:
        raise aws_error("Throttling", "Rate exceeded", Reason.THROTTLED)

    aws.delete_zone_if_empty = refused  # type: ignore[method-assign]
    first = replace(user(1), hosted_zone_id=zone.id, deleting=True)
    second = replace(user(2), hostname=None, hosted_zone_id=zone.id, deleting=True)
    removed, deleted = await asyncio.gather(
        worker.ask(RecordRequest(first, host, None, [first]), max_age=10.0),
        worker.ask(zone_release(second, [first, second]), max_age=10.0),
        return_exceptions=True,
    )
    assert isinstance(removed, RecordResult) and removed.outcome is RecordOutcome.REMOVED
    assert isinstance(deleted, AwsError) and deleted.code == "Throttling"
    assert list(cloud.zones) == [zone.id] and cloud.record_sets(zone.id, host) == []


async def test_a_pass_s_zone_users_are_its_vpc_s_and_the_zone_s_from_other_vpcs_each_once() -> None:
    """``Pass.zone_users``: the VPC's users as the book hands them out (with their lookups) when nobody outside
    the VPC writes into the zone, and the other VPCs' users of the zone added, each once, when someone does."""
    h = Harness()
    a = h.create("a", service_id=SERVICE_A)
    await h.settle()
    (zone,) = h.aws.zones.values()

    alone = h.pass_of(a).zone_users()
    assert [u.uid for u in alone] == [a] and isinstance(alone, Users)
    zone.vpc_ids.add(VPC_B)
    b = h.create("b", service_id=SERVICE_B, vpc_id=VPC_B, hosted_zone_id=zone.id)
    await h.settle()
    assert sorted(u.uid for u in h.pass_of(a).zone_users()) == sorted([a, b])
    assert sorted(u.uid for u in h.pass_of(b).zone_users()) == sorted([a, b])
