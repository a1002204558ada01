"""The all-in-one cluster behind ``mesoslite local``.

Owns: :class:`LocalCluster`, one master and N agents on one event loop in
one process (executors and tasks are still separate processes), with the
standalone election and the registry in a local file: no ZooKeeper, no
Docker.  Each agent gets its own HTTP port, work directory and slice of the
port range, and its share of the machine's cpus and memory, so tasks on
different agents never collide.  :meth:`LocalCluster.stop` kills every task
and executor it started.  The test helpers in :mod:`mesoslite.testing` build
on this class.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import psutil

from mesoslite.agent import AgentConfig, AgentProcess
from mesoslite.master import MasterConfig, MasterProcess
from mesoslite.resources import Resources

log = logging.getLogger("mesoslite.local")

#: Memory left to the machine itself, in MB (Mesos reserves 1 GB on an agent).
MEMORY_RESERVE_MB = 1024


def split_ports(index: int, count: int, first: int = 31000, last: int = 32000) -> str:
    """The ``index``-th of ``count`` equal slices of the port range, in Mesos syntax."""
    size = (last - first + 1) // count
    begin = first + index * size
    end = last if index == count - 1 else begin + size - 1
    return f"[{begin}-{end}]"


def default_agent_resources(count: int) -> str:
    """The machine's cpus and memory (less a reserve) divided among ``count`` agents."""
    cpus = (os.cpu_count() or 1) / count
    total_mb = psutil.virtual_memory().total // (1024 * 1024)
    mem = max(256, (total_mb - MEMORY_RESERVE_MB) // count)
    return f"cpus:{round(cpus, 3)};mem:{mem}"


class LocalCluster:
    """A master and ``agents`` agents in this process."""

    def __init__(
        self,
        agents: int = 2,
        *,
        ip: str = "127.0.0.1",
        http_port: int = 5050,
        zmq_port: int = 5055,
        work_dir: str = "/tmp/mesoslite/local",
        agent_resources: str = "",
        agent_port_base: int = 5051,
        master_options: dict[str, Any] | None = None,
        agent_options: dict[str, Any] | None = None,
        marathon_port: int | None = None,
    ) -> None:
        if agents < 1:
            raise ValueError(f"agents: expected at least 1, got {agents}")
        if agent_resources:
            Resources.parse(agent_resources)  # fail early, naming the bad part
        self.work_dir = Path(work_dir)
        self._count = agents
        self._ip = ip
        self._agent_resources = agent_resources or default_agent_resources(agents)
        self._agent_port_base = agent_port_base
        self._agent_options = dict(agent_options or {})
        self.master = MasterProcess(
            MasterConfig(
                ip=ip,
                http_port=http_port,
                zmq_port=zmq_port,
                work_dir=str(self.work_dir / "master"),
                **(master_options or {}),
            )
        )
        self.agents: list[AgentProcess] = []
        #: The bundled Marathon-style framework (None: not started).
        self.marathon: Any = None
        self._marathon_port = marathon_port

    @property
    def master_address(self) -> str:
        """``host:port`` of the master's ZMQ endpoint, as frameworks take it."""
        return f"{self._ip}:{self.master.zmq_port}"

    @property
    def http_url(self) -> str:
        """Base URL of the master's HTTP endpoints."""
        return f"http://{self._ip}:{self.master.http_port}"

    def _agent_resources_for(self, index: int) -> str:
        text = self._agent_resources
        if "ports" not in Resources.parse(text).names():
            text = f"{text};ports:{split_ports(index, self._count)}"
        return text

    async def start(self) -> None:
        """Start the master, then the agents, and wait until every agent registered."""
        await self.master.start()
        for i in range(self._count):
            port = 0 if self._agent_port_base == 0 else self._agent_port_base + i
            config = AgentConfig(
                master=self.master_address,
                ip=self._ip,
                http_port=port,
                work_dir=str(self.work_dir / f"agent-{i}"),
                resources=self._agent_resources_for(i),
                **self._agent_options,
            )
            agent = AgentProcess(config)
            self.agents.append(agent)
            await agent.start()
        for agent in self.agents:
            await agent.registered.wait()
        if self._marathon_port is not None:
            from frameworks.marathon.config import MarathonConfig
            from frameworks.marathon.main import MarathonProcess

            self.marathon = MarathonProcess(MarathonConfig(
                master=self.master_address, http_address=self._ip,
                http_port=self._marathon_port,
                state_dir=str(self.work_dir / "marathon"),
                reconciliation_initial_delay=1.0))
            await self.marathon.start()

    async def stop(self) -> None:
        """Stop the framework, the agents (killing their tasks and executors), then the master."""
        if self.marathon is not None:
            await self.marathon.stop()
        for agent in self.agents:
            try:
                await agent.stop(kill_tasks=True)
            except Exception:  # keep stopping the others
                log.exception("agent %s did not stop cleanly", agent.agent_id)
        await self.master.stop()

    def describe(self) -> str:
        """A few lines saying where everything listens."""
        lines = [
            f"mesoslite local: master {self.http_url}  zmq tcp://{self.master_address}",
        ]
        for agent, i in zip(self.agents, range(self._count), strict=True):
            lines.append(
                f"  agent {agent.agent_id} http://{self._ip}:{agent.http_port}  "
                f"{self._agent_resources_for(i)}"
            )
        if self.marathon is not None:
            lines.append(f"  marathon {self.marathon.url}  (REST API v2: /v2/apps, /v2/events)")
        lines.append("Ctrl-C stops the cluster and every task it started.")
        return "\n".join(lines)
