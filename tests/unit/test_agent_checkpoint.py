"""Unit tests for the agent checkpoint format (write, torn tails, load, replay)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from mesoslite.agent.checkpoint import Checkpointer, append_records, read_records
from mesoslite.agent.update_streams import StatusUpdateManager
from mesoslite.protocol import (
    AgentInfo,
    CommandInfo,
    ExecutorInfo,
    FrameworkInfo,
    StatusUpdate,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mesoslite.resources import Resources
from mesoslite.testing import FakeClock


def update(state: TaskState) -> StatusUpdate:
    """An update for task t of framework F."""
    return StatusUpdate("F", TaskStatus(task_id="t", state=state, uuid=uuid.uuid4().bytes))


def test_records_round_trip_and_torn_tail_is_ignored(tmp_path: Path) -> None:
    """Appended UPDATE/ACK records read back in order; a half-written record is dropped."""
    path = str(tmp_path / "task.updates")
    running, finished = update(TaskState.TASK_RUNNING), update(TaskState.TASK_FINISHED)
    append_records(path, [("UPDATE", running)])
    append_records(path, [("ACK", running.status.uuid), ("UPDATE", finished)])
    assert read_records(path) == [
        ("UPDATE", running), ("ACK", running.status.uuid), ("UPDATE", finished)]
    with open(path, "ab") as f:
        f.write(b"\x00\x00\x01\x00garbage")
    assert len(read_records(path)) == 3
    with pytest.raises(ValueError, match="record kind"):
        append_records(path, [("WHAT", None)])


def test_checkpointer_tree_loads_back(tmp_path: Path) -> None:
    """Agent, framework, executor, run and task checkpoints load into one structure."""
    cp = Checkpointer(str(tmp_path))
    assert cp.load() is None
    agent = AgentInfo(hostname="h", resources=Resources.parse("cpus:1"), id="S1")
    cp.write_boot_id("boot-1")
    cp.write_agent(agent)
    fw = FrameworkInfo(user="u", name="n", id="F", checkpoint=True)
    cp.write_framework("S1", fw)
    ex = ExecutorInfo(executor_id="E", command=CommandInfo(value="x"), framework_id="F")
    cp.write_executor("S1", "F", ex, "custom")
    cp.write_run("S1", "F", "E", "C", 1234, 99.5, endpoint="tcp://127.0.0.1:1")
    task = TaskInfo(name="t", task_id="t", agent_id="S1", resources=Resources.parse("cpus:1"),
                    executor=ex)
    cp.write_task("S1", "F", "E", "C", task)
    running = update(TaskState.TASK_RUNNING)
    cp.append_updates("S1", "F", "E", "C", "t", [("UPDATE", running)])

    state = cp.load()
    assert state is not None
    assert state.info == agent and state.boot_id == "boot-1"
    loaded = state.frameworks["F"]
    assert loaded.info == fw
    executor = loaded.executors["E"]
    assert executor.info == ex and executor.kind == "custom"
    run = executor.runs["C"]
    assert (run.pid, run.create_time, run.extra) == (1234, 99.5, {"endpoint": "tcp://127.0.0.1:1"})
    assert run.tasks["t"].info == task
    manager = StatusUpdateManager(FakeClock())
    manager.replay("F", "t", run.tasks["t"].records)
    assert manager.resend_all() == [running]

    cp.remove_framework("S1", "F")
    reloaded = cp.load()
    assert reloaded is not None and reloaded.frameworks == {}
    cp.forget_latest()
    assert cp.load() is None
    assert cp.load("S1") is not None


def test_corrupt_info_files_are_skipped(tmp_path: Path) -> None:
    """A corrupt framework.info is logged and treated as missing, not fatal."""
    cp = Checkpointer(str(tmp_path))
    cp.write_agent(AgentInfo(hostname="h", resources=Resources(), id="S1"))
    path = os.path.join(cp.framework_dir("S1", "F"), "framework.info")
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(b"\xc1\xc1")
    state = cp.load()
    assert state is not None and state.frameworks["F"].info is None
