"""The operator's Kubernetes permissions are exactly the minimum that kopf 1.45 and the operator use.

Each rule below is justified by a call in kopf's or the operator's source; the last tests read those
sources, so that a new call (or a kopf upgrade) that needs more fails here rather than in a cluster.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kopf
import pytest

from tests.packaging.support import (
    CRDS,
    PEERING_NAME,
    RELEASE,
    ROOT,
    Manifest,
    helm,
    load_documents,
    of_kind,
    operator_container,
    render,
    render_scenario,
    the_one,
)

KOPF = Path(kopf.__file__).parent
OPERATOR = ROOT / "operator" / "clickhouse_privatelink"

Rule = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def rule(groups: list[str], resources: list[str], verbs: list[str], names: list[str] | None = None) -> Rule:
    return (tuple(sorted(groups)), tuple(sorted(resources)), tuple(sorted(verbs)), tuple(sorted(names or [])))


def rules_of(role: Manifest) -> set[Rule]:
    found: list[dict[str, Any]] = role["rules"]
    as_rules = [rule(r["apiGroups"], r["resources"], r["verbs"], r.get("resourceNames")) for r in found]
    assert len(as_rules) == len(set(as_rules)), "duplicate rules"
    return set(as_rules)


def operator_cluster_role(manifests: list[Manifest]) -> Manifest:
    """The operator's own ClusterRole (the others are aggregated into Kubernetes' user-facing roles)."""
    (role,) = [r for r in of_kind(manifests, "ClusterRole") if r["metadata"]["name"] == RELEASE]
    return role


def secret_rule(secret_names: list[str] | None) -> Rule:
    """GET on Secrets, by name unless None (rbac.allowAllSecrets)."""
    return rule([""], ["secrets"], ["get"], secret_names)


def served_resource_rules(secret_names: list[str]) -> set[Rule]:
    return {
        # kopf lists+watches what it serves and PATCHes finalizers (its progress records are in the status).
        rule(["privatelink.clickhouse.dev"], ["clickhouseprivatelinks"], ["list", "watch", "patch"]),
        # Conditions go to the status subresource, by PATCH only.
        rule(["privatelink.clickhouse.dev"], ["clickhouseprivatelinks/status"], ["patch"]),
        # kopf POSTs Events (core v1) about handlers; it never patches them.
        rule([""], ["events"], ["create"]),
        # The ClickHouse API key Secret that a resource names, read with GET.
        secret_rule(secret_names),
    }


def peering_rules(resource: str) -> set[Rule]:
    return {
        # kopf watches the peering objects to see its peers.
        rule(["kopf.dev"], [resource], ["list", "watch"]),
        # ...and PATCHes its own keep-alive into the one named --peering (no status subresource).
        rule(["kopf.dev"], [resource], ["patch"], [PEERING_NAME]),
    }


# kopf watches CRDs to notice served resources change (it only warns without the right).
WATCH_CRDS = rule(["apiextensions.k8s.io"], ["customresourcedefinitions"], ["list", "watch"])
# In namespaced mode kopf follows the watched namespaces being created and deleted; in every mode the
# operator reads namespaces' labels for the tenancy policies that select namespaces by label.
WATCH_NAMESPACES = rule([""], ["namespaces"], ["list", "watch"])
# The tenancy policies (cluster-scoped), read through a kopf index; never written.
WATCH_POLICIES = rule(["privatelink.clickhouse.dev"], ["clickhouseprivatelinkpolicies"], ["list", "watch"])


def test_cluster_wide_mode_grants_exactly_the_minimum_cluster_wide() -> None:
    manifests = render_scenario("default")
    assert rules_of(operator_cluster_role(manifests)) == {
        WATCH_CRDS,
        WATCH_NAMESPACES,
        WATCH_POLICIES,
        *peering_rules("clusterkopfpeerings"),
        *served_resource_rules(["clickhouse-api-key"]),
    }
    assert of_kind(manifests, "Role") == []
    assert of_kind(manifests, "RoleBinding") == []


def test_namespaced_mode_grants_the_served_resources_only_in_the_watched_namespaces() -> None:
    manifests = render_scenario("namespaced")
    # Cluster-wide: only what kopf reads about the cluster itself, nothing about the resources.
    assert rules_of(operator_cluster_role(manifests)) == {WATCH_CRDS, WATCH_NAMESPACES, WATCH_POLICIES}
    roles = of_kind(manifests, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert rules_of(role) == {
            *peering_rules("kopfpeerings"),
            *served_resource_rules(["clickhouse-api-key"]),
        }


def test_secret_reads_are_limited_to_the_named_secrets_unless_lifted() -> None:
    (secrets_rule,) = [
        r for r in rules_of(operator_cluster_role(render_scenario("existing-secret"))) if "secrets" in r[1]
    ]
    assert secrets_rule == rule([""], ["secrets"], ["get"], ["warehouse-key", "reporting-key"])


@pytest.mark.parametrize("scenario", ["default", "namespaced"])
def test_bindings_grant_the_roles_to_the_operators_service_account_only(scenario: str) -> None:
    manifests = render_scenario(scenario)
    account = the_one(manifests, "ServiceAccount")["metadata"]
    for binding in of_kind(manifests, "ClusterRoleBinding") + of_kind(manifests, "RoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        ]
        role_kind = "ClusterRole" if binding["kind"] == "ClusterRoleBinding" else "Role"
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role_kind,
            "name": binding["metadata"]["name"],
        }


def test_kopf_only_posts_events() -> None:
    source = (KOPF / "_cogs/clients/events.py").read_text(encoding="utf-8")
    assert "api.post(" in source
    assert not re.search(r"api\.(patch|put|delete)\(", source)


def test_kopf_never_gets_single_objects_only_lists_watches_and_patches_them() -> None:
    # GET is used for discovery (/api, /apis, /version: open to every authenticated client) and for
    # listing (fetching.py); single objects are only ever PATCHed (patching.py) or POSTed (events,
    # webhook configurations the operator does not use).
    calls = {
        path.relative_to(KOPF).as_posix(): set(
            re.findall(r"\bapi\.(get|post|patch|put|delete|stream)\(", path.read_text())
        )
        for path in (KOPF / "_cogs/clients").glob("*.py")
    }
    assert {path for path, verbs in calls.items() if "get" in verbs} == {
        "_cogs/clients/scanning.py",
        "_cogs/clients/fetching.py",
    }
    assert {path for path, verbs in calls.items() if verbs & {"put", "delete"}} == set()


def test_kopf_reads_namespaces_only_when_not_cluster_wide() -> None:
    source = (KOPF / "_core/reactor/observation.py").read_text(encoding="utf-8")
    assert source.count("if not settings.scanning.disabled and not clusterwide:") == 2


def test_kopf_peering_objects_are_patched_whole_as_their_crds_have_no_status_subresource() -> None:
    for crd in load_documents((CRDS / "kopf-peering.yaml").read_text(encoding="utf-8")):
        assert all("subresources" not in version for version in crd["spec"]["versions"])


def test_the_operator_itself_only_gets_secrets_and_marks_its_own_resources() -> None:
    # The operator's own Kubernetes calls (the test kit beside it is never deployed) go through kopf's login
    # (adapters/kubernetes/api.py), no client library: GETs of Secrets, and the merge PATCH that marks a
    # ClickHousePrivateLink whose Secret changed (the Secret watch), which kopf's own patch grant covers.
    sources = {path: path.read_text(encoding="utf-8") for path in OPERATOR.rglob("*.py")}
    assert not [p for p, s in sources.items() if re.search(r"^\s*(import|from) kubernetes\b", s, re.M)]
    verbs = {verb for s in sources.values() for verb in re.findall(r'\b_send\(\s*\w+,\s*"(\w+)"', s)}
    assert verbs == {"GET", "PATCH"}
    plurals = {plural for s in sources.values() for plural in re.findall(r'object_path\([^,]+,\s*"(\w+)"', s)}
    assert plurals == {"secrets"}
    patched = {m for s in sources.values() for m in re.findall(r"(?<!def )custom_object_path\(([^)]*)\)", s)}
    # Only ClickHousePrivateLinks, by namespace and name: the status writes and annotation stamps of
    # wiring/state.py, and `diagnose` reading one resource (a GET its user's own RBAC, or the operator's, allows).
    assert patched == {"c.GROUP, c.VERSION, namespace, c.PLURAL, name"}


def secret_rules_by_namespace(manifests: list[Manifest]) -> dict[str | None, set[Rule]]:
    """Where the operator may GET Secrets: None for the ClusterRole, else the Role's namespace."""
    found: dict[str | None, set[Rule]] = {}
    for role in [operator_cluster_role(manifests), *of_kind(manifests, "Role")]:
        rules = {r for r in rules_of(role) if r[1] == ("secrets",)}
        if rules:
            found[role["metadata"].get("namespace")] = rules
    return found


