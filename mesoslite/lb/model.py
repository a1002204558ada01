"""What the load balancer serves, from the framework's apps and their labels (PURE).

Owns: :func:`services_from_apps`, turning ``GET /v2/apps?embed=apps.tasks&
embed=apps.readiness`` into :class:`Service` values (one per service port of each app in
the balancer's group), with the marathon-lb labels users rely on, read per service port
``n``:

``HAPROXY_GROUP``
    comma list of groups; an app is served when ``--group`` is listed (``*`` serves all).
``HAPROXY_{n}_VHOST``
    comma list of host names routed on the shared HTTP port (makes the port ``http``).
``HAPROXY_{n}_PORT``
    the port to bind instead of the app's service port.
``HAPROXY_{n}_MODE``
    ``tcp`` or ``http`` (default ``tcp``; ``http`` with a VHOST).
``HAPROXY_{n}_BALANCE``
    the balance algorithm: roundrobin (default), leastconn, source, first, static-rr, uri.
``HAPROXY_{n}_STICKY``
    ``true``: a cookie pins a client to a server (HTTP).
``HAPROXY_{n}_REDIRECT_TO_HTTPS``
    ``true``: plain-HTTP requests for the VHOST are redirected to HTTPS.
``HAPROXY_{n}_SSL_CERT``
    a PEM file (absolute path) for the VHOST on the shared HTTPS port.

A task is a server when it is ``TASK_RUNNING``, passes every health check of an app that
has them, and is not reported not ready by a readiness check; a task being killed
(``TASK_KILLING``) is no longer a server, so a reload drains it while it finishes its
kill grace period.  Bad input never raises: an app, label or task that does not fit is
skipped or defaulted with a warning naming the field.  Output is sorted, so equal input
renders an identical configuration.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

#: Names and addresses that may appear in the configuration (no spaces, no quotes).
SAFE_HOST = re.compile(r"^[A-Za-z0-9._:-]{1,253}$")
#: A virtual host name: letters, digits, dots, dashes; a leading ``*.`` wildcard.
_VHOST = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_CERT = re.compile(r"^/[A-Za-z0-9._/-]{1,4000}$")
MODES = ("tcp", "http")
BALANCES = ("roundrobin", "leastconn", "source", "first", "static-rr", "uri")
_TRUE = ("true", "1", "yes")


@attrs.frozen
class Server:
    """One task behind a service port."""

    task_id: str
    host: str
    port: int


@attrs.frozen
class Service:
    """One service port of one app and the servers behind it."""

    app_id: str
    index: int
    port: int
    mode: str = "tcp"
    balance: str = "roundrobin"
    vhosts: tuple[str, ...] = ()
    sticky: bool = False
    redirect_to_https: bool = False
    ssl_cert: str = ""
    servers: tuple[Server, ...] = ()

    @property
    def name(self) -> str:
        """The frontend/backend name, e.g. ``web_10001`` for ``/web`` on 10001."""
        return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', self.app_id.strip('/'))}_{self.port}"


def _port(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"{where} must be an integer port 0-65535, got {value!r}")
    return value


def service_ports(app: dict[str, Any]) -> list[int]:
    """The app's service ports (0 where none is assigned): portMappings, portDefinitions, ports."""
    container = app.get("container") or {}
    mappings = container.get("portMappings") if isinstance(container, dict) else None
    if mappings:
        return [_port(m.get("servicePort", 0), f"container.portMappings[{i}].servicePort")
                for i, m in enumerate(mappings)]
    definitions = app.get("portDefinitions")
    if definitions:
        return [_port(d.get("port", 0), f"portDefinitions[{i}].port")
                for i, d in enumerate(definitions)]
    return [_port(p, f"ports[{i}]") for i, p in enumerate(app.get("ports") or [])]


def labels_of(app: dict[str, Any]) -> dict[str, Any]:
    """The app's labels (TypeError naming the field when they are not an object)."""
    labels = app.get("labels") or {}
    if not isinstance(labels, dict):
        raise TypeError(f"labels must be an object, got {type(labels).__name__}")
    return labels


def in_group(app: dict[str, Any], group: str) -> bool:
    """True for ``*``, or when the app's HAPROXY_GROUP label lists ``group``."""
    if group == "*":
        return True
    label = labels_of(app).get("HAPROXY_GROUP", "")
    return isinstance(label, str) and group in [g.strip() for g in label.split(",")]


def _not_ready(app: dict[str, Any]) -> set[str]:
    results = app.get("readinessCheckResults") or []
    if not isinstance(results, list):
        return set()
    return {str(r.get("taskId")) for r in results
            if isinstance(r, dict) and r.get("ready") is not True}


def task_serves(task: dict[str, Any], health_checked: bool, not_ready: set[str]) -> bool:
    """Running, alive in every health result of a checked app, and not reported not ready."""
    if task.get("state") != "TASK_RUNNING" or str(task.get("id")) in not_ready:
        return False
    if not health_checked:
        return True
    results = task.get("healthCheckResults") or []
    return bool(results) and all(isinstance(r, dict) and r.get("alive") is True
                                 for r in results)


