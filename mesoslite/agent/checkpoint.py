"""Durable agent state under ``<work_dir>/meta`` (what agent recovery reads back).

Owns: the on-disk layout and format of checkpoints and reading them back:

```
meta/boot_id                                          host boot id at last start
meta/agents/latest -> <agent_id>                      symlink to the current agent
meta/agents/<agent_id>/agent.info                     AgentInfo (with id)
  frameworks/<fid>/framework.info                     FrameworkInfo
  journal                                             executors, runs, tasks, updates
```

``*.info`` files change rarely and are rewritten atomically (temp file,
fsync, rename, fsync of the directory).  What changes once or more per task
(executors and their runs, tasks, status-update records) goes to the
agent's append-only journal (:mod:`mesoslite.agent.journal`): buffered, then
written and made durable with one ``fdatasync`` per batch by :meth:`Checkpointer.sync`,
which the agent runs before any of its messages leaves (so a record is
durable before the acknowledgement or update that depends on it is sent).
Frameworks are checkpointed only when their ``FrameworkInfo.checkpoint`` is
true (as in Mesos); agent info always is.

Checkpoints of the earlier per-file layout
(``frameworks/<fid>/executors/<eid>/executor.info``, ``runs/<cid>/run.info``,
``tasks/<tid>/task.info`` and append-only ``task.updates``, each record a
4-byte big-endian length and a msgpack body) are still read back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import struct
from collections.abc import Callable, Iterable
from typing import Any

import msgpack

from mesoslite import durable
from mesoslite.agent.checkpointed import (
    CheckpointedAgent,
    CheckpointedExecutor,
    CheckpointedFramework,
    CheckpointedRun,
    CheckpointedTask,
)
from mesoslite.agent.effects import (
    ForgetFramework,
    WriteAgentInfo,
    WriteExecutor,
    WriteFramework,
    WriteRun,
    WriteTask,
    WriteUpdates,
)
from mesoslite.agent.journal import Journal, RawRecord
from mesoslite.agent.update_streams import Record
from mesoslite.protocol import (
    AgentInfo,
    DecodeError,
    ExecutorInfo,
    FrameworkInfo,
    StatusUpdate,
    TaskInfo,
    structure,
    unstructure,
)

log = logging.getLogger("mesoslite.agent")

_LEN = struct.Struct(">I")

#: The checkpoint effects :meth:`Checkpointer.write` performs.
CheckpointWrite = (WriteAgentInfo | WriteFramework | WriteExecutor | WriteRun | WriteTask
                   | WriteUpdates | ForgetFramework)
MAX_RECORD = 64 * 1024 * 1024


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=True)


def private_dirs(path: str) -> None:
    """Create directory ``path`` (and its parents) readable by this user only (0700)."""
    os.makedirs(path, mode=0o700, exist_ok=True)


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (its directory is created, 0700)."""
    private_dirs(os.path.dirname(path))
    durable.atomic_write(path, data)


def append_records(path: str, records: Iterable[Record]) -> None:
    """Append status-update records (UPDATE/ACK) to a ``task.updates`` file, fsynced."""
    chunks = []
    for kind, value in records:
        if kind == "UPDATE":
            body = _pack(["UPDATE", unstructure(value)])
        elif kind == "ACK":
            body = _pack(["ACK", value])
        else:
            raise ValueError(f"record kind: expected 'UPDATE' or 'ACK', got {kind!r}")
        chunks.append(_LEN.pack(len(body)) + body)
    new = not os.path.exists(path)
    private_dirs(os.path.dirname(path))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        durable.write_all(fd, b"".join(chunks))
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        durable.fsync_dir(os.path.dirname(path))


def read_records(path: str) -> list[Record]:
    """Read a ``task.updates`` file; a torn or corrupt tail is dropped (and logged)."""
    with open(path, "rb") as f:
        data = f.read()
    out: list[Record] = []
    pos = 0
    while pos + _LEN.size <= len(data):
        (size,) = _LEN.unpack_from(data, pos)
        if size > MAX_RECORD or pos + _LEN.size + size > len(data):
            break
        body = data[pos + _LEN.size : pos + _LEN.size + size]
        try:
            kind, value = _unpack(body)
            if kind == "UPDATE":
                out.append(("UPDATE", structure(StatusUpdate, value)))
            elif kind == "ACK" and isinstance(value, bytes):
                out.append(("ACK", value))
            else:
                break
        except (ValueError, TypeError, DecodeError):
            break
        pos += _LEN.size + size
    if pos != len(data):
        log.warning("checkpoint %s: ignoring %d torn bytes at the end", path, len(data) - pos)
    return out


