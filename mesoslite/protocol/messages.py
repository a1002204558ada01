"""Every message that crosses a process boundary (PURE).

Owns: the message classes, grouped by the link they travel on, and the
registry :data:`MESSAGE_TYPES` that the codec uses to decode by type name.
A message class is a frozen attrs class decorated with :func:`message`;
its wire type name is the class name.

Links (sender → receiver):

* scheduler → master: Subscribe, Teardown, Deactivate, Accept, Decline, Revive,
  Suppress, Kill, Shutdown, Acknowledge, Reconcile, FrameworkToExecutorMessage,
  Heartbeat
* master → scheduler: Subscribed, Offers, Rescind, Update, ExecutorToFrameworkMessage,
  Failure, Error, Heartbeat
* agent → master: RegisterAgent, ReregisterAgent, StatusUpdate, ExecutorToFrameworkMessage,
  ExitedExecutor, UnregisterAgent, Pong
* master → agent: AgentRegistered, AgentReregistered, Ping, RunTask, KillTask,
  StatusUpdateAcknowledgement, FrameworkToExecutorMessage, ShutdownFramework,
  ShutdownExecutor, ShutdownAgent, UpdateFramework
* executor → agent: RegisterExecutor, ReregisterExecutor, StatusUpdate,
  ExecutorToFrameworkMessage, Heartbeat
* agent → executor: ExecutorRegistered, RunTask, KillTask, StatusUpdateAcknowledgement,
  FrameworkToExecutorMessage, ShutdownExecutor
* any → any: ProtocolError (a message was refused), LeaderRedirect (not the leader)
"""

from __future__ import annotations

from typing import TypeVar

import attrs

from mesoslite.protocol.types import (
    AgentInfo,
    ExecutorInfo,
    ExecutorSnapshot,
    Filters,
    FrameworkInfo,
    KillPolicy,
    MasterInfo,
    Offer,
    Operation,
    ReconcileTask,
    Task,
    TaskInfo,
    TaskStatus,
    _id,
    _optional_id,
)

MESSAGE_TYPES: dict[str, type] = {}

T = TypeVar("T", bound=type)


def message(cls: T) -> T:
    """Register an attrs class as a wire message under its class name."""
    name = cls.__name__
    if name in MESSAGE_TYPES:
        raise TypeError(f"duplicate message type {name}")
    MESSAGE_TYPES[name] = cls
    return cls


# --------------------------------------------------------------------- any link


@message
@attrs.frozen
class Heartbeat:
    """Liveness signal; ``sender_id`` names the framework or executor sending it."""

    sender_id: str = ""


@message
@attrs.frozen
class ProtocolError:
    """A message was refused: ``field`` says what was wrong with it.

    ``code`` is one of: ``INVALID`` (malformed or refused), ``NOT_REGISTERED``
    (an agent message from a peer the master does not know: re-register),
    ``NOT_SUBSCRIBED`` (a framework call from a peer that is not subscribed:
    subscribe again), ``NOT_LEADER`` (see LeaderRedirect).
    """

    message: str
    field: str = ""
    in_reply_to: str = ""
    code: str = "INVALID"


@message
@attrs.frozen
class LeaderRedirect:
    """The receiver is not the leading master; ``leader`` is who is, if known."""

    leader: MasterInfo | None = None


# ------------------------------------------------------- scheduler <-> master


@message
@attrs.frozen
class Subscribe:
    """A framework subscribes (``framework_info.id`` set to fail over)."""

    framework_info: FrameworkInfo
    force: bool = False


@message
@attrs.frozen
class Subscribed:
    """The master accepted a subscription."""

    framework_id: str
    heartbeat_interval_seconds: float
    master_info: MasterInfo | None = None


@message
@attrs.frozen
class Teardown:
    """The framework ends: the master kills its tasks and forgets it."""

    framework_id: str = attrs.field(validator=_id)


