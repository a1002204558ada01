"""The agent core's registries and identity, shared by every part of it (PURE).

Owns: :class:`CoreBase` — who this agent is (id, boot id, work directory,
HTTP port, resources, attributes, the master it registered with, whether it
is registered and accepting tasks), the registries (frameworks, completed
frameworks, executor processes by container id and by connection, Docker
tasks by container id, adopted containers), the status-update manager, the
metrics counters, and the small helpers every part uses (AgentInfo, the
registration message, sandbox paths, refusing an executor's message).  The
decisions live in the mixins built on it (:mod:`.updates`, :mod:`.executors`,
:mod:`.docker`, :mod:`.tasks`, :mod:`.rebuild`), joined by
:class:`~mesoslite.agent.core.AgentState`.  No I/O: ids and uuids come from
injected callables, time from the injected clock.
"""

from __future__ import annotations

import collections
import logging
import sys
import uuid
from collections.abc import Callable
from typing import Any

import mesoslite
from mesoslite.agent.config import AgentConfig
from mesoslite.agent.effects import Effect, ToExecutor
from mesoslite.agent.records import (
    AgentExecutor,
    AgentFramework,
    AgentMetrics,
    ExecutorProcess,
    ExecutorState,
    Peer,
)
from mesoslite.agent.sandbox import sandbox_dir
from mesoslite.agent.update_streams import StatusUpdateManager
from mesoslite.clock import Clock
from mesoslite.protocol import AgentInfo, MasterInfo, ProtocolError, RegisterAgent, ReregisterAgent
from mesoslite.resources import Resources

log = logging.getLogger("mesoslite.agent")

#: Why a Docker task cannot run when the agent has no Docker containerizer.
NO_DOCKER_MESSAGE = (
    "container.type: DOCKER needs the docker containerizer, which this agent does not run "
    "(start it with --containerizers=docker,process)"
)


def _new_container_id() -> str:
    return uuid.uuid4().hex


def _new_uuid() -> bytes:
    return uuid.uuid4().bytes


