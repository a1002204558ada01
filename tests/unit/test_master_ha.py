"""High availability, pure parts: HA flags, the journal, registry sync and recovery deadlines."""

from __future__ import annotations

import pytest

from mesoslite.cli import FlagError, build_config, build_parser
from mesoslite.coordination import (
    AdmitAgent,
    MarkAgentUnreachable,
    PutFramework,
    RegistryState,
    RemoveAgent,
    RemoveFramework,
    SetWeight,
)
from mesoslite.master import ConfigError, MasterConfig
from mesoslite.master.journal import (
    AgentAdmitted,
    AgentRemoved,
    FrameworkRemoved,
    FrameworkStored,
    WeightChanged,
)
from mesoslite.master.leadership import suspend_grace
from mesoslite.master.recovery import (
    RecoveredAgent,
    RecoveredFramework,
    Recovery,
    RegistrySnapshot,
)
from mesoslite.master.registry_sync import MAX_TOMBSTONES, RegistrySync, snapshot_from
from mesoslite.protocol import (
    AgentInfo,
    AgentReregistered,
    Error,
    Failure,
    FrameworkInfo,
    Reconcile,
    ReconcileTask,
    ReregisterAgent,
    ShutdownFramework,
    Subscribe,
    Task,
    TaskState,
)
from mesoslite.resources import Resources
from mesoslite.testing.harness import AGENT_RESOURCES, Harness, messages, updates

ZK = "zk://127.0.0.1:2181/mesoslite"


# ------------------------------------------------------------------ configuration


def test_zk_requires_quorum() -> None:
    """--zk without --quorum is refused, naming quorum (Mesos requires it too)."""
    with pytest.raises(ConfigError) as caught:
        MasterConfig(zk=ZK)
    assert caught.value.field == "quorum"
    assert MasterConfig(zk=ZK, quorum=2).quorum == 2


@pytest.mark.parametrize("bad", ["http://h:2181/m", "zk://h:2181", "zk://h:2181/", "zk:///m", 7])
def test_malformed_zk_url_is_refused(bad: object) -> None:
    """A --zk value that is not zk://hosts/path is refused, naming zk and the value."""
    with pytest.raises(ConfigError) as caught:
        MasterConfig(zk=bad, quorum=1)  # type: ignore[arg-type]
    assert caught.value.field == "zk"
    assert repr(bad) in str(caught.value)


@pytest.mark.parametrize(("field", "value"), [
    ("quorum", 0), ("zk_session_timeout", 0), ("agent_reregister_timeout", -1),
    ("registry", "replicated"), ("registry_store_timeout", 0), ("registry_fetch_timeout", 0),
])
def test_ha_fields_are_validated(field: str, value: object) -> None:
    """Each HA field refuses a bad value, naming the field."""
    with pytest.raises(ConfigError) as caught:
        MasterConfig(**{field: value})  # type: ignore[arg-type]
    assert caught.value.field == field


def test_ha_defaults_are_mesos_defaults() -> None:
    """Defaults: standalone, 10 s session, 10 min re-registration, 20 s store, 60 s fetch."""
    config = MasterConfig()
    assert (config.zk, config.quorum, config.zk_session_timeout) == ("", None, 10.0)
    assert config.agent_reregister_timeout == 600.0
    assert (config.registry, config.registry_store_timeout,
            config.registry_fetch_timeout) == ("replicated_log", 20.0, 60.0)


def test_master_flags_come_from_the_config() -> None:
    """`mesoslite master --zk … --quorum 2 --zk_session_timeout 2` builds that config."""
    args = build_parser().parse_args(["master", "--zk", ZK, "--quorum", "2",
                                      "--zk-session-timeout", "2",
                                      "--agent_reregister_timeout", "5"])
    config = build_config(MasterConfig, args)
    assert (config.zk, config.quorum, config.zk_session_timeout) == (ZK, 2, 2.0)
    assert config.agent_reregister_timeout == 5.0
    with pytest.raises(FlagError) as caught:
        build_config(MasterConfig, build_parser().parse_args(["master", "--zk", ZK]))
    assert caught.value.flag == "--quorum"


