"""Docker apps through ``mesoslite marathon`` on real processes and a real Docker engine.

The two agents run with ``--containerizers docker,process``; each agent's
work directory is its Docker scope (the label on its containers), checked
with the Docker SDK and force-cleaned afterwards.  The busybox test image
comes from scripts/ensure-docker.sh (nothing is pulled).  Covered: a bridged
app serving on mapped host ports (deploy, scale, delete), a HOST-network app
through upgrade, restart and rollback, and a MESOS_HTTP health check on a
Docker task (healthy, then failing: replaced).
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.docker_env import (
    docker_api,
    ensure_docker,
    remove_scope_containers,
    scope_containers,
)
from tests.support.marathon_procs import MarathonCluster, http_check
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration

HTTPD = ("mkdir -p /www && echo hello-$MESOS_TASK_ID > /www/index.html"
         " && exec httpd -f -p 8080 -h /www")


@pytest.fixture(scope="module")
def docker_marathon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarathonCluster]:
    """Master, two Docker-capable agents and marathon; their containers are removed afterwards."""
    ensure_docker()
    cluster = MarathonCluster(tmp_path_factory.mktemp("marathon-docker"),
                              agent_flags={"containerizers": "docker,process"})
    try:
        yield cluster
    finally:
        cluster.stop()
        for agent in cluster.agents:
            remove_scope_containers(os.path.realpath(agent.work_dir))


@pytest.fixture(scope="module")
def image() -> str:
    """The local busybox test image."""
    return ensure_docker()


def running_containers(cluster: MarathonCluster) -> list[dict[str, Any]]:
    """Running containers of the cluster's agents (by their scope label)."""
    api = docker_api()
    try:
        found = []
        for agent in cluster.agents:
            scope = os.path.realpath(agent.work_dir)
            found += [c for c in scope_containers(api, scope) if c["State"] == "running"]
        return found
    finally:
        api.close()


def fetch(port: int) -> str:
    """GET /index.html from 127.0.0.1:port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2) as resp:
        return resp.read().decode()


def bridge_app(app_id: str, image: str, instances: int) -> dict[str, Any]:
    """busybox httpd on container port 8080, mapped to a host port from the offer."""
    return {
        "id": app_id, "instances": instances, "cpus": 0.1, "mem": 32, "cmd": HTTPD,
        "container": {"type": "DOCKER", "docker": {"image": image},
                      "portMappings": [{"containerPort": 8080, "hostPort": 0, "name": "http"}]},
        "networks": [{"mode": "container/bridge"}],
        "taskKillGracePeriodSeconds": 1,
    }


def test_docker_bridge_app_deploys_scales_and_deletes(docker_marathon: MarathonCluster,
                                                      image: str) -> None:
    """A bridged Docker app: 2 containers serve on host ports; scale to 1; delete: none left."""
    client = docker_marathon.client
    resp = client.request("POST", "/v2/apps", bridge_app("/docker/web", image, 2))
    assert resp.status == 201, resp
    app = resp.json
    assert app["container"]["type"] == "DOCKER"
    assert app["container"]["portMappings"][0]["containerPort"] == 8080
    tasks = client.wait_settled("/docker/web", 2, timeout=60)
    for task in tasks:
        assert len(task["ports"]) == 1, task
        body = wait_for(lambda t=task: fetch(t["ports"][0]), timeout=20, what="httpd answers")
        assert body.strip() == f"hello-{task['id']}"
    containers = wait_for(lambda: len(running_containers(docker_marathon)) == 2 and
                          running_containers(docker_marathon), timeout=20, what="2 containers")
    assert {c["Image"] for c in containers} == {image}
    client.ok("PUT", "/v2/apps/docker/web", {"instances": 1})
    [left] = client.wait_settled("/docker/web", 1, timeout=60)
    assert left["id"] in {t["id"] for t in tasks}
    wait_for(lambda: len(running_containers(docker_marathon)) == 1, timeout=30,
             what="one container after scaling down")
    client.ok("DELETE", "/v2/apps/docker/web")
    wait_for(lambda: client.app_or_none("/docker/web") is None, timeout=30, what="app gone")
    wait_for(lambda: not running_containers(docker_marathon), timeout=30,
             what="no container left running")
    wait_for(lambda: all(docker_marathon.master_task_states().get(t["id"]) == "TASK_KILLED"
                         for t in tasks), timeout=20, what="tasks TASK_KILLED at the master")


def container_commands(cluster: MarathonCluster) -> list[str]:
    """The command lines of the cluster's running containers."""
    api = docker_api()
    try:
        return [" ".join(api.inspect_container(c["Id"])["Config"]["Cmd"] or [])
                for c in running_containers(cluster)]
    finally:
        api.close()


