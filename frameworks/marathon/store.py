"""Where the Marathon-style framework keeps its state: a small async key-value store.

Owns: the :class:`Store` protocol, its errors, key validation, and two
implementations -- :class:`FileStore` (a local state directory holding a snapshot
and an append-only journal, for a single instance without ZooKeeper; file formats
in :mod:`frameworks.marathon.store_journal`) and :class:`ZooKeeperStore` (a thin adapter over
:class:`mesoslite.coordination.zk_kv.ZkKeyValueStore`, fenced by the leader znode).

Contract shared by both stores:

* Keys are ``/``-separated paths such as ``/apps/web/current``; each segment
  is non-empty, not ``.``/``..``, does not start with ``.``, has no NUL or
  control characters and is at most 255 bytes of UTF-8.  ``"/"`` is the root.
* A key may hold a value *and* have children (ZooKeeper's model).  Values are
  non-empty bytes of at most ``max_value_bytes`` (default 900 KiB): parents
  created implicitly have no value, and :meth:`Store.get` answers None for them.
* ``delete`` is recursive; ``commit(puts, deletes)`` applies a batch (see each
  implementation for its atomicity guarantee); a put under a deleted key is refused.
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
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from frameworks.marathon.store_journal import (
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
from mesoslite.durable import fsync_dir, write_all

if TYPE_CHECKING:
    from mesoslite.coordination.url import ZkUrl
    from mesoslite.coordination.zk_kv import ZkKeyValueStore

#: Largest value either store accepts (ZooKeeper refuses requests over 1 MiB).
DEFAULT_MAX_VALUE_BYTES = 900 * 1024
_MAX_SEGMENT_BYTES = 255
_JOURNAL = "journal"
_SNAPSHOT = "snapshot"
_LOCK = "lock"
_OLD_LAYOUT = "old-layout"

T = TypeVar("T")
log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """A read or write failed; the message names the key."""


class InvalidKeyError(StoreError, ValueError):
    """A key is malformed or would escape the store."""


class ValueTooLargeError(StoreError, ValueError):
    """A value (or a batch) is over the size limit."""


class FencedError(StoreError):
    """A write was refused because this instance is no longer the leader."""


@runtime_checkable
class Store(Protocol):
    """An async key-value store of bytes under ``/``-separated keys."""

    async def start(self) -> None:
        """Open the store (create the directory / connect)."""
        ...

    async def close(self) -> None:
        """Release the store (idempotent)."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None when it has none."""
        ...

    async def put(self, key: str, data: bytes) -> None:
        """Set ``key`` to ``data`` (non-empty), creating parents as needed."""
        ...

    async def delete(self, key: str) -> None:
        """Delete ``key`` and everything under it (no-op when absent)."""
        ...

    async def children(self, key: str) -> list[str]:
        """Names directly under ``key``, sorted (empty when absent)."""
        ...

    async def commit(self, puts: Mapping[str, bytes], deletes: Sequence[str] = ()) -> None:
        """Apply several puts and recursive deletes as one batch."""
        ...


def split_key(key: str) -> list[str]:
    """Validate ``key`` and return its segments ([] for the root); InvalidKeyError if bad."""
    if not isinstance(key, str):
        raise InvalidKeyError(f"key: expected a string, got {type(key).__name__}")
    if not key.startswith("/"):
        raise InvalidKeyError(f"key {key!r}: expected an absolute key like '/apps/x'")
    body = key.strip("/")
    if not body:
        if key != "/":
            raise InvalidKeyError(f"key {key!r}: expected '/' or '/a/b'")
        return []
    if key.endswith("/"):
        raise InvalidKeyError(f"key {key!r}: must not end with '/'")
    parts = body.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise InvalidKeyError(f"key {key!r}: empty, '.' or '..' segment; expected /a/b")
        if part.startswith("."):
            raise InvalidKeyError(f"key {key!r}: segment {part!r} starts with '.' (reserved)")
        if any(ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in part):
            raise InvalidKeyError(f"key {key!r}: segment {part!r} has NUL, control characters "
                                  "or a backslash")
        if any(0xD800 <= ord(c) <= 0xF8FF or ord(c) >= 0xFFF0 for c in part):
            raise InvalidKeyError(f"key {key!r}: segment {part!r} has characters ZooKeeper "
                                  "refuses")
        if len(part.encode("utf-8", "surrogatepass")) > _MAX_SEGMENT_BYTES:
            raise InvalidKeyError(f"key {key!r}: a segment is over {_MAX_SEGMENT_BYTES} bytes")
    return parts


def check_value(key: str, data: bytes, limit: int) -> None:
    """Refuse non-bytes, empty and oversized values, naming the key."""
    if not isinstance(data, bytes | bytearray):
        raise StoreError(f"value of {key!r}: expected bytes, got {type(data).__name__}")
    if not data:
        raise StoreError(f"value of {key!r}: empty values are not stored (empty means absent)")
    if len(data) > limit:
        raise ValueTooLargeError(f"value of {key!r}: {len(data)} bytes, over the "
                                 f"{limit}-byte limit")


