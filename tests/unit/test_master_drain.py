"""Deactivating, draining and reactivating agents in the pure master state."""

from __future__ import annotations

import pytest

from mesoslite.coordination import RegistryState
from mesoslite.master.drain import DrainError
from mesoslite.master.drain_info import DRAINED, DRAINING
from mesoslite.master.journal import AgentMaintenanceChanged
from mesoslite.master.recovery import restore
from mesoslite.master.registry_sync import RegistrySync, snapshot_from
from mesoslite.master.state import MasterState
from mesoslite.protocol import (
    Acknowledge,
    AgentInfo,
    KillPolicy,
    KillTask,
    Pong,
    Reason,
    ReregisterAgent,
    Rescind,
    ShutdownAgent,
    Task,
    TaskState,
)
from mesoslite.resources import Resources
from mesoslite.testing.harness import Harness, messages, updates


def _two_tasks(grace: float | None = None) -> tuple[Harness, str, str]:
    """One agent running t1 (kill grace ``grace``) and t2 (no kill policy) for one framework."""
    h = Harness()
    agent_id = h.add_agent(b"a1")
    framework_id = h.subscribe(b"f1")
    offer = h.offers(framework_id)[0]
    policy = KillPolicy(grace_period=grace) if grace is not None else None
    h.accept(b"f1", framework_id, [offer.id],
             [h.task("t1", agent_id, kill_policy=policy), h.task("t2", agent_id)])
    for task_id in ("t1", "t2"):
        h.update(b"a1", framework_id, task_id, TaskState.TASK_RUNNING)
    return h, agent_id, framework_id


def _kill_and_ack(h: Harness, framework_id: str, agent_id: str, task_id: str) -> list:
    """The agent reports ``task_id`` killed; the framework acknowledges it."""
    uuid = h.uuid()
    sends = h.update(b"a1", framework_id, task_id, TaskState.TASK_KILLED, uuid=uuid)
    h.handle(b"f1", Acknowledge(framework_id=framework_id, agent_id=agent_id,
                                task_id=task_id, uuid=uuid))
    return updates(sends, framework_id)


def test_deactivated_agent_gets_no_offers_and_its_offers_are_rescinded() -> None:
    """DEACTIVATE rescinds outstanding offers; allocations skip the agent; tasks keep running."""
    h, agent_id, framework_id = _two_tasks()
    other = h.add_agent(b"a2")
    h.tick(10.0)  # the accept's refusal of a1's remainder expires
    offers = h.offers(framework_id)
    assert {o.agent_id for o in offers} == {agent_id, other}
    sends = h.state.deactivate_agent(agent_id)
    rescinded = {m.offer_id for m in messages(sends, Rescind, ("framework", framework_id))}
    assert rescinded == {o.id for o in offers if o.agent_id == agent_id}
    assert h.state.agents[agent_id].offers == set()
    for _ in range(3):
        h.tick(1.0)
        assert {o.agent_id for o in h.offers(framework_id)} <= {other}
    assert h.state.frameworks[framework_id].tasks["t1"].state is TaskState.TASK_RUNNING
    assert messages(sends, KillTask) == []


def test_deactivated_agent_stays_without_offers_after_a_missed_pong() -> None:
    """A reconnecting deactivated agent (pong after a miss) is not offered again."""
    h, agent_id, framework_id = _two_tasks()
    h.state.deactivate_agent(agent_id)
    h.tick(h.config.agent_ping_timeout)  # ping sent
    h.tick(h.config.agent_ping_timeout)  # missed: disconnected
    assert not h.state.agents[agent_id].connected
    h.handle(b"a1", Pong(agent_id=agent_id))
    assert h.state.agents[agent_id].connected
    assert h.offers(framework_id) == []


def test_drain_kills_with_grace_bounded_by_max_grace_period() -> None:
    """DRAIN sends KillTask per live task with min(task grace, max_grace_period)."""
    h, agent_id, _fw = _two_tasks(grace=30.0)
    sends = h.state.drain_agent(agent_id, max_grace_period=5.0)
    kills = {k.task_id: k.kill_policy for k in messages(sends, KillTask, ("agent", agent_id))}
    assert kills == {"t1": KillPolicy(5.0), "t2": KillPolicy(5.0)}
    assert h.state.maintenance[agent_id].drain_state == DRAINING


