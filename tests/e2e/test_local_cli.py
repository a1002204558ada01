"""The README tour as a new user runs it: `mesoslite local`, the hello framework, ctl."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.support.procs import ROOT, Proc, free_port, mesoslite, processes_under, wait_for


@pytest.fixture
def local_cluster(tmp_path: Path):
    """`mesoslite local` with two agents on free loopback ports."""
    http, zmq_port = free_port(), free_port()
    agent_base = free_port()
    # Two consecutive free ports for the agents.
    while True:
        try:
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", agent_base + 1))
            break
        except OSError:
            agent_base = free_port()
    work = tmp_path / "work"
    proc = Proc(
        mesoslite("local", "--agents", "2", "--port", str(http), "--zmq_port", str(zmq_port),
                  "--agent_port_base", str(agent_base), "--work_dir", str(work),
                  "--agent_resources", "cpus:2;mem:1024;disk:1024",
                  "--marathon_port", str(free_port()), "--dns_port", "0",
                  "--dns_http_port", "0"),
        tmp_path / "local.log",
    )
    proc.wait_output("Ctrl-C stops", timeout=30)
    yield proc, http, zmq_port, work
    proc.stop()


def _ctl(http: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mesoslite("ctl", "--master", f"127.0.0.1:{http}", *args),
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )


def test_hello_framework_then_ctl_then_clean_stop(local_cluster) -> None:
    """20 hello tasks finish, ctl shows them and their logs, Ctrl-C leaves nothing behind."""
    proc, http, zmq_port, work = local_cluster
    assert f"http://127.0.0.1:{http}" in proc.output()
    assert f"tcp://127.0.0.1:{zmq_port}" in proc.output()

    hello = subprocess.run(
        [sys.executable, "examples/hello_framework.py", "--master", f"127.0.0.1:{zmq_port}",
         "--tasks", "20"],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
    )
    assert hello.returncode == 0, hello.stdout[-3000:] + hello.stderr[-3000:]
    out = hello.stdout
    assert "TASK_STARTING" in out and "TASK_RUNNING" in out and "TASK_FINISHED" in out
    assert "20/20" in out or "finished: 20" in out.lower()

    state = _ctl(http, "state")
    assert state.returncode == 0, state.stderr
    assert "agents" in state.stdout and "2 active" in state.stdout

    agents = _ctl(http, "agents")
    assert agents.returncode == 0 and len(agents.stdout.strip().splitlines()) == 3

    frameworks = _ctl(http, "frameworks")
    assert frameworks.returncode == 0 and "completed" in frameworks.stdout

    tasks = _ctl(http, "tasks", "--all")
    assert tasks.returncode == 0, tasks.stderr
    rows = [line for line in tasks.stdout.splitlines()[1:] if "TASK_FINISHED" in line]
    assert len(rows) == 20
    # Tasks were spread over both agents.
    assert len({row.split()[-3] for row in rows}) == 2
    task_id = rows[0].split()[0]

    logs = _ctl(http, "logs", task_id)
    assert logs.returncode == 0, logs.stderr
    assert task_id in logs.stdout  # the hello command echoes its task id

    stderr_logs = _ctl(http, "logs", task_id, "--stderr")
    assert stderr_logs.returncode == 0

    missing = _ctl(http, "logs", "no-such-task")
    assert missing.returncode == 1 and "no-such-task" in missing.stderr

    # A long task is running when the cluster is stopped: it must not survive.
    children_before = psutil.Process(proc.pid).children(recursive=True)
    proc.signal(signal.SIGINT)
    proc.popen.wait(30)
    assert proc.popen.returncode == 0, proc.output()[-2000:]
    wait_for(lambda: not [p for p in children_before if p.is_running() and
                          p.status() != psutil.STATUS_ZOMBIE],
             timeout=10, what="every child process gone")
    assert processes_under(work) == []


def test_follow_logs_until_task_ends(local_cluster, tmp_path: Path) -> None:
    """`ctl logs -f` prints output as it is written and returns when the task ends."""
    _proc, http, zmq_port, _work = local_cluster
    # The task prints its first line, then waits for the test, so that the follower is
    # attached while it runs however slowly `ctl` starts on a busy machine.
    go = tmp_path / "go"
    hello = subprocess.Popen(
        [sys.executable, "examples/hello_framework.py", "--master", f"127.0.0.1:{zmq_port}",
         "--tasks", "1", "--command",
         f"echo line-1; while [ ! -e {go} ]; do sleep 0.05; done; echo line-2; echo line-3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )

    def running_task() -> str | None:
        result = _ctl(http, "tasks")
        for line in result.stdout.splitlines()[1:]:
            if "TASK_RUNNING" in line:
                return line.split()[0]
        return None

    task_id = wait_for(running_task, timeout=60, what="a running task")
    out_path = tmp_path / "follow.out"
    with open(out_path, "w") as out:
        follower = subprocess.Popen(
            mesoslite("ctl", "--master", f"127.0.0.1:{http}", "logs", "-f", task_id),
            stdout=out, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        wait_for(lambda: "line-1" in out_path.read_text(), timeout=60,
                 what="the follower printing the running task's first line")
        go.touch()
        follower.wait(60)
    finally:
        if follower.poll() is None:
            follower.kill()
    follow = subprocess.CompletedProcess(follower.args, follower.returncode,
                                         out_path.read_text(), follower.stderr.read())
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout.splitlines()[-3:] == ["line-1", "line-2", "line-3"]
    assert hello.wait(60) == 0


def test_bad_flags_exit_2_naming_the_flag() -> None:
    """An unknown flag or a bad value exits 2 and names the flag."""
    unknown = subprocess.run(mesoslite("master", "--no_such_flag", "1"),
                             capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert unknown.returncode == 2 and "--no_such_flag" in unknown.stderr
    bad_value = subprocess.run(mesoslite("master", "--allocation_interval", "soon"),
                               capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad_value.returncode == 2 and "--allocation_interval" in bad_value.stderr
    bad_env = subprocess.run(mesoslite("agent"), capture_output=True, text=True, timeout=60,
                             cwd=ROOT, env={"MESOSLITE_RESOURCES": "cpus:lots", "PATH": "/usr/bin"})
    assert bad_env.returncode == 2 and "--resources" in bad_env.stderr
    for command in ("master", "agent", "local", "ctl", "keygen"):
        helped = subprocess.run(mesoslite(command, "--help"), capture_output=True, text=True,
                                timeout=60, cwd=ROOT)
        assert helped.returncode == 0 and "usage" in helped.stdout


def test_keygen_writes_a_key_pair(tmp_path: Path) -> None:
    """`mesoslite keygen` writes a public key and a private secret key file."""
    result = subprocess.run(mesoslite("keygen", "--dir", str(tmp_path), "--name", "master"),
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "master.key").exists()
    secret = tmp_path / "master.key_secret"
    assert secret.stat().st_mode & 0o077 == 0
    assert str(secret) in result.stdout


def test_busy_framework_port_is_one_clear_error(tmp_path: Path) -> None:
    """A taken --marathon_port: exit 1 with a line naming the flag, no traceback, no leftovers."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        work = tmp_path / "work"
        result = subprocess.run(
            mesoslite("local", "--agents", "1", "--port", "0", "--zmq_port", "0",
                      "--agent_port_base", "0", "--work_dir", str(work),
                      "--marathon_port", str(port), "--no_dns"),
            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "--marathon_port" in result.stderr and "Traceback" not in result.stderr
    assert not processes_under(work)
