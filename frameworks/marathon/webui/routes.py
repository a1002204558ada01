"""The service UI's page, static files and JSON views (tornado), and the call that mounts them.

Owns: :func:`mount_service_ui` (adds the UI's routes in front of the REST API's
application), :class:`ServicePage` (``/ui/``, served by every instance),
:class:`AppsSummaryHandler` (``/ui/api/apps``: the apps view computed from the
service facade in one pass, paged and filtered on the server, computed once
per push for every page that re-reads it) and :class:`LinksHandler`
(``/ui/api/links``: the leading master's UI, for the instances' log links);
the push stream ``/ui/api/events`` is :mod:`.stream`'s.  The JSON handlers are
API handlers: a standby serves the page and forwards them to the leader like
any ``/v2`` call (the page's writes go to ``/v2`` on the same origin, so they
reach the leader the same way).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from typing import Any

import tornado.web

from frameworks.marathon.api.apps import AppViews
from frameworks.marathon.api.base import ApiError, ApiHandler
from frameworks.marathon.core.model import App, MarathonTask
from frameworks.marathon.core.reports import QueueEntry
from frameworks.marathon.facade import ServiceFacade
from frameworks.marathon.webui import summaries
from frameworks.marathon.webui.stream import ChangePublisher, ChangesHandler
from mesoslite.webui.routes import CONTENT_SECURITY_POLICY, StaticFiles
from mesoslite.webui.routes import STATIC_DIR as COMMON_STATIC_DIR

SERVICE_STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
#: Apps summarised between two yields to the loop.
YIELD_EVERY = 200
#: How long an apps view is reused for the same request (seconds): pages refresh on
#: events at most once a second, so several open pages share one computation.
APPS_TTL = 0.5
#: While pages watch, an apps view is reused until the next push, at most this long
#: (seconds; some changes, such as a launch delay running out, come with no event).
APPS_LIVE_MAX_AGE = 5.0
#: The API options the UI's JSON handlers run with (as the REST API's defaults).
OPTIONS: dict[str, Any] = {"max_body_bytes": 1024 * 1024, "keepalive_seconds": 15.0,
                           "proxy_timeout_seconds": 30.0, "event_write_timeout_seconds": 60.0}


class RootRedirect(tornado.web.RequestHandler):
    """``/``: the UI lives at ``/ui/`` (as in Marathon)."""

    def get(self) -> None:
        """Redirect."""
        self.redirect("/ui/", status=302)


class ServicePage(tornado.web.RequestHandler):
    """``/ui/``: the single page, served by every instance."""

    def initialize(self, service: ServiceFacade, page: bytes) -> None:
        """Keep the service and the page."""
        self.service = service
        self.page = page

    def get(self) -> None:
        """Answer the page (a standby too: its API calls and stream go to the leader)."""
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "no-store")
        self.finish(self.page)


_Inputs = tuple[App, list[MarathonTask], list[str], QueueEntry | None]


def _same_inputs(old: _Inputs, new: _Inputs) -> bool:
    """True when an app row's inputs are the very same objects as last time (the
    facade's records are immutable: a change is a new object), so its row stands."""
    return (old[0] is new[0] and old[3] is new[3] and old[2] == new[2]
            and len(old[1]) == len(new[1])
            and all(a is b for a, b in zip(old[1], new[1], strict=True)))


def _by_app(tasks: list[MarathonTask]) -> dict[str, list[MarathonTask]]:
    out: dict[str, list[MarathonTask]] = {}
    for task in tasks:
        out.setdefault(task.app_id, []).append(task)
    return out


