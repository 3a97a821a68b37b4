"""The Helm chart: lint, valid manifests for every supported Kubernetes version, values schema, and the
behaviour each value promises."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.packaging.support import (
    CHART,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    PEERING_NAME,
    ROLE_ARN,
    SCENARIOS,
    Manifest,
    assert_restricted,
    helm,
    kubernetes_errors,
    of_kind,
    operator_container,
    render,
    render_scenario,
    the_one,
)


def env_of(container: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_chart_lints_without_warnings(scenario: str) -> None:
    result = helm("lint", "--strict", values=SCENARIOS[scenario])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_rendered_manifest_is_valid_for_each_supported_kubernetes_version(
    scenario: str, version: str
) -> None:
    errors = [
        error for manifest in render_scenario(scenario) for error in kubernetes_errors(manifest, version)
    ]
    assert errors == []


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicaCount": -1}, "replicaCount"),
        ({"replicaCount": "2"}, "replicaCount"),
        ({"watchNamespaces": ["Team_A"]}, "watchNamespaces"),
        ({"operator": {"logFormat": "xml"}}, "logFormat"),
        ({"clickhouse": {"rateLimit": "ten per second"}}, "rateLimit"),
        ({"image": {"digest": "latest"}}, "digest"),
        ({"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": 42}}}, "annotations"),
        ({"resources": {"limits": {"memory": "lots"}}}, "memory"),
        ({"aws": {"region": "Europe"}}, "region"),
        ({"replicas": 2}, "replicas"),  # a typo for replicaCount must not be ignored
        ({"metrics": {"serviceMonitor": {"enable": True}}}, "enable"),
    ],
)
def test_values_schema_rejects_a_bad_value(values: dict[str, Any], complaint: str) -> None:
    result = helm("template", "chpl", values=values)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr


def test_a_created_api_key_secret_outside_the_namespaces_the_operator_reads_is_refused() -> None:
    values = {
        "watchNamespaces": ["team-a"],
        "clickhouse": {"apiKey": {"create": True, "namespaces": ["team-z"], "keyId": "a", "keySecret": "b"}},
    }
    result = helm("template", "chpl", values=values)
    assert result.returncode != 0
    assert (
        'clickhouse.apiKey.namespaces: "team-z" is not a namespace where the operator may read Secrets'
        in (result.stderr)
    )


def test_creating_the_api_key_secret_requires_the_key() -> None:
    result = helm("template", "chpl", values={"clickhouse": {"apiKey": {"create": True}}})
    assert result.returncode != 0
    assert "clickhouse.apiKey.keyId is required" in result.stderr


def test_cluster_wide_mode_watches_all_namespaces_and_peers_in_a_cluster_peering() -> None:
    manifests = render_scenario("default")
    args = operator_container(manifests)["args"]
    assert "--all-namespaces" in args
    assert not [a for a in args if a.startswith("--namespace")]
    assert f"--peering={PEERING_NAME}" in args
    assert the_one(manifests, "ClusterKopfPeering")["metadata"]["name"] == PEERING_NAME
    assert of_kind(manifests, "KopfPeering") == []
    assert of_kind(manifests, "Role") == []


def test_namespaced_mode_watches_only_the_listed_namespaces_and_peers_in_each() -> None:
    manifests = render_scenario("namespaced")
    args = operator_container(manifests)["args"]
    assert "--all-namespaces" not in args
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]
    peerings = of_kind(manifests, "KopfPeering")
    assert {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings} == {
        ("team-a", PEERING_NAME),
        ("team-b", PEERING_NAME),
    }
    assert of_kind(manifests, "ClusterKopfPeering") == []
    assert {r["metadata"]["namespace"] for r in of_kind(manifests, "Role")} == {"team-a", "team-b"}
    assert {b["metadata"]["namespace"] for b in of_kind(manifests, "RoleBinding")} == {"team-a", "team-b"}


@pytest.mark.parametrize("scenario", ["default", "single-replica"])
def test_each_replica_gets_a_distinct_peering_priority_from_its_statefulset_ordinal(scenario: str) -> None:
    # kopf pauses ALL operators that see a peer of equal priority: replicas must differ. A StatefulSet
    # labels each pod with its ordinal; the label becomes --priority through the downward API.
    manifests = render_scenario(scenario)
    statefulset = the_one(manifests, "StatefulSet")
    assert statefulset["spec"]["replicas"] == SCENARIOS[scenario].get("replicaCount", 2)
    assert of_kind(manifests, "Deployment") == []
    container = operator_container(manifests)
    assert "--priority=$(POD_INDEX)" in container["args"]
    env = env_of(container)
    assert env["POD_INDEX"] == {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}
    # kopf's identity in the peering object is POD_ID: the pod's stable name.
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # One ordinal never runs twice, and a rollout replaces one pod at a time.
    assert statefulset["spec"]["updateStrategy"] == {"type": "RollingUpdate"}


def test_pod_meets_pod_security_restricted_with_a_read_only_root_filesystem() -> None:
    manifests = render_scenario("default")
    pod_spec = the_one(manifests, "StatefulSet")["spec"]["template"]["spec"]
    assert_restricted(pod_spec)
    security = operator_container(manifests)["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 65532
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    # The only writable path: /tmp, an emptyDir (the image sets HOME=/tmp).
    assert operator_container(manifests)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    (volume,) = pod_spec["volumes"]
    assert volume["name"] == "tmp"
    assert "emptyDir" in volume


def test_probes_ask_kopfs_liveness_endpoint_the_operator_serves() -> None:
    container = operator_container(render_scenario("default"))
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    health_port = {p["name"]: p["containerPort"] for p in container["ports"]}["health"]
    assert health_port == 8080
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_resources_are_bounded() -> None:
    resources = operator_container(render_scenario("default"))["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}


def test_operator_settings_reach_the_environment() -> None:
    env = env_of(operator_container(render_scenario("irsa")))
    assert env["CHPL_CLUSTER_NAME"] == "prod-eu-1"
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["CHPL_CLICKHOUSE_RATE_LIMIT"] == "10/10s"
    assert env["CHPL_LOG_FORMAT"] == "json"
    assert env["CHPL_DRIFT_INTERVAL"] == "300"


def test_no_credentials_in_the_pod_environment() -> None:
    for scenario in SCENARIOS:
        env = env_of(operator_container(render_scenario(scenario)))
        # The operator's own settings are documented switches (CHPL_WATCH_SECRETS is a boolean), never keys.
        assert all(env[n] in ("true", "false") for n in env if n.startswith("CHPL_") and "SECRET" in n)
        names = {n for n in env if not n.startswith("CHPL_")}
        assert not {n for n in names if "SECRET" in n or "KEY" in n or n.startswith("AWS_ACCESS")}


def test_irsa_role_annotation_lands_on_the_service_account_the_pods_use() -> None:
    manifests = render_scenario("irsa")
    account = the_one(manifests, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE_ARN}
    pod_spec = the_one(manifests, "StatefulSet")["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == account["metadata"]["name"]
    assert pod_spec["automountServiceAccountToken"] is True


def test_chart_creates_the_api_key_secret_in_each_requested_namespace_when_asked() -> None:
    assert of_kind(render_scenario("default"), "Secret") == []
    secrets = of_kind(render_scenario("created-secret"), "Secret")
    assert {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in secrets} == {
        ("team-a", "clickhouse-api-key"),
        ("team-b", "clickhouse-api-key"),
    }
    assert all(set(s["stringData"]) == {"keyId", "keySecret"} for s in secrets)


def test_api_key_secret_defaults_to_the_release_namespace() -> None:
    values = {"clickhouse": {"apiKey": {"create": True, "keyId": "a", "keySecret": "b"}}}
    (secret,) = of_kind(render(values), "Secret")
    assert secret["metadata"]["namespace"] == NAMESPACE


def test_metrics_service_lists_every_replica_and_service_monitor_scrapes_it() -> None:
    manifests = render_scenario("monitoring")
    service = the_one(manifests, "Service")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert the_one(manifests, "StatefulSet")["spec"]["serviceName"] == service["metadata"]["name"]
    monitor = the_one(manifests, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert of_kind(render_scenario("default"), "ServiceMonitor") == []


def test_metrics_can_be_turned_off() -> None:
    manifests = render_scenario("metrics-off")
    assert "--metrics-port=0" in operator_container(manifests)["args"]
    assert "ports" not in the_one(manifests, "Service")["spec"]


def test_pod_disruption_budget_keeps_one_replica_when_enabled() -> None:
    budget = the_one(render_scenario("monitoring"), "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    assert of_kind(render_scenario("default"), "PodDisruptionBudget") == []


def test_network_policy_admits_only_the_health_and_metrics_ports() -> None:
    policy = the_one(render_scenario("monitoring"), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    health, metrics = policy["spec"]["ingress"]
    assert health == {"ports": [{"port": "health", "protocol": "TCP"}]}
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    *sources, helm_test = metrics["from"]
    assert sources == SCENARIOS["monitoring"]["networkPolicy"]["metricsFrom"]
    assert helm_test["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "helm-test"


def test_image_defaults_to_the_app_version_and_can_be_pinned_by_digest() -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))["appVersion"]
    assert operator_container(render_scenario("default"))["image"].endswith(
        f"/clickhouse-privatelink-operator:{app_version}"
    )
    assert operator_container(render_scenario("pinned-image"))["image"].endswith(":0.1.0@sha256:" + "ab" * 32)


def schema_paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Every value path the schema describes, descending into objects with fixed properties."""
    paths: set[str] = set()
    for key, child in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        paths.add(path)
        paths |= schema_paths(child, f"{path}.")
    return paths


