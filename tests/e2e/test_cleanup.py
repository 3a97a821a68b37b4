"""Cleanup that finishes without what it no longer has: a missing Secret, a namespace going, a stopped operator.

And what a resource may never reach: another namespace's Secret, an endpoint in another VPC. Every test reads
AWS and ClickHouse directly to prove what is left.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from clickhouse_privatelink import constants as c
from clickhouse_privatelink_testkit.sandbox import Kube
from clickhouse_privatelink_testkit.standins.aws import Network, seed_network
from clickhouse_privatelink_testkit.standins.aws_faults import AwsFaultControl
from tests.e2e.conftest import Cloud, Link, LinkFactory, OperatorProcess
from tests.e2e.test_lifecycle import assert_connected
from tests.fixtures.aws import AwsTarget
from tests.fixtures.clickhouse import ClickHouseApi, ClickHouseOrg
from tests.fixtures.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.standin_only]

CLEANUP_TIMEOUT = 30.0  # a deletion that cannot reach ClickHouse still ends within this
ERROR_RETRY_INTERVAL = 3.0  # CHPL_ERROR_RETRY_INTERVAL in tests/e2e/conftest.py
DRIFT_INTERVAL = 2.0  # CHPL_DRIFT_INTERVAL


def warnings(link: Link) -> dict[str, list[str]]:
    """The Warning Events about ``link``: reason -> messages."""
    found: dict[str, list[str]] = {}
    for e in link.k8s.events(link.namespace, link.name):
        if e.type == "Warning":
            found.setdefault(e.reason, []).append(e.message or "")
    return found


def namespace_exists(k8s: Kube, name: str) -> bool:
    try:
        k8s.core.read_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


@pytest.fixture
def other_namespace(k8s: Kube) -> Iterator[str]:
    """A second namespace (another tenant's), deleted afterwards."""
    name = f"t-other-{uuid.uuid4().hex[:8]}"
    k8s.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        with contextlib.suppress(ApiException):
            k8s.core.delete_namespace(name)


# ------------------------------------------------------------------------------ without the credentials


def test_deleting_without_the_secret_removes_the_aws_objects_and_names_what_stays_in_clickhouse(
    make_link: LinkFactory, k8s: Kube, cloud: Cloud, clickhouse_org: ClickHouseOrg
) -> None:
    link = make_link()
    status = assert_connected(link, cloud, clickhouse_org)
    endpoint_id, zone_id = status["vpcEndpointId"], status["hostedZoneId"]
    assert cloud.records(zone_id, clickhouse_org.private_dns_hostname)
    writes = cloud.writes()

    # What a namespace being torn down does first: the Secret goes, the resource is deleted after it.
    k8s.core.delete_namespaced_secret(LinkFactory.SECRET, link.namespace)
    started = time.monotonic()
    link.delete()
    link.wait_gone(timeout=CLEANUP_TIMEOUT)
    assert time.monotonic() - started < CLEANUP_TIMEOUT

    # Everything in AWS went: the endpoint, the record and the zone we made for it.
    assert cloud.live_endpoints() == []
    assert cloud.zones() == []
    with contextlib.suppress(cloud.r53.exceptions.NoSuchHostedZone):
        assert cloud.records(zone_id, clickhouse_org.private_dns_hostname) == []
    # ClickHouse could not be reached without the key: the entry is left, and nothing was written.
    assert cloud.allow_list() == [endpoint_id]
    assert cloud.writes() == writes

    # ... and a Warning Event says what was left where, and why.
    wait_for(lambda: "AllowListEntryLeft" in warnings(link), timeout=15, message="AllowListEntryLeft")
    [message] = set(warnings(link)["AllowListEntryLeft"])
    assert endpoint_id in message
    assert clickhouse_org.service_id in message
    assert f"Secret {link.namespace}/{LinkFactory.SECRET} is not readable" in message
    wait_for(lambda: "OrganizationEntryKept" in warnings(link), timeout=15, message="OrganizationEntryKept")
    assert any(endpoint_id in m for m in warnings(link)["OrganizationEntryKept"])
    assert cloud.org_entries() == [endpoint_id]


def test_what_stays_in_clickhouse_is_warned_about_once_however_many_passes_cleanup_takes(
    make_link: LinkFactory, k8s: Kube, cloud: Cloud, clickhouse_org: ClickHouseOrg, aws_target: AwsTarget
) -> None:
    assert aws_target.endpoint_url is not None
    link = make_link()
    endpoint_id = assert_connected(link, cloud, clickhouse_org)["vpcEndpointId"]
    k8s.core.delete_namespaced_secret(LinkFactory.SECRET, link.namespace)
    # AWS refuses the deletion twice: cleanup takes at least three passes, each one without the Secret.
    with AwsFaultControl(aws_target.endpoint_url) as faults:
        faults.add_fault("error", service="ec2", operation="DeleteVpcEndpoints", count=2, status=500)
        try:
            link.delete()
            link.wait_gone(timeout=CLEANUP_TIMEOUT)
            assert faults.state()["injected"].get("InternalError", 0) >= 2
        finally:
            faults.set_faults([])
    assert cloud.live_endpoints() == []
    assert cloud.allow_list() == [endpoint_id]

    wait_for(lambda: "OrganizationEntryKept" in warnings(link), timeout=15, message="OrganizationEntryKept")
    time.sleep(1.0)  # Events are posted in the background: let any late copy arrive
    left = warnings(link)["AllowListEntryLeft"]
    assert len(left) == 1, f"AllowListEntryLeft posted {len(left)} times, once per cleanup pass: {left}"


# -------------------------------------------------------------------------------------- namespace going


def delete_namespace_and_wait(k8s: Kube, namespace: str) -> None:
    k8s.core.delete_namespace(namespace)
    # Terminating while the finalizers run; the namespace goes once its resources are cleaned up.
    wait_for(
        lambda: not namespace_exists(k8s, namespace),
        timeout=CLEANUP_TIMEOUT * 2,
        interval=0.2,
        message=f"namespace {namespace} to go",
    )


def test_deleting_a_namespace_with_live_resources_cleans_them_up_and_the_namespace_goes(
    make_link: LinkFactory, k8s: Kube, cloud: Cloud, clickhouse_org: ClickHouseOrg
) -> None:
    first = make_link()
    second = make_link()  # the same VPC and service: both use one endpoint, one zone, one record
    endpoint_id = assert_connected(first, cloud, clickhouse_org)["vpcEndpointId"]
    assert second.wait_ready()["vpcEndpointId"] == endpoint_id

    delete_namespace_and_wait(k8s, first.namespace)
    assert first.get() is None and second.get() is None
    assert cloud.live_endpoints() == []
    assert cloud.zones() == []


def test_what_a_namespace_deletion_leaves_in_clickhouse_is_said_somewhere(
    make_link: LinkFactory,
    k8s: Kube,
    cloud: Cloud,
    clickhouse_org: ClickHouseOrg,
    operator: OperatorProcess,
) -> None:
    link = make_link()
    endpoint_id = assert_connected(link, cloud, clickhouse_org)["vpcEndpointId"]
    delete_namespace_and_wait(k8s, link.namespace)
    assert cloud.live_endpoints() == []
    if cloud.allow_list() == []:
        return  # nothing stayed behind: nothing to tell
    # The Secret went with the namespace (it holds no finalizer), so the allow-list entry stays in
    # ClickHouse. kube-apiserver refuses new Events in a terminating namespace ("unable to create new
    # content"), so the AllowListEntryLeft Warning is lost: the operator's log must say what stayed, and why.
    assert cloud.allow_list() == [endpoint_id]
    said = [
        line
        for line in operator.logs().splitlines()
        if "AllowListEntryLeft" in line and endpoint_id in line and clickhouse_org.service_id in line
    ]
    assert said, f"nothing tells that {endpoint_id} stays on the allow list of {clickhouse_org.service_id}"
    assert any(f"Secret {link.namespace}/{LinkFactory.SECRET} is not readable" in line for line in said)


# ------------------------------------------------------------------------------------ operator away


def test_deleting_while_the_operator_is_down_completes_when_it_returns(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg, operator: OperatorProcess
) -> None:
    link = make_link()
    endpoint_id = assert_connected(link, cloud, clickhouse_org)["vpcEndpointId"]

    operator.stop()
    try:
        link.delete()
        held = link.get()
        assert held is not None, "the finalizer holds the resource while nobody runs it"
        assert held["metadata"].get("deletionTimestamp")
        assert held["metadata"].get("finalizers")
        time.sleep(1.0)
        assert link.get() is not None
        assert [e["VpcEndpointId"] for e in cloud.live_endpoints()] == [endpoint_id]
        assert cloud.allow_list() == [endpoint_id]
    finally:
        operator.start()

    link.wait_gone(timeout=CLEANUP_TIMEOUT)
    assert cloud.live_endpoints() == []
    assert cloud.zones() == []
    assert cloud.allow_list() == []
    assert cloud.org_entries() == []


def test_a_finalizer_taken_off_a_handled_resource_is_put_back_and_cleanup_still_runs(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg
) -> None:
    """The first pass adds the finalizer itself; from then on kopf holds the resource with it."""
    link = make_link()
    assert_connected(link, cloud, clickhouse_org)
    assert c.FINALIZER in (link.get() or {})["metadata"]["finalizers"]

    link.k8s.custom.patch_namespaced_custom_object(
        c.GROUP, c.VERSION, link.namespace, c.PLURAL, link.name, {"metadata": {"finalizers": None}}
    )
    wait_for(
        lambda: c.FINALIZER in ((link.get() or {})["metadata"].get("finalizers") or []),
        timeout=CLEANUP_TIMEOUT,
        message="the finalizer put back",
    )
    link.delete()
    link.wait_gone(timeout=CLEANUP_TIMEOUT)
    assert cloud.live_endpoints() == []
    assert cloud.allow_list() == []
    assert cloud.org_entries() == []


# ------------------------------------------------------------------------------------------- tenancy


def test_a_secret_in_another_namespace_is_never_used(
    make_link: LinkFactory,
    k8s: Kube,
    cloud: Cloud,
    clickhouse_api: ClickHouseApi,
    clickhouse_org: ClickHouseOrg,
    other_namespace: str,
) -> None:
    assert clickhouse_api.control is not None
    control = clickhouse_api.control
    theirs = control.seed_key(clickhouse_org.org_id, role="admin")
    k8s.core.create_namespaced_secret(
        other_namespace,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "tenant-key", "labels": {c.LABEL_API_KEY: "true"}},
            "stringData": {"keyId": theirs["id"], "keySecret": theirs["secret"]},
        },
    )
    by_name = make_link(clickhouse={"credentialsSecretRef": {"name": "tenant-key"}})
    # A namespace field is not part of the reference: it is pruned, and cannot point elsewhere.
    by_namespace = make_link(
        clickhouse={"credentialsSecretRef": {"name": "tenant-key", "namespace": other_namespace}}
    )
    stored = by_namespace.get()
    assert stored is not None
    assert stored["spec"]["clickhouse"]["credentialsSecretRef"]["name"] == "tenant-key"
    assert "namespace" not in stored["spec"]["clickhouse"]["credentialsSecretRef"]

    for link in (by_name, by_namespace):
        cond = link.wait_condition("Ready", status="False", reason="CredentialsSecretNotFound")
        assert f"{link.namespace}/tenant-key" in cond["message"]
        assert other_namespace not in cond["message"]
    # Let retries happen (the slow error interval), then prove the other tenant's key was never sent.
    time.sleep(ERROR_RETRY_INTERVAL * 1.5)
    for link in (by_name, by_namespace):
        still = link.condition("Ready")
        assert still is not None and still["reason"] == "CredentialsSecretNotFound"
    assert control.requests(key_id=theirs["id"]) == []
    assert cloud.live_endpoints() == []
    assert cloud.allow_list() == []

    for link in (by_name, by_namespace):
        link.delete()
        link.wait_gone(timeout=CLEANUP_TIMEOUT)
    assert control.requests(key_id=theirs["id"]) == []


