"""The Marathon REST API v2 routes over real HTTP on 127.0.0.1, against an in-memory fake."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from frameworks.marathon.core.model import InstanceCondition
from frameworks.marathon.core.reports import QueueEntry, TaskFailure
from tests.support.marathon_fake_service import ApiServer, FakeService

WEB = {"id": "/web", "cmd": "sleep 100", "instances": 2, "labels": {"HAPROXY_GROUP": "ext"}}


def serve(body: Callable[[FakeService, ApiServer], Awaitable[None]], **options: Any) -> None:
    """Run ``body`` with a fake service behind a live API server."""

    async def main() -> None:
        service = FakeService()
        api = ApiServer(service, **options)
        try:
            await body(service, api)
        finally:
            api.stop()

    asyncio.run(main())


async def create(api: ApiServer, service: FakeService, definition: dict[str, Any]) -> None:
    """Create an app and let its deployment finish."""
    reply = await api.call("POST", "/v2/apps", definition)
    assert reply.code == 201, reply.text
    service.finish_deployments()


def test_system_endpoints() -> None:
    """/ping, /v2/info, /metrics and /v2/leader answer with Marathon's shapes."""

    async def body(service: FakeService, api: ApiServer) -> None:
        ping = await api.call("GET", "/ping")
        assert (ping.code, ping.text.strip()) == (200, "pong")
        assert ping.headers["Content-Type"].startswith("text/plain")
        info = await api.call("GET", "/v2/info")
        assert info.code == 200 and info.json["elected"] is True
        assert {"marathon_config", "zookeeper_config", "http_config"} <= set(info.json)
        metrics = await api.call("GET", "/metrics")
        assert metrics.code == 200 and metrics.json["counters"] == {"apps": 0}
        leader = await api.call("GET", "/v2/leader")
        assert leader.json == {"leader": "127.0.0.1:8080"}
        assert leader.headers["X-Marathon-Leader"] == "127.0.0.1:8080"
        abdicated = await api.call("DELETE", "/v2/leader")
        assert abdicated.code == 200 and "message" in abdicated.json
        assert ("abdicate",) in service.calls
        service.leader = None
        gone = await api.call("GET", "/v2/leader")
        assert gone.code == 404 and gone.json["message"] == "There is no leader"

    serve(body)


def test_post_app_answers_201_with_location_and_deployment_header() -> None:
    """POST /v2/apps: 201, the App, Location and Marathon-Deployment-Id; a relative id works."""

    async def body(service: FakeService, api: ApiServer) -> None:
        reply = await api.call("POST", "/v2/apps", {**WEB, "id": "web"})
        assert reply.code == 201, reply.text
        assert reply.headers["Location"] == "/v2/apps/web"
        dep_id = reply.headers["Marathon-Deployment-Id"]
        assert reply.json["id"] == "/web" and reply.json["instances"] == 2
        assert reply.json["deployments"] == [{"id": dep_id}]
        assert reply.json["tasks"] == [] and reply.json["tasksRunning"] == 0
        assert reply.json["version"].endswith("Z")
        again = await api.call("POST", "/v2/apps", WEB)
        assert again.code == 409 and "already exists" in again.json["message"]

    serve(body)


