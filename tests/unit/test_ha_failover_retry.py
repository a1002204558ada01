"""Failover timing pieces without processes: the driver's quick retry, the suspend grace,
and the ZooKeeper registry's sync() before its first read."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from kazoo.exceptions import NoNodeError

from mesoslite.coordination import (
    ZooKeeperContender,
    ZooKeeperDetector,
    ZooKeeperRegistry,
    derived_suspend_grace,
    effective_suspend_grace,
)
from mesoslite.master import ConfigError, MasterConfig
from mesoslite.protocol import LeaderRedirect, MasterInfo, Subscribe, Subscribed
from mesoslite.scheduler import Scheduler, SchedulerDriver
from mesoslite.scheduler.session import (
    MAX_QUICK_RETRIES,
    QUICK_RETRY_MAX,
    QUICK_RETRY_MIN,
    Action,
    Session,
)
from mesoslite.testing import FakeClock
from mesoslite.testing.factories import make_framework_info
from mesoslite.transport import RouterServer
from tests.support.procs import until


class MaxRandom(random.Random):
    """Always draws the upper bound, so deadlines are predictable."""

    def uniform(self, a: float, b: float) -> float:
        """The upper bound."""
        return b


def _subscribing(clock: FakeClock) -> Session:
    session = Session(clock, backoff_factor=2.0, backoff_max=60.0, rng=MaxRandom())
    session.master_detected()
    assert session.due() == [Action.SUBSCRIBE]  # the first attempt goes out at once
    return session


def test_not_ready_leader_brings_the_next_subscribe_forward() -> None:
    """A redirect from the detected leader makes the next Subscribe go out within
    QUICK_RETRY_MAX instead of after the full backoff, without growing the backoff."""
    clock = FakeClock()
    session = _subscribing(clock)
    assert session.next_deadline() == clock.monotonic() + 2.0
    assert session.leader_not_ready()
    assert session.next_deadline() == clock.monotonic() + QUICK_RETRY_MAX
    clock.advance(QUICK_RETRY_MAX)
    assert session.due() == [Action.SUBSCRIBE]
    assert session.next_deadline() == clock.monotonic() + 2.0  # still retry 0's bound


def test_quick_retries_are_capped_per_leader_and_reset_on_detection() -> None:
    """At most MAX_QUICK_RETRIES quick retries per detected leader; then plain backoff."""
    clock = FakeClock()
    session = _subscribing(clock)
    for _ in range(MAX_QUICK_RETRIES):
        assert session.leader_not_ready()
        clock.advance(QUICK_RETRY_MAX)
        assert session.due() == [Action.SUBSCRIBE]
    assert not session.leader_not_ready()
    assert session.next_deadline() == clock.monotonic() + 2.0
    session.master_detected()  # a new leader: quick retries are allowed again
    assert session.due() == [Action.SUBSCRIBE]
    assert session.leader_not_ready()


def test_quick_retry_only_while_subscribing() -> None:
    """Once subscribed (or with no leader), a redirect does not schedule a Subscribe."""
    clock = FakeClock()
    session = _subscribing(clock)
    session.subscribed("fw-1", 15.0)
    assert not session.leader_not_ready()
    assert session.due() == []
    idle = Session(clock)
    assert not idle.leader_not_ready()


def test_quick_retry_delay_is_random_within_its_bounds() -> None:
    """The quick retry delay is drawn from [QUICK_RETRY_MIN, QUICK_RETRY_MAX]."""
    clock = FakeClock()
    delays = set()
    for seed in range(20):
        session = Session(clock, rng=random.Random(seed))
        session.master_detected()
        session.due()
        session.leader_not_ready()
        deadline = session.next_deadline()
        assert deadline is not None
        delay = deadline - clock.monotonic()
        assert QUICK_RETRY_MIN <= delay <= QUICK_RETRY_MAX
        delays.add(delay)
    assert len(delays) > 1


def test_suspend_grace_follows_the_granted_session_timeout() -> None:
    """The derived grace is a quarter of the (negotiated) timeout, at most 2 s; a configured
    grace is kept unless it reaches a third of the timeout."""
    assert derived_suspend_grace(4.0) == 1.0
    assert derived_suspend_grace(20.0) == 2.0
    assert effective_suspend_grace(None, 4.0) == 1.0
    assert effective_suspend_grace(0.5, 4.0) == 0.5
    assert effective_suspend_grace(1.5, 4.0) == 1.0  # 1.5 >= 4/3: unsafe, cut


def test_contender_grace_uses_the_negotiated_timeout_once_known() -> None:
    """Before connecting the requested timeout counts; once the server granted another one,
    the grace follows it (configured or derived)."""
    info = MasterInfo(id="m1", ip="127.0.0.1", port=5050, hostname="h", version="t",
                      zmq_endpoint="tcp://127.0.0.1:5055", http_endpoint="http://127.0.0.1:5050")
    contender = ZooKeeperContender("zk://127.0.0.1:1/m", info, 20.0)
    detector = ZooKeeperDetector("zk://127.0.0.1:1/m", 20.0, suspend_grace=1.8)
    assert contender.current_suspend_grace == 2.0 and detector.current_suspend_grace == 1.8
    contender.session.negotiated_timeout = 4.0  # e.g. the server's maxSessionTimeout
    detector.session.negotiated_timeout = 4.0
    assert contender.current_suspend_grace == 1.0 and detector.current_suspend_grace == 1.0


def test_master_config_checks_the_suspend_grace() -> None:
    """zk_suspend_grace is optional, positive and below zk_session_timeout (error names it)."""
    assert MasterConfig().zk_suspend_grace is None
    assert MasterConfig(zk_suspend_grace=0.5).zk_suspend_grace == 0.5
    for bad in (0.0, -1.0, 10.0):
        try:
            MasterConfig(zk_suspend_grace=bad, zk_session_timeout=10.0)
        except ConfigError as exc:
            assert "zk_suspend_grace" in str(exc)
        else:
            raise AssertionError(f"zk_suspend_grace={bad} accepted")


class RecordingSession:
    """Stands in for ZkSession: records calls; the registry is empty (no meta znode)."""

    def __init__(self) -> None:
        self.connected = True
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def call(self, method: str, *args: Any, **_kwargs: Any) -> Any:
        """Record; sync succeeds, reading meta finds nothing."""
        self.calls.append((method, args))
        if method == "get":
            raise NoNodeError()
        return None

    async def close(self) -> None:
        """Nothing to close."""


def test_registry_syncs_before_its_first_read() -> None:
    """load() asks the server to sync() with the quorum before reading anything."""
    async def main() -> None:
        registry = ZooKeeperRegistry("zk://127.0.0.1:1/mesoslite", "/mesoslite/json.info_1")
        fake = RecordingSession()
        registry.session = fake  # type: ignore[assignment]
        state = await registry.load()
        assert state.agents == {}
        methods = [method for method, _ in fake.calls]
        assert methods[0] == "sync" and fake.calls[0][1] == ("/mesoslite-registry",)
        assert methods.index("get") > 0
        await registry.close()

    asyncio.run(main())


class OneLeaderDetector:
    """A ZooKeeper-like detector (not static) that names one endpoint and never changes."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    async def detect(self, previous: str | None = None) -> str | None:
        """The endpoint, then wait forever."""
        if previous != self.endpoint:
            return self.endpoint
        await asyncio.Event().wait()
        return self.endpoint

    def close(self) -> None:
        """Nothing to release."""


