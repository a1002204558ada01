"""What the master knows about an agent taken out by an operator (PURE).

Owns: :class:`AgentMaintenance` -- whether an agent is *deactivated* (it gets
no offers) and how far its *drain* got (``DRAINING`` → ``DRAINED``, Mesos
1.9's ``DrainInfo``) with the drain's config (``max_grace_period``,
``mark_gone``) -- its plain form for the registry (:meth:`to_plain`,
:meth:`from_plain`) and its ``/state`` form (:func:`state_fields`).  The
decisions live in :mod:`mesoslite.master.drain`.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

DRAINING = "DRAINING"
DRAINED = "DRAINED"
DRAIN_STATES = (DRAINING, DRAINED)
NANOS = 1_000_000_000


@attrs.define(eq=False)
class AgentMaintenance:
    """An agent's operator-imposed state: deactivated, and possibly draining or drained."""

    agent_id: str
    deactivated: bool = True
    #: ``DRAINING``, ``DRAINED`` or None (only deactivated).
    drain_state: str | None = None
    #: Upper bound (seconds) of the kill grace period of drained tasks; None: their own.
    max_grace_period: float | None = None
    mark_gone: bool = False
    #: When the drain began (seconds since the epoch), for ``estimated_drain_start_time``.
    drain_started: float | None = None

    def grace_for(self, task_grace: float | None) -> float | None:
        """The kill grace period of a drained task whose own is ``task_grace`` (None: default)."""
        if self.max_grace_period is None:
            return task_grace
        if task_grace is None:
            return self.max_grace_period
        return min(task_grace, self.max_grace_period)

    def to_plain(self) -> dict[str, Any]:
        """Plain data for the registry."""
        return {"deactivated": self.deactivated, "drain_state": self.drain_state,
                "max_grace_period": self.max_grace_period, "mark_gone": self.mark_gone,
                "drain_started": self.drain_started}

    @classmethod
    def from_plain(cls, agent_id: str, obj: Any) -> AgentMaintenance:
        """Validate registry data (ValueError or TypeError naming the field)."""
        where = f"maintenance.agents[{agent_id!r}]"
        if not isinstance(obj, dict):
            raise TypeError(f"{where}: expected an object, got {type(obj).__name__}")
        state = obj.get("drain_state")
        if state is not None and state not in DRAIN_STATES:
            raise ValueError(f"{where}.drain_state: expected DRAINING, DRAINED or null, "
                             f"got {state!r}")
        grace = obj.get("max_grace_period")
        if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int | float)
                                  or not math.isfinite(grace) or grace < 0):
            raise ValueError(f"{where}.max_grace_period: expected seconds >= 0, got {grace!r}")
        started = obj.get("drain_started")
        if started is not None and (isinstance(started, bool)
                                    or not isinstance(started, int | float)):
            raise ValueError(f"{where}.drain_started: expected a time, got {started!r}")
        return cls(agent_id=agent_id, deactivated=bool(obj.get("deactivated", True)),
                   drain_state=state, max_grace_period=grace,
                   mark_gone=bool(obj.get("mark_gone", False)), drain_started=started)


def drain_info_json(entry: AgentMaintenance) -> dict[str, Any] | None:
    """Mesos's ``DrainInfo`` (None when the agent is not draining or drained)."""
    if entry.drain_state is None:
        return None
    config: dict[str, Any] = {"mark_gone": entry.mark_gone}
    if entry.max_grace_period is not None:
        config["max_grace_period"] = {"nanoseconds": round(entry.max_grace_period * NANOS)}
    return {"state": entry.drain_state, "config": config}


def state_fields(entry: AgentMaintenance | None) -> dict[str, Any]:
    """The fields Mesos adds to an agent in ``/state``: ``deactivated``, ``drain_info`` and
    ``estimated_drain_start_time`` (the last two only for a draining or drained agent)."""
    if entry is None:
        return {"deactivated": False}
    out: dict[str, Any] = {"deactivated": entry.deactivated}
    info = drain_info_json(entry)
    if info is not None:
        out["drain_info"] = info
        if entry.drain_started is not None:
            out["estimated_drain_start_time"] = entry.drain_started
    return out
