"""Chaos: hostile specs are refused by the schema or end in a specific condition; nothing else is disturbed.

Specs come from a fixed list (other namespaces' Secrets, forbidden apiUrls, another VPC's endpoint,
serviceId and serviceName both or neither, ...) and from hypothesis (deterministic: ``derandomize``, no
database; ``CHPL_CHAOS_EXAMPLES`` examples, 40 in the short pass): patterns, lengths, unicode, wrong types,
missing fields. Each is applied through the Kubernetes stand-in with the official client and is either
refused with a 422 (schema or CEL) or, accepted, ends with Ready=False and a reason of TERMINAL_REASONS (the
expected one where there is one), never Ready=True and never without a status. Meanwhile a valid resource
created first stays Ready (its Ready condition never transitions), the operator process never exits, its
reconciles of the bad resources stay at about one per retry or drift interval (no hot loop), and no request
reaches anything but the allowed ClickHouse stand-in (a trap server and the Kubernetes API's own listener
record any that do).
"""

from __future__ import annotations

import contextlib
import http.server
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.decisions.reasons import TERMINAL_REASONS, Reason
from clickhouse_privatelink_testkit.sandbox import Kube
from clickhouse_privatelink_testkit.standins.aws import seed_network
from tests.e2e import chaos_report
from tests.e2e.conftest import OPERATOR_ENV, Cloud, LinkFactory, OperatorProcess
from tests.fixtures.aws import AwsTarget
from tests.fixtures.clickhouse import ClickHouseApi, ClickHouseOrg
from tests.fixtures.kubernetes import KubeApi
from tests.fixtures.polling import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.standin_only,
    # The Kubernetes client's own use of `random` during an example; the examples are derandomized.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

EXAMPLES = int(os.environ.get("CHPL_CHAOS_EXAMPLES", "40"))
ERROR_RETRY = float(OPERATOR_ENV["CHPL_ERROR_RETRY_INTERVAL"])
DRIFT = float(OPERATOR_ENV["CHPL_DRIFT_INTERVAL"])
TERMINAL = {str(r) for r in TERMINAL_REASONS}
API_URL_NOT_ALLOWED = getattr(Reason, "API_URL_NOT_ALLOWED", None)
SECRET = "hostile-key"
OTHER_SECRET = "elsewhere-key"


class Trap:
    """An HTTP server that records every request: no apiUrl may make the operator call it."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        trap = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                trap.seen.append(f"{self.command} {self.path}")
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def kube_listener_spy(kube_api: KubeApi) -> Iterator[list[str]]:
    """ClickHouse-shaped requests (``/v1/...``) that reach the Kubernetes API emulator's listener."""
    seen: list[str] = []
    emulator = kube_api.emulator
    if emulator is None:
        yield seen
        return
    route = emulator._route

    async def spy(request: Any) -> Any:
        if request.path.startswith("/v1/"):
            seen.append(f"{request.method} {request.path}")
        return await route(request)

    emulator._route = spy  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del emulator._route


# ---- hostile specs


STRING_FIELDS = [
    ("clickhouse", "organizationId"),
    ("clickhouse", "serviceId"),
    ("clickhouse", "serviceName"),
    ("clickhouse", "apiUrl"),
    ("clickhouse", "credentialsSecretRef", "name"),
    ("clickhouse", "credentialsSecretRef", "keyIdKey"),
    ("clickhouse", "credentialsSecretRef", "keySecretKey"),
    ("aws", "region"),
    ("aws", "vpcId"),
    ("aws", "subnetIds", 0),
    ("aws", "securityGroupIds", 0),
    ("aws", "vpcEndpointId"),
    ("dns", "mode"),
    ("dns", "hostedZoneId"),
    ("deletionPolicy",),
]
NASTY = [
    "",
    " ",
    "a" * 64,
    "x" * 300,
    "y" * 5000,
    "../../etc/passwd",
    "' OR 1=1 --",
    "${jndi:ldap://x}",
    "\u202eevil",
    "数据库",
    "\x00",
    "🙂" * 40,
    "vpc-0123456789abcdef0\n",
    "subnet-" + "f" * 40,
    "00000000-0000-0000-0000-00000000000g",
    "https://example.com",
]
texts = st.one_of(st.sampled_from(NASTY), st.text(max_size=300))
wrong_types = st.one_of(
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)


def put(spec: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = spec
    for part in path[:-1]:
        target = target.setdefault(part, {}) if isinstance(part, str) else target[part]
    target[path[-1]] = value


def drop(spec: dict[str, Any], path: tuple[Any, ...]) -> None:
    target: Any = spec
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]


