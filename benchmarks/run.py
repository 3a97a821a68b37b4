"""``make bench``: N ClickHousePrivateLinks created at once, against the stand-ins with realistic limits.

For each N (``--sizes``), on fresh stand-ins and a fresh operator process:

1. seed one ClickHouse organization with an admin key and N running services (one region: they share one
   endpoint service, so all N share one VPC endpoint), and one VPC;
2. create N resources through the Kubernetes API at once (a thread pool) and watch them become Ready;
3. after all are Ready, measure ``--drift-periods`` drift intervals of steady state;
4. delete all N at once and watch them go.

Limits: ClickHouse 10 requests per 10 virtual seconds per key on a clock compressed by ``--time-scale``;
Route 53 5 requests/s per account and EC2 a token bucket (``--ec2-throttle``), in AWS's error shapes.

Counted from the stand-ins themselves (ClickHouse request log, AWS throttle counters), the operator's
``/metrics`` (calls by API and operation) and a counting proxy in front of the Kubernetes API (writes).
Writes one JSON document (``--out``) and, unless ``--no-plot``, a PNG beside it; prints PASS/FAIL per
target. Exit code: 0 when every target passed (or with ``--report-only``), 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from benchmarks.kube_proxy import WRITE_METHODS, CountingProxy
from clickhouse_privatelink import constants as c
from clickhouse_privatelink_testkit import compressed_clock
from clickhouse_privatelink_testkit.launch import start_standin, stop_process
from clickhouse_privatelink_testkit.sandbox import Kube, _free_port
from clickhouse_privatelink_testkit.standins.aws import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, seed_network
from clickhouse_privatelink_testkit.standins.aws_faults import AwsFaultControl
from clickhouse_privatelink_testkit.standins.clickhouse_cloud import StandInControl

ROOT = Path(__file__).resolve().parent
NAMESPACE = "bench"
REGION = "us-east-1"
SECRET = "clickhouse-api-key"

# ClickHouse Cloud's limit: 10 requests per 10 (virtual) seconds per API key.
CH_LIMIT = 10
CH_PERIOD = 10.0
# The ClickHouse calls that cannot be avoided. Creation: per service one privateEndpointConfig read and
# one allow-list PATCH; per organization one read and one PATCH of its private-endpoint entries (the one
# shared endpoint). Deletion: per service one allow-list PATCH; per organization one PATCH removing the
# entry. See benchmarks/README.md.
CH_PER_SERVICE_CREATE = 2
CH_FIXED_CREATE = 2
CH_PER_SERVICE_DELETE = 1
CH_FIXED_DELETE = 1
# The three paginated reads a steady-state period may make more of as N grows (ClickHouse service list,
# EC2 DescribeVpcEndpoints, Route 53 ListResourceRecordSets), at 100 items a page.
PAGINATED_APIS = 3
PAGE_SIZE = 100
# At the clock's x50 compression the operator is CPU-bound: its CPU per resource, per phase, at N=1000 is
# what leaves the Ready and deletion targets a margin on any 2-core machine (issue 17).
CPU_MS_PER_RESOURCE_LIMIT = 10.0

# A 429 or throttling error in a condition (as the clients word them: "HTTP 429", never a bare number such
# as "and 429 more" in a list of users).
THROTTLE_WORDS = re.compile(
    r"HTTP 429|throttl|rate.?limit|RequestLimitExceeded|too.?many.?requests", re.IGNORECASE
)
_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
MiB = 1024 * 1024


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


# ----------------------------------------------------------------------------------------- measurement


Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Metrics:
    """Prometheus text exposition -> {(name, sorted labels): value}."""
    out: Metrics = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line.strip())
        if not m:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
        with contextlib.suppress(ValueError):
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def metrics_delta(before: Metrics, after: Metrics) -> Metrics:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) != 0}


def by_labels(metrics: Metrics, name: str, *keys: str) -> dict[str, float]:
    """Sum one metric's samples grouped by the given labels (joined with '/')."""
    out: dict[str, float] = {}
    for (n, labels), value in metrics.items():
        if n != name:
            continue
        d = dict(labels)
        group = "/".join(d.get(k, "") for k in keys)
        out[group] = out.get(group, 0.0) + value
    return out