def test_list_apps_with_embeds_and_filters() -> None:
    """GET /v2/apps: counts and deployments always; tasks with any embed prefix; filters."""

    async def body(service: FakeService, api: ApiServer) -> None:
        await create(api, service, WEB)
        await create(api, service, {"id": "/grp/db", "cmd": "postgres", "labels": {"t": "db"}})
        service.add_task("/web", host="h1", ports=(31001,), healthy=True)
        plain = await api.call("GET", "/v2/apps")
        assert [a["id"] for a in plain.json["apps"]] == ["/grp/db", "/web"]
        web = plain.json["apps"][1]
        assert web["tasksRunning"] == 1 and web["tasksHealthy"] == 1
        assert web["deployments"] == [] and "tasks" not in web
        for embed in ("apps.tasks", "app.tasks", "group.apps.tasks"):
            reply = await api.call("GET", f"/v2/apps?embed={embed}&embed=apps.readiness")
            tasks = reply.json["apps"][1]["tasks"]
            assert [t["host"] for t in tasks] == ["h1"] and tasks[0]["ports"] == [31001]
            assert reply.json["apps"][1]["readinessCheckResults"] == []
        by_cmd = await api.call("GET", "/v2/apps?cmd=postgres")
        assert [a["id"] for a in by_cmd.json["apps"]] == ["/grp/db"]
        by_id = await api.call("GET", "/v2/apps?id=WE")
        assert [a["id"] for a in by_id.json["apps"]] == ["/web"]
        for selector, expected in (("HAPROXY_GROUP==ext", ["/web"]), ("t", ["/grp/db"]),
                                   ("t in (db, x)", ["/grp/db"]),
                                   ("HAPROXY_GROUP!=ext", ["/grp/db"]),
                                   ("t notin (db)", ["/web"])):
            reply = await api.call("GET", f"/v2/apps?label={quote(selector)}")
            assert [a["id"] for a in reply.json["apps"]] == expected, selector
        bad = await api.call("GET", "/v2/apps?label=a%20in%20b")
        assert bad.code == 400 and "label" in bad.json["message"]
        group = await api.call("GET", "/v2/apps/grp/*")
        assert [a["id"] for a in group.json["apps"]] == ["/grp/db"]

    serve(body)


def test_get_one_app_embeds_everything_and_normalises_ids() -> None:
    """GET /v2/apps/{id}: {"app"} with tasks, counts, deployments, lastTaskFailure; ids normal."""

    async def body(service: FakeService, api: ApiServer) -> None:
        await create(api, service, {"id": "/grp/sub/web", "cmd": "sleep 1"})
        service.add_task("/grp/sub/web")
        service.failures["/grp/sub/web"] = TaskFailure(
            app_id="/grp/sub/web", task_id="t1", state="TASK_FAILED", message="boom",
            host="h1", agent_id="a1", timestamp=1767323045.5, version="v")
        for path in ("/v2/apps/grp/sub/web", "/v2/apps//grp/sub/web", "/v2/apps/grp//sub/web/",
                     "//v2/apps/grp/sub/web"):
            reply = await api.call("GET", path)
            assert reply.code == 200, (path, reply.text)
            app = reply.json["app"]
            assert app["id"] == "/grp/sub/web"
            assert len(app["tasks"]) == 1 and app["tasksRunning"] == 1
            assert app["deployments"] == []
            assert app["lastTaskFailure"]["timestamp"] == "2026-01-02T03:04:05.500Z"
            assert app["lastTaskFailure"]["slaveId"] == "a1"
        missing = await api.call("GET", "/v2/apps/nope")
        assert missing.code == 404 and missing.json["message"] == "App '/nope' does not exist"

    serve(body)


def test_put_is_a_partial_update_locked_by_running_deployments() -> None:
    """PUT /v2/apps/{id} keeps unsent fields; 409 while deployed unless force; partial=false."""

    async def body(service: FakeService, api: ApiServer) -> None:
        first = await api.call("POST", "/v2/apps", WEB)
        dep_id = first.headers["Marathon-Deployment-Id"]
        locked = await api.call("PUT", "/v2/apps/web", {"instances": 5})
        assert locked.code == 409
        assert locked.json["message"].startswith("App is locked by one or more deployments.")
        assert locked.json["deployments"] == [{"id": dep_id}]
        forced = await api.call("PUT", "/v2/apps/web?force=True", {"instances": 5})
        assert forced.code == 200 and set(forced.json) == {"deploymentId", "version"}
        assert forced.headers["Marathon-Deployment-Id"] == forced.json["deploymentId"]
        assert service.apps["/web"].instances == 5 and service.apps["/web"].cmd == "sleep 100"
        service.finish_deployments()
        echoed = await api.call("GET", "/v2/apps/web")
        sent_back = {**echoed.json["app"], "instances": 1}
        again = await api.call("PUT", "/v2/apps/web", sent_back)
        assert again.code == 200, again.text
        service.finish_deployments()
        replaced = await api.call("PUT", "/v2/apps/web?partial=false", {"cmd": "sleep 5"})
        assert replaced.code == 200
        assert service.apps["/web"].labels == {} and service.apps["/web"].instances == 1
        service.finish_deployments()
        await api.call("PUT", "/v2/apps/web", {"labels": {"a": "b"}})
        service.finish_deployments()
        marathon_name = await api.call("PUT", "/v2/apps/web?partialUpdate=FALSE",
                                       {"cmd": "sleep 6"})
        assert marathon_name.code == 200 and service.apps["/web"].labels == {}
        service.finish_deployments()
        created = await api.call("PUT", "/v2/apps/new", {"cmd": "sleep 1"})
        assert created.code == 201 and "/new" in service.apps
        mismatch = await api.call("PUT", "/v2/apps/web", {"id": "/other", "cmd": "x"})
        assert mismatch.code == 422 and mismatch.json["details"][0]["path"] == "/id"

    serve(body)


