"""What the master remembers about agents, frameworks, tasks and offers (PURE).

Owns: the mutable records the master's state keeps (:class:`AgentRecord`,
:class:`FrameworkRecord`, :class:`TaskEntry`, :class:`OfferRecord`) and the
value the state returns to its shell, :class:`Send` (a message and who it
goes to).  Records carry a ``version`` that changes whenever anything shown
in ``/state`` changes, so renderers can cache per record.
"""

from __future__ import annotations

import collections
from typing import Any

import attrs

from mesoslite.master.drain_info import AgentMaintenance
from mesoslite.promtext import Histogram as Histogram
from mesoslite.protocol import (
    AgentInfo,
    DiscoveryInfo,
    ExecutorInfo,
    FrameworkInfo,
    Offer,
    Task,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mesoslite.resources import Resources

#: A destination: ("agent", agent id), ("framework", framework id) or ("peer", routing id).
Target = tuple[str, Any]

#: Statuses kept per task (the oldest beyond this are dropped, the first is kept).
MAX_STATUSES_PER_TASK = 50

_EMPTY = Resources()


@attrs.frozen
class Send:
    """Deliver ``message`` to ``to``: ``("agent", id)``, ``("framework", id)``, ``("peer", id)``."""

    to: Target
    message: Any


def to_agent(agent_id: str, message: Any) -> Send:
    """A message for an agent, by agent id."""
    return Send(("agent", agent_id), message)


def to_framework(framework_id: str, message: Any) -> Send:
    """A message for a framework's scheduler, by framework id."""
    return Send(("framework", framework_id), message)


def to_peer(peer: bytes, message: Any) -> Send:
    """A message for a connection, by ZeroMQ routing id."""
    return Send(("peer", peer), message)


@attrs.define(eq=False)
class TaskEntry:
    """A task the master tracks: launched through an offer or adopted from an agent."""

    task_id: str
    name: str
    framework_id: str
    agent_id: str
    executor_id: str
    role: str
    resources: Resources
    state: TaskState
    info: TaskInfo | None = None
    statuses: list[TaskStatus] = attrs.field(factory=list)
    labels: dict[str, str] = attrs.field(factory=dict)
    #: How service discovery sees the task (its TaskInfo's, kept for tasks adopted from agents).
    discovery: DiscoveryInfo | None = None
    #: uuid of the terminal update the framework must acknowledge to complete the task.
    terminal_uuid: bytes = b""
    #: Uuid of the latest update from the agent (a resend of it is not a transition).
    last_uuid: bytes = b""
    version: int = 0
    rendered: tuple[int, str] | None = None
    #: When the master sent the launch (its monotonic clock; 0: adopted, not launched here).
    launched_at: float = 0.0

    def touch(self) -> None:
        """Mark the task changed (invalidates cached renderings)."""
        self.version += 1

    def add_status(self, status: TaskStatus) -> None:
        """Remember a status, keeping the first and the latest ones."""
        self.statuses.append(status)
        if len(self.statuses) > MAX_STATUSES_PER_TASK:
            del self.statuses[1]
        self.touch()

    def to_task(self) -> Task:
        """The protocol's view of this task."""
        info = self.info
        return Task(
            task_id=self.task_id,
            name=self.name,
            framework_id=self.framework_id,
            agent_id=self.agent_id,
            executor_id=self.executor_id,
            state=self.state,
            resources=self.resources,
            statuses=tuple(self.statuses),
            labels=dict(self.labels),
            container=info.container if info else None,
            health_check=info.health_check if info else None,
        )


@attrs.define(eq=False)
class OfferRecord:
    """An outstanding offer and when it expires (``None``: never)."""

    offer: Offer
    expires_at: float | None = None
    #: JSON text for /state (an offer never changes, so it is rendered once).
    rendered: str = ""
    #: When the offer was made (the master's monotonic clock): for the round-trip histogram.
    offered_at: float = 0.0

    @property
    def id(self) -> str:
        """The offer id."""
        return self.offer.id


@attrs.define(eq=False)
class AgentRecord:
    """A registered agent: its info, connection, tasks, executors and offers."""

    info: AgentInfo
    peer: bytes
    registered_time: float
    version_string: str = ""
    boot_id: str = ""
    reregistered_time: float | None = None
    #: Consecutive pings without a pong.
    missed_pongs: int = 0
    pong_pending: bool = False
    #: Tasks by (framework id, task id).
    tasks: dict[tuple[str, str], TaskEntry] = attrs.field(factory=dict)
    #: Executors with their own resources, by (framework id, executor id) -> (info, role).
    executors: dict[tuple[str, str], tuple[ExecutorInfo, str]] = attrs.field(factory=dict)
    offers: set[str] = attrs.field(factory=set)
    offered: Resources = _EMPTY
    used: Resources = _EMPTY
    version: int = 0
    rendered: tuple[int, str] | None = None
    #: Deactivated or drained by an operator (:mod:`.drain`); None: in service.
    maintenance: AgentMaintenance | None = None
    #: The last re-registration handled in full and :meth:`task_view` right after it (a
    #: repeat of it while nothing changed is answered again without a new re-sync).
    resynced: tuple[Any, tuple[Any, ...]] | None = None

    @property
    def id(self) -> str:
        """The agent id."""
        return self.info.id

    @property
    def connected(self) -> bool:
        """True while the agent answers pings."""
        return self.missed_pongs == 0

    def touch(self) -> None:
        """Mark the agent changed (invalidates cached renderings)."""
        self.version += 1

    def task_view(self) -> tuple[Any, ...]:
        """What the master holds on this agent's tasks and executors, comparably: each
        task's key, entry and state, then the executors' keys."""
        tasks = tuple((key, id(entry), entry.state) for key, entry in self.tasks.items())
        return (tasks, tuple(self.executors))

    def is_repeat(self, peer: bytes, msg: Any) -> bool:
        """True when ``msg`` from ``peer`` repeats the last re-registration handled in full
        and neither the connection nor the master's view of the tasks changed since (a retry
        whose answer is still on its way: answering it again is all it needs)."""
        return (self.resynced is not None and self.peer == peer and self.connected
                and self.maintenance is None and self.resynced[0] == msg
                and self.resynced[1] == self.task_view())

    def recompute_used(self) -> None:
        """Sum the resources of its tasks and executors."""
        used = _EMPTY
        for task in self.tasks.values():
            used = used + task.resources
        for info, _role in self.executors.values():
            used = used + info.resources
        self.used = used
        self.touch()


@attrs.define(eq=False)
class FrameworkRecord:
    """A framework known to the master: subscribed, disconnected, recovered or completed."""

    info: FrameworkInfo
    peer: bytes | None
    registered_time: float
    connected: bool = True
    active: bool = True
    #: Known only from an agent's report (the scheduler has not subscribed to us yet).
    recovered: bool = False
    reregistered_time: float | None = None
    unregistered_time: float | None = None
    disconnected_at: float | None = None
    last_seen: float = 0.0
    tasks: dict[str, TaskEntry] = attrs.field(factory=dict)
    #: Tasks on unreachable agents (PARTITION_AWARE frameworks), by task id.
    unreachable_tasks: dict[str, TaskEntry] = attrs.field(factory=dict)
    completed_tasks: collections.deque[TaskEntry] = attrs.field(
        factory=lambda: collections.deque(maxlen=1000)
    )
    offers: set[str] = attrs.field(factory=set)
    version: int = 0

    @property
    def id(self) -> str:
        """The framework id."""
        return self.info.id

    @property
    def partition_aware(self) -> bool:
        """True when the framework declared PARTITION_AWARE."""
        return self.info.has_capability("PARTITION_AWARE")

    def touch(self) -> None:
        """Mark the framework changed."""
        self.version += 1

    def find_task(self, task_id: str) -> TaskEntry | None:
        """A live, unreachable or completed task by id (latest first), else None."""
        task = self.tasks.get(task_id) or self.unreachable_tasks.get(task_id)
        if task is not None:
            return task
        for done in reversed(self.completed_tasks):
            if done.task_id == task_id:
                return done
        return None

    def used_resources(self) -> Resources:
        """Sum of the resources of its tasks."""
        used = _EMPTY
        for task in self.tasks.values():
            used = used + task.resources
        return used


def task_from_report(task: Task, role: str) -> TaskEntry:
    """A TaskEntry for a task an agent reported when re-registering."""
    return TaskEntry(
        task_id=task.task_id,
        name=task.name,
        framework_id=task.framework_id,
        agent_id=task.agent_id,
        executor_id=task.executor_id,
        role=role,
        resources=task.resources,
        state=task.state,
        statuses=list(task.statuses),
        labels=dict(task.labels),
        discovery=task.discovery,
    )


#: Upper bounds (seconds) of the launch-to-RUNNING histogram's buckets: a command task
#: starts in milliseconds, a Docker task can wait minutes for its image.
LAUNCH_TO_RUNNING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                             30.0, 60.0, 120.0, 300.0)
