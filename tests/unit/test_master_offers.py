"""Offers and ACCEPT validation (protocol.md §3), decline, revive, suppress, offer timeout."""

from __future__ import annotations

from mesoslite.protocol import (
    Accept,
    CommandInfo,
    Decline,
    ExecutorInfo,
    Filters,
    Operation,
    Reason,
    Rescind,
    Revive,
    RunTask,
    Source,
    Suppress,
    TaskState,
)
from mesoslite.resources import Resources
from mesoslite.testing.harness import AGENT_RESOURCES, Harness, errors, messages, offers_in, updates

TOTAL = Resources.parse(AGENT_RESOURCES)


def _setup(agents: int = 1) -> tuple[Harness, list[str], str]:
    h = Harness()
    agent_ids = [h.add_agent(f"a{i}".encode()) for i in range(agents)]
    framework_id = h.subscribe(b"f1")
    return h, agent_ids, framework_id


def test_one_offer_per_agent_counts_as_offered() -> None:
    """Each agent's resources go to the framework as one offer and count as offered."""
    h, agent_ids, framework_id = _setup(agents=2)
    offers = h.offers(framework_id)
    assert sorted(o.agent_id for o in offers) == sorted(agent_ids)
    for offer in offers:
        assert offer.resources == TOTAL
        assert offer.role == "*"
        assert offer.hostname == h.state.agents[offer.agent_id].info.hostname
        assert h.state.agents[offer.agent_id].offered == TOTAL
        assert h.state.allocator.available(offer.agent_id) == Resources()
    assert h.offers(framework_id) == []  # nothing left to offer


def test_valid_launch_sends_run_task_and_recovers_the_rest_with_a_filter() -> None:
    """A valid task is STAGING and goes to the agent; the rest is filtered refuse_seconds."""
    h, [agent_id], framework_id = _setup()
    [offer] = h.offers(framework_id)
    task = h.task("t1", agent_id, "cpus:1;mem:128;ports:[31000-31000]")
    sends = h.accept(b"f1", framework_id, [offer.id], [task], filters=Filters(refuse_seconds=10))
    [run] = messages(sends, RunTask, ("agent", agent_id))
    assert run.task == task
    assert run.framework_info == h.state.frameworks[framework_id].info
    entry = h.state.frameworks[framework_id].tasks["t1"]
    assert entry.state is TaskState.TASK_STAGING
    assert h.state.agents[agent_id].used == task.resources
    assert h.state.agents[agent_id].offered == Resources()
    assert h.state.allocator.available(agent_id) == TOTAL - task.resources
    h.clock.advance(9.0)
    assert h.offers(framework_id) == []
    h.clock.advance(1.0)
    [again] = h.offers(framework_id)
    assert again.resources == TOTAL - task.resources


def _dropped(sends: list, framework_id: str) -> list[str]:
    statuses = updates(sends, framework_id)
    for status in statuses:
        assert status.state is TaskState.TASK_DROPPED
        assert status.reason is Reason.REASON_INVALID_OFFERS
        assert status.source is Source.SOURCE_MASTER
        assert status.uuid == b""
    return [status.message for status in statuses]


def test_unknown_offer_drops_the_tasks() -> None:
    """An offer id that is not outstanding → TASK_DROPPED naming the offer."""
    h, [agent_id], framework_id = _setup()
    sends = h.accept(b"f1", framework_id, ["m1-O99"], [h.task("t1", agent_id)])
    [message] = _dropped(sends, framework_id)
    assert "offer m1-O99 is not outstanding" in message
    assert messages(sends, RunTask) == []


def test_another_frameworks_offer_drops_the_tasks_and_is_left_alone() -> None:
    """Using another framework's offer → TASK_DROPPED; that offer stays outstanding."""
    h, [agent_id], framework_id = _setup()
    other = h.subscribe(b"f2")
    sends = h.allocate()
    [offer] = offers_in(sends, framework_id) + offers_in(sends, other)
    thief, peer = (other, b"f2") if offer.framework_id == framework_id else (framework_id, b"f1")
    sends = h.accept(peer, thief, [offer.id], [h.task("t1", agent_id)])
    [message] = _dropped(sends, thief)
    assert f"offer {offer.id} belongs to another framework" in message
    assert offer.id in h.state.offers