def value_paths(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Every value path in values.yaml, not descending into free-form maps (annotations, labels...)."""
    paths: set[str] = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        paths.add(path)
        child = schema.get("properties", {}).get(key, {})
        if isinstance(value, dict) and "properties" in child:
            paths |= value_paths(value, child, f"{path}.")
    return paths


# A parent chart's globals are shared by all its subcharts: keys this chart does not read belong to others.
OPEN_OBJECTS = {"$.global"}


def closed_objects(schema: dict[str, Any], path: str = "$") -> list[str]:
    """Paths of objects with fixed properties that still accept unknown keys."""
    found = []
    if (
        "properties" in schema
        and schema.get("additionalProperties") is not False
        and path not in OPEN_OBJECTS
    ):
        found.append(path)
    for key, child in schema.get("properties", {}).items():
        found += closed_objects(child, f"{path}.{key}")
    return found


def test_values_schema_describes_every_value_and_nothing_else() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert value_paths(values, schema) == schema_paths(schema)
    assert closed_objects(schema) == [], "objects with fixed keys must reject unknown ones"


def test_zero_replicas_pause_the_operator() -> None:
    manifests = render({"replicaCount": 0, "podDisruptionBudget": {"enabled": True}})
    assert the_one(manifests, "StatefulSet")["spec"]["replicas"] == 0
    for version in KUBERNETES_VERSIONS:
        assert [error for m in manifests for error in kubernetes_errors(m, version)] == []
