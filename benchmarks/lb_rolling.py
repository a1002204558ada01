#!/usr/bin/env python3
"""lb_rolling: haproxy reloads and failed requests behind ``mesoslite lb`` at scale.

Owns: the load-balancer benchmark.  It starts ``mesoslite local`` (one agent, the
Marathon-style framework) and ``mesoslite lb`` on free loopback ports (haproxy from
Debian), deploys ``--instances`` instances of a tiny HTTP app (busybox httpd, a MESOS_HTTP
health check every second, ``HAPROXY_0_VHOST``), then rolling-restarts it while one
client sends back-to-back requests through the VHOST, and reports:

* ``deploy_reloads``, ``deploy_seconds``, ``deploy_reloads_per_min``: haproxy reloads while
  the instances came up (every status and health event would be one reload without
  coalescing: ``deploy_events`` of them);
* ``restart_reloads``, ``restart_reloads_per_min``, ``restart_requests``,
  ``restart_failed``: the same during the rolling restart, and the requests that failed;
* ``ratio``: reloads over events during the deployment (the coalescing; lower is better).

It prints ONE JSON object on stdout (progress on stderr)::

    python benchmarks/lb_rolling.py [--instances 100] [--min-reload-interval 1.0]

Everything it started is stopped on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CMD = ("mkdir -p w && echo $MESOS_TASK_ID > w/id && "
       "exec busybox httpd -f -p 127.0.0.1:$PORT0 -h w")
VHOST = "bench.example.test"


def say(text: str) -> None:
    """Progress on stderr."""
    print(f"[lb_rolling] {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> Any:
    """One JSON request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw.strip().startswith((b"{", b"[")) else raw.decode()


def wait(what: str, predicate: Any, timeout: float) -> Any:
    """Poll ``predicate`` until truthy (or fail naming ``what``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            value = predicate()
            if value:
                return value
        time.sleep(0.2)
    raise SystemExit(f"lb_rolling: {what}: not within {timeout:.0f} s")


def healthy(base: str, app: str) -> int:
    """How many of the app's tasks are running and healthy."""
    tasks = call(f"{base}/v2/apps{app}?embed=app.tasks")["app"]["tasks"]
    return sum(1 for t in tasks if t["state"] == "TASK_RUNNING" and t.get("healthCheckResults")
               and all(r["alive"] for r in t["healthCheckResults"]))


