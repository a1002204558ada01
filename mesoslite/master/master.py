"""The master process: sockets, timers and HTTP around the pure state.

Owns: :class:`Master`, the thin shell that binds the ROUTER socket and the
HTTP server, routes each incoming message through :data:`DISPATCH` (one
table: message type -> state handler), delivers the handlers' sends, and
runs the timers on the event loop: batch allocation every
``allocation_interval`` plus coalesced allocations soon after anything frees
resources or wants offers, and the state's :meth:`~MasterState.tick` (pings,
heartbeats, disconnects, failover teardown, offer timeouts).

Leadership (election, registry recovery, durable writes, stepping down)
is :class:`~mesoslite.master.leadership.Leadership`'s: the shell handles
messages, runs timers and delivers sends only while it acts as the leader.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from mesoslite import __version__
from mesoslite.clock import SYSTEM_CLOCK, Clock
from mesoslite.master import metrics
from mesoslite.master.config import MasterConfig
from mesoslite.master.leadership import Leadership
from mesoslite.master.records import Send
from mesoslite.master.state import MasterState
from mesoslite.protocol import (
    Accept,
    Acknowledge,
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
from mesoslite.transport import CurveServerKeys, RouterServer

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
    # anyone
    ProtocolError: MasterState.protocol_error,
}

#: Delay that batches event-triggered allocations (seconds).
ALLOCATION_BATCH_DELAY = 0.005


class Master:
    """A master: standalone (leads at once) or one of several contending through ZooKeeper.

    After :meth:`start`: ``info`` (MasterInfo, id a uuid4 string),
    ``zmq_endpoint`` (``tcp://ip:port``), ``zmq_port`` and ``http_port``
    (the bound ports, useful with port 0); ``state`` (:class:`MasterState`)
    once elected (at once when standalone).  ``leadership`` says whether it
    leads; ``deposed`` is set when it lost leadership for good.
    """

    def __init__(self, config: MasterConfig | None = None, clock: Clock | None = None) -> None:
        """Configure; nothing is bound until :meth:`start`."""
        self.config = config or MasterConfig()
        self.clock = clock or SYSTEM_CLOCK
        self.info: MasterInfo | None = None
        self._state: MasterState | None = None
        self.zmq_endpoint = ""
        self.zmq_port = 0
        self.http_port = 0
        self.start_time = 0.0
        self.elected_time = 0.0
        #: Messages received, by type name.
        self.messages_by_type: collections.Counter[str] = collections.Counter()
        #: Sends that could not be delivered (no such peer, or encoding failed).
        self.undeliverable = 0
        self.handler_errors = 0
        self.allocation_run_ms = 0.0
        self._router: RouterServer | None = None
        self._http: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._alloc_handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle_state: MasterState | None = None
        #: Election, registry and stepping down (ConfigError here for a bad ``zk``).
        self.leadership = Leadership(self)

    @property
    def is_leading(self) -> bool:
        """True while this master acts as the leader (elected and recovered)."""
        return self.leadership.acting

    @property
    def deposed(self) -> asyncio.Event:
        """Set when this master lost leadership (or could not take it up); see ``leadership``."""
        return self.leadership.deposed

    @property
    def state(self) -> MasterState:
        """The pure state (available once this master leads)."""
        if self._state is None:
            raise RuntimeError("the master is not started, or has not led yet")
        return self._state

    @property
    def router(self) -> RouterServer:
        """The ROUTER socket (available once started)."""
        if self._router is None:
            raise RuntimeError("the master is not started")
        return self._router

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind the ZeroMQ and HTTP ports, serve, and contend for leadership.

        Standalone, the master leads (registry read, timers running) when this
        returns; with ZooKeeper it returns once its candidacy exists.
        """
        from mesoslite.master.http import start_http_server

        config = self.config
        self._loop = asyncio.get_running_loop()
        curve = None
        if config.curve_secret_key:
            curve = CurveServerKeys.from_files(config.curve_secret_key,
                                               config.curve_authorized_dir)
        endpoint = f"tcp://{config.ip}:{config.zmq_port}"
        try:
            self._router = RouterServer(endpoint, self._on_message, name="master", curve=curve,
                                        max_message_size=config.max_message_size)
        except Exception as exc:
            raise OSError(f"zmq_port: cannot bind {endpoint}: {exc}") from exc
        try:
            self._http, self.http_port = start_http_server(self, config.ip, config.http_port)
        except Exception as exc:
            self._router.close()
            self._router = None
            raise OSError(
                f"http_port: cannot bind {config.ip}:{config.http_port}: {exc}"
            ) from exc
        self.zmq_port = self._router.port
        host = config.advertised_hostname
        bound_host = config.ip if config.ip not in ("0.0.0.0", "*", "::") else host
        self.zmq_endpoint = f"tcp://{bound_host}:{self.zmq_port}"
        self.info = MasterInfo(
            id=str(uuid.uuid4()),
            ip=config.ip,
            port=self.http_port,
            hostname=host,
            version=__version__,
            zmq_endpoint=self.zmq_endpoint,
            http_endpoint=f"http://{bound_host}:{self.http_port}",
            pid=f"master@{bound_host}:{self.http_port}",
        )
        self.start_time = self.clock.time()
        self._router.start()
        log.info("master %s serving: zmq %s http %s", self.info.id, self.zmq_endpoint,
                 self.info.http_endpoint)
        try:
            await self.leadership.start()
        except BaseException:
            await self.stop()
            raise

    def _begin_leading(self, state: MasterState) -> None:
        """Called by :class:`Leadership` once elected and recovered: act on ``state``."""
        self._state = state
        self.elected_time = self.clock.time()
        self._tasks = [
            asyncio.create_task(self._every(self._tick_interval(), self._tick)),
            asyncio.create_task(self._every(self.config.allocation_interval,
                                            self._batch_allocation)),
        ]
        state.request_allocation(None)
        self._schedule_allocation()

    def _end_leading(self) -> None:
        """Called by :class:`Leadership` on losing leadership: stop every timer at once."""
        for task in self._tasks:
            task.cancel()
        if self._alloc_handle is not None:
            self._alloc_handle.cancel()
            self._alloc_handle = None

    async def stop(self) -> None:
        """Stop the timers and close both servers (safe to call twice)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._alloc_handle is not None:
            self._alloc_handle.cancel()
            self._alloc_handle = None
        await self.leadership.stop()
        if self._router is not None:
            self._router.close()
        if self._http is not None:
            self._http.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._http.close_all_connections(), 5.0)
            self._http = None
        log.info("master stopped")

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

    def _on_message(self, peer: bytes, msg: Any) -> None:
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
        if gated and self.leadership.gate(sends):
            return
        router = self._router
        if router is None:
            return
        state = self.state
        encoded: dict[int, bytes] = {}
        for send in sends:
            peer = state.peer_for(send.to)
            if peer is None:
                self.undeliverable += 1
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
            if not router.send_encoded(peer, data):
                self.undeliverable += 1

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
        if self._state is not None and self._state.allocation_wanted():
            self._alloc_handle = self._loop.call_later(ALLOCATION_BATCH_DELAY, self._allocate)

    def _allocate(self) -> None:
        self._alloc_handle = None
        state = self.state
        agent_ids = state.take_allocation_request()
        started = time.perf_counter()
        try:
            sends = state.allocate(agent_ids)
        except Exception:
            log.exception("master: allocation failed")
            return
        self.allocation_run_ms = (time.perf_counter() - started) * 1000.0
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

    def set_weights(self, weights: dict[str, float]) -> None:
        """Change role weights (ValueError naming the role or weight when invalid)."""
        for role, weight in weights.items():
            self.state.set_weight(role, weight)
        self.leadership.flush_journal()
        self._schedule_allocation()

    def metrics_snapshot(self) -> dict[str, float]:
        """The ``/metrics/snapshot`` document (a non-leader reports itself, not elected)."""
        router = self.router
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
            messages_received=router.stats["received"],
            messages_by_type=self.messages_by_type,
            decode_errors=router.stats["decode_errors"],
            transport_dropped=router.stats["dropped"] + self.undeliverable,
            allocation_runs=state.allocator.allocation_runs,
            allocation_run_ms=self.allocation_run_ms,
            event_queue_dispatches=1 if self._alloc_handle is not None else 0,
        )
        values.update(self.leadership.metrics())
        return values