@message
@attrs.frozen
class Deactivate:
    """The scheduler disconnects on purpose; failover_timeout starts now."""

    framework_id: str = attrs.field(validator=_id)


@message
@attrs.frozen
class Accept:
    """Use offers: run the operations on them; the rest is declined with ``filters``."""

    framework_id: str = attrs.field(validator=_id)
    offer_ids: tuple[str, ...]
    operations: tuple[Operation, ...] = ()
    filters: Filters | None = None


@message
@attrs.frozen
class Decline:
    """Decline offers; ``filters.refuse_seconds`` (default 5) before re-offering."""

    framework_id: str = attrs.field(validator=_id)
    offer_ids: tuple[str, ...]
    filters: Filters | None = None


@message
@attrs.frozen
class Revive:
    """Clear filters and resume offers for ``roles`` (all roles when empty)."""

    framework_id: str = attrs.field(validator=_id)
    roles: tuple[str, ...] = ()


@message
@attrs.frozen
class Suppress:
    """Stop offers for ``roles`` (all roles when empty)."""

    framework_id: str = attrs.field(validator=_id)
    roles: tuple[str, ...] = ()


@message
@attrs.frozen
class Kill:
    """Kill a task; an unknown task is answered with TASK_LOST."""

    framework_id: str = attrs.field(validator=_id)
    task_id: str = attrs.field(validator=_id)
    agent_id: str = attrs.field(default="", validator=_optional_id)
    kill_policy: KillPolicy | None = None


@message
@attrs.frozen
class Shutdown:
    """Shut an executor down."""

    framework_id: str = attrs.field(validator=_id)
    executor_id: str = attrs.field(validator=_id)
    agent_id: str = attrs.field(validator=_id)


@message
@attrs.frozen
class Acknowledge:
    """Acknowledge a status update by its uuid."""

    framework_id: str = attrs.field(validator=_id)
    agent_id: str = attrs.field(validator=_id)
    task_id: str = attrs.field(validator=_id)
    uuid: bytes


@message
@attrs.frozen
class Reconcile:
    """Ask for the latest state of ``tasks`` (all known tasks when empty)."""

    framework_id: str = attrs.field(validator=_id)
    tasks: tuple[ReconcileTask, ...] = ()


@message
@attrs.frozen
class Offers:
    """New offers for a framework."""

    offers: tuple[Offer, ...]


@message
@attrs.frozen
class Rescind:
    """An offer is withdrawn and can no longer be used."""

    offer_id: str


@message
@attrs.frozen
class Update:
    """A status update for one of the framework's tasks."""

    status: TaskStatus


@message
@attrs.frozen
class Failure:
    """An agent was lost, or an executor exited (``status`` is its exit status)."""

    agent_id: str
    executor_id: str = ""
    status: int | None = None


@message
@attrs.frozen
class Error:
    """A fatal framework error: the subscription was refused or ended."""

    message: str


@message
@attrs.frozen
class FrameworkToExecutorMessage:
    """Opaque data from a scheduler to one of its executors (best effort)."""

    framework_id: str = attrs.field(validator=_id)
    agent_id: str = attrs.field(validator=_id)
    executor_id: str = attrs.field(validator=_id)
    data: bytes


@message
@attrs.frozen
class ExecutorToFrameworkMessage:
    """Opaque data from an executor to its scheduler (best effort)."""

    framework_id: str = attrs.field(validator=_id)
    agent_id: str = attrs.field(validator=_optional_id)
    executor_id: str = attrs.field(validator=_id)
    data: bytes


# ---------------------------------------------------------- agent <-> master


@message
@attrs.frozen
class RegisterAgent:
    """A new agent asks to join."""

    agent_info: AgentInfo
    boot_id: str = ""
    version: str = ""
    #: The agent's secret identity token (kept in its meta dir): the master binds the
    #: agent id to it, and only the same token may re-register that id.
    agent_token: str = attrs.field(default="", repr=False)


