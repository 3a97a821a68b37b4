"""The ClickHouse Cloud API as the operator needs it: typed results, typed errors, retries, rate limiting.

An adapter only: it decides nothing about PrivateLink (what to add or remove is the caller's business).
The contract it follows is ``shared/reference/clickhouse-cloud-api.md``.

Retries follow the official Terraform provider's policy (:class:`RetryPolicy`): on 429 wait
``X-RateLimit-Reset + 1`` seconds, on 5xx and transport errors back off 4, 8, 16 s, never retry any other
4xx. Every attempt counts against the client-side rate limit.

Client-side rate limit: ClickHouse Cloud allows 10 requests per 10-second window per API key. All clients
for one ``(base_url, key_id)`` share one :class:`RateLimiter` (the operator's ``Gateways`` keeps one per key,
paced by ``CHPL_CLICKHOUSE_RATE_LIMIT``: settings.py), so many resources reconciled with the same key stay
within that budget together. A client made without one gets a limiter of its own at ClickHouse's pace.

Secrets: the key secret only ever travels in the ``Authorization`` header; no exception message, log line
or ``repr`` carries it (upstream error text is scrubbed of it too).

HTTP is aiohttp's (kopf's own client): httpx cost about 0.6 ms of CPU a request alone and 1-1.3 ms with 20 in
flight, aiohttp 0.1-0.17 ms (the same small request to a local server, measured here on 2026-12-05), and the
operator makes two calls per resource created. aiohttp would send a GET once more, unasked, when the server
closed the connection without answering; that resend is off (the server may have counted the first, and every
attempt must be the client's own: paced, counted, retried by the policy). tests/unit/test_clickhouse_api.py
checks it stays off.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import itertools
import logging
import re
import time
import urllib.parse
import urllib.request
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from operator import itemgetter
from typing import Any, ClassVar, TypeVar, cast
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from clickhouse_privatelink import __version__
from clickhouse_privatelink.adapters.http import Answer

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 500

# Values seen (or plausible) in privateEndpointConfig while a service is still being set up.
_PLACEHOLDERS = frozenset(
    {"", "-", "n/a", "na", "none", "null", "pending", "tbd", "unknown", "<pending>", "<none>"}
)


# ------------------------------------------------------------------------------------------ models


class _Lenient(BaseModel):
    # The API adds fields often; only what the operator reads is declared.
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


# The organization's services are read as one list, kept and shared by every pass, and replaced whole on each
# read: slotted dataclasses, not models (a model's dict and field set made a service about 3 KiB; a thousand
# of them were read again and again, old lists alive while passes still held them).
_SLOTTED = ConfigDict(populate_by_name=True, extra="ignore")


@pydantic_dataclass(frozen=True, slots=True, config=_SLOTTED)
class ServiceEndpoint:
    protocol: str
    host: str
    port: int


@pydantic_dataclass(frozen=True, slots=True, config=_SLOTTED)
class IpAccessEntry:
    source: str  # an IP address or CIDR
    description: str = ""


@pydantic_dataclass(frozen=True, slots=True, config=_SLOTTED)
class Service:
    id: str
    name: str
    provider: str
    region: str
    state: str
    endpoints: tuple[ServiceEndpoint, ...] = ()
    private_endpoint_ids: tuple[str, ...] = Field(default=(), validation_alias="privateEndpointIds")
    available_private_endpoint_ids: tuple[str, ...] = Field(
        default=(), validation_alias="availablePrivateEndpointIds"
    )
    ip_access_list: tuple[IpAccessEntry, ...] = Field(default=(), validation_alias="ipAccessList")

    @field_validator(
        "endpoints", "private_endpoint_ids", "available_private_endpoint_ids", "ip_access_list", mode="before"
    )
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return () if value is None else value

    def endpoint(self, protocol: str) -> ServiceEndpoint | None:
        """The public endpoint for ``https``, ``nativesecure`` or ``mysql``, if the service has one."""
        return next((e for e in self.endpoints if e.protocol == protocol), None)


_M = TypeVar("_M")


def parse(model: type[_M], data: Any) -> _M:
    """``data`` (decoded JSON) as ``model``, a model or one of the slotted dataclasses (ValidationError if not)."""
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(model)
    return cast(_M, adapter.validate_python(data))


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


class PrivateEndpointConfig(_Lenient):
    endpoint_service_id: str = Field("", alias="endpointServiceId")
    private_dns_hostname: str = Field("", alias="privateDnsHostname")

    @field_validator("endpoint_service_id", "private_dns_hostname", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @property
    def ready(self) -> bool:
        """Both values are real: while a service is provisioning they are empty or placeholders."""
        return all(
            v.strip().lower() not in _PLACEHOLDERS and not any(c.isspace() for c in v.strip())
            for v in (self.endpoint_service_id, self.private_dns_hostname)
        )


class OrganizationPrivateEndpoint(_Lenient):
    id: str
    description: str = ""
    cloud_provider: str = Field("aws", alias="cloudProvider")
    region: str = ""

    @field_validator("description", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value


class Organization(_Lenient):
    id: str
    name: str = ""
    private_endpoints: list[OrganizationPrivateEndpoint] = Field(
        default_factory=list, alias="privateEndpoints"
    )

    @field_validator("private_endpoints", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


# ------------------------------------------------------------------------------------------ errors


class ClickHouseApiError(Exception):
    """A failed call. ``retryable`` means the same request may succeed later with nothing else changed.

    The client itself retries only 429, 5xx and transport errors (the Terraform provider's policy); a 409
    (service transitioning) is ``retryable`` too but left to the caller to retry on its own schedule.
    """

    default_code: ClassVar[str] = "ERROR"
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        *,
        status: int,
        message: str,
        code: str | None = None,
        request_id: str | None = None,
        operation: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code or self.default_code
        self.message = message
        self.request_id = request_id
        self.operation = operation
        self.retryable = self.default_retryable
        self.retry_after = retry_after
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"ClickHouse Cloud API {self.operation}" if self.operation else "ClickHouse Cloud API"
        status = f"HTTP {self.status} " if self.status else ""
        text = f"{where}: {status}{self.code}: {self.message}"
        if self.request_id:
            text += f" (request {self.request_id})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r}, "
            f"request_id={self.request_id!r}, operation={self.operation!r})"
        )


class Unauthorized(ClickHouseApiError):
    """401: the key ID or secret is wrong, or the key was deleted or expired."""

    default_code = "UNAUTHORIZED"


class Forbidden(ClickHouseApiError):
    """403: the key lacks the permission (a read-only key writing) or the plan lacks the feature."""

    default_code = "FORBIDDEN"


class NotFound(ClickHouseApiError):
    default_code = "NOT_FOUND"


class Conflict(ClickHouseApiError):
    """409: the service is transitioning; the same request should work once it settles."""

    default_code = "CONFLICT"
    default_retryable = True


class RateLimited(ClickHouseApiError):
    """429; ``retry_after`` holds ``X-RateLimit-Reset`` (seconds) when the server sent it."""

    default_code = "TOO_MANY_REQUESTS"
    default_retryable = True


class ServerError(ClickHouseApiError):
    default_code = "INTERNAL_SERVER_ERROR"
    default_retryable = True


class ClientError(ClickHouseApiError):
    """Any other 4xx (400, 424 ...): retrying the same request will not help."""

    default_code = "BAD_REQUEST"


class TransportError(ClickHouseApiError):
    """No HTTP answer: connection refused or reset, timeout, TLS failure. ``status`` is 0."""

    default_code = "TRANSPORT_ERROR"
    default_retryable = True


class InvalidResponse(ClickHouseApiError):
    """A 2xx whose body is not the documented envelope or lacks what the operator needs."""

    default_code = "INVALID_RESPONSE"


_BY_STATUS: dict[int, type[ClickHouseApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
}
_CODE_IN_TEXT = re.compile(r"^\s*([A-Z][A-Z0-9_]*):\s*(.*)$", re.DOTALL)


def _error_class(status: int) -> type[ClickHouseApiError]:
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, ClientError)


# ------------------------------------------------------------------------------------------ retry policy


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries 429, 5xx and transport errors (the Terraform provider's policy by default)."""

    max_attempts: int = 4
    # After a 5xx or transport error: backoff_base, twice that, ... capped at backoff_max seconds.
    backoff_base: float = 4.0
    backoff_max: float = 60.0
    # After a 429: the server's X-RateLimit-Reset plus this margin, so the retry lands in the new window.
    reset_padding: float = 1.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): 4, 8, 16 ... capped."""
        return min(self.backoff_base * 2.0 ** max(attempt - 1, 0), self.backoff_max)

    def wait_for(self, error: BaseException | None, attempt: int) -> float:
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return error.retry_after + self.reset_padding
        return self.backoff(attempt)


DEFAULT_RETRY_POLICY = RetryPolicy()


def _client_retries(error: BaseException) -> bool:
    return isinstance(error, RateLimited | ServerError | TransportError)


# ------------------------------------------------------------------------------------------ rate limiting


# (0 urgent or 1, order of arrival): the lower goes first.
Place = tuple[int, int]


class Start:
    """One request start in a limiter's log: when the limiter let it go, then when it left."""

    __slots__ = ("at", "connecting", "left", "let_go", "waited")

    def __init__(self, at: float, *, waited: bool) -> None:
        self.let_go = self.at = at
        self.left = False  # sent (or over: a request that failed may have reached the server)
        self.waited = waited  # the limit made the caller wait
        # Seconds it waited for a connection to be made (or freed) before it could be sent: a call that finds
        # one kept alive does not wait so, so this is no part of the time calls take to leave.
        self.connecting = 0.0

    def on_its_way(self) -> float:
        """How long it took from being let go to leaving, less the time a connection took."""
        return max(self.at - self.let_go - self.connecting, 0.0)

    def sent(self) -> None:
        """The request has left: the server's window can only count it from now."""
        if not self.left:
            self.at = max(self.at, time.monotonic())
            self.left = True

    def counts_from(self, now: float) -> float:
        """When the server's window may count this start from: a request not sent yet leaves at ``now`` or later."""
        return self.at if self.left else max(self.at, now)


