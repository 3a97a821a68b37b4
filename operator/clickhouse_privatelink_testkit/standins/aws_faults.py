"""Fault injection and request-rate throttling for the AWS stand-in: AWS's failures, on AWS's wire.

A WSGI middleware in front of moto (:class:`FaultMiddleware`). Each request is identified by *service*
(``ec2`` or ``route53``, from the SigV4 credential scope, else the path) and *operation*: for EC2's query
protocol the ``Action`` form field (e.g. ``CreateVpcEndpoint``); for Route 53's REST protocol the operation
whose HTTP method and request URI match, taken from botocore's own service model (e.g.
``POST /2013-04-01/hostedzone/{Id}/rrset/`` is ``ChangeResourceRecordSets``).

Fault kinds (what botocore makes of each, with retries disabled):

- ``throttle``: EC2 ``RequestLimitExceeded`` (HTTP 503, EC2's ``<Response><Errors><Error>...`` shape,
  message "Request limit exceeded."); Route 53 ``Throttling`` (HTTP 400, Route 53's ``<ErrorResponse>`` shape,
  type ``Sender``, message "Rate exceeded"). A ``ClientError`` with that code and status.
- ``prior_request_not_complete``: Route 53 ``PriorRequestNotComplete`` (HTTP 400, Route 53's shape). Matches
  Route 53 requests only (whatever ``service`` says).
- ``error``: a generic server error, ``status`` 500 (default; code ``InternalError``) or 503 (code
  ``ServiceUnavailable``), in the service's own error shape; ``code`` and ``message`` override them.
- ``drop``: the connection is closed without a response (botocore: ``ConnectionClosedError``).
- ``latency``: the request waits ``seconds`` (default 1.0) and then goes on (to moto, or to another
  matching fault).

A fault (JSON, in the control API and ``--fault``)::

    {"kind": "throttle", "service": "ec2", "operation": "CreateVpcEndpoint",
     "rate": 0.2, "count": 3, "seconds": 1.0, "status": 500, "code": null, "message": null}

``service``/``operation`` (case-insensitive; absent = any) filter the requests it applies to. ``count`` N
(default 1 when ``rate`` is absent) fires on the next N matching requests, then the fault is spent and
removed. ``rate`` p (0..1) fires on each matching request with probability p, drawn from a seedable RNG
(``--fault-seed``, or ``seed`` in the control API), until removed or, when ``count`` is also given, until it
has fired ``count`` times. Latency faults that fire all apply; then at most one terminal fault (the first
that fires, in list order).

Throttling (off by default; for benchmarks): a token bucket per service and AWS access key, ``rate`` tokens
per second and ``burst`` tokens deep; a request finding the bucket empty gets that service's throttling
error (``RequestLimitExceeded`` / ``Throttling``) and spends no token. Route 53's real limit is 5 requests
per second per account (``--throttle route53=5``); EC2's varies by action (``--throttle ec2=20/40``:
rate 20, burst 40; burst defaults to the rate).

Control API (JSON, no auth, served by the stand-in itself):

- ``GET /_standin/faults``: ``{faults: [...], injected: {KIND_OR_CODE: N, ...}, by_fault: [...],
  throttle: {...}, throttled: {SERVICE: N}}``. ``injected`` counts every injected answer by error code
  (``RequestLimitExceeded``, ``Throttling``, ``InternalError``, ...) and by kind (``drop``, ``latency``);
  each fault also carries its own ``fired`` count.
- ``POST /_standin/faults``: one fault, or ``{faults: [...], seed?}`` to append several.
- ``PUT /_standin/faults``: ``{faults: [...], seed?}`` replaces the list.
- ``DELETE /_standin/faults``: clears faults and counters.
- ``GET|PUT /_standin/throttle``: ``{ec2: {rate, burst}, route53: {rate, burst}}``; a service given
  ``null`` (or absent from a PUT) is not throttled.
- ``GET|PUT /_standin/endpoints``: ``{pending_seconds}``, how long endpoints stay ``pending`` and
  ``deleting`` (aws.py), counted from each one's change: a PUT applies to endpoints already on their way.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

KINDS = ("throttle", "prior_request_not_complete", "error", "drop", "latency")
SERVICES = ("ec2", "route53")
CONTROL_PREFIX = "/_standin/"

_Environ = dict[str, Any]
_StartResponse = Callable[..., Any]
_WsgiApp = Callable[[_Environ, _StartResponse], Iterable[bytes]]

_STATUS_TEXT = {400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}
_GENERIC = {
    500: ("InternalError", "An internal error has occurred"),
    503: ("ServiceUnavailable", "Service Unavailable"),
}


@dataclass
class Fault:
    """One injected failure; see the module docstring."""

    kind: str
    service: str | None = None
    operation: str | None = None
    rate: float | None = None
    count: int | None = None
    seconds: float = 1.0
    status: int = 500
    code: str | None = None
    message: str | None = None
    fired: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        known = {"kind", "service", "operation", "rate", "count", "seconds", "status", "code", "message"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"fault kind must be one of {KINDS}, not {kind!r}")
        service = data.get("service")
        if service is not None:
            service = str(service).lower()
            if service not in SERVICES:
                raise ValueError(f"fault service must be one of {SERVICES}, not {service!r}")
        rate = None if data.get("rate") is None else float(data["rate"])
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")
        count = None if data.get("count") is None else int(data["count"])
        if count is None and rate is None:
            count = 1
        if count is not None and count <= 0:
            raise ValueError("fault count must be positive")
        status = int(data.get("status", 500))
        if kind == "error" and not 400 <= status <= 599:
            raise ValueError("an error fault's status must be 4xx or 5xx")
        return cls(
            kind=str(kind),
            service=service,
            operation=None if data.get("operation") is None else str(data["operation"]),
            rate=rate,
            count=count,
            seconds=float(data.get("seconds", 1.0)),
            status=status,
            code=None if data.get("code") is None else str(data["code"]),
            message=None if data.get("message") is None else str(data["message"]),
        )

    @classmethod
    def parse(cls, text: str) -> Fault:
        """A ``--fault`` option: a JSON object, or ``kind=throttle,service=ec2,rate=0.1,...``."""
        text = text.strip()
        if text.startswith("{"):
            return cls.from_dict(json.loads(text))
        data: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            if not sep:
                if "kind" in data:
                    raise ValueError(f"fault option {text!r}: {part!r} is not NAME=VALUE")
                name, value = "kind", part
            data[name.strip()] = value.strip()
        return cls.from_dict(data)

    def matches(self, service: str | None, operation: str | None) -> bool:
        if self.kind == "prior_request_not_complete" and service != "route53":
            return False
        if self.service is not None and self.service != service:
            return False
        return self.operation is None or (
            operation is not None and self.operation.lower() == operation.lower()
        )

    @property
    def spent(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "service": self.service,
            "operation": self.operation,
            "rate": self.rate,
            "count": self.count,
            "seconds": self.seconds,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "fired": self.fired,
        }


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class Throttle:
    """A token bucket's settings: ``rate`` tokens per second, ``burst`` deep."""

    rate: float
    burst: float

    @classmethod
    def parse(cls, text: str) -> tuple[str, Throttle]:
        """``route53=5`` or ``ec2=20/40`` (rate/burst) -> (service, Throttle)."""
        service, sep, value = text.partition("=")
        service = service.strip().lower()
        if not sep or service not in SERVICES:
            raise ValueError(f"throttle {text!r} is not SERVICE=RATE[/BURST] with SERVICE in {SERVICES}")
        rate, _, burst = value.partition("/")
        return service, cls.from_dict({"rate": rate, "burst": burst or None})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Throttle:
        rate = float(data["rate"])
        burst = float(data["burst"]) if data.get("burst") is not None else max(rate, 1.0)
        if rate <= 0 or burst < 1:
            raise ValueError("throttle rate must be positive and burst at least 1")
        return cls(rate=rate, burst=burst)


