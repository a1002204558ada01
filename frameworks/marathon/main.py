"""One ``mesoslite marathon`` process: REST API, election, state and the scheduler driver.

Owns: :class:`MarathonProcess`, which binds the REST API first (standbys
answer too: they proxy to the leader), enters the election (``--zk``) or
leads at once, and on election loads the state from the store (ZooKeeper
under ``<zk path>/state``, fenced by the leader's znode; or ``--state_dir``),
subscribes to the master with the stored framework id and starts scheduling.
Losing leadership stops scheduling at once; the process then exits (status
3, so a supervisor restarts it as a candidate), except after an abdication
(``DELETE /v2/leader``), where it stays up as a standby.
"""

from __future__ import annotations

import asyncio
import errno
import getpass
import logging
import socket
from typing import Any

import attrs
from tornado.httpserver import HTTPServer

from frameworks.marathon.api.routes import make_app
from frameworks.marathon.config import MarathonConfig
from frameworks.marathon.election import MarathonElection
from frameworks.marathon.scheduling import Scheduling
from frameworks.marathon.service import MarathonService
from frameworks.marathon.state.file_store import FileStore
from frameworks.marathon.state.store import Store
from frameworks.marathon.state.zk_store import ZooKeeperStore
from frameworks.marathon.webui.routes import mount_service_ui
from mesoslite import __version__
from mesoslite.clock import SYSTEM_CLOCK, Clock
from mesoslite.config_checks import mask_secrets
from mesoslite.httpguard.policy import AuthPolicy, CredentialsError, parse_user_password
from mesoslite.httpguard.server import GuardedHTTPServer, server_policy
from mesoslite.protocol import FrameworkInfo
from mesoslite.scheduler import SchedulerDriver
from mesoslite.scheduler.auth import link_options

log = logging.getLogger("mesoslite.marathon")

#: Capabilities the framework declares to the master.
CAPABILITIES = ("PARTITION_AWARE", "TASK_KILLING_STATE")


