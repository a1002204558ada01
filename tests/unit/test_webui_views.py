"""The web UIs' pure parts: page requests, sorting, resource totals, sandbox paths, app rows."""

from __future__ import annotations

import pytest

from frameworks.marathon.core.model import App, InstanceCondition, MarathonTask
from frameworks.marathon.core.reports import QueueEntry
from frameworks.marathon.webui import summaries
from mesoslite.protocol import TaskState
from mesoslite.testing.harness import Harness
from mesoslite.webui import sandbox, views


def launch(h: Harness, framework_id: str, task_id: str, resources: str) -> None:
    """Launch one running task on an outstanding offer (allocating when none is left)."""
    offers = [r.offer for r in h.state.offers.values()] or h.offers(framework_id)
    offer = offers[0]
    h.accept(b"fw-1", framework_id, [offer.id], [h.task(task_id, offer.agent_id, resources)])
    peer = h.state.agents[offer.agent_id].peer
    h.update(peer, framework_id, task_id, TaskState.TASK_RUNNING)


def cluster(agents: int = 3, tasks: int = 2) -> tuple[Harness, str, list[bytes]]:
    """A harness with ``agents`` agents and ``tasks`` running tasks of one framework."""
    h = Harness()
    peers = [f"agent-{i}".encode() for i in range(agents)]
    for peer in peers:
        h.add_agent(peer)
    framework_id = h.subscribe()
    for i in range(tasks):
        launch(h, framework_id, f"t{i}", "cpus:1;mem:128")
    return h, framework_id, peers


@pytest.mark.parametrize(("args", "field"), [
    ({"sort": "nope"}, "sort"), ({"order": "up"}, "order"), ({"limit": "0"}, "limit"),
    ({"limit": "x"}, "limit"), ({"offset": "-1"}, "offset"), ({"q": "x" * 201}, "q"),
    ({"state": "weird"}, "state")])
def test_a_bad_page_request_names_its_field(args: dict[str, str], field: str) -> None:
    """Each malformed argument is refused with its own name."""
    with pytest.raises(views.QueryError) as caught:
        views.parse_query(args, views.AGENT_SORTS, "id", {"state": views.AGENT_STATES})
    assert caught.value.field == field


def test_pages_sort_numbers_as_numbers_and_missing_values_last() -> None:
    """10 sorts after 9; None goes last; the total counts every row."""
    rows = [{"v": 10}, {"v": None}, {"v": 9}]
    query = views.parse_query({"sort": "v", "limit": "2"}, ["v"], "v")
    page = views.page(rows, query)
    assert [r["v"] for r in page["items"]] == [9, 10] and page["total"] == 3


def test_resource_totals_follow_changes_incrementally() -> None:
    """Launching a task and removing an agent move the totals as a full recount would."""
    h, framework_id, _ = cluster(agents=3, tasks=1)
    totals = views.ResourceTotals()
    first = totals.update(h.state.agents)
    assert first["cpus"]["total"] == 12 and first["cpus"]["allocated"] == 1
    launch(h, framework_id, "t9", "cpus:2;mem:128")
    gone = next(a for a in h.state.agents.values() if not a.tasks)
    h.state.remove_agent(gone, unreachable=True, why="test")
    again = totals.update(h.state.agents)
    assert again == views.ResourceTotals().update(h.state.agents)
    assert again["cpus"]["total"] == 8 and again["cpus"]["allocated"] == 3


def test_generations_change_only_when_the_state_does() -> None:
    """The same state twice: equal numbers; a task update: a different one."""
    h, framework_id, _ = cluster()
    before = views.generations(h.state)
    assert views.generations(h.state) == before
    task = next(iter(h.state.frameworks[framework_id].tasks.values()))
    agent = h.state.agents[task.agent_id]
    h.update(agent.peer, framework_id, task.task_id, TaskState.TASK_RUNNING, healthy=False)
    after = views.generations(h.state)
    assert after["tasks"] != before["tasks"] and after["agents"] != before["agents"]


def test_task_lists_narrow_by_agent_and_framework() -> None:
    """An agent's active tasks come from the agent; a completed list from the frameworks."""
    h, framework_id, _ = cluster(tasks=2)
    task = next(iter(h.state.frameworks[framework_id].tasks.values()))
    mine = list(views.task_sources(h.state, "active", agent_id=task.agent_id))
    assert task in mine
    assert list(views.task_sources(h.state, "completed", framework_id=framework_id)) == []
    assert views.find_task(h.state, framework_id, task.task_id) is task


