"""The master's durable state -- the registry -- as a value, its operations and codecs (PURE).

Owns: :class:`RegistryState` (admitted agents, frameworks, unreachable agents,
role weights, quota, maintenance), its record types, the incremental
operations a master applies to it (:class:`AdmitAgent`, ...), strict
JSON/msgpack encoding and decoding, and the pure sharding helpers the
ZooKeeper store uses.  Like Mesos's registry it holds only what must survive
a master failover; tasks and offers are rebuilt from agents and frameworks.

Each operation mutates a state in place and returns the keys it touched
(``(section, key)``; ``key`` is None for the small ``policy`` section), so a
store can write only what changed.  Operations are idempotent.
"""

from __future__ import annotations

import copy
import json
import math
import zlib
from typing import Any

import attrs
import msgpack

from mesoslite.protocol.types import valid_id

#: Version of the encoded layout; decoding refuses any other.
REGISTRY_FORMAT = 1

#: Sharded sections (maps from id to record) and the one unsharded section.
SHARDED_SECTIONS = ("agents", "frameworks", "unreachable")
POLICY_SECTION = "policy"

Touched = tuple[tuple[str, str | None], ...]


class RegistryFormatError(ValueError):
    """Encoded registry data is malformed; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


# ------------------------------------------------------------------ validators


def _number(field: str, value: Any, *, minimum: float | None = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RegistryFormatError(field, f"expected a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise RegistryFormatError(field, f"expected a number >= {minimum}, got {value!r}")
    return float(value)


def _mapping(field: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RegistryFormatError(field, f"expected an object, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise RegistryFormatError(field, f"expected string keys, got {key!r}")
    return value


def _identifier(field: str, value: Any) -> str:
    if not isinstance(value, str) or not valid_id(value):
        raise RegistryFormatError(
            field, f"invalid id {value!r}: expected 1-255 characters of A-Z a-z 0-9 _ . - : @"
        )
    return value


def _role(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise RegistryFormatError(field, f"expected a role name without spaces, got {value!r}")
    return value


def _check_id(_inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    _identifier(attribute.name, value)


def _check_time(_inst: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None:
        _number(attribute.name, value)


def _check_weight(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if _number(attribute.name, value) <= 0:
        raise RegistryFormatError(attribute.name, f"expected a weight > 0, got {value!r}")


# ------------------------------------------------------------------ records


@attrs.frozen
class StoredAgent:
    """An admitted agent: its hostname, its AgentInfo as a plain dict, when it registered."""

    hostname: str
    agent_info: dict[str, Any]
    registered_time: float = attrs.field(validator=_check_time)
    #: The identity the agent id is bound to (principal and token digest; "": none).
    identity: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        out: dict[str, Any] = {"hostname": self.hostname, "agent_info": self.agent_info,
                               "registered_time": self.registered_time}
        if self.identity:
            out["identity"] = self.identity
        return out

    @classmethod
    def from_dict(cls, obj: Any, field: str = "agent") -> StoredAgent:
        """Validate plain data into a record."""
        obj = _mapping(field, obj)
        hostname = obj.get("hostname")
        if not isinstance(hostname, str):
            raise RegistryFormatError(f"{field}.hostname", f"expected a string, got {hostname!r}")
        identity = obj.get("identity", "")
        if not isinstance(identity, str):
            raise RegistryFormatError(f"{field}.identity", f"expected a string, got {identity!r}")
        return cls(hostname=hostname,
                   agent_info=_mapping(f"{field}.agent_info", obj.get("agent_info")),
                   registered_time=_number(f"{field}.registered_time",
                                           obj.get("registered_time")),
                   identity=identity)


@attrs.frozen
class StoredFramework:
    """A framework the master must remember across failovers (Mesos keeps it for recovery)."""

    info: dict[str, Any]
    failover_timeout: float = attrs.field(default=0.0, validator=_check_time)
    registered_time: float = attrs.field(default=0.0, validator=_check_time)
    unregistered_time: float | None = attrs.field(default=None, validator=_check_time)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {"info": self.info, "failover_timeout": self.failover_timeout,
                "registered_time": self.registered_time,
                "unregistered_time": self.unregistered_time}

    @classmethod
    def from_dict(cls, obj: Any, field: str = "framework") -> StoredFramework:
        """Validate plain data into a record."""
        obj = _mapping(field, obj)
        unregistered = obj.get("unregistered_time")
        return cls(
            info=_mapping(f"{field}.info", obj.get("info")),
            failover_timeout=_number(f"{field}.failover_timeout", obj.get("failover_timeout")),
            registered_time=_number(f"{field}.registered_time", obj.get("registered_time")),
            unregistered_time=None if unregistered is None
            else _number(f"{field}.unregistered_time", unregistered),
        )


# ------------------------------------------------------------------ the state


@attrs.define
class RegistryState:
    """Everything the registry holds.  Stores hand out copies; mutate only your own."""

    agents: dict[str, StoredAgent] = attrs.field(factory=dict)
    frameworks: dict[str, StoredFramework] = attrs.field(factory=dict)
    unreachable: dict[str, float] = attrs.field(factory=dict)
    weights: dict[str, float] = attrs.field(factory=dict)
    quota: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    maintenance: dict[str, Any] = attrs.field(factory=dict)

    def copy(self) -> RegistryState:
        """A copy whose maps can be changed without touching this one (records are frozen)."""
        return RegistryState(
            agents=dict(self.agents), frameworks=dict(self.frameworks),
            unreachable=dict(self.unreachable), weights=dict(self.weights),
            quota={role: dict(q) for role, q in self.quota.items()},
            maintenance=copy.deepcopy(self.maintenance),
        )

    # ---- plain data

    def section_dict(self, section: str, keys: list[str] | None = None) -> dict[str, Any]:
        """Plain data for one section (optionally only ``keys`` of a sharded one)."""
        if section == POLICY_SECTION:
            return {"weights": self.weights, "quota": self.quota, "maintenance": self.maintenance}
        source: dict[str, Any] = getattr(self, section)
        items = source.items() if keys is None else ((k, source[k]) for k in keys)
        if section == "unreachable":
            return dict(items)
        return {key: record.to_dict() for key, record in items}

    def load_section(self, section: str, obj: Any) -> None:
        """Validate plain data for ``section`` and merge it into this state."""
        obj = _mapping(section, obj)
        if section == POLICY_SECTION:
            weights = _mapping("weights", obj.get("weights", {}))
            for role, weight in weights.items():
                _role(f"weights[{role!r}]", role)
                if _number(f"weights[{role!r}]", weight) <= 0:
                    raise RegistryFormatError(f"weights[{role!r}]",
                                              f"expected a weight > 0, got {weight!r}")
                self.weights[role] = float(weight)
            for role, quota in _mapping("quota", obj.get("quota", {})).items():
                self.quota[_role(f"quota[{role!r}]", role)] = _mapping(f"quota[{role!r}]", quota)
            self.maintenance = _mapping("maintenance", obj.get("maintenance", {}))
            return
        if section not in SHARDED_SECTIONS:
            raise RegistryFormatError("section", f"unknown section {section!r}")
        for key, value in obj.items():
            field = f"{section}[{key!r}]"
            _identifier(field, key)
            if section == "agents":
                self.agents[key] = StoredAgent.from_dict(value, field)
            elif section == "frameworks":
                self.frameworks[key] = StoredFramework.from_dict(value, field)
            else:
                self.unreachable[key] = _number(field, value)

    def to_dict(self) -> dict[str, Any]:
        """The whole state as plain data (JSON- and msgpack-ready)."""
        out = {section: self.section_dict(section) for section in SHARDED_SECTIONS}
        out[POLICY_SECTION] = self.section_dict(POLICY_SECTION)
        return {"format": REGISTRY_FORMAT, **out}

    @classmethod
    def from_dict(cls, obj: Any) -> RegistryState:
        """Validate plain data (as made by :meth:`to_dict`) into a state."""
        obj = _mapping("registry", obj)
        if obj.get("format") != REGISTRY_FORMAT:
            raise RegistryFormatError(
                "format", f"unsupported registry format {obj.get('format')!r}, "
                f"expected {REGISTRY_FORMAT}")
        state = cls()
        for section in (*SHARDED_SECTIONS, POLICY_SECTION):
            state.load_section(section, obj.get(section, {}))
        return state

    def encode(self, fmt: str = "json") -> bytes:
        """Encode as ``json`` (UTF-8) or ``msgpack``."""
        return encode_data(self.to_dict(), fmt)

    @classmethod
    def decode(cls, data: bytes, fmt: str = "json") -> RegistryState:
        """Decode bytes made by :meth:`encode` (RegistryFormatError if malformed)."""
        return cls.from_dict(decode_data(data, fmt, "registry"))


def encode_data(obj: Any, fmt: str) -> bytes:
    """Plain data → bytes in ``json``, ``msgpack`` or ``msgpack+zlib``."""
    try:
        if fmt == "json":
            return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")
        if fmt == "msgpack":
            return msgpack.packb(obj, use_bin_type=True)
        if fmt == "msgpack+zlib":
            return zlib.compress(msgpack.packb(obj, use_bin_type=True), 1)
    except (TypeError, ValueError) as exc:
        raise RegistryFormatError("registry", f"cannot encode as {fmt}: {exc}") from None
    raise ValueError(f"fmt: expected 'json', 'msgpack' or 'msgpack+zlib', got {fmt!r}")


def decode_data(data: bytes, fmt: str, field: str) -> Any:
    """Bytes → plain data; RegistryFormatError naming ``field`` when they do not decode."""
    try:
        if fmt == "json":
            return json.loads(data.decode("utf-8"))
        if fmt == "msgpack":
            return msgpack.unpackb(data, raw=False, strict_map_key=True)
        if fmt == "msgpack+zlib":
            return msgpack.unpackb(zlib.decompress(data), raw=False, strict_map_key=True)
    except (ValueError, TypeError, zlib.error) as exc:
        raise RegistryFormatError(field, f"not valid {fmt} ({type(exc).__name__})") from None
    raise ValueError(f"fmt: expected 'json', 'msgpack' or 'msgpack+zlib', got {fmt!r}")


# ------------------------------------------------------------------ operations


@attrs.frozen
class AdmitAgent:
    """Admit (or re-admit) an agent; it stops being unreachable."""

    agent_id: str = attrs.field(validator=_check_id)
    record: StoredAgent

    def apply(self, state: RegistryState) -> Touched:
        """Apply to ``state`` in place; the touched keys."""
        state.agents[self.agent_id] = self.record
        state.unreachable.pop(self.agent_id, None)
        return (("agents", self.agent_id), ("unreachable", self.agent_id))


@attrs.frozen
class RemoveAgent:
    """Forget an agent entirely (admitted or unreachable); no-op if unknown."""

    agent_id: str = attrs.field(validator=_check_id)

    def apply(self, state: RegistryState) -> Touched:
        """Apply to ``state`` in place; the touched keys."""
        state.agents.pop(self.agent_id, None)
        state.unreachable.pop(self.agent_id, None)
        return (("agents", self.agent_id), ("unreachable", self.agent_id))


@attrs.frozen
class MarkAgentUnreachable:
    """Move an agent from admitted to unreachable, stamped with ``time``."""

    agent_id: str = attrs.field(validator=_check_id)
    time: float = attrs.field(validator=_check_time)

    def apply(self, state: RegistryState) -> Touched:
        """Apply to ``state`` in place; the touched keys."""
        state.agents.pop(self.agent_id, None)
        state.unreachable[self.agent_id] = self.time
        return (("agents", self.agent_id), ("unreachable", self.agent_id))


@attrs.frozen
class PutFramework:
    """Add or replace a framework's record."""

    framework_id: str = attrs.field(validator=_check_id)
    record: StoredFramework

    def apply(self, state: RegistryState) -> Touched:
        """Apply to ``state`` in place; the touched keys."""
        state.frameworks[self.framework_id] = self.record
        return (("frameworks", self.framework_id),)