class Checkpointer:
    """Reads and writes the ``meta`` tree of one agent work directory."""

    def __init__(self, work_dir: str) -> None:
        """Use ``<work_dir>/meta``."""
        self.meta_dir = os.path.join(work_dir, "meta")
        self._journals: dict[str, Journal] = {}
        #: Called when a journal gets its first buffered record (schedule :meth:`sync`).
        self.on_dirty: Callable[[], None] | None = None

    # ----------------------------------------------------------- journal

    def journal(self, agent_id: str) -> Journal:
        """The journal of agent ``agent_id`` (``meta/agents/<agent_id>/journal``)."""
        journal = self._journals.get(agent_id)
        if journal is None:
            journal = Journal(os.path.join(self.agent_dir(agent_id), "journal"))
            journal.on_dirty = self._dirty
            self._journals[agent_id] = journal
        return journal

    def _dirty(self) -> None:
        if self.on_dirty is not None:
            self.on_dirty()

    @property
    def pending(self) -> bool:
        """True when journal records wait for :meth:`sync`."""
        return any(j.pending for j in self._journals.values())

    def sync(self) -> int:
        """Make every buffered journal record durable (one write and fdatasync per journal)."""
        return sum(j.sync() for j in self._journals.values())

    def close(self) -> None:
        """Sync and close the journals."""
        try:
            self.sync()
        finally:
            for journal in self._journals.values():
                journal.close()

    # ----------------------------------------------------------- paths

    def agent_dir(self, agent_id: str) -> str:
        """``meta/agents/<agent_id>``."""
        return os.path.join(self.meta_dir, "agents", agent_id)

    def framework_dir(self, agent_id: str, framework_id: str) -> str:
        """``.../frameworks/<framework_id>``."""
        return os.path.join(self.agent_dir(agent_id), "frameworks", framework_id)

    def executor_dir(self, agent_id: str, framework_id: str, executor_id: str) -> str:
        """``.../executors/<executor_id>``."""
        return os.path.join(self.framework_dir(agent_id, framework_id), "executors", executor_id)

    def run_dir(self, agent_id: str, framework_id: str, executor_id: str, cid: str) -> str:
        """``.../runs/<container_id>``."""
        return os.path.join(self.executor_dir(agent_id, framework_id, executor_id), "runs", cid)

    def task_dir(self, agent_id: str, fid: str, eid: str, cid: str, task_id: str) -> str:
        """``.../tasks/<task_id>``."""
        return os.path.join(self.run_dir(agent_id, fid, eid, cid), "tasks", task_id)

    # ----------------------------------------------------------- writes

    def write(self, effect: CheckpointWrite, *, create_time: float = 0.0,
              endpoint: str = "") -> None:
        """Perform one of the core's checkpoint effects.

        A run with a process also records its start time and the executor
        endpoint (what a restarted agent needs to find and reach it again).
        """
        match effect:
            case WriteAgentInfo(info=info):
                self.write_agent(info)
            case WriteFramework(agent_id=agent_id, info=info):
                self.write_framework(agent_id, info)
            case WriteExecutor():
                self.write_executor(effect.agent_id, effect.framework_id, effect.info,
                                    effect.kind, effect.host_container_id)
            case WriteRun(pid=0):
                self.write_run(effect.agent_id, effect.framework_id, effect.executor_id,
                               effect.container_id, 0, 0.0, host=effect.host_container_id)
            case WriteRun():
                self.write_run(effect.agent_id, effect.framework_id, effect.executor_id,
                               effect.container_id, effect.pid, create_time, endpoint=endpoint)
            case WriteTask():
                self.write_task(effect.agent_id, effect.framework_id, effect.executor_id,
                                effect.container_id, effect.task)
            case WriteUpdates():
                self.append_updates(effect.agent_id, effect.framework_id, effect.executor_id,
                                    effect.container_id, effect.task_id, effect.records)
            case ForgetFramework(agent_id=agent_id, framework_id=framework_id):
                self.remove_framework(agent_id, framework_id)

    def write_boot_id(self, boot_id: str) -> None:
        """Record the host boot id of this agent start."""
        atomic_write(os.path.join(self.meta_dir, "boot_id"), boot_id.encode())
        os.chmod(self.meta_dir, 0o700)  # one made by an older agent may be world-readable

    def read_boot_id(self) -> str:
        """The boot id recorded by the last start ('' when none)."""
        try:
            with open(os.path.join(self.meta_dir, "boot_id"), "rb") as f:
                return f.read().decode(errors="replace").strip()
        except FileNotFoundError:
            return ""

    def write_agent(self, info: AgentInfo) -> None:
        """Record the registered agent's info and point ``latest`` at it."""
        atomic_write(os.path.join(self.agent_dir(info.id), "agent.info"), _pack(unstructure(info)))
        agents = os.path.join(self.meta_dir, "agents")
        tmp = os.path.join(agents, f".latest.tmp{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(info.id, tmp)
        os.replace(tmp, os.path.join(agents, "latest"))
        durable.fsync_dir(agents)

    def forget_latest(self) -> None:
        """Drop the ``latest`` link: the next start registers as a new agent."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.meta_dir, "agents", "latest"))

    def write_framework(self, agent_id: str, info: FrameworkInfo) -> None:
        """Record a checkpointing framework's info."""
        path = os.path.join(self.framework_dir(agent_id, info.id), "framework.info")
        atomic_write(path, _pack(unstructure(info)))

    def write_executor(
        self,
        agent_id: str,
        framework_id: str,
        info: ExecutorInfo,
        kind: str,
        host_container_id: str = "",
    ) -> None:
        """Record an executor (``kind`` custom | command | command-host) in the journal."""
        body = {"info": unstructure(info), "kind": kind, "host": host_container_id}
        self.journal(agent_id).append("EXECUTOR", framework_id, info.executor_id, body=body)

    def write_run(
        self,
        agent_id: str,
        framework_id: str,
        executor_id: str,
        container_id: str,
        pid: int,
        create_time: float,
        **extra: Any,
    ) -> None:
        """Record the process of a container run (pid + start time detect pid reuse)."""
        body = {"pid": pid, "create_time": create_time, "extra": extra}
        self.journal(agent_id).append("RUN", framework_id, executor_id, container_id, body=body)

    def write_task(
        self, agent_id: str, framework_id: str, executor_id: str, container_id: str, task: TaskInfo
    ) -> None:
        """Record a task given to an executor run."""
        self.journal(agent_id).append(
            "TASK", framework_id, executor_id, container_id, task.task_id, unstructure(task)
        )

    def append_updates(
        self,
        agent_id: str,
        framework_id: str,
        executor_id: str,
        container_id: str,
        task_id: str,
        records: Iterable[Record],
    ) -> None:
        """Append a task's UPDATE/ACK records to the journal."""
        journal = self.journal(agent_id)
        for kind, value in records:
            if kind == "UPDATE":
                body = unstructure(value)
            elif kind == "ACK":
                body = value
            else:
                raise ValueError(f"record kind: expected 'UPDATE' or 'ACK', got {kind!r}")
            journal.append(kind, framework_id, executor_id, container_id, task_id, body)

    def remove_framework(self, agent_id: str, framework_id: str) -> None:
        """Delete a framework's checkpoint (it was shut down)."""
        shutil.rmtree(self.framework_dir(agent_id, framework_id), ignore_errors=True)
        self.journal(agent_id).append("FORGET", framework_id)

    # ----------------------------------------------------------- reads

    def latest_agent_id(self) -> str | None:
        """The agent id ``latest`` points at, or None."""
        try:
            return os.readlink(os.path.join(self.meta_dir, "agents", "latest"))
        except OSError:
            return None

    def load(self, agent_id: str | None = None) -> CheckpointedAgent | None:
        """Read back the agent ``agent_id`` (default: latest); None when nothing is there."""
        agent_id = agent_id or self.latest_agent_id()
        if not agent_id:
            return None
        self.sync()
        info = self._read_struct(os.path.join(self.agent_dir(agent_id), "agent.info"), AgentInfo)
        if info is None:
            return None
        agent = CheckpointedAgent(info=info, boot_id=self.read_boot_id())
        frameworks = os.path.join(self.agent_dir(agent_id), "frameworks")
        for fid in _listdir(frameworks):
            fdir = os.path.join(frameworks, fid)
            fw = CheckpointedFramework(
                info=self._read_struct(os.path.join(fdir, "framework.info"), FrameworkInfo)
            )
            agent.frameworks[fid] = fw
            for eid in _listdir(os.path.join(fdir, "executors")):
                fw.executors[eid] = self._load_executor(os.path.join(fdir, "executors", eid), eid)
        journal = self._journals.get(agent_id) or Journal(
            os.path.join(self.agent_dir(agent_id), "journal")
        )
        on_disk = set(agent.frameworks)
        for record in journal.read():
            self._replay(agent, record, journal.path, on_disk)
        return agent

    def _replay(
        self, agent: CheckpointedAgent, record: RawRecord, path: str, on_disk: set[str]
    ) -> None:
        """Apply one journal record to what was loaded (bad records are logged and skipped).

        ``FORGET`` drops what came before for the framework; a ``framework.info``
        still on disk was written after it (removal deletes the directory).
        """
        kind, fid, eid, cid, tid, body = record
        if kind == "FORGET":
            if fid in on_disk:
                agent.frameworks[fid].executors.clear()
            else:
                agent.frameworks.pop(fid, None)
            return
        fw = agent.frameworks.get(fid)
        if fw is None:
            fw = agent.frameworks[fid] = CheckpointedFramework(info=None)
        ex = fw.executors.get(eid)
        if ex is None:
            ex = fw.executors[eid] = CheckpointedExecutor(executor_id=eid, info=None)
        try:
            if kind == "EXECUTOR":
                raw = body if isinstance(body, dict) else {}
                if "info" in raw:
                    ex.info = structure(ExecutorInfo, raw["info"])
                ex.kind = str(raw.get("kind", "custom"))
                ex.host_container_id = str(raw.get("host", ""))
                return
            run = ex.runs.get(cid)
            if run is None:
                run = ex.runs[cid] = CheckpointedRun(container_id=cid)
            if kind == "RUN":
                raw = body if isinstance(body, dict) else {}
                run.pid = int(raw.get("pid", 0))
                run.create_time = float(raw.get("create_time", 0.0))
                run.extra = dict(raw.get("extra", {}))
                return
            task = run.tasks.get(tid)
            if task is None:
                task = run.tasks[tid] = CheckpointedTask(info=None)
            if kind == "TASK":
                task.info = structure(TaskInfo, body)
            elif kind == "UPDATE":
                task.records.append(("UPDATE", structure(StatusUpdate, body)))
            elif kind == "ACK" and isinstance(body, bytes):
                task.records.append(("ACK", body))
        except (DecodeError, TypeError, ValueError) as exc:
            log.warning("checkpoint %s: skipping a bad %s record of framework %s: %s",
                        path, kind, fid, exc)

    def _load_executor(self, edir: str, eid: str) -> CheckpointedExecutor:
        raw = self._read_raw(os.path.join(edir, "executor.info")) or {}
        info = None
        if isinstance(raw, dict) and "info" in raw:
            with contextlib.suppress(DecodeError):
                info = structure(ExecutorInfo, raw["info"])
        ex = CheckpointedExecutor(
            executor_id=eid,
            info=info,
            kind=str(raw.get("kind", "custom")) if isinstance(raw, dict) else "custom",
            host_container_id=str(raw.get("host", "")) if isinstance(raw, dict) else "",
        )
        for cid in _listdir(os.path.join(edir, "runs")):
            rdir = os.path.join(edir, "runs", cid)
            if os.path.islink(rdir):
                continue
            body = self._read_raw(os.path.join(rdir, "run.info")) or {}
            run = CheckpointedRun(
                container_id=cid,
                pid=int(body.get("pid", 0)) if isinstance(body, dict) else 0,
                create_time=float(body.get("create_time", 0.0)) if isinstance(body, dict) else 0.0,
                extra=dict(body.get("extra", {})) if isinstance(body, dict) else {},
            )
            ex.runs[cid] = run
            for tid in _listdir(os.path.join(rdir, "tasks")):
                tdir = os.path.join(rdir, "tasks", tid)
                task = CheckpointedTask(
                    info=self._read_struct(os.path.join(tdir, "task.info"), TaskInfo)
                )
                updates = os.path.join(tdir, "task.updates")
                if os.path.exists(updates):
                    task.records = read_records(updates)
                run.tasks[tid] = task
        return ex

    @staticmethod
    def _read_raw(path: str) -> Any:
        try:
            with open(path, "rb") as f:
                return _unpack(f.read())
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            log.warning("checkpoint %s is corrupt; ignoring it", path)
            return None

    def _read_struct(self, path: str, cls: type) -> Any:
        raw = self._read_raw(path)
        if raw is None:
            return None
        try:
            return structure(cls, raw)
        except DecodeError as exc:
            log.warning("checkpoint %s does not hold a valid %s: %s", path, cls.__name__, exc)
            return None


def _listdir(path: str) -> list[str]:
    try:
        return sorted(name for name in os.listdir(path) if not name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []
