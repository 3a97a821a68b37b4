"""Crash safety: SIGKILL the operator at random moments while resources sharing one endpoint are created,
changed and deleted; restart it each time; then check that nothing was duplicated, leaked or left stuck.

``CHPL_CHAOS_KILLS`` sets the number of kills (the test command runs a short pass; ``make chaos`` runs 30 or
more); ``CHPL_CHAOS_SEED`` makes a run repeatable. The last line printed is the summary
``kills: N, duplicates: 0, leaked: 0, stuck finalizers: 0``; the kills, leaks and stuck finalizers also go
into the chaos suite's summary line (tests/e2e/chaos_report.py).
"""

from __future__ import annotations

import collections
import os
import random
import time
from typing import Any

import pytest

from tests.e2e import chaos_report
from tests.e2e.conftest import Cloud, Link, LinkFactory, OperatorProcess
from tests.fixtures.clickhouse import ClickHouseApi, ClickHouseOrg

pytestmark = [pytest.mark.e2e, pytest.mark.standin_only]

KILLS = int(os.environ.get("CHPL_CHAOS_KILLS", "6"))
SEED = chaos_report.SEED
SERVICES = 4


def duplicates(cloud: Cloud) -> int:
    """Endpoints beyond one per endpoint service in the VPC (deleting ones included: they were made)."""
    eps = cloud.ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [cloud.network.vpc_id]}])
    per_service = collections.Counter(
        e["ServiceName"] for e in eps["VpcEndpoints"] if e["State"] not in ("deleted", "deleting")
    )
    return sum(n - 1 for n in per_service.values() if n > 1)


def test_kills_at_random_moments_leave_one_endpoint_per_service_and_nothing_behind(
    make_link: LinkFactory,
    cloud: Cloud,
    operator: OperatorProcess,
    clickhouse_api: ClickHouseApi,
    clickhouse_org: ClickHouseOrg,
) -> None:
    assert clickhouse_api.control is not None
    rng = random.Random(SEED)
    services: list[dict[str, Any]] = [
        clickhouse_api.control.seed_service(clickhouse_org.org_id, region="us-east-1", state="running")
        for _ in range(SERVICES)
    ]
    live: list[Link] = []
    deleted: list[Link] = []
    subnets = list(cloud.network.subnet_ids)
    worst_duplicates = 0
    try:
        for _ in range(KILLS):
            action = rng.choice(["create", "create", "delete", "update"]) if live else "create"
            if action == "create":
                # Two users of one endpoint at the same moment (or one racing another's deletion below).
                for _ in range(2):
                    live.append(make_link(clickhouse={"serviceId": rng.choice(services)["id"]}))
            elif action == "delete":
                victim = live.pop(rng.randrange(len(live)))
                victim.delete()
                deleted.append(victim)
                live.append(make_link(clickhouse={"serviceId": rng.choice(services)["id"]}))
            else:
                rng.choice(live).patch_spec(
                    {"aws": {"subnetIds": rng.sample(subnets, rng.randint(1, len(subnets)))}}
                )
            # A random moment within the operator's work on what was just applied: a chaos schedule, not a
            # wait for anything (everything is checked afterwards by polling with deadlines).
            time.sleep(rng.uniform(0.0, 1.5))
            operator.kill()
            worst_duplicates = max(worst_duplicates, duplicates(cloud))
            operator.start()

        for link in live:
            link.wait_ready(timeout=120)
        worst_duplicates = max(worst_duplicates, duplicates(cloud))
        endpoint_ids = {link.status()["vpcEndpointId"] for link in live}
        per_service = {link.status()["endpointServiceId"] for link in live}
        assert len(endpoint_ids) == len(per_service) == 1, endpoint_ids
        untagged = [
            e
            for e in cloud.live_endpoints()
            if not any(t["Key"].startswith("privatelink.") for t in e["Tags"])
        ]
        assert untagged == []
    finally:
        for link in live:
            link.delete()
        stuck = 0
        for link in live + deleted:
            try:
                link.wait_gone(timeout=120)
            except TimeoutError:
                stuck += 1
        left = {
            "endpoints": [e["VpcEndpointId"] for e in cloud.live_endpoints()],
            "zones": cloud.zones(),
            "allow-list entries": [(s["id"], e) for s in services for e in cloud.allow_list(s["id"])],
            "organization entries": cloud.org_entries(),
        }
        leaked = sum(len(v) for v in left.values())
        print(
            f"\nkills: {KILLS}, duplicates: {worst_duplicates}, leaked: {leaked}, stuck finalizers: {stuck}"
            + "".join(f"\n  left: {what}: {items}" for what, items in left.items() if items)
        )
        chaos_report.record(kills=KILLS, leaked=leaked, stuck_finalizers=stuck)
        chaos_report.REPORT.detail("kill duplicates", worst_duplicates)
    assert (worst_duplicates, leaked, stuck) == (0, 0, 0)
