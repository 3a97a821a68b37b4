"""What the packaging tests share: where things are, rendering the chart, and validating manifests."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "bin"
HELM = TOOLS / "helm"
KUBECTL = TOOLS / "kubectl"
CHART = ROOT / "charts" / "clickhouse-privatelink-operator"
CRDS = ROOT / "crds"
DEPLOY = ROOT / "deploy"
ARGOCD = DEPLOY / "argocd"
DOCS = ROOT / "docs"
CHECKOV_CONFIG = Path(__file__).parent / "checkov.yaml"

RELEASE = "clickhouse-privatelink-operator"
NAMESPACE = "clickhouse-privatelink-operator"
KUBERNETES_VERSIONS = ("1.31", "1.32", "1.33", "1.34", "1.35")
PEERING_NAME = "clickhouse-privatelink-operator"

Manifest = dict[str, Any]

ROLE_ARN = "arn:aws:iam::111122223333:role/clickhouse-privatelink-operator"

# Values the chart is rendered with: the defaults and each non-default mode worth checking.
SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "created-secret": {
        "watchNamespaces": ["team-a", "team-b"],
        "clickhouse": {
            "apiKey": {
                "create": True,
                "namespaces": ["team-a", "team-b"],
                "keyId": "placeholder-key-id",
                "keySecret": "placeholder-key-secret",
            }
        },
    },
    "existing-secret": {
        "clickhouse": {"apiKey": {"secretName": "warehouse-key"}},
        "rbac": {"secretNames": ["warehouse-key", "reporting-key"]},
    },
    "monitoring": {
        "metrics": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "dashboard": {"enabled": True},
        },
        "podDisruptionBudget": {"enabled": True},
        "networkPolicy": {
            "metricsFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ]
        },
    },
    "single-replica": {"replicaCount": 1},
    "irsa": {
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": ROLE_ARN}},
        "aws": {"region": "eu-west-1"},
        "clusterName": "prod-eu-1",
    },
    "pinned-image": {"image": {"tag": "0.1.0", "digest": "sha256:" + "ab" * 32}},
    "metrics-off": {"metrics": {"enabled": False}},
}


def load_documents(text: str) -> list[Manifest]:
    """The non-empty YAML documents of a multi-document text."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def helm(*args: str, values: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    """Run helm on the chart, with the given values as a values file; never raises on failure."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", encoding="utf-8") as values_file:
        json.dump(values or {}, values_file)
        values_file.flush()
        return subprocess.run(
            [str(HELM), *args, str(CHART), "--namespace", NAMESPACE, "--values", values_file.name],
            capture_output=True,
            text=True,
            check=False,
        )


@functools.cache
def _render(scenario_json: str) -> str:
    result = helm("template", RELEASE, values=json.loads(scenario_json))
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(values: dict[str, Any]) -> list[Manifest]:
    """The chart's manifests for these values (cached: each distinct set of values renders once)."""
    return load_documents(_render(json.dumps(values, sort_keys=True)))


def render_scenario(name: str) -> list[Manifest]:
    return render(SCENARIOS[name])


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def the_one(manifests: list[Manifest], kind: str) -> Manifest:
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def operator_container(manifests: list[Manifest]) -> Manifest:
    pod_spec = the_one(manifests, "StatefulSet")["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    return container


@functools.cache
def kustomize_build() -> str:
    return subprocess.run(
        [str(KUBECTL), "kustomize", str(DEPLOY)], capture_output=True, text=True, check=True
    ).stdout


def crd_files() -> list[Path]:
    """The CRD files at the repository root (crds/kustomization.yaml is kustomize's index of them)."""
    return sorted(p for p in CRDS.glob("*.yaml") if p.name != "kustomization.yaml")


@functools.cache
def crds_by_kind() -> dict[str, Manifest]:
    return {
        doc["spec"]["names"]["kind"]: doc
        for path in crd_files()
        for doc in load_documents(path.read_text(encoding="utf-8"))
    }


def _closed(schema: Any) -> Any:
    """A CRD schema that rejects unknown fields, which the API server would silently drop (typos)."""
    if isinstance(schema, dict):
        closed = {key: _closed(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


def _cel_violations(value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    """Messages of the CRD's CEL rules that fail on a new object (transition rules need oldSelf: skipped)."""
    env = celpy.Environment()
    for validation in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in validation["rule"]:
            continue
        program = env.program(env.compile(validation["rule"]))
        if not program.evaluate({"self": celpy.json_to_cel(value)}):
            yield f"{path}: {validation['message']}"
    if isinstance(value, dict):
        for key, child in value.items():
            child_schema = schema.get("properties", {}).get(key)
            if child_schema is None and isinstance(schema.get("additionalProperties"), dict):
                child_schema = schema["additionalProperties"]
            if child_schema is not None:
                yield from _cel_violations(child, child_schema, f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from _cel_violations(item, schema["items"], f"{path}[{index}]")


def custom_resource_errors(manifest: Manifest) -> list[str]:
    """Why the API server would reject (or silently change) this custom resource, per its CRD in crds/."""
    crd = crds_by_kind()[manifest["kind"]]
    group, _, version = manifest["apiVersion"].partition("/")
    assert group == crd["spec"]["group"], (
        f"{manifest['apiVersion']} is not served by {crd['metadata']['name']}"
    )
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    schema = served["schema"]["openAPIV3Schema"]
    # The API server always accepts the object's own apiVersion, kind and metadata at the root.
    root = copy.deepcopy(schema)
    for field, field_type in (("apiVersion", "string"), ("kind", "string"), ("metadata", "object")):
        root.setdefault("properties", {}).setdefault(field, {"type": field_type})
    validator = jsonschema.Draft7Validator(_closed(root))
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)]
    return errors + list(_cel_violations(manifest, schema, "$"))


# Kinds whose schema is a CRD from elsewhere, not in kubernetes-validate nor in crds/: not validated here.
FOREIGN_CUSTOM_KINDS = {
    "ServiceMonitor",  # prometheus-operator's CRD (monitoring.coreos.com/v1)
    "PrometheusRule",  # prometheus-operator's too; test_monitoring.py checks its rules
}


def kubernetes_errors(manifest: Manifest, version: str) -> list[str]:
    """Why a manifest is invalid for a Kubernetes version: built-in kinds against the official JSON
    schemas (strict: unknown fields are errors), our custom kinds against their CRDs in crds/."""
    kind = manifest["kind"]
    if kind in FOREIGN_CUSTOM_KINDS:
        return []
    if kind in crds_by_kind():
        return custom_resource_errors(manifest)
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [
            f"{kind}/{manifest['metadata'].get('name')}: {'.'.join(map(str, error.path))}: {error.message}"
        ]
    return []


def package_version() -> str:
    """The one version (pyproject.toml's): the chart's, the image's, the examples' (scripts/release.py)."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def load_script(path: Path) -> ModuleType:
    """A script of the repository (scripts/, the chart's files/) as a module, without running its main."""
    name = path.stem.replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


def assert_restricted(pod_spec: Manifest) -> None:
    """A pod spec (and its first container) that Pod Security "restricted" admits, read-only root included."""
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = pod_spec["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
