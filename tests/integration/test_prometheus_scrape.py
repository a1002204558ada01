"""A real Prometheus scrapes a real master, agent and Marathon-style framework.

Debian's ``prometheus`` (installed by scripts/ensure-prometheus.sh; its system
service is never started) runs on a free loopback port with its configuration
and storage in the test's directory, scraping the master's and the agent's
``/metrics`` and the framework's ``/metrics/prometheus`` every second.  An app's
task's memory and cpu series, labelled with its framework, executor, task and app
ids, must become queryable through Prometheus's HTTP API; the master's
launch-to-RUNNING, offer round-trip and HTTP request histograms and the
framework's deployment-duration and HTTP request histograms must have counts and
answer quantiles; all three targets must be up (Prometheus accepted the text).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.marathon_procs import MarathonCluster
from tests.support.procs import Proc, free_port, get_json, wait_for

pytestmark = pytest.mark.integration


def scrape_config(master_url: str, agent_url: str, marathon_url: str) -> str:
    """A Prometheus configuration scraping the three processes every second."""
    def job(name: str, url: str, path: str = "/metrics") -> dict[str, Any]:
        return {"job_name": name, "metrics_path": path,
                "static_configs": [{"targets": [urllib.parse.urlsplit(url).netloc]}]}

    # JSON is YAML: no YAML writer needed.
    return json.dumps({"global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                                  "evaluation_interval": "1s"},
                       "scrape_configs": [job("mesoslite-master", master_url),
                                          job("mesoslite-agent", agent_url),
                                          job("mesoslite-marathon", marathon_url,
                                              "/metrics/prometheus")]})


@pytest.fixture
def prometheus_binary() -> str:
    """The prometheus binary (scripts/test.sh installs it)."""
    found = shutil.which("prometheus")
    assert found, "prometheus is missing: run scripts/ensure-prometheus.sh"
    return found


def start_prometheus(binary: str, root: Path, config: str) -> tuple[Proc, str]:
    """Start prometheus on a free loopback port; return it and its base URL once ready."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "prometheus.yml").write_text(config)
    port = free_port()
    proc = Proc([binary, f"--config.file={root / 'prometheus.yml'}",
                 f"--storage.tsdb.path={root / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}"], root / "prometheus.log")
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not proc.alive():
            raise AssertionError(f"prometheus exited:\n{proc.output()[-3000:]}")
        try:
            return get_json(base + "/api/v1/status/buildinfo")["status"] == "success"
        except OSError:
            return False

    wait_for(ready, timeout=60, what="prometheus answers its API")
    return proc, base


