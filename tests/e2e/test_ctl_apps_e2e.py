"""`mesoslite ctl` app commands against a real `mesoslite local` with its Marathon-style framework.

Each command runs as a real process; after each one the test checks the framework's REST API
(and, for the shell app, that its HTTP servers answer).
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.marathon_procs import free_port_range
from tests.support.procs import ROOT, Proc, free_port, get_json, mesoslite, wait_for

APP = "/ctl-web"
DEFINITION = {
    "id": APP,
    "cmd": "python3 -m http.server $PORT0 --bind 127.0.0.1",
    "instances": 2,
    "cpus": 0.1,
    "mem": 32,
    "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0,
                      "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 2,
                      "maxConsecutiveFailures": 3, "delaySeconds": 0}],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    """`mesoslite local` with one agent and the framework on a free loopback port."""
    tmp = tmp_path_factory.mktemp("ctl_apps")
    port = free_port()
    first = free_port_range(100)  # host ports of its tasks, unused by other tests
    proc = Proc(mesoslite("local", "--agents", "1", "--port", "0", "--zmq_port", "0",
                          "--agent_port_base", "0", "--marathon_port", str(port), "--no_dns",
                          "--work_dir", str(tmp / "work"),
                          "--agent_resources",
                          f"cpus:2;mem:2048;disk:1024;ports:[{first}-{first + 99}]"),
                tmp / "local.log")
    try:
        proc.wait_output("Ctrl-C stops", timeout=60)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: get_json(f"{base}/v2/apps") == {"apps": []}, timeout=30,
                 what="GET /v2/apps answering")
        yield base, tmp
    finally:
        proc.stop()


def _ctl(base: str, *args: str, stdin: str | None = None,
         timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(mesoslite("ctl", "--marathon", base, *args), input=stdin, check=False,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"rc {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _app(base: str) -> dict[str, Any]:
    return get_json(f"{base}/v2/apps{APP}")["app"]


def _status(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method),
                                    timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _settled(base: str, instances: int) -> dict[str, Any]:
    """The app once its deployment ended: checked against the REST API."""
    app = _app(base)
    assert app["deployments"] == []
    assert get_json(f"{base}/v2/deployments") == []
    assert app["instances"] == instances
    assert (app["tasksRunning"], app["tasksHealthy"], app["tasksUnhealthy"]) == \
        (instances, instances, 0)
    live = [t for t in app["tasks"] if t["state"] == "TASK_RUNNING"]
    assert len(live) == instances
    for task in live:  # every instance is a real HTTP server on its host port
        assert _status(f"http://127.0.0.1:{task['ports'][0]}/") == 200
    return app


def test_deploy_scale_restart_rollback_destroy(stack, tmp_path: Path) -> None:
    """Each ctl command waits for its deployment; the REST API then shows its effect."""
    base, _tmp = stack
    spec = tmp_path / "app.json"
    spec.write_text(json.dumps(DEFINITION))

    out = _ok(_ctl(base, "deploy", str(spec)))
    assert f"{APP}: created: deployment " in out and "finished in" in out
    created = _settled(base, 2)

    table = _ok(_ctl(base, "apps")).splitlines()
    assert table[1].split()[:3] == [APP, "2/2", "2/0"]
    shown = json.loads(_ok(_ctl(base, "app", APP, "--json")))
    assert {t["id"] for t in shown["app"]["tasks"]} == {t["id"] for t in created["tasks"]}
    details = _ok(_ctl(base, "app", APP))
    assert all(f"127.0.0.1:{t['ports'][0]}" in details for t in created["tasks"])

    out = _ok(_ctl(base, "scale", APP, "3"))
    assert "scaling to 3" in out and f"{APP} 3 of 3 running, 3 healthy" in out
    scaled = _settled(base, 3)
    assert {t["id"] for t in created["tasks"]} < {t["id"] for t in scaled["tasks"]}

    out = _ok(_ctl(base, "restart", APP))
    assert "RestartApplication" in out
    restarted = _settled(base, 3)
    assert not {t["id"] for t in scaled["tasks"]} & {t["id"] for t in restarted["tasks"]}
    versions = get_json(f"{base}/v2/apps{APP}/versions")["versions"]
    assert versions[0] == restarted["version"] and len(versions) >= 3

    out = _ok(_ctl(base, "rollback", APP))  # default: the version before the current one
    assert f"rolling back to version {versions[1]}" in out
    _settled(base, 3)

    out = _ok(_ctl(base, "rollback", APP, created["version"]))
    assert f"rolling back to version {created['version']}" in out
    rolled = _settled(base, 2)
    assert rolled["version"] not in versions  # a rollback is a new version

    out = _ok(_ctl(base, "destroy", APP))
    assert f"{APP} destroyed" in out
    assert _status(f"{base}/v2/apps{APP}") == 404
    assert [t for t in get_json(f"{base}/v2/tasks")["tasks"] if t["appId"] == APP] == []
    for task in rolled["tasks"]:
        port = task["ports"][0]
        wait_for(lambda port=port: _refused(port), timeout=30, what=f"port {port} closed")


def _refused(port: int) -> bool:
    try:
        _status(f"http://127.0.0.1:{port}/")
    except (urllib.error.URLError, OSError):
        return True
    return False


def test_api_errors_conflicts_and_timeouts(stack) -> None:
    """404/409/422 exit 1 with the API's message; --force goes ahead; a timeout or Ctrl-C
    leaves the deployment running and says so."""
    base, _tmp = stack
    missing = _ctl(base, "scale", "/no-such-app", "2")
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr
    assert _status(f"{base}/v2/apps/no-such-app") == 404  # scale did not create it

    bad = _ctl(base, "deploy", "-", stdin=json.dumps({"id": "/bad", "cmd": "x", "cpus": -1}))
    assert bad.returncode == 1 and "HTTP 422" in bad.stderr and "/cpus" in bad.stderr

    huge = {**DEFINITION, "id": "/ctl-huge", "cpus": 64, "healthChecks": []}
    late = _ctl(base, "deploy", "-", "--timeout", "2", stdin=json.dumps(huge))
    assert late.returncode == 1, late.stdout + late.stderr
    dep_id = late.stdout.split("deployment ", 1)[1].split()[0]
    assert f"deployment {dep_id} of /ctl-huge did not finish within 2s" in late.stderr
    assert dep_id in {d["id"] for d in get_json(f"{base}/v2/deployments")}

    locked = _ctl(base, "scale", "/ctl-huge", "0")
    assert locked.returncode == 1 and "HTTP 409" in locked.stderr
    assert dep_id in locked.stderr and "--force" in locked.stderr

    waiting = subprocess.Popen(mesoslite("ctl", "--marathon", base, "scale", "/ctl-huge", "3",
                                         "--force"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        first = waiting.stdout.readline() if waiting.stdout else ""
        assert "/ctl-huge: scaling to 3: deployment " in first, first
        progress = waiting.stdout.readline() if waiting.stdout else ""
        assert progress.startswith("/ctl-huge: 0/3 running"), progress
        waiting.send_signal(signal.SIGINT)
        rest, _err = waiting.communicate(timeout=30)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    forced = first.split("deployment ", 1)[1].split()[0]
    assert waiting.returncode == 130
    assert f"interrupted: deployment {forced} of /ctl-huge keeps running" in rest
    assert [d["id"] for d in get_json(f"{base}/v2/deployments")] == [forced]

    out = _ok(_ctl(base, "scale", "/ctl-huge", "0", "--force"))
    assert "/ctl-huge 0 of 0 running" in out
    assert get_json(f"{base}/v2/deployments") == []
    out = _ok(_ctl(base, "destroy", "/ctl-huge", "--no-wait"))
    dep_id = out.split("deployment ", 1)[1].split()[0]
    wait_for(lambda: dep_id not in {d["id"] for d in get_json(f"{base}/v2/deployments")},
             timeout=30, what="the destroy deployment ending")
    assert _status(f"{base}/v2/apps/ctl-huge") == 404
