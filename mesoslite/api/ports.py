"""The master as the v1 APIs read and drive it (PURE: Protocols only).

Owns: :class:`MasterPort` (the shell: who leads, where, the state, handling a message as
from a peer, the change feed and the in-process peers) and the read-only shapes of its
records (:class:`StateView`, :class:`AgentView`, :class:`FrameworkView`,
:class:`TaskView`, :class:`OfferView`).  ``mesoslite.master``'s classes satisfy them
structurally; this package sits below the master and never imports it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence, Set
from typing import Any, Protocol

import attrs

from mesoslite.protocol import (
    AgentInfo,
    DiscoveryInfo,
    ExecutorInfo,
    FrameworkInfo,
    MasterInfo,
    Offer,
    Task,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mesoslite.resources import Resources


class TaskView(Protocol):
    """A task the master tracks."""

    @property
    def task_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def framework_id(self) -> str: ...
    @property
    def agent_id(self) -> str: ...
    @property
    def executor_id(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def resources(self) -> Resources: ...
    @property
    def state(self) -> TaskState: ...
    @property
    def info(self) -> TaskInfo | None: ...
    @property
    def statuses(self) -> Sequence[TaskStatus]: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def discovery(self) -> DiscoveryInfo | None: ...


class AgentView(Protocol):
    """A registered agent."""

    @property
    def id(self) -> str: ...
    @property
    def info(self) -> AgentInfo: ...
    @property
    def connected(self) -> bool: ...
    @property
    def registered_time(self) -> float: ...
    @property
    def reregistered_time(self) -> float | None: ...
    @property
    def version_string(self) -> str: ...
    @property
    def tasks(self) -> Mapping[tuple[str, str], TaskView]: ...
    @property
    def executors(self) -> Mapping[tuple[str, str], tuple[ExecutorInfo, str]]: ...
    @property
    def offered(self) -> Resources: ...
    @property
    def used(self) -> Resources: ...


class FrameworkView(Protocol):
    """A framework the master knows."""

    @property
    def id(self) -> str: ...
    @property
    def info(self) -> FrameworkInfo: ...
    @property
    def active(self) -> bool: ...
    @property
    def connected(self) -> bool: ...
    @property
    def recovered(self) -> bool: ...
    @property
    def registered_time(self) -> float: ...
    @property
    def reregistered_time(self) -> float | None: ...
    @property
    def unregistered_time(self) -> float | None: ...
    @property
    def tasks(self) -> Mapping[str, TaskView]: ...
    @property
    def unreachable_tasks(self) -> Mapping[str, TaskView]: ...
    @property
    def completed_tasks(self) -> Sequence[TaskView]: ...
    @property
    def offers(self) -> Set[str]: ...

    def used_resources(self) -> Resources:
        """The sum of its tasks' resources."""
        ...


class OfferView(Protocol):
    """An outstanding offer."""

    @property
    def offer(self) -> Offer: ...


class StateView(Protocol):
    """The master's registries."""

    @property
    def agents(self) -> Mapping[str, AgentView]: ...
    @property
    def frameworks(self) -> Mapping[str, FrameworkView]: ...
    @property
    def completed_frameworks(self) -> Sequence[FrameworkView]: ...
    @property
    def offers(self) -> Mapping[str, OfferView]: ...
    @property
    def recovered_agents(self) -> Mapping[str, AgentInfo]: ...

    def weights(self) -> dict[str, float]:
        """Every role's weight."""
        ...