@pytest.mark.parametrize("secret_names", [None, []], ids=["null", "empty"])
def test_no_secret_names_means_the_configured_api_key_secret_only_never_any_secret(
    secret_names: list[str] | None,
) -> None:
    manifests = render({"rbac": {"secretNames": secret_names}})
    assert secret_rules_by_namespace(manifests) == {None: {secret_rule(["clickhouse-api-key"])}}


@pytest.mark.parametrize(
    "values",
    [
        {"clickhouse": {"apiKey": {"secretName": "other"}}},
        {"clickhouse": {"apiKey": {"secretName": "other"}}, "rbac": {"secretNames": ["reporting"]}},
        {"clickhouse": {"apiKey": {"secretName": "other"}}, "watchNamespaces": ["team-a"]},
        {"clickhouse": {"apiKey": {"secretName": "other"}}, "rbac": {"secretNamespaces": ["team-a"]}},
        {
            "clickhouse": {"apiKey": {"create": True, "secretName": "other", "keyId": "a", "keySecret": "b"}},
            "watchNamespaces": ["team-a", "team-b"],
        },
    ],
    ids=["cluster-wide", "with-other-names", "namespaced", "secret-namespaces", "created"],
)
def test_the_configured_api_key_secret_is_always_readable(values: dict[str, Any]) -> None:
    by_namespace = secret_rules_by_namespace(render(values))
    assert by_namespace
    for rules in by_namespace.values():
        ((_, _, _, names),) = rules
        assert "other" in names