@dataclass
class Decision:
    """What to do to one request: sleep, then answer with ``response`` (or drop), else pass it on."""

    delay: float = 0.0
    drop: bool = False
    response: tuple[int, str, bytes] | None = None  # status, content type, body


@dataclass
class FaultInjector:
    """The faults, throttles and counters; thread-safe (moto's server answers on many threads)."""

    faults: list[Fault] = field(default_factory=list)
    throttles: dict[str, Throttle] = field(default_factory=dict)
    seed: int | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.injected: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()

    # ---- configuration

    def set_faults(self, faults: Iterable[Fault], *, seed: int | None = None, append: bool = False) -> None:
        with self._lock:
            if not append:
                self.faults = []
            self.faults.extend(faults)
            if seed is not None:
                self._rng.seed(seed)

    def clear(self) -> None:
        with self._lock:
            self.faults = []
            self.injected.clear()
            self.throttled.clear()

    def set_throttles(self, throttles: Mapping[str, Throttle]) -> None:
        with self._lock:
            self.throttles = dict(throttles)
            self._buckets.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "faults": [f.to_dict() for f in self.faults],
                "injected": dict(self.injected),
                "throttle": self._throttle_dict(),
                "throttled": dict(self.throttled),
            }

    def _throttle_dict(self) -> dict[str, Any]:
        return {
            s: ({"rate": t.rate, "burst": t.burst} if (t := self.throttles.get(s)) else None)
            for s in SERVICES
        }

    def throttle_dict(self) -> dict[str, Any]:
        with self._lock:
            return self._throttle_dict()

    # ---- per request

    def decide(self, service: str | None, operation: str | None, account: str) -> Decision:
        decision = Decision()
        with self._lock:
            for fault in self.faults:
                if fault.spent or not fault.matches(service, operation):
                    continue
                if fault.kind != "latency" and (decision.drop or decision.response is not None):
                    continue
                if fault.rate is not None and self._rng.random() >= fault.rate:
                    continue
                fault.fired += 1
                if fault.kind == "latency":
                    decision.delay += fault.seconds
                    self.injected["latency"] += 1
                elif fault.kind == "drop":
                    decision.drop = True
                    self.injected["drop"] += 1
                else:
                    code, status, body = _fault_error(fault, service)
                    decision.response = (status, "text/xml", body)
                    self.injected[code] += 1
            self.faults = [f for f in self.faults if not f.spent]
            if decision.drop or decision.response is not None or service is None:
                return decision
            throttle = self.throttles.get(service)
            if throttle is not None and not self._take(service, account, throttle):
                code, status, body = throttling_error(service)
                decision.response = (status, "text/xml", body)
                self.throttled[service] += 1
        return decision

    def _take(self, service: str, account: str, throttle: Throttle) -> bool:
        now = time.monotonic()
        bucket = self._buckets.setdefault((service, account), _Bucket(throttle.burst, now))
        bucket.tokens = min(throttle.burst, bucket.tokens + (now - bucket.stamp) * throttle.rate)
        bucket.stamp = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


