"""The master shell: routing, delivery and timers around the pure state.

Owns: :data:`DISPATCH` (one table: message type -> state handler) and
:class:`Master`, the thin shell that routes each incoming message through
it, delivers the handlers' sends over a :class:`Transport`, and runs the
timers on the event loop: batch allocation every ``allocation_interval``
plus coalesced allocations soon after anything frees resources or wants
offers, and the state's :meth:`~MasterState.tick` (pings, heartbeats,
disconnects, failover teardown, offer timeouts).  It also serves the
operator calls the HTTP API makes (weights, teardown, metrics).

The shell binds no socket and serves no HTTP: :mod:`mesoslite.master.main`
builds those and hands the shell its transport.  Leadership (election,
registry recovery, durable writes, stepping down) is
:class:`~mesoslite.master.leadership.Leadership`'s: the shell handles
messages, runs timers and delivers sends only while it acts as the leader.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from mesoslite.clock import Clock
from mesoslite.master import authn, metrics
from mesoslite.master.config import MasterConfig
from mesoslite.master.loopwatch import LoopLagMonitor, TimingWindow
from mesoslite.master.records import LAUNCH_TO_RUNNING_BUCKETS, Histogram, Send
from mesoslite.master.state import MasterState
from mesoslite.promtext import LATENCY_BUCKETS, HistogramFamily
from mesoslite.protocol import (
    Accept,
    Acknowledge,
    Authenticate,
    AuthenticationResponse,
    Deactivate,
    Decline,
    EncodeError,
    ExecutorToFrameworkMessage,
    ExitedExecutor,
    FrameworkToExecutorMessage,
    Heartbeat,
    Kill,
    MasterInfo,
    Pong,
    ProtocolError,
    Reconcile,
    RegisterAgent,
    ReregisterAgent,
    Revive,
    Shutdown,
    StatusUpdate,
    Subscribe,
    Suppress,
    Teardown,
    UnregisterAgent,
    encode,
)

if TYPE_CHECKING:
    from mesoslite.master.leadership import Leadership

log = logging.getLogger("mesoslite.master")

Handler = Callable[[MasterState, bytes, Any], list[Send]]

#: Every message the master accepts, and who handles it.  Anything else is
#: refused with ProtocolError(field="type").
DISPATCH: dict[type, Handler] = {
    # agents (protocol.md §1, §4)
    RegisterAgent: MasterState.register_agent,
    ReregisterAgent: MasterState.reregister_agent,
    UnregisterAgent: MasterState.unregister_agent,
    Pong: MasterState.pong,
    StatusUpdate: MasterState.status_update,
    ExitedExecutor: MasterState.exited_executor,
    ExecutorToFrameworkMessage: MasterState.executor_message,
    # schedulers (protocol.md §2, §3, §5)
    Subscribe: MasterState.subscribe,
    Heartbeat: MasterState.heartbeat,
    Deactivate: MasterState.deactivate,
    Teardown: MasterState.teardown,
    Accept: MasterState.accept,
    Decline: MasterState.decline,
    Revive: MasterState.revive,
    Suppress: MasterState.suppress,
    Kill: MasterState.kill,
    Shutdown: MasterState.shutdown,
    Acknowledge: MasterState.acknowledge,
    Reconcile: MasterState.reconcile,
    FrameworkToExecutorMessage: MasterState.framework_message,
    # authentication of schedulers and agents (mesoslite.master.authn)
    Authenticate: authn.authenticate,
    AuthenticationResponse: authn.authentication_response,
    # anyone
    ProtocolError: MasterState.protocol_error,
}

#: Delay that batches event-triggered allocations (seconds).
ALLOCATION_BATCH_DELAY = 0.005
#: Agents one allocation step examines; the loop runs other work between two steps, so
#: a pass over tens of thousands of agents neither stalls it nor delays the first offers.
ALLOCATION_SLICE = 250


class Transport(Protocol):
    """The ROUTER socket as the shell uses it (a :class:`mesoslite.transport.RouterServer`)."""

    @property
    def stats(self) -> Mapping[str, int]:
        """Counters: ``received``, ``decode_errors``, ``dropped`` (others are ignored)."""
        ...

    def send_encoded(self, peer: bytes, data: bytes) -> bool:
        """Send an already encoded message to ``peer``; False when it was dropped."""
        ...


class Master:
    """The shell of one master: routing, delivery and timers while it acts as the leader.

    Built by :class:`mesoslite.master.main.MasterProcess`, which hands it the
    :class:`Leadership` and, once the ports are bound, :meth:`serve` its
    ``info`` and transport.  ``state`` (:class:`MasterState`) exists once
    this master leads.
    """

    def __init__(self, config: MasterConfig, clock: Clock, leadership: Leadership) -> None:
        """Wire the shell to ``leadership``; nothing is served until :meth:`serve`."""
        self.config = config
        self.clock = clock
        self.leadership = leadership
        self.info: MasterInfo | None = None
        self.transport: Transport | None = None
        self._state: MasterState | None = None
        self.start_time = 0.0
        self.elected_time = 0.0
        #: Messages received, by type name.
        self.messages_by_type: collections.Counter[str] = collections.Counter()
        #: Sends that could not be delivered (no such peer, or encoding failed).
        self.undeliverable = 0
        self.handler_errors = 0
        self.allocation_run_ms = 0.0
        #: Recent allocation durations (ms): every run, and the batch runs over all agents.
        self.allocation_times = TimingWindow()
        self.full_allocation_times = TimingWindow()
        #: How late the loop runs timers (the worst stall of a handler or a rendering).
        self.loop_lag = LoopLagMonitor()
        #: /state-summary's JSON text of each agent: id -> (record, its version, text).
        self.summary_cache: dict[str, tuple[Any, int, str]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._alloc_handle: asyncio.TimerHandle | asyncio.Handle | None = None
        #: Agents asked for and not allocated yet (an ordered set), and the compute time
        #: of the pass over all agents in progress (None: no such pass).
        self._alloc_backlog: dict[str, None] = {}
        self._full_pass_ms: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle_state: MasterState | None = None
        #: Followers of the state's change feed (the operator API's SUBSCRIBE streams): each
        #: is called with the entries of :attr:`MasterState.feed` after every change.
        self.feed_listeners: list[Callable[[list[tuple[str, Any]]], None]] = []
        #: Peers served inside this process (schedulers on the HTTP API): routing id ->
        #: a function taking each message for that peer (instead of the transport).
        self.local_peers: dict[bytes, Callable[[Any], None]] = {}
        #: Who connections prove to be (set by the composition root from --credentials);
        #: handed to every state this master leads, so sessions outlive a re-election.
        self.authenticator: authn.Authenticator | None = None

    @property
    def is_leading(self) -> bool:
        """True while this master acts as the leader (elected and recovered)."""
        return self.leadership.acting

    @property
    def state(self) -> MasterState:
        """The pure state (available once this master leads)."""
        if self._state is None:
            raise RuntimeError("the master is not started, or has not led yet")
        return self._state

    # -------------------------------------------------------------- lifecycle

    def serve(self, info: MasterInfo, transport: Transport) -> None:
        """Serve as master ``info``, sending over ``transport`` (called on the loop)."""
        self.info = info
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        self.start_time = self.clock.time()
        self.loop_lag.start()

    def begin_leading(self, state: MasterState) -> None:
        """Elected and recovered: act on ``state`` and start the timers."""
        self._state = state
        state.feed = []
        if self.authenticator is not None:
            state.authn = self.authenticator
        self.elected_time = self.clock.time()
        self._tasks = [
            asyncio.create_task(self._every(self._tick_interval(), self._tick)),
            asyncio.create_task(self._every(self.config.allocation_interval,
                                            self._batch_allocation)),
        ]
        state.request_allocation(None)
        self._schedule_allocation()

    def end_leading(self) -> None:
        """Leadership lost: stop every timer at once."""
        for task in self._tasks:
            task.cancel()
        self._cancel_allocation()

    async def stop(self) -> None:
        """Stop the timers and wait until they ended (safe to call twice)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._cancel_allocation()
        await self.loop_lag.stop()

    def _cancel_allocation(self) -> None:
        if self._alloc_handle is not None:
            self._alloc_handle.cancel()
            self._alloc_handle = None
        self._alloc_backlog.clear()
        self._full_pass_ms = None

    def _tick_interval(self) -> float:
        config = self.config
        candidates = [0.5, config.agent_ping_timeout / 4, config.framework_heartbeat_interval / 4]
        if config.offer_timeout is not None:
            candidates.append(config.offer_timeout / 4)
        return max(0.001, min(candidates))

    async def _every(self, interval: float, action: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                action()
            except Exception:
                log.exception("master timer %s failed", getattr(action, "__name__", action))

    # --------------------------------------------------------------- messages

    def on_message(self, peer: bytes, msg: Any) -> None:
        """One decoded message from ``peer``: handled when leading, else refused or held."""
        self.messages_by_type[type(msg).__name__] += 1
        if not self.leadership.acting:
            self.leadership.refuse(peer, msg)
            return
        self.handle(peer, msg)

    def handle(self, peer: bytes, msg: Any) -> None:
        """Handle one message from ``peer`` as the acting leader and deliver the sends."""
        state = self.state
        handler = DISPATCH.get(type(msg), MasterState.refuse_unexpected)
        try:
            sends = handler(state, peer, msg)
        except Exception:
            self.handler_errors += 1
            log.exception("master: handling %s failed", type(msg).__name__)
            sends = []
        self.deliver(sends)
        self._schedule_allocation()

    def deliver(self, sends: list[Send], *, gated: bool = True) -> None:
        """Send each message to its destination's current peer (fan-outs encoded once).

        ``gated``: first let :meth:`Leadership.gate` write journaled changes and
        hold the sends behind unfinished registry writes (False: already released).
        """
        self._drain_feed()
        if gated and self.leadership.gate(sends):
            return
        transport = self.transport
        if transport is None:
            return
        state = self.state
        encoded: dict[int, bytes] = {}
        for send in sends:
            peer = state.peer_for(send.to)
            if peer is None:
                self.undeliverable += 1
                continue
            local = self.local_peers.get(peer)
            if local is not None:
                local(send.message)
                continue
            key = id(send.message)
            data = encoded.get(key)
            if data is None:
                try:
                    data = encode(send.message, self.config.max_message_size)
                except EncodeError as exc:
                    log.error("master: cannot send %s to %s: %s",
                              type(send.message).__name__, send.to, exc)
                    self.undeliverable += 1
                    continue
                encoded[key] = data
            if not transport.send_encoded(peer, data):
                self.undeliverable += 1

    def _drain_feed(self) -> None:
        state = self._state
        if state is None or not state.feed:
            return
        entries, state.feed = state.feed, []
        for listener in list(self.feed_listeners):
            try:
                listener(entries)
            except Exception:
                log.exception("master: a feed listener failed")

    def release(self, sends: list[Send]) -> None:
        """Deliver sends the leadership held until their registry writes were durable."""
        self.deliver(sends, gated=False)

    # ------------------------------------------------------------------ timers

    def _tick(self) -> None:
        self.deliver(self.state.tick() + self.leadership.tick())
        self._schedule_allocation()

    def _batch_allocation(self) -> None:
        self.state.request_allocation(None)
        self._schedule_allocation()

    def _schedule_allocation(self) -> None:
        if self._alloc_handle is not None or self._loop is None:
            return
        if self._alloc_backlog:  # a pass in progress: its next step as soon as possible
            self._alloc_handle = self._loop.call_soon(self._allocate)
        elif self._state is not None and self._state.allocation_wanted():
            self._alloc_handle = self._loop.call_later(ALLOCATION_BATCH_DELAY, self._allocate)

    def _allocate(self) -> None:
        """One step: the requested agents join the backlog, the next ``ALLOCATION_SLICE``
        of it are allocated (in DRF order, like one run over all; offers go out at once)."""
        self._alloc_handle = None
        state = self.state
        backlog = self._alloc_backlog
        if state.allocation_wanted():
            agent_ids = state.take_allocation_request()
            if agent_ids is None:  # all: those with something an allocation could offer
                agent_ids = state.allocator.candidates()
                if self._full_pass_ms is None:
                    self._full_pass_ms = 0.0
            backlog.update(dict.fromkeys(agent_ids))
        step = list(itertools.islice(backlog, ALLOCATION_SLICE))
        for agent_id in step:
            del backlog[agent_id]
        started = time.perf_counter()
        try:
            sends = state.allocate(step)
        except Exception:
            log.exception("master: allocation failed")
            sends = []
        self.allocation_run_ms = (time.perf_counter() - started) * 1000.0
        self.allocation_times.observe(self.allocation_run_ms)
        if self._full_pass_ms is not None:
            self._full_pass_ms += self.allocation_run_ms
            if not backlog:
                self.full_allocation_times.observe(self._full_pass_ms)
                self._full_pass_ms = None
        self.deliver(sends)
        self._schedule_allocation()

    # --------------------------------------------------------------- operators

    def teardown_framework(self, framework_id: str) -> bool:
        """Tear a framework down (operator request); False when it is not known."""
        if framework_id not in self.state.frameworks:
            return False
        self.deliver(self.state.remove_framework(framework_id, "torn down by an operator"))
        self._schedule_allocation()
        return True

    def maintain_agent(self, kind: str, agent_id: str, max_grace_period: float | None = None,
                       mark_gone: bool = False) -> None:
        """``deactivate``, ``drain`` or ``reactivate`` an agent (operator request, :mod:`.drain`).

        Raises :class:`~.drain.DrainError` naming the field when it cannot be done.
        """
        state = self.state
        if kind == "drain":
            sends = state.drain_agent(agent_id, max_grace_period, mark_gone)
        elif kind == "deactivate":
            sends = state.deactivate_agent(agent_id)
        elif kind == "reactivate":
            sends = state.reactivate_agent(agent_id)
        else:
            raise ValueError(f"kind: expected deactivate, drain or reactivate, got {kind!r}")
        self.deliver(sends)
        self.leadership.flush_journal()
        self._schedule_allocation()

    def set_weights(self, weights: dict[str, float]) -> None:
        """Change role weights (ValueError naming the role or weight when invalid)."""
        for role, weight in weights.items():
            self.state.set_weight(role, weight)
        self.leadership.flush_journal()
        self._schedule_allocation()

    def metrics_snapshot(self) -> dict[str, float]:
        """The ``/metrics/snapshot`` document (a non-leader reports itself, not elected)."""
        stats: Mapping[str, int] = self.transport.stats if self.transport is not None else {}
        state = self._state if self.leadership.acting else None
        if state is None:
            if self._idle_state is None:
                assert self.info is not None
                self._idle_state = MasterState(self.config, self.info, self.clock)
            state = self._idle_state
        values = metrics.snapshot(
            state,
            elected=self.leadership.elected,
            uptime=max(0.0, self.clock.time() - self.start_time),
            messages_received=stats.get("received", 0),
            messages_by_type=self.messages_by_type,
            decode_errors=stats.get("decode_errors", 0),
            transport_dropped=stats.get("dropped", 0) + self.undeliverable,
            allocation_runs=state.allocator.allocation_runs,
            allocation_run_ms=self.allocation_run_ms,
            event_queue_dispatches=1 if self._alloc_handle is not None else 0,
        )
        values.update(self.leadership.metrics())
        values.update(self.allocation_times.metrics("allocator/mesos/allocation_run_ms"))
        values.update(self.full_allocation_times.metrics("allocator/allocation_full_run_ms"))
        values.update(self.loop_lag.metrics())
        return values

    def metrics_histograms(self) -> str:
        """The histograms of ``/metrics`` in Prometheus text (a non-leader's are empty)."""
        state = self._state if self.leadership.acting else None
        if state is None:
            return metrics.histograms_text(Histogram(LAUNCH_TO_RUNNING_BUCKETS),
                                           HistogramFamily(LATENCY_BUCKETS, ("answer",)))
        return metrics.histograms_text(state.launch_to_running, state.offer_round_trip)
