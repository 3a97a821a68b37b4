"""Every request the client sends and every response the stand-in serves, checked against the official spec.

The spec is ClickHouse's published OpenAPI 3.1 document (vendored at ``tests/contracts/clickhouse-cloud-openapi.json``,
with its source and date in tests/contracts/README.md). Requests go through a local server that records them; each exchange is then validated with
openapi-core, the request against the operation's parameters, body and security, the response against the
schema declared for its status.

Where the spec and the documented behaviour (``shared/reference/clickhouse-cloud-api.md``) disagree:

- The spec declares only 200, 400 and 500 for these operations. The API also answers 401 (bad key), 403
  (role or plan), 404 (unknown service), 409 (service transitioning), 429 (rate limit) and other 5xx, all in
  the same error envelope. Those answers are validated against the envelope schema the spec gives for 400,
  plus what the spec leaves optional: ``status`` equal to the HTTP status, a UUID ``requestId``, and
  ``error`` as ``"UPPER_SNAKE_CODE: message"``.
- ``X-RateLimit-Reset`` on 429 is not in the spec; it is checked here as a whole number of seconds >= 1, or
  hundredths of a second from a stand-in on a compressed clock (still wall-clock seconds to wait).
- The newest ``Service`` schema requires ``autoscalingMode`` and ``currentScaling``: the stand-in serves
  them, the client does not require them (nor any field it does not use).
- ``Service.region`` and the private-endpoint ``region`` are enums of 13 AWS regions; ClickHouse Cloud runs
  in more, so the client reads a region as a plain string.
- Path IDs are ``format: uuid`` in the spec; the stand-in issues UUIDs, the client sends what it is given.

The spec is loaded without validating the spec document itself (ClickHouse's, not ours, and 5 s of work).
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from clickhouse_privatelink.adapters.clickhouse.client import (
    ClickHouseApiError,
    ClickHouseCloudClient,
    ClientError,
    Conflict,
    Forbidden,
    IpAccessEntry,
    NotFound,
    RateLimited,
    RateLimiter,
    RetryPolicy,
    ServerError,
    Unauthorized,
)
from clickhouse_privatelink.adapters.clickhouse.gateway import ClickHouseGateway
from clickhouse_privatelink.decisions import public_access as pa
from clickhouse_privatelink_testkit.compressed_clock import retry_policy
from clickhouse_privatelink_testkit.standins.clickhouse_cloud import ClickHouseCloudStandIn, Fault
from tests.fixtures.clickhouse import ClickHouseApi, ClickHouseOrg
from tests.fixtures.http import forwarding

SPEC_PATH = Path(__file__).resolve().parents[1] / "contracts/clickhouse-cloud-openapi.json"
VPCE_A = "vpce-0a1b2c3d4e5f60718"
ERROR_TEXT = re.compile(r"^[A-Z][A-Z0-9_]*: .+", re.DOTALL)
ONE_ATTEMPT = RetryPolicy(max_attempts=1)
OPERATIONS = {
    ("GET", "/v1/organizations/{organizationId}"),
    ("PATCH", "/v1/organizations/{organizationId}"),
    ("GET", "/v1/organizations/{organizationId}/services"),
    ("GET", "/v1/organizations/{organizationId}/services/{serviceId}"),
    ("PATCH", "/v1/organizations/{organizationId}/services/{serviceId}"),
    ("GET", "/v1/organizations/{organizationId}/services/{serviceId}/privateEndpointConfig"),
    ("POST", "/v1/organizations/{organizationId}/services/{serviceId}/privateEndpoint"),
}


@dataclass
class Exchange:
    method: str
    path: str
    query: list[tuple[str, str]]
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes
    check_request: bool


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests through and keeps a copy of each exchange for validation."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.exchanges: list[Exchange] = []
        # Cleared for requests built deliberately outside the spec, to see how the server answers them.
        self.check_requests = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        response = await self._inner.handle_async_request(request)
        data = await response.aread()
        await response.aclose()
        self.exchanges.append(
            Exchange(
                method=request.method,
                path=request.url.path,
                query=list(request.url.params.multi_items()),
                request_headers=dict(request.headers),
                request_body=body,
                status=response.status_code,
                response_headers=dict(response.headers),
                response_body=data,
                check_request=self.check_requests,
            )
        )
        return httpx.Response(response.status_code, headers=response.headers, content=data, request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@contextlib.asynccontextmanager
async def recorded(recorder: RecordingTransport, upstream: str) -> AsyncIterator[str]:
    """A local server in front of ``upstream`` that passes every request on through ``recorder``: the URL to
    give the client (it sends with aiohttp, over a real socket)."""
    http = httpx.AsyncClient(base_url=upstream, transport=recorder, timeout=60)  # the fixture closes recorder
    async with forwarding(http) as url:
        yield url


class Contract:
    """The spec, and how one exchange is judged against it."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
        self.api = OpenAPI.from_dict(self.doc, config=Config(spec_validator_cls=None))
        self.server = self.doc["servers"][0]["url"]
        self._templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", t) + "$"), t)
            for t in self.doc["paths"]
            if t.startswith("/v1/")
        ]

    def template(self, path: str) -> str:
        # Literal segments beat parameters: the most specific matching template wins.
        matches: list[str] = [t for rx, t in self._templates if rx.match(path)]
        assert matches, f"{path} is not in the spec"
        return min(matches, key=lambda t: t.count("{"))

    def declared_statuses(self, method: str, template: str) -> set[str]:
        return set(self.doc["paths"][template][method.lower()]["responses"])

    def problems(self, ex: Exchange) -> list[str]:
        where = f"{ex.method} {ex.path} -> {ex.status}"
        template = self.template(ex.path)
        query: dict[str, list[str]] = {}
        for k, v in ex.query:
            query.setdefault(k, []).append(v)
        request = MockRequest(
            self.server,
            ex.method,
            ex.path,
            args=query,
            headers=ex.request_headers,
            data=ex.request_body or None,
            content_type=ex.request_headers.get("content-type", "application/json"),
        )
        found: list[str] = []
        if ex.check_request:
            try:
                self.api.validate_request(request)
            except Exception as e:
                found.append(f"request {where}: {e}")
        content_type = ex.response_headers.get("content-type", "")
        if str(ex.status) in self.declared_statuses(ex.method, template):
            status = ex.status
        else:
            found += [f"{where}: {p}" for p in envelope_problems(ex)]
            status = 400  # undeclared: judged by the envelope schema the spec gives for 400
        try:
            self.api.validate_response(
                request, MockResponse(ex.response_body, status, ex.response_headers, content_type)
            )
        except Exception as e:
            found.append(f"response {where}: {e}")
        if ex.status >= 400 and status == ex.status:
            found += [f"{where}: {p}" for p in envelope_problems(ex)]
        return found

    def check(self, exchanges: list[Exchange]) -> None:
        problems = [p for ex in exchanges for p in self.problems(ex)]
        assert not problems, "\n".join(problems)


