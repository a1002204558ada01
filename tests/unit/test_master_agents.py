"""The master's agent handling: registration, liveness, removal, re-registration."""

from __future__ import annotations

from mesoslite.protocol import (
    AgentInfo,
    AgentRegistered,
    AgentReregistered,
    Failure,
    FrameworkInfo,
    KillTask,
    Ping,
    Pong,
    Reason,
    RegisterAgent,
    ReregisterAgent,
    Rescind,
    ShutdownAgent,
    Source,
    StatusUpdate,
    Task,
    TaskState,
    TaskStatus,
    UnregisterAgent,
)
from mesoslite.resources import Resources
from mesoslite.testing.harness import AGENT_RESOURCES, Harness, errors, messages, offers_in, updates


def test_register_assigns_an_id_and_adds_resources() -> None:
    """A new agent gets <master>-S<n>, the ping interval, and its resources are offerable."""
    h = Harness(agent_ping_timeout=7.0)
    sends = h.handle(b"a1", RegisterAgent(AgentInfo(hostname="a1",
                                                    resources=Resources.parse("cpus:2;mem:512"))))
    [registered] = messages(sends, AgentRegistered)
    assert registered.agent_id == "m1-S0"
    assert registered.ping_interval_seconds == 7.0
    assert registered.master_info == h.info
    assert h.state.allocator.available("m1-S0") == Resources.parse("cpus:2;mem:512")
    assert h.state.peer_for(("agent", "m1-S0")) == b"a1"


def test_register_retry_from_the_same_peer_keeps_the_id() -> None:
    """A repeated RegisterAgent from one connection is answered with the same id."""
    h = Harness()
    first = h.add_agent(b"a1")
    second = h.add_agent(b"a1")
    assert first == second
    assert list(h.state.agents) == [first]


def test_register_without_hostname_is_refused() -> None:
    """An agent without a host name is refused, naming the field."""
    h = Harness()
    sends = h.handle(b"a1", RegisterAgent(AgentInfo(hostname="", resources=Resources())))
    [error] = errors(sends)
    assert error.field == "agent_info.hostname"
    assert h.state.counters["refused"] == 1


def test_agent_messages_from_unknown_peers_are_refused() -> None:
    """Pong or StatusUpdate from an unregistered connection → NOT_REGISTERED."""
    h = Harness()
    status = TaskStatus(task_id="t", state=TaskState.TASK_RUNNING, uuid=b"x" * 16)
    for msg in (Pong(agent_id="m1-S9"), StatusUpdate(framework_id="f", status=status)):
        [error] = errors(h.handle(b"stranger", msg))
        assert error.code == "NOT_REGISTERED"
        assert error.in_reply_to == type(msg).__name__
    assert h.state.counters["refused"] == 2


def test_agent_id_that_does_not_match_the_peer_is_refused() -> None:
    """A Pong naming another agent is refused and counted."""
    h = Harness()
    h.add_agent(b"a1")
    other = h.add_agent(b"a2")
    [error] = errors(h.handle(b"a1", Pong(agent_id=other)))
    assert error.code == "INVALID"
    assert error.field == "agent_id"
    assert h.state.counters["refused"] == 1


def test_ping_rounds_send_pings_and_pongs_keep_agents() -> None:
    """Each ping interval every agent gets Ping; answering keeps it connected."""
    h = Harness(agent_ping_timeout=10.0, max_agent_ping_timeouts=3)
    agent_id = h.add_agent(b"a1")
    assert messages(h.tick(9.0), Ping) == []
    for _ in range(5):
        assert len(messages(h.tick(10.0), Ping, ("agent", agent_id))) == 1
        h.handle(b"a1", Pong(agent_id=agent_id))
    assert h.state.agents[agent_id].connected


def test_missed_pong_deactivates_and_pong_reactivates() -> None:
    """After one missed pong the agent gets no offers; a pong brings it back."""
    h = Harness(agent_ping_timeout=10.0, max_agent_ping_timeouts=3)
    agent_id = h.add_agent(b"a1")
    framework_id = h.subscribe(b"f1")
    h.tick(10.0)  # ping
    h.tick(10.0)  # no pong: one miss
    assert not h.state.agents[agent_id].connected
    assert h.offers(framework_id) == []
    h.handle(b"a1", Pong(agent_id=agent_id))
    assert h.state.agents[agent_id].connected
    assert len(h.offers(framework_id)) == 1


