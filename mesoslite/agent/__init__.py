"""The agent: runs tasks for the master through executors and containerizers.

Public names: :class:`AgentProcess` (the whole agent process, built by its
composition root: ``await AgentProcess(config).start()``), :class:`AgentConfig`,
:class:`AgentState` (the pure core, for tests and tools) and :class:`Agent`
(the shell that performs the core's effects).  ``AgentProcess`` and ``Agent``
are imported lazily, so that importing the pure core (``mesoslite.agent.core``,
``records``, ``effects``, ``update_streams``) loads no socket, event-loop or
process code: importing a submodule runs this file first.  See ``README.md``
beside this file for the flow map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mesoslite.agent.config import AgentConfig
from mesoslite.agent.core import AgentState

if TYPE_CHECKING:
    from mesoslite.agent.agent import Agent
    from mesoslite.agent.main import AgentProcess

__all__ = ["Agent", "AgentConfig", "AgentProcess", "AgentState"]


def __getattr__(name: str) -> Any:
    if name == "AgentProcess":
        from mesoslite.agent.main import AgentProcess

        return AgentProcess
    if name == "Agent":
        from mesoslite.agent.agent import Agent

        return Agent
    raise AttributeError(f"module 'mesoslite.agent' has no attribute {name!r}")
