"""A master, two agents and a ``mesoslite marathon`` process on loopback, for integration tests.

Owns: :class:`MarathonProc` (the framework process, its REST API port read
back from what it prints), :class:`MarathonTestClient` (a small REST client that
returns status, headers and JSON for 2xx and 4xx/5xx alike, plus wait-until
helpers: deployments finished, tasks running/healthy/of a version),
:class:`EventStreamReader` (``/v2/events`` read line by line in a thread, events
collected in order), :class:`MarathonCluster` (everything above under one
root; :meth:`MarathonCluster.stop` cleans up every process), the
module-scoped ``marathon`` fixture and :func:`shell_app`, a small app
definition with a health check on ``$PORT0``.

Agents get disjoint host-port ranges (checked free when chosen), because
they share 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import pytest

from tests.support.cluster_procs import AgentProc, MasterProc, ProcCluster, _flag_args
from tests.support.procs import Proc, mesoslite, wait_for

_MARATHON_LINE = re.compile(r"mesoslite marathon: http://([\d.]+):(\d+)")
#: Marathon flags that make tests fast.
FAST_MARATHON_FLAGS: dict[str, object] = {
    "tick_interval": 0.2,
    "decline_offer_duration": 1.0,
    "reconciliation_initial_delay": 60.0,
    "event_stream_keepalive": 1.0,
    "min_healthy_uptime": 1.0,
}
#: Host ports each agent offers.
PORTS_PER_AGENT = 40
#: Resources of each agent (without ports).
AGENT_RESOURCES = "cpus:8;mem:4096;disk:4096"


def _range_free(first: int, count: int) -> bool:
    for port in range(first, first + count):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port_range(count: int) -> int:
    """The first port of ``count`` consecutive loopback ports that nothing listens on."""
    rng = random.Random()
    for _ in range(50):
        first = rng.randrange(20000, 30000 - count)
        if _range_free(first, count):
            return first
    raise AssertionError(f"no {count} consecutive free ports found")


class Response:
    """An HTTP answer: status, headers (lower-case names) and body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self) -> Any:
        """The body parsed as JSON (fails the test with the body when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError(f"not JSON ({self.status}): {self.body[:500]!r}") from None

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.body[:300]!r})"


class MarathonTestClient:
    """A small client of Marathon's REST API v2 with wait-until helpers."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        """Talk to ``http://host:port``."""
        self.host = host
        self.port = port

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 10.0) -> Response:
        """Send one request (``body`` as JSON, or ``raw`` bytes as they are)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            payload = raw if raw is not None else (
                None if body is None else json.dumps(body).encode())
            hdrs = {"Accept": "application/json"}
            if payload is not None or method in ("POST", "PUT", "PATCH"):
                hdrs["Content-Type"] = "application/json"
            hdrs.update(headers or {})
            conn.request(method, path, body=payload, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    def get(self, path: str) -> Response:
        """GET ``path``."""
        return self.request("GET", path)

    def ok(self, method: str, path: str, body: Any = None, expect: int | tuple[int, ...] = 200
           ) -> Any:
        """Send a request that must answer ``expect``; returns its JSON."""
        resp = self.request(method, path, body)
        wanted = (expect,) if isinstance(expect, int) else expect
        assert resp.status in wanted, f"{method} {path}: {resp.status} {resp.body[:800]!r}"
        return resp.json if resp.body else None

    # --------------------------------------------------------------- reads

    def app(self, app_id: str, embed: str = "apps.tasks") -> dict[str, Any]:
        """``GET /v2/apps/{id}`` (the ``app`` object)."""
        return self.ok("GET", f"/v2/apps/{quote(app_id.strip('/'))}?embed={embed}")["app"]

    def app_or_none(self, app_id: str) -> dict[str, Any] | None:
        """The app, or None when the API answers 404."""
        resp = self.get(f"/v2/apps/{quote(app_id.strip('/'))}")
        if resp.status == 404:
            return None
        assert resp.status == 200, resp
        return resp.json["app"]

    def tasks(self, app_id: str) -> list[dict[str, Any]]:
        """``GET /v2/apps/{id}/tasks``."""
        return self.ok("GET", f"/v2/apps/{quote(app_id.strip('/'))}/tasks")["tasks"]

    def deployments(self) -> list[dict[str, Any]]:
        """``GET /v2/deployments``."""
        return self.ok("GET", "/v2/deployments")

    def app_deployments(self, app_id: str) -> list[dict[str, Any]]:
        """Running deployments that affect ``app_id``."""
        norm = "/" + app_id.strip("/")
        return [d for d in self.deployments() if norm in d.get("affectedApps", [])]

    # --------------------------------------------------------------- waits

    def wait_deployment_gone(self, deployment_id: str, timeout: float = 40.0) -> None:
        """Wait until ``deployment_id`` is no longer listed in /v2/deployments."""
        wait_for(lambda: all(d["id"] != deployment_id for d in self.deployments()),
                 timeout=timeout, interval=0.1, what=f"deployment {deployment_id} finished")

    def wait_tasks(self, app_id: str, count: int, *, healthy: bool | None = None,
                   version: str | None = None, exclude: set[str] | frozenset[str] = frozenset(),
                   timeout: float = 40.0) -> list[dict[str, Any]]:
        """Wait until the app has exactly ``count`` tasks, all TASK_RUNNING (and healthy,
        of ``version``, and none of the ids in ``exclude``, when asked); returns them."""
        last: list[dict[str, Any]] = []

        def done() -> list[dict[str, Any]] | None:
            nonlocal last
            last = self.tasks(app_id)
            if len(last) != count:
                return None
            for task in last:
                if task["state"] != "TASK_RUNNING" or task["id"] in exclude:
                    return None
                if version is not None and task.get("version") != version:
                    return None
                if healthy is not None and is_healthy(task) is not healthy:
                    return None
            return last or [{}]

        try:
            found = wait_for(done, timeout=timeout, interval=0.1,
                             what=f"{count} running tasks of {app_id}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; tasks: {json.dumps(last)[:2000]}") from None
        return [] if found == [{}] else found

    def wait_settled(self, app_id: str, count: int, *, healthy: bool | None = None,
                     version: str | None = None, timeout: float = 40.0
                     ) -> list[dict[str, Any]]:
        """No deployment of ``app_id`` left and ``count`` running tasks (see wait_tasks)."""
        wait_for(lambda: not self.app_deployments(app_id), timeout=timeout, interval=0.1,
                 what=f"deployments of {app_id} finished")
        return self.wait_tasks(app_id, count, healthy=healthy, version=version, timeout=timeout)


def is_healthy(task: dict[str, Any]) -> bool:
    """True when every health-check result of the task says alive (and there is one)."""
    results = task.get("healthCheckResults") or []
    return bool(results) and all(r.get("alive") for r in results)


class EventStreamReader:
    """``GET /v2/events`` read in a background thread; events are kept in arrival order.

    Each event is its ``data:`` JSON plus ``_sse_event``, the type its ``event:`` line
    named; ``comments`` counts ``:`` keep-alive lines; ``error`` is why reading stopped.
    """

    def __init__(self, port: int, query: str = "", host: str = "127.0.0.1") -> None:
        """Connect and start reading (the stream answers 200 before this returns)."""
        self.events: list[dict[str, Any]] = []
        self.comments = 0
        self.error: Exception | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._conn = http.client.HTTPConnection(host, port, timeout=30)
        path = "/v2/events" + (f"?{query}" if query else "")
        self._conn.request("GET", path, headers={"Accept": "text/event-stream"})
        self._sock = self._conn.sock  # getresponse() may drop the connection's reference
        self._resp = self._conn.getresponse()
        self.status = self._resp.status
        self.headers = {k.lower(): v for k, v in self._resp.getheaders()}
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event_type = ""
        data: list[str] = []
        try:
            while not self._closed:
                line = self._resp.readline()
                if not line:
                    return
                text = line.decode().rstrip("\r\n")
                if text.startswith(":"):
                    with self._lock:
                        self.comments += 1
                elif text.startswith("event:"):
                    event_type = text[6:].strip()
                elif text.startswith("data:"):
                    data.append(text[5:].strip())
                elif text == "" and data:
                    payload = json.loads("\n".join(data))
                    payload["_sse_event"] = event_type
                    with self._lock:
                        self.events.append(payload)
                    event_type, data = "", []
        except (OSError, ValueError, http.client.HTTPException) as exc:
            if not self._closed:
                self.error = exc

    def snapshot(self) -> list[dict[str, Any]]:
        """The events so far."""
        with self._lock:
            return list(self.events)

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        """The events so far whose eventType is one of ``types``."""
        return [e for e in self.snapshot() if e.get("eventType") in types]

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0,
             what: str = "event") -> dict[str, Any]:
        """The first event satisfying ``predicate`` (waits for it)."""
        def found() -> dict[str, Any] | None:
            return next((e for e in self.snapshot() if predicate(e)), None)
        try:
            return wait_for(found, timeout=timeout, interval=0.05, what=what)
        except AssertionError as exc:
            types = [e.get("eventType") for e in self.snapshot()]
            raise AssertionError(f"{exc}; events seen: {types}; reader error: {self.error!r}"
                                 ) from None

    def close(self) -> None:
        """Stop reading and close the connection."""
        self._closed = True
        sock = self._sock
        if sock is not None:  # wakes the reader with EOF; it exits before the close
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class MarathonProc:
    """A ``mesoslite marathon`` process with its state in a local directory."""

    def __init__(self, master: MasterProc, state_dir: Path, log_path: Path,
                 flags: dict[str, object]) -> None:
        """Start it and wait until its API answers /ping and it is registered."""
        args = {"master": master.address, "http_address": "127.0.0.1", "http_port": 0,
                "state_dir": state_dir, **FAST_MARATHON_FLAGS, **flags}
        self.proc = Proc(mesoslite("marathon", *_flag_args(args)), log_path)
        output = self.proc.wait_output("mesoslite marathon:", timeout=30)
        match = _MARATHON_LINE.search(output)
        assert match, f"no address line in marathon's output:\n{output[-2000:]}"
        self.port = int(match.group(2))
        self.client = MarathonTestClient(self.port)
        wait_for(lambda: self.client.get("/ping").status == 200, timeout=20, what="/ping")

        def registered() -> str:
            info = self.client.ok("GET", "/v2/info")
            return info.get("frameworkId") or ""

        self.framework_id: str = wait_for(registered, timeout=30, what="marathon registered")


class MarathonCluster:
    """A master, agents and a marathon process under ``root``; :meth:`stop` ends them all."""

    def __init__(self, root: Path, agents: int = 2, agent_flags: dict[str, object] | None = None,
                 marathon_flags: dict[str, object] | None = None,
                 master_flags: dict[str, object] | None = None) -> None:
        """Start everything (agents get disjoint host-port ranges and ``rack:r<i>`` attributes)."""
        self.root = root
        self.procs = ProcCluster(root)
        self.marathon_proc: MarathonProc | None = None
        self._marathon_flags = dict(marathon_flags or {})
        try:
            self.master: MasterProc = self.procs.start_master(**(master_flags or {}))
            first = free_port_range(PORTS_PER_AGENT * agents)
            self.agents: list[AgentProc] = []
            for index in range(agents):
                low = first + index * PORTS_PER_AGENT
                resources = f"{AGENT_RESOURCES};ports:[{low}-{low + PORTS_PER_AGENT - 1}]"
                flags = {"attributes": f"rack:r{index}", **(agent_flags or {})}
                self.agents.append(self.procs.add_agent(resources, **flags))
            self.marathon_proc = MarathonProc(self.master, root / "marathon-state",
                                              root / "marathon.log", self._marathon_flags)
        except BaseException:
            self.stop()
            raise
        self.client = self.marathon_proc.client
        self.framework_id = self.marathon_proc.framework_id

    def restart_marathon(self) -> MarathonProc:
        """SIGTERM the marathon process and start a new one on the same state directory."""
        assert self.marathon_proc is not None
        old = self.marathon_proc
        old.proc.stop()
        self.marathon_proc = MarathonProc(self.master, self.root / "marathon-state",
                                          self.root / "marathon-2.log", self._marathon_flags)
        self.client = self.marathon_proc.client
        self.framework_id = self.marathon_proc.framework_id
        return self.marathon_proc

    def events(self, query: str = "") -> EventStreamReader:
        """A new subscription to ``/v2/events?query``."""
        assert self.marathon_proc is not None
        return EventStreamReader(self.marathon_proc.port, query)

    def master_task_states(self) -> dict[str, str]:
        """Task id → state of the framework's tasks the master knows (live and completed)."""
        out: dict[str, str] = {}
        state = self.master.state()
        for fw in state["frameworks"] + state.get("completed_frameworks", []):
            if fw["id"] != self.framework_id:
                continue
            for task in fw.get("completed_tasks", []) + fw.get("tasks", []):
                out[task["id"]] = task["state"]
        return out

    def agent_of(self, agent_id: str) -> AgentProc:
        """The agent process with ``agent_id``."""
        return next(a for a in self.agents if a.agent_id == agent_id)

    def sandbox(self, task: dict[str, Any]) -> Path:
        """The sandbox directory of a Marathon task (its JSON from the API)."""
        return self.agent_of(task["slaveId"]).sandbox(task["id"])

    def logs(self) -> str:
        """The tail of marathon's log (for failure messages)."""
        return self.marathon_proc.proc.output()[-4000:] if self.marathon_proc else ""

    def stop(self) -> None:
        """Stop marathon, then the agents and the master; kill leftovers under ``root``."""
        if self.marathon_proc is not None:
            self.marathon_proc.proc.stop()
        self.procs.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@pytest.fixture(scope="module")
