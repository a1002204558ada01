"""The agent's checkpoint journal: per-task checkpoint records in one append-only file.

Owns: ``meta/agents/<agent_id>/journal``, where the agent checkpoints what
changes once or more per task (executors, their runs, tasks and their
status-update records), the batching that makes it cheap, and compaction.

Format: the file starts with :data:`MAGIC`; each record is a 12-byte header (the
payload's length, the payload's CRC-32 and the CRC-32 of those 8 bytes, big-endian)
and the payload, a msgpack array
``[kind, framework_id, executor_id, container_id, task_id, body]`` with
kind ``EXECUTOR`` (body ``{"info", "kind", "host"}``), ``RUN`` (``{"pid",
"create_time", "extra"}``), ``TASK`` (a TaskInfo), ``UPDATE`` (a
StatusUpdate), ``ACK`` (the acknowledged uuid) or ``FORGET`` (the framework
was removed: what came before for it no longer counts).  Ids a kind does not
need are empty strings.  Later records win over earlier ones.  Only a short final
record (a crash in mid-write) is a torn write: it is ignored and cut off before
appending.  Anything else that is not a whole record with good checksums (a flipped
bit, a lost block) raises :class:`JournalCorrupt` naming the offset: the file is never
truncated, a copy is kept beside it (``journal.corrupt-<time>``), and the agent
refuses to start (as Mesos's ``--strict`` recovery does) rather than forget tasks.  A
journal in the older format (no checksums) is rewritten in this one when opened.

Durability: :meth:`Journal.append` only buffers.  :meth:`Journal.sync`
writes everything buffered with one ``write`` and makes it durable with one
``fdatasync``: one sync per batch, not one ``fsync`` per record (the
per-file layout this replaces cost a dozen fsyncs, about 3 ms, per task).
The agent calls :meth:`sync` before any message leaves it (its sockets' flush
barrier, see :mod:`mesoslite.transport`) and at the end of every event-loop
turn that buffered something, so a record is durable before anything that
depends on it (the executor's acknowledgement, the update sent to the
master, the task sent to its executor) is sent.

Compaction: once the file outgrows ``compact_bytes`` it is rewritten
(temporary file, fsync, rename) without closed tasks (terminal update
acknowledged), command executors left without tasks, and removed frameworks.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import msgpack

from mesoslite.durable import atomic_write, fsync_dir, write_all
from mesoslite.protocol import TERMINAL_STATES

log = logging.getLogger("mesoslite.agent")

_LEN = struct.Struct(">I")
MAX_RECORD = 64 * 1024 * 1024
KINDS = frozenset({"EXECUTOR", "RUN", "TASK", "UPDATE", "ACK", "FORGET"})
#: Default size (bytes) past which the journal is compacted.
COMPACT_BYTES = 8 * 1024 * 1024

#: (kind, framework_id, executor_id, container_id, task_id, body) as read back.
RawRecord = tuple[str, str, str, str, str, Any]


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


#: First bytes of a journal in this format (a file without them is the older format).
MAGIC = b"MLJOURNAL/2\n"
#: Each record: payload length, CRC-32 of the payload, CRC-32 of those 8 bytes.
_HEAD = struct.Struct(">III")


class JournalCorrupt(OSError):
    """The journal holds something other than whole records and one short final record.

    Never truncated: the file is left as it is, a copy is put beside it
    (``quarantine``), and the agent refuses to start until an operator decides.
    """

    def __init__(self, path: str, offset: int, reason: str, quarantine: str = "") -> None:
        """Name the file, where the damage starts and why."""
        self.path = path
        self.offset = offset
        self.reason = reason
        self.quarantine = quarantine
        kept = f"; a copy is kept at {quarantine}" if quarantine else ""
        message = (f"checkpoint journal {path} is corrupt at byte {offset}: {reason} "
                   f"(not a torn final write, so nothing was dropped or truncated{kept}); "
                   "restore it, or move the agent's meta/ directory away to start as a new "
                   "agent (its running tasks are then lost to it)")
        super().__init__(errno.EIO, message)


def frame_record(payload: bytes) -> bytes:
    """A record as written: the header (length and checksums) and ``payload``."""
    head = struct.pack(">II", len(payload), zlib.crc32(payload))
    return head + struct.pack(">I", zlib.crc32(head)) + payload


def _record(path: str, offset: int, payload: bytes) -> RawRecord:
    try:
        value = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except (ValueError, TypeError) as exc:
        raise JournalCorrupt(path, offset, f"undecodable record ({exc})") from None
    if (
        type(value) is not list
        or len(value) != 6
        or value[0] not in KINDS
        or not all(type(v) is str for v in value[1:5])
    ):
        raise JournalCorrupt(path, offset, "a record that is not [kind, ids..., body]")
    return (value[0], value[1], value[2], value[3], value[4], value[5])


def parse(data: bytes, path: str = "journal") -> tuple[list[tuple[RawRecord, bytes]], int, bool]:
    """``(records with their framed bytes, end of the last whole record, legacy format)``.

    Only a short final record (a write the crash cut off) is left out; anything else
    that is not a whole, checksummed record raises :class:`JournalCorrupt`.
    """
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):  # empty, or the header itself was cut off
            return [], 0, False
        return _parse_legacy(data, path)
    out: list[tuple[RawRecord, bytes]] = []
    pos = len(MAGIC)
    while pos < len(data):
        if len(data) - pos < _HEAD.size:
            break  # a short final header: torn
        size, crc, head_crc = _HEAD.unpack_from(data, pos)
        if zlib.crc32(data[pos:pos + 8]) != head_crc:
            raise JournalCorrupt(path, pos, "a record header fails its checksum")
        if size > MAX_RECORD:
            raise JournalCorrupt(path, pos, f"a record of {size} bytes (at most {MAX_RECORD})")
        end = pos + _HEAD.size + size
        if end > len(data):
            break  # a short final record: torn
        payload = data[pos + _HEAD.size:end]
        if zlib.crc32(payload) != crc:
            raise JournalCorrupt(path, pos, "a record fails its checksum")
        out.append((_record(path, pos, payload), data[pos:end]))
        pos = end
    return out, pos, False


def _parse_legacy(data: bytes, path: str) -> tuple[list[tuple[RawRecord, bytes]], int, bool]:
    """The older format (length-prefixed records, no checksums): read to be rewritten."""
    out: list[tuple[RawRecord, bytes]] = []
    pos = 0
    while pos + _LEN.size <= len(data):
        (size,) = _LEN.unpack_from(data, pos)
        end = pos + _LEN.size + size
        if size > MAX_RECORD:
            raise JournalCorrupt(path, pos, f"a record of {size} bytes (at most {MAX_RECORD})")
        if end > len(data):
            break
        payload = data[pos + _LEN.size:end]
        out.append((_record(path, pos, payload), frame_record(payload)))
        pos = end
    return out, pos, True


def iter_records(data: bytes, path: str = "journal") -> Iterator[tuple[RawRecord, bytes]]:
    """Parse journal bytes into ``(record, framed bytes)``; a torn final record is logged.

    Raises :class:`JournalCorrupt` for anything else that is not a whole record.
    """
    records, end, _legacy = parse(data, path)
    if end != len(data):
        log.warning("checkpoint %s: ignoring a torn final record (%d bytes)", path,
                    len(data) - end)
    yield from records


class _Entry:
    """One record as the compactor sees it."""

    __slots__ = ("data", "exec_kind", "kind", "scope", "terminal", "uuid")

    def __init__(self, kind: str, scope: tuple[str, ...], data: bytes) -> None:
        """Remember a record's kind, scope and raw bytes."""
        self.kind = kind
        self.scope = scope  # (fid,) | (fid, eid) | (fid, eid, cid) | (fid, eid, cid, tid)
        self.data = data
        self.uuid = b""  # UPDATE: its uuid; ACK: the acknowledged uuid
        self.terminal = False  # UPDATE: a terminal state
        self.exec_kind = ""  # EXECUTOR: custom | command | command-host


