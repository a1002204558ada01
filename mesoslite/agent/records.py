"""What the agent knows about frameworks, executors and tasks (PURE records).

Owns: the mutable records the agent's core keeps (:class:`AgentFramework`,
:class:`AgentExecutor`, :class:`CommandHost`, :class:`AgentTask`), their
Mesos-shaped JSON for ``/state``, their snapshots for ``ReregisterAgent``,
and :class:`AgentMetrics`.  Only :class:`~mesoslite.agent.core.AgentState`
changes them; everything else reads them.

A command task (``TaskInfo.command``) gets a *virtual* executor record
(kind ``command``, executor id = task id, its own container id and sandbox)
hosted by the framework's :class:`CommandHost`, the one command-executor
process per (framework, agent) that actually runs the command tasks.
"""

from __future__ import annotations

import collections
import enum
from typing import Any

from mesoslite.api.v1json import container_status_json, discovery_json
from mesoslite.protocol import (
    ExecutorInfo,
    ExecutorSnapshot,
    FrameworkInfo,
    Task,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mesoslite.resources import Resources

#: Statuses kept per task (the latest ones) for /state.
MAX_STATUSES = 10

#: An executor's connection as the transport names it (opaque to the core: a ZeroMQ
#: routing id today, an HTTP stream tomorrow).
Peer = Any


class ExecutorState(str, enum.Enum):
    """Lifecycle of an executor (or command host) on the agent."""

    REGISTERING = "REGISTERING"
    RUNNING = "RUNNING"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"


class AgentTask:
    """A task on this agent: its info and the latest state the agent has seen."""

    __slots__ = ("executor_id", "fetching", "framework_id", "info", "kill_requested", "progress",
                 "secret_env", "state", "statuses")

    def __init__(self, info: TaskInfo, framework_id: str, executor_id: str) -> None:
        """A task given to this agent, in TASK_STAGING until an update says otherwise."""
        self.info = info
        self.framework_id = framework_id
        self.executor_id = executor_id
        self.state = TaskState.TASK_STAGING
        self.statuses: collections.deque[TaskStatus] = collections.deque(maxlen=MAX_STATUSES)
        self.kill_requested = False
        #: The latest launch progress (a Docker image pull), shown on /state.
        self.progress = ""
        #: Held (queued) while the fetcher puts its URIs into the sandbox.
        self.fetching = False
        #: Its secret variables, resolved by the shell (memory only: never checkpointed).
        self.secret_env: dict[str, str] = {}

    @property
    def task_id(self) -> str:
        """The task id."""
        return self.info.task_id

    def record(self, status: TaskStatus) -> None:
        """Remember a status the agent accepted for this task."""
        self.state = status.state
        self.statuses.append(status)

    def to_task(self, agent_id: str) -> Task:
        """The protocol ``Task`` (for ReregisterAgent)."""
        last = self.statuses[-1] if self.statuses else None
        return Task(
            task_id=self.info.task_id,
            name=self.info.name,
            framework_id=self.framework_id,
            agent_id=agent_id,
            executor_id=self.executor_id,
            state=self.state,
            resources=self.info.resources,
            statuses=tuple(self.statuses),
            labels=dict(self.info.labels),
            container=self.info.container,
            health_check=self.info.health_check,
            discovery=self.info.discovery,
            status_update_state=last.state if last else None,
            status_update_uuid=last.uuid if last else b"",
        )

    def to_json(self, agent_id: str) -> dict[str, Any]:
        """Mesos /state task JSON."""
        return {
            "id": self.info.task_id,
            "name": self.info.name,
            "framework_id": self.framework_id,
            "executor_id": self.executor_id,
            "slave_id": agent_id,
            "agent_id": agent_id,
            "state": self.state.value,
            "resources": self.info.resources.to_json_dict(),
            "labels": [{"key": k, "value": v} for k, v in self.info.labels.items()],
            **({"progress": self.progress} if self.progress else {}),
            "statuses": [
                {
                    "state": s.state.value,
                    "timestamp": s.timestamp,
                    **({"healthy": s.healthy} if s.healthy is not None else {}),
                    **({"container_status": container_status_json(s.container_status)}
                       if s.container_status is not None else {}),
                }
                for s in self.statuses
            ],
            **({"discovery": discovery_json(self.info.discovery)}
               if self.info.discovery is not None else {}),
        }


class AgentExecutor:
    """An executor on this agent: a custom executor process, or a virtual command executor."""

    def __init__(
        self,
        framework_id: str,
        info: ExecutorInfo,
        container_id: str,
        directory: str,
        kind: str,
        max_completed_tasks: int = 200,
    ) -> None:
        """A new executor record, REGISTERING until its process registers."""
        self.framework_id = framework_id
        self.info = info
        self.container_id = container_id
        self.directory = directory
        self.kind = kind  # "custom" | "command" | "docker"
        self.state = ExecutorState.REGISTERING
        self.peer: Peer | None = None
        self.host: CommandHost | None = None
        self.queued_tasks: dict[str, AgentTask] = {}
        self.launched_tasks: dict[str, AgentTask] = {}
        self.terminated_tasks: dict[str, AgentTask] = {}
        self.completed_tasks: collections.deque[AgentTask] = collections.deque(
            maxlen=max_completed_tasks
        )
        self.exit_status: int | None = None
        self.exited_reported = False
        self.shutdown_requested = False
        self.timed_out = False
        self.pid: int | None = None
        #: Docker tasks off the host network: (network name, container IP) as Docker reports
        #: them once the container started (empty: not known).
        self.networks: tuple[tuple[str, str], ...] = ()
        #: Docker tasks: the grace period of the kill asked for, and why the task's failing
        #: health check killed it ("" when it did not).
        self.kill_grace = 0.0
        self.health_kill = ""

    @property
    def executor_id(self) -> str:
        """The executor id (= task id for command executors)."""
        return self.info.executor_id

    @property
    def is_virtual(self) -> bool:
        """True for an executor that is one task's container (command or docker task)."""
        return self.kind in ("command", "docker")

    @property
    def is_command(self) -> bool:
        """True for a virtual command executor hosted by a CommandHost."""
        return self.kind == "command"

    def live_tasks(self) -> list[AgentTask]:
        """Queued and launched tasks that have not reached a terminal state."""
        out = list(self.queued_tasks.values())
        out.extend(t for t in self.launched_tasks.values() if not t.state.is_terminal)
        return out

    def find_task(self, task_id: str) -> AgentTask | None:
        """A task of this executor that is not completed yet."""
        return (
            self.launched_tasks.get(task_id)
            or self.queued_tasks.get(task_id)
            or self.terminated_tasks.get(task_id)
        )

    def resources(self) -> Resources:
        """The executor's own resources plus those of its non-terminal tasks."""
        total = self.info.resources
        for task in self.live_tasks():
            total = total + task.info.resources
        return total

    def snapshot(self) -> ExecutorSnapshot:
        """The protocol ``ExecutorSnapshot`` (for ReregisterAgent)."""
        return ExecutorSnapshot(
            executor_id=self.executor_id,
            framework_id=self.framework_id,
            container_id=self.container_id,
            info=self.info,
        )

    def to_json(self, agent_id: str) -> dict[str, Any]:
        """Mesos /state executor JSON."""
        return {
            "id": self.executor_id,
            "name": self.info.name,
            "source": self.executor_id if self.is_virtual else self.info.executor_id,
            "framework_id": self.framework_id,
            "container": self.container_id,
            "directory": self.directory,
            "type": "COMMAND" if self.is_virtual else self.info.type,
            "state": self.state.value,
            "resources": self.resources().to_json_dict(),
            "tasks": [t.to_json(agent_id) for t in self.launched_tasks.values()],
            "queued_tasks": [t.to_json(agent_id) for t in self.queued_tasks.values()],
            "completed_tasks": [t.to_json(agent_id) for t in self.terminated_tasks.values()]
            + [t.to_json(agent_id) for t in self.completed_tasks],
        }


class CommandHost:
    """The command-executor process of one framework on this agent."""

    def __init__(
        self, framework_id: str, info: ExecutorInfo, container_id: str, directory: str
    ) -> None:
        """A new command host record, REGISTERING until its process registers."""
        self.framework_id = framework_id
        self.info = info
        self.container_id = container_id
        self.directory = directory
        self.state = ExecutorState.REGISTERING
        self.peer: Peer | None = None
        self.pid: int | None = None
        #: Virtual executors hosted here (alive until their task's end is acknowledged).
        self.executors: dict[str, AgentExecutor] = {}
        self.shutdown_requested = False
        self.timed_out = False
        #: Container ids of every task ever given to this host (for stray cleanup).
        self.task_containers: set[str] = set()

    @property
    def executor_id(self) -> str:
        """The host's own executor id (internal; not shown as an executor)."""
        return self.info.executor_id


class FrameworkState(str, enum.Enum):
    """Lifecycle of a framework on the agent."""

    RUNNING = "RUNNING"
    TERMINATING = "TERMINATING"


class AgentFramework:
    """A framework with tasks on this agent."""

    def __init__(self, info: FrameworkInfo, max_completed_executors: int = 150) -> None:
        """A framework record, RUNNING until it is shut down."""
        self.info = info
        self.state = FrameworkState.RUNNING
        self.executors: dict[str, AgentExecutor] = {}
        self.completed_executors: collections.deque[AgentExecutor] = collections.deque(
            maxlen=max_completed_executors
        )
        self.command_host: CommandHost | None = None
        #: task id -> executor, for every task not yet completed (terminal + acknowledged).
        self.task_index: dict[str, AgentExecutor] = {}
        #: Ids of recently completed tasks (so late kills are ignored, not answered LOST).
        self.completed_task_ids: collections.OrderedDict[str, None] = collections.OrderedDict()

    @property
    def id(self) -> str:
        """The framework id."""
        return self.info.id

    def remember_completed(self, task_id: str, limit: int = 10_000) -> None:
        """Keep a bounded memory of completed task ids."""
        self.completed_task_ids[task_id] = None
        while len(self.completed_task_ids) > limit:
            self.completed_task_ids.popitem(last=False)

    def idle(self) -> bool:
        """No executors and no command host left."""
        return not self.executors and self.command_host is None

    def to_json(self, agent_id: str) -> dict[str, Any]:
        """Mesos /state framework JSON."""
        info = self.info
        return {
            "id": info.id,
            "name": info.name,
            "user": info.user,
            "hostname": info.hostname,
            "role": info.roles[0] if info.roles else "*",
            "roles": list(info.roles),
            "principal": info.principal,
            "checkpoint": info.checkpoint,
            "failover_timeout": info.failover_timeout,
            "capabilities": list(info.capabilities),
            "state": self.state.value,
            "executors": [e.to_json(agent_id) for e in self.executors.values()],
            "completed_executors": [e.to_json(agent_id) for e in self.completed_executors],
        }


#: Terminal states counted by /metrics/snapshot (slave/tasks_<state>).
COUNTED_TERMINAL = {
    TaskState.TASK_FINISHED: "finished",
    TaskState.TASK_FAILED: "failed",
    TaskState.TASK_KILLED: "killed",
    TaskState.TASK_LOST: "lost",
    TaskState.TASK_DROPPED: "dropped",
    TaskState.TASK_ERROR: "error",
    TaskState.TASK_GONE: "gone",
}


class AgentMetrics:
    """Counters the agent keeps; gauges are computed from the records on demand."""

    def __init__(self) -> None:
        """All counters at zero."""
        self.terminal: collections.Counter[str] = collections.Counter()
        self.valid_status_updates = 0
        self.invalid_status_updates = 0
        self.executors_registered = 0
        self.executors_terminated = 0
        self.launch_failures = 0
        self.checkpoint_failures = 0
        #: Processes found in this agent's sandboxes on recovery that the checkpoint did
        #: not know (killed).
        self.unknown_processes_killed = 0

    def count_terminal(self, state: TaskState) -> None:
        """Count a task reaching a terminal state."""
        name = COUNTED_TERMINAL.get(state)
        if name:
            self.terminal[name] += 1


#: What runs as a process of its own: a custom executor or a framework's command host.
ExecutorProcess = AgentExecutor | CommandHost
