"""Validation of custom resources against the CRD's OpenAPI schema and CEL rules, as kube-apiserver does."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.fixtures.kubernetes import MERGE_PATCH, AsyncKube, KubeApiError
from tests.standins.kube_samples import ORG, chpl, cr_path

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
# What kube-apiserver appends when a Required, TooLong, TooMany, type or enum error kept CEL rules from running.
NOT_CHECKED = (
    "FieldValueInvalid",
    "<nil>",
    "Invalid value: null: some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation",
)


async def _rejected(akube: AsyncKube, body: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(KubeApiError) as err:
        await akube.request("POST", cr_path("default"), body=body)
    assert err.value.status == 422, err.value.body
    return dict(err.value.body)


def _causes(status: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["reason"], c["field"], c["message"]) for c in status["details"]["causes"]]


async def test_cel_exactly_one_of_service_id_or_name(akube: AsyncKube) -> None:
    both = chpl("both")
    both["spec"]["clickhouse"]["serviceId"] = ORG
    status = await _rejected(akube, both)
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        # A failed rule on an object shows no value (Kubernetes 1.33+; older ones printed "object").
        "message": 'ClickHousePrivateLink.privatelink.clickhouse.dev "both" is invalid: spec.clickhouse: '
        "Invalid value: exactly one of serviceId or serviceName is required",
        "reason": "Invalid",
        "details": {
            "name": "both",
            "group": "privatelink.clickhouse.dev",
            "kind": "ClickHousePrivateLink",
            "causes": [
                {
                    "reason": "FieldValueInvalid",
                    "message": "Invalid value: exactly one of serviceId or serviceName is required",
                    "field": "spec.clickhouse",
                }
            ],
        },
        "code": 422,
    }
    neither = chpl("neither")
    del neither["spec"]["clickhouse"]["serviceName"]
    assert _causes(await _rejected(akube, neither))[0][1] == "spec.clickhouse"
    by_id = chpl("by-id")
    by_id["spec"]["clickhouse"] = {**by_id["spec"]["clickhouse"], "serviceId": ORG}
    del by_id["spec"]["clickhouse"]["serviceName"]
    await akube.request("POST", cr_path("default"), body=by_id)


async def test_cel_subnets_required_unless_an_endpoint_is_adopted(akube: AsyncKube) -> None:
    body = chpl("nosubnets")
    body["spec"]["aws"]["subnetIds"] = []
    assert _causes(await _rejected(akube, body)) == [
        ("FieldValueInvalid", "spec.aws",
         "Invalid value: subnetIds is required unless an existing vpcEndpointId is adopted"),
    ]  # fmt: skip
    adopted = chpl("adopted")
    del adopted["spec"]["aws"]["subnetIds"]
    adopted["spec"]["aws"]["vpcEndpointId"] = "vpce-0123456789abcdef0"
    await akube.request("POST", cr_path("default"), body=adopted)


async def test_cel_tag_keys_rule(akube: AsyncKube) -> None:
    for key, message in (
        ("aws:reserved", "tag keys may not start with aws: in any case (AWS reserves it)"),
        ("AWS:reserved", "tag keys may not start with aws: in any case (AWS reserves it)"),
        (
            "PrivateLink.ClickHouse.dev/x",
            "tag keys may not start with privatelink.clickhouse.dev/ in any case",
        ),
        ("k" * 129, "tag keys must be 1 to 128 characters long"),
        (
            "bad\nkey",
            "tag keys may hold only letters, digits, spaces and _ . : / = + - @ (AWS's tag characters)",
        ),
        ("Name", "the Name tag is the operator's (it names what it creates): use another key"),
    ):
        body = chpl("tags")
        body["spec"]["aws"]["tags"] = {"ok": "1", key: "v"}
        causes = _causes(await _rejected(akube, body))
        assert [(c[0], c[1]) for c in causes] == [("FieldValueInvalid", "spec.aws.tags")], key
        assert message in causes[0][2], key
    fine = chpl("tags")
    fine["spec"]["aws"]["tags"] = {"team": "data", "env": "prod"}
    await akube.request("POST", cr_path("default"), body=fine)


async def test_cel_transition_rule_makes_fields_immutable(akube: AsyncKube) -> None:
    await akube.request("POST", cr_path("default"), body=chpl("immutable"))
    with pytest.raises(KubeApiError) as err:
        await akube.request(
            "PATCH", cr_path("default", "immutable"), body={"spec": {"aws": {"region": "eu-west-1"}}},
            content_type=MERGE_PATCH,
        )  # fmt: skip
    assert err.value.status == 422
    assert _causes(err.value.body) == [
        ("FieldValueInvalid", "spec.aws.region", 'Invalid value: "eu-west-1": region is immutable')
    ]
    same = await akube.request(
        "PATCH",
        cr_path("default", "immutable"),
        body={"spec": {"aws": {"region": "us-east-1"}}},
        content_type=MERGE_PATCH,
    )
    assert same["spec"]["aws"]["region"] == "us-east-1"


async def test_transition_rule_skipped_when_the_old_value_is_absent(akube: AsyncKube) -> None:
    # organizationId is required, so exercise with a CRD whose immutable field is optional.
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "things", "kind": "Thing"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "properties": {"ref": {
                    "type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "ref is immutable"}],
                }}}},
            }}}],
        },
    }  # fmt: skip
    await akube.request("POST", CRDS, body=crd)
    things = "/apis/example.com/v1/namespaces/default/things"
    thing = {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {}}
    await akube.request("POST", things, body=thing)
    set_later = await akube.request(
        "PATCH", f"{things}/t", body={"spec": {"ref": "a"}}, content_type=MERGE_PATCH
    )
    assert set_later["spec"]["ref"] == "a"
    with pytest.raises(KubeApiError) as err:
        await akube.request("PATCH", f"{things}/t", body={"spec": {"ref": "b"}}, content_type=MERGE_PATCH)
    assert "ref is immutable" in err.value.body["message"]


async def test_required_fields(akube: AsyncKube) -> None:
    body = chpl("req")
    del body["spec"]["aws"]["region"]
    causes = _causes(await _rejected(akube, body))
    assert ("FieldValueRequired", "spec.aws.region", "Required value") in causes


async def test_enum_values(akube: AsyncKube) -> None:
    body = chpl("enum", dns={"mode": "Bind"})
    assert _causes(await _rejected(akube, body))[0] == (
        "FieldValueNotSupported",
        "spec.dns.mode",
        'Unsupported value: "Bind": supported values: "Route53", "None"',
    )


async def test_pattern(akube: AsyncKube) -> None:
    body = chpl("pattern")
    body["spec"]["aws"]["vpcId"] = "abc"
    assert _causes(await _rejected(akube, body)) == [
        ("FieldValueInvalid", "spec.aws.vpcId",
         "Invalid value: \"abc\": spec.aws.vpcId in body should match '^vpc-[0-9a-f]{8,17}$'"),
        ("FieldValueInvalid", "spec.aws.vpcId", 'Invalid value: "abc": vpcId must look like vpc-0123456789abcdef0'),
    ]  # fmt: skip


async def test_string_lengths(akube: AsyncKube) -> None:
    body = chpl("length")
    body["spec"]["clickhouse"]["serviceName"] = "x" * 256
    assert _causes(await _rejected(akube, body)) == [
        ("FieldValueTooLong", "spec.clickhouse.serviceName", "Too long: may not be more than 255 bytes"),
        NOT_CHECKED,
    ]
    body["spec"]["clickhouse"]["serviceName"] = ""
    causes = _causes(await _rejected(akube, body))
    assert causes[0][:2] == ("FieldValueInvalid", "spec.clickhouse.serviceName")
    assert "should be at least 1 chars long" in causes[0][2]


async def test_max_items_and_set_uniqueness(akube: AsyncKube) -> None:
    body = chpl("items")
    body["spec"]["aws"]["securityGroupIds"] = [f"sg-0123456789abcde{i:02x}" for i in range(6)]
    assert _causes(await _rejected(akube, body)) == [
        ("FieldValueTooMany", "spec.aws.securityGroupIds", "Too many: 6: must have at most 5 items"),
        NOT_CHECKED,
    ]
    body["spec"]["aws"]["securityGroupIds"] = ["sg-0123456789abcdef0", "sg-0123456789abcdef0"]
    assert _causes(await _rejected(akube, body)) == [
        ("FieldValueDuplicate", "spec.aws.securityGroupIds[1]", 'Duplicate value: "sg-0123456789abcdef0"')
    ]


async def test_max_properties(akube: AsyncKube) -> None:
    body = chpl("props")
    body["spec"]["aws"]["tags"] = {f"k{i}": "v" for i in range(41)}
    assert ("FieldValueTooMany", "spec.aws.tags", "Too many: 41: must have at most 40 items") in _causes(
        await _rejected(akube, body)
    )


async def test_types_and_minimum_in_status(akube: AsyncKube) -> None:
    await akube.request("POST", cr_path("default"), body=chpl("st"))
    condition = {"type": "Ready", "status": "True", "reason": "Ok", "lastTransitionTime": "2025-01-01T00:00:00Z",
                 "observedGeneration": -1}  # fmt: skip
    with pytest.raises(KubeApiError) as err:
        await akube.request("PATCH", cr_path("default", "st") + "/status",
                            body={"status": {"conditions": [condition], "observedGeneration": "one"}},
                            content_type=MERGE_PATCH)  # fmt: skip
    causes = _causes(err.value.body)
    # As kube-apiserver 1.36 answers (checked on 2026-12-05): messages name fields relative to the status.
    assert ("FieldValueTypeInvalid", "status.observedGeneration",
            'Invalid value: "string": observedGeneration in body must be of type integer: "string"') in causes  # fmt: skip
    assert ("FieldValueInvalid", "status.conditions[0].observedGeneration",
            "Invalid value: -1: conditions[0].observedGeneration in body should be greater than or equal to 0") in causes  # fmt: skip


async def test_date_time_format(akube: AsyncKube) -> None:
    await akube.request("POST", cr_path("default"), body=chpl("dt"))
    condition = {"type": "Ready", "status": "True", "reason": "Ok", "lastTransitionTime": "yesterday"}
    with pytest.raises(KubeApiError) as err:
        await akube.request("PATCH", cr_path("default", "dt") + "/status", body={"status": {"conditions": [condition]}},
                            content_type=MERGE_PATCH)  # fmt: skip
    assert _causes(err.value.body)[0][1] == "status.conditions[0].lastTransitionTime"


async def test_defaults_are_applied_including_nested_object_defaults(akube: AsyncKube) -> None:
    created = await akube.request("POST", cr_path("default"), body=chpl("defaults"))
    spec = created["spec"]
    assert spec["dns"] == {"mode": "Route53"}  # `dns: default {}` then its own property defaults
    assert spec["deletionPolicy"] == "Delete"
    assert spec["clickhouse"]["apiUrl"] == "https://api.clickhouse.cloud"
    assert spec["clickhouse"]["credentialsSecretRef"] == {
        "name": "clickhouse-api",
        "keyIdKey": "keyId",
        "keySecretKey": "keySecret",
    }


async def test_unknown_fields_are_pruned(akube: AsyncKube) -> None:
    body = chpl("pruned")
    body["spec"]["unknown"] = {"x": 1}
    body["spec"]["aws"]["bogus"] = True
    body["extra"] = 1
    created = await akube.request("POST", cr_path("default"), body=body)
    assert (
        "unknown" not in created["spec"] and "bogus" not in created["spec"]["aws"] and "extra" not in created
    )


async def test_the_status_keeps_kopfs_diff_base_and_prunes_unknown_fields(akube: AsyncKube) -> None:
    """kube-apiserver 1.36 (checked on 2026-12-05): a status PATCH keeps ``lastHandledConfiguration`` (in the
    CRD's status schema) and drops a field the schema does not have, with a Warning."""
    await akube.request("POST", cr_path("default"), body=chpl("diffbase"))
    patch = {
        "status": {
            "lastHandledConfiguration": '{"spec":{"a":1}}',
            "observedGeneration": 1,
            "notInSchema": "x",
        }
    }
    response = await akube.http.patch(
        cr_path("default", "diffbase") + "/status",
        content=json.dumps(patch),
        headers={"Content-Type": MERGE_PATCH},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == {
        "lastHandledConfiguration": '{"spec":{"a":1}}',
        "observedGeneration": 1,
    }
    assert response.headers["Warning"] == '299 - "unknown field \\"status.notInSchema\\""'


async def test_a_status_write_names_fields_relative_to_the_status(akube: AsyncKube) -> None:
    """kube-apiserver 1.36 (checked on 2026-12-05): the status subresource validates the status as a root of
    its own, so a type error's message says ``handlerProgress.reconcile in body``, not ``status.handlerProgress
    ...``, while its field path still starts at ``status`` (a write of the whole object names ``spec.`` in both)."""
    await akube.request("POST", cr_path("default"), body=chpl("progress"))
    patch = {"status": {"handlerProgress": {"reconcile": "str"}, "handlerProgressTouch": 5}}
    response = await akube.http.patch(
        cr_path("default", "progress") + "/status",
        content=json.dumps(patch),
        headers={"Content-Type": MERGE_PATCH},
    )
    assert response.status_code == 422, response.text
    causes = [(c["field"], c["message"]) for c in response.json()["details"]["causes"]]
    assert causes[:2] == [
        (
            "status.handlerProgress.reconcile",
            'Invalid value: "string": handlerProgress.reconcile in body must be of type object: "string"',
        ),
        (
            "status.handlerProgressTouch",
            'Invalid value: "integer": handlerProgressTouch in body must be of type string: "integer"',
        ),
    ]


async def test_a_refused_write_still_warns_of_the_fields_pruned_before_validation(akube: AsyncKube) -> None:
    """kube-apiserver 1.36 (checked on 2026-12-05): an object given for a string is pruned of its fields
    (with a Warning) before it is validated, and the 422 carries that Warning."""
    await akube.request("POST", cr_path("default"), body=chpl("pruned-422"))
    patch = {"status": {"lastHandledConfiguration": {"spec": {}}}}
    response = await akube.http.patch(
        cr_path("default", "pruned-422") + "/status",
        content=json.dumps(patch),
        headers={"Content-Type": MERGE_PATCH},
    )
    assert response.status_code == 422, response.text
    assert response.headers["Warning"] == '299 - "unknown field \\"status.lastHandledConfiguration.spec\\""'
    assert response.json()["details"]["causes"][0]["message"] == (
        'Invalid value: "object": lastHandledConfiguration in body must be of type string: "object"'
    )


async def test_a_warning_with_a_control_character_is_dropped(akube: AsyncKube) -> None:
    """kube-apiserver 1.36 (checked on 2026-12-05): an unknown field whose name holds a line break or a tab is
    pruned without a Warning (the recorder drops such text), while a plain one is warned about."""
    cases = (("x\ny", None), ("x\ty", None), ("xy", '299 - "unknown field \\"spec.xy\\""'))
    for i, (name, warned) in enumerate(cases):
        body = chpl(f"control-{i}")
        body["spec"][name] = 1
        response = await akube.http.post(
            cr_path("default") + "?fieldValidation=Warn",
            content=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 201, response.text
        assert response.headers.get("Warning") == warned, name


async def test_preserve_unknown_fields_keeps_them(akube: AsyncKube) -> None:
    peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "p"},
               "status": {"anything": {"goes": [1, 2]}}, "dropped": 1}  # fmt: skip
    created = await akube.request("POST", "/apis/kopf.dev/v1/namespaces/default/kopfpeerings", body=peering)
    assert created["status"] == {"anything": {"goes": [1, 2]}}
    assert "dropped" not in created


async def test_strict_field_validation_rejects_unknown_fields(akube: AsyncKube) -> None:
    body = chpl("strict")
    body["spec"]["typo"] = 1
    with pytest.raises(KubeApiError) as err:
        await akube.request("POST", cr_path("default"), body=body, params={"fieldValidation": "Strict"})
    assert err.value.status == 400
    assert err.value.body["message"] == (
        'ClickHousePrivateLink in version "v1alpha1" cannot be handled as a ClickHousePrivateLink: '
        'strict decoding error: unknown field "spec.typo"'
    )


async def test_status_writes_are_validated_against_the_status_schema(akube: AsyncKube) -> None:
    await akube.request("POST", cr_path("default"), body=chpl("status"))
    with pytest.raises(KubeApiError) as err:
        await akube.request("PATCH", cr_path("default", "status") + "/status",
                            body={"status": {"conditions": [{"type": "Ready"}]}}, content_type=MERGE_PATCH)  # fmt: skip
    fields = {c[1] for c in _causes(err.value.body)}
    assert {"status.conditions[0].status", "status.conditions[0].reason"} <= fields
    ok = await akube.request("PATCH", cr_path("default", "status") + "/status",
                             body={"status": {"vpcEndpointOwned": True, "endpoints": []}}, content_type=MERGE_PATCH)  # fmt: skip
    assert ok["status"]["vpcEndpointOwned"] is True


async def test_invalid_object_names_are_rejected(akube: AsyncKube) -> None:
    status = await _rejected(akube, chpl("Not_Valid"))
    assert _causes(status)[0][:2] == ("FieldValueInvalid", "metadata.name")
    assert "a lowercase RFC 1123 subdomain" in _causes(status)[0][2]


# ---------------------------------------------------------------------- the messages of Kubernetes 1.33-1.36
# Every expectation below is what a real kube-apiserver 1.36 answered to the same request.

PROBES = "/apis/example.com/v1/namespaces/default/probes"
PROBES_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "probes.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "probes", "kind": "Probe"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "!has(self.forbid)", "message": "forbid is forbidden", "reason": "FieldValueForbidden",
                     "fieldPath": ".forbid"},
                    {"rule": "!has(self.req) || self.req != 'x'", "message": "req must not be x",
                     "reason": "FieldValueRequired"},
                    {"rule": "!has(self.dup) || self.dup != 'x'", "message": "dup", "reason": "FieldValueDuplicate",
                     "fieldPath": ".dup"},
                    {"rule": "!has(self.me) || self.me != 'x'", "messageExpression": "'me was ' + self.me"},
                    {"rule": "!has(self.nokey) || self.nokey.a == 'b'"},
                ],
                "properties": {
                    "m": {"type": "object", "additionalProperties": {
                        "type": "string", "maxLength": 3,
                        "x-kubernetes-validations": [{"rule": "self != 'bad'", "message": "not bad"}]}},
                    "n": {"type": "integer", "minimum": 0, "maximum": 10, "multipleOf": 3,
                          "x-kubernetes-validations": [{"rule": "self != 6", "message": "not six"}]},
                    "b": {"type": "boolean", "x-kubernetes-validations": [{"rule": "self", "message": "must be true"}]},
                    "f": {"type": "number", "x-kubernetes-validations": [{"rule": "self != 1.5", "message": "not 1.5"}]},
                    "arr": {"type": "array", "items": {"type": "string"},
                            "x-kubernetes-validations": [{"rule": "size(self) < 2", "message": "short list"}]},
                    "s": {"type": "string", "maxLength": 3, "minLength": 2, "pattern": "^a", "enum": ["aa", "abcd", "b"],
                          "x-kubernetes-validations": [{"rule": "self != 'b'", "message": "not b"}]},
                    "forbid": {"type": "string"}, "req": {"type": "string"}, "dup": {"type": "string"},
                    "me": {"type": "string"},
                    "nokey": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            }},
        }}}],
    },
}  # fmt: skip


