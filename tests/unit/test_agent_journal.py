"""Unit tests for the agent's checkpoint journal (batching, torn tails, compaction)."""

from __future__ import annotations

import os
import struct
import uuid
from pathlib import Path

import msgpack
import pytest

from mesoslite.agent.checkpoint import Checkpointer
from mesoslite.agent.journal import MAGIC, Journal, JournalCorrupt
from mesoslite.protocol import (
    AgentInfo,
    CommandInfo,
    ExecutorInfo,
    FrameworkInfo,
    StatusUpdate,
    TaskInfo,
    TaskState,
    TaskStatus,
    unstructure,
)
from mesoslite.resources import Resources


def update(task_id: str, state: TaskState) -> StatusUpdate:
    """An update of framework F."""
    return StatusUpdate("F", TaskStatus(task_id=task_id, state=state, uuid=uuid.uuid4().bytes))


def executor(eid: str) -> ExecutorInfo:
    """An executor of framework F."""
    return ExecutorInfo(executor_id=eid, command=CommandInfo(value="x"), framework_id="F")


def task(tid: str) -> TaskInfo:
    """A command task on agent S1."""
    return TaskInfo(name=tid, task_id=tid, agent_id="S1", resources=Resources.parse("cpus:1"),
                    command=CommandInfo(value="true"))


def test_records_are_buffered_until_one_sync(tmp_path: Path) -> None:
    """Appends only buffer (one on_dirty call); sync writes them all with one fdatasync."""
    journal = Journal(str(tmp_path / "journal"))
    dirty: list[int] = []
    journal.on_dirty = lambda: dirty.append(1)
    journal.append("RUN", "F", "E", "C", body={"pid": 1})
    journal.append("ACK", "F", "E", "C", "t", b"u" * 16)
    assert journal.pending and dirty == [1]
    assert not (tmp_path / "journal").exists()
    assert journal.sync() == 2
    assert (journal.syncs, journal.records, journal.pending) == (1, 2, False)
    assert journal.read() == [("RUN", "F", "E", "C", "", {"pid": 1}),
                              ("ACK", "F", "E", "C", "t", b"u" * 16)]
    assert journal.sync() == 0 and journal.syncs == 1
    with pytest.raises(ValueError, match="record kind"):
        journal.append("WHAT", "F")


def test_torn_tail_is_ignored_and_cut_before_appending(tmp_path: Path) -> None:
    """A half-written last record is skipped on read and cut when the file is reopened."""
    path = tmp_path / "journal"
    first = Journal(str(path))
    first.append("FORGET", "F")
    first.sync()
    first.close()
    with open(path, "ab") as f:
        f.write(b"\x00\x00\x01\x00torn")
    again = Journal(str(path))
    assert again.read() == [("FORGET", "F", "", "", "", None)]
    again.append("FORGET", "G")
    again.sync()
    assert [r[1] for r in again.read()] == ["F", "G"]


def test_compaction_keeps_only_what_recovery_needs(tmp_path: Path) -> None:
    """Closed tasks, their command executors and removed frameworks go; open work stays."""
    journal = Journal(str(tmp_path / "journal"))
    done, running = update("done", TaskState.TASK_FINISHED), update("open", TaskState.TASK_RUNNING)
    journal.append("EXECUTOR", "F", "done", body={"info": {}, "kind": "command", "host": "H"})
    journal.append("RUN", "F", "done", "C1", body={"pid": 0})
    journal.append("TASK", "F", "done", "C1", "done", unstructure(task("done")))
    journal.append("UPDATE", "F", "done", "C1", "done", unstructure(done))
    journal.append("ACK", "F", "done", "C1", "done", done.status.uuid)
    journal.append("EXECUTOR", "F", "open", body={"info": {}, "kind": "command", "host": "H"})
    journal.append("TASK", "F", "open", "C2", "open", unstructure(task("open")))
    journal.append("UPDATE", "F", "open", "C2", "open", unstructure(running))
    journal.append("ACK", "F", "open", "C2", "open", running.status.uuid)
    journal.append("EXECUTOR", "F", "custom", body={"info": {}, "kind": "custom", "host": ""})
    journal.append("EXECUTOR", "G", "gone", body={"info": {}, "kind": "custom", "host": ""})
    journal.append("FORGET", "G")
    journal.compact()
    kept = journal.read()
    assert {(r[0], r[2]) for r in kept} == {
        ("EXECUTOR", "open"), ("TASK", "open"), ("UPDATE", "open"), ("ACK", "open"),
        ("EXECUTOR", "custom"),
    }
    journal.append("FORGET", "F")
    journal.sync()
    assert journal.read()[-1][0] == "FORGET"


def test_compaction_happens_when_the_file_outgrows_its_limit(tmp_path: Path) -> None:
    """Syncing past compact_bytes rewrites the file smaller; it keeps working after."""
    journal = Journal(str(tmp_path / "journal"), compact_bytes=4096)
    for i in range(100):
        finished = update(f"t{i}", TaskState.TASK_FINISHED)
        journal.append("UPDATE", "F", f"t{i}", "C", f"t{i}", unstructure(finished))
        journal.append("ACK", "F", f"t{i}", "C", f"t{i}", finished.status.uuid)
        journal.sync()
    assert os.path.getsize(tmp_path / "journal") < 4096
    journal.append("FORGET", "X")
    journal.sync()
    assert journal.read()[-1] == ("FORGET", "X", "", "", "", None)