def test_any_secret_only_with_an_explicit_allow_all_secrets() -> None:
    manifests = render({"rbac": {"allowAllSecrets": True}})
    assert secret_rules_by_namespace(manifests) == {None: {secret_rule(None)}}


def test_watching_secrets_adds_list_and_watch_where_secrets_are_read() -> None:
    watch = rule([""], ["secrets"], ["list", "watch"], None)
    assert watch not in secret_rules_by_namespace(render({}))[None]
    manifests = render({"operator": {"watchSecrets": True}})
    assert secret_rules_by_namespace(manifests) == {None: {secret_rule(["clickhouse-api-key"]), watch}}
    namespaced = render(
        {
            "watchNamespaces": ["team-a", "team-b"],
            "operator": {"watchSecrets": True},
            "rbac": {"secretNamespaces": ["team-a"]},
        }
    )
    assert secret_rules_by_namespace(namespaced) == {"team-a": {secret_rule(["clickhouse-api-key"]), watch}}
    env = {e["name"]: e.get("value") for e in operator_container(manifests)["env"]}
    assert env["CHPL_WATCH_SECRETS"] == "true"


def test_allow_all_secrets_with_secret_names_is_refused_as_contradictory() -> None:
    result = helm("template", RELEASE, values={"rbac": {"allowAllSecrets": True, "secretNames": ["x"]}})
    assert result.returncode != 0
    assert "rbac.secretNames has no effect with rbac.allowAllSecrets: true" in result.stderr


