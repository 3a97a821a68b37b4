#!/usr/bin/env python3
"""Measure what the README's quick start costs on this machine, and write the figures into README.md.

    python3 scripts/measure.py [--skip-test] [--dry-run] [--note TEXT] [--keep]

Standard library only. It measures the committed state (HEAD), never the work tree:

1. ``git clone --no-hardlinks`` of HEAD into a temporary folder, with empty caches (uv: UV_CACHE_DIR, npm:
   npm_config_cache, pip: PIP_NO_CACHE_DIR and PIP_CACHE_DIR, XDG_CACHE_HOME, all in the temporary folder),
   then ``make sandbox`` timed from nothing to its last line; the moment make echoes the sandbox command
   splits the install from the walk-through.
2. A second fresh clone, caches empty again, and ``make test`` timed the same way (install of the venv
   and the tools in parallel, lint, pytest).
3. Sizes (``du -sk``): the operator's runtime tree alone (a fresh ``uv venv`` with
   ``uv pip install --require-hashes -r requirements/runtime.txt`` plus the operator with ``--no-deps``, as
   the image does it), the sandbox environment (the first clone's .venv), the whole development
   environment (the second clone's .venv) and the test-only tools (its .tools).

It then rewrites the part of README.md between ``<!-- measurements:start -->`` and
``<!-- measurements:end -->`` (``--dry-run`` prints it instead). ``--skip-test`` measures the sandbox only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START = "<!-- measurements:start -->"
END = "<!-- measurements:end -->"
SCRIPT = "scripts/measure.py"
# The targets the quick start promises (seconds), from nothing with empty caches.
TARGETS = {"make sandbox": 5 * 60, "make test": 15 * 60}
# Variables of the calling shell that would let a clone's make reuse something of this checkout.
DROPPED_ENV = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PYTHONPATH")


@dataclass
class Run:
    """One timed command: total wall time, when each marker line appeared, how it ended."""

    command: str
    seconds: float = 0.0
    returncode: int = 0
    marks: dict[str, float] = field(default_factory=dict)
    last_line: str = ""
    summary: str = ""  # pytest's closing line, when there is one
    log: Path | None = None


def say(message: str) -> None:
    print(f"[measure] {message}", file=sys.stderr, flush=True)


def fresh_env(cache_root: Path) -> dict[str, str]:
    """This process's environment with every cache the installs use pointed at an empty folder."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    for name in ("uv", "npm", "pip", "xdg"):
        (cache_root / name).mkdir(parents=True, exist_ok=True)
    env.update(
        UV_CACHE_DIR=str(cache_root / "uv"),
        npm_config_cache=str(cache_root / "npm"),
        PIP_NO_CACHE_DIR="1",
        PIP_CACHE_DIR=str(cache_root / "pip"),
        XDG_CACHE_HOME=str(cache_root / "xdg"),
    )
    return env


