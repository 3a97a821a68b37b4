"""The container image, checked without a Docker engine: the Dockerfile's structure and lint, and its
install steps replayed in a fresh virtualenv to prove the entrypoint runs with the runtime dependencies
alone."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.packaging.support import CRDS, ROOT, TOOLS

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PINNED_BASE = re.compile(r"^python:3\.11[\w.-]*-slim[\w.-]*@sha256:[0-9a-f]{64}$")

Instruction = tuple[str, str]


def instructions() -> list[Instruction]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending)
        pending = ""
    return [(parts[0].upper(), parts[1].strip()) for parts in (entry.split(None, 1) for entry in logical)]


def stages() -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


def runtime_stage() -> list[Instruction]:
    return stages()[-1]


def builder_stage() -> list[Instruction]:
    return stages()[0]


def arguments(stage: list[Instruction], name: str) -> list[str]:
    return [args for instruction, args in stage if instruction == name]


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [str(TOOLS / "hadolint"), "--format", "json", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(result.stdout or "[]") == []
    assert result.returncode == 0, result.stderr


def test_build_is_multi_stage_on_a_base_pinned_by_tag_and_digest() -> None:
    assert len(stages()) == 2
    for stage in stages():
        image = arguments(stage, "FROM")[0].split()[0]
        assert PINNED_BASE.match(image), image
    assert arguments(builder_stage(), "FROM")[0].endswith(" AS builder")
    assert arguments(runtime_stage(), "COPY") == ["--from=builder /opt/venv /opt/venv"]


def test_runtime_runs_as_a_non_root_numeric_user() -> None:
    (user,) = arguments(runtime_stage(), "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0
    assert gid.isdigit() and int(gid) != 0
    # USER is the last word on identity: nothing runs as root after it.
    names = [instruction for instruction, _ in runtime_stage()]
    assert "RUN" not in names[names.index("USER") :]


def test_runtime_writes_nothing_outside_tmp() -> None:
    env = " ".join(arguments(runtime_stage(), "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "HOME=/tmp" in env


def test_no_credentials_are_baked_into_the_image() -> None:
    secret_like = re.compile(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|API_KEY|CREDENTIAL)", re.IGNORECASE)
    for instruction, args in instructions():
        if instruction in {"ENV", "ARG", "LABEL"}:
            assert not secret_like.search(args), f"{instruction} {args}"


def test_entrypoint_is_the_operator_and_serves_all_namespaces_by_default() -> None:
    (entrypoint,) = arguments(runtime_stage(), "ENTRYPOINT")
    (cmd,) = arguments(runtime_stage(), "CMD")
    assert json.loads(entrypoint) == ["clickhouse-privatelink-operator", "run"]
    assert json.loads(cmd) == ["--all-namespaces"]
    assert arguments(runtime_stage(), "EXPOSE") == ["8080 9090"]


def test_image_carries_oci_labels() -> None:
    labels = " ".join(arguments(runtime_stage(), "LABEL"))
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_source_revision_and_created_labels_come_from_build_arguments_with_defaults() -> None:
    """`--build-arg SOURCE=... REVISION=$(git rev-parse HEAD) CREATED=...`; a bare build still labels."""
    stage = runtime_stage()
    declared = dict(arg.split("=", 1) for arg in arguments(stage, "ARG"))
    assert declared == {"SOURCE": "unknown", "REVISION": "unknown", "CREATED": "1970-01-01T00:00:00Z"}
    labels = " ".join(arguments(stage, "LABEL"))
    for key, arg in (("source", "SOURCE"), ("revision", "REVISION"), ("created", "CREATED")):
        assert f'org.opencontainers.image.{key}="${{{arg}}}"' in labels
    # Declared in the runtime stage before the LABEL that uses them (an ARG before FROM is not seen there).
    names = [f"{instruction} {args}" for instruction, args in stage]
    first_label = next(i for i, n in enumerate(names) if n.startswith("LABEL"))
    assert all(names.index(f"ARG {a}={v}") < first_label for a, v in declared.items())


def test_build_context_holds_only_what_the_build_copies() -> None:
    lines = [line for line in DOCKERIGNORE.read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {source.rstrip("/") for source in build_sources()}
    assert allowed == copied


def build_sources() -> list[str]:
    """What the builder stage COPYs from the build context."""
    sources: list[str] = []
    for args in arguments(builder_stage(), "COPY"):
        *from_context, _destination = args.split()
        sources.extend(from_context)
    return sources


RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"
UV = ROOT / ".tools" / "uv" / "bin" / "uv"
EXPORT = [
    "export",
    "--frozen",
    "--no-dev",
    "--no-emit-workspace",
    "--package",
    "clickhouse-privatelink-operator",
]


def test_runtime_requirements_are_the_lock_exported() -> None:
    exported = subprocess.run(
        [str(UV), *EXPORT, "--quiet", "--no-header"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    committed = "\n".join(
        line for line in RUNTIME_LOCK.read_text().splitlines() if not line.startswith("#  ")
    )
    assert exported.strip() in committed, "requirements/runtime.txt is stale: run make requirements"


def test_builder_installs_exactly_the_locked_runtime_tree_then_the_project_without_dependencies() -> None:
    runs = " ".join(arguments(builder_stage(), "RUN"))
    assert "pip install --no-cache-dir --require-hashes --requirement requirements/runtime.txt" in runs
    assert "pip install --no-cache-dir --no-deps ." in runs
    pinned = [line for line in RUNTIME_LOCK.read_text().splitlines() if line and line[0].isalpha()]
    assert pinned and all("==" in line for line in pinned), "every runtime requirement is pinned"


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The builder stage replayed: a new virtualenv, the locked runtime tree (hashes required), then the
    project with --no-deps from a copy of exactly the files the Dockerfile copies (uv stands in for pip)."""
    work = tmp_path_factory.mktemp("image")
    context = work / "context"
    context.mkdir()
    for source in build_sources():
        path = ROOT / source
        (context / source).parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(
                path, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(path, context / source)
    venv = work / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    pip = [str(UV), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
    subprocess.run(
        [*pip, "--require-hashes", "--requirement", str(context / "requirements" / "runtime.txt")],
        check=True,
        capture_output=True,
    )
    # --no-sources: the uv workspace names the test kit, which the build context (rightly) lacks; pip ignores it.
    subprocess.run([*pip, "--no-deps", "--no-sources", str(context)], check=True, capture_output=True)
    return venv


def test_operator_wheel_holds_no_test_kit_module(tmp_path: Path) -> None:
    subprocess.run(
        [
            str(UV),
            "build",
            "--quiet",
            "--wheel",
            "--package",
            "clickhouse-privatelink-operator",
            "-o",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    (wheel,) = tmp_path.glob("clickhouse_privatelink_operator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    modules = [n for n in names if n.endswith(".py")]
    assert "clickhouse_privatelink/wiring/handlers.py" in modules
    assert all(n.startswith("clickhouse_privatelink/") for n in modules), modules
    assert not [n for n in names if "testkit" in n or "standin" in n or "sandbox" in n]


def test_entrypoint_runs_from_a_fresh_virtualenv_with_only_the_runtime_dependencies(
    fresh_install: Path,
) -> None:
    command = fresh_install / "bin" / "clickhouse-privatelink-operator"
    result = subprocess.run([str(command), "--help"], capture_output=True, text=True, check=False, cwd="/")
    assert result.returncode == 0, result.stderr
    assert "run" in result.stdout and "crd" in result.stdout
    run_help = subprocess.run(
        [str(command), "run", "--help"], capture_output=True, text=True, check=True, cwd="/"
    )
    for option in (
        "--all-namespaces",
        "--namespace",
        "--peering",
        "--priority",
        "--liveness",
        "--metrics-port",
    ):
        assert option in run_help.stdout


def test_installed_operator_renders_the_committed_crd(fresh_install: Path) -> None:
    command = fresh_install / "bin" / "clickhouse-privatelink-operator"
    result = subprocess.run([str(command), "crd"], capture_output=True, text=True, check=False, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (CRDS / "clickhouseprivatelinks.yaml").read_text(encoding="utf-8")


def test_fresh_install_holds_no_test_or_sandbox_packages(fresh_install: Path) -> None:
    listed = subprocess.run(
        [str(UV), "pip", "list", "--format", "json", "--python", str(fresh_install / "bin" / "python")],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert {"kopf", "boto3", "clickhouse-privatelink-operator"} <= installed
    assert not installed & {
        "pytest", "moto", "flask", "lupa", "kubernetes-validate", "cel-python", "ruff", "mypy",
        "clickhouse-privatelink-testkit",
    }  # fmt: skip


def test_image_has_no_kubernetes_client_library(fresh_install: Path) -> None:
    """kopf logs in by itself and the Secret is one aiohttp GET: the client (and its requests/oauthlib/websocket
    tree, ~75 MB of a 136 MB tree) stays out, and the operator imports and logs in without it."""
    listed = subprocess.run(
        [str(UV), "pip", "list", "--format", "json", "--python", str(fresh_install / "bin" / "python")],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert not installed & {"kubernetes", "requests", "requests-oauthlib", "oauthlib", "websocket-client"}
    code = (
        "import clickhouse_privatelink.wiring.runner, clickhouse_privatelink.wiring.handlers\n"
        "from clickhouse_privatelink.adapters.kubernetes import login\n"
        "from kopf._core.intents import piggybacking\n"
        "assert not piggybacking.has_client() and not piggybacking.has_pykube()\n"
    )
    result = subprocess.run(
        [str(fresh_install / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr


def test_runtime_tree_stays_lean(fresh_install: Path) -> None:
    """The installed tree (docs/image.md: 136 MB with the Kubernetes client, 59 MB without) stays small."""
    size = sum(p.stat().st_size for p in fresh_install.rglob("*") if p.is_file() and not p.is_symlink())
    assert size < 80 * 1024 * 1024, f"{size / 1024 / 1024:.0f} MB"
