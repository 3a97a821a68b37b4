"""Bad input and failing upstreams become conditions with the upstream message, never crashes or retry storms."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import Cloud, Kube, LinkFactory, OperatorProcess
from tests.e2e.test_lifecycle import assert_connected
from tests.fixtures.clickhouse import ClickHouseApi, ClickHouseOrg
from tests.fixtures.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.standin_only]

ERROR_RETRY_INTERVAL = 3.0  # CHPL_ERROR_RETRY_INTERVAL in tests/e2e/conftest.py


def test_missing_secret_is_reported_and_fixing_it_recovers(
    make_link: LinkFactory, clickhouse_org: ClickHouseOrg, cloud: Cloud
) -> None:
    link = make_link(clickhouse={"credentialsSecretRef": {"name": "not-yet"}})
    cond = link.wait_condition("Ready", status="False", reason="CredentialsSecretNotFound")
    assert "not-yet" in cond["message"]
    assert cloud.live_endpoints() == []
    make_link.secret("not-yet", clickhouse_org.key_id, clickhouse_org.key_secret)
    assert_connected(link, cloud, clickhouse_org)


def test_a_fixed_secret_is_picked_up_at_once_through_the_secret_watch(
    make_link: LinkFactory, clickhouse_org: ClickHouseOrg, cloud: Cloud, k8s: Kube
) -> None:
    make_link.secret("rotating", clickhouse_org.key_id, "an-old-revoked-s3cr3t")
    link = make_link(clickhouse={"credentialsSecretRef": {"name": "rotating"}})
    link.wait_condition("Ready", status="False", reason="Unauthorized")
    fixed = {"stringData": {"keySecret": clickhouse_org.key_secret}}
    secret = k8s.core.patch_namespaced_secret("rotating", link.namespace, fixed)
    # The watch marks the resource with the Secret's new version, which re-runs its reconcile.
    link.wait_secret_version(secret.metadata.resource_version)
    assert_connected(link, cloud, clickhouse_org)


def test_secret_without_the_keys_is_invalid(make_link: LinkFactory) -> None:
    link = make_link(clickhouse={"credentialsSecretRef": {"name": LinkFactory.SECRET, "keyIdKey": "id"}})
    cond = link.wait_condition("Ready", status="False", reason="CredentialsInvalid")
    assert "'id'" in cond["message"]


def test_bad_credentials_are_unauthorized_and_retried_slowly(
    make_link: LinkFactory,
    k8s: Kube,
    clickhouse_api: ClickHouseApi,
    clickhouse_org: ClickHouseOrg,
    operator: OperatorProcess,
) -> None:
    assert clickhouse_api.control is not None
    make_link.secret("wrong-key", clickhouse_org.key_id, "not-the-secret-s3cr3t")
    link = make_link(clickhouse={"credentialsSecretRef": {"name": "wrong-key"}})
    cond = link.wait_condition("Ready", status="False", reason="Unauthorized")
    assert "401" in cond["message"]
    assert "not-the-secret-s3cr3t" not in str(link.get())
    assert "not-the-secret-s3cr3t" not in " ".join(
        e.message or "" for e in k8s.events(link.namespace, link.name)
    )

    def unauthorized_calls() -> int:
        assert clickhouse_api.control is not None
        return sum(
            1 for r in clickhouse_api.control.requests(key_id=clickhouse_org.key_id) if r["status"] == 401
        )

    seen = unauthorized_calls()
    started = time.monotonic()
    wait_for(lambda: unauthorized_calls() > seen, timeout=30)
    # The next attempt came only after the slow error retry interval: no hot loop on a hopeless call.
    assert time.monotonic() - started >= ERROR_RETRY_INTERVAL * 0.5
    assert unauthorized_calls() <= seen + 2
    assert "not-the-secret-s3cr3t" not in operator.logs()


def test_read_only_key_is_forbidden_to_allow_list(
    make_link: LinkFactory, clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg, cloud: Cloud
) -> None:
    assert clickhouse_api.control is not None
    dev = clickhouse_api.control.seed_key(clickhouse_org.org_id, role="developer")
    make_link.secret("developer-key", dev["id"], dev["secret"])
    link = make_link(clickhouse={"credentialsSecretRef": {"name": "developer-key"}})
    cond = link.wait_condition("AllowListed", status="False", reason="Forbidden")
    assert "Admin key" in cond["message"]
    assert cloud.allow_list() == []


def test_unknown_service_is_not_found(make_link: LinkFactory, cloud: Cloud) -> None:
    link = make_link(clickhouse={"serviceId": "00000000-0000-4000-8000-000000000000"})
    cond = link.wait_condition("ServiceResolved", status="False", reason="ServiceNotFound")
    assert "404" in cond["message"]
    assert cloud.live_endpoints() == []


def test_plan_without_private_link_is_reported(
    make_link: LinkFactory, clickhouse_api: ClickHouseApi, cloud: Cloud
) -> None:
    assert clickhouse_api.control is not None
    control = clickhouse_api.control
    org = control.seed_org(tier="basic")
    key = control.seed_key(org["id"], role="admin")
    svc = control.seed_service(org["id"], region="us-east-1", state="running")
    make_link.secret("basic-key", key["id"], key["secret"])
    link = make_link(
        clickhouse={
            "organizationId": org["id"],
            "serviceId": svc["id"],
            "credentialsSecretRef": {"name": "basic-key"},
        }
    )
    cond = link.wait_condition("Ready", status="False", reason="PrivateLinkNotAvailable")
    assert cond["message"]
    assert cloud.live_endpoints() == []


@pytest.mark.parametrize(
    ("field", "missing"),
    [("subnetIds", "subnet-0123456789abcdef0"), ("securityGroupIds", "sg-0123456789abcdef0")],
)
def test_invalid_subnet_or_security_group_is_reported_with_the_aws_message(
    make_link: LinkFactory, cloud: Cloud, field: str, missing: str
) -> None:
    link = make_link(aws={field: [missing]})
    cond = link.wait_condition("VpcEndpointReady", status="False", reason="InvalidAwsConfiguration")
    assert missing in cond["message"]
    assert cloud.live_endpoints() == []


def test_endpoint_service_aws_cannot_verify_is_reported(
    make_link: LinkFactory, clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg, cloud: Cloud
) -> None:
    assert clickhouse_api.control is not None
    svc = clickhouse_api.control.seed_service(
        clickhouse_org.org_id,
        region="us-east-1",
        endpoint_service_id="com.amazonaws.vpce.us-east-1.vpce-svc-unverifiable000",
    )
    link = make_link(clickhouse={"serviceId": svc["id"]})
    cond = link.wait_condition("VpcEndpointReady", status="False", reason="InvalidAwsConfiguration")
    assert "could not be verified" in cond["message"]


def test_throttling_and_server_errors_are_retried_until_ready(
    make_link: LinkFactory, clickhouse_api: ClickHouseApi, clickhouse_org: ClickHouseOrg, cloud: Cloud
) -> None:
    assert clickhouse_api.control is not None
    clickhouse_api.control.add_fault(kind="rate_limit", count=2, path="privateEndpointConfig", reset=1)
    clickhouse_api.control.add_fault(kind="error", count=2, status=503, method="PATCH")
    link = make_link()
    assert_connected(link, cloud, clickhouse_org)
    statuses = [r["status"] for r in clickhouse_api.control.requests() if r.get("fault")]
    assert 429 in statuses and 503 in statuses
