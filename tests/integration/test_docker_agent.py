"""Docker tasks end to end: an SDK framework, an in-process master and a Docker-enabled agent.

Each test runs one in-process cluster (``mesoslite_cluster``) whose agent has
``--containerizers=docker,process`` and a work directory under the test's
``tmp_path``; that work directory is the agent's Docker scope, and every
container labelled with it is force-removed afterwards.  The engine and the
busybox test image come from scripts/ensure-docker.sh.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from mesoslite.protocol import (
    CommandInfo,
    ContainerInfo,
    DockerInfo,
    KillPolicy,
    Reason,
    TaskInfo,
    TaskState,
)
from mesoslite.resources import Resources
from tests.support import promtext
from tests.support.docker_env import (
    LocalRegistry,
    ensure_docker,
    remove_image,
    remove_scope_containers,
)
from tests.support.frameworks import RecordingScheduler, running_framework, shell_task
from tests.support.procs import free_port, wait_for

if TYPE_CHECKING:
    from mesoslite.testing.pytest_plugin import ClusterHandle

pytest_plugins = ["mesoslite.testing.pytest_plugin"]
pytestmark = pytest.mark.integration

RESOURCES = "cpus:0.5;mem:64"
S = TaskState


@pytest.fixture(scope="module")
def docker_engine() -> str:
    """The test image, once the engine answers (scripts/ensure-docker.sh; failure fails)."""
    return ensure_docker()


@pytest.fixture
def mesoslite_cluster_options(docker_engine: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """One Docker-enabled agent under ``tmp_path``; its containers are removed afterwards."""
    work = tmp_path / "cluster"
    yield {
        "agents": 1,
        "agent_resources": "cpus:4;mem:1024",
        "work_dir": str(work),
        "agent_config": {"containerizers": "docker,process"},
    }
    for agent_dir in sorted(work.glob("agent-*")):
        remove_scope_containers(os.path.realpath(agent_dir))


def docker_task(task_id: str, agent_id: str, command: str, image: str,
                grace: float | None = None) -> TaskInfo:
    """A command task run in a Docker container of ``image`` with ``/bin/sh -c``."""
    return TaskInfo(
        name=task_id, task_id=task_id, agent_id=agent_id, resources=Resources.parse(RESOURCES),
        command=CommandInfo(value=command),
        container=ContainerInfo(type="DOCKER", docker=DockerInfo(image=image)),
        kill_policy=KillPolicy(grace) if grace is not None else None,
    )


def launch(scheduler: RecordingScheduler, driver: Any, agent: Any, task_ids: list[str],
           make: Any) -> None:
    """Take an offer of ``agent`` and launch ``make(task_id, agent_id)`` for each id."""
    offer = scheduler.take_held(agent.agent_id)
    driver.launch_tasks([offer.id], [make(tid, agent.agent_id) for tid in task_ids])


def agent_json(agent: Any, path: str) -> Any:
    """GET ``path`` from an agent's HTTP server."""
    url = f"http://127.0.0.1:{agent.http_port}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def sandbox_file(agent: Any, task_id: str, name: str) -> str:
    """The content of a file in a task's (only) sandbox."""
    found = list(Path(agent.work_dir).glob(f"**/executors/{task_id}/runs/latest/{name}"))
    assert len(found) == 1, f"sandbox file {name} of {task_id}: found {found}"
    return found[0].read_text()


def test_docker_task_finishes_with_its_output_in_the_sandbox(
    mesoslite_cluster: ClusterHandle, docker_engine: str
) -> None:
    """A Docker task exits 0: STARTING, RUNNING, FINISHED; stdout in the sandbox; daemon healthy."""
    agent = mesoslite_cluster.agents[0]
    state = agent_json(agent, "/state")
    assert state["containerizers"]["docker"]["healthy"] is True
    scheduler = RecordingScheduler()
    with running_framework(mesoslite_cluster.master_address, scheduler, "docker-ok") as driver:
        launch(scheduler, driver, agent, ["hello"], lambda tid, aid: docker_task(
            tid, aid, "echo hello-from-docker; exit 0", docker_engine))
        scheduler.wait_state("hello", S.TASK_FINISHED, timeout=60)
        assert scheduler.states("hello") == [S.TASK_STARTING, S.TASK_RUNNING, S.TASK_FINISHED]
    assert "hello-from-docker" in sandbox_file(agent, "hello", "stdout")


