"""Object semantics of the Kubernetes stand-in: metadata, versions, conflicts, subresources, patches."""

from __future__ import annotations

import base64

import pytest

from tests.fixtures.kubernetes import JSON_PATCH, MERGE_PATCH, AsyncKube, KubeApiError
from tests.standins.kube_samples import API_VERSION, chpl, cr_path, sample_crd, widget

SECRETS = "/api/v1/namespaces/default/secrets"
SMP = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


async def _widgets(akube: AsyncKube, *, status_subresource: bool) -> str:
    await akube.request(
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        body=sample_crd(status_subresource=status_subresource),
    )
    return "/apis/example.com/v1/namespaces/default/widgets"


async def test_create_sets_server_metadata(akube: AsyncKube) -> None:
    created = await akube.request("POST", cr_path("default"), body=chpl("meta"))
    meta = created["metadata"]
    assert meta["namespace"] == "default"
    assert len(meta["uid"]) == 36
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    assert meta["resourceVersion"].isdigit()


async def test_resource_version_is_one_global_increasing_counter(akube: AsyncKube) -> None:
    a = await akube.request("POST", SECRETS, body={"metadata": {"name": "a"}})
    b = await akube.request("POST", cr_path("default"), body=chpl("b"))
    c = await akube.request(
        "PATCH", f"{SECRETS}/a", body={"metadata": {"labels": {"x": "y"}}}, content_type=MERGE_PATCH
    )
    versions = [int(o["metadata"]["resourceVersion"]) for o in (a, b, c)]
    assert versions == sorted(versions) and len(set(versions)) == 3
    listed = await akube.request("GET", SECRETS)
    assert int(listed["metadata"]["resourceVersion"]) >= versions[-1]


async def test_generate_name_appends_a_random_suffix(akube: AsyncKube) -> None:
    body = {"metadata": {"generateName": "creds-"}, "stringData": {"k": "v"}}
    first = await akube.request("POST", SECRETS, body=body)
    second = await akube.request("POST", SECRETS, body=body)
    assert (
        first["metadata"]["name"].startswith("creds-") and len(first["metadata"]["name"]) == len("creds-") + 5
    )
    assert first["metadata"]["name"] != second["metadata"]["name"]


async def test_spec_change_bumps_generation(akube: AsyncKube) -> None:
    await akube.request("POST", cr_path("default"), body=chpl("gen"))
    patched = await akube.request(
        "PATCH",
        cr_path("default", "gen"),
        body={"spec": {"deletionPolicy": "Retain"}},
        content_type=MERGE_PATCH,
    )
    assert patched["metadata"]["generation"] == 2


async def test_metadata_change_does_not_bump_generation(akube: AsyncKube) -> None:
    await akube.request("POST", cr_path("default"), body=chpl("gen"))
    patched = await akube.request(
        "PATCH",
        cr_path("default", "gen"),
        body={"metadata": {"labels": {"a": "b"}}},
        content_type=MERGE_PATCH,
    )
    assert patched["metadata"]["generation"] == 1
    assert patched["metadata"]["labels"] == {"a": "b"}


async def test_status_write_does_not_bump_generation(akube: AsyncKube) -> None:
    await akube.request("POST", cr_path("default"), body=chpl("gen"))
    patched = await akube.request(
        "PATCH",
        cr_path("default", "gen") + "/status",
        body={"status": {"serviceId": "x"}},
        content_type=MERGE_PATCH,
    )
    assert patched["status"] == {"serviceId": "x"}
    assert patched["metadata"]["generation"] == 1


async def test_builtin_kinds_without_spec_have_no_generation(akube: AsyncKube) -> None:
    secret = await akube.request("POST", SECRETS, body={"metadata": {"name": "s"}, "data": {"k": "dg=="}})
    assert "generation" not in secret["metadata"]


async def test_noop_write_keeps_resource_version_and_sends_no_event(akube: AsyncKube) -> None:
    created = await akube.request("POST", cr_path("default"), body=chpl("same"))
    again = await akube.request(
        "PATCH",
        cr_path("default", "same"),
        body={"spec": {"deletionPolicy": "Delete"}},
        content_type=MERGE_PATCH,
    )
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_main_resource_write_ignores_status_when_status_is_a_subresource(akube: AsyncKube) -> None:
    body = chpl("sub")
    body["status"] = {"serviceId": "ignored-on-create"}
    created = await akube.request("POST", cr_path("default"), body=body)
    assert "status" not in created
    await akube.request("PATCH", cr_path("default", "sub") + "/status", body={"status": {"serviceId": "s1"}},
                        content_type=MERGE_PATCH)  # fmt: skip
    patched = await akube.request(
        "PATCH",
        cr_path("default", "sub"),
        body={"status": {"serviceId": "s2"}, "metadata": {"labels": {"l": "v"}}},
        content_type=MERGE_PATCH,
    )
    assert patched["status"] == {"serviceId": "s1"}
    assert patched["metadata"]["labels"] == {"l": "v"}


