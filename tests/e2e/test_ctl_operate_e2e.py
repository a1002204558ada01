"""`mesoslite ctl kill|teardown|weights|top` against a real `mesoslite local` (master, agent,
Marathon-style framework) and a plain framework run by a real scheduler driver.

Each command runs as a real process; the test then checks the master's (and the framework's)
HTTP answers.
"""

from __future__ import annotations

import subprocess
import urllib.request
from typing import Any

import pytest

from mesoslite.protocol import TaskState
from tests.support.frameworks import RecordingScheduler, ShapeLauncher, running_framework
from tests.support.marathon_procs import free_port_range
from tests.support.procs import ROOT, Proc, free_port, get_json, mesoslite, wait_for

APP = "/ctl-kill"
DEFINITION = {"id": APP, "cmd": "python3 -c 'import time\nwhile True: sum(range(10**5))'",
              "instances": 2, "cpus": 0.1, "mem": 32}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    """`mesoslite local` with one agent; yields (master URL, zmq address, framework URL)."""
    tmp = tmp_path_factory.mktemp("ctl_operate")
    http, zmq_port, marathon = free_port(), free_port(), free_port()
    first = free_port_range(100)
    proc = Proc(mesoslite("local", "--agents", "1", "--port", str(http), "--zmq_port",
                          str(zmq_port), "--agent_port_base", "0", "--marathon_port",
                          str(marathon), "--no_dns", "--work_dir", str(tmp / "work"),
                          "--agent_resources",
                          f"cpus:4;mem:2048;disk:1024;ports:[{first}-{first + 99}]"),
                tmp / "local.log")
    try:
        proc.wait_output("Ctrl-C stops", timeout=60)
        base = f"http://127.0.0.1:{marathon}"
        wait_for(lambda: get_json(f"{base}/v2/apps") == {"apps": []}, timeout=30,
                 what="GET /v2/apps answering")
        yield f"http://127.0.0.1:{http}", f"127.0.0.1:{zmq_port}", base
    finally:
        proc.stop()