async def _headers_sent(
    session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestHeadersSentParams
) -> None:
    """aiohttp's trace: the request's headers are written. A request without a body has left with them; one
    with a body leaves when its body is written (below: aiohttp writes it in a task of its own, which a busy
    loop may run milliseconds later)."""
    start = context.trace_request_ctx
    if isinstance(start, Start) and params.headers.get("Content-Length", "0") == "0":
        start.sent()  # aiohttp writes to the socket right after (the same step of the task)


async def _body_sent(
    session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestChunkSentParams
) -> None:
    """aiohttp's trace: a piece of the body is written (a small body goes in one, with the headers)."""
    start = context.trace_request_ctx
    if isinstance(start, Start):
        start.sent()  # aiohttp writes to the socket right after (the same step of the task)


async def _waiting_for_a_connection(session: aiohttp.ClientSession, context: Any, params: object) -> None:
    context.waiting_since = time.monotonic()


async def _connection_ready(session: aiohttp.ClientSession, context: Any, params: object) -> None:
    """A connection was made (DNS, TCP, TLS) or freed for the request: the time it took is no part of how long
    calls take to leave (``Start.on_its_way``), or a window's first calls, each making its connection, would let
    the next ones (on kept-alive connections) go early by that time and into the server's window."""
    start, since = context.trace_request_ctx, getattr(context, "waiting_since", None)
    if isinstance(start, Start) and since is not None:
        start.connecting += time.monotonic() - since
        context.waiting_since = None


