"""The benchmark harness end to end at a small N: it runs, and its JSON document has every figure, sane.

Not the performance targets (those are ``make bench``'s job at N=1000): only that the harness measures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
N = 5

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    cmd = [sys.executable, "-m", "benchmarks.run", "--sizes", str(N), "--no-plot", "--report-only"]
    cmd += ["--out", str(out), "--drift-interval", "3", "--drift-periods", "1", "--min-timeout", "40"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def test_every_resource_became_ready_and_went(report: tuple[dict[str, Any], str]) -> None:
    doc, _ = report
    assert doc["errors"] == {}
    r = doc["results"][str(N)]
    assert r["creation"]["all_ready"] and r["creation"]["ready"] == N
    assert 0 < r["creation"]["time_to_all_ready_seconds"] <= r["creation"]["timeout_seconds"]
    assert r["creation"]["floor_seconds"] > 0 and r["creation"]["ratio_to_floor"] > 0
    assert r["deletion"]["all_deleted"] and r["deletion"]["deleted"] == N
    assert 0 < r["deletion"]["time_to_all_deleted_seconds"] <= r["deletion"]["timeout_seconds"]
    timeline = r["creation"]["timeline"]
    assert timeline[-1][1] == N
    assert [k for _, k in timeline] == sorted(k for _, k in timeline)


def test_calls_are_counted_per_api_and_operation(report: tuple[dict[str, Any], str]) -> None:
    doc, _ = report
    cr = doc["results"][str(N)]["creation"]
    assert cr["clickhouse"]["calls"] >= cr["clickhouse_minimum_calls"] - 2 > 0
    # Every resource is put on its own service's allow list: one PATCH (or more) per service.
    assert cr["clickhouse"]["by_operation"].get("PATCH service", 0) >= N
    assert cr["aws"]["calls"] > 0
    assert cr["aws"]["by_operation"].get("ec2/CreateVpcEndpoint", 0) >= 1
    assert cr["kubernetes"]["writes"] > 0
    per = cr["per_resource"]
    assert per["clickhouse_calls"] == pytest.approx(cr["clickhouse"]["calls"] / N, abs=0.01)
    assert doc["results"][str(N)]["deletion"]["clickhouse"]["calls"] > 0


def test_steady_state_throttling_and_process_figures(report: tuple[dict[str, Any], str]) -> None:
    doc, stdout = report
    r = doc["results"][str(N)]
    per_period = r["steady"]["per_period"]
    for key in ("external_calls", "clickhouse_writes", "aws_writes", "kubernetes_writes", "cpu_seconds"):
        assert per_period[key] >= 0, key
    th = r["throttling"]
    assert th["clickhouse_429"] >= 0 and set(th["aws_throttled_by_standin"]) == {"ec2", "route53"}
    assert th["surfaced_in_conditions"] >= 0
    op = r["operator"]
    assert 10 < op["peak_rss_mib"] < 4096
    assert op["cpu_seconds_total"] > 0
    # CPU per resource per phase: the phase's CPU seconds over N, in milliseconds.
    for phase in ("creation", "deletion"):
        assert op[f"cpu_ms_per_resource_{phase}"] == pytest.approx(
            1000 * op[f"cpu_seconds_{phase}"] / N, abs=0.01
        ), phase
        # The yardstick: the operator's CPU over the Kubernetes stand-in's, which served the phase's requests.
        standins = r[phase]["standin_cpu_seconds"]
        assert set(standins) == {"kubernetes", "clickhouse", "aws"} and standins["kubernetes"] > 0, phase
        ratio = op[f"cpu_ratio_to_kubernetes_standin_{phase}"]
        assert ratio == pytest.approx(op[f"cpu_seconds_{phase}"] / standins["kubernetes"], abs=0.01), phase
    assert "per resource: creation " in stdout and "the Kubernetes stand-in's CPU" in stdout


def test_targets_are_reported_with_a_verdict_each(report: tuple[dict[str, Any], str]) -> None:
    doc, stdout = report
    names = [t["name"] for t in doc["targets"]]
    assert len(names) == 10
    assert "N=1000 operator CPU per resource <= 10 ms (creation and deletion)" in names
    assert {t["verdict"] for t in doc["targets"]} <= {"PASS", "FAIL", "SKIP"}
    # The N=1000 and N=100 targets cannot be judged at N=5: they say so rather than pass.
    assert all(t["verdict"] == "SKIP" for t in doc["targets"] if "1000" in t["name"])
    for t in doc["targets"]:
        assert f"{t['verdict']} {t['name']}" in stdout
