"""The scheduler SDK against an in-process cluster: real master, agents and executors."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mesoslite.protocol import Filters, MasterInfo, Offer, TaskState, TaskStatus
from mesoslite.resources import Resources
from mesoslite.scheduler import Scheduler, SchedulerDriver, Status
from mesoslite.testing import InProcessCluster, make_framework_info, make_task_info

if TYPE_CHECKING:
    from mesoslite.testing.pytest_plugin import ClusterHandle

pytest_plugins = ["mesoslite.testing.pytest_plugin", "pytester"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run_example(script: Path, *args: str,
                timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    """Run an example script with this interpreter and the source tree on its path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True,
        timeout=timeout, env=env, cwd=str(ROOT), check=False,
    )


class Hello(Scheduler):
    """Launches ``total`` short shell tasks round-robin over the offers it gets."""

    def __init__(self, total: int) -> None:
        self.pending = [f"hello-{i}" for i in range(total)]
        self.history: dict[str, list[TaskState]] = {}
        self.agents: dict[str, str] = {}
        self.registered_ids: list[str] = []

    def registered(self, driver: Any, framework_id: str, master_info: MasterInfo | None) -> None:
        self.registered_ids.append(framework_id)

    def resource_offers(self, driver: Any, offers: list[Offer]) -> None:
        per_task = Resources.parse("cpus:0.1;mem:32")
        plan: dict[str, list[Any]] = {o.id: [] for o in offers}
        left = {o.id: o.resources for o in offers}
        while self.pending and any(r.contains(per_task) for r in left.values()):
            for offer in offers:
                if self.pending and left[offer.id].contains(per_task):
                    task = make_task_info(offer.agent_id, task_id=self.pending.pop(0),
                                          command="echo hello from $MESOS_TASK_ID")
                    left[offer.id] = left[offer.id] - per_task
                    plan[offer.id].append(task)
                    self.agents[task.task_id] = offer.agent_id
        for offer in offers:
            if plan[offer.id]:
                driver.launch_tasks([offer.id], plan[offer.id])
            else:
                driver.decline_offer(offer.id, Filters(refuse_seconds=60))

    def status_update(self, driver: Any, status: TaskStatus) -> None:
        self.history.setdefault(status.task_id, []).append(status.state)

    def finished(self) -> int:
        return sum(1 for h in self.history.values() if h and h[-1].is_terminal)


def test_hello_style_framework_runs_ten_tasks_to_finished() -> None:
    """Ten shell tasks go STARTING → RUNNING → FINISHED on real agents; teardown cleans up."""

    async def main() -> None:
        async with InProcessCluster(agents=2) as cluster:
            sched = Hello(10)
            driver = SchedulerDriver(sched, make_framework_info(), cluster.master_address)
            assert await driver.start_async() is Status.DRIVER_RUNNING
            await cluster.wait_for(lambda: sched.finished() == 10, timeout=60)
            expected = [TaskState.TASK_STARTING, TaskState.TASK_RUNNING, TaskState.TASK_FINISHED]
            assert {t: h for t, h in sched.history.items() if h != expected} == {}
            assert len(set(sched.agents.values())) == 2  # spread over both agents
            framework_id = sched.registered_ids[0]
            assert await driver.stop_async() is Status.DRIVER_STOPPED
            await cluster.wait_for(lambda: framework_id not in cluster.master.state.frameworks)

    asyncio.run(main())


def test_failover_keeps_tasks_running_under_the_same_framework_id() -> None:
    """stop(failover=True) keeps tasks; a new driver with the id re-subscribes and kills them."""

    class Sleeper(Hello):
        def resource_offers(self, driver: Any, offers: list[Offer]) -> None:
            for offer in offers:
                if self.pending:
                    task = make_task_info(offer.agent_id, task_id=self.pending.pop(0),
                                          command="sleep 30")
                    driver.launch_tasks([offer.id], [task])
                else:
                    driver.decline_offer(offer.id, Filters(refuse_seconds=60))

    async def main() -> None:
        async with InProcessCluster(agents=1) as cluster:
            first = Sleeper(1)
            info = make_framework_info(failover_timeout=60.0)
            driver = SchedulerDriver(first, info, cluster.master_address)
            await driver.start_async()
            await cluster.wait_for(
                lambda: first.history.get("hello-0", [])[-1:] == [TaskState.TASK_RUNNING],
                timeout=30)
            framework_id = driver.framework_id
            assert await driver.stop_async(failover=True) is Status.DRIVER_STOPPED

            second = Sleeper(0)
            info2 = make_framework_info(id=framework_id, failover_timeout=60.0)
            driver2 = SchedulerDriver(second, info2, cluster.master_address)
            await driver2.start_async()
            await cluster.wait_for(lambda: second.registered_ids == [framework_id])
            driver2.reconcile_tasks(["hello-0"])
            await cluster.wait_for(lambda: second.history.get("hello-0"))
            assert second.history["hello-0"][-1] is TaskState.TASK_RUNNING
            driver2.kill_task("hello-0")
            await cluster.wait_for(
                lambda: second.history["hello-0"][-1] is TaskState.TASK_KILLED, timeout=30)
            await driver2.stop_async()

    asyncio.run(main())