# ---------------------------------------------------------------------------- someone else's endpoint


def _snapshot(cloud: Cloud, endpoint_id: str) -> dict[str, Any]:
    ep = cloud.endpoint(endpoint_id)
    assert ep is not None
    return {
        "state": ep["State"],
        "vpc": ep["VpcId"],
        "subnets": sorted(ep["SubnetIds"]),
        "groups": sorted(g["GroupId"] for g in ep.get("Groups", [])),
        "tags": sorted((t["Key"], t["Value"]) for t in ep.get("Tags", [])),
        "private_dns": ep["PrivateDnsEnabled"],
        "policy": ep.get("PolicyDocument"),
    }


def test_an_adopted_endpoint_in_another_vpc_is_a_mismatch_and_never_touched(
    make_link: LinkFactory,
    cloud: Cloud,
    clickhouse_org: ClickHouseOrg,
    aws_target: AwsTarget,
    aws_network: Network,
) -> None:
    assert aws_target.endpoint_url is not None
    elsewhere = seed_network(aws_target.endpoint_url, aws_network.region, cidr="10.43.0.0/16")
    foreign = cloud.ec2.create_vpc_endpoint(
        VpcEndpointType="Interface",
        VpcId=elsewhere.vpc_id,
        ServiceName=clickhouse_org.endpoint_service_id,
        SubnetIds=[elsewhere.subnet_ids[0]],
        SecurityGroupIds=[elsewhere.security_group_id],
        PrivateDnsEnabled=False,
        TagSpecifications=[{"ResourceType": "vpc-endpoint", "Tags": [{"Key": "owner", "Value": "them"}]}],
    )["VpcEndpoint"]["VpcEndpointId"]
    wait_for(lambda: _snapshot(cloud, foreign)["state"] == "available", timeout=15, message="available")
    before = _snapshot(cloud, foreign)

    link = make_link(aws={"vpcEndpointId": foreign})
    cond = link.wait_condition("Ready", status="False", reason="EndpointMismatch")
    assert foreign in cond["message"] and elsewhere.vpc_id in cond["message"]
    assert aws_network.vpc_id in cond["message"]
    time.sleep(DRIFT_INTERVAL * 2)  # a few more passes: still nothing done
    again = link.condition("Ready")
    assert again is not None and again["status"] == "False" and again["reason"] == "EndpointMismatch"

    assert _snapshot(cloud, foreign) == before
    assert not any(k == c.TAG_MANAGED_BY for k, _ in before["tags"])
    assert cloud.allow_list() == [] and cloud.org_entries() == []
    assert cloud.writes() == 0
    assert cloud.live_endpoints() == []  # nothing was made in the resource's own VPC either
    assert cloud.zones() == []

    link.delete()
    link.wait_gone(timeout=CLEANUP_TIMEOUT)
    assert _snapshot(cloud, foreign) == before
    assert cloud.allow_list() == [] and cloud.org_entries() == []
    assert cloud.writes() == 0
    other_zones = cloud.r53.list_hosted_zones_by_vpc(VPCId=elsewhere.vpc_id, VPCRegion=elsewhere.region)
    assert other_zones["HostedZoneSummaries"] == []