async def test_status_write_ignores_everything_but_status(akube: AsyncKube) -> None:
    await akube.request("POST", cr_path("default"), body=chpl("sub"))
    patched = await akube.request(
        "PATCH",
        cr_path("default", "sub") + "/status",
        body={
            "status": {"serviceId": "s1"},
            "spec": {"deletionPolicy": "Retain"},
            "metadata": {"labels": {"l": "v"}},
        },
        content_type=MERGE_PATCH,
    )
    assert patched["status"] == {"serviceId": "s1"}
    assert patched["spec"]["deletionPolicy"] == "Delete"
    assert "labels" not in patched["metadata"]


async def test_without_status_subresource_status_is_a_normal_field(akube: AsyncKube) -> None:
    widgets = await _widgets(akube, status_subresource=False)
    created = await akube.request("POST", widgets, body=widget("w", spec={"a": 1}, status={"s": 1}))
    assert created["status"] == {"s": 1}
    with pytest.raises(KubeApiError) as err:
        await akube.request("PATCH", f"{widgets}/w/status", body={"status": {}}, content_type=MERGE_PATCH)
    assert err.value.status == 404
    patched = await akube.request(
        "PATCH", f"{widgets}/w", body={"status": {"s": 2}}, content_type=MERGE_PATCH
    )
    assert patched["status"] == {"s": 2}
    assert patched["metadata"]["generation"] == 2  # for CRs, any non-metadata change counts


async def test_stale_resource_version_in_put_is_a_conflict(akube: AsyncKube) -> None:
    created = await akube.request("POST", cr_path("default"), body=chpl("c"))
    await akube.request(
        "PATCH", cr_path("default", "c"), body={"metadata": {"labels": {"a": "1"}}}, content_type=MERGE_PATCH
    )
    with pytest.raises(KubeApiError) as err:
        await akube.request("PUT", cr_path("default", "c"), body=created)
    assert err.value.status == 409
    assert err.value.body["reason"] == "Conflict"
    assert "the object has been modified" in err.value.body["message"]


async def test_stale_resource_version_in_patch_is_a_conflict(akube: AsyncKube) -> None:
    created = await akube.request("POST", cr_path("default"), body=chpl("c"))
    await akube.request(
        "PATCH", cr_path("default", "c"), body={"metadata": {"labels": {"a": "1"}}}, content_type=MERGE_PATCH
    )
    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"], "labels": {"a": "2"}}}
    with pytest.raises(KubeApiError) as err:
        await akube.request("PATCH", cr_path("default", "c"), body=stale, content_type=MERGE_PATCH)
    assert err.value.status == 409


async def test_put_of_a_custom_resource_requires_a_resource_version(akube: AsyncKube) -> None:
    await akube.request("POST", cr_path("default"), body=chpl("c"))
    with pytest.raises(KubeApiError) as err:
        await akube.request("PUT", cr_path("default", "c"), body=chpl("c"))
    assert err.value.status == 422
    assert "must be specified for an update" in err.value.body["message"]


async def test_failed_json_patch_test_operation_is_rejected_like_kube_apiserver(akube: AsyncKube) -> None:
    # kube-apiserver answers 422 here, and kopf's finalizer patches expect exactly that.
    await akube.request("POST", cr_path("default"), body=chpl("t"))
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
           {"op": "add", "path": "/metadata/finalizers", "value": ["x.example.com/f"]}]  # fmt: skip
    with pytest.raises(KubeApiError) as err:
        await akube.request("PATCH", cr_path("default", "t"), body=ops, content_type=JSON_PATCH)
    assert err.value.status == 422
    current = await akube.request("GET", cr_path("default", "t"))
    assert "finalizers" not in current["metadata"]


async def test_json_patch_with_a_passing_test_operation_applies(akube: AsyncKube) -> None:
    created = await akube.request("POST", cr_path("default"), body=chpl("t"))
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": created["metadata"]["resourceVersion"]},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x.example.com/f"]},
        {"op": "replace", "path": "/spec/aws/region", "value": "us-east-1"},
        {"op": "add", "path": "/spec/aws/subnetIds/-", "value": "subnet-0123456789abcdef1"},
    ]
    patched = await akube.request("PATCH", cr_path("default", "t"), body=ops, content_type=JSON_PATCH)
    assert patched["metadata"]["finalizers"] == ["x.example.com/f"]
    assert patched["spec"]["aws"]["subnetIds"][-1] == "subnet-0123456789abcdef1"