def _agent_with_tasks(h: Harness) -> tuple[str, str, str]:
    """One agent running one task of a plain and one of a PARTITION_AWARE framework."""
    agent_id = h.add_agent(b"a1")
    plain = h.subscribe(b"f1")
    aware = h.subscribe(b"f2", capabilities=("PARTITION_AWARE",))
    peers = {plain: b"f1", aware: b"f2"}
    for _ in range(2):  # the first taker is filtered (refuse 5 s), so the other gets the rest
        sends = h.allocate()
        [offer] = [o for framework_id in peers for o in offers_in(sends, framework_id)]
        task = h.task(f"t-{offer.framework_id}", agent_id)
        h.accept(peers[offer.framework_id], offer.framework_id, [offer.id], [task])
    assert all(h.state.frameworks[fid].tasks for fid in peers)
    h.clock.advance(5.0)  # filters expire
    return agent_id, plain, aware


def test_silent_agent_is_removed_with_lost_and_unreachable_tasks() -> None:
    """After max missed pongs: Rescind, TASK_LOST / TASK_UNREACHABLE and Failure to all."""
    h = Harness(agent_ping_timeout=10.0, max_agent_ping_timeouts=2)
    agent_id, plain, aware = _agent_with_tasks(h)
    sends = h.allocate()
    [offer] = offers_in(sends, plain) + offers_in(sends, aware)
    h.tick(10.0)
    h.tick(10.0)
    sends = h.tick(10.0)
    assert agent_id not in h.state.agents
    assert messages(sends, Rescind, ("framework", offer.framework_id)) == [Rescind(offer.id)]
    [lost] = updates(sends, plain)
    [unreachable] = updates(sends, aware)
    assert lost.state is TaskState.TASK_LOST
    assert unreachable.state is TaskState.TASK_UNREACHABLE
    for status in (lost, unreachable):
        assert status.reason is Reason.REASON_AGENT_REMOVED
        assert status.source is Source.SOURCE_MASTER
        assert status.uuid == b""
        assert status.agent_id == agent_id
    for framework_id in (plain, aware):
        assert messages(sends, Failure, ("framework", framework_id)) == [Failure(agent_id)]
    assert h.state.counters["agent_removals"] == 1
    assert agent_id in h.state.unreachable_agents
    assert f"t-{aware}" in h.state.frameworks[aware].unreachable_tasks
    assert h.state.frameworks[plain].tasks == {}
    assert h.state.task_states[TaskState.TASK_UNREACHABLE] == 1
    assert h.state.task_states[TaskState.TASK_LOST] == 1


def test_unregistered_agent_tasks_are_lost_or_gone() -> None:
    """UnregisterAgent: TASK_LOST for plain frameworks, TASK_GONE for partition-aware ones."""
    h = Harness()
    agent_id, plain, aware = _agent_with_tasks(h)
    sends = h.handle(b"a1", UnregisterAgent(agent_id=agent_id))
    assert [s.state for s in updates(sends, plain)] == [TaskState.TASK_LOST]
    assert [s.state for s in updates(sends, aware)] == [TaskState.TASK_GONE]
    assert agent_id in h.state.gone_agents
    info = AgentInfo(hostname="a1", resources=Resources.parse(AGENT_RESOURCES), id=agent_id)
    back = h.handle(b"a1", ReregisterAgent(agent_info=info))
    assert messages(back, ShutdownAgent)


def test_unknown_agent_reregistering_is_admitted_with_its_tasks() -> None:
    """After a master restart an agent keeps its id; its tasks and framework are adopted."""
    h = Harness()
    resources = Resources.parse("cpus:1;mem:100")
    task = Task(task_id="t1", name="t1", framework_id="old-0001", agent_id="old-S3",
                executor_id="", state=TaskState.TASK_RUNNING, resources=resources)
    info = AgentInfo(hostname="a1", resources=Resources.parse(AGENT_RESOURCES), id="old-S3")
    fw_info = FrameworkInfo(user="u", name="web", id="old-0001", roles=("web",))
    sends = h.handle(b"a1", ReregisterAgent(agent_info=info, tasks=(task,),
                                            frameworks=(fw_info,)))
    assert messages(sends, AgentReregistered)[0].agent_id == "old-S3"
    framework = h.state.frameworks["old-0001"]
    assert framework.recovered and not framework.connected
    assert framework.tasks["t1"].role == "web"
    assert h.state.allocator.available("old-S3") == Resources.parse(AGENT_RESOURCES) - resources
    # The scheduler comes back with its id and finds its task.
    assert h.subscribe(b"f1", id="old-0001", roles=("web",)) == "old-0001"
    assert h.state.frameworks["old-0001"].tasks["t1"].state is TaskState.TASK_RUNNING
    assert h.state.task_states[TaskState.TASK_RUNNING] == 1


