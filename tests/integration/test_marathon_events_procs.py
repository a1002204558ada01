"""The ``/v2/events`` SSE stream of a real ``mesoslite marathon`` process, read like curl does.

Each subscription is one HTTP connection read line by line
(:class:`tests.support.marathon_procs.EventStreamReader`): ``event:`` and
``data:`` lines, a blank line per event, ``:`` keep-alive comments.  A
deployment must show up as api_post_event, deployment_info,
status_update_event (TASK_RUNNING), health_status_changed_event,
deployment_step_success and deployment_success, in that order;
``event_type`` filters keep only the asked types; ``plan-format=light``
(the default) leaves ``plan.original``/``plan.target`` out, ``full`` keeps them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.marathon_procs import EventStreamReader, MarathonCluster, marathon, shell_app
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration
__all__ = ["marathon"]


def index_of(events: list[dict[str, Any]], what: str, predicate: Any, last: bool = False) -> int:
    """Index of the first (or ``last``) event satisfying ``predicate`` (fails naming ``what``)."""
    found = [i for i, event in enumerate(events) if predicate(event)]
    if not found:
        raise AssertionError(f"no {what} among {[e['eventType'] for e in events]}")
    return found[-1] if last else found[0]


def group_app_ids(group: dict[str, Any]) -> set[str]:
    """Every app id in a group tree (Marathon's plan.original/target are root groups)."""
    found = {app["id"] for app in group.get("apps", [])}
    for sub in group.get("groups", []):
        found |= group_app_ids(sub)
    return found


def deploy_and_wait(marathon: MarathonCluster, stream: EventStreamReader, app_id: str
                    ) -> tuple[str, list[dict[str, Any]]]:
    """POST a one-instance app; wait for its deployment_success; returns (deployment id, events)."""
    resp = marathon.client.request("POST", "/v2/apps", shell_app(app_id, 1))
    assert resp.status == 201, resp
    deployment_id = resp.headers["marathon-deployment-id"]
    stream.wait(lambda e: e["eventType"] == "deployment_success" and e["id"] == deployment_id,
                what=f"deployment_success of {deployment_id}")
    return deployment_id, stream.snapshot()


def test_deployment_events_arrive_in_order_with_marathon_shapes(
        marathon: MarathonCluster) -> None:
    """A deployment streams api_post → deployment_info → RUNNING → healthy → last step → success."""
    with marathon.events() as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        deployment_id, events = deploy_and_wait(marathon, stream, "/events/order")
    for event in events:
        assert event["_sse_event"] == event["eventType"], event
        assert event["timestamp"].endswith("Z"), event
    app_id = "/events/order"
    post = index_of(events, "api_post_event", lambda e: e["eventType"] == "api_post_event"
                    and e["appDefinition"]["id"] == app_id)
    info = index_of(events, "deployment_info", lambda e: e["eventType"] == "deployment_info"
                    and e["plan"]["id"] == deployment_id)
    running = index_of(events, "status_update_event TASK_RUNNING",
                       lambda e: e["eventType"] == "status_update_event"
                       and e["appId"] == app_id and e["taskStatus"] == "TASK_RUNNING")
    healthy = index_of(events, "health_status_changed_event",
                       lambda e: e["eventType"] == "health_status_changed_event"
                       and e["appId"] == app_id and e["alive"] is True)
    step = index_of(events, "deployment_step_success",  # the last step: the scaling one
                    lambda e: e["eventType"] == "deployment_step_success"
                    and e["plan"]["id"] == deployment_id, last=True)
    success = index_of(events, "deployment_success",
                       lambda e: e["eventType"] == "deployment_success"
                       and e["id"] == deployment_id)
    assert post < info < running < healthy < step < success, (post, info, running, healthy,
                                                              step, success)
    status = events[running]
    assert {"slaveId", "taskId", "taskStatus", "message", "appId", "host", "ports",
            "version", "ipAddresses"} <= set(status), status
    assert status["taskId"] in {t["id"] for t in marathon.client.tasks(app_id)}
    assert {"currentStep"} <= set(events[info]), events[info]
    assert {"id", "steps", "version"} <= set(events[info]["plan"]), events[info]


def test_event_type_filter_keeps_only_the_asked_types(marathon: MarathonCluster) -> None:
    """?event_type= (repeatable) streams only those types; an unfiltered stream sees more."""
    wanted = {"deployment_success", "status_update_event"}
    with marathon.events("event_type=deployment_success&event_type=status_update_event") as only, \
            marathon.events() as everything:
        deployment_id, _ = deploy_and_wait(marathon, everything, "/events/filtered")
        only.wait(lambda e: e["eventType"] == "deployment_success" and e["id"] == deployment_id,
                  what="deployment_success on the filtered stream")
        only.wait(lambda e: e["eventType"] == "status_update_event"
                  and e["appId"] == "/events/filtered", what="status_update_event (filtered)")
        filtered = only.snapshot()
        unfiltered = everything.snapshot()
    assert {e["eventType"] for e in filtered} <= wanted, [e["eventType"] for e in filtered]
    assert {"api_post_event", "deployment_info"} <= {e["eventType"] for e in unfiltered}


def test_plan_format_light_drops_original_and_target_full_keeps_them(
        marathon: MarathonCluster) -> None:
    """plan-format=light (default) has no plan.original/target; plan-format=full has both."""
    query = "event_type=deployment_info&event_type=deployment_success"
    with marathon.events(query) as default, marathon.events(query + "&plan-format=light") \
            as light, marathon.events(query + "&plan-format=full") as full:
        deployment_id, _ = deploy_and_wait(marathon, full, "/events/plans")
        for stream in (default, light):
            stream.wait(lambda e: e["eventType"] == "deployment_success"
                        and e["id"] == deployment_id, what="deployment_success")
        streams = {"default": default.snapshot(), "light": light.snapshot(),
                   "full": full.snapshot()}
    for name, events in streams.items():
        plans = [e["plan"] for e in events if e.get("plan", {}).get("id") == deployment_id]
        assert len(plans) >= 2, (name, events)
        for plan in plans:
            if name == "full":
                assert {"original", "target"} <= set(plan), plan
                assert plan["target"]["id"] == "/" == plan["original"]["id"], plan
                assert "/events/plans" in group_app_ids(plan["target"]), plan["target"]
                assert "/events/plans" not in group_app_ids(plan["original"]), plan
            else:
                assert not {"original", "target"} & set(plan), (name, plan)


def test_idle_stream_gets_keepalive_comments(marathon: MarathonCluster) -> None:
    """An idle subscription receives ':' keep-alive comment lines (every second here)."""
    with marathon.events("event_type=pod_deleted_event") as stream:
        wait_for(lambda: stream.comments >= 2, timeout=10, what="two keep-alive comments")
        assert stream.snapshot() == []


def test_other_subscribers_attaching_and_detaching_are_events(marathon: MarathonCluster) -> None:
    """A second subscriber's connect and disconnect show as event_stream_attached/_detached."""
    with marathon.events("event_type=event_stream_attached&event_type=event_stream_detached") \
            as watcher:
        with marathon.events("event_type=deployment_success"):
            attached = watcher.wait(lambda e: e["eventType"] == "event_stream_attached",
                                    what="event_stream_attached")
        detached = watcher.wait(lambda e: e["eventType"] == "event_stream_detached",
                                what="event_stream_detached")
    assert attached["remoteAddress"] == detached["remoteAddress"], (attached, detached)
    assert attached["remoteAddress"].startswith("127.0.0.1"), attached
