"""The master: registration, subscriptions, offers, task routing, agent health, HTTP.

Public names here: :class:`MasterConfig`, :class:`ConfigError`,
:func:`parse_weights`, :class:`MasterState` (the pure state machine, for
tests and tools) and :class:`Send`.  A whole master is built by its
composition root, :class:`mesoslite.master.main.MasterProcess` (a
:class:`MasterConfig`, then ``start()``/``stop()``); it is not re-exported
here because importing any submodule runs this file first, and the pure
modules (``state``, ``records``, ``validation``, ``render``, ``metrics``,
``config``) and the shell's dispatch table must load without zmq, tornado or
kazoo.
"""

from __future__ import annotations

from mesoslite.config_checks import ConfigError
from mesoslite.master.config import MasterConfig, parse_weights
from mesoslite.master.records import Send
from mesoslite.master.state import MasterState

__all__ = ["ConfigError", "MasterConfig", "MasterState", "Send", "parse_weights"]

