"""Mesos-style health checks end to end: real master, agent, command executor and SDK framework.

Each task carries a ``health_check``; the command executor runs it beside
the task and reports transitions as TASK_RUNNING updates with ``healthy``
set, which must reach the framework and the master's ``/state``.  A task
failing its check too often is killed.  The probes themselves are also
exercised directly against loopback servers and real processes.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import shlex
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesoslite.health.probes import (
    HealthChecker,
    ProbeResult,
    command_probe,
    http_probe,
    tcp_probe,
)
from mesoslite.protocol import (
    CommandInfo,
    Filters,
    HealthCheck,
    HTTPCheck,
    KillPolicy,
    Reason,
    TaskInfo,
    TaskState,
    TaskStatus,
    TCPCheck,
)
from mesoslite.resources import Resources
from mesoslite.scheduler import SchedulerDriver
from tests.support.cluster_procs import AgentProc, MasterProc, ProcCluster
from tests.support.frameworks import RecordingScheduler, running_framework
from tests.support.procs import pid_alive, until, wait_for

pytestmark = pytest.mark.integration

RUNNING, KILLED = TaskState.TASK_RUNNING, TaskState.TASK_KILLED
HEALTH_REASON = Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
FAST = {"delay_seconds": 0.0, "interval_seconds": 0.2, "timeout_seconds": 2.0,
        "grace_period_seconds": 0.0}


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def health_updates(fw: RecordingScheduler, task_id: str) -> list[TaskStatus]:
    """The task's updates that carry a health status."""
    return [s for s in fw.statuses(task_id, reconciliation=False) if s.healthy is not None]


def wait_health(fw: RecordingScheduler, task_id: str, healthy: bool,
                timeout: float = 30.0) -> TaskStatus:
    """Wait for a TASK_RUNNING update of the task with ``healthy`` set as given."""
    def found() -> TaskStatus | None:
        for status in health_updates(fw, task_id):
            if status.state is RUNNING and status.healthy is healthy:
                return status
        return None
    try:
        return wait_for(found, timeout=timeout, what=f"healthy={healthy} for {task_id}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; its updates: {fw.statuses(task_id)}") from None


def master_statuses(master: MasterProc, framework_id: str, task_id: str) -> list[dict[str, Any]]:
    """The statuses the master's ``/state`` lists for a task (live or completed)."""
    framework = master.framework(framework_id) or {"tasks": [], "completed_tasks": []}
    for task in framework["tasks"] + framework["completed_tasks"]:
        if task["id"] == task_id:
            return task["statuses"]
    return []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[MasterProc, AgentProc, int, int]]:
    """One master and one agent offering two free loopback ports (http port, closed port)."""
    http_port, closed_port = free_port(), free_port()
    while closed_port == http_port:
        closed_port = free_port()
    with ProcCluster(tmp_path_factory.mktemp("health")) as procs:
        master = procs.start_master()
        agent = procs.add_agent(
            f"cpus:4;mem:2048;ports:[{http_port}-{http_port},{closed_port}-{closed_port}]"
        )
        yield master, agent, http_port, closed_port


@pytest.fixture
def framework(cluster: tuple[MasterProc, AgentProc, int, int]
              ) -> Iterator[tuple[RecordingScheduler, SchedulerDriver]]:
    """A framework on the shared cluster that holds its offers (torn down afterwards)."""
    master = cluster[0]
    fw = RecordingScheduler()
    with running_framework(master.address, fw, "health") as driver:
        yield fw, driver


def launch(fw: RecordingScheduler, driver: SchedulerDriver, task_id: str, command: str,
           check: HealthCheck, *, ports: str = "", grace: float | None = None) -> None:
    """Launch one shell task with ``check`` on a held offer; wait until it runs."""
    offer = fw.take_held()
    resources = "cpus:0.5;mem:64" + (f";ports:[{ports}]" if ports else "")
    task = TaskInfo(
        name=task_id, task_id=task_id, agent_id=offer.agent_id,
        resources=Resources.parse(resources), command=CommandInfo(value=command),
        health_check=check, kill_policy=KillPolicy(grace) if grace is not None else None,
    )
    driver.launch_tasks([offer.id], [task], Filters(refuse_seconds=0.0))


