"""The haproxy configuration for a list of services (PURE).

Owns: :class:`Listeners` (where the shared listeners bind) and :func:`render_config`,
which writes, in a stable order:

- ``global``/``defaults``: ``hard-stop-after`` bounds how long a replaced haproxy
  process may keep serving old connections after a reload, an admin socket (when
  configured) hands the listening sockets to the next process (a seamless reload),
  ``option redispatch`` and ``retries`` send a refused connection to another server (a
  task that died before the balancer reloaded costs a retry, not a failed request), and
  an HTTP backend retries a GET or HEAD whose server closed without an answer
  (``retry-on``: a task killed mid-request).  Servers carry no haproxy health check: the
  framework's health checks decide who is a server;
- ``listen stats`` on the stats port: haproxy's stats page at ``/haproxy?stats`` (always
  present, so haproxy always has a listener);
- one ``frontend``/``backend`` pair per service (bind ``address:port``), with the
  service's mode, balance algorithm and, when sticky, an inserted cookie;
- ``frontend marathon_http_in`` on the shared HTTP port routing by ``Host`` to every
  service with a VHOST (and redirecting to HTTPS where asked), ``marathon_https_in`` on the
  shared HTTPS port with every service's certificate, and ``marathon_http_appid_in``
  routing by the ``X-Marathon-App-Id`` header to every HTTP service.
"""

from __future__ import annotations

import re

import attrs

from mesoslite.lb.model import Service

_APP_ID = re.compile(r"^/[A-Za-z0-9._/-]{1,500}$")


@attrs.frozen
class Listeners:
    """The address and shared ports the balancer binds."""

    bind_address: str = "127.0.0.1"
    http_port: int = 80
    https_port: int = 443
    stats_port: int = 9090
    appid_port: int = 9091
    hard_stop_after: float = 30.0
    #: haproxy's admin socket: a reload takes the listening sockets over through it
    #: (``expose-fd listeners``, ``-x``), so no connection is refused while it happens.
    admin_socket: str = ""


def _token(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", text)[:200]


def _header(listeners: Listeners) -> list[str]:
    return [
        "# Written by mesoslite lb; every change here is overwritten.",
        "global",
        "    maxconn 4096",
        f"    hard-stop-after {max(1, int(listeners.hard_stop_after))}s",
        *([f"    stats socket {listeners.admin_socket} mode 600 level admin expose-fd listeners"]
          if listeners.admin_socket else []),
        "",
        "defaults",
        "    mode tcp",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-request 10s",
        "    retries 5",
        "    option redispatch 1",
        "",
        "listen stats",
        f"    bind {listeners.bind_address}:{listeners.stats_port}",
        "    mode http",
        "    stats enable",
        "    stats uri /haproxy?stats",
        "    stats refresh 5s",
        "",
    ]


def _service(service: Service, listeners: Listeners) -> list[str]:
    lines = [
        f"# {_token(service.app_id)} port index {service.index}",
        f"frontend {service.name}",
        f"    bind {listeners.bind_address}:{service.port}",
        f"    mode {service.mode}",
        f"    default_backend {service.name}",
        "",
        f"backend {service.name}",
        f"    mode {service.mode}",
        f"    balance {service.balance}",
    ]
    if service.mode == "http":  # a request cut off by a dying task goes to another one
        lines += ["    retry-on conn-failure empty-response junk-response response-timeout",
                  "    http-request disable-l7-retry if !METH_GET"]
    sticky = service.sticky and service.mode == "http"
    if sticky:
        lines.append("    cookie mesoslite_server_id insert indirect nocache")
    for server in service.servers:
        name = _token(server.task_id)
        cookie = f" cookie {name}" if sticky else ""
        lines.append(f"    server {name} {server.host}:{server.port}{cookie}")
    return [*lines, ""]


def _acl(service: Service) -> list[str]:
    exact = [v for v in service.vhosts if not v.startswith("*.")]
    wild = [v[1:] for v in service.vhosts if v.startswith("*.")]
    lines = []
    if exact:
        lines.append(f"    acl host_{service.name} hdr(host),field(1,:) -i {' '.join(exact)}")
    if wild:
        lines.append(f"    acl host_{service.name} hdr_end(host) -i {' '.join(wild)}")
    return lines


def _vhost_frontends(services: list[Service], listeners: Listeners) -> list[str]:
    routed = [s for s in services if s.vhosts]
    if not routed:
        return []
    lines = ["frontend marathon_http_in",
             f"    bind {listeners.bind_address}:{listeners.http_port}", "    mode http"]
    for service in routed:
        lines += _acl(service)
        if service.redirect_to_https:
            lines.append(f"    redirect scheme https code 301 if host_{service.name}")
        lines.append(f"    use_backend {service.name} if host_{service.name}")
    lines.append("")
    certs = sorted({s.ssl_cert for s in routed if s.ssl_cert})
    if certs:
        crts = " ".join(f"crt {c}" for c in certs)
        lines += ["frontend marathon_https_in",
                  f"    bind {listeners.bind_address}:{listeners.https_port} ssl {crts}",
                  "    mode http"]
        for service in routed:
            lines += _acl(service)
            lines.append(f"    use_backend {service.name} if host_{service.name}")
        lines.append("")
    return lines


def _appid_frontend(services: list[Service], listeners: Listeners) -> list[str]:
    routed = [s for s in services if s.mode == "http" and _APP_ID.match(s.app_id)]
    seen: set[str] = set()
    lines = ["frontend marathon_http_appid_in",
             f"    bind {listeners.bind_address}:{listeners.appid_port}", "    mode http"]
    for service in routed:
        if service.app_id in seen:  # an app's first HTTP port answers its id
            continue
        seen.add(service.app_id)
        lines.append(f"    use_backend {service.name} if "
                     f"{{ req.hdr(x-marathon-app-id) -m str {service.app_id} }}")
    return [*lines, ""] if seen else []


def render_config(services: list[Service], listeners: Listeners | None = None) -> str:
    """The whole haproxy configuration for ``services``."""
    listeners = listeners or Listeners()
    lines = _header(listeners)
    for service in services:
        lines += _service(service, listeners)
    lines += _vhost_frontends(services, listeners)
    lines += _appid_frontend(services, listeners)
    return "\n".join(lines)
