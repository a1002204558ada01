"""The agent's core: every decision about frameworks, executors and tasks (PURE).

Public names: :class:`AgentState` and :data:`MASTER_DISPATCH`.  The core
takes plain values — master messages, executor messages from an opaque
``peer``, container events, "the retry timer fired", a checkpoint read back —
plus an injected clock, and returns :mod:`~mesoslite.agent.effects` for the
shell to perform.  It performs no I/O.  Its parts, by concern:

- :mod:`.base` — identity, registries, counters, the registration message;
- :mod:`.updates` — the status-update flow (over the PURE streams of
  :mod:`mesoslite.agent.update_streams`): accept, send, retry, acknowledge,
  complete; executors and frameworks ending;
- :mod:`.executors` — executor processes and command hosts: creation,
  delivery, executor messages, launches, exits, timeouts, shutdown;
- :mod:`.docker` — Docker tasks: what each container event means;
- :mod:`.tasks` — the master's messages (RunTask, KillTask, shutdowns, ...);
- :mod:`.rebuild` — rebuilding everything from a checkpoint after a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mesoslite.agent.core.rebuild import Rebuild
from mesoslite.agent.effects import Effect
from mesoslite.protocol import (
    AgentRegistered,
    AgentReregistered,
    FrameworkToExecutorMessage,
    KillTask,
    RunTask,
    ShutdownAgent,
    ShutdownExecutor,
    ShutdownFramework,
    StatusUpdateAcknowledgement,
    UpdateFramework,
)


class AgentState(Rebuild):
    """One agent's frameworks, executors and tasks, and every decision about them."""


#: The master → agent messages the core handles, and the handler of each (the shell
#: answers Ping, ProtocolError and LeaderRedirect itself: they are about the link).
MASTER_DISPATCH: dict[type, Callable[[AgentState, Any], list[Effect]]] = {
    AgentRegistered: AgentState.registration_accepted,
    AgentReregistered: AgentState.registration_accepted,
    RunTask: AgentState.run_task,
    KillTask: AgentState.kill_task,
    StatusUpdateAcknowledgement: AgentState.acknowledge,
    FrameworkToExecutorMessage: AgentState.message_to_executor,
    ShutdownFramework: AgentState.shutdown_framework,
    ShutdownExecutor: AgentState.shutdown_executor_message,
    ShutdownAgent: AgentState.shutdown_agent,
    UpdateFramework: AgentState.update_framework,
}

__all__ = ["MASTER_DISPATCH", "AgentState"]
