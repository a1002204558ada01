"""The v1 executor API across an agent restart, with real processes: a v1 executor
written only with http.client keeps running while the agent is SIGKILLed and restarted
on the same work directory and port, SUBSCRIBEs again with the update the agent never
acknowledged, is recovered, and its later updates reach the scheduler."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

from mesoslite.protocol import (
    CommandInfo,
    ExecutorInfo,
    FrameworkInfo,
    TaskInfo,
    TaskState,
)
from mesoslite.resources import Resources
from mesoslite.scheduler import SchedulerDriver
from tests.support.cluster_procs import AgentProc, ProcCluster
from tests.support.frameworks import RecordingScheduler
from tests.support.procs import pid_alive, wait_for

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[1] / "support" / "v1_executor.py"
RESOURCES = "cpus:2;mem:1024;disk:1000;ports:[31000-31010]"


def executor_pids(root: Path) -> list[int]:
    """Pids of the v1 executor's python (not its shell) running in a sandbox under ``root``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        if (proc.info["cmdline"] or [])[:2] == [sys.executable, str(SCRIPT)] \
                and str(root) in (proc.info["cwd"] or ""):
            found.append(proc.pid)
    return found


def executor_lines(agent: AgentProc) -> list[str]:
    """What the executor printed so far (its sandbox's stdout)."""
    [stdout] = agent.work_dir.glob("agents/*/frameworks/*/executors/v1-ex/runs/latest/stdout")
    return stdout.read_text().splitlines()


def test_http_executor_resubscribes_with_unacknowledged_update_after_agent_restart(
        tmp_path: Path) -> None:
    """TASK_RUNNING of two tasks is acknowledged; the agent is SIGKILLed; one task's
    TASK_FINISHED is produced while the agent is down and goes with the re-SUBSCRIBE; the
    restarted agent recovers the same executor process, forwards that update, and a later
    UPDATE of the other task reaches the scheduler too."""
    early, late = tmp_path / "early.done", tmp_path / "late.done"
    with ProcCluster(tmp_path / "cluster") as cluster:
        master = cluster.start_master()
        agent = cluster.add_agent(RESOURCES)
        scheduler = RecordingScheduler()
        info = FrameworkInfo(user="", name="v1-exec-restart", checkpoint=True,
                             failover_timeout=60.0)
        driver = SchedulerDriver(scheduler, info, master.address,
                                 registration_backoff_factor=0.2)
        driver.start()
        try:
            executor = ExecutorInfo(executor_id="v1-ex", name="v1 executor",
                                    command=CommandInfo(value=f"{sys.executable} {SCRIPT}"),
                                    resources=Resources.parse("cpus:0.1;mem:32"))
            tasks = [TaskInfo(name=name, task_id=name, agent_id=agent.agent_id,
                              resources=Resources.parse("cpus:0.1;mem:16"),
                              executor=executor, data=str(path).encode())
                     for name, path in (("early", early), ("late", late))]
            offer = scheduler.take_held(agent.agent_id)
            driver.launch_tasks([offer.id], tasks)
            for task in tasks:
                scheduler.wait_state(task.task_id, TaskState.TASK_RUNNING, timeout=60)
            wait_for(lambda: {"acknowledged early", "acknowledged late"}
                     <= set(executor_lines(agent)), timeout=30,
                     what="the agent acknowledged both TASK_RUNNING to the executor")
            [pid] = wait_for(lambda: executor_pids(tmp_path), timeout=10,
                             what="the executor's process")

            http_port = agent.http_port
            agent.kill9()
            early.touch()
            wait_for(lambda: "update queued TASK_FINISHED" in executor_lines(agent),
                     timeout=30, what="the executor queued TASK_FINISHED (agent down)")
            assert scheduler.first("early", TaskState.TASK_FINISHED) is None

            restarted = AgentProc(master, agent.work_dir, tmp_path / "cluster" / "agent-0b.log",
                                  {"resources": RESOURCES, "http_port": http_port,
                                   "executor_reregistration_timeout": 30})
            cluster.agents.append(restarted)
            assert restarted.agent_id == agent.agent_id

            scheduler.wait_state("early", TaskState.TASK_FINISHED, timeout=60)
            lines = executor_lines(restarted)
            answered = [i for i, line in enumerate(lines) if line == "subscribed"]
            assert len(answered) == 2, lines
            assert lines[answered[1] - 1] == "subscribe tasks=0 updates=1", lines
            assert pid_alive(pid) and executor_pids(tmp_path) == [pid]
            assert scheduler.first("late", TaskState.TASK_FINISHED) is None
            assert "late" in master.tasks_in_state(scheduler.framework_id, "TASK_RUNNING")

            late.touch()
            scheduler.wait_state("late", TaskState.TASK_FINISHED, timeout=60)
            assert [s.state for s in scheduler.statuses("late")] == [
                TaskState.TASK_RUNNING, TaskState.TASK_FINISHED]
            assert pid_alive(pid)
        finally:
            driver.stop()
            driver.join()