@attrs.frozen
class RemoveFramework:
    """Forget a framework (torn down or failover timeout passed); no-op if unknown."""

    framework_id: str = attrs.field(validator=_check_id)

    def apply(self, state: RegistryState) -> Touched:
        """Apply to ``state`` in place; the touched keys."""
        state.frameworks.pop(self.framework_id, None)
        return (("frameworks", self.framework_id),)


@attrs.frozen
class SetWeight:
    """Set a role's weight (Mesos ``/weights``); ``None`` resets it to the default 1.0."""

    role: str
    weight: float | None = None

    def __attrs_post_init__(self) -> None:
        _role("role", self.role)
        if self.weight is not None and _number("weight", self.weight) <= 0:
            raise RegistryFormatError("weight", f"expected a weight > 0, got {self.weight!r}")

    def apply(self, state: RegistryState) -> Touched:
        """Apply to ``state`` in place; the touched keys."""
        if self.weight is None:
            state.weights.pop(self.role, None)
        else:
            state.weights[self.role] = float(self.weight)
        return ((POLICY_SECTION, None),)


@attrs.frozen
class SetQuota:
    """Set a role's quota (plain dict, e.g. ``{"cpus": 4}``); ``None`` removes it."""

    role: str
    quota: dict[str, Any] | None = None

    def __attrs_post_init__(self) -> None:
        _role("role", self.role)
        if self.quota is not None:
            _mapping("quota", self.quota)

    def apply(self, state: RegistryState) -> Touched:
        """Apply to ``state`` in place; the touched keys."""
        if self.quota is None:
            state.quota.pop(self.role, None)
        else:
            state.quota[self.role] = dict(self.quota)
        return ((POLICY_SECTION, None),)