# ------------------------------------------------------------------------------------------ error bodies


def ec2_error(code: str, message: str) -> bytes:
    """EC2's query-protocol error document."""
    return (
        f"<?xml version='1.0' encoding='UTF-8'?>\n<Response><Errors><Error><Code>{_x(code)}</Code>"
        f"<Message>{_x(message)}</Message></Error></Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
    ).encode()


def route53_error(code: str, message: str, *, sender: bool = True) -> bytes:
    """Route 53's REST-XML error document."""
    return (
        '<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
        f"<Error><Type>{'Sender' if sender else 'Receiver'}</Type><Code>{_x(code)}</Code>"
        f"<Message>{_x(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()


def throttling_error(service: str | None) -> tuple[str, int, bytes]:
    """The service's throttling answer: (code, HTTP status, body)."""
    if service == "route53":
        return "Throttling", 400, route53_error("Throttling", "Rate exceeded")
    return "RequestLimitExceeded", 503, ec2_error("RequestLimitExceeded", "Request limit exceeded.")


def _fault_error(fault: Fault, service: str | None) -> tuple[str, int, bytes]:
    if fault.kind == "throttle":
        return throttling_error(service)
    if fault.kind == "prior_request_not_complete":
        message = fault.message or (
            "The request was rejected because Route 53 was still processing a prior request."
        )
        return "PriorRequestNotComplete", 400, route53_error("PriorRequestNotComplete", message)
    default_code, default_message = _GENERIC.get(
        fault.status, ("InternalError", "An internal error has occurred")
    )
    code, message = fault.code or default_code, fault.message or default_message
    if service == "route53":
        return code, fault.status, route53_error(code, message, sender=fault.status < 500)
    return code, fault.status, ec2_error(code, message)


def _x(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ------------------------------------------------------------------------------------------ identification

_SCOPE = re.compile(r"Credential=([^/,\s]+)/[^/]+/[^/]+/([^/]+)/aws4_request")
_route53_ops: list[tuple[str, re.Pattern[str], str]] | None = None


def _route53_operations() -> list[tuple[str, re.Pattern[str], str]]:
    """(method, path regex, operation) from botocore's Route 53 model, most literal first."""
    global _route53_ops
    if _route53_ops is None:
        import botocore.session

        model = botocore.session.get_session().get_service_model("route53")
        ops: list[tuple[int, str, re.Pattern[str], str]] = []
        for name in model.operation_names:
            http = model.operation_model(name).http
            uri = str(http["requestUri"]).split("?", 1)[0].rstrip("/")
            literal = len(re.sub(r"\{[^}]*\}", "", uri))
            pattern = re.sub(
                r"\\\{([^}]*?)(\\\+)?\\\}",
                lambda m: ".+" if m.group(2) else "[^/]+",
                re.escape(uri),
            )
            ops.append((literal, str(http["method"]).upper(), re.compile(pattern + "/?"), name))
        ops.sort(key=lambda o: -o[0])
        _route53_ops = [(method, rx, name) for _, method, rx, name in ops]
    return _route53_ops


def route53_operation(method: str, path: str) -> str | None:
    """``POST /2013-04-01/hostedzone/Z1/rrset/`` -> ``ChangeResourceRecordSets``."""
    for op_method, rx, name in _route53_operations():
        if op_method == method.upper() and rx.fullmatch(path):
            return name
    return None


def identify(environ: _Environ, body: bytes) -> tuple[str | None, str | None, str]:
    """(service, operation, access key) of a request to the stand-in."""
    from urllib.parse import parse_qs

    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    m = _SCOPE.search(auth)
    account = m.group(1) if m else ""
    service = m.group(2).lower() if m else None
    path = str(environ.get("PATH_INFO", ""))
    if service is None and path.startswith("/2013-04-01/"):
        service = "route53"
    if service == "route53":
        return service, route53_operation(str(environ.get("REQUEST_METHOD", "GET")), path), account
    query = parse_qs(str(environ.get("QUERY_STRING", "")))
    form = parse_qs(body.decode("utf-8", "replace")) if body else {}
    actions = form.get("Action") or query.get("Action") or []
    action = actions[0] if actions else None
    if service is None and action is not None:
        service = "ec2"
    return service, action, account


# ------------------------------------------------------------------------------------------ middleware


class EndpointTiming(Protocol):
    """What ``/_standin/endpoints`` sets: how long endpoints stay ``pending`` and ``deleting``."""

    pending_seconds: float


class FaultMiddleware:
    """WSGI middleware: the control API under ``/_standin/``, faults and throttling for everything else."""

    def __init__(
        self, app: _WsgiApp, injector: FaultInjector, *, endpoints: EndpointTiming | None = None
    ) -> None:
        self.app = app
        self.injector = injector
        self.endpoints = endpoints

    def __call__(self, environ: _Environ, start_response: _StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path.startswith(CONTROL_PREFIX):
            return self._control(environ, start_response)
        body = _read_body(environ)
        service, operation, account = identify(environ, body)
        decision = self.injector.decide(service, operation, account)
        if decision.delay > 0:
            time.sleep(decision.delay)
        if decision.drop:
            _drop(environ)
            return []
        if decision.response is not None:
            status, content_type, payload = decision.response
            start_response(
                f"{status} {_STATUS_TEXT.get(status, 'Error')}",
                [("Content-Type", content_type), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        return self.app(environ, start_response)

    def _control(self, environ: _Environ, start_response: _StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        what = str(environ.get("PATH_INFO", ""))[len(CONTROL_PREFIX) :].strip("/")
        inj = self.injector
        try:
            raw = _read_body(environ)
            data: Any = json.loads(raw) if raw.strip() else {}
            if what == "faults":
                if method in ("POST", "PUT"):
                    if not isinstance(data, dict):
                        raise ValueError("body must be a JSON object")
                    specs = data.get("faults", [data])
                    seed = data.get("seed") if "faults" in data else None
                    faults = [Fault.from_dict(f) for f in specs]
                    inj.set_faults(faults, seed=None if seed is None else int(seed), append=method == "POST")
                elif method == "DELETE":
                    inj.clear()
                elif method != "GET":
                    return _json(start_response, 405, {"error": f"{method} not allowed"})
                return _json(start_response, 200, inj.snapshot())
            if what == "throttle":
                if method == "PUT":
                    if not isinstance(data, dict):
                        raise ValueError("body must be a JSON object")
                    unknown = set(data) - set(SERVICES)
                    if unknown:
                        raise ValueError(f"unknown services: {sorted(unknown)}")
                    inj.set_throttles({s: Throttle.from_dict(v) for s, v in data.items() if v is not None})
                elif method != "GET":
                    return _json(start_response, 405, {"error": f"{method} not allowed"})
                return _json(start_response, 200, inj.throttle_dict())
            if what == "endpoints" and self.endpoints is not None:
                if method == "PUT":
                    if not isinstance(data, dict) or float(data["pending_seconds"]) < 0:
                        raise ValueError("body must be {pending_seconds: a number >= 0}")
                    self.endpoints.pending_seconds = float(data["pending_seconds"])
                elif method != "GET":
                    return _json(start_response, 405, {"error": f"{method} not allowed"})
                return _json(start_response, 200, {"pending_seconds": self.endpoints.pending_seconds})
            return _json(start_response, 404, {"error": f"no control resource {what!r}"})
        except (ValueError, KeyError, TypeError) as e:
            return _json(start_response, 400, {"error": f"{type(e).__name__}: {e}"})


def _read_body(environ: _Environ) -> bytes:
    """Read the request body and put it back for moto to read again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ.get("wsgi.input")
    body = stream.read(length) if stream is not None and length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _drop(environ: _Environ) -> None:
    """Close the client connection without a response (werkzeug hands over its socket)."""
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def _json(start_response: _StartResponse, status: int, data: Any) -> list[bytes]:
    payload = json.dumps(data).encode()
    start_response(
        f"{status} {_STATUS_TEXT.get(status, 'OK' if status < 400 else 'Error')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
    )
    return [payload]


class AwsFaultControl:
    """A synchronous client of the control API (tests, sandbox)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        import httpx

        self._http = httpx.Client(base_url=url.rstrip("/") + CONTROL_PREFIX.rstrip("/"), timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AwsFaultControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(
                f"aws stand-in control {method} {path} -> {response.status_code}: {response.text}"
            )
        result: dict[str, Any] = response.json()
        return result

    def state(self) -> dict[str, Any]:
        """Faults, counters of injected answers and throttles (``GET /_standin/faults``)."""
        return self._call("GET", "/faults")

    def add_fault(self, kind: str, **fields: Any) -> dict[str, Any]:
        return self._call("POST", "/faults", {"kind": kind, **fields})

    def set_faults(self, faults: Iterable[Mapping[str, Any]], *, seed: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"faults": [dict(f) for f in faults]}
        if seed is not None:
            body["seed"] = seed
        return self._call("PUT", "/faults", body)

    def clear(self) -> dict[str, Any]:
        """No faults, counters at zero (throttles stay: :meth:`set_throttle` with none to clear them)."""
        return self._call("DELETE", "/faults")

    def set_throttle(
        self, *, ec2: tuple[float, float] | None = None, route53: tuple[float, float] | None = None
    ) -> dict[str, Any]:
        """Token buckets as (rate per second, burst); None leaves a service unthrottled."""
        body = {
            s: None if v is None else {"rate": v[0], "burst": v[1]}
            for s, v in (("ec2", ec2), ("route53", route53))
        }
        return self._call("PUT", "/throttle", body)

    def set_endpoint_pending(self, seconds: float) -> dict[str, Any]:
        """Endpoints stay ``pending`` and ``deleting`` this long from their change (those on their way too)."""
        return self._call("PUT", "/endpoints", {"pending_seconds": seconds})
