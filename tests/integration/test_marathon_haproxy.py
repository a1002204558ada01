"""Service discovery with real parts: Marathon's REST API -> marathon_haproxy.py -> haproxy.

The end-to-end test runs ``mesoslite local`` (one agent, the Marathon-style
framework), the example bridge as a process and the haproxy it starts, all
on 127.0.0.1, and checks what a client of the service port sees through
haproxy while the app is deployed, scaled, has a task killed and is deleted.
The other tests check the bridge's pure config rendering and its event
stream client (one redirect followed, reopened after silence) against small
loopback servers.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.marathon_procs import free_port_range
from tests.support.procs import (
    ROOT,
    Proc,
    free_port,
    get_json,
    kill_processes_under,
    mesoslite,
    wait_for,
)

BRIDGE = ROOT / "examples" / "service_discovery" / "marathon_haproxy.py"
APP = "/sd-web"
CMD = ("mkdir -p w && echo $MESOS_TASK_ID > w/id && cd w && "
       "exec python3 -m http.server $PORT0 --bind 127.0.0.1")


def _load_bridge() -> ModuleType:
    spec = importlib.util.spec_from_file_location("marathon_haproxy", BRIDGE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


mh = _load_bridge()


# ---------------------------------------------------------------- pure rendering


def _task(task_id: str, port: int, state: str = "TASK_RUNNING",
          alive: list[bool] | None = None, host: str = "127.0.0.1") -> dict[str, Any]:
    task: dict[str, Any] = {"id": task_id, "host": host, "ports": [port], "state": state}
    if alive is not None:
        task["healthCheckResults"] = [{"alive": a} for a in alive]
    return task


def test_only_running_and_alive_tasks_become_servers() -> None:
    """With health checks a task needs TASK_RUNNING and every result alive (none yet: out)."""
    apps = [{"id": "/web", "portDefinitions": [{"port": 10001}], "healthChecks": [{}],
             "tasks": [_task("a", 31001, alive=[True]), _task("b", 31002, alive=[False]),
                       _task("c", 31003, alive=[]), _task("d", 31004, "TASK_STAGING", [True]),
                       _task("e", 31005, alive=[True, True])]},
            {"id": "/plain", "ports": [10002], "tasks": [_task("f", 31006)]}]
    services, warnings = mh.services_from_apps(apps)
    assert warnings == []
    assert [(s.name, s.service_port, s.servers) for s in services] == [
        ("web_10001", 10001, (("a", "127.0.0.1", 31001), ("e", "127.0.0.1", 31005))),
        ("plain_10002", 10002, (("f", "127.0.0.1", 31006),)),
    ]
    text = mh.render_config(services)
    assert "frontend web_10001\n    bind 127.0.0.1:10001\n" in text
    assert "server s1 127.0.0.1:31005" in text and "31002" not in text
    assert text == mh.render_config(mh.services_from_apps(list(reversed(apps)))[0])


def test_service_port_sources_groups_and_bad_input() -> None:
    """portMappings beat portDefinitions beat ports; --group filters; bad fields are named."""
    mapped = {"id": "/m", "container": {"portMappings": [{"servicePort": 10010}]},
              "portDefinitions": [{"port": 1}], "ports": [2],
              "labels": {"HAPROXY_GROUP": "internal, external", "HAPROXY_0_MODE": "http"}}
    assert mh.service_ports(mapped) == [10010]
    assert mh.service_ports({"portDefinitions": [{"port": 10011}], "ports": [3]}) == [10011]
    other = {"id": "/o", "ports": [10012], "labels": {"HAPROXY_GROUP": "internal"}}
    services, _ = mh.services_from_apps([mapped, other], group="external")
    assert [(s.app_id, s.mode) for s in services] == [("/m", "http")]
    assert len(mh.services_from_apps([mapped, other], group="*")[0]) == 2

    bad = [{"id": "/p", "ports": ["80"]},
           {"id": "/q", "ports": [10013], "tasks": [_task("t", 31000, host="x y\nlisten")]},
           {"id": "/r", "ports": [10013]}, "junk"]
    services, warnings = mh.services_from_apps(bad)
    assert [(s.app_id, s.servers) for s in services] == [("/q", ())]
    assert any("ports[0] must be an integer port" in w for w in warnings)
    assert any("host must be a hostname" in w for w in warnings)
    assert any("servicePort 10013 already used by /q" in w for w in warnings)
    assert mh.services_from_apps({"apps": []})[1] == ["apps must be a list, got dict"]

    odd = [{"id": "/s\nlisten evil", "ports": [10014], "labels": {},
            "tasks": [{"id": "t1", "host": "h", "ports": {"0": 1}, "state": "TASK_RUNNING"}]},
           {"id": "/u", "ports": [10015], "labels": ["HAPROXY_GROUP"]},
           {"id": "/v", "ports": [10016], "healthChecks": [{}],
            "tasks": [{"id": "t2", "host": "h", "ports": [1], "state": "TASK_RUNNING",
                       "healthCheckResults": ["alive"]}]}]
    services, warnings = mh.services_from_apps(odd, group="g")
    assert services == [] and warnings == ["app /u: labels must be an object, got list; skipped"]
    services, warnings = mh.services_from_apps(odd)
    assert [(s.service_port, s.servers) for s in services] == [(10014, ()), (10016, ())]
    assert "\nlisten" not in mh.render_config(services)


# ---------------------------------------------------------------- the event stream client


class _FakeMarathon(http.server.ThreadingHTTPServer):
    """/v2/events on a standby (302) and a leader that sends one event and then goes silent."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeHandler)
        self.streams = 0
        self.paths: list[str] = []
        self.release = threading.Event()


