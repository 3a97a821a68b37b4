"""The ClickHouse Cloud client: parsing, errors, retries, client-side rate limit, secrecy."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from clickhouse_privatelink.adapters.clickhouse import client as ch
from clickhouse_privatelink.adapters.clickhouse.client import (
    ClickHouseApiError,
    ClickHouseCloudClient,
    Conflict,
    Forbidden,
    NotFound,
    Organization,
    OrganizationPrivateEndpoint,
    Place,
    PrivateEndpointConfig,
    RateLimited,
    RateLimiter,
    RetryPolicy,
    ServerError,
    Service,
    Start,
    TransportError,
    Unauthorized,
)
from clickhouse_privatelink.adapters.clickhouse.gateway import Gateways
from clickhouse_privatelink.settings import Settings
from clickhouse_privatelink_testkit.compressed_clock import retry_policy
from clickhouse_privatelink_testkit.standins.clickhouse_cloud import ApiKey, ClickHouseCloudStandIn, Fault
from clickhouse_privatelink_testkit.standins.clickhouse_cloud import Organization as StandInOrg
from clickhouse_privatelink_testkit.standins.clickhouse_cloud import Service as StandInService
from tests.fixtures.http import answering

VPCE_A = "vpce-0a1b2c3d4e5f60718"
VPCE_B = "vpce-0b1b2c3d4e5f60718"
SECRET = "4b1dTopSecretValueThatMustNeverLeak0000000"
NO_LIMIT = RateLimiter(None)
FAST = retry_policy(0.01)  # waits of 40, 80, 160 ms


@dataclass
class Calls:
    """The on_call hook's record, with when each attempt happened."""

    seen: list[tuple[str, int | str]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def __call__(self, operation: str, outcome: int | str) -> None:
        self.seen.append((operation, outcome))
        self.times.append(time.monotonic())

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


@dataclass
class World:
    standin: ClickHouseCloudStandIn
    org: StandInOrg
    key: ApiKey
    service: StandInService

    def client(self, *, key: ApiKey | None = None, **kwargs: object) -> ClickHouseCloudClient:
        key = key or self.key
        options: dict[str, object] = {"limiter": NO_LIMIT, "retry": FAST, **kwargs}
        return ClickHouseCloudClient(self.standin.url, key.id, key.secret, **options)  # type: ignore[arg-type]


@pytest.fixture
async def world(clickhouse_standin: ClickHouseCloudStandIn) -> World:
    state = clickhouse_standin.state
    state.rate_limit = None
    org = state.seed_org()
    key = state.seed_key(org_id=org.id, secret=SECRET)
    service = state.seed_service(org_id=org.id, region="us-east-1")
    return World(clickhouse_standin, org, key, service)


@pytest.fixture
async def client(world: World) -> AsyncIterator[ClickHouseCloudClient]:
    async with world.client() as c:
        yield c


@contextlib.asynccontextmanager
async def mock_client(
    handler: Callable[[httpx.Request], httpx.Response], **kwargs: object
) -> AsyncIterator[ClickHouseCloudClient]:
    """A client of a real local server whose every answer is ``handler``'s."""
    options: dict[str, object] = {"limiter": NO_LIMIT, "retry": FAST, **kwargs}
    async with (
        answering(handler) as url,
        ClickHouseCloudClient(url, "KEYID", SECRET, **options) as client,  # type: ignore[arg-type]
    ):
        yield client


def envelope(status: int, error: str, **extra: object) -> httpx.Response:
    return httpx.Response(status, json={"status": status, "requestId": "rid-1", "error": error, **extra})


# ------------------------------------------------------------------------------------------ operations


async def test_reads(client: ClickHouseCloudClient, world: World) -> None:
    service = await client.get_service(world.org.id, world.service.id)
    assert (service.id, service.name, service.provider, service.region, service.state) == (
        world.service.id,
        world.service.name,
        "aws",
        "us-east-1",
        "running",
    )
    https = service.endpoint("https")
    assert https is not None and https.port == 8443
    assert [s.id for s in await client.list_services(world.org.id)] == [world.service.id]
    config = await client.get_private_endpoint_config(world.org.id, world.service.id)
    assert config.ready
    assert config.endpoint_service_id == world.service.endpoint_service_id
    assert config.private_dns_hostname == world.service.private_dns_hostname
    org = await client.get_organization(world.org.id)
    assert (org.id, org.private_endpoints) == (world.org.id, [])


async def test_list_services_by_tag(client: ClickHouseCloudClient, world: World) -> None:
    tagged = world.standin.state.seed_service(org_id=world.org.id, tags={"env": "prod", "team": "x"})
    assert [s.id for s in await client.list_services(world.org.id, tags={"env": "prod", "team": None})] == [
        tagged.id
    ]


async def test_allow_list_and_org_cleanup(client: ClickHouseCloudClient, world: World) -> None:
    service = await client.update_private_endpoint_ids(world.org.id, world.service.id, add=[VPCE_A, VPCE_B])
    assert service.private_endpoint_ids == (VPCE_A, VPCE_B)
    service = await client.update_private_endpoint_ids(world.org.id, world.service.id, remove=[VPCE_A])
    assert service.private_endpoint_ids == (VPCE_B,)
    assert service.available_private_endpoint_ids == (VPCE_A,)
    org = await client.get_organization(world.org.id)
    assert [(e.id, e.cloud_provider, e.region) for e in org.private_endpoints] == [
        (VPCE_A, "aws", "us-east-1"),
        (VPCE_B, "aws", "us-east-1"),
    ]
    org = await client.remove_organization_private_endpoints(world.org.id, [org.private_endpoints[0]])
    assert [e.id for e in org.private_endpoints] == [VPCE_B]
    attached = await client.attach_private_endpoint(world.org.id, world.service.id, VPCE_A, "prod VPC")
    assert (attached.id, attached.description, attached.region) == (VPCE_A, "prod VPC", "us-east-1")


async def test_provisioning_config_is_not_ready(client: ClickHouseCloudClient, world: World) -> None:
    svc = world.standin.state.seed_service(org_id=world.org.id, state="provisioning", provisioning_reads=1)
    first = await client.get_private_endpoint_config(world.org.id, svc.id)
    assert (first.endpoint_service_id, first.private_dns_hostname, first.ready) == ("", "", False)
    assert (await client.get_private_endpoint_config(world.org.id, svc.id)).ready


@pytest.mark.parametrize(
    ("service_id", "hostname", "ready"),
    [
        (
            "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0",
            "abcd1234ef.us-east-1.vpce.aws.clickhouse.cloud",
            True,
        ),
        ("", "abcd1234ef.us-east-1.vpce.aws.clickhouse.cloud", False),
        ("com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0", "  ", False),
        ("pending", "abcd1234ef.us-east-1.vpce.aws.clickhouse.cloud", False),
        ("com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0", "N/A", False),
        (None, None, False),
    ],
)
def test_config_readiness(service_id: str | None, hostname: str | None, ready: bool) -> None:
    config = PrivateEndpointConfig.model_validate(
        {"endpointServiceId": service_id, "privateDnsHostname": hostname}
    )
    assert config.ready is ready


def test_models_are_lenient() -> None:
    service = ch.parse(
        Service,
        {
            "id": "s1",
            "name": "n",
            "provider": "aws",
            "region": "us-east-1",
            "state": "some_future_state",
            "brandNewField": {"x": 1},
            "privateEndpointIds": None,
        },
    )
    assert (service.state, service.private_endpoint_ids, service.endpoints) == ("some_future_state", (), ())
    org = Organization.model_validate({"id": "o", "name": "n", "privateEndpoints": [{"id": VPCE_A, "x": 1}]})
    assert org.private_endpoints == [OrganizationPrivateEndpoint(id=VPCE_A)]


async def test_missing_required_field_is_invalid_response() -> None:
    async with mock_client(lambda r: httpx.Response(200, json={"status": 200, "result": {"name": "x"}})) as c:
        with pytest.raises(ch.InvalidResponse, match=r"unexpected Service: id: Field required"):
            await c.get_service("o", "s")
    async with mock_client(lambda r: httpx.Response(200, text="<html>hi</html>")) as c:
        with pytest.raises(ch.InvalidResponse, match="body is not JSON"):
            await c.get_organization("o")


# ------------------------------------------------------------------------------------------ errors


async def test_typed_errors_from_the_standin(client: ClickHouseCloudClient, world: World) -> None:
    with pytest.raises(NotFound) as nf:
        await client.get_service(world.org.id, "00000000-0000-4000-8000-000000000000")
    assert (nf.value.status, nf.value.code, nf.value.retryable) == (404, "NOT_FOUND", False)
    assert nf.value.request_id and "not found" in nf.value.message
    dev = world.standin.state.seed_key(org_id=world.org.id, role="developer")
    async with world.client(key=dev) as devc:
        with pytest.raises(Forbidden, match="read-only"):
            await devc.update_private_endpoint_ids(world.org.id, world.service.id, add=[VPCE_A])
    world.standin.state.set_service_state(world.org.id, world.service.id, "awaking")
    with pytest.raises(Conflict) as conflict:
        await client.update_private_endpoint_ids(world.org.id, world.service.id, add=[VPCE_A])
    # Transient for the caller, but the client itself does not retry a 409.
    assert conflict.value.retryable


async def test_error_text_is_parsed() -> None:
    answer = envelope(424, "FAILED_DEPENDENCY: Service is idle", code="SERVICE_IDLE")
    async with mock_client(lambda r: answer) as c:
        with pytest.raises(ch.ClientError) as raised:
            await c.get_service("o", "s")
    err = raised.value
    assert (err.status, err.code, err.message, err.request_id) == (
        424,
        "SERVICE_IDLE",
        "Service is idle",
        "rid-1",
    )
    assert (
        str(err) == "ClickHouse Cloud API get_service: HTTP 424 SERVICE_IDLE: Service is idle (request rid-1)"
    )


async def test_non_json_errors_keep_the_raw_text_truncated() -> None:
    calls = Calls()
    async with mock_client(
        lambda r: httpx.Response(502, text="<html>" + "x" * 2000),
        retry=RetryPolicy(max_attempts=1),
        on_call=calls,
    ) as c:
        with pytest.raises(ServerError) as err:
            await c.get_service("o", "s")
    assert err.value.code == "INTERNAL_SERVER_ERROR" and err.value.message.startswith("<html>xxx")
    assert len(err.value.message) == ch.MAX_MESSAGE_CHARS + 3
    assert calls.seen == [("get_service", 502)]


@pytest.mark.parametrize(
    ("status", "error", "exc"),
    [
        (400, "BAD_REQUEST: nope", ch.ClientError),
        (401, "UNAUTHORIZED: bad key", Unauthorized),
        (403, "FORBIDDEN: no", Forbidden),
        (404, "NOT_FOUND: gone", NotFound),
    ],
)
async def test_other_4xx_are_never_retried(status: int, error: str, exc: type[ClickHouseApiError]) -> None:
    calls = Calls()
    async with mock_client(lambda r: envelope(status, error), on_call=calls) as c:
        with pytest.raises(exc) as raised:
            await c.get_organization("o")
    assert calls.seen == [("get_organization", status)]
    assert raised.value.message == error.split(": ", 1)[1]


# ------------------------------------------------------------------------------------------ retries


async def test_429_waits_for_the_reset_header_plus_one(world: World) -> None:
    # 9 virtual seconds on a 0.02 clock: X-RateLimit-Reset says 0.18 (wall-clock), plus the 0.02 s margin.
    world.standin.state.time_scale = 0.02
    world.standin.state.faults.append(ch_fault("rate_limit", count=2, reset=9))
    calls = Calls()
    # 200 ms, where the 5xx backoff would wait 80 then 160 ms.
    policy = retry_policy(0.02)
    async with world.client(retry=policy, on_call=calls) as c:
        await c.get_organization(world.org.id)
    assert [o for _, o in calls.seen] == [429, 429, 200]
    assert all(0.2 <= gap < 0.7 for gap in calls.gaps())
    assert RetryPolicy().wait_for(RateLimited(status=429, message="", retry_after=7), 1) == 8.0


async def test_a_call_retried_after_a_429_keeps_its_place_in_line(world: World) -> None:
    # One start per 50 ms: "first" is refused once; five calls queued behind it must not all go ahead of it.
    world.standin.state.time_scale = 0.001
    world.standin.state.faults.append(ch_fault("rate_limit", count=1, reset=1))
    finished: list[str] = []
    async with world.client(limiter=RateLimiter(1, 0.05), retry=retry_policy(0.001)) as c:

        async def call(name: str) -> None:
            await c.get_organization(world.org.id)
            finished.append(name)

        first = asyncio.ensure_future(call("first"))
        await asyncio.sleep(0)  # "first" takes the first place in line
        await asyncio.gather(first, *(call(f"later-{n}") for n in range(5)))
    # "later-0" may already hold the turn when "first" comes back; nobody else goes ahead of it.
    assert finished.index("first") <= 1, finished


async def test_5xx_backs_off_4_8_16_then_raises_the_last_error(world: World) -> None:
    world.standin.state.faults.append(ch_fault("error", count=10, status=503))
    calls = Calls()
    async with world.client(on_call=calls) as c:
        with pytest.raises(ServerError) as err:
            await c.get_service(world.org.id, world.service.id)
    assert err.value.status == 503 and err.value.retryable
    assert [o for _, o in calls.seen] == [503] * 4
    for gap, wait in zip(calls.gaps(), (0.04, 0.08, 0.16), strict=True):
        assert wait <= gap < wait + 0.5
    assert [RetryPolicy().backoff(n) for n in (1, 2, 3, 4, 5)] == [4, 8, 16, 32, 60]


async def test_5xx_then_success(world: World) -> None:
    world.standin.state.faults.append(ch_fault("error", count=1, status=500, method="PATCH"))
    calls = Calls()
    async with world.client(on_call=calls) as c:
        service = await c.update_private_endpoint_ids(world.org.id, world.service.id, add=[VPCE_A])
    assert service.private_endpoint_ids == (VPCE_A,)
    assert calls.seen == [("update_private_endpoint_ids", 500), ("update_private_endpoint_ids", 200)]


async def test_dropped_connection_is_a_retried_transport_error(world: World) -> None:
    world.standin.state.faults.append(ch_fault("drop", count=1))
    calls = Calls()
    async with world.client(on_call=calls) as c:
        await c.get_organization(world.org.id)
    assert [o for _, o in calls.seen] == ["transport_error", 200]


async def test_timeout_is_a_transport_error(world: World) -> None:
    # Injected latency of 10 virtual seconds (100 ms) against a 20 ms client timeout.
    world.standin.state.faults.append(ch_fault("latency", count=5, seconds=10))
    async with world.client(timeout=0.02, retry=retry_policy(0.001, max_attempts=2)) as c:
        with pytest.raises(TransportError, match="Timeout") as err:
            await c.get_organization(world.org.id)
    assert (err.value.status, err.value.code, err.value.retryable) == (0, "TRANSPORT_ERROR", True)


async def test_the_proxy_the_environment_names_is_used_unless_no_proxy_exempts_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    def proxy(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, json={"status": 200, "result": {"id": "o", "name": "n"}})

    async with answering(proxy) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # A host nobody can resolve: only the proxy can answer for it.
        async with ClickHouseCloudClient(
            "http://api.invalid", "KEYID", SECRET, limiter=NO_LIMIT, retry=FAST
        ) as c:
            assert (await c.get_organization("o")).id == "o"
        assert asked == ["http://api.invalid/v1/organizations/o"]
        monkeypatch.setenv("NO_PROXY", "api.invalid")
        async with ClickHouseCloudClient(
            "http://api.invalid", "KEYID", SECRET, limiter=NO_LIMIT, retry=retry_policy(0.001, max_attempts=1)
        ) as c:
            with pytest.raises(TransportError):
                await c.get_organization("o")
        assert len(asked) == 1


async def test_unreachable_api_raises_transport_error_without_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    calls = Calls()
    async with ClickHouseCloudClient(
        "http://127.0.0.1:9",
        "KEYID",
        SECRET,
        limiter=NO_LIMIT,
        retry=retry_policy(0.001, max_attempts=2),
        on_call=calls,
    ) as c:
        with pytest.raises(TransportError) as err:
            await c.get_organization("o")
        assert SECRET not in repr(c)
    assert calls.seen == [("get_organization", "transport_error")] * 2
    # The HTTP client's exception may hold the request (and its Authorization header): never chained for display.
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert_no_secret(str(err.value), repr(err.value), caplog.text)


# ------------------------------------------------------------------------------------------ secrecy


def assert_no_secret(*texts: str) -> None:
    basic = base64.b64encode(f"KEYID:{SECRET}".encode()).decode()
    for text in texts:
        assert SECRET not in text
        assert basic not in text
        assert "Authorization" not in text


async def test_secret_never_appears_in_errors_or_logs(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def echo_everything(request: httpx.Request) -> httpx.Response:
        # A hostile (or buggy) upstream that echoes the credentials back in its error text.
        return envelope(500, f"INTERNAL: failed for {SECRET} with {request.headers['Authorization']}")

    texts: list[str] = []
    async with mock_client(echo_everything, retry=retry_policy(0.001, max_attempts=2)) as c:
        texts.append(repr(c))
        with pytest.raises(ServerError) as err:
            await c.get_organization("o")
    texts += [str(err.value), repr(err.value), err.value.message]
    async with world.client() as c:
        with pytest.raises(NotFound) as nf:
            await c.get_service(world.org.id, "00000000-0000-4000-8000-000000000000")
    texts += [str(nf.value), repr(nf.value)]
    assert "***" in err.value.message
    assert_no_secret(*texts, caplog.text)


# ------------------------------------------------------------------------------------------ rate limit


async def test_limiter_keeps_every_window_within_the_limit() -> None:
    limiter = RateLimiter(5, 0.2)
    stamps = []
    for _ in range(15):
        await limiter.acquire()
        stamps.append(asyncio.get_running_loop().time())
    # Allow 2 ms of scheduling noise inside each window.
    assert max(sum(1 for t in stamps if s <= t < s + 0.2 - 0.002) for s in stamps) <= 5
    assert stamps[-1] - stamps[0] < 2.0


async def test_limiter_uses_the_whole_budget_at_once_and_waits_only_past_it() -> None:
    limiter = RateLimiter(10, 0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    waited = [await limiter.acquire() for _ in range(10)]
    assert waited == [False] * 10  # ten starts, no burst held back
    assert loop.time() - started < 0.1
    assert await limiter.acquire() is True  # the eleventh waits for the window to slide
    assert loop.time() - started >= 0.5


async def test_limiter_serves_waiters_first_come_first_served() -> None:
    limiter = RateLimiter(2, 0.1)
    order: list[int] = []

    async def caller(n: int) -> None:
        await limiter.acquire()
        order.append(n)

    await asyncio.gather(*(caller(n) for n in range(8)))
    assert order == list(range(8))


async def test_limiter_lets_an_urgent_waiter_ahead_and_forgets_a_cancelled_one() -> None:
    limiter = RateLimiter(2, 0.1)
    order: list[str] = []

    async def caller(name: str, *, urgent: bool = False) -> None:
        await limiter.acquire(urgent=urgent)
        order.append(name)

    queued = [asyncio.ensure_future(caller(f"w{n}")) for n in range(6)]
    await asyncio.sleep(0)  # w0 and w1 start at once; w2..w5 wait
    gone = asyncio.ensure_future(caller("cancelled"))
    shared = asyncio.ensure_future(caller("shared read", urgent=True))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(*queued, shared, return_exceptions=True)
    # w2 already held the turn (waiting for the window to slide); the shared read goes right after it.
    assert order == ["w0", "w1", "w2", "shared read", "w3", "w4", "w5"]


async def test_the_clients_of_one_key_share_one_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHPL_CLICKHOUSE_RATE_LIMIT", "3/1m")
    gateways = Gateways(rate_limit=Settings.from_env().clickhouse_rate_limit)
    a = gateways.limiter("https://api.example/", "K1")
    assert a is gateways.limiter("https://API.example", "K1")
    assert a is not gateways.limiter("https://api.example", "K2")
    assert (a.max_rate, a.period) == (3, 60.0)
    # A rotated secret, another organization: the same key, the same budget.
    first = gateways.get("https://api.example", "K1", SECRET, "org-1")
    second = gateways.get("https://api.example", "K1", "other", "org-2")
    assert first.client is not second.client and first.client.limiter is second.client.limiter is a
    # Another process state keeps budgets of its own.
    assert Gateways().limiter("https://api.example", "K1") is not a
    assert Gateways(rate_limit=None).limiter("https://api.example", "K3").max_rate is None
    await gateways.close()


@pytest.mark.parametrize(
    ("value", "rate"),
    [("10/10s", (10, 10.0)), ("600/1m", (600, 60.0)), ("5/1h", (5, 3600.0)), ("off", None), ("", None)],
)
def test_the_rate_limit_setting(monkeypatch: pytest.MonkeyPatch, value: str, rate: object) -> None:
    monkeypatch.setenv("CHPL_CLICKHOUSE_RATE_LIMIT", value)
    assert Settings.from_env().clickhouse_rate_limit == rate


def test_a_wrong_rate_limit_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHPL_CLICKHOUSE_RATE_LIMIT", "lots")
    with pytest.raises(ValueError, match="CHPL_CLICKHOUSE_RATE_LIMIT must be N/PERIOD such as 10/10s"):
        Settings.from_env()
    monkeypatch.delenv("CHPL_CLICKHOUSE_RATE_LIMIT")
    assert Settings.from_env().clickhouse_rate_limit == (10, 10.0)  # ClickHouse Cloud's own budget


async def test_clients_sharing_a_key_share_the_budget(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Server: 4 per 0.25 s; clients: 4 per 0.3 s, a margin for scheduling jitter between send and arrival.
    world.standin.state.time_scale = 1.0
    world.standin.state.rate_limit = (4, 0.25)
    shared = RateLimiter(4, 0.3)
    calls = Calls()
    clients = [
        world.client(limiter=shared, retry=RetryPolicy(max_attempts=1), on_call=calls) for _ in range(2)
    ]
    await asyncio.gather(*(clients[i % 2].get_organization(world.org.id) for i in range(12)))
    assert [o for o in calls.seen if o[1] != "throttled"] == [("get_organization", 200)] * 12
    assert ("get_organization", "throttled") in calls.seen
    # The same burst through two separate budgets overruns the server's window.
    own = [world.client(limiter=RateLimiter(4, 0.3), retry=RetryPolicy(max_attempts=1)) for _ in range(2)]
    results = await asyncio.gather(
        *(own[i % 2].get_organization(world.org.id) for i in range(12)), return_exceptions=True
    )
    assert any(isinstance(r, RateLimited) for r in results)
    for c in clients + own:
        await c.aclose()


async def test_on_call_hook_failure_does_not_fail_the_call(
    client: ClickHouseCloudClient, world: World
) -> None:
    def broken(operation: str, outcome: int | str) -> None:
        raise RuntimeError("metrics down")

    async with world.client(on_call=broken) as c:
        assert (await c.get_organization(world.org.id)).id == world.org.id


def ch_fault(kind: str, **fields: object) -> Fault:
    return Fault.from_dict({"kind": kind, **fields})


async def test_request_body_shapes() -> None:
    seen: list[tuple[str, str, object]] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(
            (request.method, request.url.path, json.loads(request.content) if request.content else None)
        )
        if request.url.path.endswith("/services/s"):
            result: object = {
                "id": "s",
                "name": "n",
                "provider": "aws",
                "region": "us-east-1",
                "state": "running",
            }
        else:
            result = {"id": "o", "name": "n", "privateEndpoints": []}
        return httpx.Response(200, json={"status": 200, "result": result})

    async with mock_client(record) as c:
        await c.update_private_endpoint_ids("o", "s", add=[VPCE_A], remove=[VPCE_B])
        pe = OrganizationPrivateEndpoint(id=VPCE_A, cloudProvider="aws", region="us-east-1", description="d")
        await c.remove_organization_private_endpoints("o", [pe])
    assert seen == [
        (
            "PATCH",
            "/v1/organizations/o/services/s",
            {"privateEndpointIds": {"add": [VPCE_A], "remove": [VPCE_B]}},
        ),
        (
            "PATCH",
            "/v1/organizations/o",
            {"privateEndpoints": {"remove": [{"id": VPCE_A, "cloudProvider": "aws", "region": "us-east-1"}]}},
        ),
    ]


async def test_a_start_counts_from_when_its_request_left_not_from_when_it_was_let_go() -> None:
    class Recording(RateLimiter):
        def __init__(self) -> None:
            super().__init__(10, 1.0)
            self.seen: list[tuple[Start, float]] = []

        async def start(self, *, urgent: bool = False, place: Place | None = None) -> Start:
            start = await super().start(urgent=urgent, place=place)
            self.seen.append((start, start.at))
            return start

    arrived: list[float] = []
    service = {"id": "s", "name": "n", "provider": "aws", "region": "us-east-1", "state": "running"}

    def answer(request: httpx.Request) -> httpx.Response:
        arrived.append(time.monotonic())
        return httpx.Response(200, json={"status": 200, "result": service})

    limiter = Recording()
    async with mock_client(answer, limiter=limiter) as c:
        await c.get_service("o", "s")  # no body: it leaves with its headers
        await c.update_private_endpoint_ids("o", "s", add=[VPCE_A])  # a body, written after the headers
    # Moved from when the limiter let it go to when aiohttp wrote it (the trace), which is before the server
    # had it: not to when the answer came (the fallback for a request that failed).
    assert len(limiter.seen) == len(arrived) == 2
    for (start, let_go), at in zip(limiter.seen, arrived, strict=True):
        assert start.left and let_go < start.at <= at


async def test_limiter_lets_a_call_go_ahead_by_the_time_calls_take_to_leave() -> None:
    limiter = RateLimiter(2, 0.2)  # counts 0.202 s
    first, second = await limiter.start(), await limiter.start()
    await asyncio.sleep(0.05)  # each takes 50 ms from being let go to leaving
    first.sent()
    second.sent()
    third = await limiter.start()
    # Counted from when the first left, less the 50 ms the third will take to leave: it reaches the server
    # a window after the first, and no window is spent waiting for a call's own way out.
    assert 0.202 - 0.05 - 0.005 <= third.let_go - first.at < 0.2


async def test_time_a_call_waited_for_a_connection_is_no_part_of_the_time_calls_take_to_leave() -> None:
    limiter = RateLimiter(2, 0.2)  # counts 0.202 s
    first, second = await limiter.start(), await limiter.start()
    await asyncio.sleep(0.05)  # each waited 50 ms for a new connection, then left at once
    for start in (first, second):
        start.connecting = 0.05
        start.sent()
    third = await limiter.start()
    # The third finds a connection kept alive: let go 50 ms ahead, it would reach the server inside the window.
    assert third.let_go - first.at >= 0.202 - 0.005


async def test_the_client_tells_the_limiter_how_long_a_connection_took(world: World) -> None:
    class Recording(RateLimiter):
        def __init__(self) -> None:
            super().__init__(None)
            self.seen: list[Start] = []

        async def start(self, *, urgent: bool = False, place: Place | None = None) -> Start:
            start = await super().start(urgent=urgent, place=place)
            self.seen.append(start)
            return start

    limiter = Recording()
    async with world.client(limiter=limiter) as c:
        await c.get_organization(world.org.id)  # makes the connection
        await c.get_organization(world.org.id)  # finds it kept alive
    first, second = limiter.seen
    assert first.connecting > 0 and second.connecting == 0
    assert first.left and second.left


async def test_limiter_holds_every_caller_while_the_server_says_its_window_is_spent() -> None:
    limiter = RateLimiter(100, 1.0)
    loop = asyncio.get_running_loop()
    assert await limiter.acquire() is False
    limiter.hold(0.2)  # a 429 with X-RateLimit-Reset: nobody starts into the spent window
    started = loop.time()
    assert await limiter.acquire() is True
    assert loop.time() - started >= 0.19
    RateLimiter(None).hold(5)  # no limit, nothing held