def wait_containers_running(cluster: MarathonCluster, count: int, text: str) -> None:
    """Wait until exactly ``count`` containers run, each with ``text`` in its command."""
    wait_for(lambda: len(cmds := container_commands(cluster)) == count
             and all(text in c for c in cmds), timeout=30,
             what=f"{count} containers running {text!r}")


def test_docker_host_network_app_upgrades_restarts_and_rolls_back(
        docker_marathon: MarathonCluster, image: str) -> None:
    """A HOST-network Docker app: upgrade, restart and rollback each replace every container."""
    client = docker_marathon.client
    app = {"id": "/docker/sleeper", "instances": 2, "cpus": 0.1, "mem": 16,
           "cmd": "exec sleep 600", "portDefinitions": [], "taskKillGracePeriodSeconds": 1,
           "container": {"type": "DOCKER", "docker": {"image": image}}}
    v1 = client.ok("POST", "/v2/apps", app, expect=201)["version"]
    old = client.wait_settled("/docker/sleeper", 2, timeout=60)
    wait_containers_running(docker_marathon, 2, "sleep 600")
    upgrade = client.ok("PUT", "/v2/apps/docker/sleeper", {"cmd": "exec sleep 601"})
    new = client.wait_settled("/docker/sleeper", 2, version=upgrade["version"], timeout=60)
    assert not {t["id"] for t in old} & {t["id"] for t in new}
    wait_containers_running(docker_marathon, 2, "sleep 601")
    restart = client.ok("POST", "/v2/apps/docker/sleeper/restart")
    restarted = client.wait_settled("/docker/sleeper", 2, version=restart["version"],
                                    timeout=60)
    assert not {t["id"] for t in new} & {t["id"] for t in restarted}
    wait_containers_running(docker_marathon, 2, "sleep 601")
    rollback = client.ok("PUT", "/v2/apps/docker/sleeper", {"version": v1})
    back = client.wait_settled("/docker/sleeper", 2, version=rollback["version"], timeout=60)
    assert not {t["id"] for t in restarted} & {t["id"] for t in back}
    wait_containers_running(docker_marathon, 2, "sleep 600")
    assert client.app("/docker/sleeper")["cmd"] == "exec sleep 600"
    client.ok("DELETE", "/v2/apps/docker/sleeper")
    wait_for(lambda: not running_containers(docker_marathon), timeout=30,
             what="no container left running")


def test_docker_app_health_check_passes_then_failing_gets_it_replaced(
        docker_marathon: MarathonCluster, image: str) -> None:
    """A bridged Docker app's MESOS_HTTP check on its host port passes; once failing, replaced."""
    client = docker_marathon.client
    app = bridge_app("/docker/checked", image, 1)
    app["healthChecks"] = [http_check("MESOS_HTTP", path="/index.html",
                                      maxConsecutiveFailures=2, gracePeriodSeconds=5)]
    client.ok("POST", "/v2/apps", app, expect=201)
    [task] = client.wait_settled("/docker/checked", 1, healthy=True, timeout=60)
    [container] = [c for c in running_containers(docker_marathon)
                   if c["Labels"].get("mesoslite.task_id") == task["id"]]
    api = docker_api()
    try:
        exec_id = api.exec_create(container["Id"], ["rm", "/www/index.html"])["Id"]
        api.exec_start(exec_id)
    finally:
        api.close()
    [replacement] = client.wait_tasks("/docker/checked", 1, healthy=True, exclude={task["id"]},
                                      timeout=60)
    assert replacement["id"] != task["id"]
    wait_for(lambda: docker_marathon.master_task_states().get(task["id"]) == "TASK_KILLED",
             timeout=20, what="the unhealthy Docker task TASK_KILLED at the master")
    client.ok("DELETE", "/v2/apps/docker/checked")
    wait_for(lambda: not running_containers(docker_marathon), timeout=30,
             what="no container left running")
