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
from clickhouse_privatelink.wiring.progress import PROGRESS_FIELD
from clickhouse_privatelink_testkit.sandbox import Kube
from clickhouse_privatelink_testkit.standins.aws import Network, seed_network
from tests.e2e import chaos_report
from tests.e2e.conftest import (
    OPERATOR_ENV,
    READY_TIMEOUT,
    STRICT_TENANCY_LABEL,
    Cloud,
    Link,
    LinkFactory,
    OperatorProcess,
)
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
# Tags AWS refuses (length, characters such as \n, \x00, \x1b) or that are reserved (aws:, our prefix, in
# any case; Name is the operator's).
BAD_TAGS = [
    {"": "v"},
    {"k" * 129: "v"},
    {"team": "v" * 257},
    {"line\nbreak": "v"},
    {"nul\x00": "v"},
    {"team": "\x1b[31mred"},
    {"AWS:cost": "v"},
    {"aws:cost": "v"},
    {"Aws:Cost": "v"},
    {f"{c.GROUP}/cluster": "other"},
    {"PrivateLink.ClickHouse.dev/cluster": "other"},
    {"Name": "mine"},
]
wrong_types = st.one_of(
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)


def valid_spec(org_id: str, service_id: str, secret: str, api_url: str, network: Network) -> dict[str, Any]:
    """A spec the operator makes Ready: the starting point every hostile one changes."""
    return {
        "clickhouse": {
            "organizationId": org_id,
            "serviceId": service_id,
            "credentialsSecretRef": {"name": secret},
            "apiUrl": api_url,
        },
        "aws": {
            "region": network.region,
            "vpcId": network.vpc_id,
            "subnetIds": list(network.subnet_ids),
            "securityGroupIds": [network.security_group_id],
        },
    }


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
        prefix = draw(st.sampled_from(["aws:", "AWS:", "aWs:", f"{c.GROUP}/", f"{c.GROUP.upper()}/", ""]))
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
            # Opted in, but in another namespace: a resource can name only its own namespace's Secrets.
            "metadata": {"name": OTHER_SECRET, "labels": {c.LABEL_API_KEY: "true"}},
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
        return valid_spec(org["id"], service["id"], SECRET, operator.clickhouse_url, cloud.network)

    accepted: dict[str, set[str] | None] = {}  # name -> the reasons expected (None: any terminal one)
    refused: list[str] = []
    final: dict[str, dict[str, Any]] = {}  # name -> its Ready condition once reported
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
            for tags in BAD_TAGS:  # each tag AWS would refuse, or that is reserved: the schema says so (422)
                apply(fixed(aws__tags=tags), None, must_refuse=True)

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
        policy_refusals = sum(1 for cond in final.values() if cond.get("reason") == "NotPermitted")
        chaos_report.record(
            bad_inputs=len(accepted) + len(refused),
            policy_refusals=policy_refusals,
            leaked=leaked,
            stuck_finalizers=stuck,
        )
        chaos_report.REPORT.detail(
            "bad inputs", {"refused (422)": len(refused), "accepted and reported": len(accepted)}
        )
        print(
            f"\nchaos bad input: {len(refused)} refused, {len(accepted)} reported, leaked {leaked}, stuck {stuck}"
        )
    assert (leaked, stuck) == (0, 0)
    assert operator.proc is not None and operator.proc.poll() is None


# ---- tenancy: what a namespace's policy does not allow is refused before any call, and a fix is seen at once


def _progress_retries(link: Any) -> int:
    """How many times kopf has retried the resource's reconcile handler (its progress record in the status)."""
    obj = link.get() or {}
    record = ((obj.get("status") or {}).get(PROGRESS_FIELD) or {}).get("reconcile") or {}
    return int(record.get("retries") or 0)


