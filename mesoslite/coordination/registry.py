"""Durable master state: the :class:`Registry` interface, its errors and the file store.

Owns: the interface every registry store implements (``load``, ``store``,
``apply``, ``close``), :class:`RegistryError` and :class:`FencedError`, the
write batching shared by the stores (like Mesos's registrar, operations that
arrive while a write is in flight go out together in the next write) and
:class:`FileRegistry`, the store for ``mesoslite local`` and single-master
setups.  The ZooKeeper store is :class:`mesoslite.coordination.zk_registry.
ZooKeeperRegistry`; the state, its records and operations live in
:mod:`mesoslite.coordination.registry_state`.

A store caches the state it last read or wrote.  After a failed write it
forgets that cache and re-reads before the next write, so a caller may
simply retry (operations are idempotent).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Protocol, runtime_checkable

from mesoslite.coordination.registry_state import (
    POLICY_SECTION,
    REGISTRY_FORMAT,
    SHARDED_SECTIONS,
    AdmitAgent,
    MarkAgentUnreachable,
    PutFramework,
    RegistryFormatError,
    RegistryOp,
    RegistryState,
    RemoveAgent,
    RemoveFramework,
    SetMaintenance,
    SetQuota,
    SetWeight,
    decode_data,
)
from mesoslite.durable import atomic_write, fsync_dir, write_all

log = logging.getLogger("mesoslite.coordination.registry")

#: Operation types :meth:`Registry.apply` accepts.
OPERATION_TYPES = (AdmitAgent, RemoveAgent, MarkAgentUnreachable, PutFramework, RemoveFramework,
                   SetWeight, SetQuota, SetMaintenance)

#: Most operations written in one batch.
MAX_BATCH_OPS = 5000
#: Records per ``json.dumps`` call when a big state is encoded (the writer thread lets the
#: event loop run between two calls; one call over everything would hold it throughout).
ENCODE_CHUNK = 500
#: A logging file registry rewrites its snapshot once the log is this big and bigger
#: than the snapshot (bytes): each record is then rewritten a bounded number of times.
LOG_COMPACT_MIN = 1 << 20

Entry = tuple[tuple[RegistryOp, ...], "asyncio.Future[None]"]


class RegistryError(RuntimeError):
    """A registry read or write failed; the store re-reads before its next write."""


class FencedError(RegistryError):
    """A write was refused because the writer is no longer the leader (its fence is gone)."""


class RegistryConflictError(RegistryError):
    """The stored registry changed underneath this writer (another writer); reload."""


class RegistryTimeoutError(RegistryError):
    """A registry read or write did not finish within its deadline."""


@runtime_checkable
class Registry(Protocol):
    """Where the master keeps what must survive a failover."""

    async def load(self) -> RegistryState:
        """Read the stored state (empty if nothing was ever stored); returns your own copy."""
        ...

    async def store(self, state: RegistryState) -> None:
        """Replace the stored state with ``state`` (writing only what changed, where possible)."""
        ...

    async def apply(self, *ops: RegistryOp) -> None:
        """Apply operations durably and atomically as a unit; returns once they are stored."""
        ...

    async def close(self) -> None:
        """Release resources (idempotent)."""
        ...


class BatchingRegistry:
    """Shared machinery: one writer at a time, queued operations batched, cache invalidation.

    Subclasses implement ``_load_locked()``, ``_store_locked(state)`` and
    ``_write_batch(entries)``, which must resolve each entry's future once its
    operations are durable.  All three run with the write lock held.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._state: RegistryState | None = None
        self._lock = asyncio.Lock()
        self._pending: list[Entry] = []
        self._writer: asyncio.Task[None] | None = None

    async def load(self) -> RegistryState:
        """Read the stored state; returns a copy the caller owns."""
        async with self._lock:
            try:
                await self._load_locked()
            except BaseException:
                self._state = None
                raise
            assert self._state is not None
            return self._state.copy()

    async def store(self, state: RegistryState) -> None:
        """Replace the stored state with ``state``."""
        if not isinstance(state, RegistryState):
            raise TypeError(f"state: expected a RegistryState, got {type(state).__name__}")
        async with self._lock:
            try:
                await self._store_locked(state)
            except BaseException:
                self._state = None
                raise

    async def apply(self, *ops: RegistryOp) -> None:
        """Apply ``ops`` as one unit; concurrent calls are batched into shared writes."""
        for i, op in enumerate(ops):
            if not isinstance(op, OPERATION_TYPES):
                raise TypeError(f"ops[{i}]: expected a registry operation, got {op!r}")
        if not ops:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((tuple(ops), future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        await future

    async def close(self) -> None:
        """Wait for queued writes to finish."""
        if self._writer is not None and not self._writer.done():
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _drain(self) -> None:
        while self._pending:
            batch: list[Entry] = []
            count = 0
            while self._pending and (not batch or count < MAX_BATCH_OPS):
                entry = self._pending.pop(0)
                batch.append(entry)
                count += len(entry[0])
            async with self._lock:
                try:
                    if self._state is None:
                        await self._load_locked()
                    await self._write_batch(batch)
                except BaseException as exc:
                    self._state = None
                    if not isinstance(exc, RegistryError | RegistryFormatError):
                        log.exception("%s: registry write failed", self.name)
                    for _ops, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue

    def _apply(self, entries: list[Entry]) -> None:
        """Apply every operation of ``entries`` to the loaded state, in order."""
        assert self._state is not None
        for ops, _future in entries:
            for op in ops:
                op.apply(self._state)

    @staticmethod
    def _resolve(entries: list[Entry]) -> None:
        for _ops, future in entries:
            if not future.done():
                future.set_result(None)

    async def _load_locked(self) -> None:
        raise NotImplementedError

    async def _store_locked(self, state: RegistryState) -> None:
        raise NotImplementedError

    async def _write_batch(self, entries: list[Entry]) -> None:
        raise NotImplementedError


class FileRegistry(BatchingRegistry):
    """The registry in one local file, replaced atomically on every write.

    Each write goes to a temporary file in the same directory, is flushed and
    fsynced, renamed over the old file, and the directory is fsynced.  A crash
    at any point leaves either the old or the new state readable, never a mix;
    stale temporary files are removed by the next write.

    With ``log=True`` (JSON only; what a master uses) a write appends the records
    it touched, as one line, to ``<path>.log`` and fsyncs it: the cost of a write
    is its own size, not the whole registry's (tens of thousands of agents).  The
    file is a snapshot; the log holds absolute values of records written since
    (replaying a line twice changes nothing), and once the log outgrows the
    snapshot a new snapshot is written and the log emptied.  A torn last line
    (a crash during the append, never acknowledged) is ignored on load.
    """

    def __init__(self, path: str | os.PathLike[str], *, fmt: str = "json",
                 log: bool = False) -> None:
        super().__init__(f"file registry {path}")
        if fmt not in ("json", "msgpack"):
            raise ValueError(f"fmt: expected 'json' or 'msgpack', got {fmt!r}")
        if log and fmt != "json":
            raise ValueError(f"log: only with fmt='json', got fmt={fmt!r}")
        self.path = Path(path)
        self.fmt = fmt
        self.log_path = Path(f"{path}.log") if log else None
        self._log_bytes = 0
        self._snapshot_bytes = 0

    async def _load_locked(self) -> None:
        data = await asyncio.to_thread(self._read)
        state = RegistryState() if data is None else RegistryState.decode(data, self.fmt)
        self._snapshot_bytes = len(data or b"")
        if self.log_path is not None:
            lines = await asyncio.to_thread(self._read_log)
            self._log_bytes = sum(len(line) + 1 for line in lines)
            if data is None and lines:
                raise RegistryFormatError("registry", f"{self.log_path} exists without "
                                          f"{self.path}")
            for number, line in enumerate(lines, 1):
                _replay(state, decode_data(line, "json", f"{self.log_path.name}:{number}"))
        self._state = state

    async def _store_locked(self, state: RegistryState) -> None:
        await self._write(state)
        self._state = state.copy()

    async def _write_batch(self, entries: list[Entry]) -> None:
        assert self._state is not None
        if self.log_path is None:
            self._apply(entries)
            await self._write(self._state)
            self._resolve(entries)
            return
        touched: list[tuple[str, str | None]] = []
        for ops, _future in entries:
            for op in ops:
                touched.extend(op.apply(self._state))
        if self._snapshot_bytes == 0:
            await self._write(self._state)
            self._resolve(entries)
            return
        # Appended even when a snapshot follows: the log then ends with the newest value
        # of every record it names, so replaying it over that snapshot changes nothing.
        line = _log_line(self._state, touched)
        try:
            await asyncio.to_thread(self._append, line)
        except OSError as exc:
            raise RegistryError(f"{self.name}: write failed: {exc}") from exc
        self._log_bytes += len(line)
        if self._log_bytes > max(LOG_COMPACT_MIN, self._snapshot_bytes):
            await self._write(self._state)
        self._resolve(entries)

    def _append(self, line: bytes) -> None:
        assert self.log_path is not None
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            write_all(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read_log(self) -> list[bytes]:
        """The log's complete lines (a torn last line, never acknowledged, is dropped)."""
        assert self.log_path is not None
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RegistryError(f"{self.name}: read failed: {exc}") from exc
        lines = data.split(b"\n")
        if lines[-1]:
            log.warning("%s: ignoring a torn last line of %s (%d bytes)", self.name,
                        self.log_path, len(lines[-1]))
        return [line for line in lines[:-1] if line]

    async def _write(self, state: RegistryState) -> None:
        # Encoded in the writer thread too: at tens of thousands of agents the document is
        # megabytes, and encoding it on the loop would stall every other message.  The
        # state does not change meanwhile: it changes only under the write lock we hold.
        try:
            await asyncio.to_thread(self._encode_and_write, state)
        except OSError as exc:
            raise RegistryError(f"{self.name}: write failed: {exc}") from exc

    def _encode_and_write(self, state: RegistryState) -> None:
        data = _encode_chunked(state) if self.fmt == "json" else state.encode(self.fmt)
        self._atomic_write(data)
        self._snapshot_bytes = len(data)
        if self.log_path is not None and self._log_bytes:
            # The snapshot holds everything the log did: empty it (a crash before this
            # replays the log over the new snapshot, which changes nothing).
            fd = os.open(self.log_path, os.O_WRONLY | os.O_TRUNC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_dir(str(self.log_path.parent))
            self._log_bytes = 0

    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RegistryError(f"{self.name}: read failed: {exc}") from exc

    def _temp_prefix(self) -> str:
        return f".{self.path.name}."

    def _atomic_write(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._remove_stale_temps()
        atomic_write(self.path, data, tmp_path=self.path.parent
                     / f"{self._temp_prefix()}{uuid.uuid4().hex}.tmp")

    def _remove_stale_temps(self) -> None:
        prefix = self._temp_prefix()
        for candidate in self.path.parent.iterdir():
            if candidate.name.startswith(prefix) and candidate.name.endswith(".tmp"):
                _unlink_quietly(str(candidate))


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _encode_chunked(state: RegistryState) -> bytes:
    """``state.encode("json")``, the same bytes, made ``ENCODE_CHUNK`` records at a time."""
    parts = [f'{{"format":{_dumps(REGISTRY_FORMAT)}']
    try:
        for section in SHARDED_SECTIONS:
            keys = list(getattr(state, section))
            chunks = []
            for start in range(0, len(keys), ENCODE_CHUNK):
                text = _dumps(state.section_dict(section, keys[start:start + ENCODE_CHUNK]))
                chunks.append(text[1:-1])
            parts.append(f",{_dumps(section)}:{{{','.join(chunks)}}}")
        parts.append(f",{_dumps(POLICY_SECTION)}:{_dumps(state.section_dict(POLICY_SECTION))}}}")
    except (TypeError, ValueError) as exc:
        raise RegistryFormatError("registry", f"cannot encode as json: {exc}") from None
    return "".join(parts).encode("utf-8")


def _log_line(state: RegistryState, touched: list[tuple[str, str | None]]) -> bytes:
    """One log line: the current value of every touched record (null: removed)."""
    line: dict[str, dict[str, object]] = {}
    for section, key in touched:
        if section == POLICY_SECTION:
            line[POLICY_SECTION] = state.section_dict(POLICY_SECTION)
            continue
        assert key is not None
        source = getattr(state, section)
        value = state.section_dict(section, [key])[key] if key in source else None
        line.setdefault(section, {})[key] = value
    try:
        return (_dumps(line) + "\n").encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise RegistryFormatError("registry", f"cannot encode as json: {exc}") from None


def _replay(state: RegistryState, line: object) -> None:
    """Apply one decoded log line to ``state`` (RegistryFormatError when malformed)."""
    if not isinstance(line, dict):
        raise RegistryFormatError("log", f"expected an object per line, got {line!r:.80}")
    for section, records in line.items():
        if section == POLICY_SECTION:
            state.weights, state.quota, state.maintenance = {}, {}, {}
            state.load_section(POLICY_SECTION, records)
            continue
        if section not in SHARDED_SECTIONS or not isinstance(records, dict):
            raise RegistryFormatError("log", f"unknown section {section!r:.80}")
        for key, value in records.items():
            if value is None:
                getattr(state, section).pop(key, None)
            else:
                state.load_section(section, {key: value})


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


__all__ = [
    "MAX_BATCH_OPS", "OPERATION_TYPES", "BatchingRegistry", "Entry", "FencedError",
    "FileRegistry", "Registry", "RegistryConflictError", "RegistryError", "RegistryTimeoutError",
]
