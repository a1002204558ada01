"""Marathon's REST API v2 against real processes: a master, two agents, ``mesoslite marathon``.

A shell app's whole life over HTTP (create, scale, restart, upgrade,
rollback, kill with and without ``scale``, delete) with the answers'
shapes compared with Marathon's (no key an App or Task of Marathon's RAML
does not have), the system endpoints, and a table of malformed requests
that must get 4xx JSON naming the field, never a 500, with the process
still serving afterwards.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.marathon_procs import (
    MarathonCluster,
    http_check,
    is_healthy,
    marathon,
    shell_app,
)
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration
__all__ = ["marathon"]

#: The properties of App in Marathon's RAML (types/app.raml, latest) and the ones AppInfo adds.
APP_KEYS = frozenset({
    "id", "acceptedResourceRoles", "args", "backoffFactor", "backoffSeconds", "cmd",
    "constraints", "container", "cpus", "dependencies", "disk", "env", "executor", "fetch",
    "healthChecks", "instances", "labels", "maxLaunchDelaySeconds", "mem", "gpus", "ipAddress",
    "networks", "ports", "portDefinitions", "readinessChecks", "residency", "requirePorts",
    "secrets", "storeUrls", "taskKillGracePeriodSeconds", "upgradeStrategy", "uris", "user",
    "version", "versionInfo", "killSelection", "unreachableStrategy", "role", "tty", "check",
    "resourceLimits",
})
APP_INFO_KEYS = APP_KEYS | {"tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy",
                            "deployments", "readinessCheckResults", "tasks", "lastTaskFailure",
                            "taskStats"}
#: The properties of Task in Marathon's RAML (types/task.raml).
TASK_KEYS = frozenset({"appId", "healthCheckResults", "checkResult", "host", "id",
                       "ipAddresses", "ports", "servicePorts", "slaveId", "state", "stagedAt",
                       "startedAt", "version", "localVolumes", "region", "zone", "role"})
#: Health result properties (types/healthCheck.raml, Health).
HEALTH_KEYS = frozenset({"alive", "consecutiveFailures", "firstSuccess", "lastFailure",
                         "lastSuccess", "lastFailureCause", "taskId", "instanceId"})


def check_app_shape(app: dict[str, Any], embedded: bool = False) -> None:
    """Fail when ``app`` has a key Marathon's App (or AppInfo when embedded) does not."""
    extra = set(app) - (APP_INFO_KEYS if embedded else APP_KEYS)
    assert not extra, f"keys Marathon's App does not have: {sorted(extra)}"
    for task in app.get("tasks", []):
        check_task_shape(task)


def check_task_shape(task: dict[str, Any]) -> None:
    """Fail when ``task`` lacks a required Task key or has one Marathon's Task does not."""
    assert {"id", "appId", "host", "state"} <= set(task), task
    extra = set(task) - TASK_KEYS
    assert not extra, f"keys Marathon's Task does not have: {sorted(extra)}"
    for result in task.get("healthCheckResults", []):
        assert set(result) <= HEALTH_KEYS, f"extra health keys: {set(result) - HEALTH_KEYS}"
    assert task["stagedAt"].endswith("Z") and task["startedAt"].endswith("Z"), task


def ids(tasks: list[dict[str, Any]]) -> set[str]:
    """The task ids."""
    return {t["id"] for t in tasks}


def deploy(marathon: MarathonCluster, app: dict[str, Any], healthy: bool | None = True
           ) -> list[dict[str, Any]]:
    """POST ``app``, expect 201, wait until its instances run (healthy); returns the tasks."""
    marathon.client.ok("POST", "/v2/apps", app, expect=201)
    return marathon.client.wait_settled(app["id"], app["instances"], healthy=healthy)


