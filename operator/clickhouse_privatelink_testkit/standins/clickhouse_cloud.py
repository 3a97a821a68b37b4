"""A local stand-in for the ClickHouse Cloud API: the operations the operator uses, in memory.

Faithful to ``shared/reference/clickhouse-cloud-api.md`` (the contract) and to the shapes of the
official OpenAPI spec: every response the ``/v1`` routes serve validates against the spec's schemas,
including the fields the newest ``Service`` schema marks required.

Served under ``/v1`` (HTTP Basic auth with an API key ID and secret):

- ``GET   /v1/organizations/{org}``
- ``PATCH /v1/organizations/{org}`` (``privateEndpoints`` add/remove, ``name``; admin key)
- ``GET   /v1/organizations/{org}/services`` (repeatable ``filter=tag:K=V`` / ``filter=tag:K``, ANDed)
- ``GET   /v1/organizations/{org}/services/{svc}``
- ``PATCH /v1/organizations/{org}/services/{svc}`` (``privateEndpointIds`` add/remove, ``name``)
- ``GET   /v1/organizations/{org}/services/{svc}/privateEndpointConfig``
- ``POST  /v1/organizations/{org}/services/{svc}/privateEndpoint``

Behaviour worth knowing (the contract's "observed" items, modelled):

- 401 ``UNAUTHORIZED`` for a missing or wrong key; 403 ``FORBIDDEN`` for another organization's paths (the key
  is valid but not entitled: no existence leak), for a ``developer`` (read-only) key writing, and for
  PrivateLink operations in an organization on the ``basic`` tier; 404 ``NOT_FOUND`` for an unknown service;
  409 ``CONFLICT`` for a PrivateLink change while the service is transitioning (starting, stopping,
  terminating, softdeleting, awaking).
- ``privateEndpointIds`` PATCH is a delta, ``remove`` before ``add``; adding a present ID or removing an
  absent one is a no-op. Adding an ID registers it on the organization's ``privateEndpoints`` with the
  service's provider and region; detaching never removes the organization entry (that is org PATCH's job).
- A service seeded ``provisioning`` answers ``privateEndpointConfig`` with empty strings until it becomes
  ``running``: after ``provisioning_seconds``, after ``provisioning_reads`` empty config reads, or when the
  control API sets its state.
- Rate limit: a fixed window per API key (default 10 requests per 10 s); the request over the limit gets 429
  ``TOO_MANY_REQUESTS`` with ``X-RateLimit-Reset: <whole seconds until the window resets, >= 1>``.

Time: every duration (rate-limit window, provisioning time, injected latency) is in *virtual* seconds,
multiplied by ``time_scale`` to get wall-clock seconds. ``X-RateLimit-Reset`` always tells the wall-clock
seconds to wait, as the real API does: whole seconds at time scale 1, hundredths on a compressed clock (a
client needs no knowledge of the compression, only its ordinary backoff settings).

Control API (no auth: the stand-in only ever listens on a test machine), JSON in and out:

- ``GET /_control/health``; ``POST /_control/reset`` (back to the start-up seed-less state and settings)
- ``POST /_control/seed`` (a seed document, the format below)
- ``POST /_control/organizations`` ``{id?, name?, tier?}``; ``GET /_control/organizations/{org}``
- ``POST /_control/keys`` ``{org_id, id?, secret?, role?}`` (the answer carries the secret: the seeder's own)
- Services of one provider and region share one ``endpointServiceId`` unless seeded with their own, as
  ClickHouse groups a region's services behind one endpoint service.
- ``POST /_control/services`` ``{org_id, id?, name?, provider?, region?, state?, endpoint_service_id?,
  private_dns_hostname?, provisioning_seconds?, provisioning_reads?, private_endpoint_ids?, tags?}``
- ``GET|DELETE /_control/organizations/{org}/services/{svc}``;
  ``PUT /_control/organizations/{org}/services/{svc}/state`` ``{state}``
- ``GET /_control/state``: organizations (with ``private_endpoints``), keys (never secrets), services
  (with ``private_endpoint_ids``), faults, rate limit
- ``GET|PUT|POST|DELETE /_control/faults``: list, replace (``{faults: [...], seed?}``), append (one fault),
  clear. A fault: ``{kind: latency|error|rate_limit|drop, count?: N, rate?: P, method?, path? (regex searched
  in the path), seconds? (latency, virtual), status? (error, default 503), body? (error: raw text instead of
  the envelope), reset? (rate_limit header, default 1)}``. Latency delays and then lets the request go on (or
  into another matching fault); ``drop`` closes the connection without an answer. Faults apply before
  authentication, like a load balancer's.

  By count (no ``rate``): the fault fires on the next ``count`` (default 1) matching ``/v1`` requests, then it
  is spent and removed. By rate: ``rate`` P (0..1) fires on each matching request with probability P, drawn
  from the stand-in's RNG, until the fault is removed or, when ``count`` is given too, until it has fired
  ``count`` times (``count`` is what is left: it goes down only when the fault fires; ``fired`` counts the
  times it did). The RNG is seeded with ``--fault-seed`` (or ``fault_seed``; unseeded when absent), reseeded
  by ``seed`` in a PUT and by ``/_control/reset``: the same seed and the same requests fire the same faults.
- ``GET|PUT /_control/rate-limit``: ``{limit, period}`` or ``{enabled: false}``
- ``GET /_control/requests?since=SEQ&key_id=ID`` (``method, path, query, status, key_id, fault, seq,
  request_id``; never a secret); ``DELETE /_control/requests``

Seed document (``--seed FILE``, YAML or JSON; also ``POST /_control/seed``)::

    time_scale: 1.0            # optional; the --time-scale option wins
    rate_limit: "10/10s"       # optional; "off" disables it; the --rate-limit option wins
    organizations:
      - id: 6f1c...uuid        # generated when absent
        name: Acme
        tier: scale            # basic (no PrivateLink), scale or enterprise
        keys:
          - {id: KEYID, secret: SECRET, role: admin}      # admin (read/write) or developer (read-only)
        services:
          - id: 3b5e...uuid
            name: analytics
            provider: aws      # aws, gcp or azure
            region: us-east-1
            state: running     # or provisioning, stopped, idle, ...
            # both generated when absent
            endpoint_service_id: com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0
            private_dns_hostname: abcd1234ef.us-east-1.vpce.aws.clickhouse.cloud
            provisioning_seconds: 30   # provisioning -> running after this long (virtual seconds)
            provisioning_reads: 3      # ... or after this many empty privateEndpointConfig reads
            private_endpoint_ids: []
            tags: {team: data}
        private_endpoints:     # organization-level entries
          - {id: vpce-0123456789abcdef0, description: "", cloudProvider: aws, region: us-east-1}

Run it: ``clickhouse-privatelink-testkit standin clickhouse [--seed FILE] [--rate-limit 10/10s]
[--time-scale X] [--fault-seed N]``; in-process: :class:`ClickHouseCloudStandIn`; drive it: :class:`StandInControl`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import math
import random
import re
import secrets
import signal
import string
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import httpx
import yaml
from aiohttp import web

log = logging.getLogger(__name__)

PROVIDERS = ("aws", "gcp", "azure")
ROLES = ("admin", "developer")
TIERS = ("basic", "scale", "enterprise")
STATES = (
    "starting",
    "stopping",
    "terminating",
    "softdeleting",
    "awaking",
    "partially_running",
    "provisioning",
    "running",
    "stopped",
    "terminated",
    "softdeleted",
    "degraded",
    "failed",
    "idle",
)
# A PrivateLink change while the service moves between states is refused (the contract's observed 409).
TRANSITIONING_STATES = frozenset({"starting", "stopping", "terminating", "softdeleting", "awaking"})
FAULT_KINDS = ("latency", "error", "rate_limit", "drop")
DEFAULT_RATE_LIMIT = "10/10s"

_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    424: "FAILED_DEPENDENCY",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}
_ALNUM_LOWER = string.ascii_lowercase + string.digits
_ALNUM = string.ascii_letters + string.digits


def _random(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def error_code(status: int) -> str:
    """The UPPER_SNAKE code ClickHouse Cloud puts before the message for an HTTP status."""
    return _STATUS_CODES.get(status, "INTERNAL_SERVER_ERROR" if status >= 500 else "BAD_REQUEST")


def parse_rate_limit(text: str | None) -> tuple[int, float] | None:
    """``"10/10s"`` -> ``(10, 10.0)``; units s, m, h (s when absent); ``"off"``/``"0"``/empty -> None."""
    if text is None or text.strip().lower() in ("", "off", "none", "0"):
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([smh]?)\s*", text)
    if not m:
        raise ValueError(f"rate limit {text!r} is not of the form N/PERIOD, e.g. 10/10s")
    limit = int(m.group(1))
    period = float(m.group(2) or 1) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(3)]
    if limit <= 0 or period <= 0:
        raise ValueError(f"rate limit {text!r} must be positive")
    return limit, period


def default_endpoint_service_id(provider: str, region: str) -> str:
    """A realistic PrivateLink service identifier (``privateEndpointConfig.endpointServiceId``)."""
    if provider == "gcp":
        return (
            f"projects/dataplane-production/regions/{region}"
            f"/serviceAttachments/production-{region}-clickhouse-cloud"
        )
    if provider == "azure":
        return f"production-{region}-pls.{uuid.uuid4()}.{region}.azure.privatelinkservice"
    return f"com.amazonaws.vpce.{region}.vpce-svc-{_random('0123456789abcdef', 17)}"


def default_private_dns_hostname(provider: str, region: str, host_id: str) -> str:
    if provider == "gcp":
        return f"{host_id}.{region}.p.gcp.clickhouse.cloud"
    if provider == "azure":
        return f"{host_id}.{region}.privatelink.azure.clickhouse.cloud"
    return f"{host_id}.{region}.vpce.aws.clickhouse.cloud"


class ApiError(Exception):
    """An answer in ClickHouse Cloud's error envelope."""

    def __init__(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


# ------------------------------------------------------------------------------------------ state


@dataclass
class Organization:
    id: str
    name: str
    tier: str = "scale"
    created_at: str = field(default_factory=_now_iso)
    private_endpoints: list[dict[str, str]] = field(default_factory=list)

    def api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "createdAt": self.created_at,
            "name": self.name,
            "privateEndpoints": [dict(pe) for pe in self.private_endpoints],
            "byocConfig": [],
            "enableCoreDumps": True,
        }

    def control(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tier": self.tier,
            "created_at": self.created_at,
            "private_endpoints": [dict(pe) for pe in self.private_endpoints],
        }

    def register_endpoint(
        self, endpoint_id: str, provider: str, region: str, description: str | None
    ) -> None:
        for pe in self.private_endpoints:
            if pe["id"] == endpoint_id and pe["cloudProvider"] == provider and pe["region"] == region:
                if description is not None:
                    pe["description"] = description
                return
        self.private_endpoints.append(
            {"id": endpoint_id, "description": description or "", "cloudProvider": provider, "region": region}
        )


