"""Real clients against the Kubernetes stand-in: kubectl 1.35, the kubernetes Python client, the CLI."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import kubernetes
import pytest
import yaml

from tests.fixtures.kubernetes import CRD_FILE, KubeApi, KubeClient
from tests.fixtures.polling import wait_for
from tests.standins.kube_samples import API_VERSION, PLURAL, chpl


def _manifest(name: str, namespace: str, **spec: object) -> str:
    body = chpl(name, **spec)
    body["metadata"]["namespace"] = namespace
    return yaml.safe_dump(body)


def test_kubectl_apply_get_and_server_side_apply_of_a_custom_resource(
    kube_api: KubeApi, kube_namespace: str
) -> None:
    applied = kube_api.kubectl("apply", "-f", "-", input=_manifest("demo", kube_namespace))
    assert "clickhouseprivatelink.privatelink.clickhouse.dev/demo created" in applied.stdout
    again = kube_api.kubectl("apply", "-f", "-", input=_manifest("demo", kube_namespace))
    assert "unchanged" in again.stdout
    changed = kube_api.kubectl(
        "apply", "-f", "-", input=_manifest("demo", kube_namespace, deletionPolicy="Retain")
    )
    assert "configured" in changed.stdout
    ssa = kube_api.kubectl(
        "apply", "--server-side", "-f", "-", input=_manifest("demo", kube_namespace, deletionPolicy="Delete")
    )
    assert "serverside-applied" in ssa.stdout
    obj = yaml.safe_load(kube_api.kubectl("get", "chpl", "demo", "-n", kube_namespace, "-o", "yaml").stdout)
    assert obj["spec"]["deletionPolicy"] == "Delete"
    assert obj["spec"]["dns"] == {"mode": "Route53"}
    assert obj["metadata"]["generation"] == 3


def test_kubectl_get_by_short_name_category_and_wide(
    kube_api: KubeApi, kube: KubeClient, kube_namespace: str
) -> None:
    kube_api.kubectl("apply", "-f", "-", input=_manifest("demo", kube_namespace))
    status = {"conditions": [{"type": "Ready", "status": "False", "reason": "EndpointPending",
                              "lastTransitionTime": "2025-01-01T00:00:00Z"}], "privateDnsHostname": "demo.example"}  # fmt: skip
    kube.patch_status(API_VERSION, PLURAL, "demo", {"status": status}, kube_namespace)
    short = kube_api.kubectl("get", "chpl", "-n", kube_namespace).stdout.splitlines()
    assert short[0].split() == ["NAME", "READY", "HOSTNAME", "ENDPOINT", "AGE"]
    assert short[1].split()[:3] == ["demo", "False", "demo.example"]
    category = kube_api.kubectl("get", "clickhouse", "-n", kube_namespace).stdout
    assert "demo" in category
    wide = kube_api.kubectl("get", "chpl", "-n", kube_namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "READY", "REASON", "HOSTNAME", "ENDPOINT", "AGE"]
    assert "EndpointPending" in wide[1]


def test_kubectl_describe_shows_events(kube_api: KubeApi, kube: KubeClient, kube_namespace: str) -> None:
    kube_api.kubectl("apply", "-f", "-", input=_manifest("demo", kube_namespace))
    obj = kube.get(API_VERSION, PLURAL, "demo", kube_namespace)
    event = {
        "metadata": {"generateName": "demo-"},
        "involvedObject": {"apiVersion": API_VERSION, "kind": "ClickHousePrivateLink", "name": "demo",
                           "namespace": kube_namespace, "uid": obj["metadata"]["uid"]},
        "reason": "Provisioning", "message": "creating the VPC endpoint", "type": "Normal",
        "source": {"component": "clickhouse-privatelink-operator"},
        "firstTimestamp": obj["metadata"]["creationTimestamp"], "lastTimestamp": obj["metadata"]["creationTimestamp"],
        "count": 1,
    }  # fmt: skip
    kube.create("v1", "events", event, kube_namespace)
    described = kube_api.kubectl("describe", "chpl", "demo", "-n", kube_namespace).stdout
    assert "Kind:         ClickHousePrivateLink" in described
    assert "Provisioning" in described and "creating the VPC endpoint" in described


def test_kubectl_secret_and_namespace_lifecycle(
    kube_api: KubeApi, kube: KubeClient, kube_namespace: str
) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api", "namespace": kube_namespace},
              "stringData": {"keyId": "id", "keySecret": "secret"}}  # fmt: skip
    assert "secret/api created" in kube_api.kubectl("apply", "-f", "-", input=yaml.safe_dump(secret)).stdout
    secret["stringData"]["keySecret"] = "rotated"
    assert "configured" in kube_api.kubectl("apply", "-f", "-", input=yaml.safe_dump(secret)).stdout
    listed = kube_api.kubectl("get", "secrets", "-n", kube_namespace).stdout.splitlines()
    assert listed[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert listed[1].split()[:3] == ["api", "Opaque", "2"]
    assert "keySecret:  7 bytes" in kube_api.kubectl("describe", "secret", "api", "-n", kube_namespace).stdout
    kube_api.kubectl("delete", "secret", "api", "-n", kube_namespace)
    assert kube.get_or_none("v1", "secrets", "api", kube_namespace) is None

    other = f"{kube_namespace}-x"
    kube_api.kubectl("create", "namespace", other)
    kube_api.kubectl("create", "configmap", "cfg", "-n", other, "--from-literal=a=b")
    assert "Active" in kube_api.kubectl("get", "ns", other).stdout
    kube_api.kubectl("delete", "namespace", other)
    assert kube.get_or_none("v1", "namespaces", other) is None


def test_kubectl_delete_waits_for_finalizers(
    kube_api: KubeApi, kube: KubeClient, kube_namespace: str
) -> None:
    body = chpl("held")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    kube.create(API_VERSION, PLURAL, body, kube_namespace)
    deleting = subprocess.Popen(
        kube_api.kubectl_command("delete", "chpl", "held", "-n", kube_namespace, "--timeout=30s"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=kube_api.env(),
    )  # fmt: skip
    try:
        wait_for(
            lambda: kube.get(API_VERSION, PLURAL, "held", kube_namespace)["metadata"].get(
                "deletionTimestamp"
            ),
            message="deletionTimestamp",
        )
        assert deleting.poll() is None, (
            deleting.communicate()
        )  # still waiting: the finalizer holds the object
        kube.patch(API_VERSION, PLURAL, "held", {"metadata": {"finalizers": None}}, kube_namespace)
        out, err = deleting.communicate(timeout=30)
        assert deleting.returncode == 0, err
        assert 'clickhouseprivatelink.privatelink.clickhouse.dev "held" deleted' in out
    finally:
        if deleting.poll() is None:
            deleting.kill()
            deleting.communicate()
    assert kube.get_or_none(API_VERSION, PLURAL, "held", kube_namespace) is None


def test_kubectl_validation_errors_read_like_kube_apiserver(kube_api: KubeApi, kube_namespace: str) -> None:
    bad = chpl("bad")
    bad["metadata"]["namespace"] = kube_namespace
    bad["spec"]["aws"]["vpcId"] = "abc"
    result = kube_api.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert result.returncode != 0
    # Two causes (the pattern and the CEL rule's message), listed as kube-apiserver lists several.
    assert result.stderr == (
        'The ClickHousePrivateLink "bad" is invalid: \n'
        "* spec.aws.vpcId: Invalid value: \"abc\": spec.aws.vpcId in body should match '^vpc-[0-9a-f]{8,17}$'\n"
        '* spec.aws.vpcId: Invalid value: "abc": vpcId must look like vpc-0123456789abcdef0\n'
    )
    typo = chpl("typo")
    typo["metadata"]["namespace"] = kube_namespace
    typo["spec"]["typo"] = 1
    result = kube_api.kubectl("apply", "-f", "-", input=yaml.safe_dump(typo), check=False)
    assert 'strict decoding error: unknown field "spec.typo"' in result.stderr


def test_kubectl_applies_and_deletes_a_crd(kube_api: KubeApi, kube: KubeClient) -> None:
    crd = yaml.safe_load(CRD_FILE.read_text())
    crd["metadata"]["name"] = "gadgets.example.org"
    crd["spec"]["group"] = "example.org"
    crd["spec"]["names"] = {
        "plural": "gadgets",
        "singular": "gadget",
        "kind": "Gadget",
        "shortNames": ["gdg"],
    }
    kube_api.kubectl("apply", "-f", "-", input=yaml.safe_dump(crd))
    assert "No resources found" in kube_api.kubectl("get", "gdg", "-A").stderr
    kube_api.kubectl("delete", "crd", "gadgets.example.org")
    assert (
        kube.get_or_none("apiextensions.k8s.io/v1", "customresourcedefinitions", "gadgets.example.org")
        is None
    )


def test_python_client_lists_creates_and_patches(kube_api: KubeApi, kube_namespace: str) -> None:
    client = kubernetes.config.new_client_from_config(config_file=str(kube_api.kubeconfig))
    try:
        core = kubernetes.client.CoreV1Api(client)
        core.create_namespaced_config_map(
            kube_namespace,
            kubernetes.client.V1ConfigMap(
                metadata=kubernetes.client.V1ObjectMeta(name="cfg"), data={"a": "1"}
            ),
        )
        core.patch_namespaced_config_map("cfg", kube_namespace, {"data": {"b": "2"}})
        listed = core.list_namespaced_config_map(kube_namespace, label_selector="")
        assert [(c.metadata.name, c.data) for c in listed.items] == [("cfg", {"a": "1", "b": "2"})]
        custom = kubernetes.client.CustomObjectsApi(client)
        custom.create_namespaced_custom_object(
            "privatelink.clickhouse.dev", "v1alpha1", kube_namespace, PLURAL, chpl("py")
        )
        custom.patch_namespaced_custom_object_status(
            "privatelink.clickhouse.dev",
            "v1alpha1",
            kube_namespace,
            PLURAL,
            "py",
            {"status": {"serviceId": "s"}},
        )
        objs = custom.list_cluster_custom_object("privatelink.clickhouse.dev", "v1alpha1", PLURAL)
        mine = [o for o in objs["items"] if o["metadata"]["namespace"] == kube_namespace]
        assert [(o["metadata"]["name"], o["status"]) for o in mine] == [("py", {"serviceId": "s"})]
        with pytest.raises(kubernetes.client.ApiException) as err:
            custom.get_namespaced_custom_object(
                "privatelink.clickhouse.dev", "v1alpha1", kube_namespace, PLURAL, "nope"
            )
        assert err.value.status == 404
    finally:
        client.close()


def test_standin_command_serves_writes_kubeconfig_and_exits_on_sigterm(tmp_path: pathlib.Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "clickhouse_privatelink_testkit", "standin", "kubernetes", "--port", "0",
         "--kubeconfig", str(kubeconfig), "--crd", str(CRD_FILE)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("kubernetes stand-in serving on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["clusters"][0]["cluster"]["server"] == url
        client = KubeClient(kubeconfig)
        try:
            crd = client.get(
                "apiextensions.k8s.io/v1", "customresourcedefinitions", f"{PLURAL}.privatelink.clickhouse.dev"
            )
            assert crd["status"]["acceptedNames"]["shortNames"] == ["chpl"]
        finally:
            client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
