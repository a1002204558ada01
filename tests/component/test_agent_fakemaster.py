"""Agent ↔ master link, driven by a fake master made from a raw RouterServer.

Also the shared harness for the other ``test_agent_*`` component tests:
:class:`FakeMaster`, :func:`make_agent`, :func:`run` and task factories.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from mesoslite.agent import AgentConfig, AgentProcess
from mesoslite.protocol import (
    AgentRegistered,
    AgentReregistered,
    CommandInfo,
    FrameworkInfo,
    KillPolicy,
    Ping,
    Pong,
    ProtocolError,
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
        self._changed = asyncio.Event()
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
        self._changed.set()

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

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Wait until ``predicate()`` is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"condition not met within {timeout}s; got {self.received}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))
            except TimeoutError:
                pass

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

        return await self.wait_for(find, timeout)

    def close(self) -> None:
        """Close the socket."""
        self.server.close()


def framework_info(*capabilities: str, checkpoint: bool = False) -> FrameworkInfo:
    """A framework with the test id."""
    return FrameworkInfo(user="test", name="test-fw", id=FRAMEWORK_ID,
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


# ---------------------------------------------------------------------- tests


def test_agent_registers_and_answers_ping(tmp_path: Path) -> None:
    """The agent registers with its resources and attributes and answers Ping with Pong."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            register = master.of_type(RegisterAgent)[0]
            assert register.agent_info.resources == Resources.parse(
                "cpus:4;mem:4096;disk:10000;ports:[31000-31010]")
            assert register.agent_info.attributes == {"rack": "r1"}
            assert register.agent_info.port == agent.http_port
            assert agent.agent_id == AGENT_ID
            master.send(Ping())
            pong = await master.wait_for(lambda: master.of_type(Pong))
            assert pong[0].agent_id == AGENT_ID
        finally:
            await agent.stop()
            master.close()

    run(body())


def test_agent_retries_registration_until_answered(tmp_path: Path) -> None:
    """Without an answer the agent keeps sending RegisterAgent with backoff."""

    async def body() -> None:
        master = FakeMaster(auto_register=False)
        agent = make_agent(tmp_path, master, registration_backoff_factor=0.05)
        await agent.start()
        try:
            await master.wait_for(lambda: len(master.of_type(RegisterAgent)) >= 3)
            assert not agent.registered.is_set()
            master.send(AgentRegistered(agent_id=AGENT_ID))
            await asyncio.wait_for(agent.registered.wait(), 5)
        finally:
            await agent.stop()
            master.close()

    run(body())


def test_agent_reregisters_on_not_registered(tmp_path: Path) -> None:
    """ProtocolError(NOT_REGISTERED) makes a registered agent send ReregisterAgent with its id."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            master.send(ProtocolError(message="who are you", code="NOT_REGISTERED"))
            rereg = await master.wait_for(lambda: master.of_type(ReregisterAgent))
            assert rereg[0].agent_info.id == AGENT_ID
            await asyncio.wait_for(agent.registered.wait(), 5)
        finally:
            await agent.stop()
            master.close()

    run(body())


def test_agent_reregisters_when_pings_stop(tmp_path: Path) -> None:
    """No Ping for ping_interval × factor makes the agent re-register."""

    async def body() -> None:
        master = FakeMaster(ping_interval=0.1)
        agent = await started(tmp_path, master, ping_timeout_factor=2.0)
        try:
            await master.wait_for(lambda: master.of_type(ReregisterAgent), timeout=5)
        finally:
            await agent.stop()
            master.close()

    run(body())