def services_from_apps(apps: Any, group: str = "*") -> tuple[list[Service], list[str]]:
    """The services of ``apps`` for ``group``, plus a warning for everything skipped."""
    if not isinstance(apps, list):
        return [], [f"apps must be a list, got {type(apps).__name__}"]
    services: list[Service] = []
    warnings: list[str] = []
    taken: dict[int, str] = {}
    for app in apps:
        if not isinstance(app, dict) or not isinstance(app.get("id"), str):
            warnings.append(f"skipped an app without a string id: {str(app)[:80]}")
            continue
        try:
            if in_group(app, group):
                services += _app_services(app, taken, warnings)
        except (ValueError, AttributeError, TypeError, KeyError) as exc:
            warnings.append(f"app {app['id']}: {exc}; skipped")
    return sorted(services, key=lambda s: (s.port, s.app_id)), warnings


def _label(labels: dict[str, Any], index: int, name: str) -> str:
    value = labels.get(f"HAPROXY_{index}_{name}", "")
    return value.strip() if isinstance(value, str) else ""


def _options(app_id: str, index: int, labels: dict[str, Any],
             warnings: list[str]) -> dict[str, Any]:
    """The per-port label values, validated (a bad one is warned about and defaulted)."""
    def warn(name: str, expected: str, value: str) -> None:
        warnings.append(f"app {app_id}: label HAPROXY_{index}_{name}: expected {expected}, "
                        f"got {value[:60]!r}; ignored")

    vhosts = []
    for host in filter(None, (h.strip() for h in _label(labels, index, "VHOST").split(","))):
        if _VHOST.match(host):
            vhosts.append(host.lower())
        else:
            warn("VHOST", "host names separated by commas", host)
    mode = _label(labels, index, "MODE") or ("http" if vhosts else "tcp")
    if mode not in MODES:
        warn("MODE", " or ".join(MODES), mode)
        mode = "http" if vhosts else "tcp"
    if vhosts and mode != "http":
        warn("MODE", "http for an app with a VHOST", mode)
        mode = "http"
    balance = _label(labels, index, "BALANCE") or "roundrobin"
    if balance not in BALANCES:
        warn("BALANCE", ", ".join(BALANCES), balance)
        balance = "roundrobin"
    cert = _label(labels, index, "SSL_CERT")
    if cert and not _CERT.match(cert):
        warn("SSL_CERT", "an absolute path to a PEM file", cert)
        cert = ""
    return {"mode": mode, "balance": balance, "vhosts": tuple(sorted(vhosts)),
            "sticky": _label(labels, index, "STICKY").lower() in _TRUE,
            "redirect_to_https": _label(labels, index, "REDIRECT_TO_HTTPS").lower() in _TRUE,
            "ssl_cert": cert}


def _bind_port(app_id: str, index: int, labels: dict[str, Any], service_port: int,
               warnings: list[str]) -> int:
    text = _label(labels, index, "PORT")
    if not text:
        return service_port
    if text.isdigit() and 0 < int(text) <= 65535:
        return int(text)
    warnings.append(f"app {app_id}: label HAPROXY_{index}_PORT: expected a port 1-65535, "
                    f"got {text[:20]!r}; using the service port")
    return service_port


def _app_services(app: dict[str, Any], taken: dict[int, str],
                  warnings: list[str]) -> list[Service]:
    """The services of one app (raises on a malformed app; ``taken`` gets its ports)."""
    app_id, services = app["id"], []
    labels = labels_of(app)
    checked = bool(app.get("healthChecks"))
    not_ready = _not_ready(app)
    tasks = [t for t in app.get("tasks") or [] if isinstance(t, dict)
             and task_serves(t, checked, not_ready)]
    for index, service_port in enumerate(service_ports(app)):
        port = _bind_port(app_id, index, labels, service_port, warnings)
        if port == 0:
            continue
        if port in taken:
            warnings.append(f"app {app_id}: port {port} already used by {taken[port]}; "
                            "skipped")
            continue
        taken[port] = app_id
        servers = _servers(tasks, index, warnings)
        services.append(Service(app_id, index, port, servers=servers,
                                **_options(app_id, index, labels, warnings)))
    return services


def _servers(tasks: list[dict[str, Any]], index: int, warnings: list[str]) -> tuple[Server, ...]:
    servers = []
    for task in tasks:
        host, task_ports = task.get("host"), task.get("ports") or []
        try:
            port = _port(task_ports[index], f"ports[{index}]")
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            warnings.append(f"task {task.get('id')!r}: {exc}; skipped")
            continue
        if port == 0:
            warnings.append(f"task {task.get('id')!r}: ports[{index}] is 0; skipped")
            continue
        if not isinstance(host, str) or not SAFE_HOST.match(host):
            warnings.append(f"task {task.get('id')!r}: host must be a hostname or address, "
                            f"got {str(host)[:80]!r}; skipped")
            continue
        servers.append(Server(str(task.get("id")), host, port))
    return tuple(sorted(servers, key=lambda s: s.task_id))


def lookup_host(services: list[Service], host: str) -> Service | None:
    """The service a request with ``Host: host`` reaches on the shared HTTP port."""
    name = host.split(":", 1)[0].strip().lower()
    for service in services:
        if name in service.vhosts:
            return service
    for service in services:  # wildcards after exact names, as haproxy's ACL order does
        for vhost in service.vhosts:
            if vhost.startswith("*.") and name.endswith(vhost[1:]):
                return service
    return None


def lookup_app(services: list[Service], app_id: str) -> list[Service]:
    """The services of app ``app_id`` (what an ``X-Marathon-App-Id`` request reaches)."""
    wanted = "/" + app_id.strip("/")
    return [s for s in services if s.app_id == wanted]
