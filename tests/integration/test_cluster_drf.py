"""DRF through offers, with a real master, agent and SDK frameworks on loopback.

Frameworks with different task shapes share one agent.  Each takes at most
one task per offer and declines the rest at once (``refuse_seconds`` 0), so
every offer goes back to the allocator, which offers the agent's remainder
to the framework with the lowest (weighted) dominant share.  The final
allocation is asserted with a deadline, never the order that led to it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesoslite.protocol import TaskState
from tests.support.cluster_procs import MasterProc, ProcCluster
from tests.support.frameworks import RecordingScheduler, ShapeLauncher, running_framework
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration

LONG = "sleep 600"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcCluster]:
    """An empty process cluster that cleans up after the test."""
    with ProcCluster(tmp_path) as procs:
        yield procs


def _running_by_framework(master: MasterProc, framework_ids: list[str]) -> dict[str, int]:
    return {fid: len(master.tasks_in_state(fid, "TASK_RUNNING")) for fid in framework_ids}


def _wait_allocation(master: MasterProc, wanted: dict[str, int]) -> None:
    ids = list(wanted)
    try:
        wait_for(lambda: _running_by_framework(master, ids) == wanted, timeout=30,
                 what="the converged allocation")
    except AssertionError:
        now = _running_by_framework(master, ids)
        raise AssertionError(f"running tasks per framework: expected {wanted}, got {now}") from None


def _used(master: MasterProc, framework_id: str) -> dict[str, float]:
    framework = master.framework(framework_id)
    assert framework is not None
    return framework["used_resources"]


def test_two_shapes_converge_to_the_drf_allocation(cluster: ProcCluster) -> None:
    """⟨1 cpu, 4 GB⟩ and ⟨3 cpus, 1 GB⟩ tasks on cpus:9;mem:18432 end as A=3, B=2 (shares 2/3)."""
    master = cluster.start_master()
    cluster.add_agent("cpus:9;mem:18432")
    gate = threading.Event()  # both compete from the moment both are subscribed
    policy_a = ShapeLauncher("a", "cpus:1;mem:4096", LONG, gate=gate)
    policy_b = ShapeLauncher("b", "cpus:3;mem:1024", LONG, gate=gate)
    fw_a, fw_b = RecordingScheduler(policy_a), RecordingScheduler(policy_b)
    with running_framework(master.address, fw_a, "drf-a"), \
            running_framework(master.address, fw_b, "drf-b"):
        ids = [fw_a.framework_id, fw_b.framework_id]
        gate.set()
        _wait_allocation(master, {ids[0]: 3, ids[1]: 2})
        # Converged: nothing else fits (0 cpus left), so nothing else was launched.
        assert (len(policy_a.launched), len(policy_b.launched)) == (3, 2)
        wait_for(lambda: (len(fw_a.in_state(TaskState.TASK_RUNNING)),
                          len(fw_b.in_state(TaskState.TASK_RUNNING))) == (3, 2),
                 timeout=30, what="both frameworks count their running tasks")
        used_a, used_b = _used(master, ids[0]), _used(master, ids[1])
        assert (used_a["cpus"], used_a["mem"]) == (3.0, 12288.0)
        assert (used_b["cpus"], used_b["mem"]) == (6.0, 2048.0)
        share_a = max(used_a["cpus"] / 9, used_a["mem"] / 18432)
        share_b = max(used_b["cpus"] / 9, used_b["mem"] / 18432)
        assert share_a == pytest.approx(2 / 3) and share_b == pytest.approx(2 / 3)
        roles = {role["name"]: role for role in master.get("/roles")["roles"]}
        assert sorted(roles["*"]["frameworks"]) == sorted(ids)
        # Shares in /roles also count outstanding offers, so they are at least the used share.
        for fid in ids:
            assert roles["*"]["framework_shares"][fid] >= 2 / 3 - 1e-6
        assert not fw_a.errors and not fw_b.errors


def test_role_weights_give_twice_the_share(cluster: ProcCluster) -> None:
    """With --weights a=2,b=1 identical ⟨1 cpu, 1 GB⟩ tasks on cpus:6;mem:6144 end as a=4, b=2."""
    master = cluster.start_master(weights="a=2,b=1")
    cluster.add_agent("cpus:6;mem:6144")
    gate = threading.Event()
    policy_a = ShapeLauncher("a", "cpus:1;mem:1024", LONG, gate=gate)
    policy_b = ShapeLauncher("b", "cpus:1;mem:1024", LONG, gate=gate)
    fw_a, fw_b = RecordingScheduler(policy_a), RecordingScheduler(policy_b)
    with running_framework(master.address, fw_a, "weighted-a", roles=["a"]), \
            running_framework(master.address, fw_b, "weighted-b", roles=["b"]):
        ids = [fw_a.framework_id, fw_b.framework_id]
        gate.set()
        _wait_allocation(master, {ids[0]: 4, ids[1]: 2})
        assert (len(policy_a.launched), len(policy_b.launched)) == (4, 2)
        wait_for(lambda: (len(fw_a.in_state(TaskState.TASK_RUNNING)),
                          len(fw_b.in_state(TaskState.TASK_RUNNING))) == (4, 2),
                 timeout=30, what="both frameworks count their running tasks")
        roles = {role["name"]: role for role in master.get("/roles")["roles"]}
        assert roles["a"]["weight"] == 2.0 and roles["b"]["weight"] == 1.0
        # The agent is full (no cpus or mem left), so no offer inflates these shares.
        assert roles["a"]["share"] == pytest.approx(4 / 6)
        assert roles["b"]["share"] == pytest.approx(2 / 6)
        assert roles["a"]["frameworks"] == [ids[0]] and roles["b"]["frameworks"] == [ids[1]]
        assert roles["a"]["resources"]["cpus"] == 4.0 and roles["b"]["resources"]["cpus"] == 2.0
        weighted = {r: roles[r]["share"] / roles[r]["weight"] for r in ("a", "b")}
        assert weighted["a"] == pytest.approx(weighted["b"])
        assert not fw_a.errors and not fw_b.errors
