"""Unit tests for /files path safety and the sandbox environment rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mesoslite.agent.files import (
    PathRefused,
    browse_entry,
    check_request_path,
    is_within,
    list_dir,
    open_regular,
    read_range,
    resolve_request_path,
    sandbox_of,
)
from mesoslite.agent.sandbox import executor_environment, sandbox_dir, task_environment
from mesoslite.protocol import CommandInfo, TaskInfo
from mesoslite.resources import Resources


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("", 400),
        ("a\x00b", 403),
        ("../etc", 403),
        ("/work/x/../../etc", 403),
        ("sandbox/..", 403),
        ("..\\windows", 403),
    ],
)
def test_check_request_path_refuses_unsafe_input(raw: str, status: int) -> None:
    """Empty paths, NUL bytes and '..' components are refused before touching the disk."""
    with pytest.raises(PathRefused) as info:
        check_request_path(raw)
    assert info.value.status == status
    assert info.value.field == "path"


def test_check_request_path_accepts_ordinary_paths() -> None:
    """Names with dots that are not '..' are fine."""
    assert check_request_path("/w/a..b/.hidden/x.log") == "/w/a..b/.hidden/x.log"


def test_is_within_compares_whole_components() -> None:
    """'/w/agent-evil' is not inside '/w/agent'; the root itself is."""
    assert is_within("/w/agent", "/w/agent")
    assert is_within("/w/agent", "/w/agent/x/y")
    assert is_within("/w/agent/", "/w/agent/x")
    assert not is_within("/w/agent", "/w/agent-evil/x")
    assert not is_within("/w/agent", "/w")
    assert is_within("/", "/anything")


def _sandboxes(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A work dir with two task sandboxes (``runs/latest`` -> c1) and a meta/ checkpoint."""
    work = tmp_path / "work"
    runs = work / "agents" / "a1" / "frameworks" / "f1" / "executors" / "e1" / "runs"
    sandbox = runs / "c1"
    sandbox.mkdir(parents=True)
    (sandbox / "stdout").write_text("hi")
    (runs / "latest").symlink_to("c1")
    other = work / "agents" / "a1" / "frameworks" / "f2" / "executors" / "e2" / "runs" / "c2"
    other.mkdir(parents=True)
    (other / "secret").write_text("other task")
    (work / "meta" / "agents" / "a1").mkdir(parents=True)
    (work / "meta" / "agents" / "a1" / "journal").write_text("DB_PASSWORD=x")
    return work, sandbox, other


def test_resolve_follows_symlinks_and_refuses_escapes(tmp_path: Path) -> None:
    """Links inside the sandbox work; links out of it, even into another sandbox, are 403."""
    work, sandbox, other = _sandboxes(tmp_path)
    outside = tmp_path / "secret"
    outside.write_text("no")
    (sandbox / "leak").symlink_to(outside)
    (sandbox / "up").symlink_to(tmp_path)
    (sandbox / "neighbour").symlink_to(other / "secret")
    (sandbox / "meta").symlink_to(work / "meta")
    real_sandbox = os.path.realpath(sandbox)
    runs = "agents/a1/frameworks/f1/executors/e1/runs"

    latest = resolve_request_path(str(work), str(sandbox.parent / "latest" / "stdout"))
    assert latest.path == os.path.join(real_sandbox, "stdout")
    assert latest.sandbox == real_sandbox
    assert resolve_request_path(str(work), f"{runs}/c1/stdout").path.endswith("runs/c1/stdout")
    refused = (str(outside), str(sandbox / "leak"), str(sandbox / "up" / "secret"), "/etc",
               str(sandbox / "neighbour"), str(sandbox / "meta" / "agents"),
               str(work / "meta" / "agents" / "a1" / "journal"), "meta/agents/a1/journal",
               str(work), runs, "agents/a1", str(work) + "-evil/x")
    for bad in refused:
        with pytest.raises(PathRefused) as info:
            resolve_request_path(str(work), bad)
        assert info.value.status == 403, bad
    with pytest.raises(PathRefused) as info:
        resolve_request_path(str(work), str(sandbox / "missing"))
    assert info.value.status == 404


@pytest.mark.parametrize(("relative", "sandbox"), [
    ("agents/a/frameworks/f/executors/e/runs/c", "agents/a/frameworks/f/executors/e/runs/c"),
    ("agents/a/frameworks/f/executors/e/runs/c/x/y", "agents/a/frameworks/f/executors/e/runs/c"),
    ("agents/a/frameworks/f/executors/e/runs", None),
    ("meta/agents/a/frameworks/f/executors/e/runs/c", None),
    ("agents/a/frameworks/f/executors/e/logs/c", None),
    ("agents//frameworks/f/executors/e/runs/c", None),
])
def test_sandbox_of(relative: str, sandbox: str | None) -> None:
    """Only paths at or below agents/*/frameworks/*/executors/*/runs/* have a sandbox."""
    assert sandbox_of(relative) == sandbox