def test_chaos_tenancy_refuses_foreign_objects_and_unopted_secrets_and_sees_a_fix_at_once(
    make_link: LinkFactory,
    k8s: Kube,
    cloud: Cloud,
    operator: OperatorProcess,
    aws_target: AwsTarget,
    clickhouse_api: ClickHouseApi,
) -> None:
    assert clickhouse_api.control is not None and aws_target.endpoint_url is not None
    control = clickhouse_api.control
    org = control.seed_org()
    key = control.seed_key(org["id"], role="admin")
    unopted_key = control.seed_key(org["id"], role="admin")  # a working key, in a Secret that did not opt in
    service = control.seed_service(org["id"], region="us-east-1", state="running")
    other_vpc = seed_network(aws_target.endpoint_url, "us-east-1", cidr="10.78.0.0/16")
    tenant, late = (f"chaos-{what}-{uuid.uuid4().hex[:6]}" for what in ("tenant", "late"))
    for namespace in (tenant, late):
        meta = {"name": namespace, "labels": {STRICT_TENANCY_LABEL: "true"}}
        k8s.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})

    def secret(namespace: str, name: str, data: dict[str, str], *, opted_in: bool) -> None:
        meta: dict[str, Any] = {"name": name}
        if opted_in:
            meta["labels"] = {c.LABEL_API_KEY: "true"}
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": data}
        k8s.core.create_namespaced_secret(namespace, body)

    for value in (key["secret"], unopted_key["secret"]):
        chaos_report.remember_secret(value)
    for namespace in (tenant, late):
        secret(namespace, "api-key", {"keyId": key["id"], "keySecret": key["secret"]}, opted_in=True)
    secret(
        tenant,
        "db-credentials",
        {"keyId": unopted_key["id"], "keySecret": unopted_key["secret"]},
        opted_in=False,
    )
    secret(tenant, "db-password", {"username": key["id"], "password": key["secret"]}, opted_in=True)
    # The platform team's policy for the tenant: the test VPC, the seeded organization, the stand-in's API
    # URL written as ClickHouse's docs write it (with /v1); no role, no zone of its own.
    k8s.allow(
        tenant,
        {
            "namespaces": {"names": [tenant]},
            "allow": {
                "vpcIds": [cloud.network.vpc_id],
                "organizationIds": [org["id"]],
                "apiUrls": [operator.clickhouse_url + "/v1/"],
            },
        },
    )

    def spec(**changes: Any) -> dict[str, Any]:
        body = valid_spec(org["id"], service["id"], "api-key", operator.clickhouse_url, cloud.network)
        for path, value in changes.items():
            put(body, tuple(path.split("__")), value)
        return body

    created: list[Link] = []

    def link(namespace: str, name: str, body: dict[str, Any]) -> Link:
        obj = {"apiVersion": c.API_VERSION, "kind": c.KIND, "metadata": {"name": name}, "spec": body}
        k8s.custom.create_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PLURAL, obj)
        created.append(Link(k8s, namespace, name, obj))
        return created[-1]

    foreign_role = "arn:aws:iam::210987654321:role/someone-elses"
    refusals = {  # name -> (spec, reason, what the message must name)
        "foreign-vpc": (spec(aws__vpcId=other_vpc.vpc_id, aws__subnetIds=list(other_vpc.subnet_ids),
                             aws__securityGroupIds=[other_vpc.security_group_id]), "NotPermitted", "spec.aws.vpcId"),
        "foreign-role": (spec(aws__roleArn=foreign_role), "NotPermitted", "spec.aws.roleArn"),
        "foreign-zone": (spec(dns={"mode": "Route53", "hostedZoneId": "Z0FOREIGN0ZONE0ID"}), "NotPermitted",
                         "spec.dns.hostedZoneId"),
        "foreign-org": (spec(clickhouse__organizationId=str(uuid.uuid4())), "NotPermitted",
                        "spec.clickhouse.organizationId"),
        "undocumented-keys": (spec(clickhouse__credentialsSecretRef={"name": "db-password", "keyIdKey": "username",
                                                                     "keySecretKey": "password"}),
                              "NotPermitted", "credentialsSecretRef.keyIdKey"),
        "secret-not-opted-in": (spec(clickhouse__credentialsSecretRef={"name": "db-credentials"}),
                                "CredentialsSecretNotFound", "is not readable"),
    }  # fmt: skip
    try:
        for name, (body, _, _) in refusals.items():
            link(tenant, name, body)
        # /v1 as ClickHouse's docs write it: accepted, dropped, and matched against the policy's URL.
        with_version = link(
            tenant, "api-url-with-v1", spec(clickhouse__apiUrl=operator.clickhouse_url + "/v1/")
        )
        for name, (_, reason, named) in refusals.items():
            ready = created[list(refusals).index(name)].wait_condition("Ready", status="False", reason=reason)
            assert named in ready["message"], (name, ready["message"])
            # Nothing about the Secret's keys or contents, and no hint of whether it exists.
            assert "keyId" not in ready["message"] or reason == "NotPermitted", ready["message"]
        with_version.wait_ready()
        # The refused resources made nothing and called nothing: no endpoint in the foreign VPC, no request
        # with the key of the Secret that did not opt in.
        foreign_endpoints = cloud.ec2.describe_vpc_endpoints(
            Filters=[{"Name": "vpc-id", "Values": [other_vpc.vpc_id]}]
        )["VpcEndpoints"]
        assert foreign_endpoints == []
        assert control.requests(key_id=unopted_key["id"]) == []
        for (name, (_, reason, _)), refused in zip(refusals.items(), created, strict=False):
            assert refused.status().get("vpcEndpointId") is None, name
            refused.wait_events(reason)  # and a Warning Event says the same

        # Fix, then retry: a spec fixed after a terminal failure is acted on at once, whatever retry time the
        # failed passes left (they back off: 3 s, then 6 s, here).
        fixing = link(
            tenant, "fixed-spec", spec(clickhouse__serviceId=None, clickhouse__serviceName="no-such")
        )
        fixing.wait_condition("Ready", status="False", reason="ServiceNotFound")
        wait_for(
            lambda: _progress_retries(fixing) >= 2, timeout=4 * ERROR_RETRY, message="a second retry stored"
        )
        started = time.monotonic()
        fixing.patch_spec({"clickhouse": {"serviceName": service["name"]}})
        generation = int((fixing.get() or {})["metadata"]["generation"])

        def acted_on() -> bool:
            ready = fixing.condition("Ready") or {}
            return ready.get("observedGeneration") == generation and ready.get("reason") != "ServiceNotFound"

        wait_for(acted_on, timeout=2 * ERROR_RETRY, interval=0.05, message="a pass of the fixed spec")
        spec_latency = time.monotonic() - started
        # Within the poll interval's order, and well inside the 6 s retry the failed pass stored.
        assert spec_latency < ERROR_RETRY, f"{spec_latency:.2f} s from the fix to its pass"

        # The same for a policy: a namespace no policy selects is refused; the platform team allows it, and the
        # resource is acted on at once.
        waiting = link(late, "until-allowed", spec())
        refused = waiting.wait_condition("Ready", status="False", reason="NotPermitted")
        assert f"selects namespace {late}" in refused["message"]
        wait_for(
            lambda: _progress_retries(waiting) >= 2, timeout=4 * ERROR_RETRY, message="a second retry stored"
        )
        started = time.monotonic()
        k8s.allow(late, {"namespaces": {"names": [late]},
                         "allow": {"vpcIds": [cloud.network.vpc_id], "organizationIds": [org["id"]]}})  # fmt: skip
        waiting.wait_condition("Ready", status="True", timeout=READY_TIMEOUT)
        policy_latency = time.monotonic() - started
        assert (waiting.condition("Ready") or {}).get("reason") == "Ready"
        chaos_report.REPORT.detail(
            "fix-then-retry latency (s)",
            {"spec": round(spec_latency, 2), "policy (to Ready)": round(policy_latency, 2)},
        )
        print(
            f"\nchaos tenancy: fix seen in {spec_latency:.2f} s (spec), Ready {policy_latency:.2f} s after the policy"
        )
    finally:
        for each in created:
            with contextlib.suppress(ApiException):
                each.delete()
        stuck = 0
        for each in created:
            try:
                each.wait_gone(timeout=READY_TIMEOUT)
            except TimeoutError:
                stuck += 1
        for namespace in (tenant, late):
            with contextlib.suppress(ApiException):
                k8s.core.delete_namespace(namespace)
            with contextlib.suppress(ApiException):
                k8s.custom.delete_cluster_custom_object(c.GROUP, c.VERSION, c.POLICY_PLURAL, namespace)
        leaked = len(control.organization(org["id"])["private_endpoints"])
        leaked += len(control.service(org["id"], service["id"])["private_endpoint_ids"])
        chaos_report.record(
            policy_refusals=len(refusals), bad_inputs=len(refusals), leaked=leaked, stuck_finalizers=stuck
        )
    assert (leaked, stuck) == (0, 0)


