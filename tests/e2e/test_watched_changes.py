"""A changed API key reaches a Ready resource at once (README: ``CHPL_WATCH_SECRETS``), not at its next drift check.

The Secret watch stamps the resources using the Secret with its new version (an annotation of our prefix),
and a kopf handler on that annotation runs the pass. The operator here checks drift only once an hour, so
nothing but that handler can make it read the new Secret within the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clickhouse_privatelink_testkit.sandbox import Kube
from tests.e2e.conftest import LinkFactory, OperatorProcess
from tests.fixtures.clickhouse import ClickHouseApi, ClickHouseOrg
from tests.fixtures.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.standin_only]

# Far longer than the test: a drift check never runs in it (the first comes one interval or more after start).
SLOW_DRIFT_INTERVAL = "3600"
# "At once": a pass and its few ClickHouse calls, on the stand-ins' compressed clock.
PROMPTLY = 15.0


@pytest.fixture
def no_drift_checks(operator: OperatorProcess, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The session's operator, restarted with drift checks an hour apart for this test; back after it."""
    slow = OperatorProcess(
        env={**operator.env, "CHPL_DRIFT_INTERVAL": SLOW_DRIFT_INTERVAL},
        log_dir=tmp_path,
        clickhouse_url=operator.clickhouse_url,
    )
    operator.stop()
    try:
        slow.start()
        yield slow
    finally:
        slow.stop()
        operator.start()


def test_a_rotated_key_is_used_at_once_for_a_ready_resource(
    no_drift_checks: OperatorProcess,
    make_link: LinkFactory,
    k8s: Kube,
    clickhouse_api: ClickHouseApi,
    clickhouse_org: ClickHouseOrg,
) -> None:
    control = clickhouse_api.control
    assert control is not None
    link = make_link()
    link.wait_ready()
    passes = no_drift_checks.metric("chpl_reconciles_total", kind="reconcile")

    new = control.seed_key(clickhouse_org.org_id, role="admin")
    rotated = {"stringData": {"keyId": new["id"], "keySecret": new["secret"]}}
    secret = k8s.core.patch_namespaced_secret(LinkFactory.SECRET, link.namespace, rotated)
    link.wait_secret_version(secret.metadata.resource_version)
    # The pass that mark starts reads the new Secret and calls ClickHouse with the new key.
    wait_for(
        lambda: control.requests(key_id=new["id"]),
        timeout=PROMPTLY,
        message="a ClickHouse call with the rotated key",
    )
    assert no_drift_checks.metric("chpl_reconciles_total", kind="reconcile") > passes
    assert no_drift_checks.metric("chpl_reconciles_total", kind="drift") == 0
    link.wait_ready()
    assert new["secret"] not in no_drift_checks.logs()
