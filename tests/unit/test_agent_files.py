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
    resolve_request_path,
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


def test_resolve_follows_symlinks_and_refuses_escapes(tmp_path: Path) -> None:
    """Symlinks are resolved: inside links work, links pointing out are refused."""
    work = tmp_path / "work"
    sandbox = work / "runs" / "c1"
    sandbox.mkdir(parents=True)
    (sandbox / "stdout").write_text("hi")
    (work / "runs" / "latest").symlink_to("c1")
    outside = tmp_path / "secret"
    outside.write_text("no")
    (sandbox / "leak").symlink_to(outside)
    (sandbox / "up").symlink_to(tmp_path)
    real_work = os.path.realpath(work)

    assert resolve_request_path(str(work), str(work / "runs/latest/stdout")) == os.path.join(
        real_work, "runs", "c1", "stdout")
    assert resolve_request_path(str(work), "runs/c1/stdout").endswith("runs/c1/stdout")
    for bad in (str(outside), str(sandbox / "leak"), str(sandbox / "up" / "secret"), "/etc"):
        with pytest.raises(PathRefused) as info:
            resolve_request_path(str(work), bad)
        assert info.value.status == 403, bad
    with pytest.raises(PathRefused) as info:
        resolve_request_path(str(work), str(sandbox / "missing"))
    assert info.value.status == 404


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
