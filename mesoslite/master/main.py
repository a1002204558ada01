"""One ``mesoslite master`` process: its sockets, HTTP server, registry and leadership.

Owns: :class:`MasterProcess`, the composition root of a master.  It opens
the registry (ZooKeeper with ``--zk``, ``<work_dir>/registry.json``
standalone, memory otherwise), builds the
:class:`~mesoslite.master.leadership.Leadership` and the
:class:`~mesoslite.master.master.Master` shell and wires them together
through :class:`~mesoslite.master.leadership.LeadershipCallbacks`; on
:meth:`~MasterProcess.start` it binds the ZeroMQ ROUTER socket and the HTTP
server (:mod:`mesoslite.master.http`), describes itself in a MasterInfo, and
enters the election.  Nothing else in the package constructs a socket or a
server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import attrs
import tornado.httpserver

from mesoslite import __version__
from mesoslite.authz import is_inline
from mesoslite.authz.files import resolve_acls
from mesoslite.clock import SYSTEM_CLOCK, Clock
from mesoslite.coordination import Registry
from mesoslite.httpguard.server import load_auth
from mesoslite.master.authn import Authenticator
from mesoslite.master.config import MasterConfig
from mesoslite.master.http import start_http_server
from mesoslite.master.leadership import Leadership, LeadershipCallbacks, master_zk_url
from mesoslite.master.master import Master
from mesoslite.master.registry_sync import open_registry
from mesoslite.master.state import MasterState
from mesoslite.protocol import MasterInfo
from mesoslite.transport import CurveServerKeys, RouterServer

log = logging.getLogger("mesoslite.master")

#: Longest :meth:`MasterProcess.stop` waits for open HTTP connections to close (seconds).
HTTP_CLOSE_TIMEOUT = 5.0


class MasterProcess:
    """A master: standalone (leads at once) or one of several contending through ZooKeeper.

    After :meth:`start`: ``info`` (MasterInfo, id a uuid4 string),
    ``zmq_endpoint`` (``tcp://ip:port``), ``zmq_port`` and ``http_port``
    (the bound ports, useful with port 0); ``state`` (:class:`MasterState`)
    once elected (at once when standalone).  ``leadership`` says whether it
    leads; ``deposed`` is set when it lost leadership for good.  ``shell``
    is the :class:`Master` that routes messages and runs the timers.
    """

    def __init__(self, config: MasterConfig | None = None, clock: Clock | None = None) -> None:
        """Build the parts (ConfigError naming ``zk`` when it is malformed); nothing is bound."""
        config = config or MasterConfig()
        if config.acls and not is_inline(config.acls):  # --acls FILE: read (and check) it now
            config = attrs.evolve(config, acls=resolve_acls(config.acls))
        self.config = config
        self.clock = clock = clock or SYSTEM_CLOCK
        self.zmq_endpoint = ""
        self.zmq_port = 0
        self.http_port = 0
        self.router: RouterServer | None = None
        self._http: tornado.httpserver.HTTPServer | None = None
        #: Where the durable state lives (read on election, written while leading).
        self.registry: Registry = open_registry(config, master_zk_url(config))
        self.leadership = Leadership(config, clock, self.registry, LeadershipCallbacks(
            elected=lambda state: self.shell.begin_leading(state),
            deposed=lambda: self.shell.end_leading(),
            handle=lambda peer, msg: self.shell.handle(peer, msg),
            deliver=lambda sends: self.shell.release(sends),
            send=self._send,
        ))
        self.shell = Master(config, clock, self.leadership)
        if config.credentials:
            # OSError naming --credentials when the file is unreadable or malformed.
            policy = load_auth(True, False, config.credentials)
            assert policy is not None
            self.shell.authenticator = Authenticator(
                policy.credentials, clock, timeout=config.authentication_v0_timeout)

    # ------------------------------------------------------------ what callers read

    @property
    def info(self) -> MasterInfo | None:
        """This master as it contends and serves (None until started)."""
        return self.shell.info

    @property
    def state(self) -> MasterState:
        """The pure state (available once this master leads)."""
        return self.shell.state

    @property
    def is_leading(self) -> bool:
        """True while this master acts as the leader (elected and recovered)."""
        return self.leadership.acting

    @property
    def deposed(self) -> asyncio.Event:
        """Set when this master lost leadership (or could not take it up); see ``leadership``."""
        return self.leadership.deposed

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind the ZeroMQ and HTTP ports, serve, and contend for leadership.

        An address that cannot be bound is an OSError naming ``zmq_port`` or
        ``http_port``.  Standalone, the master leads (registry read, timers
        running) when this returns; with ZooKeeper it returns once its
        candidacy exists.
        """
        config = self.config
        router = self.router = self._bind_router()
        try:
            self._http, self.http_port = start_http_server(self.shell, config.ip,
                                                           config.http_port)
        except Exception as exc:
            router.close()
            self.router = None
            raise OSError(
                f"http_port: cannot bind {config.ip}:{config.http_port}: {exc}"
            ) from exc
        self.zmq_port = router.port
        info = self._describe()
        self.shell.serve(info, router)
        router.start()
        log.info("master %s serving: zmq %s http %s", info.id, self.zmq_endpoint,
                 info.http_endpoint)
        try:
            await self.leadership.start(info)
        except BaseException:
            await self.stop()
            raise

    def _bind_router(self) -> RouterServer:
        config = self.config
        curve = None
        if config.curve_secret_key:
            curve = CurveServerKeys.from_files(config.curve_secret_key,
                                               config.curve_authorized_dir)
        endpoint = f"tcp://{config.ip}:{config.zmq_port}"
        try:
            return RouterServer(endpoint, self.shell.on_message, name="master", curve=curve,
                                max_message_size=config.max_message_size)
        except Exception as exc:
            raise OSError(f"zmq_port: cannot bind {endpoint}: {exc}") from exc

    def _describe(self) -> MasterInfo:
        """This master's MasterInfo, once both ports are bound."""
        config = self.config
        host = config.advertised_hostname
        # (A comparison with the wildcard addresses, not a bind.)
        bound_host = config.ip if config.ip not in ("0.0.0.0", "*", "::") else host  # noqa: S104
        self.zmq_endpoint = f"tcp://{bound_host}:{self.zmq_port}"
        return MasterInfo(
            id=str(uuid.uuid4()),
            ip=config.ip,
            port=self.http_port,
            hostname=host,
            version=__version__,
            zmq_endpoint=self.zmq_endpoint,
            http_endpoint=f"http://{bound_host}:{self.http_port}",
            pid=f"master@{bound_host}:{self.http_port}",
        )

    def _send(self, peer: bytes, msg: Any) -> bool:
        """Answer one peer directly (the leadership's redirects)."""
        router = self.router
        return router is not None and router.send(peer, msg)

    async def stop(self) -> None:
        """Stop the timers, leave the election, close both servers (safe to call twice)."""
        await self.shell.stop()
        await self.leadership.stop()
        if self.router is not None:
            self.router.close()
        if self._http is not None:
            self._http.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._http.close_all_connections(), HTTP_CLOSE_TIMEOUT)
            self._http = None
        log.info("master stopped")
