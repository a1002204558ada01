"""Leadership of one master, without sockets or ZooKeeper: plain callbacks, a fake contender
and registry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mesoslite.coordination import FencedError, RegistryState, parse_zk_url
from mesoslite.coordination.tracking import LeadershipState
from mesoslite.master import MasterConfig, MasterState, Send
from mesoslite.master import leadership as leadership_module
from mesoslite.master.leadership import Leadership, LeadershipCallbacks, LeadershipLost
from mesoslite.master.master import DISPATCH
from mesoslite.master.registry_sync import InMemoryRegistry
from mesoslite.protocol import (
    AgentInfo,
    AgentRegistered,
    Heartbeat,
    LeaderRedirect,
    MasterInfo,
    ProtocolError,
    RegisterAgent,
)
from mesoslite.resources import Resources
from mesoslite.testing import FakeClock
from mesoslite.testing.harness import AGENT_RESOURCES
from tests.support.procs import holding, until


def _info(master_id: str, port: int = 5050) -> MasterInfo:
    return MasterInfo(id=master_id, ip="127.0.0.1", port=port, hostname="m.test", version="t",
                      zmq_endpoint=f"tcp://127.0.0.1:{port + 5}",
                      http_endpoint=f"http://127.0.0.1:{port}")


class Recorded:
    """What the leadership asked of the process around it, recorded by plain callables."""

    def __init__(self) -> None:
        self.info = _info("me")
        self.sent: list[tuple[bytes, Any]] = []
        self.delivered: list[list[Send]] = []
        self.handled: list[tuple[bytes, Any]] = []
        self.leading: list[MasterState] = []
        self.timers_running = False

    def callbacks(self) -> LeadershipCallbacks:
        """Plain functions that record each call."""
        def elected(state: MasterState) -> None:
            self.leading.append(state)
            self.timers_running = True

        def deposed() -> None:
            self.timers_running = False

        def handle(peer: bytes, msg: Any) -> None:
            assert self.leading, "handled before the state was rebuilt"
            self.handled.append((peer, msg))

        def send(peer: bytes, msg: Any) -> bool:
            self.sent.append((peer, msg))
            return True

        return LeadershipCallbacks(elected=elected, deposed=deposed, handle=handle,
                                   deliver=self.delivered.append, send=send)


def _leadership(registry: Any = None, **config: Any) -> tuple[Recorded, Leadership]:
    recorded = Recorded()
    leadership = Leadership(MasterConfig(**config), FakeClock(),
                            registry if registry is not None else InMemoryRegistry(),
                            recorded.callbacks())
    return recorded, leadership


class FakeContender:
    """A contender the test elects and deposes."""

    def __init__(self) -> None:
        self._leadership = LeadershipState("fake contender")
        self.elected = self._leadership.elected
        self.deposed = self._leadership.deposed
        self.withdrawn = False

    @property
    def is_leader(self) -> bool:
        """True while elected."""
        return self._leadership.is_leader

    async def start(self) -> None:
        """Nothing: the test elects."""

    async def withdraw(self) -> None:
        """Leave the election."""
        self.withdrawn = True
        self._leadership.resign()

    def on_elected(self, callback: Callable[[], object]) -> None:
        """Register the elected callback."""
        self._leadership.on_elected(callback)

    def on_deposed(self, callback: Callable[[str], object]) -> None:
        """Register the deposed callback."""
        self._leadership.on_deposed(callback)

    def fencing_path(self) -> str | None:
        """No fence."""
        return None

    def elect(self) -> None:
        """Make this contender the leader."""
        self._leadership.become_leader()

    def depose(self, reason: str) -> None:
        """Take leadership away."""
        self._leadership.depose(reason)


class FakeDetector:
    """A detector whose leader the test sets."""

    def __init__(self, leader: MasterInfo | None) -> None:
        self.leader = leader

    def current(self) -> MasterInfo | None:
        """The leader the test set."""
        return self.leader


class GatedRegistry(InMemoryRegistry):
    """An in-memory registry whose writes wait until the test opens the gate."""

    durable = True

    def __init__(self, fail: Exception | None = None) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.fail = fail
        self.applied: list[Any] = []

    async def apply(self, *ops: Any) -> None:
        """Wait for the gate, then fail or apply."""
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.applied.extend(ops)
        await super().apply(*ops)


def _run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


async def _elected(monkeypatch: pytest.MonkeyPatch, registry: Any,
                   **config: Any) -> tuple[Recorded, Leadership, FakeContender]:
    contender = FakeContender()
    monkeypatch.setattr(leadership_module, "create_contender", lambda *a, **k: contender)
    recorded, leadership = _leadership(registry, **config)
    await leadership.start(recorded.info)
    contender.elect()
    await until(lambda: not leadership.recovering, 5, "the registry read after the election")
    return recorded, leadership, contender


def _register(state: MasterState, peer: bytes = b"a1") -> list[Send]:
    info = AgentInfo(hostname="a1", resources=Resources.parse(AGENT_RESOURCES))
    return DISPATCH[RegisterAgent](state, peer, RegisterAgent(agent_info=info))


def test_election_reads_the_registry_and_starts_acting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once elected, the registry is read and the process is told to act on a journaling state."""
    async def test() -> None:
        stored = RegistryState(weights={"web": 4.0})
        registry = InMemoryRegistry(stored)
        recorded, leadership, _ = await _elected(monkeypatch, registry)
        assert leadership.acting and recorded.timers_running
        assert recorded.leading == [leadership.state]
        assert leadership.state is not None and leadership.state.journal == []
        assert leadership.state.weights()["web"] == 4.0
        assert leadership.leader() == recorded.info
        await leadership.stop()
    _run(test)