def test_offers_from_two_agents_drop_the_tasks_and_recover_both() -> None:
    """Offers on two agents → TASK_DROPPED; both offers' resources are recovered."""
    h, agent_ids, framework_id = _setup(agents=2)
    offers = h.offers(framework_id)
    sends = h.accept(b"f1", framework_id, [o.id for o in offers],
                     [h.task("t1", offers[0].agent_id)])
    [message] = _dropped(sends, framework_id)
    assert "all offers must be on one agent" in message
    assert h.state.offers == {}
    for agent_id in agent_ids:
        assert h.state.allocator.available(agent_id) == TOTAL
    assert len(h.offers(framework_id)) == 2  # no filter after an invalid call


def test_repeated_offer_drops_the_tasks() -> None:
    """The same offer twice in one call → TASK_DROPPED."""
    h, [agent_id], framework_id = _setup()
    [offer] = h.offers(framework_id)
    sends = h.accept(b"f1", framework_id, [offer.id, offer.id], [h.task("t1", agent_id)])
    [message] = _dropped(sends, framework_id)
    assert f"offer {offer.id} appears more than once" in message


def _errors(sends: list, framework_id: str) -> dict[str, str]:
    out = {}
    for status in updates(sends, framework_id):
        assert status.state is TaskState.TASK_ERROR
        assert status.reason is Reason.REASON_TASK_INVALID
        assert status.uuid == b""
        out[status.task_id] = status.message
    return out


def test_resources_beyond_the_offer_are_a_task_error() -> None:
    """A task needing more than offered → TASK_ERROR naming resources; offer recovered."""
    h, [agent_id], framework_id = _setup()
    [offer] = h.offers(framework_id)
    sends = h.accept(b"f1", framework_id, [offer.id], [h.task("big", agent_id, "cpus:5;mem:1")])
    assert "resources" in _errors(sends, framework_id)["big"]
    assert messages(sends, RunTask) == []
    assert h.state.allocator.available(agent_id) == TOTAL


def test_cumulative_resources_are_checked() -> None:
    """Two tasks fitting alone but not together: the second is a TASK_ERROR."""
    h, [agent_id], framework_id = _setup()
    [offer] = h.offers(framework_id)
    tasks = [h.task("t1", agent_id, "cpus:3;mem:10"), h.task("t2", agent_id, "cpus:3;mem:10")]
    sends = h.accept(b"f1", framework_id, [offer.id], tasks)
    assert list(_errors(sends, framework_id)) == ["t2"]
    assert [m.task.task_id for m in messages(sends, RunTask)] == ["t1"]


def test_duplicate_task_ids_are_task_errors() -> None:
    """A task id of a live task, or repeated in the call → TASK_ERROR naming task_id."""
    h, [agent_id], framework_id = _setup()
    h.launch(b"f1", framework_id, "live")
    h.clock.advance(5.0)
    [offer] = h.offers(framework_id)
    tasks = [h.task("live", agent_id), h.task("new", agent_id), h.task("new", agent_id)]
    sends = h.accept(b"f1", framework_id, [offer.id], tasks)
    found = _errors(sends, framework_id)
    assert "already used by a live task" in found["live"]
    assert "repeated in this call" in found["new"]
    assert [m.task.task_id for m in messages(sends, RunTask)] == ["new"]


def test_missing_command_is_a_task_error() -> None:
    """Neither command nor executor (or both) → TASK_ERROR naming command."""
    h, [agent_id], framework_id = _setup()
    [offer] = h.offers(framework_id)
    executor = ExecutorInfo(executor_id="e1", command=CommandInfo(value="x"))
    tasks = [h.task("none", agent_id, command=None),
             h.task("both", agent_id, executor=executor)]
    found = _errors(h.accept(b"f1", framework_id, [offer.id], tasks), framework_id)
    assert "got neither" in found["none"] and "command" in found["none"]
    assert "got both" in found["both"]


