"""A real master and agents in one process, for testing frameworks.

Owns: :class:`InProcessCluster`.  It runs a real :class:`~mesoslite.master.MasterProcess`
and N real :class:`~mesoslite.agent.AgentProcess` es on the caller's event loop, all on
loopback with ephemeral ports, in a temporary work directory (removed on
:meth:`~InProcessCluster.stop` unless one was given).  Tasks run as real
processes through the agents' executors.  A scheduler under test connects to
:attr:`~InProcessCluster.master_address`.

For synchronous tests see :mod:`mesoslite.testing.pytest_plugin` (fixture
``mesoslite_cluster``), which runs a cluster on a background thread.

Defaults differ from production only where it makes tests fast: the master
allocates every 0.1 s (``allocation_interval``), and the agents retry
unacknowledged status updates after 1 s (``status_update_retry_min``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self, TypeVar

from mesoslite.clock import Clock

log = logging.getLogger("mesoslite.testing")

T = TypeVar("T")

DEFAULT_AGENT_RESOURCES = "cpus:2;mem:1024;disk:1024;ports:[31000-31100]"
#: MasterConfig values used unless overridden.
MASTER_TEST_DEFAULTS: dict[str, Any] = {"allocation_interval": 0.1}
#: AgentConfig values used unless overridden.
AGENT_TEST_DEFAULTS: dict[str, Any] = {
    "status_update_retry_min": 1.0,
    "registration_backoff_factor": 0.1,
}


class InProcessCluster:
    """One master and ``agents`` agents on the running event loop (loopback only).

    ``agent_resources`` is Mesos resource text for every agent (or a list, one
    per agent).  ``master_config``/``agent_config`` override
    :class:`~mesoslite.master.MasterConfig`/:class:`~mesoslite.agent.AgentConfig`
    fields.  Use ``async with InProcessCluster() as cluster:`` or call
    :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        agents: int = 2,
        agent_resources: str | list[str] = DEFAULT_AGENT_RESOURCES,
        *,
        work_dir: str | Path | None = None,
        master_config: dict[str, Any] | None = None,
        agent_config: dict[str, Any] | None = None,
        clock: Clock | None = None,
        registration_timeout: float = 15.0,
    ) -> None:
        """Describe the cluster; nothing starts until :meth:`start`."""
        if isinstance(agents, bool) or not isinstance(agents, int) or agents < 0:
            raise ValueError(f"agents: expected an integer >= 0, got {agents!r}")
        if isinstance(agent_resources, str):
            resources = [agent_resources] * agents
        else:
            resources = list(agent_resources)
            if len(resources) != agents:
                raise ValueError(
                    f"agent_resources: expected {agents} entries (one per agent), "
                    f"got {len(resources)}"
                )
        self._agent_resources = resources
        self._given_work_dir = Path(work_dir) if work_dir is not None else None
        self._master_overrides = dict(master_config or {})
        self._agent_overrides = dict(agent_config or {})
        self._clock = clock
        self._registration_timeout = registration_timeout
        self.work_dir: Path | None = None
        self.master: Any = None
        self.agents: list[Any] = []
        self._next_agent = 0
        self._started = False

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> Self:
        """Start the master, then the agents; return once every agent registered.

        Raises TimeoutError when an agent does not register within
        ``registration_timeout`` seconds (the cluster is stopped first).
        """
        from mesoslite.master import MasterConfig, MasterProcess

        if self._started:
            raise RuntimeError("the cluster is already started")
        self._started = True
        if self._given_work_dir is not None:
            self.work_dir = self._given_work_dir
            self.work_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.work_dir = Path(tempfile.mkdtemp(prefix="mesoslite-cluster-"))
        fields = {"ip": "127.0.0.1", "http_port": 0, "zmq_port": 0,
                  "work_dir": str(self.work_dir / "master"), **MASTER_TEST_DEFAULTS,
                  **self._master_overrides}
        self.master = MasterProcess(MasterConfig(**fields), clock=self._clock)
        try:
            await self.master.start()
            for resources in self._agent_resources:
                await self.add_agent(resources)
        except BaseException:
            await self.stop()
            raise
        log.info("in-process cluster up: master %s, %d agents", self.master_address,
                 len(self.agents))
        return self

    async def add_agent(self, resources: str = DEFAULT_AGENT_RESOURCES, **overrides: Any) -> Any:
        """Start one more agent (``overrides``: AgentConfig fields); return it once registered."""
        from mesoslite.agent import AgentConfig, AgentProcess

        if self.master is None or self.work_dir is None:
            raise RuntimeError("start the cluster before adding agents")
        index = self._next_agent
        self._next_agent += 1
        fields = {"master": self.master_address, "ip": "127.0.0.1", "http_port": 0,
                  "work_dir": str(self.work_dir / f"agent-{index}"), "resources": resources,
                  **AGENT_TEST_DEFAULTS, **self._agent_overrides, **overrides}
        agent = AgentProcess(AgentConfig(**fields), clock=self._clock)
        self.agents.append(agent)
        await agent.start()
        try:
            await asyncio.wait_for(agent.registered.wait(), self._registration_timeout)
        except TimeoutError:
            raise TimeoutError(
                f"agent {index} did not register with {self.master_address} "
                f"within {self._registration_timeout} s"
            ) from None
        return agent

    async def stop(self, kill_tasks: bool = True) -> None:
        """Stop the agents (killing their tasks unless ``kill_tasks=False``), then the master.

        Safe to call twice; removes the work directory if the cluster made it.
        """
        for agent in reversed(self.agents):
            try:
                await agent.stop(kill_tasks=kill_tasks)
            except Exception:
                log.exception("stopping an agent failed")
        self.agents = []
        if self.master is not None:
            try:
                await self.master.stop()
            except Exception:
                log.exception("stopping the master failed")
        if self.work_dir is not None and self._given_work_dir is None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        self.work_dir = None if self._given_work_dir is None else self.work_dir

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ addresses

    @property
    def master_address(self) -> str:
        """The master's scheduler/agent address, ``127.0.0.1:<zmq port>``."""
        if self.master is None or not self.master.zmq_port:
            raise RuntimeError("the cluster is not started")
        return f"127.0.0.1:{self.master.zmq_port}"

    @property
    def http_url(self) -> str:
        """The master's HTTP base URL, ``http://127.0.0.1:<port>``."""
        if self.master is None or not self.master.http_port:
            raise RuntimeError("the cluster is not started")
        return f"http://127.0.0.1:{self.master.http_port}"

    # -------------------------------------------------------------- waiting

    async def wait_for(
        self,
        predicate: Callable[[], T | Awaitable[T]],
        timeout: float = 10.0,
        interval: float = 0.01,
        message: str = "",
    ) -> T:
        """Poll ``predicate`` (plain or async) until it returns a truthy value; return it.

        Raises TimeoutError naming the predicate (or ``message``) after
        ``timeout`` seconds of loop time.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value  # type: ignore[return-value]
            if loop.time() >= deadline:
                what = message or getattr(predicate, "__name__", repr(predicate))
                raise TimeoutError(f"condition {what} not met within {timeout} s")
            await asyncio.sleep(interval)