def test_patch_updates_only_sent_fields_of_an_existing_app() -> None:
    """PATCH /v2/apps/{id} keeps unsent fields, is locked like PUT, and 404s an unknown app."""

    async def body(service: FakeService, api: ApiServer) -> None:
        await api.call("POST", "/v2/apps", WEB)
        locked = await api.call("PATCH", "/v2/apps/web", {"instances": 3})
        assert locked.code == 409
        service.finish_deployments()
        patched = await api.call("PATCH", "/v2/apps/web", {"instances": 3})
        assert patched.code == 200 and set(patched.json) == {"deploymentId", "version"}
        assert service.apps["/web"].instances == 3 and service.apps["/web"].cmd == "sleep 100"
        missing = await api.call("PATCH", "/v2/apps/nope", {"instances": 1})
        assert missing.code == 404 and "/nope" in missing.json["message"]
        assert "/nope" not in service.apps
        bad = await api.call("PATCH", "/v2/apps/web", {"instances": "three"})
        assert bad.code == 422 and bad.json["details"][0]["path"] == "/instances"

    serve(body)


def test_rollback_versions_restart_and_delete() -> None:
    """{"version": v} rolls back; versions list and show; restart and delete start deployments."""

    async def body(service: FakeService, api: ApiServer) -> None:
        await create(api, service, WEB)
        first_version = service.apps["/web"].version
        await api.call("PUT", "/v2/apps/web", {"cmd": "sleep 200"})
        service.finish_deployments()
        versions = await api.call("GET", "/v2/apps/web/versions")
        assert versions.json["versions"][-1] == first_version
        assert len(versions.json["versions"]) == 2
        old = await api.call("GET", f"/v2/apps/web/versions/{first_version}")
        assert old.code == 200 and old.json["cmd"] == "sleep 100"
        missing = await api.call("GET", "/v2/apps/web/versions/2020-01-01T00:00:00.000Z")
        assert missing.code == 404
        rolled = await api.call("PUT", "/v2/apps/web", {"version": first_version})
        assert rolled.code == 200 and rolled.headers["Marathon-Deployment-Id"]
        assert ("rollback_app", "/web", first_version, False) in service.calls
        assert service.apps["/web"].cmd == "sleep 100"
        restarted = await api.call("POST", "/v2/apps/web/restart?force=true")
        assert restarted.code == 200 and set(restarted.json) == {"deploymentId", "version"}
        deleted = await api.call("DELETE", "/v2/apps/web?force=1")
        assert deleted.code == 200 and "/web" not in service.apps
        gone = await api.call("POST", "/v2/apps/web/restart")
        assert gone.code == 404

    serve(body)


