"""Status updates and acknowledgements, kill, reconciliation and relayed messages."""

from __future__ import annotations

from mesoslite.protocol import (
    Acknowledge,
    CommandInfo,
    ExecutorInfo,
    ExecutorToFrameworkMessage,
    ExitedExecutor,
    Failure,
    FrameworkToExecutorMessage,
    Kill,
    KillPolicy,
    KillTask,
    Reason,
    Reconcile,
    ReconcileTask,
    Shutdown,
    ShutdownExecutor,
    Source,
    StatusUpdateAcknowledgement,
    TaskState,
)
from mesoslite.resources import Resources
from mesoslite.testing.harness import AGENT_RESOURCES, Harness, errors, messages, updates

TOTAL = Resources.parse(AGENT_RESOURCES)


def _running_task() -> tuple[Harness, str, str]:
    h = Harness()
    agent_id = h.add_agent(b"a1")
    framework_id = h.subscribe(b"f1")
    h.launch(b"f1", framework_id, "t1")
    return h, agent_id, framework_id


def test_update_is_forwarded_and_ack_routed_to_the_agent() -> None:
    """StatusUpdate → Update to the framework; Acknowledge → agent's acknowledgement."""
    h, agent_id, framework_id = _running_task()
    uuid = h.uuid()
    sends = h.update(b"a1", framework_id, "t1", TaskState.TASK_RUNNING, uuid=uuid)
    [status] = updates(sends, framework_id)
    assert (status.state, status.uuid, status.agent_id) == (TaskState.TASK_RUNNING, uuid,
                                                            agent_id)
    task = h.state.frameworks[framework_id].tasks["t1"]
    assert task.state is TaskState.TASK_RUNNING
    assert h.state.task_states[TaskState.TASK_RUNNING] == 1
    assert h.state.task_states[TaskState.TASK_STAGING] == 0
    ack = h.handle(b"f1", Acknowledge(framework_id=framework_id, agent_id=agent_id,
                                      task_id="t1", uuid=uuid))
    assert messages(ack, StatusUpdateAcknowledgement, ("agent", agent_id)) == [
        StatusUpdateAcknowledgement(agent_id, framework_id, "t1", uuid)]
    assert "t1" in h.state.frameworks[framework_id].tasks  # not terminal: still live


def test_terminal_update_frees_resources_once_acknowledged() -> None:
    """A terminal update keeps resources until its ack; then the task is completed."""
    h, agent_id, framework_id = _running_task()
    uuid = h.uuid()
    h.update(b"a1", framework_id, "t1", TaskState.TASK_FINISHED, uuid=uuid)
    used = Resources.parse("cpus:1;mem:128")
    assert h.state.allocator.available(agent_id) == TOTAL - used
    h.handle(b"f1", Acknowledge(framework_id=framework_id, agent_id=agent_id,
                                task_id="t1", uuid=h.uuid()))  # some other uuid
    assert "t1" in h.state.frameworks[framework_id].tasks
    h.handle(b"f1", Acknowledge(framework_id=framework_id, agent_id=agent_id,
                                task_id="t1", uuid=uuid))
    framework = h.state.frameworks[framework_id]
    assert framework.tasks == {}
    assert [t.task_id for t in framework.completed_tasks] == ["t1"]
    assert h.state.agents[agent_id].used == Resources()
    assert h.state.allocator.available(agent_id) == TOTAL
    assert h.state.task_states[TaskState.TASK_FINISHED] == 1


def test_resent_and_illegal_updates_do_not_change_the_task() -> None:
    """A resend (same uuid) is forwarded again; an illegal transition is ignored and counted."""
    h, _agent_id, framework_id = _running_task()
    uuid = h.uuid()
    h.update(b"a1", framework_id, "t1", TaskState.TASK_FAILED, uuid=uuid)
    again = h.update(b"a1", framework_id, "t1", TaskState.TASK_FAILED, uuid=uuid)
    assert [s.uuid for s in updates(again, framework_id)] == [uuid]
    late = h.update(b"a1", framework_id, "t1", TaskState.TASK_RUNNING)
    assert len(updates(late, framework_id)) == 1
    task = h.state.frameworks[framework_id].tasks["t1"]
    assert task.state is TaskState.TASK_FAILED
    assert len(task.statuses) == 1
    assert h.state.counters["illegal_transitions"] == 1
    assert h.state.task_states[TaskState.TASK_FAILED] == 1


def test_update_naming_another_agent_is_refused() -> None:
    """A status whose agent_id is not the sender's is refused with a ProtocolError."""
    h, _agent_id, framework_id = _running_task()
    sends = h.update(b"a1", framework_id, "t1", TaskState.TASK_RUNNING, agent_id="m1-S7")
    [error] = errors(sends)
    assert error.field == "status.agent_id"
    assert updates(sends, framework_id) == []


def test_acknowledge_without_uuid_is_refused() -> None:
    """An Acknowledge with an empty uuid names the uuid field."""
    h, agent_id, framework_id = _running_task()
    [error] = errors(h.handle(b"f1", Acknowledge(framework_id=framework_id, agent_id=agent_id,
                                                 task_id="t1", uuid=b"")))
    assert error.field == "uuid"