class Registering(Scheduler):
    """Notes the registration."""

    def __init__(self) -> None:
        self.framework_id = ""

    def registered(self, driver: Any, framework_id: str, master_info: Any) -> None:
        """Record the id."""
        self.framework_id = framework_id


def test_driver_retries_at_once_when_the_detected_leader_is_not_ready() -> None:
    """A driver following a detector, told LeaderRedirect(None) by the master it detected,
    subscribes again within a fraction of a second, not after its (here 30 s) backoff."""
    async def main() -> None:
        subscribes: list[bytes] = []

        def handle(peer: bytes, msg: Any) -> None:
            if isinstance(msg, Subscribe):
                subscribes.append(peer)
                if len(subscribes) == 1:
                    server.send(peer, LeaderRedirect(None))  # elected, not yet recovered
                else:
                    server.send(peer, Subscribed("fw-quick", 15.0))

        server = RouterServer("tcp://127.0.0.1:0", handle, name="not-ready-master")
        server.start()
        scheduler = Registering()
        driver = SchedulerDriver(scheduler, make_framework_info(),
                                 OneLeaderDetector(f"tcp://127.0.0.1:{server.port}"),
                                 registration_backoff_factor=30.0, rng=MaxRandom())
        await driver.start_async()
        try:
            await until(lambda: scheduler.framework_id, 5.0, "the driver subscribed")
            assert scheduler.framework_id == "fw-quick"
            assert len(subscribes) == 2
        finally:
            await driver.stop_async()
            server.close()

    asyncio.run(main())
