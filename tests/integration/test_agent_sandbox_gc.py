"""Sandbox garbage collection by disk headroom on a real, small tmpfs.

A real master and a real agent whose work directory is a 16 MiB tmpfs mounted by the test
(these machines run as root), ``--gc_delay`` one week and ``--gc_disk_headroom`` 0.5: a
small completed sandbox stays (tracked, pending) while the disk is nearly empty; once tasks
fill the disk past half, every completed sandbox is removed at once — never the running
task's — the removed executors leave ``/state`` and ``/files`` says the sandbox was
garbage collected.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesoslite.protocol import TaskState
from tests.support.cluster_procs import AgentProc, ProcCluster, http_get
from tests.support.frameworks import RecordingScheduler, running_framework, shell_task
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration

MIB = 1 << 20
TASK = "cpus:0.1;mem:32"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted under the test's directory (unmounted afterwards)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _writer(mib: int, then: str = "true") -> str:
    """A command writing ``mib`` MiB into the sandbox, then running ``then``."""
    return f"head -c {mib * MIB} /dev/zero > blob && sync && {then}"


def _gc(agent: AgentProc) -> dict[str, float]:
    snapshot = agent.get("/metrics/snapshot")
    return {k: v for k, v in snapshot.items() if k.startswith("gc/")}


def _sandbox(work_dir: Path, task_id: str) -> Path:
    """The run directory of a command task (its executor id is the task id)."""
    [latest] = work_dir.glob(f"agents/*/frameworks/*/executors/{task_id}/runs/latest")
    return latest.resolve()


def _executor_ids(agent: AgentProc, key: str) -> set[str]:
    state = agent.get("/state")
    out = set()
    for fw in state["frameworks"] + state["completed_frameworks"]:
        out |= {ex["id"] for ex in fw[key]}
    return out


def test_gc_by_headroom_on_a_small_tmpfs(tmp_path: Path, tmpfs: Path) -> None:
    """Completed sandboxes go when the disk passes 1 - headroom; the running one stays."""
    with ProcCluster(tmp_path / "cluster") as cluster:
        master = cluster.start_master()
        agent = cluster.add_agent("cpus:4;mem:1024;disk:10", work_dir=tmpfs,
                                  gc_delay="1weeks", gc_disk_headroom=0.5,
                                  disk_watch_interval=0.2)
        scheduler = RecordingScheduler()
        with running_framework(master.address, scheduler, "gc") as driver:
            def launch(task_id: str, command: str) -> None:
                offer = scheduler.take_held(agent.agent_id)
                driver.launch_tasks([offer.id], [shell_task(task_id, agent.agent_id, TASK,
                                                            command)])

            launch("small", _writer(1))
            scheduler.wait_state("small", TaskState.TASK_FINISHED)
            small = _sandbox(tmpfs, "small")
            # Tracked, not removed: the disk is far from half full (age limit ~0.4 weeks).
            wait_for(lambda: _gc(agent).get("gc/path_removals_pending") == 1, timeout=30,
                     what="the small sandbox tracked for GC")
            assert small.is_dir() and "small" in _executor_ids(agent, "completed_executors")

            launch("big-running", _writer(5, "sleep 600"))
            def written() -> bool:
                blobs = list(tmpfs.glob("agents/*/frameworks/*/executors/big-running/runs/"
                                        "latest/blob"))
                return bool(blobs) and blobs[0].stat().st_size == 5 * MIB

            wait_for(written, timeout=30, what="the running task's 5 MiB written")
            running = _sandbox(tmpfs, "big-running")
            launch("big-done", _writer(5))
            scheduler.wait_state("big-done", TaskState.TASK_FINISHED)
            # Beside the running one (the same framework); under disk pressure it may be
            # gone already when the test sees TASK_FINISHED. /files below proves the path:
            # it says "garbage collected" only for a sandbox the agent removed.
            done = running.parents[2] / "big-done" / "runs" / "latest"

            wait_for(lambda: _gc(agent).get("gc/path_removals_succeeded") == 2, timeout=30,
                     what="both completed sandboxes removed under disk pressure")
            assert not small.exists() and not done.exists()
            assert not small.parent.parent.exists()  # the executor's directory went too
            assert (running / "blob").stat().st_size == 5 * MIB  # a running task's: never
            assert TaskState.TASK_RUNNING in scheduler.states("big-running")
            assert scheduler.states("big-running")[-1] is TaskState.TASK_RUNNING
            assert _executor_ids(agent, "completed_executors") & {"small", "big-done"} == set()
            assert "big-running" in _executor_ids(agent, "executors")
            assert _gc(agent)["gc/path_removals_failed"] == 0
            wait_for(lambda: _gc(agent)["gc/disk_usage"] < 0.5, timeout=30,
                     what="the next check sees the disk below 1 - headroom")

            for path in (small / "stdout", small.parent / "latest" / "stdout", done):
                status, body = http_get(f"{agent.base_url}/files/read?path={path}")
                assert status == 404, (path, body)
                message = json.loads(body)["error"]
                assert "garbage collected" in message and "container" in message, message
            status, body = http_get(f"{agent.base_url}/files/read?path={running}/blob&length=4")
            assert status == 200
            status, body = http_get(f"{agent.base_url}/files/read?path={running}/nothing-here")
            assert status == 404 and b"garbage" not in body  # missing in a live sandbox: plain 404
            status, body = http_get(f"{agent.base_url}/files/read?path={tmpfs}/nothing-here")
            assert status == 403 and b"garbage" not in body  # outside every task sandbox
            assert os.path.ismount(tmpfs)
