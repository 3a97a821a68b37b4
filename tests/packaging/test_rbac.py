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
    ROOT,
    Manifest,
    load_documents,
    of_kind,
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


def served_resource_rules(secret_names: list[str]) -> set[Rule]:
    return {
        # kopf lists+watches what it serves and PATCHes finalizers and its progress annotations.
        rule(["privatelink.clickhouse.dev"], ["clickhouseprivatelinks"], ["list", "watch", "patch"]),
        # Conditions go to the status subresource, by PATCH only.
        rule(["privatelink.clickhouse.dev"], ["clickhouseprivatelinks/status"], ["patch"]),
        # kopf POSTs Events (core v1) about handlers; it never patches them.
        rule([""], ["events"], ["create"]),
        # The ClickHouse API key Secret that a resource names, read with GET.
        rule([""], ["secrets"], ["get"], secret_names),
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
# In namespaced mode kopf follows the watched namespaces being created and deleted.
WATCH_NAMESPACES = rule([""], ["namespaces"], ["list", "watch"])


def test_cluster_wide_mode_grants_exactly_the_minimum_cluster_wide() -> None:
    manifests = render_scenario("default")
    assert rules_of(the_one(manifests, "ClusterRole")) == {
        WATCH_CRDS,
        *peering_rules("clusterkopfpeerings"),
        *served_resource_rules(["clickhouse-api-key"]),
    }
    assert of_kind(manifests, "Role") == []
    assert of_kind(manifests, "RoleBinding") == []


def test_namespaced_mode_grants_the_served_resources_only_in_the_watched_namespaces() -> None:
    manifests = render_scenario("namespaced")
    # Cluster-wide: only what kopf reads about the cluster itself, nothing about the resources.
    assert rules_of(the_one(manifests, "ClusterRole")) == {WATCH_CRDS, WATCH_NAMESPACES}
    roles = of_kind(manifests, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert rules_of(role) == {
            *peering_rules("kopfpeerings"),
            *served_resource_rules(["clickhouse-api-key"]),
        }


def test_secret_reads_are_limited_to_the_named_secrets_unless_lifted() -> None:
    (secrets_rule,) = [
        r for r in rules_of(the_one(render_scenario("existing-secret"), "ClusterRole")) if "secrets" in r[1]
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


def test_the_operator_itself_only_reads_secrets_from_the_kubernetes_api() -> None:
    # The Kubernetes client calls in the operator's code (the test kit beside it is never deployed).
    kubernetes_call = re.compile(
        r"\.((?:read|list|create|patch|replace|delete)_(?:namespaced_\w+|cluster_custom_object\w*|namespace\b\w*"
        r"|custom_resource_definition\w*|node\w*))\("
    )
    calls = {
        call
        for path in OPERATOR.rglob("*.py")
        for call in kubernetes_call.findall(path.read_text(encoding="utf-8"))
    }
    assert calls == {"read_namespaced_secret"}
