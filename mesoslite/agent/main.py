"""One ``mesoslite agent`` process: the composition root of the agent.

Owns: :class:`AgentProcess`, the only place the agent's parts are built and
wired together: the pure core (:class:`~mesoslite.agent.core.AgentState`),
the checkpoint, the containerizers (process; Docker when enabled, imported
only then), the executor manager and its ``RouterServer``, the master link
and its ``DealerClient``, the HTTP server (:mod:`mesoslite.agent.http`), and
the shell (:class:`~mesoslite.agent.agent.Agent`) that performs the core's
effects with them.  :meth:`AgentProcess.start` binds HTTP, reads the
checkpoint (recovering or cleaning up), detects resources, starts Docker,
binds the executor socket (the previous run's endpoint when recovering),
connects to the master and starts; :meth:`AgentProcess.stop` stops it all.
Its properties are the agent's public face (tests, the CLI, ``local``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs

from mesoslite.agent.agent import Agent
from mesoslite.agent.checkpoint import Checkpointer
from mesoslite.agent.config import AgentConfig
from mesoslite.agent.containerizer import Containerizer
from mesoslite.agent.containerizer.exec_session import ExecSession
from mesoslite.agent.containerizer.process import ProcessContainerizer
from mesoslite.agent.core import AgentState
from mesoslite.agent.docker_tasks import DockerTasks
from mesoslite.agent.effects import Effect
from mesoslite.agent.exec_sessions import launch_session
from mesoslite.agent.executor_tokens import AgentSecrets
from mesoslite.agent.executors import ExecutorManager
from mesoslite.agent.fetcher import FetchTasks
from mesoslite.agent.http import bind_http, start_http_server
from mesoslite.agent.master_link import MasterLink, master_endpoint, read_credential
from mesoslite.agent.records import AgentFramework, AgentMetrics
from mesoslite.agent.recovery import Recovery, previous_executor_endpoint
from mesoslite.agent.resources_detect import detect_resources
from mesoslite.agent.sandbox_gc import LiveSet, SandboxCollector
from mesoslite.api.ports import ExecRequest
from mesoslite.authz import is_inline
from mesoslite.authz.files import resolve_acls
from mesoslite.clock import SYSTEM_CLOCK, Clock
from mesoslite.config_checks import ConfigError, mask_secrets
from mesoslite.isolation import cgroups
from mesoslite.isolation.spec import IsolationSettings
from mesoslite.protocol import AgentInfo, MasterInfo
from mesoslite.resources import Resources
from mesoslite.transport import CurveClientKeys, DealerClient, RouterServer

if TYPE_CHECKING:
    import tornado.httpserver

    from mesoslite.agent.containerizer.docker import DockerContainerizer

log = logging.getLogger("mesoslite.agent")

_EPHEMERAL = "tcp://127.0.0.1:0"


def read_boot_id() -> str:
    """The host's boot id (changes on reboot); '' when the platform has none."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _docker_factory(config: AgentConfig) -> Callable[[str, Callable[[str, str], None]],
                                                     DockerContainerizer] | None:
    """How to make the Docker containerizer (None: ``docker`` is not in ``--containerizers``)."""
    if "docker" not in config.containerizer_list:
        return None

    def create(work_dir: str, on_progress: Callable[[str, str], None]) -> DockerContainerizer:
        from mesoslite.agent.containerizer.docker import DockerContainerizer

        return DockerContainerizer(work_dir, config.docker_options(), on_progress=on_progress)

    return create


