"""Where the Marathon-style framework keeps its state: a small async key-value store.

Owns: the :class:`Store` protocol, its errors, key validation and
:func:`get_many`.  Two implementations: ``file_store.FileStore`` (a local state
directory holding a snapshot and an append-only journal, for a single instance
without ZooKeeper; file formats in ``journal``) and ``zk_store.ZooKeeperStore``
(a thin adapter over :class:`mesoslite.coordination.zk_kv.ZkKeyValueStore`,
fenced by the leader znode).

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
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

#: Largest value either store accepts (ZooKeeper refuses requests over 1 MiB).
DEFAULT_MAX_VALUE_BYTES = 900 * 1024
_MAX_SEGMENT_BYTES = 255


class StoreError(RuntimeError):
    """A read or write failed; the message names the key."""


class InvalidKeyError(StoreError, ValueError):
    """A key is malformed or would escape the store."""


class StoreValueTooLargeError(StoreError, ValueError):
    """A value (or a batch) is over the size limit."""


class StoreFencedError(StoreError):
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
        raise StoreValueTooLargeError(f"value of {key!r}: {len(data)} bytes, over the "
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
