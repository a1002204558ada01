"""The ``mesoslite dns`` process: the table, the follower and the three listeners.

Owns: :class:`DnsProcess` (start: bind DNS UDP+TCP and HTTP, then follow the master;
stop: the reverse), :func:`add_flags` and :func:`config_from_args` (the command line;
a bad value raises a ConfigError naming the flag).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
from typing import Any

import tornado.netutil

from mesoslite.dns.config import DnsConfig
from mesoslite.dns.follow import Follower, resolve_host
from mesoslite.dns.server import DnsService, Listeners, counters, start_listeners
from mesoslite.dns.table import RecordTable

log = logging.getLogger("mesoslite.dns")


class DnsProcess:
    """An authoritative DNS server for the cluster's domain, following the leading master."""

    def __init__(self, config: DnsConfig) -> None:
        """Build the parts; nothing listens before :meth:`start`."""
        self.config = config
        own_ip = config.ip if config.ip not in ("0.0.0.0", "") else None  # noqa: S104
        self.table = RecordTable(config.domain, healthy_only=config.healthy_only,
                                 resolve=functools.lru_cache(maxsize=4096)(resolve_host),
                                 own_ip=own_ip)
        self.service = DnsService(config, self.table)
        self.follower = Follower(config, self.table)
        self.listeners: Listeners | None = None
        self.http: Any = None
        self.port = 0
        self.http_port = 0

    async def start(self) -> None:
        """Listen (DNS and HTTP), then start following the master."""
        self.listeners = await start_listeners(self.service)
        self.port = self.listeners.port
        sockets = tornado.netutil.bind_sockets(self.config.http_port, self.config.ip)
        self.http_port = sockets[0].getsockname()[1]
        from mesoslite.dns.http import make_server

        self.http = make_server(self.service, self.state, sockets)
        self.follower.start()

    async def stop(self) -> None:
        """Stop following and listening."""
        await self.follower.stop()
        if self.http is not None:
            self.http.stop()
        if self.listeners is not None:
            await self.listeners.close()

    def state(self) -> dict[str, Any]:
        """``/state``: the master followed and the size of what is published."""
        table = self.table
        records = table.records
        follower = self.follower
        return {
            "domain": self.config.domain, "port": self.port, "http_port": self.http_port,
            "master": self.config.master, "leader": follower.leader,
            "connected": follower.connected, "subscriptions": follower.subscriptions,
            "serial": table.serial, "tasks": len(table.tasks),
            "published_tasks": sum(1 for t in table.tasks.values() if table.published(t)),
            "agents": len(table.agents), "frameworks": len(table.frameworks),
            "names": len(records.names),
            "metrics": counters(self.service, lambda: {
                "dns/events": float(table.events), "dns/bad_events": float(follower.bad_events),
                "dns/subscriptions": float(follower.subscriptions),
                "dns/connected": float(follower.connected),
                "dns/tasks_published": float(sum(1 for t in table.tasks.values()
                                                 if table.published(t)))}),
        }


def add_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of ``mesoslite dns`` (Mesos-DNS's names and defaults where it has them).

    ``--master``, ``--domain``, ``--ip``, ``--port`` and ``--http_port`` also come from
    ``MESOSLITE_DNS_MASTER``, ``_DOMAIN``, ``_IP``, ``_PORT`` and ``_HTTP_PORT``.
    """
    env = os.environ.get
    d = DnsConfig()
    add = parser.add_argument
    add("--master", default=env("MESOSLITE_DNS_MASTER", d.master),
        help="leading master: host:port of a master's HTTP API (a comma-separated list is "
             "tried in turn), or zk://host:2181,.../path (default %(default)s)")
    add("--domain", default=env("MESOSLITE_DNS_DOMAIN", d.domain),
        help="domain served (default %(default)s)")
    add("--ip", default=env("MESOSLITE_DNS_IP", d.ip), help="listen address (default %(default)s)")
    add("--port", default=env("MESOSLITE_DNS_PORT", str(d.port)),
        help="DNS port, UDP and TCP (default %(default)s; 0: a free port)")
    add("--http_port", "--http-port", default=env("MESOSLITE_DNS_HTTP_PORT", str(d.http_port)),
        help="port of the HTTP API /v1/... (default %(default)s; 0: a free port)")
    add("--ttl", default=str(d.ttl), help="TTL of A and SRV records, seconds (default %(default)s)")
    add("--healthy_only", "--healthy-only", action="store_true",
        help="publish only tasks whose latest status says they pass their health checks")
    add("--timeout", default=str(d.timeout),
        help="idle TCP connections are closed after this many seconds (default %(default)s)")
    add("--max_tcp_connections", "--max-tcp-connections", default=str(d.max_tcp_connections),
        help="most TCP connections at once (default %(default)s)")
    add("--soa_mname", "--soa-mname", default="", help="SOA primary name (default ns1.DOMAIN)")
    add("--soa_rname", "--soa-rname", default="",
        help="SOA mailbox (default root.ns1.DOMAIN)")
    add("--max_backoff", "--max-backoff", default=str(d.max_backoff),
        help="longest wait between attempts to reach the leader, seconds (default "
             "%(default)s)")


def config_from_args(args: argparse.Namespace) -> DnsConfig:
    """The config the flags give (ConfigError naming a bad flag)."""
    from mesoslite.config_checks import ConfigError

    def number(name: str, kind: type) -> Any:
        text = getattr(args, name)
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(name, "an integer" if kind is int else "a number",
                              text) from None

    from mesoslite.httpguard.client import basic_authorization

    try:
        authorization = basic_authorization() or ""
    except ValueError as exc:
        raise ConfigError("MESOSLITE_PRINCIPAL", "a principal with its secret", "(set)",
                          detail=str(exc)) from None
    return DnsConfig(
        authorization=authorization,
        master=args.master, domain=args.domain, ip=args.ip, port=number("port", int),
        http_port=number("http_port", int), ttl=number("ttl", int),
        healthy_only=bool(args.healthy_only), timeout=number("timeout", float),
        max_tcp_connections=number("max_tcp_connections", int),
        soa_mname=args.soa_mname, soa_rname=args.soa_rname,
        max_backoff=number("max_backoff", float))
