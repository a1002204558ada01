"""A real master and agents in one process, for testing frameworks.

Owns: :class:`InProcessCluster`, the one cluster assembler
(:class:`~mesoslite.local.LocalCluster`, which builds each part through its
composition root) with defaults for tests: a real master and N real agents
on the caller's event loop, all on loopback with ephemeral ports, in a
temporary work directory (removed on :meth:`~InProcessCluster.stop` unless
one was given).  Tasks run as real processes through the agents' executors.
A scheduler under test connects to :attr:`~InProcessCluster.master_address`.

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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self, TypeVar

from mesoslite.agent.main import AgentProcess
from mesoslite.clock import Clock
from mesoslite.local import LocalCluster

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


class InProcessCluster(LocalCluster):
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
        super().__init__(
            agents,
            ip="127.0.0.1", http_port=0, zmq_port=0, agent_port_base=0,
            work_dir=work_dir,
            agent_resources=agent_resources,
            master_options={**MASTER_TEST_DEFAULTS, **(master_config or {})},
            agent_options={**AGENT_TEST_DEFAULTS, **(agent_config or {})},
            clock=clock, registration_timeout=registration_timeout, split_port_range=False,
        )

    async def add_agent(self, resources: str = DEFAULT_AGENT_RESOURCES,
                        **overrides: Any) -> AgentProcess:
        """Start one more agent (``overrides``: AgentConfig fields); return it once registered."""
        return await super().add_agent(resources, **overrides)

    async def __aenter__(self) -> Self:
        """Start the cluster (``async with``)."""
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop the cluster, killing its tasks."""
        await self.stop()

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
                return value
            if loop.time() >= deadline:
                what = message or getattr(predicate, "__name__", repr(predicate))
                raise TimeoutError(f"condition {what} not met within {timeout} s")
            await asyncio.sleep(interval)
