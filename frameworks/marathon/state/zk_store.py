"""The store in ZooKeeper, fenced by the leader's znode.

Owns: :class:`ZooKeeperStore`, the :class:`~frameworks.marathon.state.store.Store`
contract over :class:`mesoslite.coordination.zk_kv.ZkKeyValueStore` (kazoo
stays inside ``mesoslite.coordination``), with ZooKeeper's errors mapped onto
the store's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from frameworks.marathon.state.store import (
    DEFAULT_MAX_VALUE_BYTES,
    InvalidKeyError,
    StoreError,
    StoreFencedError,
    StoreValueTooLargeError,
    check_batch,
    split_key,
)

if TYPE_CHECKING:
    from mesoslite.coordination.url import ZkUrl
    from mesoslite.coordination.zk_kv import ZkKeyValueStore


class ZooKeeperStore:
    """The store in ZooKeeper under ``<zk path>/state`` (or ``root``), fenced by the leader.

    ``commit`` is one ZooKeeper transaction: all or nothing (a batch over
    ZooKeeper's request limit is refused whole with StoreValueTooLargeError).  With
    :attr:`fencing_path` set (assign ``election.fencing_path`` once elected),
    every write checks that znode and a deposed leader's write raises StoreFencedError.
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
        #: (StoreValueTooLargeError): split big batches below it.
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
            raise StoreFencedError(str(exc)) from exc
        except zk_kv.ValueTooLargeError as exc:
            raise StoreValueTooLargeError(str(exc)) from exc
        except zk_kv.ZkKvKeyError as exc:
            raise InvalidKeyError(str(exc)) from exc
        except zk_kv.ZkKvError as exc:
            raise StoreError(str(exc)) from exc
        except RuntimeError as exc:  # CoordinationError: ZooKeeper unreachable
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{self.kv.name}: {exc}") from exc