def envelope_problems(ex: Exchange) -> list[str]:
    try:
        body = json.loads(ex.response_body)
    except ValueError:
        return ["error body is not JSON"]
    found = []
    if body.get("status") != ex.status:
        found.append(f"envelope status {body.get('status')!r} != {ex.status}")
    try:
        uuid.UUID(str(body.get("requestId")))
    except ValueError:
        found.append(f"requestId {body.get('requestId')!r} is not a UUID")
    if not isinstance(body.get("error"), str) or not ERROR_TEXT.match(body["error"]):
        found.append(f"error {body.get('error')!r} is not 'CODE: message'")
    if ex.status == 429 and not re.fullmatch(
        r"[1-9][0-9]*|[0-9]+\.[0-9]{2}", ex.response_headers.get("x-ratelimit-reset", "")
    ):
        found.append("429 without an X-RateLimit-Reset in seconds")
    return found


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract()


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingTransport]:
    transport = RecordingTransport()
    yield transport
    await transport.aclose()


@dataclass
class Seeded:
    standin: ClickHouseCloudStandIn
    org_id: str
    service_id: str
    key_id: str
    key_secret: str

    @contextlib.asynccontextmanager
    async def client(
        self, recorder: RecordingTransport, key: tuple[str, str] | None = None
    ) -> AsyncIterator[ClickHouseCloudClient]:
        key_id, secret = key or (self.key_id, self.key_secret)
        async with (
            recorded(recorder, self.standin.url) as url,
            ClickHouseCloudClient(
                url, key_id, secret, limiter=RateLimiter(None), retry=ONE_ATTEMPT
            ) as client,
        ):
            yield client


