"""The registry in ZooKeeper: sharded, generation-switched and fenced by the leader's znode.

Owns: :class:`ZooKeeperRegistry` and its znode layout::

    <root>/meta                      JSON {"format", "generation", "sequence", "shards", "encoding"}
    <root>/<generation>/agents.0000  msgpack+zlib {agent_id: record}, one shard per CRC-32 bucket
    <root>/<generation>/frameworks.0000 ...
    <root>/<generation>/unreachable.0000 ...
    <root>/<generation>/policy       weights, quota, maintenance

``<root>`` defaults to ``<zk path>-registry``, beside the election directory
(which must hold nothing but candidates).  Every write is one ZooKeeper
transaction that begins with ``check(<fencing path>)`` -- the writer's own
leader znode -- and ``check(meta, version)``: a deposed leader's write fails
with :class:`FencedError`, a concurrent writer's with
:class:`RegistryConflictError`.

Every full read starts with ``sync()`` so that the server the session talks
to has caught up with the quorum: a new leader never reads a stale registry.

Small changes rewrite only the shards they touch, in place.  A change too big
for one transaction (ZooKeeper caps a request at about 1 MB), or a shard that
grew past ``max_znode_bytes``, writes a complete new generation -- with more
shards when needed -- in several fenced transactions, then switches ``meta``
to it in one more; readers only ever follow ``meta``, so they see the old or
the new generation, never a mix.  Old generations are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

from kazoo.exceptions import (
    BadVersionError,
    KazooException,
    NodeExistsError,
    NoNodeError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.security import make_digest_acl

from mesoslite.coordination.registry import (
    BatchingRegistry,
    Entry,
    FencedError,
    RegistryConflictError,
    RegistryError,
    RegistryTimeoutError,
)
from mesoslite.coordination.registry_state import (
    POLICY_SECTION,
    REGISTRY_FORMAT,
    SHARDED_SECTIONS,
    RegistryFormatError,
    RegistryState,
    decode_data,
    encode_data,
    shard_keys,
    shard_name,
    shard_of,
)
from mesoslite.coordination.session import Fenced, ZkSession
from mesoslite.coordination.url import ZkUrl, parse_zk_url

log = logging.getLogger("mesoslite.coordination.registry")

ENCODING = "msgpack+zlib"
#: Shard counts of a fresh registry.
DEFAULT_SHARDS = {"agents": 16, "frameworks": 4, "unreachable": 4}
#: A new generation sizes its shards to stay under this many bytes each.
TARGET_SHARD_BYTES = 64 * 1024
#: A shard growing past this forces a new generation with more shards (ZooKeeper's cap is 1 MB).
MAX_ZNODE_BYTES = 512 * 1024
#: Payload bytes per transaction (the whole request must stay under jute.maxbuffer, 1 MB).
TXN_BUDGET = 768 * 1024
MAX_SHARDS = 1 << 14
_GENERATION_RE = re.compile(r"^g(\d{8})-[0-9a-f]{8}$")
_GC_BATCH = 200

T = TypeVar("T")


class ZooKeeperRegistry(Fenced, BatchingRegistry):
    """The registry under ``root`` in the ensemble of ``zk_url``, fenced by ``fencing_path``.

    ``fencing_path`` is the writer's leader znode (``contender.fencing_path()``);
    None means unfenced writes (tools, tests).  It can be changed later by
    assigning :attr:`fencing_path`.
    """

    def __init__(
        self,
        zk_url: str | ZkUrl,
        fencing_path: str | None,
        *,
        root: str | None = None,
        session_timeout: float = 10.0,
        connect_timeout: float = 30.0,
        store_timeout: float = 20.0,
        fetch_timeout: float = 60.0,
        max_znode_bytes: int = MAX_ZNODE_BYTES,
        target_shard_bytes: int = TARGET_SHARD_BYTES,
        txn_budget: int = TXN_BUDGET,
    ) -> None:
        url = zk_url if isinstance(zk_url, ZkUrl) else parse_zk_url(zk_url)
        self.url = url.with_path(root if root is not None else f"{url.path}-registry")
        super().__init__(f"zk registry {self.url}")
        if not 0 < target_shard_bytes <= max_znode_bytes <= txn_budget < 1024 * 1024:
            raise ValueError(
                "target_shard_bytes <= max_znode_bytes <= txn_budget < 1 MiB expected, got "
                f"{target_shard_bytes}, {max_znode_bytes}, {txn_budget}"
            )
        self.fencing_path = fencing_path
        self.connect_timeout = connect_timeout
        self.store_timeout = store_timeout
        self.fetch_timeout = fetch_timeout
        self.max_znode_bytes = max_znode_bytes
        self.target_shard_bytes = target_shard_bytes
        self.txn_budget = txn_budget
        self.session = ZkSession(self.url, session_timeout=session_timeout, name=self.name)
        self._acl = [make_digest_acl(url.username, url.password, all=True)] if url.username \
            else None
        self._meta_version = -1
        self._generation: str | None = None
        self._sequence = 0
        self._shards: dict[str, int] = dict(DEFAULT_SHARDS)
        self._members: dict[str, list[set[str]]] = {}
        self._written: dict[str, bytes] = {}
        self._versions: dict[str, int] = {}

    # ------------------------------------------------------------ public

    @property
    def meta_path(self) -> str:
        """The znode naming the current generation."""
        return f"{self.url.path}/meta"

    @property
    def generation(self) -> str | None:
        """The generation last read or written (None: nothing stored yet)."""
        return self._generation

    async def connect(self) -> None:
        """Open the session ahead of the first read (CoordinationError when no server answers).

        Optional: :meth:`load` and every write connect on demand.
        """
        await self._ensure_started()

    async def close(self) -> None:
        """Finish queued writes and close the session."""
        await super().close()
        await self.session.close()

    # ------------------------------------------------------------ plumbing

    async def _ensure_started(self) -> None:
        if not self.session.connected:
            await self.session.start(self.connect_timeout)
            await self.session.call("ensure_path", self.url.path, acl=self._acl)

    async def _timed(self, awaitable: Awaitable[T], timeout: float, what: str) -> T:
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except TimeoutError:
            raise RegistryTimeoutError(f"{self.name}: {what} took longer than {timeout}s") \
                from None
        except KazooException as exc:
            raise RegistryError(f"{self.name}: {what} failed: {exc!r}") from exc

    def _gen_path(self, generation: str) -> str:
        return f"{self.url.path}/{generation}"

    def _base_txn(self) -> Any:
        txn = self.session.transaction()
        if self._fencing_path is not None:
            txn.check(self._fencing_path, -1)
        if self._meta_version >= 0:
            txn.check(self.meta_path, self._meta_version)
        return txn

    async def _commit(self, txn: Any, what: str) -> list[Any]:
        results = await self._timed(self.session.commit(txn), self.store_timeout, what)
        if not any(isinstance(r, Exception) for r in results):
            return results
        index = 0
        if self._fencing_path is not None:
            if isinstance(results[0], NoNodeError):
                raise FencedError(
                    f"{self.name}: {what} refused: the leader znode {self._fencing_path} no "
                    "longer exists, so this master is no longer the leader"
                )
            index = 1
        if self._meta_version >= 0 and isinstance(results[index], BadVersionError | NoNodeError):
            raise RegistryConflictError(
                f"{self.name}: {what} refused: {self.meta_path} changed since it was read "
                "(another writer); reload"
            )
        first = next(r for r in results if isinstance(r, Exception)
                     and not isinstance(r, RolledBackError | RuntimeInconsistency))
        if isinstance(first, BadVersionError | NodeExistsError):
            raise RegistryConflictError(f"{self.name}: {what} conflicted: {first!r}; reload")
        raise RegistryError(f"{self.name}: {what} failed: {first!r}")

    # ------------------------------------------------------------ reading

    async def _load_locked(self) -> None:
        await self._ensure_started()
        await self._timed(self._read_all(), self.fetch_timeout, "reading the registry")

    async def _read_all(self) -> None:
        # The server this session talks to may lag the quorum (a follower applies
        # commits asynchronously); sync() makes it catch up first, so a newly
        # elected leader never rebuilds itself from a stale registry.
        await self.session.call("sync", self.url.path)
        try:
            meta_bytes, stat = await self.session.call("get", self.meta_path)
        except NoNodeError:
            self._reset_cache(RegistryState(), None, -1, 0, dict(DEFAULT_SHARDS))
            return
        meta = decode_data(meta_bytes, "json", self.meta_path)
        generation, sequence, shards = _check_meta(meta, self.meta_path)
        gen_path = self._gen_path(generation)
        names = [shard_name(s, i) for s in SHARDED_SECTIONS for i in range(shards[s])]
        names.append(shard_name(POLICY_SECTION, 0))
        try:
            replies = await asyncio.gather(
                *(self.session.call("get", f"{gen_path}/{name}") for name in names))
        except NoNodeError as exc:
            raise RegistryFormatError(
                "registry", f"generation {generation} is incomplete: {exc!r}") from None
        state = RegistryState()
        written: dict[str, bytes] = {}
        versions: dict[str, int] = {}
        for name, (data, node_stat) in zip(names, replies, strict=True):
            section = name.split(".", 1)[0]
            state.load_section(section, decode_data(data, ENCODING, f"{gen_path}/{name}"))
            written[name] = data
            versions[name] = node_stat.version
        self._reset_cache(state, generation, stat.version, sequence, shards)
        self._written, self._versions = written, versions

    def _reset_cache(self, state: RegistryState, generation: str | None, meta_version: int,
                     sequence: int, shards: dict[str, int]) -> None:
        self._state = state
        self._generation = generation
        self._meta_version = meta_version
        self._sequence = sequence
        self._shards = dict(shards)
        self._members = {s: [set(b) for b in shard_keys(getattr(state, s), shards[s])]
                         for s in SHARDED_SECTIONS}
        self._written, self._versions = {}, {}

    # ------------------------------------------------------------ writing

    def _encode_node(self, state: RegistryState, name: str) -> bytes:
        section, _, index = name.partition(".")
        if section == POLICY_SECTION:
            return encode_data(state.section_dict(POLICY_SECTION), ENCODING)
        keys = sorted(self._members[section][int(index)])
        return encode_data(state.section_dict(section, keys), ENCODING)

    def _track(self, state: RegistryState, touched: Any) -> set[str]:
        """Update shard membership for touched keys; the names of the touched nodes."""
        names: set[str] = set()
        for section, key in touched:
            if section == POLICY_SECTION:
                names.add(POLICY_SECTION)
                continue
            index = shard_of(key, self._shards[section])
            if key in getattr(state, section):
                self._members[section][index].add(key)
            else:
                self._members[section][index].discard(key)
            names.add(shard_name(section, index))
        return names

    async def _store_locked(self, state: RegistryState) -> None:
        await self._ensure_started()
        if self._state is None:
            await self._timed(self._read_all(), self.fetch_timeout, "reading the registry")
        own = state.copy()
        if self._generation is None:
            await self._write_generation(own)
            return
        self._state = own
        self._members = {s: [set(b) for b in shard_keys(getattr(own, s), self._shards[s])]
                         for s in SHARDED_SECTIONS}
        payloads = {name: self._encode_node(own, name) for name in self._written}
        changed = {n: p for n, p in payloads.items() if p != self._written.get(n)}
        if any(len(p) > self.max_znode_bytes for p in changed.values()) \
                or sum(map(len, changed.values())) > self.txn_budget:
            await self._write_generation(own)
        else:
            await self._write_in_place(changed)

    async def _write_batch(self, entries: list[Entry]) -> None:
        """Write a batch atomically: its touched shards in one transaction if they fit,
        else a whole new generation (cheaper than rewriting shards over and over)."""
        await self._ensure_started()
        state = self._state
        assert state is not None
        touched: list[Any] = []
        for ops, _future in entries:
            for op in ops:
                touched.extend(op.apply(state))
        if self._generation is None:
            await self._write_generation(state)
        else:
            nodes = {n: self._encode_node(state, n) for n in self._track(state, touched)}
            if any(len(p) > self.max_znode_bytes for p in nodes.values()) \
                    or sum(map(len, nodes.values())) > self.txn_budget:
                await self._write_generation(state)
            else:
                await self._write_in_place(nodes)
        self._resolve(entries)

    async def _write_in_place(self, nodes: dict[str, bytes]) -> None:
        nodes = {n: p for n, p in nodes.items() if p != self._written.get(n)}
        if not nodes:
            return
        assert self._generation is not None
        gen_path = self._gen_path(self._generation)
        txn = self._base_txn()
        order = sorted(nodes)
        for name in order:
            txn.set_data(f"{gen_path}/{name}", nodes[name], version=self._versions[name])
        results = await self._commit(txn, f"updating {len(order)} shard(s)")
        for name, stat in zip(order, results[-len(order):], strict=True):
            self._written[name] = nodes[name]
            self._versions[name] = stat.version

    def _plan(self, state: RegistryState) -> tuple[dict[str, int], dict[str, bytes]]:
        """Shard counts and payloads for a new generation (every shard under the target)."""
        shards: dict[str, int] = {}
        payloads: dict[str, bytes] = {}
        for section in SHARDED_SECTIONS:
            count = max(self._shards.get(section, 1), DEFAULT_SHARDS[section])
            while True:
                buckets = shard_keys(getattr(state, section), count)
                encoded = [encode_data(state.section_dict(section, b), ENCODING) for b in buckets]
                biggest = max(range(count), key=lambda i: len(encoded[i]))
                if len(encoded[biggest]) <= self.target_shard_bytes:
                    break
                if len(buckets[biggest]) <= 1 or count >= MAX_SHARDS:
                    if len(encoded[biggest]) <= self.max_znode_bytes:
                        break
                    raise RegistryError(
                        f"{self.name}: {section} shard {biggest} is {len(encoded[biggest])} "
                        f"bytes with {len(buckets[biggest])} record(s), over the "
                        f"{self.max_znode_bytes}-byte limit"
                    )
                count *= 2
            shards[section] = count
            for index, data in enumerate(encoded):
                payloads[shard_name(section, index)] = data
        policy = encode_data(state.section_dict(POLICY_SECTION), ENCODING)
        if len(policy) > self.max_znode_bytes:
            raise RegistryError(f"{self.name}: weights, quota and maintenance take "
                                f"{len(policy)} bytes, over the {self.max_znode_bytes}-byte limit")
        payloads[POLICY_SECTION] = policy
        return shards, payloads

    async def _write_generation(self, state: RegistryState) -> None:
        shards, payloads = self._plan(state)
        sequence = self._sequence + 1
        generation = f"g{sequence:08d}-{uuid.uuid4().hex[:8]}"
        gen_path = self._gen_path(generation)
        txn, size = self._base_txn(), 0
        txn.create(gen_path, b"", acl=self._acl)
        for name in sorted(payloads):
            data = payloads[name]
            if size and size + len(data) > self.txn_budget:
                await self._commit(txn, f"writing generation {generation}")
                txn, size = self._base_txn(), 0
            txn.create(f"{gen_path}/{name}", data, acl=self._acl)
            size += len(data)
        await self._commit(txn, f"writing generation {generation}")
        meta = json.dumps({"format": REGISTRY_FORMAT, "generation": generation,
                           "sequence": sequence, "shards": shards,
                           "encoding": ENCODING}, sort_keys=True).encode("utf-8")
        txn = self._base_txn()
        if self._meta_version >= 0:
            txn.set_data(self.meta_path, meta, version=self._meta_version)
        else:
            txn.create(self.meta_path, meta, acl=self._acl)
        await self._commit(txn, f"switching to generation {generation}")
        previous = self._generation
        self._reset_cache(state, generation, self._meta_version + 1, sequence, shards)
        self._written = dict(payloads)
        self._versions = dict.fromkeys(payloads, 0)
        log.info("%s: wrote generation %s (%s)", self.name, generation,
                 ", ".join(f"{s}: {n} shards" for s, n in shards.items()))
        await self._collect_garbage(keep=generation, hint=previous)

    async def _collect_garbage(self, keep: str, hint: str | None) -> None:
        """Delete generations other than ``keep`` (fenced, so a deposed writer cannot)."""
        try:
            children = await self.session.call("get_children", self.url.path)
            for child in children:
                if child == keep or not _GENERATION_RE.match(child):
                    continue
                path = self._gen_path(child)
                names = await self.session.call("get_children", path)
                paths = [f"{path}/{n}" for n in names] + [path]
                for start in range(0, len(paths), _GC_BATCH):
                    txn = self._base_txn()
                    for victim in paths[start:start + _GC_BATCH]:
                        txn.delete(victim)
                    await self._commit(txn, f"deleting old generation {child}")
        except FencedError:
            raise
        except (KazooException, RegistryError) as exc:
            log.warning("%s: could not delete old generations (after %s): %r",
                        self.name, hint, exc)


def _check_meta(meta: Any, field: str) -> tuple[str, int, dict[str, int]]:
    if not isinstance(meta, dict) or meta.get("format") != REGISTRY_FORMAT:
        raise RegistryFormatError(f"{field}.format",
                                  f"expected registry format {REGISTRY_FORMAT}, got {meta!r}")
    generation = meta.get("generation")
    if not isinstance(generation, str) or not _GENERATION_RE.match(generation):
        raise RegistryFormatError(f"{field}.generation",
                                  f"expected a name like g00000001-0a1b2c3d, got {generation!r}")
    sequence = meta.get("sequence")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise RegistryFormatError(f"{field}.sequence",
                                  f"expected an integer >= 1, got {sequence!r}")
    if meta.get("encoding") != ENCODING:
        raise RegistryFormatError(f"{field}.encoding",
                                  f"expected {ENCODING!r}, got {meta.get('encoding')!r}")
    shards = meta.get("shards")
    if not isinstance(shards, dict) or set(shards) != set(SHARDED_SECTIONS) or any(
            isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_SHARDS
            for n in shards.values()):
        raise RegistryFormatError(f"{field}.shards",
                                  f"expected a shard count for each of {SHARDED_SECTIONS}, "
                                  f"got {shards!r}")
    return generation, sequence, dict(shards)
