"""An agent with a zk:// master follows the leader: same id, same tasks, nothing killed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mesoslite.agent import AgentConfig
from mesoslite.agent.main import AgentProcess
from mesoslite.master.main import MasterProcess
from mesoslite.protocol import FrameworkInfo, TaskState
from mesoslite.scheduler import SchedulerDriver
from tests.support.frameworks import RecordingScheduler, ShapeLauncher
from tests.support.ha_inprocess import ha_config, run
from tests.support.procs import pid_alive, read_pid, until
from tests.support.zk_fixtures import zk_url, zookeeper  # noqa: F401

pytestmark = pytest.mark.integration


def test_agent_reregisters_with_the_new_leader(zk_url: str, tmp_path: Path) -> None:  # noqa: F811
    """Stopping the leading master moves the agent to the new leader with its id and live task."""

    async def main() -> None:
        masters = [MasterProcess(ha_config(zk_url)) for _ in range(2)]
        for master in masters:
            await master.start()
        leader = await until(lambda: next((m for m in masters if m.is_leading), None), 15,
                             "a leader")
        follower = next(m for m in masters if m is not leader)
        agent = AgentProcess(AgentConfig(master=zk_url, http_port=0,
                                         work_dir=str(tmp_path / "agent"),
                                  resources="cpus:2;mem:512;disk:100",
                                  registration_backoff_factor=0.2))
        await agent.start()
        pid_file = tmp_path / "task.pid"
        scheduler = RecordingScheduler(
            ShapeLauncher("sleeper", "cpus:0.1;mem:16",
                          f"echo $$ > {pid_file}; exec sleep 600", limit=1))
        info = FrameworkInfo(user="", name="follow-leader", failover_timeout=60.0,
                             checkpoint=True)
        driver = SchedulerDriver(scheduler, info, zk_url, registration_backoff_factor=0.2)
        driver.start()
        try:
            await until(agent.is_registered, 20, "the agent registered")
            agent_id = agent.agent_id
            assert agent.master_info is not None and agent.master_info.id == leader.info.id
            await until(lambda: scheduler.first("sleeper-1", TaskState.TASK_RUNNING), 30,
                        "sleeper-1 RUNNING")
            pid = await until(lambda: read_pid(pid_file), 10, "the task's pid")
            framework_id = scheduler.framework_id

            await leader.stop()
            await until(lambda: follower.is_leading, 20, "the follower leading")
            await until(lambda: agent.is_registered() and agent.master_info is not None
                        and agent.master_info.id == follower.info.id, 30,
                        "the agent re-registered with the new leader")
            assert agent.agent_id == agent_id

            def task_state() -> TaskState | None:
                record = follower.state.agents.get(agent_id or "")
                task = record.tasks.get((framework_id, "sleeper-1")) if record else None
                return task.state if task else None

            await until(lambda: task_state() is TaskState.TASK_RUNNING, 15,
                        "the new leader knowing sleeper-1 RUNNING")
            assert pid_alive(pid)
            assert TaskState.TASK_KILLED not in scheduler.states("sleeper-1")
        finally:
            await asyncio.to_thread(driver.stop, False)
            await asyncio.to_thread(driver.join)
            await agent.stop(kill_tasks=True)
            for master in masters:
                await master.stop()
            pid = read_pid(pid_file)
            if pid is not None and pid_alive(pid):
                os.kill(pid, 9)

    run(main)


def test_agent_waits_for_a_leader_to_be_elected(zk_url: str, tmp_path: Path) -> None:  # noqa: F811
    """An agent started before any master registers once one is elected."""

    async def main() -> None:
        agent = AgentProcess(AgentConfig(master=zk_url, http_port=0,
                                         work_dir=str(tmp_path / "agent"),
                                  resources="cpus:1;mem:128", registration_backoff_factor=0.2))
        await agent.start()
        master = MasterProcess(ha_config(zk_url))
        try:
            await asyncio.sleep(0)
            assert not agent.is_registered()
            await master.start()
            await until(agent.is_registered, 20, "the agent registered with the elected master")
            assert agent.agent_id in master.state.agents
        finally:
            await agent.stop()
            await master.stop()

    run(main)


def test_standby_redirects_the_agent_to_the_leader(zk_url: str, tmp_path: Path) -> None:  # noqa: F811
    """An agent pointed at a standby (host:port) follows its LeaderRedirect to the leader."""

    async def main() -> None:
        masters = [MasterProcess(ha_config(zk_url)) for _ in range(2)]
        for master in masters:
            await master.start()
        leader = await until(lambda: next((m for m in masters if m.is_leading), None), 15,
                             "a leader")
        standby = next(m for m in masters if m is not leader)
        await until(lambda: standby.leadership.leader() == leader.info, 10,
                    "the standby to see the leader")
        address = standby.zmq_endpoint.removeprefix("tcp://")
        agent = AgentProcess(AgentConfig(master=address, http_port=0,
                                         work_dir=str(tmp_path / "agent"),
                                  resources="cpus:1;mem:128", registration_backoff_factor=0.2))
        await agent.start()
        try:
            await until(agent.is_registered, 20, "the agent registered")
            assert agent.agent_id in leader.state.agents
            assert agent.master_info is not None and agent.master_info.id == leader.info.id
        finally:
            await agent.stop()
            for master in masters:
                await master.stop()

    run(main)