_TRACE = aiohttp.TraceConfig()
_TRACE.on_request_headers_sent.append(_headers_sent)
_TRACE.on_request_chunk_sent.append(_body_sent)
_TRACE.on_connection_queued_start.append(_waiting_for_a_connection)
_TRACE.on_connection_queued_end.append(_connection_ready)
_TRACE.on_connection_create_start.append(_waiting_for_a_connection)
_TRACE.on_connection_create_end.append(_connection_ready)
_TRACE.freeze()


class RateLimiter:
    """At most ``max_rate`` request starts in any ``period`` seconds; urgent callers first, then first come first
    served.

    ClickHouse allows 10 requests per 10 s per key. A sliding log of start times uses that whole budget
    (no burst kept back, unlike a leaky bucket) and never lets more than ``max_rate`` starts into any window
    the server may count, fixed or sliding. A start counts from when its request has left (``Start.sent``,
    which the client calls from the HTTP client's trace), not from when the limiter let it go: the steps in
    between wait on a busy event loop for a varying while, and the next call measured from the earlier time
    could reach the server inside the same window. A call is let go ahead by the least time the last calls
    took to leave, less any time they waited for a connection to be made (else every window would also wait
    out that way out; a call on a kept-alive connection makes none), and a 1 % margin absorbs the rest
    (network, the server's own queue). Waiters queue in order, so no caller starves behind a batch; an *urgent* waiter (a shared
    read that a crowd of passes waits on, such as the services list: one in flight at a time) goes to the
    front, or a thousand deletions would all wait behind each other's PATCHes for the one read they share.
    A call retried after a 429 keeps the place in line of its first try (``place``): sent to the back, it
    would wait behind every call queued since and finish last of a thousand.
    (aiolimiter is a leaky bucket and limits counts whole seconds: neither says "N starts in any T seconds" for
    the sub-second windows the stand-ins' compressed clocks use.) ``max_rate=None`` makes it a no-op.
    """

    def __init__(self, max_rate: int | None = 10, period: float = 10.0) -> None:
        if max_rate is not None and (max_rate <= 0 or period <= 0):
            raise ValueError("max_rate and period must be positive")
        self.max_rate = max_rate
        self.period = period
        self._span = period * 1.01
        self._starts: list[Start] = []  # the last max_rate starts
        self._held_until = 0.0  # the server said the key's window is spent until then (a 429's reset)
        self._arrivals = itertools.count()
        # Turns belong to one event loop; a process normally has one, tests have one per test.
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turns] = (
            weakref.WeakKeyDictionary()
        )

    def place(self, *, urgent: bool = False) -> Place:
        """A place in line: urgent callers first, then in order of arrival."""
        return (0 if urgent else 1, next(self._arrivals))

    async def acquire(self, *, urgent: bool = False, place: Place | None = None) -> bool:
        """Wait for a start slot; True when the limit made the caller wait (the start counts from now)."""
        start = await self.start(urgent=urgent, place=place)
        start.left = True
        return start.waited

    async def start(self, *, urgent: bool = False, place: Place | None = None) -> Start:
        """Wait for a start slot and take it; call ``sent()`` on the result once the request has left.

        ``place``: the caller's place in line, taken once with :meth:`place` and kept across its retries.
        """
        if self.max_rate is None:
            return Start(time.monotonic(), waited=False)
        loop = asyncio.get_running_loop()
        turns = self._turns.get(loop)
        if turns is None:
            turns = self._turns[loop] = _Turns()
        waited = turns.busy()
        await turns.take(place or self.place(urgent=urgent))
        try:
            while True:
                now = time.monotonic()
                if now < self._held_until:
                    waited = True
                    await asyncio.sleep(self._held_until - now)
                    continue
                if len(self._starts) < self.max_rate:
                    start = Start(now, waited=waited)
                    self._starts.append(start)
                    return start
                # The oldest of the last max_rate starts (starts move later when sent: found each time). A
                # call let go now leaves no sooner than the quickest of those took from being let go to leaving:
                # let it go that much ahead, or every window would also wait out that delay.
                slot, oldest = min(enumerate(s.counts_from(now) for s in self._starts), key=itemgetter(1))
                ahead = min((s.on_its_way() for s in self._starts if s.left), default=0.0)
                if now + ahead - oldest >= self._span:
                    start = self._starts[slot] = Start(now, waited=waited)
                    return start
                waited = True
                await asyncio.sleep(oldest + self._span - ahead - now)
        finally:
            turns.hand_on()

    def hold(self, seconds: float) -> None:
        """The server answered 429, its window spent for ``seconds`` more: nobody starts before then.

        (Our count and the server's can differ by the jitter between a start and its arrival; when they do,
        every call sent into the spent window would be refused too.)
        """
        if self.max_rate is not None and seconds > 0:
            self._held_until = max(self._held_until, time.monotonic() + seconds)

    def __repr__(self) -> str:
        return f"RateLimiter(max_rate={self.max_rate}, period={self.period})"