async def test_json_patch_test_failure_code_can_be_set_to_409() -> None:
    from clickhouse_privatelink_testkit.standins.kubernetes.patch import JsonPatchTestFailed
    from clickhouse_privatelink_testkit.standins.kubernetes.store import Store, WriteOptions

    store = Store(json_patch_test_failure_code=409)
    rt = store.types[("", "configmaps")]
    store.ensure_namespace("default")
    store.create(rt, "v1", "default", {"metadata": {"name": "c"}}, WriteOptions())
    with pytest.raises(Exception) as err:
        store.patch(
            rt,
            "v1",
            "default",
            "c",
            JSON_PATCH,
            [{"op": "test", "path": "/data", "value": 1}],
            WriteOptions(),
        )
    assert getattr(err.value, "code", None) == 409
    assert isinstance(err.value.__cause__, JsonPatchTestFailed)


async def test_duplicate_create_is_already_exists(akube: AsyncKube) -> None:
    await akube.request("POST", cr_path("default"), body=chpl("dup"))
    with pytest.raises(KubeApiError) as err:
        await akube.request("POST", cr_path("default"), body=chpl("dup"))
    assert err.value.status == 409
    assert err.value.body["reason"] == "AlreadyExists"
    assert (
        err.value.body["message"] == 'clickhouseprivatelinks.privatelink.clickhouse.dev "dup" already exists'
    )


async def test_missing_object_is_not_found_with_a_status_body(akube: AsyncKube) -> None:
    with pytest.raises(KubeApiError) as err:
        await akube.request("GET", f"{SECRETS}/nope")
    assert err.value.status == 404
    assert err.value.body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'secrets "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "secrets"},
        "code": 404,
    }


async def test_create_in_a_missing_namespace_is_not_found(akube: AsyncKube) -> None:
    with pytest.raises(KubeApiError) as err:
        await akube.request("POST", cr_path("nowhere"), body=chpl())
    assert err.value.status == 404
    assert err.value.body["message"] == 'namespaces "nowhere" not found'


async def test_merge_patch_null_removes_a_field(akube: AsyncKube) -> None:
    await akube.request("POST", SECRETS, body={"metadata": {"name": "m", "labels": {"a": "1", "b": "2"}}})
    patched = await akube.request(
        "PATCH", f"{SECRETS}/m", body={"metadata": {"labels": {"a": None}}}, content_type=MERGE_PATCH
    )
    assert patched["metadata"]["labels"] == {"b": "2"}


async def test_strategic_merge_patch_merges_maps_and_named_lists(akube: AsyncKube) -> None:
    await akube.request(
        "POST", SECRETS, body={"metadata": {"name": "s", "labels": {"a": "1"}}, "data": {"x": "eA=="}}
    )
    patched = await akube.request(
        "PATCH",
        f"{SECRETS}/s",
        body={"metadata": {"labels": {"b": "2"}, "$setElementOrder/finalizers": []}, "data": {"y": "eQ=="}},
        content_type=SMP,
    )
    assert patched["metadata"]["labels"] == {"a": "1", "b": "2"}
    assert patched["data"] == {"x": "eA==", "y": "eQ=="}
    from clickhouse_privatelink_testkit.standins.kubernetes.patch import strategic_merge_patch

    merged = strategic_merge_patch(
        {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]},
        {"containers": [{"name": "b", "image": "2"}, {"name": "a", "$patch": "delete"}]},
    )
    assert merged == {"containers": [{"name": "b", "image": "2"}]}


CR_PATCH_TYPES_415 = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "the body of the request was in an unknown format - accepted media types include: "
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
    "reason": "UnsupportedMediaType",
    "code": 415,
}


@pytest.mark.parametrize("content_type", [SMP, "application/foo"])
async def test_a_custom_resource_415_lists_only_the_patch_types_it_accepts(
    akube: AsyncKube, content_type: str
) -> None:
    await akube.request("POST", cr_path("default"), body=chpl("smp"))
    with pytest.raises(KubeApiError) as err:
        await akube.request("PATCH", cr_path("default", "smp"), body={"spec": {}}, content_type=content_type)
    assert (err.value.status, err.value.body) == (415, CR_PATCH_TYPES_415)


