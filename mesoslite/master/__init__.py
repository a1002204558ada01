"""The master: registration, subscriptions, offers, task routing, agent health, HTTP.

Public names: :class:`Master` (the process shell), :class:`MasterConfig`,
:func:`parse_weights`, :class:`MasterState` (the pure state machine, for
tests and tools) and :class:`Send`.  ``Master`` is imported lazily so that
the pure modules (``state``, ``records``, ``validation``, ``render``,
``metrics``, ``config``) can be imported without zmq or tornado.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mesoslite.master.config import ConfigError, MasterConfig, parse_weights
from mesoslite.master.records import Send
from mesoslite.master.state import MasterState

if TYPE_CHECKING:
    from mesoslite.master.master import Master

__all__ = ["ConfigError", "Master", "MasterConfig", "MasterState", "Send", "parse_weights"]


def __getattr__(name: str) -> Any:
    if name == "Master":
        from mesoslite.master.master import Master

        return Master
    raise AttributeError(f"module 'mesoslite.master' has no attribute {name!r}")
