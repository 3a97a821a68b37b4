"""Render the CustomResourceDefinition from the pydantic models (one source of truth)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.api.models import (
    ClickHousePrivateLinkPolicySpec,
    ClickHousePrivateLinkSpec,
    ClickHousePrivateLinkStatus,
)

# Keys pydantic emits that a Kubernetes structural schema does not allow or need.
_DROP_KEYS = {"title", "$defs"}
_ANNOTATIONS = {
    # ArgoCD: apply the CRD before the resources that use it.
    "argocd.argoproj.io/sync-wave": "-10",
    # Server-side apply (a large schema); never pruned by an automated sync: pruning the CRD would delete every
    # ClickHousePrivateLink, and the operator would clean up their endpoints, records and allow-list entries.
    "argocd.argoproj.io/sync-options": "ServerSideApply=true,Prune=false",
}


def _structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline $refs, fold Optional[X] into X and drop keys a structural schema rejects."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**copy.deepcopy(target), **{k: v for k, v in schema.items() if k != "$ref"}}
        return _structural(merged, defs)
    any_of = schema.get("anyOf")
    if any_of is not None:
        non_null = [s for s in any_of if s.get("type") != "null"]
        if len(non_null) != 1:
            raise ValueError(f"cannot express anyOf {any_of!r} in a structural schema")
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        if rest.get("default", ...) is None:
            del rest["default"]
        return _structural({**non_null[0], **rest}, defs)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value, defs)
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "object" and "properties" in out:
        # Objects whose fields all have defaults get a default of {} so the API server fills them in.
        for name, sub in out["properties"].items():
            if (
                sub.get("type") == "object"
                and "properties" in sub
                and not sub.get("required")
                and "default" not in sub
            ) and name not in out.get("required", []):
                sub["default"] = {}
    return out


def openapi_schema(model: type[Any]) -> dict[str, Any]:
    """The OpenAPI v3 structural schema of a pydantic model, as Kubernetes expects it."""
    raw = model.model_json_schema(by_alias=True, mode="validation", ref_template="#/$defs/{model}")
    return _structural(raw, raw.get("$defs", {}))


def _status_schema() -> dict[str, Any]:
    schema = openapi_schema(ClickHousePrivateLinkStatus)
    schema["description"] = "Observed state, written by the operator: read it, do not set it."
    # Conditions' lastTransitionTime is written as an RFC 3339 string.
    cond = schema["properties"]["conditions"]["items"]["properties"]["lastTransitionTime"]
    cond.clear()
    cond.update(
        {"type": "string", "format": "date-time", "description": "When status last changed (RFC 3339)."}
    )
    return schema


def _crd(
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: tuple[str, ...],
    scope: str,
    description: str,
    properties: dict[str, Any],
    columns: list[dict[str, Any]],
    status: bool,
) -> dict[str, Any]:
    """A CRD of our group with one served and stored version, the schema's root around ``properties``."""
    version: dict[str, Any] = {"name": c.VERSION, "served": True, "storage": True}
    if status:
        version["subresources"] = {"status": {}}
    version["additionalPrinterColumns"] = columns
    version["schema"] = {
        "openAPIV3Schema": {
            "type": "object",
            "description": description,
            "required": ["spec"],
            "properties": {
                "apiVersion": {
                    "type": "string",
                    "description": f"Versioned schema of this object: {c.GROUP}/{c.VERSION}.",
                },
                "kind": {"type": "string", "description": f"Kind of this object: {kind}."},
                # Kubernetes forbids anything under metadata but its type (structural schema rule).
                "metadata": {"type": "object"},
                **properties,
            },
        }
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{c.GROUP}",
            "annotations": dict(_ANNOTATIONS),
            "labels": {
                "app.kubernetes.io/name": c.OPERATOR_NAME,
                "app.kubernetes.io/part-of": c.OPERATOR_NAME,
            },
        },
        "spec": {
            "group": c.GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": list(short_names),
                "categories": list(c.CATEGORIES),
            },
            "versions": [version],
        },
    }


def render_crd() -> dict[str, Any]:
    """The ClickHousePrivateLink CRD as a dict."""
    spec_schema = openapi_schema(ClickHousePrivateLinkSpec)
    spec_schema["description"] = (
        "Desired state: connect this VPC to this ClickHouse Cloud service over PrivateLink."
    )
    return _crd(
        kind=c.KIND,
        plural=c.PLURAL,
        singular=c.SINGULAR,
        short_names=c.SHORT_NAMES,
        scope="Namespaced",
        description="A PrivateLink connection from an AWS VPC to a ClickHouse Cloud service.",
        properties={"spec": spec_schema, "status": _status_schema()},
        columns=[
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {
                "name": "Reason",
                "type": "string",
                "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
                "priority": 1,
            },
            {"name": "Hostname", "type": "string", "jsonPath": ".status.privateDnsHostname"},
            {"name": "Endpoint", "type": "string", "jsonPath": ".status.vpcEndpointId"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        status=True,
    )


def render_policy_crd() -> dict[str, Any]:
    """The ClickHousePrivateLinkPolicy CRD (cluster-scoped: set by the platform team, not by tenants)."""
    spec_schema = openapi_schema(ClickHousePrivateLinkPolicySpec)
    spec_schema["description"] = (
        "Which namespaces may make the operator use which VPCs, AWS roles, hosted zones, ClickHouse "
        "organizations and API URLs, and which Secrets it reads for them."
    )
    return _crd(
        kind=c.POLICY_KIND,
        plural=c.POLICY_PLURAL,
        singular=c.POLICY_SINGULAR,
        short_names=c.POLICY_SHORT_NAMES,
        scope="Cluster",
        description="A tenancy rule of the ClickHousePrivateLink operator: a resource is acted on only when a "
        "policy selecting its namespace allows everything it names.",
        properties={"spec": spec_schema},
        columns=[
            {"name": "Namespaces", "type": "string", "jsonPath": ".spec.namespaces.names"},
            {"name": "VPCs", "type": "string", "jsonPath": ".spec.allow.vpcIds"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        status=False,
    )


_HEADER = (
    "# Generated by `clickhouse-privatelink-operator crd` from operator/clickhouse_privatelink/api/models.py.\n"
    "# Do not edit by hand: change the models and run `make crd`.\n"
)


def render_crd_yaml() -> str:
    """The CRD as the YAML document committed at crds/clickhouseprivatelinks.yaml."""
    return _HEADER + yaml.safe_dump(render_crd(), sort_keys=False, width=120)


def render_policy_crd_yaml() -> str:
    """The policy CRD as the YAML document committed at crds/clickhouseprivatelinkpolicies.yaml."""
    return _HEADER + yaml.safe_dump(render_policy_crd(), sort_keys=False, width=120)


def write_crd(path: Path) -> None:
    """Write the rendered CRD to ``path``."""
    path.write_text(render_crd_yaml(), encoding="utf-8")
