"""Failover with real processes: the leading master dies mid-work; a scheduler fails over.

Three ``mesoslite master --zk`` processes, two agents following the leader
through ZooKeeper and a checkpointing framework on the SDK; then a scheduler
restarted with its framework id, and one whose failover timeout runs out.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from mesoslite.protocol import FrameworkInfo, MasterInfo, Offer, Reason, TaskState
from mesoslite.resources import Resources
from mesoslite.scheduler import SchedulerDriver
from tests.support.cluster_procs import ProcCluster
from tests.support.frameworks import RecordingScheduler, shell_task
from tests.support.ha_procs import HACluster, HAMaster, ZkAgent, task_pids, the_leader
from tests.support.procs import wait_for
from tests.support.zk_fixtures import zk_url, zookeeper  # noqa: F401

pytestmark = pytest.mark.integration

AGENT_RESOURCES = "cpus:4;mem:1024;disk:1000"
TASK = Resources.parse("cpus:0.25;mem:16")
LONG = "exec sleep 600"
SHORT = "exec sleep 0.2"
LONG_COUNT = 4
SHORT_COUNT = 40
TERMINAL = {TaskState.TASK_FINISHED, TaskState.TASK_FAILED, TaskState.TASK_KILLED,
            TaskState.TASK_LOST, TaskState.TASK_ERROR, TaskState.TASK_DROPPED,
            TaskState.TASK_GONE, TaskState.TASK_GONE_BY_OPERATOR, TaskState.TASK_UNREACHABLE}


class Worker(RecordingScheduler):
    """Launches ``long-1..4`` first, then ``short-1..40`` while ``open`` is set; records
    re-registrations and every task id it ever put in a launch."""

    def __init__(self) -> None:
        """Launching starts open; nothing is launched yet."""
        super().__init__(self._answer)
        self.open = threading.Event()
        self.open.set()
        self.launches: list[str] = []
        self.reregistrations: list[str] = []
        self.extra: str | None = None

    def reregistered(self, driver: SchedulerDriver, master_info: MasterInfo | None) -> None:
        """Record the master re-registered with."""
        with self.lock:
            self.reregistrations.append(master_info.id if master_info else "")

    def _wanted(self) -> list[str]:
        launched = set(self.launches)
        longs = [f"long-{n}" for n in range(1, LONG_COUNT + 1)]
        shorts = [f"short-{n}" for n in range(1, SHORT_COUNT + 1)]
        extra = [self.extra] if self.extra else []
        return [t for t in longs + shorts + extra if t not in launched]

    def _answer(self, driver: SchedulerDriver, offer: Offer) -> bool:
        tasks = []
        with self.lock:
            left = offer.resources
            wanted = self._wanted() if self.open.is_set() else []
            for task_id in wanted:
                if not left.contains(TASK):
                    break
                command = LONG if task_id.startswith("long-") else SHORT
                tasks.append(shell_task(task_id, offer.agent_id, TASK, command))
                self.launches.append(task_id)
                left = left - TASK
        if tasks:
            driver.launch_tasks([offer.id], tasks)
        else:
            driver.decline_offer(offer.id)
        return True

    def terminal_counts(self) -> Counter[str]:
        """Terminal (non-reconciliation) updates per task id."""
        return Counter(s.task_id for s in self.statuses(reconciliation=False)
                       if s.state in TERMINAL)

    def reconciled_running(self, task_ids: list[str]) -> bool:
        """True once each task got a TASK_RUNNING reconciliation answer."""
        return all(any(s.state is TaskState.TASK_RUNNING for s in
                       self.statuses(t, reconciliation=True)) for t in task_ids)


def _long_pids(agents: list[ZkAgent]) -> list[int] | None:
    """The pids of all ``sleep 600`` tasks on the agents once there are LONG_COUNT of them."""
    pids = sorted(p for a in agents for p in task_pids(a.work_dir, "sleep 600"))
    return pids if len(pids) == LONG_COUNT else None


def _leader_state_has(leader: HAMaster, agent_ids: set[str], framework_id: str) -> bool:
    """The leader lists both agents as re-registered (none only recovered) and the framework."""
    state = leader.state()
    active = {f["id"] for f in state["frameworks"] if f["active"]}
    return (agent_ids == {a["id"] for a in state["slaves"]} and not state["recovered_slaves"]
            and framework_id in active)


def test_leader_killed_mid_work_loses_and_repeats_nothing(
        zk_url: str, tmp_path: Path) -> None:  # noqa: F811
    """kill -9 of the leader mid-work: new leader, same agents and framework id, 40 short tasks
    finished once each, long tasks still running, offers resume."""
    longs = [f"long-{n}" for n in range(1, LONG_COUNT + 1)]
    shorts = [f"short-{n}" for n in range(1, SHORT_COUNT + 1)]
    with HACluster(tmp_path / "cluster", zk_url) as cluster:
        for _ in range(3):
            cluster.add_master(agent_reregister_timeout=30)
        old = the_leader(cluster.masters)
        agents = [cluster.add_agent(AGENT_RESOURCES) for _ in range(2)]
        agent_ids = {a.agent_id for a in agents}
        scheduler = Worker()
        info = FrameworkInfo(user="", name="ha-worker", checkpoint=True, failover_timeout=60.0)
        driver = SchedulerDriver(scheduler, info, zk_url, registration_backoff_factor=0.2)
        driver.start()
        try:
            framework_id = wait_for(lambda: scheduler.framework_id, 30, what="registered")
            for task_id in longs:
                scheduler.wait_state(task_id, TaskState.TASK_RUNNING)
            long_pids = wait_for(lambda: _long_pids(agents), 10, what="long task pids")
            wait_for(lambda: len(scheduler.in_state(TaskState.TASK_FINISHED)) >= 10, 30,
                     what="10 short tasks finished")
            # Close the gate and let every launch reach an agent, so none is in flight
            # to the master that dies (a lost launch is the framework's to reconcile).
            scheduler.open.clear()
            with scheduler.lock:
                in_flight = list(scheduler.launches)
            wait_for(lambda: all(scheduler.states(t) for t in in_flight), 30,
                     what="every launched task reported by an agent")
            assert len(in_flight) < LONG_COUNT + SHORT_COUNT, "all work done before the kill"
            old.kill9()
            scheduler.open.set()

            rest = [m for m in cluster.masters if m is not old]
            new = the_leader(rest, timeout=30)
            wait_for(lambda: _leader_state_has(new, agent_ids, framework_id), 30,
                     what="both agents and the framework on the new leader")
            wait_for(lambda: scheduler.reregistrations, 30, what="the driver re-registered")
            assert scheduler.reregistrations[-1] == new.state()["id"]
            assert driver.framework_id == framework_id

            wait_for(lambda: set(shorts) <= scheduler.in_state(TaskState.TASK_FINISHED), 60,
                     what="all 40 short tasks finished")
            counts = scheduler.terminal_counts()
            assert {t: counts[t] for t in shorts} == dict.fromkeys(shorts, 1), counts
            assert not any(counts[t] for t in longs), counts
            launches = Counter(scheduler.launches)
            assert [t for t, n in launches.items() if n > 1] == []

            driver.reconcile_tasks(longs)
            wait_for(lambda: scheduler.reconciled_running(longs), 20,
                     what="long tasks RUNNING on reconciliation")
            assert _long_pids(agents) == long_pids

            with scheduler.lock:
                scheduler.extra = "after-failover"
            scheduler.wait_state("after-failover", TaskState.TASK_FINISHED, timeout=30)
            assert scheduler.errors == []
        finally:
            driver.stop()
            driver.join()


def _launch_long(scheduler: RecordingScheduler, driver: SchedulerDriver, agent_id: str,
                 names: list[str]) -> None:
    offer = scheduler.take_held(agent_id)
    driver.launch_tasks([offer.id], [shell_task(n, agent_id, TASK, LONG) for n in names])
    for name in names:
        scheduler.wait_state(name, TaskState.TASK_RUNNING)


def test_scheduler_restart_with_its_id_keeps_its_tasks(tmp_path: Path) -> None:
    """A driver stopped with failover and restarted with the framework id gets the same id back
    and reconciliation reports both of its tasks TASK_RUNNING."""
    names = ["keep-1", "keep-2"]
    with ProcCluster(tmp_path / "cluster") as cluster:
        master = cluster.start_master()
        agent = cluster.add_agent(AGENT_RESOURCES)
        first = RecordingScheduler()
        info = FrameworkInfo(user="", name="restarted", checkpoint=True, failover_timeout=60.0)
        driver = SchedulerDriver(first, info, master.address, registration_backoff_factor=0.2)
        driver.start()
        second = RecordingScheduler()
        again: SchedulerDriver | None = None
        try:
            _launch_long(first, driver, agent.agent_id, names)
            framework_id = first.framework_id
            pids = task_pids(agent.work_dir, "sleep 600")
            assert len(pids) == 2, pids
            driver.stop(failover=True)
            driver.join()
            wait_for(lambda: not master.framework(framework_id)["active"], 10,
                     what="the framework inactive")

            failover_info = FrameworkInfo(user="", name="restarted", id=framework_id,
                                          checkpoint=True, failover_timeout=60.0)
            again = SchedulerDriver(second, failover_info, master.address,
                                    registration_backoff_factor=0.2)
            again.start()
            assert wait_for(lambda: second.framework_id, 30, what="registered") == framework_id
            again.reconcile_tasks()
            wait_for(lambda: all(any(s.state is TaskState.TASK_RUNNING
                                     and s.reason is Reason.REASON_RECONCILIATION
                                     for s in second.statuses(n)) for n in names), 20,
                     what="both tasks RUNNING on implicit reconciliation")
            assert task_pids(agent.work_dir, "sleep 600") == pids
            assert master.framework(framework_id)["active"]
        finally:
            driver.stop()
            driver.join()
            if again is not None:
                again.stop()
                again.join()


def test_framework_past_its_failover_timeout_is_torn_down(tmp_path: Path) -> None:
    """A framework (failover_timeout 2 s) whose driver left with failover is torn down after
    the timeout: its tasks' processes end and it moves to completed_frameworks."""
    with ProcCluster(tmp_path / "cluster") as cluster:
        master = cluster.start_master()
        agent = cluster.add_agent(AGENT_RESOURCES)
        scheduler = RecordingScheduler()
        info = FrameworkInfo(user="", name="short-lived", checkpoint=True, failover_timeout=2.0)
        driver = SchedulerDriver(scheduler, info, master.address, registration_backoff_factor=0.2)
        driver.start()
        try:
            _launch_long(scheduler, driver, agent.agent_id, ["gone-1", "gone-2"])
            framework_id = scheduler.framework_id
            assert len(task_pids(agent.work_dir, "sleep 600")) == 2
            driver.stop(failover=True)
            driver.join()
            assert master.framework(framework_id) is not None, "torn down at once"
            wait_for(lambda: framework_id in {f["id"] for f in
                                              master.state()["completed_frameworks"]}, 20,
                     what="the framework in completed_frameworks")
            assert master.framework(framework_id) is None
            wait_for(lambda: not task_pids(agent.work_dir, "sleep 600"), 20,
                     what="the tasks' processes gone")
        finally:
            driver.stop()
            driver.join()