def test_docker_task_exiting_1_fails_with_the_code_in_the_message(
    mesoslite_cluster: ClusterHandle, docker_engine: str
) -> None:
    """A Docker task exits 1: TASK_FAILED whose message names the exit status 1."""
    agent = mesoslite_cluster.agents[0]
    scheduler = RecordingScheduler()
    with running_framework(mesoslite_cluster.master_address, scheduler, "docker-fail") as driver:
        launch(scheduler, driver, agent, ["bad"], lambda tid, aid: docker_task(
            tid, aid, "echo failing; exit 1", docker_engine))
        failed = scheduler.wait_state("bad", S.TASK_FAILED, timeout=60)
        assert scheduler.states("bad") == [S.TASK_STARTING, S.TASK_RUNNING, S.TASK_FAILED]
    assert "status 1" in failed.message, failed.message
    assert failed.reason is Reason.REASON_COMMAND_EXECUTOR_FAILED


def test_docker_task_with_an_unpullable_image_fails_with_pull_failed(
    mesoslite_cluster: ClusterHandle,
) -> None:
    """An image no registry serves: TASK_FAILED with REASON_CONTAINER_PULL_FAILED and why."""
    agent = mesoslite_cluster.agents[0]
    image = f"127.0.0.1:{free_port()}/mesoslite-test/missing:1"
    scheduler = RecordingScheduler()
    with running_framework(mesoslite_cluster.master_address, scheduler, "docker-pull") as driver:
        launch(scheduler, driver, agent, ["nopull"], lambda tid, aid: docker_task(
            tid, aid, "true", image))
        failed = scheduler.wait_state("nopull", S.TASK_FAILED, timeout=60)
        assert scheduler.states("nopull") == [S.TASK_STARTING, S.TASK_FAILED]
    assert failed.reason is Reason.REASON_CONTAINER_PULL_FAILED
    assert image in failed.message, failed.message


def test_killing_a_running_docker_task_reports_killing_then_killed(
    mesoslite_cluster: ClusterHandle, docker_engine: str
) -> None:
    """``sleep 600`` in a container: measured on /monitor/statistics; a kill ends it KILLED."""
    agent = mesoslite_cluster.agents[0]
    scheduler = RecordingScheduler()
    with running_framework(mesoslite_cluster.master_address, scheduler, "docker-kill",
                           capabilities=("TASK_KILLING_STATE",)) as driver:
        launch(scheduler, driver, agent, ["sleeper"], lambda tid, aid: docker_task(
            tid, aid, "sleep 600", docker_engine, grace=1.0))
        scheduler.wait_state("sleeper", S.TASK_RUNNING, timeout=60)
        stats = wait_for(
            lambda: [e for e in agent_json(agent, "/monitor/statistics")
                     if e["executor_id"] == "sleeper"],
            timeout=20, what="statistics of the docker task")
        assert stats[0]["statistics"]["processes"] >= 1
        # The engine's memory cgroup reports page cache; /metrics shows it per task.
        assert stats[0]["statistics"]["mem_cache_bytes"] >= 0
        url = f"http://127.0.0.1:{agent.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        cache = promtext.series(promtext.parse(text), "mesoslite_container_memory_cache_bytes",
                                task_id="sleeper", executor_id="sleeper")
        assert len(cache) == 1
        driver.kill_task("sleeper", agent.agent_id)
        killed = scheduler.wait_state("sleeper", S.TASK_KILLED, timeout=30)
        assert scheduler.states("sleeper") == [
            S.TASK_STARTING, S.TASK_RUNNING, S.TASK_KILLING, S.TASK_KILLED]
    assert killed.message.startswith("Container"), killed.message


def test_agent_without_docker_fails_docker_tasks_and_still_runs_shell_tasks(
    mesoslite_cluster: ClusterHandle, docker_engine: str
) -> None:
    """containerizers=process: a Docker task fails naming --containerizers; a shell task runs."""
    plain = mesoslite_cluster.add_agent("cpus:2;mem:512", containerizers="process")
    state = agent_json(plain, "/state")
    assert state["containerizers"] == {}
    scheduler = RecordingScheduler()
    with running_framework(mesoslite_cluster.master_address, scheduler, "no-docker") as driver:
        offer = scheduler.take_held(plain.agent_id)
        driver.launch_tasks([offer.id], [
            docker_task("in-docker", plain.agent_id, "true", docker_engine),
            shell_task("in-shell", plain.agent_id, RESOURCES, "echo plain-shell"),
        ])
        failed = scheduler.wait_state("in-docker", S.TASK_FAILED, timeout=30)
        scheduler.wait_state("in-shell", S.TASK_FINISHED, timeout=30)
    assert failed.reason is Reason.REASON_CONTAINER_LAUNCH_FAILED
    assert "--containerizers" in failed.message, failed.message


def _tasks_in(doc: Any) -> Iterator[dict[str, Any]]:
    """Every task object in an agent /state document."""
    for fw in doc.get("frameworks", []):
        for ex in fw.get("executors", []):
            yield from ex.get("tasks", [])


