"""The master: registration, subscriptions, offers, task routing, agent health, HTTP.

Public names: :class:`MasterProcess` (a whole master: build it with a
:class:`MasterConfig`, then ``start()``/``stop()``), :class:`MasterConfig`,
:class:`ConfigError`, :func:`parse_weights`, :class:`MasterState` (the pure
state machine, for tests and tools) and :class:`Send`.  ``MasterProcess`` is
imported on first use so that the pure modules (``state``, ``records``,
``validation``, ``render``, ``metrics``, ``config``) and the shell's
dispatch table load without zmq, tornado or kazoo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mesoslite.config_checks import ConfigError
from mesoslite.master.config import MasterConfig, parse_weights
from mesoslite.master.records import Send
from mesoslite.master.state import MasterState

if TYPE_CHECKING:
    from mesoslite.master.main import MasterProcess

__all__ = ["ConfigError", "MasterConfig", "MasterProcess", "MasterState", "Send", "parse_weights"]


def __getattr__(name: str) -> Any:
    if name == "MasterProcess":
        from mesoslite.master.main import MasterProcess

        return MasterProcess
    raise AttributeError(f"module 'mesoslite.master' has no attribute {name!r}")
