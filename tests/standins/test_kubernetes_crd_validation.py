"""CustomResourceDefinitions the Kubernetes stand-in refuses, as kube-apiserver does (issue 16).

Every expected refusal below was taken from a real kube-apiserver v1.36 (RBAC on, etcd 3.4): the same CRD was
POSTed to it and its 422 ``Status`` recorded verbatim. The stand-in must answer each with the same body, on
create and on update. The cost table was measured on that server too: a rule placed under an array with
``maxItems: N`` is refused once ``cost * N`` passes 10,000,000, and the factor the server prints then (six
decimals below 1.5x) gives the rule's estimated cost exactly; the stand-in's approximation of cel-go's
estimator (see ``crd_validation``'s docstring) must give the same numbers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from clickhouse_privatelink_testkit.standins.kubernetes.crd_validation import SchemaValidator
from tests.fixtures.kubernetes import CRD_FILE, AsyncKube, KubeApiError
from tests.standins.kube_samples import sample_crd

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
GROUP = "i16crdval.example.com"

Crd = dict[str, Any]


def _base(n: int) -> Crd:
    """A valid one-version CRD ``case{n}s.i16crdval.example.com`` with ``spec.replicas``."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"case{n}s.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": f"case{n}s", "singular": f"case{n}", "kind": f"Case{n}", "listKind": f"Case{n}List"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}},
            }}}],
        },
    }  # fmt: skip


def _set(where: str, key: str, value: Any) -> Callable[[Crd], None]:
    """Set ``key`` in the root schema, in ``spec``'s schema or among ``spec``'s properties."""

    def mutate(crd: Crd) -> None:
        node: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        if where in ("spec", "fields"):
            node = node["properties"]["spec"]
        if where == "fields":
            node = node["properties"]
        node[key] = copy.deepcopy(value)

    return mutate


def _columns(columns: list[dict[str, Any]]) -> Callable[[Crd], None]:
    def mutate(crd: Crd) -> None:
        crd["spec"]["versions"][0]["additionalPrinterColumns"] = copy.deepcopy(columns)

    return mutate


ROOT_PROPERTIES_WITH = {"spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}

# The 15 malformed CRDs of issue 16, in its order.
MALFORMED: dict[str, Callable[[Crd], None]] = {
    "metadata-description": _set("root", "properties", {**ROOT_PROPERTIES_WITH, "metadata": {
        "type": "object", "description": "Standard object metadata."}}),
    "metadata-labels": _set("root", "properties", {**ROOT_PROPERTIES_WITH, "metadata": {
        "type": "object", "properties": {"labels": {"type": "object", "additionalProperties": {"type": "string"}}}}}),
    "property-without-type": _set("fields", "size", {"description": "how big"}),
    "cel-syntax-error": _set("spec", "x-kubernetes-validations", [{"rule": "self.replicas >", "message": "m"}]),
    "cel-unknown-field": _set("spec", "x-kubernetes-validations", [{"rule": "self.replica > 0", "message": "m"}]),
    # Unbounded list of unbounded strings: ~1M items of ~3M characters each.
    "cel-over-budget": _set("fields", "names", {"type": "array", "items": {"type": "string"},
        "x-kubernetes-validations": [{"rule": "self.all(x, x.matches('^[a-z]+$'))", "message": "m"}]}),
    "bad-message-expression": _set("spec", "x-kubernetes-validations", [
        {"rule": "self.replicas > 0", "messageExpression": "self.replicas"}]),
    "old-self-on-atomic-list-items": _set("fields", "tags", {"type": "array", "maxItems": 5, "items": {
        "type": "string", "maxLength": 10,
        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}]}}),
    "printer-column-type": _columns([{"name": "Replicas", "type": "int", "jsonPath": ".spec.replicas"}]),
    "default-breaks-enum": _set("fields", "mode", {"type": "string", "enum": ["Route53", "None"], "default": "Manual"}),
    "default-breaks-pattern": _set("fields", "region", {
        "type": "string", "pattern": "^[a-z]{2}-[a-z]+-[0-9]$", "default": "US-EAST-1"}),
    "set-of-objects": _set("fields", "ports", {"type": "array", "x-kubernetes-list-type": "set",
        "items": {"type": "object", "properties": {"port": {"type": "integer"}}}}),
    "map-key-not-required": _set("fields", "ports", {"type": "array", "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["port"], "items": {"type": "object", "properties": {
            "port": {"type": "integer"}, "protocol": {"type": "string"}}}}),
    "invalid-regex": _set("fields", "name", {"type": "string", "pattern": "^(vpc-[0-9a-f]+$"}),
    "additional-properties-with-properties": _set("fields", "tags", {"type": "object",
        "properties": {"team": {"type": "string"}}, "additionalProperties": {"type": "string"}}),
}  # fmt: skip

