"""Table output (``kubectl get``) of the Kubernetes stand-in, and its JSONPath subset."""

from __future__ import annotations

import datetime as dt

import pytest

from clickhouse_privatelink_testkit.standins.kubernetes.table import age, human_duration, jsonpath
from tests.fixtures.kubernetes import MERGE_PATCH, AsyncKube
from tests.standins.kube_samples import chpl, cr_path

TABLE = {
    "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
}
CONDITIONS = {"conditions": [
    {"type": "Synced", "status": "True", "reason": "Done", "lastTransitionTime": "2025-01-01T00:00:00Z"},
    {"type": "Ready", "status": "False", "reason": "EndpointPending", "lastTransitionTime": "2025-01-01T00:00:00Z"},
]}  # fmt: skip


def test_jsonpath_fields_indexes_and_filters() -> None:
    obj = {"metadata": {"name": "n"}, "status": {**CONDITIONS, "list": [1, 2, 3]}}
    assert jsonpath(".metadata.name", obj) == ["n"]
    assert jsonpath('.status.conditions[?(@.type=="Ready")].status', obj) == ["False"]
    assert jsonpath(".status.conditions[?(@.type!='Ready')].reason", obj) == ["Done"]
    assert jsonpath(".status.conditions[*].type", obj) == ["Synced", "Ready"]
    assert jsonpath(".status.list[-1]", obj) == [3]
    assert jsonpath(".status.list[0:2]", obj) == [1, 2]
    assert jsonpath("{.status['list'][1]}", obj) == [2]
    assert jsonpath(".status.missing", obj) == []


def test_human_durations_match_kubectl() -> None:
    assert [human_duration(s) for s in (0, 59, 119, 120, 125, 3600, 4 * 3600 + 60, 30 * 3600, 3 * 86400 + 3600)] == [
        "0s", "59s", "119s", "2m", "2m5s", "60m", "4h1m", "30h", "3d1h",
    ]  # fmt: skip
    now = dt.datetime(2025, 1, 1, 0, 10, tzinfo=dt.UTC)
    assert age("2025-01-01T00:00:00Z", now) == "10m"
    assert age("garbage", now) == "<invalid>"


async def test_custom_resource_table_has_printer_columns(akube: AsyncKube) -> None:
    await akube.request("POST", cr_path("default"), body=chpl("tbl"))
    await akube.request("PATCH", cr_path("default", "tbl") + "/status",
                        body={"status": {**CONDITIONS, "privateDnsHostname": "h.example", "vpcEndpointId": "vpce-1"}},
                        content_type=MERGE_PATCH)  # fmt: skip
    table = await akube.request("GET", cr_path("default"), headers=TABLE)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    columns = [(c["name"], c["type"], c["priority"]) for c in table["columnDefinitions"]]
    assert columns == [
        ("Name", "string", 0),
        ("Ready", "string", 0),
        ("Reason", "string", 1),
        ("Hostname", "string", 0),
        ("Endpoint", "string", 0),
        ("Age", "date", 0),
    ]
    [row] = table["rows"]
    name, ready, reason, hostname, endpoint, created = row["cells"]
    assert (name, ready, reason, hostname, endpoint) == (
        "tbl",
        "False",
        "EndpointPending",
        "h.example",
        "vpce-1",
    )
    assert created.endswith("s")  # a date column is rendered as an age, like the apiextensions convertor
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "tbl"


async def test_table_row_objects_follow_include_object(akube: AsyncKube) -> None:
    await akube.request("POST", cr_path("default"), body=chpl("tbl"))
    full = await akube.request(
        "GET", cr_path("default", "tbl"), headers=TABLE, params={"includeObject": "Object"}
    )
    assert full["rows"][0]["object"]["spec"]["aws"]["region"] == "us-east-1"
    bare = await akube.request(
        "GET", cr_path("default", "tbl"), headers=TABLE, params={"includeObject": "None"}
    )
    assert "object" not in bare["rows"][0]


async def test_missing_printer_column_values_are_null(akube: AsyncKube) -> None:
    await akube.request("POST", cr_path("default"), body=chpl("fresh"))
    table = await akube.request("GET", cr_path("default", "fresh"), headers=TABLE)
    assert table["rows"][0]["cells"][1:5] == [None, None, None, None]


@pytest.mark.parametrize(
    ("path", "body", "columns", "cells"),
    [
        ("/api/v1/namespaces/default/secrets", {"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "YQ==", "b": "Yg=="}},
         ["Name", "Type", "Data", "Age"], ["s", "Opaque", 2]),
        ("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}},
         ["Name", "Data", "Age"], ["c", 1]),
        ("/api/v1/namespaces", {"metadata": {"name": "ns1"}}, ["Name", "Status", "Age"], ["ns1", "Active"]),
    ],
)  # fmt: skip
async def test_builtin_tables(
    akube: AsyncKube, path: str, body: dict, columns: list[str], cells: list
) -> None:
    await akube.request("POST", path, body=body)
    table = await akube.request("GET", f"{path}/{body['metadata']['name']}", headers=TABLE)
    assert [c["name"] for c in table["columnDefinitions"]] == columns
    assert table["rows"][0]["cells"][: len(cells)] == cells


async def test_plain_json_without_table_accept(akube: AsyncKube) -> None:
    await akube.request("POST", cr_path("default"), body=chpl("plain"))
    obj = await akube.request("GET", cr_path("default", "plain"), headers={"Accept": "application/json"})
    assert obj["kind"] == "ClickHousePrivateLink"
