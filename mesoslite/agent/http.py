"""The agent's HTTP endpoints (tornado).

Owns: ``/state``, ``/health``, ``/version``, ``/flags``, ``/metrics/snapshot``,
``/metrics`` (Prometheus text), ``/monitor/statistics`` and the sandbox file
API ``/files/browse``, ``/files/read``, ``/files/download``.  Every ``/files``
path goes through :func:`mesoslite.agent.files.resolve_request_path`, so it
never leaves the task sandbox it names (never ``meta/``, never another task's
sandbox); only regular files are read, on a small dedicated thread pool with a
timeout (``files_timeout``, 504), so a FIFO or a stuck file never stalls the loop.  Errors are JSON
``{"error": ..., "field": ...}`` with a 4xx status.  With ``--acls``: ``/files`` refuses
(403) a sandbox whose user ``access_sandboxes`` does not allow the request's principal,
``/state`` shows what ``view_frameworks``/``view_executors``/``view_tasks`` allow, and
``get_endpoints`` guards GETs (``/flags``, ``/metrics/snapshot``, ``/monitor/statistics``
...) before any handler.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import socket
from collections.abc import Callable
from typing import Any, TypeVar

import tornado.httpserver
import tornado.netutil
import tornado.web

from mesoslite.agent.api_port import AgentApiPort
from mesoslite.agent.config import AgentConfig
from mesoslite.agent.files import (
    PathRefused,
    Resolved,
    list_dir,
    open_regular,
    read_range,
    resolve_request_path,
)
from mesoslite.agent.views import (
    AgentView,
    ContainerSeries,
    metrics_snapshot,
    prometheus_text,
    sandbox_user,
    state_json,
    version_json,
)
from mesoslite.api.jsonp import JsonpTransform
from mesoslite.api.routes import agent_api_rules
from mesoslite.authz import Viewer, acls_for
from mesoslite.httpguard.server import (
    GuardedHTTPServer,
    load_auth,
    request_principal,
    server_policy,
)

_CHUNK = 64 * 1024
#: Threads that read sandbox files (a few: a stuck read holds one until it returns).
FILES_THREADS = 4
_T = TypeVar("_T")
_POOL: list[concurrent.futures.ThreadPoolExecutor] = []


def _files_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The process's pool for sandbox file work (made on first use)."""
    if not _POOL:
        _POOL.append(concurrent.futures.ThreadPoolExecutor(
            FILES_THREADS, thread_name_prefix="agent-files"))
    return _POOL[0]


class BadArgument(Exception):
    """A query argument is missing or malformed."""

    def __init__(self, field: str, message: str) -> None:
        """Name the bad query argument."""
        super().__init__(message)
        self.field = field


