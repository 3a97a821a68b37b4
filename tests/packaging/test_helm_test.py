"""`helm test`: the Pod the chart renders as a test hook, and its script (files/helm-test.py) run against a
real HTTP server that answers as the Kubernetes API and the replicas' /metrics do."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from clickhouse_privatelink import metrics
from tests.packaging.support import (
    CHART,
    DEPLOY,
    NAMESPACE,
    Manifest,
    assert_restricted,
    load_script,
    of_kind,
    render,
    the_one,
)

SCRIPT = CHART / "files" / "helm-test.py"
HOOK = "helm.sh/hook"


def test_hooks(values: dict[str, Any] | None = None) -> list[Manifest]:
    return [m for m in render(values or {}) if m["metadata"].get("annotations", {}).get(HOOK) == "test"]


test_hooks.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def test_the_test_pod_is_a_test_hook_needing_no_permission() -> None:
    hooks = test_hooks()
    assert sorted(m["kind"] for m in hooks) == ["ConfigMap", "Pod"]
    for hook in hooks:
        assert "hook-succeeded" in hook["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    pod = the_one(hooks, "Pod")
    assert "serviceAccountName" not in pod["spec"]  # the namespace's default account: discovery only
    assert test_hooks({"helmTest": {"enabled": False}}) == []
    # Plain YAML (deploy/operator.yaml) has no use for it.
    assert "helm.sh/hook: test" not in (DEPLOY / "operator.yaml").read_text(encoding="utf-8")


def test_the_test_pod_meets_restricted_pod_security_and_runs_the_operators_image() -> None:
    manifests = render({})
    pod = the_one(test_hooks(), "Pod")
    spec = pod["spec"]
    (container,) = spec["containers"]
    operator = the_one(manifests, "StatefulSet")["spec"]["template"]["spec"]
    assert container["image"] == operator["containers"][0]["image"]
    assert spec["securityContext"] == operator["securityContext"]
    assert_restricted(spec)
    assert container["resources"]["limits"]
    assert spec["restartPolicy"] == "Never"
    (config_map,) = of_kind(test_hooks(), "ConfigMap")
    assert config_map["data"]["helm-test.py"] == SCRIPT.read_text(encoding="utf-8")


def test_the_script_reads_only_what_the_pod_sets() -> None:
    pod = the_one(test_hooks(), "Pod")
    names = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    read = set(re.findall(r"env\[['\"](\w+)['\"]\]", SCRIPT.read_text(encoding="utf-8")))
    assert read <= names
    without_metrics = the_one(test_hooks({"metrics": {"enabled": False}}), "Pod")
    assert "METRICS_PORT" not in {e["name"] for e in without_metrics["spec"]["containers"][0]["env"]}


def test_network_policy_lets_the_test_pod_read_the_metrics_when_sources_are_limited() -> None:
    limited = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    policy = the_one(render({"networkPolicy": {"metricsFrom": limited}}), "NetworkPolicy")
    sources = policy["spec"]["ingress"][1]["from"]
    pod_labels = the_one(test_hooks(), "Pod")["metadata"]["labels"]
    (test_peer,) = [s for s in sources if "podSelector" in s]
    assert test_peer["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert limited[0] in sources


# -- The script, run -----------------------------------------------------------------------------------------


class FakeCluster:
    """What the test Pod talks to: the API (token checked) and each replica's /healthz and /metrics."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.healthy = [False, True]  # whether replica 1 answers /healthz, in turn (the last one repeats)
        self.active = [False, True]
        self.served = True
        self.book = metrics.ResourceBook()  # the replicas' gauges, in turn (the registry is process-wide)

    def answer(self, path: str, auth: str | None) -> tuple[int, bytes]:
        if path.startswith("/metrics/"):
            self.book.set_active(self.active[int(path.rsplit("/", 1)[1])])
            return 200, generate_latest()
        if path.startswith("/healthz/"):
            healthy = self.healthy.pop(0) if len(self.healthy) > 1 else self.healthy[0]
            return (200, b"{}") if healthy or path.endswith("/0") else (503, b"")
        if auth != f"Bearer {self.token}":
            return 401, b"{}"
        if path == "/apis/privatelink.clickhouse.dev/v1alpha1":
            resources = [{"name": "clickhouseprivatelinks"}] if self.served else []
            return 200, json.dumps({"resources": resources}).encode()
        return 404, b"{}"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeCluster, str]]:
    fake = FakeCluster(token="t0ken")
    lock = threading.Lock()  # the operator's registry is process-wide: one /metrics answer at a time

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                status, body = fake.answer(self.path, self.headers.get("Authorization"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        fake.book.set_active(False)


def pod_env(timeout: float) -> dict[str, str]:
    env = {e["name"]: e["value"] for e in the_one(test_hooks(), "Pod")["spec"]["containers"][0]["env"]}
    return {**env, "NAMESPACE": NAMESPACE, "TIMEOUT_SECONDS": str(timeout)}


@pytest.fixture
def run_script(
    cluster: tuple[FakeCluster, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[float], None]:
    """files/helm-test.py's main, aimed at the fake cluster (the Pod's paths and DNS names swapped)."""
    _, url = cluster
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    module = load_script(SCRIPT)
    account = tmp_path / "account"
    account.mkdir()
    (account / "token").write_text("t0ken\n", encoding="utf-8")
    monkeypatch.setattr(module, "ACCOUNT", str(account))
    monkeypatch.setattr(module, "API", url)
    monkeypatch.setattr(module, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(module, "replica_url", lambda env, ordinal, port, path: f"{url}{path}/{ordinal}")
    return lambda timeout: module.main(pod_env(timeout))


def test_the_script_passes_when_replicas_are_ready_the_crd_served_and_one_replica_active(
    run_script: Callable[[float], None], capsys: pytest.CaptureFixture[str]
) -> None:
    run_script(10)
    out = capsys.readouterr().out
    assert "ok: operator running: 2 replica(s) answer /healthz" in out  # after polling past a 503
    assert "ok: metrics answer, exactly one replica active" in out
    assert out.rstrip().endswith("helm test passed")


@pytest.mark.parametrize("fault", ["no-replica-active", "two-active", "crd-not-served", "replica-down"])
def test_the_script_fails_and_says_why(
    fault: str,
    cluster: tuple[FakeCluster, str],
    run_script: Callable[[float], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake, _ = cluster
    if fault == "no-replica-active":
        fake.active = [False, False]
    elif fault == "two-active":
        fake.active = [True, True]
    elif fault == "crd-not-served":
        fake.served = False
    else:
        fake.healthy = [False]
    with pytest.raises(SystemExit) as exit_:
        run_script(0.3)
    assert exit_.value.code == 1
    assert "FAILED:" in capsys.readouterr().out


def test_checkov_skips_on_the_test_pod_are_the_probes_only_each_with_its_reason() -> None:
    # checkov's per-resource suppressions: a one-shot Pod has no process to probe; nothing else is waived.
    annotations = the_one(test_hooks(), "Pod")["metadata"]["annotations"]
    skips = {
        value.split("=", 1)[0]: value.split("=", 1)[1]
        for k, value in annotations.items()
        if k.startswith("checkov.io/skip")
    }
    assert set(skips) == {"CKV_K8S_8", "CKV_K8S_9"}
    assert all(reason.strip() for reason in skips.values())
    for manifest in render({}):
        if manifest["kind"] != "Pod":
            assert not any(k.startswith("checkov.io/") for k in manifest["metadata"].get("annotations", {}))