def test_agent_id_mismatch_and_empty_resources_are_task_errors() -> None:
    """A task for another agent, or with no resources → TASK_ERROR naming the field."""
    h, [agent_id], framework_id = _setup()
    [offer] = h.offers(framework_id)
    tasks = [h.task("elsewhere", "m1-S42"), h.task("empty", agent_id, "")]
    found = _errors(h.accept(b"f1", framework_id, [offer.id], tasks), framework_id)
    assert "agent_id 'm1-S42' does not match" in found["elsewhere"]
    assert "resources: expected non-empty" in found["empty"]


def test_unsupported_operation_is_a_task_error() -> None:
    """Operations other than LAUNCH are refused per task."""
    h, [agent_id], framework_id = _setup()
    [offer] = h.offers(framework_id)
    op = Operation("RESERVE", (h.task("t1", agent_id),))
    sends = h.handle(b"f1", Accept(framework_id=framework_id, offer_ids=(offer.id,),
                                   operations=(op,)))
    assert "not supported" in _errors(sends, framework_id)["t1"]


def test_executor_resources_are_taken_once() -> None:
    """A new executor's resources are consumed once for all its tasks."""
    h, [agent_id], framework_id = _setup()
    [offer] = h.offers(framework_id)
    executor = ExecutorInfo(executor_id="e1", command=CommandInfo(value="exec"),
                            resources=Resources.parse("cpus:0.5;mem:64"))
    tasks = [h.task(f"t{i}", agent_id, "cpus:1;mem:10", command=None, executor=executor)
             for i in range(2)]
    h.accept(b"f1", framework_id, [offer.id], tasks)
    assert h.state.agents[agent_id].used == Resources.parse("cpus:2.5;mem:84")
    assert h.state.executor_ids(h.state.agents[agent_id], framework_id) == ("e1",)


def test_decline_filters_for_refuse_seconds() -> None:
    """Declined resources come back after refuse_seconds (default 5)."""
    h, [agent_id], framework_id = _setup()
    [offer] = h.offers(framework_id)
    assert h.handle(b"f1", Decline(framework_id=framework_id, offer_ids=(offer.id,))) == []
    assert h.state.allocator.available(agent_id) == TOTAL
    h.clock.advance(4.9)
    assert h.offers(framework_id) == []
    h.clock.advance(0.1)
    assert len(h.offers(framework_id)) == 1


def test_revive_clears_filters_and_suppress_stops_offers() -> None:
    """Suppress: no offers; Revive: offers at once despite a long filter."""
    h, _, framework_id = _setup()
    [offer] = h.offers(framework_id)
    h.handle(b"f1", Decline(framework_id=framework_id, offer_ids=(offer.id,),
                            filters=Filters(refuse_seconds=3600)))
    h.handle(b"f1", Suppress(framework_id=framework_id))
    h.clock.advance(4000)
    assert h.offers(framework_id) == []
    h.handle(b"f1", Revive(framework_id=framework_id))
    assert h.state.allocation_wanted()
    assert len(h.offers(framework_id)) == 1
    [error] = errors(h.handle(b"f1", Revive(framework_id=framework_id, roles=("nope",))))
    assert error.field == "roles"


def test_offer_timeout_rescinds() -> None:
    """With offer_timeout, an unanswered offer is rescinded and its resources recovered."""
    h = Harness(offer_timeout=10.0)
    agent_id = h.add_agent(b"a1")
    framework_id = h.subscribe(b"f1")
    [offer] = h.offers(framework_id)
    assert messages(h.tick(9.0), Rescind) == []
    sends = h.tick(1.0)
    assert messages(sends, Rescind, ("framework", framework_id)) == [Rescind(offer.id)]
    assert h.state.offers == {}
    assert h.state.allocator.available(agent_id) == TOTAL
