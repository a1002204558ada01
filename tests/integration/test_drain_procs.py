"""Taking a machine out with real processes: `mesoslite local` (master, two agents, the
Marathon-style framework), `mesoslite ctl deactivate|drain|reactivate`, and the v1
operator API over HTTP.

The app's two instances are placed on the first agent (the second is deactivated while
they launch); `ctl drain --wait` then kills them with the drain reason, the framework
replaces them on the second agent, the first reaches DRAINED in `/state` and gets no new
task until `ctl reactivate` brings it back.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from typing import Any

import pytest

from tests.support.marathon_procs import MarathonTestClient
from tests.support.procs import ROOT, Proc, free_port, get_json, mesoslite, wait_for

APP = "/drained"
#: 0.25 cpus per instance on agents of 1 cpu: four instances fill an agent.  The task
#: ignores SIGTERM, so a drain's kill takes the whole (bounded) grace period.
DEFINITION = {"id": APP, "cmd": "trap '' TERM; sleep 600", "instances": 2, "cpus": 0.25, "mem": 16,
              "portDefinitions": [], "upgradeStrategy": {"minimumHealthCapacity": 1.0,
                                                         "maximumOverCapacity": 0.0}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    """`mesoslite local` with two agents of 1 cpu; yields (master URL, framework client)."""
    tmp = tmp_path_factory.mktemp("drain")
    http_port, zmq_port, marathon = free_port(), free_port(), free_port()
    proc = Proc(mesoslite("local", "--agents", "2", "--port", str(http_port), "--zmq_port",
                          str(zmq_port), "--agent_port_base", "0", "--marathon_port",
                          str(marathon), "--no_dns", "--work_dir", str(tmp / "work"),
                          "--agent_resources", "cpus:1;mem:1024;disk:1024"),
                tmp / "local.log")
    try:
        proc.wait_output("Ctrl-C stops", timeout=60)
        client = MarathonTestClient(marathon)
        wait_for(lambda: client.get("/v2/apps").json == {"apps": []}, timeout=30,
                 what="GET /v2/apps answering")
        master = f"http://127.0.0.1:{http_port}"
        wait_for(lambda: len(get_json(f"{master}/state")["slaves"]) == 2, timeout=30,
                 what="two agents registered")
        yield master, client
    finally:
        proc.stop()


def _ctl(master: str, *args: str) -> str:
    result = subprocess.run(mesoslite("ctl", "--master", master, *args), check=False,
                            capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert result.returncode == 0, f"rc {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _agent(master: str, agent_id: str) -> dict[str, Any]:
    return next(a for a in get_json(f"{master}/state")["slaves"] if a["id"] == agent_id)


def _master_tasks(master: str) -> list[dict[str, Any]]:
    state = get_json(f"{master}/state")
    return [t for fw in state["frameworks"] for key in ("tasks", "completed_tasks")
            for t in fw.get(key, [])]


def _running(client: MarathonTestClient) -> list[dict[str, Any]]:
    tasks = client.get(f"/v2/apps{APP}/tasks").json["tasks"]
    return [t for t in tasks if t.get("state") == "TASK_RUNNING"]


def _operator(master: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    host, port = master.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", "/api/v1", body=json.dumps(body).encode(),
                     headers={"Host": f"{host}:{port}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, (json.loads(data) if data else {})
    finally:
        conn.close()


def test_operator_api_refuses_bad_agent_calls(stack) -> None:
    """DRAIN_AGENT on an unknown agent is a 404 naming drain_agent.agent_id; malformed calls
    are 400s naming the field; REACTIVATE of an agent in service is a 400."""
    master, _client = stack
    status, body = _operator(master, {"type": "DRAIN_AGENT",
                                      "drain_agent": {"agent_id": {"value": "no-such-S9"}}})
    assert status == 404 and body["field"] == "drain_agent.agent_id", body
    assert "no-such-S9" in body["message"]
    agent_id = get_json(f"{master}/state")["slaves"][0]["id"]
    cases = [
        ({"type": "DRAIN_AGENT", "drain_agent": {}}, "drain_agent.agent_id"),
        ({"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": agent_id},
                                                 "max_grace_period": {"nanoseconds": -1}}},
         "drain_agent.max_grace_period.nanoseconds"),
        ({"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": agent_id},
                                                 "mark_gone": "yes"}},
         "drain_agent.mark_gone"),
        ({"type": "DEACTIVATE_AGENT", "deactivate_agent": {"agent_id": {"value": agent_id},
                                                           "extra": 1}},
         "deactivate_agent.extra"),
    ]
    for call, field in cases:
        status, body = _operator(master, call)
        assert (status, body.get("field")) == (400, field), (call, body)
    status, body = _operator(master, {"type": "REACTIVATE_AGENT",
                                      "reactivate_agent": {"agent_id": {"value": agent_id}}})
    assert status == 400 and "not deactivated" in body["message"], body
    assert _agent(master, agent_id)["deactivated"] is False


def test_drain_replaces_tasks_elsewhere_then_reactivate(stack) -> None:
    """deactivate → the app lands on the other agent; drain → its instances are killed with
    REASON_AGENT_DRAINING and replaced on the other agent, DRAINED in /state, no new task on
    it; reactivate → it is offered (and used) again."""
    master, client = stack
    first, second = (a["id"] for a in get_json(f"{master}/state")["slaves"])
    assert f"agent {second}" in _ctl(master, "deactivate", second)
    assert _agent(master, second)["deactivated"] is True
    client.ok("POST", "/v2/apps", DEFINITION, expect=201)
    wait_for(lambda: len(_running(client)) == 2, timeout=60, what="2 running instances")
    originals = {t["id"] for t in _running(client)}
    assert {t["slaveId"] for t in _running(client)} == {first}
    assert "reactivated" in _ctl(master, "reactivate", second)

    out = _ctl(master, "drain", first, "--max-grace-period", "10s", "--wait")
    assert f"agent {first}: DRAINED" in out, out
    rows = [line.split() for line in _ctl(master, "agents").splitlines()]
    assert rows[0][3] == "MAINTENANCE" and [first, "drained"] in [[r[0], r[3]] for r in rows]
    shown = _agent(master, first)
    assert shown["deactivated"] is True
    assert shown["drain_info"] == {"state": "DRAINED", "config": {
        "mark_gone": False, "max_grace_period": {"nanoseconds": 10_000_000_000}}}
    ended = {t["id"]: t for t in _master_tasks(master) if t["id"] in originals}
    for task in ended.values():
        assert task["state"] == "TASK_KILLED", task
        assert task["statuses"][-1]["reason"] == "REASON_AGENT_DRAINING", task
    # SIGKILL came after the grace period bounded by max_grace_period (10 s, not the
    # executor's 3 s default): TASK_KILLING, then TASK_KILLED about 10 s later.
    for task in ended.values():
        when = {s["state"]: s["timestamp"] for s in task["statuses"]}
        assert 8.0 <= when["TASK_KILLED"] - when["TASK_KILLING"] <= 60.0, task["statuses"]
        assert task["statuses"][-2]["reason"] == "REASON_AGENT_DRAINING", task
    # Capacity kept: the framework replaced each instance as soon as it was KILLING, so
    # the replacements ran before the drained instances ended.
    killed_at = min(t["statuses"][-1]["timestamp"] for t in ended.values())
    replacements = [t for t in _master_tasks(master) if t["slave_id"] == second]
    started = sorted(min(s["timestamp"] for s in t["statuses"] if s["state"] == "TASK_RUNNING")
                     for t in replacements
                     if any(s["state"] == "TASK_RUNNING" for s in t["statuses"]))
    assert len(started) >= 2 and started[1] < killed_at, (started, killed_at)
    wait_for(lambda: len(_running(client)) == 2 and not originals & {t["id"] for t in
                                                                      _running(client)},
             timeout=60, what="2 replacement instances running")
    assert {t["slaveId"] for t in _running(client)} == {second}
    # Replaced as instances the operator took away, not as failures: no launch backoff.
    assert "lastTaskFailure" not in client.app(APP, embed="apps.lastTaskFailure")
    status, agents = _operator(master, {"type": "GET_AGENTS"})
    [v1] = [a for a in agents["get_agents"]["agents"]
            if a["agent_info"]["id"]["value"] == first]
    assert status == 200 and v1["deactivated"] is True
    assert v1["drain_info"]["state"] == "DRAINED"

    # Six instances do not fit on the second agent (four do): two wait while the first
    # agent is drained, and launch there only once it is reactivated.
    client.ok("PUT", f"/v2/apps{APP}?force=true", {"instances": 6}, expect=(200, 201))
    wait_for(lambda: len(_running(client)) == 4, timeout=60, what="4 running on the second")
    on_first = [t for t in _master_tasks(master) if t["slave_id"] == first]
    assert {t["id"] for t in on_first} == originals, "a task landed on the drained agent"
    assert _agent(master, first)["offered_resources"].get("cpus", 0) == 0
    reactivated_at = time.time()
    assert "reactivated" in _ctl(master, "reactivate", first)
    assert "drain_info" not in _agent(master, first)
    wait_for(lambda: len(_running(client)) == 6, timeout=60, what="6 running instances")
    fresh = [t for t in _running(client) if t["slaveId"] == first]
    assert len(fresh) == 2 and not originals & {t["id"] for t in fresh}
    for task in _master_tasks(master):
        if task["slave_id"] == first and task["id"] not in originals:
            assert task["statuses"][0]["timestamp"] >= reactivated_at - 1.0, task


def _call(master: str, kind: str, agent_id: str, **fields: Any) -> None:
    status, body = _operator(master, {"type": kind, kind.lower(): {
        "agent_id": {"value": agent_id}, **fields}})
    assert status == 200, (kind, status, body)


def test_drain_state_survives_master_restart_and_mark_gone_removes(tmp_path) -> None:
    """A real `mesoslite master` (file registry) restarted on the same ports still shows
    its agents deactivated and DRAINED, and keeps them without offers; an agent drained with
    mark_gone is told to shut down and is gone from /state."""
    from tests.support.cluster_procs import MasterProc, ProcCluster

    # Short pings: agents notice the restarted master (a new process) within seconds.
    ports = {"http_port": free_port(), "zmq_port": free_port(), "agent_ping_timeout": 1}
    with ProcCluster(tmp_path) as cluster:
        master = cluster.start_master(**ports)
        drained, deactivated, gone = (cluster.add_agent("cpus:1;mem:256") for _ in range(3))
        _call(master.base_url, "DRAIN_AGENT", drained.agent_id,
              max_grace_period={"nanoseconds": 1_000_000_000})
        _call(master.base_url, "DEACTIVATE_AGENT", deactivated.agent_id)
        _call(master.base_url, "DRAIN_AGENT", gone.agent_id, mark_gone=True)
        wait_for(lambda: gone.proc.popen.poll() is not None, timeout=30,
                 what="the agent drained with mark_gone exits")
        assert all(a["id"] != gone.agent_id for a in master.state()["slaves"])

        master.proc.stop()
        cluster.master = MasterProc(tmp_path / "master", tmp_path / "master-2.log", ports)
        restarted = cluster.master

        def both_back() -> dict[str, dict[str, Any]]:
            agents = {a["id"]: a for a in restarted.state()["slaves"]}
            return agents if {drained.agent_id, deactivated.agent_id} <= set(agents) else {}

        agents = wait_for(both_back, timeout=60, what="both agents re-registered")
        assert agents[drained.agent_id]["deactivated"] is True
        assert agents[drained.agent_id]["drain_info"] == {"state": "DRAINED", "config": {
            "mark_gone": False, "max_grace_period": {"nanoseconds": 1_000_000_000}}}
        assert agents[deactivated.agent_id]["deactivated"] is True
        assert "drain_info" not in agents[deactivated.agent_id]
        assert gone.agent_id not in agents
        status, body = _operator(restarted.base_url, {
            "type": "REACTIVATE_AGENT",
            "reactivate_agent": {"agent_id": {"value": gone.agent_id}}})
        assert status == 400 and "gone" in body["message"], body
        _call(restarted.base_url, "REACTIVATE_AGENT", deactivated.agent_id)
        wait_for(lambda: _agent(restarted.base_url, deactivated.agent_id)["deactivated"]
                 is False, timeout=10, what="reactivated after the restart")