def test_create_answers_201_with_location_and_deployment_then_tasks_run_healthy(
        marathon: MarathonCluster) -> None:
    """POST /v2/apps answers 201 with Location and Marathon-Deployment-Id; tasks run healthy."""
    client = marathon.client
    resp = client.request("POST", "/v2/apps", shell_app("/api/create", 2))
    assert resp.status == 201, resp
    assert resp.headers["location"].endswith("/v2/apps/api/create"), resp.headers
    deployment_id = resp.headers.get("marathon-deployment-id")
    assert deployment_id, resp.headers
    body = resp.json
    check_app_shape(body, embedded=True)  # Marathon answers an AppInfo: counts, tasks, deployments
    assert body["deployments"] == [{"id": deployment_id}]
    assert body["id"] == "/api/create" and body["instances"] == 2
    assert body["version"].endswith("Z")
    client.wait_deployment_gone(deployment_id)
    tasks = client.wait_tasks("/api/create", 2, healthy=True)
    assert {t["version"] for t in tasks} == {body["version"]}
    assert len({t["slaveId"] for t in tasks} - {a.agent_id for a in marathon.agents}) == 0
    for task in tasks:
        check_task_shape(task)
        assert task["ports"] and task["servicePorts"], task
    app = client.app("/api/create", embed="apps.tasks&embed=apps.counts&embed=apps.deployments")
    check_app_shape(app, embedded=True)
    assert (app["tasksRunning"], app["tasksHealthy"], app["deployments"]) == (2, 2, [])
    listed = client.ok("GET", "/v2/apps?embed=apps.tasks")["apps"]
    for entry in listed:
        check_app_shape(entry, embedded=True)
    assert "/api/create" in {a["id"] for a in listed}


def test_system_endpoints_answer_with_marathon_shapes(marathon: MarathonCluster) -> None:
    """/ping, /v2/info, /v2/leader, /v2/tasks, /v2/queue, /v2/deployments: Marathon's shapes."""
    client = marathon.client
    ping = client.get("/ping")
    assert ping.status == 200 and ping.body.strip() == b"pong"
    info = client.ok("GET", "/v2/info")
    assert {"name", "version", "elected", "leader", "frameworkId", "marathon_config",
            "zookeeper_config", "http_config"} <= set(info)
    assert info["elected"] is True and info["frameworkId"] == marathon.framework_id
    assert all(isinstance(info[k], dict)
               for k in ("marathon_config", "zookeeper_config", "http_config"))
    assert client.ok("GET", "/v2/leader") == {"leader": info["leader"]}
    assert info["leader"].endswith(f":{client.port}")
    tasks = deploy(marathon, shell_app("/api/system", 1))
    all_tasks = client.ok("GET", "/v2/tasks")["tasks"]
    assert ids(tasks) <= ids(all_tasks)
    for task in all_tasks:
        check_task_shape(task)
    assert client.ok("GET", "/v2/tasks?status=running")["tasks"]
    assert isinstance(client.ok("GET", "/v2/deployments"), list)
    queue = client.ok("GET", "/v2/queue")
    assert set(queue) == {"queue"} and isinstance(queue["queue"], list)


def test_unplaceable_app_shows_in_deployments_and_queue_and_is_locked(
        marathon: MarathonCluster) -> None:
    """An app no agent fits stays deploying: listed in /v2/deployments and /v2/queue; 409 locks."""
    client = marathon.client
    resp = client.request("POST", "/v2/apps", shell_app("/api/huge", 1, cpus=100.0))
    assert resp.status == 201, resp
    deployment_id = resp.headers["marathon-deployment-id"]
    deployments = wait_for(lambda: client.app_deployments("/api/huge"), timeout=10,
                           what="deployment listed")
    plan = deployments[0]
    assert plan["id"] == deployment_id
    assert {"id", "version", "affectedApps", "steps", "currentActions", "currentStep",
            "totalSteps"} <= set(plan)
    assert plan["affectedApps"] == ["/api/huge"]
    assert all({"action", "app"} <= set(a) for s in plan["steps"] for a in s["actions"])

    def queued() -> dict[str, Any] | None:
        entries = client.ok("GET", "/v2/queue")["queue"]
        return next((e for e in entries if e["app"]["id"] == "/api/huge"), None)

    entry = wait_for(queued, timeout=10, what="queue entry")
    assert {"app", "count", "delay", "since"} <= set(entry)
    assert entry["count"] == 1
    assert {"timeLeftSeconds", "overdue"} <= set(entry["delay"])
    check_app_shape(entry["app"], embedded=True)
    locked = client.request("PUT", "/v2/apps/api/huge", {"instances": 2})
    assert locked.status == 409, locked
    assert locked.json["deployments"] == [{"id": deployment_id}]
    forced = client.request("DELETE", "/v2/apps/api/huge?force=true")
    assert forced.status == 200, forced
    assert {"deploymentId", "version"} <= set(forced.json)
    wait_for(lambda: client.app_or_none("/api/huge") is None, timeout=20, what="app deleted")
    wait_for(lambda: not client.app_deployments("/api/huge") and not queued(), timeout=20,
             what="deployment and queue entry gone")


