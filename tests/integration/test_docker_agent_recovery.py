"""Docker tasks across an agent restart, with real processes: a master, a Docker-enabled agent
killed with SIGKILL and started again on the same work directory, and an SDK framework.

The agent's work directory is its Docker scope; every container labelled with it is
force-removed afterwards.  The engine and the busybox test image come from
scripts/ensure-docker.sh (a failure to provide them fails the tests).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesoslite.protocol import (
    CommandInfo,
    ContainerInfo,
    DockerInfo,
    FrameworkInfo,
    Reason,
    TaskInfo,
    TaskState,
)
from mesoslite.resources import Resources
from mesoslite.scheduler import SchedulerDriver
from tests.support.cluster_procs import AgentProc, MasterProc, ProcCluster
from tests.support.docker_env import (
    SCOPE_LABEL,
    docker_api,
    ensure_docker,
    remove_scope_containers,
    scope_containers,
)
from tests.support.frameworks import RecordingScheduler
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration

RESOURCES = "cpus:4;mem:1024;disk:1000;ports:[31000-31010]"
TASK = "cpus:0.1;mem:32"
DOCKER_FLAGS = {"containerizers": "docker,process"}
S = TaskState


@pytest.fixture(scope="module")
def docker_engine() -> str:
    """The test image, once the engine answers (scripts/ensure-docker.sh; failure fails)."""
    return ensure_docker()


@pytest.fixture
def cluster(docker_engine: str, tmp_path: Path) -> Iterator[ProcCluster]:
    """A process cluster under ``tmp_path``; its agents' containers are removed afterwards."""
    root = tmp_path / "cluster"
    procs = ProcCluster(root)
    try:
        yield procs
    finally:
        procs.stop()
        for agent_dir in sorted(root.glob("agent-*")):
            if agent_dir.is_dir():
                remove_scope_containers(os.path.realpath(agent_dir))


def docker_task(task_id: str, agent_id: str, command: str, image: str) -> TaskInfo:
    """A command task run with ``/bin/sh -c`` in a Docker container of ``image``."""
    return TaskInfo(
        name=task_id, task_id=task_id, agent_id=agent_id, resources=Resources.parse(TASK),
        command=CommandInfo(value=command),
        container=ContainerInfo(type="DOCKER", docker=DockerInfo(image=image)),
    )


def start_framework(master: MasterProc, name: str) -> tuple[RecordingScheduler, SchedulerDriver]:
    """A checkpointing framework (its tasks survive an agent restart)."""
    scheduler = RecordingScheduler()
    info = FrameworkInfo(user="", name=name, checkpoint=True, failover_timeout=60.0)
    driver = SchedulerDriver(scheduler, info, master.address, registration_backoff_factor=0.2)
    driver.start()
    return scheduler, driver


def task_container(agent: AgentProc, task_id: str) -> dict[str, Any]:
    """The Docker container summary of ``task_id`` on ``agent`` (exactly one must exist)."""
    scope = os.path.realpath(agent.work_dir)
    found = [c for c in scope_containers(docker_api(), scope)
             if c["Labels"].get("mesoslite.task_id") == task_id]
    assert len(found) == 1, f"containers of task {task_id}: {found}"
    return found[0]


def restart(cluster: ProcCluster, agent: AgentProc) -> AgentProc:
    """Start a SIGKILLed ``agent`` again on its work directory; wait until it is registered."""
    assert cluster.master is not None
    again = AgentProc(cluster.master, agent.work_dir,
                      cluster.root / f"{agent.work_dir.name}-restart.log",
                      {"resources": RESOURCES, **DOCKER_FLAGS})
    cluster.agents.append(again)
    return again


def orphan_container(scope: str, image: str, name: str) -> str:
    """A container carrying the agent's labels but no task it knows of; returns its Docker id."""
    api = docker_api()
    created = api.create_container(
        image, ["sleep", "600"], name=name,
        labels={SCOPE_LABEL: scope, "mesoslite.container_id": uuid.uuid4().hex,
                "mesoslite.task_id": "nobody-knows", "mesoslite.sandbox": "/nonexistent"},
    )
    api.start(created["Id"])
    return str(created["Id"])