# (reason, field, message) of each refusal's causes, verbatim from kube-apiserver v1.36.
REAL_CAUSES: dict[str, list[tuple[str, str, str]]] = {
    "metadata-description": [
        (
            "FieldValueForbidden",
            "spec.validation.openAPIV3Schema.properties[metadata]",
            "Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
        )
    ],
    "metadata-labels": [
        (
            "FieldValueForbidden",
            "spec.validation.openAPIV3Schema.properties[metadata]",
            "Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
        )
    ],
    "property-without-type": [
        (
            "FieldValueRequired",
            "spec.validation.openAPIV3Schema.properties[spec].properties[size].type",
            "Required value: must not be empty for specified object fields",
        )
    ],
    "cel-syntax-error": [
        (
            "FieldValueInvalid",
            "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule",
            "Invalid value: {\"Rule\":\"self.replicas \\u003e\",\"Message\":\"m\",\"MessageExpression\":\"\",\"Reason\":null,\"FieldPath\":\"\",\"OptionalOldSelf\":null}: compilation failed: ERROR: <input>:1:16: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}\n | self.replicas >\n | ...............^",
        )
    ],
    "cel-unknown-field": [
        (
            "FieldValueInvalid",
            "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule",
            'Invalid value: {"Rule":"self.replica \\u003e 0","Message":"m","MessageExpression":"","Reason":null,"FieldPath":"","OptionalOldSelf":null}: compilation failed: ERROR: <input>:1:5: undefined field \'replica\'\n | self.replica > 0\n | ....^',
        )
    ],
    "cel-over-budget": [
        (
            "FieldValueForbidden",
            "spec.validation.openAPIV3Schema.properties[spec].properties[names].x-kubernetes-validations[0].rule",
            "Forbidden: estimated rule cost exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)",
        ),
        (
            "FieldValueForbidden",
            "spec.validation.openAPIV3Schema.properties[spec].properties[names].x-kubernetes-validations[0].rule",
            "Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
        ),
        (
            "FieldValueForbidden",
            "spec.validation.openAPIV3Schema",
            "Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)",
        ),
    ],
    "bad-message-expression": [
        (
            "FieldValueInvalid",
            "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].messageExpression",
            'Invalid value: {"Rule":"self.replicas \\u003e 0","Message":"","MessageExpression":"self.replicas","Reason":null,"FieldPath":"","OptionalOldSelf":null}: messageExpression must evaluate to a string',
        )
    ],
    "old-self-on-atomic-list-items": [
        (
            "FieldValueInvalid",
            "spec.validation.openAPIV3Schema.properties[spec].properties[tags].items.x-kubernetes-validations[0].rule",
            'Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable portion of the schema within spec.validation.openAPIV3Schema.properties[spec].properties[tags]',
        )
    ],
    "printer-column-type": [
        (
            "FieldValueInvalid",
            "spec.additionalPrinterColumns[0].type",
            'Invalid value: "int": must be one of boolean,date,integer,number,string',
        )
    ],
    "default-breaks-enum": [
        (
            "FieldValueNotSupported",
            "spec.validation.openAPIV3Schema.properties[spec].properties[mode].default",
            'Unsupported value: "Manual": supported values: "Route53", "None"',
        )
    ],
    "default-breaks-pattern": [
        (
            "FieldValueInvalid",
            "spec.validation.openAPIV3Schema.properties[spec].properties[region].default",
            "Invalid value: \"US-EAST-1\":  in body should match '^[a-z]{2}-[a-z]+-[0-9]$'",
        )
    ],
    "set-of-objects": [
        (
            "FieldValueInvalid",
            "spec.validation.openAPIV3Schema.properties[spec].properties[ports].items.x-kubernetes-map-type",
            "Invalid value: null: must be atomic as item of a list with x-kubernetes-list-type=set",
        )
    ],
    "map-key-not-required": [
        (
            "FieldValueRequired",
            "spec.validation.openAPIV3Schema.properties[spec].properties[ports].items.properties[port].default",
            "Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
        )
    ],
    "invalid-regex": [
        (
            "FieldValueInvalid",
            "spec.validation.openAPIV3Schema.properties[spec].properties[name].pattern",
            'Invalid value: "^(vpc-[0-9a-f]+$": must be a valid regular expression, but isn\'t: error parsing regexp: missing closing ): `^(vpc-[0-9a-f]+$`',
        )
    ],
    "additional-properties-with-properties": [
        (
            "FieldValueForbidden",
            "spec.validation.openAPIV3Schema.properties[spec].properties[tags].additionalProperties",
            "Forbidden: additionalProperties and properties are mutual exclusive",
        )
    ],
}


