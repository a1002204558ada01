"""kill -9 of an agent with running tasks, seen by real SDK frameworks.

A master with short pings (0.5 s × 3), a victim agent and a survivor agent
as real processes.  One plain framework and one PARTITION_AWARE framework
each run a ``sleep 600`` task on the victim; one of them also holds an offer
on it.  After SIGKILL the master must notice the silence within its ping
window, report the tasks (TASK_LOST / TASK_UNREACHABLE), call ``agent_lost``
and rescind the victim's offers, while the survivor keeps working.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesoslite.protocol import Filters, Offer, Reason, Source, TaskState
from mesoslite.scheduler import SchedulerDriver
from tests.support.cluster_procs import AgentProc, ProcCluster
from tests.support.frameworks import RecordingScheduler, running_framework, shell_task
from tests.support.procs import processes_under, wait_for

pytestmark = pytest.mark.integration

PING_TIMEOUT = 0.5
MAX_PING_TIMEOUTS = 3
#: agent_ping_timeout × max_agent_ping_timeouts, plus the ping period that may
#: already be running when the agent dies: the master removes it by then at the latest.
PING_WINDOW = PING_TIMEOUT * (MAX_PING_TIMEOUTS + 1)
#: Scheduling and delivery slack on a loaded test machine.
SLACK = 2.5


class LaunchOnAgent:
    """Launch one task on one agent, then decline (or, once ``hold`` is set, hold) its offers.

    Offers of other agents are declined for 1 s.
    """

    def __init__(self, task_id: str, agent_id: str, command: str) -> None:
        """Launch ``task_id`` running ``command`` on ``agent_id`` once."""
        self.task_id = task_id
        self.agent_id = agent_id
        self.command = command
        self.launched = False
        self.hold = False

    def __call__(self, driver: SchedulerDriver, offer: Offer) -> bool:
        """Launch on the first offer of the agent; hold later ones; decline others for 1 s."""
        if offer.agent_id != self.agent_id:
            driver.decline_offer(offer.id, Filters(refuse_seconds=1.0))
            return True
        if self.launched:
            if self.hold:
                return False  # held: on the victim it must be rescinded when the agent goes
            driver.decline_offer(offer.id, Filters(refuse_seconds=0.0))
            return True
        self.launched = True
        task = shell_task(self.task_id, offer.agent_id, "cpus:1;mem:128", self.command)
        driver.launch_tasks([offer.id], [task], Filters(refuse_seconds=0.0))
        return True


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[ProcCluster, AgentProc, AgentProc]]:
    """A fast-pinging master, a victim agent and a survivor agent."""
    with ProcCluster(tmp_path) as procs:
        procs.start_master(agent_ping_timeout=PING_TIMEOUT,
                           max_agent_ping_timeouts=MAX_PING_TIMEOUTS)
        victim = procs.add_agent("cpus:4;mem:2048")
        survivor = procs.add_agent("cpus:2;mem:1024")
        yield procs, victim, survivor


def test_killed_agent_tasks_are_lost_or_unreachable(
    cluster: tuple[ProcCluster, AgentProc, AgentProc],
) -> None:
    """SIGKILLed agent: TASK_LOST / TASK_UNREACHABLE in the ping window, agent_lost, rescinds."""
    procs, victim, survivor = cluster
    master = procs.master
    assert master is not None
    plain_policy = LaunchOnAgent("plain-1", victim.agent_id, "sleep 600")
    aware_policy = LaunchOnAgent("aware-1", victim.agent_id, "sleep 600")
    plain, aware = RecordingScheduler(plain_policy), RecordingScheduler(aware_policy)
    with running_framework(master.address, plain, "plain") as plain_driver, \
            running_framework(master.address, aware, "aware",
                              capabilities=["PARTITION_AWARE"]) as aware_driver:
        plain.wait_state("plain-1", TaskState.TASK_RUNNING)
        aware.wait_state("aware-1", TaskState.TASK_RUNNING)
        # The victim's remainder comes back at once (refuse_seconds 0); now it is held.
        plain_policy.hold = aware_policy.hold = True
        victim_offers = {o.id for o in wait_for(
            lambda: plain.held_offers(victim.agent_id) + aware.held_offers(victim.agent_id),
            timeout=30, what="a held offer on the victim")}
        assert processes_under(victim.work_dir), "the victim's tasks should be running"

        victim.kill9()
        killed_at = time.monotonic()

        lost = plain.wait_state("plain-1", TaskState.TASK_LOST, timeout=PING_WINDOW + SLACK)
        unreachable = aware.wait_state("aware-1", TaskState.TASK_UNREACHABLE,
                                       timeout=PING_WINDOW + SLACK)
        for status in (lost, unreachable):
            assert status.reason is Reason.REASON_AGENT_REMOVED
            assert status.source is Source.SOURCE_MASTER
            assert status.agent_id == victim.agent_id
            assert status.uuid == b""  # made by the master: nothing to acknowledge
        lost_after = plain.first("plain-1", TaskState.TASK_LOST)[0] - killed_at
        # Removal needs MAX_PING_TIMEOUTS missed pongs: never before (n - 1) ping periods.
        assert PING_TIMEOUT * (MAX_PING_TIMEOUTS - 1) - 0.1 <= lost_after <= PING_WINDOW + SLACK
        assert aware.states("aware-1")[-1] is TaskState.TASK_UNREACHABLE
        assert TaskState.TASK_LOST not in aware.states("aware-1")

        for fw in (plain, aware):
            wait_for(lambda fw=fw: victim.agent_id in {a for _t, a in fw.agents_lost},
                     timeout=5, what="agent_lost for the victim")
            assert {a for _t, a in fw.agents_lost} == {victim.agent_id}
        rescinded = {o for fw in (plain, aware) for _t, o in fw.rescinded}
        assert victim_offers <= rescinded

        state = master.state()
        assert [s["id"] for s in state["slaves"]] == [survivor.agent_id]
        assert state["unreachable_slaves"] == 1
        fw_state = {f["id"]: f for f in state["frameworks"]}
        assert [t["id"] for t in fw_state[aware.framework_id]["unreachable_tasks"]] == ["aware-1"]
        assert all(o["agent_id"] != victim.agent_id
                   for f in state["frameworks"] for o in f["offers"])
        metrics = master.metrics()
        assert metrics["master/slave_removals"] == 1
        assert metrics["master/slaves_unreachable"] == 1

        # Reconciliation agrees: the master answers what it reported.
        plain_driver.reconcile_tasks(["plain-1"])
        aware_driver.reconcile_tasks(["aware-1"])
        for fw, task_id, expected in ((plain, "plain-1", TaskState.TASK_LOST),
                                      (aware, "aware-1", TaskState.TASK_UNREACHABLE)):
            answers = wait_for(lambda fw=fw, t=task_id: fw.statuses(t, reconciliation=True),
                               timeout=10, what=f"reconciliation of {task_id}")
            assert [a.state for a in answers] == [expected]

        # The survivor still works: one more task runs to completion there.
        plain.policy = LaunchOnAgent("after-1", survivor.agent_id, "echo done")
        plain_driver.revive_offers()  # clears the 1 s filters on the survivor
        finished = plain.wait_state("after-1", TaskState.TASK_FINISHED, timeout=30)
        assert finished.agent_id == survivor.agent_id
        assert plain.states("after-1") == [TaskState.TASK_STARTING, TaskState.TASK_RUNNING,
                                           TaskState.TASK_FINISHED]
        assert survivor.proc.alive() and master.proc.alive()