def test_running_container_is_reattached_after_agent_kill9_and_then_killable(
    cluster: ProcCluster, docker_engine: str
) -> None:
    """kill -9, restart: same id and container, logs appended once, orphan gone, then KILLED."""
    master = cluster.start_master()
    agent = cluster.add_agent(RESOURCES, **DOCKER_FLAGS)
    scheduler, driver = start_framework(master, "docker-recovery")
    api = docker_api()
    try:
        offer = scheduler.take_held(agent.agent_id)
        driver.launch_tasks([offer.id], [docker_task(
            "keeper", agent.agent_id,
            "echo before; while [ ! -e $MESOS_SANDBOX/go ]; do sleep 0.05; done; echo after; "
            "trap 'echo terminated; exit 0' TERM; while true; do sleep 0.1; done",
            docker_engine)])
        scheduler.wait_state("keeper", S.TASK_RUNNING, timeout=60)
        box = agent.sandbox("keeper")
        wait_for(lambda: (box / "stdout").read_text() == "before\n", timeout=20,
                 what="first output line in the sandbox")
        before = task_container(agent, "keeper")
        started_at = api.inspect_container(before["Id"])["State"]["StartedAt"]

        agent.kill9()
        (box / "go").write_text("")  # the container writes more while nobody follows it
        orphan = orphan_container(os.path.realpath(agent.work_dir), docker_engine,
                                  f"mesoslite-test-orphan-{uuid.uuid4().hex[:8]}")
        again = restart(cluster, agent)

        assert again.agent_id == agent.agent_id
        state = api.inspect_container(before["Id"])["State"]
        assert state["Running"] and state["StartedAt"] == started_at  # not restarted
        wait_for(lambda: orphan not in {c["Id"] for c in api.containers(all=True)},
                 timeout=20, what="orphan container removed")
        wait_for(lambda: (box / "stdout").read_text() == "before\nafter\n", timeout=20,
                 what="output written while the agent was down, appended once")
        assert "keeper" in master.tasks_in_state(scheduler.framework_id, "TASK_RUNNING")
        driver.reconcile_tasks(["keeper"])
        wait_for(lambda: any(s.state is S.TASK_RUNNING and s.reason is Reason.REASON_RECONCILIATION
                             for s in scheduler.statuses("keeper")),
                 timeout=20, what="keeper RUNNING on reconciliation")
        assert set(scheduler.states("keeper")) == {S.TASK_STARTING, S.TASK_RUNNING}

        driver.kill_task("keeper", agent.agent_id)
        killed = scheduler.wait_state("keeper", S.TASK_KILLED, timeout=30)
        assert killed.message.startswith("Container"), killed.message
        wait_for(lambda: (box / "stdout").read_text() == "before\nafter\nterminated\n",
                 timeout=10, what="the SIGTERM trap's output")
        wait_for(lambda: before["Id"] not in {c["Id"] for c in api.containers(all=True)},
                 timeout=20, what="killed container removed")
    finally:
        driver.stop()
        driver.join()


