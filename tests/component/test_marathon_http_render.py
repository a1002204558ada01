"""The pure helpers behind the Marathon REST API: embeds, selectors, text tasks, groups."""

from __future__ import annotations

import pytest

from frameworks.marathon.api.apps import wants_text
from frameworks.marathon.api.base import normalize_id
from frameworks.marathon.core.model import App, InstanceCondition, MarathonTask
from frameworks.marathon.wire.group_json import (
    GroupDefinitionError,
    build_group,
    flatten_group_definition,
)
from frameworks.marathon.wire.render import (
    labels_match,
    light_event,
    parse_embeds,
    parse_label_selector,
    tasks_text,
)


def test_embed_prefixes_and_aliases() -> None:
    """app./apps./group.apps. prefixes all work; failures means lastTaskFailure and tasks."""
    assert parse_embeds(["app.tasks", "apps.counts", "group.apps.deployments"]) == {
        "tasks", "counts", "deployments"}
    assert parse_embeds(["apps.failures"]) == {"lastTaskFailure", "tasks"}
    assert parse_embeds(["apps.readiness,apps.taskStats", "bogus", "apps.nope"]) == {
        "readiness", "taskStats"}


def test_label_selector_terms() -> None:
    """Existence, ==, !=, in and notin terms combine with commas; bad terms raise."""
    labels = {"env": "prod", "tier": "web"}
    assert labels_match(labels, parse_label_selector("env==prod, tier in (web,db)"))
    assert not labels_match(labels, parse_label_selector("env!=prod"))
    assert labels_match(labels, parse_label_selector("missing notin (x)"))
    assert not labels_match(labels, parse_label_selector("missing"))
    for bad in ("", "a in b", "a == (", "a,,b"):
        with pytest.raises(ValueError, match="label"):
            parse_label_selector(bad)


def test_tasks_text_lists_running_tasks_per_service_port() -> None:
    """text/plain tasks: one tab-separated line per service port; bare hosts without ports."""
    web = App(id="/grp/web", cmd="x")
    bare = App(id="/bare", cmd="x", port_definitions=())

    def task(app_id: str, host: str, ports: tuple[int, ...],
             condition: InstanceCondition = InstanceCondition.RUNNING) -> MarathonTask:
        return MarathonTask(task_id=f"{host}.t", instance_id="i", app_id=app_id, version="v",
                            condition=condition, host=host, ports=ports)

    tasks = [task("/grp/web", "h2", (31002,)), task("/grp/web", "h1", (31001,)),
             task("/grp/web", "h3", (1,), InstanceCondition.STAGING), task("/bare", "h9", ())]
    assert tasks_text([web, bare], tasks) == "grp_web\t0\th1:31001\th2:31002\t\nbare\t \th9\t\n"


def test_light_event_drops_only_plan_original_and_target() -> None:
    """Light events lose plan.original/target without touching the shared event."""
    event = {"eventType": "deployment_info", "plan": {"id": "d", "original": {}, "target": {}}}
    assert light_event(event) == {"eventType": "deployment_info", "plan": {"id": "d"}}
    assert "original" in event["plan"]
    other = {"eventType": "status_update_event"}
    assert light_event(other) is other


def test_accept_header_negotiation() -> None:
    """text/plain only when the client prefers it over JSON."""
    assert wants_text("text/plain")
    assert wants_text("text/plain, application/json;q=0.5")
    assert not wants_text("application/json, text/plain")
    assert not wants_text("*/*")
    assert not wants_text("")


def test_ids_are_normalised() -> None:
    """Leading, doubled and trailing slashes collapse to one absolute path."""
    assert normalize_id("a//b/") == "/a/b"
    assert normalize_id("/a") == "/a"
    assert normalize_id("") == "/"


def test_group_tree_from_app_ids() -> None:
    """Groups nest by id; a group without apps does not exist; the root always does."""
    apps = [App(id="/a/b/c", cmd="x", version="2026-01-01T00:00:02.000Z"),
            App(id="/a/d", cmd="x", version="2026-01-01T00:00:01.000Z"), App(id="/e", cmd="x")]
    tree = build_group(apps, "/", lambda a: {"id": a.id})
    assert tree is not None
    assert [a["id"] for a in tree["apps"]] == ["/e"]
    (a_group,) = tree["groups"]
    assert a_group["id"] == "/a" and a_group["apps"] == [{"id": "/a/d"}]
    assert a_group["groups"][0]["apps"] == [{"id": "/a/b/c"}]
    assert a_group["version"] == "2026-01-01T00:00:02.000Z"
    assert build_group(apps, "/zzz", lambda a: {}) is None
    assert build_group([], "/", lambda a: {})["apps"] == []  # type: ignore[index]


def test_group_definitions_flatten_with_absolute_ids() -> None:
    """Nested group bodies give app definitions with absolute ids; errors name the field."""
    body = {"apps": [{"id": "a", "cmd": "x"}],
            "groups": [{"id": "sub", "apps": [{"id": "/g/sub/b", "cmd": "y"}]}]}
    assert [d["id"] for d in flatten_group_definition(body, "/g")] == ["/g/a", "/g/sub/b"]
    with pytest.raises(GroupDefinitionError) as err:
        flatten_group_definition({"groups": [{"id": "s", "apps": [{"id": 3}]}]}, "/g")
    assert err.value.path == "/groups/0/apps/0/id"
    with pytest.raises(GroupDefinitionError):
        flatten_group_definition({"apps": [{"id": "/other/a"}]}, "/g")