@pytest.fixture
async def seeded(clickhouse_standin: ClickHouseCloudStandIn) -> Seeded:
    state = clickhouse_standin.state
    state.rate_limit = None
    org = state.seed_org()
    key = state.seed_key(org_id=org.id)
    svc = state.seed_service(org_id=org.id, tags={"env": "prod"})
    return Seeded(clickhouse_standin, org.id, svc.id, key.id, key.secret)


def test_spec_is_where_the_contract_says(contract: Contract) -> None:
    assert contract.server == "https://api.clickhouse.cloud"
    for method, template in OPERATIONS:
        assert {"200", "400", "500"} <= contract.declared_statuses(method, template)


async def test_reads_conform(
    contract: Contract,
    recorder: RecordingTransport,
    clickhouse_api: ClickHouseApi,
    clickhouse_org: ClickHouseOrg,
) -> None:
    """Read-only, so it also runs against the real API when one is configured."""
    org = clickhouse_org
    async with (
        recorded(recorder, clickhouse_api.url) as url,
        ClickHouseCloudClient(
            url, org.key_id, org.key_secret, retry=retry_policy(clickhouse_api.time_scale)
        ) as c,
    ):
        await c.list_services(org.org_id)
        await c.get_service(org.org_id, org.service_id)
        config = await c.get_private_endpoint_config(org.org_id, org.service_id)
        await c.get_organization(org.org_id)
    assert config.endpoint_service_id == org.endpoint_service_id
    assert len(recorder.exchanges) >= 4
    contract.check(recorder.exchanges)


@pytest.mark.standin_only
async def test_every_operation_conforms(
    contract: Contract, recorder: RecordingTransport, seeded: Seeded
) -> None:
    state = seeded.standin.state
    provisioning = state.seed_service(org_id=seeded.org_id, state="provisioning", provisioning_reads=1)
    async with seeded.client(recorder) as c:
        await c.list_services(seeded.org_id)
        await c.list_services(seeded.org_id, tags={"env": "prod", "team": None})
        await c.get_service(seeded.org_id, seeded.service_id)
        assert not (
            await c.get_private_endpoint_config(seeded.org_id, provisioning.id)
        ).ready  # empty strings
        assert (await c.get_private_endpoint_config(seeded.org_id, provisioning.id)).ready
        await c.update_private_endpoint_ids(seeded.org_id, seeded.service_id, add=[VPCE_A])
        await c.update_private_endpoint_ids(seeded.org_id, seeded.service_id, add=[VPCE_A], remove=[VPCE_A])
        await c.attach_private_endpoint(
            seeded.org_id, seeded.service_id, "vpce-0c1b2c3d4e5f60718", "prod VPC"
        )
        org = await c.get_organization(seeded.org_id)
        await c.update_private_endpoint_ids(seeded.org_id, seeded.service_id, remove=[VPCE_A])
        await c.remove_organization_private_endpoints(seeded.org_id, org.private_endpoints)
        # The public IP access list (ipAccessList of service PATCH): closed to PrivateLink only, opened to one
        # block, the original entry put back.
        anywhere = IpAccessEntry(source="0.0.0.0/0", description="Anywhere")
        office = IpAccessEntry(source="203.0.113.0/24", description="office")
        closed = await c.update_ip_access_list(seeded.org_id, seeded.service_id, remove=[anywhere])
        assert closed.ip_access_list == ()
        opened = await c.update_ip_access_list(seeded.org_id, seeded.service_id, add=[office, office])
        assert opened.ip_access_list == (office,)
        both = await c.update_ip_access_list(
            seeded.org_id, seeded.service_id, add=[anywhere], remove=[office]
        )
        assert both.ip_access_list == (anywhere,)
    covered = {(ex.method, contract.template(ex.path)) for ex in recorder.exchanges}
    assert covered == OPERATIONS
    contract.check(recorder.exchanges)