def test_master_refuses_an_unparsable_zk_host() -> None:
    """A master process parses --zk fully: a bad port is a ConfigError naming zk."""
    from mesoslite.master.main import MasterProcess

    with pytest.raises(ConfigError) as caught:
        MasterProcess(MasterConfig(zk="zk://h:99999/m", quorum=1))
    assert caught.value.field == "zk"
    assert "99999" in str(caught.value)


def test_flags_mask_the_zookeeper_password() -> None:
    """/flags shows the ZooKeeper URL without its password."""
    from mesoslite.master.http import flags
    from mesoslite.master.main import MasterProcess

    master = MasterProcess(MasterConfig(zk="zk://user:hunter2@h1:2181,h2/m", quorum=2))
    shown = flags(master.shell)
    assert shown["zk"] == "zk://user:***@h1:2181,h2:2181/m"
    assert shown["quorum"] == "2"
    assert "hunter2" not in str(shown)


def test_suspend_grace_stays_well_inside_the_session_timeout() -> None:
    """A leader steps down after a quarter of the session timeout, at most 2 s."""
    assert suspend_grace(10.0) == 2.0
    assert suspend_grace(2.0) == 0.5


# ------------------------------------------------------------------ the journal


def _journaled(**config: object) -> Harness:
    h = Harness(**config)
    h.state.journal = []
    return h


def test_state_journals_nothing_unless_asked() -> None:
    """Without a shell switching it on, the state keeps no journal."""
    h = Harness()
    h.add_agent()
    h.subscribe()
    assert h.state.journal is None


def test_agent_registration_and_removal_are_journaled() -> None:
    """A new agent is journaled admitted; one silent too long, unreachable."""
    h = _journaled(agent_ping_timeout=1.0, max_agent_ping_timeouts=2)
    agent_id = h.add_agent(b"a1")
    [admitted] = h.state.journal
    assert isinstance(admitted, AgentAdmitted) and admitted.info.id == agent_id
    h.state.journal.clear()
    for _ in range(4):
        h.tick(1.0)
    assert [type(c) for c in h.state.journal] == [AgentRemoved]
    assert h.state.journal[0].agent_id == agent_id and h.state.journal[0].unreachable


def test_framework_subscription_teardown_and_weights_are_journaled() -> None:
    """Subscribe, a weight change and teardown each leave one journal entry."""
    h = _journaled()
    framework_id = h.subscribe(b"f1", failover_timeout=30.0)
    h.state.set_weight("web", 2.0)
    h.state.remove_framework(framework_id, "test")
    stored, weight, removed = h.state.journal
    assert isinstance(stored, FrameworkStored) and stored.info.id == framework_id
    assert weight == WeightChanged("web", 2.0)
    assert isinstance(removed, FrameworkRemoved) and removed.info.id == framework_id


# ------------------------------------------------------------------ registry sync


def _agent_info(agent_id: str, cpus: int = 4) -> AgentInfo:
    return AgentInfo(hostname="a1", resources=Resources.parse(f"cpus:{cpus};mem:1024"),
                     id=agent_id)


def test_sync_writes_only_what_changes_the_registry() -> None:
    """Re-admitting an unchanged agent or re-storing an unchanged framework costs no write."""
    sync = RegistrySync(RegistryState())
    info = _agent_info("m-S0")
    [op] = sync.ops_for([AgentAdmitted(info, 1.0)])
    assert isinstance(op, AdmitAgent)
    assert sync.ops_for([AgentAdmitted(info, 2.0)]) == []
    [op] = sync.ops_for([AgentAdmitted(_agent_info("m-S0", cpus=8), 2.0)])
    assert isinstance(op, AdmitAgent)
    framework = FrameworkInfo(user="u", name="f", id="m-0000", failover_timeout=60.0)
    [op] = sync.ops_for([FrameworkStored(framework, 1.0)])
    assert isinstance(op, PutFramework) and op.record.failover_timeout == 60.0
    assert sync.ops_for([FrameworkStored(framework, 5.0)]) == []
    assert sync.ops_for([WeightChanged("web", 2.0)]) == [SetWeight("web", 2.0)]
    assert sync.ops_for([WeightChanged("web", 2.0)]) == []


def test_sync_remembers_matched_agent_infos_until_the_mirror_changes() -> None:
    """A repeat of the info last matched costs no op; after the agent left the mirror
    (unreachable), or with another identity, the same info is written again."""
    sync = RegistrySync(RegistryState())
    info = _agent_info("m-S0")
    assert len(sync.ops_for([AgentAdmitted(info, 1.0)])) == 1
    assert sync.ops_for([AgentAdmitted(_agent_info("m-S0"), 2.0)]) == []
    assert sync.ops_for([AgentRemoved("m-S0", True, 3.0)]) == [MarkAgentUnreachable("m-S0", 3.0)]
    [op] = sync.ops_for([AgentAdmitted(info, 4.0)])
    assert isinstance(op, AdmitAgent) and "m-S0" in sync.mirror.agents
    [op] = sync.ops_for([AgentAdmitted(info, 5.0, "agent-principal")])
    assert isinstance(op, AdmitAgent) and op.record.identity == "agent-principal"
    assert sync.ops_for([AgentAdmitted(info, 6.0, "agent-principal")]) == []


def test_sync_agent_removals() -> None:
    """Unreachable agents are marked so once; gone agents are forgotten; unknown ones skipped."""
    sync = RegistrySync(RegistryState())
    sync.ops_for([AgentAdmitted(_agent_info("m-S0"), 1.0), AgentAdmitted(_agent_info("m-S1"), 1.0)])
    assert sync.ops_for([AgentRemoved("m-S0", True, 9.0)]) == [MarkAgentUnreachable("m-S0", 9.0)]
    assert sync.ops_for([AgentRemoved("m-S0", True, 10.0)]) == []
    assert sync.ops_for([AgentRemoved("m-S1", False, 9.0)]) == [RemoveAgent("m-S1")]
    assert sync.ops_for([AgentRemoved("m-S9", False, 9.0)]) == []
    assert sync.mirror.unreachable == {"m-S0": 9.0} and sync.mirror.agents == {}


def test_sync_keeps_bounded_tombstones_of_torn_down_frameworks() -> None:
    """A torn-down framework stays as a tombstone; beyond the limit the oldest is dropped."""
    sync = RegistrySync(RegistryState())
    for i in range(MAX_TOMBSTONES):
        info = FrameworkInfo(user="u", name="f", id=f"m-{i:04d}")
        sync.ops_for([FrameworkRemoved(info, 1.0, 2.0 + i)])
    assert len(sync.mirror.frameworks) == MAX_TOMBSTONES
    info = FrameworkInfo(user="u", name="f", id="m-new")
    put, drop = sync.ops_for([FrameworkRemoved(info, 1.0, 5000.0)])
    assert isinstance(put, PutFramework) and put.record.unregistered_time == 5000.0
    assert drop == RemoveFramework("m-0000")