def _entry(record: RawRecord, data: bytes) -> _Entry:
    kind, fid, eid, cid, tid, body = record
    scope: tuple[str, ...] = {
        "FORGET": (fid,),
        "EXECUTOR": (fid, eid),
        "RUN": (fid, eid, cid),
    }.get(kind, (fid, eid, cid, tid))
    entry = _Entry(kind, scope, data)
    if kind == "UPDATE" and isinstance(body, dict):
        status = body.get("status")
        if isinstance(status, dict):
            uuid = status.get("uuid", b"")
            entry.uuid = uuid if isinstance(uuid, bytes) else b""
            entry.terminal = status.get("state") in _TERMINAL_STATE_NAMES
    elif kind == "ACK" and isinstance(body, bytes):
        entry.uuid = body
    elif kind == "EXECUTOR" and isinstance(body, dict):
        entry.exec_kind = str(body.get("kind", ""))
    return entry


_TERMINAL_STATE_NAMES = frozenset(state.value for state in TERMINAL_STATES)


def compacted(entries: list[_Entry]) -> list[_Entry]:
    """The entries that still matter: without closed tasks, finished command
    executors and removed frameworks (order kept)."""
    forgotten: dict[str, int] = {}
    for i, e in enumerate(entries):
        if e.kind == "FORGET":
            forgotten[e.scope[0]] = i
    terminal: dict[tuple[str, ...], bytes] = {}
    closed: set[tuple[str, ...]] = set()
    for e in entries:
        if e.kind == "UPDATE" and e.terminal:
            terminal[e.scope] = e.uuid
        elif e.kind == "ACK" and e.uuid and terminal.get(e.scope) == e.uuid:
            closed.add(e.scope)
    kept = [
        e for i, e in enumerate(entries)
        if e.kind != "FORGET" and forgotten.get(e.scope[0], -1) < i and e.scope not in closed
    ]
    busy = {e.scope[:2] for e in kept if len(e.scope) == 4}
    done_commands = {
        e.scope for e in kept
        if e.kind == "EXECUTOR" and e.exec_kind == "command" and e.scope not in busy
    }
    return [e for e in kept if len(e.scope) < 2 or e.scope[:2] not in done_commands]


