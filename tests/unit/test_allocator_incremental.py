"""The allocator's skipping of agents no framework could take (incremental allocation)
makes the same decisions as a full scan of every agent, on random clusters and histories."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mesoslite.allocator import HierarchicalAllocator
from mesoslite.resources import Resources
from mesoslite.testing import FakeClock

AGENT_SIZES = [Resources.parse("cpus:4;mem:4096"), Resources.parse("cpus:1;mem:512"),
               Resources.parse("cpus:0.5;mem:64")]
ROLES = ["*", "a", "b"]

#: One step of a random history: (kind, numbers drawn for it).
_step = st.tuples(
    # Declines, filter expiry and new agents and frameworks are what make agents stuck and
    # unstuck: drawn more often than the rest.
    st.sampled_from(["allocate_some", "decline", "decline", "decline", "accept_part",
                     "recover_all", "advance", "advance", "advance", "add_framework",
                     "add_framework", "remove_framework", "deactivate", "activate",
                     "suppress", "revive", "add_agent", "add_agent", "add_agent",
                     "remove_agent", "agent_down", "agent_up", "weight"]),
    st.integers(0, 50), st.integers(0, 50),
)


class Pair:
    """Two allocators fed the same calls: one skipping stuck agents, one scanning all."""

    def __init__(self, seed: int) -> None:
        """Two empty allocators on one fake clock, with generators of the same seed."""
        self.clock = FakeClock(start=0.0)
        self.fast = HierarchicalAllocator(self.clock, rng=random.Random(seed))
        self.full = HierarchicalAllocator(self.clock, rng=random.Random(seed))
        self.full.skip_stuck = False
        self.agents: list[str] = []
        self.frameworks: list[str] = []
        self.held: list[tuple[str, str, str, Resources]] = []  # (framework, role, agent, res)
        self.serial = 0

    def both(self, method: str, *args: Any) -> None:
        """Call ``method`` on both; they must agree on raising or not."""
        errors = []
        for allocator in (self.fast, self.full):
            try:
                getattr(allocator, method)(*args)
            except (KeyError, ValueError) as exc:
                errors.append(type(exc))
        assert len(errors) in (0, 2)

    def allocate(self, agent_ids: list[str] | None) -> None:
        """Allocate on both: the same allocations, in the same order."""
        fast = self.fast.allocate(agent_ids)
        full = self.full.allocate(agent_ids)
        assert fast == full
        self.held += [(a.framework_id, a.role, a.agent_id, a.resources) for a in fast]

    def step(self, kind: str, x: int, y: int) -> None:
        """One step of the history."""
        def pick(items: list[str]) -> str:
            return items[x % len(items)]

        if kind == "allocate":
            self.allocate(None)
        elif kind == "allocate_some" and self.agents:
            self.allocate([pick(self.agents), self.agents[y % len(self.agents)]])
        elif kind in ("decline", "accept_part", "recover_all") and self.held:
            framework_id, role, agent_id, res = self.held.pop(x % len(self.held))
            if kind == "accept_part":  # a task keeps part, the rest comes back
                part = Resources.parse("cpus:0.1;mem:16")
                res = res - part
            refuse = None if kind == "recover_all" else float(y % 7)
            self.both("recover_resources", framework_id, agent_id, role, res, refuse)
        elif kind == "advance":
            self.clock.advance(float(y % 5))
        elif kind == "add_framework" and len(self.frameworks) < 6:
            self.serial += 1
            framework_id = f"f{self.serial}"
            roles = [ROLES[x % 3]] if y % 2 else [ROLES[x % 3], ROLES[(x + 1) % 3]]
            self.both("add_framework", framework_id, roles)
            self.frameworks.append(framework_id)
        elif kind == "remove_framework" and self.frameworks:
            framework_id = self.frameworks.pop(x % len(self.frameworks))
            self.both("remove_framework", framework_id)
            self.held = [h for h in self.held if h[0] != framework_id]
        elif kind in ("deactivate", "activate", "suppress", "revive") and self.frameworks:
            method = {"deactivate": "deactivate_framework", "activate": "activate_framework",
                      "suppress": "suppress", "revive": "revive"}[kind]
            self.both(method, pick(self.frameworks))
        elif kind == "add_agent" and len(self.agents) < 12:
            self.serial += 1
            agent_id = f"a{self.serial}"
            self.both("add_agent", agent_id, AGENT_SIZES[x % len(AGENT_SIZES)])
            self.agents.append(agent_id)
        elif kind == "remove_agent" and self.agents:
            agent_id = self.agents.pop(x % len(self.agents))
            self.both("remove_agent", agent_id)
            self.held = [h for h in self.held if h[2] != agent_id]
        elif kind in ("agent_down", "agent_up") and self.agents:
            method = "deactivate_agent" if kind == "agent_down" else "activate_agent"
            self.both(method, pick(self.agents))
        elif kind == "weight":
            self.both("set_weight", ROLES[x % 3], 0.5 + (y % 4))


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 1000), steps=st.lists(_step, min_size=1, max_size=80))
def test_skipping_stuck_agents_decides_like_a_full_scan(
        seed: int, steps: list[tuple[str, int, int]]) -> None:
    """Every allocate() returns the same allocations with and without the skipping."""
    pair = Pair(seed)
    for kind, x, y in steps:
        pair.step(kind, x, y)
        pair.allocate(None)  # after every step, as the batch allocation would
    for _ in range(3):
        pair.clock.advance(3.0)
        pair.allocate(None)


def test_an_agent_every_framework_refused_is_skipped_until_something_changes() -> None:
    """The skip is real: a refused agent is not examined again until a filter expires."""
    clock = FakeClock(start=0.0)
    allocator = HierarchicalAllocator(clock, rng=random.Random(1))
    allocator.add_agent("a1", AGENT_SIZES[0])
    allocator.add_framework("f1", ["*"])
    [offer] = allocator.allocate()
    allocator.recover_resources("f1", "a1", "*", offer.resources, 10.0)
    assert allocator.allocate() == []
    agent = allocator._agents["a1"]
    assert agent.stuck == allocator._epoch  # marked: the next scans skip it
    clock.advance(11.0)
    [again] = allocator.allocate()  # the filter expired: offered again
    assert again.agent_id == "a1"


def test_a_skipped_agent_is_offered_once_a_framework_may_take_it_again() -> None:
    """An agent stuck because no framework was active is offered when one is activated."""
    pair = Pair(3)
    for step in [("add_agent", 0, 0), ("add_framework", 0, 1), ("deactivate", 0, 0),
                 ("recover_all", 0, 0), ("activate", 0, 0)]:
        pair.step(*step)
        pair.allocate(None)
        if step[0] == "recover_all":
            assert pair.fast._agents["a1"].stuck == pair.fast._epoch  # skipped from now on
    assert pair.held and pair.held[-1][2] == "a1"  # offered again after the activation


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 1000), steps=st.lists(_step, min_size=1, max_size=60))
def test_allocating_the_candidates_offers_what_allocating_all_offers(
        seed: int, steps: list[tuple[str, int, int]]) -> None:
    """``candidates()`` leaves out only agents an allocation over all would not offer."""
    pair = Pair(seed)
    for kind, x, y in steps:
        pair.step(kind, x, y)
        left_out = set(pair.fast._agents) - set(pair.fast.candidates())
        offered = {a.agent_id for a in pair.full.allocate(None)}
        assert not offered & left_out
        pair.fast.allocate(None)  # keep the two in step (same agents allocated)
        for agent_id in offered:
            assert pair.fast._agents[agent_id].available == pair.full._agents[agent_id].available
