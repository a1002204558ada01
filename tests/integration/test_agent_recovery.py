"""Agent recovery (--recover=reconnect) with real processes: kill -9 the agent, restart it."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from mesoslite.protocol import FrameworkInfo, Reason, TaskState
from mesoslite.scheduler import SchedulerDriver
from tests.support.cluster_procs import AgentProc, ProcCluster
from tests.support.frameworks import RecordingScheduler, shell_task
from tests.support.procs import pid_alive, read_pid, wait_for

pytestmark = pytest.mark.integration

RESOURCES = "cpus:4;mem:1024;disk:1000;ports:[31000-31010]"
TASK = "cpus:0.1;mem:16"


def recovery_seconds(log: Path) -> float:
    """Seconds between the agent's "recovering" and "recovered (0 executors ...)" log lines."""
    stamps: dict[str, datetime] = {}
    for line in log.read_text(errors="replace").splitlines():
        match = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*Agent \S+ "
                         r"(recovering:|recovered \(0 executors)", line)
        if match:
            # (The log's local time; only the difference of two stamps is used.)
            stamps.setdefault(match.group(2), datetime.strptime(  # noqa: DTZ007
                match.group(1), "%Y-%m-%d %H:%M:%S,%f"))
    assert set(stamps) == {"recovering:", "recovered (0 executors"}, f"no recovery lines in {log}"
    return (stamps["recovered (0 executors"] - stamps["recovering:"]).total_seconds()


def test_agent_restart_reconnects_to_its_executors(tmp_path: Path) -> None:
    """After kill -9 and a restart the agent keeps its id and tasks and reports what ended."""
    pids = tmp_path / "pids"
    pids.mkdir()
    with ProcCluster(tmp_path / "cluster") as cluster:
        master = cluster.start_master()
        agent = cluster.add_agent(RESOURCES)
        scheduler = RecordingScheduler()
        info = FrameworkInfo(user="", name="recovery", checkpoint=True, failover_timeout=60.0)
        driver = SchedulerDriver(scheduler, info, master.address,
                                 registration_backoff_factor=0.2)
        driver.start()
        try:
            offer = scheduler.take_held(agent.agent_id)
            tasks = [
                shell_task(name, agent.agent_id, TASK,
                           f"echo $$ > {pids / name}; exec sleep {seconds}")
                for name, seconds in (("long-1", 600), ("long-2", 600), ("short", 5))
            ]
            driver.launch_tasks([offer.id], tasks)
            for task in tasks:
                scheduler.wait_state(task.task_id, TaskState.TASK_RUNNING)
            long_pids = {name: wait_for(lambda n=name: read_pid(pids / n), timeout=10,
                                        what=f"pid of {name}") for name in ("long-1", "long-2")}
            short_pid = wait_for(lambda: read_pid(pids / "short"), timeout=10, what="short pid")

            agent.kill9()
            wait_for(lambda: not pid_alive(short_pid), timeout=15,
                     what="the short task ending while the agent is down")
            assert scheduler.first("short", TaskState.TASK_FINISHED) is None

            restarted_log = tmp_path / "cluster" / "agent-0b.log"
            restarted = AgentProc(master, agent.work_dir, restarted_log, {"resources": RESOURCES})
            cluster.agents.append(restarted)
            assert restarted.agent_id == agent.agent_id
            assert all(pid_alive(pid) for pid in long_pids.values())
            # Surviving executors re-attach as soon as the new agent listens, not on their
            # next heartbeat (5 s apart): recovery ends well within a second.
            assert recovery_seconds(restarted_log) < 1.0

            scheduler.wait_state("short", TaskState.TASK_FINISHED, timeout=30)
            driver.reconcile_tasks(["long-1", "long-2"])

            def reconciled_running() -> bool:
                return all(
                    any(s.state is TaskState.TASK_RUNNING
                        and s.reason is Reason.REASON_RECONCILIATION
                        for s in scheduler.statuses(name))
                    for name in ("long-1", "long-2"))

            wait_for(reconciled_running, timeout=20, what="long tasks RUNNING on reconciliation")
            assert "long-1" in master.tasks_in_state(scheduler.framework_id, "TASK_RUNNING")

            driver.kill_task("long-1")
            scheduler.wait_state("long-1", TaskState.TASK_KILLED, timeout=30)
            wait_for(lambda: not pid_alive(long_pids["long-1"]), timeout=10,
                     what="long-1's process gone")
            assert pid_alive(long_pids["long-2"])
        finally:
            driver.stop()
            driver.join()


def _launch_sleeper(tmp_path: Path, cluster: ProcCluster, name: str
                    ) -> tuple[AgentProc, RecordingScheduler, SchedulerDriver, int]:
    """Start master, agent and a checkpointing framework running one ``sleep 600`` task."""
    master = cluster.start_master()
    agent = cluster.add_agent(RESOURCES)
    scheduler = RecordingScheduler()
    info = FrameworkInfo(user="", name=name, checkpoint=True, failover_timeout=60.0)
    driver = SchedulerDriver(scheduler, info, master.address, registration_backoff_factor=0.2)
    driver.start()
    offer = scheduler.take_held(agent.agent_id)
    pid_file = tmp_path / f"{name}.pid"
    driver.launch_tasks([offer.id], [shell_task(name, agent.agent_id, TASK,
                                                f"echo $$ > {pid_file}; exec sleep 600")])
    scheduler.wait_state(name, TaskState.TASK_RUNNING)
    pid = wait_for(lambda: read_pid(pid_file), timeout=10, what=f"pid of {name}")
    return agent, scheduler, driver, pid


def test_executor_that_died_meanwhile_fails_its_tasks(tmp_path: Path) -> None:
    """A command executor killed while the agent was down: its task is reported TASK_FAILED."""
    with ProcCluster(tmp_path / "cluster") as cluster:
        agent, scheduler, driver, pid = _launch_sleeper(tmp_path, cluster, "orphan")
        try:
            host = psutil.Process(pid).parent()
            assert host is not None and "mesoslite.executor.command" in " ".join(host.cmdline())
            agent.kill9()
            host.kill()
            wait_for(lambda: not pid_alive(host.pid), timeout=10, what="the executor gone")
            assert cluster.master is not None
            restarted = AgentProc(cluster.master, agent.work_dir,
                                  tmp_path / "cluster" / "agent-0b.log", {"resources": RESOURCES})
            cluster.agents.append(restarted)
            assert restarted.agent_id == agent.agent_id
            status = scheduler.wait_state("orphan", TaskState.TASK_FAILED, timeout=30)
            assert status.reason is Reason.REASON_EXECUTOR_TERMINATED
            wait_for(lambda: not pid_alive(pid), timeout=10, what="the orphaned task killed")
        finally:
            driver.stop()
            driver.join()


def test_changed_boot_id_registers_a_new_agent(tmp_path: Path) -> None:
    """After a (simulated) reboot the agent discards its checkpoint and gets a new id."""
    with ProcCluster(tmp_path / "cluster") as cluster:
        agent, _scheduler, driver, pid = _launch_sleeper(tmp_path, cluster, "rebooted")
        try:
            agent.kill9()
            (agent.work_dir / "meta" / "boot_id").write_text("another-boot")
            assert cluster.master is not None
            restarted = AgentProc(cluster.master, agent.work_dir,
                                  tmp_path / "cluster" / "agent-0b.log", {"resources": RESOURCES})
            cluster.agents.append(restarted)
            assert restarted.agent_id != agent.agent_id
            wait_for(lambda: not pid_alive(pid), timeout=10,
                     what="the previous run's task cleaned up")
        finally:
            driver.stop()
            driver.join()
