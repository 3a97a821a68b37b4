"""The resource types the Kubernetes stand-in serves: built-ins, CRDs, discovery and OpenAPI documents."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clickhouse_privatelink_testkit.standins.kubernetes.selectors import FieldGetter, field_path_getter
from clickhouse_privatelink_testkit.standins.kubernetes.table import (
    AGE_COLUMN,
    BUILTIN_COLUMNS,
    NAME_COLUMN,
    Column,
    crd_columns,
)

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUBRESOURCE_VERBS = ["get", "patch", "update"]
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


@dataclass
class Version:
    """One served version of a resource; all versions share one storage (conversion strategy None)."""

    name: str
    storage: bool = True
    schema: dict[str, Any] | None = None
    printer_columns: list[dict[str, Any]] = field(default_factory=list)
    status_subresource: bool = False


@dataclass
class ResourceType:
    """What kube-apiserver knows about one resource (group + plural)."""

    group: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    versions: dict[str, Version]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    crd_name: str | None = None
    # Built-in kinds without .spec (Secret, ConfigMap...) have no generation; CRs and CRDs do.
    tracks_generation: bool = False
    # CRs (and CRDs) refuse a PUT without metadata.resourceVersion; most built-ins accept it.
    allow_unconditional_update: bool = True
    allow_create_on_update: bool = False
    extra_field_selectors: tuple[str, ...] = ()

    @property
    def gr(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    @property
    def storage_version(self) -> str:
        for v in self.versions.values():
            if v.storage:
                return v.name
        return next(iter(self.versions))

    def has_status(self, version: str) -> bool:
        return self.versions[version].status_subresource

    def columns(self, version: str) -> list[Column]:
        if self.crd_name is not None:
            return crd_columns(self.versions[version].printer_columns)
        return BUILTIN_COLUMNS.get(self.kind, [NAME_COLUMN, AGE_COLUMN])

    def field_selectors(self) -> dict[str, FieldGetter]:
        names = ("metadata.name", "metadata.namespace", *self.extra_field_selectors)
        return {name: field_path_getter(name) for name in names}

    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


def _core(plural: str, kind: str, *, namespaced: bool = True, **kwargs: Any) -> ResourceType:
    status = bool(kwargs.pop("status", False))
    return ResourceType(
        group="",
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        versions={"v1": Version("v1", status_subresource=status)},
        **kwargs,
    )


_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)


def builtin_types() -> list[ResourceType]:
    """The built-in resources an operator and kubectl need."""
    return [
        _core("namespaces", "Namespace", namespaced=False, short_names=("ns",), status=True,
              extra_field_selectors=("status.phase",)),
        _core("secrets", "Secret", extra_field_selectors=("type",)),
        _core("configmaps", "ConfigMap", short_names=("cm",)),
        _core("events", "Event", short_names=("ev",), allow_create_on_update=True,
              extra_field_selectors=_EVENT_FIELDS),
        ResourceType(
            group="coordination.k8s.io", plural="leases", singular="lease", kind="Lease", namespaced=True,
            versions={"v1": Version("v1")}, allow_create_on_update=True,
        ),
        ResourceType(
            group="apiextensions.k8s.io",
            plural="customresourcedefinitions",
            singular="customresourcedefinition",
            kind="CustomResourceDefinition",
            namespaced=False,
            versions={"v1": Version("v1", status_subresource=True)},
            short_names=("crd", "crds"),
            categories=("api-extensions",),
            tracks_generation=True,
            allow_unconditional_update=False,
        ),
    ]  # fmt: skip


def type_from_crd(crd: Mapping[str, Any]) -> ResourceType:
    """The resource type a CustomResourceDefinition declares (its served versions only)."""
    spec = crd["spec"]
    names = spec["names"]
    versions: dict[str, Version] = {}
    for v in spec.get("versions", []):
        if not v.get("served", True):
            continue
        versions[v["name"]] = Version(
            name=v["name"],
            storage=bool(v.get("storage", False)),
            schema=(v.get("schema") or {}).get("openAPIV3Schema"),
            printer_columns=list(v.get("additionalPrinterColumns") or []),
            status_subresource="status" in (v.get("subresources") or {}),
        )
    selectable = tuple(
        sf["jsonPath"].lstrip(".") for v in spec.get("versions", []) for sf in v.get("selectableFields") or []
    )
    return ResourceType(
        group=spec["group"],
        plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        versions=versions,
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        crd_name=crd["metadata"]["name"],
        tracks_generation=True,
        allow_unconditional_update=False,
        extra_field_selectors=selectable,
    )


def _storage_hash(rt: ResourceType, version: str) -> str:
    digest = hashlib.sha256(f"{rt.group}/{version}/{rt.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def api_resource_list(group_version: str, types: Iterable[tuple[ResourceType, str]]) -> dict[str, Any]:
    """The legacy discovery document ``APIResourceList`` of one group/version."""
    resources: list[dict[str, Any]] = []
    for rt, version in types:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(VERBS),
            "storageVersionHash": _storage_hash(rt, version),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        if rt.has_status(version):
            resources.append(
                {
                    "name": f"{rt.plural}/status",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": list(SUBRESOURCE_VERBS),
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def _operation(action: str, rt: ResourceType, version: str, *, writes: bool) -> dict[str, Any]:
    params = [{"name": "pretty", "in": "query", "schema": {"type": "string"}}]
    if writes:
        # kubectl looks for this parameter to decide that the server validates fields itself.
        params += [
            {"name": name, "in": "query", "schema": {"type": "string"}}
            for name in ("dryRun", "fieldManager", "fieldValidation")
        ]
    return {
        "operationId": f"{action}{rt.kind}",
        "parameters": params,
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": version, "kind": rt.kind},
    }


def _schema_key(rt: ResourceType, version: str) -> str:
    group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{group}.{version}.{rt.kind}"


def openapi_v3_document(
    group_version: str, types: Iterable[tuple[ResourceType, str]], k8s_version: str
) -> dict[str, Any]:
    """An OpenAPI v3 document for one group/version: paths (with their GVK) and CRD schemas."""
    prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt, version in types:
        base = f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
        paths[base] = {
            "get": _operation("list", rt, version, writes=False),
            "post": _operation("post", rt, version, writes=True),
            "delete": _operation("deletecollection", rt, version, writes=False),
        }
        paths[f"{base}/{{name}}"] = {
            "get": _operation("get", rt, version, writes=False),
            "put": _operation("put", rt, version, writes=True),
            "patch": _operation("patch", rt, version, writes=True),
            "delete": _operation("delete", rt, version, writes=True),
        }
        if rt.has_status(version):
            paths[f"{base}/{{name}}/status"] = {
                "get": _operation("get", rt, version, writes=False),
                "put": _operation("put", rt, version, writes=True),
                "patch": _operation("patch", rt, version, writes=True),
            }
        schema = rt.versions[version].schema
        if schema is not None:
            schemas[_schema_key(rt, version)] = {
                **schema,
                "x-kubernetes-group-version-kind": [{"group": rt.group, "version": version, "kind": rt.kind}],
            }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": k8s_version},
        "paths": paths,
        "components": {"schemas": schemas},
    }