def test_kill_of_unknown_task_answers_task_lost() -> None:
    """Killing a task the master does not know → Update TASK_LOST, reconciliation, no uuid."""
    h, _agent_id, framework_id = _running_task()
    sends = h.handle(b"f1", Kill(framework_id=framework_id, task_id="ghost"))
    [status] = updates(sends, framework_id)
    assert status.task_id == "ghost"
    assert status.state is TaskState.TASK_LOST
    assert status.reason is Reason.REASON_RECONCILIATION
    assert status.source is Source.SOURCE_MASTER
    assert status.uuid == b""


def test_kill_of_known_task_goes_to_its_agent() -> None:
    """Killing a live task sends KillTask with the kill policy to its agent."""
    h, agent_id, framework_id = _running_task()
    policy = KillPolicy(grace_period=7.0)
    sends = h.handle(b"f1", Kill(framework_id=framework_id, task_id="t1", kill_policy=policy))
    assert messages(sends, KillTask, ("agent", agent_id)) == [
        KillTask(framework_id, "t1", policy)]


def test_explicit_reconciliation_answers_latest_known_states() -> None:
    """Listed tasks: live and completed ones with their state, unknown ones TASK_LOST."""
    h, agent_id, framework_id = _running_task()
    h.update(b"a1", framework_id, "t1", TaskState.TASK_RUNNING, healthy=True)
    wanted = (ReconcileTask(task_id="t1"), ReconcileTask(task_id="nope", agent_id=agent_id))
    sends = h.handle(b"f1", Reconcile(framework_id=framework_id, tasks=wanted))
    found = {s.task_id: s for s in updates(sends, framework_id)}
    assert found["t1"].state is TaskState.TASK_RUNNING
    assert found["t1"].healthy is True
    assert found["t1"].agent_id == agent_id
    assert found["nope"].state is TaskState.TASK_LOST
    for status in found.values():
        assert status.reason is Reason.REASON_RECONCILIATION
        assert status.uuid == b""
    uuid = h.uuid()
    h.update(b"a1", framework_id, "t1", TaskState.TASK_FINISHED, uuid=uuid)
    h.handle(b"f1", Acknowledge(framework_id=framework_id, agent_id=agent_id, task_id="t1",
                                uuid=uuid))
    sends = h.handle(b"f1", Reconcile(framework_id=framework_id, tasks=wanted[:1]))
    assert [s.state for s in updates(sends, framework_id)] == [TaskState.TASK_FINISHED]


def test_implicit_reconciliation_answers_every_live_task() -> None:
    """An empty list → one Update per task the master knows for the framework."""
    h, _agent_id, framework_id = _running_task()
    h.clock.advance(5.0)
    h.launch(b"f1", framework_id, "t2")
    sends = h.handle(b"f1", Reconcile(framework_id=framework_id))
    statuses = updates(sends, framework_id)
    assert sorted(s.task_id for s in statuses) == ["t1", "t2"]
    assert all(s.state is TaskState.TASK_STAGING for s in statuses)


def test_messages_are_relayed_both_ways() -> None:
    """Scheduler → executor via the agent and back, with the sender's agent id filled in."""
    h, agent_id, framework_id = _running_task()
    out = FrameworkToExecutorMessage(framework_id=framework_id, agent_id=agent_id,
                                     executor_id="e1", data=b"ping")
    assert messages(h.handle(b"f1", out), FrameworkToExecutorMessage, ("agent", agent_id)) == [
        out]
    back = ExecutorToFrameworkMessage(framework_id=framework_id, agent_id="", executor_id="e1",
                                      data=b"pong")
    [relayed] = messages(h.handle(b"a1", back), ExecutorToFrameworkMessage,
                         ("framework", framework_id))
    assert (relayed.agent_id, relayed.data) == (agent_id, b"pong")
    sends = h.handle(b"f1", Shutdown(framework_id=framework_id, executor_id="e1",
                                     agent_id=agent_id))
    assert messages(sends, ShutdownExecutor) == [ShutdownExecutor(framework_id, "e1")]


def test_exited_executor_frees_its_resources_and_reports_failure() -> None:
    """ExitedExecutor → Failure(agent, executor, status) and the executor's resources back."""
    h = Harness()
    agent_id = h.add_agent(b"a1")
    framework_id = h.subscribe(b"f1")
    [offer] = h.offers(framework_id)
    executor = ExecutorInfo(executor_id="e1", command=CommandInfo(value="x"),
                            resources=Resources.parse("cpus:0.5;mem:32"))
    task = h.task("t1", agent_id, command=None, executor=executor)
    h.accept(b"f1", framework_id, [offer.id], [task])
    sends = h.handle(b"a1", ExitedExecutor(agent_id=agent_id, framework_id=framework_id,
                                           executor_id="e1", status=9))
    assert messages(sends, Failure, ("framework", framework_id)) == [
        Failure(agent_id=agent_id, executor_id="e1", status=9)]
    assert h.state.agents[agent_id].used == task.resources
    assert h.state.allocator.available(agent_id) == TOTAL - task.resources