def test_app_tasks_list_and_kill() -> None:
    """An app's tasks: list, kill by host, kill with scale (a deployment), kill one, 404s."""

    async def body(service: FakeService, api: ApiServer) -> None:
        await create(api, service, WEB)
        t1 = service.add_task("/web", host="h1")
        t2 = service.add_task("/web", host="h2")
        t3 = service.add_task("/web", host="h3")
        listed = await api.call("GET", "/v2/apps/web/tasks")
        assert {t["id"] for t in listed.json["tasks"]} == {t1.task_id, t2.task_id, t3.task_id}
        assert set(listed.json["tasks"][0]) >= {"id", "appId", "host", "ports", "servicePorts",
                                                "slaveId", "state", "stagedAt", "startedAt",
                                                "version", "ipAddresses"}
        by_host = await api.call("DELETE", "/v2/apps/web/tasks?host=h1")
        assert [t["id"] for t in by_host.json["tasks"]] == [t1.task_id]
        scaled = await api.call("DELETE", f"/v2/apps/web/tasks/{t2.task_id}?scale=true")
        assert scaled.code == 200 and "deploymentId" in scaled.json
        assert service.apps["/web"].instances == 1
        one = await api.call("DELETE", f"/v2/apps/web/tasks/{t3.task_id}?force=true")
        assert one.json["task"]["id"] == t3.task_id
        unknown = await api.call("DELETE", "/v2/apps/web/tasks/web.instance-x._app.1")
        assert unknown.code == 404 and "does not exist" in unknown.json["message"]
        no_app = await api.call("GET", "/v2/apps/nope/tasks")
        assert no_app.code == 404

    serve(body)


def test_tasks_endpoint_json_text_and_delete() -> None:
    """/v2/tasks: JSON, status filter, text/plain lines, and POST /v2/tasks/delete."""

    async def body(service: FakeService, api: ApiServer) -> None:
        await create(api, service, {"id": "/grp/web", "cmd": "x",
                                    "portDefinitions": [{"port": 10001}]})
        running = service.add_task("/grp/web", host="h2", ports=(31002,))
        service.add_task("/grp/web", host="h1", ports=(31001,))
        staging = service.add_task("/grp/web", host="h3", condition=InstanceCondition.STAGING)
        every = await api.call("GET", "/v2/tasks")
        assert len(every.json["tasks"]) == 3
        only = await api.call("GET", "/v2/tasks?status=staging")
        assert [t["id"] for t in only.json["tasks"]] == [staging.task_id]
        bad = await api.call("GET", "/v2/tasks?status=sleeping")
        assert bad.code == 400 and "status" in bad.json["message"]
        text = await api.call("GET", "/v2/tasks", headers={"Accept": "text/plain"})
        assert text.headers["Content-Type"].startswith("text/plain")
        assert text.text == "grp_web\t10001\th1:31001\th2:31002\t\n"
        prefers_json = await api.call("GET", "/v2/tasks",
                                      headers={"Accept": "application/json, text/plain"})
        assert prefers_json.json is not None
        killed = await api.call("POST", "/v2/tasks/delete", {"ids": [running.task_id]})
        assert killed.code == 200 and killed.json["tasks"][0]["id"] == running.task_id
        scaled = await api.call("POST", "/v2/tasks/delete?scale=true&force=true",
                                {"ids": [staging.task_id]})
        assert "deploymentId" in scaled.json
        unknown = await api.call("POST", "/v2/tasks/delete", {"ids": ["nope"]})
        assert unknown.code == 404

    serve(body)


def test_deployments_and_queue() -> None:
    """/v2/deployments is a bare array; DELETE rolls back or (force) answers 202; /v2/queue."""

    async def body(service: FakeService, api: ApiServer) -> None:
        created = await api.call("POST", "/v2/apps", WEB)
        dep_id = created.headers["Marathon-Deployment-Id"]
        listed = await api.call("GET", "/v2/deployments")
        assert isinstance(listed.json, list) and listed.json[0]["id"] == dep_id
        assert {"id", "version", "affectedApps", "affectedPods", "steps", "currentActions",
                "currentStep", "totalSteps"} <= set(listed.json[0])
        assert listed.json[0]["affectedApps"] == ["/web"]
        locked = await api.call("GET", "/v2/apps/web")
        assert locked.json["app"]["deployments"] == [{"id": dep_id}]
        rollback = await api.call("DELETE", f"/v2/deployments/{dep_id}")
        assert rollback.code == 200 and rollback.json["deploymentId"] != dep_id
        forced = await api.call("DELETE", f"/v2/deployments/{rollback.json['deploymentId']}"
                                          "?force=true")
        assert forced.code == 202
        missing = await api.call("DELETE", "/v2/deployments/nope")
        assert missing.code == 404
        await create(api, service, WEB)
        service.queue_entries.append(QueueEntry(
            app=service.apps["/web"], count=2, time_left_seconds=3.4, overdue=False,
            since=1767323045.0, rejections={"InsufficientMemory": 3}, processed_offers=4))
        queue = await api.call("GET", "/v2/queue")
        entry = queue.json["queue"][0]
        assert entry["count"] == 2 and entry["delay"] == {"timeLeftSeconds": 3,
                                                          "overdue": False}
        assert entry["app"]["id"] == "/web" and entry["since"].endswith("Z")
        reset = await api.call("DELETE", "/v2/queue/web/delay")
        assert reset.code == 204 and reset.body == b""
        not_queued = await api.call("DELETE", "/v2/queue/other/delay")
        assert not_queued.code == 404

    serve(body)


