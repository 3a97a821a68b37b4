"""Who uses a shared object, read from the resources themselves (decisions/usage.py, no I/O)."""

from __future__ import annotations

import random
from dataclasses import replace

from clickhouse_privatelink.decisions.usage import (
    EndpointKey,
    RetainDecision,
    Usage,
    allow_list_users,
    decide_retain,
    endpoint_client_token,
    endpoint_leader,
    endpoint_users,
    joined,
    oldest,
    others,
    record_users,
    settings_leader,
    usage_from_body,
    zone_users,
)
from clickhouse_privatelink.engine.usage_book import UsageBook

SVC = "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0"
KEY = EndpointKey("prod", "us-east-1", "vpc-1", SVC, "us-east-1")


def usage(uid: str, created: str = "2026-01-01T00:00:00Z", **values: object) -> Usage:
    base = Usage(
        uid=uid,
        resource=f"ns/{uid}",
        created=created,
        deleting=False,
        region="us-east-1",
        vpc_id="vpc-1",
        subnet_ids=("subnet-a",),
        endpoint_service_id=SVC,
        service_region="us-east-1",
        service_id=f"svc-{uid}",
        hostname=f"{uid}.us-east-1.vpce.aws.clickhouse.cloud",
        endpoint_id="vpce-1",
        hosted_zone_id="Z1",
    )
    return replace(base, **values)  # type: ignore[arg-type]


def test_usage_is_read_from_spec_and_status() -> None:
    body = {
        "metadata": {
            "uid": "u1",
            "namespace": "ns",
            "name": "a",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "clickhouse": {"serviceName": "x"},
            "aws": {
                "region": "us-east-1",
                "vpcId": "vpc-1",
                "subnetIds": ["subnet-b", "subnet-a"],
                "tags": {"team": "a", "cost": "1"},
            },
            "dns": {"mode": "Route53"},
        },
        "status": {
            "endpointServiceId": SVC,
            "serviceRegion": "us-east-1",
            "serviceId": "s1",
            "vpcEndpointId": "vpce-1",
            "hostedZoneId": "Z1",
            "privateDnsHostname": "h",
        },
    }
    u = usage_from_body(body)
    assert (u.resource, u.subnet_ids, u.endpoint_key("prod")) == ("ns/a", ("subnet-a", "subnet-b"), KEY)
    assert not u.deleting and not u.zone_given and u.hosted_zone_id == "Z1"
    # A shared endpoint's tags are its oldest user's (settings_leader): each user's are in its usage.
    assert u.tags == (("cost", "1"), ("team", "a"))
    body["metadata"]["deletionTimestamp"] = "2026-01-02T00:00:00Z"  # type: ignore[index]
    assert usage_from_body(body).deleting


def test_a_resource_not_yet_resolved_or_adopting_uses_no_shared_endpoint() -> None:
    assert usage("a", endpoint_service_id=None).endpoint_key("prod") is None
    assert usage("a", adopted_endpoint_id="vpce-9").endpoint_key("prod") is None


def test_endpoint_users_share_one_key_per_vpc_and_endpoint_service() -> None:
    a, b = usage("a"), usage("b", created="2026-01-02T00:00:00Z")
    elsewhere = usage("c", vpc_id="vpc-2")
    other_service = usage("d", endpoint_service_id="com.amazonaws.vpce.us-east-1.vpce-svc-other")
    assert endpoint_users([b, elsewhere, a, other_service], KEY) == [b, a]
    assert oldest([b, elsewhere, a], 2) == [a, elsewhere]  # created in the same second: by UID


def test_deleting_shared_endpoint_keeps_it_while_another_link_uses_it() -> None:
    a, b = usage("a"), usage("b")
    assert others(endpoint_users([a, b], KEY), "a") == [b]
    assert others(endpoint_users([a, replace(b, deleting=True)], KEY), "a") == []


def test_oldest_live_user_sets_the_endpoint_settings_and_ties_break_by_uid() -> None:
    old, young = usage("z", created="2026-01-01T00:00:00Z"), usage("a", created="2026-02-01T00:00:00Z")
    assert settings_leader([young, old]) == old
    assert settings_leader([replace(old, deleting=True), young]) == young
    same_second = [usage("b"), usage("a")]
    assert settings_leader(same_second) == same_second[1]
    assert settings_leader([]) is None


def test_joined_adds_only_the_users_not_already_there_and_hands_back_the_same_list_when_none_are() -> None:
    a, b, c = usage("a"), usage("b"), usage("c")
    mine = [a, b]
    assert joined(mine, []) is mine and joined(mine, [replace(b, vpc_id="vpc-2")]) is mine
    assert joined(mine, [c, replace(a, vpc_id="vpc-2")]) == [a, b, c]