class _FakeHandler(http.server.BaseHTTPRequestHandler):
    server: _FakeMarathon

    def log_message(self, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        """302 from /standby, an event then silence from /leader."""
        self.server.paths.append(self.path)
        if self.path.startswith("/standby/v2/events"):
            self.send_response(302)
            self.send_header("Location", self.path.replace("/standby", "/leader", 1))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.server.streams += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        event = {"eventType": "status_update_event", "taskStatus": "TASK_RUNNING"}
        self.wfile.write(b": ping\n\nevent: status_update_event\ndata: "
                         + json.dumps(event).encode() + b"\n\nevent: x\ndata: {bad\n\n")
        self.wfile.flush()
        self.server.release.wait(10)  # silent until the test ends


def test_event_stream_follows_redirect_and_reopens_after_silence() -> None:
    """The client follows the standby's 302 and reconnects when the stream stays silent."""
    server = _FakeMarathon()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    events: list[dict[str, Any]] = []
    connects: list[int] = []
    base = f"http://127.0.0.1:{server.server_address[1]}/standby"
    stream = mh.EventStream(base, on_connect=lambda: connects.append(1),
                            on_event=events.append, silence=0.3)
    stop = threading.Event()
    thread = threading.Thread(target=stream.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.streams >= 2 and len(events) >= 2, timeout=15,
                 what="two streams opened through the redirect")
        assert len(connects) >= 2
        assert events[0] == {"eventType": "status_update_event", "taskStatus": "TASK_RUNNING"}
        first = server.paths[0]
        assert first.startswith("/standby/v2/events?")
        assert first.count("event_type=") == 3 and "health_status_changed_event" in first
        assert server.paths[1] == first.replace("/standby", "/leader", 1)
    finally:
        stop.set()
        server.release.set()
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- end to end with haproxy


def _request(url: str, method: str = "GET", body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.loads(response.read() or b"null")


class _Sd:
    """The running stack: REST API base URL, service port, tmp dir."""

    def __init__(self, base: str, service_port: int, tmp: Path, bridge: Proc) -> None:
        self.base, self.service_port, self.tmp, self.bridge = base, service_port, tmp, bridge

    def ready_ids(self) -> set[str]:
        """Ids of the app's tasks that are running and healthy according to the API."""
        tasks = get_json(f"{self.base}/v2/apps{APP}?embed=app.tasks")["app"]["tasks"]
        return {t["id"] for t in tasks if t["state"] == "TASK_RUNNING"
                and t.get("healthCheckResults") and
                all(r["alive"] for r in t["healthCheckResults"])}

    def state(self, task_id: str) -> str | None:
        """The state of one of the app's tasks, None once it is no longer listed."""
        tasks = get_json(f"{self.base}/v2/apps{APP}/tasks")["tasks"]
        return next((t["state"] for t in tasks if t["id"] == task_id), None)

    def through_haproxy(self) -> str:
        """One request to the service port: the id of the task that answered."""
        url = f"http://127.0.0.1:{self.service_port}/id"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode().strip()

    def seen(self, requests: int) -> set[str]:
        """Task ids answering ``requests`` requests through haproxy."""
        return {self.through_haproxy() for _ in range(requests)}

    def routes_exactly(self, count: int) -> set[str] | None:
        """The ready ids when there are ``count`` and haproxy reaches all of them, else None."""
        ready = self.ready_ids()
        if len(ready) == count and self.seen(3 * count) == ready:
            return ready
        return None


@pytest.fixture
def sd(tmp_path: Path) -> Iterator[_Sd]:
    """`mesoslite local`, the bridge and its haproxy, on free loopback ports."""
    assert shutil.which("haproxy"), "haproxy missing: run scripts/ensure-haproxy.sh"
    port = free_port()
    first = free_port_range(100)  # host ports of its tasks, unused by other tests
    local = Proc(mesoslite("local", "--agents", "1", "--port", "0", "--zmq_port", "0",
                           "--agent_port_base", "0", "--marathon_port", str(port), "--no_dns",
                           "--work_dir", str(tmp_path / "work"),
                           "--agent_resources",
                           f"cpus:2;mem:2048;disk:1024;ports:[{first}-{first + 99}]"),
                 tmp_path / "local.log")
    bridge: Proc | None = None
    pid_file = tmp_path / "haproxy.pid"
    try:
        local.wait_output("Ctrl-C stops", timeout=60)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: get_json(f"{base}/v2/apps") == {"apps": []}, timeout=30,
                 what="GET /v2/apps answering")
        bridge = Proc([sys.executable, str(BRIDGE), "--marathon", base,
                       "--haproxy-config", str(tmp_path / "haproxy.cfg"),
                       "--pid-file", str(pid_file)], tmp_path / "bridge.log")
        bridge.wait_output("event stream connected", timeout=20)
        yield _Sd(base, free_port(), tmp_path, bridge)
    finally:
        if bridge is not None:
            bridge.stop()
        if pid_file.exists():
            for pid in pid_file.read_text().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        local.stop()
        kill_processes_under(tmp_path)  # haproxy instances name their config under tmp_path


#: Task states in which the task's process may still be alive.
_LIVE_STATES = {"TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"}


class _Load(threading.Thread):
    """Back-to-back requests through haproxy until halted: (monotonic time, id or error)."""

    def __init__(self, sd: _Sd) -> None:
        super().__init__(daemon=True)
        self.sd, self.halt = sd, threading.Event()
        self.results: list[tuple[float, Any]] = []

    def run(self) -> None:
        """Request until halted."""
        while not self.halt.is_set():
            try:
                answer: Any = self.sd.through_haproxy()
            except Exception as exc:  # noqa: BLE001 - every failure is recorded
                answer = exc
            self.results.append((time.monotonic(), answer))


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_haproxy_follows_deploy_scale_kill_and_delete(sd: _Sd) -> None:
    """Traffic on the service port reaches exactly the healthy tasks through every change."""
    assert _refused(sd.service_port)
    _request(f"{sd.base}/v2/apps", "POST", {
        "id": APP, "cmd": CMD, "instances": 2, "cpus": 0.1, "mem": 32,
        "portDefinitions": [{"port": sd.service_port, "name": "http"}],
        "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/id", "portIndex": 0,
                          "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 2,
                          "maxConsecutiveFailures": 3, "delaySeconds": 0}]})
    two = wait_for(lambda: sd.routes_exactly(2), timeout=30, what="both tasks behind haproxy")

    _request(f"{sd.base}/v2/apps{APP}", "PUT", {"instances": 3})
    three = wait_for(lambda: sd.routes_exactly(3), timeout=30, what="the third task routed")
    assert two < three

    victim = min(three)
    load = _Load(sd)
    load.start()
    try:
        _request(f"{sd.base}/v2/apps{APP}/tasks/{victim}", "DELETE")
        wait_for(lambda: sd.state(victim) not in _LIVE_STATES, timeout=20,
                 what="the killed task ended")
        dead_at = time.monotonic()
        after = wait_for(lambda: sd.routes_exactly(3), timeout=30, what="the replacement routed")
    finally:
        load.halt.set()
        load.join(10)
    assert victim not in after and len(after - three) == 1
    late = [answer for at, answer in load.results if at > dead_at]
    errors = [answer for _at, answer in load.results if isinstance(answer, Exception)]
    print(f"{len(load.results)} requests during the kill, {len(late)} after it, errors {errors}")
    assert late and all(answer in after for answer in late), late  # no error, not the victim
    assert len(errors) <= 1, errors  # at most the one request cut off by the kill itself

    _request(f"{sd.base}/v2/apps{APP}", "DELETE")
    wait_for(lambda: _refused(sd.service_port), timeout=20, what="the frontend closed")
    assert f"bind 127.0.0.1:{sd.service_port}" not in (sd.tmp / "haproxy.cfg").read_text()
    assert "Traceback" not in sd.bridge.output()
