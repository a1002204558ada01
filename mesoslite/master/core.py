"""The master's bookkeeping shared by every handler (PURE).

Owns: :class:`StateCore`, the registries (agents, frameworks, offers,
completed and removed ones), the peer maps that tie ZeroMQ routing ids to
agent and framework ids, the counters behind ``/metrics``, and the helpers
every handler uses: refusing a message, checking a peer, moving a task
through its states, completing it, removing offers and asking for an
allocation.  The handlers themselves live in :mod:`.agents`,
:mod:`.frameworks` and :mod:`.offers`; :class:`~.state.MasterState` joins
them.  Nothing here does I/O: handlers return :class:`~.records.Send` lists.
"""

from __future__ import annotations

import collections
import logging
import random
from collections.abc import Iterable
from typing import Any, TypeVar

from mesoslite.allocator import HierarchicalAllocator
from mesoslite.authz import Acls, acls_for
from mesoslite.clock import Clock
from mesoslite.master.authn import Authenticator
from mesoslite.master.config import MasterConfig
from mesoslite.master.records import (
    LAUNCH_TO_RUNNING_BUCKETS,
    AgentRecord,
    FrameworkRecord,
    Histogram,
    OfferRecord,
    Send,
    Target,
    TaskEntry,
    to_framework,
    to_peer,
)
from mesoslite.promtext import LATENCY_BUCKETS, HistogramFamily
from mesoslite.protocol import (
    AgentInfo,
    MasterInfo,
    ProtocolError,
    Reason,
    Rescind,
    Source,
    TaskState,
    TaskStatus,
    Update,
    can_transition,
)

log = logging.getLogger("mesoslite.master")

#: Task states counted as gauges (how many tasks are in them now); the
#: terminal states are counted cumulatively (how many tasks ended so).
GAUGE_STATES = frozenset(
    {
        TaskState.TASK_STAGING,
        TaskState.TASK_STARTING,
        TaskState.TASK_RUNNING,
        TaskState.TASK_KILLING,
        TaskState.TASK_UNREACHABLE,
    }
)

#: How many removed framework ids and removed agent ids are remembered.
MAX_REMEMBERED_IDS = 100_000
#: How many distinct refusal reasons are logged (each once).
MAX_LOGGED_REFUSALS = 10_000

#: The kinds of :attr:`StateCore.feed` entries and what each carries.
FEED_KINDS = {
    "TASK_ADDED": "TaskEntry",
    "TASK_UPDATED": "(TaskEntry, TaskStatus)",
    "AGENT_ADDED": "AgentRecord",
    "AGENT_REMOVED": "agent id",
    "FRAMEWORK_ADDED": "FrameworkRecord",
    "FRAMEWORK_UPDATED": "FrameworkRecord",
    "FRAMEWORK_REMOVED": "FrameworkRecord",
}

_K = TypeVar("_K")
_V = TypeVar("_V")


