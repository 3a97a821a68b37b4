"""The in-memory object store of the Kubernetes stand-in, with kube-apiserver's write semantics.

Everything here is synchronous and runs on the server's event loop: a write and the notification
of every watcher happen without an ``await`` in between, so a watch never misses an event and the
resource version seen in a bookmark covers every event already queued.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import random
import re
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from clickhouse_privatelink_testkit.standins.kubernetes import schema as kube_schema
from clickhouse_privatelink_testkit.standins.kubernetes.crd_validation import validate_crd
from clickhouse_privatelink_testkit.standins.kubernetes.errors import (
    STALE,
    ApiError,
    FieldError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    method_not_allowed,
    not_found,
    strict_patch_error,
    unsupported_media_type,
    warning_headers,
)
from clickhouse_privatelink_testkit.standins.kubernetes.patch import (
    JsonPatchTestFailed,
    clone,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from clickhouse_privatelink_testkit.standins.kubernetes.resources import (
    CRD_CLEANUP_FINALIZER,
    ResourceType,
    builtin_types,
    type_from_crd,
)
from clickhouse_privatelink_testkit.standins.kubernetes.selectors import (
    FieldRequirement,
    Requirement,
    fields_match,
    labels_match,
)

GR = tuple[str, str]
CRD_GR: GR = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACES_GR: GR = ("", "namespaces")
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
CR_PATCH_TYPES = tuple(t for t in PATCH_TYPES if t != "application/strategic-merge-patch+json")

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apiserver's SimpleNameGenerator alphabet
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_OBJECT_META_FIELDS = frozenset(
    {
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
        "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
        "ownerReferences", "finalizers", "managedFields",
    }
)  # fmt: skip
_SERVER_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")
# Top-level fields of the built-in kinds, to prune and report unknown ones like the typed decoder does.
_BUILTIN_FIELDS = {
    "Secret": {"data", "stringData", "type", "immutable"},
    "ConfigMap": {"data", "binaryData", "immutable"},
    "Namespace": {"spec", "status"},
    "Lease": {"spec"},
}


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Event:
    """One change of one object; ``old`` is the previous state of a MODIFIED object."""

    rv: int
    type: str
    obj: dict[str, Any]
    old: dict[str, Any] | None = None


CLOSE = Event(0, "CLOSE", {})


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_validation: str = ""  # "", "Ignore", "Warn" or "Strict"
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Decoded:
    """What decoding a write's whole object found: the unknown fields' paths, and the patched object (None
    for a PUT)."""

    unknown: list[str]
    patched: dict[str, Any] | None


@dataclass
class WriteResult:
    obj: dict[str, Any]
    created: bool = False
    deleted: bool = False  # gone from the store (not just marked for deletion)


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _without_rv(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    meta = dict(_meta(obj))
    meta.pop("resourceVersion", None)
    out["metadata"] = meta
    return out


def _content(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What generation tracks: everything except metadata (and apiVersion, which only versions differ by)."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}


class Store:
    """Objects by resource, namespace and name; the resource-version counter; event history; watchers."""

    def __init__(self, *, history_limit: int = 10_000, json_patch_test_failure_code: int = 422) -> None:
        self.rv = 0
        self.history_limit = history_limit
        self.json_patch_test_failure_code = json_patch_test_failure_code
        self.types: dict[GR, ResourceType] = {}
        self.by_gv: dict[tuple[str, str], dict[str, ResourceType]] = {}
        self.objects: dict[GR, dict[str, dict[str, dict[str, Any]]]] = {}
        self.history: dict[GR, deque[Event]] = {}
        self.compacted: dict[GR, int] = {}
        self.watchers: dict[GR, set[asyncio.Queue[Event]]] = {}
        self.registry_revision = 0
        for rt in builtin_types():
            self._register(rt)

    # ---------------------------------------------------------------- registry

    def _register(self, rt: ResourceType) -> None:
        previous = self.types.get(rt.gr)
        self.types[rt.gr] = rt
        self.objects.setdefault(rt.gr, {})
        self.history.setdefault(rt.gr, deque())
        # The watch window of a new type starts now, as a new watch cache's does: older versions are 410.
        self.compacted.setdefault(rt.gr, self.rv)
        self.watchers.setdefault(rt.gr, set())
        if previous is not None and previous.namespaced != rt.namespaced:
            self._drop_all(rt.gr)
        self._rebuild_index()

    def _unregister(self, gr: GR) -> None:
        if gr not in self.types:
            return
        self._drop_all(gr)
        for queue in self.watchers.pop(gr, set()):
            queue.put_nowait(CLOSE)
        del self.types[gr]
        self.objects.pop(gr, None)
        self.history.pop(gr, None)
        self.compacted.pop(gr, None)
        self._rebuild_index()

    def _drop_all(self, gr: GR) -> None:
        for ns, names in list(self.objects.get(gr, {}).items()):
            for obj in list(names.values()):
                self.rv += 1
                gone = clone(obj)
                gone["metadata"]["resourceVersion"] = str(self.rv)
                self._publish(gr, Event(self.rv, "DELETED", gone))
            names.clear()
            self.objects[gr].pop(ns, None)

    def _rebuild_index(self) -> None:
        self.by_gv = {}
        for rt in self.types.values():
            for version in rt.versions:
                self.by_gv.setdefault((rt.group, version), {})[rt.plural] = rt
        self.registry_revision += 1

    def resource(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.by_gv.get((group, version), {}).get(plural)

    # ---------------------------------------------------------------- reads

    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(rt.gr, {}).get(namespace, {}).get(name)

    def must_get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.get(rt, namespace, name)
        if obj is None:
            raise not_found(rt.group, rt.plural, name)
        return obj

    def iter_objects(self, rt: ResourceType, namespace: str | None) -> Iterator[dict[str, Any]]:
        by_ns = self.objects.get(rt.gr, {})
        if namespace is not None:
            yield from by_ns.get(namespace, {}).values()
        else:
            for names in by_ns.values():
                yield from names.values()

    def list_objects(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: list[Requirement],
        fields: list[FieldRequirement],
        *,
        limit: int = 0,
        continue_token: str = "",
    ) -> tuple[list[dict[str, Any]], str, int]:
        """Matching objects sorted by namespace and name; paged by ``limit``/``continue`` like etcd keys."""
        start = ""
        if continue_token:
            try:
                start = json.loads(base64.b64decode(continue_token))["start"]
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                raise bad_request(f"continue key is not valid: {exc}") from exc
        keyed = []
        for obj in self.iter_objects(rt, namespace):
            meta = obj["metadata"]
            key = f"{meta.get('namespace', '')}/{meta['name']}"
            if key > start and labels_match(labels, obj) and fields_match(fields, obj):
                keyed.append((key, obj))
        keyed.sort(key=lambda item: item[0])
        if limit and len(keyed) > limit:
            token = base64.b64encode(
                json.dumps({"rv": self.rv, "start": keyed[limit - 1][0]}).encode()
            ).decode()
            return [obj for _, obj in keyed[:limit]], token, len(keyed) - limit
        return [obj for _, obj in keyed], "", 0

    # ---------------------------------------------------------------- events and watchers

    def _publish(self, gr: GR, event: Event) -> None:
        history = self.history.setdefault(gr, deque())
        history.append(event)
        while len(history) > self.history_limit:
            self.compacted[gr] = history.popleft().rv
        for queue in self.watchers.get(gr, ()):
            queue.put_nowait(event)

    def subscribe(self, gr: GR) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self.watchers.setdefault(gr, set()).add(queue)
        return queue

    def unsubscribe(self, gr: GR, queue: asyncio.Queue[Event]) -> None:
        self.watchers.get(gr, set()).discard(queue)

    def close_all_watches(self) -> None:
        for queues in self.watchers.values():
            for queue in queues:
                queue.put_nowait(CLOSE)

    def events_since(self, gr: GR, rv: int) -> list[Event] | None:
        """Events after ``rv``, or None when some of them were already compacted away (410 Gone)."""
        if rv < self.compacted.get(gr, 0):
            return None
        found: list[Event] = []
        for event in reversed(self.history.get(gr, ())):
            if event.rv <= rv:
                break
            found.append(event)
        found.reverse()
        return found

    # ---------------------------------------------------------------- writes

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _store(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.objects[rt.gr].setdefault(meta.get("namespace", ""), {})[meta["name"]] = obj

    def _unstore(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        names = self.objects[rt.gr].get(ns, {})
        names.pop(meta["name"], None)
        if not names:
            self.objects[rt.gr].pop(ns, None)

    def create(
        self, rt: ResourceType, version: str, namespace: str, body: Any, opts: WriteOptions
    ) -> WriteResult:
        """POST: a new object, named or generated, validated and defaulted."""
        if not isinstance(body, dict):
            raise bad_request("the object provided is unrecognized (must be a JSON object)")
        wrong_kind = self._check_type_meta(rt, version, body)
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        if meta.get("resourceVersion"):
            raise ApiError(
                500,
                "InternalError",
                "Internal error occurred: resourceVersion should not be set on objects to be created",
            )
        obj = {"apiVersion": rt.api_version(rt.storage_version), "kind": rt.kind, "metadata": clone(meta)}
        obj.update((k, clone(v)) for k, v in body.items() if k not in obj)
        meta = obj["metadata"]
        for key in (*_SERVER_META, "managedFields", "selfLink"):
            meta.pop(key, None)
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + "".join(random.choices(_GENERATE_ALPHABET, k=5))
            meta["name"] = name
        self._check_namespace(rt, namespace, meta, name or "", creating=True)
        if rt.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        self._prepare_kind(rt, obj, None)
        if rt.crd_name is not None and rt.has_status(version):
            obj.pop("status", None)  # create cannot set status when it is a subresource
        obj = self._validate(rt, version, obj, None, opts, wrong_kind)
        if self.get(rt, namespace if rt.namespaced else "", name or "") is not None:
            raise already_exists(rt.group, rt.plural, name or "")
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if rt.tracks_generation:
            meta["generation"] = 1
        if rt.gr == CRD_GR:
            meta.setdefault("finalizers", [])
            if CRD_CLEANUP_FINALIZER not in meta["finalizers"]:
                meta["finalizers"].append(CRD_CLEANUP_FINALIZER)
            obj["status"] = _crd_status(obj, None)
        if opts.dry_run:
            return WriteResult(obj, created=True)
        meta["resourceVersion"] = str(self._next_rv())
        self._store(rt, obj)
        self._publish(rt.gr, Event(self.rv, "ADDED", obj))
        if rt.gr == CRD_GR:
            self._after_crd_change(obj)
        return WriteResult(obj, created=True)

    def update(
        self,
        rt: ResourceType,
        version: str,
        namespace: str,
        name: str,
        body: Any,
        opts: WriteOptions,
        *,
        subresource: str | None = None,
    ) -> WriteResult:
        """PUT: replace the object (or only its status through the status subresource)."""
        if not isinstance(body, dict):
            raise bad_request("the object provided is unrecognized (must be a JSON object)")
        current = self.get(rt, namespace if rt.namespaced else "", name)
        if current is None:
            if rt.allow_create_on_update and subresource is None:
                return self.create(rt, version, namespace, body, opts)
            raise not_found(rt.group, rt.plural, name)
        wrong_kind = self._check_type_meta(rt, version, body)
        rv = _meta(body).get("resourceVersion")
        if not rv and not rt.allow_unconditional_update:
            raise invalid(
                rt.group,
                rt.kind,
                name,
                [FieldError("Invalid", "metadata.resourceVersion", 0, "must be specified for an update")],
            )
        return self._replace(rt, version, current, body, opts, subresource, wrong_kind)

    def patch(
        self,
        rt: ResourceType,
        version: str,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        opts: WriteOptions,
        *,
        subresource: str | None = None,
    ) -> WriteResult:
        """PATCH with any of the four patch types kube-apiserver accepts (three for custom resources)."""
        check_patch_type(rt, content_type)
        current = self.get(rt, namespace if rt.namespaced else "", name)
        if content_type == "application/apply-patch+yaml":
            if not isinstance(patch, dict):
                raise bad_request("apply patch must be an object")
            if patch.get("kind") != rt.kind or patch.get("apiVersion") != rt.api_version(version):
                group, _, applied_version = str(patch.get("apiVersion") or "").rpartition("/")
                raise bad_request(
                    f"invalid object type: {group}/{applied_version}, Kind={patch.get('kind') or ''}"
                )
            if current is None:
                if subresource is not None:
                    raise not_found(rt.group, rt.plural, name)
                body = clone(patch)
                body.setdefault("metadata", {})["name"] = name
                return self.create(rt, version, namespace, body, opts)
            # Server-side apply approximated as a merge of the applied configuration: no managedFields,
            # so fields dropped from a later apply are kept and there are no field-manager conflicts.
            patched = merge_patch(self.present(rt, version, current), patch)
        else:
            if current is None:
                raise not_found(rt.group, rt.plural, name)
            presented = self.present(rt, version, current)
            if content_type == "application/json-patch+json":
                try:
                    patched = json_patch(presented, patch)
                except JsonPatchTestFailed as exc:
                    # kube-apiserver answers 422 (NewGenericServerResponse), and kopf relies on it.
                    code = self.json_patch_test_failure_code
                    raise ApiError(code, "Conflict" if code == 409 else "Invalid", str(exc)) from exc
            elif content_type == "application/merge-patch+json":
                if not isinstance(patch, dict):
                    raise bad_request("merge patch must be a JSON object")
                patched = merge_patch(presented, patch)
            else:  # strategic merge (check_patch_type refused the rest)
                patched = strategic_merge_patch(presented, patch)
        if not isinstance(patched, dict):
            raise bad_request("the patched object is not a JSON object")
        if _meta(patched).get("name", name) != name:
            raise bad_request(
                f"the name of the object ({_meta(patched).get('name')}) does not match the name on the URL ({name})"
            )
        wrong_kind = None
        if rt.crd_name is not None and subresource is None and patched.get("kind") not in (None, rt.kind):
            wrong_kind = str(patched["kind"])  # a patched kind is a 422, as a PUT's (status ignores it)
        return self._replace(rt, version, current, patched, opts, subresource, wrong_kind, patched=True)

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        options: Mapping[str, Any],
        opts: WriteOptions,
    ) -> WriteResult:
        """DELETE: remove the object, or mark it for deletion while finalizers remain."""
        current = self.must_get(rt, namespace if rt.namespaced else "", name)
        pre = options.get("preconditions") or {}
        meta = current["metadata"]
        if pre.get("uid") and pre["uid"] != meta["uid"]:
            why = f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta['uid']}"
            raise conflict(rt.group, rt.plural, name, why)
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
            why = (
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {meta['resourceVersion']}"
            )
            raise conflict(rt.group, rt.plural, name, why)
        policy = options.get("propagationPolicy")
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise invalid(
                rt.group,
                rt.kind,
                name,
                [
                    FieldError(
                        "NotSupported", "propagationPolicy", policy, '"Background", "Foreground", "Orphan"'
                    )
                ],
            )
        if opts.dry_run:
            return WriteResult(current, deleted=not _held(rt, current))
        return self._delete(rt, current)

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: list[Requirement],
        fields: list[FieldRequirement],
        opts: WriteOptions,
    ) -> list[dict[str, Any]]:
        items, _, _ = self.list_objects(rt, namespace, labels, fields)
        if opts.dry_run:
            return items
        return [self._delete(rt, obj).obj for obj in items]

    # ---------------------------------------------------------------- internals

    def present(self, rt: ResourceType, version: str, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as served at ``version`` (conversion strategy None: only apiVersion differs)."""
        api_version = rt.api_version(version)
        if obj.get("apiVersion") == api_version:
            return obj
        out = dict(obj)
        out["apiVersion"] = api_version
        return out

    def _check_type_meta(self, rt: ResourceType, version: str, body: Mapping[str, Any]) -> str | None:
        """Raise the decoder's 400 for a body of another type; return a custom resource's wrong kind.

        A custom resource needs ``kind`` and the exact ``apiVersion``; a wrong kind is then a 422 from its
        validator (returned here for ``_validate``). A built-in may leave both out; naming another kind or
        version fails in the typed decoder.
        """
        api_version, kind = body.get("apiVersion") or "", body.get("kind") or ""
        expected = rt.api_version(version)
        if rt.crd_name is not None:
            if not kind:
                # kube-apiserver quotes the request's own bytes; the stand-in has the decoded body, so compact JSON.
                data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
                summary = data if len(data) <= 30 else data[:30] + " ..."
                raise bad_request(
                    f"the object provided is unrecognized (must be of type {rt.kind}): "
                    f"Object 'Kind' is missing in '{data}' ({summary})"
                )
            if api_version != expected:
                raise bad_request(
                    f"the API version in the data ({api_version}) does not match the expected API version "
                    f"({expected})"
                )
            return kind if kind != rt.kind else None
        if (api_version or expected) == expected and (kind or rt.kind) == rt.kind:
            return None
        kind = kind or rt.kind
        prefix = f'{kind} in version "{(api_version or expected).rpartition("/")[2]}" cannot be handled as a {rt.kind}'
        registered = {t.kind for t in self.types.values() if t.crd_name is None and t.group == rt.group}
        if api_version in ("", expected) and kind in registered:
            internal = rt.group.split(".")[0] if rt.group else "core"
            raise bad_request(
                f"{prefix}: converting ({version}.{kind}) to ({internal}.{rt.kind}): unknown conversion"
            )
        raise bad_request(
            f'{prefix}: no kind "{kind}" is registered for version "{api_version or expected}" in scheme '
            '"pkg/api/legacyscheme/scheme.go:30"'
        )

    def _check_namespace(
        self, rt: ResourceType, namespace: str, meta: Mapping[str, Any], name: str, *, creating: bool
    ) -> None:
        if not rt.namespaced:
            return
        body_ns = meta.get("namespace")
        if body_ns and body_ns != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        ns_obj = self.objects[NAMESPACES_GR].get("", {}).get(namespace)
        if ns_obj is None:
            raise not_found("", "namespaces", namespace)
        if creating and ns_obj["metadata"].get("deletionTimestamp"):
            raise forbidden(
                rt.group,
                rt.plural,
                name,
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )
        if creating and rt.crd_name is not None:
            self._check_crd_not_terminating(rt)

    def _check_crd_not_terminating(self, rt: ResourceType) -> None:
        crd = self.objects[CRD_GR].get("", {}).get(rt.crd_name or "")
        if crd is not None and crd["metadata"].get("deletionTimestamp"):
            raise method_not_allowed("create not allowed while custom resource definition is terminating")

    def _prepare_kind(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Kind-specific defaults and conversions the real registry strategies apply."""
        meta = obj["metadata"]
        if rt.gr == NAMESPACES_GR:
            if old is None:
                obj["status"] = {"phase": "Active"}
                spec = obj.setdefault("spec", {})
                if isinstance(spec, dict):
                    spec.setdefault("finalizers", ["kubernetes"])
            labels = meta.setdefault("labels", {})
            if isinstance(labels, dict) and meta.get("name"):
                labels["kubernetes.io/metadata.name"] = meta["name"]
        elif rt.gr == ("", "secrets"):
            if not obj.get("type"):
                obj["type"] = "Opaque"
            string_data = obj.pop("stringData", None)
            if isinstance(string_data, dict):
                data = obj.setdefault("data", {}) or {}
                for key, value in string_data.items():
                    data[key] = base64.b64encode(str(value).encode()).decode()
                obj["data"] = data
            for key, value in (obj.get("data") or {}).items():
                try:
                    base64.b64decode(str(value), validate=True)
                except (binascii.Error, ValueError) as exc:
                    raise bad_request(
                        f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at key {key!r}'
                    ) from exc
        elif rt.gr == CRD_GR:
            _default_crd(obj)

    def _validate(
        self,
        rt: ResourceType,
        version: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        opts: WriteOptions,
        wrong_kind: str | None = None,
        *,
        status_only: bool = False,
        decoded: _Decoded | None = None,
    ) -> dict[str, Any]:
        """Prune, default and validate; returns the object to store.

        A custom resource whose body names another ``kind`` gets that type-meta error instead of its
        metadata and schema errors (the CR validator returns early), then its list-type and CEL errors.
        ``decoded``: the request's whole object as decoded (``_decode``), when ``obj`` keeps only part of it.
        """
        obj, unknown = self._decode(rt, version, obj)
        if decoded is not None:
            unknown = decoded.unknown
        schema = rt.versions[version].schema
        if schema is not None:
            kube_schema.default(obj, schema)
        if unknown and opts.field_validation == "Strict":
            detail = ", ".join(f'unknown field "{path}"' for path in unknown)
            if decoded is not None and decoded.patched is not None:
                raise strict_patch_error(decoded.patched, f"strict decoding error: {detail}")
            raise bad_request(
                f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: strict decoding error: {detail}'
            )
        if unknown and opts.field_validation == "Warn":
            opts.warnings.extend(f'unknown field "{path}"' for path in unknown)
        name = obj["metadata"].get("name") or ""
        if wrong_kind is not None:
            errors = [FieldError("Invalid", "kind", wrong_kind, f"must be {rt.kind}")]
        else:
            errors = self._validate_meta(rt, obj["metadata"], old)
        if schema is not None:
            errors.extend(
                kube_schema.validate(
                    obj,
                    schema,
                    old,
                    earlier=errors,
                    schema_checked=wrong_kind is None,
                    status_only=status_only,
                )
            )
        if rt.gr == CRD_GR:
            errors.extend(validate_crd(obj, old))
        if errors:
            refused = invalid(rt.group, wrong_kind or rt.kind, name, errors)
            # The fields pruned before validation are still warned about on a 422.
            refused.warnings = warning_headers(opts.warnings)
            raise refused
        return obj

    def _decode(
        self, rt: ResourceType, version: str, obj: dict[str, Any]
    ) -> tuple[dict[str, Any], list[str]]:
        """``obj`` as the decoder leaves it (unknown metadata fields dropped, pruned by the schema), and the
        paths of the fields it dropped: unknown metadata fields first, then the pruned ones sorted (as
        kube-apiserver's pruning sorts them)."""
        unknown: list[str] = []
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            raise bad_request(
                f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: metadata must be an object'
            )
        for key in list(meta):
            if key not in _OBJECT_META_FIELDS:
                unknown.append(f"metadata.{key}")
                del meta[key]
        schema = rt.versions[version].schema
        if schema is not None:
            obj, dropped = kube_schema.prune(obj, schema)
            unknown.extend(sorted(dropped))
        elif rt.kind in _BUILTIN_FIELDS and rt.crd_name is None:
            for key in list(obj):
                if key not in _BUILTIN_FIELDS[rt.kind] and key not in ("apiVersion", "kind", "metadata"):
                    unknown.append(key)
                    del obj[key]
        return obj, unknown

    def _validate_meta(
        self, rt: ResourceType, meta: dict[str, Any], old: dict[str, Any] | None
    ) -> list[FieldError]:
        errors: list[FieldError] = []
        name = meta.get("name")
        if not name:
            errors.append(FieldError("Required", "metadata.name", detail="name or generateName is required"))
        elif rt.gr == NAMESPACES_GR:
            if len(name) > 63 or not _LABEL.match(name):
                errors.append(FieldError("Invalid", "metadata.name", name, _LABEL_MSG))
        elif len(name) > 253 or not _SUBDOMAIN.match(name):
            errors.append(FieldError("Invalid", "metadata.name", name, _SUBDOMAIN_MSG))
        for field_name in ("labels", "annotations"):
            value = meta.get(field_name)
            if value is None:
                continue
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise bad_request(
                    f"{rt.kind} cannot be handled: json: cannot unmarshal into Go struct field "
                    f"ObjectMeta.metadata.{field_name} of type string"
                )
            for key, item in value.items():
                prefix, _, local = key.rpartition("/")
                if (
                    not _QUALIFIED_NAME.match(local)
                    or len(local) > 63
                    or (prefix and not _SUBDOMAIN.match(prefix))
                ):
                    errors.append(
                        FieldError(
                            "Invalid",
                            f"metadata.{field_name}",
                            key,
                            "name part must consist of alphanumeric "
                            "characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                        )
                    )
                if field_name == "labels" and (len(item) > 63 or not _LABEL_VALUE.match(item)):
                    errors.append(
                        FieldError("Invalid", "metadata.labels", item, "a valid label must be an empty string or "
                                   "consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                                   "an alphanumeric character")
                    )  # fmt: skip
        finalizers = meta.get("finalizers")
        if finalizers is not None:
            if not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers):
                raise bad_request(
                    f"{rt.kind} cannot be handled: metadata.finalizers must be a list of strings"
                )
            old_meta = _meta(old) if old is not None else {}
            if old_meta.get("deletionTimestamp"):
                added = [f for f in finalizers if f not in (old_meta.get("finalizers") or [])]
                if added:
                    errors.append(
                        FieldError(
                            "Forbidden",
                            "metadata.finalizers",
                            detail=f"no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers {json.dumps(added)}",
                        )
                    )
        return errors

    def _replace(
        self,
        rt: ResourceType,
        version: str,
        current: dict[str, Any],
        body: dict[str, Any],
        opts: WriteOptions,
        subresource: str | None,
        wrong_kind: str | None = None,
        *,
        patched: bool = False,
    ) -> WriteResult:
        """The common tail of PUT and PATCH (``patched``: ``body`` is the patched object): preconditions,
        strategies, validation, commit.

        kube-apiserver decodes the whole object a write sends (pruning it, and warning of or, with
        ``fieldValidation=Strict``, refusing its unknown fields) before the status strategy puts the stored
        spec back, or the main one the stored status: a field the write then ignores is still reported.
        """
        name = current["metadata"]["name"]
        body_meta = _meta(body)
        if body_meta.get("name") and body_meta["name"] != name:
            raise bad_request(
                f"the name of the object ({body_meta['name']}) does not match the name on the URL ({name})"
            )
        if rt.namespaced:
            self._check_namespace(rt, current["metadata"]["namespace"], body_meta, name, creating=False)
        rv = body_meta.get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise conflict(rt.group, rt.plural, name, STALE)
        decoded = None
        if subresource == "status" or rt.has_status(version) or patched:
            whole = clone(body)
            whole.setdefault("metadata", {})
            decoded = _Decoded(
                self._decode(rt, version, whole)[1] if isinstance(whole["metadata"], dict) else [],
                body if patched else None,
            )
        if subresource == "status":
            new = clone(current)
            if "status" in body:
                new["status"] = clone(body["status"])
            else:
                new.pop("status", None)
        else:
            new = clone(body)
            new["apiVersion"] = current["apiVersion"]
            new["kind"] = rt.kind
            meta = new["metadata"] = clone(body_meta)
            for key in (*_SERVER_META, "namespace", "name"):
                if key in current["metadata"]:
                    meta[key] = current["metadata"][key]
                else:
                    meta.pop(key, None)
            meta.pop("managedFields", None)
            if rt.has_status(version):
                if "status" in current:
                    new["status"] = clone(current["status"])
                else:
                    new.pop("status", None)
            self._prepare_kind(rt, new, current)
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if rt.gr == CRD_GR:
            new["status"] = _crd_status(new, current.get("status"))
        new = self._validate(
            rt, version, new, current, opts, wrong_kind, status_only=subresource == "status", decoded=decoded
        )
        if rt.tracks_generation and subresource is None and _content(new) != _content(current):
            new["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        return self._commit(rt, current, new, opts)

    def _commit(
        self, rt: ResourceType, current: dict[str, Any], new: dict[str, Any], opts: WriteOptions
    ) -> WriteResult:
        if _without_rv(new) == _without_rv(current):
            return WriteResult(current)  # a no-op write neither bumps the resourceVersion nor notifies
        if opts.dry_run:
            return WriteResult(new)
        meta = new["metadata"]
        meta["resourceVersion"] = str(self._next_rv())
        if meta.get("deletionTimestamp") and not _held(rt, new):
            self._unstore(rt, new)
            self._publish(rt.gr, Event(self.rv, "DELETED", new))
            self._after_removal(rt, new)
            return WriteResult(new, deleted=True)
        self._store(rt, new)
        self._publish(rt.gr, Event(self.rv, "MODIFIED", new, current))
        if rt.gr == CRD_GR:
            self._after_crd_change(new)
        elif rt.gr == NAMESPACES_GR and meta.get("deletionTimestamp"):
            self._maybe_finalize_namespace(meta["name"])
            latest = self.get(rt, "", meta["name"])
            return WriteResult(latest or new, deleted=latest is None)
        return WriteResult(new)

    def _delete(self, rt: ResourceType, current: dict[str, Any]) -> WriteResult:
        meta = current["metadata"]
        if meta.get("deletionTimestamp"):
            return WriteResult(current)
        if _held(rt, current):
            new = clone(current)
            new_meta = new["metadata"]
            new_meta["deletionTimestamp"] = now_rfc3339()
            new_meta["deletionGracePeriodSeconds"] = 0
            if rt.tracks_generation:
                new_meta["generation"] = int(new_meta.get("generation", 1)) + 1
            if rt.gr == NAMESPACES_GR:
                new["status"] = {**(new.get("status") or {}), "phase": "Terminating"}
            if rt.gr == CRD_GR:
                new["status"] = _crd_status(new, current.get("status"))
            result = self._commit(rt, current, new, WriteOptions())
            if rt.gr == NAMESPACES_GR and not result.deleted:
                self._empty_namespace(meta["name"])
                self._maybe_finalize_namespace(meta["name"])
                latest = self.get(rt, "", meta["name"])
                return WriteResult(latest or result.obj, deleted=latest is None)
            return result
        gone = clone(current)
        gone["metadata"]["resourceVersion"] = str(self._next_rv())
        self._unstore(rt, gone)
        self._publish(rt.gr, Event(self.rv, "DELETED", gone))
        self._after_removal(rt, gone)
        return WriteResult(gone, deleted=True)

    def _after_removal(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.gr == CRD_GR:
            self._unregister_crd(obj)
            return
        ns = obj["metadata"].get("namespace")
        if ns:
            ns_obj = self.objects[NAMESPACES_GR].get("", {}).get(ns)
            if ns_obj is not None and ns_obj["metadata"].get("deletionTimestamp"):
                self._maybe_finalize_namespace(ns)
        if rt.crd_name is not None:
            crd = self.objects[CRD_GR].get("", {}).get(rt.crd_name)
            if crd is not None and crd["metadata"].get("deletionTimestamp"):
                self._maybe_finalize_crd(crd)

    def _empty_namespace(self, namespace: str) -> None:
        """The namespace controller's job: delete everything inside (finalizers still hold objects)."""
        for rt in list(self.types.values()):
            if not rt.namespaced:
                continue
            for obj in list(self.objects.get(rt.gr, {}).get(namespace, {}).values()):
                self._delete(rt, obj)

    def _maybe_finalize_namespace(self, namespace: str) -> None:
        ns_obj = self.objects[NAMESPACES_GR].get("", {}).get(namespace)
        if (
            ns_obj is None
            or not ns_obj["metadata"].get("deletionTimestamp")
            or ns_obj["metadata"].get("finalizers")
        ):
            return
        if any(self.objects.get(rt.gr, {}).get(namespace) for rt in self.types.values() if rt.namespaced):
            return
        rt = self.types[NAMESPACES_GR]
        gone = clone(ns_obj)
        gone["metadata"]["resourceVersion"] = str(self._next_rv())
        gone.setdefault("spec", {})["finalizers"] = []
        self._unstore(rt, gone)
        self._publish(rt.gr, Event(self.rv, "DELETED", gone))

    def _after_crd_change(self, crd: dict[str, Any]) -> None:
        if crd["metadata"].get("deletionTimestamp"):
            gr = self._crd_gr(crd)
            rt = self.types.get(gr) if gr else None
            if rt is not None and rt.crd_name == crd["metadata"]["name"]:
                for obj in list(self.iter_objects(rt, None)):
                    self._delete(rt, obj)
            latest = self.objects[CRD_GR].get("", {}).get(crd["metadata"]["name"])
            if latest is not None:
                self._maybe_finalize_crd(latest)
        else:
            new_type = type_from_crd(crd)
            if new_type.versions:
                self._register(new_type)
            else:
                self._unregister(new_type.gr)

    def _crd_gr(self, crd: Mapping[str, Any]) -> GR | None:
        try:
            return (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        except (KeyError, TypeError):
            return None

    def _maybe_finalize_crd(self, crd: dict[str, Any]) -> None:
        gr = self._crd_gr(crd)
        if gr is not None and any(self.objects.get(gr, {}).values()):
            return
        finalizers = crd["metadata"].get("finalizers") or []
        if CRD_CLEANUP_FINALIZER not in finalizers:
            return
        new = clone(crd)
        new["metadata"]["finalizers"] = [f for f in finalizers if f != CRD_CLEANUP_FINALIZER]
        self._commit(self.types[CRD_GR], crd, new, WriteOptions())

    def _unregister_crd(self, crd: Mapping[str, Any]) -> None:
        gr = self._crd_gr(crd)
        if gr is not None and gr in self.types and self.types[gr].crd_name == crd["metadata"]["name"]:
            self._unregister(gr)

    # ---------------------------------------------------------------- bootstrap

    def ensure_namespace(self, name: str) -> None:
        if self.objects[NAMESPACES_GR].get("", {}).get(name) is None:
            rt = self.types[NAMESPACES_GR]
            self.create(rt, "v1", "", {"metadata": {"name": name}}, WriteOptions())

    def apply_crd(self, crd: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace a CRD, as ``kubectl apply`` would; returns the stored CRD."""
        rt = self.types[CRD_GR]
        name = crd["metadata"]["name"]
        current = self.get(rt, "", name)
        if current is None:
            return self.create(rt, "v1", "", clone(dict(crd)), WriteOptions()).obj
        body = clone(dict(crd))
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.update(rt, "v1", "", name, body, WriteOptions()).obj


def check_patch_type(rt: ResourceType, content_type: str) -> None:
    """415 for a patch type the resource does not take: custom resources list theirs, built-ins do not."""
    if rt.crd_name is not None:
        if content_type not in CR_PATCH_TYPES:
            raise unsupported_media_type(CR_PATCH_TYPES)
    elif content_type not in PATCH_TYPES:
        raise ApiError(415, "UnsupportedMediaType", "415: Unsupported Media Type", {})


def _held(rt: ResourceType, obj: Mapping[str, Any]) -> bool:
    """Whether finalizers keep the object after deletion (namespaces also by ``spec.finalizers``)."""
    if _meta(obj).get("finalizers"):
        return True
    return rt.gr == NAMESPACES_GR and bool((obj.get("spec") or {}).get("finalizers"))


def _default_crd(crd: dict[str, Any]) -> None:
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict) and names.get("kind"):
        names.setdefault("singular", str(names["kind"]).lower())
        names.setdefault("listKind", f"{names['kind']}List")
    spec.setdefault("scope", "Namespaced")
    spec.setdefault("conversion", {"strategy": "None"})


def _crd_status(crd: Mapping[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the apiextensions controllers write: accepted names, Established, stored versions."""
    spec = crd.get("spec") or {}
    now = now_rfc3339()
    old_conditions = {c.get("type"): c for c in (old or {}).get("conditions", [])}

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        previous = old_conditions.get(kind)
        since = previous["lastTransitionTime"] if previous and previous.get("status") == status else now
        return {
            "type": kind,
            "status": status,
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        }

    conditions = [
        condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
        condition("Established", "True", "InitialNamesAccepted", "the initial names have been accepted"),
    ]
    if _meta(crd).get("deletionTimestamp"):
        conditions.append(
            condition(
                "Terminating", "True", "InstanceDeletionInProgress", "CustomResource deletion is in progress"
            )
        )
    stored = list((old or {}).get("storedVersions", []))
    for v in spec.get("versions") or []:
        if isinstance(v, dict) and v.get("storage") and v.get("name") not in stored:
            stored.append(v["name"])
    return {
        "conditions": conditions,
        "acceptedNames": clone(spec.get("names") or {}),
        "storedVersions": stored,
    }