def test_sync_forgets_the_oldest_unreachable_agent_beyond_the_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond the unreachable-agent limit, marking one more drops the oldest."""
    from mesoslite.master import registry_sync

    monkeypatch.setattr(registry_sync, "MAX_UNREACHABLE", 2)
    sync = RegistrySync(RegistryState(unreachable={"m-S0": 5.0, "m-S1": 3.0}))
    sync.ops_for([AgentAdmitted(_agent_info("m-S2"), 1.0)])
    mark, drop = sync.ops_for([AgentRemoved("m-S2", True, 9.0)])
    assert mark == MarkAgentUnreachable("m-S2", 9.0) and drop == RemoveAgent("m-S1")
    assert sync.mirror.unreachable == {"m-S0": 5.0, "m-S2": 9.0}


def test_snapshot_round_trips_and_skips_bad_records() -> None:
    """What the sync writes reads back as master types; a malformed record is skipped."""
    sync = RegistrySync(RegistryState())
    info = _agent_info("m-S0")
    framework = FrameworkInfo(user="u", name="f", id="m-0000", roles=("web",))
    sync.ops_for([AgentAdmitted(info, 1.0), FrameworkStored(framework, 3.0),
                  WeightChanged("web", 2.5)])
    stored = RegistryState.decode(sync.mirror.encode("json"), "json")
    stored.agents["m-S9"] = type(stored.agents["m-S0"])("h", {"hostname": 5}, 1.0)
    snapshot = snapshot_from(stored)
    assert snapshot.agents == {"m-S0": RecoveredAgent(info, 1.0)}
    assert snapshot.frameworks == {"m-0000": RecoveredFramework(framework, 3.0)}
    assert snapshot.weights == {"web": 2.5}


# ------------------------------------------------------------------ recovery


def _snapshot(**kw: object) -> RegistrySnapshot:
    return RegistrySnapshot(**kw)  # type: ignore[arg-type]


def _recovered(config: dict[str, object], snapshot: RegistrySnapshot) -> tuple[Harness, Recovery]:
    h = Harness(**config)
    h.state.journal = []
    return h, Recovery(h.state, snapshot)


def test_recovery_restores_weights_frameworks_and_expected_agents() -> None:
    """A new leader knows the registry's weights, frameworks (inactive) and agents (awaited)."""
    framework = FrameworkInfo(user="u", name="web", id="old-0001", roles=("web",))
    h, recovery = _recovered({}, _snapshot(
        agents={"old-S1": RecoveredAgent(_agent_info("old-S1"), 1.0)},
        unreachable={"old-S2": 5.0},
        frameworks={"old-0001": RecoveredFramework(framework, 2.0),
                    "old-0002": RecoveredFramework(
                        FrameworkInfo(user="u", name="x", id="old-0002"), 2.0, 3.0)},
        weights={"web": 3.0}))
    assert h.state.weights()["web"] == 3.0
    record = h.state.frameworks["old-0001"]
    assert record.recovered and not record.connected and record.registered_time == 2.0
    assert "old-0002" in h.state.removed_framework_ids
    assert set(h.state.recovered_agents) == {"old-S1"}
    assert "old-S2" in h.state.unreachable_agents
    assert h.state.journal == []  # nothing to write: the registry holds all of it
    assert not recovery.done


def test_agents_not_back_in_time_become_unreachable() -> None:
    """After agent_reregister_timeout, missing agents are marked unreachable (durably)."""
    h, recovery = _recovered({"agent_reregister_timeout": 30.0}, _snapshot(agents={
        "old-S1": RecoveredAgent(_agent_info("old-S1"), 1.0),
        "old-S2": RecoveredAgent(_agent_info("old-S2"), 1.0)}))
    framework_id = h.subscribe(b"f1")
    h.state.journal.clear()
    back = h.handle(b"a2", ReregisterAgent(agent_info=_agent_info("old-S2")))
    assert messages(back, AgentReregistered)
    h.clock.advance(29.0)
    assert recovery.tick() == []
    h.clock.advance(1.0)
    sends = recovery.tick()
    assert [m.agent_id for m in messages(sends, Failure, ("framework", framework_id))] == [
        "old-S1"]
    assert "old-S1" in h.state.unreachable_agents and not h.state.recovered_agents
    assert AgentRemoved("old-S1", True, h.clock.time()) in h.state.journal
    assert recovery.agents_removed == 1 and recovery.done
    assert h.state.counters["recovery_agent_removals"] == 1


