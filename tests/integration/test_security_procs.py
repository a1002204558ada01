"""The attacker's probes against real processes (master, agent, marathon): refused or harmless.

One cluster (a master, an agent and the Marathon-style framework, each its own process on
loopback) serves every probe of this module; each test checks afterwards that the
cluster still serves and launches.
"""

from __future__ import annotations

import http.client
import json
import re
import shlex
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.cluster_procs import ProcCluster
from tests.support.marathon_procs import MarathonCluster, MarathonProc, shell_app
from tests.support.procs import Proc, holds, mesoslite, wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarathonCluster]:
    """A master, one agent and a marathon process for this module."""
    with MarathonCluster(tmp_path_factory.mktemp("security"), agents=1) as running:
        yield running


def raw(port: int, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """One request with exactly ``headers`` (no Content-Type unless given): (status, JSON)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        decoded = json.loads(data) if data else {}
    except ValueError:
        decoded = {"raw": data[:200].decode(errors="replace")}
    return response.status, decoded if isinstance(decoded, dict) else {"value": decoded}


def _app_exists(cluster: MarathonCluster, app_id: str) -> bool:
    return cluster.client.get(f"/v2/apps/{app_id}").status == 200


def test_csrf_app_post_without_json_type_is_refused(cluster: MarathonCluster) -> None:
    """The CSRF probe: POST /v2/apps with no or a form Content-Type is 415, nothing runs."""
    port = cluster.marathon_proc.port  # type: ignore[union-attr]
    body = json.dumps(shell_app("/csrf", 1, cmd="id > pwned; sleep 600")).encode()
    for headers in ({}, {"Content-Type": "text/plain"},
                    {"Content-Type": "application/x-www-form-urlencoded",
                     "Origin": "http://evil.example"}):
        status, answer = raw(port, "POST", "/v2/apps", body, headers)
        assert status in (403, 415), (headers, status, answer)
        assert answer["field"] in ("Content-Type", "Origin"), answer
    assert not _app_exists(cluster, "csrf")


def test_foreign_origin_write_is_403_and_same_origin_works(cluster: MarathonCluster) -> None:
    """A JSON write from another origin is 403 naming it; the UI's own origin is served."""
    port = cluster.marathon_proc.port  # type: ignore[union-attr]
    app = json.dumps(shell_app("/origin-check", 1, cmd="exec sleep 600",
                               healthChecks=[])).encode()
    json_type = {"Content-Type": "application/json"}
    status, answer = raw(port, "POST", "/v2/apps", app,
                         {**json_type, "Origin": "http://evil.example"})
    assert (status, answer["field"]) == (403, "Origin"), answer
    assert "evil.example" in answer["message"]
    assert not _app_exists(cluster, "origin-check")
    status, answer = raw(port, "DELETE", "/v2/apps/anything", None,
                         {"Origin": "http://evil.example"})
    assert status == 403, answer
    status, answer = raw(port, "POST", "/v2/apps", app,
                         {**json_type, "Origin": f"http://127.0.0.1:{port}"})
    assert status == 201, answer
    wait_for(lambda: cluster.client.app("/origin-check")["tasksRunning"] == 1, timeout=40,
             what="the same-origin app runs")
    assert cluster.client.request("DELETE", "/v2/apps/origin-check?force=true").status == 200


def test_form_teardown_of_the_framework_is_refused(cluster: MarathonCluster) -> None:
    """The form-encoded POST /teardown probe: 415, the framework stays registered."""
    master = cluster.master
    form = f"frameworkId={cluster.framework_id}".encode()
    status, answer = raw(master.http_port, "POST", "/teardown", form,
                         {"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, answer["field"]) == (415, "Content-Type"), answer
    status, answer = raw(master.http_port, "POST", "/master/teardown", form, {})
    assert status == 415, answer
    status, answer = raw(master.http_port, "POST", "/teardown",
                         json.dumps({"framework_id": cluster.framework_id}).encode(),
                         {"Content-Type": "application/json", "Origin": "http://evil.example"})
    assert (status, answer["field"]) == (403, "Origin"), answer
    assert master.framework(cluster.framework_id) is not None
    assert cluster.client.ok("GET", "/v2/info")["frameworkId"] == cluster.framework_id


def test_dns_rebinding_host_is_refused_everywhere(cluster: MarathonCluster) -> None:
    """A Host naming another site is 403 on master, agent and marathon; own names serve."""
    ports = {"master": (cluster.master.http_port, "/state"),
             "agent": (cluster.agents[0].http_port, "/state"),
             "marathon": (cluster.marathon_proc.port, "/v2/apps")}  # type: ignore[union-attr]
    for name, (port, path) in ports.items():
        status, answer = raw(port, "GET", path, headers={"Host": f"rebind.example:{port}"})
        assert (status, answer.get("field")) == (403, "Host"), (name, status, answer)
        for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
            status, _ = raw(port, "GET", path, headers={"Host": host})
            assert status == 200, (name, host, status)


#: A task that plants a FIFO, a device, links out of its sandbox (to another task's
#: sandbox, the agent's checkpoints and /etc/shadow), then runs.
PLANTER = ("mkfifo pipe; mknod dev c 1 5 2>/dev/null || true; ln -s /etc/shadow shadow; "
           "ln -s ../../../../../../../../meta meta; ln -s /dev/zero zero; "
           "touch planted; exec sleep 600")


def test_fifo_device_and_links_in_a_sandbox_cannot_stall_or_escape_files(
        cluster: MarathonCluster) -> None:
    """/files refuses a FIFO, a device and links out of the sandbox at once; launching goes on."""
    client = cluster.client
    client.ok("POST", "/v2/apps", shell_app("/planter", 1, cmd=PLANTER, healthChecks=[]),
              expect=201)
    client.ok("POST", "/v2/apps", shell_app("/neighbour", 1, cmd="echo neighbour-secret > "
                                            "secret; exec sleep 600", healthChecks=[]),
              expect=201)
    tasks = {}
    for app in ("planter", "neighbour"):
        tasks[app] = wait_for(lambda a=app: next(
            (t for t in client.app(f"/{a}")["tasks"] if t["state"] == "TASK_RUNNING"), None),
            timeout=40, what=f"{app} runs")
    sandbox = cluster.sandbox(tasks["planter"])
    wait_for(lambda: (sandbox / "planted").exists(), timeout=20, what="the planter planted")
    other = cluster.sandbox(tasks["neighbour"])
    (sandbox / "neighbour").symlink_to(other / "secret")
    agent = cluster.agent_of(tasks["planter"]["slaveId"])
    names = ["pipe", "dev", "shadow", "meta/agents", "zero", "neighbour"]
    for round_ in range(3):  # repeated: nothing is left blocked behind a refused read
        for name in names:
            for endpoint in ("read", "download", "browse"):
                path = urllib.parse.quote(str(sandbox / name))
                status, answer = raw(agent.http_port, "GET",
                                     f"/files/{endpoint}?path={path}&offset=0")
                if endpoint == "browse" and name in ("pipe", "dev"):
                    assert status == 200, (round_, name, endpoint, status, answer)
                    continue  # listing a FIFO's metadata is harmless; reading it is not
                assert status in (403, 404), (round_, name, endpoint, status, answer)
                assert "neighbour-secret" not in json.dumps(answer)
        master_path = urllib.parse.quote(str(sandbox / "pipe"))
        status, answer = raw(cluster.master.http_port, "GET",
                             f"/agents/{agent.agent_id}/files/read?path={master_path}")
        assert status == 403, (status, answer)
    status, answer = raw(agent.http_port, "GET", "/files/read?path=" +
                         urllib.parse.quote(str(agent.work_dir / "meta")))
    assert status == 403, answer
    # The cluster keeps launching.
    client.ok("POST", "/v2/apps", shell_app("/after-probe", 1, cmd="exec sleep 600",
                                            healthChecks=[]), expect=201)
    wait_for(lambda: client.app("/after-probe")["tasksRunning"] == 1, timeout=40,
             what="a new app runs after the /files probes")
    for app in ("planter", "neighbour", "after-probe"):
        client.request("DELETE", f"/v2/apps/{app}?force=true")


def test_a_frame_packed_with_bad_envelopes_gets_one_answer(cluster: MarathonCluster) -> None:
    """The 419k-envelope probe: one 2 MB frame of bad envelopes gets one ProtocolError."""
    import msgpack
    import zmq

    one = msgpack.packb([1, "Pong", {"agent_id": 123}])
    frame = one * (2 * 1024 * 1024 // len(one))
    assert len(frame) // len(one) > 100_000
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(cluster.master.zmq_endpoint)
    try:
        sock.send(frame)
        replies: list[bytes] = []
        while sock.poll(1500):
            replies.extend(sock.recv_multipart())
        assert len(replies) == 1, [len(r) for r in replies[:5]]
        envelope = msgpack.unpackb(replies[0], raw=False)
        assert envelope[1] == "ProtocolError"
        assert "more faults in this frame" in envelope[2]["message"]
        for _ in range(300):  # a flood from one peer: answers are rate-limited
            sock.send(one)
        answered = 0
        while sock.poll(1000):
            answered += len(sock.recv_multipart())
        assert 0 < answered < 300
    finally:
        sock.close(0)
    status, _ = raw(cluster.master.http_port, "GET", "/health")
    assert status == 200
    assert cluster.master.framework(cluster.framework_id) is not None


def test_idle_connection_flood_leaves_the_master_responsive_and_its_log_small(
        tmp_path: Path) -> None:
    """The fd probe: with 256 fds, 300 idle connections; /health answers, no spin, small log."""
    log_path = tmp_path / "master.log"
    command = " ".join(shlex.quote(arg) for arg in mesoslite(
        "master", "--ip", "127.0.0.1", "--http_port", "0", "--zmq_port", "0",
        "--work_dir", str(tmp_path / "work")))
    proc = Proc(["sh", "-c", f"ulimit -n 256 && exec {command}"], log_path)
    idle: list[socket.socket] = []
    try:
        output = proc.wait_output("mesoslite master:", timeout=30)
        port = int(re.search(r"http://[\d.]+:(\d+)", output).group(1))  # type: ignore[union-attr]
        for _ in range(300):
            conn = socket.socket()
            conn.settimeout(10)
            conn.connect(("127.0.0.1", port))
            idle.append(conn)
        for _ in range(3):
            status, _ = raw(port, "GET", "/health")
            assert status == 200
        master = psutil.Process(proc.pid)
        before = sum(master.cpu_times()[:2])
        for _ in range(20):
            assert raw(port, "GET", "/health")[0] == 200
        wait_for(lambda: raw(port, "GET", "/metrics/snapshot")[0] == 200, timeout=10,
                 what="the master answers")
        used = sum(master.cpu_times()[:2]) - before
        assert used < 5.0, f"the master used {used:.1f} s of CPU for 21 requests"
        assert master.num_fds() < 256
    finally:
        for conn in idle:
            conn.close()
        proc.stop()
    size = log_path.stat().st_size
    assert size < 20_000, f"the master wrote {size} bytes of log:\n{proc.output()[-3000:]}"
    assert "Traceback" not in proc.output()


def test_state_files_are_private_and_secrets_masked(tmp_path: Path) -> None:
    """Checkpoints, the framework's journal and the registry are 0600 in 0700 dirs; flags mask."""
    root = tmp_path / "cluster"
    with MarathonCluster(root, agents=1) as running:
        running.client.ok("POST", "/v2/apps", shell_app(
            "/secret-env", 1, cmd="exec sleep 600", healthChecks=[],
            env={"DB_PASSWORD": "hunter2"}), expect=201)
        wait_for(lambda: running.client.app("/secret-env")["tasksRunning"] == 1, timeout=40,
                 what="the app runs")
        agent = running.agents[0]
        holders = [p for p in (agent.work_dir / "meta").rglob("*") if p.is_file()]
        holders += [p for p in (root / "marathon-state").rglob("*") if p.is_file()]
        holders += list(running.master.work_dir.rglob("registry*"))
        assert any("journal" in p.name for p in holders), holders
        for path in holders:
            assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))
        for directory in (agent.work_dir / "meta", root / "marathon-state"):
            assert directory.stat().st_mode & 0o077 == 0, directory
        status, answer = raw(agent.http_port, "GET", "/files/read?path=" + urllib.parse.quote(
            str(next(p for p in holders if "journal" in p.name))))
        assert status == 403 and "hunter2" not in json.dumps(answer)


def test_zk_password_is_masked_in_flags_state_and_log(tmp_path: Path) -> None:
    """An agent following zk://user:password@… never shows the password."""
    log_path = tmp_path / "agent.log"
    proc = Proc(mesoslite("agent", "--ip", "127.0.0.1", "--http_port", "0",
                          "--work_dir", str(tmp_path / "work"),
                          "--master", "zk://ops:s3cr3t-pw@127.0.0.1:9/mesoslite"), log_path)
    try:
        output = proc.wait_output("mesoslite agent:", timeout=30)
        port = int(re.search(r"http://[\d.]+:(\d+)", output).group(1))  # type: ignore[union-attr]
        for path in ("/flags", "/state"):
            status, answer = raw(port, "GET", path)
            assert status == 200
            text = json.dumps(answer)
            assert "s3cr3t-pw" not in text and "zk://ops:***@" in text, path
    finally:
        proc.stop()
    assert "s3cr3t-pw" not in proc.output()


def test_a_flipped_bit_in_the_checkpoint_is_refused_not_truncated(tmp_path: Path) -> None:
    """The checkpoint probe: a restarted agent refuses a damaged journal and keeps it whole."""
    root = tmp_path / "cluster"
    with MarathonCluster(root, agents=1) as running:
        running.client.ok("POST", "/v2/apps", shell_app("/kept", 3, cmd="exec sleep 600",
                                                        healthChecks=[]), expect=201)
        wait_for(lambda: running.client.app("/kept")["tasksRunning"] == 3, timeout=60,
                 what="3 tasks run")
        agent = running.agents[0]
        agent.kill9()
        [journal] = (agent.work_dir / "meta").rglob("journal")
        data = bytearray(journal.read_bytes())
        data[len(data) // 8] ^= 0x04  # one bit, early in the file
        journal.write_bytes(bytes(data))
        flags = ["--master", running.master.address, "--ip", "127.0.0.1", "--http_port", "0",
                 "--work_dir", str(agent.work_dir)]
        again = Proc(mesoslite("agent", *flags), tmp_path / "agent-again.log")
        try:
            wait_for(lambda: not again.alive(), timeout=30, what="the agent refuses to start")
        finally:
            again.stop()
        assert again.popen.returncode != 0
        output = again.output()
        assert "is corrupt at byte" in output and "Traceback" not in output, output[-2000:]
        assert journal.read_bytes() == data  # never truncated
        copies = list(journal.parent.glob("journal.corrupt-*"))
        assert copies and copies[0].read_bytes() == data


def _limited(kind: str, tmp_path: Path, blocks: int, *flags: str) -> tuple[Proc, int]:
    """``mesoslite <kind>`` whose files may not grow past ``blocks`` × 512 bytes."""
    command = " ".join(shlex.quote(arg) for arg in mesoslite(kind, *flags))
    proc = Proc(["sh", "-c", f"ulimit -f {blocks} && exec {command}"], tmp_path / f"{kind}.log")
    output = proc.wait_output(f"mesoslite {kind}:", timeout=30)
    port = int(re.search(r"http://[\d.]+:(\d+)", output).group(1))  # type: ignore[union-attr]
    return proc, port


def test_a_full_disk_is_507_and_the_master_keeps_running(tmp_path: Path) -> None:
    """A registry write the disk refuses is retried: PUT /weights is 507 naming it; no exit."""
    proc, port = _limited("master", tmp_path, 4, "--ip", "127.0.0.1", "--http_port", "0",
                          "--zmq_port", "0", "--work_dir", str(tmp_path / "work"),
                          "--registry_store_timeout", "2")
    try:
        status, _ = raw(port, "PUT", "/weights", json.dumps([{"role": "small", "weight": 2}])
                        .encode(), {"Content-Type": "application/json"})
        assert status == 200
        many = [{"role": f"role-{i:04d}-{'x' * 40}", "weight": 1.5} for i in range(200)]
        status, answer = raw(port, "PUT", "/weights", json.dumps(many).encode(),
                             {"Content-Type": "application/json"})
        assert status == 507, answer
        assert "File too large" in answer["message"], answer
        assert proc.alive()
        assert raw(port, "GET", "/health")[0] == 200
        assert raw(port, "GET", "/state")[0] == 200
    finally:
        proc.stop()
    assert proc.popen.returncode == 0, proc.output()[-2000:]  # stopped by us, not exited


def test_an_agent_that_cannot_checkpoint_holds_its_updates(tmp_path: Path) -> None:
    """The agent's disk fills: /health is 503 naming it; no update the master has was not
    checkpointed first (messages are held, not sent)."""
    from mesoslite.agent.journal import parse

    procs = ProcCluster(tmp_path / "cluster")
    agent: Proc | None = None
    framework: MarathonProc | None = None
    try:
        master = procs.start_master()
        work = tmp_path / "agent"
        agent, port = _limited("agent", tmp_path, 128, "--master", master.address, "--ip",
                               "127.0.0.1", "--http_port", "0", "--work_dir", str(work),
                               "--resources", "cpus:8;mem:4096", "--registration_backoff_factor",
                               "0.1")
        framework = MarathonProc(master, tmp_path / "marathon-state", tmp_path / "m.log",
                                 {"max_instances_per_offer": 2})
        framework.client.ok("POST", "/v2/apps", shell_app("/first", 2, cmd="exec sleep 600",
                                                          healthChecks=[], mem=16), expect=201)
        wait_for(lambda: framework.client.app("/first")["tasksRunning"] == 2, timeout=60,
                 what="the first tasks run (their updates checkpointed)")
        framework.client.ok("POST", "/v2/apps", shell_app("/fill", 40, cmd="exec sleep 600",
                                                          healthChecks=[], mem=16), expect=201)
        wait_for(lambda: raw(port, "GET", "/health")[0] == 503, timeout=60,
                 what="the agent's checkpoint fails")
        _status, answer = raw(port, "GET", "/health")
        assert "File too large" in answer["error"], answer
        assert agent.alive()
        [journal] = (work / "meta").rglob("journal")

        def unsent_updates() -> set[tuple[str, str]]:
            seen = {(t["id"], t["state"]) for fw in master.state()["frameworks"]
                    for t in fw["tasks"] if t["state"] != "TASK_STAGING"}
            records, _end, _legacy = parse(journal.read_bytes())
            checkpointed = {(r[4], r[5]["status"]["state"]) for r, _raw in records
                            if r[0] == "UPDATE"}
            return seen - checkpointed

        # Executors started before the disk filled keep reporting: none of it may leave.
        holds(lambda: not unsent_updates(), 5.0, "no update leaves before its checkpoint")
        assert agent.alive()
        running = sum(1 for fw in master.state()["frameworks"] for t in fw["tasks"]
                      if t["state"] == "TASK_RUNNING")
        assert 2 <= running < 42, running
    finally:
        if framework is not None:
            framework.proc.stop()
        if agent is not None:
            agent.stop()
        procs.stop()


def test_a_full_disk_is_507_on_the_framework_api(tmp_path: Path) -> None:
    """Marathon's POST /v2/apps on a full state disk is 507 naming it; the API keeps serving."""
    procs = ProcCluster(tmp_path / "cluster")
    framework: Proc | None = None
    try:
        master = procs.start_master()
        framework, port = _limited("marathon", tmp_path, 64, "--master", master.address,
                                   "--http_address", "127.0.0.1", "--http_port", "0",
                                   "--state_dir", str(tmp_path / "state"))
        wait_for(lambda: raw(port, "GET", "/ping")[0] == 200, timeout=20, what="/ping")
        big = shell_app("/big", 0, cmd="exec sleep 600", healthChecks=[],
                        env={f"VAR_{i}": "x" * 1000 for i in range(60)})
        status, answer = raw(port, "POST", "/v2/apps", json.dumps(big).encode(),
                             {"Content-Type": "application/json"})
        assert status == 507, answer
        assert "File too large" in answer["message"], answer
        assert framework.alive()
        assert raw(port, "GET", "/v2/apps")[0] == 200
    finally:
        if framework is not None:
            framework.stop()
        procs.stop()