def marathon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarathonCluster]:
    """A master, two agents and a marathon process shared by one test module."""
    with MarathonCluster(tmp_path_factory.mktemp("marathon")) as cluster:
        yield cluster


def http_check(protocol: str = "MESOS_HTTP", **overrides: Any) -> dict[str, Any]:
    """A fast health check on port index 0 (``COMMAND`` needs ``command`` in overrides)."""
    check: dict[str, Any] = {"protocol": protocol, "gracePeriodSeconds": 10,
                             "intervalSeconds": 0.5, "timeoutSeconds": 2,
                             "maxConsecutiveFailures": 3, "delaySeconds": 0}
    if protocol != "COMMAND":
        check["portIndex"] = 0
    if protocol.endswith("HTTP"):
        check["path"] = "/"
    check.update(overrides)
    return check


#: A shell command serving HTTP on $PORT0 (loopback only).
HTTP_SERVER = "exec python3 -m http.server $PORT0 --bind 127.0.0.1"


def shell_app(app_id: str, instances: int = 1, *, cmd: str = HTTP_SERVER,
              health: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A small shell app serving HTTP on ``$PORT0`` with a MESOS_HTTP check (or ``health``)."""
    app: dict[str, Any] = {
        "id": app_id, "cmd": cmd, "instances": instances, "cpus": 0.1, "mem": 32,
        "portDefinitions": [{"port": 0, "name": "http"}],
        "healthChecks": [health if health is not None else http_check()],
        "taskKillGracePeriodSeconds": 1,
        "backoffSeconds": 0.2,
    }
    app.update(fields)
    return app


__all__ = [
    "HTTP_SERVER",
    "EventStreamReader",
    "MarathonCluster",
    "MarathonProc",
    "MarathonTestClient",
    "Response",
    "free_port_range",
    "http_check",
    "is_healthy",
    "marathon",
    "shell_app",
]