def test_drain_without_max_grace_keeps_each_tasks_own_grace() -> None:
    """Without max_grace_period a task keeps its kill policy; one without keeps the default."""
    h, agent_id, _fw = _two_tasks(grace=2.0)
    sends = h.state.drain_agent(agent_id)
    kills = {k.task_id: k.kill_policy for k in messages(sends, KillTask)}
    assert kills == {"t1": KillPolicy(2.0), "t2": None}
    h2, agent2, _ = _two_tasks(grace=2.0)
    kills = {k.task_id: k.kill_policy for k in messages(h2.state.drain_agent(agent2, 10.0),
                                                        KillTask)}
    assert kills == {"t1": KillPolicy(2.0), "t2": KillPolicy(10.0)}


def test_drained_once_every_terminal_update_is_acknowledged() -> None:
    """DRAINING → DRAINED only when no task is left and every terminal update was acked."""
    h, agent_id, framework_id = _two_tasks()
    h.state.drain_agent(agent_id, 1.0)
    [killing] = updates(h.update(b"a1", framework_id, "t1", TaskState.TASK_KILLING),
                        framework_id)
    assert killing.reason is Reason.REASON_AGENT_DRAINING
    [killed] = _kill_and_ack(h, framework_id, agent_id, "t1")
    assert (killed.state, killed.reason) == (TaskState.TASK_KILLED, Reason.REASON_AGENT_DRAINING)
    uuid = h.uuid()
    h.update(b"a1", framework_id, "t2", TaskState.TASK_KILLED, uuid=uuid)
    h.tick(1.0)
    assert h.state.maintenance[agent_id].drain_state == DRAINING  # t2 not acknowledged yet
    h.handle(b"f1", Acknowledge(framework_id=framework_id, agent_id=agent_id,
                                task_id="t2", uuid=uuid))
    h.tick(0.5)
    assert h.state.maintenance[agent_id].drain_state == DRAINED
    assert agent_id in h.state.agents  # not marked gone
    assert h.offers(framework_id) == []


def test_drain_of_an_idle_agent_is_drained_at_once() -> None:
    """An agent without tasks is DRAINED by the call itself."""
    h = Harness()
    agent_id = h.add_agent(b"a1")
    h.state.drain_agent(agent_id)
    assert h.state.maintenance[agent_id].drain_state == DRAINED


def test_mark_gone_reports_gone_by_operator_and_removes_the_agent() -> None:
    """With mark_gone, kills become TASK_GONE_BY_OPERATOR; drained, the agent is shut down
    and can never re-register."""
    h, agent_id, framework_id = _two_tasks()
    h.state.drain_agent(agent_id, 0.0, mark_gone=True)
    [gone] = _kill_and_ack(h, framework_id, agent_id, "t1")
    assert (gone.state, gone.reason) == (TaskState.TASK_GONE_BY_OPERATOR,
                                        Reason.REASON_AGENT_DRAINING)
    _kill_and_ack(h, framework_id, agent_id, "t2")
    sends = h.tick(0.5)
    assert messages(sends, ShutdownAgent, ("peer", b"a1"))
    assert agent_id not in h.state.agents and agent_id in h.state.gone_agents
    back = h.handle(b"a1", ReregisterAgent(agent_info=_info(agent_id)))
    assert messages(back, ShutdownAgent)
    with pytest.raises(DrainError, match="gone"):
        h.state.reactivate_agent(agent_id)


def _info(agent_id: str) -> AgentInfo:
    """An AgentInfo of ``agent_id`` as its agent would re-register."""
    return AgentInfo(id=agent_id, hostname="a1", resources=Resources.parse("cpus:4;mem:4096"))


def test_reactivate_refused_while_draining_then_offers_again() -> None:
    """REACTIVATE is refused while DRAINING (409); once DRAINED it brings offers back."""
    h, agent_id, framework_id = _two_tasks()
    h.state.drain_agent(agent_id)
    with pytest.raises(DrainError) as refused:
        h.state.reactivate_agent(agent_id)
    assert refused.value.status == 409
    _kill_and_ack(h, framework_id, agent_id, "t1")
    _kill_and_ack(h, framework_id, agent_id, "t2")
    h.tick(10.0)  # drained; the accept's refusal filter has expired too
    assert h.offers(framework_id) == []
    h.state.reactivate_agent(agent_id)
    assert agent_id not in h.state.maintenance
    assert [o.agent_id for o in h.offers(framework_id)] == [agent_id]


