"""The Marathon-style REST API v2 over HTTP (tornado).

Owns: :func:`make_app` (every route of Marathon's API v2 on a
:class:`~frameworks.marathon.facade.ServiceFacade`), the system and
deployment/queue handlers, and :func:`start_http_server`.  The app and task
routes live in :mod:`.apps`, groups in :mod:`.groups`, the event stream in
:mod:`.event_stream`, the shared handler base in :mod:`.base`.

Paths are normalised before routing (``//`` collapses, a trailing ``/`` is
dropped), so ``/v2/apps//grp/web`` is ``/v2/apps/grp/web``.  App ids may have
several segments: ``/v2/apps/a/b/tasks`` is the tasks of ``/a/b`` and
``/v2/apps/a/b/versions/{v}`` a version of ``/a/b``, as in Marathon, so an app
whose last segment is ``tasks``, ``versions`` or ``restart`` can only be
reached through the list routes (or ``/v2/apps/<group>/*``).

A standby (``service.is_leader`` false) answers ``/ping``, ``/v2/info``,
``/v2/leader``, ``/metrics`` and ``/metrics/prometheus`` itself, redirects ``/v2/events`` (302) and
forwards everything else to the leader, relaying status, headers and body;
503 while no leader is known.
"""

from __future__ import annotations

import re
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.netutil
import tornado.web

from frameworks.marathon.api.apps import (
    AppHandler,
    AppRestartHandler,
    AppsHandler,
    AppTaskHandler,
    AppTasksHandler,
    AppVersionHandler,
    AppVersionsHandler,
    TaskListHandler,
    TasksDeleteHandler,
)
from frameworks.marathon.api.base import ApiError, ApiHandler, deployment_result
from frameworks.marathon.api.event_stream import EventStreamHandler
from frameworks.marathon.api.groups import GroupsHandler
from frameworks.marathon.facade import ServiceFacade
from frameworks.marathon.wire.app_json import render_app
from frameworks.marathon.wire.deployment_json import render_deployment
from frameworks.marathon.wire.prometheus import HTTP_METRIC
from frameworks.marathon.wire.render import queue_entry_json
from mesoslite.httpguard.server import GuardedHTTPServer, server_policy
from mesoslite.promtext import RequestTimings, RouteTable

#: Default largest request body (bytes).
MAX_BODY_BYTES = 1024 * 1024
_SLASHES = re.compile(r"/{2,}")


class InfoHandler(ApiHandler):
    """``GET /v2/info``."""

    LOCAL = True

    async def get(self) -> None:
        """Name, version, leadership, framework id and the configs."""
        self.write_json(self.service.info())


class LeaderHandler(ApiHandler):
    """``/v2/leader``: who leads (GET), give up leadership (DELETE)."""

    LOCAL = True

    async def get(self) -> None:
        """``{"leader": "host:port"}``, 404 when no leader is known."""
        leader = self.service.leader_address()
        if not leader:
            raise ApiError(404, "There is no leader")
        self.write_json({"leader": leader})

    async def delete(self) -> None:
        """Abdicate when leading (``{"message": ...}``); 404 on a standby."""
        if not self.service.is_leader:
            raise ApiError(404, "There is no leader")
        await self.service.abdicate()
        self.write_json({"message": "Leadership abdicated"})


class PingHandler(ApiHandler):
    """``GET /ping``: ``pong``."""

    LOCAL = True

    async def get(self) -> None:
        """Answer ``pong`` as text."""
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "must-revalidate,no-cache,no-store")
        self.finish("pong\n")

    async def head(self) -> None:
        """HEAD /ping: the status alone."""
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish()


class MetricsHandler(ApiHandler):
    """``GET /metrics``: the service's metrics as JSON."""

    LOCAL = True

    async def get(self) -> None:
        """Counters, gauges and timers."""
        self.write_json(self.service.metrics())


class PrometheusMetricsHandler(ApiHandler):
    """``GET /metrics/prometheus``: the metrics in Prometheus text (as Marathon 1.7+)."""

    LOCAL = True

    async def get(self) -> None:
        """Gauges, counters, tasks by state and the histograms."""
        timings = getattr(self.application, "timings", None)
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(self.service.metrics_prometheus()
                    + (timings.text() if isinstance(timings, RequestTimings) else ""))


class DeploymentsHandler(ApiHandler):
    """``GET /v2/deployments``: a bare array of running deployments."""

    async def get(self) -> None:
        """List deployments."""
        self.write_json([render_deployment(p) for p in self.service.deployments()])


class DeploymentHandler(ApiHandler):
    """``DELETE /v2/deployments/{id}``: roll back (or, with ``force``, just stop)."""

    async def delete(self, deployment_id: str) -> None:
        """The rollback deployment, or 202 when forced."""
        force = self.bool_arg("force")
        plan = await self.service.cancel_deployment(deployment_id, force=force)
        if plan is None:
            self.write_json({}, 202)
            return
        deployment_result(self, plan)


class QueueHandler(ApiHandler):
    """``GET /v2/queue``: apps waiting for launches."""

    async def get(self) -> None:
        """``{"queue": [...]}``."""
        self.write_json({"queue": [queue_entry_json(e, render_app(e.app))
                                   for e in self.service.queue()]})


