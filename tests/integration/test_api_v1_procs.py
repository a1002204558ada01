"""The Mesos v1 HTTP APIs with real processes: three masters, real ZooKeeper, an agent,
a scheduler written only with http.client, and an operator SUBSCRIBE stream."""

from __future__ import annotations

import json
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from tests.support.ha_procs import HACluster, the_leader
from tests.support.mesoshttp_env import ensure_mesoshttp
from tests.support.procs import Proc, wait_for
from tests.support.v1http import EventStream, post
from tests.support.zk import ZooKeeperServer
from tests.support.zk_fixtures import raw_zk, zk_url, zookeeper  # noqa: F401

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[1] / "support" / "v1_scheduler.py"
RESOURCES = "cpus:2;mem:1024;disk:1024;ports:[31000-31100]"


def milestones(proc: Proc) -> list[dict[str, Any]]:
    """The JSON lines the scheduler script printed so far."""
    out = []
    for line in proc.output().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def reached(proc: Proc, event: str) -> dict[str, Any] | None:
    """The first milestone named ``event`` (fails at once if the script died)."""
    for item in milestones(proc):
        if item["event"] == event:
            return item
    if proc.popen.poll() is not None and proc.popen.returncode != 0:
        raise AssertionError(f"the scheduler exited {proc.popen.returncode}:\n"
                             f"{proc.output()[-3000:]}")
    return None


def mesos_client_finds_leader(zk: KazooClient, url: str) -> tuple[str, int]:
    """What a Mesos client does: the smallest json.info_ child, its address (ip also uint32)."""
    directory = "/" + url.split("/", 3)[3]
    children = sorted(c for c in zk.get_children(directory) if c.startswith("json.info_"))
    info = json.loads(zk.get(f"{directory}/{children[0]}")[0])
    ip = socket.inet_ntoa(struct.pack("<I", info["ip"]))
    assert ip == info["address"]["ip"]
    return ip, info["address"]["port"]


