"""The scheduler driver: backoff and timers (pure, fake clock) and its behaviour
against a fake master made of a raw RouterServer on loopback."""

from __future__ import annotations

import asyncio
import random
import signal
import threading
from typing import Any

import pytest

from mesoslite.protocol import (
    Accept,
    Acknowledge,
    Deactivate,
    Decline,
    Error,
    FrameworkInfo,
    Heartbeat,
    Kill,
    Offers,
    ProtocolError,
    Reason,
    Reconcile,
    Subscribe,
    Subscribed,
    TaskState,
    Teardown,
    Update,
)
from mesoslite.scheduler import Scheduler, SchedulerDriver, Status, detector_for
from mesoslite.scheduler.session import Action, Phase, SeenUpdates, Session
from mesoslite.testing import FakeClock
from mesoslite.testing.factories import make_framework_info, make_offer, make_status, make_task_info
from mesoslite.transport import RouterServer
from tests.support.procs import until, wait_for

# ------------------------------------------------------------------ helpers


class MaxRandom(random.Random):
    """An rng whose ``uniform(a, b)`` is always ``b``: backoff at its bound."""

    def uniform(self, a: float, b: float) -> float:
        return b


class FakeMaster:
    """A ROUTER socket on its own thread that answers like a master, minimally.

    Subscribe → Subscribed (after ignoring the first ``ignore_subscribes``);
    framework calls from a peer that is not subscribed → NOT_SUBSCRIBED.
    """

    def __init__(self, heartbeat_interval: float = 15.0, ignore_subscribes: int = 0) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.ignore_subscribes = ignore_subscribes
        self.answer_subscribe = True
        self.received: list[tuple[bytes, Any]] = []
        self.subscribed_peers: dict[bytes, str] = {}
        self.peer: bytes | None = None
        self._loop = asyncio.new_event_loop()
        self._server: RouterServer | None = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait()

    def _main(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def boot() -> None:
            self._server = RouterServer("tcp://127.0.0.1:0", self._handle, name="fake-master")
            self._server.start()

        self._loop.run_until_complete(boot())
        ready.set()
        self._loop.run_forever()
        assert self._server is not None
        self._server.close()
        self._loop.close()

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.port}"

    def _handle(self, peer: bytes, msg: Any) -> None:
        self.received.append((peer, msg))
        assert self._server is not None
        if isinstance(msg, Subscribe):
            if self.ignore_subscribes > 0:
                self.ignore_subscribes -= 1
                return
            if not self.answer_subscribe:
                return
            framework_id = msg.framework_info.id or "fake-0001"
            self.subscribed_peers[peer] = framework_id
            self.peer = peer
            self._server.send(peer, Subscribed(framework_id, self.heartbeat_interval))
        elif peer not in self.subscribed_peers:
            self._server.send(peer, ProtocolError("not subscribed", "framework_id",
                                                  type(msg).__name__, "NOT_SUBSCRIBED"))
        elif isinstance(msg, (Teardown, Deactivate)):
            del self.subscribed_peers[peer]

    def send(self, msg: Any, peer: bytes | None = None) -> None:
        """Send ``msg`` to ``peer`` (default: the last subscribed peer), thread-safely."""
        target = peer or self.peer
        assert target is not None and self._server is not None
        server = self._server
        self._loop.call_soon_threadsafe(server.send, target, msg)

    def forget(self, peer: bytes) -> None:
        """Pretend the master lost track of ``peer`` (e.g. it failed over)."""
        self._loop.call_soon_threadsafe(self.subscribed_peers.pop, peer, None)

    def of_type(self, kind: type) -> list[Any]:
        """Every received message of ``kind``, in order."""
        return [m for _, m in list(self.received) if isinstance(m, kind)]

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@pytest.fixture
def master() -> Any:
    """A fake master on its own thread, closed after the test."""
    fake = FakeMaster()
    yield fake
    fake.close()


