"""``mesoslite ctl exec`` against a real master and a real Docker-enabled agent.

The agent authenticates writes (``--authenticate_http_readwrite`` with a credentials
file), so every exec needs ``MESOSLITE_PRINCIPAL``/``MESOSLITE_SECRET``.  A shell task
and a Docker task (the local busybox test image) run for the whole module; ``ctl exec``
runs commands in them as real processes and its exit status, stdout and stderr are
checked; unknown and finished tasks are refused naming the task, by ctl and by the
agent's endpoint itself.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mesoslite.api.recordio import Decoder
from mesoslite.protocol import CommandInfo, ContainerInfo, DockerInfo, TaskInfo, TaskState
from mesoslite.resources import Resources
from tests.support.cluster_procs import AgentProc, MasterProc, ProcCluster
from tests.support.docker_env import TEST_IMAGE, ensure_docker, remove_scope_containers
from tests.support.frameworks import RecordingScheduler, running_framework, shell_task
from tests.support.procs import mesoslite, wait_for

pytestmark = pytest.mark.integration

CREDENTIALS = {"credentials": [{"principal": "ops", "secret": "ops-secret"}]}
AUTH = {"MESOSLITE_PRINCIPAL": "ops", "MESOSLITE_SECRET": "ops-secret"}
GOOD = "Basic " + base64.b64encode(b"ops:ops-secret").decode()


class Env:
    """The module's cluster: master, agent, framework and the ids of its tasks."""

    def __init__(self, master: MasterProc, agent: AgentProc, scheduler: RecordingScheduler
                 ) -> None:
        self.master = master
        self.agent = agent
        self.scheduler = scheduler


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A shell task ``shell-1``, a Docker task ``docker-1`` (running) and ``done-1`` (finished)."""
    ensure_docker()
    root = tmp_path_factory.mktemp("exec")
    creds = root / "credentials.json"
    creds.write_text(json.dumps(CREDENTIALS))
    os.chmod(creds, 0o600)
    with ProcCluster(root / "cluster") as procs:
        master = procs.start_master()
        agent = procs.add_agent("cpus:4;mem:2048", containerizers="docker,process",
                                authenticate_http_readwrite="true", credentials=str(creds))
        scheduler = RecordingScheduler()
        try:
            with running_framework(master.address, scheduler, "exec") as driver:
                offer = scheduler.take_held(agent.agent_id)
                docker_task = TaskInfo(
                    name="docker-1", task_id="docker-1", agent_id=agent.agent_id,
                    resources=Resources.parse("cpus:0.5;mem:64"),
                    command=CommandInfo(value="echo in-docker; exec sleep 600"),
                    container=ContainerInfo(type="DOCKER", docker=DockerInfo(image=TEST_IMAGE)))
                driver.launch_tasks([offer.id], [
                    shell_task("shell-1", agent.agent_id, "cpus:0.5;mem:64", "exec sleep 600"),
                    shell_task("done-1", agent.agent_id, "cpus:0.1;mem:16", "true"),
                    docker_task])
                for task_id in ("shell-1", "docker-1"):
                    scheduler.wait_state(task_id, TaskState.TASK_RUNNING, timeout=120)
                scheduler.wait_state("done-1", TaskState.TASK_FINISHED, timeout=60)
                yield Env(master, agent, scheduler)
        finally:
            remove_scope_containers(os.path.realpath(agent.work_dir))


def ctl_exec(env: Env, *args: str, credentials: bool = True,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``mesoslite ctl exec ARGS`` as a process."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MESOSLITE_")}
    return subprocess.run(mesoslite("ctl", "--master", env.master.base_url, "exec", *args),
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**base, **(AUTH if credentials else {})})


def post_session(env: Env, session: dict[str, Any], authorization: str | None = GOOD
                 ) -> tuple[int, Any]:
    """POST the call to the agent; (status, JSON error body or the decoded records)."""
    conn = http.client.HTTPConnection("127.0.0.1", env.agent.http_port, timeout=60)
    headers = {"Host": f"127.0.0.1:{env.agent.http_port}", "Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    body = {"type": "LAUNCH_NESTED_CONTAINER_SESSION",
            "launch_nested_container_session": session}
    try:
        conn.request("POST", "/api/v1", body=json.dumps(body).encode(), headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    if response.status != 200:
        return response.status, json.loads(raw)
    assert response.getheader("Content-Type") == "application/recordio"
    return 200, [json.loads(r) for r in Decoder().feed(raw)]


def test_shell_task_exec_runs_in_its_sandbox_with_its_environment(env: Env) -> None:
    """pwd is the sandbox, $MESOS_TASK_ID the task; stderr apart; the exit status is 3."""
    done = ctl_exec(env, "shell-1", "--", "sh", "-c",
                    "pwd; echo $MESOS_TASK_ID; echo to-stderr >&2; exit 3")
    assert done.returncode == 3, done
    lines = done.stdout.splitlines()
    assert lines[0] == os.path.realpath(env.agent.sandbox("shell-1")), (lines, done.stderr)
    assert lines[1:] == ["shell-1"]
    assert done.stderr == "to-stderr\n"


def test_docker_task_exec_runs_in_its_container(env: Env) -> None:
    """The command sees the container's filesystem, its PID namespace and the task's env."""
    done = ctl_exec(env, "docker-1", "--", "sh", "-c",
                    "readlink /bin/ls; tr '\\0' ' ' < /proc/1/cmdline; echo;"
                    " echo $MESOS_TASK_ID; exit 5")
    assert done.returncode == 5, done
    link, init, task_id = done.stdout.splitlines()
    assert link == "/bin/busybox"  # the test image's ls, not the host's
    assert init.strip() == "sleep 600", init  # PID 1 of the task's PID namespace
    assert task_id == "docker-1"


def test_unknown_and_finished_tasks_are_refused_by_name(env: Env) -> None:
    """ctl names an unknown or finished task (or a missing program); the agent 404s by name."""
    unknown = ctl_exec(env, "no-such-task", "--", "true")
    assert unknown.returncode == 1 and "no-such-task" in unknown.stderr, unknown
    finished = ctl_exec(env, "done-1", "--", "true")
    assert finished.returncode == 1, finished
    assert "done-1" in finished.stderr and "TASK_FINISHED" in finished.stderr
    missing = ctl_exec(env, "shell-1", "--", "no-such-program-here")
    assert missing.returncode == 1 and "no-such-program-here" in missing.stderr, missing
    command = {"shell": True, "value": "true"}
    status, body = post_session(env, {"task_id": {"value": "no-such-task"}, "command": command})
    assert (status, body["field"]) == (404, "task_id") and "no-such-task" in body["message"]
    status, body = post_session(env, {"container_id": {"value": "x", "parent": {
        "value": "not-a-container"}}, "command": command})
    assert status == 404 and "not-a-container" in body["message"], body
    status, body = post_session(env, {"task_id": {"value": "shell-1"}, "command": command,
                                      "container": {"type": "MESOS"}})
    assert (status, body["field"]) == (400, "launch_nested_container_session.container")


def test_exec_needs_credentials_when_writes_are_authenticated(env: Env) -> None:
    """Without credentials ctl reports the agent's 401 and nothing runs."""
    marker = env.agent.sandbox("shell-1") / "should-not-exist"
    done = ctl_exec(env, "shell-1", "--", "touch", str(marker), credentials=False)
    assert done.returncode == 1 and "401" in done.stderr, done
    status, _ = post_session(env, {"task_id": {"value": "shell-1"},
                                   "command": {"value": f"touch {marker}"}}, None)
    assert status == 401
    assert not marker.exists()