def test_stdlib_scheduler_runs_reconciles_fails_over_and_kills(
        zk_url: str, raw_zk: KazooClient, tmp_path: Path) -> None:  # noqa: F811
    """An http.client scheduler follows 307 to the leader, runs and acknowledges tasks,
    reconciles, follows a leader change with its framework id, kills; the operator stream
    of the first leader sees TASK_ADDED and TASK_UPDATED for its tasks."""
    with HACluster(tmp_path / "cluster", zk_url) as cluster:
        for _ in range(3):
            cluster.add_master(framework_heartbeat_interval=1, agent_reregister_timeout=30)
        leader = the_leader(cluster.masters)
        assert mesos_client_finds_leader(raw_zk, zk_url) == ("127.0.0.1", leader.http_port)
        agent = cluster.add_agent(RESOURCES)
        standby = next(m for m in cluster.masters if m is not leader)
        sub = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n"}}}
        status, headers, _ = post(f"127.0.0.1:{standby.http_port}", "/api/v1/scheduler", sub)
        assert status == 307
        assert headers["Location"] == f"//127.0.0.1:{leader.http_port}/api/v1/scheduler"
        status, headers, _ = post(f"127.0.0.1:{standby.http_port}", "/api/v1",
                                  {"type": "GET_STATE"})
        assert status == 307 and headers["Location"].endswith("/api/v1")

        watch = EventStream(f"127.0.0.1:{leader.http_port}", "/api/v1", {"type": "SUBSCRIBE"})
        assert watch.next()["type"] == "SUBSCRIBED"
        # The scheduler is given the standby first: it must follow the redirect.
        order = [standby] + [m for m in cluster.masters if m is not standby]
        addresses = ",".join(f"127.0.0.1:{m.http_port}" for m in order)
        proc = Proc([sys.executable, str(SCRIPT), addresses], tmp_path / "scheduler.log")
        try:
            first = wait_for(lambda: reached(proc, "subscribed"), 30, what="subscribed")
            assert first["master"].endswith(str(leader.http_port))
            assert reached(proc, "redirected") is not None
            wait_for(lambda: reached(proc, "reconciled"), 60, what="tasks ran and reconciled")
            updates = [m for m in milestones(proc) if m["event"] == "update"]
            done = [m["state"] for m in updates if m["task_id"] == "done-1"]
            assert done[-1] == "TASK_FINISHED" and "TASK_RUNNING" in done
            assert all(m["source"] for m in updates)
            assert not [m for m in milestones(proc) if m["event"] == "ack-refused"]

            seen: dict[str, set[str]] = {}
            while not {"TASK_ADDED", "TASK_UPDATED"} <= seen.get("long-1", set()) \
                    or "TASK_FINISHED" not in seen.get("done-1", set()):
                event = watch.next(("TASK_ADDED", "TASK_UPDATED"))
                if event["type"] == "TASK_ADDED":
                    task_id = event["task_added"]["task"]["task_id"]["value"]
                    seen.setdefault(task_id, set()).add("TASK_ADDED")
                else:
                    body = event["task_updated"]
                    task_id = body["status"]["task_id"]["value"]
                    seen.setdefault(task_id, set()).update({"TASK_UPDATED", body["state"]})
            watch.close()

            leader.kill9()
            new = the_leader([m for m in cluster.masters if m is not leader], timeout=30)
            after = wait_for(lambda: reached(proc, "reconciled-after-failover"), 90,
                             what="re-subscribed to the new leader and reconciled")
            assert after["master"].endswith(str(new.http_port))
            subscriptions = [m for m in milestones(proc) if m["event"] == "subscribed"]
            assert len({m["framework_id"] for m in subscriptions}) == 1
            assert len(subscriptions) >= 2
            wait_for(lambda: reached(proc, "teardown"), 60, what="killed and torn down")
            assert reached(proc, "teardown") == {"event": "teardown", "status": 202}
            assert proc.popen.wait(30) == 0
            state = new.state()
            assert [f["id"] for f in state["completed_frameworks"]] == [first["framework_id"]]
            assert agent.agent_id in {a["id"] for a in state["slaves"]}
        finally:
            proc.stop()


MESOSHTTP_SCRIPT = Path(__file__).resolve().parents[1] / "support" / "mesoshttp_scheduler.py"


def test_mesoshttp_library_runs_kills_and_reconciles_through_zookeeper(
        zookeeper: ZooKeeperServer, tmp_path: Path) -> None:  # noqa: F811
    """mesoshttp 0.4.2 from PyPI, pointed at zk://…/mesos of three masters, finds the
    leader, runs command tasks to TASK_FINISHED, reconciles and kills one, tears down."""
    python = ensure_mesoshttp()
    url = f"zk://{zookeeper.hosts}/mesos"
    with HACluster(tmp_path / "cluster", url) as cluster:
        for _ in range(3):
            cluster.add_master(framework_heartbeat_interval=1)
        leader = the_leader(cluster.masters)
        cluster.add_agent(RESOURCES)
        proc = Proc([python, str(MESOSHTTP_SCRIPT), url], tmp_path / "mesoshttp.log")
        try:
            sub = wait_for(lambda: reached(proc, "subscribed"), 60, what="subscribed")
            assert sub["master"]["port"] == leader.http_port
            wait_for(lambda: reached(proc, "killed"), 90, what="ran, reconciled and killed")
            updates = [(m["task_id"], m["state"]) for m in milestones(proc)
                       if m["event"] == "update"]
            assert ("done-1", "TASK_FINISHED") in updates
            assert reached(proc, "reconciled") == {"event": "reconciled",
                                                   "state": "TASK_RUNNING"}
            assert proc.popen.wait(60) == 0, proc.output()[-3000:]
            framework_id = sub["framework_id"]
            wait_for(lambda: framework_id in {f["id"] for f in
                                              leader.state()["completed_frameworks"]},
                     30, what="the framework torn down")
        finally:
            proc.stop()