class Recorder(Scheduler):
    """Records every callback as (name, args)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.threads: set[int] = set()

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def args(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]

    def _record(self, name: str, *args: Any) -> None:
        self.threads.add(threading.get_ident())
        self.calls.append((name, args))

    def registered(self, driver: Any, framework_id: str, master_info: Any) -> None:
        self._record("registered", framework_id)

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self._record("reregistered")

    def disconnected(self, driver: Any) -> None:
        self._record("disconnected")

    def resource_offers(self, driver: Any, offers: list[Any]) -> None:
        self._record("resource_offers", offers)

    def status_update(self, driver: Any, status: Any) -> None:
        self._record("status_update", status)

    def error(self, driver: Any, message: str) -> None:
        self._record("error", message)


def fast_driver(scheduler: Scheduler, master: FakeMaster, **kwargs: Any) -> SchedulerDriver:
    """A driver for ``scheduler`` on ``master`` that retries its registration fast."""
    info = kwargs.pop("framework_info", None) or make_framework_info()
    return SchedulerDriver(
        scheduler, info, master.address,
        registration_backoff_factor=0.01, registration_backoff_max=0.05, **kwargs,
    )


# ----------------------------------------------------- pure session (fake clock)


def test_first_subscribe_is_immediate_then_backoff_doubles_up_to_the_cap() -> None:
    """Subscribe goes out at once; retry n waits min(factor·2^n, max) at the bound."""
    clock = FakeClock()
    session = Session(clock, backoff_factor=2.0, backoff_max=60.0, rng=MaxRandom())
    session.master_detected()
    gaps = []
    last = clock.monotonic()
    assert session.due() == [Action.SUBSCRIBE]
    for _ in range(8):
        deadline = session.next_deadline()
        assert deadline is not None
        clock.advance(deadline - clock.monotonic() - 0.001)
        assert session.due() == []  # not yet
        clock.advance(0.001)
        assert session.due() == [Action.SUBSCRIBE]
        gaps.append(round(clock.monotonic() - last, 6))
        last = clock.monotonic()
    assert gaps == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_backoff_delays_are_random_within_their_bounds() -> None:
    """Each retry delay is drawn uniformly from [0, bound], not fixed."""
    session = Session(FakeClock(), backoff_factor=2.0, backoff_max=60.0, rng=random.Random(7))
    delays = [session.retry_delay(n) for n in range(10) for _ in range(20)]
    bounds = [min(2.0 * 2**n, 60.0) for n in range(10) for _ in range(20)]
    assert all(0.0 <= d <= b for d, b in zip(delays, bounds, strict=True))
    assert len(set(delays)) == len(delays)


def test_heartbeats_are_due_every_interval_once_subscribed() -> None:
    """After Subscribed, HEARTBEAT is due once per interval while the master talks."""
    clock = FakeClock()
    session = Session(clock)
    session.master_detected()
    session.due()
    assert session.subscribed("fw-1", 10.0) is True
    assert session.due() == []
    for _ in range(6):
        clock.advance(10.0)
        session.heard_from_master()
        assert session.due() == [Action.HEARTBEAT]
    assert session.phase is Phase.SUBSCRIBED


def test_five_silent_intervals_mean_master_lost_and_resubscribe() -> None:
    """Nothing heard for 5 heartbeat intervals → MASTER_SILENT then SUBSCRIBE at once."""
    clock = FakeClock()
    session = Session(clock)
    session.master_detected()
    session.due()
    session.subscribed("fw-1", 10.0)
    clock.advance(49.9)
    assert Action.MASTER_SILENT not in session.due()
    clock.advance(0.1)
    assert session.due() == [Action.MASTER_SILENT, Action.SUBSCRIBE]
    assert session.phase is Phase.SUBSCRIBING
    assert session.framework_id == "fw-1"
    assert session.subscribed("fw-1", 10.0) is False  # a re-subscription


def test_not_subscribed_restarts_subscription_only_when_subscribed() -> None:
    """NOT_SUBSCRIBED while subscribed → subscribe again; while subscribing → no change."""
    clock = FakeClock()
    session = Session(clock)
    session.master_detected()
    assert session.not_subscribed() is False
    session.due()
    session.subscribed("fw-1", 15.0)
    assert session.not_subscribed() is True
    assert session.due() == [Action.SUBSCRIBE]


def test_seen_updates_forget_the_oldest_beyond_capacity() -> None:
    """De-duplication memory is bounded: the oldest uuid is forgotten first."""
    seen = SeenUpdates(capacity=3)
    for uuid in (b"a", b"b", b"c"):
        assert seen.first_sight(uuid)
    assert not seen.first_sight(b"a")
    seen.mark_acknowledged(b"b")
    assert seen.is_acknowledged(b"b") and not seen.is_acknowledged(b"c")
    assert seen.first_sight(b"d")
    assert len(seen) == 3
    assert seen.first_sight(b"a")  # evicted, so new again


def test_master_argument_forms() -> None:
    """host:port and tcp:// are static, zk:// follows ZooKeeper, junk is refused clearly."""
    from mesoslite.coordination import EndpointDetector

    assert detector_for("10.0.0.1:5055").endpoint == "tcp://10.0.0.1:5055"  # type: ignore[attr-defined]
    assert detector_for("tcp://h:1").endpoint == "tcp://h:1"  # type: ignore[attr-defined]
    assert isinstance(detector_for("zk://zk1:2181,zk2:2181/mesos"), EndpointDetector)
    with pytest.raises(ValueError, match="master"):
        detector_for("zk://zk1:notaport/mesos")
    with pytest.raises(ValueError, match="master"):
        detector_for("nonsense")


