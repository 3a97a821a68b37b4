"""The ArgoCD health check (deploy/argocd/health.lua), run by a real Lua 5.1 interpreter as ArgoCD's
gopher-lua runs it, on the cases of health_test.yaml in the format of ArgoCD's resource_customizations."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from clickhouse_privatelink.decisions.reasons import PROGRESSING_REASONS, TERMINAL_REASONS, Reason
from tests.packaging.support import ARGOCD, CHART, DOCS, ROOT, Manifest, load_documents

HEALTH_LUA = ARGOCD / "health.lua"
ARGOCD_CM_KEY = "resource.customizations.health.privatelink.clickhouse.dev_ClickHousePrivateLink"


def health(obj: Manifest) -> dict[str, str]:
    """What health.lua returns for this object."""
    lua = lua51.LuaRuntime(register_eval=False)
    # ArgoCD's sandbox has no os, io or module loading: the script must not need them.
    lua.execute("os, io, require, dofile, loadfile, package = nil, nil, nil, nil, nil, nil")
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(HEALTH_LUA.read_text(encoding="utf-8"))
    return {"status": result["status"], "message": result["message"]}


def argocd_health(obj: Manifest) -> dict[str, str]:
    """What ArgoCD shows: gitops-engine's health.GetResourceHealth answers "Pending deletion" for any object
    with a deletionTimestamp (and no hook finalizer) before it looks for a health check."""
    if obj["metadata"].get("deletionTimestamp"):
        return {"status": "Progressing", "message": "Pending deletion"}
    return health(obj)


def health_tests() -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]
    return tests


def load(input_path: str) -> Manifest:
    (obj,) = load_documents((ARGOCD / input_path).read_text(encoding="utf-8"))
    return obj


def with_ready(status: str, reason: str, message: str = "details") -> Manifest:
    """The healthy sample with its Ready condition replaced."""
    obj = load("testdata/healthy.yaml")
    for condition in obj["status"]["conditions"]:
        if condition["type"] == "Ready":
            condition.update(status=status, reason=reason, message=message)
    return obj


@pytest.mark.parametrize("case", health_tests(), ids=lambda case: Path(case["inputPath"]).stem)
def test_health_check_gives_the_expected_status_and_message(case: dict[str, Any]) -> None:
    assert health(load(case["inputPath"])) == case["healthStatus"]


def test_every_testdata_file_is_a_case() -> None:
    used = {case["inputPath"] for case in health_tests()}
    assert used == {f"testdata/{p.name}" for p in (ARGOCD / "testdata").glob("*.yaml")}


def test_cases_cover_every_health_status() -> None:
    assert {case["healthStatus"]["status"] for case in health_tests()} == {
        "Healthy",
        "Progressing",
        "Degraded",
    }


def test_lua_progressing_reasons_are_exactly_the_operators() -> None:
    source = HEALTH_LUA.read_text(encoding="utf-8")
    block = re.search(
        r"-- BEGIN PROGRESSING_REASONS[^\n]*\n(.*?)-- END PROGRESSING_REASONS", source, re.DOTALL
    )
    assert block is not None
    lua = lua51.LuaRuntime()
    table = lua.execute(block.group(1) + "\nreturn progressing_reasons")
    assert set(table.keys()) == {str(reason) for reason in PROGRESSING_REASONS}, "run `make packaging`"


def expected_when_not_ready(reason: str) -> str:
    """Ready=False resolves by itself only for the operator's PROGRESSING_REASONS; any other reason (one a
    person must fix, or one unknown to this check) must show, not wait forever."""
    return "Progressing" if reason in PROGRESSING_REASONS else "Degraded"


# Every reason the operator has, read from reasons.py, and one it does not have (yet).
UNKNOWN_REASON = "SomethingNewInALaterOperator"
EVERY_REASON = [*sorted(str(r) for r in Reason), UNKNOWN_REASON]


@pytest.mark.parametrize("reason", EVERY_REASON)
def test_ready_false_is_progressing_only_for_a_reason_that_resolves_itself(reason: str) -> None:
    assert health(with_ready("False", reason)) == {
        "status": expected_when_not_ready(reason),
        "message": f"{reason}: details",
    }


@pytest.mark.parametrize("reason", EVERY_REASON)
def test_ready_true_is_healthy_and_ready_unknown_progressing_whatever_the_reason(reason: str) -> None:
    assert health(with_ready("True", reason)) == {"status": "Healthy", "message": f"{reason}: details"}
    assert health(with_ready("Unknown", reason)) == {"status": "Progressing", "message": f"{reason}: details"}


def test_every_terminal_reason_is_degraded_and_the_two_kinds_do_not_overlap() -> None:
    assert not TERMINAL_REASONS & PROGRESSING_REASONS
    assert {expected_when_not_ready(r) for r in TERMINAL_REASONS} == {"Degraded"}
    assert {expected_when_not_ready(r) for r in PROGRESSING_REASONS} == {"Progressing"}
    assert UNKNOWN_REASON not in {str(r) for r in Reason}


def test_health_cases_include_an_unknown_reason_shown_as_degraded() -> None:
    known = {str(r) for r in Reason}
    unknown = [
        case
        for case in health_tests()
        if any(
            c["reason"] not in known for c in load(case["inputPath"]).get("status", {}).get("conditions", [])
        )
    ]
    assert [case["healthStatus"]["status"] for case in unknown] == ["Degraded"]


@pytest.mark.parametrize("reason", [Reason.DELETING, Reason.AWS_ACCESS_DENIED, UNKNOWN_REASON], ids=str)
def test_a_deleting_resource_shows_what_argocd_shows_pending_deletion(reason: str) -> None:
    obj = with_ready("False", reason)
    obj["metadata"]["deletionTimestamp"] = "2026-11-28T11:00:00Z"
    obj["metadata"]["finalizers"] = ["privatelink.clickhouse.dev/finalizer"]
    assert argocd_health(obj) == {"status": "Progressing", "message": "Pending deletion"}


def test_health_lua_has_no_deletion_branch_argocd_would_never_run() -> None:
    code = "\n".join(
        line for line in HEALTH_LUA.read_text(encoding="utf-8").splitlines() if not line.startswith("--")
    )
    assert "deletionTimestamp" not in code
    assert "Deletion blocked" not in code


def test_no_health_case_is_an_object_being_deleted() -> None:
    # ArgoCD would show each as "Pending deletion" whatever health.lua says: such a case would test nothing.
    for case in health_tests():
        assert "deletionTimestamp" not in load(case["inputPath"])["metadata"], case["inputPath"]


def test_terminal_reason_from_an_older_generation_is_not_degraded_yet() -> None:
    # The user may just have fixed the spec: wait for the operator to look at it.
    obj = with_ready("False", Reason.FORBIDDEN)
    obj["metadata"]["generation"] += 1
    assert health(obj)["status"] == "Progressing"


def test_healthy_needs_both_observed_generations_current() -> None:
    obj = load("testdata/healthy.yaml")
    assert health(obj)["status"] == "Healthy"
    stale_status = copy.deepcopy(obj)
    stale_status["status"]["observedGeneration"] -= 1
    assert health(stale_status)["status"] == "Progressing"
    stale_ready = copy.deepcopy(obj)
    for condition in stale_ready["status"]["conditions"]:
        if condition["type"] == "Ready":
            condition["observedGeneration"] -= 1
    assert health(stale_ready)["status"] == "Progressing"


def argocd_cm_health(snippet: str) -> str:
    (configmap,) = load_documents(snippet)
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["name"] == "argocd-cm"
    script: str = configmap["data"][ARGOCD_CM_KEY]
    return script


def test_argocd_cm_snippet_carries_health_lua_unchanged() -> None:
    snippet = (ARGOCD / "argocd-cm.yaml").read_text(encoding="utf-8")
    assert argocd_cm_health(snippet) == HEALTH_LUA.read_text(encoding="utf-8"), "run `make packaging`"


@pytest.mark.parametrize("doc", [DOCS / "install.md", CHART / "README.md"], ids=lambda p: p.name)
def test_docs_show_the_argocd_cm_snippet_of_health_lua(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    block = re.search(
        r"<!-- BEGIN argocd-cm[^\n]*-->\n```yaml\n(.*?)```\n<!-- END argocd-cm -->", text, re.DOTALL
    )
    assert block is not None, f"{doc} has no argocd-cm snippet"
    assert argocd_cm_health(block.group(1)) == HEALTH_LUA.read_text(encoding="utf-8"), "run `make packaging`"


def applications() -> dict[str, Manifest]:
    return {
        path.name: doc
        for path in ARGOCD.glob("application*.yaml")
        for doc in load_documents(path.read_text(encoding="utf-8"))
    }


def test_operator_and_resources_are_separate_applications_synced_in_order() -> None:
    apps = applications()
    operator, resources = apps["application.yaml"], apps["application-resources.yaml"]
    assert operator["kind"] == resources["kind"] == "Application"
    wave = "argocd.argoproj.io/sync-wave"
    assert int(operator["metadata"]["annotations"][wave]) < int(resources["metadata"]["annotations"][wave])
    # Deleting the resources' Application deletes the resources and waits for the operator's finalizer.
    assert resources["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    assert "SkipDryRunOnMissingResource=true" in resources["spec"]["syncPolicy"]["syncOptions"]


def test_applications_point_at_paths_of_this_repository() -> None:
    apps = applications()
    assert (ROOT / apps["application.yaml"]["spec"]["source"]["path"] / "Chart.yaml").is_file()
    resources_path = ROOT / apps["application-resources.yaml"]["spec"]["source"]["path"]
    assert list(resources_path.glob("*.yaml"))
    # The sample Secret (placeholders) is not synced from git.
    assert apps["application-resources.yaml"]["spec"]["source"]["directory"]["exclude"] == "secret.yaml"
