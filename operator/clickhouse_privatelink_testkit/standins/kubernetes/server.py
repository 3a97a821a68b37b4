"""A Kubernetes API server stand-in: enough of kube-apiserver for kopf, the Python client and kubectl.

Plain HTTP, no authentication, one process, objects in memory. The write semantics live in
``kube_store``, schemas and CEL in ``kube_schema``, table output in ``kube_table``; this module is
the HTTP surface (routing, discovery, OpenAPI, watch streams), the kubeconfig writer, the
``standin kubernetes`` command and a background-thread runner for tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import pathlib
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import yaml
from aiohttp import web

from clickhouse_privatelink_testkit.standins.kubernetes import protobuf as kube_protobuf
from clickhouse_privatelink_testkit.standins.kubernetes.errors import (
    ApiError,
    bad_request,
    expired,
    unsupported_media_type,
    warning_headers,
)
from clickhouse_privatelink_testkit.standins.kubernetes.resources import (
    ResourceType,
    api_resource_list,
    openapi_v3_document,
)
from clickhouse_privatelink_testkit.standins.kubernetes.selectors import (
    FieldRequirement,
    Requirement,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from clickhouse_privatelink_testkit.standins.kubernetes.store import (
    CLOSE,
    INITIAL_EVENTS_END,
    Event,
    Store,
    WriteOptions,
    check_patch_type,
)
from clickhouse_privatelink_testkit.standins.kubernetes.table import render_table

log = logging.getLogger(__name__)

KUBERNETES_VERSION = {
    "major": "1",
    "minor": "35",
    "gitVersion": "v1.35.0-standin",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-12-17T00:00:00Z",
    "goVersion": "go1.25.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}
JSON = "application/json"
# The random watch timeout of kube-apiserver (--min-request-timeout=1800 .. 2x); kopf reconnects anyway.
DEFAULT_WATCH_TIMEOUT = 1800.0
_BODY_TYPES = (JSON, "application/yaml", kube_protobuf.MEDIA_TYPE)
# kube-apiserver's cacher sends a watch's last bookmark this long before its timeout.
_PRE_TIMEOUT_BOOKMARK = 2.0

KOPF_PEERING_CRDS: list[dict[str, Any]] = [
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kopf.dev"},
        "spec": {
            "scope": scope,
            "group": "kopf.dev",
            "names": {"kind": kind, "plural": plural, "singular": plural[:-1]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                            },
                        }
                    },
                }
            ],
        },
    }
    for plural, kind, scope in (
        ("clusterkopfpeerings", "ClusterKopfPeering", "Cluster"),
        ("kopfpeerings", "KopfPeering", "Namespaced"),
    )
]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None, warnings: list[str] | None = None
) -> web.Response:
    """A JSON response; ``warnings`` are Warning header values, each sent as a header of its own."""
    pairs = [*(headers or {}).items(), *(("Warning", warning) for warning in warnings or ())]
    return web.Response(text=_dumps(body), status=status, content_type=JSON, headers=pairs or None)


def _error_response(error: ApiError) -> web.Response:
    return _json_response(error.status(), status=error.code, headers=error.headers, warnings=error.warnings)


def _table_version(accept: str) -> str | None:
    """The meta.k8s.io version of Table the client accepts, if it asks for a Table at all."""
    for part in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return params.get("v", "v1")
    return None


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


def _write_options(query: Mapping[str, str]) -> WriteOptions:
    dry_run = query.get("dryRun")
    if dry_run not in (None, "", "All"):
        raise bad_request(f"Invalid dry run value: {dry_run}")
    # Since 1.27 the server warns about dropped unknown fields unless told otherwise.
    validation = query.get("fieldValidation", "Warn")
    if validation not in ("", "Ignore", "Warn", "Strict"):
        raise bad_request(f"Invalid fieldValidation value: {validation}")
    return WriteOptions(dry_run=dry_run == "All", field_validation=validation)


class KubernetesEmulator:
    """The Kubernetes API stand-in server; ``await start()``, use ``url``, ``await stop()``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bookmark_interval: float = 10.0,
        history_limit: int = 10_000,
        kopf_peering_crds: bool = True,
        json_patch_test_failure_code: int = 422,
        namespaces: tuple[str, ...] = ("default", "kube-system", "kube-public", "kube-node-lease"),
    ) -> None:
        self.host = host
        self.port = port
        self.bookmark_interval = bookmark_interval
        self.store = Store(
            history_limit=history_limit, json_patch_test_failure_code=json_patch_test_failure_code
        )
        for name in namespaces:
            self.store.ensure_namespace(name)
        if kopf_peering_crds:
            for crd in KOPF_PEERING_CRDS:
                self.store.apply_crd(crd)
        self._runner: web.AppRunner | None = None
        self._watches_open = asyncio.Event()
        self._watches_open.set()

    @property
    def url(self) -> str:
        """Base URL of the running server (``http://host:port``)."""
        return f"http://{self.host}:{self.port}"

    def apply_crd(self, crd: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace a CRD directly (call before ``start`` or from the server's loop)."""
        return self.store.apply_crd(crd)

    async def start(self) -> None:
        """Start listening; ``port=0`` picks a free port, readable from ``url`` afterwards."""
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    def hold_watches(self) -> None:
        """End every watch stream and keep new ones waiting until ``release_watches`` (call on the loop).

        A client's reconnect gap made as long as a test needs: what changes meanwhile may outrun the
        history a reconnecting watch resumes from, as an etcd compaction does on a real cluster.
        """
        self._watches_open.clear()
        self.store.close_all_watches()

    def release_watches(self) -> None:
        """Let the watch requests held by ``hold_watches`` (and later ones) proceed."""
        self._watches_open.set()

    async def stop(self) -> None:
        """End all watch streams and stop serving."""
        self.store.close_all_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ routing

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._route(request)
        except ApiError as error:
            return _error_response(error)
        except Exception as exc:
            log.exception("stand-in failure on %s %s", request.method, request.path_qs)
            return _error_response(ApiError(500, "InternalError", f"Internal error occurred: {exc}"))

    async def _route(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v3", "/readyz", "/version"]
            return _json_response({"paths": paths})
        head = parts[0]
        if head in ("healthz", "livez", "readyz") and len(parts) == 1:
            return web.Response(text="ok", content_type="text/plain")
        if parts == ["version"]:
            return _json_response(KUBERNETES_VERSION)
        if head == "openapi":
            return self._openapi(request, parts[1:])
        if head == "api":
            if len(parts) == 1:
                return _json_response(
                    {
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [
                            {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}
                        ],
                    }
                )
            group, version, rest = "", parts[1], parts[2:]
        elif head == "apis":
            if len(parts) == 1:
                return _json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": self._groups()})
            if len(parts) == 2:
                for g in self._groups():
                    if g["name"] == parts[1]:
                        return _json_response({"kind": "APIGroup", "apiVersion": "v1", **g})
                raise self._not_served()
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise self._not_served()
        if (group, version) not in self.store.by_gv:
            raise self._not_served()
        if not rest:
            gv = f"{group}/{version}" if group else version
            types = sorted(self.store.by_gv[(group, version)].values(), key=lambda rt: rt.plural)
            return _json_response(api_resource_list(gv, [(rt, version) for rt in types]))
        return await self._resource_request(request, group, version, rest)

    def _not_served(self) -> ApiError:
        return ApiError(404, "NotFound", "the server could not find the requested resource", {})

    def _groups(self) -> list[dict[str, Any]]:
        versions: dict[str, list[str]] = {}
        for rt in self.store.types.values():
            if rt.group:
                for v in rt.versions:
                    if v not in versions.setdefault(rt.group, []):
                        versions[rt.group].append(v)
        groups = []
        for group in sorted(versions):
            entries = [
                {"groupVersion": f"{group}/{v}", "version": v} for v in sorted(versions[group], reverse=True)
            ]
            preferred = self._preferred_version(group) or entries[0]["version"]
            groups.append(
                {
                    "name": group,
                    "versions": entries,
                    "preferredVersion": {"groupVersion": f"{group}/{preferred}", "version": preferred},
                }
            )
        return groups

    def _preferred_version(self, group: str) -> str | None:
        for rt in self.store.types.values():
            if rt.group == group:
                return rt.storage_version
        return None

    def _openapi(self, request: web.Request, rest: list[str]) -> web.Response:
        if rest == ["v3"]:
            paths = {}
            for group, version in sorted(self.store.by_gv):
                key = f"apis/{group}/{version}" if group else f"api/{version}"
                digest = (
                    hashlib.sha256(f"{self.store.registry_revision}:{key}".encode()).hexdigest()[:16].upper()
                )
                paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
            return _json_response({"paths": paths})
        if len(rest) >= 3 and rest[0] == "v3":
            if rest[1] == "api" and len(rest) == 3:
                group, version = "", rest[2]
            elif rest[1] == "apis" and len(rest) == 4:
                group, version = rest[2], rest[3]
            else:
                raise self._not_served()
            types = self.store.by_gv.get((group, version))
            if types is None:
                raise self._not_served()
            gv = f"{group}/{version}" if group else version
            doc = openapi_v3_document(
                gv, [(rt, version) for rt in types.values()], KUBERNETES_VERSION["gitVersion"]
            )
            return _json_response(doc, headers={"Cache-Control": "no-cache, private"})
        # No OpenAPI v2: kubectl then falls back to its compiled-in types (built-ins) or merge patch (CRs).
        raise self._not_served()

    # ------------------------------------------------------------------ resources

    async def _resource_request(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        namespace: str | None = None
        is_ns_subresource = group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")
        if rest[0] == "namespaces" and len(rest) >= 3 and not is_ns_subresource:
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise self._not_served()
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        rt = self.store.resource(group, version, plural)
        if rt is None:
            raise self._not_served()
        if (namespace is not None and not rt.namespaced) or (
            rt.namespaced and name is not None and namespace is None
        ):
            raise self._not_served()
        if subresource is not None and not (subresource == "status" and rt.has_status(version)):
            raise self._not_served()
        query = request.query
        method = request.method
        if name is None:
            if method == "GET":
                if _truthy(query.get("watch")):
                    return await self._watch(request, rt, version, namespace)
                return self._list(request, rt, version, namespace)
            if method == "POST":
                if rt.namespaced and namespace is None:
                    raise ApiError(
                        405,
                        "MethodNotAllowed",
                        "the server does not allow this method on the requested resource",
                    )
                opts = _write_options(query)
                body = await self._body(request)
                result = self.store.create(rt, version, namespace or "", body, opts)
                return self._object_response(request, rt, version, result.obj, 201, opts)
            if method == "DELETE":
                opts = _write_options(query)
                labels = parse_label_selector(query.get("labelSelector"))
                fields = parse_field_selector(query.get("fieldSelector"), rt.field_selectors())
                items = self.store.delete_collection(rt, namespace, labels, fields, opts)
                return _json_response(
                    {
                        "kind": rt.list_kind,
                        "apiVersion": rt.api_version(version),
                        "metadata": {"resourceVersion": str(self.store.rv)},
                        "items": [self.store.present(rt, version, o) for o in items],
                    }
                )
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        ns = namespace or ""
        if method == "GET":
            obj = self.store.must_get(rt, ns, name)
            return self._object_response(request, rt, version, obj, 200, None)
        if method == "PUT":
            opts = _write_options(query)
            body = await self._body(request)
            result = self.store.update(rt, version, ns, name, body, opts, subresource=subresource)
            return self._object_response(
                request, rt, version, result.obj, 201 if result.created else 200, opts
            )
        if method == "PATCH":
            opts = _write_options(query)
            content_type = request.content_type
            check_patch_type(rt, content_type)
            raw = await request.text()
            try:
                patch = (
                    yaml.safe_load(raw) if content_type == "application/apply-patch+yaml" else json.loads(raw)
                )
            except (ValueError, yaml.YAMLError) as exc:
                raise bad_request(f"error decoding patch: {exc}") from exc
            result = self.store.patch(
                rt, version, ns, name, content_type, patch, opts, subresource=subresource
            )
            return self._object_response(
                request, rt, version, result.obj, 201 if result.created else 200, opts
            )
        if method == "DELETE":
            opts = _write_options(query)
            options = await self._body(request, optional=True) or {}
            if not isinstance(options, dict):
                raise bad_request("DeleteOptions must be an object")
            if "propagationPolicy" in query:
                options.setdefault("propagationPolicy", query["propagationPolicy"])
            result = self.store.delete(rt, ns, name, options, opts)
            if not result.deleted:
                # Held by finalizers: 200 with the object, 202 only when orphanDependents=false asked for it.
                code = 202 if options.get("orphanDependents") is False else 200
                return self._object_response(request, rt, version, result.obj, code, opts)
            if rt.kind in ("Namespace", "CustomResourceDefinition"):
                return self._object_response(request, rt, version, result.obj, 200, opts)
            # Objects deleted at once (custom resources too) answer with a Success Status, as the registries do.
            meta = result.obj["metadata"]
            details = {"name": name, "kind": rt.plural, "uid": meta.get("uid")}
            if rt.group:
                details["group"] = rt.group
            return _json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": details,
                }
            )
        raise ApiError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )

    async def _body(self, request: web.Request, *, optional: bool = False) -> Any:
        if request.content_type == kube_protobuf.MEDIA_TYPE:
            return kube_protobuf.decode(await request.read())
        if request.content_type not in (
            JSON,
            "application/yaml",
            "application/x-yaml",
            "application/octet-stream",
            "",
        ):
            raise unsupported_media_type(_BODY_TYPES)
        raw = await request.text()
        if not raw.strip():
            if optional:
                return None
            raise bad_request("the request body is empty")
        try:
            if request.content_type in ("application/yaml", "application/x-yaml"):
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the object provided is unrecognized: {exc}") from exc

    def _object_response(
        self,
        request: web.Request,
        rt: ResourceType,
        version: str,
        obj: dict[str, Any],
        status: int,
        opts: WriteOptions | None,
    ) -> web.Response:
        warnings = warning_headers(opts.warnings) if opts is not None else []
        table_version = _table_version(request.headers.get("Accept", ""))
        if table_version is not None and request.method == "GET":
            table = render_table(
                rt.columns(version),
                [self.store.present(rt, version, obj)],
                resource_version=obj["metadata"].get("resourceVersion", ""),
                include_object=request.query.get("includeObject", "Metadata"),
            )
            table["apiVersion"] = f"meta.k8s.io/{table_version}"
            return _json_response(table, status, warnings=warnings)
        return _json_response(self.store.present(rt, version, obj), status, warnings=warnings)

    def _selectors(
        self, request: web.Request, rt: ResourceType
    ) -> tuple[list[Requirement], list[FieldRequirement]]:
        return (
            parse_label_selector(request.query.get("labelSelector")),
            parse_field_selector(request.query.get("fieldSelector"), rt.field_selectors()),
        )

    def _list(
        self, request: web.Request, rt: ResourceType, version: str, namespace: str | None
    ) -> web.Response:
        labels, fields = self._selectors(request, rt)
        try:
            limit = int(request.query.get("limit") or 0)
        except ValueError as exc:
            raise bad_request(f"invalid limit: {exc}") from exc
        items, token, remaining = self.store.list_objects(
            rt,
            namespace,
            labels,
            fields,
            limit=max(limit, 0),
            continue_token=request.query.get("continue", ""),
        )
        rv = str(self.store.rv)
        presented = [self.store.present(rt, version, o) for o in items]
        table_version = _table_version(request.headers.get("Accept", ""))
        if table_version is not None:
            table = render_table(
                rt.columns(version),
                presented,
                resource_version=rv,
                include_object=request.query.get("includeObject", "Metadata"),
                continue_token=token,
            )
            table["apiVersion"] = f"meta.k8s.io/{table_version}"
            return _json_response(table)
        meta: dict[str, Any] = {"resourceVersion": rv}
        if token:
            meta["continue"] = token
            meta["remainingItemCount"] = remaining
        return _json_response(
            {
                "kind": rt.list_kind,
                "apiVersion": rt.api_version(version),
                "metadata": meta,
                "items": presented,
            }
        )

    # ------------------------------------------------------------------ watch

    async def _watch(
        self, request: web.Request, rt: ResourceType, version: str, namespace: str | None
    ) -> web.StreamResponse:
        await self._watches_open.wait()
        labels, fields = self._selectors(request, rt)
        query = request.query
        try:
            timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError as exc:
            raise bad_request(f"invalid timeoutSeconds: {exc}") from exc
        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        send_initial = _truthy(query.get("sendInitialEvents"))
        since = query.get("resourceVersion", "")
        table_version = _table_version(request.headers.get("Accept", ""))

        # Subscribe first: no await happens until the replay below is computed, so nothing is missed.
        queue = self.store.subscribe(rt.gr)
        try:
            initial: list[dict[str, Any]] = []
            gone: ApiError | None = None
            if since in ("", "0") or send_initial:
                for obj in self.store.iter_objects(rt, namespace):
                    if labels_match(labels, obj) and fields_match(fields, obj):
                        initial.append({"type": "ADDED", "object": obj})
                if send_initial:
                    marker = self._bookmark(rt, version)
                    marker["metadata"]["annotations"] = {INITIAL_EVENTS_END: "true"}
                    initial.append({"type": "BOOKMARK", "object": marker})
            else:
                try:
                    start = int(since)
                except ValueError as exc:
                    raise bad_request(f"invalid resource version: {since!r}") from exc
                replay = self.store.events_since(rt.gr, start)
                if replay is None:
                    gone = expired(
                        f"too old resource version: {start} ({self.store.compacted.get(rt.gr, 0)})"
                    )
                else:
                    for event in replay:
                        translated = self._translate(event, namespace, labels, fields)
                        if translated is not None:
                            initial.append(translated)

            response = web.StreamResponse(
                status=200, headers={"Content-Type": JSON, "Cache-Control": "no-cache"}
            )
            response.enable_chunked_encoding()
            await response.prepare(request)
            writer = _WatchWriter(response, self.store, rt, version, table_version, request.query)
            if gone is not None:
                await writer.write({"type": "ERROR", "object": gone.status()})
                return response
            for item in initial:
                await writer.write(item)
            await self._stream(writer, queue, namespace, labels, fields, timeout, bookmarks, rt, version)
            return response
        finally:
            self.store.unsubscribe(rt.gr, queue)

    async def _stream(
        self,
        writer: _WatchWriter,
        queue: asyncio.Queue[Event],
        namespace: str | None,
        labels: list[Requirement],
        fields: list[FieldRequirement],
        lifetime: float,
        bookmarks: bool,
        rt: ResourceType,
        version: str,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + lifetime

        def next_bookmark(now: float) -> float:
            # Every bookmark_interval, and once just before the timeout (the cacher's nextBookmarkTime).
            due = now + self.bookmark_interval
            if deadline - _PRE_TIMEOUT_BOOKMARK > now:
                due = min(due, deadline - _PRE_TIMEOUT_BOOKMARK)
            return due if bookmarks and due < deadline else deadline

        bookmark_at = next_bookmark(loop.time())
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while True:
                now = loop.time()
                if now >= deadline:
                    return
                if now >= bookmark_at:
                    await writer.write({"type": "BOOKMARK", "object": self._bookmark(rt, version)})
                    bookmark_at = next_bookmark(now)
                    continue
                try:
                    event = await asyncio.wait_for(queue.get(), min(bookmark_at, deadline) - now)
                except TimeoutError:
                    continue
                if event is CLOSE:
                    return
                translated = self._translate(event, namespace, labels, fields)
                if translated is not None:
                    await writer.write(translated)

    def _bookmark(self, rt: ResourceType, version: str) -> dict[str, Any]:
        # Every event up to the current resourceVersion is already queued to this watcher.
        return {
            "kind": rt.kind,
            "apiVersion": rt.api_version(version),
            "metadata": {"resourceVersion": str(self.store.rv)},
        }

    @staticmethod
    def _translate(
        event: Event, namespace: str | None, labels: list[Requirement], fields: list[FieldRequirement]
    ) -> dict[str, Any] | None:
        """The event as this watcher sees it: objects leaving its selector are DELETED, entering ADDED."""
        obj = event.obj
        if namespace is not None and obj["metadata"].get("namespace") != namespace:
            return None

        def matches(o: Mapping[str, Any]) -> bool:
            return labels_match(labels, o) and fields_match(fields, o)

        now = matches(obj)
        if event.type == "MODIFIED" and event.old is not None:
            before = matches(event.old)
            if before and not now:
                return {"type": "DELETED", "object": obj}
            if now and not before:
                return {"type": "ADDED", "object": obj}
        return {"type": event.type, "object": obj} if now else None


class _WatchWriter:
    """Writes watch events as JSON lines, as objects or Table rows (``kubectl get -w``)."""

    def __init__(
        self,
        response: web.StreamResponse,
        store: Store,
        rt: ResourceType,
        version: str,
        table_version: str | None,
        query: Mapping[str, str],
    ) -> None:
        self.response = response
        self.store = store
        self.rt = rt
        self.version = version
        self.table_version = table_version
        self.include_object = query.get("includeObject", "Metadata")
        self.first_table = True

    async def write(self, event: dict[str, Any]) -> None:
        obj = event["object"]
        if obj.get("kind") != "Status" and event["type"] != "BOOKMARK":
            obj = self.store.present(self.rt, self.version, obj)
            if self.table_version is not None:
                obj = render_table(
                    self.rt.columns(self.version),
                    [obj],
                    resource_version=obj["metadata"].get("resourceVersion", ""),
                    include_object=self.include_object,
                    with_definitions=self.first_table,
                )
                obj["apiVersion"] = f"meta.k8s.io/{self.table_version}"
                self.first_table = False
        await self.response.write((_dumps({"type": event["type"], "object": obj}) + "\n").encode())


# ---------------------------------------------------------------------- kubeconfig, CLI, thread


def write_kubeconfig(path: pathlib.Path, url: str, *, namespace: str = "default") -> None:
    """Write a kubeconfig whose current context points at ``url`` (plain HTTP, a dummy token)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "standin", "cluster": {"server": url}}],
        "users": [{"name": "standin", "user": {"token": "standin"}}],
        "contexts": [
            {"name": "standin", "context": {"cluster": "standin", "user": "standin", "namespace": namespace}}
        ],
        "current-context": "standin",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def load_crd_file(path: pathlib.Path) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions in a (multi-document) YAML file."""
    docs = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    return [d for d in docs if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clickhouse-privatelink-testkit standin kubernetes", description=__doc__
    )
    # `standin kubernetes --port 0` hands --host/--port to us (argparse.REMAINDER): accept them here too.
    parser.add_argument("--host", default=None, help="listen address (overrides the standin command's)")
    parser.add_argument("--port", type=int, default=None, help="listen port, 0 for any free one")
    parser.add_argument(
        "--kubeconfig", type=pathlib.Path, help="write a kubeconfig pointing at the server here"
    )
    parser.add_argument("--namespace", default="default", help="namespace of the kubeconfig's context")
    parser.add_argument("--crd", type=pathlib.Path, action="append", default=[], help="CRD YAML to pre-load")
    parser.add_argument(
        "--bookmark-interval", type=float, default=10.0, help="seconds between watch bookmarks"
    )
    parser.add_argument("--history-limit", type=int, default=10_000, help="watch events kept per resource")
    return parser


def main(*, host: str, port: int, argv: list[str]) -> int:
    """Serve in the foreground until SIGTERM/SIGINT (the ``standin kubernetes`` command)."""
    args = _parser().parse_args([a for a in argv if a != "--"])
    host = args.host if args.host is not None else host
    port = args.port if args.port is not None else port

    async def serve() -> None:
        emulator = KubernetesEmulator(
            host=host, port=port, bookmark_interval=args.bookmark_interval, history_limit=args.history_limit
        )
        for path in args.crd:
            for crd in load_crd_file(path):
                emulator.apply_crd(crd)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await emulator.start()
        if args.kubeconfig is not None:
            write_kubeconfig(args.kubeconfig, emulator.url, namespace=args.namespace)
        print(f"kubernetes stand-in serving on {emulator.url}", flush=True)
        try:
            await stop.wait()
        finally:
            await emulator.stop()

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve())
    return 0


T = TypeVar("T")


class EmulatorThread:
    """Runs a ``KubernetesEmulator`` on its own event loop in a daemon thread (for sync tests).

    The server listens on TCP, so other processes (kubectl, a kopf operator) reach it at ``url``.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.emulator: KubernetesEmulator | None = None

    @property
    def url(self) -> str:
        assert self.emulator is not None, "not started"
        return self.emulator.url

    def start(self) -> KubernetesEmulator:
        """Start the thread and the server; returns once the server listens."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self.emulator = KubernetesEmulator(**self._kwargs)
                loop.run_until_complete(self.emulator.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.emulator.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="kubernetes-standin", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        assert self.emulator is not None
        return self.emulator

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (the store is not thread-safe) and return its result."""
        return self.run(self._wrap(fn))

    @staticmethod
    async def _wrap(fn: Callable[[], T]) -> T:
        return fn()

    def run(self, coro: Awaitable[T]) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(_as_coroutine(coro), self._loop)
        return future.result(30)

    def stop(self) -> None:
        """Stop the server and join the thread."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._thread = None

    def __enter__(self) -> KubernetesEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable
