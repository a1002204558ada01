"""docs/grafana-dashboard.json: a well-formed Grafana dashboard whose queries name real metrics.

The metric names come from the text the processes' own renderers emit (the master's
snapshot and histograms, the agent's per-container series, the framework's
``/metrics/prometheus``), so a renamed metric breaks this test, not the dashboard.
tests/integration/test_prometheus_scrape.py also evaluates every query in a real
Prometheus.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from frameworks.marathon.wire import prometheus as marathon_prometheus
from mesoslite.agent.views import CONTAINER_SERIES, containers_prometheus_text
from mesoslite.master import metrics
from mesoslite.promtext import (
    DURATION_BUCKETS,
    LATENCY_BUCKETS,
    HistogramFamily,
    RequestTimings,
    RouteTable,
    metric_names,
)
from mesoslite.testing.harness import Harness

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
#: PromQL words that are not metric names.
KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                      "and", "or", "unless", "offset", "le", "inf", "nan"})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w$.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:]|\s*\()")


def declared_text() -> str:
    """The text the master, agent and framework renderers emit (every family declared)."""
    state = Harness().state
    master = metrics.prometheus_text(metrics.snapshot(
        state, elected=True, uptime=1.0, messages_received=0, messages_by_type={},
        decode_errors=0, transport_dropped=0, allocation_runs=0, allocation_run_ms=0.0,
        event_queue_dispatches=0))
    master += metrics.histograms_text(state.launch_to_running, state.offer_round_trip)
    master += RequestTimings(metrics.HTTP_METRIC, RouteTable([])).text()
    stats = {key: 1.0 for key, *_ in CONTAINER_SERIES}
    agent = containers_prometheus_text([{"framework_id": "f", "executor_id": "e",
                                         "container_id": "c", "statistics": stats}], [])
    framework = marathon_prometheus.prometheus_text(
        {}, {}, HistogramFamily(DURATION_BUCKETS, ("outcome",)))
    framework += RequestTimings(marathon_prometheus.HTTP_METRIC, RouteTable([]),
                                LATENCY_BUCKETS).text()
    return master + agent + framework


def expr_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (labels, functions, keywords dropped)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)       # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)      # range selectors
    text = _GROUPING.sub("", text)
    return {name for name in _IDENT.findall(text)
            if name.lower() not in KEYWORDS and not re.fullmatch(r"[\d.e]+", name)}


def family(name: str) -> str:
    """A histogram sample's family (``x_bucket`` -> ``x``)."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def _panels() -> list[dict[str, Any]]:
    return json.loads(DASHBOARD.read_text())["panels"]


def test_the_expression_reader_finds_names() -> None:
    """The reader keeps metric names and drops functions, groupings, labels and ranges."""
    expr = ('histogram_quantile(0.99, sum by (le, route) (rate(a_seconds_bucket{job="x"}'
            '[$__rate_interval]))) / on(instance) b_total and c == 1')
    assert expr_metric_names(expr) == {"a_seconds_bucket", "b_total", "c"}


def test_dashboard_is_a_grafana_dashboard() -> None:
    """Schema fields Grafana needs; unique panel ids; every target has a refId and expr."""
    dashboard = json.loads(DASHBOARD.read_text())
    for field in ("title", "uid", "schemaVersion", "panels", "templating", "time"):
        assert field in dashboard, field
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 30
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in dashboard["panels"]:
        assert panel["type"] in {"row", "timeseries", "stat"}, panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel.get("targets", []):
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, (panel["title"], used - variables)


@pytest.mark.parametrize("panel", [p for p in _panels() if p.get("targets")],
                         ids=lambda p: p["title"])
def test_every_query_names_metrics_the_processes_emit(panel: dict[str, Any]) -> None:
    """Each panel's PromQL selects only metric families the renderers declare."""
    text = declared_text()
    declared = metric_names(text)
    histograms = set(re.findall(r"^# TYPE (\S+) histogram$", text, re.MULTILINE))
    for target in panel["targets"]:
        names = expr_metric_names(target["expr"])
        assert names, target["expr"]
        missing = {n for n in names if n not in declared and family(n) not in histograms}
        assert not missing, f"{panel['title']}: {sorted(missing)} not emitted"


def test_the_dashboard_covers_what_the_issue_asks() -> None:
    """Cluster resources, per-task memory/cpu, both latency histograms, deployments."""
    exprs = " ".join(t["expr"] for p in _panels() for t in p.get("targets", []))
    for name in ("mesoslite_master_cpus_total", "mesoslite_container_memory_rss_bytes",
                 "mesoslite_container_cpu_user_seconds_total",
                 ("histogram_quantile(0.99, sum by (le) (rate("
                  "mesoslite_master_task_launch_to_running_seconds_bucket"),
                 "mesoslite_master_offer_round_trip_seconds_bucket",
                 "mesoslite_marathon_deployment_duration_seconds_bucket",
                 "mesoslite_marathon_deployments"):
        assert name in exprs, name