@pytest.mark.standin_only
async def test_public_access_patches_conform(
    contract: Contract, recorder: RecordingTransport, seeded: Seeded
) -> None:
    """The operator's IP access list changes (publicAccess: close, narrow, restore), as its gateway sends them."""
    ours = "clickhouse-privatelink-operator prod: data/analytics"
    async with seeded.client(recorder) as c:
        gateway = ClickHouseGateway(c, seeded.org_id)

        async def send(delta: pa.Delta) -> list[pa.Entry]:
            updated = await gateway.update_ip_access_list(
                seeded.service_id,
                add=[IpAccessEntry(source=e.source, description=e.description) for e in delta.add],
                remove=[IpAccessEntry(source=e.source, description=e.description) for e in delta.remove],
            )
            return list(pa.entries_from(updated.ip_access_list))

        live = list(pa.entries_from((await gateway.service(seeded.service_id, max_age=0)).ip_access_list))
        record = pa.Record(seeded.service_id)
        for setting in (
            pa.Setting(pa.PRIVATE_ONLY),
            pa.Setting(pa.ALLOW_LIST, ("203.0.113.0/24", "198.51.100.7")),
        ):
            delta = pa.plan(setting, live, description=ours)
            intent = pa.with_intent(record, delta).intent
            assert intent is not None
            live = await send(intent)
            record = pa.fold(record, intent)
        assert sorted(e.source for e in live) == ["198.51.100.7/32", "203.0.113.0/24"]
        live = await send(pa.restore(record, live))
        assert live == [pa.Entry("0.0.0.0/0", "Anywhere")]
        # The shared services list takes in each PATCH's answer: no read again to see it.
        calls = len(recorder.exchanges)
        kept = await gateway.service(seeded.service_id, max_age=3600)
        assert list(pa.entries_from(kept.ip_access_list)) == live and len(recorder.exchanges) == calls
    patches = [ex for ex in recorder.exchanges if ex.method == "PATCH"]
    assert len(patches) == 3
    for ex in patches:
        body = json.loads(ex.request_body)
        assert set(body) == {"ipAccessList"} and set(body["ipAccessList"]) == {"add", "remove"}
        for entry in body["ipAccessList"]["add"] + body["ipAccessList"]["remove"]:
            assert set(entry) == {"source", "description"}
    contract.check(recorder.exchanges)


Call = Callable[[ClickHouseCloudClient, Seeded], Awaitable[object]]


async def _get_unknown_service(c: ClickHouseCloudClient, s: Seeded) -> object:
    return await c.get_service(s.org_id, str(uuid.uuid4()))


async def _attach(c: ClickHouseCloudClient, s: Seeded) -> object:
    return await c.update_private_endpoint_ids(s.org_id, s.service_id, add=[VPCE_A])


async def _config(c: ClickHouseCloudClient, s: Seeded) -> object:
    return await c.get_private_endpoint_config(s.org_id, s.service_id)


async def _org(c: ClickHouseCloudClient, s: Seeded) -> object:
    return await c.get_organization(s.org_id)


async def _bad_source(c: ClickHouseCloudClient, s: Seeded) -> object:
    # A string for the spec, not an address or CIDR for the server: 400.
    return await c.update_ip_access_list(s.org_id, s.service_id, add=[IpAccessEntry(source="not-an-ip")])


async def _empty_id(c: ClickHouseCloudClient, s: Seeded) -> object:
    # Valid for the spec (an array of strings), refused by the server: a 400 the client itself can cause.
    return await c.update_private_endpoint_ids(s.org_id, s.service_id, add=[""])


def _bad_secret(s: Seeded) -> tuple[str, str]:
    return (s.key_id, s.key_secret + "x")


def _developer(s: Seeded) -> tuple[str, str]:
    key = s.standin.state.seed_key(org_id=s.org_id, role="developer")
    return (key.id, key.secret)


def _basic_tier(s: Seeded) -> None:
    s.standin.state.orgs[s.org_id].tier = "basic"


def _transitioning(s: Seeded) -> None:
    s.standin.state.set_service_state(s.org_id, s.service_id, "stopping")


def _fault(**fields: Any) -> Callable[[Seeded], None]:
    def arm(s: Seeded) -> None:
        s.standin.state.faults.append(Fault.from_dict(fields))

    return arm


def _rate_limited(s: Seeded) -> None:
    s.standin.state.rate_limit = (1, 600.0)
    s.standin.state.take_rate_token(s.key_id)


