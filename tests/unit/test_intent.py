"""Intent before side effects (engine/context.py ``Pass.before_write``) and the test-only crash hook."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, cast

import pytest

from clickhouse_privatelink.adapters.aws.gateway import AwsGateway
from clickhouse_privatelink.adapters.kubernetes.api import KubernetesApiError
from clickhouse_privatelink.api.models import ClickHousePrivateLinkSpec
from clickhouse_privatelink.decisions.ownership import ResourceRef
from clickhouse_privatelink.decisions.reasons import ConditionType, Reason
from clickhouse_privatelink.decisions.usage import usage_from_body
from clickhouse_privatelink.engine import crash_points
from clickhouse_privatelink.engine.context import Outcome, Pass, Resource, StepFailed
from clickhouse_privatelink.engine.status import EngineStatus
from clickhouse_privatelink.engine.usage_book import UsageBook

SPEC = {
    "clickhouse": {
        "organizationId": "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
        "serviceId": "5b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8",
        "credentialsSecretRef": {"name": "key"},
    },
    "aws": {
        "region": "us-east-1",
        "vpcId": "vpc-0123456789abcdef0",
        "subnetIds": ["subnet-0123456789abcdef0"],
    },
}


def a_pass(status: dict[str, Any], writes: list[dict[str, Any]], *, fail: bool = False) -> Pass:
    body = {"metadata": {"uid": "uid-1", "namespace": "ns", "name": "a"}, "spec": SPEC, "status": status}
    res = Resource(
        ref=ResourceRef("ns", "a", "uid-1", "prod"),
        spec=ClickHousePrivateLinkSpec.model_validate(SPEC),
        generation=1,
        status=status,
        usage=usage_from_body(body),
    )

    async def intend(_: Resource, fields: EngineStatus) -> None:
        if fail:
            raise KubernetesApiError("PATCH: 503", status=503)
        writes.append(fields.to_json())

    async def no_clickhouse() -> Any:
        raise AssertionError("not used")

    recorded = EngineStatus.from_status(status)
    return Pass(
        res=res,
        out=Outcome(status=recorded.copy()),
        aws=cast(AwsGateway, None),
        book=UsageBook(),
        indexed=[],
        me=res.usage,
        clickhouse=no_clickhouse,
        read_age=1.0,
        recorded=recorded,
        durable=recorded.copy(),
        intend=intend,
    )


async def test_what_a_pass_learned_is_written_before_its_first_external_write_and_only_once() -> None:
    writes: list[dict[str, Any]] = []
    p = a_pass({}, writes)
    p.out.status.service_id = "svc"
    p.out.status.endpoint_service_id = "com.amazonaws.vpce.x"
    p.out.status.private_dns_hostname = "h.example"
    p.out.status.vpc_endpoint_state = "pending"  # not what the resource uses: never part of the intent
    await p.before_write(ConditionType.VPC_ENDPOINT_READY)
    await p.before_write(ConditionType.VPC_ENDPOINT_READY)  # nothing new: no second write
    p.out.status.vpc_endpoint_id, p.out.status.vpc_endpoint_owned = "vpce-1", True
    await p.before_write(ConditionType.DNS_READY)
    assert writes == [
        {"serviceId": "svc", "endpointServiceId": "com.amazonaws.vpce.x", "privateDnsHostname": "h.example"},
        {"vpcEndpointId": "vpce-1", "vpcEndpointOwned": True},
    ]


async def test_a_status_that_names_everything_already_costs_no_write() -> None:
    writes: list[dict[str, Any]] = []
    status = {
        "serviceId": "svc",
        "vpcEndpointId": "vpce-1",
        "hostedZoneId": "Z1",
        "allowListEntryAdded": True,
    }
    p = a_pass(status, writes)
    await p.before_write(ConditionType.ALLOW_LISTED)
    assert writes == []


async def test_no_external_write_without_its_intent_written_first() -> None:
    p = a_pass({}, [], fail=True)
    p.out.status.service_id = "svc"
    with pytest.raises(StepFailed) as failed:
        await p.before_write(ConditionType.VPC_ENDPOINT_READY)
    assert failed.value.reason is Reason.UPSTREAM_UNAVAILABLE
    assert failed.value.step is ConditionType.VPC_ENDPOINT_READY


def test_the_crash_hook_is_off_unless_armed_and_refuses_unknown_points() -> None:
    crash_points.never(crash_points.ENDPOINT_CREATE)  # production: nothing happens
    with pytest.raises(ValueError, match="CHPL_TEST_CRASH_AFTER"):
        crash_points.kill_after("endpoint-created")


def test_an_armed_hook_kills_the_process_only_after_its_own_write() -> None:
    code = (
        "from clickhouse_privatelink.engine import crash_points as c\n"
        "hook = c.kill_after(c.ZONE_CREATE)\n"
        "hook(c.ENDPOINT_CREATE)\n"
        "print('alive', flush=True)\n"
        "hook(c.ZONE_CREATE)\n"
        "print('survived', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == -9
    assert done.stdout == "alive\n"
