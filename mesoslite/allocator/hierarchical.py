"""Hierarchical DRF allocator (PURE).

Owns: which framework, under which role, is offered each agent's unallocated
resources.  It keeps the agents' totals and allocations, the frameworks'
roles, activity, suppression and refusal filters, the role weights, and two
levels of ``DRFSorter``: one over roles and, per role, one over frameworks.

It does no timing and no I/O: the master shell calls ``allocate()`` on its
batch interval and on events, and passes a clock (``.time() -> float``) used
only to expire refusal filters, and a ``random.Random`` that shuffles agents.

Offered resources count as allocated until the shell gives them back with
``recover_resources`` (declined, rescinded, or the tasks using them ended).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import attrs

from mesoslite.allocator.sorter import DRFSorter
from mesoslite.resources import Resources

#: Refusal filter length a decline gets when the scheduler names none (the
#: shell passes it; ``recover_resources(refuse_seconds=None)`` installs nothing).
DEFAULT_REFUSE_SECONDS = 5.0
#: Longest refusal filter: 365 days; longer requests are capped to this.
MAX_REFUSE_SECONDS = 31_536_000.0
#: The role of frameworks that name none.
DEFAULT_ROLE = "*"

_SCALE = 1000

#: A refusal filter: (framework id, role, agent id).
_FilterKey = tuple[str, str, str]
#: A filter's place in the expiry heap: (expiry, sequence number, key).
_HeapEntry = tuple[float, int, _FilterKey]
_WHITESPACE_OR_CONTROL = frozenset(chr(c) for c in range(0x21)) | {"\x7f"}


class TimeSource(Protocol):
    """Anything with ``time() -> float`` seconds, e.g. ``mesoslite.clock.Clock``."""

    def time(self) -> float:
        """Current time in seconds."""
        ...


def validate_role(role: str) -> str:
    """Return ``role`` if it is a valid role name, else raise ValueError naming it.

    ``*`` is the default role.  Other names may be hierarchical (``eng/prod``);
    each ``/``-separated part must be non-empty, not ``.``, ``..`` or ``*``,
    must not start with ``-`` and must hold no whitespace or control characters.
    """
    if not isinstance(role, str):
        raise TypeError(f"role {role!r}: expected a string")
    if role == DEFAULT_ROLE:
        return role
    if not role:
        raise ValueError("role '': expected a non-empty name")
    for part in role.split("/"):
        if not part:
            raise ValueError(f"role {role!r}: expected no empty '/'-separated part")
        if part in (".", "..", "*"):
            raise ValueError(f"role {role!r}: part {part!r} is not allowed")
        if part.startswith("-"):
            raise ValueError(f"role {role!r}: expected no part starting with '-'")
        if any(ch in _WHITESPACE_OR_CONTROL for ch in part):
            raise ValueError(f"role {role!r}: expected no whitespace or control characters")
    return role


def _check_weight(role: str, weight: float) -> float:
    if (
        isinstance(weight, bool)
        or not isinstance(weight, (int, float))
        or math.isnan(weight)
        or math.isinf(weight)
        or weight <= 0
    ):
        raise ValueError(f"weight of role {role!r} = {weight!r}: expected a finite number > 0")
    return float(weight)


def _check_refuse(refuse_seconds: float | None) -> float | None:
    if refuse_seconds is None:
        return None
    if (
        isinstance(refuse_seconds, bool)
        or not isinstance(refuse_seconds, (int, float))
        or math.isnan(refuse_seconds)
    ):
        raise ValueError(f"refuse_seconds = {refuse_seconds!r}: expected a number or None")
    return min(float(refuse_seconds), MAX_REFUSE_SECONDS)


@attrs.frozen
class Allocation:
    """Resources of one agent handed to one framework under one role."""

    framework_id: str
    role: str
    agent_id: str
    resources: Resources


class _Agent:
    """An agent's total, its allocations per (framework, role), and what is left."""

    __slots__ = (
        "active",
        "agent_id",
        "allocated",
        "allocated_sum",
        "available",
        "filters",
        "stuck",
        "total",
    )

    def __init__(self, agent_id: str, total: Resources, empty: Resources) -> None:
        self.agent_id = agent_id
        self.total = total
        self.allocated: dict[tuple[str, str], Resources] = {}
        self.allocated_sum = empty
        self.available = total
        self.active = True
        self.filters: set[_FilterKey] = set()  # refusal filters naming this agent
        # The allocator's epoch when no framework could take this agent's remainder (-1:
        # not known); skipped while nothing changed on either side since.
        self.stuck = -1


