"""checkov's security scan of what is deployed finds nothing, except checks skipped with a reason."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.packaging.support import CHECKOV_CONFIG, SCENARIOS


def report(reports: list[dict[str, Any]], check_type: str) -> dict[str, Any]:
    (found,) = [r for r in reports if r["check_type"] == check_type]
    return found


def test_checkov_finds_no_failed_check_in_the_manifests_or_the_dockerfile(
    checkov_reports: list[dict[str, Any]],
) -> None:
    failed = [
        (check["check_id"], check["check_name"], check["resource"], check["file_path"])
        for r in checkov_reports
        for check in r["results"]["failed_checks"]
    ]
    assert failed == []


def test_checkov_scanned_every_rendering_and_the_dockerfile(checkov_reports: list[dict[str, Any]]) -> None:
    kubernetes = report(checkov_reports, "kubernetes")
    scanned_files = {check["file_path"].lstrip("/") for check in kubernetes["results"]["passed_checks"]}
    assert scanned_files == {f"chart-{name}.yaml" for name in SCENARIOS} | {"kustomize.yaml"}
    assert kubernetes["summary"]["parsing_errors"] == 0
    assert report(checkov_reports, "dockerfile")["summary"]["passed"] > 0


def test_every_skipped_check_says_why() -> None:
    lines = CHECKOV_CONFIG.read_text(encoding="utf-8").splitlines()
    skipped = yaml.safe_load("\n".join(lines))["skip-check"]
    assert skipped, "nothing skipped: drop this test's premise"
    for check_id in skipped:
        (index,) = [i for i, line in enumerate(lines) if re.fullmatch(rf"\s*- {check_id}", line)]
        assert lines[index - 1].lstrip().startswith("#"), f"{check_id} is skipped without a reason"
        assert f"# {check_id} " in "\n".join(lines[:index]), f"the reason above {check_id} must name it"
