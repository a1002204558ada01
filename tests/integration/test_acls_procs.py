"""Mesos-style ACLs (``--acls``) on real master and agent processes: roles, task users,
teardown, weights, endpoints, sandboxes and filtered state, with HTTP Basic principals
and schedulers written with the real SDK."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mesoslite.protocol import CommandInfo, FrameworkInfo, Reason, TaskInfo, TaskState
from mesoslite.resources import Resources
from mesoslite.scheduler import SchedulerDriver
from tests.integration.test_http_auth_procs import call
from tests.support.frameworks import RecordingScheduler
from tests.support.procs import ROOT, Proc, mesoslite, wait_for

CREDENTIALS = {"credentials": [{"principal": name, "secret": f"{name}-secret"}
                               for name in ("ops", "viewer", "web-team", "alice-fw")]}
ANY = {"type": "ANY"}
NONE = {"type": "NONE"}
ACLS = {
    "register_frameworks": [
        {"principals": {"values": ["web-team"]}, "roles": {"values": ["web"]}},
        {"principals": {"values": ["web-team"]}, "roles": NONE},
    ],
    "run_tasks": [
        {"principals": {"values": ["web-team"]}, "users": {"values": ["nobody"]}},
        {"principals": NONE, "users": {"values": ["root"]}},
    ],
    "teardown_frameworks": [
        {"principals": {"values": ["ops"]}, "framework_principals": ANY},
        {"principals": NONE, "framework_principals": ANY},
    ],
    "view_frameworks": [
        {"principals": {"values": ["ops"]}, "users": ANY},
        {"principals": {"values": ["viewer"]}, "users": {"values": ["alice"]}},
        {"principals": NONE, "users": ANY},
    ],
    "access_sandboxes": [
        {"principals": {"values": ["ops"]}, "users": ANY},
        {"principals": NONE, "users": ANY},
    ],
    "update_weights": [
        {"principals": {"values": ["ops"]}, "roles": ANY},
        {"principals": NONE, "roles": ANY},
    ],
    "get_endpoints": [
        {"principals": {"values": ["ops"]}, "paths": {"values": ["/flags", "/metrics/snapshot"]}},
        {"principals": NONE, "paths": {"values": ["/flags", "/metrics/snapshot"]}},
    ],
}


def basic(name: str) -> dict[str, str]:
    """The Authorization header of one principal of :data:`CREDENTIALS`."""
    token = base64.b64encode(f"{name}:{name}-secret".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _port(proc: Proc, kind: str) -> int:
    output = proc.wait_output(f"mesoslite {kind}:", timeout=30)
    found = re.search(rf"mesoslite {kind}: http://[\d.]+:(\d+)", output)
    assert found is not None, output
    return int(found.group(1))


@contextlib.contextmanager
def cluster(tmp_path: Path, acls: str) -> Iterator[tuple[int, int, str]]:
    """A master and an agent with HTTP write authentication and ``--acls acls``."""
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps(CREDENTIALS))
    os.chmod(creds, 0o600)
    auth = ["--authenticate_http_readwrite", "true", "--credentials", str(creds),
            "--acls", acls]
    procs: list[Proc] = []
    try:
        master = Proc(mesoslite("master", "--ip", "127.0.0.1", "--http_port", "0",
                                "--zmq_port", "0", "--work_dir", str(tmp_path / "m"),
                                "--allocation_interval", "0.1", *auth), tmp_path / "m.log")
        procs.append(master)
        master_port = _port(master, "master")
        found = re.search(r"zmq tcp://([\d.]+:\d+)", master.output())
        assert found is not None
        zmq = found.group(1)
        agent = Proc(mesoslite("agent", "--master", zmq, "--ip", "127.0.0.1", "--http_port",
                               "0", "--work_dir", str(tmp_path / "a"),
                               "--resources", "cpus:4;mem:2048", *auth), tmp_path / "a.log")
        procs.append(agent)
        agent_port = _port(agent, "agent")
        wait_for(lambda: call(master_port, "GET", "/slaves", headers=basic("ops"))[2]["slaves"],
                 timeout=30, what="the agent registered")
        yield master_port, agent_port, zmq
        for proc in procs:
            assert proc.alive(), proc.output()[-2000:]
    finally:
        for proc in reversed(procs):
            proc.stop()


@contextlib.contextmanager
def framework(zmq: str, principal: str, roles: tuple[str, ...], user: str,
              registered: bool = True) -> Iterator[tuple[RecordingScheduler, SchedulerDriver]]:
    """A framework of ``principal`` (the SDK driver); waits for registration or an error."""
    scheduler = RecordingScheduler()
    info = FrameworkInfo(user=user, name=f"{principal}-{roles[0]}", roles=roles,
                         principal=principal)
    driver = SchedulerDriver(scheduler, info, zmq, registration_backoff_factor=0.2)
    driver.start()
    try:
        if registered:
            wait_for(lambda: scheduler.framework_id, timeout=30,
                     what=f"framework of {principal} registered")
        else:
            wait_for(lambda: scheduler.errors, timeout=30,
                     what=f"framework of {principal} refused")
        yield scheduler, driver
    finally:
        driver.stop()
        driver.join()


def _task(task_id: str, agent_id: str, user: str) -> TaskInfo:
    return TaskInfo(name=task_id, task_id=task_id, agent_id=agent_id,
                    resources=Resources.parse("cpus:0.1;mem:32"),
                    command=CommandInfo(value="echo acl-sandbox; exec sleep 60", user=user))


def _framework_ids(port: int, path: str, who: str | None) -> set[str]:
    status, _, body = call(port, "GET", path, headers=basic(who) if who else None)
    assert status == 200, (path, who, status, body)
    return {fw["id"] for fw in body["frameworks"]}


def _v1(port: int, body: dict[str, Any], who: str) -> tuple[int, Any]:
    status, _, answer = call(port, "POST", "/api/v1", body, basic(who))
    return status, answer


def test_acls_decide_roles_users_teardown_views_endpoints_and_sandboxes(tmp_path: Path
                                                                        ) -> None:
    """The ACL file decides who registers in which role, runs as which user, tears down,
    sets weights, reads /flags and sandboxes, and which frameworks /state shows."""
    acl_file = tmp_path / "acls.json"
    acl_file.write_text(json.dumps(ACLS))
    with cluster(tmp_path, str(acl_file)) as (master_port, agent_port, zmq), \
            framework(zmq, "web-team", ("web",), "nobody") as (web, web_driver), \
            framework(zmq, "alice-fw", ("*",), "alice") as (alice, _alice_driver):
        # register_frameworks: web-team may not use role ops (the SDK sees the Error).
        with framework(zmq, "web-team", ("ops",), "nobody", registered=False) as (ops, _):
            assert "'ops'" in ops.errors[0] and "register_frameworks" in ops.errors[0]
            assert not ops.framework_id
        # run_tasks: nobody is allowed, root is TASK_ERROR naming the user.
        offer = web.take_held()
        web_driver.launch_tasks([offer.id], [_task("as-nobody", offer.agent_id, "nobody"),
                                             _task("as-root", offer.agent_id, "root")])
        refused = web.wait_state("as-root", TaskState.TASK_ERROR)
        assert refused.reason is Reason.REASON_TASK_UNAUTHORIZED
        assert "'root'" in refused.message and "run_tasks" in refused.message
        web.wait_state("as-nobody", TaskState.TASK_RUNNING, timeout=60)

        # view_frameworks: ops sees both, viewer only alice's, an anonymous GET none.
        both = {web.framework_id, alice.framework_id}
        for path in ("/state", "/frameworks", "/master/state"):
            assert _framework_ids(master_port, path, "ops") == both
            assert _framework_ids(master_port, path, "viewer") == {alice.framework_id}
            assert _framework_ids(master_port, path, None) == set()
        summary = call(master_port, "GET", "/state-summary", headers=basic("viewer"))[2]
        assert [fw["id"] for fw in summary["frameworks"]] == [alice.framework_id]
        tasks = call(master_port, "GET", "/tasks", headers=basic("viewer"))[2]["tasks"]
        assert tasks == []
        status, answer = _v1(master_port, {"type": "GET_FRAMEWORKS"}, "viewer")
        assert status == 200
        assert [f["framework_info"]["id"]["value"]
                for f in answer["get_frameworks"]["frameworks"]] == [alice.framework_id]
        status, answer = _v1(master_port, {"type": "GET_STATE"}, "viewer")
        assert status == 200 and answer["get_state"]["get_tasks"]["tasks"] == []
        ui = call(master_port, "GET", "/ui/api/frameworks", headers=basic("viewer"))[2]
        assert [row["id"] for row in ui["items"]] == [alice.framework_id]
        assert call(master_port, "GET", f"/ui/api/frameworks/{web.framework_id}",
                    headers=basic("viewer"))[0] == 404
        agent_state = call(agent_port, "GET", "/state", headers=basic("viewer"))[2]
        assert agent_state["frameworks"] == []
        agent_state = call(agent_port, "GET", "/state", headers=basic("ops"))[2]
        assert [fw["id"] for fw in agent_state["frameworks"]] == [web.framework_id]

        # get_endpoints: /flags and /metrics/snapshot for ops only (under any prefix).
        for path in ("/flags", "/master/flags", "/metrics/snapshot", "/metrics"):
            status, _, body = call(master_port, "GET", path, headers=basic("viewer"))
            assert status == 403 and body["field"] == "principal", (path, status, body)
            assert call(master_port, "GET", path, headers=basic("ops"))[0] == 200, path
        assert call(master_port, "GET", "/flags")[0] == 403
        assert call(agent_port, "GET", "/flags", headers=basic("viewer"))[0] == 403
        assert call(agent_port, "GET", "/flags", headers=basic("ops"))[0] == 200
        assert _v1(master_port, {"type": "GET_FLAGS"}, "viewer")[0] == 403
        assert _v1(agent_port, {"type": "GET_FLAGS"}, "viewer")[0] == 403
        assert "flags" not in call(master_port, "GET", "/state", headers=basic("viewer"))[2]
        assert "flags" in call(master_port, "GET", "/state", headers=basic("ops"))[2]
        assert "flags" not in call(agent_port, "GET", "/state", headers=basic("viewer"))[2]
        status, answer = _v1(agent_port, {"type": "GET_FRAMEWORKS"}, "viewer")
        assert status == 200 and answer["get_frameworks"]["frameworks"] == [], answer
        status, answer = _v1(agent_port, {"type": "GET_TASKS"}, "ops")
        assert [t["task_id"]["value"] for t in answer["get_tasks"]["launched_tasks"]] == \
            ["as-nobody"], answer

        # access_sandboxes: the master's proxy and the agent's own /files.
        [sandbox] = list((tmp_path / "a").glob("agents/*/frameworks/*/executors/as-nobody"
                                                "/runs/latest"))
        query = urllib.parse.urlencode({"path": os.path.realpath(sandbox / "stdout")})
        proxied = f"/agents/{offer.agent_id}/files/read?{query}"
        status, _, body = call(master_port, "GET", proxied, headers=basic("viewer"))
        assert status == 403 and "access_sandboxes" in body["message"], body
        direct = f"/files/read?{query}"
        status, _, body = call(agent_port, "GET", direct, headers=basic("viewer"))
        assert status == 403 and "access_sandboxes" in body["error"], body

        def sandbox_served() -> bool:
            status, _, page = call(master_port, "GET", proxied, headers=basic("ops"))
            return status == 200 and "acl-sandbox" in page["data"]
        wait_for(sandbox_served, timeout=30, what="ops reads the sandbox through the master")
        assert call(agent_port, "GET", direct, headers=basic("ops"))[0] == 200
        read = {"type": "READ_FILE", "read_file": {
            "path": os.path.realpath(sandbox / "stdout"), "offset": 0}}
        assert _v1(master_port, read, "viewer")[0] == 403  # the agent decides, creds passed on
        status, answer = _v1(master_port, read, "ops")
        assert status == 200 and "acl-sandbox" in base64.b64decode(
            answer["read_file"]["data"]).decode(), answer

        # update_weights: 403 for viewer (HTTP and v1), 200 for ops.
        weights = [{"role": "web", "weight": 2}]
        status, _, body = call(master_port, "PUT", "/weights", weights, basic("viewer"))
        assert status == 403 and "update_weights" in body["message"], body
        update = {"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": weights}}
        assert _v1(master_port, update, "viewer")[0] == 403
        assert call(master_port, "PUT", "/weights", weights, basic("ops"))[0] == 200

        # teardown_frameworks: viewer 403 (HTTP and v1), ops 200.
        teardown = {"framework_id": alice.framework_id}
        status, _, body = call(master_port, "POST", "/teardown", teardown, basic("viewer"))
        assert status == 403 and "teardown_frameworks" in body["message"], body
        v1_teardown = {"type": "TEARDOWN", "teardown": {"framework_id": {
            "value": alice.framework_id}}}
        assert _v1(master_port, v1_teardown, "viewer")[0] == 403
        assert alice.framework_id in _framework_ids(master_port, "/frameworks", "ops")
        assert call(master_port, "POST", "/teardown", teardown, basic("ops"))[0] == 200
        wait_for(lambda: alice.framework_id not in _framework_ids(master_port, "/frameworks",
                                                                  "ops"),
                 timeout=30, what="alice's framework torn down")


def test_not_permissive_denies_what_no_rule_allows(tmp_path: Path) -> None:
    """``permissive: false`` (inline JSON): a request no rule matches is refused."""
    acls = json.dumps({"permissive": False, "register_frameworks": [
        {"principals": {"values": ["ops"]}, "roles": ANY}]})
    with cluster(tmp_path, acls) as (master_port, _agent_port, zmq):
        with framework(zmq, "viewer", ("*",), "nobody", registered=False) as (refused, _):
            assert "register_frameworks" in refused.errors[0]
        with framework(zmq, "ops", ("*",), "nobody") as (allowed, driver):
            offer = allowed.take_held()
            driver.launch_tasks([offer.id], [_task("t", offer.agent_id, "nobody")])
            denied = allowed.wait_state("t", TaskState.TASK_ERROR)  # no run_tasks rule
            assert denied.reason is Reason.REASON_TASK_UNAUTHORIZED
            assert _framework_ids(master_port, "/state", "ops") == set()  # nor view rules
            status, _, _ = call(master_port, "PUT", "/weights", [{"role": "a", "weight": 2}],
                                basic("ops"))
            assert status == 403


def test_bad_acls_stop_the_process_naming_the_field(tmp_path: Path) -> None:
    """A malformed ACL file: master and agent refuse to start, naming --acls and the path."""
    bad = tmp_path / "acls.json"
    bad.write_text(json.dumps({"run_tasks": [{"principals": ANY,
                                              "users": {"type": "SOME"}}]}))
    for argv in (mesoslite("master", "--ip", "127.0.0.1", "--http_port", "0", "--zmq_port",
                           "0", "--work_dir", str(tmp_path / "m"), "--acls", str(bad)),
                 mesoslite("agent", "--master", "127.0.0.1:1", "--http_port", "0",
                           "--work_dir", str(tmp_path / "a"), "--acls", str(bad)),
                 mesoslite("master", "--http_port", "0", "--zmq_port", "0", "--acls",
                           '{"run_task": []}')):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT,
                              check=False)
        output = done.stdout + done.stderr
        assert done.returncode != 0, output
        assert "--acls" in output, output
        assert "run_tasks[0].users.type" in output or "run_task" in output, output
