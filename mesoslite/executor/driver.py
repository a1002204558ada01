"""The executor SDK: the :class:`Executor` callbacks and the :class:`ExecutorDriver`.

Owns: the executor side of protocol.md §6.  The driver reads its settings
from the environment the agent sets (:class:`ExecutorSettings`), connects to
the agent (``MESOSLITE_AGENT_ZMQ``), registers, calls the executor's
callbacks (snake_case Mesos names) on its event loop, and sends status
updates and framework messages.  Status updates are kept until the agent
acknowledges them, together with the tasks no update of which was
acknowledged yet; both are re-sent when the driver re-registers (the agent
answered ``NOT_REGISTERED``: it restarted, or the connection was renewed).

Re-attaching to a restarted agent (``--recover=reconnect``): once the agent
process that started this executor is gone, the driver probes the agent's
executor endpoint (a plain TCP connect every ``reattach_interval`` seconds);
as soon as a new agent process listens there it opens a fresh connection
(ZeroMQ's own reconnection may be backing off for seconds) and re-registers
at once, rather than on its next heartbeat.  The new agent then finishes its
recovery without waiting for executors' heartbeats.

Threads: every callback runs on the driver's event loop thread.  ``run()``
runs that loop in the calling thread; ``start()`` runs it in a background
thread; ``await run_async()`` runs it on the current loop.  ``stop``,
``abort``, ``send_status_update`` and ``send_framework_message`` may be
called from any thread.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from mesoslite.proc import process_alive
from mesoslite.protocol import (
    AgentInfo,
    ExecutorInfo,
    ExecutorRegistered,
    ExecutorReregistered,
    ExecutorToFrameworkMessage,
    FrameworkInfo,
    FrameworkToExecutorMessage,
    Heartbeat,
    KillPolicy,
    KillTask,
    ProtocolError,
    RegisterExecutor,
    ReregisterExecutor,
    RunTask,
    ShutdownExecutor,
    Source,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mesoslite.transport import DealerClient

log = logging.getLogger("mesoslite.executor")


class DriverStatus(str, enum.Enum):
    """The state of a driver (Mesos ``Status``)."""

    DRIVER_NOT_STARTED = "DRIVER_NOT_STARTED"
    DRIVER_RUNNING = "DRIVER_RUNNING"
    DRIVER_ABORTED = "DRIVER_ABORTED"
    DRIVER_STOPPED = "DRIVER_STOPPED"


class Executor:
    """Executor callbacks; subclass and override what you need (all default to no-ops)."""

    def registered(
        self,
        driver: ExecutorDriver,
        executor_info: ExecutorInfo,
        framework_info: FrameworkInfo,
        agent_info: AgentInfo | None,
    ) -> None:
        """The agent accepted this executor; tasks follow."""

    def reregistered(self, driver: ExecutorDriver, agent_info: AgentInfo | None) -> None:
        """The executor re-registered with a (restarted) agent."""

    def disconnected(self, driver: ExecutorDriver) -> None:
        """The agent went away (its process ended)."""

    def launch_task(self, driver: ExecutorDriver, task: TaskInfo) -> None:
        """Run ``task``; report progress with ``driver.send_status_update``."""

    def kill_task(self, driver: ExecutorDriver, task_id: str) -> None:
        """Kill a task; report TASK_KILLED when it is gone."""

    def kill_task_with_policy(
        self, driver: ExecutorDriver, task_id: str, kill_policy: KillPolicy | None
    ) -> None:
        """Kill a task with the grace period the agent chose; defaults to :meth:`kill_task`."""
        self.kill_task(driver, task_id)

    def framework_message(self, driver: ExecutorDriver, data: bytes) -> None:
        """Opaque data from the scheduler (best effort)."""

    def shutdown(self, driver: ExecutorDriver) -> None:
        """Kill every task and exit; the driver stops after the shutdown grace period."""

    def error(self, driver: ExecutorDriver, message: str) -> None:
        """A fatal error; the driver aborts after this callback."""


_REQUIRED = ("MESOSLITE_AGENT_ZMQ", "MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID",
             "MESOS_CONTAINER_ID")


@attrs.frozen
class ExecutorSettings:
    """What the agent told the executor through its environment (protocol.md §6)."""

    agent_zmq: str
    framework_id: str
    executor_id: str
    container_id: str
    sandbox: str = ""
    agent_endpoint: str = ""
    checkpoint: bool = False
    shutdown_grace_period: float = 5.0
    recovery_timeout: float = 900.0
    agent_pid: int = 0
    #: MESOS_EXECUTOR_AUTHENTICATION_TOKEN: proves to the agent which container this is.
    token: str = attrs.field(default="", repr=False)

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> ExecutorSettings:
        """Read the settings; ValueError names a missing or malformed variable."""
        for name in _REQUIRED:
            if not env.get(name):
                raise ValueError(f"{name}: expected to be set in the environment by the agent")

        def number(name: str, default: float) -> float:
            raw = env.get(name, "")
            if not raw:
                return default
            try:
                return parse_seconds(raw)
            except ValueError:
                raise ValueError(f"{name}: expected seconds or a Mesos duration such as "
                                 f"'5secs', got {raw!r}") from None

        return cls(
            agent_zmq=env["MESOSLITE_AGENT_ZMQ"],
            framework_id=env["MESOS_FRAMEWORK_ID"],
            executor_id=env["MESOS_EXECUTOR_ID"],
            container_id=env["MESOS_CONTAINER_ID"],
            sandbox=env.get("MESOS_SANDBOX", ""),
            agent_endpoint=env.get("MESOS_AGENT_ENDPOINT", ""),
            checkpoint=env.get("MESOS_CHECKPOINT", "0") in ("1", "true", "True"),
            shutdown_grace_period=number("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", 5.0),
            recovery_timeout=number("MESOS_RECOVERY_TIMEOUT", 900.0),
            agent_pid=int(number("MESOSLITE_AGENT_PID", 0)),
            token=env.get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", ""),
        )


#: Mesos duration units, in seconds.
_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "secs": 1.0, "mins": 60.0, "hrs": 3600.0,
          "days": 86400.0, "weeks": 604800.0}
_DURATION = re.compile(
    r"^([0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)\s*(ns|us|ms|secs|mins|hrs|days|weeks)?$")


def parse_seconds(raw: str) -> float:
    """Seconds from ``2.5`` or a Mesos duration (``5secs``, ``500ms``, ``15mins``)."""
    match = _DURATION.match(raw.strip())
    if match is None:
        raise ValueError(f"expected seconds or a Mesos duration, got {raw!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or "secs"]


def _tcp_address(endpoint: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``tcp://host:port`` endpoint; None for anything else."""
    if not endpoint.startswith("tcp://"):
        return None
    host, sep, port = endpoint[len("tcp://"):].rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


