"""What the agent's core asks its shell to do (PURE values).

Owns: the effect types :class:`~mesoslite.agent.core.AgentState` returns
from every handler, and :data:`Effect`, their union.  The core decides; the
shell (:mod:`mesoslite.agent.agent`) performs each effect, in order, with the
part that owns the I/O:

- messages: :class:`ToMaster`, :class:`ToExecutor` (``peer`` is the
  executor's connection, opaque to the core);
- the checkpoint (:class:`~mesoslite.agent.checkpoint.Checkpointer`):
  :class:`WriteAgentInfo`, :class:`WriteFramework`, :class:`WriteExecutor`,
  :class:`WriteRun`, :class:`WriteTask`, :class:`WriteUpdates`,
  :class:`ForgetFramework`, :class:`ForgetAgent`;
- executor processes (:class:`~mesoslite.agent.executors.ExecutorManager`):
  :class:`LaunchExecutor`, :class:`KillContainer`, :class:`EnforceShutdown`,
  :class:`KillStrays`, :class:`AdoptContainer`;
- Docker tasks (:class:`~mesoslite.agent.docker_tasks.DockerTasks`):
  :class:`RunDockerTask`, :class:`KillDockerTask`, :class:`ResumeDockerTask`,
  :class:`DiscardDockerContainer`;
- the fetcher (:class:`~mesoslite.agent.fetcher.FetchTasks`): :class:`FetchUris`,
  :class:`CancelFetch`;
- the agent itself: :class:`Registered` (the master link is registered),
  :class:`ArmRetry` (the status-update retry timer), :class:`StopAgent`.
"""

from __future__ import annotations

from typing import Any

import attrs

from mesoslite.agent.update_streams import Record
from mesoslite.protocol import (
    AgentInfo,
    CommandInfo,
    CommandURI,
    ExecutorInfo,
    FrameworkInfo,
    TaskInfo,
)
from mesoslite.resources import Resources

# ------------------------------------------------------------------ messages


@attrs.frozen
class ToMaster:
    """Send ``message`` to the master."""

    message: Any


@attrs.frozen
class ToExecutor:
    """Send ``message`` to the executor (or command host) connected as ``peer``."""

    peer: Any
    message: Any


# ---------------------------------------------------------------- checkpoint


@attrs.frozen
class WriteAgentInfo:
    """Record the registered agent's info (and make it the latest agent)."""

    info: AgentInfo


@attrs.frozen
class WriteFramework:
    """Record a checkpointing framework's info."""

    agent_id: str
    info: FrameworkInfo


@attrs.frozen
class WriteExecutor:
    """Record an executor (``kind``: custom | command | docker | command-host)."""

    agent_id: str
    framework_id: str
    info: ExecutorInfo
    kind: str
    host_container_id: str = ""


@attrs.frozen
class WriteRun:
    """Record a container run.

    ``pid`` 0: a command or Docker task's container, with no executor process
    of its own (``host_container_id`` names a command task's host).  Otherwise
    the shell adds the process's start time and the executor endpoint.
    """

    agent_id: str
    framework_id: str
    executor_id: str
    container_id: str
    pid: int = 0
    host_container_id: str = ""


@attrs.frozen
class WriteTask:
    """Record a task given to an executor run."""

    agent_id: str
    framework_id: str
    executor_id: str
    container_id: str
    task: TaskInfo


@attrs.frozen
class WriteUpdates:
    """Append a task's status-update records (``("UPDATE", update)`` / ``("ACK", uuid)``)."""

    agent_id: str
    framework_id: str
    executor_id: str
    container_id: str
    task_id: str
    records: tuple[Record, ...]


@attrs.frozen
class ForgetFramework:
    """Delete a removed framework's checkpoint."""

    agent_id: str
    framework_id: str


@attrs.frozen
class ForgetAgent:
    """Drop the ``latest`` agent link: the next start registers as a new agent."""


# --------------------------------------------------------- executor processes


@attrs.frozen
class LaunchExecutor:
    """Start an executor process (a custom executor or a framework's command host).

    ``environment`` holds the executor's own variables; the shell adds the
    agent's (how to reach it, ids, sandbox: protocol.md §6).
    """

    framework_id: str
    executor_id: str
    container_id: str
    directory: str
    command: CommandInfo
    resources: Resources = attrs.field(factory=Resources)
    environment: dict[str, str] = attrs.field(factory=dict)
    checkpoint: bool = False


@attrs.frozen
class KillContainer:
    """Kill an executor's container now (SIGKILL to its process group)."""

    container_id: str


@attrs.frozen
class EnforceShutdown:
    """Kill an executor's container if it is still running ``grace`` seconds from now."""

    container_id: str
    grace: float


@attrs.frozen
class KillStrays:
    """Kill task processes a dead command host left behind (found by ``MESOS_CONTAINER_ID``)."""

    container_ids: frozenset[str]


@attrs.frozen
class AdoptContainer:
    """Watch a recovered executor process that survived an agent restart."""

    container_id: str


# -------------------------------------------------------------- Docker tasks


@attrs.frozen
class RunDockerTask:
    """Launch a Docker task's container and follow it (pull, start, health, wait)."""

    agent_id: str
    framework_id: str
    executor_id: str
    container_id: str
    directory: str
    task: TaskInfo
    environment: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class FetchUris:
    """Prepare a task before it starts, off the loop: fetch its URIs into its sandbox and
    resolve its secret variables (``secrets``: name → reference) from the agent's secret
    store; the shell then calls ``AgentState.fetch_finished`` with the error ("" when all
    went well) and the resolved values."""

    framework_id: str
    executor_id: str
    container_id: str
    task_id: str
    sandbox: str
    uris: tuple[CommandURI, ...]
    user: str = ""
    secrets: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class CancelFetch:
    """Abort the fetch of a task that was killed while its URIs were being fetched."""

    framework_id: str
    task_id: str


@attrs.frozen
class KillDockerTask:
    """Stop a Docker task's container: SIGTERM, SIGKILL after ``grace`` seconds."""

    container_id: str
    grace: float


@attrs.frozen
class ResumeDockerTask:
    """Follow a Docker task's container reattached after an agent restart."""

    container_id: str


@attrs.frozen
class DiscardDockerContainer:
    """Stop and remove a reattached container whose tasks are all over."""

    container_id: str


# --------------------------------------------------------------------- agent


@attrs.frozen
class Registered:
    """The master accepted the (re-)registration: the link is registered."""

    ping_interval: float


@attrs.frozen
class ArmRetry:
    """Resend due status updates at ``at`` (the clock's ``monotonic()`` time)."""

    at: float


@attrs.frozen
class StopAgent:
    """Stop the agent, killing every task, without unregistering (the master asked)."""


Effect = (
    ToMaster | ToExecutor
    | WriteAgentInfo | WriteFramework | WriteExecutor | WriteRun | WriteTask | WriteUpdates
    | ForgetFramework | ForgetAgent
    | LaunchExecutor | KillContainer | EnforceShutdown | KillStrays | AdoptContainer
    | RunDockerTask | KillDockerTask | ResumeDockerTask | DiscardDockerContainer | FetchUris
    | CancelFetch
    | Registered | ArmRetry | StopAgent
)