@message
@attrs.frozen
class ReregisterAgent:
    """A known agent (``agent_info.id`` set) rejoins with what it is running."""

    agent_info: AgentInfo
    boot_id: str = ""
    version: str = ""
    tasks: tuple[Task, ...] = ()
    executors: tuple[ExecutorSnapshot, ...] = ()
    frameworks: tuple[FrameworkInfo, ...] = ()
    #: See RegisterAgent.agent_token.
    agent_token: str = attrs.field(default="", repr=False)


@message
@attrs.frozen
class AgentRegistered:
    """The master admitted an agent under ``agent_id``."""

    agent_id: str
    master_info: MasterInfo | None = None
    ping_interval_seconds: float = 15.0


@message
@attrs.frozen
class AgentReregistered:
    """The master re-admitted a known agent."""

    agent_id: str
    master_info: MasterInfo | None = None
    ping_interval_seconds: float = 15.0


@message
@attrs.frozen
class UnregisterAgent:
    """An agent leaves for good (its tasks are reported lost)."""

    agent_id: str


@message
@attrs.frozen
class Ping:
    """Master → agent liveness probe; answered with Pong."""

    connected: bool = True


@message
@attrs.frozen
class Pong:
    """Agent → master answer to Ping."""

    agent_id: str = ""


@message
@attrs.frozen
class RunTask:
    """Run a task (master → agent, agent → executor)."""

    framework_info: FrameworkInfo
    task: TaskInfo


@message
@attrs.frozen
class KillTask:
    """Kill a task (master → agent, agent → executor)."""

    framework_id: str
    task_id: str
    kill_policy: KillPolicy | None = None


@message
@attrs.frozen
class StatusUpdate:
    """A task's status (executor → agent → master); ``status.uuid`` identifies it."""

    framework_id: str
    status: TaskStatus


@message
@attrs.frozen
class StatusUpdateAcknowledgement:
    """The framework acknowledged an update (master → agent → executor)."""

    agent_id: str
    framework_id: str
    task_id: str
    uuid: bytes


@message
@attrs.frozen
class ExitedExecutor:
    """An executor exited; ``status`` is its wait status."""

    agent_id: str
    framework_id: str
    executor_id: str
    status: int


@message
@attrs.frozen
class ShutdownFramework:
    """Kill every task and executor of a framework on this agent."""

    framework_id: str


@message
@attrs.frozen
class ShutdownExecutor:
    """Kill an executor's tasks and stop the executor."""

    framework_id: str
    executor_id: str


@message
@attrs.frozen
class ShutdownAgent:
    """The master tells an agent to shut down (e.g. it was removed)."""

    message: str = ""


@message
@attrs.frozen
class UpdateFramework:
    """The master tells agents a framework's info changed (e.g. after failover)."""

    framework_info: FrameworkInfo


# -------------------------------------------------------- executor <-> agent


@message
@attrs.frozen
class RegisterExecutor:
    """An executor started by the agent announces itself."""

    framework_id: str
    executor_id: str
    container_id: str
    #: MESOS_EXECUTOR_AUTHENTICATION_TOKEN from the executor's environment.
    token: str = attrs.field(default="", repr=False)


@message
@attrs.frozen
class ReregisterExecutor:
    """An executor reconnects to a restarted agent with its unacknowledged state."""

    framework_id: str
    executor_id: str
    container_id: str
    tasks: tuple[TaskInfo, ...] = ()
    updates: tuple[StatusUpdate, ...] = ()
    #: MESOS_EXECUTOR_AUTHENTICATION_TOKEN from the executor's environment.
    token: str = attrs.field(default="", repr=False)


@message
@attrs.frozen
class ExecutorRegistered:
    """The agent accepted an executor's registration."""

    executor_info: ExecutorInfo
    framework_info: FrameworkInfo
    agent_id: str
    agent_info: AgentInfo | None = None


@message
@attrs.frozen
class ExecutorReregistered:
    """The agent accepted an executor's re-registration."""

    agent_id: str
    agent_info: AgentInfo | None = None


