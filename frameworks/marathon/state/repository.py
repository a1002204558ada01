"""Repositories of the Marathon-style framework's durable state, as compact JSON in a Store.

Owns: the key layout and JSON encoding of what survives a restart or a failover::

    /apps/<encoded app id>/current              the current app definition (a JSON object)
    /apps/<encoded app id>/versions/<version>   every kept version of it
    /deployments/<deployment id>                one deployment (a JSON object)
    /framework-id                               {"id": "<framework id>"}
    /instances/<encoded task id>                one task (kept by ``instances``)

The layout is nested so each value stays small (one app or one deployment
per znode, far under ZooKeeper's 1 MB limit).  App ids are paths like
``/grp/app``: :func:`encode_app_id` turns one into a single key segment,
reversibly.  Versions are kept sorted by their string order, which is time
order for Marathon's fixed-width ISO-8601 timestamps (``2024-05-01T12:00:00.000Z``);
at most ``max_versions`` are kept per app, the oldest pruned first.

A stored value that is not a JSON object raises :class:`CorruptValueError`
naming the key.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from frameworks.marathon.state.store import InvalidKeyError, Store, StoreError

#: Marathon's ``zk_max_versions`` default.
DEFAULT_MAX_VERSIONS = 50
_SAFE = re.compile(r"[A-Za-z0-9\-.~:+]")
_ESCAPE = re.compile(r"%([0-9A-F]{2})")
_READ_CONCURRENCY = 64


class CorruptValueError(StoreError):
    """A stored value could not be decoded; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"key {key!r}: {message}")
        self.key = key


def _escape(text: str, *, slash: str | None) -> str:
    out: list[str] = []
    for ch in text:
        if ch == "/" and slash is not None:
            out.append(slash)
        elif _SAFE.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    encoded = "".join(out)
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    return encoded


