"""The chart's optional monitoring: the PrometheusRule's alerts and the Grafana dashboard, checked the way
promtool and Grafana would read them (every PromQL expression parsed by promql-parser, every metric and label
they name exported by operator/clickhouse_privatelink/metrics.py, the rule and dashboard structure), and the
`helm test` Pod."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import promql_parser
import pytest
from prometheus_client import REGISTRY

from clickhouse_privatelink import metrics
from tests.packaging.support import CHART, NAMESPACE, RELEASE, Manifest, of_kind, render, the_one

FULLNAME = f"{RELEASE}"  # the release is named like the chart: the full name is the release's
MONITORED = {"metrics": {"prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}}}
# Labels Prometheus adds to every scraped series (the ServiceMonitor's target labels).
TARGET_LABELS = {"job", "namespace", "pod", "instance", "service", "container", "endpoint"}
ISSUE_ALERTS = {
    "ChplNoActiveReplica",
    "ChplResourcesNotReady",
    "ChplClickHouseNearRateBudget",
    "ChplClickHouseThrottled",
    "ChplAwsThrottled",
    "ChplCleanupStuck",
}


@functools.cache
def exported() -> dict[str, set[str]]:
    """Every series name the operator exports -> its label names (from the live registry, by metric type)."""
    suffixes = {
        "counter": ["_total", "_created"],
        "gauge": [""],
        "histogram": ["_bucket", "_count", "_sum", "_created"],
        "info": ["_info"],
    }
    declared = {m._name: set(m._labelnames) for m in vars(metrics).values() if hasattr(m, "_labelnames")}
    series: dict[str, set[str]] = {}
    for family in REGISTRY.collect():
        if not family.name.startswith("chpl_"):
            continue
        labels = {label for sample in family.samples for label in sample.labels} | declared.get(
            family.name, set()
        )
        for suffix in suffixes[family.type]:
            series[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return series


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """The metric names and label names an expression selects on (parsing it on the way)."""
    found: list[tuple[str, set[str]]] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            found.append((node.name, {m.name for m in node.matchers.matchers}))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def grouping_labels(expr: str) -> set[str]:
    return {label.strip() for group in re.findall(r"\bby \(([^)]*)\)", expr) for label in group.split(",")}


def assert_names_exported(expr: str) -> None:
    found = selectors(expr)
    assert found, f"selects nothing: {expr}"
    for name, labels in found:
        assert name in exported(), f"{name} is not a metric of metrics.py: {expr}"
        unknown = labels - exported()[name] - TARGET_LABELS
        assert unknown == set(), f"{name} has no label {unknown}: {expr}"
    for label in grouping_labels(expr):
        assert any(label in exported()[name] | TARGET_LABELS for name, _ in found), (label, expr)


def prometheus_rule(values: dict[str, Any]) -> Manifest:
    return the_one(render(values), "PrometheusRule")


def rules(values: dict[str, Any] = MONITORED) -> list[dict[str, Any]]:
    return [rule for group in prometheus_rule(values)["spec"]["groups"] for rule in group["rules"]]


def test_the_monitoring_is_optional_and_off_by_default() -> None:
    manifests = render({})
    assert of_kind(manifests, "PrometheusRule") == []
    assert [m for m in of_kind(manifests, "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")] == []
    # Without metrics there is nothing to alert on or to show.
    off = render({**MONITORED, "metrics": {**MONITORED["metrics"], "enabled": False}})
    assert of_kind(off, "PrometheusRule") == []
    assert [m for m in of_kind(off, "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")] == []


def test_the_alerts_the_operator_needs_are_there_once_each() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    assert set(names) >= ISSUE_ALERTS


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_each_rule_is_what_promtool_accepts(rule: dict[str, Any]) -> None:
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
    promql_parser.parse_duration(rule["for"])  # raises on a bad duration
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    assert_names_exported(rule["expr"])
    # Alert templates may only name labels the expression keeps.
    for text in rule["annotations"].values():
        for label in re.findall(r"\$labels\.(\w+)", text):
            assert label in grouping_labels(rule["expr"]), (rule["alert"], label)
        assert "{{" not in text.replace("{{ $", "").replace("{{$", ""), (
            "a Helm template leaked into the alert"
        )


def test_rules_select_this_releases_series_or_the_given_selector() -> None:
    for rule in rules():
        for _, labels in selectors(rule["expr"]):
            assert {"job", "namespace"} <= labels, rule["alert"]
    assert f'job="{FULLNAME}",namespace="{NAMESPACE}"' in rules()[0]["expr"]
    chosen = {"metrics": {"prometheusRule": {"enabled": True, "selector": 'cluster="prod",app="chpl"'}}}
    for rule in rules(chosen):
        assert_names_exported(rule["expr"].replace('cluster="prod",app="chpl"', 'job="x"'))
        assert 'cluster="prod",app="chpl"' in rule["expr"]


def test_thresholds_follow_the_values_and_the_keys_budget() -> None:
    values = {
        "clickhouse": {"rateLimit": "20/10s"},
        "metrics": {
            "prometheusRule": {
                "enabled": True,
                "clickhouseBudgetShare": 0.5,
                "notReadyFor": "30m",
                "cleanupStuckAfterSeconds": 3600,
                "alertLabels": {"team": "platform"},
                "labels": {"release": "kube-prometheus-stack"},
            }
        },
    }
    by_name = {rule["alert"]: rule for rule in rules(values)}
    assert by_name["ChplClickHouseNearRateBudget"]["expr"].endswith("> 1")  # 0.5 x 20 per 10 s
    assert by_name["ChplResourcesNotReady"]["for"] == "30m"
    assert by_name["ChplCleanupStuck"]["expr"].endswith("> 3600")
    assert all(rule["labels"]["team"] == "platform" for rule in by_name.values())
    assert prometheus_rule(values)["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_the_values_schema_refuses_a_selector_that_is_not_promql_matchers() -> None:
    from tests.packaging.support import helm

    result = helm(
        "template", RELEASE, values={"metrics": {"prometheusRule": {"selector": "job=x} or vector(1"}}}
    )
    assert result.returncode != 0 and "selector" in result.stderr


# -- The Grafana dashboard ------------------------------------------------------------------------------------

DASHBOARD_FILE = CHART / "files" / "dashboards" / "clickhouse-privatelink-operator.json"
PANEL_TYPES = {"timeseries", "stat", "table", "gauge", "bargauge", "text"}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$clickhouse_budget": "1"}


def dashboard(values: dict[str, Any] = MONITORED) -> dict[str, Any]:
    (config_map,) = [
        m for m in of_kind(render(values), "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")
    ]
    (text,) = config_map["data"].values()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def substituted(expr: str, variables: set[str]) -> str:
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace(f"${name}", GRAFANA_VARIABLES.get(f"${name}", "x"))
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"an undefined variable in {expr}"
    return expr


def test_the_dashboard_file_is_the_one_the_config_map_carries() -> None:
    shipped = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    carried = dashboard()
    for variable in carried["templating"]["list"]:
        if variable["name"] == "clickhouse_budget":
            variable["query"], variable["current"] = "1", {"text": "1", "value": "1"}
    assert carried == shipped


def test_the_dashboard_has_grafanas_structure() -> None:
    board = dashboard()
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES and panel["title"], panel
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) and grid[k] >= 0 for k in "xywh")
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        assert panel["datasource"]["uid"] == "${datasource}"
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs))


def test_every_dashboard_query_parses_and_names_what_the_operator_exports() -> None:
    board = dashboard()
    variables = {v["name"] for v in board["templating"]["list"]}
    for panel in board["panels"]:
        for target in panel["targets"]:
            expr = substituted(target["expr"], variables)
            if target["expr"].startswith("vector("):
                promql_parser.parse(expr)
                continue
            assert_names_exported(expr)
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["query"]["query"])
            assert inner, variable["name"]
            assert_names_exported(substituted(inner.group(1), variables))


def test_the_dashboard_shows_what_an_operator_user_asks_for() -> None:
    titles = {panel["title"] for panel in dashboard()["panels"]}
    assert {
        "Ready by reason",
        "Reconcile latency",
        "ClickHouse calls against the key's budget",
        "Deletion backlog",
    } <= titles
    assert "Active replica" in titles


def test_the_dashboards_budget_is_the_keys_rate_limit_and_the_sidecar_finds_it() -> None:
    values = {
        "clickhouse": {"rateLimit": "30/10s"},
        "metrics": {
            "dashboard": {
                "enabled": True,
                "namespace": "monitoring",
                "annotations": {"grafana_folder": "Operators"},
            }
        },
    }
    board = dashboard(values)
    (budget,) = [v for v in board["templating"]["list"] if v["name"] == "clickhouse_budget"]
    assert float(budget["query"]) == 3.0
    (config_map,) = [
        m for m in of_kind(render(values), "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Operators"}