@attrs.frozen
class SetMaintenance:
    """Replace the maintenance schedule (plain dict, Mesos ``/maintenance/schedule`` shape)."""

    schedule: dict[str, Any]

    def __attrs_post_init__(self) -> None:
        _mapping("schedule", self.schedule)

    def apply(self, state: RegistryState) -> Touched:
        """Apply to ``state`` in place; the touched keys."""
        state.maintenance = dict(self.schedule)
        return ((POLICY_SECTION, None),)


RegistryOp = (AdmitAgent | RemoveAgent | MarkAgentUnreachable | PutFramework | RemoveFramework
              | SetWeight | SetQuota | SetMaintenance)


# ------------------------------------------------------------------ sharding


def shard_of(key: str, shards: int) -> int:
    """The shard a key belongs to (stable across processes: CRC-32 of the UTF-8 key)."""
    return zlib.crc32(key.encode("utf-8")) % shards


def shard_keys(keys: Any, shards: int) -> list[list[str]]:
    """Split ``keys`` into ``shards`` lists by :func:`shard_of`, each sorted."""
    out: list[list[str]] = [[] for _ in range(shards)]
    for key in keys:
        out[shard_of(key, shards)].append(key)
    for bucket in out:
        bucket.sort()
    return out


def shard_name(section: str, index: int) -> str:
    """Znode name of a shard, e.g. ``agents.0007``; the policy section is just ``policy``."""
    return POLICY_SECTION if section == POLICY_SECTION else f"{section}.{index:04d}"