def test_messages_wait_for_the_registry_write_they_depend_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """AgentRegistered, and everything after it, leaves only once the admission is durable."""
    async def test() -> None:
        registry = GatedRegistry()
        recorded, leadership, _ = await _elected(monkeypatch, registry)
        state = leadership.state
        assert state is not None
        assert leadership.gate([]) is False  # nothing journaled, nothing pending
        first = _register(state)
        assert leadership.gate(first) is True
        later = [Send(("peer", b"x"), Heartbeat())]
        assert leadership.gate(later) is True
        assert recorded.delivered == []
        registry.gate.set()
        await leadership.durable()
        await until(lambda: len(recorded.delivered) == 2)
        assert recorded.delivered == [first, later]
        assert isinstance(first[-1].message, AgentRegistered)
        assert [type(op).__name__ for op in registry.applied] == ["AdmitAgent"]
        assert leadership.gate(later) is False
        await leadership.stop()
    _run(test)


def test_a_fenced_write_ends_leadership_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused write: stop acting, drop held messages, leave the election."""
    async def test() -> None:
        registry = GatedRegistry(fail=FencedError("the leader znode is gone"))
        recorded, leadership, contender = await _elected(monkeypatch, registry)
        assert leadership.state is not None
        assert leadership.gate(_register(leadership.state)) is True
        registry.gate.set()
        with pytest.raises(LeadershipLost):
            await leadership.durable()
        assert leadership.deposed.is_set() and not leadership.acting
        assert "FencedError" in leadership.deposed_reason
        assert not recorded.timers_running and recorded.delivered == []
        assert contender.withdrawn
        assert leadership.gate([Send(("peer", b"x"), Heartbeat())]) is True  # nothing leaves
        await leadership.stop()
    _run(test)


def test_losing_the_election_stops_acting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deposed contender (session lost) stops the timers and sets ``deposed``."""
    async def test() -> None:
        recorded, leadership, contender = await _elected(monkeypatch, InMemoryRegistry())
        contender.depose("ZooKeeper session expired")
        assert leadership.deposed.is_set() and not leadership.acting
        assert leadership.deposed_reason == "ZooKeeper session expired"
        assert not recorded.timers_running
        assert not leadership.elected
        await leadership.stop()
    _run(test)