async def test_other_unsupported_media_types_answer_as_kube_apiserver_does(akube: AsyncKube) -> None:
    await akube.request("POST", SECRETS, body={"metadata": {"name": "s"}})
    with pytest.raises(KubeApiError) as err:
        await akube.request("PATCH", f"{SECRETS}/s", body={}, content_type="application/foo")
    assert (err.value.status, err.value.body["message"], err.value.body["details"]) == (
        415,
        "415: Unsupported Media Type",
        {},
    )
    for path in (SECRETS, cr_path("default")):
        with pytest.raises(KubeApiError) as err:
            await akube.request("POST", path, body={}, content_type="application/foo")
        assert (err.value.status, err.value.body["message"]) == (
            415,
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json, application/yaml, application/vnd.kubernetes.protobuf",
        )


def _wrong_kind(name: str) -> dict[str, object]:
    """The 422 kube-apiserver answers for a custom resource whose body names the kind ``Wrong``."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'Wrong.privatelink.clickhouse.dev "{name}" is invalid: '
        'kind: Invalid value: "Wrong": must be ClickHousePrivateLink',
        "reason": "Invalid",
        "details": {
            "name": name,
            "group": "privatelink.clickhouse.dev",
            "kind": "Wrong",
            "causes": [
                {
                    "reason": "FieldValueInvalid",
                    "message": 'Invalid value: "Wrong": must be ClickHousePrivateLink',
                    "field": "kind",
                }
            ],
        },
        "code": 422,
    }


async def test_a_wrong_kind_is_422_on_create_update_and_patch(akube: AsyncKube) -> None:
    body = chpl("k")
    body["kind"] = "Wrong"
    with pytest.raises(KubeApiError) as err:
        await akube.request("POST", cr_path("default"), body=body)
    assert (err.value.status, err.value.body) == (422, _wrong_kind("k"))
    current = await akube.request("POST", cr_path("default"), body=chpl("k"))
    with pytest.raises(KubeApiError) as err:
        await akube.request("PUT", cr_path("default", "k"), body={**current, "kind": "Wrong"})
    assert (err.value.status, err.value.body) == (422, _wrong_kind("k"))
    with pytest.raises(KubeApiError) as err:
        await akube.request(
            "PATCH", cr_path("default", "k"), body={"kind": "Wrong"}, content_type=MERGE_PATCH
        )
    assert (err.value.status, err.value.body) == (422, _wrong_kind("k"))
    # The status subresource takes only status from the body.
    await akube.request(
        "PATCH", cr_path("default", "k") + "/status", body={"kind": "Wrong"}, content_type=MERGE_PATCH
    )


async def test_a_wrong_kind_skips_the_schema_but_not_the_rules(akube: AsyncKube) -> None:
    body = chpl("k")
    body["kind"] = "Wrong"
    body["spec"]["aws"]["vpcId"] = 5
    with pytest.raises(KubeApiError) as err:
        await akube.request("POST", cr_path("default"), body=body)
    assert [c["message"] for c in err.value.body["details"]["causes"]] == [
        'Invalid value: "Wrong": must be ClickHousePrivateLink',
        'Invalid value: "string": invalid data, expected string, got int64 evaluating rule: '
        "vpcId must look like vpc-0123456789abcdef0",
    ]


async def test_a_custom_resource_needs_its_kind_and_api_version(akube: AsyncKube) -> None:
    no_kind = chpl("nk")
    del no_kind["kind"]
    with pytest.raises(KubeApiError) as err:
        await akube.request("POST", cr_path("default"), body=no_kind)
    assert err.value.status == 400
    assert err.value.body["message"].startswith(
        "the object provided is unrecognized (must be of type ClickHousePrivateLink): "
        """Object 'Kind' is missing in '{"apiVersion":"privatelink.clickhouse.dev/v1alpha1","""
    )
    assert err.value.body["message"].endswith("""' ({"apiVersion":"privatelink.cli ...)""")
    for api_version in (None, "privatelink.clickhouse.dev/v9"):
        body = chpl("av")
        body["apiVersion"] = api_version
        with pytest.raises(KubeApiError) as err:
            await akube.request("POST", cr_path("default"), body=body)
        assert (err.value.status, err.value.body["message"]) == (
            400,
            f"the API version in the data ({api_version or ''}) does not match the expected API version "
            "(privatelink.clickhouse.dev/v1alpha1)",
        )
    applied = {"apiVersion": API_VERSION, "kind": "Wrong", "metadata": {"name": "ap"}}
    with pytest.raises(KubeApiError) as err:
        await akube.request(
            "PATCH", cr_path("default", "ap"), body=applied, content_type=APPLY, params={"fieldManager": "t"}
        )
    assert (err.value.status, err.value.body["message"]) == (
        400,
        "invalid object type: privatelink.clickhouse.dev/v1alpha1, Kind=Wrong",
    )


