"""Where the Marathon-style framework keeps its state: a small async key-value store.

Owns: the :class:`Store` protocol, its errors, key validation, and two
implementations -- :class:`FileStore` (a local state directory, for a single
instance without ZooKeeper) and :class:`ZooKeeperStore` (a thin adapter over
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
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from mesoslite.coordination.url import ZkUrl
    from mesoslite.coordination.zk_kv import ZkKeyValueStore

#: Largest value either store accepts (ZooKeeper refuses requests over 1 MiB).
DEFAULT_MAX_VALUE_BYTES = 900 * 1024
_MAX_SEGMENT_BYTES = 255
_VALUE_FILE = ".value"
_TMP_PREFIX = ".value.tmp-"
_TRASH_PREFIX = ".trash-"

T = TypeVar("T")


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
    """Keys as directories under ``state_dir``; a key's value is the file ``<key>/.value``.

    Writes go to a temp file beside the target, are fsynced, renamed over the
    target, and the directory is fsynced: a value is always either the old or
    the new one, never torn.  All file work runs, in order, on one worker
    thread, so operations apply in the order they were issued.

    ``commit`` guarantee: every value is first written to its temp file (an
    error here changes nothing visible), then the renames happen in the order
    of ``puts``, then the deletes in order.  A crash in the middle leaves a
    prefix of that sequence applied and no torn value.
    """

    def __init__(self, state_dir: str | os.PathLike[str], *,
                 max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> None:
        self.root = Path(state_dir).resolve()
        self.max_value_bytes = max_value_bytes
        #: No limit on a commit's total size here (ZooKeeperStore has one).
        self.max_commit_bytes: int | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Create the directory and remove temp files and trash a crash left behind."""
        await self._run(self._start_sync)

    async def close(self) -> None:
        """Stop the worker thread (pending work finishes first)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)

    async def get(self, key: str) -> bytes | None:
        """The value of ``key`` (None when it has none)."""
        path = self._dir(key) / _VALUE_FILE
        return await self._run(self._read_sync, key, path)

    async def put(self, key: str, data: bytes) -> None:
        """Atomically replace the value of ``key``."""
        await self.commit({key: data}, [])

    async def delete(self, key: str) -> None:
        """Delete ``key`` and everything under it (no-op when absent)."""
        await self.commit({}, [key])

    async def children(self, key: str) -> list[str]:
        """Names directly under ``key``, sorted (empty when absent)."""
        return await self._run(self._children_sync, key, self._dir(key))

    async def commit(self, puts: Mapping[str, bytes], deletes: Sequence[str] = ()) -> None:
        """Write every value to a temp file, rename them in order, then apply the deletes."""
        check_batch(puts, deletes, self.max_value_bytes)
        if not puts and not deletes:
            return
        items = [(key, self._dir(key), bytes(data)) for key, data in puts.items()]
        victims = [(key, self._dir(key)) for key in deletes]
        await self._run(self._commit_sync, items, victims)

    # ------------------------------------------------------------ worker-thread side

    def _dir(self, key: str) -> Path:
        parts = split_key(key)
        path = self.root.joinpath(*parts)
        if path != self.root and self.root not in path.parents:  # defence in depth
            raise InvalidKeyError(f"key {key!r}: resolves outside the state directory")
        return path

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="filestore")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _start_sync(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for dirpath, dirnames, filenames in os.walk(self.root):
                for name in filenames:
                    if name.startswith(_TMP_PREFIX):
                        os.unlink(os.path.join(dirpath, name))
                for name in list(dirnames):
                    if name.startswith(_TRASH_PREFIX):
                        shutil.rmtree(os.path.join(dirpath, name), ignore_errors=True)
                        dirnames.remove(name)
        except OSError as exc:
            raise StoreError(f"state directory {self.root}: cannot open: {exc}") from exc

    def _read_sync(self, key: str, path: Path) -> bytes | None:
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StoreError(f"key {key!r}: cannot read {path}: {exc}") from exc
        return data or None

    def _children_sync(self, key: str, path: Path) -> list[str]:
        try:
            names = [e.name for e in os.scandir(path)
                     if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise StoreError(f"key {key!r}: cannot list {path}: {exc}") from exc
        return sorted(names)

    def _commit_sync(self, items: list[tuple[str, Path, bytes]],
                     victims: list[tuple[str, Path]]) -> None:
        staged: list[tuple[str, Path, Path]] = []
        try:
            for key, directory, data in items:
                staged.append((key, self._stage(key, directory, data), directory))
            for key, tmp, directory in staged:
                try:
                    os.replace(tmp, directory / _VALUE_FILE)
                    _fsync_dir(directory)
                except OSError as exc:
                    raise StoreError(f"key {key!r}: cannot write {directory}: {exc}") from exc
        finally:
            for _key, tmp, _directory in staged:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        for key, directory in victims:
            self._remove(key, directory)

    def _stage(self, key: str, directory: Path, data: bytes) -> Path:
        """Write ``data`` to a fsynced temp file in ``directory`` (created with its parents)."""
        tmp = directory / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            created = _make_dirs(directory, self.root)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            for parent in created:
                _fsync_dir(parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"key {key!r}: cannot write {directory}: {exc}") from exc
        return tmp

    def _remove(self, key: str, directory: Path) -> None:
        """Rename the key's directory to a trash name (atomic), fsync, then remove the trash."""
        trash = directory.parent / f"{_TRASH_PREFIX}{uuid.uuid4().hex}"
        try:
            os.rename(directory, trash)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StoreError(f"key {key!r}: cannot delete {directory}: {exc}") from exc
        with contextlib.suppress(OSError):
            _fsync_dir(directory.parent)
        shutil.rmtree(trash, ignore_errors=True)


def _make_dirs(directory: Path, root: Path) -> list[Path]:
    """mkdir -p ``directory`` below ``root``; the parents whose entries changed (to fsync)."""
    missing: list[Path] = []
    path = directory
    while path != root and not path.is_dir():
        missing.append(path)
        path = path.parent
    changed: list[Path] = []
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            changed.append(path.parent)
    return changed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
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
