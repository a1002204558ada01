"""The master's state machine end to end, its dispatch table and its bounds."""

from __future__ import annotations

import pytest

from mesoslite.master.master import DISPATCH
from mesoslite.protocol import (
    MESSAGE_TYPES,
    Acknowledge,
    Offers,
    ProtocolError,
    RunTask,
    StatusUpdateAcknowledgement,
    TaskState,
    Teardown,
)
from mesoslite.resources import Resources
from mesoslite.testing.harness import AGENT_RESOURCES, Harness, errors, messages, updates

#: protocol/messages.py: what agents and schedulers (and anyone) send to the master.
TO_MASTER = {
    "Subscribe", "Teardown", "Deactivate", "Accept", "Decline", "Revive", "Suppress", "Kill",
    "Shutdown", "Acknowledge", "Reconcile", "FrameworkToExecutorMessage", "Heartbeat",
    "RegisterAgent", "ReregisterAgent", "StatusUpdate", "ExecutorToFrameworkMessage",
    "ExitedExecutor", "UnregisterAgent", "Pong", "ProtocolError", "Authenticate",
    "AuthenticationResponse",
}


def test_life_of_a_task() -> None:
    """Register, subscribe, offer, accept, STARTING → RUNNING → FINISHED, each acked."""
    h = Harness()
    agent_id = h.add_agent(b"a1")
    framework_id = h.subscribe(b"f1")
    [offer] = h.offers(framework_id)
    sends = h.accept(b"f1", framework_id, [offer.id], [h.task("t1", agent_id)])
    assert [m.task.task_id for m in messages(sends, RunTask, ("agent", agent_id))] == ["t1"]
    for state in (TaskState.TASK_STARTING, TaskState.TASK_RUNNING, TaskState.TASK_FINISHED):
        uuid = h.uuid()
        [status] = updates(h.update(b"a1", framework_id, "t1", state, uuid=uuid), framework_id)
        assert status.state is state
        acks = h.handle(b"f1", Acknowledge(framework_id=framework_id, agent_id=agent_id,
                                           task_id="t1", uuid=uuid))
        assert messages(acks, StatusUpdateAcknowledgement, ("agent", agent_id))
    assert h.state.frameworks[framework_id].tasks == {}
    assert h.state.allocator.available(agent_id) == Resources.parse(AGENT_RESOURCES)
    assert [s.state for s in h.state.frameworks[framework_id].completed_tasks[0].statuses] == [
        TaskState.TASK_STARTING, TaskState.TASK_RUNNING, TaskState.TASK_FINISHED]
    gauges = {s: h.state.task_states[s] for s in (TaskState.TASK_STAGING,
                                                  TaskState.TASK_STARTING,
                                                  TaskState.TASK_RUNNING)}
    assert gauges == dict.fromkeys(gauges, 0)
    assert h.state.task_states[TaskState.TASK_FINISHED] == 1


def test_dispatch_table_covers_every_message_to_the_master() -> None:
    """Every message type sent to the master has a handler; no other type has one."""
    assert set(MESSAGE_TYPES) >= TO_MASTER
    assert {cls.__name__ for cls in DISPATCH} == TO_MASTER


def test_unexpected_message_type_is_refused() -> None:
    """A message only the master sends (Offers) is refused naming the type."""
    h = Harness()
    [error] = errors(h.handle(b"x", Offers(offers=())))
    assert error.field == "type"
    assert error.in_reply_to == "Offers"
    assert h.state.counters["refused"] == 1


def test_protocol_errors_from_peers_are_not_answered() -> None:
    """A ProtocolError received is logged and counted, never answered (no ping-pong)."""
    h = Harness()
    assert h.handle(b"x", ProtocolError(message="bad", field="f")) == []
    assert h.state.counters["peer_errors"] == 1
    assert h.state.counters["refused"] == 0


def test_set_weight_validates_and_applies() -> None:
    """Weights reach the allocator; an invalid weight or role raises ValueError."""
    h = Harness(weights={"web": 2.0})
    assert h.state.weights()["web"] == 2.0
    h.state.set_weight("batch", 0.5)
    assert h.state.weights()["batch"] == 0.5
    with pytest.raises(ValueError, match="weight"):
        h.state.set_weight("batch", 0.0)
    with pytest.raises(ValueError, match="role"):
        h.state.set_weight("bad role", 1.0)


def test_completed_frameworks_and_tasks_are_bounded() -> None:
    """At most max_completed_frameworks and max_completed_tasks_per_framework are kept."""
    h = Harness(max_completed_frameworks=2, max_completed_tasks_per_framework=3)
    h.add_agent(b"a1", resources="cpus:100;mem:100000")
    framework_id = h.subscribe(b"f1")
    [offer] = h.offers(framework_id)
    tasks = [h.task(f"t{i}", offer.agent_id) for i in range(5)]
    h.accept(b"f1", framework_id, [offer.id], tasks)
    h.handle(b"f1", Teardown(framework_id=framework_id))
    assert [t.task_id for t in h.state.completed_frameworks[0].completed_tasks] == [
        "t2", "t3", "t4"]
    for i in range(3):
        peer = f"g{i}".encode()
        h.handle(peer, Teardown(framework_id=h.subscribe(peer)))
    assert len(h.state.completed_frameworks) == 2
    assert framework_id in h.state.removed_framework_ids