class MasterPort(Protocol):
    """The master shell, as the v1 API handlers use it."""

    @property
    def info(self) -> MasterInfo | None: ...
    @property
    def is_leading(self) -> bool: ...
    @property
    def state(self) -> Any: ...
    @property
    def config(self) -> Any: ...
    @property
    def leadership(self) -> Any: ...
    @property
    def start_time(self) -> float: ...
    @property
    def elected_time(self) -> float: ...
    @property
    def feed_listeners(self) -> list[Callable[[list[tuple[str, Any]]], None]]: ...
    @property
    def local_peers(self) -> dict[bytes, Callable[[Any], None]]: ...

    def handle(self, peer: bytes, msg: Any) -> None:
        """Handle ``msg`` as sent by ``peer`` (the acting leader only)."""
        ...

    def teardown_framework(self, framework_id: str) -> bool:
        """Tear a framework down; False when it is unknown."""
        ...

    def maintain_agent(self, kind: str, agent_id: str, max_grace_period: float | None = None,
                       mark_gone: bool = False) -> None:
        """Deactivate, drain or reactivate an agent (ValueError with ``field`` when refused)."""
        ...

    def set_weights(self, weights: dict[str, float]) -> None:
        """Change role weights (ValueError naming a bad one)."""
        ...

    def metrics_snapshot(self) -> dict[str, float]:
        """The metrics snapshot."""
        ...


class ExecutorPort(Protocol):
    """An agent's executor side, as the v1 executor API uses it."""

    @property
    def local_peers(self) -> dict[bytes, Callable[[Any], None]]: ...
    @property
    def heartbeat_interval(self) -> float:
        """Seconds between HEARTBEAT events (``--executor_heartbeat_interval``)."""
        ...

    def container_of(self, framework_id: str, executor_id: str) -> str | None:
        """The container of a live custom executor (None: no such executor)."""
        ...

    def on_message(self, peer: bytes, msg: Any) -> None:
        """Handle ``msg`` as sent by the executor connection ``peer``."""
        ...

    @property
    def authenticate_http_executors(self) -> bool:
        """Whether calls need ``Authorization: Bearer <executor token>``."""
        ...

    def check_token(self, container_id: str, token: str) -> bool:
        """True when ``token`` is the executor token of ``container_id``."""
        ...


class AgentOperatorPort(Protocol):
    """An agent as its v1 operator API reads it (plain protocol values)."""

    def operator_flags(self) -> dict[str, str]:
        """The agent's flags."""
        ...

    def operator_metrics(self) -> dict[str, float]:
        """The metrics snapshot."""
        ...

    def operator_agent_info(self) -> AgentInfo:
        """The agent's AgentInfo."""
        ...

    def operator_frameworks(self) -> tuple[list[FrameworkInfo], list[FrameworkInfo]]:
        """(active, completed) frameworks."""
        ...

    def operator_executors(self) -> tuple[list[ExecutorInfo], list[ExecutorInfo]]:
        """(live, completed) executors (``framework_id`` set)."""
        ...

    def operator_tasks(self) -> dict[str, list[Task]]:
        """Tasks by kind: ``queued_tasks``, ``launched_tasks``, ``terminated_tasks``,
        ``completed_tasks``."""
        ...

    def operator_files_url(self) -> str:
        """``http://ip:port`` of the agent's own ``/files``."""
        ...

    def operator_launch_session(self, request: ExecRequest) -> Awaitable[ExecSessionPort]:
        """Start ``request`` in a running task's container (:class:`ExecRefused` if not)."""
        ...

    def operator_acls(self) -> str:
        """The agent's ``--acls`` JSON text ("" when unset)."""
        ...


@attrs.frozen
class ExecRequest:
    """A command to run in a running task's container (LAUNCH_NESTED_CONTAINER_SESSION).

    The container is the task's (``task_id``) or the one ``parent_container_id`` names.
    """

    argv: tuple[str, ...]
    executable: str | None = None
    environment: tuple[tuple[str, str], ...] = ()
    task_id: str | None = None
    parent_container_id: str | None = None


class ExecRefused(Exception):
    """The session cannot start: answered ``status`` with ``{"message", "field"}``."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


class ExecSessionPort(Protocol):
    """A running command: its output chunks, then its wait status."""

    @property
    def status(self) -> int | None:
        """The wait status once :meth:`output` is exhausted (None: unknown)."""
        ...

    def output(self) -> AsyncIterator[tuple[str, bytes]]:
        """``(STDOUT|STDERR, bytes)`` chunks until the command ended."""
        ...

    def kill(self) -> None:
        """End the command and what it started."""
        ...