def test_scale_up_and_down_with_instances(marathon: MarathonCluster) -> None:
    """PUT {"instances": n} scales up then down; the master has the extra tasks killed."""
    client = marathon.client
    first = deploy(marathon, shell_app("/api/scale", 1))
    result = client.ok("PUT", "/v2/apps/api/scale", {"instances": 3})
    assert set(result) == {"deploymentId", "version"}
    three = client.wait_settled("/api/scale", 3, healthy=True)
    assert ids(first) <= ids(three)
    client.ok("PUT", "/v2/apps/api/scale", {"instances": 1})
    one = client.wait_settled("/api/scale", 1)
    assert client.app("/api/scale")["instances"] == 1
    gone = ids(three) - ids(one)
    assert len(gone) == 2
    wait_for(lambda: all(marathon.master_task_states().get(t) == "TASK_KILLED" for t in gone),
             timeout=20, what="scaled-down tasks killed at the master")


def test_restart_replaces_every_task(marathon: MarathonCluster) -> None:
    """POST /v2/apps/{id}/restart replaces all task ids with healthy new ones."""
    client = marathon.client
    before = deploy(marathon, shell_app("/api/rs", 2))
    result = client.ok("POST", "/v2/apps/api/rs/restart", expect=200)
    assert set(result) == {"deploymentId", "version"}
    after = client.wait_settled("/api/rs", 2, healthy=True)
    assert not ids(before) & ids(after)
    assert {t["version"] for t in after} == {result["version"]}


def color_app(app_id: str, color: str) -> dict[str, Any]:
    """An app whose tasks write $COLOR into their sandbox and check it with a COMMAND check."""
    check = http_check("COMMAND", command={"value": 'test "$(cat color.txt)" = "$COLOR"'})
    return shell_app(app_id, 2, cmd='echo "$COLOR" > color.txt && exec sleep 600',
                     env={"COLOR": color}, health=check, portDefinitions=[])


def sandbox_colors(marathon: MarathonCluster, tasks: list[dict[str, Any]]) -> set[str]:
    """The colors the tasks wrote into their sandboxes."""
    return {(marathon.sandbox(t) / "color.txt").read_text().strip() for t in tasks}


def test_upgrade_then_rollback_to_the_first_version(marathon: MarathonCluster) -> None:
    """Changing env rolls out a new version; PUT {"version": v1} brings v1's config back."""
    client = marathon.client
    v1_tasks = deploy(marathon, color_app("/api/color", "red"))
    v1 = client.app("/api/color")["version"]
    assert sandbox_colors(marathon, v1_tasks) == {"red"}
    upgrade = client.ok("PUT", "/v2/apps/api/color", {"env": {"COLOR": "blue"}})
    v2 = upgrade["version"]
    assert v2 != v1
    v2_tasks = client.wait_settled("/api/color", 2, healthy=True, version=v2)
    assert not ids(v1_tasks) & ids(v2_tasks)
    assert sandbox_colors(marathon, v2_tasks) == {"blue"}
    versions = client.ok("GET", "/v2/apps/api/color/versions")["versions"]
    assert {v1, v2} <= set(versions)
    assert client.ok("GET", f"/v2/apps/api/color/versions/{v1}")["env"] == {"COLOR": "red"}
    rollback = client.ok("PUT", "/v2/apps/api/color", {"version": v1})
    v3_tasks = client.wait_settled("/api/color", 2, healthy=True, version=rollback["version"])
    assert not ids(v2_tasks) & ids(v3_tasks)
    assert sandbox_colors(marathon, v3_tasks) == {"red"}
    app = client.app("/api/color")
    assert app["env"] == {"COLOR": "red"} and app["version"] == rollback["version"]


