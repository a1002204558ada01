"""HTTP authentication on real processes: master and agent (Mesos's flags and credentials
file), the Marathon-style framework (``--http_credentials``), ctl, and the master's proxy
to its agents."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode

from tests.support.procs import ROOT, Proc, mesoslite, wait_for

CREDENTIALS = {"credentials": [{"principal": "ops", "secret": "ops-secret"},
                               {"principal": "ci", "secret": "ci-secret"}]}
GOOD = "Basic " + base64.b64encode(b"ops:ops-secret").decode()
WRONG = "Basic " + base64.b64encode(b"ops:guess").decode()


def call(port: int, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """(status, lower-cased headers, JSON body or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        hdrs = dict(headers or {})
        if method in ("POST", "PUT") and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        response = conn.getresponse()
        raw = response.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw[:200]
        return response.status, {k.lower(): v for k, v in response.getheaders()}, parsed
    finally:
        conn.close()


def _port(proc: Proc, kind: str) -> int:
    output = proc.wait_output(f"mesoslite {kind}:", timeout=30)
    return int(re.search(rf"mesoslite {kind}: http://[\d.]+:(\d+)", output).group(1))  # type: ignore[union-attr]


def _refused_then_served(port: int, path: str, realm: str) -> None:
    status, headers, body = call(port, "GET", path)
    assert status == 401, (path, status, body)
    assert headers["www-authenticate"] == f'Basic realm="{realm}"'
    assert body["field"] == "Authorization"
    assert call(port, "GET", path, headers={"Authorization": WRONG})[0] == 401
    assert call(port, "GET", path, headers={"Authorization": GOOD})[0] == 200


def test_every_api_authenticates_and_the_tools_pass_credentials(tmp_path: Path) -> None:
    """401 without or with wrong credentials, served with them; health checks stay open."""
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps(CREDENTIALS))
    os.chmod(creds, 0o600)
    auth = ["--authenticate_http_readonly", "true", "--authenticate_http_readwrite", "true",
            "--credentials", str(creds)]
    procs: list[Proc] = []
    try:
        master = Proc(mesoslite("master", "--ip", "127.0.0.1", "--http_port", "0",
                                "--zmq_port", "0", "--work_dir", str(tmp_path / "m"),
                                "--allocation_interval", "0.1", *auth), tmp_path / "m.log")
        procs.append(master)
        master_port = _port(master, "master")
        zmq = re.search(r"zmq tcp://([\d.]+:\d+)", master.output()).group(1)  # type: ignore[union-attr]
        agent = Proc(mesoslite("agent", "--master", zmq, "--ip", "127.0.0.1", "--http_port", "0",
                               "--work_dir", str(tmp_path / "a"), *auth), tmp_path / "a.log")
        procs.append(agent)
        agent_port = _port(agent, "agent")
        marathon = Proc(mesoslite("marathon", "--master", zmq, "--http_address", "127.0.0.1",
                                  "--http_port", "0", "--state_dir", str(tmp_path / "s")),
                        tmp_path / "f.log",
                        env={"MESOSLITE_HTTP_CREDENTIALS": "ops:ops-secret"})
        procs.append(marathon)
        marathon_port = _port(marathon, "marathon")

        for port, path, realm in ((master_port, "/state", "mesos"),
                                  (agent_port, "/state", "mesos"),
                                  (marathon_port, "/v2/apps", "Mesosphere")):
            _refused_then_served(port, path, realm)
        for port, path in ((master_port, "/health"), (agent_port, "/health"),
                           (marathon_port, "/ping")):
            assert call(port, "GET", path)[0] == 200, path
        # Writes: refused without credentials; with them a form post to /teardown is
        # accepted as Mesos defines it (and answered for the unknown framework).
        assert call(master_port, "PUT", "/weights", [{"role": "a", "weight": 2}])[0] == 401
        assert call(master_port, "PUT", "/weights", [{"role": "a", "weight": 2}],
                    {"Authorization": GOOD})[0] == 200
        form = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": GOOD}
        status, _, body = call(master_port, "POST", "/teardown", b"frameworkId=nope", form)
        assert (status, body["field"]) == (400, "framework_id"), body
        app = {"id": "/authed", "cmd": "echo hello-auth; exec sleep 600", "cpus": 0.1,
               "mem": 16, "instances": 1}
        assert call(marathon_port, "POST", "/v2/apps", app)[0] == 401
        assert call(marathon_port, "POST", "/v2/apps", app, {"Authorization": GOOD})[0] == 201

        def running_task() -> dict[str, Any] | None:
            _, _, body = call(marathon_port, "GET", "/v2/apps/authed?embed=apps.tasks",
                              headers={"Authorization": GOOD})
            tasks = [t for t in body["app"]["tasks"] if t["state"] == "TASK_RUNNING"]
            return tasks[0] if tasks else None

        task = wait_for(running_task, timeout=60, what="the app runs")
        # The master's proxy passes the user's credentials on to the agent.
        [sandbox] = list((tmp_path / "a").glob(f"agents/*/frameworks/*/executors/{task['id']}"
                                                "/runs/latest"))
        query = urllib.parse.urlencode({"path": os.path.realpath(sandbox / "stdout")})
        proxied = f"/agents/{task['slaveId']}/files/read?{query}"
        assert call(master_port, "GET", proxied)[0] == 401
        status, _, page = call(master_port, "GET", proxied, headers={"Authorization": GOOD})
        assert status == 200 and "hello-auth" in page["data"], (status, page)
        # ctl takes credentials from the environment (never from a URL or a flag).
        ctl = [sys.executable, "-m", "mesoslite.cli", "ctl", "--master",
               f"http://127.0.0.1:{master_port}", "agents"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESOSLITE_")}
        denied = subprocess.run(ctl, capture_output=True, text=True, env=env, cwd=ROOT,
                                timeout=60, check=False)
        assert denied.returncode != 0 and "401" in denied.stdout + denied.stderr
        secret_file = tmp_path / "secret"
        secret_file.write_text("ops-secret\n")
        allowed = subprocess.run(ctl, capture_output=True, text=True, cwd=ROOT, timeout=60,
                                 env={**env, "MESOSLITE_PRINCIPAL": "ops",
                                      "MESOSLITE_SECRET_FILE": str(secret_file)}, check=False)
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        for proc in procs:
            assert "ops-secret" not in proc.output()
    finally:
        for proc in reversed(procs):
            proc.stop()


def test_local_with_credentials_authenticates_every_api(tmp_path: Path) -> None:
    """``mesoslite local --credentials FILE``: master, agent and framework all ask; a task
    launched with credentials runs, and the DNS server, following the master's operator
    stream with the credentials, resolves it."""
    from tests.support.procs import free_port

    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps(CREDENTIALS))
    os.chmod(creds, 0o600)
    ports = [free_port() for _ in range(4)]
    local = Proc(mesoslite("local", "--agents", "1", "--port", str(ports[0]), "--zmq_port",
                           str(ports[1]), "--agent_port_base", str(ports[2]), "--marathon_port",
                           str(ports[3]), "--work_dir", str(tmp_path / "w"),
                           "--dns_port", "0", "--dns_http_port", "0",
                           "--credentials", str(creds)), tmp_path / "local.log")
    try:
        output = local.wait_output("Ctrl-C", timeout=60)
        dns_port = int(re.search(r"  dns [\d.]+:(\d+) ", output).group(1))  # type: ignore[union-attr]
        agent_port = int(re.search(r"agent \S+ http://[\d.]+:(\d+)", output).group(1))  # type: ignore[union-attr]
        _refused_then_served(ports[0], "/state", "mesos")
        _refused_then_served(agent_port, "/state", "mesos")
        _refused_then_served(ports[3], "/v2/apps", "Mesosphere")
        app = {"id": "/local-auth", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16}
        ci = "Basic " + base64.b64encode(b"ci:ci-secret").decode()
        assert call(ports[3], "POST", "/v2/apps", app, {"Authorization": ci})[0] == 201
        wait_for(lambda: call(ports[3], "GET", "/v2/apps/local-auth",
                              headers={"Authorization": GOOD})[2]["app"]["tasksRunning"] == 1,
                 timeout=60, what="the app runs")

        def resolved() -> bool:
            query = dns.message.make_query("local-auth.marathon.mesos", "A")
            reply = dns.query.udp(query, "127.0.0.1", port=dns_port, timeout=2)
            return reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)

        wait_for(resolved, timeout=30, what="the DNS server resolving the app")
        assert "ci-secret" not in local.output()
    finally:
        local.stop()
