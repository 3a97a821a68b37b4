"""The tools the packaging tests run are the pinned ones that scripts/install-tools.sh installs."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.packaging.support import ROOT, TOOLS

SCRIPT = (ROOT / "scripts" / "install-tools.sh").read_text(encoding="utf-8")


def pinned(variable: str) -> str:
    match = re.search(rf'^{variable}="\$\{{{variable}:-([^}}]+)\}}"$', SCRIPT, re.MULTILINE)
    assert match is not None, f"{variable} is not pinned in install-tools.sh"
    return match.group(1)


@pytest.mark.parametrize(
    ("tool", "variable"),
    [("hadolint", "HADOLINT_VERSION"), ("checkov", "CHECKOV_VERSION")],
)
def test_installed_tool_is_the_pinned_version(tool: str, variable: str) -> None:
    version = subprocess.run(
        [str(TOOLS / tool), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert pinned(variable) in version


def test_python_tools_live_outside_the_project_virtualenv() -> None:
    for tool in ("hadolint", "checkov"):
        assert (TOOLS / tool).resolve().is_relative_to(ROOT / ".tools" / "venvs" / tool)


def test_helm_and_kubectl_are_installed() -> None:
    for tool in ("helm", "kubectl"):
        assert (TOOLS / tool).is_file()
    assert (
        "v4."
        in subprocess.run([str(TOOLS / "helm"), "version", "--short"], capture_output=True, text=True).stdout
    )