def test_killed_task_is_replaced_and_kill_with_scale_decrements(
        marathon: MarathonCluster) -> None:
    """DELETE of a task gets it replaced; with scale=true the app loses an instance instead."""
    client = marathon.client
    tasks = deploy(marathon, shell_app("/api/kill", 2))
    victim = tasks[0]["id"]
    killed = client.ok("DELETE", f"/v2/apps/api/kill/tasks/{victim}")
    assert killed["task"]["id"] == victim
    assert set(killed["task"]) <= TASK_KEYS, killed
    after = client.wait_tasks("/api/kill", 2, healthy=True, exclude={victim})
    assert len(ids(after) & ids(tasks)) == 1
    wait_for(lambda: marathon.master_task_states().get(victim) == "TASK_KILLED", timeout=20,
             what="killed task terminal at the master")
    second = min(ids(after))
    scaled = client.ok("DELETE", f"/v2/apps/api/kill/tasks/{second}?scale=true")
    assert {"deploymentId", "version"} <= set(scaled)
    left = client.wait_settled("/api/kill", 1)
    assert second not in ids(left) and ids(left) <= ids(after)
    assert client.app("/api/kill")["instances"] == 1


def test_delete_app_kills_its_tasks_at_the_master(marathon: MarathonCluster) -> None:
    """DELETE /v2/apps/{id} removes the app and every task ends TASK_KILLED at the master."""
    client = marathon.client
    tasks = deploy(marathon, shell_app("/api/delete", 2))
    result = client.ok("DELETE", "/v2/apps/api/delete")
    assert set(result) == {"deploymentId", "version"}
    wait_for(lambda: client.app_or_none("/api/delete") is None, timeout=20, what="app gone")
    assert client.request("GET", "/v2/apps/api/delete/tasks").status == 404
    wait_for(lambda: all(marathon.master_task_states().get(t) == "TASK_KILLED"
                         for t in ids(tasks)), timeout=20, what="tasks killed at the master")
    assert not ids(tasks) & ids(client.ok("GET", "/v2/tasks")["tasks"])


def test_double_slashes_and_relative_ids_are_normalised(marathon: MarathonCluster) -> None:
    """``//`` in URL paths collapses and a relative id gets its leading slash."""
    client = marathon.client
    app = shell_app("api/relative", 1, health=http_check("MESOS_TCP"))
    resp = client.request("POST", "/v2/apps", app)
    assert resp.status == 201, resp
    assert resp.json["id"] == "/api/relative"
    client.wait_settled("/api/relative", 1, healthy=True)
    assert client.ok("GET", "/v2/apps//api/relative")["app"]["id"] == "/api/relative"
    assert client.ok("GET", "//v2//apps//api//relative//tasks")["tasks"]
    assert all(is_healthy(t) for t in client.tasks("/api/relative"))


def test_crash_looping_app_is_delayed_in_the_queue_until_the_delay_is_reset(
        marathon: MarathonCluster) -> None:
    """A failing task delays the app's next launch (in /v2/queue); DELETE …/delay relaunches."""
    client = marathon.client
    app = shell_app("/api/crash", 1, cmd="sleep 0.3; exit 3", healthChecks=[],
                    portDefinitions=[], backoffSeconds=60, backoffFactor=2)
    client.ok("POST", "/v2/apps", app, expect=201)

    def first_failure() -> dict[str, Any] | None:
        return client.app("/api/crash", embed="apps.lastTaskFailure").get("lastTaskFailure")

    failure = wait_for(first_failure, timeout=20, what="lastTaskFailure")
    assert failure["state"] == "TASK_FAILED" and failure["appId"] == "/api/crash", failure

    def delayed() -> dict[str, Any] | None:
        for entry in client.ok("GET", "/v2/queue")["queue"]:
            if entry["app"]["id"] == "/api/crash" and entry["delay"]["timeLeftSeconds"] > 0:
                return entry
        return None

    entry = wait_for(delayed, timeout=10, what="a launch delay in /v2/queue")
    assert entry["delay"]["overdue"] is False and entry["count"] == 1, entry
    assert entry["delay"]["timeLeftSeconds"] <= 60, entry
    reset = client.request("DELETE", "/v2/queue/api/crash/delay")
    assert reset.status == 204, reset
    # With a 60 s backoff only the reset lets another task start (and fail) this soon.
    wait_for(lambda: (first_failure() or {}).get("taskId") not in (None, failure["taskId"]),
             timeout=20, what="a relaunched task failing after the reset")
    client.ok("DELETE", "/v2/apps/api/crash?force=true")


def _app_body(**fields: Any) -> bytes:
    app = {"id": "/bad/app", "cmd": "sleep 60", "cpus": 0.1, "mem": 16, "instances": 0,
           **fields}
    return json.dumps(app).encode()