def test_pull_progress_is_on_state_and_the_running_message_names_the_image(
    mesoslite_cluster: ClusterHandle,
) -> None:
    """A slow pull: /state shows the task's pull progress; RUNNING says 'pulled image X'."""
    agent = mesoslite_cluster.agents[0]
    scheduler = RecordingScheduler()
    with LocalRegistry({"mesoslite-test/slow:1"}, rate=400_000) as registry:
        image = registry.image("mesoslite-test/slow:1")
        try:
            with running_framework(mesoslite_cluster.master_address, scheduler,
                                   "docker-pull-progress") as driver:
                launch(scheduler, driver, agent, ["puller"], lambda tid, aid: docker_task(
                    tid, aid, "echo pulled-ok", image))
                progress = wait_for(
                    lambda: [t["progress"] for t in _tasks_in(agent_json(agent, "/state"))
                             if t["id"] == "puller" and "progress" in t],
                    timeout=30, what="pull progress of the task on /state")
                assert image in progress[0], progress
                running = scheduler.wait_state("puller", S.TASK_RUNNING, timeout=60)
                scheduler.wait_state("puller", S.TASK_FINISHED, timeout=60)
        finally:
            remove_image(image)
    assert f"pulled image {image}" in running.message, running.message


def test_unreachable_daemon_fails_docker_tasks_with_its_error(
    mesoslite_cluster: ClusterHandle, tmp_path: Path, docker_engine: str
) -> None:
    """docker_host points nowhere: /state says unhealthy; a Docker task fails with the reason."""
    socket_path = tmp_path / "no-docker.sock"
    agent = mesoslite_cluster.add_agent("cpus:2;mem:512", containerizers="docker,process",
                                        docker_host=f"unix://{socket_path}")
    health = agent_json(agent, "/state")["containerizers"]["docker"]
    assert health["healthy"] is False and "unreachable" in health["message"], health
    scheduler = RecordingScheduler()
    with running_framework(mesoslite_cluster.master_address, scheduler, "docker-down") as driver:
        launch(scheduler, driver, agent, ["nodaemon"], lambda tid, aid: docker_task(
            tid, aid, "true", docker_engine))
        failed = scheduler.wait_state("nodaemon", S.TASK_FAILED, timeout=30)
    assert failed.reason is Reason.REASON_CONTAINER_LAUNCH_FAILED
    assert "unreachable" in failed.message, failed.message


def _checked(task: TaskInfo, command: str, failures: int) -> TaskInfo:
    """``task`` with a fast COMMAND health check."""
    from mesoslite.protocol import HealthCheck

    check = HealthCheck(type="COMMAND", command=CommandInfo(value=command), delay_seconds=0,
                        interval_seconds=0.3, timeout_seconds=5, grace_period_seconds=0,
                        consecutive_failures=failures)
    return attrs.evolve(task, health_check=check)


def _health_updates(scheduler: RecordingScheduler, task_id: str) -> list[Any]:
    return [s for s in scheduler.statuses(task_id) if s.healthy is not None]


def test_docker_command_health_check_runs_inside_the_container(
    mesoslite_cluster: ClusterHandle, docker_engine: str
) -> None:
    """A COMMAND check on a file only the container has → TASK_RUNNING healthy=true."""
    agent = mesoslite_cluster.agents[0]
    scheduler = RecordingScheduler()
    with running_framework(mesoslite_cluster.master_address, scheduler, "docker-hc") as driver:
        launch(scheduler, driver, agent, ["hc"], lambda tid, aid: _checked(docker_task(
            tid, aid, "touch /inside-only; exec sleep 600", docker_engine),
            "test -f /inside-only", 3))
        healthy = wait_for(lambda: [s for s in _health_updates(scheduler, "hc")
                                    if s.healthy is True], timeout=60, what="healthy=true")
        assert healthy[0].state is S.TASK_RUNNING
        assert healthy[0].reason is Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
        driver.kill_task("hc", agent.agent_id)
        scheduler.wait_state("hc", S.TASK_KILLED, timeout=60)


def test_docker_failing_health_check_kills_the_task_unhealthy(
    mesoslite_cluster: ClusterHandle, docker_engine: str
) -> None:
    """A COMMAND check that keeps failing → healthy=false, then TASK_KILLED unhealthy."""
    agent = mesoslite_cluster.agents[0]
    scheduler = RecordingScheduler()
    with running_framework(mesoslite_cluster.master_address, scheduler, "docker-hc2") as driver:
        launch(scheduler, driver, agent, ["sick"], lambda tid, aid: _checked(docker_task(
            tid, aid, "exec sleep 600", docker_engine, grace=1.0), "exit 1", 2))
        killed = scheduler.wait_state("sick", S.TASK_KILLED, timeout=60)
    assert killed.healthy is False
    assert killed.reason is Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
    assert "health" in killed.message
    assert any(s.healthy is False and s.state is S.TASK_RUNNING
               for s in _health_updates(scheduler, "sick"))
