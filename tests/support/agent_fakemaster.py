"""An in-process agent driven by a fake master, for the ``test_agent_*`` component tests.

Owns: :class:`FakeMaster` (a raw RouterServer that registers agents, records
and acknowledges what they send, and waits for conditions on it),
:func:`make_agent`/:func:`started` (an agent on loopback with quick backoffs),
:func:`run`, task factories (:func:`shell_task`, :func:`executor_task` with
the SDK echo executor :data:`ECHO_EXECUTOR`), HTTP getters and sandbox readers.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from mesoslite.agent import AgentConfig
from mesoslite.agent.main import AgentProcess
from mesoslite.protocol import (
    AgentRegistered,
    AgentReregistered,
    CommandInfo,
    ExecutorInfo,
    ExecutorToFrameworkMessage,
    FrameworkInfo,
    KillPolicy,
    RegisterAgent,
    ReregisterAgent,
    RunTask,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    TaskInfo,
    TaskState,
)
from mesoslite.resources import Resources
from mesoslite.transport import RouterServer
from tests.support.procs import until

T = TypeVar("T")
AGENT_ID = "M1-S0"
FRAMEWORK_ID = "M1-0001"


def run(coro: Awaitable[T], timeout: float = 30.0) -> T:
    """Run one async test body with an overall deadline."""

    async def guarded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(guarded())


class FakeMaster:
    """A ROUTER socket that plays the master: registers agents and records messages."""

    def __init__(self, *, agent_id: str = AGENT_ID, auto_register: bool = True,
                 auto_ack: bool = False, ping_interval: float = 15.0) -> None:
        self.agent_id = agent_id
        self.auto_register = auto_register
        self.auto_ack = auto_ack
        self.ping_interval = ping_interval
        self.received: list[Any] = []
        self.arrival: dict[int, float] = {}  # id(message) -> monotonic arrival time
        self.agent_peer: bytes | None = None
        self.acked: set[bytes] = set()
        self.server = RouterServer("tcp://127.0.0.1:0", self._on_message, name="fake-master")
        self.server.start()

    @property
    def address(self) -> str:
        """``host:port`` for AgentConfig.master."""
        return f"127.0.0.1:{self.server.port}"

    def _on_message(self, peer: bytes, msg: Any) -> None:
        self.received.append(msg)
        self.arrival[id(msg)] = time.monotonic()
        if isinstance(msg, RegisterAgent | ReregisterAgent):
            self.agent_peer = peer
            if self.auto_register:
                cls = AgentRegistered if isinstance(msg, RegisterAgent) else AgentReregistered
                self.server.send(peer, cls(agent_id=self.agent_id,
                                           ping_interval_seconds=self.ping_interval))
        if isinstance(msg, StatusUpdate) and self.auto_ack:
            self.ack(msg)

    def send(self, msg: Any) -> None:
        """Send a message to the (last) registered agent."""
        assert self.agent_peer is not None, "no agent registered"
        self.server.send(self.agent_peer, msg)

    def ack(self, update: StatusUpdate) -> None:
        """Acknowledge a status update as the scheduler would."""
        self.acked.add(update.status.uuid)
        self.send(StatusUpdateAcknowledgement(
            agent_id=self.agent_id, framework_id=update.framework_id,
            task_id=update.status.task_id, uuid=update.status.uuid))

    def of_type(self, cls: type[T]) -> list[T]:
        """Messages received of one type, in order."""
        return [m for m in self.received if isinstance(m, cls)]

    def updates(self, task_id: str) -> list[StatusUpdate]:
        """Status updates received for a task, in order (resends included)."""
        return [m for m in self.of_type(StatusUpdate) if m.status.task_id == task_id]

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0,
                       what: str = "condition on the agent's messages") -> T:
        """Wait until ``predicate()`` is truthy; returns its value."""
        try:
            return cast(T, await until(predicate, timeout, what))
        except AssertionError as exc:
            raise AssertionError(f"{exc}; received: {self.received}") from None

    async def wait_state(self, task_id: str, state: TaskState, timeout: float = 10.0,
                         ack: bool = True) -> StatusUpdate:
        """Wait for an update of ``task_id`` in ``state`` (acking every update on the way)."""

        def find() -> StatusUpdate | None:
            for update in self.updates(task_id):
                if ack and update.status.uuid not in self.acked:
                    self.ack(update)
                if update.status.state is state:
                    return update
            return None

        return await self.wait_for(find, timeout, f"{task_id} in {state.name}")

    def close(self) -> None:
        """Close the socket."""
        self.server.close()


def framework_info(*capabilities: str, checkpoint: bool = False) -> FrameworkInfo:
    """A framework with the test id (user "": its tasks run as the agent's user)."""
    return FrameworkInfo(user="", name="test-fw", id=FRAMEWORK_ID,
                         capabilities=tuple(capabilities), checkpoint=checkpoint)


def shell_task(task_id: str, command: str, *, grace: float | None = None,
               env: dict[str, str] | None = None, ports: str = "") -> TaskInfo:
    """A command task running ``command`` under /bin/sh."""
    resources = "cpus:0.1;mem:32" + (f";ports:{ports}" if ports else "")
    return TaskInfo(
        name=task_id, task_id=task_id, agent_id=AGENT_ID,
        resources=Resources.parse(resources),
        command=CommandInfo(value=command, environment=env or {}),
        kill_policy=KillPolicy(grace) if grace is not None else None,
    )


def make_agent(tmp_path: Path, master: FakeMaster, **overrides: Any) -> AgentProcess:
    """An agent on loopback with an ephemeral HTTP port and quick backoffs."""
    settings: dict[str, Any] = {
        "master": master.address,
        "http_port": 0,
        "work_dir": str(tmp_path / "agent"),
        "resources": "cpus:4;mem:4096;disk:10000;ports:[31000-31010]",
        "attributes": "rack:r1",
        "registration_backoff_factor": 0.1,
        "executor_shutdown_grace_period": 2.0,
    }
    settings.update(overrides)
    return AgentProcess(AgentConfig(**settings))


async def started(tmp_path: Path, master: FakeMaster, **overrides: Any) -> AgentProcess:
    """Start an agent and wait until it is registered."""
    agent = make_agent(tmp_path, master, **overrides)
    await agent.start()
    await asyncio.wait_for(agent.registered.wait(), 10)
    return agent


def launch(master: FakeMaster, task: TaskInfo, info: FrameworkInfo | None = None) -> None:
    """Send RunTask for ``task``."""
    master.send(RunTask(framework_info=info or framework_info(), task=task))


async def http_get(agent: AgentProcess, path: str) -> HTTPResponse:
    """GET from the agent's HTTP server (errors come back as responses)."""
    client = AsyncHTTPClient()
    url = f"http://127.0.0.1:{agent.http_port}{path}"
    return await client.fetch(url, raise_error=False)


async def http_json(agent: AgentProcess, path: str) -> tuple[int, Any]:
    """GET and decode JSON."""
    response = await http_get(agent, path)
    return response.code, json.loads(response.body or b"null")


def read_sandbox_file(agent: AgentProcess, task_id: str, name: str) -> str:
    """Read ``stdout``/``stderr`` of a command task's latest run."""
    path = Path(agent.work_dir, "agents", AGENT_ID, "frameworks", FRAMEWORK_ID,
                "executors", task_id, "runs", "latest", name)
    return path.read_text() if path.exists() else ""


ECHO_EXECUTOR = textwrap.dedent(
    """
    import os, sys
    from mesoslite.executor import Executor, ExecutorDriver
    from mesoslite.protocol import TaskState, TaskStatus

    class Echo(Executor):
        def __init__(self):
            self.tasks = []

        def registered(self, driver, executor_info, framework_info, agent_info):
            driver.send_framework_message(
                f"registered:{executor_info.executor_id}:{agent_info.id}".encode())

        def launch_task(self, driver, task):
            self.tasks.append(task.task_id)
            if task.data == b"crash":
                driver.send_status_update(TaskStatus(task.task_id, TaskState.TASK_RUNNING))
                os._exit(7)
            driver.send_status_update(
                TaskStatus(task.task_id, TaskState.TASK_RUNNING, data=task.data))

        def framework_message(self, driver, data):
            driver.send_framework_message(b"echo:" + data)
            if data == b"finish":
                for task_id in self.tasks:
                    driver.send_status_update(TaskStatus(task_id, TaskState.TASK_FINISHED))
                self.tasks = []

        def kill_task(self, driver, task_id):
            driver.send_status_update(TaskStatus(task_id, TaskState.TASK_KILLED))
            self.tasks.remove(task_id)

        def shutdown(self, driver):
            for task_id in self.tasks:
                driver.send_status_update(TaskStatus(task_id, TaskState.TASK_KILLED))
            driver.stop()

    sys.exit(0 if ExecutorDriver(Echo()).run().value == "DRIVER_STOPPED" else 1)
    """
)


def executor_task(tmp_path: Path, task_id: str, data: bytes = b"",
                  executor_id: str = "echo-exec", command: str | None = None) -> TaskInfo:
    """A task for the echo executor (or for ``command`` as the executor)."""
    script = tmp_path / "echo_executor.py"
    script.write_text(ECHO_EXECUTOR)
    info = ExecutorInfo(
        executor_id=executor_id,
        command=CommandInfo(value=command or f"{sys.executable} {script}"),
        framework_id=FRAMEWORK_ID,
        name="echo executor",
        resources=Resources.parse("cpus:0.1;mem:32"),
    )
    return TaskInfo(name=task_id, task_id=task_id, agent_id=AGENT_ID,
                    resources=Resources.parse("cpus:0.2;mem:64"), executor=info, data=data)


def messages(master: FakeMaster) -> list[bytes]:
    """Framework messages the master received."""
    return [m.data for m in master.of_type(ExecutorToFrameworkMessage)]