#: (name, method, path, raw body, expected statuses, text the error must contain)
BAD_REQUESTS: list[tuple[str, str, str, bytes, tuple[int, ...], str]] = [
    ("truncated JSON", "POST", "/v2/apps", b'{"id": "/bad/app", ', (400, 422), ""),
    ("not UTF-8", "POST", "/v2/apps", b'{"id": "\xff\xfe"}', (400, 422), ""),
    ("array for an app", "POST", "/v2/apps", b'[{"id": "/bad/app"}]', (400, 422), ""),
    ("string for an app", "POST", "/v2/apps", b'"app"', (400, 422), ""),
    ("NaN cpus", "POST", "/v2/apps", b'{"id": "/bad/app", "cmd": "x", "cpus": NaN}',
     (400, 422), "NaN"),
    ("cpus as text", "POST", "/v2/apps", _app_body(cpus="lots"), (422,), "cpus"),
    ("cpus huge", "POST", "/v2/apps", b'{"id": "/bad/app", "cmd": "x", "cpus": 1e400}',
     (400, 422), "cpus"),
    ("instances as text", "POST", "/v2/apps", _app_body(instances="3"), (422,), "instances"),
    ("negative instances", "POST", "/v2/apps", _app_body(instances=-1), (422,), "instances"),
    ("instances beyond int32", "POST", "/v2/apps", _app_body(instances=10**12), (422,),
     "instances"),
    ("env as a list", "POST", "/v2/apps", _app_body(env=["A=1"]), (422,), "env"),
    ("env value a number", "POST", "/v2/apps", _app_body(env={"A": 1}), (422,), "env"),
    ("labels value a list", "POST", "/v2/apps", _app_body(labels={"a": [1]}), (422,), "labels"),
    ("healthChecks an object", "POST", "/v2/apps", _app_body(healthChecks={"protocol": "TCP"}),
     (422,), "healthChecks"),
    ("health check protocol unknown", "POST", "/v2/apps",
     _app_body(healthChecks=[{"protocol": "CARRIER_PIGEON"}]), (422,), "healthChecks"),
    ("health check interval a string", "POST", "/v2/apps",
     _app_body(healthChecks=[{"protocol": "COMMAND", "command": {"value": "true"},
                              "intervalSeconds": "often"}]), (422,), "intervalSeconds"),
    ("unknown constraint operator", "POST", "/v2/apps",
     _app_body(constraints=[["hostname", "SOMETIMES"]]), (422,), "constraints"),
    ("cmd and args both", "POST", "/v2/apps", _app_body(args=["sleep", "60"]), (422,), "args"),
    ("id of dots only", "POST", "/v2/apps", _app_body(id="/bad/.../app"), (422,), "id"),
    ("id above the root", "POST", "/v2/apps", _app_body(id="/../.."), (422,), "id"),
    ("id with capitals", "POST", "/v2/apps", _app_body(id="/Bad_App"), (422,), "id"),
    ("upgradeStrategy out of range", "POST", "/v2/apps",
     _app_body(upgradeStrategy={"minimumHealthCapacity": 2}), (422,), "minimumHealthCapacity"),
    ("2 MiB body", "POST", "/v2/apps",
     _app_body(labels={"big": "x" * (2 << 20)}), (400, 413), ""),
    ("deeply nested JSON", "POST", "/v2/apps", b"[" * 50000 + b"]" * 50000, (400, 413, 422), ""),
    ("scale with text", "PUT", "/v2/apps/bad/target", b'{"instances": "many"}', (422,),
     "instances"),
    ("scale beyond int32", "PUT", "/v2/apps/bad/target", b'{"instances": 1000000000000}',
     (422,), "instances"),
    ("update with an array", "PUT", "/v2/apps/bad/target", b"[1, 2]", (400, 422), ""),
    ("rollback to an unknown version", "PUT", "/v2/apps/bad/target",
     b'{"version": "2001-01-01T00:00:00.000Z"}', (404, 422), "version"),
    ("path with ..", "PUT", "/v2/apps/bad/../target", b'{"instances": 1}', (400, 404, 422), ""),
    ("tasks/delete ids not a list", "POST", "/v2/tasks/delete", b'{"ids": "abc"}', (400, 422),
     "ids"),
    ("unknown app", "GET", "/v2/apps/no/such/app", b"", (404,), "/no/such/app"),
    ("unknown deployment", "DELETE", "/v2/deployments/nope", b"", (404,), "nope"),
]