def test_unknown_agent_and_not_deactivated_are_refused() -> None:
    """Calls on an unknown agent name it (404); reactivating an agent in service is a 400."""
    h = Harness()
    agent_id = h.add_agent(b"a1")
    for call in (h.state.deactivate_agent, h.state.drain_agent, h.state.reactivate_agent):
        with pytest.raises(DrainError) as refused:
            call("nope-S9")
        assert refused.value.status == 404 and "nope-S9" in refused.value.message
    with pytest.raises(DrainError, match="not deactivated"):
        h.state.reactivate_agent(agent_id)


def test_reregistering_draining_agent_is_told_to_kill_again() -> None:
    """A draining agent that comes back (restart, partition) kills what it still runs."""
    h, agent_id, framework_id = _two_tasks(grace=9.0)
    h.state.drain_agent(agent_id, 4.0)
    tasks = tuple(Task(task_id=t, name=t, framework_id=framework_id, agent_id=agent_id,
                       executor_id="", state=TaskState.TASK_RUNNING,
                       resources=Resources.parse("cpus:1;mem:128"))
                  for t in ("t1", "t2"))
    sends = h.handle(b"a1-restarted", ReregisterAgent(agent_info=_info(agent_id), tasks=tasks))
    kills = {k.task_id: k.kill_policy for k in messages(sends, KillTask, ("agent", agent_id))}
    assert kills == {"t1": KillPolicy(4.0), "t2": KillPolicy(4.0)}
    assert h.state.agents[agent_id].maintenance is h.state.maintenance[agent_id]
    assert h.offers(framework_id) == []


def test_maintenance_survives_a_registry_round_trip() -> None:
    """Journaled changes land in the registry's maintenance policy; a new leader restores them."""
    h, agent_id, _fw = _two_tasks()
    h.state.journal = []
    h.state.drain_agent(agent_id, 2.5, mark_gone=False)
    h.state.deactivate_agent(h.add_agent(b"a2"))
    changes = [c for c in h.state.journal if isinstance(c, AgentMaintenanceChanged)]
    sync = RegistrySync(RegistryState())
    assert sync.ops_for(h.state.journal)
    stored = RegistryState.decode(sync.mirror.encode())
    fresh = MasterState(h.config, h.info, h.clock)
    restore(fresh, snapshot_from(stored))
    entry = fresh.maintenance[agent_id]
    assert (entry.drain_state, entry.max_grace_period, entry.mark_gone) == (DRAINING, 2.5, False)
    assert len(fresh.maintenance) == 2 and len(changes) == 2
    h.state.reactivate_agent(changes[1].agent_id)
    assert sync.ops_for(h.state.journal[len(changes):])
    assert list(sync.mirror.maintenance["agents"]) == [agent_id]


def test_state_rendering_shows_deactivated_and_drain_info() -> None:
    """/state's agent shows deactivated, drain_info and estimated_drain_start_time."""
    from mesoslite.master import render
    h, agent_id, _fw = _two_tasks()
    assert render.agent(h.state.agents[agent_id])["deactivated"] is False
    h.state.drain_agent(agent_id, 1.5, mark_gone=True)
    shown = render.agent(h.state.agents[agent_id])
    assert shown["deactivated"] is True
    assert shown["drain_info"] == {"state": "DRAINING", "config": {
        "mark_gone": True, "max_grace_period": {"nanoseconds": 1_500_000_000}}}
    assert shown["estimated_drain_start_time"] == h.clock.time()


def test_ui_agent_row_shows_the_maintenance() -> None:
    """The master UI's agent row names the hold (DEACTIVATED, DRAINING) and the drain config."""
    from mesoslite.webui import views
    h, agent_id, _fw = _two_tasks()
    agent = h.state.agents[agent_id]
    assert views.agent_row(agent)["maintenance"] == ""
    h.state.deactivate_agent(agent_id)
    assert (views.agent_row(agent)["maintenance"], views.agent_row(agent)["drain"]) == (
        "DEACTIVATED", None)
    h.state.drain_agent(agent_id, 3.0)
    row = views.agent_row(agent)
    assert row["maintenance"] == "DRAINING"
    assert row["drain"] == {"max_grace_period": 3.0, "mark_gone": False,
                            "started": h.clock.time()}
