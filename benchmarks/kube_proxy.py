"""A counting pass-through proxy in front of the Kubernetes API stand-in (which keeps no access log).

The operator is given a kubeconfig pointing here; every request is forwarded unchanged (watches are
streamed chunk by chunk) and counted by method and kind of object, so the benchmark can tell how many
Kubernetes writes (POST, PUT, PATCH, DELETE) the operator made in each phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Hop-by-hop headers and the ones the proxy's own framing replaces.
_SKIP_REQUEST = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding"})
_SKIP_RESPONSE = frozenset({"content-length", "connection", "keep-alive", "transfer-encoding"})


def kind_of(path: str) -> str:
    """What a request path addresses: events, the resource's status, the resource, or something else."""
    parts = [p for p in path.split("/") if p]
    if "events" in parts:
        return "events"
    if "clickhouseprivatelinks" in parts:
        return "status" if parts[-1] == "status" else "clickhouseprivatelinks"
    if "secrets" in parts:
        return "secrets"
    if "leases" in parts or "clusterkopfpeerings" in parts or "kopfpeerings" in parts:
        return "peering"
    return "other"


class CountingProxy:
    """Runs on its own event loop in a daemon thread; :meth:`counts` is safe from any thread."""

    def __init__(self, upstream: str, *, write_log: Path | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        # Every write's method, path and body, one JSON line each (to tell what a phase's writes were).
        self._write_log = write_log.open("a", encoding="utf-8") if write_log is not None else None
        self.url = ""
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def counts(self) -> dict[str, int]:
        """Requests so far, keyed ``METHOD kind`` (e.g. ``PATCH clickhouseprivatelinks``)."""
        with self._lock:
            return dict(self._counts)

    def start(self) -> None:
        ready: Future[str] = Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                ready.set_result(loop.run_until_complete(self._start()))
            except Exception as exc:
                ready.set_exception(exc)
                return
            loop.run_forever()
            loop.run_until_complete(self._stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="kube-proxy", daemon=True)
        self._thread.start()
        self.url = ready.result(timeout=30)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=15)
            self._loop = None

    async def _start(self) -> str:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            auto_decompress=False,
            connector=aiohttp.TCPConnector(limit=0),
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        if self._write_log is not None:
            self._write_log.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        with self._lock:
            self._counts[f"{request.method} {kind_of(request.path)}"] += 1
            if self._write_log is not None and request.method in WRITE_METHODS:
                line = {"t": time.time(), "method": request.method, "path": request.path}
                line["body"] = (
                    "(redacted)" if kind_of(request.path) == "secrets" else body.decode("utf-8", "replace")
                )
                self._write_log.write(json.dumps(line) + "\n")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP_REQUEST}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body if body else None,
            allow_redirects=False,
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                reason=upstream.reason,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _SKIP_RESPONSE},
            )
            await response.prepare(request)
            # The client may go away mid-stream (a watch it closed): that ends the forwarding, quietly.
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            return response
