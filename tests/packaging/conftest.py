"""Fixtures of the packaging tests (the helpers they share are in support.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.packaging.support import (
    CHART,
    CHECKOV_CONFIG,
    HELM,
    NAMESPACE,
    RELEASE,
    ROOT,
    SCENARIOS,
    TOOLS,
    kustomize_build,
)


@pytest.fixture(scope="session")
def checkov_reports(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """checkov's reports on everything that is deployed: the chart rendered for every scenario, the
    kustomize base and the Dockerfile. Run once per session: it is the slowest scanner here."""
    scanned = tmp_path_factory.mktemp("checkov")
    for name, values in SCENARIOS.items():
        values_file = scanned / f"{name}.values.json"
        values_file.write_text(json.dumps(values), encoding="utf-8")
        rendered = subprocess.run(
            [
                str(HELM),
                "template",
                RELEASE,
                str(CHART),
                "--namespace",
                NAMESPACE,
                "--values",
                str(values_file),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        values_file.unlink()
        (scanned / f"chart-{name}.yaml").write_text(rendered, encoding="utf-8")
    (scanned / "kustomize.yaml").write_text(kustomize_build(), encoding="utf-8")
    shutil.copy(ROOT / "Dockerfile", scanned / "Dockerfile")
    result = subprocess.run(
        [
            str(TOOLS / "checkov"),
            "--config-file",
            str(CHECKOV_CONFIG),
            "--directory",
            str(scanned),
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout, result.stderr
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]