@pytest.fixture(scope="module")
def bad_input_target(marathon: MarathonCluster) -> str:
    """A deployed app (/bad/target) for the update cases."""
    marathon.client.ok("POST", "/v2/apps", shell_app("/bad/target", 1, cmd="exec sleep 600",
                                                     healthChecks=[], portDefinitions=[]),
                       expect=201)
    marathon.client.wait_settled("/bad/target", 1)
    return "/bad/target"


@pytest.mark.parametrize(("name", "method", "path", "body", "statuses", "names"), BAD_REQUESTS,
                         ids=[case[0] for case in BAD_REQUESTS])
def test_malformed_request_gets_a_4xx_json_error_naming_the_field(
        marathon: MarathonCluster, bad_input_target: str, name: str, method: str, path: str,
        body: bytes, statuses: tuple[int, ...], names: str) -> None:
    """A malformed request gets 4xx with a JSON message (422: details with paths), never 500."""
    resp = marathon.client.request(method, path, raw=body or None)
    if resp.status == 201:  # a bug: do not leave the app behind for the other tests
        marathon.client.request("DELETE", f"/v2/apps{resp.json['id']}?force=true")
    assert resp.status in statuses, f"{name}: {resp}"
    error = resp.json
    assert isinstance(error, dict) and isinstance(error.get("message"), str), error
    if resp.status == 422:
        details = error.get("details")
        assert isinstance(details, list) and details, error
        assert all("path" in d and "errors" in d for d in details), error
    if names:
        assert names in json.dumps(error), f"{name}: the error does not name {names!r}: {error}"


@pytest.mark.parametrize("raw_id", ["/bad//dslash", "/bad/x/../dots", "bad/./single"])
def test_ids_with_double_slashes_and_dots_resolve_or_are_refused(
        marathon: MarathonCluster, raw_id: str) -> None:
    """An id with ``//``, ``.`` or ``..`` is refused (422 naming id) or resolved to a clean path."""
    resp = marathon.client.request("POST", "/v2/apps", raw=_app_body(id=raw_id))
    assert resp.status in (201, 422), resp
    if resp.status == 422:
        assert "id" in json.dumps(resp.json["details"]), resp.json
        return
    app_id = resp.json["id"]
    marathon.client.ok("DELETE", f"/v2/apps{app_id}?force=true")
    assert app_id.startswith("/bad/"), app_id
    assert "//" not in app_id and "/." not in app_id, app_id


def test_process_serves_after_bad_input(marathon: MarathonCluster,
                                        bad_input_target: str) -> None:
    """After the whole table of malformed requests /ping answers and an app still deploys."""
    client = marathon.client
    for name, method, path, body, _, _ in BAD_REQUESTS:
        resp = client.request(method, path, raw=body or None)
        if resp.status == 201:
            client.request("DELETE", f"/v2/apps{resp.json['id']}?force=true")
        assert resp.status < 500, f"{name}: {resp}"
    assert client.get("/ping").status == 200
    assert client.app("/bad/target")["instances"] == 1
    deploy(marathon, shell_app("/bad/after", 1))


def test_restarted_marathon_keeps_its_framework_apps_and_tasks(marathon: MarathonCluster) -> None:
    """A new marathon on the same state dir resumes its framework and tasks, none doubled."""
    client = marathon.client
    tasks = deploy(marathon, shell_app("/api/survivor", 2))
    framework_id = marathon.framework_id
    before = {t["id"] for t in tasks}
    marathon.restart_marathon()
    client = marathon.client
    assert marathon.framework_id == framework_id
    app = client.app("/api/survivor")
    assert app["instances"] == 2 and app["version"] == tasks[0]["version"]
    # Health comes back from the reconciliation at subscription (the periodic one is 60 s away).
    resumed = client.wait_tasks("/api/survivor", 2, healthy=True, timeout=10)
    assert {t["id"] for t in resumed} == before
    live = {t for t, state in marathon.master_task_states().items()
            if t.startswith("api_survivor.") and state == "TASK_RUNNING"}
    assert live == before
    client.ok("PUT", "/v2/apps/api/survivor", {"instances": 3})
    three = client.wait_settled("/api/survivor", 3, healthy=True)
    assert before <= {t["id"] for t in three}
    live = {t for t, state in marathon.master_task_states().items()
            if t.startswith("api_survivor.") and state == "TASK_RUNNING"}
    assert live == {t["id"] for t in three}


