"""docker-compose.yml brought up end to end with the images built here (docker-compose.local.yml).

scripts/build-compose-images.sh provides the engine, docker-compose and the two
local images (built only when missing); the module fixture runs
``docker-compose up -d`` under its own project name, and afterwards
``docker-compose down`` and checks that no container of the project, and no
task process (the agents run with ``pid: host``), is left.
Every service uses the host network and listens on 127.0.0.1 only, on the
fixed ports of docker-compose.yml, which must therefore be free.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from tests.support.procs import machine_lock, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "mesoslitecomposetest"
MASTER_PORTS = (5050, 5060, 5070)
AGENT_PORTS = (5051, 5052)
FRAMEWORK_PORTS = (8080, 8081)
LB_PORTS = (80, 443, 9190, 9191, 9192)
DNS_PORTS = (8053, 8123)
ALL_PORTS = (2181, *MASTER_PORTS, 5055, 5065, 5075, *AGENT_PORTS, *FRAMEWORK_PORTS, *LB_PORTS,
             *DNS_PORTS)
WORK_ROOT = Path("/var/lib/mesoslite")
AGENT_WORK_DIRS = (WORK_ROOT / "agent-1", WORK_ROOT / "agent-2")
UP_DEADLINE = 120.0


def _compose(*args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    """Runs docker-compose with both files under this test's project name."""
    command = ["docker-compose", "-f", "docker-compose.yml", "-f", "docker-compose.local.yml",
               "-p", PROJECT, *args]
    return subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _request(port: int, method: str, path: str,
             body: dict[str, Any] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to 127.0.0.1:``port`` (redirects not followed)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        data = json.dumps(body).encode() if body is not None else None
        writes = data is not None or method in ("POST", "PUT", "PATCH")
        headers = {"Content-Type": "application/json"} if writes else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _get_json(port: int, path: str) -> Any:
    """GET ``path`` on ``port`` and decode its JSON body; non-200 raises."""
    status, _, body = _request(port, "GET", path)
    if status != 200:
        raise AssertionError(f"GET :{port}{path} answered {status}: {body[:200]!r}")
    return json.loads(body)


def _port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _project_containers() -> list[str]:
    """Names of every container (running or not) of this test's compose project."""
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}",
         "--format", "{{.Names}}"], capture_output=True, text=True, check=True, timeout=30)
    return out.stdout.split()


def _sandboxed_processes() -> list[psutil.Process]:
    """Host processes whose working directory is inside an agent's work_dir (tasks; pid: host)."""
    found = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info.get("cwd") or ""
        if any(cwd.startswith(f"{d}/") for d in AGENT_WORK_DIRS):
            found.append(proc)
    return found


def _leader_port() -> int | None:
    """The HTTP port every master's /redirect points to (``//127.0.0.1:PORT``), once they agree."""
    targets = set()
    for port in MASTER_PORTS:
        status, headers, _ = _request(port, "GET", "/redirect")
        if status != 307 or "location" not in headers:
            return None
        targets.add(headers["location"].removeprefix("http:").rstrip("/"))
    if len(targets) != 1:
        return None
    location = targets.pop()
    if not location.startswith("//127.0.0.1:"):
        raise AssertionError(f"/redirect points outside loopback: {location!r}")
    return int(location.rsplit(":", 1)[1])


def test_local_override_changes_only_the_images() -> None:
    """docker-compose.local.yml names the same services and sets nothing but their images."""
    main = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    local = yaml.safe_load((ROOT / "docker-compose.local.yml").read_text())["services"]
    assert sorted(local) == sorted(main)
    assert all(list(service) == ["image"] for service in local.values())
    assert local["zookeeper"]["image"].startswith("mesoslite-local/")
    assert {s["image"] for n, s in local.items() if n != "zookeeper"} == {
        "mesoslite-local/mesoslite:latest"}


@pytest.fixture(scope="module")
def compose_cluster() -> Iterator[None]:
    """The whole cluster up (images built first when missing); down and gone afterwards.

    Its ports, project and work directories are fixed: one test process at a time."""
    with machine_lock("compose-cluster"):
        yield from _compose_cluster()