def test_passing_command_check_reports_healthy(framework: Any, cluster: Any) -> None:
    """A passing COMMAND check (task env, sandbox cwd) → TASK_RUNNING healthy=true everywhere."""
    fw, driver = framework
    master, agent = cluster[0], cluster[1]
    check = HealthCheck(type="COMMAND", command=CommandInfo(
        value='test "$MESOS_TASK_ID" = hc-ok && test "$PWD" = "$MESOS_SANDBOX" && test -f stdout'
    ), **FAST)
    launch(fw, driver, "hc-ok", "sleep 600", check)
    healthy = wait_health(fw, "hc-ok", True)
    assert healthy.reason is HEALTH_REASON
    assert healthy.message == "health check command passed"
    statuses = wait_for(lambda: [s for s in master_statuses(master, fw.framework_id, "hc-ok")
                                 if "healthy" in s], timeout=10,
                        what="the master's /state lists the healthy status")
    assert statuses[-1]["healthy"] is True and statuses[-1]["state"] == "TASK_RUNNING"
    assert statuses[-1]["reason"] == HEALTH_REASON.value
    # One transition, one report: later passing probes sent nothing.
    assert [s.healthy for s in health_updates(fw, "hc-ok")] == [True]
    driver.kill_task("hc-ok", agent.agent_id)
    killed = fw.wait_state("hc-ok", KILLED, timeout=15)
    assert killed.healthy is None and killed.reason is None  # not a health kill


def test_failing_command_check_reports_unhealthy_then_kills(framework: Any, cluster: Any
                                                            ) -> None:
    """A failing COMMAND check with consecutive_failures=2 → healthy=false, then TASK_KILLED."""
    fw, driver = framework
    master = cluster[0]
    check = HealthCheck(type="COMMAND", command=CommandInfo(value="test -f missing"),
                        consecutive_failures=2, **FAST)
    command = ("trap 'echo got-term > \"$MESOS_SANDBOX/term.txt\"; exit 0' TERM; "
               "while :; do sleep 0.05; done")
    launch(fw, driver, "hc-bad", command, check, grace=10.0)
    unhealthy = wait_health(fw, "hc-bad", False)
    assert unhealthy.reason is HEALTH_REASON
    assert "exited with status 1" in unhealthy.message
    killed = fw.wait_state("hc-bad", KILLED, timeout=20)
    assert killed.healthy is False and killed.reason is HEALTH_REASON
    assert "health check failed 2 consecutive times" in killed.message
    states = fw.states("hc-bad")
    assert states == [TaskState.TASK_STARTING, RUNNING, RUNNING, KILLED], states
    # The kill honoured the task's grace: SIGTERM first, and the trap ended it.
    term = cluster[1].sandbox("hc-bad") / "term.txt"
    assert term.read_text().strip() == "got-term"
    final = wait_for(lambda: [s for s in master_statuses(master, fw.framework_id, "hc-bad")
                              if s["state"] == "TASK_KILLED"], timeout=10,
                     what="the master records TASK_KILLED")
    assert final[-1]["healthy"] is False


def test_http_check_against_a_server_reports_healthy(framework: Any, cluster: Any) -> None:
    """An HTTP check against ``python -m http.server`` on $PORT0 → healthy=true."""
    fw, driver = framework
    http_port = cluster[2]
    check = HealthCheck(type="HTTP", http=HTTPCheck(port=http_port, path="/"),
                        **{**FAST, "grace_period_seconds": 30.0})
    server = (f"exec {shlex.quote(sys.executable)} -m http.server --bind 127.0.0.1 "
              f'"$PORT0"')
    launch(fw, driver, "hc-http", server, check, ports=f"{http_port}-{http_port}")
    healthy = wait_health(fw, "hc-http", True)
    assert healthy.message == f"HTTP GET http://127.0.0.1:{http_port}/ returned 200"
    # Failures while the server was starting fell within the grace period: never unhealthy.
    assert [s.healthy for s in health_updates(fw, "hc-http")] == [True]
    driver.kill_task("hc-http", cluster[1].agent_id)
    fw.wait_state("hc-http", KILLED, timeout=15)


def test_tcp_check_to_a_closed_port_reports_unhealthy(framework: Any, cluster: Any) -> None:
    """A TCP check to a port nobody listens on → healthy=false; with 0 failures allowed, no kill."""
    fw, driver = framework
    master, closed_port = cluster[0], cluster[3]
    check = HealthCheck(type="TCP", tcp=TCPCheck(port=closed_port), consecutive_failures=0,
                        **FAST)
    launch(fw, driver, "hc-tcp", "sleep 600", check, ports=f"{closed_port}-{closed_port}")
    unhealthy = wait_health(fw, "hc-tcp", False)
    assert f"TCP connection to 127.0.0.1:{closed_port} failed" in unhealthy.message
    wait_for(lambda: any(s.get("healthy") is False
                         for s in master_statuses(master, fw.framework_id, "hc-tcp")),
             timeout=10, what="the master's /state lists the unhealthy status")
    assert fw.states("hc-tcp")[-1] is RUNNING
    driver.kill_task("hc-tcp", cluster[1].agent_id)
    fw.wait_state("hc-tcp", KILLED, timeout=15)
    assert [s.healthy for s in health_updates(fw, "hc-tcp")] == [False]