def proc_stats(pid: int) -> dict[str, float]:
    """Peak RSS (VmHWM, bytes), current RSS and CPU seconds (utime + stime) of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    hwm = int(fields["VmHWM"].split()[0]) * 1024
    rss = int(fields["VmRSS"].split()[0]) * 1024
    stat = Path(f"/proc/{pid}/stat").read_text()
    rest = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(rest[11]) + int(rest[12])) / ticks  # fields 14 and 15 of stat: utime, stime
    return {"peak_rss_bytes": float(hwm), "rss_bytes": float(rss), "cpu_seconds": cpu}


def clickhouse_operation(method: str, path: str) -> str:
    """A ClickHouse request log entry's operation, named like the API's routes."""
    parts = [p for p in path.split("/") if p]
    # /v1/organizations/{org}[/services[/{svc}[/privateEndpointConfig|/privateEndpoint]]]
    if len(parts) <= 3:
        what = "organization"
    elif len(parts) == 4:
        what = "services"
    elif len(parts) == 5:
        what = "service"
    else:
        what = parts[5]
    return f"{method} {what}"


def floor_seconds(calls: int, time_scale: float) -> float:
    """The least wall-clock time ``calls`` ClickHouse calls take at 10 per 10 virtual seconds, scaled."""
    return calls / CH_LIMIT * CH_PERIOD * time_scale


# ------------------------------------------------------------------------------------------ the stand-ins


@dataclass
class Settings:
    time_scale: float
    drift_interval: float
    drift_periods: int
    route53_rate: float
    ec2_throttle: str
    endpoint_pending: float
    timeout_factor: float
    min_timeout: float
    workers: int


@dataclass
class Watcher:
    """Watches the namespace's ClickHousePrivateLinks: first Ready time, deletion time, throttle conditions."""

    custom: Any
    t0: float = 0.0
    ready_at: dict[str, float] = field(default_factory=dict)
    deleted_at: dict[str, float] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    throttle_conditions: dict[str, dict[str, str]] = field(default_factory=dict)
    error_conditions: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bench-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def ready_count(self) -> int:
        with self.lock:
            return len(self.ready_at)

    def deleted_count(self) -> int:
        with self.lock:
            return len(self.deleted_at)

    def _run(self) -> None:
        rv: str | None = None
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                kwargs: dict[str, Any] = {"timeout_seconds": 5}
                if rv:
                    kwargs["resource_version"] = rv
                for event in w.stream(
                    self.custom.list_namespaced_custom_object,
                    c.GROUP,
                    c.VERSION,
                    NAMESPACE,
                    c.PLURAL,
                    **kwargs,
                ):
                    obj = event["object"]
                    if isinstance(obj, dict):
                        rv = obj.get("metadata", {}).get("resourceVersion") or rv
                        self._handle(str(event["type"]), obj)
                    if self._stop.is_set():
                        w.stop()
                        break
            except ApiException as exc:
                if exc.status == 410:
                    rv = None
                else:
                    self._stop.wait(0.2)
            except Exception:
                self._stop.wait(0.2)

    def _handle(self, kind: str, obj: dict[str, Any]) -> None:
        now = time.monotonic() - self.t0
        name = str(obj.get("metadata", {}).get("name", ""))
        with self.lock:
            self.seen.add(name)
            if kind == "DELETED":
                self.deleted_at.setdefault(name, now)
                return
            for cond in obj.get("status", {}).get("conditions", []) or []:
                text = f"{cond.get('reason', '')} {cond.get('message', '')}"
                if cond.get("type") == "Ready" and cond.get("status") == "True":
                    self.ready_at.setdefault(name, now)
                    continue
                if cond.get("status") == "False" and cond.get("type") == "Ready":
                    self.error_conditions[str(cond.get("reason", ""))] += 1
                if THROTTLE_WORDS.search(text) and name not in self.throttle_conditions:
                    self.throttle_conditions[name] = {
                        "type": str(cond.get("type", "")),
                        "status": str(cond.get("status", "")),
                        "reason": str(cond.get("reason", "")),
                        "message": str(cond.get("message", ""))[:300],
                    }


class Bench:
    """The processes and clients of one size's run."""

    def __init__(self, n: int, settings: Settings, log_dir: Path) -> None:
        self.n = n
        self.s = settings
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[str]]] = []
        self.kubeconfig = log_dir / "kubeconfig"
        self.operator_kubeconfig = log_dir / "kubeconfig-operator"
        self.proxy: CountingProxy | None = None
        self.operator: subprocess.Popen[str] | None = None
        self.metrics_port = _free_port()
        self.kube_url = self.clickhouse_url = self.aws_url = ""

    # ---- processes

    def start(self) -> None:
        proc, self.kube_url = start_standin(
            "kubernetes",
            ["--kubeconfig", str(self.kubeconfig), "--history-limit", str(max(10_000, 40 * self.n))],
            log_path=self.log_dir / "kubernetes.log",
        )
        self.procs.append(("kubernetes", proc))
        proc, self.clickhouse_url = start_standin(
            "clickhouse",
            ["--time-scale", str(self.s.time_scale), "--rate-limit", f"{CH_LIMIT}/{CH_PERIOD:g}s"],
            log_path=self.log_dir / "clickhouse.log",
        )
        self.procs.append(("clickhouse", proc))
        proc, self.aws_url = start_standin(
            "aws",
            [
                "--endpoint-pending-seconds",
                str(self.s.endpoint_pending),
                "--throttle",
                f"route53={self.s.route53_rate:g}",
                "--throttle",
                f"ec2={self.s.ec2_throttle}",
            ],
            log_path=self.log_dir / "aws.log",
        )
        self.procs.append(("aws", proc))
        self.proxy = CountingProxy(self.kube_url, write_log=self.log_dir / "kubernetes-writes.jsonl")
        self.proxy.start()
        doc = yaml.safe_load(self.kubeconfig.read_text())
        doc["clusters"][0]["cluster"]["server"] = self.proxy.url
        self.operator_kubeconfig.write_text(yaml.safe_dump(doc, sort_keys=False))

    def start_operator(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.operator_kubeconfig),
            "AWS_ENDPOINT_URL": self.aws_url,
            "AWS_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": DEFAULT_SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "CHPL_CLUSTER_NAME": "bench",
            "CHPL_CLICKHOUSE_API_URLS": self.clickhouse_url,
            "CHPL_POLL_INTERVAL": "1",
            "CHPL_ERROR_RETRY_INTERVAL": str(max(5.0, 300 * self.s.time_scale)),
            "CHPL_MAX_BACKOFF": str(max(5.0, 300 * self.s.time_scale)),
            "CHPL_DRIFT_INTERVAL": str(self.s.drift_interval),
            "CHPL_LOG_FORMAT": "json",
            # Outside the resources' VPC, as a benchmark host is: Reachable is skipped, with no lookup of
            # the link-local instance metadata service.
            "AWS_EC2_METADATA_DISABLED": "true",
            **compressed_clock.operator_env(self.s.time_scale),
        }
        cmd = [sys.executable, "-m", "clickhouse_privatelink", "run", "--all-namespaces", "--standalone"]
        cmd += ["--liveness", "", "--metrics-port", str(self.metrics_port)]
        log = open(self.log_dir / "operator.log", "w")  # noqa: SIM115 - owned by the child process
        self.operator = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        self.procs.append(("operator", self.operator))
        poll("the operator's /metrics", self._serving, timeout=60)

    def _serving(self) -> bool:
        self.check_alive()
        try:
            return httpx.get(self.metrics_url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def metrics(self) -> Metrics:
        return parse_metrics(httpx.get(self.metrics_url, timeout=30).text)

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the {name} process exited with code {proc.returncode}; see {self.log_dir}"
                )

    def wait_for_quiet_writes(self, *, quiet: float, deadline: float) -> float | None:
        """Seconds until the operator's Kubernetes writes stopped for ``quiet`` seconds (None: not by ``deadline``)."""
        assert self.proxy is not None

        def writes() -> int:
            assert self.proxy is not None
            return sum(v for k, v in self.proxy.counts().items() if k.split()[0] in WRITE_METHODS)

        start = time.monotonic()
        last, changed = writes(), start
        while time.monotonic() - start < deadline:
            self.check_alive()
            time.sleep(0.1)
            now, count = time.monotonic(), writes()
            if count != last:
                last, changed = count, now
            elif now - changed >= quiet:
                return changed - start
        return None

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            stop_process(proc)
        self.procs.clear()
        if self.proxy is not None:
            self.proxy.stop()


