"""Two Marathon-style framework instances against one ZooKeeper: the leader dies mid-deployment.

Real processes: a master, two agents, and two ``mesoslite marathon --zk``
instances; the standby proxies the API to the leader.  A rolling restart is
running when the leading instance is killed with SIGKILL: the standby takes
over (same framework id, state from ZooKeeper), reconciles and finishes the
deployment with exactly the wanted instances and no task lost or duplicated.
"""

from __future__ import annotations

import json
import re
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster_procs import ProcCluster
from tests.support.procs import Proc, mesoslite, wait_for
from tests.support.zk_fixtures import zk_url, zookeeper  # noqa: F401

pytestmark = pytest.mark.integration

_LINE = re.compile(r"mesoslite marathon: http://([\d.]+):(\d+)")
APP_ID = "/ha/web"
INSTANCES = 4


def _call(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw) if raw else None
        except ValueError:
            return exc.code, raw.decode(errors="replace")


class Instance:
    """One ``mesoslite marathon --zk`` process on an ephemeral port."""

    def __init__(self, root: Path, name: str, master: str, zk: str) -> None:
        """Start it and wait until it prints its address."""
        flags = {"master": master, "zk": zk, "http_address": "127.0.0.1", "http_port": 0,
                 "zk_session_timeout": 2, "reconciliation_initial_delay": 1,
                 "min_healthy_uptime": 1}
        args: list[str] = []
        for key, value in flags.items():
            args += [f"--{key}", str(value)]
        self.proc = Proc(mesoslite("marathon", *args), root / f"{name}.log")
        match = _LINE.search(self.proc.wait_output("mesoslite marathon:", timeout=30))
        assert match, self.proc.output()[-2000:]
        self.base = f"http://127.0.0.1:{match.group(2)}"

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One REST call."""
        return _call(self.base, method, path, body)

    def elected(self) -> bool:
        """True when this instance says it leads."""
        status, info = self.call("GET", "/v2/info")
        return status == 200 and info["elected"] is True


def _app(version_tag: str) -> dict[str, Any]:
    # Each new task becomes healthy only ~1.5 s after it starts, so a rolling
    # restart of 4 instances takes several seconds: long enough to kill the leader in it.
    return {
        "id": APP_ID, "instances": INSTANCES, "cpus": 0.1, "mem": 16,
        "cmd": "sleep 1.5; touch ready; exec sleep 600",
        "env": {"TAG": version_tag},
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "test -f ready"},
                          "gracePeriodSeconds": 30, "intervalSeconds": 0.3,
                          "timeoutSeconds": 2, "delaySeconds": 0,
                          "maxConsecutiveFailures": 0}],
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0},
    }


def test_standby_takes_over_mid_deployment_without_losing_or_duplicating(
        tmp_path: Path, zk_url: str) -> None:  # noqa: F811
    """Kill -9 of the leading instance during a rolling restart: the standby finishes it
    with exactly 4 healthy new-version tasks, none lost and none duplicated."""
    with ProcCluster(tmp_path / "cluster") as cluster:
        master = cluster.start_master()
        for _ in range(2):
            cluster.add_agent("cpus:4;mem:2048;ports:[31000-31999]")
        zk = f"{zk_url}-marathon"
        first = Instance(tmp_path, "marathon-a", master.address, zk)
        second = Instance(tmp_path, "marathon-b", master.address, zk)
        instances = [first, second]
        leader = wait_for(lambda: next((i for i in instances if i.elected()), None),
                          timeout=30, what="a leading marathon instance")
        standby = second if leader is first else first
        # The standby proxies API calls to the leader.
        status, body = standby.call("POST", "/v2/apps", _app("one"))
        assert status == 201, body
        framework_id = leader.call("GET", "/v2/info")[1]["frameworkId"]

        def settled(version: str | None = None) -> list[dict[str, Any]]:
            status, body = leader.call("GET", f"/v2/apps{APP_ID}")
            if status != 200 or body["app"]["deployments"]:
                return []
            tasks = body["app"]["tasks"]
            healthy = [t for t in tasks if t["state"] == "TASK_RUNNING"
                       and all(r["alive"] for r in t.get("healthCheckResults", [{}]))
                       and t.get("healthCheckResults")]
            if len(tasks) != INSTANCES or len(healthy) != INSTANCES:
                return []
            if version is not None and any(t["version"] != version for t in tasks):
                return []
            return tasks

        first_tasks = wait_for(settled, timeout=60, what="4 healthy tasks of version one")
        old_ids = {t["id"] for t in first_tasks}

        status, body = leader.call("PUT", f"/v2/apps{APP_ID}", _app("two"))
        assert status == 200, body
        new_version = body["version"]

        def mid_deployment() -> bool:
            status, body = leader.call("GET", f"/v2/apps{APP_ID}")
            tasks = body["app"]["tasks"] if status == 200 else []
            return bool(body["app"]["deployments"]) and any(
                t["version"] == new_version for t in tasks)

        wait_for(mid_deployment, timeout=30, what="the rolling restart under way")
        leader.proc.signal(signal.SIGKILL)
        leader.proc.popen.wait(10)

        wait_for(standby.elected, timeout=30, what="the standby elected")
        leader = standby
        wait_for(lambda: leader.call("GET", "/v2/info")[1]["frameworkId"] == framework_id,
                 timeout=30, what="the new leader using the stored framework id")

        final = wait_for(lambda: settled(new_version), timeout=90,
                         what="the deployment finished by the new leader")
        final_ids = {t["id"] for t in final}
        assert not final_ids & old_ids, "old-version tasks survived the upgrade"

        # The master agrees: exactly these 4 tasks run for the framework, none was lost.
        # A killed old task stays among the framework's active tasks until its terminal
        # update is acknowledged (the agent retries it to the new leader): wait for that.
        def master_view() -> dict[str, Any] | None:
            fw = master.framework(framework_id)
            active = {t["id"] for t in fw["tasks"]} if fw is not None else set()
            running = set(master.tasks_in_state(framework_id, "TASK_RUNNING"))
            return fw if running == final_ids and active == final_ids else None

        fw = wait_for(master_view, timeout=60,
                      what="the master running exactly the 4 new tasks, old ones acknowledged")
        assert fw is not None
        states = [t["state"] for t in fw["tasks"]]
        assert len(states) == INSTANCES, f"extra active tasks at the master: {states}"
        lost = [t for t in master.get("/state")["completed_frameworks"]
                if t["id"] == framework_id]
        assert not lost
        completed = [t["state"] for f in master.get("/state")["frameworks"]
                     if f["id"] == framework_id for t in f.get("completed_tasks", [])]
        assert "TASK_LOST" not in completed and "TASK_FAILED" not in completed, completed
        for instance in instances:
            instance.proc.stop()