class AppsSummaryHandler(ApiHandler):
    """``/ui/api/apps``: apps and subgroups of one group, filtered and paged."""

    def initialize(self, service: ServiceFacade, options: dict[str, Any],  # type: ignore[override]
                   cache: dict[Any, tuple[float, str]], publisher: ChangePublisher,
                   computing: dict[Any, asyncio.Future[str]],
                   rows: dict[str, tuple[_Inputs, dict[str, Any]]]) -> None:
        """Keep the mount's caches (key -> (monotonic time, JSON text); app id -> the
        app row and what it was made of), the publisher and the computations under way."""
        super().initialize(service, options)
        self.cache = cache
        self.rows = rows
        self.publisher = publisher
        self.computing = computing

    async def get(self) -> None:
        """Answer the apps view: while pages watch, one computation per push for every page
        re-reading it; otherwise the same request within :data:`APPS_TTL` shares one."""
        uri = self.request.uri or ""
        live = self.publisher.live
        key: tuple[Any, ...] = (uri, "push", self.publisher.seq) if live else (uri, "ttl")
        hit = self.cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < (APPS_LIVE_MAX_AGE if live
                                                             else APPS_TTL):
            self.write_json_text(hit[1])
            return
        args = {name: self.get_query_argument(name) for name in self.request.query_arguments}
        try:
            filters = summaries.parse_filters(args)
        except summaries.FilterError as exc:
            raise ApiError(400, exc.message, [{"path": f"/{exc.field}",
                                               "errors": [exc.message]}]) from None
        running = self.computing.get(key)
        if running is not None:
            self.write_json_text(await asyncio.shield(running))
            return
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.computing[key] = future
        try:
            text = await self._compute(filters)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            self.computing.pop(key, None)
        future.set_result(text)
        if len(self.cache) > 256:
            self.cache.clear()
        self.cache[key] = (time.monotonic(), text)
        self.write_json_text(text)

    async def _compute(self, filters: summaries.Filters) -> str:
        service = self.service
        tasks = _by_app(service.tasks())
        queued = {entry.app.id: entry for entry in service.queue()}
        views = AppViews(service, set())
        rows = []
        known = self.rows
        seen: set[str] = set()
        for index, app in enumerate(service.list_apps(), 1):
            inputs = (app, tasks.get(app.id, []), views.deployments_of(app.id),
                      queued.get(app.id))
            seen.add(app.id)
            cached = known.get(app.id)
            if cached is not None and _same_inputs(cached[0], inputs):
                rows.append(cached[1])
            else:
                row = summaries.app_row(*inputs)
                known[app.id] = (inputs, row)
                rows.append(row)
            if index % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        for gone in [app_id for app_id in known if app_id not in seen]:
            del known[gone]
        return json.dumps(summaries.apps_page(rows, filters), separators=(",", ":"))

    def write_json_text(self, text: str) -> None:
        """Answer JSON text as it is."""
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(text)


class LinksHandler(ApiHandler):
    """``/ui/api/links``: the framework id and the leading master's UI (null: unknown)."""

    def initialize(self, service: ServiceFacade, options: dict[str, Any],  # type: ignore[override]
                   master_url: Callable[[], str | None]) -> None:
        """Keep where the master's address comes from."""
        super().initialize(service, options)
        self.master_url = master_url

    async def get(self) -> None:
        """Answer the links."""
        url = self.master_url()
        if url and "://" not in url:
            url = "http://" + url
        self.write_json({"master": url.rstrip("/") if url else None,
                         "frameworkId": self.service.info().get("frameworkId")})


def _page() -> bytes:
    with open(os.path.join(SERVICE_STATIC_DIR, "service", "index.html"), "rb") as handle:
        return handle.read()


def mount_service_ui(app: tornado.web.Application, service: ServiceFacade, *,
                     master_url: Callable[[], str | None]) -> None:
    """Add the service UI's routes to the REST API's ``app`` (ahead of its own)."""
    api_args = {"service": service, "options": OPTIONS}
    publisher = ChangePublisher(service)
    app.settings["service_ui_publisher"] = publisher
    app.add_handlers(r".*", [
        (r"/", RootRedirect),
        (r"/ui", ServicePage, {"service": service, "page": _page()}),
        (r"/ui/api/apps", AppsSummaryHandler, {**api_args, "cache": {}, "computing": {},
                                               "rows": {}, "publisher": publisher}),
        (r"/ui/api/events", ChangesHandler, {**api_args, "publisher": publisher}),
        (r"/ui/api/links", LinksHandler, {**api_args, "master_url": master_url}),
        (r"/ui/static/common/(.*)", StaticFiles, {"path": os.path.join(COMMON_STATIC_DIR,
                                                                        "common")}),
        (r"/ui/static/service/(.*)", StaticFiles, {"path": os.path.join(SERVICE_STATIC_DIR,
                                                                         "service")}),
    ])