ERROR_CASES: list[tuple[str, Call, Callable[[Seeded], Any] | None, type[ClickHouseApiError], int]] = [
    ("400-declared", _empty_id, None, ClientError, 400),
    ("400-bad-ip-access-source", _bad_source, None, ClientError, 400),
    ("401-bad-secret", _org, _bad_secret, Unauthorized, 401),
    ("403-developer-writes", _attach, _developer, Forbidden, 403),
    ("403-basic-tier", _config, _basic_tier, Forbidden, 403),
    ("404-unknown-service", _get_unknown_service, None, NotFound, 404),
    ("409-transitioning", _attach, _transitioning, Conflict, 409),
    ("429-rate-limited", _org, _rate_limited, RateLimited, 429),
    ("500-declared", _org, _fault(kind="error", status=500), ServerError, 500),
    ("503-undeclared", _config, _fault(kind="error", status=503), ServerError, 503),
]


@pytest.mark.standin_only
@pytest.mark.parametrize(
    ("call", "prepare", "exc", "status"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
async def test_error_answers_conform(
    contract: Contract,
    recorder: RecordingTransport,
    seeded: Seeded,
    call: Call,
    prepare: Callable[[Seeded], Any] | None,
    exc: type[ClickHouseApiError],
    status: int,
) -> None:
    prepared = prepare(seeded) if prepare else None
    key = prepared if isinstance(prepared, tuple) else None
    async with seeded.client(recorder, key=key) as c:
        with pytest.raises(exc) as raised:
            await call(c, seeded)
    assert raised.value.status == status
    assert [ex.status for ex in recorder.exchanges] == [status]
    contract.check(recorder.exchanges)


@pytest.mark.standin_only
async def test_answers_to_requests_outside_the_spec_conform(
    contract: Contract, recorder: RecordingTransport, seeded: Seeded
) -> None:
    """Requests the client never sends (no key, malformed bodies): only the stand-in's answers are judged."""
    recorder.check_requests = False
    base = f"/v1/organizations/{seeded.org_id}/services/{seeded.service_id}"
    async with httpx.AsyncClient(base_url=seeded.standin.url, transport=recorder) as http:
        assert (await http.get(base)).status_code == 401
        auth = (seeded.key_id, seeded.key_secret)
        assert (
            await http.patch(base, json={"privateEndpointIds": {"add": "x"}}, auth=auth)
        ).status_code == 400
        assert (await http.post(f"{base}/privateEndpoint", json={}, auth=auth)).status_code == 400
        bad_access = {"ipAccessList": {"add": [{"source": "10.0.0.0/8", "note": "x"}]}}
        assert (await http.patch(base, json=bad_access, auth=auth)).status_code == 400
        org_patch = {"privateEndpoints": {"remove": [{"cloudProvider": "aws"}]}}
        assert (
            await http.patch(f"/v1/organizations/{seeded.org_id}", json=org_patch, auth=auth)
        ).status_code == 400
    contract.check(recorder.exchanges)


def test_the_checker_catches_a_non_conforming_response(contract: Contract) -> None:
    """The validation is not vacuous: a Service missing a required field, or a bare error, is reported."""
    path = f"/v1/organizations/{uuid.uuid4()}/services/{uuid.uuid4()}"
    headers = {"authorization": "Basic a2V5OnNlY3JldA==", "content-type": "application/json"}
    service = {
        "status": 200,
        "requestId": str(uuid.uuid4()),
        "result": {"id": str(uuid.uuid4()), "name": "x"},
    }
    bad = Exchange("GET", path, [], headers, b"", 200, headers, json.dumps(service).encode(), True)
    assert any("autoscalingMode" in p for p in contract.problems(bad))
    bare = Exchange("GET", path, [], headers, b"", 404, headers, b'{"error": "nope"}', True)
    assert len(contract.problems(bare)) == 3
    config = {
        "status": 200,
        "requestId": str(uuid.uuid4()),
        "result": {"endpointServiceId": "", "privateDnsHostname": ""},
    }
    anonymous = Exchange(
        "GET", f"{path}/privateEndpointConfig", [], {}, b"", 200, headers, json.dumps(config).encode(), True
    )
    assert ["basicAuth" in p for p in contract.problems(anonymous)] == [True]
    body = b'{"privateEndpointIds": {"add": "vpce-1"}}'
    patch = Exchange("PATCH", path, [], headers, body, 400, headers, b"", True)
    assert any("Request body validation error" in p for p in contract.problems(patch))
