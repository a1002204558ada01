"""Shell tasks confined on a real agent: their user, a clean environment, cgroups.

A real master and agent (as root, on this host's writable cgroup v1 hierarchy, so the
default ``--isolation=auto`` turns the cgroups isolators on) run command tasks from a
real framework: a task with ``user: nobody`` runs as uid 65534 in a sandbox it owns
(mode 0750) and cannot read another task's sandbox; an unknown user fails the task
naming it; the task sees none of the agent's environment; a task over its memory limit
is killed and reported with REASON_CONTAINER_LIMITATION_MEMORY; a task's cgroups carry
its cpu shares, CFS quota, memory and pids limits, feed ``/monitor/statistics`` and are
removed when it ends.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesoslite.isolation.spec import agent_scope
from mesoslite.protocol import (
    CommandInfo,
    ExecutorInfo,
    HealthCheck,
    Reason,
    TaskInfo,
    TaskState,
)
from mesoslite.resources import Resources
from tests.support.cluster_procs import AgentProc, ProcCluster
from tests.support.frameworks import RecordingScheduler, running_framework, shell_task
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration

CGROUP = Path("/sys/fs/cgroup")
MARKER = "isolation-test-marker-7f3a"


def _task(task_id: str, agent_id: str, resources: str, command: str, *, user: str = "",
          env: dict[str, str] | None = None, check: str = "") -> TaskInfo:
    health = HealthCheck(delay_seconds=0.0, interval_seconds=1.0, grace_period_seconds=30.0,
                         command=CommandInfo(value=check)) if check else None
    return TaskInfo(name=task_id, task_id=task_id, agent_id=agent_id,
                    resources=Resources.parse(resources), health_check=health,
                    command=CommandInfo(value=command, user=user, environment=env or {}))


@pytest.fixture
def root() -> Iterator[Path]:
    """A cluster directory every user may traverse (pytest's own tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="mesoslite-isolation-", dir="/tmp"))
    path.chmod(0o755)  # other users must reach their sandboxes
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _read_when(path: Path, needle: str, timeout: float = 60.0) -> str:
    def ready() -> str:
        text = path.read_text() if path.exists() else ""
        return text if needle in text else ""
    return wait_for(ready, timeout=timeout, what=f"{needle!r} in {path}")


def _container_dirs(agent: AgentProc, task_id: str) -> dict[str, Path]:
    cid = agent.sandbox(task_id).resolve().name
    found = {ctl: next(iter((CGROUP / ctl / "mesoslite").glob(f"agent-*/{cid}")), None)
             for ctl in ("cpu", "cpuacct", "memory", "pids")}
    assert all(found.values()), f"cgroups of {cid}: {found}"
    return {ctl: p for ctl, p in found.items() if p is not None}


def test_user_sandbox_and_clean_environment(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``user: nobody`` runs as 65534 in its own 0750 sandbox, cannot read another task's,
    and sees only its own environment (not the agent's secret); an unknown user fails."""
    monkeypatch.setenv("ISOLATION_TEST_VALUE", MARKER)  # the agent inherits it
    with ProcCluster(root / "cluster") as cluster:
        master = cluster.start_master()
        agent = cluster.add_agent("cpus:4;mem:2048;disk:1000")
        scheduler = RecordingScheduler()
        with running_framework(master.address, scheduler, "users") as driver:
            offer = scheduler.take_held(agent.agent_id)
            driver.launch_tasks([offer.id], [
                shell_task("owner", agent.agent_id, "cpus:0.1;mem:64",
                           "echo private > secret; echo done; sleep 120")])
            scheduler.wait_state("owner", TaskState.TASK_RUNNING, timeout=60)
            owner = agent.sandbox("owner").resolve()
            _read_when(owner / "stdout", "done")
            probe = (f"id -u; id -G; cat {owner}/secret; echo cat=$?; "
                     "touch mine && echo wrote; env; sleep 120")
            offer = scheduler.take_held(agent.agent_id)
            driver.launch_tasks([offer.id], [
                _task("nobody", agent.agent_id, "cpus:0.1;mem:64", probe, user="nobody",
                      env={"APP_SETTING": "visible"},
                      check='test "$(id -u)" = 65534 && test -w . && test "$USER" = nobody'),
                _task("ghost", agent.agent_id, "cpus:0.1;mem:64", "true",
                      user="no-such-user-zq")])
            failed = scheduler.wait_state("ghost", TaskState.TASK_FAILED, timeout=60)
            assert "no-such-user-zq" in failed.message
            assert failed.reason is Reason.REASON_CONTAINER_LAUNCH_FAILED
            assert TaskState.TASK_RUNNING not in scheduler.states("ghost")

            scheduler.wait_state("nobody", TaskState.TASK_RUNNING, timeout=60)
            sandbox = agent.sandbox("nobody").resolve()
            out = _read_when(sandbox / "stdout", "wrote")
            lines = out.splitlines()
            assert lines[0] == "65534", out
            assert "cat=1" in lines and "private" not in lines, out
            info = sandbox.stat()
            assert info.st_uid == 65534 and stat.S_IMODE(info.st_mode) == 0o750
            assert stat.S_IMODE(owner.stat().st_mode) == 0o750 and owner.stat().st_uid == 0
            assert (sandbox / "mine").stat().st_uid == 65534

            env = dict(line.split("=", 1) for line in lines if "=" in line and
                       not line.startswith("cat="))
            assert MARKER not in out
            assert "ISOLATION_TEST_VALUE" not in env and "PYTHONPATH" not in env
            assert env["USER"] == "nobody" and env["HOME"] == "/nonexistent"
            assert env["APP_SETTING"] == "visible" and env["MESOS_TASK_ID"] == "nobody"
            assert env["MESOS_SANDBOX"] == str(sandbox) or \
                Path(env["MESOS_SANDBOX"]).resolve() == sandbox
            assert not any(k.startswith("MESOSLITE_") for k in env), sorted(env)
            assert "PATH" in env and "MESOS_FRAMEWORK_ID" in env

            def healthy() -> bool:  # the command check runs as the task's user too
                return any(s.healthy for s in scheduler.statuses("nobody"))
            wait_for(healthy, timeout=60, what="'nobody' reported healthy")


def test_cgroups_limits_statistics_and_cleanup(root: Path) -> None:
    """A task's cgroups hold it with cpu.shares = cpus x 1024, a CFS quota, its memory and
    pids limits; /monitor/statistics reads them; they are removed when the task ends."""
    with ProcCluster(root / "cluster") as cluster:
        master = cluster.start_master()
        agent = cluster.add_agent("cpus:4;mem:2048;disk:1000", cgroups_enable_cfs="true",
                                  cgroups_pids_limit=100)
        scheduler = RecordingScheduler()
        with running_framework(master.address, scheduler, "cgroups") as driver:
            offer = scheduler.take_held(agent.agent_id)
            driver.launch_tasks([offer.id], [shell_task(
                "busy", agent.agent_id, "cpus:0.5;mem:96",
                "sh -c 'while :; do :; done' & echo started; sleep 120", grace=0.5)])
            scheduler.wait_state("busy", TaskState.TASK_RUNNING, timeout=60)
            _read_when(agent.sandbox("busy") / "stdout", "started")
            dirs = _container_dirs(agent, "busy")
            assert (dirs["cpu"] / "cpu.shares").read_text().strip() == "512"
            assert (dirs["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
            assert (dirs["cpu"] / "cpu.cfs_period_us").read_text().strip() == "100000"
            limit = 96 * 1024 * 1024
            assert int((dirs["memory"] / "memory.limit_in_bytes").read_text()) == limit
            assert (dirs["pids"] / "pids.max").read_text().strip() == "100"
            procs = (dirs["memory"] / "cgroup.procs").read_text().split()
            assert len(procs) >= 3, procs  # sh, the busy loop, sleep: all born inside

            def measured() -> dict[str, object] | None:
                for entry in agent.get("/monitor/statistics"):
                    stats = entry["statistics"]
                    if entry["executor_id"] == "busy" and stats["cpus_user_time_secs"] > 0.2:
                        return dict(stats)
                return None

            stats = wait_for(measured, timeout=60, what="cgroup usage of 'busy'")
            assert stats["mem_limit_bytes"] == limit
            assert isinstance(stats["mem_rss_bytes"], int) and stats["mem_rss_bytes"] > 0
            assert "cpus_nr_throttled" in stats and "mem_total_bytes" in stats
            assert isinstance(stats["processes"], int) and stats["processes"] >= 3

            driver.kill_task("busy")
            scheduler.wait_state("busy", TaskState.TASK_KILLED, timeout=60)
            wait_for(lambda: not any(p.exists() for p in dirs.values()), timeout=30,
                     what="the task's cgroups removed")
            for pid in procs:
                assert not os.path.exists(f"/proc/{pid}") or \
                    "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_memory_limit_kills_task(root: Path) -> None:
    """A task allocating 200 MB with mem 32 is OOM-killed: TASK_FAILED with
    REASON_CONTAINER_LIMITATION_MEMORY and a message saying the memory limit was exceeded;
    a task whose shell survives its OOM-killed child is killed at once, the same way."""
    hog = "python3 -c 'b = bytearray(200 * 1024 * 1024); import time; time.sleep(30)'"
    with ProcCluster(root / "cluster") as cluster:
        master = cluster.start_master()
        agent = cluster.add_agent("cpus:4;mem:2048;disk:1000")
        scheduler = RecordingScheduler()
        with running_framework(master.address, scheduler, "oom") as driver:
            offer = scheduler.take_held(agent.agent_id)
            driver.launch_tasks([offer.id], [
                shell_task("hog", agent.agent_id, "cpus:0.2;mem:32", hog),
                # The shell outlives its OOM-killed child: the whole task is killed at once
                # (the deadline below is shorter than the sleep).
                shell_task("survivor", agent.agent_id, "cpus:0.2;mem:32",
                           f"{hog}; echo survived; sleep 300")])
            for task_id in ("hog", "survivor"):
                failed = scheduler.wait_state(task_id, TaskState.TASK_FAILED, timeout=90)
                assert failed.reason is Reason.REASON_CONTAINER_LIMITATION_MEMORY, failed
                assert "Memory limit exceeded" in failed.message and "32MB" in failed.message


def test_custom_executor_runs_as_its_user(root: Path) -> None:
    """A custom executor with ``user: nobody`` runs as 65534 in a sandbox it owns."""
    with ProcCluster(root / "cluster") as cluster:
        master = cluster.start_master()
        agent = cluster.add_agent("cpus:4;mem:2048;disk:1000")
        scheduler = RecordingScheduler()
        with running_framework(master.address, scheduler, "custom") as driver:
            offer = scheduler.take_held(agent.agent_id)
            executor = ExecutorInfo(executor_id="exec-nobody", resources=Resources.parse(
                "cpus:0.1;mem:32"), command=CommandInfo(
                    value="id -u > who; touch mine; sleep 120", user="nobody"))
            task = TaskInfo(name="t", task_id="t", agent_id=agent.agent_id,
                            resources=Resources.parse("cpus:0.1;mem:32"), executor=executor)
            driver.launch_tasks([offer.id], [task])
            sandbox = wait_for(lambda: next(iter(agent.work_dir.glob(
                "agents/*/frameworks/*/executors/exec-nobody/runs/latest")), None),
                timeout=60, what="the executor's sandbox").resolve()
            assert _read_when(sandbox / "who", "\n").strip() == "65534"
            assert sandbox.stat().st_uid == 65534
            assert stat.S_IMODE(sandbox.stat().st_mode) == 0o750
            wait_for(lambda: (sandbox / "mine").exists(), timeout=30, what="mine written")
            assert (sandbox / "mine").stat().st_uid == 65534


def test_disk_quota_enforced(root: Path) -> None:
    """posix/disk with --enforce_container_disk_quota: a task writing 5 MB with disk 1 is
    killed, TASK_FAILED with REASON_CONTAINER_LIMITATION_DISK naming usage and quota."""
    with ProcCluster(root / "cluster") as cluster:
        master = cluster.start_master()
        agent = cluster.add_agent("cpus:4;mem:2048;disk:1000",
                                  isolation="cgroups/cpu,cgroups/mem,posix/disk",
                                  enforce_container_disk_quota="true",
                                  container_disk_watch_interval="1secs")
        scheduler = RecordingScheduler()
        with running_framework(master.address, scheduler, "disk") as driver:
            offer = scheduler.take_held(agent.agent_id)
            driver.launch_tasks([offer.id], [
                shell_task("filler", agent.agent_id, "cpus:0.1;mem:32;disk:1",
                           "head -c 5000000 /dev/zero > big; sleep 300"),
                shell_task("small", agent.agent_id, "cpus:0.1;mem:32;disk:10",
                           "head -c 100000 /dev/zero > small; sleep 300")])
            failed = scheduler.wait_state("filler", TaskState.TASK_FAILED, timeout=90)
            assert failed.reason is Reason.REASON_CONTAINER_LIMITATION_DISK, failed
            assert "exceeds quota (1MB)" in failed.message, failed.message
            assert scheduler.states("small")[-1] == TaskState.TASK_RUNNING


def test_unknown_cgroups_removed_at_start(root: Path) -> None:
    """A cgroup in the agent's own level that no task of its owns (a crash left it) is
    destroyed when the agent starts: its process killed, its directories removed."""
    work_dir = (root / "cluster" / "agent-0").resolve()
    scope = agent_scope(str(work_dir))
    stray = {ctl: CGROUP / ctl / "mesoslite" / scope / "stray-container"
             for ctl in ("memory", "pids")}
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        for path in stray.values():
            path.mkdir(parents=True)
            (path / "cgroup.procs").write_text(str(sleeper.pid))
        with ProcCluster(root / "cluster") as cluster:
            cluster.start_master()
            agent = cluster.add_agent("cpus:1;mem:512")
            assert agent.work_dir.resolve() == work_dir
            wait_for(lambda: not any(p.exists() for p in stray.values()), timeout=30,
                     what="the stray cgroups removed")
            assert sleeper.wait(timeout=30) == -9
            assert "Removed the cgroups of container stray-container" in agent.proc.output()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        for path in stray.values():
            if path.exists():
                path.rmdir()


def test_without_cgroups_warns_and_limits_data(root: Path) -> None:
    """Where no cgroup hierarchy is writable, --isolation=auto warns at start and gives
    posix/mem: the task's RLIMIT_DATA is its mem."""
    with ProcCluster(root / "cluster") as cluster:
        master = cluster.start_master()
        agent = cluster.add_agent("cpus:1;mem:512", cgroups_hierarchy=root / "no-cgroups")
        assert "no writable cgroup hierarchy" in agent.proc.output()
        assert "isolation posix/cpu,posix/mem" in agent.proc.output()
        scheduler = RecordingScheduler()
        with running_framework(master.address, scheduler, "rlimits") as driver:
            offer = scheduler.take_held(agent.agent_id)
            driver.launch_tasks([offer.id], [shell_task(
                "limited", agent.agent_id, "cpus:0.1;mem:64",
                "sleep 1; grep 'Max data size' /proc/$$/limits")])
            scheduler.wait_state("limited", TaskState.TASK_FINISHED, timeout=60)
            line = (agent.sandbox("limited") / "stdout").read_text().split()
            assert line[3:5] == [str(64 << 20), str(64 << 20)], line
