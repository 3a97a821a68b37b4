"""Intent before side effects (engine/context.py ``Pass.before_write``), the first one with the finalizer in an
annotation (decisions/intent.py), and the test-only crash hook."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, cast

import pytest

from clickhouse_privatelink import constants as c
from clickhouse_privatelink.adapters.aws.gateway import AwsGateway
from clickhouse_privatelink.adapters.kubernetes.api import KubernetesApiError
from clickhouse_privatelink.api.models import ClickHousePrivateLinkSpec
from clickhouse_privatelink.decisions.intent import decode_intent, encode_intent, recorded_status
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


def a_pass(
    status: dict[str, Any], writes: list[dict[str, Any]], *, fail: int = 0, held: list[bool] | None = None
) -> Pass:
    """A pass of a resource with ``status``; its intents go to ``writes`` (refused with ``fail`` when set).
    ``held``: whether the resource has the operator's finalizer (one item, which a write sets)."""
    body = {"metadata": {"uid": "uid-1", "namespace": "ns", "name": "a"}, "spec": SPEC, "status": status}
    finalizer = held if held is not None else [True]
    res = Resource(
        ref=ResourceRef("ns", "a", "uid-1", "prod"),
        spec=ClickHousePrivateLinkSpec.model_validate(SPEC),
        generation=1,
        status=status,
        usage=usage_from_body(body),
        held=lambda: finalizer[0],
    )

    async def intend(_: Resource, fields: EngineStatus) -> None:
        if fail:
            raise KubernetesApiError(f"PATCH: {fail}", status=fail)
        writes.append(fields.to_json())
        finalizer[0] = True

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


async def test_a_resource_without_the_finalizer_gets_it_with_the_first_write_fields_or_not() -> None:
    writes: list[dict[str, Any]] = []
    held = [False]
    status = {"serviceId": "svc", "vpcEndpointId": "vpce-1", "hostedZoneId": "Z1"}
    p = a_pass(status, writes, held=held)
    await p.before_write(ConditionType.ALLOW_LISTED)  # nothing new to say, but not held: a write all the same
    assert writes == [{}] and held == [True]
    await p.before_write(ConditionType.ALLOW_LISTED)
    assert writes == [{}]


@pytest.mark.parametrize(
    ("answer", "reason", "retry_after"),
    [
        (404, Reason.DELETING, None),
        (409, Reason.UPSTREAM_UNAVAILABLE, 1.0),
        (422, Reason.UPSTREAM_UNAVAILABLE, 1.0),
    ],
)
async def test_a_hold_refused_stops_the_pass_before_its_write(
    answer: int, reason: Reason, retry_after: float | None
) -> None:
    """Gone (404): nothing was made for it; changed since the pass read it (409, 422): passed again, soon."""
    p = a_pass({}, [], fail=answer, held=[False])
    p.out.status.service_id = "svc"
    with pytest.raises(StepFailed) as failed:
        await p.before_write(ConditionType.VPC_ENDPOINT_READY)
    assert failed.value.reason is reason and failed.value.retry_after == retry_after


async def test_no_external_write_without_its_intent_written_first() -> None:
    p = a_pass({}, [], fail=503)
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


# ------------------------------------------------------------------- the first intent, in an annotation


def annotated(
    intent: str | None, *, uid: str = "uid-1", finalizers: tuple[str, ...] = (c.FINALIZER,), **status: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"uid": uid, "finalizers": list(finalizers)}
    if intent is not None:
        meta["annotations"] = {c.ANNOTATION_INTENT: intent}
    return {"metadata": meta, "spec": SPEC, "status": status}


def test_the_first_intent_is_read_under_the_status_until_a_pass_has_ended() -> None:
    intent = encode_intent("uid-1", {"serviceId": "svc", "vpcEndpointId": "vpce-1", "vpcEndpointOwned": True})
    assert recorded_status(annotated(intent)) == {
        "serviceId": "svc",
        "vpcEndpointId": "vpce-1",
        "vpcEndpointOwned": True,
    }
    # What this process wrote and the watch has not shown yet is read over the annotation too.
    known = recorded_status(annotated(intent), {"vpcEndpointId": "vpce-3"})
    assert known == {"serviceId": "svc", "vpcEndpointId": "vpce-3", "vpcEndpointOwned": True}
    # A later intent in the status wins over the annotation's.
    assert recorded_status(annotated(intent, vpcEndpointId="vpce-2"))["vpcEndpointId"] == "vpce-2"
    # Once a pass has ended, the status alone: a field it removed stays removed.
    assert recorded_status(annotated(intent, observedGeneration=1)) == {"observedGeneration": 1}
    # The index reads the same.
    assert usage_from_body(annotated(intent)).endpoint_id == "vpce-1"


@pytest.mark.parametrize(
    "body",
    [
        annotated(
            encode_intent("uid-0", {"serviceId": "svc"})
        ),  # exported from another object, applied again
        annotated(
            encode_intent("uid-1", {"serviceId": "svc"}), finalizers=()
        ),  # not written with the finalizer
        annotated("{not json"),
        annotated('["uid-1"]'),
        annotated(None),
    ],
)
def test_an_intent_annotation_not_written_for_this_resource_is_not_read(body: dict[str, Any]) -> None:
    assert decode_intent(body) == {} and recorded_status(body) == {}


def test_only_the_intent_fields_of_their_own_types_are_read() -> None:
    raw = '{"uid":"uid-1","serviceId":"svc","vpcEndpointOwned":"yes","hostedZoneId":"","conditions":[],"x":1}'
    assert decode_intent(annotated(raw)) == {"serviceId": "svc"}
    with pytest.raises(ValueError, match="conditions"):
        encode_intent("uid-1", {"conditions": []})
