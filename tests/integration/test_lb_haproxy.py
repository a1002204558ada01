"""``mesoslite lb`` with real parts: the framework's REST API -> the balancer -> haproxy.

The end-to-end tests run ``mesoslite local`` (one agent, the Marathon-style framework),
``mesoslite lb`` as a process and the real haproxy it drives, all on 127.0.0.1, and check
what clients see through haproxy while apps are deployed, scaled, killed, restarted and
deleted: on a service port and on a shared HTTP port by ``Host`` (HAPROXY_0_VHOST), the
lookup endpoint and the stats page, a generated configuration haproxy refuses (the last
good one stays, and the balancer says why), no haproxy process left behind.  Another test
checks the event stream client (one redirect followed, reopened after silence) against a
small loopback server.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from mesoslite.lb.events import EventStream
from tests.support.marathon_procs import free_port_range
from tests.support.procs import (
    Proc,
    free_port,
    get_json,
    kill_processes_under,
    mesoslite,
    wait_for,
)

pytestmark = pytest.mark.integration

APP = "/sd-web"
# A server that shuts down gracefully, as zero-downtime deploys behind a balancer assume: on
# SIGTERM it keeps answering for one more second (the balancer drops it on TASK_KILLING
# meanwhile), so a response already under way is never cut off.  httpd itself ignores
# SIGTERM (the executor signals the whole process group); the shell stops it after that second.
CMD = ("mkdir -p w && echo $MESOS_TASK_ID > w/id && "
       "(trap '' TERM; exec busybox httpd -f -p 127.0.0.1:$PORT0 -h w) & pid=$!; "
       "trap 'sleep 1; kill -KILL $pid' TERM; wait $pid")
HEALTH = {"protocol": "MESOS_HTTP", "path": "/id", "portIndex": 0, "gracePeriodSeconds": 30,
          "intervalSeconds": 1, "timeoutSeconds": 2, "maxConsecutiveFailures": 3,
          "delaySeconds": 0}


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
    stream = EventStream(base, on_connect=lambda: connects.append(1),
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


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class _Lb:
    """The running stack: the framework's URL, the balancer's ports and process."""

    def __init__(self, base: str, tmp: Path, ports: dict[str, int], proc: Proc,
                 api: str) -> None:
        self.base, self.tmp, self.ports, self.proc, self.api = base, tmp, ports, proc, api

    def ready_ids(self, app: str = APP) -> set[str]:
        """Ids of the app's tasks that are running and healthy according to the API."""
        tasks = get_json(f"{self.base}/v2/apps{app}?embed=app.tasks")["app"]["tasks"]
        return {t["id"] for t in tasks if t["state"] == "TASK_RUNNING"
                and t.get("healthCheckResults") and
                all(r["alive"] for r in t["healthCheckResults"])}

    def state(self, task_id: str) -> str | None:
        """The state of one of the app's tasks, None once it is no longer listed."""
        tasks = get_json(f"{self.base}/v2/apps{APP}/tasks")["tasks"]
        return next((t["state"] for t in tasks if t["id"] == task_id), None)

    def through(self, port: int, host: str | None = None) -> str:
        """One request through haproxy on ``port`` (with ``Host``): the answering task's id."""
        req = urllib.request.Request(f"http://127.0.0.1:{port}/id",
                                     headers={"Host": host} if host else {})
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.read().decode().strip()

    def seen(self, requests: int, port: int, host: str | None = None) -> set[str]:
        """Task ids answering ``requests`` requests through haproxy."""
        return {self.through(port, host) for _ in range(requests)}

    def routes_exactly(self, count: int, port: int, host: str | None = None,
                       app: str = APP) -> set[str] | None:
        """The ready ids when there are ``count`` and haproxy reaches all of them, else None."""
        ready = self.ready_ids(app)
        try:
            if len(ready) == count and self.seen(3 * count, port, host) == ready:
                return ready
        except OSError:
            return None
        return None

    def lb_state(self) -> dict[str, Any]:
        """The balancer's /state."""
        return get_json(f"{self.api}/state")

    def haproxies(self) -> list[int]:
        """Pids of haproxy processes running this balancer's configuration."""
        config = str(self.tmp / "lb" / "haproxy.cfg")
        found = []
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and \
                    config in (proc.info["cmdline"] or []):
                found.append(proc.info["pid"])
        return found


