"""The agent's HTTP endpoints (tornado).

Owns: ``/state``, ``/health``, ``/version``, ``/flags``, ``/metrics/snapshot``,
``/metrics`` (Prometheus text), ``/monitor/statistics`` and the sandbox file
API ``/files/browse``, ``/files/read``, ``/files/download``.  Every ``/files``
path goes through :func:`mesoslite.agent.files.resolve_request_path`, so it
never leaves the agent's work directory.  Errors are JSON
``{"error": ..., "field": ...}`` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from mesoslite.agent.api_port import AgentApiPort
from mesoslite.agent.config import AgentConfig
from mesoslite.agent.files import PathRefused, browse_entry, resolve_request_path
from mesoslite.agent.views import (
    AgentView,
    metrics_snapshot,
    prometheus_text,
    state_json,
    version_json,
)
from mesoslite.api.jsonp import JsonpTransform
from mesoslite.api.routes import agent_api_rules

_CHUNK = 64 * 1024


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

    def resolve(self) -> str | None:
        """The resolved ``path`` argument, or None after answering with an error."""
        try:
            raw = self.raw_arg("path", required=True)
            assert raw is not None
            return resolve_request_path(self.agent.work_dir, raw)
        except BadArgument as exc:
            self.error(400, exc.field, str(exc))
        except PathRefused as exc:
            self.error(exc.status, exc.field, exc.message)
        return None


class StateHandler(_Handler):
    """``GET /state``."""

    def get(self) -> None:
        """Answer the request."""
        self.write_json(state_json(self.agent))


class HealthHandler(_Handler):
    """``GET /health``: 200 with an empty body while the agent runs."""

    def get(self) -> None:
        """Answer the request."""
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

    def get(self) -> None:
        """Answer the request."""
        self.set_header("Content-Type", "text/plain; version=0.0.4")
        self.finish(prometheus_text(metrics_snapshot(self.agent)))


class StatisticsHandler(_Handler):
    """``GET /monitor/statistics``."""

    async def get(self) -> None:
        """Answer the request."""
        self.write_json(await self.agent.monitor_statistics())


class BrowseHandler(_Handler):
    """``GET /files/browse?path=``: the entries of a directory (or the file itself)."""

    def get(self) -> None:
        """Answer the request."""
        path = self.resolve()
        if path is None:
            return
        if not os.path.isdir(path):
            self.write_json([browse_entry(path, path)])
            return
        entries = []
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            try:
                entries.append(browse_entry(full, full))
            except FileNotFoundError:
                continue
        self.write_json(entries)


class ReadHandler(_Handler):
    """``GET /files/read?path=&offset=&length=``: ``{"data", "offset"}`` like Mesos.

    ``offset=-1`` answers the file size with empty data; ``length`` is capped.
    """

    def get(self) -> None:
        """Answer the request."""
        try:
            offset = self.int_arg("offset", 0, -1)
            cap = self.agent.config.files_max_read_length
            length = self.int_arg("length", cap, -1)
        except BadArgument as exc:
            self.error(400, exc.field, str(exc))
            return
        path = self.resolve()
        if path is None:
            return
        if os.path.isdir(path):
            self.error(400, "path", f"path: {self.raw_arg('path')!r} is a directory")
            return
        size = os.path.getsize(path)
        if offset == -1:
            self.write_json({"data": "", "offset": size})
            return
        if length < 0 or length > cap:
            length = cap
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        self.write_json({"data": data.decode("utf-8", errors="replace"), "offset": offset})


class DownloadHandler(_Handler):
    """``GET /files/download?path=``: the file as an attachment."""

    async def get(self) -> None:
        """Answer the request."""
        path = self.resolve()
        if path is None:
            return
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, os.stat, path)
        if stat.S_ISDIR(found.st_mode):
            self.error(400, "path", f"path: {self.raw_arg('path')!r} is a directory")
            return
        name = os.path.basename(path).replace('"', "")
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.set_header("Content-Length", str(found.st_size))
        f = await loop.run_in_executor(None, open, path, "rb")
        try:
            while chunk := await loop.run_in_executor(None, f.read, _CHUNK):
                self.write(chunk)
                await self.flush()
        finally:
            f.close()
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
        default_handler_args=args
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
    server = tornado.httpserver.HTTPServer(make_app(agent))
    server.add_sockets(sockets)
    return server