def clone(source: Path, dest: Path) -> str:
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(source), str(dest)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return subprocess.run(
        ["git", "-C", str(dest), "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def timed(
    command: list[str], cwd: Path, env: dict[str, str], log: Path, marks: dict[str, str], timeout: float
) -> Run:
    """Run ``command``, its output to ``log``; record when a line containing each marker first appeared."""
    run = Run(command=" ".join(command), log=log)
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                now = time.monotonic() - start
                out.write(f"{now:8.1f} {line}")
                out.flush()
                stripped = line.strip()
                if stripped:
                    run.last_line = stripped
                for name, needle in marks.items():
                    if name not in run.marks and needle in line:
                        run.marks[name] = now
                if (" passed" in stripped or " failed" in stripped) and " in " in stripped:
                    run.summary = stripped
            run.returncode = proc.wait()
        finally:
            timer.cancel()
    run.seconds = time.monotonic() - start
    return run


def du_kib(path: Path) -> int:
    if not path.exists():
        return 0
    out = subprocess.run(["du", "-sk", str(path)], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


def runtime_tree_kib(checkout: Path, env: dict[str, str], work: Path) -> int:
    """The image's install: the locked runtime requirements (hashes checked) plus the operator, no deps."""
    uv = checkout / ".tools" / "uv" / "bin" / "uv"
    venv = work / "runtime-venv"
    python = venv / "bin" / "python"
    subprocess.run([str(uv), "venv", "--quiet", "--python", "python3", str(venv)], check=True, env=env)
    runtime_txt = checkout / "requirements" / "runtime.txt"
    subprocess.run(
        [
            str(uv),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            "--require-hashes",
            "-r",
            str(runtime_txt),
        ],
        check=True,
        env=env,
    )
    subprocess.run(
        [str(uv), "pip", "install", "--quiet", "--python", str(python), "--no-deps", str(checkout)],
        check=True,
        env=env,
    )
    return du_kib(venv)


def minutes(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def verdict(name: str, run: Run) -> str:
    target = TARGETS[name]
    text = f"{'PASS' if run.seconds < target else 'over'} (target < {target // 60} min)"
    if run.returncode != 0:
        text += f"; **exit {run.returncode}** (failures below)"
    return text


def loadavg() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def render(
    results: dict[str, Run],
    sizes: dict[str, tuple[str, str]],
    commit: str,
    machine: str,
    note: str,
    when: str,
) -> str:
    rows = [("figure", "value", "note")]
    sandbox = results.get("make sandbox")
    if sandbox:
        install = sandbox.marks.get("walk")
        rows.append(
            ("`make sandbox`, from nothing", minutes(sandbox.seconds), verdict("make sandbox", sandbox))
        )
        if install is not None:
            rows.append(
                ("- of which installing uv, then the operator and the test kit", minutes(install), "")
            )
            rows.append(("- of which the walk-through itself", minutes(sandbox.seconds - install), ""))
    test = results.get("make test")
    if test:
        rows.append(("`make test`, from nothing", minutes(test.seconds), verdict("make test", test)))
        lint, pytest = test.marks.get("lint"), test.marks.get("pytest")
        if lint is not None:
            rows.append(
                ("- of which installing uv, then the dev venv and the tools in parallel", minutes(lint), "")
            )
        if lint is not None and pytest is not None:
            rows.append(("- of which lint and strict types", minutes(pytest - lint), ""))
        if pytest is not None:
            rows.append(("- of which pytest", minutes(test.seconds - pytest), test.summary))
    for name, (value, remark) in sizes.items():
        rows.append((name, value, remark))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    header = (
        f"Measured {when} on commit `{commit}`, {machine}{note}: each command in a fresh `git clone` with "
        "empty uv, npm and pip caches, so every package is downloaded. Refreshed by "
        f"`python3 {SCRIPT}` (`--skip-test` for the sandbox only, `--dry-run` to print without writing)."
    )
    return "\n".join([START, header, "", *lines, END])


def rewrite_readme(section: str) -> None:
    text = README.read_text()
    if START not in text or END not in text or text.index(START) > text.index(END):
        raise SystemExit(f"README.md has no {START} ... {END} section to rewrite")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    README.write_text(before + section + after)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-test", action="store_true", help="measure make sandbox only")
    parser.add_argument("--dry-run", action="store_true", help="print the README section, do not write it")
    parser.add_argument("--note", default="", help="added after the machine, e.g. 'shared with other work'")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clones and logs")
    parser.add_argument("--timeout", type=float, default=45 * 60, help="seconds allowed per make command")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="chpl-measure-"))
    say(f"working in {work} (logs: {work}/*.log)")
    cores = os.cpu_count() or 0
    with contextlib.suppress(OSError, subprocess.CalledProcessError, ValueError):
        cores = int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout)
    load_before = loadavg()
    results: dict[str, Run] = {}
    sizes: dict[str, tuple[str, str]] = {}
    try:
        sandbox_dir = work / "sandbox"
        commit = clone(ROOT, sandbox_dir)
        say(f"make sandbox in a fresh clone of {commit}")
        results["make sandbox"] = run = timed(
            ["make", "sandbox"],
            sandbox_dir,
            fresh_env(work / "cache-sandbox"),
            work / "make-sandbox.log",
            {"walk": "clickhouse-privatelink-testkit sandbox"},
            args.timeout,
        )
        say(f"make sandbox: {minutes(run.seconds)}, exit {run.returncode}, last line: {run.last_line}")
        sandbox_venv = du_kib(sandbox_dir / ".venv")
        sandbox_downloads = du_kib(work / "cache-sandbox")

        measured_from = sandbox_dir
        if not args.skip_test:
            test_dir = work / "test"
            clone(ROOT, test_dir)
            say("make test in a second fresh clone")
            results["make test"] = run = timed(
                ["make", "test"],
                test_dir,
                fresh_env(work / "cache-test"),
                work / "make-test.log",
                {"lint": "ruff check operator", "pytest": "/pytest -q"},
                args.timeout,
            )
            say(f"make test: {minutes(run.seconds)}, exit {run.returncode}, last line: {run.last_line}")
            measured_from = test_dir
            test_downloads = du_kib(work / "cache-test")

        runtime = runtime_tree_kib(measured_from, fresh_env(work / "cache-runtime"), work)
        sizes["downloaded by `make sandbox`"] = (mib(sandbox_downloads), "its caches afterwards, from empty")
        if not args.skip_test:
            sizes["downloaded by `make test`"] = (mib(test_downloads), "its caches afterwards, from empty")
        sizes["the operator's runtime tree"] = (
            mib(runtime),
            "`requirements/runtime.txt` + the operator, as the image",
        )
        sizes["`make sandbox`'s .venv"] = (mib(sandbox_venv), "operator + test kit")
        if not args.skip_test:
            dev, tools = du_kib(test_dir / ".venv"), du_kib(test_dir / ".tools")
            share = f"the runtime tree is {100 * runtime / (dev + tools):.0f} % of .venv + .tools"
            sizes["`make test`'s .venv"] = (mib(dev), "the whole dev environment")
            sizes["`make test`'s .tools"] = (mib(tools), f"uv, kubectl, helm, hadolint, checkov; {share}")
    finally:
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    note = f"; {args.note}" if args.note else ""
    machine = (
        f"{cores} cores (`nproc`), {platform.machine()}, Python {platform.python_version()}, "
        f"load average {load_before} before and {loadavg()} after"
    )
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    section = render(results, sizes, commit, machine, note, when)
    print(section)
    if not args.dry_run:
        rewrite_readme(section)
        say("README.md rewritten between the measurement markers")
    return 0 if all(r.returncode == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