# ------------------------------------------------------- driver vs fake master


def test_subscribe_is_retried_until_answered(master: FakeMaster) -> None:
    """Unanswered Subscribes are retried; registered() is called once with the id."""
    master.ignore_subscribes = 3
    sched = Recorder()
    driver = fast_driver(sched, master)
    assert driver.start() is Status.DRIVER_RUNNING
    wait_for(lambda: "registered" in sched.names())
    assert len(master.of_type(Subscribe)) >= 4
    assert sched.args("registered") == [("fake-0001",)]
    assert driver.framework_id == "fake-0001"
    assert driver.stop() is Status.DRIVER_STOPPED
    assert driver.join() is Status.DRIVER_STOPPED
    assert sched.names().count("registered") == 1


def test_not_subscribed_makes_the_driver_resubscribe_with_its_id(master: FakeMaster) -> None:
    """ProtocolError(NOT_SUBSCRIBED) → disconnected(), Subscribe with the id, reregistered()."""
    sched = Recorder()
    driver = fast_driver(sched, master)
    driver.start()
    wait_for(lambda: driver.connected)
    assert master.peer is not None
    master.forget(master.peer)
    wait_for(lambda: master.peer not in master.subscribed_peers)
    driver.revive_offers()  # refused by the master: we are not subscribed there
    wait_for(lambda: "reregistered" in sched.names())
    assert sched.names()[:3] == ["registered", "disconnected", "reregistered"]
    subscribes = master.of_type(Subscribe)
    assert subscribes[0].framework_info.id == ""
    assert subscribes[-1].framework_info.id == "fake-0001"
    driver.stop()


def test_status_updates_are_delivered_once_per_uuid(master: FakeMaster) -> None:
    """A resent update reaches the callback once; its resend is acknowledged again."""
    sched = Recorder()
    driver = fast_driver(sched, master)
    driver.start()
    wait_for(lambda: driver.connected)
    status = make_status(state=TaskState.TASK_RUNNING, agent_id="agent-1")
    master.send(Update(status))
    wait_for(lambda: len(master.of_type(Acknowledge)) == 1)
    master.send(Update(status))
    wait_for(lambda: len(master.of_type(Acknowledge)) == 2)
    assert [a[0] for a in sched.args("status_update")] == [status]
    ack = master.of_type(Acknowledge)[0]
    assert (ack.framework_id, ack.agent_id, ack.task_id, ack.uuid) == (
        "fake-0001", "agent-1", status.task_id, status.uuid)
    driver.stop()