class Journal:
    """One agent's journal file: buffered appends, batched durability, compaction."""

    def __init__(self, path: str, compact_bytes: int = COMPACT_BYTES) -> None:
        """Use ``path`` (created on the first sync); existing records are kept."""
        self.path = path
        self._compact_at = compact_bytes
        self._min_compact = compact_bytes
        self._fd: int | None = None
        self._buffer: list[bytes] = []
        self._size = 0
        #: Called when the first record enters an empty buffer (the agent schedules a sync).
        self.on_dirty: Callable[[], None] | None = None
        #: Batches made durable, and records in them (for metrics).
        self.syncs = 0
        self.records = 0

    @property
    def pending(self) -> bool:
        """True when records wait for :meth:`sync`."""
        return bool(self._buffer)

    def append(
        self, kind: str, fid: str, eid: str = "", cid: str = "", tid: str = "", body: Any = None
    ) -> None:
        """Buffer one record (durable after the next :meth:`sync`)."""
        if kind not in KINDS:
            raise ValueError(f"record kind: expected one of {sorted(KINDS)}, got {kind!r}")
        payload = _pack([kind, fid, eid, cid, tid, body])
        first = not self._buffer
        self._buffer.append(frame_record(payload))
        if first and self.on_dirty is not None:
            self.on_dirty()

    def sync(self) -> int:
        """Write what is buffered (one write) and fdatasync it; returns how many records."""
        if not self._buffer:
            return 0
        fd = self._open()
        data = b"".join(self._buffer)
        count = len(self._buffer)
        try:
            write_all(fd, data)
            os.fdatasync(fd)
        except OSError:
            # A full disk may have let part of the batch in: cut it off, so that the
            # retry appends whole records after the last durable one.
            try:
                os.ftruncate(fd, self._size)
            except OSError as exc:
                log.error("checkpoint %s: cannot cut a failed write back to %d bytes: %s",
                          self.path, self._size, exc)
            raise
        self._buffer.clear()
        self._size += len(data)
        self.syncs += 1
        self.records += count
        if self._size > self._compact_at:
            self.compact()
        return count

    def compact(self) -> None:
        """Rewrite the file with only the records that still matter (durably)."""
        self.sync()
        try:
            with open(self.path, "rb") as f:
                old = f.read()
        except FileNotFoundError:
            return
        entries = [_entry(record, raw) for record, raw in self._parse(old)]
        kept = compacted(entries)
        data = MAGIC + b"".join(e.data for e in kept)
        tmp = f"{self.path}.compact{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self.close()
        os.replace(tmp, self.path)
        fsync_dir(os.path.dirname(self.path))
        log.info("checkpoint journal %s compacted: %d of %d records kept (%d bytes)",
                 self.path, len(kept), len(entries), len(data))
        self._size = len(data)
        self._fd = fd
        os.lseek(fd, 0, os.SEEK_END)
        self._compact_at = max(self._min_compact, 2 * self._size)

    def close(self) -> None:
        """Close the file (buffered records stay buffered)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            directory = os.path.dirname(self.path)
            os.makedirs(directory, mode=0o700, exist_ok=True)
            try:
                with open(self.path, "rb") as f:
                    old: bytes | None = f.read()
            except FileNotFoundError:
                old = None
            if old is not None:
                old = self._prepare(old)
                self._size = len(old)
            self._fd = os.open(
                self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
            )
            os.fchmod(self._fd, 0o600)  # it holds task environments: this user only
            if old is None:
                write_all(self._fd, MAGIC)
                self._size = len(MAGIC)
                fsync_dir(directory)
        return self._fd

    def _parse(self, data: bytes) -> list[tuple[RawRecord, bytes]]:
        """The records of ``data``; on corruption a copy is quarantined and it raises."""
        try:
            return list(iter_records(data, self.path))
        except JournalCorrupt as exc:
            raise self._quarantined(exc) from None

    def _quarantined(self, exc: JournalCorrupt) -> JournalCorrupt:
        """Copy the journal aside (once per damage found) and name the copy in the error."""
        copy = f"{self.path}.corrupt-{int(time.time())}"
        try:
            if not os.path.exists(copy):
                shutil.copy2(self.path, copy)
                os.chmod(copy, 0o600)
        except OSError as err:
            log.error("checkpoint %s: cannot keep a copy of the corrupt journal: %s",
                      self.path, err)
            copy = ""
        log.error("%s", exc.strerror)
        return JournalCorrupt(exc.path, exc.offset, exc.reason, copy)

    def _prepare(self, old: bytes) -> bytes:
        """Make the file of an earlier run appendable: cut a torn final record (only that),
        rewrite one in the older format with checksums; returns what the file now holds."""
        try:
            records, end, legacy = parse(old, self.path)
        except JournalCorrupt as exc:
            raise self._quarantined(exc) from None
        if legacy or end < len(MAGIC):
            data = MAGIC + b"".join(raw for _record, raw in records)
            atomic_write(self.path, data)
            if legacy:
                log.info("checkpoint %s: rewritten with checksums (%d records)", self.path,
                         len(records))
            return data
        if end != len(old):
            log.warning("checkpoint %s: cutting a torn final record (%d bytes)", self.path,
                        len(old) - end)
            with open(self.path, "r+b") as f:
                f.truncate(end)
        return old[:end]

    def read(self) -> list[RawRecord]:
        """Every durable record, in order (buffered ones are not included)."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        return [record for record, _raw in self._parse(data)]