def test_chaos_a_restart_with_wider_settings_is_acted_on_at_once(
    make_link: LinkFactory, operator: OperatorProcess
) -> None:
    """The retry time a failed pass stored on the resource does not outlive the process that stored it."""
    port = operator.clickhouse_url.rsplit(":", 1)[1]
    elsewhere = f"http://localhost:{port}"  # the same stand-in, by a name the operator is not allowed to call
    link = make_link(clickhouse={"apiUrl": elsewhere})
    link.wait_condition("Ready", status="False", reason="ApiUrlNotAllowed")
    # Three failures: the stored retry is now 12 s away (3, 6, then 12 s: terminal failures back off).
    wait_for(lambda: _progress_retries(link) >= 3, timeout=8 * ERROR_RETRY, message="a third retry stored")
    allowed = operator.env["CHPL_CLICKHOUSE_API_URLS"]
    try:
        operator.env["CHPL_CLICKHOUSE_API_URLS"] = f"{allowed},{elsewhere}"
        operator.restart()
        started = time.monotonic()
        wait_for(
            lambda: (link.condition("Ready") or {}).get("reason") != "ApiUrlNotAllowed",
            timeout=4 * ERROR_RETRY,
            interval=0.05,
            message="a pass under the wider settings",
        )
        latency = time.monotonic() - started
        assert latency < 2 * ERROR_RETRY, (
            f"{latency:.2f} s after the restart (the stored retry was 12 s away)"
        )
        chaos_report.REPORT.detail("restart-then-retry latency (s)", round(latency, 2))
        print(
            f"\nchaos restart: a pass {latency:.2f} s after the operator came back with the wider allow-list"
        )
    finally:
        link.delete()
        link.wait_gone()
        operator.env["CHPL_CLICKHOUSE_API_URLS"] = allowed
        operator.restart()
