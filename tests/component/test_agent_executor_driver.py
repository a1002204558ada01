"""The executor SDK driver against a fake agent socket (no processes)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mesoslite.executor import DriverStatus, Executor, ExecutorDriver, ExecutorSettings
from mesoslite.protocol import (
    AgentInfo,
    CommandInfo,
    ExecutorInfo,
    ExecutorRegistered,
    ExecutorReregistered,
    FrameworkInfo,
    FrameworkToExecutorMessage,
    Heartbeat,
    KillPolicy,
    KillTask,
    ProtocolError,
    RegisterExecutor,
    ReregisterExecutor,
    RunTask,
    ShutdownExecutor,
    Source,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mesoslite.resources import Resources
from mesoslite.transport import RouterServer
from tests.support.agent_fakemaster import run
from tests.support.procs import holding, until

FW = FrameworkInfo(user="", name="fw", id="F-1")
EXEC = ExecutorInfo(executor_id="E-1", command=CommandInfo(value="x"), framework_id="F-1")


class Recorder(Executor):
    """Records every callback; runs tasks by reporting RUNNING."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def registered(self, driver, executor_info, framework_info, agent_info):  # type: ignore[no-untyped-def]
        self.calls.append(("registered", executor_info.executor_id, agent_info.id))

    def reregistered(self, driver, agent_info):  # type: ignore[no-untyped-def]
        self.calls.append(("reregistered",))

    def launch_task(self, driver, task):  # type: ignore[no-untyped-def]
        self.calls.append(("launch_task", task.task_id))
        driver.send_status_update(TaskStatus(task_id=task.task_id, state=TaskState.TASK_RUNNING))

    def kill_task(self, driver, task_id):  # type: ignore[no-untyped-def]
        self.calls.append(("kill_task", task_id))

    def framework_message(self, driver, data):  # type: ignore[no-untyped-def]
        self.calls.append(("framework_message", data))

    def shutdown(self, driver):  # type: ignore[no-untyped-def]
        self.calls.append(("shutdown",))
        driver.stop()


