"""The master's side of the registry: which store, what to read, what to write.

Owns: :func:`open_registry` (ZooKeeper with ``--zk``, ``<work_dir>/registry.json``
standalone, :class:`InMemoryRegistry` otherwise or with ``--registry=in_memory``),
:func:`snapshot_from` (the stored registry in the master's own types, for
:mod:`mesoslite.master.recovery`) and :class:`RegistrySync`, which turns the
pure state's journal (:mod:`mesoslite.master.journal`) into registry
operations, dropping those that would change nothing.  It keeps a mirror of
what the store holds, so an agent re-registering with an unchanged
AgentInfo, or a framework re-subscribing with an unchanged FrameworkInfo,
costs no write.

Torn-down frameworks stay in the registry as tombstones (``unregistered_time``
set) so a new leader still refuses their ids; the oldest beyond
:data:`MAX_TOMBSTONES` are dropped, as are the oldest unreachable agents
beyond :data:`MAX_UNREACHABLE`.

No I/O happens here except through the store objects it creates.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mesoslite.coordination import (
    AdmitAgent,
    FileRegistry,
    MarkAgentUnreachable,
    PutFramework,
    Registry,
    RegistryFormatError,
    RegistryOp,
    RegistryState,
    RemoveAgent,
    RemoveFramework,
    SetMaintenance,
    SetWeight,
    StoredAgent,
    StoredFramework,
    ZkUrl,
    ZooKeeperRegistry,
)
from mesoslite.coordination.registry import BatchingRegistry, Entry
from mesoslite.master.config import MasterConfig
from mesoslite.master.journal import (
    AgentAdmitted,
    AgentMaintenanceChanged,
    AgentRemoved,
    Change,
    FrameworkRemoved,
    FrameworkStored,
    WeightChanged,
)
from mesoslite.master.recovery import RecoveredAgent, RecoveredFramework, RegistrySnapshot
from mesoslite.protocol import AgentInfo, DecodeError, FrameworkInfo, structure, unstructure

log = logging.getLogger("mesoslite.master.registry")

#: Torn-down frameworks remembered in the registry (oldest dropped first).
MAX_TOMBSTONES = 1000
#: Unreachable agents remembered in the registry (Mesos's ``registry_max_agent_count``).
MAX_UNREACHABLE = 100 * 1024
#: File name of the standalone registry inside ``work_dir``.
REGISTRY_FILE = "registry.json"


class InMemoryRegistry(BatchingRegistry):
    """A registry that lives only as long as its process (``--registry=in_memory``, tests).

    ``durable`` is False: the leader does not hold messages back for its writes
    (it skips them; its :class:`RegistrySync` mirror is the whole truth).
    """

    #: Whether writes survive this process (a leader waits only for durable writes).
    durable = False

    def __init__(self, initial: RegistryState | None = None) -> None:
        """Start with ``initial`` stored (empty by default)."""
        super().__init__("in-memory registry")
        self._stored = initial.copy() if initial is not None else RegistryState()

    async def _load_locked(self) -> None:
        self._state = self._stored.copy()

    async def _store_locked(self, state: RegistryState) -> None:
        self._stored = state.copy()
        self._state = state.copy()

    async def _write_batch(self, entries: list[Entry]) -> None:
        self._apply(entries)
        assert self._state is not None
        self._stored = self._state.copy()
        self._resolve(entries)


def describe_registry(config: MasterConfig) -> str:
    """Where the registry of a master with ``config`` lives, for logs and /flags readers."""
    if config.registry == "in_memory":
        return "in memory"
    if config.zk:
        return "ZooKeeper"
    if config.work_dir:
        return str(Path(config.work_dir) / REGISTRY_FILE)
    return "in memory (no work_dir)"


def open_registry(config: MasterConfig, zk_url: ZkUrl | None,
                  fencing_path: str | None = None) -> Registry:
    """The store for a master with ``config`` (nothing is read or connected yet).

    ``fencing_path`` is the leader znode that fences ZooKeeper writes; the
    leadership sets it on election, so it may be left None here.
    """
    if config.registry == "in_memory":
        return InMemoryRegistry()
    if zk_url is not None:
        return ZooKeeperRegistry(
            zk_url, fencing_path, session_timeout=config.zk_session_timeout,
            store_timeout=config.registry_store_timeout,
            fetch_timeout=config.registry_fetch_timeout,
        )
    if config.work_dir:
        return FileRegistry(Path(config.work_dir) / REGISTRY_FILE, log=True)
    return InMemoryRegistry()


def _structure(cls: type, value: Any, where: str) -> Any:
    try:
        return structure(cls, value, where)
    except (DecodeError, TypeError, ValueError) as exc:
        log.error("registry: %s is not a valid %s, ignored: %s", where, cls.__name__, exc)
        return None


def snapshot_from(stored: RegistryState) -> RegistrySnapshot:
    """The registry's content as master types; malformed records are logged and skipped."""
    agents: dict[str, RecoveredAgent] = {}
    for agent_id, agent in stored.agents.items():
        info = _structure(AgentInfo, agent.agent_info, f"agents[{agent_id!r}]")
        if info is not None:
            if info.id != agent_id:
                log.error("registry: agents[%r] holds the AgentInfo of %r, ignored",
                          agent_id, info.id)
                continue
            agents[agent_id] = RecoveredAgent(info, agent.registered_time, agent.identity)
    frameworks: dict[str, RecoveredFramework] = {}
    for framework_id, framework in stored.frameworks.items():
        info = _structure(FrameworkInfo, framework.info, f"frameworks[{framework_id!r}]")
        if info is not None:
            if info.id != framework_id:
                log.error("registry: frameworks[%r] holds the FrameworkInfo of %r, ignored",
                          framework_id, info.id)
                continue
            frameworks[framework_id] = RecoveredFramework(
                info, framework.registered_time, framework.unregistered_time)
    maintained = stored.maintenance.get("agents", {})
    return RegistrySnapshot(agents=agents, unreachable=dict(stored.unreachable),
                            frameworks=frameworks, weights=dict(stored.weights),
                            maintenance=dict(maintained) if isinstance(maintained, dict) else {})