def test_reconciliation_waits_for_recovering_agents() -> None:
    """Unknown tasks on an awaited agent get no answer until it is deemed unreachable."""
    h, recovery = _recovered({"agent_reregister_timeout": 10.0}, _snapshot(agents={
        "old-S1": RecoveredAgent(_agent_info("old-S1"), 1.0)}))
    plain = h.subscribe(b"f1")
    aware = h.subscribe(b"f2", capabilities=("PARTITION_AWARE",))
    asked = (ReconcileTask("t1", "old-S1"),)
    assert updates(h.handle(b"f1", Reconcile(plain, asked)), plain) == []
    assert updates(h.handle(b"f1", Reconcile(plain, (ReconcileTask("t2"),))), plain) == []
    h.clock.advance(10.0)
    recovery.tick()
    [lost] = updates(h.handle(b"f1", Reconcile(plain, asked)), plain)
    [unreachable] = updates(h.handle(b"f2", Reconcile(aware, asked)), aware)
    assert lost.state is TaskState.TASK_LOST
    assert unreachable.state is TaskState.TASK_UNREACHABLE


def test_agent_coming_back_brings_its_tasks_to_the_recovered_framework() -> None:
    """A re-registering agent's tasks attach to the framework the registry recovered."""
    framework = FrameworkInfo(user="u", name="web", id="old-0001", roles=("web",))
    h, _ = _recovered({}, _snapshot(
        agents={"old-S1": RecoveredAgent(_agent_info("old-S1"), 1.0)},
        frameworks={"old-0001": RecoveredFramework(framework, 2.0)}))
    task = Task(task_id="t1", name="t1", framework_id="old-0001", agent_id="old-S1",
                executor_id="", state=TaskState.TASK_RUNNING,
                resources=Resources.parse("cpus:1;mem:64"))
    h.handle(b"a1", ReregisterAgent(agent_info=_agent_info("old-S1"), tasks=(task,)))
    assert h.state.frameworks["old-0001"].tasks["t1"].role == "web"
    assert not h.state.recovered_agents
    assert h.subscribe(b"f1", id="old-0001", roles=("web",)) == "old-0001"
    assert not h.state.frameworks["old-0001"].recovered


def test_frameworks_not_back_in_time_are_torn_down() -> None:
    """A recovered framework gets the heartbeat window plus its failover_timeout, then goes."""
    config = {"framework_heartbeat_interval": 1.0, "max_framework_missed_heartbeats": 5}
    slow = FrameworkInfo(user="u", name="slow", id="old-0001", failover_timeout=20.0)
    back = FrameworkInfo(user="u", name="back", id="old-0002", failover_timeout=0.0)
    h, recovery = _recovered(config, _snapshot(frameworks={
        "old-0001": RecoveredFramework(slow, 1.0), "old-0002": RecoveredFramework(back, 1.0)}))
    h.add_agent(b"a1")
    h.clock.advance(4.0)
    assert h.subscribe(b"f2", id="old-0002", name="back") == "old-0002"
    h.clock.advance(20.9)
    assert recovery.tick() == [] and "old-0001" in h.state.frameworks
    h.clock.advance(0.1)
    sends = recovery.tick()
    assert "old-0001" not in h.state.frameworks and "old-0001" in h.state.removed_framework_ids
    assert messages(sends, ShutdownFramework)
    assert "old-0002" in h.state.frameworks and recovery.frameworks_removed == 1
    assert any(isinstance(c, FrameworkRemoved) for c in h.state.journal)
    refused = h.handle(b"f9", Subscribe(FrameworkInfo(user="u", name="slow", id="old-0001")))
    assert messages(refused, Error)


def test_tasks_of_torn_down_frameworks_are_shut_down_when_reported() -> None:
    """An agent reporting a task of a framework the registry lists as torn down is told to stop."""
    gone = FrameworkInfo(user="u", name="gone", id="old-0003")
    h, _ = _recovered({}, _snapshot(frameworks={
        "old-0003": RecoveredFramework(gone, 1.0, 2.0)}))
    task = Task(task_id="t1", name="t1", framework_id="old-0003", agent_id="old-S1",
                executor_id="", state=TaskState.TASK_RUNNING,
                resources=Resources.parse("cpus:1;mem:64"))
    info = AgentInfo(hostname="a1", resources=Resources.parse(AGENT_RESOURCES), id="old-S1")
    sends = h.handle(b"a1", ReregisterAgent(agent_info=info, tasks=(task,)))
    assert [m.framework_id for m in messages(sends, ShutdownFramework)] == ["old-0003"]