def test_open_regular_refuses_fifos_devices_and_directories(tmp_path: Path) -> None:
    """A FIFO is refused without blocking; so are /dev/null (a device) and directories."""
    work, sandbox, _ = _sandboxes(tmp_path)
    os.mkfifo(sandbox / "pipe")
    (sandbox / "dev").symlink_to("/dev/null")
    (sandbox / "dir").mkdir()
    for name, status in (("pipe", 403), ("dir", 400)):
        target = resolve_request_path(str(work), str(sandbox / name))
        with pytest.raises(PathRefused) as info:
            open_regular(target, name)
        assert info.value.status == status, name
    with pytest.raises(PathRefused):  # the link to /dev/null leaves the sandbox
        resolve_request_path(str(work), str(sandbox / "dev"))
    target = resolve_request_path(str(work), str(sandbox / "stdout"))
    assert read_range(target, "stdout", 1, 10) == (b"i", 2)
    assert read_range(target, "stdout", -1, 10) == (b"", 2)
    assert [os.path.basename(str(e["path"])) for e in list_dir(target)] == ["stdout"]


def test_open_regular_refuses_a_file_swapped_for_a_link(tmp_path: Path) -> None:
    """A file replaced by a symlink after resolution is refused (no final-link following)."""
    work, sandbox, other = _sandboxes(tmp_path)
    target = resolve_request_path(str(work), str(sandbox / "stdout"))
    os.unlink(sandbox / "stdout")
    (sandbox / "stdout").symlink_to(other / "secret")
    with pytest.raises(PathRefused) as info:
        open_regular(target, "stdout")
    assert info.value.status == 403


def test_browse_entry_has_mesos_fields(tmp_path: Path) -> None:
    """An entry carries path, nlink, size, mtime, mode, uid and gid."""
    f = tmp_path / "f"
    f.write_text("abc")
    entry = browse_entry(str(f), "/shown")
    assert entry["path"] == "/shown" and entry["size"] == 3 and entry["nlink"] == 1
    assert str(entry["mode"]).startswith("-")
    assert {"mtime", "uid", "gid"} <= set(entry)


def test_task_environment_has_ports_and_user_variables() -> None:
    """PORT0..n, PORTS, PORT, MESOS_* and command.environment; MESOS_CONTAINER_ID wins."""
    task = TaskInfo(
        name="t", task_id="t1", agent_id="S1",
        resources=Resources.parse("cpus:1;ports:[100-101,200-200]"),
        command=CommandInfo(value="true", environment={"A": "1", "MESOS_CONTAINER_ID": "x"}),
    )
    env = task_environment(task, framework_id="F", executor_id="t1", container_id="c",
                           sandbox="/s", agent_endpoint="h:1", host="h")
    assert env["PORT0"] == "100" and env["PORT1"] == "101" and env["PORT2"] == "200"
    assert env["PORT"] == "100" and env["PORTS"] == "100,101,200"
    assert env["MESOS_TASK_ID"] == "t1" and env["MESOS_SANDBOX"] == "/s"
    assert env["MESOS_FRAMEWORK_ID"] == "F" and env["MESOS_EXECUTOR_ID"] == "t1"
    assert env["MESOS_AGENT_ENDPOINT"] == "h:1" and env["HOST"] == "h"
    assert env["A"] == "1" and env["MESOS_CONTAINER_ID"] == "c"
    no_ports = TaskInfo(name="t", task_id="t2", agent_id="S1",
                        resources=Resources.parse("cpus:1"), command=CommandInfo(value="x"))
    env2 = task_environment(no_ports, framework_id="F", executor_id="t2", container_id="c",
                            sandbox="/s", agent_endpoint="h:1", host="h")
    assert "PORT" not in env2 and "PORTS" not in env2


def test_executor_environment_adds_agent_link() -> None:
    """Executors inherit the base environment plus the agent link and the protocol variables."""
    env = executor_environment(
        {"PATH": "/bin", "PYTHONPATH": "/other", "MESOS_TASK_ID": "stale"},
        framework_id="F", executor_id="E", container_id="C", sandbox="/s",
        agent_endpoint="h:1", host="h", agent_zmq="tcp://127.0.0.1:9", checkpoint=True,
        shutdown_grace_period=5.0, recovery_timeout=900.0, agent_pid=42,
        extra={"X": "y"}, python_path="/src",
    )
    assert env["PATH"] == "/bin" and env["X"] == "y"
    assert env["MESOSLITE_AGENT_ZMQ"] == "tcp://127.0.0.1:9"
    assert env["MESOS_CONTAINER_ID"] == "C" and env["MESOS_CHECKPOINT"] == "1"
    assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "5secs"  # Mesos's duration text
    assert env["MESOSLITE_AGENT_PID"] == "42"
    assert env["PYTHONPATH"] == os.pathsep.join(["/src", "/other"])
    assert "MESOS_TASK_ID" not in env


def test_sandbox_layout() -> None:
    """Sandboxes follow work_dir/agents/<a>/frameworks/<f>/executors/<e>/runs/<c>."""
    assert sandbox_dir("/w", "A", "F", "E", "C") == "/w/agents/A/frameworks/F/executors/E/runs/C"