def test_record_zone_and_allow_list_users() -> None:
    a = usage("a", hostname="H.example")
    b = usage("b", hostname="h.example.", service_id="svc-a")
    mode_none = usage("c", dns_route53=False, hostname="h.example")
    other_vpc = usage("e", hostname="h.example", vpc_id="vpc-other")
    # A record serves one VPC: a resource of another VPC naming the same zone never shares it.
    assert record_users([a, b, mode_none, other_vpc], "Z1", "h.example", "vpc-1") == [a, b]
    # The zone itself is used by every resource writing into it, whatever its VPC.
    assert zone_users([a, b, mode_none, other_vpc], "Z1") == [a, b, other_vpc]
    assert allow_list_users(
        [a, b, usage("d", endpoint_id="vpce-2", service_id="svc-a")], "svc-a", "vpce-1"
    ) == [
        a,
        b,
    ]


def test_client_token_is_stable_per_key_and_oldest_user_and_fits_aws() -> None:
    token = endpoint_client_token(KEY, "a")
    assert token == endpoint_client_token(KEY, "a") and len(token) <= 64
    assert token != endpoint_client_token(KEY, "b")
    assert token != endpoint_client_token(replace(KEY, vpc_id="vpc-2"), "a")


def test_claims_add_in_flight_users_and_a_seen_deletion_wins() -> None:
    book = UsageBook()
    durable = [usage("a"), usage("b", deleting=True)]
    book.claim(usage("c"))
    book.claim(usage("b"))  # claimed before its deletion was seen
    book.claim(usage("x", vpc_id="vpc-2"))
    users = {u.uid: u for u in book.users(durable, "us-east-1", "vpc-1")}
    assert set(users) == {"a", "b", "c"} and users["b"].deleting
    book.drop("c")
    assert {u.uid for u in book.users(durable, "us-east-1", "vpc-1")} == {"a", "b"}


def test_a_claim_made_before_a_deletion_the_index_has_seen_reads_as_deleting_from_then_on() -> None:
    book = UsageBook()
    live = usage("a")
    book.claim(live)
    durable = [replace(live, deleting=True)]
    assert [u.deleting for u in book.users(durable, live.region, live.vpc_id)] == [True]
    # Corrected once in the book (a deletion is never taken back), not on every call.
    claimed = book.claimed(live.uid)
    assert claimed is not None and claimed.deleting


def _merged_whole(claims: dict[str, Usage], durable: list[Usage], vpc: tuple[str, str]) -> dict[str, Usage]:
    """The book's answer as it was computed before it kept views: the index merged whole with the claims."""
    merged = {u.uid: u for u in durable}
    for uid, claim in list(claims.items()):
        if (claim.region, claim.vpc_id) != vpc:
            continue
        seen = merged.get(uid)
        if seen is not None and seen.deleting and not claim.deleting:
            claims[uid] = claim = replace(claim, deleting=True)
        merged[uid] = claim
    return merged


def _by_uid(u: Usage) -> str:
    return u.uid


def _assert_lookups_read_the_list(users: list[Usage]) -> None:
    """Each lookup on the book's list (from its groups, when they still describe it) finds what filtering a
    plain copy of the list finds."""
    plain = list(users)
    for uid in ("r1", "r2"):
        zone, host = "Z1", f"{uid}.us-east-1.vpce.aws.clickhouse.cloud"
        for lookup, args in (
            (endpoint_users, (KEY,)),
            (zone_users, (zone,)),
            (record_users, (zone, host, "vpc-1")),
            (allow_list_users, (f"svc-{uid}", "vpce-1")),
        ):
            found = lookup(users, *args)  # type: ignore[operator]
            assert sorted(found, key=_by_uid) == sorted(lookup(plain, *args), key=_by_uid)  # type: ignore[operator]
    assert endpoint_leader(users, KEY) == settings_leader(endpoint_users(plain, KEY))


