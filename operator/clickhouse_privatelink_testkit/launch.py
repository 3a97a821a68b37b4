"""Start a stand-in (or the operator) as its own process and read the URL it prints."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO


def start_standin(
    which: str,
    args: Sequence[str] = (),
    *,
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[subprocess.Popen[str], str]:
    """Run ``clickhouse-privatelink-testkit standin WHICH`` on a free port; return the process and its URL."""
    proc = spawn_standin(which, ["--port", "0", *args], log_path=log_path, env=env)
    return proc, serving_url(proc, which, log_path=log_path, timeout=timeout)


def spawn_standin(
    which: str,
    args: Sequence[str] = (),
    *,
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start ``clickhouse-privatelink-testkit standin WHICH ARGS`` without waiting for it (see ``serving_url``)."""
    cmd = [sys.executable, "-m", "clickhouse_privatelink_testkit", "standin", which, *args]
    stderr: IO[str] | int = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env={**os.environ, **(env or {})}
    )


def serving_url(
    proc: subprocess.Popen[str], which: str, *, log_path: Path | None = None, timeout: float = 60.0
) -> str:
    """Wait until a spawned stand-in says where it serves; its URL."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(
                f"{which} stand-in exited with code {proc.wait()} before serving (log: {log_path})"
            )
        if " serving on " in line:
            return line.rsplit(" ", 1)[-1].strip()
    stop_process(proc)
    raise RuntimeError(f"{which} stand-in did not start within {timeout:.0f} s")


def stop_process(proc: subprocess.Popen[str], *, timeout: float = 15.0) -> None:
    """Terminate a child process, killing it if it does not exit promptly."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
