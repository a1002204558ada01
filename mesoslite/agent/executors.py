"""Executor processes on the agent: the executor socket and process supervision (I/O shell).

Owns: :class:`ExecutorManager`, the I/O around the core's executor
decisions.  It serves the executor-facing socket (a ``RouterServer`` the
composition root binds and hands over) and turns every executor message into
:meth:`~mesoslite.agent.core.AgentState.executor_message` (holding them
while a recovering agent rebuilds its records); it performs the core's
process effects: launching a custom executor or a command host through the
containerizer (with the agent's environment, protocol.md §6), its
registration timer, waiting for its exit, kills (now, or after the shutdown
grace), adopting processes that survived an agent restart, and killing the
task processes a dead command host left behind.  What each event means is
the core's business: it learns of them through ``container_launched``,
``container_launch_failed``, ``container_exited`` and
``registration_timed_out``.  Also ``/monitor/statistics`` for executor
processes and command tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs

import mesoslite
from mesoslite.agent.config import AgentConfig
from mesoslite.agent.containerizer import (
    Containerizer,
    ContainerizerError,
    ContainerUsage,
    LaunchSpec,
)
from mesoslite.agent.core import AgentState
from mesoslite.agent.effects import Effect, LaunchExecutor
from mesoslite.agent.executor_tokens import TOKEN_ENV, AgentSecrets
from mesoslite.agent.records import AgentExecutor, ExecutorState
from mesoslite.agent.sandbox import executor_environment
from mesoslite.agent.views import statistics_entry
from mesoslite.isolation import cgroups
from mesoslite.isolation.spec import IsolationSettings
from mesoslite.isolation.users import UserError, task_user
from mesoslite.proc import Credentials, find_by_env, kill_pids, tree_usage
from mesoslite.protocol import ProtocolError, RegisterExecutor, ReregisterExecutor
from mesoslite.transport import RouterServer
from mesoslite.transport.sockets import BARRIER_RETRY

log = logging.getLogger("mesoslite.agent")

_PYTHON_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(mesoslite.__file__)))

#: Executor messages kept at most while a recovering agent rebuilds its records.
MAX_HELD_MESSAGES = 100_000


class ExecutorManager:
    """The executor socket and the executor processes of one agent."""

    def __init__(self, config: AgentConfig, core: AgentState, containerizer: Containerizer,
                 perform: Callable[[Iterable[Effect]], None]) -> None:
        """Serve ``core``; processes run through ``containerizer``; ``perform`` runs effects."""
        self._cfg = config
        self._core = core
        self._perform = perform
        self.containerizer = containerizer
        self._server: RouterServer | None = None
        self._jobs: set[asyncio.Task[Any]] = set()
        #: Messages from executors that arrive while a recovering agent rebuilds its
        #: records (None: not holding): handled in order once :meth:`release` runs.
        self._held: list[tuple[bytes, Any]] | None = None
        #: Executors served in this process (on the v1 HTTP API): peer -> receive(message).
        self.local_peers: dict[bytes, Callable[[Any], None]] = {}
        #: Called before a message goes to a local peer (checkpoints durable first, as the
        #: socket's flush barrier does for executors on ZeroMQ); False: the write failed,
        #: so local messages are held, in order, and tried again every BARRIER_RETRY.
        self.before_local_send: Callable[[], bool] | None = None
        self._local_held: list[tuple[bytes, Any]] = []
        #: Where executor tokens come from (set by the composition root once the work
        #: directory exists); None: executors on the socket are not asked for one.
        self.secrets: AgentSecrets | None = None
        #: Socket connections that proved an executor token: peer -> container id.
        self._authenticated: dict[bytes, str] = {}
        #: Messages refused for a missing or wrong executor token.
        self.token_refusals = 0
        #: How command tasks are confined (resolved at start; handed to command hosts).
        self.isolation = IsolationSettings()

    # ------------------------------------------------------------ socket

    @property
    def endpoint(self) -> str:
        """The executor-facing ZMQ endpoint (``MESOSLITE_AGENT_ZMQ``); '' before :meth:`serve`."""
        return self._server.endpoint if self._server is not None else ""

    def serve(self, server: RouterServer) -> None:
        """Take the bound executor socket (its handler is :meth:`on_message`) and start it."""
        self._server = server
        server.start()

    def send(self, peer: bytes, msg: Any) -> None:
        """Send to an executor connection (dropped when the socket is gone)."""
        if peer in self.local_peers:
            self._local_held.append((peer, msg))
            if len(self._local_held) == 1:
                self._send_local()
            return
        if self._server is not None:
            self._server.send(peer, msg)

    def _send_local(self) -> None:
        """Hand held local messages over once their checkpoint records are durable."""
        if not self._local_held:
            return
        if self.before_local_send is not None and not self.before_local_send():
            asyncio.get_running_loop().call_later(BARRIER_RETRY, self._send_local)
            return
        held, self._local_held = self._local_held, []
        for peer, msg in held:
            local = self.local_peers.get(peer)
            if local is not None:  # (gone meanwhile: dropped, as a closed socket would)
                local(msg)

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between HEARTBEAT events on v1 executor streams."""
        return self._cfg.executor_heartbeat_interval

    def container_of(self, framework_id: str, executor_id: str) -> str | None:
        """The container of a live custom executor ``executor_id`` of ``framework_id``."""
        for container_id, (_fw, ent) in self._core.containers.items():
            if (isinstance(ent, AgentExecutor) and ent.kind == "custom"
                    and ent.framework_id == framework_id
                    and ent.executor_id == executor_id
                    and ent.state is not ExecutorState.TERMINATED):
                return container_id
        return None

    def hold(self) -> None:
        """Keep executors' messages until :meth:`release` (agent recovery in progress).

        A surviving executor re-attaches within ~0.1 s of the new agent binding
        its endpoint, often before the checkpoint's executors (and, with Docker,
        the daemon's containers) are known: answering then would shut it down.
        """
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Handle the held messages, in arrival order, and stop holding."""
        held, self._held = self._held, None
        for peer, msg in held or ():
            self.on_message(peer, msg)

    def on_message(self, peer: bytes, msg: Any) -> None:
        """A message from an executor connection: to the core (or held while recovering)."""
        if self._held is not None:
            if len(self._held) < MAX_HELD_MESSAGES:
                self._held.append((peer, msg))
            else:
                log.warning("Dropped %s from executor peer %r: %d messages already held "
                            "while recovering", type(msg).__name__, peer, MAX_HELD_MESSAGES)
            return
        self._perform(self._core.executor_message(peer, msg))

    def on_socket_message(self, peer: bytes, msg: Any) -> None:
        """A message from the executor socket: its token is checked, then :meth:`on_message`.

        RegisterExecutor/ReregisterExecutor must carry the container's
        ``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``; it binds the connection to that
        container.  Any other message is accepted only from a connection bound so
        (and only for that container: the core checks the registered executor).
        """
        if self.secrets is not None and not self._token_ok(peer, msg):
            self.token_refusals += 1
            registering = isinstance(msg, (RegisterExecutor, ReregisterExecutor))
            # A registration with a wrong token is final (INVALID); anything else from a
            # connection that did not register asks the executor to re-register.
            why = ("executor authentication failed: wrong or missing " if registering else
                   "executor connection not authenticated: (re)register with the container's ")
            if self._server is not None:
                self._server.send(peer, ProtocolError(
                    message=why + TOKEN_ENV, field="token", in_reply_to=type(msg).__name__,
                    code="INVALID" if registering else "NOT_REGISTERED"))
            return
        self.on_message(peer, msg)

    def _token_ok(self, peer: bytes, msg: Any) -> bool:
        assert self.secrets is not None
        if isinstance(msg, (RegisterExecutor, ReregisterExecutor)):
            if not self.secrets.check_executor(msg.container_id, msg.token):
                log.warning("Refused %s for container %s from executor peer %s: %s token",
                            type(msg).__name__, msg.container_id, peer.hex()[:16],
                            "wrong" if msg.token else "no")
                return False
            if len(self._authenticated) >= MAX_HELD_MESSAGES:
                self._authenticated.pop(next(iter(self._authenticated)))
            self._authenticated[peer] = msg.container_id
            return True
        if peer in self._authenticated:
            return True
        log.warning("Refused %s from executor peer %s: the connection did not register "
                    "with an executor token", type(msg).__name__, peer.hex()[:16])
        return False

    @property
    def authenticate_http_executors(self) -> bool:
        """``--authenticate_http_executors``: v1 executors send their token as a bearer."""
        return self._cfg.authenticate_http_executors

    def check_token(self, container_id: str, token: str) -> bool:
        """True when ``token`` is the executor token of ``container_id`` (v1 HTTP executors)."""
        return self.secrets is not None and self.secrets.check_executor(container_id, token)

    def close(self) -> None:
        """Close the socket and stop watching processes (they keep running)."""
        for job in list(self._jobs):
            job.cancel()
        for cid in list(self.containerizer.containers()):
            self.containerizer.remove(cid)
        if self._server is not None:
            self._server.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        job = asyncio.get_running_loop().create_task(coro)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return job

    # ------------------------------------------------------------ processes

    def create_time(self, container_id: str) -> float:
        """When a container's process started (0.0 when the containerizer cannot say)."""
        getter = getattr(self.containerizer, "create_time", None)
        value = getter(container_id) if getter is not None else None
        return float(value or 0.0)

    def launch(self, effect: LaunchExecutor) -> None:
        """Start an executor process in the background and follow it until it ends."""
        env = executor_environment(
            os.environ,
            framework_id=effect.framework_id,
            executor_id=effect.executor_id,
            container_id=effect.container_id,
            sandbox=effect.directory,
            agent_endpoint=self._core.http_endpoint,
            host=self._cfg.effective_hostname,
            agent_zmq=self.endpoint,
            checkpoint=effect.checkpoint,
            shutdown_grace_period=self._cfg.executor_shutdown_grace_period,
            recovery_timeout=self._cfg.recovery_timeout,
            agent_pid=os.getpid(),
            extra=effect.environment,
            python_path=_PYTHON_ROOT,
        )
        env.update(self._cfg.container_logger_environment())
        if self.secrets is not None:
            env[TOKEN_ENV] = self.secrets.executor_token(effect.container_id)
        env.update(self.isolation.to_env())
        try:
            credentials = self._executor_user(effect, env)
        except UserError as exc:
            self._perform(self._core.container_launch_failed(effect.container_id, str(exc)))
            return
        spec = LaunchSpec(effect.command, effect.directory, env, effect.resources, credentials)
        self._spawn(self._run_container(effect.container_id, spec))

    def _executor_user(self, effect: LaunchExecutor, env: dict[str, str]) -> Credentials | None:
        """A custom executor runs as ``CommandInfo.user``, else its framework's user (with
        ``--switch_user``; UserError naming the user when it cannot).  A command host stays
        the agent's user: it switches per task."""
        entry = self._core.containers.get(effect.container_id)
        if entry is None or not isinstance(entry[1], AgentExecutor) \
                or entry[1].kind != "custom":
            return None
        user = task_user(effect.command.user, entry[0].info.user, self.isolation.switch_user)
        if not user.switches:
            return None
        env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
        return Credentials(user.uid, user.gid, user.groups)

    async def _run_container(self, cid: str, spec: LaunchSpec) -> None:
        try:
            pid = await self.containerizer.launch(cid, spec)
        except ContainerizerError as exc:
            self._perform(self._core.container_launch_failed(cid, str(exc)))
            return
        self._perform(self._core.container_launched(cid, pid))
        timer = asyncio.get_running_loop().call_later(
            self._cfg.executor_registration_timeout,
            lambda: self._perform(self._core.registration_timed_out(cid)),
        )
        try:
            termination = await self.containerizer.wait(cid)
        finally:
            timer.cancel()
        self._perform(self._core.container_exited(cid, termination.status, termination.message))
        self.containerizer.remove(cid)

    def adopt(self, container_id: str) -> None:
        """Follow a recovered executor process until it ends."""
        self._spawn(self._watch_adopted(container_id))

    async def _watch_adopted(self, cid: str) -> None:
        termination = await self.containerizer.wait(cid)
        self._perform(self._core.container_exited(cid, termination.status, termination.message))
        self.containerizer.remove(cid)

    def kill(self, container_id: str) -> None:
        """Kill a container now (nothing happens if it is already gone)."""
        self._spawn(self._kill(container_id))

    async def _kill(self, cid: str) -> None:
        if cid in self.containerizer.containers():
            await self.containerizer.kill(cid, 0.0)

    def kill_after(self, container_id: str, grace: float) -> None:
        """Kill a container that is still running ``grace`` seconds from now."""
        self._spawn(self._kill_after(container_id, grace))

    async def _kill_after(self, cid: str, grace: float) -> None:
        if cid not in self.containerizer.containers():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.containerizer.wait(cid), grace)
            return
        log.warning("Executor container %s did not exit within %ss of shutdown; killing it",
                    cid, grace)
        with contextlib.suppress(ContainerizerError):
            await self.containerizer.kill(cid, 0.0)

    def kill_strays(self, container_ids: Iterable[str]) -> None:
        """Kill task processes a dead command host left behind (in the background)."""
        self._spawn(self._kill_strays(set(container_ids)))

    async def _kill_strays(self, container_ids: set[str]) -> None:
        """Kill the live processes whose ``MESOS_CONTAINER_ID`` is one of ``container_ids``."""
        if not container_ids:
            return
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(
            None, find_by_env, "MESOS_CONTAINER_ID", container_ids, None
        )
        pids = [pid for pids in found.values() for pid in pids]
        if pids:
            log.warning("Killing %d task processes left by a command executor", len(pids))
            kill_pids(pids)
        # What escaped the search (another session, a changed environment) is in the cgroup.
        await loop.run_in_executor(None, cgroups.destroy, self.isolation, container_ids)

    async def wait_all(self, strays: set[str]) -> None:
        """After the shutdowns: wait (bounded) for every process, kill the rest and ``strays``."""
        grace = self._cfg.executor_shutdown_grace_period
        cids = list(self.containerizer.containers())
        waits = [self.containerizer.wait(c) for c in cids]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), grace + 2.0)
        for cid in cids:
            if cid in self.containerizer.containers():
                with contextlib.suppress(ContainerizerError, TimeoutError):
                    await asyncio.wait_for(self.containerizer.kill(cid, 0.0), 5.0)
        # Let exit handlers run (terminal updates are generated there).
        for _ in range(3):
            await asyncio.sleep(0)
        await self._kill_strays(strays)

    # ------------------------------------------------------------ statistics

    async def statistics(self) -> list[dict[str, Any]]:
        """``/monitor/statistics`` of executors and command tasks (measured off the loop)."""
        custom: list[tuple[Any, int]] = []
        virtual: list[Any] = []
        host_pids: set[int] = set()
        for fw in self._core.frameworks.values():
            for ex in fw.executors.values():
                if ex.state is ExecutorState.TERMINATED or ex.kind == "docker":
                    continue  # Docker tasks are measured by DockerTasks
                if ex.is_command:
                    if ex.host is not None and ex.host.pid is not None and ex.launched_tasks:
                        virtual.append(ex)
                        host_pids.add(ex.host.pid)
                elif ex.pid is not None:
                    custom.append((ex, ex.pid))

        settings = self.isolation

        def measure() -> list[tuple[Any, Any]]:
            out: list[tuple[Any, Any]] = [(ex, tree_usage(pid)) for ex, pid in custom]
            if virtual and settings.cgroups:
                from_cgroups = [(ex, cgroup_usage(settings, ex.container_id)) for ex in virtual]
                out += [(ex, usage) for ex, usage in from_cgroups if usage is not None]
                virtual[:] = [ex for ex, usage in from_cgroups if usage is None]
            if virtual:
                found = find_by_env(
                    "MESOS_CONTAINER_ID", {ex.container_id for ex in virtual}, host_pids
                )
                for ex in virtual:
                    pids = found.get(ex.container_id)
                    out.append((ex, tree_usage(pids[0]) if pids else None))
            return out

        results = await asyncio.get_running_loop().run_in_executor(None, measure)
        return [statistics_entry(ex, usage) for ex, usage in results if usage is not None]