def test_containers_that_exited_while_the_agent_was_down_report_their_exit_status(
    cluster: ProcCluster, docker_engine: str
) -> None:
    """Containers ending in the outage: exit 0 → TASK_FINISHED, exit 3 → TASK_FAILED (code 3)."""
    master = cluster.start_master()
    agent = cluster.add_agent(RESOURCES, **DOCKER_FLAGS)
    scheduler, driver = start_framework(master, "docker-exit-while-down")
    api = docker_api()
    wait_go = "while [ ! -e $MESOS_SANDBOX/go ]; do sleep 0.05; done"
    try:
        offer = scheduler.take_held(agent.agent_id)
        driver.launch_tasks([offer.id], [
            docker_task("ok", agent.agent_id, f"{wait_go}; echo done-ok; exit 0", docker_engine),
            docker_task("bad", agent.agent_id, f"{wait_go}; echo done-bad; exit 3", docker_engine),
        ])
        for tid in ("ok", "bad"):
            scheduler.wait_state(tid, S.TASK_RUNNING, timeout=60)
        ids = {tid: task_container(agent, tid)["Id"] for tid in ("ok", "bad")}
        boxes = {tid: agent.sandbox(tid) for tid in ("ok", "bad")}

        agent.kill9()
        for box in boxes.values():
            (box / "go").write_text("")
        wait_for(lambda: not any(api.inspect_container(i)["State"]["Running"]
                                 for i in ids.values()),
                 timeout=20, what="both containers exited while the agent is down")
        assert scheduler.first("ok", S.TASK_FINISHED) is None
        again = restart(cluster, agent)
        assert again.agent_id == agent.agent_id

        finished = scheduler.wait_state("ok", S.TASK_FINISHED, timeout=30)
        failed = scheduler.wait_state("bad", S.TASK_FAILED, timeout=30)
        assert "status 0" in finished.message, finished.message
        assert "status 3" in failed.message, failed.message
        assert failed.reason is Reason.REASON_COMMAND_EXECUTOR_FAILED
        assert scheduler.states("ok") == [S.TASK_STARTING, S.TASK_RUNNING, S.TASK_FINISHED]
        assert scheduler.states("bad") == [S.TASK_STARTING, S.TASK_RUNNING, S.TASK_FAILED]
        assert (boxes["ok"] / "stdout").read_text() == "done-ok\n"
        assert (boxes["bad"] / "stdout").read_text() == "done-bad\n"
        wait_for(lambda: not set(ids.values()) & {c["Id"] for c in api.containers(all=True)},
                 timeout=20, what="ended containers removed")
    finally:
        driver.stop()
        driver.join()


def test_orphan_container_with_the_agents_labels_is_removed_at_start(
    cluster: ProcCluster, docker_engine: str
) -> None:
    """An unknown container labelled with this agent's scope is removed at start; others stay."""
    master = cluster.start_master()
    work = cluster.root / "agent-0"
    work.mkdir(parents=True)
    scope = os.path.realpath(work)
    suffix = uuid.uuid4().hex[:8]
    orphan = orphan_container(scope, docker_engine, f"mesoslite-test-orphan-{suffix}")
    neighbour = orphan_container(scope + "-neighbour", docker_engine,
                                 f"mesoslite-test-neighbour-{suffix}")
    api = docker_api()
    try:
        agent = cluster.add_agent(RESOURCES, **DOCKER_FLAGS)
        assert agent.work_dir == work
        wait_for(lambda: orphan not in {c["Id"] for c in api.containers(all=True)},
                 timeout=20, what="orphan container removed")
        assert api.inspect_container(neighbour)["State"]["Running"]
        assert [s["id"] for s in master.get("/slaves")["slaves"]] == [agent.agent_id]
    finally:
        remove_scope_containers(scope + "-neighbour")


def test_docker_tasks_fail_with_the_reason_when_the_daemon_is_unreachable_after_restart(
    cluster: ProcCluster, docker_engine: str, tmp_path: Path
) -> None:
    """Restarted with an unreachable daemon: same agent id; the Docker task FAILED, saying why."""
    master = cluster.start_master()
    agent = cluster.add_agent(RESOURCES, **DOCKER_FLAGS)
    scheduler, driver = start_framework(master, "docker-daemon-gone")
    try:
        offer = scheduler.take_held(agent.agent_id)
        driver.launch_tasks([offer.id], [docker_task("stranded", agent.agent_id, "sleep 600",
                                                     docker_engine)])
        scheduler.wait_state("stranded", S.TASK_RUNNING, timeout=60)
        agent.kill9()
        again = AgentProc(master, agent.work_dir, cluster.root / "agent-0-restart.log",
                          {"resources": RESOURCES, **DOCKER_FLAGS,
                           "docker_host": f"unix://{tmp_path / 'no-docker.sock'}"})
        cluster.agents.append(again)
        assert again.agent_id == agent.agent_id
        failed = scheduler.wait_state("stranded", S.TASK_FAILED, timeout=30)
        assert "was gone when the agent restarted" in failed.message, failed.message
        assert "unreachable" in failed.message, failed.message
        assert failed.reason is Reason.REASON_EXECUTOR_TERMINATED
    finally:
        driver.stop()
        driver.join()