@st.composite
def hostile_specs(draw: st.DrawFn) -> tuple[str, Any]:
    """A mutation of a valid spec: (what, how)."""
    kind = draw(st.sampled_from(["text", "type", "missing", "tag", "both", "list"]))
    if kind == "text":
        return kind, (draw(st.sampled_from(STRING_FIELDS)), draw(texts))
    if kind == "type":
        return kind, (draw(st.sampled_from(STRING_FIELDS)), draw(wrong_types))
    if kind == "missing":
        required = [
            ("clickhouse",),
            ("aws",),
            ("clickhouse", "organizationId"),
            ("clickhouse", "credentialsSecretRef"),
            ("clickhouse", "credentialsSecretRef", "name"),
            ("aws", "region"),
            ("aws", "vpcId"),
            ("aws", "subnetIds"),
            ("clickhouse", "serviceId"),
        ]
        return kind, draw(st.sampled_from(required))
    if kind == "tag":
        prefix = draw(st.sampled_from(["aws:", f"{c.GROUP}/", ""]))
        key = prefix + draw(st.text(max_size=140)) if prefix else draw(st.sampled_from(["", "k" * 129]))
        return kind, key
    if kind == "both":
        return kind, draw(st.text(min_size=1, max_size=20))
    return kind, draw(st.lists(st.sampled_from(NASTY[:6]), min_size=17, max_size=20))


def apply_mutation(spec: dict[str, Any], kind: str, how: Any) -> None:
    if kind in ("text", "type"):
        path, value = how
        if path == ("clickhouse", "serviceName"):
            del spec["clickhouse"]["serviceId"]  # by name alone: its text is what is tried
        put(spec, path, value)
    elif kind == "missing":
        drop(spec, how)
    elif kind == "tag":
        spec["aws"]["tags"] = {how: "v"}
    elif kind == "both":
        spec["clickhouse"]["serviceName"] = how  # beside serviceId: the CEL rule refuses it
    else:
        spec["aws"]["subnetIds"] = how  # more than 16, not subnet IDs


# ---- the test