def _crd(n: int, case: str) -> Crd:
    crd = _base(n)
    MALFORMED[case](crd)
    return crd


def _expected(name: str, causes: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The 422 body kube-apiserver sends (``errors.NewInvalid``: one cause inline, several in brackets)."""
    texts = [f"{field}: {message}" for _, field, message in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: {summary}',
        "reason": "Invalid",
        "details": {
            "name": name,
            "group": "apiextensions.k8s.io",
            "kind": "CustomResourceDefinition",
            "causes": [{"reason": r, "message": m, "field": f} for r, f, m in causes],
        },
        "code": 422,
    }


async def _refused(akube: AsyncKube, method: str, path: str, body: Crd) -> dict[str, Any]:
    with pytest.raises(KubeApiError) as err:
        await akube.request(method, path, body=body)
    assert err.value.status == 422, err.value.body
    return dict(err.value.body)


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_crd_is_refused_on_create_with_the_real_message(akube: AsyncKube, case: str) -> None:
    n = list(MALFORMED).index(case) + 1
    crd = _crd(n, case)
    assert await _refused(akube, "POST", CRDS, crd) == _expected(crd["metadata"]["name"], REAL_CAUSES[case])
    with pytest.raises(KubeApiError) as err:
        await akube.request("GET", f"{CRDS}/{crd['metadata']['name']}")
    assert err.value.status == 404


@pytest.mark.parametrize(
    "case", ["metadata-description", "cel-unknown-field", "cel-over-budget", "old-self-on-atomic-list-items"]
)
async def test_malformed_crd_is_refused_on_update(akube: AsyncKube, case: str) -> None:
    # Taken from kube-apiserver v1.36 too: PUT of the malformed CRD over a valid one answers as the create does.
    n = 300 + list(MALFORMED).index(case)
    stored = await akube.request("POST", CRDS, body=_base(n))
    broken = _crd(n, case)
    broken["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"]
    name = broken["metadata"]["name"]
    assert await _refused(akube, "PUT", f"{CRDS}/{name}", broken) == _expected(name, REAL_CAUSES[case])
    assert (await akube.request("GET", f"{CRDS}/{name}"))["spec"] == stored["spec"]


async def test_valid_crds_are_accepted(akube: AsyncKube) -> None:
    """The project's CRD (already installed by the fixture), the tests' sample CRDs and a CRD that uses what
    the rules allow: metadata restricting only name, int-or-string, map lists, transition rules on map-list
    items, a set of scalars."""
    assert await akube.request("GET", f"{CRDS}/clickhouseprivatelinks.privatelink.clickhouse.dev")
    await akube.request("POST", CRDS, body=sample_crd("gadgets", status_subresource=True))
    allowed = _base(99)
    root = allowed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    root["properties"]["metadata"] = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}},
    }
    root["properties"]["spec"]["properties"].update({
        "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "zones": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"],
                  "maxItems": 8, "items": {"type": "object", "required": ["port"], "properties": {
                      "port": {"type": "integer"}, "name": {"type": "string", "maxLength": 10}},
                      "x-kubernetes-validations": [{"rule": "self.name == oldSelf.name", "message": "fixed"}]}},
    })  # fmt: skip
    created = await akube.request("POST", CRDS, body=allowed)
    assert created["metadata"]["name"] == f"case99s.{GROUP}"


def _probe_schema(item: dict[str, Any]) -> dict[str, Any]:
    crd = _base(1)
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    root["properties"]["spec"]["properties"]["probe"] = {"type": "array", "maxItems": 1, "items": item}
    return dict(root)


def _string(rule: str, max_length: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "x-kubernetes-validations": [{"rule": rule}]}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def _strings(rule: str) -> dict[str, Any]:
    return {"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 20},
            "x-kubernetes-validations": [{"rule": rule}]}  # fmt: skip


UUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

# (schema with one rule, its estimated cost on kube-apiserver v1.36), measured as the module docstring says.
MEASURED_COSTS: list[tuple[dict[str, Any], int]] = [
    (_string(f"self.matches('{UUID}')", 36), 301),
    (_string("self.size() == 36", 36), 3),
    (_string("self.startsWith('vpc-')"), 2),
    (_string("self == 'abc'", 10), 2),
    (_string("self in ['a', 'b', 'c']", 20), 14),
    (_string("self.contains('xy')", 20), 9),
    (_string("self.matches('^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$')", 2048), 12301),
    (_string("self.matches('^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$')", 32), 144),
    ({"type": "object", "properties": {"a": {"type": "string", "maxLength": 5}, "b": {"type": "integer"}},
      "x-kubernetes-validations": [{"rule": "has(self.a) != has(self.b)"}]}, 3),
    ({"type": "integer", "x-kubernetes-validations": [{"rule": "self > 0 ? self < 10 : self > -10"}]}, 4),
    (_strings("self.all(x, x.startsWith('a'))"), 52),
    (_strings("self.exists(x, x == 'a')"), 62),
    (_strings("self.exists_one(x, x == 'a')"), 43),
    (_strings("self.map(x, x + 'a').size() > 0"), 234),
    (_strings("self.filter(x, x == 'a').size() < 2"), 164),
    ({"type": "object", "maxProperties": 40, "additionalProperties": {"type": "string", "maxLength": 256},
      "x-kubernetes-validations": [{"rule": "self.all(k, size(k) >= 1 && size(k) <= 128 && !k.startsWith('aws:') "
                                            "&& !k.startsWith('privatelink.clickhouse.dev/'))"}]}, 682),
]  # fmt: skip


# More measured costs, one rule on each of these schemas: the library functions Kubernetes prices by size.
PROBED: dict[str, dict[str, Any]] = {
    "string": {"type": "string", "maxLength": 64},
    "object": {
        "type": "object",
        "properties": {"a": {"type": "string", "maxLength": 10}, "n": {"type": "integer"}},
    },
    "map": {"type": "object", "maxProperties": 10, "additionalProperties": {"type": "integer"}},
    "list": {"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 10}},
}
MEASURED_LIBRARY_COSTS: list[tuple[str, str, int]] = [
    ("string", "isURL(self) && url(self).getHost() != ''", 30),
    ("string", "quantity(self).isGreaterThan(quantity('1'))", 29),
    ("string", "self.split('/').size() < 3", 55),
    ("string", "self.indexOf('a') >= 0", 28),
    ("string", "format.dns1123Label().validate(self).hasValue() == false", 836),
    ("string", "isCIDR(self) && cidr(self).prefixLength() < 24", 56),
    ("string", "self.lowerAscii() == self", 54),
    ("string", "self.replace('a', 'b') != ''", 53),
    ("string", "b'abc' == bytes(self)", 28),
    ("string", "strings.quote(self) != ''", 27),
    ("object", "self.?a.orValue('') != 'x'", 4),
    ("object", "type(self.n) == int", 4),
    ("object", "{'a': 1}['a'] == self.n", 33),
    ("map", "self.all(k, self[k] > 0)", 72),
    ("map", "self.exists(k, k == 'a')", 52),
    ("list", "self.all(x, x.size() < 5) && self.isSorted()", 113),
    ("list", "self.map(x, x.size()).sum() < 100", 163),
    ("list", "self.join(',').size() < 100", 44),
    ("list", "self.all(x, self.exists(y, x == y))", 1052),
    ("list", "self.all(i, x, x != '')", 42),
]
MEASURED_COSTS += [
    ({**PROBED[kind], "x-kubernetes-validations": [{"rule": rule}]}, cost)
    for kind, rule, cost in MEASURED_LIBRARY_COSTS
]


@pytest.mark.parametrize(("item", "cost"), MEASURED_COSTS)
def test_cost_estimate_matches_the_real_server(item: dict[str, Any], cost: int) -> None:
    validator = SchemaValidator()
    assert validator.validate(_probe_schema(item), "spec.validation") == []
    rule = "spec.validation.openAPIV3Schema.properties[spec].properties[probe].items.x-kubernetes-validations[0].rule"
    assert validator.costs[rule] == cost


def test_project_crd_rules_fit_the_budget() -> None:
    crd = yaml.safe_load(CRD_FILE.read_text())
    validator = SchemaValidator()
    assert (
        validator.validate(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], "spec.validation") == []
    )
    assert validator.costs and max(validator.costs.values()) < 10_000_000


def _with_replicas(schema: dict[str, Any]) -> Callable[[Crd], None]:
    return _set("fields", "replicas", schema)


def _served(crd: Crd) -> None:
    crd["spec"]["versions"][0]["served"] = "yes"


# A body Go cannot decode into a CRD is a 400 before any validation; messages from kube-apiserver v1.36.
UNDECODABLE: list[tuple[Callable[[Crd], None], str]] = [
    (_with_replicas({"type": 5}), "json: cannot unmarshal number into Go struct field "
     "JSONSchemaProps.spec.versions.schema.openAPIV3Schema.properties.properties.type of type string"),
    (_with_replicas({"type": "string", "maxLength": 1.5}), "json: cannot unmarshal number 1.5 into Go struct field "
     "JSONSchemaProps.spec.versions.schema.openAPIV3Schema.properties.properties.maxLength of type int64"),
    (_with_replicas({"type": "string", "x-kubernetes-validations": [{"rule": 1}]}), "json: cannot unmarshal number "
     "into Go struct field ValidationRule.spec.versions.schema.openAPIV3Schema.properties.properties"
     ".x-kubernetes-validations.rule of type string"),
    (_served, "json: cannot unmarshal string into Go struct field CustomResourceDefinitionVersion.spec.versions.served "
     "of type bool"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "message"), UNDECODABLE)
async def test_undecodable_crd_is_a_bad_request(
    akube: AsyncKube, mutate: Callable[[Crd], None], message: str
) -> None:
    crd = _base(400)
    mutate(crd)
    with pytest.raises(KubeApiError) as err:
        await akube.request("POST", CRDS, body=crd)
    assert err.value.status == 400
    assert err.value.body["message"] == (
        'CustomResourceDefinition in version "v1" cannot be handled as a CustomResourceDefinition: ' + message
    )


async def test_errors_name_per_version_schemas_and_hoisted_columns(akube: AsyncKube) -> None:
    """Versions with different schemas are reported per version; identical printer columns at the top level
    (the v1 -> internal conversion hoists what all versions share). Taken from kube-apiserver v1.36."""
    crd = _base(503)
    first = crd["spec"]["versions"][0]
    second = copy.deepcopy(first) | {"name": "v2", "storage": False}
    second["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["bad"] = {
        "description": "no type"
    }
    crd["spec"]["versions"].append(second)
    for version in crd["spec"]["versions"]:
        version["additionalPrinterColumns"] = [{"name": "R", "type": "int", "jsonPath": ".spec.replicas"}]
    assert await _refused(akube, "POST", CRDS, crd) == _expected(crd["metadata"]["name"], [
        ("FieldValueRequired", "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[bad].type",
         "Required value: must not be empty for specified object fields"),
        ("FieldValueInvalid", "spec.additionalPrinterColumns[0].type",
         'Invalid value: "int": must be one of boolean,date,integer,number,string'),
    ])  # fmt: skip


APPROVAL = "metadata.annotations[api-approved.kubernetes.io]"
APPROVAL_NEEDED = 'protected groups must have approval annotation "api-approved.kubernetes.io"'


@pytest.mark.parametrize(
    ("annotation", "causes"),
    [
        (None, [("FieldValueRequired", APPROVAL,
                 f"Required value: {APPROVAL_NEEDED}, see https://github.com/kubernetes/enhancements/pull/1111")]),
        ("nope", [("FieldValueInvalid", APPROVAL,
                   f'Invalid value: "nope": {APPROVAL_NEEDED} with either a URL or a reason starting with '
                   '"unapproved", see https://github.com/kubernetes/enhancements/pull/1111')]),
        ("unapproved, testing", []),
        ("https://github.com/kubernetes/enhancements/pull/1111", []),
    ],
)  # fmt: skip
async def test_protected_groups_need_api_approval(
    akube: AsyncKube, annotation: str | None, causes: list[tuple[str, str, str]]
) -> None:
    """Groups under k8s.io need the approval annotation; answers taken from kube-apiserver v1.36."""
    crd = _base(600)
    crd["spec"]["group"] = "i16crdval.k8s.io"
    crd["metadata"]["name"] = "case600s.i16crdval.k8s.io"
    if annotation is not None:
        crd["metadata"]["annotations"] = {"api-approved.kubernetes.io": annotation}
    if causes:
        assert await _refused(akube, "POST", CRDS, crd) == _expected(crd["metadata"]["name"], causes)
    else:
        await akube.request("POST", CRDS, body=crd)


# Rules on the root schema and what kube-apiserver v1.36 said of each (the detail after the rule).
ROOT_RULE_ERRORS: list[tuple[str, str]] = [
    (
        "self.replicas > 0)",
        "compilation failed: ERROR: <input>:1:18: Syntax error: extraneous input ')' expecting <EOF>\n | self.replicas > 0)\n | .................^",
    ),
    (
        "(self.replicas > 0",
        "compilation failed: ERROR: <input>:1:19: Syntax error: missing ')' at '<EOF>'\n | (self.replicas > 0\n | ..................^",
    ),
    (
        "self.replicas # 0",
        "compilation failed: ERROR: <input>:1:15: Syntax error: token recognition error at: '#'\n | self.replicas # 0\n | ..............^\nERROR: <input>:1:17: Syntax error: extraneous input '0' expecting <EOF>\n | self.replicas # 0\n | ................^",
    ),
    (
        "self.replicas > > 0",
        "compilation failed: ERROR: <input>:1:17: Syntax error: extraneous input '>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}\n | self.replicas > > 0\n | ................^",
    ),
    (
        "replicas > 0",
        "compilation failed: ERROR: <input>:1:1: undeclared reference to 'replicas' (in container '')\n | replicas > 0\n | ^",
    ),
    ("self.spec.replicas + 1", "cel expression must evaluate to a bool"),
    (
        "size(self.metadata.labels) < 10",
        "compilation failed: ERROR: <input>:1:19: undefined field 'labels'\n | size(self.metadata.labels) < 10\n | ..................^",
    ),
    (
        "math.greatest(1, 2) == 2",
        "compilation failed: ERROR: <input>:1:1: undeclared reference to 'math' (in container '')\n | math.greatest(1, 2) == 2\n | ^\nERROR: <input>:1:14: undeclared reference to 'greatest' (in container '')\n | math.greatest(1, 2) == 2\n | .............^",
    ),
]


@pytest.mark.parametrize(("rule", "detail"), ROOT_RULE_ERRORS)
async def test_rule_compilation_errors(akube: AsyncKube, rule: str, detail: str) -> None:
    crd = _base(900)
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"] = [{"rule": rule}]
    status = await _refused(akube, "POST", CRDS, crd)
    (cause,) = status["details"]["causes"]
    assert (cause["reason"], cause["field"]) == (
        "FieldValueInvalid",
        "spec.validation.openAPIV3Schema.x-kubernetes-validations[0].rule",
    )
    assert cause["message"].startswith('Invalid value: {"Rule":')
    assert cause["message"].endswith('"OptionalOldSelf":null}: ' + detail)
