"""End-to-end fixtures: the operator as a real process against the Kubernetes, AWS and ClickHouse stand-ins.

Every fixture can target real services instead (see tests/fixtures/ and README "Testing against real
services"); the operator process is always the real command a user runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes.client.exceptions import ApiException

from clickhouse_privatelink import constants as c
from clickhouse_privatelink_testkit import compressed_clock
from clickhouse_privatelink_testkit.launch import start_standin, stop_process
from clickhouse_privatelink_testkit.sandbox import Kube
from clickhouse_privatelink_testkit.standins.aws import Network, seed_network
from clickhouse_privatelink_testkit.standins.aws_faults import AwsFaultControl
from clickhouse_privatelink_testkit.standins.data_plane import ADDRESS_MAP
from tests.fixtures.aws import ENDPOINT_PENDING_SECONDS, AwsTarget
from tests.fixtures.clickhouse import ClickHouseApi, ClickHouseOrg
from tests.fixtures.kubernetes import KubeApi
from tests.fixtures.polling import wait_for

# Short waits: the stand-ins run on a compressed clock, and tests poll with deadlines.
OPERATOR_ENV = {
    "CHPL_CLUSTER_NAME": "e2e",
    "CHPL_POLL_INTERVAL": "0.5",
    "CHPL_ERROR_RETRY_INTERVAL": "3",
    "CHPL_MAX_BACKOFF": "5",
    "CHPL_DRIFT_INTERVAL": "2",
    # The read and batch windows on the same compressed clock as the drift interval (defaults 10 s and 1 s).
    "CHPL_READ_WINDOW": "1",
    "CHPL_ROUTE53_BATCH_WINDOW": "0.2",
    "CHPL_LOG_FORMAT": "json",
    "CHPL_WATCH_SECRETS": "true",
    # Never ask the link-local instance metadata service from a test (the data plane names the VPC).
    "AWS_EC2_METADATA_DISABLED": "true",
}
READY_TIMEOUT = 60.0
# The data plane honours an allow-list entry this long after it appears (ClickHouse applies it after a while).
ALLOW_LIST_DELAY = 2.0
# Namespaces carrying this label are left to the tenancy tests' own policies; every other test namespace is
# allowed everything (one team per cluster), so that the other tests are about what they test.
STRICT_TENANCY_LABEL = "e2e.chpl.test/strict-tenancy"
# A pass's one Normal Event (decisions/status.py fold_events) and how it names each change it folds in.
FOLDING_REASONS = ("Ready", "DriftRepaired", "Reconciled", "Released")
FOLDED_REASON = re.compile(r"(?:^|\(|; )([A-Z][A-Za-z]+): ")
E2E_POLICY = {
    "namespaces": {
        "selector": {"matchExpressions": [{"key": STRICT_TENANCY_LABEL, "operator": "DoesNotExist"}]}
    },
    "allow": {k: ["*"] for k in ("vpcIds", "roleArns", "hostedZoneIds", "organizationIds", "apiUrls")},
    # test_errors names keyIdKey "id" (absent from its Secret) to reach CredentialsInvalid.
    "secrets": {"keys": ["id"]},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class DataPlane:
    """The data-plane stand-in of one VPC: the operator is told it runs there (CHPL_OPERATOR_VPC_ID)."""

    network: Network
    env: dict[str, str]
    log: Path
    rogue_file: Path  # while it exists, the interfaces present certificates from a CA nobody trusts


@pytest.fixture(scope="session")
def data_plane(
    aws_target: AwsTarget, clickhouse_api: ClickHouseApi, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DataPlane | None]:
    """A VPC with its DNS resolver and interfaces (test kit's data_plane.py); None against real services."""
    if aws_target.endpoint_url is None or clickhouse_api.control is None:
        yield None
        return
    network = seed_network(aws_target.endpoint_url, "us-east-1", cidr="10.48.0.0/16")
    folder = tmp_path_factory.mktemp("dataplane")
    ca_file, log = folder / "ca.pem", folder / "dataplane.log"
    args = ["--aws-url", aws_target.endpoint_url, "--clickhouse-url", clickhouse_api.url]
    args += ["--vpc-id", network.vpc_id, "--ca-file", str(ca_file), "--interval", "0.5"]
    args += ["--allow-list-delay", str(ALLOW_LIST_DELAY), "--rogue-file", str(folder / "rogue")]
    proc, resolver = start_standin("dataplane", args, log_path=log)
    env = {
        "CHPL_OPERATOR_VPC_ID": network.vpc_id,
        "CHPL_REACHABILITY_TIMEOUT": "1",
        # Test-only settings: the stand-in's resolver, its interfaces' loopback addresses, its CA.
        "CHPL_TEST_DNS_RESOLVER": resolver,
        "CHPL_TEST_ADDRESS_MAP": ADDRESS_MAP,
        "CHPL_TEST_CA_FILE": str(ca_file),
    }
    try:
        yield DataPlane(network=network, env=env, log=log, rogue_file=folder / "rogue")
    finally:
        stop_process(proc)


@pytest.fixture
def plane(data_plane: DataPlane | None) -> DataPlane:
    """The data plane, for the tests that break it (stand-ins only, as every test that drives a stand-in's
    control API: against real services these fail here, saying why, rather than pass without checking)."""
    assert data_plane is not None, "the data-plane stand-in serves the stand-ins only (no E2E_AWS run)"
    return data_plane


@pytest.fixture(scope="session")
def k8s(kube_api: KubeApi) -> Kube:
    """The official client on the session's Kubernetes API (the CRD is installed by ``kube_api``)."""
    return Kube(kube_api.kubeconfig)


@dataclass
class OperatorProcess:
    """The operator command, run as its own process; restartable."""

    env: dict[str, str]
    log_dir: Path
    clickhouse_url: str
    metrics_port: int = field(default_factory=_free_port)
    # No peering by default; ["--peering", NAME, "--priority", N] makes it a replica of a peering.
    peering_args: list[str] = field(default_factory=lambda: ["--standalone"])
    proc: subprocess.Popen[str] | None = None
    runs: int = 0

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        cmd = [sys.executable, "-m", "clickhouse_privatelink", "run", "--all-namespaces", *self.peering_args]
        cmd += ["--liveness", "", "--metrics-port", str(self.metrics_port)]
        log = open(self.log_path, "w")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=self.env)
        wait_for(self._serving_metrics, timeout=30)

    def _serving_metrics(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"operator exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}"
            )
        try:
            return httpx.get(self.metrics_url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers, no status writes, whatever the operator was doing."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def logs(self) -> str:
        return "\n".join(
            (self.log_dir / f"operator-{i}.log").read_text(errors="replace") for i in range(1, self.runs + 1)
        )

    def metric(self, name: str, **labels: str) -> float:
        """The current value of one sample on /metrics (0 when absent)."""
        text = httpx.get(self.metrics_url, timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


# Package scope: the operator stops when the e2e tests end, so it never touches other tests' objects.
@pytest.fixture(scope="package")
def operator(
    k8s: Kube,
    kube_api: KubeApi,
    aws_target: AwsTarget,
    clickhouse_api: ClickHouseApi,
    data_plane: DataPlane | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    env = {**os.environ, **OPERATOR_ENV, **aws_target.env, "KUBECONFIG": str(kube_api.kubeconfig)}
    env.update(data_plane.env if data_plane is not None else {})
    if clickhouse_api.control is not None:
        # The operator's client paces itself and waits on the stand-in's compressed clock.
        env.update(compressed_clock.operator_env(clickhouse_api.time_scale))
    env["CHPL_CLICKHOUSE_API_URLS"] = clickhouse_api.url
    k8s.allow("e2e-allow-all", E2E_POLICY)
    op = OperatorProcess(
        env=env, log_dir=tmp_path_factory.mktemp("operator"), clickhouse_url=clickhouse_api.url
    )
    op.start()
    try:
        yield op
    finally:
        op.stop()


@dataclass
class Link:
    """One ClickHousePrivateLink under test, and the handles to check it."""

    k8s: Kube
    namespace: str
    name: str
    body: dict[str, Any]

    def get(self) -> dict[str, Any] | None:
        return self.k8s.get_link(self.namespace, self.name)

    def status(self) -> dict[str, Any]:
        obj = self.get() or {}
        return dict(obj.get("status", {}))

    def condition(self, type_: str) -> dict[str, Any] | None:
        return next((x for x in self.status().get("conditions", []) if x.get("type") == type_), None)

    def wait_condition(
        self, type_: str, *, status: str, reason: str | None = None, timeout: float = READY_TIMEOUT
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            cond = self.condition(type_)
            if cond is None or cond.get("status") != status:
                return None
            if reason is not None and cond.get("reason") != reason:
                return None
            return cond

        return wait_for(
            check, timeout=timeout, interval=0.2, message=f"{self.name}: {type_}={status} {reason}"
        )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        self.wait_condition("Ready", status="True", timeout=timeout)
        return self.status()

    def patch_spec(self, spec: dict[str, Any]) -> None:
        self.k8s.custom.patch_namespaced_custom_object(
            c.GROUP, c.VERSION, self.namespace, c.PLURAL, self.name, {"spec": spec}
        )

    def delete(self) -> None:
        self.k8s.delete_link(self.namespace, self.name)

    def wait_gone(self, timeout: float = READY_TIMEOUT) -> None:
        wait_for(
            lambda: self.get() is None, timeout=timeout, interval=0.2, message=f"{self.name} to be deleted"
        )

    def wait_events(self, *reasons: str, timeout: float = 15.0) -> None:
        """Events are posted in the background: wait until every reason has been seen."""
        wait_for(
            lambda: set(reasons) <= set(self.event_reasons()), timeout=timeout, message=f"events {reasons}"
        )

    def event_reasons(self) -> list[str]:
        """The Events' reasons, and those of the changes a pass folded into its one Normal Event (``Ready``,
        ``DriftRepaired``, ``Reconciled``, ``Released``: decisions/status.py fold_events lists each as
        ``Reason: message``)."""
        reasons: list[str] = []
        for event in self.k8s.events(self.namespace, self.name):
            reasons.append(event.reason)
            if event.type == "Normal" and event.reason in FOLDING_REASONS:
                reasons.extend(FOLDED_REASON.findall(event.message or ""))
        return reasons

    def wait_secret_version(self, version: str, timeout: float = 10.0) -> None:
        """Wait until the Secret watch has marked the resource with the Secret's ``version`` (the mark is what
        starts its pass)."""

        def marked() -> bool:
            annotations = (self.get() or {}).get("metadata", {}).get("annotations") or {}
            return bool(annotations.get(c.ANNOTATION_SECRET_VERSION) == version)

        wait_for(marked, timeout=timeout, message="the resource marked with the Secret's version")


def assert_quiet_over_drift_checks(link: Link, operator: OperatorProcess, k8s: Kube, checks: int = 3) -> None:
    """Over ``checks`` drift checks of the operator's resources (2 s apart in e2e), nothing of ``link`` changes:
    no status write (its resourceVersion stays), no Event."""
    before = link.get()
    assert before is not None
    events_before = len(k8s.events(link.namespace, link.name))
    drift_passes = operator.metric("chpl_reconciles_total", kind="drift")
    wait_for(
        lambda: operator.metric("chpl_reconciles_total", kind="drift") >= drift_passes + checks,
        timeout=15,
        message=f"{checks} drift checks",
    )
    after = link.get()
    assert after is not None
    changed = {
        k: (before["status"].get(k), v) for k, v in after["status"].items() if before["status"].get(k) != v
    }
    assert changed == {}
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert len(k8s.events(link.namespace, link.name)) == events_before


class LinkFactory:
    """Creates Secrets and ClickHousePrivateLinks in the test's namespace, for its org and VPC."""

    SECRET = "clickhouse-api-key"

    def __init__(
        self, k8s: Kube, operator: OperatorProcess, namespace: str, org: ClickHouseOrg, network: Network
    ) -> None:
        self.k8s = k8s
        self.operator = operator
        self.namespace = namespace
        self.org = org
        self.network = network
        self.created: list[Link] = []

    def secret(self, name: str, key_id: str, key_secret: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "labels": {c.LABEL_API_KEY: "true"}},
            "stringData": {"keyId": key_id, "keySecret": key_secret},
        }
        self.k8s.core.create_namespaced_secret(self.namespace, body)

    def __call__(
        self,
        *,
        name: str | None = None,
        clickhouse: dict[str, Any] | None = None,
        aws: dict[str, Any] | None = None,
        dns: dict[str, Any] | None = None,
        **spec: Any,
    ) -> Link:
        name = name or f"link-{uuid.uuid4().hex[:6]}"
        ch: dict[str, Any] = {
            "organizationId": self.org.org_id,
            "serviceId": self.org.service_id,
            "credentialsSecretRef": {"name": self.SECRET},
            "apiUrl": self.operator.clickhouse_url,
        }
        ch.update(clickhouse or {})
        aws_spec: dict[str, Any] = {
            "region": self.network.region,
            "vpcId": self.network.vpc_id,
            "subnetIds": list(self.network.subnet_ids),
            "securityGroupIds": [self.network.security_group_id],
        }
        aws_spec.update(aws or {})
        full_spec = {
            "clickhouse": {k: v for k, v in ch.items() if v is not None},
            "aws": {k: v for k, v in aws_spec.items() if v is not None},
            **({"dns": dns} if dns else {}),
            **spec,
        }
        body = {
            "apiVersion": c.API_VERSION,
            "kind": c.KIND,
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": full_spec,
        }
        self.k8s.custom.create_namespaced_custom_object(c.GROUP, c.VERSION, self.namespace, c.PLURAL, body)
        link = Link(self.k8s, self.namespace, name, body)
        self.created.append(link)
        return link

    def cleanup(self) -> None:
        for link in self.created:
            with contextlib.suppress(ApiException):
                link.delete()
        for link in self.created:
            link.wait_gone(timeout=READY_TIMEOUT)


@pytest.fixture
def make_link(
    k8s: Kube,
    operator: OperatorProcess,
    kube_namespace: str,
    clickhouse_org: ClickHouseOrg,
    aws_network: Network,
) -> Iterator[LinkFactory]:
    """Create the API-key Secret and ClickHousePrivateLinks for this test's org and VPC; delete them after."""
    factory = LinkFactory(k8s, operator, kube_namespace, clickhouse_org, aws_network)
    factory.secret(LinkFactory.SECRET, clickhouse_org.key_id, clickhouse_org.key_secret)
    yield factory
    factory.cleanup()


class Cloud:
    """Direct reads of AWS and ClickHouse, bypassing the operator."""

    def __init__(
        self, aws: AwsTarget, network: Network, clickhouse: ClickHouseApi, org: ClickHouseOrg
    ) -> None:
        self.ec2 = aws.client("ec2", network.region)
        self.r53 = aws.client("route53", network.region)
        self.network = network
        self.clickhouse = clickhouse
        self.org = org

    def live_endpoints(self) -> list[dict[str, Any]]:
        eps = self.ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [self.network.vpc_id]}])
        return [e for e in eps["VpcEndpoints"] if e["State"] not in ("deleted", "deleting")]

    def endpoint(self, endpoint_id: str) -> dict[str, Any] | None:
        eps = self.ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"]
        return eps[0] if eps and eps[0]["State"] != "deleted" else None

    def zones(self) -> list[dict[str, Any]]:
        found = self.r53.list_hosted_zones_by_vpc(VPCId=self.network.vpc_id, VPCRegion=self.network.region)
        return list(found["HostedZoneSummaries"])

    def create_private_zone(self, name: str) -> str:
        """A zone someone else made in the test's VPC (not tagged as the operator's); its ID."""
        zone = self.r53.create_hosted_zone(
            Name=name,
            CallerReference=f"someone-else-{self.network.vpc_id}-{name}",
            VPC={"VPCRegion": self.network.region, "VPCId": self.network.vpc_id},
            HostedZoneConfig={"PrivateZone": True, "Comment": "not the operator's"},
        )["HostedZone"]
        return str(zone["Id"]).rsplit("/", 1)[-1]

    def records(self, zone_id: str, hostname: str) -> list[dict[str, Any]]:
        sets = self.r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        return [s for s in sets if s["Name"].rstrip(".") == hostname.rstrip(".")]

    def allow_list(self, service_id: str | None = None) -> list[str]:
        assert self.clickhouse.control is not None
        service = self.clickhouse.control.service(self.org.org_id, service_id or self.org.service_id)
        return list(service["private_endpoint_ids"])

    def remove_from_allow_list(self, endpoint_id: str) -> None:
        """What a person does in the console: PATCH the service's allow list with the org's own key."""
        path = f"/v1/organizations/{self.org.org_id}/services/{self.org.service_id}"
        body = {"privateEndpointIds": {"remove": [endpoint_id]}}
        auth = (self.org.key_id, self.org.key_secret)
        httpx.patch(self.clickhouse.url + path, json=body, auth=auth, timeout=10).raise_for_status()

    def org_entries(self) -> list[str]:
        assert self.clickhouse.control is not None
        org = self.clickhouse.control.organization(self.org.org_id)
        return [e["id"] for e in org["private_endpoints"]]

    def writes(self) -> int:
        """ClickHouse write calls made with the test's key so far."""
        assert self.clickhouse.control is not None
        reqs = self.clickhouse.control.requests(key_id=self.org.key_id)
        return sum(1 for r in reqs if r["method"] in ("PATCH", "POST"))