def test_implicit_acknowledgement_only_for_updates_with_uuid(master: FakeMaster) -> None:
    """Master-made updates (no uuid) are delivered every time and never acknowledged."""
    sched = Recorder()
    driver = fast_driver(sched, master)
    driver.start()
    wait_for(lambda: driver.connected)
    lost = make_status(state=TaskState.TASK_LOST, uuid=False, reason=Reason.REASON_RECONCILIATION)
    finished = make_status(state=TaskState.TASK_FINISHED)
    master.send(Update(lost))
    master.send(Update(lost))
    master.send(Update(finished))
    wait_for(lambda: len(sched.args("status_update")) == 3)
    wait_for(lambda: len(master.of_type(Acknowledge)) == 1)
    assert [a.uuid for a in master.of_type(Acknowledge)] == [finished.uuid]
    driver.stop()
    assert len(master.of_type(Acknowledge)) == 1


def test_explicit_acknowledgement_mode(master: FakeMaster) -> None:
    """With implicit acknowledgements off, only acknowledge_status_update() sends one."""
    sched = Recorder()
    driver = fast_driver(sched, master, implicit_acknowledgements=False)
    driver.start()
    wait_for(lambda: driver.connected)
    status = make_status()
    master.send(Update(status))
    wait_for(lambda: len(sched.args("status_update")) == 1)
    driver.reconcile_tasks()  # a later message: proves no ack was sent before it
    wait_for(lambda: len(master.of_type(Reconcile)) == 1)
    assert master.of_type(Acknowledge) == []
    assert driver.acknowledge_status_update(status) is Status.DRIVER_RUNNING
    wait_for(lambda: len(master.of_type(Acknowledge)) == 1)
    assert master.of_type(Acknowledge)[0].uuid == status.uuid
    driver.stop()


def test_acknowledge_in_implicit_mode_is_a_programming_error(master: FakeMaster) -> None:
    """acknowledge_status_update() with implicit acknowledgements raises RuntimeError."""
    driver = fast_driver(Recorder(), master)
    with pytest.raises(RuntimeError, match="implicit"):
        driver.acknowledge_status_update(make_status())


