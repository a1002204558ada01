"""The store in a local state directory: memory, made durable by an append-only journal.

Owns: :class:`FileStore`, for a single framework instance without ZooKeeper:
the directory lock, loading (snapshot + journal replay, a torn tail cut off),
all-or-nothing commits appended and fdatasynced on a worker thread,
compaction into a new snapshot, and the one-time import of the old
one-directory-per-key layout.  The file formats are ``journal``'s; the
contract every store keeps is ``store``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from frameworks.marathon.state.journal import (
    TMP_MARKER,
    JournalError,
    KeyTree,
    encode_commit,
    encode_journal_start,
    encode_snapshot,
    read_old_layout,
    read_snapshot,
    scan_journal,
    write_atomic,
)
from frameworks.marathon.state.store import (
    DEFAULT_MAX_VALUE_BYTES,
    InvalidKeyError,
    StoreError,
    check_batch,
    split_key,
)
from mesoslite.durable import fsync_dir, write_all

_JOURNAL = "journal"
_SNAPSHOT = "snapshot"
_LOCK = "lock"
_OLD_LAYOUT = "old-layout"

log = logging.getLogger(__name__)


class FileStore:
    """The whole key space in memory, made durable by an append-only journal in ``state_dir``.

    Files: ``journal`` (one record per commit), ``snapshot`` (the state the journal
    starts from), ``lock`` (held with flock while the store is open: one process per
    directory); formats in :mod:`frameworks.marathon.state.journal`.

    ``commit`` is all or nothing: its puts and deletes form one journal record,
    appended and fdatasynced on the store's worker thread before memory changes and
    before ``commit`` returns.  Reads answer from memory.  On start the snapshot is
    loaded and the journal replayed; a torn last record (a commit that never
    returned) is cut off, damage before it is an error naming the file and offset.
    When the journal grows past ``max(compact_min_bytes, 2 x live data)`` the state
    is written to a new snapshot and the journal starts empty (a generation number
    in both files tells a stale journal from a current one).  A directory in the
    old one-directory-per-key layout is imported once into a snapshot at start and
    its files are moved to ``old-layout/``.
    """

    #: Compaction never runs while the journal is smaller than this.
    DEFAULT_COMPACT_MIN_BYTES = 4 * 1024 * 1024

    def __init__(self, state_dir: str | os.PathLike[str], *,
                 max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
                 compact_min_bytes: int = DEFAULT_COMPACT_MIN_BYTES) -> None:
        self.root = Path(state_dir).resolve()
        self.max_value_bytes = max_value_bytes
        #: No limit on a commit's total size here (ZooKeeperStore has one).
        self.max_commit_bytes: int | None = None
        self.compact_min_bytes = compact_min_bytes
        self._executor: ThreadPoolExecutor | None = None
        self._tree = KeyTree()
        self._tree_lock = threading.Lock()  # the worker applies, the event loop reads
        self._lock_fd: int | None = None
        self._journal_fd: int | None = None
        self._journal_size = 0
        self._generation = 0
        self._broken: str | None = None  # set when the journal can no longer be trusted

    @property
    def journal_path(self) -> Path:
        """The journal file."""
        return self.root / _JOURNAL

    @property
    def snapshot_path(self) -> Path:
        """The snapshot file."""
        return self.root / _SNAPSHOT

    async def start(self) -> None:
        """Lock the directory, migrate an old layout, load the snapshot, replay the journal."""
        await self._run(self._start_sync)

    async def close(self) -> None:
        """Finish pending work, close the journal and release the lock (idempotent)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(executor, self._close_files)
            await loop.run_in_executor(None, executor.shutdown, True)
        else:
            self._close_files()

    async def get(self, key: str) -> bytes | None:
        """The value of ``key`` (None when it has none)."""
        split_key(key)
        with self._tree_lock:
            return self._tree.get(key)

    async def put(self, key: str, data: bytes) -> None:
        """Durably set the value of ``key``."""
        await self.commit({key: data}, [])

    async def delete(self, key: str) -> None:
        """Delete ``key`` and everything under it (no-op when absent)."""
        await self.commit({}, [key])

    async def children(self, key: str) -> list[str]:
        """Names directly under ``key`` that hold a value or have descendants, sorted."""
        split_key(key)
        with self._tree_lock:
            return self._tree.children(key)

    async def commit(self, puts: Mapping[str, bytes], deletes: Sequence[str] = ()) -> None:
        """Append the batch to the journal as one record, fdatasync, then apply it."""
        check_batch(puts, deletes, self.max_value_bytes)
        if not puts and not deletes:
            return
        await self._run(self._commit_sync, {key: bytes(data) for key, data in puts.items()},
                        list(deletes))

    # ------------------------------------------------------------ worker-thread side

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="filestore")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _fail(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"state directory {self.root}: {what}: {exc}")

    def _start_sync(self) -> None:
        if self._journal_fd is not None:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.root, 0o700)  # state (app definitions, env) is for this user only
            self._lock()
            for name in os.listdir(self.root):
                if TMP_MARKER in name and name.split(TMP_MARKER)[0] in (_JOURNAL, _SNAPSHOT):
                    os.unlink(self.root / name)
            if not self.journal_path.exists() and not self.snapshot_path.exists():
                self._migrate_old_layout()
            self._load()
            self._journal_fd = os.open(self.journal_path, os.O_WRONLY)
            os.fchmod(self._journal_fd, 0o600)  # one written world-readable before
            os.lseek(self._journal_fd, 0, os.SEEK_END)
        except JournalError as exc:
            self._close_files()
            raise StoreError(f"state directory {self.root}: cannot load: {exc}") from exc
        except OSError as exc:
            self._close_files()
            raise self._fail("cannot open", exc) from exc
        except BaseException:
            self._close_files()
            raise

    def _lock(self) -> None:
        path = self.root / _LOCK
        if path.is_dir():
            raise StoreError(f"state directory {self.root}: {path} is a directory; move it "
                             "away (the store keeps its lock file there)")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise StoreError(f"state directory {self.root}: in use by another store (lock "
                             f"{path} is held; is another instance running on it?)") from exc
        self._lock_fd = fd
        os.ftruncate(fd, 0)
        write_all(fd, f"{os.getpid()}\n".encode())

    def _migrate_old_layout(self) -> None:
        skip = {_JOURNAL, _SNAPSHOT, _LOCK, _OLD_LAYOUT}
        values = read_old_layout(self.root, skip)
        if not values:
            return
        for key in values:
            try:
                split_key(key)
            except InvalidKeyError as exc:
                raise StoreError(f"state directory {self.root}: old layout holds a bad key, "
                                 f"not migrated: {exc}") from exc
        write_atomic(self.snapshot_path, encode_snapshot(1, values))
        old = self.root / _OLD_LAYOUT
        old.mkdir(exist_ok=True)
        for name in sorted(os.listdir(self.root)):
            if name not in skip:
                os.rename(self.root / name, old / name)
        fsync_dir(old)
        fsync_dir(self.root)
        log.info("state directory %s: imported %d keys of the old layout (old files in %s)",
                 self.root, len(values), old)

    def _load(self) -> None:
        tree = KeyTree()
        generation = 0
        if self.snapshot_path.exists():
            generation, values = read_snapshot(self.snapshot_path)
            for key, data in values.items():
                tree.put(key, data)
        scan = scan_journal(self.journal_path) if self.journal_path.exists() else None
        if scan is not None and scan.generation > generation:
            raise JournalError(f"{self.journal_path}: generation {scan.generation} is newer "
                               f"than the snapshot's ({generation}); the snapshot is missing "
                               "or old")
        if scan is None or scan.generation < generation:
            # No journal yet, or compaction stopped after writing the snapshot: the old
            # journal's records are all in the snapshot.
            write_atomic(self.journal_path, encode_journal_start(generation))
            self._journal_size = len(encode_journal_start(generation))
        else:
            for puts, deletes in scan.commits:
                tree.apply(puts, deletes)
            if scan.good_end < scan.size:
                log.warning("%s: cutting a torn last record at offset %d (%d bytes; its "
                            "commit never returned)", self.journal_path, scan.good_end,
                            scan.size - scan.good_end)
                fd = os.open(self.journal_path, os.O_WRONLY)
                try:
                    os.ftruncate(fd, scan.good_end)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self._journal_size = scan.good_end
        self._generation = generation
        with self._tree_lock:
            self._tree = tree

    def _commit_sync(self, puts: dict[str, bytes], deletes: list[str]) -> None:
        fd = self._journal_fd
        if fd is None:
            raise StoreError(f"state directory {self.root}: the store is not started")
        if self._broken is not None:
            raise StoreError(f"state directory {self.root}: writes refused: {self._broken}")
        record = encode_commit(puts, deletes)
        before = self._journal_size
        try:
            write_all(fd, record)
            os.fdatasync(fd)
        except OSError as exc:
            self._undo_append(fd, before, exc)
            raise self._fail(f"cannot write the journal (keys {sorted(puts)[:3]}, deletes "
                             f"{deletes[:3]})", exc) from exc
        self._journal_size = before + len(record)
        with self._tree_lock:
            self._tree.apply(puts, deletes)
        if self._journal_size > max(self.compact_min_bytes, 2 * self._tree.live_bytes):
            self._compact()

    def _undo_append(self, fd: int, before: int, exc: OSError) -> None:
        """Cut a failed append back off the journal; refuse writes if even that fails."""
        try:
            os.ftruncate(fd, before)
            os.lseek(fd, before, os.SEEK_SET)
            os.fdatasync(fd)
        except OSError as undo_exc:
            self._broken = (f"a failed journal append ({exc}) could not be undone "
                            f"({undo_exc}); restart the store")

    def _compact(self) -> None:
        """Snapshot the state under the next generation, then start an empty journal."""
        generation = self._generation + 1
        try:
            write_atomic(self.snapshot_path, encode_snapshot(generation, self._tree.values))
        except OSError as exc:  # nothing changed: the next commit tries again
            log.warning("%s: compaction failed writing the snapshot: %s", self.root, exc)
            return
        try:
            start = encode_journal_start(generation)
            write_atomic(self.journal_path, start)
            fd = os.open(self.journal_path, os.O_WRONLY)
        except OSError as exc:
            # The new snapshot supersedes the journal we hold open: appending to it
            # would write records a restart ignores.
            self._broken = f"compaction wrote a snapshot but no new journal ({exc})"
            log.error("%s: %s; restart the store", self.root, self._broken)
            return
        os.lseek(fd, 0, os.SEEK_END)
        old_fd, self._journal_fd = self._journal_fd, fd
        if old_fd is not None:
            os.close(old_fd)
        self._generation = generation
        self._journal_size = len(start)

    def _close_files(self) -> None:
        for attr in ("_journal_fd", "_lock_fd"):
            fd = getattr(self, attr)
            setattr(self, attr, None)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