def poll(what: str, check: Callable[[], bool], *, timeout: float, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def kube_clients(kubeconfig: Path, pool: int) -> tuple[Kube, Any]:
    """The sandbox's Kube helper, and a CustomObjectsApi with a connection pool for ``pool`` threads."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.connection_pool_maxsize = pool + 4
    return Kube(kubeconfig), client.CustomObjectsApi(client.ApiClient(cfg))


# ------------------------------------------------------------------------------------------- one size


@dataclass
class Snapshot:
    t: float
    metrics: Metrics
    ch_seq: int
    kube: dict[str, int]
    proc: dict[str, float]
    aws_throttled: dict[str, int]
    standins: dict[str, float]  # CPU seconds of each stand-in process


class Run:
    def __init__(self, bench: Bench) -> None:
        self.b = bench
        self.ch = StandInControl(bench.clickhouse_url, timeout=60)
        self.aws = AwsFaultControl(bench.aws_url, timeout=60)
        self.ch_log: list[dict[str, Any]] = []

    def close(self) -> None:
        self.ch.close()
        self.aws.close()

    def snapshot(self) -> Snapshot:
        assert self.b.operator is not None and self.b.proxy is not None
        new = self.ch.requests(since=self.ch_log[-1]["seq"] if self.ch_log else 0)
        self.ch_log.extend(new)
        return Snapshot(
            t=time.monotonic(),
            metrics=self.b.metrics(),
            ch_seq=self.ch_log[-1]["seq"] if self.ch_log else 0,
            kube=self.b.proxy.counts(),
            proc=proc_stats(self.b.operator.pid),
            aws_throttled={k: int(v) for k, v in self.aws.state().get("throttled", {}).items()},
            standins={
                name: proc_stats(proc.pid)["cpu_seconds"] for name, proc in self.b.procs if name != "operator"
            },
        )

    def phase(self, a: Snapshot, z: Snapshot) -> dict[str, Any]:
        """Everything counted between two snapshots."""
        delta = metrics_delta(a.metrics, z.metrics)
        ch = [e for e in self.ch_log if a.ch_seq < e["seq"] <= z.ch_seq]
        ch_ops = Counter(clickhouse_operation(e["method"], e["path"]) for e in ch)
        ch_status = Counter(str(e["status"]) for e in ch)
        calls = by_labels(delta, "chpl_external_api_calls_total", "service", "operation")
        aws_ops = {k: int(v) for k, v in sorted(calls.items()) if not k.startswith("clickhouse/")}
        aws_writes = sum(v for k, v in aws_ops.items() if not _is_read(k.split("/", 1)[1]))
        kube = {
            k: z.kube.get(k, 0) - a.kube.get(k, 0) for k in z.kube if z.kube.get(k, 0) != a.kube.get(k, 0)
        }
        kube_writes = sum(v for k, v in kube.items() if k.split(" ", 1)[0] in WRITE_METHODS)
        ch_writes = sum(1 for e in ch if e["method"] in WRITE_METHODS)
        r53 = {k.split("/", 1)[1]: v for k, v in aws_ops.items() if k.startswith("route53/")}
        return {
            "seconds": round(z.t - a.t, 3),
            "clickhouse": {
                "calls": len(ch),
                "writes": ch_writes,
                "by_operation": dict(sorted(ch_ops.items())),
                "by_status": dict(sorted(ch_status.items())),
                "http_429": ch_status.get("429", 0),
                "operator_counted": int(sum(v for k, v in calls.items() if k.startswith("clickhouse/"))),
            },
            "aws": {
                "calls": sum(aws_ops.values()),
                "writes": aws_writes,
                "by_operation": aws_ops,
                "by_status": {
                    k: int(v)
                    for k, v in sorted(
                        by_labels(delta, "chpl_external_api_calls_total", "service", "status").items()
                    )
                    if not k.startswith("clickhouse/")
                },
                "route53_change_calls": int(r53.get("ChangeResourceRecordSets", 0)),
                "route53_writes": int(sum(v for k, v in r53.items() if not _is_read(k))),
                "throttled_by_standin": {
                    k: z.aws_throttled.get(k, 0) - a.aws_throttled.get(k, 0) for k in z.aws_throttled
                },
            },
            "kubernetes": {"writes": kube_writes, "by_request": dict(sorted(kube.items()))},
            "operator_throttled": {
                k: int(v) for k, v in by_labels(delta, "chpl_throttled_calls_total", "service").items()
            },
            "reconciles": {
                k: int(v) for k, v in by_labels(delta, "chpl_reconciles_total", "kind", "outcome").items()
            },
            "cpu_seconds": round(z.proc["cpu_seconds"] - a.proc["cpu_seconds"], 3),
            "standin_cpu_seconds": {
                name: round(z.standins[name] - a.standins[name], 3) for name in z.standins
            },
        }


def _is_read(operation: str) -> bool:
    return operation.startswith(("Describe", "List", "Get"))


def _link(i: int, org_id: str, service_id: str, url: str, network: Any) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": f"link-{i:04d}", "namespace": NAMESPACE},
        "spec": {
            "clickhouse": {
                "organizationId": org_id,
                "serviceId": service_id,
                "credentialsSecretRef": {"name": SECRET},
                "apiUrl": url,
            },
            "aws": {
                "region": REGION,
                "vpcId": network.vpc_id,
                "subnetIds": list(network.subnet_ids),
                "securityGroupIds": [network.security_group_id],
            },
        },
    }


def run_size(n: int, s: Settings, log_dir: Path) -> dict[str, Any]:
    """One size, start to finish, on fresh processes."""
    log_dir.mkdir(parents=True, exist_ok=True)
    bench = Bench(n, s, log_dir)
    result: dict[str, Any] = {"n": n, "log_dir": str(log_dir)}
    try:
        bench.start()
        kube, custom = kube_clients(bench.kubeconfig, s.workers)
        kube.install_crd()
        control = StandInControl(bench.clickhouse_url, timeout=120)
        seeded = control.seed(
            {
                "organizations": [
                    {
                        "name": "Bench Org",
                        "tier": "scale",
                        "keys": [{"role": "admin"}],
                        "services": [
                            {"name": f"svc-{i:04d}", "region": REGION, "state": "running"} for i in range(n)
                        ],
                    }
                ]
            }
        )["organizations"][0]
        control.close()
        key = seeded["keys"][0]
        services = seeded["services"]
        network = seed_network(bench.aws_url, REGION)
        with contextlib.suppress(ApiException):
            kube.core.create_namespace(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
            )
        kube.core.create_namespaced_secret(
            NAMESPACE,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": SECRET, "labels": {c.LABEL_API_KEY: "true"}},
                "stringData": {c.DEFAULT_KEY_ID_KEY: key["id"], c.DEFAULT_KEY_SECRET_KEY: key["secret"]},
            },
        )
        kube.allow_everything()  # one team per cluster: the tenancy policy allows every namespace anything
        bench.start_operator()
        run = Run(bench)
        watcher = Watcher(custom)
        try:
            result.update(_measure(n, s, bench, run, watcher, custom, seeded["id"], services, network))
        finally:
            watcher.stop()
            run.close()
    finally:
        bench.stop()
    return result


def _measure(
    n: int,
    s: Settings,
    bench: Bench,
    run: Run,
    watcher: Watcher,
    custom: Any,
    org_id: str,
    services: list[dict[str, Any]],
    network: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    bodies = [_link(i, org_id, svc["id"], bench.clickhouse_url, network) for i, svc in enumerate(services)]
    create_floor = floor_seconds(CH_PER_SERVICE_CREATE * n + CH_FIXED_CREATE, s.time_scale)
    delete_floor = floor_seconds(CH_PER_SERVICE_DELETE * n + CH_FIXED_DELETE, s.time_scale)
    create_floor_total = max(create_floor, s.endpoint_pending)
    delete_floor_total = max(delete_floor, s.endpoint_pending)

    # ---- creation
    base = run.snapshot()
    watcher.t0 = time.monotonic()
    watcher.start()

    def create(body: dict[str, Any]) -> None:
        custom.create_namespaced_custom_object(c.GROUP, c.VERSION, NAMESPACE, c.PLURAL, body)

    say(f"N={n}: creating {n} resources ({s.workers} threads)")
    with ThreadPoolExecutor(s.workers) as pool:
        list(pool.map(create, bodies))
    created_in = time.monotonic() - watcher.t0
    timeout = max(s.min_timeout, s.timeout_factor * create_floor_total)
    timeline, all_ready = _follow(bench, watcher, watcher.ready_count, n, timeout, "Ready")
    ready = watcher.ready_count()
    ready_time = max(watcher.ready_at.values()) if all_ready else None
    # Creation's last writes (Events kopf posts from a queue, a last status) land after the last Ready: they
    # belong to creation, so the steady-state window opens once Kubernetes writes have stopped for a second.
    settled_in = bench.wait_for_quiet_writes(quiet=1.0, deadline=30.0)
    after_create = run.snapshot()
    creation = run.phase(base, after_create)
    say(
        f"N={n}: {ready}/{n} Ready in {'n/a' if ready_time is None else f'{ready_time:.2f}'} s "
        f"(floor {create_floor_total:.2f} s); ClickHouse calls {creation['clickhouse']['calls']}"
    )
    out["creation"] = {
        **creation,
        "create_requests_seconds": round(created_in, 3),
        "writes_settled_seconds": None if settled_in is None else round(settled_in, 3),
        "all_ready": all_ready,
        "ready": ready,
        "time_to_all_ready_seconds": None if ready_time is None else round(ready_time, 3),
        "timeout_seconds": round(timeout, 1),
        "floor_seconds": round(create_floor_total, 3),
        "floor_clickhouse_seconds": round(create_floor, 3),
        "floor_endpoint_pending_seconds": s.endpoint_pending,
        "ratio_to_floor": None if ready_time is None else round(ready_time / create_floor_total, 3),
        "clickhouse_minimum_calls": CH_PER_SERVICE_CREATE * n + CH_FIXED_CREATE,
        "timeline": timeline,
        "per_resource": _per_resource(creation, n),
    }

    # ---- steady state: whole drift intervals after all Ready (a measuring window, not a wait for a state)
    steady_start = run.snapshot()
    window = s.drift_interval * s.drift_periods
    say(f"N={n}: measuring {s.drift_periods} drift interval(s) of {s.drift_interval:g} s")
    end = time.monotonic() + window
    while time.monotonic() < end:
        bench.check_alive()
        time.sleep(min(0.25, max(0.0, end - time.monotonic())))
    steady_end = run.snapshot()
    steady = run.phase(steady_start, steady_end)
    periods = s.drift_periods
    out["steady"] = {
        **steady,
        "drift_interval_seconds": s.drift_interval,
        "periods": periods,
        "per_period": {
            "external_calls": round((steady["clickhouse"]["calls"] + steady["aws"]["calls"]) / periods, 2),
            "clickhouse_calls": round(steady["clickhouse"]["calls"] / periods, 2),
            "aws_calls": round(steady["aws"]["calls"] / periods, 2),
            "clickhouse_writes": round(steady["clickhouse"]["writes"] / periods, 2),
            "aws_writes": round(steady["aws"]["writes"] / periods, 2),
            "kubernetes_writes": round(steady["kubernetes"]["writes"] / periods, 2),
            "cpu_seconds": round(steady["cpu_seconds"] / periods, 3),
        },
    }

    # ---- deletion
    t_del = time.monotonic()
    watcher_base = t_del - watcher.t0

    def delete(body: dict[str, Any]) -> None:
        with contextlib.suppress(ApiException):
            custom.delete_namespaced_custom_object(
                c.GROUP, c.VERSION, NAMESPACE, c.PLURAL, body["metadata"]["name"]
            )

    say(f"N={n}: deleting {n} resources")
    with ThreadPoolExecutor(s.workers) as pool:
        list(pool.map(delete, bodies))
    del_timeout = max(s.min_timeout, s.timeout_factor * delete_floor_total)
    del_timeline, all_gone = _follow(bench, watcher, watcher.deleted_count, n, del_timeout, "deleted")
    gone = watcher.deleted_count()
    with watcher.lock:
        del_times = [t - watcher_base for t in watcher.deleted_at.values()]
    del_time = max(del_times) if all_gone and del_times else None
    after_delete = run.snapshot()
    deletion = run.phase(steady_end, after_delete)
    say(f"N={n}: {gone}/{n} deleted in {'n/a' if del_time is None else f'{del_time:.2f}'} s")
    out["deletion"] = {
        **deletion,
        "all_deleted": all_gone,
        "deleted": gone,
        "time_to_all_deleted_seconds": None if del_time is None else round(del_time, 3),
        "timeout_seconds": round(del_timeout, 1),
        "floor_seconds": round(delete_floor_total, 3),
        "floor_clickhouse_seconds": round(delete_floor, 3),
        "ratio_to_floor": None if del_time is None else round(del_time / delete_floor_total, 3),
        "clickhouse_minimum_calls": CH_PER_SERVICE_DELETE * n + CH_FIXED_DELETE,
        "timeline": [[round(t - watcher_base, 2), k] for t, k in del_timeline],
        "per_resource": _per_resource(deletion, n),
    }

    # ---- throttling, seen and surfaced; the operator process
    phases = (creation, steady, deletion)
    with watcher.lock:
        surfaced = dict(watcher.throttle_conditions)
        not_ready_reasons = dict(watcher.error_conditions)
    out["throttling"] = {
        "clickhouse_429": sum(p["clickhouse"]["http_429"] for p in phases),
        "aws_throttled_by_standin": {
            svc: sum(p["aws"]["throttled_by_standin"].get(svc, 0) for p in phases)
            for svc in ("ec2", "route53")
        },
        "operator_counted": {
            svc: sum(p["operator_throttled"].get(svc, 0) for p in phases)
            for svc in sorted({k for p in phases for k in p["operator_throttled"]})
        },
        "surfaced_in_conditions": len(surfaced),
        "surfaced_examples": dict(list(surfaced.items())[:5]),
        "not_ready_reasons_seen": not_ready_reasons,
    }
    out["operator"] = {
        "peak_rss_bytes": int(after_delete.proc["peak_rss_bytes"]),
        "peak_rss_mib": round(after_delete.proc["peak_rss_bytes"] / MiB, 1),
        "peak_rss_mib_after_creation": round(after_create.proc["peak_rss_bytes"] / MiB, 1),
        "cpu_seconds_total": round(after_delete.proc["cpu_seconds"], 3),
        "cpu_seconds_creation": creation["cpu_seconds"],
        "cpu_seconds_per_steady_period": out["steady"]["per_period"]["cpu_seconds"],
        "cpu_seconds_deletion": deletion["cpu_seconds"],
        "cpu_ms_per_resource_creation": round(1000 * creation["cpu_seconds"] / n, 2),
        "cpu_ms_per_resource_deletion": round(1000 * deletion["cpu_seconds"] / n, 2),
        # A yardstick for a noisy machine: the Kubernetes stand-in serves the same requests in every run of the same
        # code, so this ratio moves far less from run to run than the operator's CPU seconds do.
        "cpu_ratio_to_kubernetes_standin_creation": _ratio(creation),
        "cpu_ratio_to_kubernetes_standin_deletion": _ratio(deletion),
    }
    return out


def _ratio(phase: dict[str, Any]) -> float | None:
    """The operator's CPU seconds in ``phase`` over the Kubernetes stand-in's (None when it used none)."""
    standin = phase["standin_cpu_seconds"].get("kubernetes", 0.0)
    return round(phase["cpu_seconds"] / standin, 2) if standin > 0 else None


def _per_resource(phase: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "clickhouse_calls": round(phase["clickhouse"]["calls"] / n, 3),
        "clickhouse_by_operation": {
            k: round(v / n, 3) for k, v in phase["clickhouse"]["by_operation"].items()
        },
        "aws_calls": round(phase["aws"]["calls"] / n, 3),
        "aws_by_operation": {k: round(v / n, 3) for k, v in phase["aws"]["by_operation"].items()},
        "kubernetes_writes": round(phase["kubernetes"]["writes"] / n, 3),
    }


def _follow(
    bench: Bench, watcher: Watcher, count: Callable[[], int], n: int, timeout: float, what: str
) -> tuple[list[list[float]], bool]:
    """Sample ``count`` every 0.25 s until it reaches ``n`` or ``timeout`` passes; the timeline."""
    start = time.monotonic()
    timeline: list[list[float]] = []
    last_say = start
    while True:
        now = time.monotonic()
        k = count()
        timeline.append([round(now - watcher.t0, 2), k])
        if k >= n:
            return timeline, True
        if now - start > timeout:
            say(f"  {k}/{n} {what} after the {timeout:.0f} s timeout: giving up")
            return timeline, False
        if now - last_say >= 10:
            say(f"  {k}/{n} {what} at {now - start:.0f} s")
            last_say = now
        bench.check_alive()
        time.sleep(0.25)


# ------------------------------------------------------------------------------------------- targets


@dataclass
class Target:
    name: str
    verdict: str  # PASS, FAIL or SKIP
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "verdict": self.verdict, "detail": self.detail}


def evaluate(results: Mapping[int, Mapping[str, Any]]) -> list[Target]:
    out: list[Target] = []

    def check(name: str, needs: tuple[int, ...], test: Callable[[], tuple[bool, str]]) -> None:
        missing = [n for n in needs if n not in results]
        if missing:
            out.append(Target(name, "SKIP", f"needs N={', '.join(map(str, missing))} in --sizes"))
            return
        ok, detail = test()
        out.append(Target(name, "PASS" if ok else "FAIL", detail))

    def within_floor(phase: str, time_key: str, count_key: str, done: str) -> tuple[bool, str]:
        """Whether a phase at N=1000 finished within 1.15 x its floor (creation: Ready; deletion: deleted)."""
        figures = results[1000][phase]
        t = figures[time_key]
        limit = 1.15 * figures["floor_seconds"]
        if t is None:
            count, timeout = figures[count_key], figures["timeout_seconds"]
            return False, f"{count}/1000 {done} after {timeout} s (limit {limit:.1f} s)"
        floor = figures["floor_seconds"]
        return t <= limit, f"all {done} in {t:.1f} s; limit 1.15 x floor {floor:.1f} s = {limit:.1f} s"

    def ready_in_floor() -> tuple[bool, str]:
        return within_floor("creation", "time_to_all_ready_seconds", "ready", "Ready")

    def ch_calls() -> tuple[bool, str]:
        cr = results[1000]["creation"]
        calls, minimum = cr["clickhouse"]["calls"], cr["clickhouse_minimum_calls"]
        if not cr["all_ready"]:
            return False, f"{calls} calls, but only {cr['ready']}/1000 Ready: creation never finished"
        return calls <= 1.1 * minimum, f"{calls} calls; limit 1.1 x {minimum} = {1.1 * minimum:.0f}"

    def r53() -> tuple[bool, str]:
        cr = results[1000]["creation"]["aws"]
        k = cr["route53_change_calls"]
        return (
            k <= 3,
            f"{k} ChangeResourceRecordSets calls ({cr['route53_writes']} Route 53 writes in all); limit 3",
        )

    def delete_in_floor() -> tuple[bool, str]:
        return within_floor("deletion", "time_to_all_deleted_seconds", "deleted", "deleted")

    def steady_equal() -> tuple[bool, str]:
        a = results[100]["steady"]["per_period"]["external_calls"]
        b = results[1000]["steady"]["per_period"]["external_calls"]
        allowance = PAGINATED_APIS * (math.ceil(1000 / PAGE_SIZE) - math.ceil(100 / PAGE_SIZE))
        if not (results[100]["creation"]["all_ready"] and results[1000]["creation"]["all_ready"]):
            return False, f"{a:g} (N=100) vs {b:g} (N=1000) per period, but not all Ready: not a steady state"
        return abs(b - a) <= allowance, f"{a:g} (N=100) vs {b:g} (N=1000) per period; allowance {allowance}"

    def steady_writes() -> tuple[bool, str]:
        parts = []
        total = 0.0
        for n in (100, 1000):
            p = results[n]["steady"]["per_period"]
            w = p["clickhouse_writes"] + p["aws_writes"] + p["kubernetes_writes"]
            total += w
            parts.append(
                f"N={n}: ClickHouse {p['clickhouse_writes']:g}, AWS {p['aws_writes']:g}, "
                f"Kubernetes {p['kubernetes_writes']:g}"
            )
        return total == 0, "writes per period: " + "; ".join(parts)

    def no_surfaced() -> tuple[bool, str]:
        parts, bad = [], 0
        for n, r in sorted(results.items()):
            th = r["throttling"]
            bad += th["surfaced_in_conditions"]
            parts.append(
                f"N={n}: ClickHouse 429s {th['clickhouse_429']}, AWS throttled "
                f"{sum(th['aws_throttled_by_standin'].values())} (retried), "
                f"surfaced in conditions {th['surfaced_in_conditions']}"
            )
        return bad == 0, "; ".join(parts)

    def rss() -> tuple[bool, str]:
        mib = results[1000]["operator"]["peak_rss_mib"]
        return mib <= 250, f"peak RSS {mib:.1f} MiB; limit 250 MiB"

    def cpu() -> tuple[bool, str]:
        sec = results[1000]["operator"]["cpu_seconds_per_steady_period"]
        if not results[1000]["creation"]["all_ready"]:
            return False, f"{sec:.2f} CPU s per period, but not all Ready: not a steady state"
        return sec <= 5, f"{sec:.2f} CPU s per drift period; limit 5 s"

    def cpu_per_resource() -> tuple[bool, str]:
        op, limit = results[1000]["operator"], CPU_MS_PER_RESOURCE_LIMIT
        create, delete = op["cpu_ms_per_resource_creation"], op["cpu_ms_per_resource_deletion"]
        detail = f"creation {create:.1f} ms, deletion {delete:.1f} ms per resource; limit {limit:g} ms"
        if not (results[1000]["creation"]["all_ready"] and results[1000]["deletion"]["all_deleted"]):
            return False, detail + ", but not every resource got through both phases"
        return create <= limit and delete <= limit, detail

    check("N=1000 all Ready within 1.15x floor", (1000,), ready_in_floor)
    check("N=1000 ClickHouse calls at creation <= 1.1x minimum", (1000,), ch_calls)
    check("N=1000 Route 53 change calls <= 3", (1000,), r53)
    check("N=1000 deletion within 1.15x floor", (1000,), delete_in_floor)
    check("steady state: external calls per period equal at N=100 and N=1000", (100, 1000), steady_equal)
    check("steady state: zero writes", (100, 1000), steady_writes)
    check("zero throttling errors surfaced (retried ones counted)", (), no_surfaced)
    check("N=1000 operator peak RSS <= 250 MiB", (1000,), rss)
    check("N=1000 operator CPU per steady period <= 5 s", (1000,), cpu)
    check(
        f"N=1000 operator CPU per resource <= {CPU_MS_PER_RESOURCE_LIMIT:g} ms (creation and deletion)",
        (1000,),
        cpu_per_resource,
    )
    return out


# ---------------------------------------------------------------------------------------------- output


def summary_lines(results: Mapping[int, Mapping[str, Any]]) -> Iterator[str]:
    for n, r in sorted(results.items()):
        cr, st, de, op, th = r["creation"], r["steady"], r["deletion"], r["operator"], r["throttling"]
        t = cr["time_to_all_ready_seconds"]
        yield (
            f"N={n}: Ready {cr['ready']}/{n} in {'n/a' if t is None else f'{t:.2f} s'} "
            f"(floor {cr['floor_seconds']:.2f} s"
            + ("" if t is None else f", {cr['ratio_to_floor']:.2f}x")
            + ")"
        )
        pr = cr["per_resource"]
        yield (
            f"  creation: ClickHouse {cr['clickhouse']['calls']} calls (minimum {cr['clickhouse_minimum_calls']}; "
            f"{pr['clickhouse_calls']:.2f}/resource), AWS {cr['aws']['calls']} ({pr['aws_calls']:.2f}/resource), "
            f"Route 53 changes {cr['aws']['route53_change_calls']}, Kubernetes writes {cr['kubernetes']['writes']} "
            f"({pr['kubernetes_writes']:.2f}/resource)"
        )
        yield "    ClickHouse by operation per resource: " + ", ".join(
            f"{k} {v:g}" for k, v in pr["clickhouse_by_operation"].items()
        )
        yield "    AWS by operation per resource: " + ", ".join(
            f"{k} {v:g}" for k, v in pr["aws_by_operation"].items()
        )
        pp = st["per_period"]
        yield (
            f"  steady ({st['periods']} x {st['drift_interval_seconds']:g} s): per period {pp['external_calls']:g} "
            f"external calls (ClickHouse {pp['clickhouse_calls']:g}, AWS {pp['aws_calls']:g}); writes: "
            f"ClickHouse {pp['clickhouse_writes']:g}, AWS {pp['aws_writes']:g}, Kubernetes {pp['kubernetes_writes']:g}; "
            f"CPU {pp['cpu_seconds']:.2f} s"
        )
        dt_ = de["time_to_all_deleted_seconds"]
        yield (
            f"  deletion: {de['deleted']}/{n} in {'n/a' if dt_ is None else f'{dt_:.2f} s'} "
            f"(floor {de['floor_seconds']:.2f} s); ClickHouse {de['clickhouse']['calls']} calls "
            f"(minimum {de['clickhouse_minimum_calls']}), AWS {de['aws']['calls']}, Kubernetes writes "
            f"{de['kubernetes']['writes']}"
        )
        yield (
            f"  throttling: ClickHouse 429s {th['clickhouse_429']}, AWS throttled {th['aws_throttled_by_standin']}, "
            f"operator counted {th['operator_counted']}, surfaced in conditions {th['surfaced_in_conditions']}"
        )
        yield (
            f"  operator: peak RSS {op['peak_rss_mib']:.1f} MiB, CPU {op['cpu_seconds_total']:.1f} s in all "
            f"(creation {op['cpu_seconds_creation']:.1f} s, deletion {op['cpu_seconds_deletion']:.1f} s); "
            f"per resource: creation {op['cpu_ms_per_resource_creation']:.1f} ms, "
            f"deletion {op['cpu_ms_per_resource_deletion']:.1f} ms; "
            f"x{op['cpu_ratio_to_kubernetes_standin_creation']} and x{op['cpu_ratio_to_kubernetes_standin_deletion']} "
            "the Kubernetes stand-in's CPU"
        )


def plot(doc: Mapping[str, Any], path: Path) -> None:
    """Ready resources over time against the floor, per N; calls per resource by API, per N."""
    import importlib

    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    results = doc["results"]
    sizes = sorted(results, key=int)
    fig, axes = plt.subplots(2, len(sizes), figsize=(5 * len(sizes), 8), squeeze=False)
    for col, key in enumerate(sizes):
        r = results[key]
        n = int(key)
        cr = r["creation"]
        ax = axes[0][col]
        ts = [p[0] for p in cr["timeline"]]
        ks = [p[1] for p in cr["timeline"]]
        ax.step(ts, ks, where="post", label="Ready")
        ax.axvline(
            cr["floor_seconds"], color="red", linestyle="--", label=f"floor {cr['floor_seconds']:.1f} s"
        )
        ax.axvline(1.15 * cr["floor_seconds"], color="orange", linestyle=":", label="1.15 x floor")
        ax.plot([0, cr["floor_seconds"]], [0, n], color="red", alpha=0.3)
        ax.set_title(f"N={n}: Ready over time")
        ax.set_xlabel("seconds since the first create")
        ax.set_ylabel("Ready resources")
        ax.legend(loc="lower right", fontsize=8)
        ax = axes[1][col]
        labels = ["ClickHouse", "EC2", "Route 53", "Kubernetes writes"]
        aws_ops = cr["aws"]["by_operation"]
        created = [
            cr["clickhouse"]["calls"] / n,
            sum(v for k, v in aws_ops.items() if k.startswith("ec2/")) / n,
            sum(v for k, v in aws_ops.items() if k.startswith("route53/")) / n,
            cr["kubernetes"]["writes"] / n,
        ]
        minimum = [cr["clickhouse_minimum_calls"] / n, 0, 0, 0]
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], created, width=0.4, label="measured (creation)")
        ax.bar([x + 0.2 for x in xs], minimum, width=0.4, label="ClickHouse minimum", color="grey")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("calls per resource")
        ax.set_title(f"N={n}: calls per resource at creation")
        ax.legend(fontsize=8)
    fig.suptitle(
        f"clickhouse-privatelink-operator benchmark {doc['started']} (time scale {doc['settings']['time_scale']})"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------------------ command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10,100,1000", help="comma-separated numbers of resources")
    p.add_argument("--time-scale", type=float, default=0.02, help="ClickHouse wall-clock s per virtual s")
    p.add_argument(
        "--out", type=Path, default=None, help="JSON path (default benchmarks/results/bench-<date>.json)"
    )
    p.add_argument("--no-plot", action="store_true", help="write no PNG (no matplotlib needed)")
    p.add_argument("--report-only", action="store_true", help="exit 0 even when a target fails")
    p.add_argument(
        "--drift-interval",
        type=float,
        default=None,
        help="operator drift interval, s (default 300 x time scale, >= 5)",
    )
    p.add_argument("--drift-periods", type=int, default=2, help="drift intervals measured in steady state")
    p.add_argument("--route53-rate", type=float, default=5.0, help="Route 53 requests/s per account")
    p.add_argument("--ec2-throttle", default="20/40", help="EC2 token bucket RATE[/BURST]")
    p.add_argument("--endpoint-pending", type=float, default=2.0, help="s an endpoint stays pending/deleting")
    p.add_argument("--timeout-factor", type=float, default=5.0, help="give up after this many floors")
    p.add_argument("--min-timeout", type=float, default=180.0, help="but never before this many seconds")
    p.add_argument("--workers", type=int, default=16, help="threads creating and deleting resources")
    p.add_argument("--log-dir", type=Path, default=None, help="keep the processes' logs here")
    p.add_argument(
        "--plot-from", type=Path, default=None, help="only draw the PNG of an earlier JSON document"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plot_from is not None:
        png = (args.out or args.plot_from).with_suffix(".png")
        plot(json.loads(args.plot_from.read_text()), png)
        say(f"wrote {png}")
        return 0
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    drift = args.drift_interval if args.drift_interval is not None else max(5.0, 300 * args.time_scale)
    settings = Settings(
        time_scale=args.time_scale,
        drift_interval=drift,
        drift_periods=args.drift_periods,
        route53_rate=args.route53_rate,
        ec2_throttle=args.ec2_throttle,
        endpoint_pending=args.endpoint_pending,
        timeout_factor=args.timeout_factor,
        min_timeout=args.min_timeout,
        workers=args.workers,
    )
    started = dt.datetime.now(dt.UTC)
    out = args.out or ROOT / "results" / f"bench-{started.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        logs = args.log_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chpl-bench-")))
        for n in sizes:
            try:
                results[n] = run_size(n, settings, logs / f"n{n}")
            except (RuntimeError, TimeoutError, ApiException, httpx.HTTPError, OSError) as exc:
                errors[str(n)] = f"{type(exc).__name__}: {exc}"
                say(f"N={n}: the run failed: {errors[str(n)]}")
    targets = evaluate(results)
    doc = {
        "started": started.isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "settings": {
            **settings.__dict__,
            "clickhouse_limit": f"{CH_LIMIT} per {CH_PERIOD:g} virtual s per key",
            "clickhouse_minimum": {
                "create_per_service": CH_PER_SERVICE_CREATE,
                "create_fixed": CH_FIXED_CREATE,
                "delete_per_service": CH_PER_SERVICE_DELETE,
                "delete_fixed": CH_FIXED_DELETE,
            },
        },
        "results": {str(n): r for n, r in results.items()},
        "errors": errors,
        "targets": [t.as_dict() for t in targets],
    }
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print()
    for line in summary_lines(results):
        print(line)
    for size, err in errors.items():
        print(f"N={size}: ERROR {err}")
    print()
    for t in targets:
        print(f"{t.verdict} {t.name}: {t.detail}")
    say(f"wrote {out}")
    if not args.no_plot and results:
        png = out.with_suffix(".png")
        plot(doc, png)
        say(f"wrote {png}")
    failed = bool(errors) or any(t.verdict == "FAIL" for t in targets)
    return 0 if args.report_only or not failed else 1


if __name__ == "__main__":
    sys.exit(main())
