"""Taking an agent out: deactivate, drain, reactivate (PURE).

Owns: :class:`DrainHandlers`, the operator's three calls on an agent (Mesos 1.9's
``DEACTIVATE_AGENT``, ``DRAIN_AGENT`` and ``REACTIVATE_AGENT``) and what they change
in the master's handling of that agent:

* **deactivated**: the agent gets no offers; its outstanding offers are rescinded.
  Its tasks keep running.  It stays deactivated across disconnections,
  re-registrations and master failovers (the registry keeps it).
* **DRAINING**: deactivated, and every live task on it is killed, with a kill grace
  period of ``min(task's kill_policy, max_grace_period)`` (the agent's executors'
  default when neither is set).  ``TASK_KILLING``/``TASK_KILLED`` updates from the
  agent reach frameworks with reason ``REASON_AGENT_DRAINING`` (and, with
  ``mark_gone``, ``TASK_KILLED`` becomes ``TASK_GONE_BY_OPERATOR``).  An agent that
  was unreachable, or that restarted, is told again to kill what it still runs when
  it re-registers.
* **DRAINED**: no task is left on the agent, every terminal update acknowledged
  (checked on every :meth:`check_drains`, from ``MasterState.tick``).  With
  ``mark_gone`` the agent is then told to shut down and removed for good: it can
  never re-register, not even with a new leader (the registry keeps it as drained
  and gone).
* **reactivate**: back in service (offers again); refused while ``DRAINING``.

Every change is journaled as :class:`~.journal.AgentMaintenanceChanged` (the
registry's ``maintenance`` policy keeps ``{"agents": {id: entry}}``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs

from mesoslite.master.agents import AgentHandlers
from mesoslite.master.drain_info import DRAINED, DRAINING, AgentMaintenance
from mesoslite.master.journal import AgentMaintenanceChanged, record
from mesoslite.master.records import AgentRecord, Send, TaskEntry, to_agent, to_peer
from mesoslite.protocol import (
    KillPolicy,
    KillTask,
    Pong,
    Reason,
    ReregisterAgent,
    ShutdownAgent,
    StatusUpdate,
    TaskState,
)

log = logging.getLogger("mesoslite.master")

#: States of a drained task whose update frameworks get with ``REASON_AGENT_DRAINING``.
_DRAIN_REASON_STATES = frozenset({TaskState.TASK_KILLING, TaskState.TASK_KILLED,
                                  TaskState.TASK_GONE_BY_OPERATOR})


class DrainError(ValueError):
    """An operator call on an agent that cannot be done; ``field`` names the culprit."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


