"""Status updates, reconciliation and kills end to end: real processes, real SDK.

At-least-once delivery is observed from outside: a framework in explicit
acknowledgement mode holds back its acknowledgement of TASK_RUNNING; the
agent (with a short ``--status_update_retry_min``) must resend it, and must
not let the task's TASK_FINISHED overtake it.  Reconciliation and kills are
checked against a shared cluster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesoslite.protocol import Reason, Source, TaskState
from mesoslite.scheduler import SchedulerDriver
from tests.support.cluster_procs import AgentProc, MasterProc, ProcCluster
from tests.support.frameworks import (
    RecordingScheduler,
    ShapeLauncher,
    running_framework,
    shell_task,
)
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration

RETRY_MIN = 0.3
RUNNING, FINISHED = TaskState.TASK_RUNNING, TaskState.TASK_FINISHED


def agent_task_state(agent: AgentProc, task_id: str) -> str | None:
    """The state the agent itself has for a task (it may be ahead of what was acknowledged)."""
    for framework in agent.get("/state")["frameworks"]:
        for executor in framework["executors"]:
            for key in ("tasks", "queued_tasks", "completed_tasks"):
                for task in executor[key]:
                    if task["id"] == task_id:
                        return task["state"]
    return None


def master_task(master: MasterProc, framework_id: str, task_id: str) -> dict[str, Any] | None:
    """The master's record of a task (live or completed)."""
    framework = master.framework(framework_id)
    if framework is None:
        return None
    for task in framework["tasks"] + framework["completed_tasks"]:
        if task["id"] == task_id:
            return task
    return None


def status_update_messages(master: MasterProc) -> float:
    """StatusUpdate messages the master has received from agents (resends included)."""
    return master.metrics().get("master/messages_status_update", 0.0)


def test_unacknowledged_running_is_resent_and_holds_back_finished(tmp_path: Path) -> None:
    """Unacked TASK_RUNNING is resent; TASK_FINISHED waits for its ack, then arrives in order."""
    with ProcCluster(tmp_path) as procs:
        master = procs.start_master()
        agent = procs.add_agent("cpus:2;mem:1024", status_update_retry_min=RETRY_MIN,
                                status_update_retry_max=2 * RETRY_MIN)
        launcher = ShapeLauncher("once", "cpus:1;mem:64", "sleep 0.2", limit=1,
                                 refuse_seconds=60)
        fw = RecordingScheduler(launcher)
        with running_framework(master.address, fw, "explicit-acks",
                               implicit_acknowledgements=False) as driver:
            starting = fw.wait_state("once-1", TaskState.TASK_STARTING)
            assert starting.uuid, "agent updates carry a uuid"
            driver.acknowledge_status_update(starting)
            running = fw.wait_state("once-1", RUNNING)
            assert running.uuid and running.source is Source.SOURCE_EXECUTOR
            received = status_update_messages(master)
            # The task ends (the agent knows), but its TASK_FINISHED must wait.
            wait_for(lambda: agent_task_state(agent, "once-1") == "TASK_FINISHED", timeout=20,
                     what="the task's process finished on the agent")
            # Resends of the unacknowledged TASK_RUNNING reach the master.
            wait_for(lambda: status_update_messages(master) >= received + 3, timeout=20,
                     what="three resends of TASK_RUNNING")
            assert fw.states("once-1") == [TaskState.TASK_STARTING, RUNNING]
            assert master_task(master, fw.framework_id, "once-1")["state"] == "TASK_RUNNING"

            driver.acknowledge_status_update(running)
            finished = fw.wait_state("once-1", FINISHED, timeout=10)
            assert finished.uuid not in (starting.uuid, running.uuid)
            assert fw.states("once-1") == [TaskState.TASK_STARTING, RUNNING, FINISHED]
            driver.acknowledge_status_update(finished)
            # The acknowledged terminal update completes the task on the master.
            wait_for(lambda: any(t["id"] == "once-1" for t in
                                 (master.framework(fw.framework_id) or {})["completed_tasks"]),
                     timeout=10, what="the task completed on the master")
            assert fw.errors == []


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MasterProc, AgentProc]]:
    """One master and one agent for the reconciliation and kill tests."""
    with ProcCluster(tmp_path_factory.mktemp("status")) as procs:
        master = procs.start_master()
        agent = procs.add_agent("cpus:4;mem:2048")
        yield master, agent


@pytest.fixture
def framework(shared: tuple[MasterProc, AgentProc]
              ) -> Iterator[tuple[RecordingScheduler, SchedulerDriver, AgentProc]]:
    """A framework on the shared cluster that holds its offers (torn down afterwards)."""
    master, agent = shared
    fw = RecordingScheduler()
    with running_framework(master.address, fw, "status") as driver:
        yield fw, driver, agent


