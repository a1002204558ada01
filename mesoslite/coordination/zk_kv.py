"""A small asyncio key-value store on ZooKeeper, optionally fenced by a leader znode.

Owns: :class:`ZkKeyValueStore` and its errors.  Keys are ``/``-separated
paths relative to a root znode (``/apps/x/current`` → ``<root>/apps/x/current``);
``"/"`` or ``""`` names the root itself.  Parent znodes are created as needed
and hold empty data, so an empty value is indistinguishable from "no value":
values must be non-empty, and :meth:`get` answers None for a znode without data.

Every write (``put``, ``delete``, ``commit``) is one ZooKeeper transaction.
With a ``fencing_path`` (the writer's own leader znode) each transaction
begins with ``check(fencing_path)``, so a deposed leader's write fails with
:class:`FencedError` and changes nothing.  A recursive delete too large for
one transaction is split into several (children before parents), each fenced.

All calls run on the asyncio loop; kazoo's threads reach it only through
:class:`~mesoslite.coordination.session.ZkSession`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from kazoo.exceptions import (
    KazooException,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.security import make_digest_acl

from mesoslite.coordination.interface import CoordinationError
from mesoslite.coordination.registry import FencedError as RegistryFencedError
from mesoslite.coordination.session import Fenced, ZkSession
from mesoslite.coordination.url import ZkUrl, parse_zk_url

#: Largest value accepted (ZooKeeper's own cap, jute.maxbuffer, is 1 MiB per request).
DEFAULT_MAX_VALUE_BYTES = 900 * 1024
#: Largest transaction accepted, counting values, paths and a per-operation overhead.
DEFAULT_MAX_TXN_BYTES = 1000 * 1024
_OP_OVERHEAD = 64
_RETRIES = 3

T = TypeVar("T")


class ZkKvError(RuntimeError):
    """A key-value read or write failed; the message names the key."""


class ZkKvKeyError(ZkKvError, ValueError):
    """A key is not a valid relative znode path."""


class ValueTooLargeError(ZkKvError, ValueError):
    """A value (or a whole transaction) is over the configured size limit."""


class FencedError(ZkKvError, RegistryFencedError):
    """A write was refused: the writer's leader znode (its fence) no longer exists."""


def key_parts(key: str) -> list[str]:
    """Split and validate a key (``/a/b`` or ``a/b``); ZkKvKeyError naming it when bad."""
    if not isinstance(key, str):
        raise ZkKvKeyError(f"key: expected a string, got {type(key).__name__}")
    parts = key.strip("/").split("/") if key.strip("/") else []
    for part in parts:
        if part in ("", ".", ".."):
            raise ZkKvKeyError(f"key {key!r}: empty, '.' or '..' segment; expected a/b/c")
        if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xF8FF
               or ord(c) >= 0xFFF0 for c in part):
            raise ZkKvKeyError(f"key {key!r}: segment {part!r} has characters ZooKeeper refuses")
    return parts


