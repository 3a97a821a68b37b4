"""Values charts of this kind expose, with the former hard-coded settings as defaults: each reaches the
manifests, and the API key Secret goes where the operator reads it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.packaging.support import (
    KUBERNETES_VERSIONS,
    NAMESPACE,
    RELEASE,
    helm,
    kubernetes_errors,
    of_kind,
    operator_container,
    render,
    the_one,
)

CA_VOLUME = {"name": "corporate-ca", "configMap": {"name": "corporate-ca-bundle"}}
CA_MOUNT = {"name": "corporate-ca", "mountPath": "/etc/ssl/corporate", "readOnly": True}
EVERYTHING: dict[str, Any] = {
    "global": {"imageRegistry": "registry.example.com", "storageClass": "gp3"},
    "commonLabels": {"team": "platform", "cost-center": "42"},
    "extraArgs": ["--standalone"],
    "envFrom": [{"configMapRef": {"name": "proxy-settings"}}],
    "extraEnv": [{"name": "AWS_CA_BUNDLE", "value": "/etc/ssl/corporate/ca.pem"}],
    "extraVolumes": [CA_VOLUME],
    "extraVolumeMounts": [CA_MOUNT],
    "logLevel": "debug",
    "metrics": {
        "serviceMonitor": {
            "enabled": True,
            "namespace": "monitoring",
            "relabelings": [{"targetLabel": "cluster", "replacement": "prod-eu-1"}],
            "metricRelabelings": [{"action": "drop", "regex": "python_gc_.*", "sourceLabels": ["__name__"]}],
        }
    },
}


def test_global_from_a_parent_chart_is_accepted() -> None:
    result = helm("template", RELEASE, values={"global": {"imageRegistry": "x"}})
    assert result.returncode == 0, result.stderr


def test_every_new_value_reaches_the_manifests() -> None:
    manifests = render(EVERYTHING)
    container = operator_container(manifests)
    pod_spec = the_one(manifests, "StatefulSet")["spec"]["template"]["spec"]
    assert container["args"][-1] == "--standalone"
    assert "--verbose" in container["args"]
    assert container["envFrom"] == EVERYTHING["envFrom"]
    assert CA_MOUNT in container["volumeMounts"]
    assert CA_VOLUME in pod_spec["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]  # still there
    monitor = the_one(manifests, "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["relabelings"] == EVERYTHING["metrics"]["serviceMonitor"]["relabelings"]
    assert endpoint["metricRelabelings"] == EVERYTHING["metrics"]["serviceMonitor"]["metricRelabelings"]
    for manifest in manifests:
        assert manifest["metadata"]["labels"].items() >= EVERYTHING["commonLabels"].items(), manifest["kind"]
    # Never in a selector: changing them must not orphan the pods.
    selector = the_one(manifests, "StatefulSet")["spec"]["selector"]["matchLabels"]
    assert "team" not in selector


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_new_value_renders_valid_manifests(version: str) -> None:
    errors = [error for manifest in render(EVERYTHING) for error in kubernetes_errors(manifest, version)]
    assert errors == []


def test_log_level_info_is_the_default_and_adds_no_flag() -> None:
    assert "--verbose" not in operator_container(render({}))["args"]
    assert "--verbose" in operator_container(render({"operator": {"verbose": True}}))["args"]


def test_security_contexts_default_to_the_restricted_ones_and_can_be_replaced() -> None:
    pod_spec = the_one(render({}), "StatefulSet")["spec"]["template"]["spec"]
    assert pod_spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    changed = {
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsUser": 10001,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    manifests = render(changed)
    # Helm merges maps into the defaults: the keys given win, the other defaults stay (null removes one).
    assert (
        the_one(manifests, "StatefulSet")["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001
    )
    assert operator_container(manifests)["securityContext"]["runAsUser"] == 10001
    removed = render({"podSecurityContext": {"fsGroup": None}})
    assert "fsGroup" not in the_one(removed, "StatefulSet")["spec"]["template"]["spec"]["securityContext"]


def test_service_account_token_mount_is_a_value_on_the_account_and_the_pod() -> None:
    for mount in (True, False):
        manifests = render({"serviceAccount": {"automountServiceAccountToken": mount}})
        assert the_one(manifests, "ServiceAccount")["automountServiceAccountToken"] is mount
        pod_spec = the_one(manifests, "StatefulSet")["spec"]["template"]["spec"]
        assert pod_spec["automountServiceAccountToken"] is mount


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"logLevel": "trace"}, "logLevel"),
        ({"extraArgs": "--verbose"}, "extraArgs"),
        ({"extraVolumeMounts": [{"name": "ca"}]}, "mountPath"),
        ({"rbac": {"allowAllSecret": True}}, "allowAllSecret"),
        ({"crds": {"keepp": True}}, "keepp"),
        ({"commonLabels": {"team": 1}}, "commonLabels"),
    ],
)
def test_values_schema_rejects_a_bad_new_value(values: dict[str, Any], complaint: str) -> None:
    result = helm("template", RELEASE, values=values)
    assert result.returncode != 0
    assert complaint in result.stderr


def secret_namespaces(values: dict[str, Any]) -> set[str]:
    return {s["metadata"]["namespace"] for s in of_kind(render(values), "Secret")}


KEY = {"create": True, "keyId": "a", "keySecret": "b"}


def test_created_api_key_secret_goes_to_every_watched_namespace() -> None:
    assert secret_namespaces({"watchNamespaces": ["team-a", "team-b"], "clickhouse": {"apiKey": KEY}}) == {
        "team-a",
        "team-b",
    }


def test_created_api_key_secret_goes_to_the_secret_namespaces_when_set() -> None:
    values = {"rbac": {"secretNamespaces": ["team-c"]}, "clickhouse": {"apiKey": KEY}}
    assert secret_namespaces(values) == {"team-c"}


def test_created_api_key_secret_cluster_wide_without_namespaces_is_in_the_release_namespace_and_notes_say_so() -> (
    None
):
    values = {"clickhouse": {"apiKey": KEY}}
    assert secret_namespaces(values) == {NAMESPACE}
    result = helm("install", RELEASE, "--dry-run=client", values=values)
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f'Secret "clickhouse-api-key" in {NAMESPACE}.' in notes
    assert "a resource in any other namespace needs its own copy of the Secret" in notes


def test_notes_name_the_watched_namespaces_the_secret_went_to_and_what_the_operator_may_read() -> None:
    values = {"watchNamespaces": ["team-a", "team-b"], "clickhouse": {"apiKey": KEY}}
    result = helm("install", RELEASE, "--dry-run=client", values=values)
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert 'Secret "clickhouse-api-key" in team-a, team-b.' in notes
    assert "needs its own copy" not in notes
    assert "may read only Secrets named: clickhouse-api-key" in notes
