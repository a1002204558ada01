"""The HTTP API of ``mesoslite dns``, shaped like Mesos-DNS's.

Owns: ``GET /v1/version``, ``/v1/config``, ``/v1/hosts/{host}`` (``[{"host", "ip"}]``),
``/v1/services/{service}`` (``[{"service", "host", "ip", "port"}]``, the port as text,
as Mesos-DNS writes it), and the house's ``/state`` (JSON) and ``/metrics``
(Prometheus text); :func:`make_server` puts them behind the cluster's HTTP guard.
A name that cannot be a DNS name is answered 400 naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import tornado.web

import mesoslite
from mesoslite.dns.answer import in_zone
from mesoslite.dns.names import MAX_NAME
from mesoslite.dns.server import DnsService
from mesoslite.httpguard.server import GuardedHTTPServer, server_policy

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class _Base(tornado.web.RequestHandler):
    def initialize(self, service: DnsService, state: Callable[[], dict[str, Any]]) -> None:
        self.service = service
        self.state = state

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value, indent=1))

    def name(self, text: str, field: str) -> str | None:
        """``text`` as a lower-case name without the final dot (None: answered 400)."""
        name = text.strip().lower().rstrip(".")
        if not name or len(name) > MAX_NAME or not set(name) <= _NAME_CHARS \
                or any(not part for part in name.split(".")):
            self.reply({"message": f"expected a DNS name, got {text[:80]!r}", "field": field},
                       400)
            return None
        return name

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors are JSON too."""
        self.reply({"message": self._reason, "field": ""}, status_code)


class VersionHandler(_Base):
    """``/v1/version``."""

    def get(self) -> None:
        """Who answers."""
        self.reply({"Service": "mesoslite dns", "URL": "https://mesoslite.invalid/dns",
                    "Version": mesoslite.__version__})


class ConfigHandler(_Base):
    """``/v1/config``: the settings, named as Mesos-DNS names them."""

    def get(self) -> None:
        """The config."""
        c = self.service.config
        self.reply({"Masters": [m.strip() for m in c.master.split(",")], "Domain": c.domain,
                    "Port": c.port, "HttpPort": c.http_port, "Listener": c.ip, "TTL": c.ttl,
                    "Timeout": c.timeout, "SOAMname": c.mname + ".",
                    "SOARname": c.rname + ".", "SOARefresh": 60, "SOARetry": 600,
                    "SOAExpire": 86400, "SOAMinttl": 60, "HealthyOnly": c.healthy_only,
                    "RefreshSeconds": 0, "DnsOn": True, "HttpOn": True, "ExternalOn": False,
                    "Resolvers": [], "IPSources": ["host"]})


class HostsHandler(_Base):
    """``/v1/hosts/{host}``: the A records of a name."""

    def get(self, host: str) -> None:
        """``[{"host": "name.", "ip": "..."}]`` (empty when the name has none)."""
        name = self.name(host, "host")
        if name is None:
            return
        answer = self.service.lookup(name, "A")
        self.reply([{"host": rr.name + ".", "ip": rr.data} for rr in answer.answer])


class ServicesHandler(_Base):
    """``/v1/services/{service}``: the SRV records of a name with their targets' addresses."""

    def get(self, service: str) -> None:
        """``[{"service", "host", "ip", "port"}]``, one per target address."""
        name = self.name(service, "service")
        if name is None:
            return
        records = self.service.table.records
        out = []
        if in_zone(name, self.service.config.domain):
            for srv in records.srv.get(name, ()):
                for ip in records.a.get(srv.target, ()):
                    out.append({"service": name, "host": srv.target + ".", "ip": ip,
                                "port": str(srv.port)})
        self.reply(out)


class StateHandler(_Base):
    """``/state``: whom it follows and what it publishes."""

    def get(self) -> None:
        """The state."""
        self.reply(self.state())


class MetricsHandler(_Base):
    """``/metrics``: counters in Prometheus text."""

    def get(self) -> None:
        """The counters."""
        lines = []
        for key, value in sorted(self.state()["metrics"].items()):
            metric = "mesoslite_" + key.replace("/", "_")
            lines.append(f"# TYPE {metric} gauge\n{metric} {value:g}")
        self.set_header("Content-Type", "text/plain; version=0.0.4")
        self.finish("\n".join(lines) + "\n")


def make_app(service: DnsService, state: Callable[[], dict[str, Any]]) -> tornado.web.Application:
    """The routes."""
    args = {"service": service, "state": state}
    return tornado.web.Application([
        (r"/v1/version", VersionHandler, args),
        (r"/v1/config", ConfigHandler, args),
        (r"/v1/hosts/([^/]+)", HostsHandler, args),
        (r"/v1/services/([^/]+)", ServicesHandler, args),
        (r"/state", StateHandler, args),
        (r"/metrics", MetricsHandler, args),
    ])


def make_server(service: DnsService, state: Callable[[], dict[str, Any]],
                sockets: list[Any]) -> GuardedHTTPServer:
    """The HTTP server on ``sockets``, behind the cluster's request policy."""
    server = GuardedHTTPServer(make_app(service, state), server_policy([service.config.ip]))
    server.add_sockets(sockets)
    return server