@dataclass
class ApiKey:
    id: str
    secret: str
    role: str
    org_id: str

    def control(self, *, with_secret: bool = False) -> dict[str, Any]:
        out = {"id": self.id, "role": self.role, "org_id": self.org_id}
        if with_secret:
            out["secret"] = self.secret
        return out


@dataclass
class Service:
    id: str
    org_id: str
    name: str
    provider: str
    region: str
    state: str
    endpoint_service_id: str
    private_dns_hostname: str
    host_id: str
    private_endpoint_ids: list[str] = field(default_factory=list)
    tags: dict[str, str | None] = field(default_factory=dict)
    # A new service admits anywhere until its IP access list is changed (service PATCH ``ipAccessList``).
    ip_access_list: list[dict[str, str]] = field(
        default_factory=lambda: [{"source": "0.0.0.0/0", "description": "Anywhere"}]
    )
    provisioning_seconds: float | None = None
    provisioning_reads: int | None = None
    config_reads: int = 0
    started: float = field(default_factory=time.monotonic)
    created_at: str = field(default_factory=_now_iso)
    data_warehouse_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def endpoints(self) -> list[dict[str, Any]]:
        host = f"{self.host_id}.{self.region}.{self.provider}.clickhouse.cloud"
        return [
            {"protocol": "https", "host": host, "port": 8443},
            {"protocol": "nativesecure", "host": host, "port": 9440},
            {"protocol": "mysql", "host": host, "port": 3306, "username": f"{self.host_id}_default"},
        ]

    def api(self, org: Organization) -> dict[str, Any]:
        available = [
            pe["id"]
            for pe in org.private_endpoints
            if pe["cloudProvider"] == self.provider
            and pe["region"] == self.region
            and pe["id"] not in self.private_endpoint_ids
        ]
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "provider": self.provider,
            "region": self.region,
            "state": self.state,
            "clickhouseVersion": "25.8.1.8909",
            "endpoints": self.endpoints(),
            "minReplicaMemoryGb": 8,
            "maxReplicaMemoryGb": 120,
            "numReplicas": 3,
            "autoscalingMode": "vertical",
            "idleScaling": True,
            "idleTimeoutMinutes": 15,
            "ipAccessList": [dict(entry) for entry in self.ip_access_list],
            "createdAt": self.created_at,
            "privateEndpointIds": list(self.private_endpoint_ids),
            "availablePrivateEndpointIds": available,
            "dataWarehouseId": self.data_warehouse_id,
            "isPrimary": True,
            "isReadonly": False,
            "releaseChannel": "default",
            "hasTransparentDataEncryption": False,
            "tags": [{"key": k} if v is None else {"key": k, "value": v} for k, v in self.tags.items()],
            "enableCoreDumps": False,
            "currentScaling": {
                "effectiveAutoscalingMode": "vertical",
                "effectiveMinReplicaMemoryGb": 8,
                "effectiveMaxReplicaMemoryGb": 120,
                "effectiveMinReplicas": 3,
                "effectiveMaxReplicas": 3,
                "effectiveIdleScaling": True,
                "effectiveIdleTimeoutMinutes": 15,
            },
        }
        if self.provider == "aws":
            out["iamRole"] = f"arn:aws:iam::426924874929:role/CH-S3-{self.host_id}-Role"
        return out

    def control(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "org_id": self.org_id,
            "name": self.name,
            "provider": self.provider,
            "region": self.region,
            "state": self.state,
            "endpoint_service_id": self.endpoint_service_id,
            "private_dns_hostname": self.private_dns_hostname,
            "endpoints": self.endpoints(),
            "private_endpoint_ids": list(self.private_endpoint_ids),
            "ip_access_list": [dict(entry) for entry in self.ip_access_list],
            "tags": dict(self.tags),
            "provisioning_seconds": self.provisioning_seconds,
            "provisioning_reads": self.provisioning_reads,
            "config_reads": self.config_reads,
        }


