#!/usr/bin/env python3
"""marathon_haproxy: keep an haproxy in step with the apps of a Marathon-compatible framework.

Usage::

    python examples/service_discovery/marathon_haproxy.py \\
        --marathon http://127.0.0.1:8080 \\
        --haproxy-config /some/dir/haproxy.cfg --pid-file /some/dir/haproxy.pid \\
        [--group external] [--haproxy-bin haproxy] [--bind-address 127.0.0.1]

It uses nothing but Marathon's public REST API, the way marathon-lb does:

* it subscribes to ``GET /v2/events`` (server-sent events) for
  ``api_post_event``, ``status_update_event`` and ``health_status_changed_event``,
  follows one redirect (a standby points at the leader), reconnects with a
  growing backoff, and also after 300 s without a byte (the server sends
  keep-alive comments, so silence means a dead connection);
* after each burst of events (debounced) and after every (re)connection it
  re-reads ``GET /v2/apps?embed=apps.tasks``;
* it renders one haproxy ``frontend``/``backend`` pair per service port of
  each app: ``bind <bind-address>:<servicePort>``, and one ``server`` per task
  that is ``TASK_RUNNING`` and, when the app has health checks, reported alive;
* it writes the configuration atomically and, only when its text changed,
  checks it with ``haproxy -c`` and soft-reloads haproxy
  (``haproxy -D -p PIDFILE -f CFG -sf OLDPID``: the new process takes over the
  ports, the old one finishes its connections and exits).  With no service
  left it soft-stops haproxy (haproxy refuses to run without a listener).

Service ports come from ``container.portMappings[].servicePort``, else
``portDefinitions[].port``, else the legacy ``ports``.  Labels read per app:
``HAPROXY_GROUP`` (comma-separated groups; with ``--group`` only apps in that
group are served, ``--group '*'`` or no flag serves every app) and
``HAPROXY_{n}_MODE`` (``tcp``, the default, or ``http``) for service port n.

haproxy keeps running when this script stops, so traffic keeps flowing while
it restarts.  Only the standard library is used.  Ctrl-C or SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("marathon_haproxy")

#: The event types that can change what haproxy should route to.
EVENT_TYPES = ("api_post_event", "status_update_event", "health_status_changed_event")
#: Seconds without a byte on the event stream after which it is reopened.
SILENCE_SECONDS = 300.0
#: Names and addresses that may appear in the configuration (no spaces, no quotes).
_SAFE_HOST = re.compile(r"^[A-Za-z0-9._:-]{1,253}$")
_MODES = ("tcp", "http")


# ---------------------------------------------------------------- pure part: apps -> config


@dataclass(frozen=True)
class Service:
    """One service port of one app and the task addresses behind it."""

    app_id: str
    service_port: int
    mode: str
    servers: tuple[tuple[str, str, int], ...]  # (task id, host, port), sorted

    @property
    def name(self) -> str:
        """The frontend/backend name, e.g. ``web_10001`` for ``/web`` on 10001."""
        return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', self.app_id.strip('/'))}_{self.service_port}"


def _port(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"{where} must be an integer port 0-65535, got {value!r}")
    return value


def service_ports(app: dict[str, Any]) -> list[int]:
    """The app's service ports (0 where none is assigned), as marathon-lb finds them."""
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
    """The app's labels (raises TypeError naming the field when they are not an object)."""
    labels = app.get("labels") or {}
    if not isinstance(labels, dict):
        raise TypeError(f"labels must be an object, got {type(labels).__name__}")
    return labels


def in_group(app: dict[str, Any], group: str | None) -> bool:
    """True when ``group`` is unset or ``*``, or listed in the app's HAPROXY_GROUP label."""
    if group in (None, "*"):
        return True
    label = labels_of(app).get("HAPROXY_GROUP", "")
    return isinstance(label, str) and group in [g.strip() for g in label.split(",")]


