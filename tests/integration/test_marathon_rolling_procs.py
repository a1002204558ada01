"""Rolling upgrades through ``mesoslite marathon`` on real processes, watched every ~50 ms.

While an upgrade of a 4-instance app runs, both the framework's view
(``/v2/apps/{id}?embed=apps.tasks``) and the master's (its ``/state``: the
app's tasks that are not terminal) are sampled; at no sample may the healthy
tasks drop below ⌈instances × minimumHealthCapacity⌉ or all tasks exceed
⌊instances × (1 + maximumOverCapacity)⌋.  The upgrade must end with every
instance replaced by a healthy task of the new version.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.support.marathon_procs import (
    MarathonCluster,
    http_check,
    is_healthy,
    marathon,
    shell_app,
)
from tests.support.procs import WaitAborted, wait_for

pytestmark = pytest.mark.integration
__all__ = ["marathon"]

TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"}


def rolling_app(app_id: str, strategy: dict[str, float], release: str) -> dict[str, Any]:
    """Four instances serving HTTP on $PORT0 with a fast MESOS_HTTP check and ``strategy``."""
    check = http_check("MESOS_HTTP", intervalSeconds=0.3, timeoutSeconds=1,
                       gracePeriodSeconds=10)
    return shell_app(app_id, 4, health=check, env={"RELEASE": release},
                     upgradeStrategy=strategy)


def master_live_tasks(marathon: MarathonCluster, prefix: str) -> int:
    """How many of the framework's tasks with ids starting ``prefix`` the master has live."""
    count = 0
    for fw in marathon.master.state()["frameworks"]:
        if fw["id"] != marathon.framework_id:
            continue
        count += sum(1 for t in fw["tasks"]
                     if t["id"].startswith(prefix) and t["state"] not in TERMINAL)
    return count


