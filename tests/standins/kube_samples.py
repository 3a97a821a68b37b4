"""Sample objects for the Kubernetes stand-in tests."""

from __future__ import annotations

import copy
from typing import Any

API_VERSION = "privatelink.clickhouse.dev/v1alpha1"
PLURAL = "clickhouseprivatelinks"
ORG = "11111111-2222-3333-4444-555555555555"
CR_PATH = f"/apis/{API_VERSION}"


def chpl(name: str = "demo", **spec_overrides: Any) -> dict[str, Any]:
    """A valid ClickHousePrivateLink; keyword arguments replace top-level spec sections."""
    spec: dict[str, Any] = {
        "clickhouse": {
            "organizationId": ORG,
            "serviceName": "analytics",
            "credentialsSecretRef": {"name": "clickhouse-api"},
        },
        "aws": {
            "region": "us-east-1",
            "vpcId": "vpc-0123456789abcdef0",
            "subnetIds": ["subnet-0123456789abcdef0"],
        },
    }
    spec.update(copy.deepcopy(spec_overrides))
    return {
        "apiVersion": API_VERSION,
        "kind": "ClickHousePrivateLink",
        "metadata": {"name": name},
        "spec": spec,
    }


def cr_path(namespace: str, name: str | None = None) -> str:
    path = f"{CR_PATH}/namespaces/{namespace}/{PLURAL}"
    return f"{path}/{name}" if name else path


def widget(name: str, **fields: Any) -> dict[str, Any]:
    """A Widget of ``sample_crd()``; keyword arguments become top-level fields (``metadata`` merges)."""
    metadata = {"name": name, **fields.pop("metadata", {})}
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": metadata, **fields}


def sample_crd(
    plural: str = "widgets", *, status_subresource: bool = False, scope: str = "Namespaced"
) -> dict[str, Any]:
    """A small CRD of group example.com with a free-form spec and status."""
    version: dict[str, Any] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            }
        },
    }
    if status_subresource:
        version["subresources"] = {"status": {}}
    kind = plural[:-1].capitalize()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.example.com"},
        "spec": {
            "group": "example.com",
            "scope": scope,
            "names": {"plural": plural, "singular": plural[:-1], "kind": kind, "shortNames": [plural[:2]]},
            "versions": [version],
        },
    }