class CoreBase:
    """Identity, registries and counters of one agent (see the module docstring)."""

    def __init__(
        self,
        config: AgentConfig,
        clock: Clock,
        *,
        new_container_id: Callable[[], str] = _new_container_id,
        new_uuid: Callable[[], bytes] = _new_uuid,
        python: str = sys.executable,
    ) -> None:
        """An agent with no id, no frameworks, not registered and not accepting tasks yet."""
        self.config = config
        self.clock = clock
        self._new_container_id = new_container_id
        self._new_uuid = new_uuid
        #: The interpreter that runs the command executor.
        self.python = python
        self.agent_id: str | None = None
        self.boot_id = ""
        self.work_dir = config.work_dir
        self.http_port = 0
        self.resources = Resources()
        self.attributes = config.attributes_dict
        self.start_time = 0.0
        self.master_info: MasterInfo | None = None
        #: True while the master link is registered (the shell reports changes).
        self.registered = False
        #: True while the agent runs and takes tasks (False before start and once stopping).
        self.accepting = False
        #: Why Docker tasks are refused here ("" when the Docker containerizer runs).
        self.docker_refusal = NO_DOCKER_MESSAGE
        self.frameworks: dict[str, AgentFramework] = {}
        self.completed_frameworks: collections.deque[AgentFramework] = collections.deque(
            maxlen=config.max_completed_frameworks
        )
        self.metrics = AgentMetrics()
        self.updates = StatusUpdateManager(
            clock, config.status_update_retry_min, config.status_update_retry_max
        )
        #: Executor processes not yet ended, by container id (with their framework).
        self.containers: dict[str, tuple[AgentFramework, ExecutorProcess]] = {}
        #: Registered executor processes by connection.
        self.peers: dict[Peer, ExecutorProcess] = {}
        #: Docker tasks by container id (with their framework) until their executor ends.
        self.docker_tasks: dict[str, tuple[AgentFramework, AgentExecutor]] = {}
        #: Container ids of executor processes taken over from a previous agent run.
        self.adopted: set[str] = set()
        #: Executor processes and Docker tasks of a recovered run that did not survive it.
        self._lost: list[tuple[AgentFramework, ExecutorProcess]] = []
        #: When the shell's status-update retry timer fires next (None: not armed).
        self._retry_at: float | None = None
        self._retrying = True

    # ------------------------------------------------------------ identity

    def start(self, *, work_dir: str, http_port: int, boot_id: str, resources: Resources) -> None:
        """The shell bound its ports and found its resources: start taking tasks."""
        self.work_dir = work_dir
        self.http_port = http_port
        self.boot_id = boot_id
        self.resources = resources
        self.start_time = self.clock.time()
        self.accepting = True

    def stop_accepting(self) -> None:
        """The agent is stopping: refuse new tasks and ignore registrations."""
        self.accepting = False

    def set_docker(self, refusal: str) -> None:
        """Whether Docker tasks can run: ``refusal`` says why not ("" when they can)."""
        self.docker_refusal = refusal

    @property
    def http_endpoint(self) -> str:
        """``ip:port`` of the agent's HTTP server (``MESOS_AGENT_ENDPOINT``)."""
        return f"{self.config.ip}:{self.http_port}"

    def agent_info(self) -> AgentInfo:
        """This agent's AgentInfo (with its id once registered)."""
        return AgentInfo(
            hostname=self.config.effective_hostname,
            resources=self.resources,
            attributes=dict(self.attributes),
            id=self.agent_id or "",
            port=self.http_port,
            http_endpoint=self.http_endpoint,
        )

    def registration_message(self) -> RegisterAgent | ReregisterAgent:
        """RegisterAgent before the agent has an id; then ReregisterAgent with what runs here."""
        version = mesoslite.__version__
        if self.agent_id is None:
            return RegisterAgent(agent_info=self.agent_info(), boot_id=self.boot_id,
                                 version=version)
        tasks = []
        executors = []
        for fw in self.frameworks.values():
            for ex in fw.executors.values():
                if ex.state is not ExecutorState.TERMINATED:
                    executors.append(ex.snapshot())
                for task in [*ex.queued_tasks.values(), *ex.launched_tasks.values(),
                             *ex.terminated_tasks.values()]:
                    tasks.append(task.to_task(self.agent_id))
        return ReregisterAgent(
            agent_info=self.agent_info(),
            boot_id=self.boot_id,
            version=version,
            tasks=tuple(tasks),
            executors=tuple(executors),
            frameworks=tuple(fw.info for fw in self.frameworks.values()),
        )

    # ------------------------------------------------------------ sandbox garbage collection

    def live_sandboxes(self) -> tuple[frozenset[str], frozenset[tuple[str, str]], frozenset[str]]:
        """What GC must not remove: live container ids, (framework, executor) ids, frameworks."""
        containers = set(self.containers) | set(self.docker_tasks)
        executors: set[tuple[str, str]] = set()
        for fw in self.frameworks.values():
            hosted = list(fw.command_host.executors.values()) if fw.command_host else []
            if fw.command_host is not None:
                containers.add(fw.command_host.container_id)
                executors.add((fw.id, fw.command_host.executor_id))
            for ex in [*fw.executors.values(), *hosted]:
                containers.add(ex.container_id)
                executors.add((fw.id, ex.executor_id))
        return frozenset(containers), frozenset(executors), frozenset(self.frameworks)

    def sandboxes_collected(self, container_ids: set[str]) -> None:
        """GC removed these runs' sandboxes: prune their completed executor records, and
        completed frameworks left with none."""
        for fw in [*self.frameworks.values(), *self.completed_frameworks]:
            kept = [ex for ex in fw.completed_executors if ex.container_id not in container_ids]
            if len(kept) != len(fw.completed_executors):
                fw.completed_executors.clear()
                fw.completed_executors.extend(kept)
        kept_fws = [fw for fw in self.completed_frameworks if fw.completed_executors]
        if len(kept_fws) != len(self.completed_frameworks):
            self.completed_frameworks.clear()
            self.completed_frameworks.extend(kept_fws)

    # ------------------------------------------------------------ helpers

    def sandbox(self, framework_id: str, executor_id: str, container_id: str) -> str:
        """Where a run's sandbox lives (whoever starts the run creates it)."""
        agent_id = self.agent_id or "unregistered"
        return sandbox_dir(self.work_dir, agent_id, framework_id, executor_id, container_id)

    def refuse_executor(self, peer: Peer, msg: Any, message: str, field: str,
                        code: str = "INVALID") -> list[Effect]:
        """Answer an executor's message with a ProtocolError naming the field."""
        log.warning("Refused %s from executor peer %r: %s", type(msg).__name__, peer, message)
        return [ToExecutor(peer, ProtocolError(message=message, field=field,
                                               in_reply_to=type(msg).__name__, code=code))]