@pytest.fixture
def aws_control(aws_target: AwsTarget) -> Iterator[AwsFaultControl]:
    """The shared AWS stand-in's control API; its faults and endpoint timing are set back at the end."""
    assert aws_target.endpoint_url is not None
    with AwsFaultControl(aws_target.endpoint_url) as control:
        try:
            yield control
        finally:
            control.clear()
            control.set_endpoint_pending(ENDPOINT_PENDING_SECONDS)


@pytest.fixture
def cloud(
    aws_target: AwsTarget, aws_network: Network, clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg
) -> Cloud:
    return Cloud(aws_target, aws_network, clickhouse_api, clickhouse_org)


# ---- The chaos suite's summary (tests/e2e/chaos_report.py): its hook, the secrets used, the final scan.

from tests.e2e.chaos_report import REPORT, exposures  # noqa: E402
from tests.e2e.chaos_report import pytest_terminal_summary as pytest_terminal_summary  # noqa: E402


@pytest.fixture(autouse=True)
def _remember_session_secrets(request: pytest.FixtureRequest) -> None:
    """Remember every API key secret an e2e test hands the operator (its org's, and Secrets it creates)."""
    if "clickhouse_org" in request.fixturenames:
        REPORT.remember_secret(request.getfixturevalue("clickhouse_org").key_secret)
    if "make_link" in request.fixturenames:
        factory: LinkFactory = request.getfixturevalue("make_link")
        create = factory.secret

        def secret(name: str, key_id: str, key_secret: str) -> None:
            REPORT.remember_secret(key_secret)
            create(name, key_id, key_secret)

        factory.secret = secret  # type: ignore[method-assign]


@pytest.fixture(scope="package", autouse=True)
def _secrets_never_exposed(
    operator: OperatorProcess, k8s: Kube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """After every e2e test: no secret used in the session is in the logs, Events, statuses or /metrics."""
    yield
    links = k8s.custom.list_cluster_custom_object(c.GROUP, c.VERSION, c.PLURAL)["items"]
    events = k8s.core.list_event_for_all_namespaces().items
    texts = {
        "operator logs": operator.logs(),
        "events": "\n".join(f"{e.reason} {e.message}" for e in events),
        "statuses": "\n".join(repr(link.get("status", {})) for link in links),
        "metrics": httpx.get(operator.metrics_url, timeout=5).text if operator.proc is not None else "",
    }
    hits = exposures(texts, REPORT.secrets)
    if REPORT.ran or hits:
        REPORT.record(secrets_exposed=sum(hits.values()))
        REPORT.detail("secrets exposed by place", hits)
        REPORT.write(tmp_path_factory.getbasetemp())
    assert hits == {}, f"secrets exposed: {hits}"