async def _probe_causes(akube: AsyncKube, spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    body = {"apiVersion": "example.com/v1", "kind": "Probe", "metadata": {"name": "p"}, "spec": spec}
    with pytest.raises(KubeApiError) as err:
        await akube.request("POST", PROBES, body=body)
    assert err.value.status == 422, err.value.body
    return _causes(err.value.body)


@pytest.fixture
async def probes(akube: AsyncKube) -> AsyncKube:
    await akube.request("POST", CRDS, body=PROBES_CRD)
    return akube


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"n": 6}, ("FieldValueInvalid", "spec.n", "Invalid value: 6: not six")),
        ({"b": False}, ("FieldValueInvalid", "spec.b", "Invalid value: false: must be true")),
        ({"f": 1.5}, ("FieldValueInvalid", "spec.f", "Invalid value: 1.5: not 1.5")),
        ({"m": {"k": "bad"}}, ("FieldValueInvalid", "spec.m[k]", 'Invalid value: "bad": not bad')),
        ({"arr": ["a", "b"]}, ("FieldValueInvalid", "spec.arr", "Invalid value: short list")),
        ({"me": "x"}, ("FieldValueInvalid", "spec", "Invalid value: me was x")),
        ({"forbid": "a"}, ("FieldValueForbidden", "spec.forbid", "Forbidden: forbid is forbidden")),
        ({"req": "x"}, ("FieldValueRequired", "spec", "Required value: req must not be x")),
        ({"dup": "x"}, ("FieldValueDuplicate", "spec.dup", "Duplicate value")),
        ({"nokey": {}}, ("FieldValueInvalid", "spec",
                         "Invalid value: \"object\": no such key: a evaluating rule: !has(self.nokey) || self.nokey.a == 'b'")),
    ],
)  # fmt: skip
async def test_a_failed_rule_shows_a_scalar_value_and_omits_an_object_or_a_list(
    probes: AsyncKube, spec: dict[str, Any], expected: tuple[str, str, str]
) -> None:
    assert await _probe_causes(probes, spec) == [expected]