def test_the_kept_view_answers_as_a_whole_merge_would_through_any_changes() -> None:
    """Entries replaced in place, added, removed and marked deleting, claims made, moved and dropped, in
    random order: the book, which only looks at what changed since the last call, answers as a whole merge."""
    rng = random.Random(17)  # seeded: the same sequences every run
    vpc = ("us-east-1", "vpc-1")
    for _ in range(200):
        book, claims = UsageBook(), {}
        store: dict[str, Usage] = {}  # kopf's store: insertion-ordered, replaced in place
        for step in range(120):
            uid = f"r{rng.randrange(12)}"
            action = rng.randrange(8)
            if action == 0:
                store.pop(uid, None)
            elif action in (1, 2):
                store[uid] = usage(
                    uid, created=f"2026-01-0{rng.randrange(1, 4)}T00:00:00Z", endpoint_id=f"vpce-{step}"
                )
            elif action == 3 and uid in store:
                store[uid] = replace(store[uid], deleting=True)
            elif action == 4:
                created = f"2026-01-0{rng.randrange(1, 4)}T00:00:00Z"
                claim = usage(uid, created, service_id=f"svc-{step}", deleting=rng.random() < 0.2)
                book.claim(claim)
                claims[uid] = claim
            elif action == 5:
                moved = usage(uid, vpc_id="vpc-2")
                book.claim(moved)
                claims[uid] = moved
            elif action == 6:
                book.drop(uid)
                claims.pop(uid, None)
            if rng.random() < 0.5:
                continue  # several changes between two calls
            durable = list(store.values())
            expected = _merged_whole(claims, durable, vpc)
            got = book.users(durable, *vpc)
            assert sorted(got, key=_by_uid) == sorted(expected.values(), key=_by_uid)
            assert {uid: book.claimed(uid) for uid in claims} == claims
            _assert_lookups_read_the_list(got)
            if rng.random() < 0.3:  # a claim since the list was made: its groups no longer answer for it
                book.claim(usage(uid, endpoint_id="vpce-late"))
                claims[uid] = book.claimed(uid)  # type: ignore[assignment]
                _assert_lookups_read_the_list(got)


def test_lookups_compare_what_they_compared_field_by_field() -> None:
    """The C-speed lookups pick the users the field-by-field rules name."""
    rng = random.Random(7)
    users = [
        usage(
            f"u{i}",
            vpc_id=rng.choice(["vpc-1", "vpc-2"]),
            endpoint_service_id=rng.choice([SVC, None, "svc-other"]),
            adopted_endpoint_id=rng.choice([None, None, "vpce-9"]),
            dns_route53=rng.random() < 0.8,
            hosted_zone_id=rng.choice(["Z1", "Z2", None]),
            hostname=rng.choice(["h.example", "H.example.", "g.example", None]),
            service_id=rng.choice(["svc-a", "svc-b"]),
            endpoint_id=rng.choice(["vpce-1", "vpce-2"]),
            deleting=rng.random() < 0.3,
        )
        for i in range(300)
    ]
    assert endpoint_users(iter(users), KEY) == [u for u in users if u.endpoint_key("prod") == KEY]
    assert zone_users(users, "Z1") == [u for u in users if u.dns_route53 and u.hosted_zone_id == "Z1"]
    assert record_users(users, "Z1", "h.example", "vpc-1") == [
        u
        for u in users
        if u.dns_route53
        and u.hosted_zone_id == "Z1"
        and u.vpc_id == "vpc-1"
        and u.hostname is not None
        and u.hostname.rstrip(".").lower() == "h.example"
    ]
    assert allow_list_users(users, "svc-a", "vpce-1") == [
        u for u in users if u.service_id == "svc-a" and u.endpoint_id == "vpce-1"
    ]
    assert others(users, "u3") == [u for u in users if u.uid != "u3" and not u.deleting]
    live = [u for u in users if not u.deleting]
    assert settings_leader(users) == min(live, key=lambda u: (u.created, u.uid))


def test_retain_keeps_and_marks_only_what_its_resource_is_the_last_user_of() -> None:
    me = usage("a", endpoint_id="vpce-1", deleting=True)
    assert decide_retain([me], me, "prod", owned=True) == RetainDecision(keep=True, mark=True)
    # An adopted endpoint is kept but never marked (it is not the operator's).
    assert decide_retain([me], me, "prod", owned=False) == RetainDecision(keep=True, mark=False)
    # Users being deleted as well hold nothing.
    leaving = usage("b", endpoint_id="vpce-1", deleting=True)
    assert decide_retain([me, leaving], me, "prod", owned=True).keep


def test_retain_never_pins_an_endpoint_another_user_is_responsible_for() -> None:
    me = usage("a", endpoint_id="vpce-1", deleting=True)
    other = usage("b", endpoint_id="vpce-1")
    elsewhere = usage("c", endpoint_id="vpce-9", vpc_id="vpc-2")
    decision = decide_retain([me, other, elsewhere], me, "prod", owned=True)
    assert decision == RetainDecision(keep=False, mark=False, holders=(other,))
