"""One version, from one source: pyproject.toml's package version is the chart's version and appVersion,
the image's label, the examples' tags and ArgoCD targetRevision, and CHANGELOG.md's newest release heading;
`make release VERSION=x.y.z` checks that they agree and makes the annotated tag (scripts/release.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.packaging.support import (
    ARGOCD,
    CHART,
    ROOT,
    load_script,
    package_version,
    render_scenario,
    the_one,
)

RELEASE = load_script(ROOT / "scripts" / "release.py")


def test_every_place_names_the_package_version() -> None:
    assert RELEASE.mismatches(package_version()) == []


def test_the_chart_and_its_rendering_carry_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["version"] == chart["appVersion"] == package_version()
    statefulset = the_one(render_scenario("default"), "StatefulSet")
    assert statefulset["metadata"]["labels"]["app.kubernetes.io/version"] == package_version()
    assert statefulset["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":{package_version()}")


def test_the_argocd_examples_point_at_the_release_tag() -> None:
    for path in sorted(ARGOCD.glob("application*.yaml")):
        app = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert app["spec"]["source"]["targetRevision"] == f"v{package_version()}", path.name


def test_changelogs_newest_release_heading_is_the_package_version() -> None:
    # The format: "## [x.y.z] - YYYY-MM-DD" (Keep a Changelog), below an optional "## Unreleased".
    assert RELEASE.newest_release() == package_version(), (
        f"add `## [{package_version()}] - YYYY-MM-DD` to CHANGELOG.md above the changes it releases"
    )


def test_make_release_runs_the_tagging_with_the_version() -> None:
    result = subprocess.run(
        ["make", "-n", "release", "VERSION=9.9.9"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "scripts/release.py tag 9.9.9" in result.stdout
    usage = subprocess.run(["make", "release"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert usage.returncode != 0 and "VERSION=x.y.z" in usage.stderr


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A git repository with the files that name the version, at 0.2.0 with its CHANGELOG heading."""
    root = tmp_path / "repo"
    for relative in {"pyproject.toml", "CHANGELOG.md", *(place.path for place in RELEASE.PLACES)}:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, root / relative)
    RELEASE.set_version("0.2.0", root)
    changelog = root / "CHANGELOG.md"
    changelog.write_text("# Changelog\n\n## Unreleased\n\n## [0.2.0] - 2026-12-04\n\n- Things.\n", "utf-8")
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "x"],
    ):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    return root


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "release.py"), "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


def test_release_tags_an_agreeing_clean_tree_with_an_annotated_tag(repository: Path) -> None:
    result = run(repository, "tag", "0.2.0")
    assert result.returncode == 0, result.stderr
    assert git(repository, "cat-file", "-t", "v0.2.0").strip() == "tag"  # annotated, not lightweight
    again = run(repository, "tag", "0.2.0")
    assert again.returncode != 0 and "exists already" in again.stderr


def test_release_refuses_a_version_the_files_do_not_name(repository: Path) -> None:
    result = run(repository, "tag", "0.3.0")
    assert result.returncode != 0
    assert "pyproject.toml says 0.2.0" in result.stderr
    assert "Chart.yaml: chart appVersion is 0.2.0, not 0.3.0" in result.stderr
    assert "CHANGELOG.md's newest release heading is 0.2.0" in result.stderr
    assert git(repository, "tag", "--list").strip() == ""


def test_release_refuses_disagreeing_files_and_a_dirty_tree(repository: Path) -> None:
    dockerfile = repository / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace('version="0.2.0"', 'version="0.1.0"'))
    result = run(repository, "tag", "0.2.0")
    assert result.returncode != 0
    assert "Dockerfile: image version label is 0.1.0, not 0.2.0" in result.stderr
    assert "uncommitted changes" in result.stderr
    assert run(repository, "check").returncode != 0


def test_set_writes_the_version_everywhere(repository: Path) -> None:
    assert run(repository, "set", "1.4.0").returncode == 0
    assert RELEASE.package_version(repository) == "1.4.0"
    assert RELEASE.mismatches("1.4.0", repository) == []
    assert run(repository, "set", "1.4").returncode == 2