def test_calls_from_many_threads_all_arrive(master: FakeMaster) -> None:
    """Driver methods called concurrently from other threads are all sent, in the loop."""
    sched = Recorder()
    driver = fast_driver(sched, master)
    driver.start()
    wait_for(lambda: driver.connected)

    def decline_many(worker: int) -> None:
        for i in range(50):
            assert driver.decline_offer(f"o-{worker}-{i}") is Status.DRIVER_RUNNING

    threads = [threading.Thread(target=decline_many, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(lambda: len(master.of_type(Decline)) == 200)
    ids = {d.offer_ids[0] for d in master.of_type(Decline)}
    assert len(ids) == 200
    assert all(d.framework_id == "fake-0001" for d in master.of_type(Decline))
    assert driver.stop() is Status.DRIVER_STOPPED


def test_driver_calls_from_callbacks_work(master: FakeMaster) -> None:
    """A resource_offers callback can launch tasks on the offer (same thread, no deadlock)."""

    class Launcher(Recorder):
        def resource_offers(self, driver: Any, offers: list[Any]) -> None:
            super().resource_offers(driver, offers)
            for offer in offers:
                driver.launch_tasks([offer.id], [make_task_info(offer.agent_id)])

    sched = Launcher()
    driver = fast_driver(sched, master)
    driver.start()
    wait_for(lambda: driver.connected)
    offer = make_offer(framework_id="fake-0001")
    master.send(Offers((offer,)))
    wait_for(lambda: len(master.of_type(Accept)) == 1)
    accept = master.of_type(Accept)[0]
    assert accept.offer_ids == (offer.id,)
    assert accept.operations[0].type == "LAUNCH"
    assert accept.operations[0].task_infos[0].agent_id == offer.agent_id
    driver.stop()


def test_stop_tears_down_and_stop_failover_deactivates(master: FakeMaster) -> None:
    """stop() sends Teardown, stop(failover=True) sends Deactivate; later calls are refused."""
    for failover, kind in ((False, Teardown), (True, Deactivate)):
        sched = Recorder()
        driver = fast_driver(sched, master)
        driver.start()
        wait_for(lambda d=driver: d.connected)  # type: ignore[misc]
        before = len(master.of_type(kind))
        assert driver.stop(failover=failover) is Status.DRIVER_STOPPED
        # The last message lingers on the closed socket until delivered.
        wait_for(lambda k=kind, b=before: len(master.of_type(k)) == b + 1)  # type: ignore[misc]
        assert driver.join() is Status.DRIVER_STOPPED
        assert driver.stop() is Status.DRIVER_STOPPED
        assert driver.kill_task("t-1") is Status.DRIVER_STOPPED
    assert master.of_type(Kill) == []
    wait_for(lambda: len(master.of_type(Teardown)) == 1 and len(master.of_type(Deactivate)) == 1)


def test_methods_before_start_do_nothing(master: FakeMaster) -> None:
    """Before start(), methods return DRIVER_NOT_STARTED and join() returns at once."""
    driver = fast_driver(Recorder(), master)
    assert driver.decline_offer("o-1") is Status.DRIVER_NOT_STARTED
    assert driver.stop() is Status.DRIVER_NOT_STARTED
    assert driver.abort() is Status.DRIVER_NOT_STARTED
    assert driver.join() is Status.DRIVER_NOT_STARTED


def test_launch_before_subscription_is_reported_lost(master: FakeMaster) -> None:
    """A launch while not subscribed is refused: TASK_LOST, REASON_MASTER_DISCONNECTED."""
    master.answer_subscribe = False
    sched = Recorder()
    driver = fast_driver(sched, master)
    driver.start()
    wait_for(lambda: len(master.of_type(Subscribe)) >= 1)
    task = make_task_info("agent-1")
    assert driver.launch_tasks(["o-1"], [task]) is Status.DRIVER_RUNNING
    wait_for(lambda: len(sched.args("status_update")) == 1)
    (status,) = sched.args("status_update")[0]
    assert (status.task_id, status.state, status.reason) == (
        task.task_id, TaskState.TASK_LOST, Reason.REASON_MASTER_DISCONNECTED)
    assert status.uuid == b""
    assert master.of_type(Accept) == []
    driver.stop()


def test_heartbeats_sent_and_silent_master_triggers_resubscribe(master: FakeMaster) -> None:
    """The driver heartbeats with its id; a silent master → disconnected() and new Subscribe."""
    master.heartbeat_interval = 0.05
    sched = Recorder()
    driver = fast_driver(sched, master)
    driver.start()
    wait_for(lambda: len(master.of_type(Heartbeat)) >= 2)
    assert all(h.sender_id == "fake-0001" for h in master.of_type(Heartbeat))
    # The fake master never speaks after Subscribed: after 5 intervals it counts as gone.
    wait_for(lambda: "reregistered" in sched.names())
    assert sched.names()[:3] == ["registered", "disconnected", "reregistered"]
    peers = {p for p, m in master.received if isinstance(m, Subscribe)}
    assert len(peers) >= 2  # the driver reconnected with a fresh socket
    driver.stop()


def test_error_aborts_the_driver_then_calls_error(master: FakeMaster) -> None:
    """Error from the master → driver aborted, error() called, join() → DRIVER_ABORTED."""
    seen: list[Status] = []

    class OnError(Recorder):
        def error(self, driver: Any, message: str) -> None:
            seen.append(driver.status)
            super().error(driver, message)

    sched = OnError()
    driver = fast_driver(sched, master)
    driver.start()
    wait_for(lambda: driver.connected)
    master.send(Error("framework failed over"))
    assert driver.join() is Status.DRIVER_ABORTED
    assert sched.args("error") == [("framework failed over",)]
    assert seen == [Status.DRIVER_ABORTED]
    master.send(Offers((make_offer(),)))
    assert driver.stop() is Status.DRIVER_ABORTED  # stop after abort still tears down
    wait_for(lambda: len(master.of_type(Teardown)) == 1)
    assert "resource_offers" not in sched.names()


def test_a_raising_callback_aborts_the_driver(master: FakeMaster) -> None:
    """An exception escaping a callback is logged and aborts the driver."""

    class Broken(Recorder):
        def resource_offers(self, driver: Any, offers: list[Any]) -> None:
            raise ValueError("bug in the framework")

    driver = fast_driver(Broken(), master)
    driver.start()
    wait_for(lambda: driver.connected)
    master.send(Offers((make_offer(),)))
    assert driver.join() is Status.DRIVER_ABORTED
    driver.stop()


def test_async_api_runs_on_the_callers_loop(master: FakeMaster) -> None:
    """start_async/join_async/stop_async drive the driver on the running loop."""
    sched = Recorder()

    async def main() -> None:
        driver = fast_driver(sched, master)
        assert await driver.start_async() is Status.DRIVER_RUNNING
        await until(lambda: driver.connected)
        assert sched.threads == {threading.get_ident()}
        assert await driver.stop_async(failover=True) is Status.DRIVER_STOPPED
        assert await driver.join_async() is Status.DRIVER_STOPPED

    asyncio.run(main())
    wait_for(lambda: len(master.of_type(Deactivate)) == 1)


def test_run_stops_on_sigint_and_restores_the_handler(master: FakeMaster) -> None:
    """run() owns its loop; SIGINT stops it (Teardown) and the old handler comes back."""

    class Interrupted(Recorder):
        def registered(self, driver: Any, framework_id: str, master_info: Any) -> None:
            super().registered(driver, framework_id, master_info)
            signal.raise_signal(signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    driver = fast_driver(Interrupted(), master, framework_info=FrameworkInfo(user="", name="x"))
    assert driver.run() is Status.DRIVER_STOPPED
    assert signal.getsignal(signal.SIGINT) is before
    wait_for(lambda: len(master.of_type(Teardown)) == 1)


def test_run_restores_a_custom_sigint_handler(master: FakeMaster) -> None:
    """run() puts back the SIGINT handler the application had installed, not the default."""

    class Interrupted(Recorder):
        def registered(self, driver: Any, framework_id: str, master_info: Any) -> None:
            super().registered(driver, framework_id, master_info)
            signal.raise_signal(signal.SIGINT)

    def custom(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    original = signal.signal(signal.SIGINT, custom)
    try:
        driver = fast_driver(Interrupted(), master, framework_info=FrameworkInfo(user="", name="x"))
        assert driver.run() is Status.DRIVER_STOPPED
        assert signal.getsignal(signal.SIGINT) is custom
    finally:
        signal.signal(signal.SIGINT, original)


def test_a_new_leader_from_the_detector_gets_a_resubscription(master: FakeMaster) -> None:
    """A detector reporting a new leader → disconnected(), Subscribe there with the id."""
    other = FakeMaster()

    class MovingDetector:
        def __init__(self, first: str) -> None:
            self.leader = first
            self.moved: asyncio.Event | None = None

        async def detect(self, previous: str | None = None) -> str | None:
            while self.leader == previous:
                self.moved = asyncio.Event()
                await self.moved.wait()
            return self.leader

        def move(self, to: str) -> None:
            self.leader = to
            if self.moved is not None:
                self.moved.set()

        def close(self) -> None:
            pass

    async def main() -> None:
        sched = Recorder()
        detector = MovingDetector(f"tcp://{master.address}")
        driver = SchedulerDriver(sched, make_framework_info(), detector,
                                 registration_backoff_factor=0.01, registration_backoff_max=0.05)
        await driver.start_async()
        await until(lambda: driver.connected)
        detector.move(f"tcp://{other.address}")
        await until(lambda: "reregistered" in sched.names())
        assert sched.names()[:3] == ["registered", "disconnected", "reregistered"]
        assert other.of_type(Subscribe)[0].framework_info.id == "fake-0001"
        await driver.stop_async()
        await until(lambda: len(other.of_type(Teardown)) == 1)
        assert master.of_type(Teardown) == []

    try:
        asyncio.run(main())
    finally:
        other.close()
