"""The agent: runs tasks for the master through executors and containerizers.

Public names here: :class:`AgentConfig` and :class:`AgentState` (the pure
core, for tests and tools).  The whole agent process is built by its
composition root, :class:`mesoslite.agent.main.AgentProcess`
(``await AgentProcess(config).start()``); it is not re-exported here because
importing any submodule runs this file first, and the pure core
(``core``, ``records``, ``effects``, ``update_streams``) must load no socket,
event-loop or process code.  See ``README.md`` beside this file for the
flow map.
"""

from __future__ import annotations

from mesoslite.agent.config import AgentConfig
from mesoslite.agent.core import AgentState

__all__ = ["AgentConfig", "AgentState"]
