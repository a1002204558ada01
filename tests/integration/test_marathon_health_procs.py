"""Health checks through ``mesoslite marathon`` on real processes: failing tasks get replaced.

The checks run in the command executor beside the task; their verdicts
reach the framework as the ``healthy`` flag of status updates.  A task
whose check fails ``maxConsecutiveFailures`` times in a row is killed
(TASK_KILLED, unhealthy) and the framework launches a new one in its place,
announcing the kill as ``unhealthy_task_kill_event`` on ``/v2/events``.
Tasks of an agent that is killed (-9) become TASK_UNREACHABLE and, with the
default unreachableStrategy (0 s), are replaced on the surviving agent.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.marathon_procs import (
    MarathonCluster,
    http_check,
    is_healthy,
    marathon,
    shell_app,
)
from tests.support.procs import holds, wait_for

pytestmark = pytest.mark.integration
__all__ = ["marathon"]


def flag_app(app_id: str, instances: int = 2) -> dict[str, Any]:
    """An app whose COMMAND check fails once a file named ``fail`` is in the sandbox."""
    check = http_check("COMMAND", command={"value": 'test ! -f "$MESOS_SANDBOX/fail"'},
                       maxConsecutiveFailures=2, intervalSeconds=0.5, gracePeriodSeconds=5)
    return shell_app(app_id, instances, cmd="exec sleep 600", health=check, portDefinitions=[])


def test_task_failing_its_command_check_is_killed_and_replaced(
        marathon: MarathonCluster) -> None:
    """A task whose check starts failing is killed unhealthy, replaced, and the kill is an event."""
    client = marathon.client
    with marathon.events("event_type=unhealthy_task_kill_event&event_type=status_update_event"
                         "&event_type=health_status_changed_event") as events:
        client.ok("POST", "/v2/apps", flag_app("/health/flag"), expect=201)
        tasks = client.wait_settled("/health/flag", 2, healthy=True)
        victim, survivor = tasks[0], tasks[1]
        (marathon.sandbox(victim) / "fail").write_text("now\n")

        kill = events.wait(lambda e: e["eventType"] == "unhealthy_task_kill_event",
                           what="unhealthy_task_kill_event")
        assert kill["taskId"] == victim["id"] and kill["appId"] == "/health/flag"
        assert {"timestamp", "instanceId", "version", "reason", "host", "slaveId"} <= set(kill)
        unhealthy = events.wait(lambda e: e["eventType"] == "health_status_changed_event"
                                and e["taskId"] == victim["id"] and e["alive"] is False,
                                what="health_status_changed_event alive=false")
        assert unhealthy["appId"] == "/health/flag"
        events.wait(lambda e: e["eventType"] == "status_update_event"
                    and e["taskId"] == victim["id"] and e["taskStatus"] == "TASK_KILLED",
                    what="TASK_KILLED status_update_event")

        after = client.wait_tasks("/health/flag", 2, healthy=True, exclude={victim["id"]})
        assert survivor["id"] in {t["id"] for t in after}
        wait_for(lambda: marathon.master_task_states().get(victim["id"]) == "TASK_KILLED",
                 timeout=20, what="the unhealthy task TASK_KILLED at the master")
        statuses = master_statuses(marathon, victim["id"])
        assert statuses[-1]["state"] == "TASK_KILLED" and statuses[-1].get("healthy") is False, \
            statuses
    app = client.app("/health/flag", embed="apps.lastTaskFailure")
    assert app["lastTaskFailure"]["taskId"] == victim["id"]
    assert app["lastTaskFailure"]["state"] == "TASK_KILLED"


def master_statuses(marathon: MarathonCluster, task_id: str) -> list[dict[str, Any]]:
    """The statuses of a task of the framework in the master's /state."""
    for fw in marathon.master.state()["frameworks"]:
        for task in fw.get("tasks", []) + fw.get("completed_tasks", []):
            if task["id"] == task_id:
                return task["statuses"]
    return []