class MarathonProcess:
    """The whole framework process; ``start()`` then ``stop()``."""

    def __init__(self, config: MarathonConfig, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock
        self.http_port = config.http_port
        self.store: Store | None = None
        self.election: MarathonElection | None = None
        self.service: MarathonService | None = None
        self.scheduling: Scheduling | None = None
        self.driver: SchedulerDriver | None = None
        self._server: HTTPServer | None = None
        #: The driver's credential and CURVE keys (read at start from their flags' files).
        self._link_options: dict[str, Any] = {}
        #: Set when leadership was lost involuntarily (the CLI exits with status 3).
        self.deposed = asyncio.Event()
        self.deposed_reason = ""
        self._leading = asyncio.Lock()
        self._lead_task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The REST API's base URL."""
        return f"http://{self.config.advertised_host}:{self.http_port}"

    async def start(self) -> None:
        """Bind the API, open the store, enter the election."""
        cfg = self.config
        try:  # the credential and CURVE keys the driver will use: checked before anything
            self._link_options = link_options(
                principal=cfg.mesos_authentication_principal,
                secret_file=cfg.mesos_authentication_secret_file,
                curve_secret_file=cfg.curve_secret_file,
                master_public_key_file=cfg.master_public_key_file)
        except ValueError as exc:
            raise OSError(errno.EINVAL, str(exc)) from None
        if cfg.zk:
            store: Store = ZooKeeperStore(cfg.zk, session_timeout=cfg.zk_session_timeout)
        else:
            store = FileStore(cfg.state_dir)
        await store.start()
        self.store = store
        self.service = MarathonService(cfg, store, clock=self.clock)
        app = make_app(self.service, max_body_bytes=cfg.http_max_body,
                       keepalive_seconds=cfg.event_stream_keepalive)
        mount_service_ui(app, self.service, master_url=self._master_http)
        # Bodies up to 4x the limit are read so the API can answer 413 with a JSON
        # message (tornado itself would just drop the connection); beyond that it does.
        auth = None
        if cfg.http_credentials:
            try:
                users = parse_user_password(cfg.http_credentials)
            except CredentialsError as exc:
                raise OSError(errno.EINVAL, str(exc)) from None
            auth = AuthPolicy(users, realm=cfg.http_realm, open_paths=frozenset({"/ping"}))
        policy = server_policy([cfg.hostname, cfg.advertised_host], cfg.allowed_hosts,
                               auth=auth)
        self._server = GuardedHTTPServer(app, policy, max_body_size=4 * cfg.http_max_body,
                                         xheaders=False)
        sockets = _bind(cfg.http_address, cfg.http_port)
        self._server.add_sockets(sockets)
        self.http_port = sockets[0].getsockname()[1]
        if cfg.http_port != self.http_port:  # --http_port 0: /v2/info shows the bound port
            cfg = self.config = attrs.evolve(cfg, http_port=self.http_port)
            self.service.config = cfg
        election = MarathonElection(cfg.zk or None, cfg.advertised_host, self.http_port,
                                    version=__version__,
                                    session_timeout=cfg.zk_session_timeout,
                                    suspend_grace=None)
        self.election = election
        self.service.election = election
        election.on_elected(self._elected)
        election.on_deposed(self._deposed)
        await election.start()
        log.info("marathon API at %s (%s)", self.url,
                 f"contending at {mask_secrets(cfg.zk)}" if cfg.zk else "standalone, leading")

    def _master_http(self) -> str | None:
        """The leading master's HTTP address as the driver knows it (the UI's log links)."""
        info = self.driver.master_info if self.driver is not None else None
        return getattr(info, "http_endpoint", None) or None

    def _elected(self) -> None:
        if self.service is not None:
            self.service.loading = True  # 503 until the state is loaded
        self._lead_task = asyncio.get_running_loop().create_task(self._lead())

    async def _lead(self) -> None:
        async with self._leading:
            service, election, store = self.service, self.election, self.store
            assert service is not None and election is not None and store is not None
            try:
                await self._load(service, election, store)
            finally:
                service.loading = False

    async def _load(self, service: MarathonService, election: MarathonElection,
                    store: Store) -> None:
        """Load the state, then serve the API and subscribe to the master."""
        if isinstance(store, ZooKeeperStore):
            store.fencing_path = election.fencing_path
        await service.load()
        if not election.is_leader:
            return
        scheduling = Scheduling(service, on_error=self._ended_by_master)
        service.scheduling = scheduling
        service.loading = False
        cfg = self.config
        info = FrameworkInfo(
            user=cfg.mesos_user or getpass.getuser(), name=cfg.framework_name,
            id=service.framework_id or "", roles=(cfg.mesos_role,),
            failover_timeout=cfg.failover_timeout, checkpoint=True,
            capabilities=CAPABILITIES, hostname=cfg.advertised_host, webui_url=self.url)
        driver = SchedulerDriver(scheduling, info, cfg.master, **self._link_options)
        self.scheduling, self.driver = scheduling, driver
        await driver.start_async()
        scheduling.start(driver)
        scheduling.kick()
        log.info("leading: %d apps, %d tasks", len(service.apps), len(service.tracked))

    def _ended_by_master(self, message: str) -> None:
        """The master ended this framework (another scheduler took its id over, or it was
        removed or torn down): abdicate rather than serve state it no longer owns; the
        process exits for its supervisor, and a standby takes over."""
        self._deposed(f"the master ended this framework: {message}")

    def _deposed(self, reason: str) -> None:
        # Detach the lead that ends now: a re-election (at once when standalone, after an
        # abdication) starts a new one, which the step-down must neither cancel nor stop.
        ending, self._lead_task = self._lead_task, None
        asyncio.get_running_loop().create_task(self._step_down(reason, ending))

    async def _step_down(self, reason: str, ending: asyncio.Task[None] | None) -> None:
        if ending is not None:
            ending.cancel()
        async with self._leading:  # a new lead starts only once the old one has stopped
            await self._release_leadership()
        if reason != "abdicated":
            self.deposed_reason = reason
            self.deposed.set()

    async def _stop_leading(self) -> None:
        if self._lead_task is not None:
            self._lead_task.cancel()
        await self._release_leadership()

    async def _release_leadership(self) -> None:
        scheduling, driver = self.scheduling, self.driver
        self.scheduling = self.driver = None
        if self.service is not None:
            self.service.scheduling = None
        if scheduling is not None:
            await scheduling.stop()
        if driver is not None:
            # failover=True: the framework (and its tasks) stay registered at the master.
            await driver.stop_async(failover=True)

    async def stop(self) -> None:
        """Stop scheduling (tasks keep running), leave the election, close everything."""
        await self._stop_leading()
        if self.election is not None:
            await self.election.stop()
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
        if self.store is not None:
            await self.store.close()


def _bind(address: str, port: int) -> list[socket.socket]:
    from tornado.netutil import bind_sockets
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        return bind_sockets(port, address=address, family=family)
    except OSError as exc:
        raise OSError(exc.errno, f"the REST API cannot listen on {address}:{port} "
                                 f"({exc.strerror}); choose another port "
                                 f"(mesoslite marathon --http_port, mesoslite local "
                                 f"--marathon_port)") from None


def describe(process: MarathonProcess) -> dict[str, Any]:
    """A one-line summary for the CLI."""
    return {"url": process.url, "zk": mask_secrets(process.config.zk) or None,
            "state_dir": None if process.config.zk else process.config.state_dir}
