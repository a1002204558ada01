"""The master UI's pages, live stream and sandbox proxy, and the one call that mounts them.

Owns: :func:`master_ui_rules` (every route of the UI, for the master's route
table: the page at ``/`` for browsers — a request that does not accept HTML
still gets the master's JSON index — and at ``/ui/``, the static files under
``/ui/static/``, the JSON views under ``/ui/api/``, the push stream
``/ui/api/stream`` and the sandbox proxy ``/agents/{id}/files/{browse,read,download}``),
:class:`IndexPage`, :class:`StreamHandler` (server-sent events from the
publisher) and :class:`FilesHandler`.

Pages carry a Content-Security-Policy that allows only this origin's own
scripts, styles and connections (no inline script, nothing from elsewhere).
A standby master answers the page with 307 to the leader's (the browser
keeps the ``#/...`` view), or a page that retries while no leader is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable
from typing import Any

import tornado.httpclient
import tornado.httputil
import tornado.iostream
import tornado.routing
import tornado.web

from mesoslite.httpguard.server import request_principal
from mesoslite.webui import handlers as api
from mesoslite.webui.handlers import MasterUi, UiHandler
from mesoslite.webui.proxy import ProxyError
from mesoslite.webui.publisher import Watcher
from mesoslite.webui.source import MasterSource

log = logging.getLogger("mesoslite.webui")

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
#: Seconds of silence after which the stream sends a comment (proxies keep it open).
KEEPALIVE_SECONDS = 15.0
#: A watcher that takes no data for this long is disconnected (seconds).
WRITE_TIMEOUT_SECONDS = 30.0

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'")

_NO_LEADER_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>mesoslite: no leading master</title></head>
<body><p>This master is not the leader and no leading master is known yet.
This page retries every 2 seconds.</p></body></html>
"""


def read_page(*parts: str) -> bytes:
    """A page of the static directory."""
    with open(os.path.join(STATIC_DIR, *parts), "rb") as handle:
        return handle.read()


class IndexPage(UiHandler):
    """The UI's single page (``/`` for browsers, ``/ui/``)."""

    def initialize(self, webui: MasterUi, page: bytes = b"") -> None:
        """Keep the page's bytes."""
        super().initialize(webui)
        self.page = page

    def prepare(self) -> None:
        """A standby sends the browser to the leader's page."""
        if self.master.is_leading:
            return
        url = api.leader_url(self.master)
        if url is not None:
            self.redirect(url + "/", status=307)
            return
        self.set_status(503)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Retry-After", "2")
        self.finish(_NO_LEADER_PAGE)

    def get(self) -> None:
        """Answer the page."""
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.finish(self.page)


class StaticFiles(tornado.web.StaticFileHandler):
    """The UI's own scripts and styles (served by any master)."""

    def set_default_headers(self) -> None:
        """Security headers; browsers revalidate (no stale script after an upgrade)."""
        for name, value in api.SECURITY_HEADERS.items():
            self.set_header(name, value)
        self.set_header("Cache-Control", "no-cache")


class BrowserIndex(tornado.routing.Matcher):
    """``/`` asked for by a browser (Accept names text/html)."""

    def match(self, request: tornado.httputil.HTTPServerRequest) -> dict[str, Any] | None:
        """Match ``GET /`` that accepts HTML; everything else falls through."""
        if request.path != "/" or "text/html" not in request.headers.get("Accept", ""):
            return None
        return {}

    def reverse(self, *args: Any) -> str | None:
        """The path."""
        return "/"