class AgentProcess:
    """The whole agent: ``await start()``, run tasks for the master, ``await stop()``.

    ``clock`` (default: the system clock) times status-update retries, ping
    liveness and timestamps; ``containerizer`` defaults to the process one.
    """

    def __init__(self, config: AgentConfig, clock: Clock | None = None, *,
                 containerizer: Containerizer | None = None) -> None:
        """Build the parts; nothing binds or runs until :meth:`start`."""
        if config.acls and not is_inline(config.acls):  # --acls FILE: read (and check) it now
            config = attrs.evolve(config, acls=resolve_acls(config.acls))
        self.config = config
        self.clock: Clock = clock or SYSTEM_CLOCK
        self._work_dir = os.path.abspath(config.work_dir)
        self._boot_id = read_boot_id()
        self.core = AgentState(config, self.clock)
        self.checkpointer = Checkpointer(self._work_dir)
        perform = self._perform
        self.link = MasterLink(config, self.clock, self.core.registration_message,
                               on_unregistered=self.core.registration_lost)
        self.executors = ExecutorManager(config, self.core,
                                         containerizer or ProcessContainerizer(), perform)
        self.docker = DockerTasks(config, self.core, perform, _docker_factory(config))
        self.fetches = FetchTasks(config, self.core.fetch_finished, perform, self._work_dir)
        self.agent = Agent(config, self.clock, self.core, link=self.link,
                           executors=self.executors, docker=self.docker,
                           checkpointer=self.checkpointer, request_stop=self._stop_soon,
                           fetch=self.fetches.fetch, cancel_fetch=self.fetches.cancel)
        self.checkpointer.on_dirty = self.agent.schedule_checkpoint_sync
        self.executors.before_local_send = self.agent.sync_checkpoint
        self._http_server: tornado.httpserver.HTTPServer | None = None
        self.gc: SandboxCollector | None = None
        self._started = False
        self._stopping = False
        self._stop_job: asyncio.Task[None] | None = None
        self.stopped = asyncio.Event()

    def _perform(self, effects: Iterable[Effect]) -> None:
        self.agent.perform(effects)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind HTTP and the executor socket, recover or clean up, connect to the master."""
        if self._started:
            raise RuntimeError("agent state: expected NEW to start, got a started agent")
        self._started = True
        cfg = self.config
        os.makedirs(self._work_dir, exist_ok=True)
        self._work_dir = os.path.realpath(self._work_dir)  # noqa: ASYNC240 - once, at start
        secrets = AgentSecrets.in_work_dir(self._work_dir)
        self.executors.secrets = secrets
        self.link.agent_token = secrets.agent_token
        if cfg.credential:
            self.link.credential = read_credential(cfg.credential)
        http_sockets, http_port = bind_http(cfg)
        try:
            await self._start_bound(http_sockets, http_port)
        except BaseException:
            if self._http_server is None:  # the sockets are not the server's yet
                for sock in http_sockets:
                    sock.close()
            raise

    async def _start_bound(self, http_sockets: list[socket.socket], http_port: int) -> None:
        """:meth:`start` once the HTTP port is bound (it is served from the end of this)."""
        cfg = self.config
        self.executors.isolation = self._resolve_isolation()
        recovery = Recovery(cfg, self.core, self.checkpointer, self.executors.containerizer,
                            self.docker, self._perform, self._boot_id)
        previous = await recovery.load()
        self.checkpointer.write_boot_id(self._boot_id)
        resources = detect_resources(self._work_dir, cfg.resources_override)
        self.core.start(work_dir=self._work_dir, http_port=http_port, boot_id=self._boot_id,
                        resources=resources)
        await self.docker.start()
        bind = previous_executor_endpoint(previous) if previous is not None else None
        if previous is not None:
            self.executors.hold()  # surviving executors wait until their records exist
        self.executors.serve(self._bind_executors(bind or _EPHEMERAL))
        self._http_server = start_http_server(self, http_sockets)
        self.link.attach(self._master_client())
        endpoint = master_endpoint(cfg.master)
        if endpoint is not None:
            self.link.connect(endpoint)
        follow = None if endpoint is not None else cfg.master
        await self.agent.start(recovery if previous is not None else None, follow)
        # (No await since the records were rebuilt: no task can start in between.)
        for cid in cgroups.remove_unknown(self.executors.isolation,
                                          self.core.stray_task_containers()):
            log.info("Removed the cgroups of container %s: not a task of this agent", cid)
        self.gc = self._sandbox_collector()
        self.gc.start()
        log.info("Agent started on %s (HTTP %s, executors %s), master %s, resources %s",
                 cfg.effective_hostname, http_port, self.executors.endpoint,
                 mask_secrets(cfg.master), resources)

    def _resolve_isolation(self) -> IsolationSettings:
        """``--isolation`` on this host (ConfigError naming the flag when impossible)."""
        cfg = self.config
        try:
            settings, warning = cgroups.resolve_settings(
                cfg.isolation, work_dir=self._work_dir, hierarchy=cfg.cgroups_hierarchy,
                cgroups_root=cfg.cgroups_root, switch_user=cfg.switch_user,
                enable_cfs=cfg.cgroups_enable_cfs, pids_limit=cfg.cgroups_pids_limit,
                disk_watch_interval=cfg.container_disk_watch_interval,
                enforce_disk_quota=cfg.enforce_container_disk_quota)
        except ValueError as exc:
            raise ConfigError("isolation", "isolators this host supports", cfg.isolation,
                              detail=str(exc)) from None
        if warning:
            log.warning("--isolation=%s: %s", cfg.isolation, warning)
        layout = settings.layout
        log.info("Command tasks: isolation %s%s, switch_user=%s",
                 ",".join(settings.isolators) or "none",
                 f" (cgroup v{layout.version})" if layout is not None else "",
                 str(cfg.switch_user).lower())
        return settings

    def _sandbox_collector(self) -> SandboxCollector:
        """Sandbox GC (started once the recovered records exist: they say what is live)."""
        cfg = self.config

        def live() -> LiveSet:
            containers, executors, frameworks = self.core.live_sandboxes()
            return LiveSet(containers, executors, frameworks)

        return SandboxCollector(
            self._work_dir, self.clock, gc_delay=cfg.gc_delay, headroom=cfg.gc_disk_headroom,
            interval=cfg.disk_watch_interval, live=live,
            on_collected=lambda removed: self.core.sandboxes_collected(
                {sb.container_id for sb in removed}))

    def _bind_executors(self, endpoint: str) -> RouterServer:
        """The executor socket on ``endpoint``; an ephemeral port when that one is taken.

        A recovering agent binds the endpoint of its previous run, so surviving
        executors reconnect by themselves; when that port is taken they cannot
        come back.
        """
        try:
            server = self._router(endpoint)
        except Exception as exc:  # zmq errors stay inside the transport package
            if endpoint == _EPHEMERAL:
                raise
            log.error("Cannot bind the previous executor endpoint %s (%s); using a new port",
                      endpoint, exc)
            server = self._router(_EPHEMERAL)
        # Checkpoint records are durable before anything that depends on them leaves.
        server.set_flush_barrier(self.agent.sync_checkpoint)
        return server

    def _router(self, endpoint: str) -> RouterServer:
        return RouterServer(endpoint, self.executors.on_socket_message, name="agent<-executors",
                            max_message_size=self.config.max_message_size)

    def _master_client(self) -> DealerClient:
        cfg = self.config
        curve = None
        if cfg.curve_secret_file:
            curve = CurveClientKeys.from_files(cfg.curve_secret_file, cfg.master_public_key_file)
        client = DealerClient(self.agent.on_master_message, name="agent->master", curve=curve,
                              max_message_size=cfg.max_message_size)
        client.set_flush_barrier(self.agent.sync_checkpoint)
        return client

    async def stop(self, kill_tasks: bool = True) -> None:
        """Stop the agent; with ``kill_tasks`` kill every task and executor and wait for them.

        Without ``kill_tasks`` executors keep running (they outlive the agent and
        exit by themselves unless their framework checkpoints).
        """
        if self._stopping:
            await self.stopped.wait()
            return
        self._stopping = True
        try:
            if self.gc is not None:
                await self.gc.close()
            await self.agent.stop(kill_tasks)
            self.fetches.close()
            if kill_tasks:  # every task was killed: what a host left behind goes too
                cgroups.remove_unknown(self.executors.isolation, ())
            cgroups.remove_scope(self.executors.isolation)  # (only when nothing is left)
        finally:
            if self._http_server is not None:
                self._http_server.stop()
            self.stopped.set()

    def _stop_soon(self) -> None:
        """The master asked this agent to shut down: stop it, killing every task."""
        self._stop_job = asyncio.get_running_loop().create_task(self.stop(kill_tasks=True))

    def set_master(self, address: str) -> None:
        """Follow a new leading master (``host:port`` or ``tcp://``): reconnect and re-register."""
        self.agent.set_master(address)

    # ------------------------------------------------------------ the agent's public face

    @property
    def agent_id(self) -> str | None:
        """The id the master gave this agent (None until registered)."""
        return self.core.agent_id

    @property
    def work_dir(self) -> str:
        """The agent's work directory (absolute)."""
        return self._work_dir

    @property
    def checkpoint_error(self) -> str:
        """Why checkpoint writes fail now ("" while they work)."""
        return self.agent.checkpoint_error

    @property
    def http_port(self) -> int:
        """The HTTP port actually bound (0 before start)."""
        return self.core.http_port

    @property
    def http_endpoint(self) -> str:
        """``ip:port`` of the agent's HTTP server (``MESOS_AGENT_ENDPOINT``)."""
        return self.core.http_endpoint

    @property
    def executor_endpoint(self) -> str:
        """The ZMQ endpoint executors connect to."""
        return self.executors.endpoint

    @property
    def registered(self) -> asyncio.Event:
        """Set while the agent is registered with a master."""
        return self.link.registered

    @property
    def master_info(self) -> MasterInfo | None:
        """The master this agent registered with, when it said who it is."""
        return self.core.master_info

    @property
    def resources(self) -> Resources:
        """Total resources this agent offers."""
        return self.core.resources

    @property
    def attributes(self) -> dict[str, str]:
        """The agent's attributes."""
        return dict(self.core.attributes)

    @property
    def start_time(self) -> float:
        """When the agent started (epoch seconds)."""
        return self.core.start_time

    @property
    def frameworks(self) -> list[AgentFramework]:
        """Frameworks with executors or unacknowledged tasks here."""
        return list(self.core.frameworks.values())

    @property
    def completed_frameworks(self) -> list[AgentFramework]:
        """Recently removed frameworks."""
        return list(self.core.completed_frameworks)

    @property
    def metrics(self) -> AgentMetrics:
        """The agent's counters."""
        return self.core.metrics

    def agent_info(self) -> AgentInfo:
        """This agent's AgentInfo (with its id once registered)."""
        return self.core.agent_info()

    def is_registered(self) -> bool:
        """True while registered with a master."""
        return self.link.registered.is_set()

    def registration_counts(self) -> tuple[int, int]:
        """(registration messages sent, re-registrations started)."""
        return self.link.registration_attempts, self.link.reregistrations

    def containerizers_health(self) -> dict[str, Any]:
        """``/state`` ``containerizers``: the Docker daemon's health when docker is enabled."""
        health = self.docker.health()
        return {"docker": health} if health is not None else {}

    def gc_metrics(self) -> dict[str, float]:
        """``gc/path_removals_{pending,succeeded,failed}`` and the disk usage GC last saw."""
        gc = self.gc
        if gc is None:
            return {}
        return {"gc/path_removals_pending": float(len(gc.schedule)),
                "gc/path_removals_succeeded": float(gc.removals_succeeded),
                "gc/path_removals_failed": float(gc.removals_failed),
                "gc/disk_usage": gc.last_usage}

    def fetcher_metrics(self) -> dict[str, float]:
        """The fetcher's cache size and fetch counts (Mesos's ``containerizer/fetcher/*``)."""
        return self.fetches.metrics()

    def sandbox_gone(self, path: str) -> str | None:
        """Why a missing ``/files`` path is gone when sandbox GC removed it (else None)."""
        return self.gc.gone(path) if self.gc is not None else None

    async def monitor_statistics(self) -> list[dict[str, Any]]:
        """``/monitor/statistics``: usage of every running executor and Docker task."""
        return await self.executors.statistics() + await self.docker.statistics()

    async def launch_session(self, request: ExecRequest) -> ExecSession:
        """``ctl exec``: run a command in a running task's container (ExecRefused if none)."""
        return await launch_session(self.frameworks, self.docker, request)
