"""The master's framework handling: subscription, failover, liveness, teardown."""

from __future__ import annotations

from mesoslite.protocol import (
    Deactivate,
    Error,
    FrameworkInfo,
    Heartbeat,
    Kill,
    Reconcile,
    Rescind,
    ShutdownFramework,
    Subscribe,
    Subscribed,
    TaskState,
    Teardown,
    UpdateFramework,
)
from mesoslite.resources import Resources
from mesoslite.testing.harness import AGENT_RESOURCES, Harness, errors, messages, updates


def test_subscribe_assigns_an_id_and_answers_subscribed() -> None:
    """A framework without id gets <master>-<nnnn> and the heartbeat interval."""
    h = Harness(framework_heartbeat_interval=3.0)
    sends = h.handle(b"f1", Subscribe(FrameworkInfo(user="u", name="n")))
    [subscribed] = messages(sends, Subscribed, ("framework", "m1-0000"))
    assert subscribed.heartbeat_interval_seconds == 3.0
    assert subscribed.master_info == h.info
    assert h.state.peer_for(("framework", "m1-0000")) == b"f1"
    assert h.subscribe(b"f2") == "m1-0001"


def test_failover_moves_the_framework_to_the_new_peer() -> None:
    """Same id from a new peer: old peer gets Rescind + Error, tasks stay, offers recovered."""
    h = Harness()
    agent_id = h.add_agent(b"a1")
    framework_id = h.subscribe(b"old", failover_timeout=60.0)
    h.launch(b"old", framework_id, "t1")
    h.clock.advance(5.0)
    [offer] = h.offers(framework_id)
    sends = h.handle(b"new", Subscribe(FrameworkInfo(user="u", name="n", id=framework_id,
                                                     failover_timeout=60.0)))
    assert messages(sends, Rescind, ("peer", b"old")) == [Rescind(offer.id)]
    assert messages(sends, Error, ("peer", b"old")) == [Error("framework failed over")]
    assert messages(sends, Subscribed, ("framework", framework_id))
    assert messages(sends, UpdateFramework, ("agent", agent_id))
    assert h.state.peer_for(("framework", framework_id)) == b"new"
    assert list(h.state.frameworks[framework_id].tasks) == ["t1"]
    assert offer.id not in h.state.offers
    free = Resources.parse(AGENT_RESOURCES) - Resources.parse("cpus:1;mem:128")
    assert h.state.allocator.available(agent_id) == free
    # The old connection is no longer the framework.
    [error] = errors(h.handle(b"old", Kill(framework_id=framework_id, task_id="t1")))
    assert error.code == "NOT_SUBSCRIBED"


def test_removed_framework_id_is_refused() -> None:
    """Subscribing with the id of a torn-down framework → Error naming it."""
    h = Harness()
    framework_id = h.subscribe(b"f1")
    h.handle(b"f1", Teardown(framework_id=framework_id))
    sends = h.handle(b"f2", Subscribe(FrameworkInfo(user="u", name="n", id=framework_id)))
    assert messages(sends, Error) == [Error(f"framework {framework_id} has been removed")]
    assert framework_id not in h.state.frameworks


def test_unknown_id_is_admitted_as_is() -> None:
    """After a master restart a framework brings its id and keeps it."""
    h = Harness()
    assert h.subscribe(b"f1", id="earlier-0007") == "earlier-0007"
    assert "earlier-0007" in h.state.frameworks


def test_invalid_roles_are_refused() -> None:
    """A subscription with an invalid role gets an Error naming framework_info.roles."""
    h = Harness()
    sends = h.handle(b"f1", Subscribe(FrameworkInfo(user="u", name="n", roles=("a b",))))
    [error] = messages(sends, Error)
    assert error.message.startswith("framework_info.roles")
    assert h.state.frameworks == {}


def test_calls_from_peers_not_subscribed_are_refused() -> None:
    """A call from an unknown peer, or naming another framework → NOT_SUBSCRIBED."""
    h = Harness()
    mine = h.subscribe(b"f1")
    other = h.subscribe(b"f2")
    for peer, framework_id in ((b"stranger", mine), (b"f1", other)):
        [error] = errors(h.handle(peer, Reconcile(framework_id=framework_id)))
        assert (error.code, error.field) == ("NOT_SUBSCRIBED", "framework_id")
    [error] = errors(h.handle(b"f1", Heartbeat(sender_id=other)))
    assert (error.code, error.field) == ("NOT_SUBSCRIBED", "sender_id")
    assert h.state.counters["refused"] == 3


def test_master_heartbeats_each_interval() -> None:
    """Every connected scheduler gets a Heartbeat every heartbeat interval."""
    h = Harness(framework_heartbeat_interval=2.0)
    framework_id = h.subscribe(b"f1")
    assert messages(h.tick(1.0), Heartbeat) == []
    for _ in range(3):
        h.handle(b"f1", Heartbeat(sender_id=framework_id))
        assert messages(h.tick(2.0), Heartbeat, ("framework", framework_id)) == [Heartbeat()]