async def test_blocking_errors_skip_the_rules_and_end_with_a_note(akube: AsyncKube) -> None:
    pattern = (
        "FieldValueInvalid",
        "spec.aws.vpcId",
        "Invalid value: \"vpc-XYZ\": spec.aws.vpcId in body should match '^vpc-[0-9a-f]{8,17}$'",
    )
    too_long = chpl("long")
    too_long["spec"]["clickhouse"]["serviceName"] = "x" * 256
    required = chpl("req")
    del required["spec"]["aws"]["region"]
    unsupported = chpl("enum", dns={"mode": "Bind"})
    for body, blocking in (
        (too_long, ("FieldValueTooLong", "spec.clickhouse.serviceName", "Too long: may not be more than 255 bytes")),
        (required, ("FieldValueRequired", "spec.aws.region", "Required value")),
        (unsupported, ("FieldValueNotSupported", "spec.dns.mode",
                       'Unsupported value: "Bind": supported values: "Route53", "None"')),
    ):  # fmt: skip
        body["spec"]["aws"]["vpcId"] = "vpc-XYZ"  # fails its pattern and its CEL rule
        causes = _causes(await _rejected(akube, body))
        # No "vpcId must look like" from the rule: the blocking error kept CEL from running.
        assert sorted(causes[:-1]) == sorted([pattern, blocking]) and causes[-1] == NOT_CHECKED
    alone = chpl("pattern-only")
    alone["spec"]["aws"]["vpcId"] = "vpc-XYZ"  # an Invalid error does not block the rules
    assert _causes(await _rejected(akube, alone)) == [
        pattern,
        ("FieldValueInvalid", "spec.aws.vpcId", 'Invalid value: "vpc-XYZ": vpcId must look like vpc-0123456789abcdef0'),
    ]  # fmt: skip
    null = chpl("null")
    null["spec"]["aws"]["vpcId"] = None  # pruned, so it is missing
    assert _causes(await _rejected(akube, null)) == [
        ("FieldValueRequired", "spec.aws.vpcId", "Required value"),
        NOT_CHECKED,
    ]