def rate_limiter(rate: tuple[int, float] | None) -> RateLimiter:
    """A limiter at ``rate`` (requests, seconds), as settings.py reads CHPL_CLICKHOUSE_RATE_LIMIT; None: no limit."""
    return RateLimiter(None) if rate is None else RateLimiter(*rate)


class _Turns:
    """A lock whose waiters are served in the order of their places."""

    def __init__(self) -> None:
        self._held = False
        self._waiting: list[tuple[Place, asyncio.Future[None]]] = []

    def busy(self) -> bool:
        return self._held

    async def take(self, place: Place) -> None:
        if not self._held and not self._waiting:
            self._held = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (place, turn))
        try:
            await turn  # handed on with the lock still held: nobody can slip in between
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.hand_on()  # given the turn, but cancelled before it could run: pass it on
            raise

    def hand_on(self) -> None:
        while self._waiting:
            turn = heapq.heappop(self._waiting)[1]
            if not turn.done():
                turn.set_result(None)
                return
        self._held = False


# ------------------------------------------------------------------------------------------ client

OnCall = Callable[[str, int | str], None]


class ClickHouseCloudClient:
    """Async client of the ClickHouse Cloud API operations the operator uses.

    ``on_call(operation, outcome)`` (metrics) is called once per HTTP attempt, retries included, with the
    HTTP status or ``"transport_error"``; and once with ``"throttled"`` before an attempt the client-side
    rate limit had to delay (that is not a call of its own: the attempt's own outcome follows).
    """

    def __init__(
        self,
        base_url: str,
        key_id: str,
        key_secret: str,
        *,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        timeout: float = 30.0,
        on_call: OnCall | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key_id = key_id
        # Kept only to scrub them from upstream text: the secret and the Basic credentials it travels in.
        basic = base64.b64encode(f"{key_id}:{key_secret}".encode()).decode()
        self._sensitive = tuple(s for s in (key_secret, basic) if s)
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.retry = retry
        self._on_call = on_call
        self._headers = {
            "User-Agent": f"clickhouse-privatelink-operator/{__version__}",
            "Accept": "application/json",
            "Authorization": f"Basic {basic}",
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None  # made in the loop of the first call
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"ClickHouseCloudClient(base_url={self.base_url!r}, key_id={self.key_id!r})"

    def _session(self) -> aiohttp.ClientSession:
        http, loop = self._http, asyncio.get_running_loop()
        if http is None or http.closed or self._loop is not loop:
            self._loop = loop
            # HTTPS_PROXY and NO_PROXY are honoured, as httpx did: looked up once here (aiohttp's trust_env looks
            # them up, and reads ~/.netrc, in a thread for every request).
            http = self._http = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                trace_configs=[_TRACE],
                proxy=_env_proxy(self.base_url),
            )
            # No silent resend (module docstring): aiohttp has no argument for it.
            http._retry_connection = False
        return http

    async def aclose(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()

    async def __aenter__(self) -> ClickHouseCloudClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- operations

    async def list_services(
        self, org_id: str, *, tags: Mapping[str, str | None] | None = None
    ) -> list[Service]:
        """Services of the organization, optionally only those carrying every tag (value None: any value)."""
        filters = [f"tag:{k}" if v is None else f"tag:{k}={v}" for k, v in (tags or {}).items()]
        result = await self._call(
            "list_services",
            "GET",
            f"{_org(org_id)}/services",
            params=[("filter", f) for f in filters],
            urgent=True,  # a shared read: every pass of the organization may be waiting on it
        )
        if not isinstance(result, list):
            raise InvalidResponse(status=200, message="result is not a list", operation="list_services")
        return [self._parse(Service, item, "list_services") for item in result]

    async def get_service(self, org_id: str, service_id: str) -> Service:
        result = await self._call("get_service", "GET", _svc(org_id, service_id))
        return self._parse(Service, result, "get_service")

    async def get_private_endpoint_config(self, org_id: str, service_id: str) -> PrivateEndpointConfig:
        op = "get_private_endpoint_config"
        result = await self._call(op, "GET", f"{_svc(org_id, service_id)}/privateEndpointConfig")
        return self._parse(PrivateEndpointConfig, result, op)

    async def update_private_endpoint_ids(
        self, org_id: str, service_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> Service:
        """Send the delta as given (the API runs ``remove`` before ``add``); return the updated service."""
        op = "update_private_endpoint_ids"
        body = {"privateEndpointIds": {"add": list(add), "remove": list(remove)}}
        result = await self._call(op, "PATCH", _svc(org_id, service_id), json=body)
        return self._parse(Service, result, op)

    async def update_ip_access_list(
        self,
        org_id: str,
        service_id: str,
        *,
        add: Sequence[IpAccessEntry] = (),
        remove: Sequence[IpAccessEntry] = (),
    ) -> Service:
        """Change the service's public IP access list by delta (the API runs ``remove`` before ``add``)."""
        op = "update_ip_access_list"
        body = {
            "ipAccessList": {
                "add": [asdict(e) for e in add],
                "remove": [asdict(e) for e in remove],
            }
        }
        result = await self._call(op, "PATCH", _svc(org_id, service_id), json=body)
        return self._parse(Service, result, op)

    async def attach_private_endpoint(
        self, org_id: str, service_id: str, endpoint_id: str, description: str = ""
    ) -> OrganizationPrivateEndpoint:
        """The newer single-endpoint attach that also records a description."""
        op = "attach_private_endpoint"
        body = {"id": endpoint_id, "description": description}
        result = await self._call(op, "POST", f"{_svc(org_id, service_id)}/privateEndpoint", json=body)
        return self._parse(OrganizationPrivateEndpoint, result, op)

    async def get_organization(self, org_id: str) -> Organization:
        result = await self._call("get_organization", "GET", _org(org_id), urgent=True)
        return self._parse(Organization, result, "get_organization")

    async def remove_organization_private_endpoints(
        self, org_id: str, endpoints: Sequence[OrganizationPrivateEndpoint]
    ) -> Organization:
        """Drop organization-level entries (admin key only), matched by id, provider and region."""
        op = "remove_organization_private_endpoints"
        remove = [{"id": e.id, "cloudProvider": e.cloud_provider, "region": e.region} for e in endpoints]
        result = await self._call(op, "PATCH", _org(org_id), json={"privateEndpoints": {"remove": remove}})
        return self._parse(Organization, result, op)

    # ---- plumbing

    def _parse(self, model: type[_M], data: Any, operation: str) -> _M:
        try:
            return parse(model, data)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'result'}: {err['msg']}" for err in e.errors()[:5]
            )
            raise InvalidResponse(
                status=200, message=f"unexpected {model.__name__}: {problems}", operation=operation
            ) from None

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Sequence[tuple[str, str]] = (),
        urgent: bool = False,
    ) -> Any:
        """One API call, retried per the policy; ``urgent`` goes ahead of others waiting at the rate limit.

        Every attempt waits at the rate limit in the place in line of the first.
        """
        policy = self.retry
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, policy.max_attempts)),
            wait=lambda state: policy.wait_for(_exception(state), state.attempt_number),
            retry=retry_if_exception(_client_retries),
            before_sleep=self._log_retry,
            reraise=True,
        )
        place = self.limiter.place(urgent=urgent)
        return await retrying(self._attempt, operation, method, path, json, params, place)

    def _log_retry(self, state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s; retrying in %.1f s (attempt %d of %d)",
            _exception(state),
            wait,
            state.attempt_number + 1,
            self.retry.max_attempts,
        )

    def _report(self, operation: str, outcome: int | str) -> None:
        if self._on_call is None:
            return
        try:
            self._on_call(operation, outcome)
        except Exception:
            # A metrics hook must never fail an API call.
            log.exception("on_call hook failed for %s", operation)

    async def _attempt(
        self,
        operation: str,
        method: str,
        path: str,
        json: Any,
        params: Sequence[tuple[str, str]],
        place: Place,
    ) -> Any:
        start = await self.limiter.start(place=place)
        if start.waited:
            self._report(operation, "throttled")
        try:
            async with self._session().request(
                method, self.base_url + path, json=json, params=list(params), trace_request_ctx=start
            ) as response:
                answer = await Answer.read(response)
        except (aiohttp.ClientError, TimeoutError) as e:
            self._report(operation, "transport_error")
            # `from None`: the exception may hold the request, and so the Authorization header.
            raise TransportError(
                status=0,
                message=self._scrub(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__),
                operation=operation,
            ) from None
        finally:
            start.sent()  # when the trace did not say (a failed request may have reached the server)
        self._report(operation, answer.status)
        log.debug("%s %s -> %s", method, path, answer.status)
        if 200 <= answer.status < 300:
            return self._result(answer, operation)
        error = self._error(answer, operation)
        if error.status == 429:
            self.limiter.hold(error.retry_after if error.retry_after is not None else self.retry.backoff(1))
        raise error

    def _result(self, answer: Answer, operation: str) -> Any:
        try:
            body = answer.json()
        except ValueError:
            raise InvalidResponse(
                status=answer.status,
                message=f"body is not JSON: {self._snippet(answer.text)}",
                operation=operation,
            ) from None
        if not isinstance(body, dict) or "result" not in body:
            raise InvalidResponse(
                status=answer.status,
                message=f"body has no 'result': {self._snippet(answer.text)}",
                request_id=body.get("requestId") if isinstance(body, dict) else None,
                operation=operation,
            )
        return body["result"]

    def _error(self, answer: Answer, operation: str) -> ClickHouseApiError:
        status = answer.status
        cls = _error_class(status)
        code: str | None = None
        request_id: str | None = None
        try:
            body = answer.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            message = body["error"]
            m = _CODE_IN_TEXT.match(message)
            if m:
                code, message = m.group(1), m.group(2)
            if isinstance(body.get("code"), str) and body["code"]:
                code = body["code"]
            request_id = body.get("requestId") if isinstance(body.get("requestId"), str) else None
        else:
            message = answer.text.strip() or answer.reason
        retry_after = None
        if status == 429:
            retry_after = _seconds(answer.headers.get("X-RateLimit-Reset"))
            if retry_after is None:
                retry_after = _seconds(answer.headers.get("Retry-After"))
        return cls(
            status=status,
            code=code,
            message=self._snippet(message),
            request_id=request_id,
            operation=operation,
            retry_after=retry_after,
        )

    def _snippet(self, text: str) -> str:
        text = self._scrub(text.strip())
        return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "..."

    def _scrub(self, text: str) -> str:
        for sensitive in self._sensitive:
            text = text.replace(sensitive, "***")
        return text


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (HTTPS_PROXY or HTTP_PROXY by its scheme, unless NO_PROXY
    exempts its host)."""
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _org(org_id: str) -> str:
    return f"/v1/organizations/{quote(org_id, safe='')}"


def _svc(org_id: str, service_id: str) -> str:
    return f"{_org(org_id)}/services/{quote(service_id, safe='')}"


def _exception(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