def test_silent_scheduler_is_disconnected_then_torn_down() -> None:
    """No message for interval × max: inactive without offers; failover_timeout 0 removes it."""
    h = Harness(framework_heartbeat_interval=1.0, max_framework_missed_heartbeats=3)
    agent_id = h.add_agent(b"a1")
    framework_id = h.subscribe(b"f1")
    h.launch(b"f1", framework_id, "t1")
    h.tick(2.0)
    assert h.state.frameworks[framework_id].connected
    sends = h.tick(1.0)
    assert framework_id not in h.state.frameworks
    assert messages(sends, ShutdownFramework, ("agent", agent_id)) == [
        ShutdownFramework(framework_id)]
    [completed] = h.state.completed_frameworks
    assert [t.state for t in completed.completed_tasks] == [TaskState.TASK_KILLED]
    assert h.state.allocator.available(agent_id) == Resources.parse(AGENT_RESOURCES)


def test_failover_timeout_keeps_tasks_until_it_expires() -> None:
    """A disconnected framework keeps its tasks for failover_timeout, then is torn down."""
    h = Harness()
    agent_id = h.add_agent(b"a1")
    framework_id = h.subscribe(b"f1", failover_timeout=30.0)
    h.launch(b"f1", framework_id, "t1")
    h.handle(b"f1", Deactivate(framework_id=framework_id))
    framework = h.state.frameworks[framework_id]
    assert not framework.connected and not framework.active
    assert h.offers(framework_id) == []
    assert messages(h.tick(29.0), ShutdownFramework) == []
    assert framework_id in h.state.frameworks
    sends = h.tick(1.0)
    assert framework_id not in h.state.frameworks
    assert messages(sends, ShutdownFramework, ("agent", agent_id))


def test_resubscribing_within_the_failover_timeout_keeps_tasks() -> None:
    """A scheduler that comes back in time finds its tasks and gets offers again."""
    h = Harness()
    h.add_agent(b"a1")
    framework_id = h.subscribe(b"f1", failover_timeout=30.0)
    h.launch(b"f1", framework_id, "t1")
    h.handle(b"f1", Deactivate(framework_id=framework_id))
    h.tick(10.0)
    assert h.subscribe(b"f1b", id=framework_id, failover_timeout=30.0) == framework_id
    h.tick(60.0)
    assert list(h.state.frameworks[framework_id].tasks) == ["t1"]
    assert len(h.offers(framework_id)) == 1


def test_teardown_kills_tasks_and_frees_resources() -> None:
    """Teardown: ShutdownFramework to every agent, resources freed, framework completed."""
    h = Harness()
    agent_id = h.add_agent(b"a1")
    h.add_agent(b"a2")
    framework_id = h.subscribe(b"f1")
    offer = h.launch(b"f1", framework_id, "t1")
    sends = h.handle(b"f1", Teardown(framework_id=framework_id))
    shutdowns = sorted(s.to for s in sends if isinstance(s.message, ShutdownFramework))
    assert shutdowns == [("agent", aid) for aid in sorted(h.state.agents)]
    assert messages(sends, Error) == []  # the scheduler asked for it: no error
    assert h.state.allocator.available(agent_id) == Resources.parse(AGENT_RESOURCES)
    assert h.state.completed_frameworks[0].id == framework_id
    assert h.state.task_states[TaskState.TASK_KILLED] == 1
    assert h.state.task_states[TaskState.TASK_STAGING] == 0
    # Its late updates are acknowledged by the master on its behalf.
    back = h.update(b"a1" if offer.agent_id == agent_id else b"a2", framework_id, "t1",
                    TaskState.TASK_KILLED)
    assert [s.to for s in back] == [("agent", offer.agent_id)]


def test_operator_removal_tells_the_connected_scheduler() -> None:
    """remove_framework (operator teardown) sends the scheduler an Error."""
    h = Harness()
    framework_id = h.subscribe(b"f1")
    sends = h.state.remove_framework(framework_id, "torn down by an operator")
    [error] = messages(sends, Error, ("framework", framework_id))
    assert "has been removed" in error.message


def test_repeated_subscription_from_one_connection_is_one_framework() -> None:
    """Subscribe retries without an id get the same framework id back, not a new one."""
    h = Harness()
    first = h.subscribe(b"f1")
    assert h.subscribe(b"f1") == first
    assert list(h.state.frameworks) == [first]


def test_one_connection_one_framework() -> None:
    """A connection subscribing as another framework (by id) disconnects the first."""
    h = Harness()
    first = h.subscribe(b"f1", failover_timeout=100.0)
    second = h.subscribe(b"f1", id="other-0001")
    assert not h.state.frameworks[first].connected
    assert h.state.peer_for(("framework", second)) == b"f1"
    assert updates(h.handle(b"f1", Kill(framework_id=second, task_id="x")), second)
    [error] = errors(h.handle(b"f1", Kill(framework_id=first, task_id="x")))
    assert error.code == "NOT_SUBSCRIBED"
