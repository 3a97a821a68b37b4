"""Chaos: a fifth or more of the operator's ClickHouse and AWS calls fail while resources come, change and go.

Both stand-ins inject faults at seeded rates: throttles (429 / RequestLimitExceeded / Throttling), 5xx,
dropped connections, Route 53's PriorRequestNotComplete and latency. ClickHouse faults match only the test
organization's paths (the operator's traffic: the test reads ClickHouse through the control API); AWS faults
match EC2 and Route 53 while the test makes no AWS call of its own (it reads AWS only after the faults are
cleared). Every resource still ends Ready, takes its subnet change, and goes with nothing left behind; the
faults injected are read back from the stand-ins' counters and go into the chaos summary.

``CHPL_CHAOS_RESOURCES`` sets the number of resources (6 in the test command's short pass, 20 in
``make chaos``); ``CHPL_CHAOS_SEED`` seeds the stand-ins' fault RNGs.
"""

from __future__ import annotations

import collections
import os
from typing import Any

import pytest

from clickhouse_privatelink_testkit.standins.aws_faults import AwsFaultControl
from tests.e2e import chaos_report
from tests.e2e.conftest import Cloud, Link, LinkFactory
from tests.fixtures.aws import AwsTarget
from tests.fixtures.clickhouse import ClickHouseApi, ClickHouseOrg
from tests.fixtures.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.standin_only]

RESOURCES = int(os.environ.get("CHPL_CHAOS_RESOURCES", "6"))
SEED = chaos_report.SEED
CONVERGE_TIMEOUT = 60.0 + 6.0 * RESOURCES

# Terminal faults fire on about 24% of the calls they match, latency on 10% more.
CLICKHOUSE_FAULTS: list[dict[str, Any]] = [
    {"kind": "latency", "rate": 0.10, "seconds": 2.0},  # virtual seconds: 0.1 s on the e2e clock
    {"kind": "rate_limit", "rate": 0.08, "reset": 1},
    {"kind": "error", "rate": 0.08, "status": 503},
    {"kind": "error", "rate": 0.05, "status": 500},
    {"kind": "drop", "rate": 0.05},
]
AWS_FAULTS: list[dict[str, Any]] = [
    {"kind": "latency", "rate": 0.10, "seconds": 0.2},
    {"kind": "throttle", "rate": 0.08},
    {"kind": "error", "rate": 0.06, "status": 500},
    {"kind": "error", "rate": 0.04, "status": 503},
    {"kind": "drop", "rate": 0.04},
    {"kind": "prior_request_not_complete", "rate": 0.04},
]


def failing_share(faults: list[dict[str, Any]]) -> float:
    """The share of matching calls at least one non-latency fault fails."""
    passing = 1.0
    for f in faults:
        if f["kind"] != "latency":
            passing *= 1.0 - f["rate"]
    return 1.0 - passing


def wait_ready_at_generation(link: Link, timeout: float) -> None:
    """Ready=True for the spec's current generation (a subnet change was taken, not an older pass)."""

    def check() -> bool:
        obj = link.get() or {}
        status = obj.get("status", {})
        generation = obj.get("metadata", {}).get("generation")
        ready: dict[str, Any] = next(
            (x for x in status.get("conditions", []) if x.get("type") == "Ready"), {}
        )
        return status.get("observedGeneration") == generation and ready.get("status") == "True"

    wait_for(check, timeout=timeout, interval=0.2, message=f"{link.name}: Ready at its generation")


def test_chaos_faults_every_resource_converges_and_nothing_leaks(
    make_link: LinkFactory,
    cloud: Cloud,
    aws_target: AwsTarget,
    clickhouse_api: ClickHouseApi,
    clickhouse_org: ClickHouseOrg,
) -> None:
    assert clickhouse_api.control is not None and aws_target.endpoint_url is not None
    control = clickhouse_api.control
    aws_faults = AwsFaultControl(aws_target.endpoint_url)
    assert failing_share(CLICKHOUSE_FAULTS) >= 0.2 and failing_share(AWS_FAULTS) >= 0.2
    services = [clickhouse_org.service_id] + [
        control.seed_service(clickhouse_org.org_id, region="us-east-1", state="running")["id"]
        for _ in range(max(1, RESOURCES // 2) - 1)
    ]
    subnets = list(cloud.network.subnet_ids)
    own_paths = f"^/v1/organizations/{clickhouse_org.org_id}"
    seq = max((r["seq"] for r in control.requests()), default=0)
    links: list[Link] = []
    injected_clickhouse = injected_aws = calls_clickhouse = 0
    stuck = 0
    by_kind: collections.Counter[str] = collections.Counter()
    try:
        control.set_faults([{**f, "path": own_paths} for f in CLICKHOUSE_FAULTS], seed=SEED)
        aws_faults.set_faults(AWS_FAULTS, seed=SEED)

        links = [make_link(clickhouse={"serviceId": services[i % len(services)]}) for i in range(RESOURCES)]
        for link in links:
            link.wait_ready(timeout=CONVERGE_TIMEOUT)
        # Every user moves to one subnet: the shared endpoint must follow (checked once faults are off).
        for link in links:
            link.patch_spec({"aws": {"subnetIds": subnets[:1]}})
        for link in links:
            wait_ready_at_generation(link, CONVERGE_TIMEOUT)
        # A look at AWS of the test's own, with AWS faults paused (their counts kept).
        by_kind.update(aws_faults.clear()["injected"])
        endpoints = cloud.live_endpoints()
        assert [sorted(e["SubnetIds"]) for e in endpoints] == [subnets[:1]]
        assert {link.status()["vpcEndpointId"] for link in links} == {endpoints[0]["VpcEndpointId"]}
        aws_faults.set_faults(AWS_FAULTS, seed=SEED + 1)
        for link in links:
            link.delete()
        for link in links:
            try:
                link.wait_gone(timeout=CONVERGE_TIMEOUT)
            except TimeoutError:
                stuck += 1

        own = [r for r in control.requests(since=seq) if r["key_id"] == clickhouse_org.key_id]
        calls_clickhouse = len(own)
        injected_clickhouse = sum(1 for r in own if r["fault"])
        by_kind.update(aws_faults.state()["injected"])
        injected_aws = sum(by_kind.values())
        chaos_report.REPORT.detail("faults injected (aws)", dict(by_kind))
        chaos_report.REPORT.detail(
            "faults injected (clickhouse)",
            {k: sum(1 for r in own if r["fault"] == k) for k in {r["fault"] for r in own if r["fault"]}},
        )
    finally:
        control.clear_faults()
        aws_faults.clear()
        aws_faults.close()
        left = {
            "endpoints": [e["VpcEndpointId"] for e in cloud.live_endpoints()],
            "zones": [z["Name"] for z in cloud.zones()],
            "allow-list entries": [e for s in services for e in cloud.allow_list(s)],
            "organization entries": cloud.org_entries(),
        }
        leaked = sum(len(v) for v in left.values())
        chaos_report.record(faults=injected_clickhouse + injected_aws, leaked=leaked, stuck_finalizers=stuck)
        print(
            f"\nchaos faults: resources {RESOURCES}, clickhouse calls {calls_clickhouse} "
            f"({injected_clickhouse} faulted), aws faults {injected_aws}, leaked {leaked}, stuck {stuck}"
        )
    assert (leaked, stuck) == (0, 0), left
    # The seeded rates really hit the operator: a fifth or more of its ClickHouse calls were faulted.
    assert injected_clickhouse >= 0.2 * calls_clickhouse > 0
    assert injected_aws > 0