def task_ready(task: dict[str, Any], health_checked: bool) -> bool:
    """A task takes traffic when running and, if the app checks health, alive in every result."""
    if task.get("state") != "TASK_RUNNING":
        return False
    if not health_checked:
        return True
    results = task.get("healthCheckResults") or []
    return bool(results) and all(isinstance(r, dict) and r.get("alive") is True
                                 for r in results)


def services_from_apps(apps: Any, group: str | None = None) -> tuple[list[Service], list[str]]:
    """Turn ``/v2/apps?embed=apps.tasks``'s ``apps`` into services, plus a warning per skip.

    Bad input never raises: an app or task that does not fit is skipped with a
    warning naming the field.  The result is sorted, so equal input gives
    equal output (and an identical haproxy configuration).
    """
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
    return sorted(services, key=lambda s: s.service_port), warnings


def _app_services(app: dict[str, Any], taken: dict[int, str],
                  warnings: list[str]) -> list[Service]:
    """The services of one app (raises on a malformed app; ``taken`` gets its ports)."""
    app_id, services = app["id"], []
    ports = service_ports(app)
    labels = labels_of(app)
    checked = bool(app.get("healthChecks"))
    tasks = [t for t in app.get("tasks") or [] if isinstance(t, dict)]
    for index, service_port in enumerate(ports):
        if service_port == 0:
            continue
        if service_port in taken:
            warnings.append(f"app {app_id}: servicePort {service_port} already used by "
                            f"{taken[service_port]}; skipped")
            continue
        mode = labels.get(f"HAPROXY_{index}_MODE", "tcp")
        if mode not in _MODES:
            warnings.append(f"app {app_id}: label HAPROXY_{index}_MODE must be one of "
                            f"{_MODES}, got {str(mode)[:40]!r}; using tcp")
            mode = "tcp"
        servers = []
        for task in tasks:
            if not task_ready(task, checked):
                continue
            host, task_ports = task.get("host"), task.get("ports") or []
            try:
                port = _port(task_ports[index], f"ports[{index}]")
            except (IndexError, KeyError, TypeError, ValueError) as exc:
                warnings.append(f"task {task.get('id')!r}: {exc}; skipped")
                continue
            if port == 0:
                warnings.append(f"task {task.get('id')!r}: ports[{index}] is 0; skipped")
                continue
            if not isinstance(host, str) or not _SAFE_HOST.match(host):
                warnings.append(f"task {task.get('id')!r}: host must be a hostname or "
                                f"address, got {str(host)[:80]!r}; skipped")
                continue
            servers.append((str(task.get("id")), host, port))
        taken[service_port] = app_id
        services.append(Service(app_id, service_port, mode, tuple(sorted(servers))))
    return services


def render_config(services: list[Service], bind_address: str = "127.0.0.1") -> str:
    """The whole haproxy configuration for ``services`` (no listener when the list is empty)."""
    lines = [
        "# Written by marathon_haproxy.py; every change here is overwritten.",
        "global",
        "    maxconn 4096",
        "",
        "defaults",
        "    mode tcp",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    retries 2",
        "    option redispatch 1",  # a refused connection is retried on another server
        "",
    ]
    for service in services:
        lines += [
            f"# {_comment(service.app_id)} service port {service.service_port}",
            f"frontend {service.name}",
            f"    bind {bind_address}:{service.service_port}",
            f"    mode {service.mode}",
            f"    default_backend {service.name}",
            "",
            f"backend {service.name}",
            f"    mode {service.mode}",
            "    balance roundrobin",
        ]
        for number, (task_id, host, port) in enumerate(service.servers):
            lines.append(f"    server s{number} {host}:{port}  # {_comment(task_id)}")
        lines.append("")
    return "\n".join(lines)


