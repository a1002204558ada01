"""The balancer's own HTTP API (tornado): lookups, maps, state, metrics.

Owns: the handlers of ``mesoslite lb``'s API port:

- ``GET /lookup?host=NAME`` — which app a request with ``Host: NAME`` reaches on the shared
  HTTP port (``?app_id=/app``: what an ``X-Marathon-App-Id`` request reaches): the app id,
  backend, bound port, mode and servers; 404 naming the host when no app serves it;
- ``GET /_haproxy_getvhostmap`` and ``/_haproxy_getappmap`` — the routing tables as text,
  one ``name<TAB>backend`` line each, as marathon-lb answers them;
- ``GET /_haproxy_getconfig`` — the configuration haproxy runs;
- ``GET /state`` — the framework followed, the counters, the last error (why the last
  generated configuration was refused, if it was), the warnings of the last sync;
- ``GET /metrics`` — Prometheus text (reloads, refusals, syncs, events, servers);
- ``GET /health``.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from mesoslite.lb.balancer import Balancer
from mesoslite.lb.model import Service, lookup_app, lookup_host


def _service_json(service: Service) -> dict[str, Any]:
    return {"appId": service.app_id, "portIndex": service.index, "backend": service.name,
            "port": service.port, "mode": service.mode, "vhosts": list(service.vhosts),
            "servers": [{"taskId": s.task_id, "host": s.host, "port": s.port}
                        for s in service.servers]}


class _Handler(tornado.web.RequestHandler):
    def initialize(self, balancer: Balancer) -> None:
        self.balancer = balancer

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def write_text(self, text: str) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text)


class LookupHandler(_Handler):
    """``GET /lookup?host=`` or ``?app_id=``."""

    def get(self) -> None:
        """Answer the request."""
        host = self.get_query_argument("host", "")
        app_id = self.get_query_argument("app_id", "")
        if bool(host) == bool(app_id):
            self.write_json({"error": "host or app_id: expected exactly one of them",
                             "field": "host"}, 400)
            return
        services = self.balancer.services
        if host:
            if len(host) > 253:
                self.write_json({"error": "host: expected at most 253 characters",
                                 "field": "host"}, 400)
                return
            found = lookup_host(services, host)
            if found is None:
                self.write_json({"error": f"host: no app serves {host[:253]!r}",
                                 "field": "host"}, 404)
                return
            self.write_json({"host": host, **_service_json(found)})
            return
        matches = [s for s in lookup_app(services, app_id) if s.mode == "http"]
        if not matches:
            self.write_json({"error": f"app_id: no HTTP app {app_id[:200]!r} is served",
                             "field": "app_id"}, 404)
            return
        self.write_json({"appId": matches[0].app_id, **_service_json(matches[0])})


class VhostMapHandler(_Handler):
    """``GET /_haproxy_getvhostmap``."""

    def get(self) -> None:
        """Answer the request."""
        lines = [f"{vhost}\t{s.name}" for s in self.balancer.services for vhost in s.vhosts]
        self.write_text("".join(line + "\n" for line in sorted(lines)))


class AppMapHandler(_Handler):
    """``GET /_haproxy_getappmap``."""

    def get(self) -> None:
        """Answer the request."""
        seen: dict[str, str] = {}
        for s in self.balancer.services:
            if s.mode == "http":
                seen.setdefault(s.app_id, s.name)
        self.write_text("".join(f"{app}\t{name}\n" for app, name in sorted(seen.items())))


class ConfigHandler(_Handler):
    """``GET /_haproxy_getconfig``."""

    def get(self) -> None:
        """Answer the request."""
        self.write_text(self.balancer.haproxy.applied or "")


class StateHandler(_Handler):
    """``GET /state``."""

    def get(self) -> None:
        """Answer the request."""
        b = self.balancer
        self.write_json({
            "marathon": b.config.marathon, "group": b.config.group,
            "eventStreamConnected": b.connected, "events": b.events, "syncs": b.syncs,
            "syncErrors": b.sync_errors, "reloads": b.haproxy.reloads,
            "reloadsLastMinute": b.reloads_in(60.0), "configsRejected": b.haproxy.rejected,
            "haproxyFailures": b.haproxy.failures, "lastError": b.haproxy.last_error,
            "haproxyPids": b.haproxy.pids(), "warnings": b.warnings,
            "services": [_service_json(s) for s in b.services],
        })


class MetricsHandler(_Handler):
    """``GET /metrics``: Prometheus text."""

    def get(self) -> None:
        """Answer the request."""
        b = self.balancer
        metrics = [
            ("mesoslite_lb_reloads_total", "counter", b.haproxy.reloads),
            ("mesoslite_lb_configs_rejected_total", "counter", b.haproxy.rejected),
            ("mesoslite_lb_haproxy_failures_total", "counter", b.haproxy.failures),
            ("mesoslite_lb_syncs_total", "counter", b.syncs),
            ("mesoslite_lb_sync_errors_total", "counter", b.sync_errors),
            ("mesoslite_lb_events_total", "counter", b.events),
            ("mesoslite_lb_services", "gauge", len(b.services)),
            ("mesoslite_lb_servers", "gauge", sum(len(s.servers) for s in b.services)),
        ]
        self.set_header("Content-Type", "text/plain; version=0.0.4")
        self.finish("".join(f"# TYPE {name} {kind}\n{name} {value}\n"
                            for name, kind, value in metrics))


class HealthHandler(_Handler):
    """``GET /health``."""

    def get(self) -> None:
        """200 once the first configuration runs."""
        if self.balancer.haproxy.applied is None:
            self.write_json({"error": "haproxy: not running yet", "field": "haproxy"}, 503)
            return
        self.write_text("ok\n")


class NotFoundHandler(_Handler):
    """Anything else: a JSON 404."""

    def prepare(self) -> None:
        """Answer every unknown path with 404."""
        self.write_json({"error": f"no endpoint {self.request.path!r}", "field": "path"}, 404)


def start_api(balancer: Balancer, address: str, port: int) -> tuple[
        tornado.httpserver.HTTPServer, int]:
    """Serve the API on ``address:port`` (0: a free port); returns the server and its port."""
    args = {"balancer": balancer}
    app = tornado.web.Application([
        (r"/lookup", LookupHandler, args),
        (r"/_haproxy_getvhostmap", VhostMapHandler, args),
        (r"/_haproxy_getappmap", AppMapHandler, args),
        (r"/_haproxy_getconfig", ConfigHandler, args),
        (r"/state", StateHandler, args),
        (r"/metrics", MetricsHandler, args),
        (r"/health", HealthHandler, args),
        (r".*", NotFoundHandler, args),
    ])
    sockets = tornado.netutil.bind_sockets(port, address, family=socket.AF_INET)
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    return server, int(sockets[0].getsockname()[1])
