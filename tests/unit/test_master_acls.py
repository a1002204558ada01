"""The master's ACL hooks: register_frameworks on subscription, run_tasks on launch."""

from __future__ import annotations

import json

from mesoslite.protocol import CommandInfo, Error, FrameworkInfo, Reason, Subscribe, TaskState
from mesoslite.testing.harness import Harness, messages, updates

ACLS = json.dumps({
    "register_frameworks": [
        {"principals": {"values": ["a"]}, "roles": {"values": ["web"]}},
        {"principals": {"values": ["a"]}, "roles": {"type": "NONE"}},
    ],
    "run_tasks": [
        {"principals": {"values": ["a"]}, "users": {"values": ["nobody"]}},
        {"principals": {"type": "NONE"}, "users": {"values": ["root"]}},
    ],
})


def test_role_refused_by_register_frameworks() -> None:
    """Principal a may subscribe in role web, not in ops: an Error naming the role."""
    h = Harness(acls=ACLS)
    assert h.subscribe(b"f1", principal="a", roles=("web",))
    sends = h.handle(b"f2", Subscribe(FrameworkInfo(user="u", name="n", principal="a",
                                                    roles=("web", "ops"))))
    [error] = messages(sends, Error)
    assert "'ops'" in error.message and "register_frameworks" in error.message
    assert len(h.state.frameworks) == 1
    assert h.state.counters["unauthorized"] == 1


def test_other_principals_fall_through_to_permissive() -> None:
    """A principal no rule names registers anywhere (permissive default)."""
    h = Harness(acls=ACLS)
    assert h.subscribe(b"f1", principal="b", roles=("ops",))
    assert h.subscribe(b"f2", roles=("ops",))  # no principal at all


def test_run_tasks_refuses_a_user_with_task_error() -> None:
    """A task whose user the principal may not use is TASK_ERROR (REASON_TASK_UNAUTHORIZED).

    The other task of the same ACCEPT launches; the refused one's resources go back.
    """
    h = Harness(acls=ACLS)
    h.add_agent(b"a1")
    framework_id = h.subscribe(b"f1", principal="a", roles=("web",), user="nobody")
    offer = h.offers(framework_id)[0]
    ok = h.task("ok", offer.agent_id)
    root = h.task("root", offer.agent_id, command=CommandInfo(value="id", user="root"))
    sends = h.accept(b"f1", framework_id, [offer.id], [ok, root])
    [status] = updates(sends, framework_id)
    assert status.task_id == "root" and status.state is TaskState.TASK_ERROR
    assert status.reason is Reason.REASON_TASK_UNAUTHORIZED
    assert "'root'" in status.message and "run_tasks" in status.message
    assert set(h.state.frameworks[framework_id].tasks) == {"ok"}
    agent = h.state.agents[offer.agent_id]
    assert agent.used.scalar("cpus") == 1.0


def test_framework_user_is_the_default_task_user() -> None:
    """Without CommandInfo.user the framework's user is what run_tasks checks."""
    h = Harness(acls=ACLS)
    h.add_agent(b"a1")
    framework_id = h.subscribe(b"f1", principal="a", roles=("web",), user="root")
    offer = h.offers(framework_id)[0]
    sends = h.accept(b"f1", framework_id, [offer.id], [h.task("t", offer.agent_id)])
    [status] = updates(sends, framework_id)
    assert status.state is TaskState.TASK_ERROR
    assert "'root'" in status.message


def test_operator_views_show_what_the_viewer_may_see() -> None:
    """GET_STATE with a Viewer: frameworks and tasks of other users are left out."""
    from mesoslite.api import operator_view
    from mesoslite.authz import Viewer, parse_acls

    h = Harness()
    h.add_agent(b"a1")
    mine = h.subscribe(b"f1", user="alice")
    theirs = h.subscribe(b"f2", user="bob")
    h.launch(b"f1", mine, "t-alice")
    h.launch(b"f2", theirs, "t-bob")
    acls = parse_acls(json.dumps({"permissive": False, "view_frameworks": [
        {"principals": {"values": ["a"]}, "users": {"values": ["alice"]}}], "view_tasks": [
        {"principals": {"values": ["a"]}, "users": {"values": ["alice"]}}]}))
    state = operator_view.get_state(h.state, Viewer(acls, "a"))
    frameworks = state["get_frameworks"]["frameworks"]
    assert [f["framework_info"]["id"]["value"] for f in frameworks] == [mine]
    assert [t["task_id"]["value"] for t in state["get_tasks"]["tasks"]] == ["t-alice"]
    nobody = operator_view.get_state(h.state, Viewer(acls, None))
    assert nobody["get_frameworks"]["frameworks"] == [] and nobody["get_tasks"]["tasks"] == []
    everything = operator_view.get_state(h.state)
    assert len(everything["get_tasks"]["tasks"]) == 2
    added = ("FRAMEWORK_ADDED", h.state.frameworks[theirs])
    assert not operator_view.event_visible(h.state, *added, Viewer(acls, "a"))
    assert operator_view.event_visible(h.state, *added, None)