@dataclass
class Fault:
    kind: Literal["latency", "error", "rate_limit", "drop"]
    count: int | None = 1
    method: str | None = None
    path: str | None = None
    seconds: float = 1.0
    status: int = 503
    body: str | None = None
    reset: int = 1
    rate: float | None = None
    fired: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        known = {"kind", "count", "rate", "method", "path", "seconds", "status", "body", "reset", "fired"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        kind = data.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, not {kind!r}")
        if data.get("path") is not None:
            re.compile(str(data["path"]))
        rate = None if data.get("rate") is None else float(data["rate"])
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError("a fault's rate must be between 0 and 1")
        count = data.get("count")
        fault = cls(
            kind=kind,
            count=(1 if rate is None else None) if count is None else int(count),
            rate=rate,
            method=str(data["method"]).upper() if data.get("method") else None,
            path=str(data["path"]) if data.get("path") is not None else None,
            seconds=float(data.get("seconds", 1.0)),
            status=int(data.get("status", 503)),
            body=None if data.get("body") is None else str(data["body"]),
            reset=int(data.get("reset", 1)),
        )
        if fault.kind == "error" and not 400 <= fault.status <= 599:
            raise ValueError("an error fault's status must be 4xx or 5xx")
        return fault

    @property
    def spent(self) -> bool:
        return self.count is not None and self.count <= 0

    def matches(self, method: str, path: str) -> bool:
        if self.spent:
            return False
        if self.method and self.method != method.upper():
            return False
        return self.path is None or re.search(self.path, path) is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "method": self.method,
            "path": self.path,
            "seconds": self.seconds,
            "status": self.status,
            "body": self.body,
            "reset": self.reset,
            "rate": self.rate,
            "fired": self.fired,
        }


class StandInState:
    """Everything the stand-in knows; mutated only from the server's event loop."""

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        rate_limit: tuple[int, float] | None = (10, 10.0),
        fault_seed: int | None = None,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._initial_rate_limit = rate_limit
        self.rate_limit = rate_limit
        self.orgs: dict[str, Organization] = {}
        self.keys: dict[str, ApiKey] = {}
        self.services: dict[str, Service] = {}
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self._windows: dict[str, tuple[float, int]] = {}
        self._seq = 0
        self._fault_seed = fault_seed
        self.rng = random.Random(fault_seed)
        self._regional_endpoint_services: dict[tuple[str, str], str] = {}

    def reset(self) -> None:
        self.rate_limit = self._initial_rate_limit
        self.orgs.clear()
        self.keys.clear()
        self.services.clear()
        self.faults.clear()
        self.requests.clear()
        self._windows.clear()
        self._regional_endpoint_services.clear()
        self.rng.seed(self._fault_seed)

    # ---- seeding

    def seed_org(
        self, *, id: str | None = None, name: str | None = None, tier: str = "scale"
    ) -> Organization:
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS}")
        org_id = id or str(uuid.uuid4())
        org = Organization(id=org_id, name=name or f"org-{org_id[:8]}", tier=tier)
        self.orgs[org_id] = org
        return org

    def seed_key(
        self, *, org_id: str, role: str = "admin", id: str | None = None, secret: str | None = None
    ) -> ApiKey:
        self._org(org_id)
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        # Real key IDs are 20 alphanumerics, secrets 42 ("4b1d" + 38 alphanumerics).
        key = ApiKey(
            id=id or _random(_ALNUM, 20),
            secret=secret or "4b1d" + _random(_ALNUM, 38),
            role=role,
            org_id=org_id,
        )
        self.keys[key.id] = key
        return key

    def seed_service(
        self,
        *,
        org_id: str,
        id: str | None = None,
        name: str | None = None,
        provider: str = "aws",
        region: str = "us-east-1",
        state: str = "running",
        endpoint_service_id: str | None = None,
        private_dns_hostname: str | None = None,
        provisioning_seconds: float | None = None,
        provisioning_reads: int | None = None,
        private_endpoint_ids: Iterable[str] = (),
        tags: Mapping[str, str | None] | None = None,
    ) -> Service:
        org = self._org(org_id)
        if provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}")
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}")
        host_id = _random(_ALNUM_LOWER, 10)
        service_id = id or str(uuid.uuid4())
        svc = Service(
            id=service_id,
            org_id=org_id,
            name=name or f"service-{service_id[:8]}",
            provider=provider,
            region=region,
            state=state,
            # ClickHouse puts a region's services behind one endpoint service: the first service of a
            # provider and region gets a new one, later ones share it (unless the seed names another).
            endpoint_service_id=endpoint_service_id
            or self._regional_endpoint_services.setdefault(
                (provider, region), default_endpoint_service_id(provider, region)
            ),
            private_dns_hostname=private_dns_hostname
            or default_private_dns_hostname(provider, region, host_id),
            host_id=host_id,
            tags=dict(tags or {}),
            provisioning_seconds=provisioning_seconds,
            provisioning_reads=provisioning_reads,
        )
        for endpoint_id in private_endpoint_ids:
            if endpoint_id not in svc.private_endpoint_ids:
                svc.private_endpoint_ids.append(endpoint_id)
                org.register_endpoint(endpoint_id, provider, region, None)
        self.services[service_id] = svc
        return svc

    def load_seed(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Seed from a document (the module docstring's format); return what was created, with secrets."""
        created: dict[str, Any] = {"organizations": []}
        for o in doc.get("organizations") or []:
            org = self.seed_org(id=o.get("id"), name=o.get("name"), tier=o.get("tier", "scale"))
            for pe in o.get("private_endpoints") or []:
                org.register_endpoint(
                    pe["id"], pe.get("cloudProvider", "aws"), pe["region"], pe.get("description", "")
                )
            keys = [self.seed_key(org_id=org.id, **k).control(with_secret=True) for k in o.get("keys") or []]
            services = [self.seed_service(org_id=org.id, **s).control() for s in o.get("services") or []]
            created["organizations"].append({**org.control(), "keys": keys, "services": services})
        return created

    def set_service_state(self, org_id: str, service_id: str, state: str) -> Service:
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}")
        svc = self._service(org_id, service_id)
        svc.state = state
        return svc

    def delete_service(self, org_id: str, service_id: str) -> None:
        self._service(org_id, service_id)
        del self.services[service_id]

    def snapshot(self) -> dict[str, Any]:
        for svc in self.services.values():
            self._advance(svc)
        return {
            "time_scale": self.time_scale,
            "rate_limit": self.rate_limit_dict(),
            "organizations": [o.control() for o in self.orgs.values()],
            "keys": [k.control() for k in self.keys.values()],
            "services": [s.control() for s in self.services.values()],
            "faults": [f.to_dict() for f in self.faults],
        }

    def rate_limit_dict(self) -> dict[str, Any]:
        if self.rate_limit is None:
            return {"enabled": False}
        return {"enabled": True, "limit": self.rate_limit[0], "period": self.rate_limit[1]}

    # ---- lookups shared by the API and the control routes

    def _org(self, org_id: str) -> Organization:
        org = self.orgs.get(org_id)
        if org is None:
            raise ApiError(404, f"Organization {org_id} not found")
        return org

    def _service(self, org_id: str, service_id: str) -> Service:
        svc = self.services.get(service_id)
        if svc is None or svc.org_id != org_id:
            raise ApiError(404, f"Service {service_id} not found in organization {org_id}")
        self._advance(svc)
        return svc

    def _advance(self, svc: Service) -> None:
        """Finish provisioning once its (scaled) time is up: evaluated lazily on every look."""
        if svc.state != "provisioning" or svc.provisioning_seconds is None:
            return
        if time.monotonic() - svc.started >= svc.provisioning_seconds * self.time_scale:
            svc.state = "running"

    # ---- rate limit and faults

    def take_rate_token(self, key_id: str) -> float | None:
        """Count a request in the key's fixed window; None when allowed, else the wall-clock seconds to reset."""
        if self.rate_limit is None:
            return None
        limit, period = self.rate_limit
        real_period = period * self.time_scale
        now = time.monotonic()
        start, count = self._windows.get(key_id, (now, 0))
        if now - start >= real_period:
            start, count = now, 0
        if count >= limit:
            return self.wall_clock_reset(start + real_period - now)
        self._windows[key_id] = (start, count + 1)
        return None

    def wall_clock_reset(self, remaining: float) -> float:
        """The ``X-RateLimit-Reset`` value for ``remaining`` wall-clock seconds (whole seconds when uncompressed)."""
        if self.time_scale >= 1:
            return float(max(1, math.ceil(remaining)))
        return max(0.01, math.ceil(remaining * 100) / 100)

    def matching_faults(self, method: str, path: str) -> list[Fault]:
        """Latency faults that fire, then at most one terminal fault; each one that fires spends one count.

        A fault with a ``rate`` fires on a matching request when the RNG says so (one draw per fault that
        could apply), one without fires on every matching request.
        """
        chosen: list[Fault] = []
        terminal = False
        for fault in self.faults:
            if not fault.matches(method, path):
                continue
            if fault.kind != "latency" and terminal:
                continue
            if fault.rate is not None and self.rng.random() >= fault.rate:
                continue
            chosen.append(fault)
            terminal = terminal or fault.kind != "latency"
            fault.fired += 1
            if fault.count is not None:
                fault.count -= 1
        self.faults = [f for f in self.faults if not f.spent]
        return chosen

    def record(self, entry: dict[str, Any]) -> None:
        self._seq += 1
        entry["seq"] = self._seq
        self.requests.append(entry)


# ------------------------------------------------------------------------------------------ server

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data), status=status, content_type="application/json", headers=dict(headers or {})
    )


def _error_response(
    status: int, message: str, request_id: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = {"status": status, "requestId": request_id, "error": f"{error_code(status)}: {message}"}
    return _json(body, status, headers)


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    key_id, sep, secret = decoded.partition(":")
    return (key_id, secret) if sep else None


class ClickHouseCloudStandIn:
    """The stand-in as an aiohttp server in the running event loop: ``await start()``, ``url``, ``stop()``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        time_scale: float = 1.0,
        rate_limit: str | tuple[int, float] | None = DEFAULT_RATE_LIMIT,
        seed: Mapping[str, Any] | None = None,
        fault_seed: int | None = None,
    ) -> None:
        limit = (
            parse_rate_limit(rate_limit) if isinstance(rate_limit, str) or rate_limit is None else rate_limit
        )
        self.state = StandInState(time_scale=time_scale, rate_limit=limit, fault_seed=fault_seed)
        self.host = host
        self.port = port
        self._seed = seed
        self._runner: web.AppRunner | None = None
        if seed:
            self.state.load_seed(seed)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        app = self.build_app()
        # No aiohttp access log: the request log below carries the key ID and never the Authorization header.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        # Port 0 picks a free port: read back the one the socket got.
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ClickHouseCloudStandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- the application

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        v1 = "/v1/organizations/{org}"
        r = app.router
        r.add_get(v1, self._get_org)
        r.add_patch(v1, self._patch_org)
        r.add_get(f"{v1}/services", self._list_services)
        r.add_get(f"{v1}/services/{{svc}}", self._get_service)
        r.add_patch(f"{v1}/services/{{svc}}", self._patch_service)
        r.add_get(f"{v1}/services/{{svc}}/privateEndpointConfig", self._get_config)
        r.add_post(f"{v1}/services/{{svc}}/privateEndpoint", self._post_endpoint)
        c = "/_control"
        r.add_get(f"{c}/health", self._c_health)
        r.add_post(f"{c}/reset", self._c_reset)
        r.add_post(f"{c}/seed", self._c_seed)
        r.add_post(f"{c}/organizations", self._c_seed_org)
        r.add_get(f"{c}/organizations/{{org}}", self._c_get_org)
        r.add_post(f"{c}/keys", self._c_seed_key)
        r.add_post(f"{c}/services", self._c_seed_service)
        r.add_get(f"{c}/organizations/{{org}}/services/{{svc}}", self._c_get_service)
        r.add_delete(f"{c}/organizations/{{org}}/services/{{svc}}", self._c_delete_service)
        r.add_put(f"{c}/organizations/{{org}}/services/{{svc}}/state", self._c_set_state)
        r.add_get(f"{c}/state", self._c_state)
        r.add_get(f"{c}/faults", self._c_get_faults)
        r.add_put(f"{c}/faults", self._c_put_faults)
        r.add_post(f"{c}/faults", self._c_add_fault)
        r.add_delete(f"{c}/faults", self._c_clear_faults)
        r.add_get(f"{c}/rate-limit", self._c_get_rate_limit)
        r.add_put(f"{c}/rate-limit", self._c_put_rate_limit)
        r.add_get(f"{c}/requests", self._c_get_requests)
        r.add_delete(f"{c}/requests", self._c_clear_requests)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.path.startswith("/_control"):
            return await self._control_middleware(request, handler)
        st = self.state
        request_id = str(uuid.uuid4())
        creds = _basic_credentials(request)
        entry: dict[str, Any] = {
            "time": time.time(),
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "status": None,
            "key_id": creds[0] if creds else None,
            "fault": None,
            "request_id": request_id,
        }
        st.record(entry)
        try:
            response = await self._serve_v1(request, handler, request_id, creds, entry)
        except ApiError as e:
            response = _error_response(e.status, e.message, request_id, e.headers)
        except web.HTTPException as e:
            # aiohttp's own 404/405 for unknown routes, in the API's envelope.
            response = _error_response(e.status, e.reason, request_id)
        if entry["status"] is None and entry["fault"] != "drop":
            entry["status"] = response.status
        log.info("%s %s -> %s (key %s)", request.method, request.path_qs, entry["status"], entry["key_id"])
        return response

    async def _serve_v1(
        self,
        request: web.Request,
        handler: _Handler,
        request_id: str,
        creds: tuple[str, str] | None,
        entry: dict[str, Any],
    ) -> web.StreamResponse:
        st = self.state
        for fault in st.matching_faults(request.method, request.path):
            entry["fault"] = fault.kind
            if fault.kind == "latency":
                await asyncio.sleep(fault.seconds * st.time_scale)
            elif fault.kind == "drop":
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=500)  # never reaches the client: the socket is closed
            elif fault.kind == "rate_limit":
                raise ApiError(
                    429,
                    "Rate limit exceeded (injected)",
                    headers={
                        "X-RateLimit-Reset": _reset_header(st.wall_clock_reset(fault.reset * st.time_scale))
                    },
                )
            elif fault.body is not None:
                return web.Response(text=fault.body, status=fault.status, content_type="text/plain")
            else:
                raise ApiError(fault.status, "Injected fault")
        key = st.keys.get(creds[0]) if creds else None
        if creds is None or key is None or not secrets.compare_digest(key.secret, creds[1]):
            raise ApiError(
                401, "Invalid API key credentials: provide a valid key ID and secret with HTTP Basic auth"
            )
        reset = st.take_rate_token(key.id)
        if reset is not None:
            raise ApiError(
                429,
                "Rate limit exceeded: too many requests for this API key, retry after the window resets",
                headers={"X-RateLimit-Reset": _reset_header(reset)},
            )
        org_id = request.match_info.get("org")
        if org_id is not None and org_id != key.org_id:
            raise ApiError(403, f"API key is not authorized for organization {org_id}")
        if request.method in ("POST", "PATCH", "PUT", "DELETE") and key.role != "admin":
            raise ApiError(
                403, f"API key role '{key.role}' is read-only: this operation requires an admin key"
            )
        request[REQUEST_ID] = request_id
        return await handler(request)

    async def _control_middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as e:
            return _json({"error": e.message}, e.status)
        except (ValueError, KeyError, TypeError) as e:
            return _json({"error": f"{type(e).__name__}: {e}"}, 400)

    # ---- /v1 handlers

    def _ok(self, request: web.Request, result: Any) -> web.Response:
        return _json({"status": 200, "requestId": request[REQUEST_ID], "result": result})

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ApiError(400, f"Request body is not valid JSON: {e}") from e
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        return body

    @staticmethod
    def _id_list(value: Any, where: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 256 for v in value):
            raise ApiError(400, f"{where} must be an array of non-empty strings")
        return list(value)

    @staticmethod
    def _access_entries(value: Any, where: str) -> list[dict[str, str]]:
        """IpAccessListEntry items: ``source`` an IPv4 or IPv6 address or CIDR, ``description`` optional."""
        if value is None:
            return []
        if not isinstance(value, list):
            raise ApiError(400, f"{where} must be an array of {{source, description}} objects")
        entries = []
        for item in value:
            if not isinstance(item, dict) or set(item) - {"source", "description"}:
                raise ApiError(400, f"{where} must be an array of {{source, description}} objects")
            source, description = item.get("source"), item.get("description", "")
            if not isinstance(source, str) or not isinstance(description, str):
                raise ApiError(400, f"{where}: source and description must be strings")
            try:
                ipaddress.ip_network(source, strict=False)
            except ValueError:
                raise ApiError(400, f"{where}: {source!r} is not an IP address or CIDR") from None
            entries.append({"source": source, "description": description})
        return entries

    def _require_private_link(self, org: Organization) -> None:
        if org.tier == "basic":
            raise ApiError(
                403,
                "Private endpoints are not available for organizations on the Basic tier: "
                "upgrade to the Scale or Enterprise tier to use PrivateLink",
            )

    async def _get_org(self, request: web.Request) -> web.Response:
        return self._ok(request, self.state._org(request.match_info["org"]).api())

    async def _patch_org(self, request: web.Request) -> web.Response:
        org = self.state._org(request.match_info["org"])
        body = await self._body(request)
        unknown = set(body) - {"name", "privateEndpoints", "enableCoreDumps"}
        if unknown:
            raise ApiError(400, f"Unknown fields in request body: {', '.join(sorted(unknown))}")
        pes = body.get("privateEndpoints")
        if pes is not None:
            if not isinstance(pes, dict) or set(pes) - {"add", "remove"}:
                raise ApiError(400, "privateEndpoints must be an object with 'add' and/or 'remove'")
            removals = self._org_entries(pes.get("remove"), "privateEndpoints.remove")
            additions = self._org_entries(pes.get("add"), "privateEndpoints.add")
            if additions:
                self._require_private_link(org)
            for rm in removals:
                org.private_endpoints = [
                    pe
                    for pe in org.private_endpoints
                    if not (
                        pe["id"] == rm["id"]
                        and rm.get("cloudProvider", pe["cloudProvider"]) == pe["cloudProvider"]
                        and rm.get("region", pe["region"]) == pe["region"]
                    )
                ]
            for add in additions:
                if "cloudProvider" not in add or "region" not in add:
                    raise ApiError(400, "privateEndpoints.add entries need cloudProvider and region")
                org.register_endpoint(add["id"], add["cloudProvider"], add["region"], add.get("description"))
        if "name" in body:
            if not isinstance(body["name"], str) or not body["name"]:
                raise ApiError(400, "name must be a non-empty string")
            org.name = body["name"]
        return self._ok(request, org.api())

    @staticmethod
    def _org_entries(value: Any, where: str) -> list[dict[str, str]]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ApiError(400, f"{where} must be an array")
        out = []
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
                raise ApiError(400, f"{where} entries must be objects with a non-empty 'id'")
            if item.get("cloudProvider") is not None and item["cloudProvider"] not in PROVIDERS:
                raise ApiError(400, f"{where}: cloudProvider must be one of {', '.join(PROVIDERS)}")
            out.append({k: str(v) for k, v in item.items() if v is not None})
        return out

    async def _list_services(self, request: web.Request) -> web.Response:
        org = self.state._org(request.match_info["org"])
        wanted: list[tuple[str, str | None]] = []
        for f in request.query.getall("filter", []):
            m = re.fullmatch(r"tag:([^=]+)(?:=(.*))?", f)
            if not m:
                raise ApiError(400, f"Invalid filter {f!r}: only tag:KEY or tag:KEY=VALUE is supported")
            wanted.append((m.group(1), m.group(2)))
        result = []
        for svc in list(self.state.services.values()):
            if svc.org_id != org.id:
                continue
            if all(k in svc.tags and (v is None or svc.tags[k] == v) for k, v in wanted):
                self.state._advance(svc)
                result.append(svc.api(org))
        return self._ok(request, result)

    async def _get_service(self, request: web.Request) -> web.Response:
        org = self.state._org(request.match_info["org"])
        svc = self.state._service(org.id, request.match_info["svc"])
        return self._ok(request, svc.api(org))

    async def _get_config(self, request: web.Request) -> web.Response:
        org = self.state._org(request.match_info["org"])
        svc = self.state._service(org.id, request.match_info["svc"])
        self._require_private_link(org)
        if svc.state == "provisioning":
            svc.config_reads += 1
            if svc.provisioning_reads is not None and svc.config_reads > svc.provisioning_reads:
                svc.state = "running"
        if svc.state == "provisioning":
            return self._ok(request, {"endpointServiceId": "", "privateDnsHostname": ""})
        return self._ok(
            request,
            {"endpointServiceId": svc.endpoint_service_id, "privateDnsHostname": svc.private_dns_hostname},
        )

    async def _patch_service(self, request: web.Request) -> web.Response:
        org = self.state._org(request.match_info["org"])
        svc = self.state._service(org.id, request.match_info["svc"])
        body = await self._body(request)
        known = {
            "name",
            "ipAccessList",
            "privateEndpointIds",
            "releaseChannel",
            "endpoints",
            "transparentDataEncryptionKeyId",
            "tags",
            "enableCoreDumps",
        }
        unknown = set(body) - known
        if unknown:
            raise ApiError(400, f"Unknown fields in request body: {', '.join(sorted(unknown))}")
        pe = body.get("privateEndpointIds")
        if pe is not None:
            if not isinstance(pe, dict) or set(pe) - {"add", "remove"}:
                raise ApiError(400, "privateEndpointIds must be an object with 'add' and/or 'remove'")
            remove = self._id_list(pe.get("remove"), "privateEndpointIds.remove")
            add = self._id_list(pe.get("add"), "privateEndpointIds.add")
            self._require_private_link(org)
            if svc.state in TRANSITIONING_STATES:
                raise ApiError(
                    409, f"Service {svc.id} is {svc.state}: retry the change when the operation completes"
                )
            # The contract: remove runs before add, both idempotent.
            svc.private_endpoint_ids = [i for i in svc.private_endpoint_ids if i not in set(remove)]
            for endpoint_id in add:
                if endpoint_id not in svc.private_endpoint_ids:
                    svc.private_endpoint_ids.append(endpoint_id)
                org.register_endpoint(endpoint_id, svc.provider, svc.region, None)
        access = body.get("ipAccessList")
        if access is not None:
            if not isinstance(access, dict) or set(access) - {"add", "remove"}:
                raise ApiError(400, "ipAccessList must be an object with 'add' and/or 'remove'")
            gone = {e["source"] for e in self._access_entries(access.get("remove"), "ipAccessList.remove")}
            new = self._access_entries(access.get("add"), "ipAccessList.add")
            # As the spec says: remove runs before add. An entry is its source; adding one present again
            # keeps one entry (with the description given last).
            kept = [e for e in svc.ip_access_list if e["source"] not in gone]
            for entry in new:
                kept = [e for e in kept if e["source"] != entry["source"]] + [entry]
            svc.ip_access_list = kept
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not 1 <= len(name) <= 50:
                raise ApiError(400, "name must be a string of 1 to 50 characters")
            svc.name = name
        return self._ok(request, svc.api(org))

    async def _post_endpoint(self, request: web.Request) -> web.Response:
        org = self.state._org(request.match_info["org"])
        svc = self.state._service(org.id, request.match_info["svc"])
        body = await self._body(request)
        endpoint_id = body.get("id")
        description = body.get("description", "")
        if not isinstance(endpoint_id, str) or not endpoint_id:
            raise ApiError(
                400, "id is required: the private endpoint identifier, e.g. vpce-0123456789abcdef0"
            )
        if not isinstance(description, str):
            raise ApiError(400, "description must be a string")
        self._require_private_link(org)
        if svc.state in TRANSITIONING_STATES:
            raise ApiError(
                409, f"Service {svc.id} is {svc.state}: retry the change when the operation completes"
            )
        if endpoint_id not in svc.private_endpoint_ids:
            svc.private_endpoint_ids.append(endpoint_id)
        org.register_endpoint(endpoint_id, svc.provider, svc.region, description)
        return self._ok(
            request,
            {
                "id": endpoint_id,
                "description": description,
                "cloudProvider": svc.provider,
                "region": svc.region,
            },
        )

    # ---- control handlers

    @staticmethod
    async def _c_body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        return body

    async def _c_health(self, request: web.Request) -> web.Response:
        return _json({"ok": True})

    async def _c_reset(self, request: web.Request) -> web.Response:
        self.state.reset()
        return _json({"ok": True})

    async def _c_seed(self, request: web.Request) -> web.Response:
        return _json(self.state.load_seed(await self._c_body(request)))

    async def _c_seed_org(self, request: web.Request) -> web.Response:
        return _json(self.state.seed_org(**await self._c_body(request)).control())

    async def _c_get_org(self, request: web.Request) -> web.Response:
        return _json(self.state._org(request.match_info["org"]).control())

    async def _c_seed_key(self, request: web.Request) -> web.Response:
        return _json(self.state.seed_key(**await self._c_body(request)).control(with_secret=True))

    async def _c_seed_service(self, request: web.Request) -> web.Response:
        return _json(self.state.seed_service(**await self._c_body(request)).control())

    async def _c_get_service(self, request: web.Request) -> web.Response:
        return _json(self.state._service(request.match_info["org"], request.match_info["svc"]).control())

    async def _c_delete_service(self, request: web.Request) -> web.Response:
        self.state.delete_service(request.match_info["org"], request.match_info["svc"])
        return _json({"ok": True})

    async def _c_set_state(self, request: web.Request) -> web.Response:
        body = await self._c_body(request)
        svc = self.state.set_service_state(
            request.match_info["org"], request.match_info["svc"], body["state"]
        )
        return _json(svc.control())

    async def _c_state(self, request: web.Request) -> web.Response:
        return _json(self.state.snapshot())

    async def _c_get_faults(self, request: web.Request) -> web.Response:
        return _json({"faults": [f.to_dict() for f in self.state.faults]})

    async def _c_put_faults(self, request: web.Request) -> web.Response:
        body = await self._c_body(request)
        faults = [Fault.from_dict(f) for f in body.get("faults") or []]
        if body.get("seed") is not None:
            self.state.rng.seed(int(body["seed"]))
        self.state.faults = faults
        return await self._c_get_faults(request)

    async def _c_add_fault(self, request: web.Request) -> web.Response:
        self.state.faults.append(Fault.from_dict(await self._c_body(request)))
        return await self._c_get_faults(request)

    async def _c_clear_faults(self, request: web.Request) -> web.Response:
        self.state.faults.clear()
        return await self._c_get_faults(request)

    async def _c_get_rate_limit(self, request: web.Request) -> web.Response:
        return _json(self.state.rate_limit_dict())

    async def _c_put_rate_limit(self, request: web.Request) -> web.Response:
        body = await self._c_body(request)
        if body.get("enabled") is False:
            self.state.rate_limit = None
        else:
            limit, period = int(body["limit"]), float(body["period"])
            if limit <= 0 or period <= 0:
                raise ValueError("limit and period must be positive")
            self.state.rate_limit = (limit, period)
        self.state._windows.clear()
        return _json(self.state.rate_limit_dict())

    async def _c_get_requests(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        key_id = request.query.get("key_id")
        entries = [
            e for e in self.state.requests if e["seq"] > since and (key_id is None or e["key_id"] == key_id)
        ]
        return _json({"requests": entries})

    async def _c_clear_requests(self, request: web.Request) -> web.Response:
        self.state.requests.clear()
        return _json({"ok": True})


# ------------------------------------------------------------------------------------------ control client


class StandInControl:
    """A synchronous client of the control API (for tests and the sandbox; never used by the operator)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=f"{self.url}/_control", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StandInControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body, params=params)
        if response.status_code >= 400:
            raise RuntimeError(f"stand-in control {method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def health(self) -> bool:
        return bool(self._call("GET", "/health").get("ok"))

    def reset(self) -> None:
        self._call("POST", "/reset")

    def seed(self, document: Mapping[str, Any]) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("POST", "/seed", dict(document)))

    def seed_org(
        self, *, id: str | None = None, name: str | None = None, tier: str = "scale"
    ) -> dict[str, Any]:
        return cast(
            dict[str, Any], self._call("POST", "/organizations", {"id": id, "name": name, "tier": tier})
        )

    def seed_key(
        self, org_id: str, *, role: str = "admin", id: str | None = None, secret: str | None = None
    ) -> dict[str, Any]:
        body = {"org_id": org_id, "role": role, "id": id, "secret": secret}
        return cast(dict[str, Any], self._call("POST", "/keys", body))

    def seed_service(
        self,
        org_id: str,
        *,
        id: str | None = None,
        name: str | None = None,
        provider: str = "aws",
        region: str = "us-east-1",
        state: str = "running",
        endpoint_service_id: str | None = None,
        private_dns_hostname: str | None = None,
        provisioning_seconds: float | None = None,
        provisioning_reads: int | None = None,
        private_endpoint_ids: Sequence[str] = (),
        tags: Mapping[str, str | None] | None = None,
    ) -> dict[str, Any]:
        body = {
            "org_id": org_id,
            "id": id,
            "name": name,
            "provider": provider,
            "region": region,
            "state": state,
            "endpoint_service_id": endpoint_service_id,
            "private_dns_hostname": private_dns_hostname,
            "provisioning_seconds": provisioning_seconds,
            "provisioning_reads": provisioning_reads,
            "private_endpoint_ids": list(private_endpoint_ids),
            "tags": dict(tags or {}),
        }
        return cast(dict[str, Any], self._call("POST", "/services", body))

    def state(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", "/state"))

    def organization(self, org_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", f"/organizations/{org_id}"))

    def service(self, org_id: str, service_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", f"/organizations/{org_id}/services/{service_id}"))

    def set_service_state(self, org_id: str, service_id: str, state: str) -> dict[str, Any]:
        path = f"/organizations/{org_id}/services/{service_id}/state"
        return cast(dict[str, Any], self._call("PUT", path, {"state": state}))

    def delete_service(self, org_id: str, service_id: str) -> None:
        self._call("DELETE", f"/organizations/{org_id}/services/{service_id}")

    def faults(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._call("GET", "/faults")["faults"])

    def set_faults(
        self, faults: Sequence[Mapping[str, Any]], *, seed: int | None = None
    ) -> list[dict[str, Any]]:
        """Replace the fault list (see the module docstring for a fault's fields); ``seed`` reseeds the RNG."""
        body: dict[str, Any] = {"faults": [dict(f) for f in faults]}
        if seed is not None:
            body["seed"] = seed
        return cast(list[dict[str, Any]], self._call("PUT", "/faults", body)["faults"])

    def add_fault(
        self,
        kind: str,
        *,
        count: int | None = None,
        rate: float | None = None,
        method: str | None = None,
        path: str | None = None,
        seconds: float | None = None,
        status: int | None = None,
        body: str | None = None,
        reset: int | None = None,
    ) -> list[dict[str, Any]]:
        """Append a fault: by count (default 1), or by ``rate`` (until removed, or ``count`` times)."""
        fault: dict[str, Any] = {"kind": kind, "method": method, "path": path, "body": body}
        for name, value in (
            ("count", count),
            ("rate", rate),
            ("seconds", seconds),
            ("status", status),
            ("reset", reset),
        ):
            if value is not None:
                fault[name] = value
        return cast(list[dict[str, Any]], self._call("POST", "/faults", fault)["faults"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def rate_limit(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", "/rate-limit"))

    def set_rate_limit(self, limit: int | None, period: float = 10.0) -> dict[str, Any]:
        """Per-key fixed window of ``limit`` requests per ``period`` virtual seconds; None disables it."""
        body: dict[str, Any] = {"enabled": False} if limit is None else {"limit": limit, "period": period}
        return cast(dict[str, Any], self._call("PUT", "/rate-limit", body))

    def requests(self, *, since: int = 0, key_id: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"since": since}
        if key_id is not None:
            params["key_id"] = key_id
        return cast(list[dict[str, Any]], self._call("GET", "/requests", params=params)["requests"])

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")


# ------------------------------------------------------------------------------------------ command line


def load_seed_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a seed document is a mapping (see the module docstring)")
    return doc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clickhouse-privatelink-testkit standin clickhouse",
        description="ClickHouse Cloud API stand-in; its module docstring documents seeds and control API.",
    )
    p.add_argument("--seed", type=Path, help="YAML or JSON seed document")
    p.add_argument("--rate-limit", default=None, help="per-key fixed window, e.g. 10/10s (default), or 'off'")
    p.add_argument("--time-scale", type=float, default=None, help="wall-clock seconds per virtual second")
    p.add_argument("--fault-seed", type=int, default=None, help="seed of the RNG of faults with a rate")
    # Accepted here too: `standin clickhouse --port 0` puts them after the stand-in's name.
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--log-level", default="INFO")
    return p


def main(*, host: str, port: int, argv: list[str]) -> int:
    """Serve in the foreground until SIGTERM/SIGINT; print the URL once listening."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    seed = load_seed_file(args.seed) if args.seed else {}
    time_scale = args.time_scale if args.time_scale is not None else float(seed.get("time_scale", 1.0))
    rate_limit = (
        args.rate_limit if args.rate_limit is not None else str(seed.get("rate_limit", DEFAULT_RATE_LIMIT))
    )
    standin = ClickHouseCloudStandIn(
        host=args.host if args.host is not None else host,
        port=args.port if args.port is not None else port,
        time_scale=time_scale,
        rate_limit=rate_limit,
        seed=seed,
        fault_seed=args.fault_seed,
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await standin.start()
        print(f"clickhouse stand-in serving on http://{standin.host}:{standin.port}", flush=True)
        try:
            await stop.wait()
        finally:
            await standin.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


def _reset_header(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:.2f}"
