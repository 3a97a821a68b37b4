"""The engine's typed status (engine/status.py) against the API model, the schema's source."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from clickhouse_privatelink.api.models import ClickHousePrivateLinkStatus
from clickhouse_privatelink.decisions.plan import connection_endpoints
from clickhouse_privatelink.engine.context import INTENT_FIELDS
from clickhouse_privatelink.engine.status import KEYS, NAMES, EngineStatus

MODEL_FIELDS = ClickHousePrivateLinkStatus.model_fields


def test_every_field_is_a_field_of_the_api_model_under_its_alias() -> None:
    names = [f.name for f in fields(EngineStatus)]
    assert set(names) <= set(MODEL_FIELDS), "a field the CRD's status does not have"
    assert list(KEYS) == [MODEL_FIELDS[name].alias or name for name in names]
    assert set(INTENT_FIELDS) <= set(NAMES)  # the intent written before an external write names fields


def test_a_status_read_and_written_again_is_the_same_json() -> None:
    status: dict[str, Any] = {
        "serviceId": "svc",
        "serviceRegion": "us-east-1",
        "endpointServiceId": "com.amazonaws.vpce.us-east-1.vpce-svc-1",
        "privateDnsHostname": "abc.us-east-1.vpce.aws.clickhouse.cloud",
        "endpoints": connection_endpoints("abc.us-east-1.vpce.aws.clickhouse.cloud"),
        "vpcEndpointId": "vpce-1",
        "vpcEndpointState": "available",
        "vpcEndpointOwned": False,
        "hostedZoneId": "Z1",
        "allowListEntryAdded": False,
    }
    others = {"conditions": [], "observedGeneration": 3, "publicAccess": {"serviceId": "svc"}}
    assert EngineStatus.from_status({**status, **others}).to_json() == status
    ClickHousePrivateLinkStatus.model_validate(status)  # what it writes fits the schema


def test_absent_fields_are_not_written_and_a_field_set_to_none_is_removed() -> None:
    assert EngineStatus.from_status({}).to_json() == {}
    status = EngineStatus.from_status({"serviceId": "svc", "hostedZoneId": "Z1"})
    status.hosted_zone_id = None
    status.vpc_endpoint_owned = False
    assert status.to_json() == {"serviceId": "svc", "vpcEndpointOwned": False}


def test_a_copy_is_changed_apart_from_its_original() -> None:
    original = EngineStatus(service_id="svc")
    copy = original.copy()
    copy.service_id = "other"
    assert (original.service_id, copy.service_id) == ("svc", "other")
