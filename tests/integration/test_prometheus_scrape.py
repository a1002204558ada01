"""A real Prometheus scrapes a real master and agent running a task.

Debian's ``prometheus`` (installed by scripts/ensure-prometheus.sh; its system
service is never started) runs on a free loopback port with its configuration
and storage in the test's directory, scraping the master's and the agent's
``/metrics`` every second.  The task's memory and cpu series, labelled with its
framework, executor and task ids, must become queryable through Prometheus's
HTTP API, the master's launch-to-RUNNING histogram must answer a quantile, and
both targets must be up (Prometheus accepted the text format).
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

from mesoslite.protocol import TaskState
from tests.support.cluster_procs import ProcCluster
from tests.support.frameworks import RecordingScheduler, ShapeLauncher, running_framework
from tests.support.procs import Proc, free_port, get_json, wait_for

pytestmark = pytest.mark.integration


def scrape_config(master_url: str, agent_url: str) -> str:
    """A Prometheus configuration scraping ``master_url`` and ``agent_url`` every second."""
    def job(name: str, url: str) -> dict[str, Any]:
        return {"job_name": name, "metrics_path": "/metrics",
                "static_configs": [{"targets": [urllib.parse.urlsplit(url).netloc]}]}

    # JSON is YAML: no YAML writer needed.
    return json.dumps({"global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                                  "evaluation_interval": "1s"},
                       "scrape_configs": [job("mesoslite-master", master_url),
                                          job("mesoslite-agent", agent_url)]})


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
def cluster(tmp_path: Path) -> Iterator[ProcCluster]:
    """A real master and one real agent."""
    with ProcCluster(tmp_path / "cluster") as procs:
        procs.start_master()
        procs.add_agent("cpus:2;mem:1024;disk:1000")
        yield procs


def test_prometheus_scrapes_the_tasks_usage(tmp_path: Path, cluster: ProcCluster,
                                            prometheus_binary: str) -> None:
    """The running task's memory series is queryable in Prometheus; both targets are up."""
    master, agent = cluster.master, cluster.agents[0]
    assert master is not None
    launcher = ShapeLauncher("scraped", "cpus:0.1;mem:32", "echo up; sleep 300", limit=1)
    scheduler = RecordingScheduler(launcher)
    with running_framework(master.address, scheduler, "scraped"):
        scheduler.wait_state("scraped-1", TaskState.TASK_RUNNING)
        framework_id = scheduler.framework_id
        prom, base = start_prometheus(prometheus_binary, tmp_path / "prometheus",
                                      scrape_config(master.base_url, agent.base_url))
        try:
            selector = f'{{task_id="scraped-1",framework_id="{framework_id}"}}'
            rss = wait_for(lambda: query(base, "mesoslite_container_memory_rss_bytes" + selector),
                           timeout=60, what="the task's memory series in Prometheus")
            assert len(rss) == 1
            labels = rss[0]["metric"]
            assert labels["executor_id"] == "scraped-1"
            assert labels["job"] == "mesoslite-agent"
            assert float(rss[0]["value"][1]) > 0
            cpu = query(base, "mesoslite_container_cpu_user_seconds_total" + selector)
            assert len(cpu) == 1 and float(cpu[0]["value"][1]) >= 0.0
            running = wait_for(lambda: query(base, "mesoslite_master_tasks_running == 1"),
                               timeout=60, what="the master's running-task gauge in Prometheus")
            assert running[0]["metric"]["job"] == "mesoslite-master"
            launches = query(base, "mesoslite_master_task_launch_to_running_seconds_count")
            assert float(launches[0]["value"][1]) == 1.0
            median = query(base, "histogram_quantile(0.5, "
                                 "mesoslite_master_task_launch_to_running_seconds_bucket)")
            assert 0.0 < float(median[0]["value"][1]) <= 300.0
            up = wait_for(lambda: len(r := query(base, "up == 1")) == 2 and r, timeout=30,
                          what="both targets up")
            assert {u["metric"]["job"] for u in up} == {"mesoslite-master", "mesoslite-agent"}
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
