"""A newly elected master rebuilding itself from the registry (PURE).

Owns: :class:`RegistrySnapshot` (the registry's content in the master's own
types), :func:`restore`, which seeds a fresh
:class:`~mesoslite.master.state.MasterState` from it, and :class:`Recovery`,
whose :meth:`~Recovery.tick` enforces the two deadlines that follow an
election:

* agents the registry admitted are *recovered* (shown in ``/state`` as
  ``recovered_slaves``) until they re-register; those still missing
  ``agent_reregister_timeout`` after the election are marked unreachable
  (durably, through the journal) and every connected framework hears
  ``Failure(agent_id)``.  Their tasks were never reported to this master,
  so reconciliation answers them ``TASK_LOST`` (``TASK_UNREACHABLE`` for
  PARTITION_AWARE frameworks); until then it does not answer them at all,
  as Mesos does.
* frameworks the registry knows are recovered (inactive) until their
  scheduler re-subscribes.  A scheduler is presumed alive for the usual
  heartbeat window after the election (``framework_heartbeat_interval`` x
  ``max_framework_missed_heartbeats``), then gets its ``failover_timeout``,
  exactly as a scheduler that goes silent would; one that has not
  re-subscribed by then is torn down (its tasks are killed when their
  agents report them).

Frameworks the registry lists as torn down keep their ids refused, and any
task of theirs an agent reports is shut down.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs

from mesoslite.master.journal import AgentRemoved, record
from mesoslite.master.records import Send, to_framework
from mesoslite.master.state import MasterState
from mesoslite.protocol import AgentInfo, Failure, FrameworkInfo

log = logging.getLogger("mesoslite.master")


@attrs.frozen
class RecoveredAgent:
    """An agent the registry admitted."""

    info: AgentInfo
    registered_time: float
    #: The identity its id is bound to ("": none recorded; the next to re-register binds it).
    identity: str = ""


@attrs.frozen
class RecoveredFramework:
    """A framework the registry remembers; ``unregistered_time`` set: torn down."""

    info: FrameworkInfo
    registered_time: float
    unregistered_time: float | None = None


@attrs.frozen
class RegistrySnapshot:
    """What the registry held when this master was elected."""

    agents: Mapping[str, RecoveredAgent] = attrs.field(factory=dict)
    unreachable: Mapping[str, float] = attrs.field(factory=dict)
    frameworks: Mapping[str, RecoveredFramework] = attrs.field(factory=dict)
    weights: Mapping[str, float] = attrs.field(factory=dict)
    #: Agents deactivated or drained by an operator: id -> plain entry (:mod:`.drain_info`).
    maintenance: Mapping[str, Any] = attrs.field(factory=dict)


def restore(state: MasterState, snapshot: RegistrySnapshot) -> dict[str, float]:
    """Seed a fresh state from ``snapshot``; return each recovered framework's deadline.

    Nothing is journaled (the registry already holds all of it).  Weights from
    the registry win over ``--weights``: they are the operator's latest word.
    """
    for agent_id, agent in snapshot.agents.items():  # who registered each agent id
        if agent.identity:
            state.agent_identities[agent_id] = agent.identity
    for role, weight in snapshot.weights.items():
        state.allocator.set_weight(role, weight)
    for agent_id, when in snapshot.unreachable.items():
        state.unreachable_agents[agent_id] = (None, when)
    now = state.clock.monotonic()
    config = state.config
    presumed_alive = config.framework_heartbeat_interval * config.max_framework_missed_heartbeats
    deadlines: dict[str, float] = {}
    for framework_id, stored in snapshot.frameworks.items():
        if stored.unregistered_time is not None:
            state.removed_framework_ids[framework_id] = None
            continue
        framework = state._recovered_framework(framework_id, stored.info)
        framework.registered_time = stored.registered_time
        deadlines[framework_id] = now + presumed_alive + stored.info.failover_timeout
    for agent_id, agent in snapshot.agents.items():
        state.recovered_agents[agent_id] = agent.info
    state.restore_maintenance(snapshot.maintenance)
    log.info("recovered from the registry: %d agents expected back, %d unreachable, "
             "%d frameworks (%d torn down), %d weights", len(snapshot.agents),
             len(snapshot.unreachable), len(deadlines), len(snapshot.frameworks) - len(deadlines),
             len(snapshot.weights))
    return deadlines


class Recovery:
    """The deadlines that follow an election, checked on every :meth:`tick`."""

    def __init__(self, state: MasterState, snapshot: RegistrySnapshot) -> None:
        """Restore ``snapshot`` into ``state``; the deadlines start now (the election)."""
        self.state = state
        self.agents_deadline = state.clock.monotonic() + state.config.agent_reregister_timeout
        self.framework_deadlines = restore(state, snapshot)
        #: Agents marked unreachable because they did not re-register in time.
        self.agents_removed = 0
        #: Frameworks torn down because they did not re-subscribe in time.
        self.frameworks_removed = 0

    @property
    def done(self) -> bool:
        """True once no agent and no framework is awaited any more."""
        return not self.state.recovered_agents and not self.framework_deadlines

    def tick(self) -> list[Send]:
        """Enforce whichever deadline has passed; the messages to send."""
        if self.done:
            return []
        now = self.state.clock.monotonic()
        sends: list[Send] = []
        if self.state.recovered_agents and now >= self.agents_deadline:
            sends += self._agents_not_back()
        for framework_id, deadline in list(self.framework_deadlines.items()):
            framework = self.state.frameworks.get(framework_id)
            if framework is None or not framework.recovered:
                del self.framework_deadlines[framework_id]  # back, or removed meanwhile
            elif now >= deadline:
                del self.framework_deadlines[framework_id]
                self.frameworks_removed += 1
                sends += self.state.remove_framework(
                    framework_id, "its scheduler did not re-subscribe within failover_timeout "
                    "after the master failover")
        return sends

    def _agents_not_back(self) -> list[Send]:
        state = self.state
        now = state.clock.time()
        missing = sorted(state.recovered_agents)
        connected = [fid for fid, fw in state.frameworks.items() if fw.connected]
        sends: list[Send] = []
        for agent_id in missing:
            info = state.recovered_agents.pop(agent_id)
            state.unreachable_agents[agent_id] = (info, now)
            state.counters["recovery_agent_removals"] += 1
            record(state.journal, AgentRemoved(agent_id, True, now))
            failure = Failure(agent_id=agent_id)
            sends += [to_framework(fid, failure) for fid in connected]
        self.agents_removed += len(missing)
        log.warning("%d agents did not re-register within agent_reregister_timeout (%.0f s) "
                    "after the election: marked unreachable (%s%s)", len(missing),
                    state.config.agent_reregister_timeout, ", ".join(missing[:10]),
                    ", ..." if len(missing) > 10 else "")
        return sends