class ZkKeyValueStore(Fenced):
    """Bytes under ``root`` (default: the URL's path) in the ensemble of ``zk_url``."""

    def __init__(
        self,
        zk_url: str | ZkUrl,
        *,
        root: str | None = None,
        fencing_path: str | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        max_txn_bytes: int = DEFAULT_MAX_TXN_BYTES,
        session_timeout: float = 10.0,
        connect_timeout: float = 30.0,
        op_timeout: float = 20.0,
    ) -> None:
        url = zk_url if isinstance(zk_url, ZkUrl) else parse_zk_url(zk_url)
        self.url = url.with_path(root) if root is not None else url
        if not 0 < max_value_bytes <= max_txn_bytes < 1024 * 1024:
            raise ValueError("expected 0 < max_value_bytes <= max_txn_bytes < 1 MiB, got "
                             f"{max_value_bytes}, {max_txn_bytes}")
        self.root = self.url.path
        self.fencing_path = fencing_path
        self.max_value_bytes = max_value_bytes
        self.max_txn_bytes = max_txn_bytes
        self.connect_timeout = connect_timeout
        self.op_timeout = op_timeout
        self.name = f"zk kv {self.url}"
        self.session = ZkSession(self.url, session_timeout=session_timeout, name=self.name)
        self._acl = [make_digest_acl(url.username, url.password, all=True)] if url.username \
            else None
        self._start_lock = asyncio.Lock()
        #: Znodes this store knows exist (it created or saw them); dropped on delete or conflict.
        self._known: set[str] = set()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connect and create the root znode; CoordinationError when ZooKeeper is unreachable."""
        async with self._start_lock:
            if self.session.connected:
                return
            await self.session.start(self.connect_timeout)
            await self._timed(self.session.call("ensure_path", self.root, acl=self._acl),
                              f"creating {self.root}")

    async def close(self) -> None:
        """Close the session (idempotent)."""
        await self.session.close()

    # ------------------------------------------------------------ reads

    def path_of(self, key: str) -> str:
        """The absolute znode path of ``key``."""
        parts = key_parts(key)
        return "/".join([self.root, *parts]) if parts else self.root

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``; None when it has none (absent, or an empty parent znode)."""
        path = self.path_of(key)
        await self._ensure()
        try:
            data, _stat = await self._timed(self.session.call("get", path), f"reading {key!r}")
        except NoNodeError:
            return None
        return data or None

    async def children(self, key: str) -> list[str]:
        """The names directly under ``key``, sorted (empty when ``key`` does not exist)."""
        path = self.path_of(key)
        await self._ensure()
        try:
            names = await self._timed(self.session.call("get_children", path),
                                      f"listing {key!r}")
        except NoNodeError:
            return []
        return sorted(names)

    # ------------------------------------------------------------ writes

    async def put(self, key: str, data: bytes) -> None:
        """Set ``key`` to ``data`` (creating it and its parents)."""
        await self.commit({key: data}, [])

    async def delete(self, key: str) -> None:
        """Delete ``key`` and everything under it (no-op when absent); the root cannot go."""
        if not key_parts(key):
            raise ZkKvKeyError(f"key {key!r}: the root cannot be deleted")
        await self._ensure()
        for _ in range(_RETRIES):
            ops = await self._delete_ops(key)
            if not ops:
                return
            batches = self._split(ops)
            try:
                for batch in batches:
                    await self._run(batch, f"deleting {key!r}")
                return
            except _Race:
                self._known.clear()
                continue
        raise ZkKvError(f"{self.name}: deleting {key!r} kept conflicting with other writers")

    async def commit(self, puts: Mapping[str, bytes], deletes: Sequence[str] = ()) -> None:
        """Apply ``puts`` and recursive ``deletes`` in one transaction: all or nothing.

        A put under a deleted key is refused (ZkKvKeyError); a transaction over
        ``max_txn_bytes`` is refused (ValueTooLargeError) and changes nothing.
        """
        put_paths = {key: self.path_of(key) for key in puts}
        del_paths = {key: self.path_of(key) for key in deletes}
        for key, data in puts.items():
            self._check_value(key, data)
        for dkey, dpath in del_paths.items():
            if dpath == self.root:
                raise ZkKvKeyError(f"key {dkey!r}: the root cannot be deleted")
            for pkey, ppath in put_paths.items():
                if ppath == dpath or ppath.startswith(dpath + "/"):
                    raise ZkKvKeyError(f"key {pkey!r}: put under {dkey!r}, which the same "
                                       "commit deletes")
        if not puts and not deletes:
            return
        await self._ensure()
        for _ in range(_RETRIES):
            ops: list[tuple[Any, ...]] = []
            for key in deletes:
                ops.extend(await self._delete_ops(key))
            ops.extend(await self._put_ops(puts, put_paths))
            size = sum(_op_size(op) for op in ops)
            if size > self.max_txn_bytes:
                raise ValueTooLargeError(
                    f"{self.name}: commit of {sorted(puts)[:3]}… and deletes {list(deletes)[:3]}… "
                    f"is {size} bytes, over the {self.max_txn_bytes}-byte transaction limit")
            if not ops:
                return
            try:
                await self._run(ops, f"committing {len(puts)} put(s), {len(deletes)} delete(s)")
                return
            except _Race:
                self._known.clear()
                continue
        raise ZkKvError(f"{self.name}: commit kept conflicting with other writers")

    # ------------------------------------------------------------ plumbing

    async def _ensure(self) -> None:
        if not self.session.connected:
            await self.start()

    async def _timed(self, awaitable: Awaitable[T], what: str) -> T:
        try:
            return await asyncio.wait_for(awaitable, self.op_timeout)
        except TimeoutError:
            raise ZkKvError(f"{self.name}: {what} took longer than {self.op_timeout}s") from None
        except (NoNodeError, NodeExistsError):
            raise
        except KazooException as exc:
            raise ZkKvError(f"{self.name}: {what} failed: {exc!r}") from exc
        except CoordinationError as exc:
            raise ZkKvError(f"{self.name}: {what} failed: {exc}") from exc

    def _check_value(self, key: str, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray):
            raise ZkKvError(f"value of {key!r}: expected bytes, got {type(data).__name__}")
        if not data:
            raise ZkKvError(f"value of {key!r}: empty values are not stored (empty means absent)")
        if len(data) > self.max_value_bytes:
            raise ValueTooLargeError(f"value of {key!r}: {len(data)} bytes, over the "
                                     f"{self.max_value_bytes}-byte limit")

    async def _exists(self, path: str) -> bool:
        stat = await self._timed(self.session.call("exists", path), f"checking {path}")
        return stat is not None

    async def _put_ops(self, puts: Mapping[str, bytes],
                       paths: Mapping[str, str]) -> list[tuple[Any, ...]]:
        """set_data for existing nodes; create (parents first) for missing ones."""
        candidates: set[str] = set()
        for path in paths.values():
            candidates.add(path)
            parent = path.rsplit("/", 1)[0]
            while len(parent) > len(self.root):
                candidates.add(parent)
                parent = parent.rsplit("/", 1)[0]
        ordered = sorted(candidates - self._known)
        found = await asyncio.gather(*(self._exists(p) for p in ordered))
        exists = dict.fromkeys(candidates & self._known, True)
        exists.update(zip(ordered, found, strict=True))
        values = {paths[key]: bytes(data) for key, data in puts.items()}
        ops: list[tuple[Any, ...]] = []
        for path in sorted(candidates, key=lambda p: (p.count("/"), p)):
            if path in values:
                if exists[path]:
                    ops.append(("set", path, values[path]))
                else:
                    ops.append(("create", path, values[path]))
            elif not exists[path]:
                ops.append(("create", path, b""))
        return ops

    async def _delete_ops(self, key: str) -> list[tuple[Any, ...]]:
        """Deletes for ``key``'s subtree, deepest first (empty when absent)."""
        path = self.path_of(key)
        ops: list[tuple[Any, ...]] = []

        async def walk(node: str) -> bool:
            try:
                names = await self._timed(self.session.call("get_children", node),
                                          f"listing {node}")
            except NoNodeError:
                return False
            for name in names:
                await walk(f"{node}/{name}")
            ops.append(("delete", node))
            return True

        await walk(path)
        return ops

    def _split(self, ops: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
        batches: list[list[tuple[Any, ...]]] = [[]]
        size = 0
        for op in ops:
            cost = _op_size(op)
            if batches[-1] and size + cost > self.max_txn_bytes:
                batches.append([])
                size = 0
            batches[-1].append(op)
            size += cost
        return batches

    async def _run(self, ops: list[tuple[Any, ...]], what: str) -> None:
        txn = self.session.transaction()
        fence = self._fencing_path
        if fence is not None:
            txn.check(fence, -1)
        for op in ops:
            if op[0] == "set":
                txn.set_data(op[1], op[2])
            elif op[0] == "create":
                txn.create(op[1], op[2], acl=self._acl)
            else:
                txn.delete(op[1])
        results = await self._timed(self.session.commit(txn), what)
        self._learn(ops, results)
        failures = [(i, r) for i, r in enumerate(results) if isinstance(r, Exception)
                    and not isinstance(r, RolledBackError | RuntimeInconsistency)]
        if not failures:
            return
        index, error = failures[0]
        if fence is not None:
            if index == 0:
                raise FencedError(f"{self.name}: {what} refused: the leader znode {fence} no "
                                  "longer exists, so this writer is no longer the leader")
            index -= 1
        op = ops[index]
        if isinstance(error, NoNodeError | NodeExistsError | NotEmptyError):
            raise _Race(op[1])
        raise ZkKvError(f"{self.name}: {what} failed at {op[0]} {op[1]}: {error!r}")


    def _learn(self, ops: list[tuple[Any, ...]], results: list[Any]) -> None:
        """Track which znodes exist after a transaction (nothing changed when it failed)."""
        if any(isinstance(r, Exception) for r in results):
            return
        deleted = {op[1] for op in ops if op[0] == "delete"}
        if deleted:
            self._known = {p for p in self._known if not _under_any(p, deleted)}
        self._known.update(op[1] for op in ops if op[0] != "delete")


class _Race(Exception):
    """Another writer changed the tree between planning and committing; plan again."""


def _under_any(path: str, roots: set[str]) -> bool:
    """True when ``path`` or one of its ancestors is in ``roots``."""
    while path:
        if path in roots:
            return True
        path = path.rpartition("/")[0]
    return False


def _op_size(op: tuple[Any, ...]) -> int:
    return _OP_OVERHEAD + len(op[1]) + (len(op[2]) if len(op) > 2 else 0)


__all__ = [
    "DEFAULT_MAX_TXN_BYTES",
    "DEFAULT_MAX_VALUE_BYTES",
    "FencedError",
    "ValueTooLargeError",
    "ZkKeyValueStore",
    "ZkKvError",
    "ZkKvKeyError",
    "key_parts",
]