def test_secret_namespaces_move_secret_reads_into_roles_of_those_namespaces() -> None:
    manifests = render({"rbac": {"secretNamespaces": ["team-a", "team-b"]}})
    assert secret_rules_by_namespace(manifests) == {
        "team-a": {secret_rule(["clickhouse-api-key"])},
        "team-b": {secret_rule(["clickhouse-api-key"])},
    }
    # The served resources are still watched cluster-wide; only Secret reads are narrowed.
    assert served_resource_rules(["clickhouse-api-key"]) - {secret_rule(["clickhouse-api-key"])} <= rules_of(
        operator_cluster_role(manifests)
    )
    account = the_one(manifests, "ServiceAccount")["metadata"]
    for binding in of_kind(manifests, "RoleBinding"):
        assert binding["roleRef"]["name"] == f"{RELEASE}-secrets"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        ]


def test_secret_namespaces_narrow_the_namespaced_roles() -> None:
    manifests = render({"watchNamespaces": ["team-a", "team-b"], "rbac": {"secretNamespaces": ["team-b"]}})
    assert secret_rules_by_namespace(manifests) == {"team-b": {secret_rule(["clickhouse-api-key"])}}
    assert len(of_kind(manifests, "Role")) == 2


def test_secret_namespaces_outside_the_watched_ones_are_refused() -> None:
    values = {"watchNamespaces": ["team-a"], "rbac": {"secretNamespaces": ["team-z"]}}
    result = helm("template", RELEASE, values=values)
    assert result.returncode != 0
    assert 'rbac.secretNamespaces: "team-z" is not in watchNamespaces' in result.stderr


AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def test_aggregated_roles_let_view_read_and_edit_and_admin_manage_the_resources() -> None:
    roles = {r["metadata"]["name"]: r for r in of_kind(render_scenario("default"), "ClusterRole")}
    view, edit = roles[f"{RELEASE}-view"], roles[f"{RELEASE}-edit"]
    aggregated_into = {
        name: {
            k.removeprefix(AGGREGATE) for k, v in r["metadata"]["labels"].items() if k.startswith(AGGREGATE)
        }
        for name, r in (("view", view), ("edit", edit))
        if all(v == "true" for k, v in r["metadata"]["labels"].items() if k.startswith(AGGREGATE))
    }
    assert aggregated_into == {"view": {"view", "edit", "admin"}, "edit": {"edit", "admin"}}
    group = ["privatelink.clickhouse.dev"]
    assert rules_of(view) == {
        rule(group, ["clickhouseprivatelinks", "clickhouseprivatelinks/status"], ["get", "list", "watch"])
    }
    assert rules_of(edit) == {
        rule(group, ["clickhouseprivatelinks"], ["create", "update", "patch", "delete", "deletecollection"])
    }
    # Aggregated roles are never bound by the chart: they only add to Kubernetes' own roles.
    bound = {b["roleRef"]["name"] for b in of_kind(render_scenario("default"), "ClusterRoleBinding")}
    assert bound == {RELEASE}


def test_aggregated_roles_can_be_switched_off() -> None:
    names = {
        r["metadata"]["name"]
        for r in of_kind(render({"rbac": {"aggregateToDefaultRoles": False}}), "ClusterRole")
    }
    assert names == {RELEASE}


def test_watching_secrets_cluster_wide_with_per_namespace_secret_roles_is_refused() -> None:
    # kopf watches Secrets in every namespace it serves; cluster-wide that is one cluster-wide watch, which
    # Roles in a few namespaces cannot grant: every watch would be refused (403), so rendering refuses it.
    values = {"operator": {"watchSecrets": True}, "rbac": {"secretNamespaces": ["team-a"]}}
    result = helm("template", RELEASE, values=values)
    assert result.returncode != 0
    assert "operator.watchSecrets" in result.stderr and "rbac.secretNamespaces" in result.stderr
    # The same in namespaced mode works: the watches are per namespace, granted by the Roles there.
    namespaced = {**values, "watchNamespaces": ["team-a", "team-b"]}
    assert helm("template", RELEASE, values=namespaced).returncode == 0
    # And cluster-wide with the ClusterRole rule (no secretNamespaces).
    assert helm("template", RELEASE, values={"operator": {"watchSecrets": True}}).returncode == 0
