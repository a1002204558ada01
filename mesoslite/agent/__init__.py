"""The agent: runs tasks for the master through executors and containerizers.

Public names: :class:`AgentProcess` (the whole agent process, built by its
composition root: ``await AgentProcess(config).start()``), :class:`AgentConfig`,
:class:`AgentState` (the pure core, for tests and tools) and :class:`Agent`
(the shell that performs the core's effects).  See ``README.md`` beside this
file for the flow map.
"""

from __future__ import annotations

from mesoslite.agent.agent import Agent
from mesoslite.agent.config import AgentConfig
from mesoslite.agent.core import AgentState
from mesoslite.agent.main import AgentProcess

__all__ = ["Agent", "AgentConfig", "AgentProcess", "AgentState"]