@attrs.frozen
class CgroupUsage(ContainerUsage):
    """A command task's usage read from its cgroups (Mesos names; limits included)."""

    mem_limit_bytes: int = 0
    extra: dict[str, Any] = attrs.field(factory=dict)

    def extra_statistics(self) -> dict[str, Any]:
        """Throttling, total and cache memory, peak usage (what the cgroups report)."""
        return dict(self.extra)


_BASE_FIELDS = ("cpus_user_time_secs", "cpus_system_time_secs", "mem_rss_bytes",
                "processes", "mem_limit_bytes")


def cgroup_usage(settings: IsolationSettings, container_id: str) -> CgroupUsage | None:
    """A container's usage from its cgroups; None when it has none (blocking)."""
    stats: dict[str, Any] | None = cgroups.statistics(settings, container_id)
    if not stats or ("cpus_user_time_secs" not in stats and "mem_rss_bytes" not in stats):
        return None
    return CgroupUsage(
        timestamp=time.time(),
        cpus_user_time_secs=float(stats.get("cpus_user_time_secs", 0.0)),
        cpus_system_time_secs=float(stats.get("cpus_system_time_secs", 0.0)),
        mem_rss_bytes=int(stats.get("mem_rss_bytes", 0)),
        processes=int(stats.get("processes", 0)),
        mem_limit_bytes=int(stats.get("mem_limit_bytes", 0)),
        extra={k: v for k, v in stats.items() if k not in _BASE_FIELDS},
    )