def query(base: str, expr: str) -> list[dict[str, Any]]:
    """The instant vector ``expr`` evaluates to in Prometheus now."""
    answer = get_json(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[MarathonCluster]:
    """A real master, one real agent and the real Marathon-style framework."""
    with MarathonCluster(tmp_path / "cluster", agents=1) as procs:
        yield procs


def _wait_query(base: str, expr: str, what: str) -> list[dict[str, Any]]:
    """The non-empty answer to ``expr`` once Prometheus has it (60 s deadline)."""
    return wait_for(lambda: query(base, expr), timeout=60, what=what)


def _check_master(base: str) -> None:
    """The master's gauges and its three histograms, as scraped."""
    running = _wait_query(base, "mesoslite_master_tasks_running == 1",
                          "the master's running-task gauge in Prometheus")
    assert running[0]["metric"]["job"] == "mesoslite-master"
    launches = query(base, "mesoslite_master_task_launch_to_running_seconds_count")
    assert float(launches[0]["value"][1]) == 1.0
    median = query(base, "histogram_quantile(0.5, "
                         "mesoslite_master_task_launch_to_running_seconds_bucket)")
    assert 0.0 < float(median[0]["value"][1]) <= 300.0
    accepted = query(base, 'mesoslite_master_offer_round_trip_seconds_count{answer="accept"}')
    assert float(accepted[0]["value"][1]) >= 1.0
    p99 = query(base, "histogram_quantile(0.99, sum by (le) "
                      "(mesoslite_master_offer_round_trip_seconds_bucket))")
    assert 0.0 < float(p99[0]["value"][1]) <= 60.0
    scrapes = _wait_query(base, 'mesoslite_master_http_request_duration_seconds_count'
                                '{route="/metrics",method="GET",code="2xx"} > 0',
                          "the master's request histogram counting its own scrapes")
    assert len(scrapes) == 1


def _check_framework(base: str) -> None:
    """The framework's gauges, counters and histograms, as scraped."""
    _wait_query(base, 'mesoslite_marathon_tasks_by_state{state="TASK_RUNNING"} == 1',
                "the framework's running tasks in Prometheus")
    assert float(query(base, "mesoslite_marathon_apps")[0]["value"][1]) == 1.0
    done = _wait_query(base, 'mesoslite_marathon_deployment_duration_seconds_count'
                             '{outcome="succeeded"} == 1', "the finished deployment")
    assert done[0]["metric"]["job"] == "mesoslite-marathon"
    matched = query(base, "mesoslite_marathon_offers_matched_total")
    assert float(matched[0]["value"][1]) >= 1.0
    posts = query(base, 'mesoslite_marathon_http_request_duration_seconds_count'
                        '{route="/v2/apps",method="POST"}')
    assert float(posts[0]["value"][1]) == 1.0
    quantile = query(base, "histogram_quantile(0.9, sum by (le) "
                           "(mesoslite_marathon_http_request_duration_seconds_bucket))")
    assert float(quantile[0]["value"][1]) > 0.0


def _check_dashboard(base: str) -> None:
    """Every query of docs/grafana-dashboard.json evaluates; the task panels show the task
    (at least one of each panel's queries has a series)."""
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs"
                            / "grafana-dashboard.json").read_text())
    values = {"$__rate_interval": "1m", "$master_job": "mesoslite-master",
              "$agent_job": "mesoslite-agent", "$marathon_job": "mesoslite-marathon"}
    empty = []  # panels none of whose queries has a series yet
    for panel in dashboard["panels"]:
        shown = False
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in values.items():
                expr = expr.replace(name, value)
            # query() asserts Prometheus accepted the expression; a rate() over a window
            # may still be empty after a single scrape, so a panel needs one series only.
            shown = bool(query(base, expr)) or shown
        if panel.get("targets") and not shown:
            empty.append(panel["title"])
    for title in ("Memory per task (RSS)", "CPUs: used / total", "Launch to TASK_RUNNING",
                  "Tasks by state", "Deployments"):
        assert title not in empty, (title, empty)


def test_prometheus_scrapes_the_cluster_and_the_framework(
        tmp_path: Path, cluster: MarathonCluster, prometheus_binary: str) -> None:
    """A task's memory, the master's and the framework's histograms are queryable; all up."""
    client = cluster.client
    client.ok("POST", "/v2/apps", {"id": "/scraped", "cmd": "echo up; sleep 300",
                                   "cpus": 0.1, "mem": 32, "instances": 1}, expect=201)
    [task] = client.wait_tasks("/scraped", 1)
    agent = cluster.agents[0]
    prom, base = start_prometheus(prometheus_binary, tmp_path / "prometheus",
                                  scrape_config(cluster.master.base_url, agent.base_url,
                                                client.base_url))
    try:
        selector = f'{{task_id="{task["id"]}",framework_id="{cluster.framework_id}"}}'
        rss = _wait_query(base, "mesoslite_container_memory_rss_bytes" + selector,
                          "the task's memory series in Prometheus")
        assert len(rss) == 1
        labels = rss[0]["metric"]
        assert labels["executor_id"] == task["id"]
        assert labels["app_id"] == "/scraped"
        assert labels["job"] == "mesoslite-agent"
        assert float(rss[0]["value"][1]) > 0
        cpu = query(base, "mesoslite_container_cpu_user_seconds_total" + selector)
        assert len(cpu) == 1 and float(cpu[0]["value"][1]) >= 0.0
        _check_master(base)
        _check_framework(base)
        _check_dashboard(base)
        up = wait_for(lambda: len(r := query(base, "up == 1")) == 3 and r, timeout=30,
                      what="all three targets up")
        assert {u["metric"]["job"] for u in up} == {"mesoslite-master", "mesoslite-agent",
                                                   "mesoslite-marathon"}
    finally:
        prom.stop()


def test_the_example_configuration_is_valid(prometheus_binary: str) -> None:
    """docs/prometheus.yml passes Prometheus's own configuration check."""
    promtool = Path(prometheus_binary).with_name("promtool")
    example = Path(__file__).resolve().parents[2] / "docs" / "prometheus.yml"
    done = subprocess.run([str(promtool), "check", "config", str(example)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
