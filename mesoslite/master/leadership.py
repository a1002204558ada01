"""Leadership of one master: election, recovery, durable writes, and stepping down.

Owns: :class:`Leadership`, which decides whether this master acts as the
leader, and :class:`LeadershipCallbacks`, the few functions it calls on the
process around it (start or stop acting, handle a held message, deliver
released sends, answer a peer directly).  It knows nothing of the master
shell, its sockets or its HTTP server; :mod:`mesoslite.master.main` wires it.
Its phases:

* **candidate** -- from :meth:`~Leadership.start` until elected: a
  contender (ZooKeeper with ``--zk``, else standalone and elected at once)
  and, with ZooKeeper, a detector that says who leads.  HTTP answers 307
  to the leader (503 when none is known).  A ZeroMQ message is held for up
  to :data:`CANDIDATE_HOLD` seconds (a peer's detector may see this master
  elected before this master's own contender does): if the election comes
  meanwhile it is handled after recovery, otherwise the peer is answered
  ``LeaderRedirect(leader)``.  Without ZooKeeper it is answered at once.
* **recovering** -- elected, reading the registry (``registry_fetch_timeout``);
  HTTP answers 503.  ZeroMQ messages are *held* (in order, at most
  :data:`MAX_HELD_MESSAGES`) and handled as soon as the state is rebuilt, in
  arrival order and before anything newer, so a ``Subscribe`` or
  ``ReregisterAgent`` sent the moment a peer saw the election is answered
  without waiting for the peer's retry.
* **acting** -- the state is rebuilt (:mod:`.recovery`), the timers run and
  every change the state journals is written to the registry before the
  messages that depend on it leave: :meth:`~Leadership.gate` holds *all*
  outgoing messages behind an unfinished write, in order, so nothing
  (``AgentRegistered``, offers on a new agent, ``Subscribed``) gets ahead of
  the registry.
* **deposed** -- the ZooKeeper session was lost or suspended beyond the
  grace, or a registry read or write failed (a deposed leader's write is
  fenced): acting stops at once (no offers, launches or writes; held
  messages are dropped), :attr:`~Leadership.deposed` is set and the master
  keeps answering as a non-leader until it is stopped.  ``mesoslite
  master`` exits non-zero so a supervisor restarts it as a new candidate,
  as Mesos aborts.

Every callback runs on the event loop, from this object's own methods.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import attrs

from mesoslite.clock import Clock
from mesoslite.config_checks import ConfigError
from mesoslite.coordination import (
    Contender,
    Detector,
    Registry,
    ZkUrl,
    create_contender,
    create_detector,
    derived_suspend_grace,
    parse_zk_url,
)
from mesoslite.master.config import MasterConfig
from mesoslite.master.records import Send
from mesoslite.master.recovery import Recovery
from mesoslite.master.registry_sync import RegistrySync, describe_registry, snapshot_from
from mesoslite.master.state import MasterState
from mesoslite.protocol import LeaderRedirect, MasterInfo, ProtocolError

log = logging.getLogger("mesoslite.master")

#: Longest :meth:`Leadership.stop` waits for each ZooKeeper goodbye (seconds).
STOP_TIMEOUT = 5.0
#: Most messages held while recovering; later ones are dropped (their peers retry).
MAX_HELD_MESSAGES = 50_000
#: Longest a candidate holds a message in case its election is under way (seconds).
CANDIDATE_HOLD = 1.0


def suspend_grace(session_timeout: float) -> float:
    """How long a suspended ZooKeeper connection is tolerated before stepping down.

    The default: a quarter of the session timeout, at most 2 s (see
    :func:`mesoslite.coordination.derived_suspend_grace`).  The contender and
    detector apply it to the timeout the server *granted*, unless
    ``zk_suspend_grace`` is configured.
    """
    return derived_suspend_grace(session_timeout)


def master_zk_url(config: MasterConfig) -> ZkUrl | None:
    """The parsed ``--zk`` URL (None without one); ConfigError naming ``zk`` when malformed."""
    if not config.zk:
        return None
    try:
        return parse_zk_url(config.zk)
    except ValueError as exc:
        raise ConfigError("zk", f"a ZooKeeper URL ({exc})", config.zk) from None


class LeadershipLost(RuntimeError):
    """This master stopped leading before a durable write finished."""


class StorageFailing(RuntimeError):
    """A registry write keeps failing on local storage (a full disk); it is being retried."""


#: Seconds between retries of a registry write that failed on local storage, at most.
WRITE_RETRY_MAX = 5.0


def storage_error(exc: BaseException) -> OSError | None:
    """The local-storage failure behind ``exc`` (a full disk...), or None.

    A timeout is not one (it ends the leadership as before), nor a ZooKeeper error.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and not isinstance(seen, TimeoutError) \
                and seen.errno is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@attrs.frozen