def _launch(fw: RecordingScheduler, driver: SchedulerDriver, agent: AgentProc,
            *tasks: tuple[str, str, float | None]) -> None:
    """Launch (task id, command, grace) tasks on a held offer; wait until they run."""
    offer = fw.take_held(agent.agent_id)
    infos = [shell_task(tid, offer.agent_id, "cpus:0.5;mem:64", command, grace)
             for tid, command, grace in tasks]
    driver.launch_tasks([offer.id], infos)
    for tid, _command, _grace in tasks:
        fw.wait_state(tid, RUNNING)


def test_reconciliation_explicit_implicit_and_unknown(framework: Any) -> None:
    """Explicit → latest state, implicit → every task, unknown id → TASK_LOST (reconciliation)."""
    fw, driver, agent = framework
    _launch(fw, driver, agent, ("rec-1", "sleep 600", None), ("rec-2", "sleep 600", None))

    driver.reconcile_tasks(["rec-1"])
    explicit = wait_for(lambda: fw.statuses("rec-1", reconciliation=True), timeout=10,
                        what="explicit reconciliation answer")
    assert len(explicit) == 1 and fw.statuses("rec-2", reconciliation=True) == []
    answer = explicit[0]
    assert answer.state is RUNNING and answer.reason is Reason.REASON_RECONCILIATION
    assert answer.source is Source.SOURCE_MASTER and answer.uuid == b""
    assert answer.agent_id == agent.agent_id

    driver.reconcile_tasks()
    wait_for(lambda: (len(fw.statuses("rec-1", reconciliation=True)),
                      len(fw.statuses("rec-2", reconciliation=True))) == (2, 1),
             timeout=10, what="implicit reconciliation of both tasks")
    assert all(s.state is RUNNING for s in fw.statuses(reconciliation=True))

    driver.reconcile_tasks(["no-such-task"])
    lost = fw.wait_state("no-such-task", TaskState.TASK_LOST, timeout=10)
    assert lost.reason is Reason.REASON_RECONCILIATION and lost.uuid == b""
    # Reconciliation changes nothing: both tasks still run.
    assert fw.states("rec-1")[-1] is RUNNING and fw.states("rec-2")[-1] is RUNNING


def test_kill_running_task(framework: Any) -> None:
    """Killing a running task gives TASK_KILLED and its process ends."""
    fw, driver, agent = framework
    _launch(fw, driver, agent, ("victim-1", "sleep 600", None))
    driver.kill_task("victim-1", agent.agent_id)
    killed = fw.wait_state("victim-1", TaskState.TASK_KILLED, timeout=10)
    assert killed.agent_id == agent.agent_id
    assert fw.states("victim-1") == [TaskState.TASK_STARTING, RUNNING, TaskState.TASK_KILLED]


def _wait_ready(agent: AgentProc, task_id: str) -> Path:
    """Wait until the task printed ``ready`` (its trap is installed); return its sandbox."""
    def ready() -> Path | None:
        sandbox = agent.sandbox(task_id)
        stdout = sandbox / "stdout"
        return sandbox if stdout.exists() and "ready" in stdout.read_text() else None
    return wait_for(ready, timeout=10, what=f"task {task_id} ready")


def test_sigterm_trap_runs_within_the_grace_period(framework: Any) -> None:
    """A task trapping SIGTERM runs its trap (a file in its sandbox) and ends TASK_KILLED early."""
    fw, driver, agent = framework
    grace = 10.0
    command = ("trap 'echo trapped-$MESOS_TASK_ID > \"$MESOS_SANDBOX/trap.txt\"; exit 0' TERM; "
               "echo ready; while :; do sleep 0.05; done")
    _launch(fw, driver, agent, ("trapper-1", command, grace))
    sandbox = _wait_ready(agent, "trapper-1")
    asked = time.monotonic()
    driver.kill_task("trapper-1", agent.agent_id)
    fw.wait_state("trapper-1", TaskState.TASK_KILLED, timeout=grace + 5)
    took = fw.first("trapper-1", TaskState.TASK_KILLED)[0] - asked
    assert took < grace / 2, f"TASK_KILLED after {took:.1f}s: the trap did not end the task"
    assert (sandbox / "trap.txt").read_text().strip() == "trapped-trapper-1"


def test_sigterm_ignored_escalates_to_sigkill_after_grace(framework: Any) -> None:
    """A task ignoring SIGTERM is SIGKILLed after its grace period, then TASK_KILLED."""
    fw, driver, agent = framework
    grace = 1.0
    command = "trap '' TERM; echo ready; while :; do sleep 0.05; done"
    _launch(fw, driver, agent, ("stubborn-1", command, grace))
    _wait_ready(agent, "stubborn-1")
    asked = time.monotonic()
    driver.kill_task("stubborn-1", agent.agent_id)
    fw.wait_state("stubborn-1", TaskState.TASK_KILLED, timeout=grace + 10)
    took = fw.first("stubborn-1", TaskState.TASK_KILLED)[0] - asked
    assert grace - 0.1 <= took < grace + 5, f"TASK_KILLED after {took:.2f}s (grace {grace}s)"