@contextlib.contextmanager
def stack(root: Path, instances: int, min_reload: float) -> Iterator[tuple[str, str, int]]:
    """``mesoslite local`` and ``mesoslite lb``; yields (framework URL, lb API, HTTP port)."""
    port, http_port = free_port(), free_port()
    low = 20000 + (port % 500) * 20
    mesoslite = [sys.executable, "-m", "mesoslite.cli"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with open(root / "local.log", "wb") as log:
            procs.append(subprocess.Popen(
                [*mesoslite, "local", "--agents", "1", "--port", "0", "--zmq_port", "0",
                 "--agent_port_base", "0", "--marathon_port", str(port), "--work_dir",
                 str(root / "work"), "--agent_resources",
                 f"cpus:8;mem:8192;disk:1024;ports:[{low}-{low + instances * 3}]"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        base = f"http://127.0.0.1:{port}"
        wait("the framework answering", lambda: call(f"{base}/v2/apps") == {"apps": []}, 90)
        api_port = free_port()
        with open(root / "lb.log", "wb") as log:
            procs.append(subprocess.Popen(
                [*mesoslite, "lb", "--marathon", base, "--group", "*", "--work_dir",
                 str(root / "lb"), "--http_port", str(http_port), "--https_port",
                 str(free_port()), "--stats_port", str(free_port()), "--appid_port",
                 str(free_port()), "--api_port", str(api_port), "--min_reload_interval",
                 str(min_reload)], stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))
        api = f"http://127.0.0.1:{api_port}"
        wait("the balancer answering", lambda: call(f"{api}/state")["eventStreamConnected"], 60)
        yield base, api, http_port
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


class Load(threading.Thread):
    """Back-to-back requests through the VHOST until halted."""

    def __init__(self, port: int) -> None:
        """Not started."""
        super().__init__(daemon=True)
        self.port, self.halt = port, threading.Event()
        self.ok = 0
        self.failed: list[str] = []

    def run(self) -> None:
        """Request until halted."""
        while not self.halt.is_set():
            try:
                call(f"http://127.0.0.1:{self.port}/id", headers={"Host": VHOST}, timeout=5)
                self.ok += 1
            except (OSError, ValueError) as exc:
                self.failed.append(repr(exc)[:120])


def run(instances: int, min_reload: float) -> dict[str, Any]:
    """Deploy, restart, measure."""
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp, \
            stack(Path(tmp), instances, min_reload) as (base, api, http_port):
        app = "/bench"
        state = call(f"{api}/state")
        reloads0, events0 = state["reloads"], state["events"]
        started = time.monotonic()
        call(f"{base}/v2/apps", "POST", {
            "id": app, "cmd": CMD, "instances": instances, "cpus": 0.01, "mem": 16,
            "portDefinitions": [{"port": free_port()}], "taskKillGracePeriodSeconds": 2,
            "labels": {"HAPROXY_0_VHOST": VHOST},
            "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 0.2},
            "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/id", "portIndex": 0,
                              "gracePeriodSeconds": 60, "intervalSeconds": 1,
                              "timeoutSeconds": 2, "maxConsecutiveFailures": 3}]})
        wait("every instance healthy", lambda: healthy(base, app) == instances, 600)
        wait("every instance behind haproxy", lambda: sum(
            len(s["servers"]) for s in call(f"{api}/state")["services"]) == instances, 120)
        deploy_seconds = time.monotonic() - started
        state = call(f"{api}/state")
        deploy_reloads, deploy_events = state["reloads"] - reloads0, state["events"] - events0
        say(f"deployed {instances} in {deploy_seconds:.1f} s: {deploy_reloads} reloads, "
            f"{deploy_events} events")
        load = Load(http_port)
        load.start()
        reloads1 = state["reloads"]
        started = time.monotonic()
        call(f"{base}/v2/apps{app}/restart", "POST")
        wait("the rolling restart finished", lambda: call(f"{base}/v2/deployments") == [], 900)
        restart_seconds = time.monotonic() - started
        load.halt.set()
        load.join(10)
        restart_reloads = call(f"{api}/state")["reloads"] - reloads1
        say(f"restarted in {restart_seconds:.1f} s: {restart_reloads} reloads, "
            f"{load.ok} requests ok, {len(load.failed)} failed")
    return {
        "benchmark": "lb_rolling", "instances": instances, "min_reload_interval": min_reload,
        "deploy_seconds": round(deploy_seconds, 1), "deploy_events": deploy_events,
        "deploy_reloads": deploy_reloads,
        "deploy_reloads_per_min": round(deploy_reloads / deploy_seconds * 60, 1),
        "restart_seconds": round(restart_seconds, 1), "restart_reloads": restart_reloads,
        "restart_reloads_per_min": round(restart_reloads / restart_seconds * 60, 1),
        "restart_requests": load.ok + len(load.failed), "restart_failed": len(load.failed),
        "restart_failures": sorted(set(load.failed))[:5],
        "ratio": round(deploy_reloads / max(deploy_events, 1), 4),
    }


def main() -> int:
    """Parse flags, run, print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--min-reload-interval", type=float, default=1.0)
    args = parser.parse_args()
    if args.instances < 1:
        parser.error("--instances: expected an integer >= 1")
    if not shutil.which("haproxy") or not shutil.which("busybox"):
        parser.error("needs haproxy and busybox (scripts/ensure-haproxy.sh, busybox-static)")
    report = run(args.instances, args.min_reload_interval)
    print(json.dumps(report, indent=2))
    return 0 if report["restart_failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
