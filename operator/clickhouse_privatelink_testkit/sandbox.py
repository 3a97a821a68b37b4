"""The local sandbox: the three stand-ins and the operator, walking resources through their whole life.

It starts the Kubernetes API, AWS and ClickHouse Cloud stand-ins and the operator as separate processes,
seeds a ClickHouse organization and a VPC, applies the samples in ``deploy/samples/``, shows them
becoming Ready, checks what exists in AWS and ClickHouse, deletes them and checks nothing is left.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
import httpx
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.api.crd import render_crd, render_policy_crd
from clickhouse_privatelink_testkit import compressed_clock
from clickhouse_privatelink_testkit.launch import serving_url, spawn_standin, start_standin, stop_process
from clickhouse_privatelink_testkit.standins.aws import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    Network,
    seed_network,
)
from clickhouse_privatelink_testkit.standins.clickhouse_cloud import StandInControl
from clickhouse_privatelink_testkit.standins.data_plane import ADDRESS_MAP

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
NAMESPACE = "sandbox"
REGION = "us-east-1"
CLICKHOUSE_TIME_SCALE = 0.2
T = TypeVar("T")


def say(message: str) -> None:
    print(f"[sandbox] {message}", flush=True)


def _free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], T | None], *, timeout: float, interval: float = 0.5) -> T:
    """Poll ``check`` until it returns something, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Seeded:
    org_id: str
    key_id: str
    key_secret: str
    services: dict[str, dict[str, Any]]  # by name
    network: Network