def test_http_check_failure_kills_and_replaces_the_task(marathon: MarathonCluster) -> None:
    """A MESOS_HTTP check whose server stops answering 2xx/3xx gets the task replaced."""
    client = marathon.client
    # Serves the sandbox: / answers 200 while index.html exists, 404 once it is removed.
    cmd = "echo ok > index.html && exec python3 -m http.server $PORT0 --bind 127.0.0.1"
    check = http_check("MESOS_HTTP", path="/index.html", maxConsecutiveFailures=2,
                       gracePeriodSeconds=5)
    client.ok("POST", "/v2/apps", shell_app("/health/web", 1, cmd=cmd, health=check),
              expect=201)
    [task] = client.wait_settled("/health/web", 1, healthy=True)
    assert task["healthCheckResults"][0]["consecutiveFailures"] == 0
    (marathon.sandbox(task) / "index.html").unlink()
    [replacement] = client.wait_tasks("/health/web", 1, healthy=True, exclude={task["id"]})
    assert replacement["id"] != task["id"] and is_healthy(replacement)
    wait_for(lambda: marathon.master_task_states().get(task["id"]) == "TASK_KILLED",
             timeout=20, what="the unhealthy task TASK_KILLED at the master")


def test_task_never_healthy_within_grace_shows_unhealthy_not_killed_early(
        marathon: MarathonCluster) -> None:
    """During the grace period failures do not kill: the task stays RUNNING, not healthy."""
    client = marathon.client
    check = http_check("COMMAND", command={"value": "false"}, maxConsecutiveFailures=1,
                       gracePeriodSeconds=600)
    client.ok("POST", "/v2/apps", shell_app("/health/grace", 1, cmd="exec sleep 600",
                                            health=check, portDefinitions=[]), expect=201)
    [task] = client.wait_tasks("/health/grace", 1)
    # Several intervals of failing checks pass; the task must still be the same one.
    wait_for(lambda: client.app("/health/grace")["tasksRunning"] == 1, timeout=10,
             what="task counted running")
    assert_same_task_for(client, "/health/grace", task["id"], seconds=3.0)
    app = client.app("/health/grace")
    assert app["tasksHealthy"] == 0
    client.ok("DELETE", "/v2/apps/health/grace?force=true")  # its deployment never ends


def assert_same_task_for(client: Any, app_id: str, task_id: str, seconds: float) -> None:
    """Fail if, within ``seconds``, the app's only task is ever a different one or not running."""
    def same() -> bool:
        tasks = client.tasks(app_id)
        assert [t["id"] for t in tasks] == [task_id], tasks
        assert tasks[0]["state"] == "TASK_RUNNING", tasks
        return True

    holds(same, seconds, f"{task_id} the only, running task of {app_id}", interval=0.2)


def test_tasks_of_a_lost_agent_are_replaced_on_the_survivor(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """kill -9 of an agent: its tasks become unreachable and are replaced on the other agent."""
    root = tmp_path_factory.mktemp("marathon-agent-loss")
    with MarathonCluster(root, master_flags={"agent_ping_timeout": 0.5,
                                             "max_agent_ping_timeouts": 2}) as cluster:
        client = cluster.client
        client.ok("POST", "/v2/apps", shell_app("/loss/web", 2), expect=201)
        tasks = client.wait_settled("/loss/web", 2, healthy=True)
        victim_agent = cluster.agent_of(tasks[0]["slaveId"])
        survivor = next(a for a in cluster.agents if a is not victim_agent)
        lost = {t["id"] for t in tasks if t["slaveId"] == victim_agent.agent_id}
        with cluster.events("event_type=status_update_event") as events:
            victim_agent.kill9()
            unreachable = events.wait(lambda e: e["taskId"] in lost
                                      and e["taskStatus"] == "TASK_UNREACHABLE",
                                      what="TASK_UNREACHABLE of a lost task")
        assert unreachable["appId"] == "/loss/web"
        after = client.wait_tasks("/loss/web", 2, healthy=True, exclude=lost, timeout=40)
        assert {t["slaveId"] for t in after} == {survivor.agent_id}
        assert not lost & {t["id"] for t in client.ok("GET", "/v2/tasks")["tasks"]}