class _Bounded(collections.OrderedDict[_K, _V]):
    """An insertion-ordered dict that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: _K, value: _V) -> None:
        super().__setitem__(key, value)
        while len(self) > self.limit:
            self.popitem(last=False)


class StateCore:
    """Registries, peer maps, counters and the helpers shared by all handlers."""

    def __init__(
        self,
        config: MasterConfig,
        master_info: MasterInfo,
        clock: Clock,
        allocator: HierarchicalAllocator | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Start empty; ``allocator`` defaults to a DRF allocator on ``clock``."""
        self.config = config
        self.master_info = master_info
        self.clock = clock
        if allocator is None:
            allocator = HierarchicalAllocator(clock, rng or random.Random(), config.min_allocatable)
        self.allocator = allocator
        for role, weight in config.weights.items():
            allocator.set_weight(role, weight)
        self.start_time = clock.time()
        #: Who may do what (``--acls``; permissive default): register_frameworks, run_tasks.
        self.acls: Acls = acls_for(config.acls)

        self.agents: dict[str, AgentRecord] = {}
        self.frameworks: dict[str, FrameworkRecord] = {}
        self.offers: dict[str, OfferRecord] = {}
        self.completed_frameworks: collections.deque[FrameworkRecord] = collections.deque(
            maxlen=config.max_completed_frameworks
        )
        self.removed_framework_ids: _Bounded[str, None] = _Bounded(MAX_REMEMBERED_IDS)
        #: Agents removed as unreachable: id -> (info, removal time); they may come back.
        self.unreachable_agents: _Bounded[str, tuple[AgentInfo | None, float]] = _Bounded(
            MAX_REMEMBERED_IDS)
        #: Agents that unregistered for good: id -> removal time; told to shut down if seen.
        self.gone_agents: _Bounded[str, float] = _Bounded(MAX_REMEMBERED_IDS)
        #: Agents the registry says were admitted, awaiting re-registration after a failover.
        self.recovered_agents: dict[str, AgentInfo] = {}
        #: Durable changes for the shell's registry (:mod:`.journal`); None: not recorded.
        self.journal: list[Any] | None = None
        self.agent_peers: dict[bytes, str] = {}
        self.framework_peers: dict[bytes, str] = {}
        #: Who each connection proved to be (--authenticate_frameworks/agents): the shell
        #: installs one holding the --credentials principals; this one knows none.
        self.authn = Authenticator({}, clock, timeout=config.authentication_v0_timeout)
        #: Agent id -> the identity that registered it (principal and token digest).
        self.agent_identities: dict[str, str] = {}
        #: What changed, for the operator API's event stream (:data:`FEED_KINDS`): the
        #: shell drains it after every handler; None: nobody follows, nothing is kept.
        self.feed: list[tuple[str, Any]] | None = None

        #: Event counters (refused, dropped, agent_removals, ...).
        self.counters: collections.Counter[str] = collections.Counter()
        #: Gauges for active task states, cumulative counts for terminal ones.
        self.task_states: collections.Counter[TaskState] = collections.Counter()
        #: Seconds from the launch the master sent to the task's first TASK_RUNNING.
        self.launch_to_running = Histogram(LAUNCH_TO_RUNNING_BUCKETS)
        #: Seconds from an offer sent to its accept or decline, by ``answer``.
        self.offer_round_trip = HistogramFamily(LATENCY_BUCKETS, ("answer",))

        self._agent_seq = 0
        self._framework_seq = 0
        self._offer_seq = 0
        self._logged_refusals: set[tuple[bytes, str, str]] = set()
        self._alloc_all = False
        self._alloc_agents: set[str] = set()

    # ------------------------------------------------------------ identifiers

    def _new_agent_id(self) -> str:
        agent_id = f"{self.master_info.id}-S{self._agent_seq}"
        self._agent_seq += 1
        return agent_id

    def _new_framework_id(self) -> str:
        framework_id = f"{self.master_info.id}-{self._framework_seq:04d}"
        self._framework_seq += 1
        return framework_id

    def _new_offer_id(self) -> str:
        offer_id = f"{self.master_info.id}-O{self._offer_seq}"
        self._offer_seq += 1
        return offer_id

    # ------------------------------------------------------------------ peers

    def peer_for(self, target: Target) -> bytes | None:
        """The routing id a Send goes to now, or None when it cannot be delivered."""
        kind, key = target
        if kind == "peer":
            peer: bytes = key
            return peer
        if kind == "agent":
            agent = self.agents.get(key)
            return agent.peer if agent is not None else None
        framework = self.frameworks.get(key)
        if framework is None or not framework.connected:
            return None
        return framework.peer

    def refuse(
        self, peer: bytes, msg: Any, message: str, field: str = "", code: str = "INVALID"
    ) -> list[Send]:
        """Count and log (once per kind) a refused message; answer with ProtocolError."""
        self.counters["refused"] += 1
        name = type(msg).__name__
        key = (peer, name, field + code)
        if key not in self._logged_refusals and len(self._logged_refusals) < MAX_LOGGED_REFUSALS:
            self._logged_refusals.add(key)
            log.warning("refused %s from peer %s: %s [%s]", name, peer.hex()[:16], message, code)
        return [to_peer(peer, ProtocolError(message, field, name, code))]

    def _agent_of(
        self, peer: bytes, msg: Any, claimed: str = "", field: str = "agent_id"
    ) -> tuple[AgentRecord | None, list[Send]]:
        """The agent behind ``peer`` (and ``claimed`` matches it), else a refusal."""
        agent_id = self.agent_peers.get(peer)
        if agent_id is None:
            return None, self.refuse(
                peer, msg, "this connection is not a registered agent: register again",
                field, "NOT_REGISTERED",
            )
        if claimed and claimed != agent_id:
            return None, self.refuse(
                peer, msg,
                f"{field} {claimed!r} does not match the sending agent {agent_id!r}", field,
            )
        return self.agents[agent_id], []

    def _framework_of(
        self, peer: bytes, msg: Any, framework_id: str, field: str = "framework_id"
    ) -> tuple[FrameworkRecord | None, list[Send]]:
        """The connected framework behind ``peer`` if it is ``framework_id``, else a refusal."""
        known = self.framework_peers.get(peer)
        framework = self.frameworks.get(framework_id) if known == framework_id else None
        if framework is None or not framework.connected:
            return None, self.refuse(
                peer, msg,
                f"this connection is not subscribed as framework {framework_id!r}: subscribe again",
                field, "NOT_SUBSCRIBED",
            )
        framework.last_seen = self.clock.monotonic()
        return framework, []

    def _unmap_peer(self, peer: bytes | None) -> None:
        if peer is not None:
            self.agent_peers.pop(peer, None)
            self.framework_peers.pop(peer, None)

    def emit(self, kind: str, value: Any) -> None:
        """Note a change for the operator event stream (nothing when nobody follows)."""
        if self.feed is not None:
            self.feed.append((kind, value))

    # ------------------------------------------------------------ allocation

    def request_allocation(self, agent_ids: Iterable[str] | None = None) -> None:
        """Ask the shell for an allocation soon: of these agents, or of all (None)."""
        if agent_ids is None:
            self._alloc_all = True
        else:
            self._alloc_agents.update(agent_ids)

    def allocation_wanted(self) -> bool:
        """True when an allocation was asked for since the last :meth:`take_allocation_request`."""
        return self._alloc_all or bool(self._alloc_agents)

    def take_allocation_request(self) -> list[str] | None:
        """Clear the pending request; return the agent ids to allocate (None: all)."""
        agents = None if self._alloc_all else sorted(self._alloc_agents)
        self._alloc_all = False
        self._alloc_agents = set()
        return agents

    # ------------------------------------------------------------------ tasks

    def _count_state(self, old: TaskState | None, new: TaskState) -> None:
        if old in GAUGE_STATES:
            self.task_states[old] -= 1
        self.task_states[new] += 1

    def master_status(
        self,
        task_id: str,
        state: TaskState,
        reason: Reason,
        message: str,
        agent_id: str = "",
        executor_id: str = "",
        healthy: bool | None = None,
    ) -> TaskStatus:
        """A status update made by the master itself (no uuid: needs no ack)."""
        return TaskStatus(
            task_id=task_id,
            state=state,
            message=message,
            source=Source.SOURCE_MASTER,
            reason=reason,
            agent_id=agent_id,
            executor_id=executor_id,
            timestamp=self.clock.time(),
            healthy=healthy,
        )

    def _set_state(self, task: TaskEntry, status: TaskStatus) -> bool:
        """Apply a status to a task if the transition is legal; log and ignore it if not."""
        old = task.state
        if not can_transition(old, status.state):
            self.counters["illegal_transitions"] += 1
            log.warning(
                "framework %s task %s on agent %s: ignored illegal transition %s -> %s",
                task.framework_id, task.task_id, task.agent_id, old.value, status.state.value,
            )
            return False
        self._count_state(old, status.state)
        if status.state is TaskState.TASK_RUNNING and task.launched_at and old in (
                TaskState.TASK_STAGING, TaskState.TASK_STARTING):
            self.launch_to_running.observe(self.clock.monotonic() - task.launched_at)
        task.state = status.state
        task.add_status(status)
        self._touch_task_owners(task)
        self.emit("TASK_UPDATED", (task, status))
        return True

    def _touch_task_owners(self, task: TaskEntry) -> None:
        agent = self.agents.get(task.agent_id)
        if agent is not None:
            agent.touch()
        framework = self.frameworks.get(task.framework_id)
        if framework is not None:
            framework.touch()

    def _update_to_framework(self, framework: FrameworkRecord, status: TaskStatus) -> list[Send]:
        """An Update for a connected framework; nothing (counted as dropped) otherwise."""
        if not framework.connected:
            self.counters["dropped"] += 1
            return []
        return [to_framework(framework.id, Update(status))]

    def _master_transition(
        self, task: TaskEntry, state: TaskState, reason: Reason, message: str
    ) -> list[Send]:
        """Move a task to ``state`` on the master's own authority and tell its framework."""
        status = self.master_status(
            task.task_id, state, reason, message, task.agent_id, task.executor_id
        )
        if not self._set_state(task, status):
            return []
        log.info(
            "framework %s task %s on agent %s: %s (%s)",
            task.framework_id, task.task_id, task.agent_id, state.value, message,
        )
        framework = self.frameworks.get(task.framework_id)
        return self._update_to_framework(framework, status) if framework is not None else []

    def _complete_task(self, task: TaskEntry) -> None:
        """Forget a finished task: free its resources and keep it in completed tasks."""
        framework = self.frameworks.get(task.framework_id)
        if framework is not None:
            framework.tasks.pop(task.task_id, None)
            framework.unreachable_tasks.pop(task.task_id, None)
            framework.completed_tasks.append(task)
            framework.touch()
        agent = self.agents.get(task.agent_id)
        if agent is not None and agent.tasks.pop((task.framework_id, task.task_id),
                                                 None) is not None:
            # Exact arithmetic: the same as recompute_used(), without summing every task.
            agent.used = agent.used - task.resources
            agent.touch()
            self.allocator.recover_resources(
                task.framework_id, task.agent_id, task.role, task.resources, None
            )
            self.request_allocation([task.agent_id])
        log.info(
            "framework %s task %s on agent %s: completed as %s",
            task.framework_id, task.task_id, task.agent_id, task.state.value,
        )

    # ----------------------------------------------------------------- offers

    def _remove_offer(
        self, record: OfferRecord, recover: bool = True, refuse_seconds: float | None = None
    ) -> None:
        """Drop an outstanding offer; give its resources back to the allocator if asked."""
        offer = record.offer
        if self.offers.pop(offer.id, None) is None:
            return
        agent = self.agents.get(offer.agent_id)
        if agent is not None:
            agent.offers.discard(offer.id)
            agent.offered = agent.offered - offer.resources
            agent.touch()
        framework = self.frameworks.get(offer.framework_id)
        if framework is not None:
            framework.offers.discard(offer.id)
            framework.touch()
        if recover:
            self.allocator.recover_resources(
                offer.framework_id, offer.agent_id, offer.role, offer.resources, refuse_seconds
            )
            self.request_allocation([offer.agent_id])

    def _rescind_offers(self, offer_ids: Iterable[str], notify: bool = True) -> list[Send]:
        """Withdraw offers (recovering their resources); tell connected holders if ``notify``."""
        sends: list[Send] = []
        for offer_id in sorted(offer_ids):
            record = self.offers.get(offer_id)
            if record is None:
                continue
            self._remove_offer(record)
            framework = self.frameworks.get(record.offer.framework_id)
            if notify and framework is not None and framework.connected:
                sends.append(to_framework(framework.id, Rescind(offer_id)))
            log.info(
                "framework %s offer %s on agent %s: rescinded",
                record.offer.framework_id, offer_id, record.offer.agent_id,
            )
        return sends

    # --------------------------------------------------------------- queries

    def executor_ids(self, agent: AgentRecord, framework_id: str) -> tuple[str, ...]:
        """Executor ids (with their own resources) a framework has on an agent."""
        if not agent.executors:
            return ()
        return tuple(sorted(eid for fid, eid in agent.executors if fid == framework_id))