def test_unreadable_registry_means_no_leadership(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the registry cannot be read, this master never acts and gives the election up."""
    class Broken(InMemoryRegistry):
        async def load(self) -> RegistryState:
            raise OSError("disk on fire")

    async def test() -> None:
        recorded, leadership, contender = await _elected(monkeypatch, Broken())
        assert not leadership.acting and leadership.deposed.is_set()
        assert "disk on fire" in leadership.deposed_reason
        assert contender.withdrawn and not recorded.timers_running
        await leadership.stop()
    _run(test)


def test_non_leader_points_peers_to_the_leader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before election, peers get LeaderRedirect(leader); answers are never answered."""
    async def test() -> None:
        contender = FakeContender()
        monkeypatch.setattr(leadership_module, "create_contender", lambda *a, **k: contender)
        recorded, leadership = _leadership()
        await leadership.start(recorded.info)
        other = _info("other", 6060)
        leadership.detector = FakeDetector(other)  # type: ignore[assignment]
        leadership.refuse(b"p1", Heartbeat())
        leadership.refuse(b"p1", ProtocolError("no"))
        leadership.refuse(b"p1", LeaderRedirect(None))
        leadership.detector = FakeDetector(None)  # type: ignore[assignment]
        leadership.refuse(b"p2", Heartbeat())
        assert recorded.sent == [(b"p1", LeaderRedirect(other)), (b"p2", LeaderRedirect(None))]
        assert leadership.redirects == 2
        await leadership.stop()
    _run(test)


def test_messages_during_recovery_are_held_and_handled_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A ZooKeeper candidate, then a recovering leader, hold messages (no redirect, no drop)
    and handle them in arrival order once the state is rebuilt."""
    async def test() -> None:
        contender = FakeContender()
        loaded = asyncio.Event()

        class SlowRegistry(InMemoryRegistry):
            async def load(self) -> RegistryState:
                await loaded.wait()
                return await super().load()

        monkeypatch.setattr(leadership_module, "create_contender", lambda *a, **k: contender)
        recorded, leadership = _leadership(SlowRegistry())
        await leadership.start(recorded.info)
        leadership.zk_url = parse_zk_url("zk://127.0.0.1:2181/m")  # a ZooKeeper candidate
        leadership.detector = FakeDetector(_info("old-leader"))  # type: ignore[assignment]
        leadership.refuse(b"early", Heartbeat(sender_id="f0"))  # election event not yet seen
        contender.elect()
        await until(lambda: leadership.recovering)
        for i in range(3):
            leadership.refuse(f"p{i}".encode(), Heartbeat(sender_id=f"f{i + 1}"))
        await holding(lambda: not (recorded.sent or recorded.handled or leadership.acting),
                      0.01, "nothing sent or handled while the registry loads")
        assert recorded.sent == [] and recorded.handled == [] and not leadership.acting
        loaded.set()
        await until(lambda: leadership.acting)
        assert [peer for peer, _ in recorded.handled] == [b"early", b"p0", b"p1", b"p2"]
        assert leadership.metrics()["master/messages_held_while_recovering"] == 4
        assert leadership.dropped_while_recovering == 0
        await leadership.stop()
    _run(test)


def test_held_messages_are_bounded_and_dropped_on_deposition(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond MAX_HELD_MESSAGES a recovering master drops (peers retry); losing the election
    while recovering discards what was held."""
    async def test() -> None:
        contender = FakeContender()
        never = asyncio.Event()

        class StuckRegistry(InMemoryRegistry):
            async def load(self) -> RegistryState:
                await never.wait()
                return await super().load()

        monkeypatch.setattr(leadership_module, "MAX_HELD_MESSAGES", 2)
        monkeypatch.setattr(leadership_module, "create_contender", lambda *a, **k: contender)
        recorded, leadership = _leadership(StuckRegistry())
        await leadership.start(recorded.info)
        contender.elect()
        await until(lambda: leadership.recovering)
        for i in range(3):
            leadership.refuse(b"p", Heartbeat(sender_id=f"f{i}"))
        assert leadership.dropped_while_recovering == 1
        contender.depose("session expired")
        assert leadership.deposed.is_set() and not leadership.about_to_lead()
        leadership.refuse(b"q", Heartbeat(sender_id="late"))
        assert recorded.handled == [] and recorded.sent == [(b"q", LeaderRedirect(None))]
        await leadership.stop()
    _run(test)


def test_a_candidate_redirects_held_messages_when_not_elected_in_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A ZooKeeper candidate not elected within CANDIDATE_HOLD answers each waiting peer once
    with LeaderRedirect(leader) -- but keeps holding while its detector names it the leader."""
    async def test() -> None:
        contender = FakeContender()
        monkeypatch.setattr(leadership_module, "CANDIDATE_HOLD", 0.02)
        monkeypatch.setattr(leadership_module, "create_contender", lambda *a, **k: contender)
        recorded, leadership = _leadership()
        await leadership.start(recorded.info)
        leadership.zk_url = parse_zk_url("zk://127.0.0.1:2181/m")
        other = _info("other", 6060)
        leadership.detector = FakeDetector(recorded.info)  # type: ignore[assignment]
        leadership.refuse(b"p1", Heartbeat(sender_id="a"))
        leadership.refuse(b"p1", Heartbeat(sender_id="b"))
        await holding(lambda: recorded.sent == [], 0.06,
                      "held past CANDIDATE_HOLD while its detector names it")
        assert recorded.sent == []  # its own election is on the way: still held
        leadership.detector = FakeDetector(other)  # type: ignore[assignment]
        await until(lambda: recorded.sent)
        assert recorded.sent == [(b"p1", LeaderRedirect(other))]
        assert recorded.handled == [] and leadership.redirects == 1
        await leadership.stop()
    _run(test)


def test_in_memory_registry_holds_nothing_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a registry that is not durable there is nothing to wait for: sends leave at once."""
    async def test() -> None:
        _, leadership, _ = await _elected(monkeypatch, InMemoryRegistry())
        assert leadership.state is not None
        assert leadership.gate(_register(leadership.state)) is False
        assert leadership.sync is not None and len(leadership.sync.mirror.agents) == 1
        await leadership.durable()
        await leadership.stop()
    _run(test)