def test_fixture_runs_the_hello_example_end_to_end(mesoslite_cluster: ClusterHandle) -> None:
    """The fixture's cluster runs examples/hello_framework.py: 10 tasks, exit 0, torn down."""
    result = run_example(EXAMPLES / "hello_framework.py", "--master",
                         mesoslite_cluster.master_address, "--tasks", "10",
                         "--command", "echo hello from $MESOS_TASK_ID", "--timeout", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "result: OK" in result.stdout
    for i in range(1, 11):
        lines = [line for line in result.stdout.splitlines() if line.startswith(f"hello-{i} ")]
        assert [line.rsplit(": ", 1)[1] for line in lines] == [
            "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert re.search(r"^\s+TASK_FINISHED\s+10$", result.stdout, re.MULTILINE)
    state = mesoslite_cluster.state()
    assert state["frameworks"] == []
    assert [f["name"] for f in state["completed_frameworks"]] == ["hello-framework"]


@pytest.mark.parametrize(
    "mesoslite_cluster_options", [{"agents": 3, "agent_resources": "cpus:1;mem:256"}]
)
def test_fixture_options_configure_the_cluster(mesoslite_cluster: ClusterHandle) -> None:
    """The options reach InProcessCluster: three agents with the given resources."""
    assert len(mesoslite_cluster.agents) == 3
    state = mesoslite_cluster.state()
    agents = state["slaves"]
    assert len(agents) == 3
    assert all(a["resources"]["cpus"] == 1 and a["resources"]["mem"] == 256 for a in agents)
    count = mesoslite_cluster.call(lambda: len(mesoslite_cluster.master.state.agents))
    assert count == 3


def test_plugin_enabled_in_a_conftest_supports_the_marker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A suite enabling the plugin from conftest.py gets the fixture and a registered marker."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest('pytest_plugins = ["mesoslite.testing.pytest_plugin"]')
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.mesoslite_cluster(agents=1)
        def test_one_agent(mesoslite_cluster):
            assert len(mesoslite_cluster.agents) == 1
            assert mesoslite_cluster.master_address.startswith("127.0.0.1:")
            assert len(mesoslite_cluster.state()["slaves"]) == 1
        """
    )
    result = pytester.runpytest_subprocess("-W", "error::pytest.PytestUnknownMarkWarning")
    result.assert_outcomes(passed=1)


def test_custom_executor_example_exchanges_messages(mesoslite_cluster: ClusterHandle) -> None:
    """examples/custom_executor: each executor answers ping 1..3 with pong 1..3, then finishes."""
    result = run_example(EXAMPLES / "custom_executor" / "framework.py", "--master",
                         mesoslite_cluster.master_address, "--tasks", "2", "--pings", "3",
                         "--timeout", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "result: OK" in out
    for task in ("pingpong-task-1", "pingpong-task-2"):
        assert f"pingpong-{task} says 'pong 3'" in out
        assert f"{task}: TASK_FINISHED" in out


def test_the_local_cluster_keeps_agent_ports_apart_and_ids_in_order() -> None:
    """Agents get disjoint port slices and ids in start order; an extra agent must name ports."""
    from mesoslite.local import LocalCluster

    async def main() -> None:
        cluster = LocalCluster(2, http_port=0, zmq_port=0, agent_port_base=0, work_dir=None,
                               agent_resources="cpus:1;mem:128")
        await cluster.start()
        work_dir = cluster.work_dir
        try:
            assert [a.agent_id.rsplit("-", 1)[1] for a in cluster.agents] == ["S0", "S1"]
            first, second = (a.resources.ranges("ports") for a in cluster.agents)
            assert first and second and first[-1][1] < second[0][0]
            with pytest.raises(ValueError, match="resources: agent 2"):
                await cluster.add_agent("cpus:1;mem:128")
            extra = await cluster.add_agent("cpus:1;mem:128;ports:[33000-33009]")
            assert list(extra.resources.ranges("ports")) == [(33000, 33009)]
        finally:
            await cluster.stop()
        assert work_dir is not None and not work_dir.exists()

    asyncio.run(asyncio.wait_for(main(), 60))