def test_unique_constraint_spreads_tasks_and_the_task_environment_is_marathons(
        marathon: MarathonCluster) -> None:
    """UNIQUE on an agent attribute places one task per rack (the rest wait); tasks get $PORT0…"""
    client = marathon.client
    cmd = ('echo "$HOST|$PORT0|$PORT_WEB|$PORTS|$MARATHON_APP_ID|$MARATHON_APP_VERSION'
           '|$MESOS_TASK_ID" > env.txt && exec python3 -m http.server $PORT0 --bind 127.0.0.1')
    app = shell_app("/api/spread", 3, cmd=cmd, constraints=[["rack", "UNIQUE"]],
                    portDefinitions=[{"port": 0, "name": "web"}])
    version = client.ok("POST", "/v2/apps", app, expect=201)["version"]
    tasks = client.wait_tasks("/api/spread", 2, healthy=True)
    assert {t["slaveId"] for t in tasks} == {a.agent_id for a in marathon.agents}

    def waiting() -> dict[str, Any] | None:
        entries = client.ok("GET", "/v2/queue")["queue"]
        return next((e for e in entries if e["app"]["id"] == "/api/spread"), None)

    assert wait_for(waiting, timeout=10, what="the third instance queued")["count"] == 1
    for task in tasks:
        host, port0, port_web, ports, app_id, app_version, task_id = (
            (marathon.sandbox(task) / "env.txt").read_text().strip().split("|"))
        assert (host, app_id, app_version, task_id) == (task["host"], "/api/spread", version,
                                                        task["id"])
        assert int(port0) == int(port_web) == task["ports"][0]
        assert ports == str(task["ports"][0])
    client.ok("PUT", "/v2/apps/api/spread?force=true", {"instances": 2})  # its deployment waits
    client.wait_settled("/api/spread", 2, healthy=True)
    wait_for(lambda: waiting() is None, timeout=10, what="queue entry gone after scaling down")


def test_bulk_task_kills_by_ids_and_by_host(marathon: MarathonCluster) -> None:
    """POST /v2/tasks/delete?scale=true drops instances; DELETE …/tasks?host= replaces them all."""
    client = marathon.client
    tasks = deploy(marathon, shell_app("/api/bulk", 3, cmd="exec sleep 600", healthChecks=[],
                                       portDefinitions=[]), healthy=None)
    doomed = sorted(ids(tasks))[:2]
    resp = client.request("POST", "/v2/tasks/delete?scale=true", {"ids": doomed})
    assert resp.status == 200, resp
    [left] = client.wait_settled("/api/bulk", 1)
    assert left["id"] not in doomed and client.app("/api/bulk")["instances"] == 1
    client.ok("PUT", "/v2/apps/api/bulk", {"instances": 2})
    two = client.wait_settled("/api/bulk", 2)
    killed = client.ok("DELETE", "/v2/apps/api/bulk/tasks?host=127.0.0.1")
    assert ids(killed["tasks"]) == ids(two), killed
    replaced = client.wait_tasks("/api/bulk", 2, exclude=ids(two))
    assert client.app("/api/bulk")["instances"] == 2 and not ids(replaced) & ids(two)
    wait_for(lambda: all(marathon.master_task_states().get(t) == "TASK_KILLED"
                         for t in [*doomed, *ids(two)]), timeout=20,
             what="every killed task TASK_KILLED at the master")


def test_standalone_abdication_leads_again_and_keeps_scheduling(
        marathon: MarathonCluster) -> None:
    """DELETE /v2/leader without ZooKeeper: the process leads again, tasks stay, scaling works."""
    client = marathon.client
    [task] = deploy(marathon, shell_app("/api/abdicate", 1))
    assert client.ok("DELETE", "/v2/leader") == {"message": "Leadership abdicated"}
    wait_for(lambda: client.ok("GET", "/v2/info")["elected"] is True, timeout=10,
             what="elected again")
    client.ok("PUT", "/v2/apps/api/abdicate", {"instances": 2})
    two = client.wait_settled("/api/abdicate", 2, healthy=True, timeout=20)
    assert task["id"] in ids(two)
    assert marathon.master_task_states()[task["id"]] == "TASK_RUNNING"
    assert client.ok("GET", "/v2/info")["frameworkId"] == marathon.framework_id