def watch_upgrade(marathon: MarathonCluster, app_id: str, deployment_id: str,
                  min_healthy: int, max_total: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Sample the app every ~50 ms until ``deployment_id`` ends; fail on a broken bound.

    Returns the samples (``healthy``, ``total``, ``master``, ``versions``).
    """
    client = marathon.client
    prefix = app_id.strip("/").replace("/", "_") + "."
    samples: list[dict[str, Any]] = []

    def finished() -> list[dict[str, Any]] | None:
        app = client.app(app_id, embed="apps.tasks&embed=apps.deployments")
        tasks = app["tasks"]
        sample = {
            "healthy": sum(1 for t in tasks if t["state"] == "TASK_RUNNING" and is_healthy(t)),
            "total": len(tasks),
            "master": master_live_tasks(marathon, prefix),
            "versions": sorted({t.get("version", "") for t in tasks}),
        }
        samples.append(sample)
        try:
            assert sample["healthy"] >= min_healthy, f"healthy below {min_healthy}: {samples[-5:]}"
            assert sample["total"] <= max_total, f"more than {max_total} tasks: {samples[-5:]}"
            assert sample["master"] <= max_total, f"master runs > {max_total}: {samples[-5:]}"
        except AssertionError as exc:
            raise WaitAborted(str(exc)) from None
        return samples if all(d["id"] != deployment_id for d in app["deployments"]) else None

    try:
        return wait_for(finished, timeout, f"deployment {deployment_id} done")
    except WaitAborted:
        raise
    except AssertionError as exc:
        raise AssertionError(f"upgrade not done in {timeout}s: {samples[-3:]} ({exc})") from None


@pytest.mark.parametrize(("strategy", "name"), [
    ({"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.25}, "half"),
    ({"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0}, "default"),
    ({"minimumHealthCapacity": 0.0, "maximumOverCapacity": 0.0}, "stop-first"),
], ids=["0.5-0.25", "1.0-1.0", "0.0-0.0"])
def test_rolling_upgrade_keeps_the_health_capacity_bounds(
        marathon: MarathonCluster, strategy: dict[str, float], name: str) -> None:
    """At every sample: healthy ≥ ⌈4×minHealth⌉ and tasks ≤ ⌊4×(1+maxOver)⌋; ends 4 new healthy."""
    client = marathon.client
    app_id = f"/rolling/{name}"
    client.ok("POST", "/v2/apps", rolling_app(app_id, strategy, "one"), expect=201)
    old = client.wait_settled(app_id, 4, healthy=True)
    min_healthy = math.ceil(4 * strategy["minimumHealthCapacity"])
    max_total = math.floor(4 * (1 + strategy["maximumOverCapacity"]) + 1e-9)
    result = client.ok("PUT", f"/v2/apps{app_id}", {"env": {"RELEASE": "two"}})
    samples = watch_upgrade(marathon, app_id, result["deploymentId"], min_healthy, max_total)
    new = client.wait_tasks(app_id, 4, healthy=True, version=result["version"])
    assert not {t["id"] for t in old} & {t["id"] for t in new}
    assert len(samples) >= 5, samples
    if min_healthy:  # old tasks must have served beside new ones at some sample
        assert any(len(s["versions"]) == 2 for s in samples), f"never saw a mix: {samples}"
    assert master_live_tasks(marathon, app_id.strip("/").replace("/", "_") + ".") == 4
    client.ok("DELETE", f"/v2/apps{app_id}")


def test_restart_keeps_the_default_bounds(marathon: MarathonCluster) -> None:
    """A restart under the default strategy never has fewer than 4 healthy nor more than 8 tasks."""
    client = marathon.client
    strategy = {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0}
    client.ok("POST", "/v2/apps", rolling_app("/rolling/rs", strategy, "one"), expect=201)
    old = client.wait_settled("/rolling/rs", 4, healthy=True)
    result = client.ok("POST", "/v2/apps/rolling/rs/restart")
    watch_upgrade(marathon, "/rolling/rs", result["deploymentId"], 4, 8)
    new = client.wait_tasks("/rolling/rs", 4, healthy=True, version=result["version"])
    assert not {t["id"] for t in old} & {t["id"] for t in new}
    client.ok("DELETE", "/v2/apps/rolling/rs")


def test_deleting_a_stuck_upgrade_rolls_it_back(marathon: MarathonCluster) -> None:
    """DELETE /v2/deployments/{id} of an upgrade that never gets healthy restores the old app."""
    client = marathon.client
    strategy = {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0}
    app = rolling_app("/rolling/stuck", strategy, "one")
    app["instances"] = 2
    app["healthChecks"][0]["gracePeriodSeconds"] = 600  # the new tasks are never killed
    v1 = client.ok("POST", "/v2/apps", app, expect=201)["version"]
    old = client.wait_settled("/rolling/stuck", 2, healthy=True)
    stuck = client.ok("PUT", "/v2/apps/rolling/stuck", {"cmd": "exec sleep 600"})
    # The upgrade starts new tasks that never answer HTTP; the old ones must stay.
    new_ids = wait_for(lambda: {t["id"] for t in client.tasks("/rolling/stuck")
                                if t.get("version") == stuck["version"]
                                and t["state"] == "TASK_RUNNING"}, timeout=20,
                       what="tasks of the stuck version running")
    assert client.app_deployments("/rolling/stuck")[0]["id"] == stuck["deploymentId"]
    assert {t["id"] for t in old} <= {t["id"] for t in client.tasks("/rolling/stuck")}
    rollback = client.ok("DELETE", f"/v2/deployments/{stuck['deploymentId']}")
    assert {"deploymentId", "version"} <= set(rollback)
    assert rollback["deploymentId"] != stuck["deploymentId"]
    back = client.wait_settled("/rolling/stuck", 2, healthy=True)
    assert not new_ids & {t["id"] for t in back}
    current = client.app("/rolling/stuck")
    assert current["cmd"] == app["cmd"], current["cmd"]
    assert client.ok("GET", f"/v2/apps/rolling/stuck/versions/{v1}")["cmd"] == app["cmd"]
    wait_for(lambda: all(marathon.master_task_states().get(t) == "TASK_KILLED"
                         for t in new_ids), timeout=20, what="stuck tasks killed at the master")
    client.ok("DELETE", "/v2/apps/rolling/stuck")
