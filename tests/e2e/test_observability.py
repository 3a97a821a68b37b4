"""What users see: kubectl columns, metrics that move, JSON logs naming the resource, drift repaired."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Cloud, Kube, LinkFactory, OperatorProcess, assert_quiet_over_drift_checks
from tests.fixtures.clickhouse import ClickHouseOrg
from tests.fixtures.kubernetes import KubeApi
from tests.fixtures.polling import wait_for

pytestmark = pytest.mark.e2e


def test_kubectl_get_shows_ready_and_the_hostname_at_a_glance(
    make_link: LinkFactory, kube_api: KubeApi, clickhouse_org: ClickHouseOrg
) -> None:
    link = make_link()
    status = link.wait_ready()
    out = kube_api.kubectl("get", "chpl", "-n", link.namespace).stdout.splitlines()
    assert out[0].split() == ["NAME", "READY", "HOSTNAME", "ENDPOINT", "AGE"]
    assert out[1].split()[:4] == [
        link.name,
        "True",
        clickhouse_org.private_dns_hostname,
        status["vpcEndpointId"],
    ]
    described = kube_api.kubectl("describe", "chpl", "-n", link.namespace, link.name).stdout
    assert "EndpointCreated" in described and "AllowListed" in described


@pytest.mark.standin_only
def test_metrics_move_during_a_reconcile(make_link: LinkFactory, operator: OperatorProcess) -> None:
    before_reconciles = operator.metric("chpl_reconciles_total", kind="reconcile")
    before_calls = operator.metric("chpl_external_api_calls_total", service="clickhouse")
    link = make_link()
    link.wait_ready()
    wait_for(lambda: operator.metric("chpl_resources", ready="true") >= 1, timeout=10)
    assert operator.metric("chpl_reconciles_total", kind="reconcile") > before_reconciles
    assert operator.metric("chpl_external_api_calls_total", service="clickhouse") > before_calls
    assert (
        operator.metric(
            "chpl_external_api_calls_total", service="clickhouse", operation="update_private_endpoint_ids"
        )
        >= 1
    )
    assert operator.metric("chpl_reconcile_duration_seconds_count", kind="reconcile") >= 1
    assert (
        operator.metric(
            "chpl_external_api_calls_total", service="ec2", operation="CreateVpcEndpoint", status="200"
        )
        >= 1
    )
    assert (
        operator.metric(
            "chpl_external_api_calls_total", service="route53", operation="ChangeResourceRecordSets"
        )
        >= 1
    )


@pytest.mark.standin_only
def test_log_lines_are_json_naming_the_resource(make_link: LinkFactory, operator: OperatorProcess) -> None:
    link = make_link()
    link.wait_ready()

    def lines_about_the_link() -> list[dict[str, object]]:
        records = [json.loads(line) for line in operator.logs().splitlines() if line.startswith("{")]
        return [r for r in records if isinstance(r.get("k8s"), dict) and r["k8s"].get("name") == link.name]

    about = wait_for(lines_about_the_link, timeout=10)
    assert all(r["k8s"]["namespace"] == link.namespace for r in about)  # type: ignore[index]
    assert all("message" in r and "severity" in r for r in about)
    non_json = [line for line in operator.logs().splitlines() if line.strip() and not line.startswith("{")]
    assert non_json == []


@pytest.mark.standin_only
def test_drift_is_repaired_on_the_timer(
    make_link: LinkFactory, cloud: Cloud, clickhouse_org: ClickHouseOrg, operator: OperatorProcess
) -> None:
    link = make_link()
    status = link.wait_ready()
    endpoint_id = status["vpcEndpointId"]
    repairs = operator.metric("chpl_drift_repairs_total")

    # Someone removes the endpoint from the allow list in the console, and deletes the DNS record.
    cloud.remove_from_allow_list(endpoint_id)
    records = [
        r
        for r in cloud.records(status["hostedZoneId"], clickhouse_org.private_dns_hostname)
        if r["Type"] == "A"
    ]
    cloud.r53.change_resource_record_sets(
        HostedZoneId=status["hostedZoneId"],
        ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": records[0]}]},
    )

    wait_for(lambda: cloud.allow_list() == [endpoint_id], timeout=30, message="allow list repaired")
    wait_for(
        lambda: (
            [
                r["Type"] for r in cloud.records(status["hostedZoneId"], clickhouse_org.private_dns_hostname)
            ].count("A")
            == 1
        ),
        timeout=30,
        message="DNS record repaired",
    )
    wait_for(lambda: operator.metric("chpl_drift_repairs_total") >= repairs + 2, timeout=10)
    link.wait_events("DriftRepaired")
    assert [e["VpcEndpointId"] for e in cloud.live_endpoints()] == [endpoint_id]


def test_a_healthy_resource_costs_no_writes_between_drift_checks(
    make_link: LinkFactory, operator: OperatorProcess, k8s: Kube
) -> None:
    link = make_link()
    link.wait_ready()
    assert_quiet_over_drift_checks(link, operator, k8s)
