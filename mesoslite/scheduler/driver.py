"""The scheduler driver: lifecycle, threads and the link to the master.

Owns: :class:`SchedulerDriver`.  The driver connects to
the leading master (found through a :class:`~mesoslite.scheduler.detector.MasterDetector`),
subscribes with randomised capped backoff, heartbeats, notices a silent
master, turns messages from the master into :class:`~mesoslite.scheduler.Scheduler`
callbacks, de-duplicates and acknowledges status updates, and turns the
framework's calls (:mod:`mesoslite.scheduler.calls`) into messages.
Timers and backoff live in the pure :mod:`mesoslite.scheduler.session`.

Threads.  All driver work happens on one asyncio event loop: the caller's
(``await start_async()``), a background thread's (``start()``) or the calling
thread's own (``run()``).  Every public method may be called from any thread
and from inside callbacks; calls from other threads cross into the loop with
``loop.call_soon_threadsafe``.  Callbacks run on the loop thread, one at a time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import getpass
import logging
import os
import random
import signal
import threading
from collections.abc import Callable
from typing import Any

import attrs

from mesoslite.clock import SYSTEM_CLOCK, Clock
from mesoslite.protocol import (
    Acknowledge,
    AuthenticationCompleted,
    AuthenticationFailed,
    AuthenticationStep,
    ClientAuthn,
    Credential,
    Deactivate,
    Error,
    ExecutorToFrameworkMessage,
    Failure,
    FrameworkInfo,
    Heartbeat,
    LeaderRedirect,
    Offers,
    ProtocolError,
    Rescind,
    Subscribe,
    Subscribed,
    TaskStatus,
    Teardown,
    Update,
)
from mesoslite.protocol.authn import NOT_AUTHENTICATED
from mesoslite.scheduler.calls import DriverCalls
from mesoslite.scheduler.detector import MasterDetector, StaticMasterDetector, detector_for
from mesoslite.scheduler.scheduler import Scheduler
from mesoslite.scheduler.session import MAX_MISSED_HEARTBEATS, Action, SeenUpdates, Session
from mesoslite.scheduler.status import Status
from mesoslite.transport import CurveClientKeys, DealerClient

log = logging.getLogger("mesoslite.scheduler")

#: How long stop() waits for the master to confirm it received the last message.
STOP_FLUSH_TIMEOUT = 1.0  # seconds the last Teardown/Deactivate may linger
#: Seconds an authentication exchange may take before a retry starts a new one.
AUTHENTICATION_TIMEOUT = 5.0
#: How long a blocking stop() from another thread waits for the driver's loop.
STOP_WAIT_TIMEOUT = 10.0


class SchedulerDriver(DriverCalls):
    """Connects a :class:`Scheduler` to the master (Mesos ``MesosSchedulerDriver``).

    Lifecycle: ``DRIVER_NOT_STARTED`` → :meth:`start` → ``DRIVER_RUNNING`` →
    :meth:`stop` → ``DRIVER_STOPPED``, or :meth:`abort` (or an ``Error`` from
    the master, or a callback raising) → ``DRIVER_ABORTED``.  A driver runs
    once; create another to start again.

    Calls before subscription (the framework calls in :class:`DriverCalls`)
    are *refused* as in Mesos, not queued: while the driver is not subscribed
    they are dropped with a log line, except that tasks in a dropped launch
    are reported back through ``status_update`` as ``TASK_LOST``
    (``TASK_DROPPED`` for ``PARTITION_AWARE`` frameworks), source
    ``SOURCE_MASTER``, reason ``REASON_MASTER_DISCONNECTED``, without uuid.
    A framework therefore acts on offers (which only arrive while
    subscribed) and re-reconciles in ``reregistered``.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        framework_info: FrameworkInfo,
        master: str | MasterDetector,
        *,
        implicit_acknowledgements: bool = True,
        registration_backoff_factor: float = 2.0,
        registration_backoff_max: float = 60.0,
        clock: Clock | None = None,
        curve: CurveClientKeys | None = None,
        rng: random.Random | None = None,
        credential: Credential | None = None,
    ) -> None:
        """Prepare a driver; nothing happens until :meth:`start`/:meth:`run`.

        ``master`` is ``host:port``, ``tcp://host:port`` or a detector.
        ``framework_info.id`` set means fail over to that framework id.
        ``registration_backoff_factor``/``_max`` (seconds): retry ``n`` of
        Subscribe waits uniform [0, min(factor·2^n, max)] (Mesos: 2 s, 1 min).
        ``clock`` is what the heartbeat/backoff/silence schedule is measured
        against (loop timers are armed from it, so a fake clock suits
        :class:`~mesoslite.scheduler.session.Session` tests, not a running
        driver); ``curve`` enables CURVE encryption to the master; ``rng``
        seeds the backoff jitter.  With ``credential`` the driver authenticates its
        principal (the default ``framework_info.principal``) on every new connection
        before it subscribes.  Raises TypeError/ValueError naming a bad
        ``framework_info``, ``master``, ``credential`` or backoff value.
        """
        if not isinstance(framework_info, FrameworkInfo):
            raise TypeError(
                f"framework_info: expected a FrameworkInfo, got {type(framework_info).__name__}"
            )
        self._scheduler = scheduler
        if not framework_info.user:
            # As the Mesos driver does: an empty user means the current user.
            framework_info = attrs.evolve(framework_info, user=_current_user())
        framework_info = _with_principal(framework_info, credential)
        self._init_authentication(credential)
        self._framework_info = framework_info
        self._detector = detector_for(master)
        self._implicit = bool(implicit_acknowledgements)
        self._clock: Clock = clock or SYSTEM_CLOCK
        self._curve = curve
        self._session = Session(
            self._clock,
            framework_id=framework_info.id,
            backoff_factor=registration_backoff_factor,
            backoff_max=registration_backoff_max,
            rng=rng,
        )
        self._seen = SeenUpdates()
        self._lock = threading.RLock()
        self._status = Status.DRIVER_NOT_STARTED
        self._claimed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._finished: concurrent.futures.Future[Status] = concurrent.futures.Future()
        self._client: DealerClient | None = None
        self._endpoint: str | None = None
        self._master_info: Any = None
        self._timer: asyncio.Handle | None = None
        self._closed: asyncio.Event | None = None
        self._detect_task: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._handlers: dict[type, Callable[[Any], None]] = {
            Subscribed: self._on_subscribed,
            Heartbeat: lambda msg: None,
            Offers: self._on_offers,
            Rescind: self._on_rescind,
            Update: self._on_update,
            ExecutorToFrameworkMessage: self._on_framework_message,
            Failure: self._on_failure,
            Error: self._on_error,
            ProtocolError: self._on_protocol_error,
            LeaderRedirect: self._on_leader_redirect,
            AuthenticationStep: self._on_authentication_step,
            AuthenticationCompleted: self._on_authentication_completed,
            AuthenticationFailed: self._on_authentication_failed,
        }

    def _init_authentication(self, credential: Credential | None) -> None:
        self._credential = credential
        #: The exchange in progress, when it started, and on which connection.
        self._authn: ClientAuthn | None = None
        self._authn_started = 0.0
        self._authn_on = b""
        #: The connection (routing id) the master accepted our credential on.
        self._authenticated_on = b""

    # ------------------------------------------------------------ properties

    @property
    def status(self) -> Status:
        """The driver's current :class:`Status`."""
        return self._status

    @property
    def framework_id(self) -> str:
        """The framework id: assigned by the master, or the one given; "" before that."""
        return self._session.framework_id

    @property
    def connected(self) -> bool:
        """True while the master has accepted the subscription."""
        return self._session.is_subscribed and self._status is Status.DRIVER_RUNNING

    @property
    def master_info(self) -> Any:
        """The leading master's ``MasterInfo`` from the last ``Subscribed`` (or None)."""
        return self._master_info

    # ------------------------------------------------------------- lifecycle

    def start(self) -> Status:
        """Start the driver on a background thread's event loop; returns at once.

        Returns ``DRIVER_RUNNING``, or the current status (doing nothing) if the
        driver was already started.  Callbacks then run on that thread.  To run
        on an existing event loop use :meth:`start_async` instead.
        """
        if not self._claim():
            return self._status
        started = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)

            async def body() -> None:
                self._start_here()
                started.set()
                assert self._closed is not None
                await self._closed.wait()

            try:
                loop.run_until_complete(body())
            finally:
                self._release()
                started.set()
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=main, name="mesoslite-scheduler-driver", daemon=True)
        thread.start()
        started.wait()
        return self._status

    async def start_async(self) -> Status:
        """Start the driver on the running event loop; returns at once.

        Returns ``DRIVER_RUNNING``, or the current status if already started.
        """
        if not self._claim():
            return self._status
        self._start_here()
        return self._status

    def join(self) -> Status:
        """Block until the driver is stopped or aborted; return that status.

        Returns at once when the driver was never started.  After
        :meth:`stop` it returns once the last message to the master went out.
        Raises RuntimeError when called on the driver's own loop thread (it
        would deadlock): use :meth:`join_async` there.
        """
        if self._status is Status.DRIVER_NOT_STARTED and not self._claimed:
            return self._status
        if self._finished.done():
            return self._finished.result()
        if self._in_loop_thread():
            raise RuntimeError("join() on the driver's own loop would deadlock; use join_async()")
        return self._finished.result()

    async def join_async(self) -> Status:
        """Wait (without blocking the loop) until the driver is stopped or aborted."""
        if self._status is Status.DRIVER_NOT_STARTED and not self._claimed:
            return self._status
        return await asyncio.shield(asyncio.wrap_future(self._finished))

    def run(self) -> Status:
        """Start, then join, on a new event loop in the calling thread (for scripts).

        While it runs, SIGINT and SIGTERM (main thread only) stop the driver:
        with ``failover_timeout > 0`` as ``stop(failover=True)`` so that the
        tasks survive a scheduler restart, otherwise ``stop()``.  The signal
        handlers are removed before it returns.  Nothing is installed at
        import time.  Raises RuntimeError inside a running event loop (use
        :meth:`start_async` and :meth:`join_async` there).
        """
        return asyncio.run(self._run_main())

    def stop(self, failover: bool = False) -> Status:
        """Stop the driver; no more callbacks are made.

        ``failover=False`` tears the framework down (``Teardown``: the master
        kills its tasks and forgets it).  ``failover=True`` only disconnects
        (``Deactivate``): tasks keep running for ``failover_timeout`` so that
        another driver with the same framework id can take over.  Nothing is
        sent if the driver is not subscribed.  Allowed when running or
        aborted; returns ``DRIVER_STOPPED`` (``DRIVER_ABORTED`` if it had been
        aborted), else the current status.  From another thread it waits (at
        most ``STOP_WAIT_TIMEOUT``) until the message went out; from a callback
        or the loop thread it returns at once and the work follows on the loop.
        """
        proceed, result = self._begin_stop()
        if not proceed:
            return result
        loop = self._loop
        assert loop is not None
        if self._in_loop_thread():
            self._stop_task = loop.create_task(self._finish_stop(failover))
            return result
        try:
            future = asyncio.run_coroutine_threadsafe(self._finish_stop(failover), loop)
            future.result(timeout=STOP_WAIT_TIMEOUT)
        except (RuntimeError, concurrent.futures.TimeoutError) as exc:
            log.warning("stop(): the driver's loop did not finish stopping: %r", exc)
        return result

    async def stop_async(self, failover: bool = False) -> Status:
        """:meth:`stop` for coroutines: returns after the last message went out."""
        proceed, result = self._begin_stop()
        if not proceed:
            return result
        if self._in_loop_thread():
            await self._finish_stop(failover)
        else:
            assert self._loop is not None
            future = asyncio.run_coroutine_threadsafe(self._finish_stop(failover), self._loop)
            await asyncio.wrap_future(future)
        return result

    def abort(self) -> Status:
        """Abort: no more callbacks, timers or messages; :meth:`join` returns ``DRIVER_ABORTED``.

        Nothing is sent to the master, so the framework stays registered (it
        will miss heartbeats).  The connection is kept so that a later
        :meth:`stop` can still tear down or deactivate the framework and
        release it.  Returns ``DRIVER_ABORTED``, or the current status when
        not running.
        """
        with self._lock:
            if self._status is not Status.DRIVER_RUNNING:
                return self._status
            self._status = Status.DRIVER_ABORTED
        log.warning("framework %s: driver aborted", self.framework_id or "(unsubscribed)")
        self._on_loop(self._after_abort)
        return Status.DRIVER_ABORTED

    # ------------------------------------------------------ lifecycle (loop)

    def _claim(self) -> bool:
        with self._lock:
            if self._claimed or self._status is not Status.DRIVER_NOT_STARTED:
                return False
            self._claimed = True
            return True

    def _start_here(self) -> None:
        loop = asyncio.get_running_loop()
        self._closed = asyncio.Event()
        self._client = DealerClient(self._on_message, name="scheduler", curve=self._curve)
        self._client.start()
        with self._lock:
            self._loop = loop
            self._loop_thread = threading.current_thread()
            self._status = Status.DRIVER_RUNNING
        self._detect_task = loop.create_task(self._detect_loop(), name="scheduler-detector")
        log.info("framework %r: driver started", self._framework_info.name)

    def _begin_stop(self) -> tuple[bool, Status]:
        with self._lock:
            before = self._status
            if before not in (Status.DRIVER_RUNNING, Status.DRIVER_ABORTED):
                return False, before
            self._status = Status.DRIVER_STOPPED
        if before is Status.DRIVER_ABORTED:
            return True, Status.DRIVER_ABORTED
        return True, Status.DRIVER_STOPPED

    async def _finish_stop(self, failover: bool) -> None:
        await self._cancel_background()
        client = self._client
        framework_id = self._session.framework_id
        if client is not None and self._session.is_subscribed:
            if failover:
                log.info("framework %s: deactivating (failover)", framework_id)
                last: Any = Deactivate(framework_id=framework_id)
            else:
                log.info("framework %s: tearing down", framework_id)
                last = Teardown(framework_id=framework_id)
            client.send(last)
        self._session.close()
        aclose = getattr(self._detector, "aclose", None)
        if aclose is not None:  # e.g. a ZooKeeper session: end it before the loop does
            try:
                await asyncio.wait_for(aclose(), timeout=5.0)
            except Exception:
                log.exception("closing the master detector failed")
        # Linger: the last message still goes out after the socket is closed,
        # even when the process exits right after stop().
        self._release(linger=STOP_FLUSH_TIMEOUT)
        self._resolve(Status.DRIVER_STOPPED)

    def _after_abort(self) -> None:
        self._stop_background()
        self._resolve(Status.DRIVER_ABORTED)

    def _abort_now(self) -> None:
        """Abort from the loop thread (Error from the master, a callback raised)."""
        self.abort()

    def _stop_background(self) -> asyncio.Task[None] | None:
        """Cancel the timer and the detector task; return the task (to await it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task, self._detect_task = self._detect_task, None
        if task is not None:
            task.cancel()
        return task

    async def _cancel_background(self) -> None:
        task = self._stop_background()
        if task is not None and task is not asyncio.current_task():
            # Bounded: a detector that swallows cancellation must not hang stop().
            await asyncio.wait({task}, timeout=1.0)

    def _release(self, linger: float = 0.0) -> None:
        """Close the connection and the detector; idempotent, loop thread only."""
        self._stop_background()
        if self._client is not None:
            self._client.close(linger=linger)
            self._client = None
            try:
                self._detector.close()
            except Exception:
                log.exception("closing the master detector failed")
        if self._closed is not None:
            self._closed.set()

    def _resolve(self, status: Status) -> None:
        if not self._finished.done():
            self._finished.set_result(status)

    async def _run_main(self) -> Status:
        status = await self.start_async()
        if status is not Status.DRIVER_RUNNING:
            return status
        loop = asyncio.get_running_loop()
        #: signal -> the application's handler, put back afterwards (asyncio's
        #: remove_signal_handler would leave Python's default in its place).
        installed: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous = signal.getsignal(signum)
                try:
                    loop.add_signal_handler(signum, self._on_signal, signum)
                    installed[signum] = previous
                except (NotImplementedError, RuntimeError, ValueError):
                    pass
        try:
            status = await self.join_async()
            if self._stop_task is not None:
                await self._stop_task
        finally:
            for signum, previous in installed.items():
                loop.remove_signal_handler(signum)
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
            self._release()
        return status

    def _on_signal(self, signum: int) -> None:
        failover = self._framework_info.failover_timeout > 0
        log.info("signal %s: stopping the driver (failover=%s)", signal.strsignal(signum), failover)
        self.stop(failover=failover)

    # --------------------------------------------------------- thread plumbing

    def _in_loop_thread(self) -> bool:
        # Compare thread objects, not ids: a finished loop thread's id can be
        # reused by another thread (e.g. an asyncio.to_thread worker).
        return self._loop_thread is not None and threading.current_thread() is self._loop_thread

    def _on_loop(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the driver's loop: now if on its thread, else thread-safely."""
        if self._in_loop_thread():
            self._guarded(fn)
            return
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._guarded, fn)
        except RuntimeError:  # the loop closed meanwhile
            log.debug("driver loop closed; call dropped")

    @staticmethod
    def _guarded(fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:
            log.exception("driver call failed")

    def _submit(self, what: str, fn: Callable[[], object]) -> Status:
        """Run a framework call on the loop if the driver is running; return the status."""
        status = self._status
        if status is not Status.DRIVER_RUNNING:
            log.debug("%s ignored: driver is %s", what, status)
            return status
        self._on_loop(fn)
        return status

    # ----------------------------------------------------------------- timers

    def _wake_timers(self) -> None:
        """Re-evaluate the session's timers soon (after a state change)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        if self._loop is not None and self._status is Status.DRIVER_RUNNING:
            self._timer = self._loop.call_soon(self._on_timer)

    def _on_timer(self) -> None:
        # Timers are loop handles, not a task: nothing to cancel mid-await.
        self._timer = None
        if self._status is not Status.DRIVER_RUNNING:
            return
        for action in self._session.due():
            self._perform(action)
        deadline = self._session.next_deadline()
        if deadline is None or self._timer is not None or self._loop is None:
            return  # nothing scheduled, or a state change already re-armed the timer
        if self._status is Status.DRIVER_RUNNING:  # a callback may have stopped us
            delay = max(0.0, deadline - self._clock.monotonic())
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _perform(self, action: Action) -> None:
        client = self._client
        if client is None:
            return
        framework_id = self._session.framework_id
        if action is Action.SUBSCRIBE:
            if self._credential is not None and self._authenticated_on != client.identity:
                # Authenticate this connection first; Subscribe follows its completion.
                # A retry does not cut an exchange in progress short (its answer would
                # no longer match), unless that one is older than AUTHENTICATION_TIMEOUT.
                now = self._clock.monotonic()
                if self._authn is None or self._authn_on != client.identity \
                        or now - self._authn_started > AUTHENTICATION_TIMEOUT:
                    self._authn = ClientAuthn(self._credential, "framework", os.urandom(32))
                    self._authn_started = now
                    self._authn_on = client.identity
                    client.send(self._authn.start())
                return
            self._send_subscribe(client)
        elif action is Action.HEARTBEAT:
            client.send(Heartbeat(sender_id=framework_id))
        elif action is Action.MASTER_SILENT:
            log.warning("framework %s: no message from master %s for %d heartbeat intervals; "
                        "re-subscribing", framework_id, self._endpoint, MAX_MISSED_HEARTBEATS)
            if self._endpoint is not None:
                client.connect(self._endpoint)  # a fresh socket and identity
            self._callback("disconnected")

    def _send_subscribe(self, client: DealerClient) -> None:
        framework_id = self._session.framework_id
        info = attrs.evolve(self._framework_info, id=framework_id)
        level = logging.INFO if self._session.attempts <= 1 else logging.DEBUG
        log.log(level, "subscribing to %s as %r (attempt %d)",
                self._endpoint, framework_id or "(new)", self._session.attempts)
        client.send(Subscribe(framework_info=info))

    def _on_authentication_step(self, msg: AuthenticationStep) -> None:
        if self._authn is not None and self._client is not None:
            self._client.send(self._authn.on_step(msg))

    def _on_authentication_completed(self, msg: AuthenticationCompleted) -> None:
        authn, client = self._authn, self._client
        if authn is None or client is None:
            return
        self._authn = None
        if not authn.on_completed(msg):
            self._fail_authentication("the master did not prove it knows the credential's "
                                      "secret (a master with other credentials, or a fake)")
            return
        log.info("framework %r: authenticated as principal %r", self._framework_info.name,
                 msg.principal)
        self._authenticated_on = client.identity
        if not self._session.is_subscribed:
            self._send_subscribe(client)

    def _on_authentication_failed(self, msg: AuthenticationFailed) -> None:
        self._authn = None
        self._fail_authentication(f"master refused authentication: {msg.message}")

    def _fail_authentication(self, why: str) -> None:
        """Authentication failed for good (Mesos: the driver aborts): error(), then abort."""
        log.error("framework %r: %s", self._framework_info.name, why)
        self._abort_now()
        try:
            self._scheduler.error(self, why)
        except Exception:
            log.exception("scheduler callback error raised")

    async def _detect_loop(self) -> None:
        current: str | None = None
        while True:
            try:
                leader = await self._detector.detect(current)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("master detection failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if leader != current:
                current = leader
                self._switch_master(leader)

    def _switch_master(self, endpoint: str | None) -> None:
        if endpoint is None:
            log.warning("no leading master known")
            self._endpoint = None
            if self._session.master_lost():
                self._callback("disconnected")
            return
        log.info("leading master: %s", endpoint)
        assert self._client is not None
        self._endpoint = endpoint
        self._client.connect(endpoint)
        was_subscribed = self._session.master_detected()
        self._wake_timers()
        if was_subscribed:
            self._callback("disconnected")

    # -------------------------------------------------------------- messages

    def _on_message(self, msg: Any) -> None:
        if self._status is not Status.DRIVER_RUNNING:
            return
        self._session.heard_from_master()
        handler = self._handlers.get(type(msg))
        if handler is None:
            log.warning("ignoring unexpected %s from the master", type(msg).__name__)
            return
        if not self._session.is_subscribed and not isinstance(
            msg, (Subscribed, Heartbeat, Error, ProtocolError, LeaderRedirect,
                  AuthenticationStep, AuthenticationCompleted, AuthenticationFailed)
        ):
            log.debug("ignoring %s: not subscribed", type(msg).__name__)
            return
        handler(msg)

    def _on_subscribed(self, msg: Subscribed) -> None:
        if self._session.is_subscribed and msg.framework_id == self._session.framework_id:
            log.debug("duplicate Subscribed ignored")  # two Subscribe retries both answered
            return
        first = self._session.subscribed(msg.framework_id, msg.heartbeat_interval_seconds)
        self._master_info = msg.master_info
        self._wake_timers()
        log.info("framework %s: subscribed (heartbeat every %ss)",
                 msg.framework_id, msg.heartbeat_interval_seconds)
        if first:
            self._callback("registered", msg.framework_id, msg.master_info)
        else:
            self._callback("reregistered", msg.master_info)

    def _on_offers(self, msg: Offers) -> None:
        self._callback("resource_offers", list(msg.offers))

    def _on_rescind(self, msg: Rescind) -> None:
        self._callback("offer_rescinded", msg.offer_id)

    def _on_update(self, msg: Update) -> None:
        self._deliver_update(msg.status)

    def _deliver_update(self, status: TaskStatus) -> None:
        uuid = status.uuid
        if uuid and not self._seen.first_sight(uuid):
            if self._seen.is_acknowledged(uuid):
                self._send_ack(status)  # our acknowledgement was lost: repeat it
            log.debug("duplicate update for task %s (%s) not delivered",
                      status.task_id, status.state)
            return
        if not self._callback("status_update", status):
            return
        if uuid and self._implicit:
            self._send_ack(status)

    def _send_ack(self, status: TaskStatus) -> None:
        client = self._client
        if client is None or self._status is Status.DRIVER_ABORTED:
            return
        if not self._session.is_subscribed:
            log.info("acknowledgement of task %s dropped: not subscribed", status.task_id)
            return
        if not status.agent_id:
            log.warning("cannot acknowledge the update of task %s: it has no agent_id",
                        status.task_id)
            return
        client.send(Acknowledge(framework_id=self._session.framework_id,
                                agent_id=status.agent_id, task_id=status.task_id,
                                uuid=status.uuid))
        self._seen.mark_acknowledged(status.uuid)

    def _on_framework_message(self, msg: ExecutorToFrameworkMessage) -> None:
        self._callback("framework_message", msg.executor_id, msg.agent_id, msg.data)

    def _on_failure(self, msg: Failure) -> None:
        if msg.executor_id:
            self._callback("executor_lost", msg.executor_id, msg.agent_id, msg.status)
        else:
            self._callback("agent_lost", msg.agent_id)

    def _on_error(self, msg: Error) -> None:
        if self._credential is not None and msg.message.startswith(NOT_AUTHENTICATED):
            # A master that does not know this connection (it restarted, or failed over
            # on the same address): authenticate again rather than give up.
            log.warning("framework %s: master does not know our authentication; "
                        "authenticating again", self.framework_id)
            self._authenticated_on = b""
            self._wake_timers()
            return
        log.error("framework %s: error from master: %s", self.framework_id, msg.message)
        self._abort_now()
        try:
            self._scheduler.error(self, msg.message)
        except Exception:
            log.exception("scheduler callback error raised")

    def _on_protocol_error(self, msg: ProtocolError) -> None:
        if msg.code == "NOT_SUBSCRIBED":
            if self._session.not_subscribed():
                log.warning("framework %s: master says not subscribed; re-subscribing",
                            self.framework_id)
                self._wake_timers()
                self._callback("disconnected")
            return
        if msg.code == "NOT_LEADER":
            return  # a LeaderRedirect follows
        log.warning("master refused %s: %s (field %r, code %s)",
                    msg.in_reply_to or "a message", msg.message, msg.field, msg.code)

    def _on_leader_redirect(self, msg: LeaderRedirect) -> None:
        leader = msg.leader
        follows_detector = not isinstance(self._detector, StaticMasterDetector)
        if follows_detector:
            # A detector (zk://) is the authority: a standby that has not yet seen the
            # election may still name a leader that is already dead (or none).  The
            # master we talk to is the one the detector elected, about to notice its
            # own election: ask it again soon rather than after a full backoff.
            if self._session.leader_not_ready():
                self._wake_timers()
            log.info("master %s is not leading yet; the detector decides", self._endpoint)
            return
        if leader is None or not leader.zmq_endpoint:
            log.warning("master %s is not the leader and knows no leader", self._endpoint)
            return
        if leader.zmq_endpoint != self._endpoint:
            self._switch_master(leader.zmq_endpoint)

    def _callback(self, name: str, *args: Any) -> bool:
        """Invoke a Scheduler callback; False if not delivered or it raised (→ abort)."""
        if self._status is not Status.DRIVER_RUNNING:
            return False
        try:
            getattr(self._scheduler, name)(self, *args)
        except Exception:
            log.exception("scheduler callback %s raised; aborting the driver", name)
            self._abort_now()
            return False
        return True


def _with_principal(info: FrameworkInfo, credential: Credential | None) -> FrameworkInfo:
    """``info`` with the credential's principal (ValueError when it names another one)."""
    if credential is None:
        return info
    if not info.principal:
        return attrs.evolve(info, principal=credential.principal)
    if info.principal != credential.principal:
        raise ValueError(f"framework_info.principal {info.principal!r} is not the "
                         f"credential's principal {credential.principal!r}")
    return info


def _current_user() -> str:
    """The name of the user running this process ("" when it cannot be told)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