class LeadershipCallbacks:
    """What :class:`Leadership` asks of the process around it (each called on the loop)."""

    #: Elected and recovered: act on this rebuilt state (start the timers).
    elected: Callable[[MasterState], None]
    #: Leadership lost: stop acting at once (cancel every timer).
    deposed: Callable[[], None]
    #: Handle one message held while recovering, as the acting leader.
    handle: Callable[[bytes, Any], None]
    #: Send messages whose registry writes are durable (they are not gated again).
    deliver: Callable[[list[Send]], None]
    #: Answer one peer directly (a ``LeaderRedirect``), bypassing the state.
    send: Callable[[bytes, Any], object]


class Leadership:
    """Whether this master leads, and everything that changes with it."""

    def __init__(self, config: MasterConfig, clock: Clock, registry: Registry,
                 callbacks: LeadershipCallbacks) -> None:
        """Check the ZooKeeper URL (ConfigError naming ``zk``); nothing starts yet.

        ``registry`` is where the master's durable state lives (see
        :func:`~mesoslite.master.registry_sync.open_registry`); it is read on
        election and written while acting.
        """
        self.config = config
        self.clock = clock
        self.callbacks = callbacks
        self.zk_url = master_zk_url(config)
        #: This master, as it contends (set by :meth:`start`).
        self.info: MasterInfo | None = None
        self.contender: Contender | None = None
        self.detector: Detector | None = None
        self.registry = registry
        #: The state this master acts on (set once elected and recovered).
        self.state: MasterState | None = None
        self.sync: RegistrySync | None = None
        self.recovery: Recovery | None = None
        #: Elected and recovered: handles messages, runs timers, writes the registry.
        self.acting = False
        #: Elected, still reading the registry.
        self.recovering = False
        #: Set once leadership was lost (or could not be taken up); see :attr:`deposed_reason`.
        self.deposed = asyncio.Event()
        self.deposed_reason = ""
        self.registry_fetch_ms = 0.0
        self.registry_store_ms = 0.0
        self.queued_operations = 0
        self.registry_writes = 0
        #: Why registry writes fail now ("" while they work): answered with 507.
        self.write_error = ""
        self._storage_ok = asyncio.Event()
        self._storage_ok.set()
        self.redirects = 0
        self.dropped_while_recovering = 0
        #: Messages held while recovering and handled once acting (cumulative).
        self.held_while_recovering = 0
        #: (arrival time, peer, message) held until the state is rebuilt.
        self._held: collections.deque[tuple[float, bytes, Any]] = collections.deque()
        self._hold_timer: asyncio.TimerHandle | None = None
        self._outbox: collections.deque[Any] = collections.deque()
        self._last_write: asyncio.Future[bool] | None = None
        self._election: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._stopped = False

    # ------------------------------------------------------------ lifecycle

    async def start(self, info: MasterInfo) -> None:
        """Enter the election as ``info`` (standalone: lead and recover before returning).

        Raises CoordinationError when ZooKeeper cannot be reached, and, in
        standalone mode, the registry error when the registry cannot be read.
        """
        self.info = info
        config = self.config
        if config.agent_reregister_timeout < 600:
            log.warning("agent_reregister_timeout is %.1f s; Mesos requires at least 600 s so "
                        "that agents have time to find a new leader",
                        config.agent_reregister_timeout)
        if self.zk_url is not None:
            grace = config.zk_suspend_grace  # None: derived from the negotiated timeout
            self.detector = create_detector(self.zk_url, session_timeout=config.zk_session_timeout,
                                            suspend_grace=grace)
            await self.detector.start()
            self.contender = create_contender(self.zk_url, info,
                                              session_timeout=config.zk_session_timeout,
                                              suspend_grace=grace)
        else:
            self.contender = create_contender(None, info)
        self.contender.on_elected(self._on_elected)
        self.contender.on_deposed(self._on_deposed)
        log.info("master %s: contending for leadership (%s); registry: %s", info.id,
                 self.zk_url or "standalone", describe_registry(config))
        await self.contender.start()
        if self.zk_url is not None and not self.elected:
            # Connect the registry's session now, so that an election does not wait for it.
            connect = getattr(self.registry, "connect", None)
            if connect is not None:
                self._spawn(self._preconnect(connect))
        if self.zk_url is None and self._election is not None:
            await self._election
            if not self.acting:
                raise RuntimeError(f"the master could not take up leadership: "
                                   f"{self.deposed_reason}")

    async def _preconnect(self, connect: Any) -> None:
        """Open the registry's ZooKeeper session ahead of any election (failures: later)."""
        try:
            await connect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the election's read connects again
            log.info("registry: could not connect ahead of an election (%r); will connect "
                     "when elected", exc)

    async def stop(self) -> None:
        """Stop acting, let queued registry writes finish, leave the election (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        was_acting = self.acting
        self.acting = False
        self.recovering = False
        self._drop_held()
        if self._election is not None and not self._election.done():
            self._election.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._election
        # A leader lets its queued writes finish; a deposed one's are fenced anyway.
        deposed = self.deposed.is_set()
        timeout = STOP_TIMEOUT if deposed else self.config.registry_store_timeout
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.registry.close(), timeout)
        if self.contender is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.contender.withdraw(), STOP_TIMEOUT)
        if self.detector is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.detector.stop(), STOP_TIMEOUT)
        for task in list(self._background):
            task.cancel()
        if was_acting:
            log.info("master %s: left the election", self.info.id if self.info else "?")

    # ------------------------------------------------------------ who leads

    @property
    def elected(self) -> bool:
        """True while this master holds leadership (recovering or acting)."""
        return self.acting or self.recovering

    def leader(self) -> MasterInfo | None:
        """The leading master as far as this one knows (None: unknown, or this one recovering)."""
        if self.acting:
            return self.info
        if self.detector is None:
            return None
        current = self.detector.current()
        own = self.info
        if current is None or (own is not None and current.id == own.id):
            return None
        return current

    def about_to_lead(self) -> bool:
        """True while recovering, or while this master's detector already names it the leader
        (its contender's election event is on the way)."""
        if self.recovering:
            return True
        if self.acting or self._stopped or self.deposed.is_set() or self.detector is None:
            return False
        current = self.detector.current()
        own = self.info
        return current is not None and own is not None and current.id == own.id

    def refuse(self, peer: bytes, msg: Any) -> None:
        """A message reached a master that does not act as the leader.

        Recovering, or a ZooKeeper candidate: hold it (at most
        :data:`MAX_HELD_MESSAGES`; beyond that it is dropped and the peer
        retries), to be handled once the state is rebuilt -- a candidate only
        for :data:`CANDIDATE_HOLD` seconds unless its detector names it the
        leader, then it points the peer to the leader.  Otherwise (standalone,
        deposed, stopped) the peer is pointed to the leader at once.
        """
        if isinstance(msg, LeaderRedirect | ProtocolError):
            return  # never answer an answer
        if self.recovering or (self.zk_url is not None and not self._stopped
                               and not self.deposed.is_set()):
            if len(self._held) >= MAX_HELD_MESSAGES:
                self.dropped_while_recovering += 1
                return  # the peer retries; by then this master acts
            self._held.append((time.monotonic(), peer, msg))
            if not self.recovering:
                self._arm_hold_timer()
            return
        self._redirect(peer)

    def _redirect(self, peer: bytes) -> None:
        self.redirects += 1
        self.callbacks.send(peer, LeaderRedirect(self.leader()))

    def _arm_hold_timer(self) -> None:
        if self._hold_timer is None and self._held:
            delay = max(0.0, self._held[0][0] + CANDIDATE_HOLD - time.monotonic())
            self._hold_timer = asyncio.get_running_loop().call_later(delay, self._expire_held)

    def _expire_held(self) -> None:
        """A candidate still not elected: redirect the peers whose messages waited too long."""
        self._hold_timer = None
        if self.elected or self.about_to_lead():
            if not self.elected:
                self._hold_timer = asyncio.get_running_loop().call_later(
                    CANDIDATE_HOLD, self._expire_held)
            return
        limit = time.monotonic() - CANDIDATE_HOLD
        answered: set[bytes] = set()
        while self._held and self._held[0][0] <= limit:
            _, peer, _msg = self._held.popleft()
            if peer not in answered:  # one redirect per peer is enough
                answered.add(peer)
                self._redirect(peer)
        self._arm_hold_timer()

    def _drop_held(self) -> None:
        self._held.clear()
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None

    # ------------------------------------------------------------ election

    def _on_elected(self) -> None:
        if self._stopped or self.deposed.is_set():
            return
        self.recovering = True
        self._election = asyncio.get_running_loop().create_task(self._take_up())

    async def _take_up(self) -> None:
        """Read the registry, rebuild the state, start acting."""
        config = self.config
        info = self.info
        assert info is not None and self.contender is not None
        log.info("master %s: elected leading master; reading the registry (%s)", info.id,
                 describe_registry(config))
        started = time.perf_counter()
        try:
            if hasattr(self.registry, "fencing_path"):
                # Writes are fenced by the leader znode (which may have been re-created).
                self.registry.fencing_path = self.contender.fencing_path()
            stored = await asyncio.wait_for(self.registry.load(), config.registry_fetch_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to recover ends the leadership
            self.recovering = False
            await self.abdicate(f"could not read the registry: {exc!r}")
            return
        if not self.recovering:  # deposed (or stopped) while reading
            return
        self.registry_fetch_ms = (time.perf_counter() - started) * 1000.0
        state = MasterState(config, info, self.clock)
        state.journal = []
        self.state = state
        self.recovery = Recovery(state, snapshot_from(stored))
        self.sync = RegistrySync(stored)
        self.recovering = False
        self.acting = True
        self.callbacks.elected(state)
        held, self._held = self._held, collections.deque()
        self._drop_held()
        log.info("master %s: leading (registry read in %.0f ms); handling %d message(s) held "
                 "meanwhile", info.id, self.registry_fetch_ms, len(held))
        self.held_while_recovering += len(held)
        for _, peer, msg in held:  # in arrival order, before anything that arrives later
            if not self.acting:
                break
            self.callbacks.handle(peer, msg)

    def _on_deposed(self, reason: str) -> None:
        self._step_down(reason)

    async def abdicate(self, reason: str) -> None:
        """Stop acting as the leader at once and leave the election, so another master leads."""
        self._step_down(reason)
        if self.contender is not None:
            with contextlib.suppress(Exception):
                await self.contender.withdraw()

    def _step_down(self, reason: str) -> None:
        if self.deposed.is_set() or self._stopped:
            return
        was = "leading" if self.acting else "recovering" if self.recovering else "a candidate"
        self.acting = False
        self.recovering = False
        self._storage_ok.set()  # writes waiting for storage give up (not acting any more)
        self._outbox.clear()  # held messages depended on writes that may never be durable
        self._drop_held()
        self.callbacks.deposed()
        if self._election is not None and not self._election.done() \
                and self._election is not asyncio.current_task():
            self._election.cancel()
        self.deposed_reason = reason
        self.deposed.set()
        log.error("master %s: stopped acting as the leading master (was %s): %s",
                  self.info.id if self.info else "?", was, reason)
        self._spawn(self.registry.close())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------ durable writes

    def gate(self, sends: list[Send]) -> bool:
        """Called before ``sends`` leave: True when they must not be sent now.

        Writes whatever the state journaled (those messages may depend on it)
        and holds ``sends`` while any write is unfinished; held messages go out
        in order once the writes before them are durable.  Nothing leaves a
        master that does not act as the leader.
        """
        if not self.acting:
            return True
        state = self.state
        if state is not None and state.journal:
            self._persist(state)
        if not self._outbox:
            return False
        if sends:
            self._outbox.append(sends)
        return True

    def flush_journal(self) -> None:
        """Write whatever the state journaled (for changes that send nothing, e.g. weights)."""
        state = self.state
        if self.acting and state is not None and state.journal:
            self._persist(state)

    async def durable(self) -> None:
        """Wait until every registry write asked for so far is durable.

        Raises :class:`LeadershipLost` when a write failed or leadership ended.
        """
        self.flush_journal()
        last = self._last_write
        if last is not None and not last.done():
            try:
                await asyncio.wait_for(asyncio.shield(last), self.config.registry_store_timeout)
            except TimeoutError:
                if self.write_error:
                    raise StorageFailing(self.write_error) from None
        if last is not None and not await asyncio.shield(last):
            raise LeadershipLost(self.deposed_reason or "a registry write failed")
        if not self.acting:
            raise LeadershipLost(self.deposed_reason or "this master is not the leader")

    def _persist(self, state: MasterState) -> None:
        changes, state.journal = state.journal, []
        assert self.sync is not None
        ops = self.sync.ops_for(changes or ())
        if not ops or not getattr(self.registry, "durable", True):
            return  # nothing to write, or nothing durable to wait for (in-memory registry)
        barrier: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outbox.append(barrier)
        self._last_write = barrier
        self._spawn(self._write(ops, barrier))

    async def _write(self, ops: list[Any], barrier: asyncio.Future[bool]) -> None:
        started = time.perf_counter()
        self.queued_operations += len(ops)
        try:
            await self._apply_retrying(ops)
        except asyncio.CancelledError:
            barrier.set_result(False)
            raise
        except Exception as exc:  # noqa: BLE001 - any failed write ends the leadership
            barrier.set_result(False)
            if self.acting:
                await self.abdicate(f"registry write of {len(ops)} operation(s) failed: {exc!r}")
            return
        finally:
            self.queued_operations -= len(ops)
        self.registry_store_ms = (time.perf_counter() - started) * 1000.0
        self.registry_writes += 1
        barrier.set_result(True)
        self._release()

    async def _apply_retrying(self, ops: list[Any]) -> None:
        """Apply ``ops``; a write failing on local storage (a full disk) is retried with
        backoff while this master leads (messages stay held, ``write_error`` says why)
        instead of ending the leadership.  Other failures and timeouts raise."""
        delay = 0.25
        failures = 0
        while not self._storage_ok.is_set() and self.acting:  # keep writes in order
            await self._storage_ok.wait()
        while True:
            try:
                await asyncio.wait_for(self.registry.apply(*ops),
                                       self.config.registry_store_timeout)
            except Exception as exc:
                cause = storage_error(exc)
                if cause is None or not self.acting:
                    raise
                failures += 1
                self._storage_ok.clear()
                self.write_error = (f"registry write failed: {cause.strerror or cause}; "
                                    "retrying (free space on the master's work_dir)")
                if failures == 1 or failures % 20 == 0:
                    log.error("master: %s (attempt %d)", self.write_error, failures)
                await asyncio.sleep(delay)
                delay = min(WRITE_RETRY_MAX, delay * 2)
                continue
            if failures:
                log.info("master: registry writes work again after %d failed attempt(s)",
                         failures)
                self.write_error = ""
                self._storage_ok.set()
            return

    def _release(self) -> None:
        """Send the held messages whose writes are all durable, in order."""
        outbox = self._outbox
        while outbox and self.acting:
            head = outbox[0]
            if isinstance(head, asyncio.Future):
                if not head.done():
                    return
                outbox.popleft()
                continue
            outbox.popleft()
            self.callbacks.deliver(head)

    # ------------------------------------------------------------ timers, metrics

    def tick(self) -> list[Send]:
        """The recovery deadlines (agents not back, frameworks not re-subscribed)."""
        if self.recovery is None or not self.acting:
            return []
        return self.recovery.tick()

    def metrics(self) -> dict[str, float]:
        """Registry and recovery metrics (Mesos names where they exist)."""
        recovery = self.recovery
        return {
            "registrar/state_fetch_ms": self.registry_fetch_ms,
            "registrar/state_store_ms": self.registry_store_ms,
            "registrar/queued_operations": self.queued_operations,
            "registrar/writes": self.registry_writes,
            "master/recovery_slave_removals": recovery.agents_removed if recovery else 0,
            "master/recovery_framework_removals": recovery.frameworks_removed if recovery else 0,
            "master/slaves_recovered": (len(recovery.state.recovered_agents)
                                        if recovery else 0),
            "master/leader_redirects": self.redirects,
            "master/messages_held_while_recovering": self.held_while_recovering,
            "master/messages_dropped_while_recovering": self.dropped_while_recovering,
        }