class DrainHandlers(AgentHandlers):
    """Deactivation and draining of agents, over the agent handlers."""

    def _init_drain(self) -> None:
        #: Agents out of service by id (registered, recovered or unreachable ones).
        self.maintenance: dict[str, AgentMaintenance] = {}

    # ------------------------------------------------------------ operator calls

    def _check_known(self, agent_id: str, field: str) -> None:
        if agent_id in self.gone_agents:
            raise DrainError(field, f"agent {agent_id!r} is gone")
        if (agent_id not in self.agents and agent_id not in self.recovered_agents
                and agent_id not in self.unreachable_agents):
            raise DrainError(field, f"no agent with id {agent_id!r}", 404)

    def deactivate_agent(self, agent_id: str, field: str = "agent_id") -> list[Send]:
        """Stop offering the agent's resources (DrainError when the agent is unknown)."""
        self._check_known(agent_id, field)
        entry = self.maintenance.get(agent_id)
        if entry is None:
            entry = self.maintenance[agent_id] = AgentMaintenance(agent_id)
        elif entry.deactivated:
            return []
        entry.deactivated = True
        log.info("agent %s deactivated by an operator", agent_id)
        return self._maintenance_changed(entry)

    def drain_agent(self, agent_id: str, max_grace_period: float | None = None,
                    mark_gone: bool = False, field: str = "agent_id") -> list[Send]:
        """Deactivate the agent and kill every task on it (again if already draining)."""
        self._check_known(agent_id, field)
        if max_grace_period is not None and max_grace_period < 0:
            raise DrainError("max_grace_period", f"expected >= 0, got {max_grace_period!r}")
        entry = self.maintenance.get(agent_id) or AgentMaintenance(agent_id)
        self.maintenance[agent_id] = entry
        entry.deactivated = True
        entry.drain_state = DRAINING
        entry.max_grace_period = max_grace_period
        entry.mark_gone = mark_gone
        entry.drain_started = self.clock.time()
        log.info("agent %s draining (max_grace_period %s, mark_gone %s)", agent_id,
                 "unset" if max_grace_period is None else f"{max_grace_period:g} s", mark_gone)
        sends = self._maintenance_changed(entry)
        agent = self.agents.get(agent_id)
        if agent is not None:
            sends += self._drain_kills(agent, entry)
        return sends + self.check_drains()

    def reactivate_agent(self, agent_id: str, field: str = "agent_id") -> list[Send]:
        """Put a deactivated or drained agent back in service (refused while DRAINING)."""
        self._check_known(agent_id, field)
        entry = self.maintenance.get(agent_id)
        if entry is None:
            raise DrainError(field, f"agent {agent_id!r} is not deactivated")
        if entry.drain_state == DRAINING:
            raise DrainError(field, f"agent {agent_id!r} is still draining: wait until it is "
                             "DRAINED", 409)
        del self.maintenance[agent_id]
        record(self.journal, AgentMaintenanceChanged(agent_id, None))
        agent = self.agents.get(agent_id)
        if agent is not None:
            agent.maintenance = None
            agent.touch()
            if agent.connected:
                self.allocator.activate_agent(agent_id)
            self.request_allocation([agent_id])
        log.info("agent %s reactivated by an operator", agent_id)
        return []

    # ----------------------------------------------------------------- checks

    def check_drains(self) -> list[Send]:
        """DRAINING agents with no task left become DRAINED (and are removed with mark_gone)."""
        sends: list[Send] = []
        for entry in list(self.maintenance.values()):
            if entry.drain_state != DRAINING:
                continue
            agent = self.agents.get(entry.agent_id)
            if agent is None or agent.tasks:
                continue
            entry.drain_state = DRAINED
            log.info("agent %s drained", entry.agent_id)
            sends += self._maintenance_changed(entry)
            if entry.mark_gone:
                sends.append(to_peer(agent.peer, ShutdownAgent(
                    f"agent {agent.id} was drained and marked gone by an operator")))
                sends += self.remove_agent(agent, unreachable=False,
                                           why="drained and marked gone by an operator")
        return sends

    def restore_maintenance(self, stored: Mapping[str, Any]) -> None:
        """Take the registry's ``maintenance.agents`` (a new leader; malformed entries skipped)."""
        for agent_id, plain in stored.items():
            try:
                entry = AgentMaintenance.from_plain(agent_id, plain)
            except (ValueError, TypeError) as exc:
                log.error("registry: %s, ignored", exc)
                continue
            self.maintenance[agent_id] = entry
            if entry.drain_state == DRAINED and entry.mark_gone:
                self.gone_agents[agent_id] = entry.drain_started or 0.0

    # ------------------------------------------------------ agent handler hooks

    def reregister_agent(self, peer: bytes, msg: ReregisterAgent) -> list[Send]:
        """Re-registration, then the agent's maintenance again (no offers, drain kills)."""
        sends = super().reregister_agent(peer, msg)
        agent = self.agents.get(msg.agent_info.id)
        entry = self.maintenance.get(msg.agent_info.id)
        if agent is not None and entry is not None and agent.peer == peer:
            self._apply(agent, entry)
            if entry.drain_state == DRAINING:
                sends += self._drain_kills(agent, entry)
        return sends

    def pong(self, peer: bytes, msg: Pong) -> list[Send]:
        """A pong; a reconnected deactivated agent stays without offers."""
        sends = super().pong(peer, msg)
        agent = self.agents.get(self.agent_peers.get(peer, ""))
        if agent is not None and agent.maintenance is not None:
            self.allocator.deactivate_agent(agent.id)
        return sends

    def status_update(self, peer: bytes, msg: StatusUpdate) -> list[Send]:
        """A status update; a draining agent's kills carry ``REASON_AGENT_DRAINING``."""
        entry = self.maintenance.get(self.agent_peers.get(peer, ""))
        status = msg.status
        if entry is not None and entry.drain_state is not None \
                and status.state in _DRAIN_REASON_STATES:
            state = status.state
            if entry.mark_gone and state is TaskState.TASK_KILLED:
                state = TaskState.TASK_GONE_BY_OPERATOR
            status = attrs.evolve(status, state=state, reason=Reason.REASON_AGENT_DRAINING)
            msg = attrs.evolve(msg, status=status)
        return super().status_update(peer, msg)

    def remove_agent(self, agent: AgentRecord, unreachable: bool, why: str) -> list[Send]:
        """Removal; an agent gone for good keeps only a drained-and-gone entry."""
        sends = super().remove_agent(agent, unreachable, why)
        entry = self.maintenance.get(agent.id)
        if not unreachable and entry is not None and not (
                entry.drain_state == DRAINED and entry.mark_gone):
            del self.maintenance[agent.id]
            record(self.journal, AgentMaintenanceChanged(agent.id, None))
        return sends

    # ---------------------------------------------------------------- helpers

    def _maintenance_changed(self, entry: AgentMaintenance) -> list[Send]:
        record(self.journal, AgentMaintenanceChanged(entry.agent_id, entry.to_plain()))
        agent = self.agents.get(entry.agent_id)
        return self._apply(agent, entry) if agent is not None else []

    def _apply(self, agent: AgentRecord, entry: AgentMaintenance) -> list[Send]:
        """No offers for the agent: deactivate it in the allocator, rescind its offers."""
        agent.maintenance = entry
        agent.touch()
        self.allocator.deactivate_agent(agent.id)
        return self._rescind_offers(list(agent.offers))

    def _drain_kills(self, agent: AgentRecord, entry: AgentMaintenance) -> list[Send]:
        sends: list[Send] = []
        for task in list(agent.tasks.values()):
            if task.state.is_terminal or task.state is TaskState.TASK_KILLING:
                continue
            grace = entry.grace_for(_task_grace(task))
            policy = KillPolicy(grace_period=grace) if grace is not None else None
            sends.append(to_agent(agent.id, KillTask(task.framework_id, task.task_id, policy)))
            log.info("framework %s task %s on agent %s: killed to drain the agent%s",
                     task.framework_id, task.task_id, agent.id,
                     "" if grace is None else f" (grace {grace:g} s)")
        return sends


def _task_grace(task: TaskEntry) -> float | None:
    info = task.info
    if info is None or info.kill_policy is None:
        return None
    return info.kill_policy.grace_period