class Sandbox:
    """The processes and clients of one sandbox run."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[str]]] = []
        self.kubeconfig = log_dir / "kubeconfig"
        self.kube_url = ""
        self.clickhouse_url = ""
        self.aws_url = ""
        self.data_plane_env: dict[str, str] = {}
        self._data_plane: subprocess.Popen[str] | None = None
        self.rogue_file = log_dir / "rogue-certificates"

    # --------------------------------------------------------------------------------------- processes

    def start(self) -> None:
        say("starting the Kubernetes API stand-in")
        proc, self.kube_url = start_standin(
            "kubernetes", ["--kubeconfig", str(self.kubeconfig)], log_path=self.log_dir / "kubernetes.log"
        )
        self.procs.append(("kubernetes", proc))
        say(f"  {self.kube_url} (KUBECONFIG={self.kubeconfig})")
        say("starting the ClickHouse Cloud API stand-in")
        proc, self.clickhouse_url = start_standin(
            "clickhouse",
            ["--time-scale", str(CLICKHOUSE_TIME_SCALE)],
            log_path=self.log_dir / "clickhouse.log",
        )
        self.procs.append(("clickhouse", proc))
        say(f"  {self.clickhouse_url}")
        say("starting the AWS stand-in (moto: EC2, Route 53)")
        proc, self.aws_url = start_standin(
            "aws", ["--endpoint-pending-seconds", "3"], log_path=self.log_dir / "aws.log"
        )
        self.procs.append(("aws", proc))
        say(f"  {self.aws_url}")

    def start_data_plane(self, network: Network) -> None:
        """The VPC's resolver and the endpoint's interfaces, for the Reachable check; the operator is told it
        runs in that VPC, and given the stand-in's resolver, addresses and CA (test-only settings).

        Started without waiting (the operator's first check comes after everything is Ready): see
        ``data_plane_serving``.
        """
        ca_file = self.log_dir / "data-plane-ca.pem"
        port = _free_port(socket.SOCK_DGRAM)
        args = ["--port", str(port), "--aws-url", self.aws_url, "--clickhouse-url", self.clickhouse_url]
        args += ["--vpc-id", network.vpc_id, "--ca-file", str(ca_file), "--interval", "0.2"]
        args += ["--allow-list-delay", "0.5", "--rogue-file", str(self.rogue_file)]
        self._data_plane = spawn_standin("dataplane", args, log_path=self.log_dir / "dataplane.log")
        self.procs.append(("dataplane", self._data_plane))
        self.data_plane_env = {
            "CHPL_OPERATOR_VPC_ID": network.vpc_id,
            "CHPL_REACHABILITY_TIMEOUT": "0.3",
            "CHPL_TEST_DNS_RESOLVER": f"127.0.0.1:{port}",
            "CHPL_TEST_ADDRESS_MAP": ADDRESS_MAP,
            "CHPL_TEST_CA_FILE": str(ca_file),
        }

    def data_plane_serving(self, network: Network) -> None:
        assert self._data_plane is not None
        resolver = serving_url(self._data_plane, "dataplane", log_path=self.log_dir / "dataplane.log")
        say(
            f"  the data-plane stand-in of {network.vpc_id} serves DNS on {resolver}, the interfaces on 127.x.y.z"
        )

    def start_operator(self) -> None:
        metrics_port = _free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "AWS_ENDPOINT_URL": self.aws_url,
            "AWS_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": DEFAULT_SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",  # the sandbox never asks the link-local metadata service
            "CHPL_CLUSTER_NAME": "sandbox",
            "CHPL_POLL_INTERVAL": "1",
            # Drift checks (and with them the Reachable check) twice a second, and Route 53 changes sent at
            # once: the walk-through breaks things and waits for the operator to see them.
            "CHPL_DRIFT_INTERVAL": "0.5",
            "CHPL_ROUTE53_BATCH_WINDOW": "0.2",
            **self.data_plane_env,
            "CHPL_LOG_FORMAT": "text",
            # The ClickHouse stand-in runs on a compressed clock: 10 requests per 10 virtual seconds.
            **compressed_clock.operator_env(CLICKHOUSE_TIME_SCALE),
            # Only the local stand-in: the operator refuses any other apiUrl a resource names.
            "CHPL_CLICKHOUSE_API_URLS": self.clickhouse_url,
        }
        cmd = [sys.executable, "-m", "clickhouse_privatelink", "run", "--all-namespaces", "--standalone"]
        cmd += ["--liveness", "", "--metrics-port", str(metrics_port)]
        log = open(self.log_dir / "operator.log", "w")  # noqa: SIM115 - owned by the child process
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        self.procs.append(("operator", proc))
        say(
            f"started the operator (pid {proc.pid}, metrics on :{metrics_port}, log {self.log_dir / 'operator.log'})"
        )

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            stop_process(proc)
        self.procs.clear()

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the {name} process exited with code {proc.returncode}; see {self.log_dir}"
                )

    # ------------------------------------------------------------------------------------------ seeding

    def seed(self) -> Seeded:
        control = StandInControl(self.clickhouse_url)
        org = control.seed_org(name="Sandbox Org", tier="scale")
        key = control.seed_key(org["id"], role="admin")
        analytics = control.seed_service(org["id"], name="analytics", region=REGION, state="running")
        # One service is still provisioning: the operator waits for its PrivateLink configuration.
        reporting = control.seed_service(
            org["id"], name="reporting", region=REGION, state="provisioning", provisioning_seconds=30
        )
        control.close()
        network = seed_network(self.aws_url, REGION)
        say(
            f"seeded ClickHouse organization {org['id']} with services 'analytics' (running) and 'reporting' (provisioning)"
        )
        say(
            f"seeded VPC {network.vpc_id} with subnets {', '.join(network.subnet_ids)} and {network.security_group_id}"
        )
        return Seeded(
            org["id"], key["id"], key["secret"], {"analytics": analytics, "reporting": reporting}, network
        )


def load_samples(
    seeded: Seeded, clickhouse_url: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The sample policies, Secret(s) and ClickHousePrivateLinks, pointed at what the sandbox seeded."""
    docs: list[dict[str, Any]] = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    policies = [d for d in docs if d.get("kind") == c.POLICY_KIND]
    secrets = [d for d in docs if d.get("kind") == "Secret"]
    links = [d for d in docs if d.get("kind") == c.KIND]
    if not links:
        raise RuntimeError(f"no {c.KIND} samples in {SAMPLES}")
    for policy in policies:
        policy["spec"]["namespaces"] = {"names": [NAMESPACE]}
        policy["spec"]["allow"].update(vpcIds=[seeded.network.vpc_id], organizationIds=[seeded.org_id])
    for secret in secrets:
        secret["metadata"]["namespace"] = NAMESPACE
        secret.pop("data", None)
        secret["stringData"] = {
            c.DEFAULT_KEY_ID_KEY: seeded.key_id,
            c.DEFAULT_KEY_SECRET_KEY: seeded.key_secret,
        }
    names = list(seeded.services)
    for i, link in enumerate(links):
        link["metadata"]["namespace"] = NAMESPACE
        ch = link["spec"]["clickhouse"]
        ch["organizationId"] = seeded.org_id
        ch["apiUrl"] = clickhouse_url
        service = seeded.services[names[i % len(names)]]
        if "serviceId" in ch:
            ch["serviceId"] = service["id"]
        else:
            ch["serviceName"] = service["name"]
        aws = link["spec"]["aws"]
        aws.update(region=REGION, vpcId=seeded.network.vpc_id, subnetIds=seeded.network.subnet_ids)
        aws["securityGroupIds"] = [seeded.network.security_group_id]
        aws.pop("vpcEndpointId", None)
        aws.pop("roleArn", None)
        link["spec"].get("dns", {}).pop("hostedZoneId", None)
    return policies, secrets, links


class Kube:
    """The few Kubernetes calls the sandbox (and the e2e tests) make, through the official client."""

    def __init__(self, kubeconfig: Path) -> None:
        api = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.ext = client.ApiextensionsV1Api(api)

    def install_crd(self) -> None:
        """The ClickHousePrivateLink and ClickHousePrivateLinkPolicy CRDs, once served."""
        for crd in (render_crd(), render_policy_crd()):
            self.ext.create_custom_resource_definition(crd)
        for plural in (c.PLURAL, c.POLICY_PLURAL):
            wait_for(
                f"the {plural} CRD to be served", functools.partial(self._crd_served, plural), timeout=30
            )

    def _crd_served(self, plural: str) -> bool:
        try:
            self.custom.list_cluster_custom_object(c.GROUP, c.VERSION, plural)
        except ApiException:
            return False
        return True

    def allow(self, name: str, spec: dict[str, Any]) -> None:
        """Create (or replace the spec of) the tenancy policy ``name``."""
        body = {"apiVersion": c.API_VERSION, "kind": c.POLICY_KIND, "metadata": {"name": name}, "spec": spec}
        try:
            self.custom.create_cluster_custom_object(c.GROUP, c.VERSION, c.POLICY_PLURAL, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            patch = {"spec": spec}
            self.custom.patch_cluster_custom_object(c.GROUP, c.VERSION, c.POLICY_PLURAL, name, patch)

    def allow_everything(self, name: str = "allow-all") -> None:
        """One team per cluster: every namespace may name any VPC, role, zone, organization and API URL."""
        anything = ["*"]
        self.allow(
            name,
            {
                "namespaces": {"names": anything},
                "allow": {
                    "vpcIds": anything,
                    "roleArns": anything,
                    "hostedZoneIds": anything,
                    "organizationIds": anything,
                    "apiUrls": anything,
                },
            },
        )

    def apply(self, namespace: str, secrets: list[dict[str, Any]], links: list[dict[str, Any]]) -> None:
        with contextlib.suppress(ApiException):
            self.core.create_namespace(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            )
        for secret in secrets:
            self.core.create_namespaced_secret(namespace, secret)
        for link in links:
            self.custom.create_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PLURAL, link)

    def get_link(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    def delete_link(self, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PLURAL, name)

    def events(self, namespace: str, name: str) -> list[Any]:
        """The Events about one object (kubectl describe shows the same)."""
        found = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        return list(found.items)


def _gone(kube: Kube, name: str) -> bool:
    return kube.get_link(NAMESPACE, name) is None


def _ready(obj: dict[str, Any]) -> dict[str, Any] | None:
    return next((x for x in obj.get("status", {}).get("conditions", []) if x.get("type") == "Ready"), None)


def watch_until_ready(
    sandbox: Sandbox, kube: Kube, names: list[str], *, timeout: float
) -> dict[str, dict[str, Any]]:
    """Print each resource's progress as it changes; return the resources once all are Ready."""
    last: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while True:
        sandbox.check_alive()
        objs = {n: kube.get_link(NAMESPACE, n) or {} for n in names}
        for name, obj in objs.items():
            ready = _ready(obj) or {}
            status = obj.get("status", {})
            line = f"Ready={ready.get('status', '-')} {ready.get('reason', 'Pending')}: {ready.get('message', 'not seen yet')}"
            if status.get("vpcEndpointId"):
                line += f" [endpoint {status['vpcEndpointId']} {status.get('vpcEndpointState', '')}]"
            if last.get(name) != line:
                say(f"  {name}: {line}")
                last[name] = line
        if all((_ready(o) or {}).get("status") == "True" for o in objs.values()):
            return objs
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"resources not Ready after {timeout:.0f} s: see {sandbox.log_dir / 'operator.log'}"
            )
        time.sleep(0.5)


def verify_ready(sandbox: Sandbox, seeded: Seeded, objs: dict[str, dict[str, Any]]) -> None:
    """Read AWS and ClickHouse directly: one shared endpoint, and a record and allow-list entry per resource."""
    ec2, r53 = _aws(sandbox)
    control = StandInControl(sandbox.clickhouse_url)
    try:
        for name, obj in objs.items():
            st = obj["status"]
            eps = ec2.describe_vpc_endpoints(VpcEndpointIds=[st["vpcEndpointId"]])["VpcEndpoints"]
            assert eps and eps[0]["State"] == "available", f"{name}: endpoint not available"
            service = control.service(seeded.org_id, st["serviceId"])
            allowed = service.get("private_endpoint_ids") or service.get("privateEndpointIds") or []
            assert st["vpcEndpointId"] in allowed, f"{name}: endpoint not on the allow list"
            say(
                f"  {name}: {st['privateDnsHostname']} -> {st['vpcEndpointId']} (allow-listed on {service['name']})"
            )
            if st.get("hostedZoneId"):
                sets = r53.list_resource_record_sets(HostedZoneId=st["hostedZoneId"])["ResourceRecordSets"]
                aliases = [
                    s for s in sets if s["Type"] == "A" and s["Name"].rstrip(".") == st["privateDnsHostname"]
                ]
                assert len(aliases) == 1, f"{name}: expected one alias record"
                say(f"  {name}: DNS {aliases[0]['Name']} ALIAS {aliases[0]['AliasTarget']['DNSName']}")
            for ep in st.get("endpoints", []):
                say(f"  {name}: connect with {ep['protocol']} on {ep['host']}:{ep['port']}")
        # ClickHouse puts a region's services behind one endpoint service: one endpoint per VPC serves them.
        live = [e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"] if e["State"] != "deleted"]
        users: dict[str, list[str]] = {}
        for name, obj in objs.items():
            users.setdefault(obj["status"]["vpcEndpointId"], []).append(name)
        services = {obj["status"]["endpointServiceId"] for obj in objs.values()}
        assert len(live) == len(services), f"expected {len(services)} endpoints, found {len(live)}"
        for endpoint_id, names in users.items():
            say(f"  endpoint {endpoint_id} is shared by {len(names)} resources: {', '.join(sorted(names))}")
    finally:
        control.close()


def _condition(kube: Kube, name: str, type_: str) -> dict[str, Any]:
    obj = kube.get_link(NAMESPACE, name) or {}
    return next((x for x in obj.get("status", {}).get("conditions", []) if x.get("type") == type_), {})


def _show_reachable(kube: Kube, name: str, status: str | None, reason: str) -> None:
    """Wait for Reachable with ``reason`` (and ``status``, unless None) and print it."""

    def check() -> dict[str, Any] | None:
        cond = _condition(kube, name, "Reachable")
        return cond if cond.get("reason") == reason and status in (None, cond.get("status")) else None

    cond = wait_for(f"{name}: Reachable {reason}", check, timeout=30, interval=0.2)
    ready = _condition(kube, name, "Ready").get("status")
    say(f"  {name}: Reachable={cond['status']} {reason}: {cond['message']} (Ready={ready})")


def walk_reachability(sandbox: Sandbox, kube: Kube, seeded: Seeded, name: str) -> None:
    """Reachable=True, then one thing of each kind the guide's troubleshooting names broken and mended."""
    ec2, r53 = _aws(sandbox)
    status = (kube.get_link(NAMESPACE, name) or {})["status"]
    host, zone_id, endpoint_id = status["privateDnsHostname"], status["hostedZoneId"], status["vpcEndpointId"]
    _show_reachable(kube, name, "True", "Reachable")
    sg, cidr = seeded.network.security_group_id, "10.42.0.0/16"
    rule = [{"IpProtocol": "tcp", "FromPort": 9440, "ToPort": 9440, "IpRanges": [{"CidrIp": cidr}]}]
    say(f"breaking the security group: {sg} no longer admits 9440")
    ec2.revoke_security_group_ingress(GroupId=sg, IpPermissions=rule)
    _show_reachable(kube, name, "False", "ConnectTimeout")
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=rule)
    _show_reachable(kube, name, "True", "Reachable")
    say(f"breaking the allow list: {endpoint_id} removed from the service by hand")
    path = f"/v1/organizations/{seeded.org_id}/services/{status['serviceId']}"
    httpx.patch(
        sandbox.clickhouse_url + path,
        json={"privateEndpointIds": {"remove": [endpoint_id]}},
        auth=(seeded.key_id, seeded.key_secret),
        timeout=10,
    ).raise_for_status()
    # False when a drift check meets the reset before it puts the entry back; Unknown when it has just put it back.
    _show_reachable(kube, name, None, "ConnectionReset")
    _show_reachable(kube, name, "True", "Reachable")
    say("breaking TLS: the interfaces present a certificate from a CA nobody trusts")
    sandbox.rogue_file.touch()
    _show_reachable(kube, name, "False", "TlsFailed")
    sandbox.rogue_file.unlink()
    _show_reachable(kube, name, "True", "Reachable")
    say(f"breaking DNS: dns.mode None, and the record for {host} deleted by hand")
    kube.custom.patch_namespaced_custom_object(
        c.GROUP, c.VERSION, NAMESPACE, c.PLURAL, name, {"spec": {"dns": {"mode": "None"}}}
    )
    sets = [
        s
        for s in r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        if s["Name"].rstrip(".") == host
    ]
    r53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": s} for s in sets]},
    )
    _show_reachable(kube, name, "False", "DnsNotResolving")
    elsewhere = {"Name": host, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "10.99.0.7"}]}
    say(f"  ... and a record of someone else's: {host} A 10.99.0.7")
    r53.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": elsewhere}]}
    )
    _show_reachable(kube, name, "False", "DnsPointsElsewhere")
    r53.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": elsewhere}]}
    )
    kube.custom.patch_namespaced_custom_object(
        c.GROUP, c.VERSION, NAMESPACE, c.PLURAL, name, {"spec": {"dns": {"mode": "Route53"}}}
    )
    _show_reachable(kube, name, "True", "Reachable")


