"""The organization gateway against the in-process ClickHouse stand-in: coalesced reads, batched writes (the
allow list's through its service's worker, engine/allow_list_worker.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from clickhouse_privatelink.adapters.clickhouse.client import ClickHouseCloudClient, RateLimiter
from clickhouse_privatelink.adapters.clickhouse.gateway import ClickHouseGateway, Gateways
from clickhouse_privatelink.decisions.allow_list import AllowKind, AllowOutcome, AllowRequest
from clickhouse_privatelink.decisions.tenancy import api_url_allowed
from clickhouse_privatelink.decisions.usage import Usage
from clickhouse_privatelink.engine.allow_list_worker import AllowListWorkers
from clickhouse_privatelink_testkit.compressed_clock import retry_policy
from clickhouse_privatelink_testkit.standins.clickhouse_cloud import ClickHouseCloudStandIn

SECRET = "gateway-secret-value"
VPCE_A, VPCE_B = "vpce-aaaaaaaaaaaaaaaaa", "vpce-bbbbbbbbbbbbbbbbb"


@pytest.fixture
async def org(clickhouse_standin: ClickHouseCloudStandIn) -> AsyncIterator[tuple[Any, ...]]:
    state = clickhouse_standin.state
    state.rate_limit = None
    org = state.seed_org()
    key = state.seed_key(org_id=org.id, secret=SECRET)
    services = [state.seed_service(org_id=org.id, region="us-east-1") for _ in range(5)]
    client = ClickHouseCloudClient(
        clickhouse_standin.url, key.id, SECRET, limiter=RateLimiter(None), retry=retry_policy(0.01)
    )
    gateway = ClickHouseGateway(client, org.id, write_window=0.05)
    yield clickhouse_standin, org, services, gateway
    await client.aclose()


def calls(standin: ClickHouseCloudStandIn, method: str) -> list[str]:
    return [
        r["path"] for r in standin.state.requests if r["method"] == method and r["path"].startswith("/v1")
    ]


async def test_concurrent_readers_share_one_list_of_services(org: tuple[Any, ...]) -> None:
    standin, _, services, gateway = org
    found = await asyncio.gather(*(gateway.service(s.id, max_age=1.0) for s in services * 4))
    assert {f.id for f in found} == {s.id for s in services}
    assert len(calls(standin, "GET")) == 1
    await gateway.services(max_age=60)  # young enough: no new read
    assert len(calls(standin, "GET")) == 1
    await gateway.services(max_age=0)
    assert len(calls(standin, "GET")) == 2


async def test_private_endpoint_config_is_read_once_per_service(org: tuple[Any, ...]) -> None:
    standin, _, services, gateway = org
    for _ in range(3):
        config = await gateway.private_endpoint_config(services[0].id)
    assert config.ready and config.endpoint_service_id == services[0].endpoint_service_id
    assert len(calls(standin, "GET")) == 1


def adding(me: str, service_id: str, endpoint_id: str) -> AllowRequest:
    user = Usage(
        uid=me,
        resource=f"ns/{me}",
        created="2026-01-01T00:00:00Z",
        deleting=False,
        region="us-east-1",
        vpc_id="vpc-1",
        service_id=service_id,
        endpoint_id=endpoint_id,
    )
    return AllowRequest(AllowKind.ADD, user, endpoint_id)


async def test_allow_list_changes_in_one_window_are_one_patch_per_service(org: tuple[Any, ...]) -> None:
    standin, _, services, gateway = org
    workers = AllowListWorkers(write_window=0.05)
    await gateway.services(max_age=0)
    results = await asyncio.gather(
        workers.get(gateway, services[0].id).ask(adding("a", services[0].id, VPCE_A), max_age=60),
        workers.get(gateway, services[0].id).ask(adding("b", services[0].id, VPCE_B), max_age=60),
        workers.get(gateway, services[1].id).ask(adding("c", services[1].id, VPCE_A), max_age=60),
    )
    assert [r.outcome for r in results] == [AllowOutcome.ADDED] * 3
    assert len(calls(standin, "PATCH")) == 2
    assert set(standin.state.services[services[0].id].private_endpoint_ids) == {VPCE_A, VPCE_B}
    # A reader after the write sees it without another read of the list (the rounds read it kept too).
    listed = await gateway.service(services[0].id, max_age=60)
    assert set(listed.private_endpoint_ids) == {VPCE_A, VPCE_B}
    assert len(calls(standin, "GET")) == 1
    await gateway.update_private_endpoint_ids(services[0].id, add=(), remove=(VPCE_A,))
    assert standin.state.services[services[0].id].private_endpoint_ids == [VPCE_B]


async def test_a_round_for_a_missing_service_fails_every_request_in_it(org: tuple[Any, ...]) -> None:
    standin, _, _, gateway = org
    missing = "00000000-0000-4000-8000-000000000000"
    worker = AllowListWorkers(write_window=0.05).get(gateway, missing)
    results = await asyncio.gather(
        worker.ask(adding("a", missing, VPCE_A), max_age=60),
        worker.ask(adding("b", missing, VPCE_B), max_age=60),
        return_exceptions=True,
    )
    assert all(getattr(r, "status", None) == 404 for r in results)
    assert calls(standin, "PATCH") == []


async def test_organization_entries_of_many_deletions_are_one_check_and_one_patch(
    org: tuple[Any, ...],
) -> None:
    standin, org_, services, gateway = org
    ids = ["vpce-aaaaaaaaaaaaaaaaa", "vpce-bbbbbbbbbbbbbbbbb", "vpce-ccccccccccccccccc"]
    for service, endpoint_id in zip(services, ids, strict=False):
        await gateway.update_private_endpoint_ids(service.id, add=(endpoint_id,), remove=())
    await gateway.update_private_endpoint_ids(services[0].id, add=(), remove=(ids[0],))
    await gateway.update_private_endpoint_ids(services[1].id, add=(), remove=(ids[1],))  # ids[2] stays
    before = len(calls(standin, "PATCH"))
    removed = await asyncio.gather(*(gateway.remove_organization_entries([i], max_age=60) for i in ids))
    assert removed == [[ids[0]], [ids[1]], []]
    assert len(calls(standin, "PATCH")) == before + 1
    assert [e["id"] for e in standin.state.orgs[org_.id].private_endpoints] == [ids[2]]
    # Later deletions of the same endpoints look at the kept organization (it has our removal in it): no call.
    reads = len(standin.state.requests)
    assert await gateway.remove_organization_entries(ids[:2], max_age=60) == []
    assert len(standin.state.requests) == reads


def test_gateways_are_one_per_url_key_and_organization() -> None:
    gateways = Gateways()
    a = gateways.get("https://api.example/", "K", "s1", "org-1")
    assert a is gateways.get("https://api.example", "K", "s1", "org-1")
    assert a is not gateways.get("https://api.example", "K", "s1", "org-2")
    assert a.client is gateways.get("https://api.example", "K", "s1", "org-2").client
    assert a is not gateways.get("https://api.example", "K", "rotated", "org-1")


def test_only_allowed_api_urls_are_called() -> None:
    allowed = ("https://api.clickhouse.cloud",)
    assert api_url_allowed("https://api.clickhouse.cloud", allowed)
    assert api_url_allowed("https://API.clickhouse.cloud:443/", allowed)
    for url in (
        "http://169.254.169.254/latest/meta-data",
        "https://kubernetes.default.svc",
        "https://api.clickhouse.cloud.evil.example",
        "http://api.clickhouse.cloud",
        "https://api.clickhouse.cloud:8443",
        "https://api.clickhouse.cloud/v1/organizations/x",
        "https://user@10.0.0.7",
    ):
        assert not api_url_allowed(url, allowed), url