def _ctl(master: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(mesoslite("ctl", "--master", master, *args), check=False,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"rc {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _tasks(master: str) -> dict[str, dict[str, Any]]:
    state = get_json(f"{master}/state")
    found: dict[str, dict[str, Any]] = {}
    for fw in state["frameworks"] + state.get("completed_frameworks", []):
        for key in ("tasks", "completed_tasks"):
            for task in fw.get(key, []):
                found[task["id"]] = task
    return found


def _running_app_tasks(base: str) -> list[str]:
    tasks = get_json(f"{base}/v2/apps{APP}/tasks")["tasks"]
    return sorted(t["id"] for t in tasks if t.get("state") == "TASK_RUNNING")


def test_top_then_kill_a_framework_task(stack) -> None:
    """`ctl top --once` lists the app's tasks with cpu and memory; `ctl kill` ends one
    through the framework, which starts a replacement."""
    master, _zmq, base = stack
    body = __import__("json").dumps(DEFINITION).encode()
    req = urllib.request.Request(f"{base}/v2/apps", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as response:
        assert response.status == 201
    wait_for(lambda: len(_running_app_tasks(base)) == 2, timeout=60, what="2 running tasks")
    ids = _running_app_tasks(base)

    def busy_rows() -> list[list[str]] | None:
        lines = _ok(_ctl(master, "top", "--once")).splitlines()
        assert lines[0].split() == ["TASK", "NAME", "AGENT", "CPU%", "CPUS", "MEM_MB",
                                    "LIMIT_MB", "PROCS"]
        rows = [line.split() for line in lines[1:] if line.split()[0] in ids]
        # The tasks spin: once measured over a second each uses visible cpu and memory.
        return rows if len(rows) == 2 and all(float(r[3]) > 1 and float(r[5]) > 1
                                              for r in rows) else None

    rows = wait_for(busy_rows, timeout=60, what="ctl top showing both busy tasks")
    assert all(r[6] == "32.0" for r in rows), rows

    victim = ids[0]
    out = _ok(_ctl(master, "kill", victim))
    assert f"kill of task {victim} (app {APP})" in out
    assert f"task {victim}: TASK_KILLED" in out
    assert _tasks(master)[victim]["state"] == "TASK_KILLED"
    wait_for(lambda: len(_running_app_tasks(base)) == 2 and victim not in _running_app_tasks(base),
             timeout=60, what="a replacement task running")

    again = _ctl(master, "kill", victim)
    assert again.returncode == 1 and f"task {victim} already ended (TASK_KILLED)" in again.stderr
    missing = _ctl(master, "kill", "no-such-task")
    assert missing.returncode == 1 and "task no-such-task is not known" in missing.stderr
    wrong_fw = _ctl(master, "kill", ids[1], "--framework", "other-framework")
    assert wrong_fw.returncode == 1 and "of framework other-framework" in wrong_fw.stderr
    assert _tasks(master)[ids[1]]["state"] == "TASK_RUNNING"


def test_kill_refused_for_plain_framework_then_teardown(stack) -> None:
    """A framework without the /v2 API: `ctl kill` names it and kills nothing;
    `ctl teardown` needs --yes, then the master kills its task and completes it."""
    master, zmq, _base = stack
    scheduler = RecordingScheduler(ShapeLauncher("plain", "cpus:0.1;mem:16", "sleep 600",
                                                 limit=1))
    with running_framework(zmq, scheduler, "plain-fw") as _driver:
        scheduler.wait_state("plain-1", TaskState.TASK_RUNNING, timeout=60)
        fw_id = scheduler.framework_id

        refused = _ctl(master, "kill", "plain-1")
        assert refused.returncode == 1
        assert f"belongs to framework {fw_id} (plain-fw)" in refused.stderr
        assert f"ctl teardown {fw_id} --yes" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert _tasks(master)["plain-1"]["state"] == "TASK_RUNNING"

        unconfirmed = _ctl(master, "teardown", fw_id)
        assert unconfirmed.returncode == 1 and "add --yes" in unconfirmed.stderr
        assert "1 live task(s)" in unconfirmed.stderr
        assert any(f["id"] == fw_id for f in get_json(f"{master}/state")["frameworks"])

        out = _ok(_ctl(master, "teardown", fw_id, "--yes"))
        assert f"framework {fw_id} (plain-fw) torn down" in out
        state = get_json(f"{master}/state")
        assert not any(f["id"] == fw_id for f in state["frameworks"])
        assert any(f["id"] == fw_id for f in state["completed_frameworks"])
        wait_for(lambda: _tasks(master)["plain-1"]["state"] == "TASK_KILLED", timeout=30,
                 what="the torn-down framework's task killed")

        twice = _ctl(master, "teardown", fw_id, "--yes")
        assert twice.returncode == 1 and "already completed" in twice.stderr
    unknown = _ctl(master, "teardown", "no-such-fw", "--yes")
    assert unknown.returncode == 1 and "framework no-such-fw is not known" in unknown.stderr


def _weights(master: str) -> dict[str, float]:
    return {w["role"]: w["weight"] for w in get_json(f"{master}/weights")}


def test_weights_list_update_and_bad_arguments(stack) -> None:
    """`ctl weights` lists; ROLE=WEIGHT updates; bad arguments name themselves, change nothing."""
    master, _zmq, _base = stack
    out = _ok(_ctl(master, "weights", "eng=2", "ops/web=0.5"))
    expected = {"*": 1.0, "eng": 2.0, "ops/web": 0.5}
    assert _weights(master) == expected
    listing = _ok(_ctl(master, "weights"))
    assert listing == out
    assert [line.split() for line in listing.splitlines()] == [
        ["ROLE", "WEIGHT"], ["*", "1"], ["eng", "2"], ["ops/web", "0.5"]]
    for bad, said in [("eng=0", "weight 'eng=0': expected a finite number > 0"),
                      ("eng=-1", "weight 'eng=-1': expected a finite number > 0"),
                      ("eng=nan", "weight 'eng=nan'"), ("eng=inf", "weight 'eng=inf'"),
                      ("eng=x", "weight 'eng=x'"), ("eng", "weight 'eng': expected ROLE=WEIGHT"),
                      ("a b=1", "weight 'a b=1': role 'a b'"), ("..=1", "weight '..=1'")]:
        result = _ctl(master, "weights", "ops=3", bad)
        assert result.returncode == 1, bad
        assert said in result.stderr, (bad, result.stderr)
    twice = _ctl(master, "weights", "eng=1", "eng=3")
    assert twice.returncode == 1 and "role 'eng' given twice" in twice.stderr
    assert _weights(master) == expected