async def test_a_built_in_may_leave_out_its_type_but_not_name_another(akube: AsyncKube) -> None:
    configmaps = "/api/v1/namespaces/default/configmaps"
    created = await akube.request("POST", configmaps, body={"metadata": {"name": "plain"}})
    assert (created["kind"], created["apiVersion"]) == ("ConfigMap", "v1")
    scheme = 'in scheme "pkg/api/legacyscheme/scheme.go:30"'
    for kind, api_version, message in (
        ("Secret", "v1", 'Secret in version "v1" cannot be handled as a ConfigMap: converting (v1.Secret) to '
                         "(core.ConfigMap): unknown conversion"),
        ("Foo", "v1", f'Foo in version "v1" cannot be handled as a ConfigMap: no kind "Foo" is registered for '
                      f'version "v1" {scheme}'),
        ("ConfigMap", "apps/v1", 'ConfigMap in version "v1" cannot be handled as a ConfigMap: no kind "ConfigMap" '
                                 f'is registered for version "apps/v1" {scheme}'),
    ):  # fmt: skip
        body = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "c"}}
        with pytest.raises(KubeApiError) as err:
            await akube.request("POST", configmaps, body=body)
        assert (err.value.status, err.value.body["message"]) == (400, message)


async def test_apply_patch_creates_then_merges(akube: AsyncKube) -> None:
    body = chpl("applied")
    created = await akube.request(
        "PATCH", cr_path("default", "applied"), body=body, content_type=APPLY, params={"fieldManager": "test"}
    )
    assert created["metadata"]["generation"] == 1
    body["spec"]["deletionPolicy"] = "Retain"
    applied = await akube.request(
        "PATCH", cr_path("default", "applied"), body=body, content_type=APPLY, params={"fieldManager": "test"}
    )
    assert applied["spec"]["deletionPolicy"] == "Retain"
    assert applied["metadata"]["generation"] == 2


async def test_secret_string_data_is_stored_as_base64_data(akube: AsyncKube) -> None:
    secret = await akube.request(
        "POST", SECRETS, body={"metadata": {"name": "sd"}, "stringData": {"key": "value"}}
    )
    assert secret["data"] == {"key": base64.b64encode(b"value").decode()}
    assert secret["type"] == "Opaque"
    assert "stringData" not in secret


async def test_dry_run_validates_but_does_not_persist(akube: AsyncKube) -> None:
    created = await akube.request("POST", cr_path("default"), body=chpl("dry"), params={"dryRun": "All"})
    assert created["metadata"]["name"] == "dry"
    with pytest.raises(KubeApiError) as err:
        await akube.request("GET", cr_path("default", "dry"))
    assert err.value.status == 404


async def test_list_returns_a_typed_list_with_resource_version(akube: AsyncKube) -> None:
    for name in ("b", "a", "c"):
        await akube.request("POST", cr_path("default"), body=chpl(name))
    listed = await akube.request("GET", cr_path("default"))
    assert listed["kind"] == "ClickHousePrivateLinkList"
    assert listed["apiVersion"] == API_VERSION
    assert listed["metadata"]["resourceVersion"].isdigit()
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a", "b", "c"]


async def test_list_pages_with_limit_and_continue(akube: AsyncKube) -> None:
    for i in range(5):
        await akube.request("POST", SECRETS, body={"metadata": {"name": f"page-{i}"}})
    first = await akube.request("GET", SECRETS, params={"limit": "2"})
    assert [i["metadata"]["name"] for i in first["items"]] == ["page-0", "page-1"]
    assert first["metadata"]["remainingItemCount"] == 3
    rest = await akube.request(
        "GET", SECRETS, params={"limit": "10", "continue": first["metadata"]["continue"]}
    )
    assert [i["metadata"]["name"] for i in rest["items"]] == ["page-2", "page-3", "page-4"]
    assert "continue" not in rest["metadata"]


async def test_cluster_wide_list_spans_namespaces(akube: AsyncKube) -> None:
    await akube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "other"}})
    await akube.request("POST", cr_path("default"), body=chpl("one"))
    await akube.request("POST", cr_path("other"), body=chpl("two"))
    listed = await akube.request("GET", f"/apis/{API_VERSION}/clickhouseprivatelinks")
    assert {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed["items"]} == {
        ("default", "one"),
        ("other", "two"),
    }
