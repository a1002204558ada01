"""The agent's recovery_timeout bounds how long a restarted agent waits for its executors."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from mesoslite.agent.config import AgentConfig
from mesoslite.protocol import FrameworkInfo, Reason, TaskState
from mesoslite.scheduler import SchedulerDriver
from tests.support.cluster_procs import AgentProc, ProcCluster
from tests.support.frameworks import RecordingScheduler, shell_task
from tests.support.procs import pid_alive, read_pid, wait_for

pytestmark = pytest.mark.integration

RESOURCES = "cpus:4;mem:1024;disk:1000;ports:[31000-31010]"
TASK = "cpus:0.1;mem:16"


def test_recovery_timeout_defaults_to_mesos_fifteen_minutes() -> None:
    """recovery_timeout is a configured agent field with Mesos's default of 15 minutes."""
    assert AgentConfig().recovery_timeout == 900.0
    with pytest.raises(ValueError, match="recovery_timeout"):
        AgentConfig(recovery_timeout=0)


def test_executor_silent_past_the_recovery_timeout_is_given_up_and_reported(
        tmp_path: Path) -> None:
    """A restarted agent whose executor cannot re-register gives it up after recovery_timeout
    (not the longer executor_reregistration_timeout), kills it, reports its task and
    re-registers with the master."""
    with ProcCluster(tmp_path / "cluster") as cluster:
        master = cluster.start_master()
        agent = cluster.add_agent(RESOURCES)
        scheduler = RecordingScheduler()
        info = FrameworkInfo(user="", name="stuck", checkpoint=True, failover_timeout=60.0)
        driver = SchedulerDriver(scheduler, info, master.address,
                                 registration_backoff_factor=0.2)
        driver.start()
        host: psutil.Process | None = None
        try:
            offer = scheduler.take_held(agent.agent_id)
            pid_file = tmp_path / "stuck.pid"
            driver.launch_tasks([offer.id], [shell_task("stuck", agent.agent_id, TASK,
                                                        f"echo $$ > {pid_file}; exec sleep 600")])
            scheduler.wait_state("stuck", TaskState.TASK_RUNNING)
            pid = wait_for(lambda: read_pid(pid_file), timeout=10, what="pid of the task")
            host = psutil.Process(pid).parent()
            assert host is not None and "mesoslite.executor.command" in " ".join(host.cmdline())
            agent.kill9()
            os.kill(host.pid, signal.SIGSTOP)  # alive, but it cannot re-register
            started = time.monotonic()
            restarted = AgentProc(master, agent.work_dir, tmp_path / "cluster" / "agent-0b.log",
                                  {"resources": RESOURCES, "recovery_timeout": 1.0,
                                   "executor_reregistration_timeout": 60.0})
            cluster.agents.append(restarted)
            assert restarted.agent_id == agent.agent_id
            assert time.monotonic() - started < 30.0  # not the 65 s reregistration window
            status = scheduler.wait_state("stuck", TaskState.TASK_FAILED, timeout=30)
            assert status.reason is Reason.REASON_EXECUTOR_REREGISTRATION_TIMEOUT
            wait_for(lambda: not pid_alive(pid), timeout=10, what="the task killed")
        finally:
            if host is not None and pid_alive(host.pid):
                os.kill(host.pid, signal.SIGCONT)
            driver.stop()
            driver.join()
