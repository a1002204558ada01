"""The agent: runs tasks for the master through executors and containerizers.

Public names: :class:`Agent` (the shell: ``await Agent(config).start()``) and
:class:`AgentConfig`.  See ``README.md`` beside this file for the flow map.
"""

from __future__ import annotations

from mesoslite.agent.agent import Agent
from mesoslite.agent.config import AgentConfig

__all__ = ["Agent", "AgentConfig"]