class QueueDelayHandler(ApiHandler):
    """``DELETE /v2/queue/{id}/delay``: reset the app's launch backoff (204)."""

    async def delete(self, raw_id: str) -> None:
        """Reset the delay."""
        self.service.reset_delay("/" + "/".join(p for p in raw_id.split("/") if p))
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()


class UnknownPathHandler(ApiHandler):
    """Every unknown path: 404 JSON (no proxying: the path is wrong everywhere)."""

    LOCAL = True

    def prepare(self) -> None:  # type: ignore[override]
        """Answer 404 whatever the method."""
        raise ApiError(404, f"Not found: {self.request.path[:200]}")


class MarathonApplication(tornado.web.Application):
    """A tornado Application that normalises request paths before routing.

    It times every request by route pattern (``timings``, for ``/metrics/prometheus``).
    """

    timings: RequestTimings

    def add_handlers(self, host_pattern: str, host_handlers: Any) -> None:
        """Add routes (and label their requests by their patterns)."""
        super().add_handlers(host_pattern, host_handlers)
        if hasattr(self, "timings"):
            self.timings.routes.add(host_handlers)

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        """Count the request's duration, then log it as tornado does."""
        if hasattr(self, "timings"):
            self.timings.observe_handler(handler)
        super().log_request(handler)

    # (The return type is tornado's own: private to tornado.web, but an override must match.)
    def find_handler(self, request: tornado.httputil.HTTPServerRequest,
                     **kwargs: Any) -> tornado.web._HandlerDelegate:
        """Collapse ``//`` and drop a trailing ``/`` before the routes see the path."""
        path = _SLASHES.sub("/", request.path or "/")
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/") or "/"
        request.path = path
        return super().find_handler(request, **kwargs)


def make_app(service: ServiceFacade, *, max_body_bytes: int = MAX_BODY_BYTES,
             keepalive_seconds: float = 15.0, proxy_timeout_seconds: float = 30.0,
             event_write_timeout_seconds: float = 60.0,
             debug: bool = False) -> tornado.web.Application:
    """The REST API v2 on ``service``.

    ``max_body_bytes``: larger bodies get 413.  ``keepalive_seconds``: the
    event stream's ``: ping`` interval.  ``proxy_timeout_seconds``: how long
    a standby waits for the leader's answer to a forwarded request.
    ``event_write_timeout_seconds``: an event-stream client that takes no data
    for this long is disconnected.
    """
    options = {"max_body_bytes": max_body_bytes, "keepalive_seconds": keepalive_seconds,
               "proxy_timeout_seconds": proxy_timeout_seconds,
               "event_write_timeout_seconds": event_write_timeout_seconds}
    for name, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"make_app: {name} must be a positive number, got {value!r}")
    args = {"service": service, "options": options}
    routes: list[tuple[str, type[tornado.web.RequestHandler]]] = [
        (r"/ping", PingHandler),
        (r"/metrics", MetricsHandler),
        (r"/metrics/prometheus", PrometheusMetricsHandler),
        (r"/v2/info", InfoHandler),
        (r"/v2/leader", LeaderHandler),
        (r"/v2/events", EventStreamHandler),
        (r"/v2/apps", AppsHandler),
        (r"/v2/apps/(.+)/restart", AppRestartHandler),
        (r"/v2/apps/(.+)/tasks/([^/]+)", AppTaskHandler),
        (r"/v2/apps/(.+)/tasks", AppTasksHandler),
        (r"/v2/apps/(.+)/versions/([^/]+)", AppVersionHandler),
        (r"/v2/apps/(.+)/versions", AppVersionsHandler),
        (r"/v2/apps/(.+)", AppHandler),
        (r"/v2/tasks", TaskListHandler),
        (r"/v2/tasks/delete", TasksDeleteHandler),
        (r"/v2/deployments", DeploymentsHandler),
        (r"/v2/deployments/([^/]+)", DeploymentHandler),
        (r"/v2/queue", QueueHandler),
        (r"/v2/queue/(.+)/delay", QueueDelayHandler),
        (r"/v2/groups", GroupsHandler),
        (r"/v2/groups/(.+)", GroupsHandler),
    ]
    app = MarathonApplication(
        [(pattern, handler, args) for pattern, handler in routes],
        default_handler_class=UnknownPathHandler, default_handler_args=args,
        debug=debug, serve_traceback=False, compress_response=False)
    app.timings = RequestTimings(HTTP_METRIC, RouteTable(routes))
    return app


def start_http_server(app: tornado.web.Application, *, host: str = "127.0.0.1",
                      port: int = 0, max_body_bytes: int = MAX_BODY_BYTES,
                      ) -> tuple[tornado.httpserver.HTTPServer, int]:
    """Serve ``app`` on ``host:port`` (0: any free port); returns the server and its port.

    Bodies up to 4 × ``max_body_bytes`` are read so that the API can answer 413
    with a JSON message; beyond that the connection is dropped.
    """
    server = GuardedHTTPServer(app, server_policy([host]), max_body_size=4 * max_body_bytes,
                               xheaders=False)
    sockets = tornado.netutil.bind_sockets(port, address=host)
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[1]