class _Framework:
    """A framework's roles, activity, suppressed roles, filters and allocations."""

    __slots__ = ("active", "allocations", "filters", "framework_id", "roles", "suppressed")

    def __init__(self, framework_id: str, roles: dict[str, None], active: bool) -> None:
        self.framework_id = framework_id
        self.roles = roles  # insertion-ordered set
        self.active = active
        self.suppressed: set[str] = set()
        self.filters: set[_FilterKey] = set()  # this framework's refusal filters
        # role -> agents on which the framework holds resources under that role
        self.allocations: dict[str, set[str]] = {}

    def tracked_roles(self) -> list[str]:
        """Roles the framework is subscribed to or holds resources under."""
        extra = [role for role in self.allocations if role not in self.roles]
        return list(self.roles) + extra


def _ordered_roles(field: str, roles: Iterable[str]) -> dict[str, None]:
    if isinstance(roles, str):
        raise TypeError(f"{field} = {roles!r}: expected a sequence of role names, not a string")
    out: dict[str, None] = {}
    for role in roles:
        out[validate_role(role)] = None
    return out


class HierarchicalAllocator:
    """Two-level DRF: roles by weighted dominant share, then frameworks in each role.

    Each ``allocate()`` visits the chosen agents in a shuffled order and gives
    each agent's whole unallocated remainder (if it holds at least one of the
    ``min_allocatable`` alternatives) to the first framework, in DRF order,
    that is active, subscribed to the role, not suppressed in it and not
    filtered on that agent.  Sorting is incremental, so a cycle costs about
    O(agents x log clients) when most frameworks want offers.
    """

    def __init__(
        self,
        clock: TimeSource,
        rng: random.Random | None = None,
        min_allocatable: Sequence[Resources] | None = None,
        fair_sharing_excluded_resource_names: Iterable[str] = ("gpus",),
    ) -> None:
        """Create an allocator with no agents and no frameworks.

        ``rng`` defaults to ``random.Random(0)`` (deterministic).
        ``min_allocatable`` defaults to ``(cpus:0.01, mem:32)``; an empty
        sequence makes any non-empty remainder allocatable.  Resource names in
        ``fair_sharing_excluded_resource_names`` are offered but do not count
        toward dominant shares.
        """
        self._clock = clock
        self._rng = rng if rng is not None else random.Random(0)
        if min_allocatable is None:
            min_allocatable = (Resources.parse("cpus:0.01"), Resources.parse("mem:32"))
        self._min_allocatable = tuple(min_allocatable)
        if isinstance(fair_sharing_excluded_resource_names, str):
            raise TypeError(
                f"fair_sharing_excluded_resource_names = "
                f"{fair_sharing_excluded_resource_names!r}: expected a sequence of names"
            )
        self._excluded = frozenset(fair_sharing_excluded_resource_names)
        self._empty = Resources()

        self._agents: dict[str, _Agent] = {}
        self._frameworks: dict[str, _Framework] = {}
        # allocations of frameworks not (yet) added: framework id -> {(agent id, role)}
        self._orphans: dict[str, set[tuple[str, str]]] = {}
        self._weights: dict[str, float] = {}

        self._role_sorter = DRFSorter()
        self._framework_sorters: dict[str, DRFSorter] = {}
        self._total: dict[str, int] = {}  # cluster total of fair-shared scalars, thousandths
        self._total_dirty = False

        # live refusal filters: key -> time they expire
        self._filters: dict[_FilterKey, float] = {}
        # expiry order; entries may be stale (revived, replaced, removed) and are
        # checked against ``_filters`` when they come up
        self._filter_heap: list[_HeapEntry] = []
        self._filter_seq = 0

        #: Number of completed ``allocate()`` calls.
        self.allocation_runs: int = 0
        #: Skip agents no framework could take at the last look while nothing changed
        #: since (False: look at every agent each time, the plain full scan).
        self.skip_stuck = True
        # Bumped whenever the set of frameworks that may take offers changes.
        self._epoch = 0

    # -- agents -----------------------------------------------------------

    def add_agent(
        self,
        agent_id: str,
        total: Resources,
        used: Mapping[tuple[str, str], Resources] | None = None,
    ) -> None:
        """Add an agent; ``used`` is what it already runs, keyed by (framework id, role).

        Resources used by frameworks not yet added count against the agent
        at once and toward DRF shares when the framework is added.
        """
        if agent_id in self._agents:
            raise ValueError(f"agent_id {agent_id!r}: agent already added")
        used = dict(used or {})
        for _framework_id, role in used:
            validate_role(role)
        agent = _Agent(agent_id, total, self._empty)
        self._agents[agent_id] = agent
        self._add_to_total(total)
        for (framework_id, role), resources in used.items():
            if resources:
                self._allocate_on(agent, framework_id, role, resources)

    def remove_agent(self, agent_id: str) -> None:
        """Forget an agent, its allocations and every filter that names it."""
        agent = self._agent(agent_id)
        for (framework_id, role), resources in list(agent.allocated.items()):
            self._recover_on(agent, framework_id, role, resources)
        self._remove_from_total(agent.total)
        for key in list(agent.filters):
            self._drop_filter(key)
        del self._agents[agent_id]

    def update_agent_total(self, agent_id: str, total: Resources) -> None:
        """Replace an agent's total; allocations are kept (the remainder may shrink to 0)."""
        agent = self._agent(agent_id)
        self._remove_from_total(agent.total)
        agent.total = total
        self._add_to_total(total)
        agent.available = total - agent.allocated_sum
        agent.stuck = -1

    def activate_agent(self, agent_id: str) -> None:
        """Let the agent's remainder be offered again."""
        agent = self._agent(agent_id)
        agent.active = True
        agent.stuck = -1

    def deactivate_agent(self, agent_id: str) -> None:
        """Stop offering the agent; its resources stay in the cluster total."""
        self._agent(agent_id).active = False

    def candidates(self) -> list[str]:
        """Agents an ``allocate()`` over all would look at: active, with something left,
        not refused by every framework that may take offers (in the order added)."""
        epoch = self._epoch if self.skip_stuck else -2
        return [agent.agent_id for agent in self._agents.values()
                if agent.active and agent.stuck != epoch and agent.available]

    def available(self, agent_id: str) -> Resources:
        """The agent's total minus everything allocated on it."""
        return self._agent(agent_id).available

    def allocated(self, agent_id: str) -> dict[tuple[str, str], Resources]:
        """A copy of the agent's allocations keyed by (framework id, role)."""
        return dict(self._agent(agent_id).allocated)

    # -- frameworks -------------------------------------------------------

    def add_framework(
        self,
        framework_id: str,
        roles: Sequence[str],
        used: Mapping[tuple[str, str], Resources] | None = None,
        active: bool = True,
    ) -> None:
        """Add a framework subscribed to ``roles``.

        ``used`` is keyed by (agent id, role).  Entries for unknown agents are
        ignored, and so are entries the agent already reported for this
        framework and role through ``add_agent(used=...)`` (no double count).
        """
        if framework_id in self._frameworks:
            raise ValueError(f"framework_id {framework_id!r}: framework already added")
        ordered = _ordered_roles("roles", roles)
        used = dict(used or {})
        for _agent_id, role in used:
            validate_role(role)
        framework = _Framework(framework_id, ordered, bool(active))
        self._frameworks[framework_id] = framework
        for role in ordered:
            self._track(framework_id, role)
        # Adopt what agents reported before the framework was known.
        for agent_id, role in sorted(self._orphans.pop(framework_id, set())):
            self._track(framework_id, role)
            framework.allocations.setdefault(role, set()).add(agent_id)
            resources = self._agents[agent_id].allocated[(framework_id, role)]
            self._sorters_allocated(framework_id, role, resources)
        for (agent_id, role), resources in used.items():
            agent = self._agents.get(agent_id)
            if agent is None or not resources or (framework_id, role) in agent.allocated:
                continue
            self._allocate_on(agent, framework_id, role, resources)
        for role in framework.tracked_roles():
            self._sync_activity(framework, role)

    def update_framework_roles(self, framework_id: str, roles: Sequence[str]) -> None:
        """Change a framework's roles; resources it holds under dropped roles stay
        counted until recovered, but it gets no new offers under them."""
        framework = self._framework(framework_id)
        ordered = _ordered_roles("roles", roles)
        old = framework.roles
        framework.roles = ordered
        for role in ordered:
            if role not in old:
                self._track(framework_id, role)
                self._sync_activity(framework, role)
        for role in old:
            if role in ordered:
                continue
            framework.suppressed.discard(role)
            self._drop_filters(framework, {role})
            self._sync_activity(framework, role)
            self._maybe_untrack(framework, role)

    def remove_framework(self, framework_id: str) -> None:
        """Forget a framework and free everything it holds on every agent."""
        framework = self._framework(framework_id)
        for role, agent_ids in list(framework.allocations.items()):
            for agent_id in list(agent_ids):
                agent = self._agents[agent_id]
                self._recover_on(agent, framework_id, role, agent.allocated[(framework_id, role)])
        self._drop_filters(framework, None)
        framework.roles = {}
        for role in list(self._framework_sorters):
            if framework_id in self._framework_sorters[role]:
                self._maybe_untrack(framework, role)
        del self._frameworks[framework_id]

    def activate_framework(self, framework_id: str) -> None:
        """Let the framework receive offers again."""
        framework = self._framework(framework_id)
        framework.active = True
        for role in framework.tracked_roles():
            self._sync_activity(framework, role)

    def deactivate_framework(self, framework_id: str) -> None:
        """Stop offers to the framework; what it holds stays counted."""
        framework = self._framework(framework_id)
        framework.active = False
        for role in framework.tracked_roles():
            self._sync_activity(framework, role)

    def recover_resources(
        self,
        framework_id: str,
        agent_id: str,
        role: str,
        resources: Resources,
        refuse_seconds: float | None = None,
    ) -> None:
        """Give back resources allocated to a framework under ``role`` on an agent.

        With ``refuse_seconds > 0`` (capped at 365 days) the framework is not
        offered that agent under that role until the filter expires; ``None``
        or ``<= 0`` installs nothing.  Unknown agents or frameworks are
        tolerated (they may have been removed first), and recovering more than
        is allocated frees only what is allocated.
        """
        refuse = _check_refuse(refuse_seconds)
        agent = self._agents.get(agent_id)
        if agent is not None and resources:
            self._recover_on(agent, framework_id, role, resources)
        framework = self._frameworks.get(framework_id)
        if refuse is None or refuse <= 0 or framework is None or agent is None:
            return
        expiry = self._clock.time() + refuse
        key = (framework_id, role, agent_id)
        previous = self._filters.get(key)
        if previous is not None and previous >= expiry:
            return
        self._filters[key] = expiry
        framework.filters.add(key)
        agent.filters.add(key)
        self._filter_seq += 1
        heapq.heappush(self._filter_heap, (expiry, self._filter_seq, key))
        self._compact_filter_heap()

    def revive(self, framework_id: str, roles: Sequence[str] | None = None) -> None:
        """Clear the framework's filters for ``roles`` and unsuppress them.

        ``None`` or an empty sequence means every role the framework is
        subscribed to; naming an unsubscribed role raises ValueError.
        """
        framework = self._framework(framework_id)
        chosen = self._chosen_roles(framework, roles)
        self._drop_filters(framework, chosen)
        for role in chosen:
            framework.suppressed.discard(role)
            self._sync_activity(framework, role)

    def suppress(self, framework_id: str, roles: Sequence[str] | None = None) -> None:
        """Stop offers to the framework under ``roles`` (``None`` or empty: all)."""
        framework = self._framework(framework_id)
        for role in self._chosen_roles(framework, roles):
            framework.suppressed.add(role)
            self._sync_activity(framework, role)

    # -- roles ------------------------------------------------------------

    def set_weight(self, role: str, weight: float) -> None:
        """Set a role's weight (finite, > 0); a role's share is divided by it."""
        validate_role(role)
        weight = _check_weight(role, weight)
        self._weights[role] = weight
        if role in self._role_sorter:
            self._role_sorter.set_weight(role, weight)

    def weights(self) -> dict[str, float]:
        """Weights of every role given one or currently known (default 1.0)."""
        out = dict.fromkeys(self._framework_sorters, 1.0)
        out.update(self._weights)
        return out

    def role_shares(self) -> dict[str, float]:
        """Dominant share (unweighted) of every role frameworks use."""
        self._sync_totals()
        return {role: self._role_sorter.share(role) for role in self._role_sorter.clients()}

    def framework_shares(self, role: str) -> dict[str, float]:
        """Dominant share of each framework tracked under ``role`` (empty if none)."""
        self._sync_totals()
        sorter = self._framework_sorters.get(role)
        if sorter is None:
            return {}
        return {framework_id: sorter.share(framework_id) for framework_id in sorter.clients()}

    # -- allocation -------------------------------------------------------

    def expire_filters(self) -> None:
        """Drop refusal filters whose time has come (``allocate()`` does this too)."""
        self._expire_filters(self._clock.time())

    def allocate(self, agent_ids: Iterable[str] | None = None) -> list[Allocation]:
        """Offer the remainder of the given agents (all when ``None``) in DRF order.

        Returns one ``Allocation`` per (framework, role, agent); the returned
        resources are now allocated.  Unknown or deactivated agents are skipped.
        """
        now = self._clock.time()
        self._expire_filters(now)
        self._sync_totals()
        if agent_ids is None:
            agents = [agent for agent in self._agents.values() if agent.active]
        else:
            if isinstance(agent_ids, str):
                raise TypeError(f"agent_ids = {agent_ids!r}: expected an iterable of ids")
            seen: dict[str, None] = dict.fromkeys(agent_ids)
            agents = [
                agent
                for agent in (self._agents.get(agent_id) for agent_id in seen)
                if agent is not None and agent.active
            ]
        self._rng.shuffle(agents)

        result: list[Allocation] = []
        role_sorter = self._role_sorter
        framework_sorters = self._framework_sorters
        filters = self._filters
        epoch, skip = self._epoch, self.skip_stuck
        for agent in agents:
            if skip and agent.stuck == epoch:
                continue  # no framework could take it, and nothing changed since
            offer = agent.available
            if not self._allocatable(offer):
                continue
            agent_id = agent.agent_id
            chosen: tuple[str, str] | None = None
            for role in role_sorter.ordered():
                for framework_id in framework_sorters[role].ordered():
                    if filters:
                        expiry = filters.get((framework_id, role, agent_id))
                        if expiry is not None and expiry > now:
                            continue
                    chosen = (framework_id, role)
                    break
                if chosen is not None:
                    break
            if chosen is None:
                agent.stuck = epoch
                continue
            framework_id, role = chosen
            self._allocate_on(agent, framework_id, role, offer)
            result.append(Allocation(framework_id, role, agent_id, offer))
        self.allocation_runs += 1
        return result

    # -- internals: lookups -----------------------------------------------

    def _agent(self, agent_id: str) -> _Agent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise KeyError(f"agent_id {agent_id!r}: no such agent") from None

    def _framework(self, framework_id: str) -> _Framework:
        try:
            return self._frameworks[framework_id]
        except KeyError:
            raise KeyError(f"framework_id {framework_id!r}: no such framework") from None

    def _chosen_roles(self, framework: _Framework, roles: Sequence[str] | None) -> list[str]:
        if not roles:
            return list(framework.roles)
        chosen = list(_ordered_roles("roles", roles))
        missing = [role for role in chosen if role not in framework.roles]
        if missing:
            raise ValueError(
                f"roles = {missing!r}: framework {framework.framework_id!r} "
                f"is subscribed only to {list(framework.roles)!r}"
            )
        return chosen

    def _allocatable(self, resources: Resources) -> bool:
        if not resources:
            return False
        if not self._min_allocatable:
            return True
        return any(resources.contains(minimum) for minimum in self._min_allocatable)

    # -- internals: allocation bookkeeping --------------------------------

    def _fair(self, resources: Resources) -> dict[str, float]:
        scalars = resources.scalars()
        if self._excluded:
            return {k: v for k, v in scalars.items() if k not in self._excluded}
        return scalars

    def _allocate_on(
        self, agent: _Agent, framework_id: str, role: str, resources: Resources
    ) -> None:
        """Record ``resources`` as allocated on ``agent`` to (framework, role)."""
        key = (framework_id, role)
        held = agent.allocated.get(key)
        agent.allocated[key] = resources if held is None else held + resources
        agent.allocated_sum = agent.allocated_sum + resources
        agent.available = agent.available - resources
        agent.stuck = -1
        framework = self._frameworks.get(framework_id)
        if framework is None:
            self._orphans.setdefault(framework_id, set()).add((agent.agent_id, role))
            return
        if role not in framework.allocations:
            self._track(framework_id, role)
            framework.allocations[role] = set()
            self._sync_activity(framework, role)
        framework.allocations[role].add(agent.agent_id)
        self._sorters_allocated(framework_id, role, resources)

    def _recover_on(
        self, agent: _Agent, framework_id: str, role: str, resources: Resources
    ) -> None:
        """Free up to ``resources`` of (framework, role)'s allocation on ``agent``."""
        key = (framework_id, role)
        held = agent.allocated.get(key)
        if held is None:
            return
        left = held - resources
        freed = held - left
        if left:
            agent.allocated[key] = left
        else:
            del agent.allocated[key]
        agent.allocated_sum = agent.allocated_sum - freed
        agent.available = agent.total - agent.allocated_sum
        agent.stuck = -1
        framework = self._frameworks.get(framework_id)
        if framework is None:
            if not left:
                orphans = self._orphans.get(framework_id)
                if orphans is not None:
                    orphans.discard((agent.agent_id, role))
                    if not orphans:
                        del self._orphans[framework_id]
            return
        fair = self._fair(freed)
        if fair:
            self._framework_sorters[role].unallocated(framework_id, fair)
            self._role_sorter.unallocated(role, fair)
        if not left:
            agent_ids = framework.allocations[role]
            agent_ids.discard(agent.agent_id)
            if not agent_ids:
                del framework.allocations[role]
                self._maybe_untrack(framework, role)

    def _sorters_allocated(self, framework_id: str, role: str, resources: Resources) -> None:
        fair = self._fair(resources)
        if fair:
            self._framework_sorters[role].allocated(framework_id, fair)
            self._role_sorter.allocated(role, fair)

    # -- internals: sorter membership -------------------------------------

    def _track(self, framework_id: str, role: str) -> None:
        """Make sure ``role`` is in the role sorter and the framework in its sorter."""
        sorter = self._framework_sorters.get(role)
        if sorter is None or framework_id not in sorter:
            self._epoch += 1
        if sorter is None:
            sorter = DRFSorter()
            sorter.set_total(self._total_floats())
            self._framework_sorters[role] = sorter
            self._role_sorter.add(role, self._weights.get(role, 1.0))
        if framework_id not in sorter:
            sorter.add(framework_id)
            sorter.deactivate(framework_id)

    def _maybe_untrack(self, framework: _Framework, role: str) -> None:
        """Drop the framework from ``role`` once it neither wants nor holds anything there."""
        if role in framework.roles or role in framework.allocations:
            return
        sorter = self._framework_sorters.get(role)
        if sorter is None or framework.framework_id not in sorter:
            return
        self._epoch += 1
        sorter.remove(framework.framework_id)
        if not len(sorter):
            del self._framework_sorters[role]
            self._role_sorter.remove(role)

    def _sync_activity(self, framework: _Framework, role: str) -> None:
        self._epoch += 1
        sorter = self._framework_sorters.get(role)
        if sorter is None or framework.framework_id not in sorter:
            return
        wanted = framework.active and role in framework.roles and role not in framework.suppressed
        if wanted:
            sorter.activate(framework.framework_id)
        else:
            sorter.deactivate(framework.framework_id)

    # -- internals: cluster total -----------------------------------------

    def _add_to_total(self, resources: Resources) -> None:
        for name, value in self._fair(resources).items():
            self._total[name] = self._total.get(name, 0) + round(value * _SCALE)
        self._total_dirty = True

    def _remove_from_total(self, resources: Resources) -> None:
        for name, value in self._fair(resources).items():
            left = self._total.get(name, 0) - round(value * _SCALE)
            if left > 0:
                self._total[name] = left
            else:
                self._total.pop(name, None)
        self._total_dirty = True

    def _total_floats(self) -> dict[str, float]:
        return {name: value / _SCALE for name, value in self._total.items()}

    def _sync_totals(self) -> None:
        """Push the cluster total to every sorter (deferred so adding agents is cheap)."""
        if not self._total_dirty:
            return
        total = self._total_floats()
        self._role_sorter.set_total(total)
        for sorter in self._framework_sorters.values():
            sorter.set_total(total)
        self._total_dirty = False

    # -- internals: filters -----------------------------------------------

    def _drop_filters(self, framework: _Framework, roles: Iterable[str] | None) -> None:
        """Remove the framework's filters for ``roles`` (all when None)."""
        chosen = None if roles is None else set(roles)
        for key in list(framework.filters):
            if chosen is None or key[1] in chosen:
                self._drop_filter(key)

    def _drop_filter(self, key: _FilterKey) -> None:
        framework_id, _role, agent_id = key
        del self._filters[key]
        framework = self._frameworks.get(framework_id)
        if framework is not None:
            framework.filters.discard(key)
        agent = self._agents.get(agent_id)
        if agent is not None:
            agent.filters.discard(key)
            agent.stuck = -1

    def _expire_filters(self, now: float) -> None:
        heap = self._filter_heap
        popped = 0
        while heap and heap[0][0] <= now:
            if popped == 1024:
                # Many filters expire together: one linear pass beats popping each.
                expired = [entry for entry in heap if entry[0] <= now]
                self._filter_heap = heap = [entry for entry in heap if entry[0] > now]
                heapq.heapify(heap)
                for entry in expired:
                    self._expire_one(entry)
                return
            self._expire_one(heapq.heappop(heap))
            popped += 1

    def _expire_one(self, entry: _HeapEntry) -> None:
        expiry, _seq, key = entry
        if self._filters.get(key) == expiry:  # else stale: revived, replaced or removed
            self._drop_filter(key)

    def _compact_filter_heap(self) -> None:
        """Rebuild the heap from live filters once stale entries dominate it."""
        if len(self._filter_heap) <= 2 * len(self._filters) + 1024:
            return
        first = self._filter_seq + 1
        self._filter_heap = [
            (expiry, seq, key) for seq, (key, expiry) in enumerate(self._filters.items(), first)
        ]
        self._filter_seq += len(self._filters)
        heapq.heapify(self._filter_heap)