def _maintenance_ops(current: dict[str, Any], change: AgentMaintenanceChanged
                     ) -> list[RegistryOp]:
    """The registry's ``maintenance`` policy with one agent's entry set or cleared."""
    agents = dict(current.get("agents", {}))
    if agents.get(change.agent_id) == change.entry:
        return []
    if change.entry is None:
        del agents[change.agent_id]
    else:
        agents[change.agent_id] = dict(change.entry)
    return [SetMaintenance({**current, "agents": agents})]


class RegistrySync:
    """Journal changes -> registry operations, against a mirror of the stored state."""

    def __init__(self, stored: RegistryState) -> None:
        """Start from what the store holds now (as read at the election)."""
        self.mirror = stored.copy()
        dead = sorted((record.unregistered_time or 0.0, framework_id)
                      for framework_id, record in stored.frameworks.items()
                      if record.unregistered_time is not None)
        self._tombstones: collections.OrderedDict[str, None] = collections.OrderedDict(
            (framework_id, None) for _when, framework_id in dead)
        #: Per agent id, the (AgentInfo, identity) last found to match the mirror: a
        #: re-registration repeating it is a no-op without encoding the info again.
        self._agents_seen: dict[str, tuple[AgentInfo, str]] = {}

    def ops_for(self, changes: Iterable[Change]) -> list[RegistryOp]:
        """The operations that make the store reflect ``changes`` (none for no-ops)."""
        ops: list[RegistryOp] = []
        for change in changes:
            try:
                new = self._ops_for(change)
            except (RegistryFormatError, ValueError, TypeError) as exc:
                log.error("registry: cannot record %r: %s", change, exc)
                continue
            for op in new:
                op.apply(self.mirror)
            ops += new
        return ops

    def _ops_for(self, change: Change) -> list[RegistryOp]:
        mirror = self.mirror
        if isinstance(change, AgentAdmitted):
            info = change.info
            stored = mirror.agents.get(info.id)
            seen = self._agents_seen.get(info.id)
            if stored is not None and seen is not None and seen[1] == change.identity \
                    and seen[0] == info:
                return []
            plain = unstructure(info)
            if stored is not None and stored.agent_info == plain \
                    and stored.hostname == info.hostname and stored.identity == change.identity:
                self._agents_seen[info.id] = (info, change.identity)
                return []
            record = StoredAgent(hostname=info.hostname, agent_info=plain,
                                 registered_time=change.registered_time,
                                 identity=change.identity)
            admit = AdmitAgent(info.id, record)
            self._agents_seen[info.id] = (info, change.identity)  # the mirror holds it next
            return [admit]
        if isinstance(change, AgentRemoved):
            if change.unreachable:
                if change.agent_id not in mirror.agents and change.agent_id in mirror.unreachable:
                    return []
                ops_out: list[RegistryOp] = [MarkAgentUnreachable(change.agent_id, change.time)]
                if len(mirror.unreachable) >= MAX_UNREACHABLE:
                    oldest = min(mirror.unreachable, key=mirror.unreachable.__getitem__)
                    ops_out.append(RemoveAgent(oldest))
                return ops_out
            if change.agent_id not in mirror.agents and change.agent_id not in mirror.unreachable:
                return []
            return [RemoveAgent(change.agent_id)]
        if isinstance(change, FrameworkStored):
            framework = change.info
            stored_fw = mirror.frameworks.get(framework.id)
            plain = unstructure(framework)
            if stored_fw is not None and stored_fw.info == plain \
                    and stored_fw.unregistered_time is None:
                return []
            self._tombstones.pop(framework.id, None)
            return [PutFramework(framework.id, StoredFramework(
                info=plain, failover_timeout=framework.failover_timeout,
                registered_time=change.registered_time))]
        if isinstance(change, FrameworkRemoved):
            framework = change.info
            ops: list[RegistryOp] = [PutFramework(framework.id, StoredFramework(
                info=unstructure(framework), failover_timeout=framework.failover_timeout,
                registered_time=change.registered_time,
                unregistered_time=change.unregistered_time))]
            self._tombstones.pop(framework.id, None)
            self._tombstones[framework.id] = None
            while len(self._tombstones) > MAX_TOMBSTONES:
                oldest, _ = self._tombstones.popitem(last=False)
                ops.append(RemoveFramework(oldest))
            return ops
        if isinstance(change, WeightChanged):
            if mirror.weights.get(change.role) == change.weight:
                return []
            return [SetWeight(change.role, change.weight)]
        if isinstance(change, AgentMaintenanceChanged):
            return _maintenance_ops(mirror.maintenance, change)
        raise TypeError(f"change: expected a journal change, got {type(change).__name__}")