class _Handler(tornado.web.RequestHandler):
    """Base: JSON helpers and strict query-argument parsing."""

    agent: AgentView

    def initialize(self, agent: AgentView) -> None:
        """Keep the agent this handler serves."""
        self.agent = agent

    def write_json(self, body: Any, status: int = 200) -> None:
        """Send ``body`` as JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def error(self, status: int, field: str, message: str) -> None:
        """Send a JSON error naming ``field``."""
        self.write_json({"error": message, "field": field}, status)

    def raw_arg(self, name: str, required: bool = False) -> str | None:
        """A query argument as given (no control-character stripping), or None."""
        values = self.request.query_arguments.get(name)
        if not values:
            if required:
                raise BadArgument(name, f"{name}: query argument is required")
            return None
        try:
            return values[-1].decode("utf-8")
        except UnicodeDecodeError:
            raise BadArgument(name, f"{name}: expected UTF-8 text") from None

    def int_arg(self, name: str, default: int, minimum: int) -> int:
        """An integer query argument >= ``minimum``."""
        raw = self.raw_arg(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadArgument(name, f"{name}: expected an integer, got {raw[:40]!r}") from None
        if value < minimum:
            raise BadArgument(name, f"{name}: expected an integer >= {minimum}, got {value}")
        return value

    async def off_loop(self, fn: Callable[..., _T], *args: Any) -> _T | None:
        """``fn(*args)`` in the files pool, within ``files_timeout``; None after an error answer.

        A FIFO, a device or a stuck file system can never stall the agent's loop: the
        work runs on a small dedicated pool and a call that takes too long is 504.
        """
        loop = asyncio.get_running_loop()
        timeout = self.agent.config.files_timeout
        try:
            return await asyncio.wait_for(loop.run_in_executor(_files_pool(), fn, *args),
                                          timeout)
        except PathRefused as exc:
            if not self._finished:
                self.error(exc.status, exc.field, exc.message)
        except FileNotFoundError:
            if not self._finished:
                self.error(404, "path", f"path: {self.raw_arg('path')!r} does not exist")
        except TimeoutError:
            if not self._headers_written:
                self.error(504, "path", f"path: reading {self.raw_arg('path')!r} took more "
                                        f"than {timeout:g} s")
        return None

    def resolve(self) -> Resolved | None:
        """The resolved ``path`` argument, or None after answering with an error."""
        try:
            raw = self.raw_arg("path", required=True)
            assert raw is not None
            target = resolve_request_path(self.agent.work_dir, raw)
            refused = self.sandbox_refusal(target)
            if refused:
                self.error(403, "path", refused)
                return None
            return target
        except BadArgument as exc:
            self.error(400, exc.field, str(exc))
        except PathRefused as exc:
            gone = self.sandbox_gone(exc)
            self.error(exc.status, exc.field, gone or exc.message)
        return None

    def sandbox_refusal(self, target: Resolved) -> str:
        """Why ``access_sandboxes`` refuses this request's principal the sandbox, or ""."""
        acls = acls_for(self.agent.config.acls)
        if not acls.restricts("access_sandboxes"):
            return ""
        parts = os.path.relpath(target.sandbox, os.path.realpath(self.agent.work_dir)).split("/")
        framework_id, executor_id = parts[3], parts[5]  # agents/A/frameworks/F/executors/E/...
        user = sandbox_user(self.agent, framework_id, executor_id)
        principal = request_principal()
        if acls.authorized("access_sandboxes", principal, user):
            return ""
        who = f"principal {principal!r}" if principal else "an unauthenticated request"
        whose = f"user {user!r}" if user is not None else "a framework this agent forgot"
        return (f"path: {who} is not authorized to access the sandbox of executor "
                f"{executor_id!r} of framework {framework_id!r} ({whose}; access_sandboxes "
                "ACL)")

    def sandbox_gone(self, exc: PathRefused) -> str | None:
        """For a 404: why the path is gone when sandbox GC removed it."""
        raw = self.raw_arg("path") or ""
        if exc.status != 404:
            return None
        full = raw if os.path.isabs(raw) else os.path.join(self.agent.work_dir, raw)
        return self.agent.sandbox_gone(os.path.normpath(full))


class StateHandler(_Handler):
    """``GET /state``."""

    def get(self) -> None:
        """Answer the request."""
        acls = acls_for(self.agent.config.acls)
        viewer = Viewer(acls, request_principal())
        show_flags = acls.endpoint_authorized("/flags", request_principal())
        self.write_json(state_json(self.agent, viewer if viewer.filters else None, show_flags))


class HealthHandler(_Handler):
    """``GET /health``: 200 with an empty body while the agent runs.

    503 naming the cause while checkpoint writes fail (a full disk): the agent then
    holds every message it would send until a write succeeds.
    """

    def get(self) -> None:
        """Answer the request."""
        if self.agent.checkpoint_error:
            self.write_json({"error": self.agent.checkpoint_error, "field": ""}, 503)
            return
        self.set_status(200)
        self.finish()


class VersionHandler(_Handler):
    """``GET /version``."""

    def get(self) -> None:
        """Answer the request."""
        self.write_json(version_json())


class FlagsHandler(_Handler):
    """``GET /flags``."""

    def get(self) -> None:
        """Answer the request."""
        self.write_json({"flags": self.agent.config.to_flags()})


class SnapshotHandler(_Handler):
    """``GET /metrics/snapshot``."""

    def get(self) -> None:
        """Answer the request."""
        self.write_json(metrics_snapshot(self.agent))


class PrometheusHandler(_Handler):
    """``GET /metrics``."""

    async def get(self) -> None:
        """Answer the request: the agent's metrics, then every running container's usage."""
        self.set_header("Content-Type", "text/plain; version=0.0.4")
        entries = await self.agent.monitor_statistics()
        series = self.application.settings.get("container_series")
        if not isinstance(series, ContainerSeries):  # an app not built by make_app
            series = ContainerSeries()
        self.finish(prometheus_text(metrics_snapshot(self.agent))
                    + series.render(entries, self.agent.frameworks))


class StatisticsHandler(_Handler):
    """``GET /monitor/statistics``."""

    async def get(self) -> None:
        """Answer the request."""
        self.write_json(await self.agent.monitor_statistics())


class BrowseHandler(_Handler):
    """``GET /files/browse?path=``: the entries of a directory (or the file itself)."""

    async def get(self) -> None:
        """Answer the request."""
        target = self.resolve()
        if target is None:
            return
        entries = await self.off_loop(list_dir, target)
        if entries is not None:
            self.write_json(entries)