async def test_a_string_check_stops_at_its_first_failure(probes: AsyncKube) -> None:
    # maxLength, then minLength, then pattern: only the first failure; enum and rules are separate checks.
    assert await _probe_causes(probes, {"s": "zzzz"}) == [
        ("FieldValueTooLong", "spec.s", "Too long: may not be more than 3 bytes"),
        (
            "FieldValueNotSupported",
            "spec.s",
            'Unsupported value: "zzzz": supported values: "aa", "abcd", "b"',
        ),
        NOT_CHECKED,
    ]
    assert await _probe_causes(probes, {"s": "b"}) == [
        ("FieldValueInvalid", "spec.s", 'Invalid value: "b": spec.s in body should be at least 2 chars long'),
        ("FieldValueInvalid", "spec.s", 'Invalid value: "b": not b'),
    ]
    assert await _probe_causes(probes, {"n": 11}) == [
        ("FieldValueInvalid", "spec.n", "Invalid value: 11: spec.n in body should be a multiple of 3"),
        (
            "FieldValueInvalid",
            "spec.n",
            "Invalid value: 11: spec.n in body should be less than or equal to 10",
        ),
    ]


async def test_schema_errors_name_map_values_with_a_dot(akube: AsyncKube) -> None:
    body = chpl("tags")
    body["spec"]["aws"]["tags"] = {"k": "v" * 300}
    assert _causes(await _rejected(akube, body)) == [
        ("FieldValueTooLong", "spec.aws.tags.k", "Too long: may not be more than 256 bytes"),
        NOT_CHECKED,
    ]
    body["spec"]["aws"]["tags"] = {"k": 5}
    assert _causes(await _rejected(akube, body)) == [
        ("FieldValueTypeInvalid", "spec.aws.tags.k",
         'Invalid value: "integer": spec.aws.tags.k in body must be of type string: "integer"'),
        NOT_CHECKED,
    ]  # fmt: skip
    body["spec"]["aws"]["tags"] = {"ok": "1", "aws:x": "v"}
    assert _causes(await _rejected(akube, body)) == [
        ("FieldValueInvalid", "spec.aws.tags", "Invalid value: tag keys may not start with aws: in any case (AWS reserves it)"),
    ]  # fmt: skip