def _ignore_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def pump(handler: tornado.web.RequestHandler, watcher: Watcher) -> None:
    """Write ``watcher``'s frames to ``handler``'s client as server-sent events until the
    watcher is closed, the client goes or stalls (:data:`WRITE_TIMEOUT_SECONDS` without
    taking data); a comment every :data:`KEEPALIVE_SECONDS` of silence.  Each frame is the
    publisher's bytes, encoded once for every watcher."""
    handler.set_header("Content-Type", "text/event-stream")
    handler.set_header("Cache-Control", "no-cache, no-store")
    handler.set_header("X-Accel-Buffering", "no")
    handler.write(b"retry: 2000\n\n")
    try:
        while not watcher.closed:
            frame = watcher.take()
            if frame is not None:
                handler.write(frame)
            if not await _flush(handler):
                return
            if watcher.pending is None and not watcher.closed:
                try:
                    await asyncio.wait_for(watcher.wake.wait(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    handler.write(b": ping\n\n")
    except tornado.iostream.StreamClosedError:
        return
    with contextlib.suppress(tornado.iostream.StreamClosedError):
        handler.finish()


async def _flush(handler: tornado.web.RequestHandler) -> bool:
    pending = handler.flush()
    done, _ = await asyncio.wait({pending}, timeout=WRITE_TIMEOUT_SECONDS)
    if not done:
        pending.add_done_callback(_ignore_result)
        log.info("web UI stream to %s took no data for %.0f s; closing it",
                 handler.request.remote_ip, WRITE_TIMEOUT_SECONDS)
        if handler.request.connection is not None:
            handler.request.connection.close()  # type: ignore[attr-defined]
        return False
    pending.result()
    return True


class StreamHandler(UiHandler):
    """``/ui/api/stream``: the publisher's summaries as server-sent events."""

    def initialize(self, webui: MasterUi) -> None:
        """Start without a watcher."""
        super().initialize(webui)
        self.watcher: Any = None

    async def get(self) -> None:
        """Stream until the client goes, the master stops leading or the client stalls."""
        watcher = self.watcher = self.webui.publisher.attach()
        try:
            await pump(self, watcher)
        finally:
            self.webui.publisher.detach(watcher)

    def on_connection_close(self) -> None:
        """The browser went away."""
        if self.watcher is not None:
            self.webui.publisher.detach(self.watcher)


#: Largest piece of a download read from the agent before the browser takes it.
DOWNLOAD_CHUNK_BYTES = 64 * 1024  # tornado's read chunk, which the client keeps
#: Largest read buffer of a download's connection to the agent.
DOWNLOAD_BUFFER_BYTES = 1024 * 1024
#: Headers of an agent's answer passed on to the browser.
_RELAYED = ("Content-Type", "Content-Disposition", "Content-Length")


class FilesHandler(UiHandler):
    """``/agents/{id}/files/{browse|read|download}``: the agent's /files, through the master."""

    async def get(self, agent_id: str, operation: str) -> None:
        """Check the path, then relay the agent's answer (downloads are streamed)."""
        args: dict[str, str] = {}
        for name in ("offset", "length") if operation == "read" else ():
            value = self.get_query_argument(name, "")
            if value:
                if not value.lstrip("-").isdigit() or len(value) > 20:
                    self.fail(400, name, f"{name}: expected an integer, got {value[:40]!r}")
                    return
                args[name] = value
        try:
            raw = self.raw_path()
            # access_sandboxes first (the ids named; a path with '..' is refused next anyway)
            refused = self.webui.proxy.sandbox_refusal(agent_id, raw, request_principal())
            if refused:
                raise ProxyError(403, "path", refused)
            args["path"] = await self.webui.proxy.checked_path(agent_id, raw)
            if operation == "download":
                await self._stream(agent_id, args)
                return
            request = self.webui.proxy.request(agent_id, f"/files/{operation}", args)
        except ProxyError as exc:
            self.fail(exc.status, exc.field, exc.message)
            return
        client = tornado.httpclient.AsyncHTTPClient()
        try:
            response = await client.fetch(request, raise_error=False)
        except Exception as exc:  # noqa: BLE001 - any transport failure is a 502
            self.fail(502, "agent_id", f"agent {agent_id}: {exc}")
            return
        if response.code == 599:
            self.fail(502, "agent_id", f"agent {agent_id}: {response.error}")
            return
        self.set_status(response.code)
        self.set_header("Content-Type", response.headers.get("Content-Type",
                                                             "application/json"))
        self.finish(response.body)

    def raw_path(self) -> str:
        """The ``path`` argument exactly as sent (tornado's getters would strip control
        characters and spaces, which the checks must see)."""
        values = self.request.query_arguments.get("path") or [b""]
        try:
            return values[-1].decode("utf-8")
        except UnicodeDecodeError:
            raise ProxyError(400, "path", "path: expected UTF-8 text") from None

    async def _stream(self, agent_id: str, args: dict[str, str]) -> None:
        """Relay a download chunk by chunk, with backpressure: the agent's answer is read
        one chunk (at most :data:`DOWNLOAD_CHUNK_BYTES`) at a time, and the next one only
        once the browser took the last, so a slow browser never makes the master hold
        the file (a browser that goes away ends the transfer from the agent too)."""
        headers: dict[str, str] = {}
        status = [0]

        def on_header(line: str) -> None:
            if line.startswith("HTTP/"):
                status[0] = int(line.split(" ", 2)[1])
            elif ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()

        def on_chunk(chunk: bytes) -> Awaitable[None]:
            if not self._headers_written:
                self.set_status(status[0] or 200)
                for name in _RELAYED:
                    if name.lower() in headers:
                        self.set_header(name, headers[name.lower()])
            self.write(chunk)
            return self.flush()  # awaited by the HTTP client before it reads on

        request = self.webui.proxy.request(agent_id, "/files/download", args,
                                        header_callback=on_header, streaming_callback=on_chunk)
        request.request_timeout = 3600.0
        # A client of its own: a long download neither waits behind nor holds up the
        # shared client's other requests, and no body size limit applies to it (the
        # shared one's would end a download at 100 MiB).
        client = tornado.httpclient.AsyncHTTPClient(
            force_instance=True, max_clients=1, max_body_size=1 << 62,
            max_buffer_size=DOWNLOAD_BUFFER_BYTES)
        try:
            response = await client.fetch(request, raise_error=False)
        except Exception as exc:  # noqa: BLE001 - any transport failure is a 502
            if not self._headers_written:
                self.fail(502, "agent_id", f"agent {agent_id}: {exc}")
            return
        finally:
            client.close()
        if response.code == 599 and not self._headers_written:
            self.fail(502, "agent_id", f"agent {agent_id}: {response.error}")
            return
        if not self._headers_written:
            self.set_status(status[0] or response.code)
            for name in _RELAYED:
                if name.lower() in headers:
                    self.set_header(name, headers[name.lower()])
        with contextlib.suppress(tornado.iostream.StreamClosedError):
            self.finish()


def master_ui_rules(master: MasterSource) -> list[Any]:
    """Every route of the master's UI, for the front of the master's route table."""
    ui = MasterUi(master)
    args = {"webui": ui}
    page = {"webui": ui, "page": read_page("master", "index.html")}
    routes: list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]] = [
        (r"/ui/?", IndexPage, page),
        (r"/ui/api/overview", api.OverviewHandler, args),
        (r"/ui/api/stream", StreamHandler, args),
        (r"/ui/api/leader", api.LeaderHandler, args),
        (r"/ui/api/agents", api.AgentsHandler, args),
        (r"/ui/api/agents/([^/]+)", api.AgentHandler, args),
        (r"/ui/api/agents/([^/]+)/statistics", api.StatisticsHandler, args),
        (r"/ui/api/agents/([^/]+)/sandbox", api.SandboxHandler, args),
        (r"/ui/api/frameworks", api.FrameworksHandler, args),
        (r"/ui/api/frameworks/([^/]+)", api.FrameworkHandler, args),
        (r"/ui/api/tasks", api.TasksHandler, args),
        (r"/ui/api/tasks/([^/]+)/([^/]+)", api.TaskHandler, args),
        (r"/ui/api/offers", api.OffersHandler, args),
        (r"/ui/api/roles", api.RolesHandler, args),
        (r"/ui/api/metrics", api.MetricsHandler, args),
        (r"/agents/([^/]+)/files/(browse|read|download)(?:\.json)?", FilesHandler, args),
    ]
    rules: list[Any] = [tornado.routing.Rule(BrowserIndex(), IndexPage, page)]
    rules += [tornado.web.url(pattern, handler, kwargs) for pattern, handler, kwargs in routes]
    rules.append(tornado.web.url(r"/ui/static/(.*)", StaticFiles, {"path": STATIC_DIR}))
    return rules