class FakeAgent:
    """A ROUTER socket that records what the executor sends."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.peer: bytes | None = None
        self.server = RouterServer("tcp://127.0.0.1:0", self._on, name="fake-agent")
        self.server.start()

    def _on(self, peer: bytes, msg: Any) -> None:
        self.peer = peer
        self.received.append(msg)

    def send(self, msg: Any) -> None:
        assert self.peer is not None
        self.server.send(self.peer, msg)

    def of_type(self, cls: type) -> list[Any]:
        return [m for m in self.received if isinstance(m, cls)]


def env_for(agent: FakeAgent) -> dict[str, str]:
    """The environment an agent would give this executor."""
    return {
        "MESOSLITE_AGENT_ZMQ": agent.server.endpoint,
        "MESOS_FRAMEWORK_ID": "F-1",
        "MESOS_EXECUTOR_ID": "E-1",
        "MESOS_CONTAINER_ID": "c0ffee",
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "1.0",
    }


def task(task_id: str) -> TaskInfo:
    """A task for executor E-1."""
    return TaskInfo(name=task_id, task_id=task_id, agent_id="S-1",
                    resources=Resources.parse("cpus:1"), executor=EXEC)


def test_settings_name_missing_variables() -> None:
    """A missing agent variable is a ValueError naming it."""
    with pytest.raises(ValueError, match="MESOSLITE_AGENT_ZMQ"):
        ExecutorSettings.from_environ({})
    with pytest.raises(ValueError, match="MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"):
        ExecutorSettings.from_environ({
            "MESOSLITE_AGENT_ZMQ": "tcp://x:1", "MESOS_FRAMEWORK_ID": "F",
            "MESOS_EXECUTOR_ID": "E", "MESOS_CONTAINER_ID": "C",
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "soon"})


def test_driver_registers_runs_tasks_and_resends_unacknowledged_on_reregistration() -> None:
    """The driver fills status fields, keeps unacked updates/tasks and resends them."""

    async def body() -> None:
        agent = FakeAgent()
        executor = Recorder()
        driver = ExecutorDriver(executor, env_for(agent), heartbeat_interval=0.1)
        runner = asyncio.get_running_loop().create_task(driver.run_async())
        try:
            reg = (await until(lambda: agent.of_type(RegisterExecutor)))[0]
            assert (reg.framework_id, reg.executor_id, reg.container_id) == (
                "F-1", "E-1", "c0ffee")
            agent.send(ExecutorRegistered(executor_info=EXEC, framework_info=FW,
                                          agent_id="S-1", agent_info=AgentInfo(
                                              hostname="h", resources=Resources(), id="S-1")))
            agent.send(RunTask(framework_info=FW, task=task("t1")))
            agent.send(RunTask(framework_info=FW, task=task("t2")))
            updates = await until(lambda: len(agent.of_type(StatusUpdate)) >= 2
                                  and agent.of_type(StatusUpdate))
            first = updates[0].status
            assert first.source is Source.SOURCE_EXECUTOR and first.executor_id == "E-1"
            assert first.agent_id == "S-1" and len(first.uuid) == 16 and first.timestamp > 0
            assert executor.calls[0] == ("registered", "E-1", "S-1")

            agent.send(StatusUpdateAcknowledgement(agent_id="S-1", framework_id="F-1",
                                                   task_id="t1", uuid=first.uuid))
            await until(lambda: len(driver.unacknowledged_updates) == 1)
            assert [t.task_id for t in driver.unacknowledged_tasks] == ["t2"]

            # The agent restarted: it does not know this executor any more.
            agent.send(ProtocolError(message="who?", code="NOT_REGISTERED"))
            rereg = (await until(lambda: agent.of_type(ReregisterExecutor)))[0]
            assert [u.status.task_id for u in rereg.updates] == ["t2"]
            assert [t.task_id for t in rereg.tasks] == ["t2"]
            agent.send(ExecutorReregistered(agent_id="S-1"))
            await until(lambda: ("reregistered",) in executor.calls)

            agent.send(KillTask(framework_id="F-1", task_id="t2", kill_policy=KillPolicy(1)))
            agent.send(FrameworkToExecutorMessage(framework_id="F-1", agent_id="S-1",
                                                  executor_id="E-1", data=b"hi"))
            await until(lambda: ("framework_message", b"hi") in executor.calls)
            assert ("kill_task", "t2") in executor.calls
            beat = (await until(lambda: agent.of_type(Heartbeat)))[0]
            assert beat.sender_id == "E-1"
            with pytest.raises(ValueError, match="TASK_STAGING"):
                driver.send_status_update(TaskStatus(task_id="t3", state=TaskState.TASK_STAGING))

            agent.send(ShutdownExecutor(framework_id="F-1", executor_id="E-1"))
            status = await asyncio.wait_for(runner, 5)
            assert status is DriverStatus.DRIVER_STOPPED
            assert ("shutdown",) in executor.calls
        finally:
            if not runner.done():
                driver.abort()
                await runner
            agent.server.close()

    run(body())


def test_driver_on_a_background_thread_can_be_stopped_from_outside() -> None:
    """start() runs the loop on a thread; stop() from another thread ends join()."""

    async def body() -> None:
        agent = FakeAgent()
        driver = ExecutorDriver(Recorder(), env_for(agent))
        try:
            assert driver.start() is DriverStatus.DRIVER_RUNNING
            await until(lambda: agent.of_type(RegisterExecutor))
            assert driver.stop() is DriverStatus.DRIVER_STOPPED
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, driver.join) is DriverStatus.DRIVER_STOPPED
        finally:
            driver.abort()
            agent.server.close()

    run(body())


def test_reregistered_executor_outlives_its_first_agent_past_the_recovery_timeout() -> None:
    """After the starting agent's pid died and a new agent re-registered us, we keep running."""
    # Long enough for the re-registration to happen within it on a loaded machine (with
    # 0.5 s the executor sometimes shut down before it could re-register).
    RECOVERY = 4.0  # noqa: N806

    class Noticing(Recorder):
        def disconnected(self, driver):  # type: ignore[no-untyped-def]
            self.calls.append(("disconnected",))

    async def body() -> None:
        agent = FakeAgent()
        executor = Noticing()
        dead = await asyncio.create_subprocess_exec("true")
        await dead.wait()  # a pid that no longer runs: the "old agent"
        env = env_for(agent) | {"MESOSLITE_AGENT_PID": str(dead.pid), "MESOS_CHECKPOINT": "1",
                                "MESOS_RECOVERY_TIMEOUT": str(RECOVERY)}
        driver = ExecutorDriver(executor, env, heartbeat_interval=0.05, liveness_interval=0.05)
        runner = asyncio.get_running_loop().create_task(driver.run_async())
        try:
            await until(lambda: agent.of_type(RegisterExecutor))
            agent.send(ExecutorRegistered(executor_info=EXEC, framework_info=FW, agent_id="S-1",
                                          agent_info=AgentInfo(hostname="h", resources=Resources(),
                                                               id="S-1")))
            await until(lambda: ("registered", "E-1", "S-1") in executor.calls)
            # The pid watch notices the old agent is gone; the new agent re-registers us.
            await until(lambda: ("disconnected",) in executor.calls)
            agent.send(ProtocolError(message="who?", code="NOT_REGISTERED"))
            await until(lambda: agent.of_type(ReregisterExecutor))
            agent.send(ExecutorReregistered(agent_id="S-1"))
            await until(lambda: ("reregistered",) in executor.calls)
            # Two recovery timeouts later we are still here, heartbeating.
            beats = len(agent.of_type(Heartbeat))
            await holding(lambda: ("shutdown",) not in executor.calls and not runner.done(),
                          2 * RECOVERY, "the executor running past two recovery timeouts")
            assert ("shutdown",) not in executor.calls
            assert not runner.done()
            assert len(agent.of_type(Heartbeat)) > beats
        finally:
            if not runner.done():
                driver.abort()
                await runner
            agent.server.close()

    run(body())
