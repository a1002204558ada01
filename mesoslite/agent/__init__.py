"""The agent: runs tasks for the master through executors and containerizers.

Public names: :class:`Agent` (the shell: ``await Agent(config).start()``) and
:class:`AgentConfig`.  They are imported lazily so that executors importing
``mesoslite.agent.containerizer.process`` do not pull in the agent's HTTP
stack.  See ``README.md`` beside this file for the flow map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mesoslite.agent.agent import Agent
    from mesoslite.agent.config import AgentConfig

__all__ = ["Agent", "AgentConfig"]


def __getattr__(name: str) -> Any:
    if name == "Agent":
        from mesoslite.agent.agent import Agent

        return Agent
    if name == "AgentConfig":
        from mesoslite.agent.config import AgentConfig

        return AgentConfig
    raise AttributeError(f"module 'mesoslite.agent' has no attribute {name!r}")