def _compose_cluster() -> Iterator[None]:
    build = subprocess.run(["bash", "scripts/build-compose-images.sh"], check=False, cwd=ROOT,
                           capture_output=True, text=True, timeout=540)
    assert build.returncode == 0, f"building the images failed:\n{build.stderr[-3000:]}"
    # Another checkout's suite may be running this cluster right now (its ports and
    # project are fixed): wait until it is down before asserting the machine is free.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not (_project_containers() or _sandboxed_processes()
                              or any(_port_in_use(port) for port in ALL_PORTS)),
                 timeout=300, what="no other compose cluster on this machine", interval=1.0)
    busy = [port for port in ALL_PORTS if _port_in_use(port)]
    assert not busy, f"ports of docker-compose.yml already in use on 127.0.0.1: {busy}"
    assert _sandboxed_processes() == [], "tasks of an earlier cluster still run"
    fresh_dirs = [d for d in (*AGENT_WORK_DIRS, WORK_ROOT) if not d.exists()]
    up = _compose("up", "-d")
    try:
        assert up.returncode == 0, f"docker-compose up failed:\n{up.stderr[-3000:]}"
        yield
    finally:
        down = _compose("down", "--timeout", "5", "--remove-orphans")
        leftover = _sandboxed_processes()
        for directory in fresh_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        assert down.returncode == 0, f"docker-compose down failed:\n{down.stderr[-3000:]}"
        assert _project_containers() == []
        assert leftover == [], f"task processes outlived the cluster: {leftover}"


def test_masters_elect_one_leader_and_both_agents_register(compose_cluster: None) -> None:
    """All three masters answer /health, agree on one leader, and it lists both agents."""
    for port in MASTER_PORTS:
        wait_for(lambda p=port: _request(p, "GET", "/health")[0] == 200, timeout=UP_DEADLINE,
                 interval=0.2, what=f"master :{port} /health")
    leader = wait_for(_leader_port, timeout=UP_DEADLINE, interval=0.2, what="one leader")
    assert leader in MASTER_PORTS

    def both_agents() -> dict[str, Any] | None:
        state = _get_json(leader, "/state")
        ports = sorted(a["port"] for a in state["slaves"] if a["active"])
        return state if ports == list(AGENT_PORTS) else None

    state = wait_for(both_agents, timeout=UP_DEADLINE, interval=0.2, what="two active agents")
    assert state["leader"] == f"master@127.0.0.1:{leader}"
    assert state["activated_slaves"] == 2


def test_framework_instances_answer_and_one_is_elected(compose_cluster: None) -> None:
    """Both framework instances answer /ping and /v2/info, exactly one of them elected."""
    for port in FRAMEWORK_PORTS:
        wait_for(lambda p=port: _request(p, "GET", "/ping")[0] == 200, timeout=UP_DEADLINE,
                 interval=0.2, what=f"framework :{port} /ping")

    def settled() -> list[dict[str, Any]] | None:
        infos = [_get_json(port, "/v2/info") for port in FRAMEWORK_PORTS]
        elected = [info for info in infos if info["elected"]]
        return infos if len(elected) == 1 and elected[0]["frameworkId"] else None

    infos = wait_for(settled, timeout=UP_DEADLINE, interval=0.2, what="one elected framework")
    leaders = {info["leader"] for info in infos}
    assert len(leaders) == 1 and leaders.pop() in {f"127.0.0.1:{p}" for p in FRAMEWORK_PORTS}


def test_an_app_posted_to_the_framework_runs_on_an_agent(compose_cluster: None) -> None:
    """POST /v2/apps (sleep 600, one instance) gives a TASK_RUNNING task on one of the agents."""
    wait_for(lambda: any(_get_json(p, "/v2/info")["elected"] for p in FRAMEWORK_PORTS),
             timeout=UP_DEADLINE, interval=0.2, what="an elected framework instance")
    app = {"id": "/compose-sleeper", "cmd": "sleep 600", "cpus": 0.1, "mem": 32,
           "instances": 1}
    deadline = time.monotonic() + UP_DEADLINE
    status, _, body = _request(FRAMEWORK_PORTS[0], "POST", "/v2/apps", app)
    assert status == 201, f"POST /v2/apps answered {status}: {body[:300]!r}"
    assert json.loads(body)["id"] == "/compose-sleeper"

    def running() -> list[dict[str, Any]] | None:
        tasks = _get_json(FRAMEWORK_PORTS[1], "/v2/apps/compose-sleeper/tasks")["tasks"]
        return tasks if [t["state"] for t in tasks] == ["TASK_RUNNING"] else None

    tasks = wait_for(running, timeout=max(deadline - time.monotonic(), 1.0), interval=0.2,
                     what="the app's task running")
    assert tasks[0]["host"] == "127.0.0.1" and tasks[0]["appId"] == "/compose-sleeper"
    wait_for(lambda: ["sleep", "600"] in [p.cmdline() for p in _sandboxed_processes()],
             timeout=10, what="the task as a host process in its sandbox")