def _comment(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", text)[:200]


# ---------------------------------------------------------------- haproxy control


class Haproxy:
    """Writes the configuration and starts, soft-reloads or soft-stops one haproxy."""

    def __init__(self, binary: str, config: Path, pid_file: Path) -> None:
        self.binary, self.config, self.pid_file = binary, config, pid_file
        self._applied: str | None = None
        if self.pids() and config.exists():  # already serving this file: nothing to redo
            self._applied = config.read_text()

    def pids(self) -> list[int]:
        """The pids in the pid file that are still alive."""
        try:
            candidates = [int(p) for p in self.pid_file.read_text().split()]
        except (OSError, ValueError):
            return []
        alive = []
        for pid in candidates:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
            except PermissionError:
                alive.append(pid)
        return alive

    def apply(self, text: str, empty: bool) -> bool:
        """Make haproxy serve ``text``; True when something was (re)started or stopped."""
        if text == self._applied and (empty or self.pids()):
            return False  # unchanged, and haproxy still runs
        if not empty and not self._check(text):
            return False
        _write_atomically(self.config, text)
        old = self.pids()
        if empty:
            for pid in old:  # soft stop: close the listeners, let connections finish
                os.kill(pid, signal.SIGUSR1)
            self.pid_file.unlink(missing_ok=True)
            if old:
                log.info("no service left: haproxy stopped (pids %s)", old)
        else:
            argv = [self.binary, "-D", "-p", str(self.pid_file), "-f", str(self.config)]
            if old:
                argv += ["-sf", *map(str, old)]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            if done.returncode != 0:
                log.error("haproxy failed to start (exit %s): %s", done.returncode,
                          done.stderr.strip()[-2000:])
                return False
            log.info("haproxy %s (pids %s)", "reloaded" if old else "started", self.pids())
        self._applied = text
        return True

    def _check(self, text: str) -> bool:
        candidate = self.config.with_name(self.config.name + ".check")
        candidate.write_text(text)
        try:
            done = subprocess.run([self.binary, "-c", "-q", "-f", str(candidate)],
                                  capture_output=True, text=True, timeout=30, check=False)
        finally:
            candidate.unlink(missing_ok=True)
        if done.returncode != 0:
            log.error("new haproxy configuration rejected, keeping the old one: %s",
                      (done.stdout + done.stderr).strip()[-2000:])
        return done.returncode == 0


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


# ---------------------------------------------------------------- Marathon client


def fetch_apps(marathon: str, timeout: float = 10.0) -> Any:
    """``GET /v2/apps?embed=apps.tasks`` and return its ``apps`` list."""
    url = f"{marathon.rstrip('/')}/v2/apps?embed=apps.tasks"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = json.loads(response.read())
    if not isinstance(body, dict) or "apps" not in body:
        raise ValueError(f"GET {url}: expected an object with 'apps', got {str(body)[:80]}")
    return body["apps"]


class EventStream:
    """Reads Marathon's SSE stream and calls ``on_event`` (and ``on_connect``) for each."""

    def __init__(self, marathon: str, on_connect: Any, on_event: Any,
                 silence: float = SILENCE_SECONDS) -> None:
        query = urllib.parse.urlencode([("event_type", t) for t in EVENT_TYPES])
        self.url = f"{marathon.rstrip('/')}/v2/events?{query}"
        self.on_connect, self.on_event, self.silence = on_connect, on_event, silence
        self.connected = False

    def run_forever(self, stop: threading.Event) -> None:
        """Stream, and reconnect with a backoff (1 s doubling to 30 s) when the stream ends."""
        backoff = 1.0
        while not stop.is_set():
            self.connected = False
            try:
                self._stream()
                problem = "ended"
            except (OSError, http.client.HTTPException, ValueError) as exc:
                problem = str(exc) or type(exc).__name__
            if self.connected:  # it worked for a while: start the backoff afresh
                backoff = 1.0
            log.warning("event stream: %s; reconnecting in %.0f s", problem, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)

    def _open(self, url: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        parts = urllib.parse.urlsplit(url)
        kind = http.client.HTTPSConnection if parts.scheme == "https" else \
            http.client.HTTPConnection
        conn = kind(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(self.silence)  # a read waits at most this long for a byte
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path, headers={"Accept": "text/event-stream"})
        return conn, conn.getresponse()

    def _stream(self) -> None:
        conn, response = self._open(self.url)
        try:
            if response.status in (301, 302, 303, 307, 308):  # a standby: follow once
                location = response.getheader("Location") or ""
                conn.close()
                log.info("event stream redirected to %s", location)
                conn, response = self._open(urllib.parse.urljoin(self.url, location))
            if response.status != 200:
                raise ValueError(f"GET /v2/events answered {response.status} {response.reason}")
            log.info("event stream connected")
            self.connected = True
            self.on_connect()
            kind, data = "message", []
            while True:
                raw = response.readline(1 << 20)
                if not raw:
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith(":"):
                    continue  # keep-alive comment
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif line == "" and data:
                    self._dispatch(kind, "\n".join(data))
                    kind, data = "message", []
        finally:
            conn.close()

    def _dispatch(self, kind: str, data: str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            log.warning("event %s: data is not JSON: %r", kind, data[:80])
            return
        if not isinstance(event, dict) or not isinstance(event.get("eventType"), str):
            log.warning("event %s: data must be an object with a string eventType", kind)
            return
        self.on_event(event)


# ---------------------------------------------------------------- the bridge


class Bridge:
    """Refetches the apps when told to (debounced) and hands the config to haproxy."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.haproxy = Haproxy(args.haproxy_bin, Path(args.haproxy_config), Path(args.pid_file))
        self.dirty = threading.Event()
        self.stop = threading.Event()

    def on_event(self, event: dict[str, Any]) -> None:
        """Any subscribed event may change the routing: schedule a refetch."""
        log.debug("event %s", event.get("eventType"))
        self.dirty.set()

    def sync(self) -> None:
        """Refetch the apps and apply the configuration they give."""
        apps = fetch_apps(self.args.marathon)
        services, warnings = services_from_apps(apps, self.args.group)
        for warning in warnings:
            log.warning("%s", warning)
        text = render_config(services, self.args.bind_address)
        if self.haproxy.apply(text, empty=not services):
            log.info("%d services, %d servers", len(services),
                     sum(len(s.servers) for s in services))

    def run(self) -> None:
        """Start the event stream and keep haproxy in sync until stopped."""
        stream = EventStream(self.args.marathon, on_connect=self.dirty.set,
                             on_event=self.on_event, silence=self.args.silence_seconds)
        threading.Thread(target=stream.run_forever, args=(self.stop,), daemon=True,
                         name="events").start()
        self.dirty.set()  # first sync at once, without waiting for the stream
        while not self.stop.is_set():
            self.dirty.wait(self.args.resync_seconds)
            if self.stop.wait(self.args.debounce):  # let a burst of events settle
                break
            self.dirty.clear()
            try:
                self.sync()
            except (OSError, ValueError, http.client.HTTPException) as exc:
                log.warning("sync failed: %s; retrying", exc)
                self.stop.wait(1.0)
                self.dirty.set()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--marathon", required=True, help="e.g. http://127.0.0.1:8080")
    parser.add_argument("--haproxy-config", required=True, help="configuration file to write")
    parser.add_argument("--pid-file", required=True, help="haproxy's pid file")
    parser.add_argument("--group", default=None,
                        help="serve only apps whose HAPROXY_GROUP lists this group ('*': all)")
    parser.add_argument("--haproxy-bin", default="haproxy")
    parser.add_argument("--bind-address", default="127.0.0.1")
    parser.add_argument("--debounce", type=float, default=0.2, help="seconds (default 0.2)")
    parser.add_argument("--resync-seconds", type=float, default=60.0,
                        help="refetch at least this often even without events")
    parser.add_argument("--silence-seconds", type=float, default=SILENCE_SECONDS,
                        help="reopen the event stream after this long without a byte")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not _SAFE_HOST.match(args.bind_address):
        parser.error(f"--bind-address must be an address, got {args.bind_address!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the bridge until SIGINT/SIGTERM."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    bridge = Bridge(args)

    def stop(*_: object) -> None:
        bridge.stop.set()
        bridge.dirty.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    bridge.run()
    log.info("stopped; haproxy keeps running (pid file %s)", args.pid_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