def verify_clean(sandbox: Sandbox, seeded: Seeded, retained: dict[str, str]) -> None:
    """Nothing the operator created is left, but for what ``deletionPolicy: Retain`` asked to keep.

    ``retained`` maps resource names to the endpoint IDs they kept.
    """
    kept = set(retained.values())
    ec2, r53 = _aws(sandbox)
    live = {
        e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"] if e["State"] != "deleted"
    }
    assert live == kept, f"endpoints left behind: {sorted(live - kept)}"
    zones = r53.list_hosted_zones()["HostedZones"]
    assert not zones, f"hosted zones left behind: {[z['Name'] for z in zones]}"
    control = StandInControl(sandbox.clickhouse_url)
    try:
        for svc in seeded.services.values():
            allowed = set(control.service(seeded.org_id, svc["id"])["private_endpoint_ids"])
            assert allowed <= kept, f"allow-list entries left on {svc['name']}: {sorted(allowed - kept)}"
        entries = {e["id"] for e in control.organization(seeded.org_id)["private_endpoints"]}
        assert entries <= kept, f"organization entries left behind: {sorted(entries - kept)}"
    finally:
        control.close()
    for name, endpoint_id in retained.items():
        say(f"  {name}: deletionPolicy Retain kept endpoint {endpoint_id} and its allow-list entry, as asked")
    say("  no other VPC endpoint, hosted zone, DNS record, allow-list or organization entry is left")