def test_the_stream_and_the_timeout(env: Env) -> None:
    """The agent's stream: DATA records then EXIT; a timeout kills the command (137)."""
    status, records = post_session(env, {"task_id": {"value": "shell-1"},
                                         "command": {"value": "printf abc"}})
    assert status == 200
    assert records[0] == {"type": "DATA", "data": {"type": "STDOUT", "data": "YWJj"}}
    assert records[-1]["exit"] == {"status": 0, "exit_code": 0, "signal": None,
                                   "timed_out": False}
    marker = f"exec-timeout-{uuid.uuid4().hex}"
    started = time.monotonic()
    done = ctl_exec(env, "shell-1", "--timeout", "1", "--", "sh", "-c",
                    f"sleep 60 & wait; : {marker}")
    assert done.returncode == 128 + 9, done
    assert time.monotonic() - started < 30
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
    assert left.stdout.strip() == "", "the timed-out command was left running"


def test_closing_the_connection_kills_the_command(env: Env) -> None:
    """A client that goes away mid-stream takes its command with it (nothing left running)."""
    marker = f"exec-hangup-{uuid.uuid4().hex}"
    conn = http.client.HTTPConnection("127.0.0.1", env.agent.http_port, timeout=60)
    body = {"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": {
        "task_id": {"value": "shell-1"},
        "command": {"value": f"echo started; sleep 60 & wait; : {marker}"}}}
    conn.request("POST", "/api/v1", body=json.dumps(body).encode(),
                 headers={"Host": f"127.0.0.1:{env.agent.http_port}", "Authorization": GOOD,
                          "Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200
    decoder = Decoder()
    records: list[bytes] = []
    while not records:
        records = decoder.feed(response.read1(4096))
    assert json.loads(records[0])["data"]["data"] == base64.b64encode(b"started\n").decode()

    def running() -> str:
        return subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True,
                              check=False).stdout.strip()

    assert running(), "the command should run while the client listens"
    conn.close()
    wait_for(lambda: not running(), timeout=30, what="the command killed after the hangup")