def _rats_crd(*, strict: bool) -> dict[str, Any]:
    """A CRD whose second version (``strict``) refuses what the first accepted."""
    spec_schema: dict[str, Any] = {"type": "object", "properties": {
        "x": {"type": "string", **({"pattern": "^z"} if strict else {})},
        "y": {"type": "string"},
        "tags": {"type": "object", "additionalProperties": {"type": "string", **({"maxLength": 2} if strict else {})}},
    }}  # fmt: skip
    if strict:
        spec_schema["x-kubernetes-validations"] = [
            {"rule": "self.x.startsWith('z')", "message": "x starts with z"}
        ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "rats.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "rats", "kind": "Rat"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "required": ["spec"], "properties": {
                                   "spec": spec_schema,
                                   "status": {"type": "object", "properties": {"s": {"type": "string", "maxLength": 3}}},
                               }}}}]},
    }  # fmt: skip


async def test_updates_ratchet_what_a_stricter_crd_now_refuses(akube: AsyncKube) -> None:
    rats = "/apis/example.com/v1/namespaces/default/rats"
    await akube.request("POST", CRDS, body=_rats_crd(strict=False))
    body = {"apiVersion": "example.com/v1", "kind": "Rat", "metadata": {"name": "r"},
            "spec": {"x": "abc", "tags": {"k": "long"}}}  # fmt: skip
    await akube.request("POST", rats, body=body)
    current = await akube.request("GET", f"{CRDS}/rats.example.com")
    stricter = _rats_crd(strict=True)
    stricter["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    await akube.request("PUT", f"{CRDS}/rats.example.com", body=stricter)

    async def patch(path: str, change: dict[str, Any]) -> list[tuple[str, str, str]]:
        try:
            await akube.request("PATCH", path, body=change, content_type=MERGE_PATCH)
        except KubeApiError as err:
            assert err.status == 422, err.body
            return _causes(err.body)
        return []

    # The status subresource checks status alone: the spec the CRD now refuses is not its business.
    assert await patch(f"{rats}/r/status", {"status": {"s": "ok"}}) == []
    assert await patch(f"{rats}/r/status", {"status": {"s": "long"}}) == [
        ("FieldValueTooLong", "status.s", "Too long: may not be more than 3 bytes"),
        NOT_CHECKED,
    ]
    # Unchanged fields keep their old values; a changed object still meets its rules, a changed field its schema.
    assert await patch(f"{rats}/r", {"spec": {"y": "new"}}) == [
        ("FieldValueInvalid", "spec", "Invalid value: x starts with z")
    ]
    assert await patch(f"{rats}/r", {"spec": {"x": "abd"}}) == [
        ("FieldValueInvalid", "spec.x", "Invalid value: \"abd\": spec.x in body should match '^z'"),
        ("FieldValueInvalid", "spec", "Invalid value: x starts with z"),
    ]
    assert await patch(f"{rats}/r", {"spec": {"x": "zed", "y": "new"}}) == []  # tags.k still "long"
    assert await patch(f"{rats}/r", {"spec": {"tags": {"k": "longer"}}}) == [
        ("FieldValueTooLong", "spec.tags.k", "Too long: may not be more than 2 bytes"),
        NOT_CHECKED,
    ]


# ---- what a write sends but then ignores (the spec of a status write, the status of a main one), as
# kube-apiserver 1.36 answers (checked on 2026-12-05 against a real server with crds/ applied)


async def _status_patch(akube: AsyncKube, name: str, patch: Any, query: str = "") -> httpx.Response:
    return await akube.http.patch(
        cr_path("default", name) + "/status" + query,
        content=json.dumps(patch),
        headers={"Content-Type": MERGE_PATCH},
    )


async def test_a_status_write_ignores_a_spec_that_breaks_the_cel_rules(akube: AsyncKube) -> None:
    """A changed immutable field, a failing field rule and a failing object rule in the spec of a status
    write: 200, the spec as it was, no Warning (the rules are never evaluated on the ignored spec)."""
    created = await akube.request("POST", cr_path("default"), body=chpl("ignored-spec"))
    for spec in (
        {"aws": {"region": "eu-west-1"}},
        {"clickhouse": {"organizationId": "nope"}},
        {"clickhouse": {"serviceId": ORG}},
        {"clickhouse": None},
    ):
        response = await _status_patch(
            akube, "ignored-spec", {"spec": spec, "status": {"observedGeneration": 1}}
        )
        assert response.status_code == 200, response.text
        assert response.json()["spec"] == created["spec"], spec
        assert "Warning" not in response.headers


async def test_a_write_warns_of_the_unknown_fields_of_the_part_it_ignores(akube: AsyncKube) -> None:
    """kube-apiserver prunes the whole object a write sends before the status strategy puts the stored spec
    back: a status write warns of unknown spec and metadata fields too, each in a Warning header of its own,
    the pruned ones sorted; and a write of the main resource warns of unknown status fields. Real answers:

        PATCH .../status {"spec": {"bogus": 1, "aws": {"zzz": 1}}, "status": {"observedGeneration": 1, "bogus": 2}}
        200, Warning: 299 - "unknown field \"spec.aws.zzz\""
             Warning: 299 - "unknown field \"spec.bogus\""
             Warning: 299 - "unknown field \"status.bogus\""
        PATCH .../status {"metadata": {"bogus": 1}, ...}   200, Warning: 299 - "unknown field \"metadata.bogus\""
        PATCH ... {"status": {"bogus": 1}}                 200, Warning: 299 - "unknown field \"status.bogus\""
    """
    created = await akube.request("POST", cr_path("default"), body=chpl("warned"))
    patch = {"spec": {"bogus": 1, "aws": {"zzz": 1}}, "status": {"observedGeneration": 1, "bogus": 2}}
    response = await _status_patch(akube, "warned", patch)
    assert response.status_code == 200, response.text
    assert response.json()["spec"] == created["spec"]
    assert response.json()["status"] == {"observedGeneration": 1}
    assert response.headers.get_list("Warning") == [
        '299 - "unknown field \\"spec.aws.zzz\\""',
        '299 - "unknown field \\"spec.bogus\\""',
        '299 - "unknown field \\"status.bogus\\""',
    ]
    response = await _status_patch(
        akube, "warned", {"metadata": {"bogus": 1}, "status": {"observedGeneration": 1}}
    )
    assert response.headers.get_list("Warning") == ['299 - "unknown field \\"metadata.bogus\\""']
    response = await akube.http.patch(
        cr_path("default", "warned"),
        content=json.dumps({"status": {"bogus": 1}}),
        headers={"Content-Type": MERGE_PATCH},
    )
    assert response.status_code == 200, response.text
    assert response.headers.get_list("Warning") == ['299 - "unknown field \\"status.bogus\\""']


async def test_a_refused_status_write_still_warns_of_the_spec_fields_it_pruned(akube: AsyncKube) -> None:
    """Real: PATCH .../status {"spec": {"bogus": 1}, "status": {"observedGeneration": "x"}}: 422 (the type
    error) with Warning: 299 - "unknown field \"spec.bogus\""."""
    await akube.request("POST", cr_path("default"), body=chpl("warned-422"))
    response = await _status_patch(
        akube, "warned-422", {"spec": {"bogus": 1}, "status": {"observedGeneration": "x"}}
    )
    assert response.status_code == 422, response.text
    assert response.json()["details"]["causes"][0]["field"] == "status.observedGeneration"
    assert response.headers.get_list("Warning") == ['299 - "unknown field \\"spec.bogus\\""']


async def test_a_strict_patch_names_the_whole_patched_object(akube: AsyncKube) -> None:
    """With ``fieldValidation=Strict`` (kubectl's default) a PATCH (merge or JSON patch, of the resource or its
    status) with an unknown field anywhere is a 422 naming no kind or object: the field is ``patch`` and its
    value the whole patched object (keys sorted). Real answer (managedFields left out here):

        422 {"message": " \"\" is invalid: patch: Invalid value: \"{\\\"apiVersion\\\":...,\\\"spec\\\":{...,
             \\\"bogus\\\":1,...},\\\"status\\\":{\\\"observedGeneration\\\":1}}\": strict decoding error:
             unknown field \"spec.bogus\"", "reason": "Invalid",
             "details": {"causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: \"{...}\":
             strict decoding error: unknown field \"spec.bogus\"", "field": "patch"}]}, "code": 422}

    A strict PUT (of the status too) stays a 400: ``... cannot be handled as a ClickHousePrivateLink: strict
    decoding error: unknown field "spec.bogus"``.
    """
    await akube.request("POST", cr_path("default"), body=chpl("strict-patch"))
    stored = await akube.request(
        "PATCH", cr_path("default", "strict-patch") + "/status",
        body={"status": {"observedGeneration": 1}}, content_type=MERGE_PATCH,
    )  # fmt: skip
    spec_bogus = {**stored, "spec": {**stored["spec"], "bogus": 1}}
    status_bogus = {**stored, "status": {"observedGeneration": 1, "bogus": 2}}
    cases = (
        ("", MERGE_PATCH, {"spec": {"bogus": 1}}, spec_bogus, "spec.bogus"),
        ("", MERGE_PATCH, {"status": {"bogus": 2}}, status_bogus, "status.bogus"),
        ("/status", MERGE_PATCH, {"spec": {"bogus": 1}}, spec_bogus, "spec.bogus"),
        ("/status", "application/json-patch+json", [{"op": "add", "path": "/spec/bogus", "value": 1}],
         spec_bogus, "spec.bogus"),
    )  # fmt: skip
    for suffix, content_type, patch, patched, unknown in cases:
        response = await akube.http.patch(
            cr_path("default", "strict-patch") + suffix + "?fieldValidation=Strict",
            content=json.dumps(patch),
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 422, response.text
        value = json.dumps(json.dumps(patched, sort_keys=True, separators=(",", ":")))
        cause = f'Invalid value: {value}: strict decoding error: unknown field "{unknown}"'
        assert response.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f' "" is invalid: patch: {cause}',
            "reason": "Invalid",
            "details": {"causes": [{"reason": "FieldValueInvalid", "message": cause, "field": "patch"}]},
            "code": 422,
        }, (suffix, patch)
    response = await akube.http.put(
        cr_path("default", "strict-patch") + "/status?fieldValidation=Strict",
        content=json.dumps(spec_bogus),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["message"] == (
        'ClickHousePrivateLink in version "v1alpha1" cannot be handled as a ClickHousePrivateLink: '
        'strict decoding error: unknown field "spec.bogus"'
    )