def test_invalid_health_check_fails_the_launch(framework: Any) -> None:
    """A task whose health check cannot run is refused by the master (TASK_ERROR,
    REASON_TASK_INVALID) with a message naming the field; nothing starts on the agent."""
    fw, driver = framework
    check = HealthCheck(type="HTTP", tcp=TCPCheck(port=1), **FAST)
    launch(fw, driver, "hc-invalid", "sleep 600", check)
    refused = fw.wait_state("hc-invalid", TaskState.TASK_ERROR)
    assert refused.reason is Reason.REASON_TASK_INVALID
    assert "health_check.http" in refused.message
    assert fw.states("hc-invalid") == [TaskState.TASK_ERROR]


# ------------------------------------------------------------- probes directly


class _StatusHandler(http.server.BaseHTTPRequestHandler):
    """Answers GET /code/<n> with status n."""

    def do_GET(self) -> None:
        """Reply with the status code named in the path."""
        code = int(self.path.rsplit("/", 1)[-1])
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


@pytest.fixture(scope="module")
def status_server() -> Iterator[int]:
    """A loopback HTTP server answering /code/<n> with status n; yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("code", "ok"), [(200, True), (302, True), (399, True),
                                          (404, False), (500, False)])
def test_http_probe_passes_on_200_to_399(status_server: int, code: int, ok: bool) -> None:
    """The HTTP probe passes exactly on 200-399."""
    result = asyncio.run(http_probe(status_server, f"/code/{code}", timeout=5.0))
    assert result.ok is ok and str(code) in result.message


def test_http_probe_times_out_on_a_silent_server() -> None:
    """A server that accepts but never answers fails the probe at its timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = asyncio.run(http_probe(port, "/", timeout=0.3))
    assert not result.ok and "timed out after 0.3s" in result.message


def test_tcp_probe_passes_on_a_listening_port() -> None:
    """The TCP probe passes when something listens."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        result = asyncio.run(tcp_probe(listener.getsockname()[1], timeout=2.0))
    assert result.ok


def test_command_probe_timeout_kills_its_process_group(tmp_path: Path) -> None:
    """At the timeout the probe fails and every process it started is killed."""
    pid_file = tmp_path / "bg.pid"
    command = CommandInfo(value=f"sleep 60 & echo $! > {shlex.quote(str(pid_file))}; sleep 60")
    result = asyncio.run(command_probe(command, dict(os.environ), str(tmp_path), 0.5))
    assert not result.ok and "timed out after 0.5s" in result.message
    background = int(pid_file.read_text())
    wait_for(lambda: not pid_alive(background), timeout=5, what="the background sleep killed")


def test_command_probe_reports_exit_status_and_output(tmp_path: Path) -> None:
    """A failing command reports its exit status and the tail of its output."""
    command = CommandInfo(value="echo oh no >&2; exit 3", environment={"X": "1"})
    result = asyncio.run(command_probe(command, {"PATH": os.environ["PATH"]}, str(tmp_path), 5.0))
    assert result == ProbeResult(False, "Health check command exited with status 3: oh no")


def test_checker_stop_abandons_a_running_probe(tmp_path: Path) -> None:
    """stop() during a long command probe kills the probe's process and ends the checker."""
    pid_file = tmp_path / "probe.pid"
    check = HealthCheck(type="COMMAND", command=CommandInfo(
        value=f"echo $$ > {shlex.quote(str(pid_file))}; exec sleep 60"), **FAST)
    events: list[object] = []

    async def scenario() -> int:
        checker = HealthChecker(check, env=dict(os.environ), cwd=str(tmp_path),
                                on_status=lambda h, m: events.append(h),
                                on_kill=events.append)
        checker.start()
        await until(lambda: pid_file.exists() and pid_file.read_text().strip(), 10,
                    "the probe's pid file")
        assert checker.running
        checker.stop()
        await asyncio.wait_for(checker.wait(), 5.0)
        assert not checker.running
        return int(pid_file.read_text())

    pid = asyncio.run(scenario())
    wait_for(lambda: not pid_alive(pid), timeout=5, what="the probe's process killed")
    assert events == []
