"""The chaos suite's shared summary: counters each chaos test records, printed as one line at the end.

Each chaos test (faults, kills, drift, bad input) adds its counts with :func:`record`; secrets used in the
session are remembered with :func:`remember_secret` and, after the e2e package, searched for in the
operator's logs, all Events, every resource's status and /metrics (``secrets exposed``). The line::

    faults: N, kills: N, crash points: N, drifts repaired: N, bad inputs: N, policy refusals: N,
    foreign objects changed: 0, leaked: 0, stuck finalizers: 0, secrets exposed: 0

(``policy refusals``: resources the tenancy policy or the Secret opt-in refused before any external call.)

is printed by ``pytest_terminal_summary`` (imported into tests/e2e/conftest.py) when a chaos test ran, and
the counters are written as JSON to ``chaos-summary.json`` in pytest's base temporary directory.

Scale: ``CHPL_CHAOS_RESOURCES`` (fault test), ``CHPL_CHAOS_KILLS`` (kill test), ``CHPL_CHAOS_EXAMPLES``
(bad-input examples), ``CHPL_CHAOS_SEED`` (every seeded RNG); the defaults are the short pass of the test
command, ``make chaos`` runs the full one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

SEED = int(os.environ.get("CHPL_CHAOS_SEED", "20261129"))

FIELDS = (
    "faults",
    "kills",
    "crash points",
    "drifts repaired",
    "bad inputs",
    "policy refusals",
    "foreign objects changed",
    "leaked",
    "stuck finalizers",
    "secrets exposed",
)


class ChaosReport:
    """Counters summed over the session; ``ran`` once any chaos test recorded something."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(FIELDS, 0)
        self.details: dict[str, Any] = {}
        self.secrets: set[str] = set()
        self.ran = False
        self.json_path: Path | None = None

    def record(self, **counts: int) -> None:
        """Add counts; keyword names use underscores for spaces (``drifts_repaired=1``)."""
        self.ran = True
        for name, value in counts.items():
            key = name.replace("_", " ")
            if key not in self.counts:
                raise KeyError(f"unknown chaos counter {key!r}; one of {FIELDS}")
            self.counts[key] += int(value)

    def detail(self, name: str, value: Any) -> None:
        """Extra facts for the JSON file (e.g. injected faults by kind)."""
        self.details[name] = value

    def remember_secret(self, secret: str) -> None:
        if secret and len(secret) >= 8:  # a short value would match by chance
            self.secrets.add(secret)

    def line(self) -> str:
        return ", ".join(f"{name}: {self.counts[name]}" for name in FIELDS)

    def as_json(self) -> dict[str, Any]:
        return {**self.counts, "details": self.details, "secrets checked": len(self.secrets)}

    def write(self, directory: Path) -> Path:
        path = directory / "chaos-summary.json"
        path.write_text(json.dumps(self.as_json(), indent=2, sort_keys=True, default=str))
        self.json_path = path
        return path


REPORT = ChaosReport()


def record(**counts: int) -> None:
    REPORT.record(**counts)


def remember_secret(secret: str) -> None:
    REPORT.remember_secret(secret)


def exposures(texts: dict[str, str], secrets: set[str]) -> dict[str, int]:
    """How many times any secret appears in each named text (only the non-zero ones)."""
    hits: dict[str, int] = {}
    for where, text in texts.items():
        n = sum(text.count(s) for s in secrets)
        if n:
            hits[where] = n
    return hits


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not REPORT.ran:
        return
    terminalreporter.section("chaos summary")
    if REPORT.json_path is not None:
        terminalreporter.write_line(f"chaos counters: {REPORT.json_path}")
    terminalreporter.write_line(REPORT.line())