def _unescape(segment: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(segment):
        if segment[i] == "%":
            match = _ESCAPE.match(segment, i)
            if match is None:
                raise ValueError(f"bad escape at {i} in {segment!r}")
            raw.append(int(match.group(1), 16))
            i += 3
        else:
            raw.extend(segment[i].encode("utf-8"))
            i += 1
    return raw.decode("utf-8")


def encode_app_id(app_id: str) -> str:
    """``/grp/app`` → ``grp_app``: one key segment (``_`` and unsafe characters %-escaped)."""
    if not isinstance(app_id, str) or not app_id.startswith("/") or app_id == "/":
        raise InvalidKeyError(f"app_id: expected an absolute id like '/grp/app', got {app_id!r}")
    return _escape(app_id[1:], slash="_")


def decode_app_id(segment: str) -> str:
    """The inverse of :func:`encode_app_id`."""
    try:
        return "/" + "/".join(_unescape(part) for part in segment.split("_"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidKeyError(f"app key segment {segment!r}: not an encoded app id ({exc})") \
            from None


def encode_segment(text: str, field: str) -> str:
    """Any non-empty string (a version, a deployment id) as one safe key segment."""
    if not isinstance(text, str) or not text:
        raise InvalidKeyError(f"{field}: expected a non-empty string, got {text!r}")
    return _escape(text, slash=None)


def decode_segment(segment: str) -> str:
    """The inverse of :func:`encode_segment`."""
    try:
        return _unescape(segment)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidKeyError(f"key segment {segment!r}: not an encoded name ({exc})") from None


def dump_json(obj: dict[str, Any], key: str) -> bytes:
    """Compact UTF-8 JSON of a dict; StoreError naming the key when it is not JSON-able."""
    if not isinstance(obj, dict):
        raise StoreError(f"key {key!r}: expected a dict to store, got {type(obj).__name__}")
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise StoreError(f"key {key!r}: value is not JSON-serialisable: {exc}") from None


def load_json(data: bytes, key: str) -> dict[str, Any]:
    """Decode a stored JSON object; CorruptValueError naming the key otherwise."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptValueError(key, f"stored value is not UTF-8 JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise CorruptValueError(key, f"expected a JSON object, got {type(obj).__name__}")
    return obj


async def _get_json(store: Store, key: str) -> dict[str, Any] | None:
    data = await store.get(key)
    return None if data is None else load_json(data, key)


class AppRepository:
    """Apps and their versions."""

    def __init__(self, store: Store, *, max_versions: int = DEFAULT_MAX_VERSIONS) -> None:
        if isinstance(max_versions, bool) or not isinstance(max_versions, int) \
                or max_versions < 1:
            raise ValueError(f"max_versions: expected an integer >= 1, got {max_versions!r}")
        self.store = store
        self.max_versions = max_versions

    @staticmethod
    def app_key(app_id: str) -> str:
        """The key under which ``app_id`` lives."""
        return f"/apps/{encode_app_id(app_id)}"

    async def store_app(self, app_id: str, version: str, app_dict: dict[str, Any]) -> list[str]:
        """Make ``app_dict`` the current definition and version ``version``; prune old versions.

        One commit: the current value, the version and the pruning go together.
        Returns the pruned versions (oldest first).  The version being stored is
        never pruned.
        """
        base = self.app_key(app_id)
        vseg = encode_segment(version, "version")
        data = dump_json(app_dict, f"{base}/current")
        existing = await self.store.children(f"{base}/versions")
        kept = sorted({decode_segment(s) for s in existing} | {version})
        excess = len(kept) - self.max_versions
        pruned = [v for v in kept if v != version][:max(excess, 0)]
        await self.store.commit(
            {f"{base}/current": data, f"{base}/versions/{vseg}": data},
            [f"{base}/versions/{encode_segment(v, 'version')}" for v in pruned],
        )
        return pruned

    async def current(self, app_id: str) -> dict[str, Any] | None:
        """The current definition of ``app_id`` (None: no such app)."""
        return await _get_json(self.store, f"{self.app_key(app_id)}/current")

    async def ids(self) -> list[str]:
        """Every stored app id, sorted."""
        return sorted(decode_app_id(s) for s in await self.store.children("/apps"))

    async def all_current(self) -> dict[str, dict[str, Any]]:
        """app id → current definition, for every app that has one."""
        ids = await self.ids()
        limit = asyncio.Semaphore(_READ_CONCURRENCY)

        async def one(app_id: str) -> dict[str, Any] | None:
            async with limit:
                return await self.current(app_id)

        found = await asyncio.gather(*(one(app_id) for app_id in ids))
        return {app_id: app for app_id, app in zip(ids, found, strict=True) if app is not None}

    async def versions(self, app_id: str) -> list[str]:
        """The kept versions of ``app_id``, oldest first."""
        names = await self.store.children(f"{self.app_key(app_id)}/versions")
        return sorted(decode_segment(s) for s in names)

    async def version(self, app_id: str, version: str) -> dict[str, Any] | None:
        """The definition of ``app_id`` at ``version`` (None: not kept)."""
        key = f"{self.app_key(app_id)}/versions/{encode_segment(version, 'version')}"
        return await _get_json(self.store, key)

    async def delete_app(self, app_id: str) -> None:
        """Delete the app, its current definition and all its versions."""
        await self.store.delete(self.app_key(app_id))


class DeploymentRepository:
    """Deployments in progress, by id."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def key(deployment_id: str) -> str:
        """The key of one deployment."""
        return f"/deployments/{encode_segment(deployment_id, 'deployment_id')}"

    async def store_deployment(self, deployment_id: str, deployment: dict[str, Any]) -> None:
        """Create or replace a deployment."""
        key = self.key(deployment_id)
        await self.store.put(key, dump_json(deployment, key))

    async def get(self, deployment_id: str) -> dict[str, Any] | None:
        """One deployment (None: unknown)."""
        return await _get_json(self.store, self.key(deployment_id))

    async def delete(self, deployment_id: str) -> None:
        """Forget a deployment (no-op when unknown)."""
        await self.store.delete(self.key(deployment_id))

    async def all(self) -> dict[str, dict[str, Any]]:
        """deployment id → deployment, for every stored one."""
        names = await self.store.children("/deployments")
        ids = [decode_segment(s) for s in names]
        found = await asyncio.gather(*(self.get(i) for i in ids))
        return {i: d for i, d in zip(ids, found, strict=True) if d is not None}


class FrameworkIdRepository:
    """The framework id registered with the master (kept across failovers)."""

    KEY = "/framework-id"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self) -> str | None:
        """The stored framework id (None: never registered)."""
        obj = await _get_json(self.store, self.KEY)
        if obj is None:
            return None
        value = obj.get("id")
        if not isinstance(value, str) or not value:
            raise CorruptValueError(self.KEY, f"field id: expected a non-empty string, "
                                              f"got {value!r}")
        return value

    async def set(self, framework_id: str) -> None:
        """Store the framework id."""
        if not isinstance(framework_id, str) or not framework_id:
            raise ValueError(f"framework_id: expected a non-empty string, got {framework_id!r}")
        await self.store.put(self.KEY, dump_json({"id": framework_id}, self.KEY))

    async def delete(self) -> None:
        """Forget the framework id (e.g. after the master removed the framework)."""
        await self.store.delete(self.KEY)


__all__ = [
    "DEFAULT_MAX_VERSIONS",
    "AppRepository",
    "CorruptValueError",
    "DeploymentRepository",
    "FrameworkIdRepository",
    "decode_app_id",
    "decode_segment",
    "encode_app_id",
    "encode_segment",
]