def test_chaos_bad_input_is_refused_or_reported_and_disturbs_nothing(
    make_link: LinkFactory,
    k8s: Kube,
    kube_api: KubeApi,
    cloud: Cloud,
    operator: OperatorProcess,
    aws_target: AwsTarget,
    clickhouse_api: ClickHouseApi,
    clickhouse_org: ClickHouseOrg,
) -> None:
    assert clickhouse_api.control is not None and aws_target.endpoint_url is not None
    control = clickhouse_api.control
    namespace = make_link.namespace
    valid = make_link()
    valid.wait_ready()
    valid_since = (valid.condition("Ready") or {})["lastTransitionTime"]

    # The hostile resources' own org and key: their calls never spend the valid resource's rate limit.
    org = control.seed_org()
    key = control.seed_key(org["id"], role="admin")
    service = control.seed_service(org["id"], region="us-east-1", state="running")
    make_link.secret(SECRET, key["id"], key["secret"])
    other_ns = f"chaos-other-{uuid.uuid4().hex[:6]}"
    k8s.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other_ns}})
    other_secret = f"only-there-{uuid.uuid4().hex[:12]}"
    chaos_report.remember_secret(other_secret)
    k8s.core.create_namespaced_secret(
        other_ns,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": OTHER_SECRET},
            "stringData": {"keyId": key["id"], "keySecret": other_secret},
        },
    )
    other_vpc = seed_network(aws_target.endpoint_url, "us-east-1", cidr="10.77.0.0/16")
    foreign = cloud.ec2.create_vpc_endpoint(
        VpcEndpointType="Interface",
        VpcId=other_vpc.vpc_id,
        ServiceName=service["endpoint_service_id"],
        SubnetIds=list(other_vpc.subnet_ids),
        SecurityGroupIds=[other_vpc.security_group_id],
    )["VpcEndpoint"]["VpcEndpointId"]
    trap = Trap()

    def base() -> dict[str, Any]:
        return {
            "clickhouse": {
                "organizationId": org["id"],
                "serviceId": service["id"],
                "credentialsSecretRef": {"name": SECRET},
                "apiUrl": operator.clickhouse_url,
            },
            "aws": {
                "region": cloud.network.region,
                "vpcId": cloud.network.vpc_id,
                "subnetIds": list(cloud.network.subnet_ids),
                "securityGroupIds": [cloud.network.security_group_id],
            },
        }

    accepted: dict[str, set[str] | None] = {}  # name -> the reasons expected (None: any terminal one)
    refused: list[str] = []
    counter = iter(range(1_000_000))

    def apply(spec: dict[str, Any], expected: set[str] | None, *, must_refuse: bool = False) -> None:
        name = f"bad-{next(counter)}"
        body = {"apiVersion": c.API_VERSION, "kind": c.KIND, "metadata": {"name": name}, "spec": spec}
        try:
            k8s.custom.create_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PLURAL, body)
        except ApiException as exc:
            assert exc.status == 422, f"{spec!r}: {exc.status} {exc.body}"
            refused.append(name)
            return
        assert not must_refuse, f"accepted, but the schema must refuse it: {spec!r}"
        accepted[name] = expected

    def fixed(**changes: Any) -> dict[str, Any]:
        spec = base()
        for path, value in changes.items():
            put(spec, tuple(path.split("__")), value)
        return spec

    forbidden_urls = [
        "http://169.254.169.254",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]",
        kube_api.url,
        "https://kubernetes.default.svc",
        trap.url,
    ]
    url_reason = {str(API_URL_NOT_ALLOWED)} if API_URL_NOT_ALLOWED is not None else None
    stuck = 0
    try:
        with kube_listener_spy(kube_api) as kube_seen:
            apply(
                fixed(clickhouse__credentialsSecretRef={"name": OTHER_SECRET}), {"CredentialsSecretNotFound"}
            )
            apply(fixed(aws__vpcEndpointId=foreign), {"EndpointMismatch"})
            for url in forbidden_urls:
                apply(fixed(clickhouse__apiUrl=url), url_reason)
            apply(fixed(clickhouse__serviceName=service["name"]), None, must_refuse=True)  # both
            neither = base()
            del neither["clickhouse"]["serviceId"]
            apply(neither, None, must_refuse=True)
            by_name = base()
            del by_name["clickhouse"]["serviceId"]
            by_name["clickhouse"]["serviceName"] = "数据库\u202e" + "z" * 200
            apply(by_name, {"ServiceNotFound"})
            apply(fixed(clickhouse__organizationId=str(uuid.uuid4())), None)
            apply(fixed(clickhouse__credentialsSecretRef={"name": SECRET, "keyIdKey": "nope"}), None)

            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(hostile_specs())
            def generated(mutation: tuple[str, Any]) -> None:
                spec = base()
                apply_mutation(spec, *mutation)
                apply(spec, None)

            generated()

            names = list(accepted)
            # Every accepted one ends Ready=False with a terminal reason (the expected one where known).
            final: dict[str, dict[str, Any]] = {}

            def ready_conditions() -> dict[str, dict[str, Any]]:
                items = k8s.custom.list_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PLURAL)
                out: dict[str, dict[str, Any]] = {}
                for obj in items["items"]:
                    conds = obj.get("status", {}).get("conditions", [])
                    out[obj["metadata"]["name"]] = next((x for x in conds if x["type"] == "Ready"), {})
                return out

            def settled() -> bool:
                conds = ready_conditions()
                for name in names:
                    cond = conds.get(name, {})
                    assert cond.get("status") != "True", f"{name} became Ready: {cond}"
                    expected = accepted[name]
                    if cond.get("status") != "False" or cond.get("reason") not in (expected or TERMINAL):
                        return False
                    final[name] = cond
                return True

            wait_for(settled, timeout=30 + len(names), interval=0.3, message="every bad resource reported")

            # A window of two retry intervals: no hot loop, nothing turns Ready, the valid one is undisturbed.
            def bad_reconciles() -> float:
                return sum(
                    operator.metric("chpl_reconciles_total", kind=kind) for kind in ("reconcile", "drift")
                ) - sum(
                    operator.metric("chpl_reconciles_total", kind=kind, outcome="done")
                    for kind in ("reconcile", "drift")
                )

            before, started = bad_reconciles(), time.monotonic()
            window = 2 * ERROR_RETRY
            while time.monotonic() - started < window:
                conds = ready_conditions()
                assert all(conds[n].get("status") == "False" for n in names), conds
                assert conds[valid.name].get("status") == "True", conds[valid.name]
                assert operator.proc is not None and operator.proc.poll() is None, "the operator exited"
                time.sleep(0.25)  # the sampling period of the window, not a wait for anything
            elapsed = time.monotonic() - started
            rate = (bad_reconciles() - before) / max(1, len(names)) / elapsed
            # Expected: one retry per error interval and one drift check per drift interval per resource.
            bound = 1.5 * (1 / ERROR_RETRY + 1 / DRIFT)
            assert rate < bound, f"{rate:.2f} reconciles/s per bad resource (bound {bound:.2f}): a hot loop"
            ready = valid.condition("Ready") or {}
            assert (ready.get("status"), ready.get("lastTransitionTime")) == ("True", valid_since)

            # No request reached anything but the allowed ClickHouse stand-in.
            assert trap.seen == [], trap.seen
            assert kube_seen == [], kube_seen
    finally:
        for name in accepted:
            with contextlib.suppress(ApiException):
                k8s.delete_link(namespace, name)
        for name in accepted:
            try:
                wait_for(lambda n=name: k8s.get_link(namespace, n) is None, timeout=60, interval=0.2)  # type: ignore[misc]
            except TimeoutError:
                stuck += 1
        trap.close()
        cloud.ec2.delete_vpc_endpoints(VpcEndpointIds=[foreign])
        with contextlib.suppress(ApiException):
            k8s.core.delete_namespace(other_ns)
        leaked = len(control.organization(org["id"])["private_endpoints"])
        leaked += len(control.service(org["id"], service["id"])["private_endpoint_ids"])
        leaked += len(
            [e for e in cloud.live_endpoints() if e["VpcEndpointId"] != valid.status().get("vpcEndpointId")]
        )
        chaos_report.record(bad_inputs=len(accepted) + len(refused), leaked=leaked, stuck_finalizers=stuck)
        chaos_report.REPORT.detail(
            "bad inputs", {"refused (422)": len(refused), "accepted and reported": len(accepted)}
        )
        print(
            f"\nchaos bad input: {len(refused)} refused, {len(accepted)} reported, leaked {leaked}, stuck {stuck}"
        )
    assert (leaked, stuck) == (0, 0)
    assert operator.proc is not None and operator.proc.poll() is None