def _aws(sandbox: Sandbox) -> tuple[Any, Any]:
    session = boto3.Session(
        aws_access_key_id=DEFAULT_ACCESS_KEY, aws_secret_access_key=DEFAULT_SECRET_KEY, region_name=REGION
    )
    return session.client("ec2", endpoint_url=sandbox.aws_url), session.client(
        "route53", endpoint_url=sandbox.aws_url
    )


@contextlib.contextmanager
def _log_dir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="chpl-sandbox-") as tmp:
        yield Path(tmp)


def run_sandbox(*, keep: bool, log_dir: Path | None) -> int:
    """Run the walk-through; 0 when every check passed."""
    with _log_dir(log_dir) as logs:
        sandbox = Sandbox(logs)
        try:
            sandbox.start()
            kube = Kube(sandbox.kubeconfig)
            kube.install_crd()
            say(f"installed the {c.KIND} and {c.POLICY_KIND} CRDs")
            seeded = sandbox.seed()
            sandbox.start_data_plane(seeded.network)
            sandbox.start_operator()
            policies, secrets, links = load_samples(seeded, sandbox.clickhouse_url)
            for policy in policies:
                kube.allow(policy["metadata"]["name"], policy["spec"])
                say(
                    f"allowed namespace {NAMESPACE} the seeded VPC and organization ({c.POLICY_KIND} {policy['metadata']['name']})"
                )
            kube.apply(NAMESPACE, secrets, links)
            names = [link["metadata"]["name"] for link in links]
            say(
                f"applied {len(secrets)} Secret(s) and {len(links)} {c.KIND}(s) from {SAMPLES}: {', '.join(names)}"
            )
            objs = watch_until_ready(sandbox, kube, names, timeout=120)
            say("all resources are Ready; what exists now:")
            verify_ready(sandbox, seeded, objs)
            say(
                "the Reachable check, measured by the operator as a client in the VPC (the data-plane stand-in):"
            )
            sandbox.data_plane_serving(seeded.network)
            walk_reachability(sandbox, kube, seeded, names[0])
            retained = {
                name: obj["status"]["vpcEndpointId"]
                for name, obj in objs.items()
                if obj["spec"].get("deletionPolicy") == "Retain"
            }
            if keep:
                say(f"--keep: everything stays up; KUBECONFIG={sandbox.kubeconfig}. Ctrl-C ends the sandbox.")
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        sandbox.check_alive()
                        time.sleep(1)
            say(
                "deleting the resources (the Retain ones last: a Retain keeps only what no other resource uses)"
            )
            for batch in ([n for n in names if n not in retained], [n for n in names if n in retained]):
                for name in batch:
                    kube.delete_link(NAMESPACE, name)
                for name in batch:
                    wait_for(f"{name} to be deleted", functools.partial(_gone, kube, name), timeout=90)
                    say(f"  {name}: deleted (finalizer released after cleanup)")
            verify_clean(sandbox, seeded, retained)
            say("done: the sandbox walked every resource through create, Ready and delete")
            return 0
        except (AssertionError, RuntimeError, TimeoutError, ApiException) as exc:
            say(f"FAILED: {exc}")
            for name in ("operator",):
                path = logs / f"{name}.log"
                if path.exists():
                    say(f"last lines of {path}:")
                    print("\n".join(path.read_text(errors="replace").splitlines()[-30:]), flush=True)
            return 1
        finally:
            sandbox.stop()