def test_checkpointer_records_are_durable_only_after_sync(tmp_path: Path) -> None:
    """Another reader sees the journal records once sync ran, and replays them in order."""
    cp = Checkpointer(str(tmp_path))
    cp.write_agent(AgentInfo(hostname="h", resources=Resources(), id="S1"))
    fw = FrameworkInfo(user="u", name="n", id="F", checkpoint=True)
    cp.write_framework("S1", fw)
    cp.write_executor("S1", "F", executor("E"), "custom")
    cp.write_run("S1", "F", "E", "C", 0, 0.0)
    cp.write_run("S1", "F", "E", "C", 42, 7.0, endpoint="tcp://x:1")
    cp.write_task("S1", "F", "E", "C", task("t"))
    running = update("t", TaskState.TASK_RUNNING)
    cp.append_updates("S1", "F", "E", "C", "t", [("UPDATE", running), ("ACK", b"x" * 16)])
    assert cp.pending
    before = Checkpointer(str(tmp_path)).load()
    assert before is not None and before.frameworks["F"].executors == {}
    cp.sync()
    state = Checkpointer(str(tmp_path)).load()
    assert state is not None and state.frameworks["F"].info == fw
    run = state.frameworks["F"].executors["E"].runs["C"]
    assert (run.pid, run.create_time, run.extra) == (42, 7.0, {"endpoint": "tcp://x:1"})
    assert run.tasks["t"].info == task("t")
    assert run.tasks["t"].records == [("UPDATE", running), ("ACK", b"x" * 16)]


def test_framework_removed_then_back_keeps_only_the_new_records(tmp_path: Path) -> None:
    """After remove_framework, records written for the framework again are what loads."""
    cp = Checkpointer(str(tmp_path))
    cp.write_agent(AgentInfo(hostname="h", resources=Resources(), id="S1"))
    fw = FrameworkInfo(user="u", name="n", id="F", checkpoint=True)
    cp.write_framework("S1", fw)
    cp.write_executor("S1", "F", executor("old"), "custom")
    cp.remove_framework("S1", "F")
    cp.write_framework("S1", fw)
    cp.write_executor("S1", "F", executor("new"), "custom")
    state = cp.load()
    assert state is not None
    assert state.frameworks["F"].info == fw
    assert set(state.frameworks["F"].executors) == {"new"}


def _three_records(path: Path) -> bytes:
    journal = Journal(str(path))
    for fid in ("F", "G", "H"):
        journal.append("EXECUTOR", fid, "e", body={"info": {}, "kind": "command", "host": "x"})
    journal.sync()
    journal.close()
    return path.read_bytes()


@pytest.mark.parametrize("where", ["first length", "first payload", "middle payload",
                                   "last payload", "last header"])
def test_a_flipped_bit_is_refused_never_truncated(tmp_path: Path, where: str) -> None:
    """Any flipped bit is JournalCorrupt naming the offset; the file stays, a copy is kept."""
    path = tmp_path / "journal"
    data = bytearray(_three_records(path))
    record = (len(data) - len(MAGIC)) // 3
    offsets = {"first length": len(MAGIC) + 1, "first payload": len(MAGIC) + 14,
               "middle payload": len(MAGIC) + record + 20, "last payload": len(data) - 2,
               "last header": len(data) - record + 5}
    data[offsets[where]] ^= 0x10
    path.write_bytes(bytes(data))
    for attempt in (lambda j: j.read(), lambda j: (j.append("FORGET", "X"), j.sync())):
        with pytest.raises(JournalCorrupt) as info:
            attempt(Journal(str(path)))
        assert "is corrupt at byte" in str(info.value)
        assert info.value.quarantine and Path(info.value.quarantine).read_bytes() == data
        assert path.read_bytes() == data  # never truncated, never appended to


def test_only_a_short_final_record_is_torn(tmp_path: Path) -> None:
    """Cutting the file inside the last record loses that record only."""
    path = tmp_path / "journal"
    data = _three_records(path)
    for cut in (1, 5, 13, 30):
        path.write_bytes(data[:-cut])
        journal = Journal(str(path))
        assert [r[1] for r in journal.read()] == ["F", "G"]
        journal.append("FORGET", "X")
        journal.sync()
        journal.close()
        assert [r[1] for r in Journal(str(path)).read()] == ["F", "G", "X"]


def test_a_journal_in_the_older_format_is_rewritten_with_checksums(tmp_path: Path) -> None:
    """Records without checksums (the older format) are read and rewritten in this one."""
    path = tmp_path / "journal"
    payload = msgpack.packb(["FORGET", "F", "", "", "", None])
    path.write_bytes(struct.pack(">I", len(payload)) + payload)
    journal = Journal(str(path))
    journal.append("FORGET", "G")
    journal.sync()
    assert path.read_bytes().startswith(MAGIC)
    assert [r[1] for r in Journal(str(path)).read()] == ["F", "G"]


def test_a_write_the_disk_refused_is_cut_back_and_retried_whole(tmp_path: Path) -> None:
    """A batch that only partly fits (file-size limit) is cut off; the retry appends it whole."""
    import resource

    path = tmp_path / "journal"
    journal = Journal(str(path))
    journal.append("FORGET", "F")
    journal.sync()
    size = path.stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    journal.append("EXECUTOR", "G", "e", body={"info": {"pad": "x" * 4000}, "kind": "custom"})
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))  # Python ignores SIGXFSZ
    try:
        with pytest.raises(OSError):
            journal.sync()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert path.stat().st_size == size and journal.pending
    assert journal.sync() == 1
    assert [r[1] for r in Journal(str(path)).read()] == ["F", "G"]
