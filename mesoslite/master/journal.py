"""What the master's state changed that must survive a failover (PURE).

Owns: the change records the pure state appends to ``MasterState.journal``
when something durable changes -- an agent admitted or removed, a framework
stored or removed, a role's weight set -- and :func:`record`, the one way
handlers append them.  The shell (:mod:`mesoslite.master.leadership`) drains
the journal after every handled event, turns the changes into registry
operations (:mod:`mesoslite.master.registry_sync`) and holds back the
messages that depend on them until the registry write is durable.

The journal is off (``None``) unless a shell switched it on, so tests that
drive :class:`~mesoslite.master.state.MasterState` alone pay nothing.
"""

from __future__ import annotations

from typing import Any

import attrs

from mesoslite.protocol import AgentInfo, FrameworkInfo


@attrs.frozen
class AgentAdmitted:
    """An agent registered, or re-registered (possibly with a changed AgentInfo)."""

    info: AgentInfo
    registered_time: float
    #: Who the agent id is bound to (:func:`mesoslite.master.authn.agent_identity`).
    identity: str = ""


@attrs.frozen
class AgentRemoved:
    """An agent left: ``unreachable`` (it may come back) or gone for good."""

    agent_id: str
    unreachable: bool
    time: float


@attrs.frozen
class FrameworkStored:
    """A framework subscribed (new, failed over or back after a master change)."""

    info: FrameworkInfo
    registered_time: float


@attrs.frozen
class FrameworkRemoved:
    """A framework was torn down; its id may never subscribe again."""

    info: FrameworkInfo
    registered_time: float
    unregistered_time: float


@attrs.frozen
class WeightChanged:
    """An operator set a role's weight."""

    role: str
    weight: float


@attrs.frozen
class AgentMaintenanceChanged:
    """An operator deactivated, drained or reactivated an agent (``entry`` None: in service)."""

    agent_id: str
    entry: dict[str, Any] | None


Change = (AgentAdmitted | AgentRemoved | FrameworkStored | FrameworkRemoved | WeightChanged
          | AgentMaintenanceChanged)


def record(journal: list[Any] | None, change: Change) -> None:
    """Append ``change`` to ``journal`` when journaling is on (``journal`` not None)."""
    if journal is not None:
        journal.append(change)