def test_groups_tree_create_scale_delete() -> None:
    """/v2/groups: a tree from app ids; POST a group; PUT scaleBy; DELETE its apps."""

    async def body(service: FakeService, api: ApiServer) -> None:
        await create(api, service, WEB)
        await create(api, service, {"id": "/prod/api/v1", "cmd": "x", "instances": 3})
        await create(api, service, {"id": "/prod/db", "cmd": "x"})
        root = await api.call("GET", "/v2/groups")
        assert root.json["id"] == "/" and [a["id"] for a in root.json["apps"]] == ["/web"]
        prod = root.json["groups"][0]
        assert prod["id"] == "/prod" and [a["id"] for a in prod["apps"]] == ["/prod/db"]
        assert prod["groups"][0]["id"] == "/prod/api"
        assert set(prod) == {"id", "apps", "groups", "pods", "dependencies", "version"}
        sub = await api.call("GET", "/v2/groups/prod/api")
        assert [a["id"] for a in sub.json["apps"]] == ["/prod/api/v1"]
        assert (await api.call("GET", "/v2/groups/nope")).code == 404
        made = await api.call("POST", "/v2/groups", {"id": "/stage", "apps": [
            {"id": "a", "cmd": "x"}], "groups": [{"id": "inner", "apps": [
                {"id": "b", "cmd": "y"}]}]})
        assert made.code == 201 and made.headers["Marathon-Deployment-Id"]
        assert {"/stage/a", "/stage/inner/b"} <= set(service.apps)
        service.finish_deployments()
        exists = await api.call("POST", "/v2/groups", {"id": "/stage", "apps": []})
        assert exists.code == 409
        scaled = await api.call("PUT", "/v2/groups/prod", {"scaleBy": 1.5})
        assert scaled.code == 200 and service.apps["/prod/api/v1"].instances == 5
        assert service.apps["/prod/db"].instances == 2
        service.finish_deployments()
        dropped = await api.call("DELETE", "/v2/groups/prod?force=true")
        assert dropped.code == 200 and not any(a.startswith("/prod/") for a in service.apps)

    serve(body)


def test_apps_named_like_suffixes_route_as_marathon_does() -> None:
    """/v2/apps/tasks is the app /tasks; /v2/apps/grp/tasks is the tasks of /grp."""

    async def body(service: FakeService, api: ApiServer) -> None:
        await create(api, service, {"id": "/tasks", "cmd": "x"})
        await create(api, service, {"id": "/grp", "cmd": "x"})
        as_app = await api.call("GET", "/v2/apps/tasks")
        assert as_app.json["app"]["id"] == "/tasks"
        as_tasks = await api.call("GET", "/v2/apps/grp/tasks")
        assert as_tasks.json == {"tasks": []}

    serve(body)


def test_put_many_apps_in_one_deployment() -> None:
    """PUT /v2/apps with an array creates and partially updates apps in one deployment."""

    async def body(service: FakeService, api: ApiServer) -> None:
        await create(api, service, WEB)
        reply = await api.call("PUT", "/v2/apps", [{"id": "/web", "instances": 4},
                                                   {"id": "other", "cmd": "y"}])
        assert reply.code == 200, reply.text
        assert service.apps["/web"].instances == 4 and service.apps["/web"].cmd == "sleep 100"
        assert len(service.plans) == 1 and "/other" in service.apps
        dup = await api.call("PUT", "/v2/apps?force=true", [{"id": "/a", "cmd": "x"},
                                                            {"id": "a", "cmd": "x"}])
        assert dup.code == 422

    serve(body)
