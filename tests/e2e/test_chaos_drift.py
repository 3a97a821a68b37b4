"""Chaos: out-of-band changes made by hand through the stand-ins are repaired within two drift intervals.

One Ready resource, then one change at a time, each as a person would make it: its DNS records deleted
(a Route 53 change batch), its allow-list entry removed (the console's PATCH with the org's key), its subnets
changed (ModifyVpcEndpoint), its endpoint deleted, and last its ClickHouse service deleted, which cannot be
repaired and must be reported with a specific reason. Each is polled for with a deadline of two drift
intervals plus a margin (the e2e operator checks drift every ``CHPL_DRIFT_INTERVAL`` = 2 s); the repairs
counted go into the chaos summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e import chaos_report
from tests.e2e.conftest import OPERATOR_ENV, Cloud, Link, LinkFactory, OperatorProcess
from tests.fixtures.aws import ENDPOINT_PENDING_SECONDS
from tests.fixtures.clickhouse import ClickHouseApi, ClickHouseOrg
from tests.fixtures.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.standin_only]

DRIFT_INTERVAL = float(OPERATOR_ENV["CHPL_DRIFT_INTERVAL"])
# A drift pass itself takes a few calls; a replaced endpoint is pending for a while before it is available.
MARGIN = 2.0
DEADLINE = 2 * DRIFT_INTERVAL + MARGIN


def repaired_within_deadline(what: str, check: Callable[[], Any], *, extra: float = 0.0) -> float:
    """Poll ``check`` until it holds; the seconds it took (fails past two drift intervals + margin)."""
    started = time.monotonic()
    wait_for(check, timeout=DEADLINE + extra, interval=0.1, message=f"{what} repaired", ignore=(KeyError,))
    return time.monotonic() - started


def test_chaos_drift_out_of_band_changes_are_repaired_within_two_drift_intervals(
    make_link: LinkFactory,
    cloud: Cloud,
    operator: OperatorProcess,
    clickhouse_api: ClickHouseApi,
    clickhouse_org: ClickHouseOrg,
) -> None:
    assert clickhouse_api.control is not None
    link: Link = make_link()
    status = link.wait_ready()
    endpoint_id, zone_id = status["vpcEndpointId"], status["hostedZoneId"]
    hostname = clickhouse_org.private_dns_hostname
    subnets = sorted(cloud.network.subnet_ids)
    repairs: dict[str, float] = {}
    metric_before = operator.metric("chpl_drift_repairs_total")

    def ready_on(endpoint: str) -> bool:
        ready = link.condition("Ready") or {}
        return ready.get("status") == "True" and link.status().get("vpcEndpointId") == endpoint

    # 1. The A and TXT records deleted in one change batch.
    records = cloud.records(zone_id, hostname)
    assert sorted(r["Type"] for r in records) == ["A", "TXT"]
    cloud.r53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": r} for r in records]},
    )
    assert cloud.records(zone_id, hostname) == []
    repairs["record"] = repaired_within_deadline(
        "DNS records", lambda: sorted(r["Type"] for r in cloud.records(zone_id, hostname)) == ["A", "TXT"]
    )

    # 2. The allow-list entry removed in the console.
    cloud.remove_from_allow_list(endpoint_id)
    assert cloud.allow_list() == []
    repairs["allow-list entry"] = repaired_within_deadline(
        "allow-list entry", lambda: cloud.allow_list() == [endpoint_id]
    )

    # 3. The endpoint's subnets changed.
    cloud.ec2.modify_vpc_endpoint(VpcEndpointId=endpoint_id, RemoveSubnetIds=subnets[1:])
    assert sorted((cloud.endpoint(endpoint_id) or {})["SubnetIds"]) == subnets[:1]
    repairs["subnets"] = repaired_within_deadline(
        "endpoint subnets", lambda: sorted((cloud.endpoint(endpoint_id) or {})["SubnetIds"]) == subnets
    )

    # 4. The endpoint deleted: a new one, allow-listed and behind the record, serves the resource again.
    cloud.ec2.delete_vpc_endpoints(VpcEndpointIds=[endpoint_id])

    def replaced() -> bool:
        live = cloud.live_endpoints()
        if len(live) != 1 or live[0]["VpcEndpointId"] == endpoint_id:
            return False
        new = str(live[0]["VpcEndpointId"])
        dns = {r["Type"]: r for r in cloud.records(zone_id, hostname)}
        alias = str(dns.get("A", {}).get("AliasTarget", {}).get("DNSName", ""))
        return ready_on(new) and new in cloud.allow_list() and alias.startswith(new) and "TXT" in dns

    # The replacement is pending (ENDPOINT_PENDING_SECONDS) before it is available: that much more time.
    repairs["endpoint"] = repaired_within_deadline("endpoint", replaced, extra=ENDPOINT_PENDING_SECONDS)
    new_endpoint = link.status()["vpcEndpointId"]
    assert new_endpoint != endpoint_id
    # The deleted endpoint's ID must not stay allow-listed (checked at the end, with the leaks).
    stale = [e for e in cloud.allow_list() if e != new_endpoint]

    # 5. The service deleted: nothing to repair; reported with its specific reason, never Ready.
    clickhouse_api.control.delete_service(clickhouse_org.org_id, clickhouse_org.service_id)
    started = time.monotonic()
    cond = link.wait_condition("Ready", status="False", reason="ServiceNotFound", timeout=DEADLINE)
    reported = time.monotonic() - started
    assert clickhouse_org.service_id in cond["message"] or "404" in cond["message"]

    # The resource can still be deleted: its endpoint and zone go; no org entry is left.
    link.delete()
    link.wait_gone()
    org_entries = cloud.org_entries()
    leaked = len(cloud.live_endpoints()) + len(cloud.zones()) + len(org_entries) + len(stale)
    chaos_report.record(drifts_repaired=len(repairs), leaked=leaked)
    chaos_report.REPORT.detail("drift repair seconds", {**repairs, "service deleted (reported)": reported})
    chaos_report.REPORT.detail(
        "drift repairs (operator metric)", operator.metric("chpl_drift_repairs_total") - metric_before
    )
    print(f"\nchaos drift: repaired {repairs}, service deletion reported in {reported:.1f}s, leaked {leaked}")
    # Nothing left: no endpoint, no zone, no org entry, and no allow-list entry of the deleted endpoint.
    assert (cloud.live_endpoints(), cloud.zones(), org_entries, stale) == ([], [], [], []), (
        f"left behind after the endpoint {endpoint_id} was deleted out of band and replaced by "
        f"{new_endpoint}: org entries {org_entries}, allow-list entries {stale}"
    )


def test_chaos_drift_checks_begin_again_after_a_restart(
    make_link: LinkFactory, cloud: Cloud, operator: OperatorProcess, clickhouse_org: ClickHouseOrg
) -> None:
    """A restarted operator checks a quiet resource for drift: its resume pass finds everything as it was and
    writes nothing (no watch event follows), and its drift checks still begin within two intervals."""
    link: Link = make_link()
    zone_id = link.wait_ready()["hostedZoneId"]
    hostname = clickhouse_org.private_dns_hostname
    operator.restart()
    # The first drift check of the new process: after the resume pass, within two intervals of the start.
    wait_for(
        lambda: operator.metric("chpl_reconciles_total", kind="drift") >= 1,
        timeout=DEADLINE + MARGIN,
        interval=0.1,
        message="a drift check after the restart",
    )
    records = cloud.records(zone_id, hostname)
    cloud.r53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": r} for r in records]},
    )
    seconds = repaired_within_deadline(
        "DNS records after a restart",
        lambda: sorted(r["Type"] for r in cloud.records(zone_id, hostname)) == ["A", "TXT"],
    )
    chaos_report.record(drifts_repaired=1)
    link.delete()
    link.wait_gone()
    print(f"\nchaos drift after a restart: records repaired in {seconds:.1f}s")