def check_batch(puts: Mapping[str, bytes], deletes: Sequence[str], limit: int) -> None:
    """Validate every key and value of a batch; refuse a put under a deleted key."""
    put_parts = {key: split_key(key) for key in puts}
    for key, data in puts.items():
        if not put_parts[key]:
            raise InvalidKeyError(f"key {key!r}: the root holds no value")
        check_value(key, data, limit)
    for dkey in deletes:
        dparts = split_key(dkey)
        if not dparts:
            raise InvalidKeyError(f"key {dkey!r}: the root cannot be deleted")
        for pkey, pparts in put_parts.items():
            if pparts[:len(dparts)] == dparts:
                raise InvalidKeyError(f"key {pkey!r}: put under {dkey!r}, which the same "
                                      "commit deletes")


async def get_many(store: Store, keys: Sequence[str], *,
                   concurrency: int = 64) -> dict[str, bytes | None]:
    """key → value for every key, read concurrently (ZooKeeper round trips overlap)."""
    limit = asyncio.Semaphore(concurrency)

    async def one(key: str) -> bytes | None:
        async with limit:
            return await store.get(key)

    values = await asyncio.gather(*(one(key) for key in keys))
    return dict(zip(keys, values, strict=True))


class FileStore:
    """The whole key space in memory, made durable by an append-only journal in ``state_dir``.

    Files: ``journal`` (one record per commit), ``snapshot`` (the state the journal
    starts from), ``lock`` (held with flock while the store is open: one process per
    directory); formats in :mod:`frameworks.marathon.store_journal`.

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
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock()
            for name in os.listdir(self.root):
                if TMP_MARKER in name and name.split(TMP_MARKER)[0] in (_JOURNAL, _SNAPSHOT):
                    os.unlink(self.root / name)
            if not self.journal_path.exists() and not self.snapshot_path.exists():
                self._migrate_old_layout()
            self._load()
            self._journal_fd = os.open(self.journal_path, os.O_WRONLY)
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
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
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


class ZooKeeperStore:
    """The store in ZooKeeper under ``<zk path>/state`` (or ``root``), fenced by the leader.

    ``commit`` is one ZooKeeper transaction: all or nothing (a batch over
    ZooKeeper's request limit is refused whole with ValueTooLargeError).  With
    :attr:`fencing_path` set (assign ``election.fencing_path`` once elected),
    every write checks that znode and a deposed leader's write raises FencedError.
    """

    def __init__(self, zk_url: str | ZkUrl, *, root: str | None = None,
                 fencing_path: str | None = None,
                 max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
                 **options: Any) -> None:
        from mesoslite.coordination.url import ZkUrl, parse_zk_url
        from mesoslite.coordination.zk_kv import ZkKeyValueStore

        url = zk_url if isinstance(zk_url, ZkUrl) else parse_zk_url(zk_url)
        self.max_value_bytes = max_value_bytes
        self.kv: ZkKeyValueStore = ZkKeyValueStore(
            url, root=root if root is not None else f"{url.path}/state",
            fencing_path=fencing_path, max_value_bytes=max_value_bytes, **options)
        #: A commit whose values, paths and per-operation overhead exceed this is refused whole
        #: (ValueTooLargeError): split big batches below it.
        self.max_commit_bytes: int | None = self.kv.max_txn_bytes

    @property
    def fencing_path(self) -> str | None:
        """The leader znode every write checks (None: unfenced)."""
        return self.kv.fencing_path

    @fencing_path.setter
    def fencing_path(self, value: str | None) -> None:
        self.kv.fencing_path = value

    @property
    def root(self) -> str:
        """The root znode of the state."""
        return self.kv.root

    async def start(self) -> None:
        """Connect and create the root znode."""
        await self._call(self.kv.start())

    async def close(self) -> None:
        """Close the ZooKeeper session."""
        await self.kv.close()

    async def get(self, key: str) -> bytes | None:
        """The value of ``key`` (None when it has none)."""
        split_key(key)
        return await self._call(self.kv.get(key))

    async def put(self, key: str, data: bytes) -> None:
        """Set ``key`` to ``data`` in one (fenced) transaction."""
        await self.commit({key: data}, [])

    async def delete(self, key: str) -> None:
        """Delete ``key`` recursively (large subtrees take several fenced transactions)."""
        check_batch({}, [key], self.max_value_bytes)
        await self._call(self.kv.delete(key))

    async def children(self, key: str) -> list[str]:
        """Names directly under ``key``, sorted."""
        split_key(key)
        return await self._call(self.kv.children(key))

    async def commit(self, puts: Mapping[str, bytes], deletes: Sequence[str] = ()) -> None:
        """Apply the batch as one ZooKeeper transaction."""
        check_batch(puts, deletes, self.max_value_bytes)
        await self._call(self.kv.commit(puts, deletes))

    async def _call(self, awaitable: Any) -> Any:
        from mesoslite.coordination import zk_kv

        try:
            return await awaitable
        except zk_kv.FencedError as exc:
            raise FencedError(str(exc)) from exc
        except zk_kv.ValueTooLargeError as exc:
            raise ValueTooLargeError(str(exc)) from exc
        except zk_kv.ZkKvKeyError as exc:
            raise InvalidKeyError(str(exc)) from exc
        except zk_kv.ZkKvError as exc:
            raise StoreError(str(exc)) from exc
        except RuntimeError as exc:  # CoordinationError: ZooKeeper unreachable
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{self.kv.name}: {exc}") from exc


__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "FencedError",
    "FileStore",
    "InvalidKeyError",
    "Store",
    "StoreError",
    "ValueTooLargeError",
    "ZooKeeperStore",
    "check_batch",
    "get_many",
    "split_key",
]
