"""``--log_format json`` on every process: master, agent, executor and the framework.

A real master, agent and Marathon-style framework started with ``MESOSLITE_LOG_FORMAT=json``
(the environment form of ``--log_format json``) run one app; every line each process logs
is one JSON object with time, level, process, logger and message, and the ids are there:
the agent's id on the agent's lines, the framework id on the framework's, the task's ids on
the master's launch line, and the command executor (which inherits the format) stamps its
framework id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.marathon_procs import MarathonCluster, shell_app

pytestmark = pytest.mark.integration


def _json_lines(text: str, process: str) -> list[dict[str, Any]]:
    """Every logged line of ``text`` as JSON (the one address line a process prints aside)."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(f"mesoslite {process}:"):
            continue
        record = json.loads(line)  # fails the test on a line that is not JSON
        assert {"time", "level", "process", "pid", "logger", "message"} <= set(record), record
        assert record["process"] == process and record["time"].endswith("Z")
        out.append(record)
    assert out, f"no log lines from {process}"
    return out


def test_every_process_logs_one_json_object_per_line(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Master, agent, marathon and executor lines parse as JSON and carry the known ids."""
    monkeypatch.setenv("MESOSLITE_LOG_FORMAT", "json")
    with MarathonCluster(tmp_path, agents=1) as cluster:
        cluster.client.ok("POST", "/v2/apps", shell_app("/logs/web"), expect=201)
        [task] = cluster.client.wait_tasks("/logs/web", 1, healthy=True)
        agent = cluster.agents[0]
        master_lines = _json_lines(cluster.master.proc.output(), "master")
        agent_lines = _json_lines(agent.proc.output(), "agent")
        marathon_lines = _json_lines(cluster.marathon_proc.proc.output(), "marathon")

        assert any(r.get("agent_id") == agent.agent_id for r in agent_lines)
        assert any(r.get("framework_id") == cluster.framework_id for r in marathon_lines)
        launch = [r for r in master_lines if r.get("task_id") == task["id"]]
        assert launch and launch[0]["framework_id"] == cluster.framework_id
        assert any(r.get("agent_id") == agent.agent_id for r in launch)

        [host] = agent.work_dir.glob(
            "agents/*/frameworks/*/executors/mesoslite.command-host/runs/latest")
        executor_lines = _json_lines((host / "stderr").read_text(), "executor")
        assert all(r["framework_id"] == cluster.framework_id for r in executor_lines)