async def _accepts_connections(host: str, port: int, timeout: float) -> bool:
    """True when something accepts a TCP connection on ``host:port`` (closed at once)."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


class ExecutorDriver:
    """Connects an :class:`Executor` to its agent (Mesos ExecutorDriver API)."""

    def __init__(
        self,
        executor: Executor,
        environ: Mapping[str, str] | None = None,
        *,
        heartbeat_interval: float = 5.0,
        liveness_interval: float = 1.0,
        reattach_interval: float = 0.1,
    ) -> None:
        """Wrap ``executor``; settings come from ``environ`` (default: os.environ).

        ``reattach_interval``: seconds between probes of the agent's endpoint
        while its process is gone (see the module docstring).
        """
        self.executor = executor
        self._environ = dict(os.environ if environ is None else environ)
        self._heartbeat_interval = heartbeat_interval
        self._liveness_interval = liveness_interval
        self._reattach_interval = reattach_interval
        self._status = DriverStatus.DRIVER_NOT_STARTED
        self._settings: ExecutorSettings | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._client: DealerClient | None = None
        self._stop_event: asyncio.Event | None = None
        self._finished = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._updates: collections.OrderedDict[bytes, StatusUpdate] = collections.OrderedDict()
        self._tasks: collections.OrderedDict[str, TaskInfo] = collections.OrderedDict()
        self._acked: asyncio.Event | None = None
        self._registered_once = False
        self._connected = False
        self._shutting_down = False
        self._agent_lost_at: float | None = None
        self._jobs: set[asyncio.Task[Any]] = set()
        self.agent_id = ""
        self.executor_info: ExecutorInfo | None = None
        self.framework_info: FrameworkInfo | None = None
        self.agent_info: AgentInfo | None = None
        self._dispatch: dict[type, Any] = {
            ExecutorRegistered: self._on_registered,
            ExecutorReregistered: self._on_reregistered,
            RunTask: self._on_run_task,
            KillTask: self._on_kill_task,
            StatusUpdateAcknowledgement: self._on_ack,
            FrameworkToExecutorMessage: self._on_framework_message,
            ShutdownExecutor: self._on_shutdown,
            ProtocolError: self._on_protocol_error,
        }

    # ------------------------------------------------------------ properties

    @property
    def status(self) -> DriverStatus:
        """The driver's state."""
        return self._status

    @property
    def settings(self) -> ExecutorSettings:
        """The settings read from the environment (after start)."""
        if self._settings is None:
            self._settings = ExecutorSettings.from_environ(self._environ)
        return self._settings

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the callbacks run on (None before start)."""
        return self._loop

    @property
    def connected(self) -> bool:
        """True while registered with a live agent."""
        return self._connected

    @property
    def unacknowledged_updates(self) -> tuple[StatusUpdate, ...]:
        """Status updates the agent has not acknowledged yet, oldest first."""
        return tuple(self._updates.values())

    @property
    def unacknowledged_tasks(self) -> tuple[TaskInfo, ...]:
        """Launched tasks none of whose updates was acknowledged yet."""
        return tuple(self._tasks.values())

    # ------------------------------------------------------------ lifecycle

    def start(self) -> DriverStatus:
        """Run the driver on a background thread; returns DRIVER_RUNNING once it runs."""
        if self._status is not DriverStatus.DRIVER_NOT_STARTED:
            return self._status
        self.settings  # raise ValueError here, in the caller's thread  # noqa: B018
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.run_async()), name="executor-driver", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        return self._status

    def run(self) -> DriverStatus:
        """Run the driver on this thread until it stops; returns the final status."""
        return asyncio.run(self.run_async())

    def join(self) -> DriverStatus:
        """Block until the driver has stopped or aborted (not on the driver's own thread)."""
        if self._status is DriverStatus.DRIVER_NOT_STARTED:
            return self._status
        self._finished.wait()
        return self._status

    def stop(self, failover: bool = False) -> DriverStatus:
        """Stop the driver (after a bounded wait for outstanding acknowledgements)."""
        return self._finish(DriverStatus.DRIVER_STOPPED)

    def abort(self) -> DriverStatus:
        """Stop at once, without waiting for acknowledgements."""
        return self._finish(DriverStatus.DRIVER_ABORTED)

    def _finish(self, status: DriverStatus) -> DriverStatus:
        if self._status is not DriverStatus.DRIVER_RUNNING:
            return self._status
        self._status = status
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None:
            if threading.get_ident() == self._loop_thread:
                event.set()
            else:
                loop.call_soon_threadsafe(event.set)
        return status

    async def run_async(self) -> DriverStatus:
        """Run the driver on the current event loop until it stops."""
        if self._status is not DriverStatus.DRIVER_NOT_STARTED:
            return self._status
        try:
            settings = self.settings
        except ValueError:
            self._status = DriverStatus.DRIVER_ABORTED
            self._ready.set()
            self._finished.set()
            raise
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stop_event = asyncio.Event()
        self._acked = asyncio.Event()
        self._client = DealerClient(self._on_message, name=f"executor {settings.executor_id}")
        self._client.connect(settings.agent_zmq)
        self._client.start()
        self._status = DriverStatus.DRIVER_RUNNING
        self._ready.set()
        self._client.send(
            RegisterExecutor(
                framework_id=settings.framework_id,
                executor_id=settings.executor_id,
                container_id=settings.container_id,
                token=settings.token,
            )
        )
        self._spawn(self._heartbeats())
        self._spawn(self._watch_agent())
        try:
            await self._stop_event.wait()
            if self._status is DriverStatus.DRIVER_STOPPED:
                await self.wait_acknowledged(1.0)
        finally:
            for job in list(self._jobs):
                job.cancel()
            await asyncio.sleep(0.05)  # let ZeroMQ flush what was sent last
            self._client.close()
            self._connected = False
            self._finished.set()
        return self._status

    def _spawn(self, coro: Any) -> None:
        assert self._loop is not None
        job = self._loop.create_task(coro)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def wait_acknowledged(self, timeout: float) -> bool:
        """Wait (on the driver's loop) until every update is acknowledged; False on timeout."""
        assert self._acked is not None
        deadline = time.monotonic() + timeout
        while self._updates:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._acked.clear()
            try:
                await asyncio.wait_for(self._acked.wait(), remaining)
            except TimeoutError:
                return not self._updates
        return True

    # ------------------------------------------------------------ sending

    def _call(self, fn: Any, *args: Any) -> None:
        if self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def send_status_update(self, status: TaskStatus) -> DriverStatus:
        """Send a task status; uuid, timestamp, source, executor and agent ids are filled in.

        ``TASK_STAGING`` is refused (ValueError), as in Mesos.
        """
        if status.state is TaskState.TASK_STAGING:
            raise ValueError("status.state: an executor may not send TASK_STAGING")
        if self._status is not DriverStatus.DRIVER_RUNNING:
            return self._status
        settings = self.settings
        status = attrs.evolve(
            status,
            uuid=status.uuid or uuid.uuid4().bytes,
            timestamp=status.timestamp or time.time(),
            source=Source.SOURCE_EXECUTOR,
            executor_id=status.executor_id or settings.executor_id,
            agent_id=status.agent_id or self.agent_id,
        )
        update = StatusUpdate(framework_id=settings.framework_id, status=status)
        self._call(self._send_update, update)
        return self._status

    def _send_update(self, update: StatusUpdate) -> None:
        self._updates[update.status.uuid] = update
        assert self._client is not None
        self._client.send(update)

    def send_framework_message(self, data: bytes) -> DriverStatus:
        """Send opaque data to the scheduler (best effort)."""
        if self._status is not DriverStatus.DRIVER_RUNNING:
            return self._status
        settings = self.settings
        msg = ExecutorToFrameworkMessage(
            framework_id=settings.framework_id,
            agent_id=self.agent_id,
            executor_id=settings.executor_id,
            data=bytes(data),
        )
        self._call(self._send, msg)
        return self._status

    def _send(self, msg: Any) -> None:
        if self._client is not None:
            self._client.send(msg)

    # ------------------------------------------------------------ background

    async def _heartbeats(self) -> None:
        settings = self.settings
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            self._send(Heartbeat(sender_id=settings.executor_id))

    def _agent_alive(self, pid: int, child: bool) -> bool:
        if child:
            return os.getppid() == pid
        return process_alive(pid)

    async def _watch_agent(self) -> None:
        """Notice the agent's death through its pid (MESOSLITE_AGENT_PID)."""
        pid = self.settings.agent_pid
        if pid <= 0:
            return
        child = os.getppid() == pid
        pid_gone = False
        while True:
            await asyncio.sleep(self._liveness_interval)
            # The pid is that of the agent that started us: once it is gone it
            # stays gone, and a restarted agent that re-registers us (which
            # clears _agent_lost_at) must not be taken for dead again.
            if not pid_gone and not self._agent_alive(pid, child):
                pid_gone = True
                self._agent_lost()
            if self._agent_lost_at is not None and not self._shutting_down:
                waited = time.monotonic() - self._agent_lost_at
                if waited >= self.settings.recovery_timeout:
                    log.warning("Agent did not come back within %.0fs; shutting down", waited)
                    self._begin_shutdown()

    def _agent_lost(self) -> None:
        self._agent_lost_at = time.monotonic()
        self._connected = False
        log.warning("Agent process %d is gone", self.settings.agent_pid)
        self._callback("disconnected")
        if not self.settings.checkpoint:
            log.warning("Framework does not checkpoint: shutting down")
            self._begin_shutdown()
            return
        self._spawn(self._reattach())

    def _reattaching(self) -> bool:
        return (self._agent_lost_at is not None and not self._shutting_down
                and self._status is DriverStatus.DRIVER_RUNNING)

    async def _reattach(self) -> None:
        """While the agent is gone: re-register as soon as a new agent listens on its endpoint."""
        address = _tcp_address(self.settings.agent_zmq)
        if address is None:
            return  # not TCP: the next heartbeat finds the new agent
        host, port = address
        while self._reattaching():
            if not await _accepts_connections(host, port, self._reattach_interval * 5):
                await asyncio.sleep(self._reattach_interval)
                continue
            log.info("An agent listens on %s again: re-registering", self.settings.agent_zmq)
            assert self._client is not None
            self._client.connect(self.settings.agent_zmq)  # a fresh socket connects at once
            self._reregister()
            # Answered by ExecutorRegistered/ExecutorReregistered (which end the loop);
            # otherwise (the agent was still starting) try again.
            deadline = time.monotonic() + 1.0
            # (Polled for at most a second, at the interval the outer loop uses.)
            while self._reattaching() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(self._reattach_interval)

    def _begin_shutdown(self) -> None:
        if self._shutting_down:
            return
        self._shutting_down = True
        self._callback("shutdown")
        assert self._loop is not None
        self._loop.call_later(self.settings.shutdown_grace_period, self.stop)

    # ------------------------------------------------------------ inbound

    def _callback(self, name: str, *args: Any) -> None:
        try:
            getattr(self.executor, name)(self, *args)
        except Exception:
            log.exception("Executor callback %s failed", name)

    def _on_message(self, msg: Any) -> None:
        if self._status is not DriverStatus.DRIVER_RUNNING:
            return
        handler = self._dispatch.get(type(msg))
        if handler is None:
            log.warning("Ignoring unexpected %s from the agent", type(msg).__name__)
            return
        handler(msg)

    def _on_registered(self, msg: ExecutorRegistered) -> None:
        self.agent_id = msg.agent_id
        self.executor_info = msg.executor_info
        self.framework_info = msg.framework_info
        self.agent_info = msg.agent_info
        self._connected = True
        self._agent_lost_at = None
        if self._registered_once:
            self._callback("reregistered", msg.agent_info)
            return
        self._registered_once = True
        self._callback("registered", msg.executor_info, msg.framework_info, msg.agent_info)

    def _on_reregistered(self, msg: ExecutorReregistered) -> None:
        self.agent_id = msg.agent_id or self.agent_id
        self.agent_info = msg.agent_info or self.agent_info
        self._connected = True
        self._agent_lost_at = None
        self._callback("reregistered", msg.agent_info)

    def _on_run_task(self, msg: RunTask) -> None:
        self.framework_info = msg.framework_info
        self._tasks[msg.task.task_id] = msg.task
        self._callback("launch_task", msg.task)

    def _on_kill_task(self, msg: KillTask) -> None:
        self._callback("kill_task_with_policy", msg.task_id, msg.kill_policy)

    def _on_ack(self, msg: StatusUpdateAcknowledgement) -> None:
        update = self._updates.pop(msg.uuid, None)
        if update is None:
            log.debug("Acknowledgement for an unknown update %s", msg.uuid.hex())
            return
        self._tasks.pop(update.status.task_id, None)
        if not self._updates and self._acked is not None:
            self._acked.set()

    def _on_framework_message(self, msg: FrameworkToExecutorMessage) -> None:
        self._callback("framework_message", msg.data)

    def _on_shutdown(self, msg: ShutdownExecutor) -> None:
        log.info("Agent asked executor %s to shut down", msg.executor_id)
        self._begin_shutdown()

    def _on_protocol_error(self, msg: ProtocolError) -> None:
        if msg.code == "NOT_REGISTERED":
            self._reregister()
            return
        if msg.in_reply_to == "RegisterExecutor":
            log.error("Agent refused registration: %s", msg.message)
            self._callback("error", msg.message)
            self.abort()
            return
        log.warning("Agent refused %s: %s (field %s)", msg.in_reply_to, msg.message, msg.field)

    def _reregister(self) -> None:
        settings = self.settings
        log.info("Re-registering executor %s with %d unacknowledged updates",
                 settings.executor_id, len(self._updates))
        self._send(
            ReregisterExecutor(
                framework_id=settings.framework_id,
                executor_id=settings.executor_id,
                container_id=settings.container_id,
                tasks=tuple(self._tasks.values()),
                updates=tuple(self._updates.values()),
                token=settings.token,
            )
        )