class ReadHandler(_Handler):
    """``GET /files/read?path=&offset=&length=``: ``{"data", "offset"}`` like Mesos.

    ``offset=-1`` answers the file size with empty data; ``length`` is capped.
    """

    async def get(self) -> None:
        """Answer the request."""
        try:
            offset = self.int_arg("offset", 0, -1)
            cap = self.agent.config.files_max_read_length
            length = self.int_arg("length", cap, -1)
        except BadArgument as exc:
            self.error(400, exc.field, str(exc))
            return
        target = self.resolve()
        if target is None:
            return
        if length < 0 or length > cap:
            length = cap
        got = await self.off_loop(read_range, target, self.raw_arg("path"), offset, length)
        if got is None:
            return
        data, size = got
        if offset == -1:
            self.write_json({"data": "", "offset": size})
            return
        self.write_json({"data": data.decode("utf-8", errors="replace"), "offset": offset})


class DownloadHandler(_Handler):
    """``GET /files/download?path=``: the file as an attachment."""

    async def get(self) -> None:
        """Answer the request."""
        target = self.resolve()
        if target is None:
            return
        fd = await self.off_loop(open_regular, target, self.raw_arg("path"))
        if fd is None:
            return
        try:
            size = os.fstat(fd).st_size
            name = os.path.basename(target.path).replace('"', "")
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Disposition", f'attachment; filename="{name}"')
            self.set_header("Content-Length", str(size))
            sent = 0
            while sent < size:
                chunk = await self.off_loop(os.pread, fd, min(_CHUNK, size - sent), sent)
                if not chunk:
                    break
                sent += len(chunk)
                self.write(chunk)
                await self.flush()
        finally:
            os.close(fd)
        if sent < size:  # the file shrank or a read timed out: the length promised is wrong
            self.request.connection.close()  # type: ignore[union-attr]
            return
        self.finish()


class NotFoundHandler(_Handler):
    """Anything else: a JSON 404."""

    def prepare(self) -> None:
        """Answer every unknown path with 404."""
        self.error(404, "path", f"no endpoint {self.request.path!r}")


def make_app(agent: AgentView) -> tornado.web.Application:
    """The tornado application for ``agent``."""
    args = {"agent": agent}
    routes = [
        (r"/state(?:\.json)?", StateHandler, args),
        (r"/health", HealthHandler, args),
        (r"/version", VersionHandler, args),
        (r"/flags", FlagsHandler, args),
        (r"/metrics/snapshot", SnapshotHandler, args),
        (r"/metrics", PrometheusHandler, args),
        (r"/monitor/statistics(?:\.json)?", StatisticsHandler, args),
        (r"/files/browse(?:\.json)?", BrowseHandler, args),
        (r"/files/read(?:\.json)?", ReadHandler, args),
        (r"/files/download(?:\.json)?", DownloadHandler, args),
    ]
    routes += [(r"/slave\(1\)" + path, handler, kwargs)  # the paths Mesos serves them at
               for path, handler, kwargs in list(routes)]
    api_routes: list[Any] = agent_api_rules(agent.executors, AgentApiPort(agent))  # v1 APIs
    routes += api_routes
    return tornado.web.Application(
        routes, transforms=[JsonpTransform], default_handler_class=NotFoundHandler,
        default_handler_args=args,
        container_series=ContainerSeries(),  # /metrics' label cache, kept between scrapes
    )


def bind_http(config: AgentConfig) -> tuple[list[socket.socket], int]:
    """Bind ``config.ip:config.http_port`` (0 = ephemeral); returns (sockets, port).

    An address that cannot be bound is an OSError naming the flag to change.
    """
    try:
        sockets = tornado.netutil.bind_sockets(config.http_port, address=config.ip)
    except OSError as exc:
        raise OSError(exc.errno, f"the agent's HTTP server cannot listen on {config.ip}:"
                                 f"{config.http_port} ({exc.strerror}); choose another port "
                                 "(mesoslite agent --http_port, mesoslite local "
                                 "--agent_port_base)") from None
    return sockets, sockets[0].getsockname()[1]


def start_http_server(agent: AgentView,
                      sockets: list[socket.socket]) -> tornado.httpserver.HTTPServer:
    """Serve ``agent``'s endpoints on the bound ``sockets``."""
    config = agent.config
    auth = load_auth(config.authenticate_http_readonly, config.authenticate_http_readwrite,
                     config.credentials)
    if auth is not None:  # HTTP executors: Mesos's --authenticate_http_executors (not yet)
        auth = auth.with_open("/api/v1/executor", "/slave(1)/api/v1/executor")
    policy = server_policy([config.hostname, config.effective_hostname], config.allowed_hosts,
                           auth=auth, acls=acls_for(config.acls))
    server = GuardedHTTPServer(make_app(agent), policy)
    server.add_sockets(sockets)
    return server