@pytest.mark.parametrize("raw", ["", "relative/path", "/a/../b", "/a/./b", "/a//b", "/a\x00",
                                 "/a\\b", "/" + "x" * 5000])
def test_sandbox_paths_must_be_clean_and_absolute(raw: str) -> None:
    """Relative, dotted, doubled, NUL and backslash paths are refused."""
    with pytest.raises(sandbox.PathRefused):
        sandbox.clean_path(raw)


def test_a_path_is_within_a_sandbox_only_below_it() -> None:
    """``/s/run1x`` is not inside ``/s/run1``."""
    assert sandbox.within("/s/run1/stdout", ["/s/run1"])
    assert sandbox.within("/s/run1", ["/s/run1/"])
    assert not sandbox.within("/s/run1x/stdout", ["/s/run1"])
    assert not sandbox.within("/etc/passwd", [])


def test_the_live_sandbox_wins_over_completed_runs() -> None:
    """The directory of an executor: its live run, else its newest completed one."""
    state = {"frameworks": [{"id": "f", "executors": [
        {"id": "e", "framework_id": "f", "directory": "/w/live", "state": "RUNNING"}],
        "completed_executors": [{"id": "e", "framework_id": "f", "directory": "/w/old",
                                 "state": "TERMINATED"}]}],
        "completed_frameworks": [{"id": "g", "completed_executors": [
            {"id": "x", "framework_id": "g", "directory": "/w/x1", "state": "TERMINATED"},
            {"id": "x", "framework_id": "g", "directory": "/w/x2", "state": "TERMINATED"}]}]}
    found = sandbox.sandbox_directories(state)
    assert sandbox.find_sandbox(found, "f", "e") == "/w/live"
    assert sandbox.find_sandbox(found, "g", "x") == "/w/x2"
    assert sandbox.find_sandbox(found, "f", "nope") is None


def _task(app: App, n: int, condition: InstanceCondition, healthy: bool | None = None
          ) -> MarathonTask:
    return MarathonTask(task_id=f"t{n}", instance_id=f"i{n}", app_id=app.id, version="v",
                        condition=condition, healthy=healthy)


def test_health_bar_segments_and_status() -> None:
    """Healthy, unhealthy, staged, unknown, over capacity and unscheduled add up."""
    app = App(id="/a", cmd="x", instances=3)
    tasks = [_task(app, 1, InstanceCondition.RUNNING, True),
             _task(app, 2, InstanceCondition.RUNNING, False),
             _task(app, 3, InstanceCondition.STAGING),
             _task(app, 4, InstanceCondition.RUNNING)]
    counts = summaries.health_counts(app, tasks)
    # The one task beyond 3 instances is taken out of "unknown" (the newest kind first).
    assert counts == {"healthy": 1, "unhealthy": 1, "staged": 1, "unknown": 0, "over": 1,
                      "unscheduled": 0}
    assert summaries.app_status(app, tasks, True, None) == "Deploying"
    idle = App(id="/b", cmd="x", instances=0)
    assert summaries.app_status(idle, [], False, None) == "Suspended"
    queued = QueueEntry(app=app, count=1, time_left_seconds=5.0, overdue=False, since=0.0)
    assert summaries.app_status(app, [], False, queued) == "Delayed"
    waiting = QueueEntry(app=app, count=1, time_left_seconds=0.0, overdue=True, since=0.0)
    assert summaries.app_status(app, [], False, waiting) == "Waiting"


def test_the_apps_view_lists_subgroups_then_searches_flat() -> None:
    """Without filters: direct apps and subgroups; with a search: every app below, flat."""
    rows = [summaries.app_row(App(id=i, cmd="sleep 1", instances=1), [], [], None)
            for i in ("/a/x", "/a/b/y", "/c")]
    page = summaries.apps_page(rows, summaries.parse_filters({"group": "/a"}))
    assert [g["id"] for g in page["groups"]] == ["/a/b"]
    assert [r["id"] for r in page["apps"]] == ["/a/x"]
    found = summaries.apps_page(rows, summaries.parse_filters({"group": "/a", "q": "y"}))
    assert [r["id"] for r in found["apps"]] == ["/a/b/y"] and found["groups"] == []
    with pytest.raises(summaries.FilterError) as caught:
        summaries.parse_filters({"status": "Sleeping"})
    assert caught.value.field == "status"
