"""Durable agent state under ``<work_dir>/meta`` (what agent recovery reads back).

Owns: the on-disk layout and format of checkpoints, written with fsync so a
crash leaves either the old or the new content:

```
meta/boot_id                                          host boot id at last start
meta/agents/latest -> <agent_id>                      symlink to the current agent
meta/agents/<agent_id>/agent.info                     AgentInfo (with id)
  frameworks/<fid>/framework.info                     FrameworkInfo
  frameworks/<fid>/executors/<eid>/executor.info      {"info": ExecutorInfo, "kind", "host"}
  .../executors/<eid>/runs/<cid>/run.info             {"pid", "create_time", "endpoint", ...}
  .../executors/<eid>/runs/<cid>/tasks/<tid>/task.info      TaskInfo
  .../executors/<eid>/runs/<cid>/tasks/<tid>/task.updates   UPDATE/ACK records (append-only)
```

``*.info`` files are rewritten atomically (temp file, fsync, rename, fsync of
the directory); ``task.updates`` is append-only: each record is a 4-byte
big-endian length and a msgpack body, fsynced; a torn last record (crash in
mid-write) is ignored on load.  Frameworks are checkpointed only when their
``FrameworkInfo.checkpoint`` is true (as in Mesos); agent info always is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import struct
from collections.abc import Iterable
from typing import Any

import attrs
import msgpack

from mesoslite.agent.status_updates import Record
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
MAX_RECORD = 64 * 1024 * 1024


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=True)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(directory)


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
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, b"".join(chunks))
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        _fsync_dir(os.path.dirname(path))


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


@attrs.define
class CheckpointedTask:
    """A task as read back: its info and its status-update records."""

    info: TaskInfo | None
    records: list[Record] = attrs.field(factory=list)


@attrs.define
class CheckpointedRun:
    """One container run of an executor: the process and the tasks it was given."""

    container_id: str
    pid: int = 0
    create_time: float = 0.0
    extra: dict[str, Any] = attrs.field(factory=dict)
    tasks: dict[str, CheckpointedTask] = attrs.field(factory=dict)


@attrs.define
class CheckpointedExecutor:
    """An executor: its info, kind (custom | command | command-host) and runs."""

    executor_id: str
    info: ExecutorInfo | None
    kind: str = "custom"
    host_container_id: str = ""
    runs: dict[str, CheckpointedRun] = attrs.field(factory=dict)


@attrs.define
class CheckpointedFramework:
    """A checkpointing framework and its executors."""

    info: FrameworkInfo | None
    executors: dict[str, CheckpointedExecutor] = attrs.field(factory=dict)


@attrs.define
class CheckpointedAgent:
    """Everything the last agent run left on disk."""

    info: AgentInfo
    boot_id: str
    frameworks: dict[str, CheckpointedFramework] = attrs.field(factory=dict)


class Checkpointer:
    """Reads and writes the ``meta`` tree of one agent work directory."""

    def __init__(self, work_dir: str) -> None:
        """Use ``<work_dir>/meta``."""
        self.meta_dir = os.path.join(work_dir, "meta")

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

    def write_boot_id(self, boot_id: str) -> None:
        """Record the host boot id of this agent start."""
        atomic_write(os.path.join(self.meta_dir, "boot_id"), boot_id.encode())

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
        _fsync_dir(agents)

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
        """Record an executor (``kind`` custom | command | command-host)."""
        path = os.path.join(
            self.executor_dir(agent_id, framework_id, info.executor_id), "executor.info"
        )
        body = {"info": unstructure(info), "kind": kind, "host": host_container_id}
        atomic_write(path, _pack(body))

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
        path = os.path.join(
            self.run_dir(agent_id, framework_id, executor_id, container_id), "run.info"
        )
        body = {"pid": pid, "create_time": create_time, "extra": extra}
        atomic_write(path, _pack(body))

    def write_task(
        self, agent_id: str, framework_id: str, executor_id: str, container_id: str, task: TaskInfo
    ) -> None:
        """Record a task given to an executor run."""
        path = os.path.join(
            self.task_dir(agent_id, framework_id, executor_id, container_id, task.task_id),
            "task.info",
        )
        atomic_write(path, _pack(unstructure(task)))

    def append_updates(
        self,
        agent_id: str,
        framework_id: str,
        executor_id: str,
        container_id: str,
        task_id: str,
        records: Iterable[Record],
    ) -> None:
        """Append UPDATE/ACK records to a task's ``task.updates``."""
        path = os.path.join(
            self.task_dir(agent_id, framework_id, executor_id, container_id, task_id),
            "task.updates",
        )
        append_records(path, records)

    def remove_framework(self, agent_id: str, framework_id: str) -> None:
        """Delete a framework's checkpoint (it was shut down)."""
        shutil.rmtree(self.framework_dir(agent_id, framework_id), ignore_errors=True)

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
        return agent

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
