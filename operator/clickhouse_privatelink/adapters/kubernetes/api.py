"""Kubernetes API access without the Kubernetes client library: kopf's login, a holder, and plain GETs.

kopf logs in with its built-in ``login_with_service_account`` / ``login_with_kubeconfig`` (no client
library needed); the operator's ``@kopf.on.login()`` handler (``login.py``) keeps the resulting
``kopf.ConnectionInfo`` in a ``ConnectionHolder`` (one per operator process: wiring/state.py). ``get_json``
and ``merge_patch`` then send one request with httpx using that connection: server, CA (path or data),
insecure flag, bearer token, basic auth, client certificate and key, proxy. Outside kopf (tests, tools) a
holder logs in by itself on first use.

Neither the token nor any response body ever goes into an exception or a log line.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import weakref
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import kopf

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class KubernetesApiError(Exception):
    """The Kubernetes API answered with an error (``status``) or could not be reached (``status`` 0)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def login(settings: kopf.OperatorSettings | None = None) -> kopf.ConnectionInfo | None:
    """Credentials as kubectl finds them: $KUBECONFIG, else the pod's service account, else ~/.kube/config.

    Only kopf's own minimal logins are used (no exec plugins or auth-provider refreshes).
    """
    settings = settings or kopf.OperatorSettings()
    info: kopf.ConnectionInfo | None
    if os.environ.get("KUBECONFIG"):
        info = kopf.login_with_kubeconfig(settings=settings)
    elif os.path.exists(SERVICE_ACCOUNT_TOKEN):
        info = kopf.login_with_service_account(settings=settings)
    else:
        info = kopf.login_with_kubeconfig(settings=settings)  # ~/.kube/config when it exists, else None
    return info


class ConnectionHolder:
    """The connection kopf logged in with; logs in by itself when used before (or without) kopf."""

    def __init__(self) -> None:
        self._info: kopf.ConnectionInfo | None = None
        self._ssl: ssl.SSLContext | None = None
        # One pooled client per event loop for frequent writes (a client costs milliseconds to make).
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def set(self, info: kopf.ConnectionInfo | None) -> None:
        self._info = info
        self._ssl = None
        self._clients = weakref.WeakKeyDictionary()

    def pooled(self, request_timeout: float) -> httpx.AsyncClient:
        """This loop's kept client for the current connection (made again after a new login)."""
        info, context = self.get()
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = _client(info, context, request_timeout)
        return client

    @property
    def info(self) -> kopf.ConnectionInfo | None:
        return self._info

    def get(self, *, refresh: bool = False) -> tuple[kopf.ConnectionInfo, ssl.SSLContext]:
        """The connection and its SSL context; ``refresh`` logs in again (a rotated token, after a 401).

        Synchronous on purpose (a few small file reads): no other task can interleave.
        """
        if self._info is None or refresh:
            try:
                self.set(login())
            except (kopf.LoginError, OSError) as exc:
                raise KubernetesApiError(f"cannot log in to the Kubernetes API: {exc}", status=0) from None
            except (KeyError, TypeError, ValueError) as exc:  # a kubeconfig without the named context/user
                raise KubernetesApiError(
                    f"cannot log in to the Kubernetes API: unusable kubeconfig ({type(exc).__name__})",
                    status=0,
                ) from None
        if self._info is None:
            raise KubernetesApiError(
                "no Kubernetes credentials: set KUBECONFIG or run in a pod with a service account", status=0
            )
        if self._ssl is None:
            self._ssl = self._info.as_ssl_context()
        return self._info, self._ssl


def _status_message(response: httpx.Response) -> str:
    """The ``message`` of an error answer's Status object (never the body of anything else)."""
    try:
        body: Any = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and body.get("kind") == "Status":
        return str(body.get("message", ""))[:300]
    return ""


def _client(info: kopf.ConnectionInfo, context: ssl.SSLContext, request_timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=info.server.rstrip("/"),
        verify=context,
        proxy=info.proxy_url or None,
        trust_env=info.trust_env,
        timeout=request_timeout,
    )


async def _send(
    holder: ConnectionHolder,
    send: Callable[[httpx.AsyncClient, dict[str, str]], Awaitable[httpx.Response]],
    *,
    refresh: bool,
    request_timeout: float,
    pooled: bool = False,
) -> httpx.Response:
    """One request with the connection kopf logged in with (``send`` names the verb and the path)."""
    info, context = holder.get(refresh=refresh)
    try:
        if pooled:
            return await send(holder.pooled(request_timeout), dict(info.as_http_headers()))
        async with _client(info, context, request_timeout) as http:
            return await send(http, dict(info.as_http_headers()))
    except httpx.HTTPError as exc:
        raise KubernetesApiError(
            f"cannot reach the Kubernetes API at {info.server}: {type(exc).__name__}", status=0
        ) from None


def _failed(verb: str, path: str, response: httpx.Response) -> KubernetesApiError:
    detail = _status_message(response)
    return KubernetesApiError(
        f"{verb} {path}: {response.status_code} {response.reason_phrase}" + (f": {detail}" if detail else ""),
        status=response.status_code,
    )


async def get_json(
    path: str, *, connection: ConnectionHolder, request_timeout: float = 10.0
) -> dict[str, Any] | None:
    """GET ``path`` (e.g. /api/v1/namespaces/ns/secrets/name): the object, None when it is not found.

    A 401 logs in once more and retries (a rotated service-account token); other errors raise
    ``KubernetesApiError`` with the status and the API's own message.
    """
    for attempt in (1, 2):
        response = await _send(
            connection,
            lambda http, auth: http.get(path, headers={"Accept": "application/json", **auth}),
            refresh=attempt == 2,
            request_timeout=request_timeout,
            pooled=True,  # Secrets: a thousand first passes read them (a client costs milliseconds to make)
        )
        if response.status_code == 401 and attempt == 1:
            continue
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise _failed("GET", path, response)
        body: Any = response.json()
        if not isinstance(body, dict):
            raise KubernetesApiError(f"GET {path}: the answer is not an object", status=response.status_code)
        return body
    raise AssertionError("unreachable")  # pragma: no cover


async def merge_patch(
    path: str,
    body: dict[str, Any],
    *,
    connection: ConnectionHolder,
    request_timeout: float = 10.0,
) -> None:
    """PATCH ``path`` with a JSON merge patch; a 404 (the object is gone) is not an error."""
    response = await _send(
        connection,
        lambda http, auth: http.patch(
            path, headers={"Content-Type": "application/merge-patch+json", **auth}, json=body
        ),
        refresh=False,
        request_timeout=request_timeout,
        pooled=True,  # status intents and annotations: one per resource's first pass, a thousand at once
    )
    if response.status_code >= 400 and response.status_code != 404:
        raise _failed("PATCH", path, response)


def custom_object_path(group: str, version: str, namespace: str, plural: str, name: str) -> str:
    """The REST path of a namespaced custom object."""
    return f"/apis/{group}/{version}/namespaces/{quote(namespace, safe='')}/{plural}/{quote(name, safe='')}"


def object_path(namespace: str, plural: str, name: str) -> str:
    """The REST path of a namespaced core/v1 object."""
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/{plural}/{quote(name, safe='')}"