def test_known_agent_reregistering_reports_missing_tasks_lost() -> None:
    """A task the agent no longer knows is reported lost when it re-registers."""
    h = Harness()
    agent_id = h.add_agent(b"a1")
    framework_id = h.subscribe(b"f1")
    h.launch(b"f1", framework_id, "t1")
    info = AgentInfo(hostname="a1", resources=Resources.parse(AGENT_RESOURCES), id=agent_id)
    sends = h.handle(b"a1-new", ReregisterAgent(agent_info=info))
    [status] = updates(sends, framework_id)
    assert status.state is TaskState.TASK_LOST
    assert status.reason is Reason.REASON_TASK_UNKNOWN
    assert h.state.peer_for(("agent", agent_id)) == b"a1-new"
    assert errors(h.handle(b"a1", Pong(agent_id=agent_id)))[0].code == "NOT_REGISTERED"
    assert h.state.allocator.available(agent_id) == Resources.parse(AGENT_RESOURCES)


def test_unreachable_agent_coming_back_restores_partition_aware_tasks() -> None:
    """PA tasks return from TASK_UNREACHABLE; tasks reported lost to others are killed."""
    h = Harness(agent_ping_timeout=1.0, max_agent_ping_timeouts=1)
    agent_id, plain, aware = _agent_with_tasks(h)
    h.tick(1.0)
    h.tick(1.0)
    assert agent_id not in h.state.agents
    tasks = tuple(
        Task(task_id=f"t-{fid}", name="t", framework_id=fid, agent_id=agent_id, executor_id="",
             state=TaskState.TASK_RUNNING, resources=Resources.parse("cpus:1;mem:128"))
        for fid in (plain, aware)
    )
    info = AgentInfo(hostname="a1", resources=Resources.parse(AGENT_RESOURCES), id=agent_id)
    sends = h.handle(b"a1", ReregisterAgent(agent_info=info, tasks=tasks))
    assert messages(sends, KillTask, ("agent", agent_id)) == [KillTask(plain, f"t-{plain}")]
    restored = h.state.frameworks[aware].tasks[f"t-{aware}"]
    assert restored.state is TaskState.TASK_RUNNING
    assert h.state.frameworks[aware].unreachable_tasks == {}
    assert h.state.task_states[TaskState.TASK_UNREACHABLE] == 0


def test_repeated_reregistration_is_answered_without_a_resync() -> None:
    """A retry repeating the last re-registration, nothing changed since, is only answered
    again (its offers stay, no re-sync); once the master's view of the tasks changed, or the
    message differs, the same message is handled in full again."""
    h = Harness()
    agent_id = h.add_agent(b"a1")
    framework_id = h.subscribe(b"f1")
    info = AgentInfo(hostname="a1", resources=Resources.parse(AGENT_RESOURCES), id=agent_id)
    msg = ReregisterAgent(agent_info=info)
    h.handle(b"a2", msg)
    [offer] = offers_in(h.allocate(), framework_id)
    sends = h.handle(b"a2", ReregisterAgent(agent_info=info))  # equal, not the same object
    assert [m.agent_id for m in messages(sends, AgentReregistered)] == [agent_id]
    assert not messages(sends, Rescind)
    assert offer.id in h.state.offers
    assert h.state.counters["agent_reregistrations_repeated"] == 1
    # The master launched a task since: the same report now says it is unknown -> LOST.
    h.accept(b"f1", framework_id, [offer.id], [h.task("t1", agent_id)])
    [status] = updates(h.handle(b"a2", msg), framework_id)
    assert status.state is TaskState.TASK_LOST
    assert h.state.counters["agent_reregistrations_repeated"] == 1
    # From another connection it is a full re-registration too.
    h.handle(b"a3", msg)
    assert h.state.counters["agent_reregistrations_repeated"] == 1
    assert h.state.peer_for(("agent", agent_id)) == b"a3"