@pytest.fixture
def lb(tmp_path: Path) -> Iterator[_Lb]:
    """`mesoslite local`, `mesoslite lb` and its haproxy, on free loopback ports."""
    assert shutil.which("haproxy"), "haproxy missing: run scripts/ensure-haproxy.sh"
    port = free_port()
    first = free_port_range(100)  # host ports of its tasks, unused by other tests
    local = Proc(mesoslite("local", "--agents", "1", "--port", "0", "--zmq_port", "0",
                           "--agent_port_base", "0", "--marathon_port", str(port), "--no_dns",
                           "--work_dir", str(tmp_path / "work"),
                           "--agent_resources",
                           f"cpus:4;mem:4096;disk:1024;ports:[{first}-{first + 99}]"),
                 tmp_path / "local.log")
    balancer: Proc | None = None
    ports = {name: free_port() for name in ("http_port", "https_port", "stats_port",
                                            "appid_port", "service_port")}
    try:
        local.wait_output("Ctrl-C stops", timeout=60)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: get_json(f"{base}/v2/apps") == {"apps": []}, timeout=30,
                 what="GET /v2/apps answering")
        flags = [f"--{name}={value}" for name, value in ports.items() if name != "service_port"]
        balancer = Proc(mesoslite("lb", "--marathon", base, "--group", "*", "--work_dir",
                                  str(tmp_path / "lb"), "--api_port", "0",
                                  "--min_reload_interval", "0.5", *flags),
                        tmp_path / "lb.log")
        out = balancer.wait_output("mesoslite lb: api ", timeout=30)
        api = out.split("mesoslite lb: api ", 1)[1].split()[0]
        balancer.wait_output("event stream connected", timeout=20)
        yield _Lb(base, tmp_path, ports, balancer, api)
    finally:
        if balancer is not None:
            balancer.stop()
        pid_file = tmp_path / "lb" / "haproxy.pid"
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

    def __init__(self, lb: _Lb, port: int, host: str | None = None) -> None:
        super().__init__(daemon=True)
        self.lb, self.port, self.host, self.halt = lb, port, host, threading.Event()
        self.results: list[tuple[float, Any]] = []

    def run(self) -> None:
        """Request until halted."""
        while not self.halt.is_set():
            try:
                answer: Any = self.lb.through(self.port, self.host)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded
                answer = exc
            self.results.append((time.monotonic(), answer))

    def errors(self) -> list[Any]:
        """The failed requests."""
        return [answer for _at, answer in self.results if isinstance(answer, Exception)]


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _app(instances: int, service_port: int, **labels: str) -> dict[str, Any]:
    return {"id": APP, "cmd": CMD, "instances": instances, "cpus": 0.05, "mem": 16,
            "portDefinitions": [{"port": service_port, "name": "http"}],
            "healthChecks": [HEALTH], "labels": {"HAPROXY_GROUP": "external", **labels},
            "taskKillGracePeriodSeconds": 2,
            "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 0.5}}


def test_haproxy_follows_deploy_scale_kill_and_delete(lb: _Lb) -> None:
    """The service port and the VHOST reach exactly the healthy tasks through every change."""
    service, http_port = lb.ports["service_port"], lb.ports["http_port"]
    vhost = "web.example.test"
    assert _refused(service)
    _request(f"{lb.base}/v2/apps", "POST", _app(2, service, HAPROXY_0_VHOST=vhost))
    two = wait_for(lambda: lb.routes_exactly(2, service), timeout=60,
                   what="both tasks behind haproxy")
    assert lb.seen(6, http_port, vhost) == two  # the shared HTTP port routes by Host
    status, body = _get(f"http://127.0.0.1:{lb.ports['appid_port']}/id",
                        {"X-Marathon-App-Id": APP})
    assert status == 200 and body.strip() in two
    status, _ = _get(f"http://127.0.0.1:{http_port}/id", {"Host": "other.example.test"})
    assert status == 503  # haproxy: no backend for that host

    def looked_up() -> dict[str, Any] | None:
        status, body = _get(f"{lb.api}/lookup?host={vhost}:{http_port}")
        found = json.loads(body)
        return found if status == 200 and {s["taskId"] for s in found["servers"]} == two \
            else None

    # (the balancer's view follows haproxy's once the new process settled)
    found = wait_for(looked_up, timeout=10, what="the lookup lists both servers")
    assert found["appId"] == APP and found["port"] == service
    status, body = _get(f"{lb.api}/lookup?host=nope.example.test")
    assert status == 404 and "nope.example.test" in json.loads(body)["error"]
    status, body = _get(f"{lb.api}/lookup")
    assert status == 400 and json.loads(body)["field"] == "host"
    status, body = _get(f"{lb.api}/_haproxy_getvhostmap")
    assert status == 200 and body.startswith(f"{vhost}\t")
    status, body = _get(f"http://127.0.0.1:{lb.ports['stats_port']}/haproxy?stats")
    assert status == 200 and "Statistics Report" in body

    _request(f"{lb.base}/v2/apps{APP}", "PUT", {"instances": 3})
    three = wait_for(lambda: lb.routes_exactly(3, http_port, vhost), timeout=60,
                     what="the third task routed")
    assert two < three

    victim = min(three)
    load = _Load(lb, http_port, vhost)
    load.start()
    try:
        _request(f"{lb.base}/v2/apps{APP}/tasks/{victim}", "DELETE")
        wait_for(lambda: lb.state(victim) not in _LIVE_STATES, timeout=30,
                 what="the killed task ended")
        dead_at = time.monotonic()
        after = wait_for(lambda: lb.routes_exactly(3, service), timeout=60,
                         what="the replacement routed")
    finally:
        load.halt.set()
        load.join(10)
    assert victim not in after and len(after - three) == 1
    late = [answer for at, answer in load.results if at > dead_at]
    print(f"{len(load.results)} requests during the kill, errors {load.errors()}")
    assert late and all(answer in after for answer in late), late  # not the victim
    assert load.errors() == []  # draining: TASK_KILLING leaves the backends first

    _request(f"{lb.base}/v2/apps{APP}", "DELETE")
    wait_for(lambda: _refused(service), timeout=30, what="the frontend closed")
    assert f":{service}\n" not in (lb.tmp / "lb" / "haproxy.cfg").read_text()
    state = lb.lb_state()
    assert state["configsRejected"] == 0 and state["lastError"] == ""
    wait_for(lambda: len(lb.haproxies()) == 1, timeout=60,
             what="replaced haproxy processes gone (only the current one left)")
    lb.proc.stop()
    # Soft stop: each process ends once its connections do, within hard-stop-after (30 s).
    wait_for(lambda: lb.haproxies() == [], timeout=45, what="haproxy stopped with the balancer")
    assert "Traceback" not in lb.proc.output()


def test_refused_configuration_keeps_the_last_good_one(lb: _Lb) -> None:
    """An app whose certificate haproxy cannot load is left out, saying why; others flow."""
    service, http_port = lb.ports["service_port"], lb.ports["http_port"]
    _request(f"{lb.base}/v2/apps", "POST", _app(1, service, HAPROXY_0_VHOST="a.example.test"))
    wait_for(lambda: lb.routes_exactly(1, service), timeout=60, what="the task routed")
    missing = str(lb.tmp / "missing.pem")
    bad = {**_app(1, free_port(), HAPROXY_0_VHOST="b.example.test",
                  HAPROXY_0_SSL_CERT=missing), "id": "/bad"}
    _request(f"{lb.base}/v2/apps", "POST", bad)
    state = wait_for(lambda: (s := lb.lb_state())["configsRejected"] >= 1 and s, timeout=60,
                     what="the generated configuration refused")
    assert state["lastError"].startswith("app /bad left out: generated configuration refused "
                                         "by haproxy -c")
    assert "missing.pem" in state["lastError"], state["lastError"]
    assert "missing.pem" not in (lb.tmp / "lb" / "haproxy.cfg").read_text()
    assert "refused by haproxy -c" in lb.proc.output()
    # The other app keeps following its tasks: scale it, the new task is routed.
    _request(f"{lb.base}/v2/apps{APP}", "PUT", {"instances": 2})
    wait_for(lambda: lb.routes_exactly(2, http_port, "a.example.test"), timeout=60,
             what="the good app scaled behind haproxy")
    status, _ = _get(f"http://127.0.0.1:{http_port}/id", {"Host": "b.example.test"})
    assert status == 503
    _request(f"{lb.base}/v2/apps/bad", "PUT", {
        "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "b.example.test"}})
    wait_for(lambda: lb.routes_exactly(1, http_port, "b.example.test", app="/bad"),
             timeout=60, what="the fixed app served")
    wait_for(lambda: lb.lb_state()["lastError"] == "", timeout=30,
             what="no error once the app is fixed")


def test_rolling_restart_behind_the_balancer_fails_no_request(lb: _Lb) -> None:
    """Back-to-back requests through the VHOST during a rolling restart: none fails."""
    http_port, vhost, instances = lb.ports["http_port"], "roll.example.test", 6
    _request(f"{lb.base}/v2/apps", "POST",
             _app(instances, lb.ports["service_port"], HAPROXY_0_VHOST=vhost))
    before = wait_for(lambda: lb.routes_exactly(instances, http_port, vhost), timeout=120,
                      what="every instance routed")
    reloads_before = lb.lb_state()["reloads"]
    load = _Load(lb, http_port, vhost)
    load.start()
    started = time.monotonic()
    try:
        _request(f"{lb.base}/v2/apps{APP}/restart", "POST")
        wait_for(lambda: get_json(f"{lb.base}/v2/deployments") == [], timeout=300,
                 what="the rolling restart finished")
        after = wait_for(lambda: lb.routes_exactly(instances, http_port, vhost), timeout=60,
                         what="the new instances routed")
    finally:
        load.halt.set()
        load.join(10)
    seconds = time.monotonic() - started
    reloads = lb.lb_state()["reloads"] - reloads_before
    errors = load.errors()
    print(f"rolling restart of {instances}: {len(load.results)} requests in {seconds:.1f} s, "
          f"{len(errors)} failed, {reloads} reloads ({reloads / seconds * 60:.0f}/min)")
    assert not before & after  # every instance was replaced
    assert errors == [], sorted({repr(e)[:120] for e in errors})
    assert {answer for _at, answer in load.results} <= before | after
