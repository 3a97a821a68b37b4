"""One version for everything, from one source: the package's version in pyproject.toml.

It is also the chart's `version` and `appVersion` (so the image tag), the image's version label, the tag and
`targetRevision` of the examples, and the newest release heading of CHANGELOG.md (`## [x.y.z] - YYYY-MM-DD`).

    python3 scripts/release.py check                 every place agrees with pyproject.toml
    python3 scripts/release.py set 0.3.0             write 0.3.0 everywhere (then `make packaging`)
    python3 scripts/release.py tag 0.3.0             check, then `git tag -a v0.3.0` (`make release VERSION=0.3.0`)

`tag` refuses unless every place says that version, CHANGELOG.md's newest release heading names it, the work
tree is clean and the tag does not exist yet. It never pushes: `git push origin v0.3.0` is yours to run.
Standard library only (Python 3.11+), so it runs before any environment is installed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSION = re.compile(r"^\d+\.\d+\.\d+$")
# The newest release heading in CHANGELOG.md (Keep a Changelog): "## [0.2.0] - 2026-12-04".
RELEASE_HEADING = re.compile(r"^## \[(\d+\.\d+\.\d+)\](?: - \d{4}-\d{2}-\d{2})?\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Place:
    """A file that names the version, and the pattern around it (the version is group 1; every match)."""

    path: str
    pattern: str
    what: str


PLACES = (
    Place("charts/clickhouse-privatelink-operator/Chart.yaml", r"(?m)^version: (\S+)$", "chart version"),
    Place(
        "charts/clickhouse-privatelink-operator/Chart.yaml", r"(?m)^appVersion: (\S+)$", "chart appVersion"
    ),
    Place("Dockerfile", r'org\.opencontainers\.image\.version="([^"]+)"', "image version label"),
    Place("deploy/argocd/application.yaml", r"targetRevision: v(\S+)", "ArgoCD targetRevision"),
    Place("deploy/argocd/application.yaml", r"(?m)^          tag: (\S+)$", "ArgoCD image tag"),
    Place("deploy/argocd/application-resources.yaml", r"targetRevision: v(\S+)", "ArgoCD targetRevision"),
    Place("docs/install.md", r"clickhouse-privatelink-operator:(\d+\.\d+\.\d+)", "image tag in the example"),
    Place("docs/install.md", r"newTag: (\S+)", "kustomize image tag in the example"),
    Place("docs/image.md", r"clickhouse-privatelink-operator:(\d+\.\d+\.\d+)", "image tag in the example"),
    Place("docs/eks-walkthrough.md", r"export VERSION=(\S+)", "VERSION in the walkthrough"),
)


def package_version(root: Path = ROOT) -> str:
    with (root / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def mismatches(version: str, root: Path = ROOT) -> list[str]:
    """Every place that does not name ``version`` (or names nothing: its pattern moved)."""
    problems = []
    for place in PLACES:
        found = re.findall(place.pattern, (root / place.path).read_text(encoding="utf-8"))
        if not found:
            problems.append(f"{place.path}: no {place.what} found (pattern {place.pattern!r})")
        problems += [f"{place.path}: {place.what} is {v}, not {version}" for v in found if v != version]
    return problems


def newest_release(root: Path = ROOT) -> str | None:
    """The version of CHANGELOG.md's first `## [x.y.z]` heading (an `## Unreleased` section may precede it)."""
    found = RELEASE_HEADING.search((root / "CHANGELOG.md").read_text(encoding="utf-8"))
    return found.group(1) if found else None


def set_version(version: str, root: Path = ROOT) -> None:
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(
        re.sub(r'(?m)^version = "[^"]+"$', f'version = "{version}"', text, count=1), encoding="utf-8"
    )
    for place in PLACES:
        path = root / place.path
        text = path.read_text(encoding="utf-8")

        def replace(match: re.Match[str]) -> str:
            start, end = match.span(1)
            return match.group(0)[: start - match.start()] + version + match.group(0)[end - match.start() :]

        path.write_text(re.sub(place.pattern, replace, text), encoding="utf-8")


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)


def release_problems(version: str, root: Path = ROOT) -> list[str]:
    """Why ``version`` cannot be tagged now ([] when it can)."""
    if not VERSION.match(version):
        return [f"{version!r} is not x.y.z"]
    problems = []
    if package_version(root) != version:
        problems.append(
            f"pyproject.toml says {package_version(root)}: run `python3 scripts/release.py set {version}`"
        )
    problems += mismatches(version, root)
    newest = newest_release(root)
    if newest != version:
        problems.append(
            f"CHANGELOG.md's newest release heading is {newest or 'missing'}: add `## [{version}] - YYYY-MM-DD`"
        )
    if git(root, "status", "--porcelain").stdout.strip():
        problems.append("the work tree has uncommitted changes: commit them first")
    if git(root, "rev-parse", "--verify", "--quiet", f"refs/tags/v{version}").returncode == 0:
        problems.append(f"tag v{version} exists already")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="every place agrees with pyproject.toml")
    for name, text in (("set", "write the version everywhere"), ("tag", "check, then create the git tag")):
        sub.add_parser(name, help=text).add_argument("version")
    args = parser.parse_args(argv)
    root: Path = args.root
    if args.command == "check":
        problems = mismatches(package_version(root), root)
    elif args.command == "set":
        if not VERSION.match(args.version):
            print(f"error: {args.version!r} is not x.y.z", file=sys.stderr)
            return 2
        set_version(args.version, root)
        print(
            f"set {args.version}: run `make packaging`, add `## [{args.version}] - YYYY-MM-DD` to CHANGELOG.md"
        )
        return 0
    else:
        problems = release_problems(args.version, root)
        if not problems:
            made = git(
                root, "tag", "-a", f"v{args.version}", "-m", f"clickhouse-privatelink-operator {args.version}"
            )
            if made.returncode != 0:
                problems = [made.stderr.strip()]
            else:
                print(f"tagged v{args.version}: push it with `git push origin v{args.version}`")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
