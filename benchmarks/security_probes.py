"""Rerun every attacker probe of the security issue against real clusters; one JSON object.

Each probe starts (or shares) a real cluster on loopback with ephemeral ports: ``mesoslite
local --no_dns`` with default flags and its own ``--work_dir`` under a temporary directory,
``mesoslite local --secure`` where the probe is about the secured links, or a master/agent
with the documented flags a probe needs (a 256-descriptor limit, a small tmpfs, a damaged
journal). For each probe it records ``probe``, ``flags``, ``before`` (what the issue saw),
``after`` (what happens now) and ``harmless`` (decided by an explicit check). Every wait has
a deadline. Progress goes to stderr.

    python benchmarks/security_probes.py [--only NAME[,NAME]] [--keep] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import re
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgpack
import psutil
import zmq

from mesoslite.protocol import (
    AgentInfo,
    FrameworkInfo,
    ProtocolError,
    RegisterAgent,
    RegisterExecutor,
    ReregisterAgent,
    ReregisterExecutor,
    StatusUpdate,
    Subscribe,
    TaskState,
    TaskStatus,
    decode,
    encode,
)
from mesoslite.resources import Resources
from mesoslite.transport import CurveClientKeys, generate_keys
from tests.support.procs import Proc, holds, mesoslite, wait_for
from tests.support.zmq_peer import raw_dealer

Result = dict[str, Any]
CANARY_ENV = "MESOSLITE_PROBE_AGENT_CANARY"
CANARY = "agent-env-canary-" + secrets.token_hex(4)


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def raw(port: int, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    """One HTTP request with exactly ``headers`` (Host defaults to 127.0.0.1:port)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body,
                     headers={"Host": f"127.0.0.1:{port}", **(headers or {})})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(data) if data else {}
    except ValueError:
        return response.status, {"raw": data[:200].decode(errors="replace")}


JSON = {"Content-Type": "application/json"}


def post_json(port: int, path: str, doc: Any, headers: dict[str, str] | None = None
              ) -> tuple[int, Any]:
    """POST ``doc`` as JSON."""
    return raw(port, "POST", path, json.dumps(doc).encode(), {**JSON, **(headers or {})})


def app(app_id: str, cmd: str, instances: int = 1, **fields: Any) -> dict[str, Any]:
    """A small shell app without health checks."""
    return {"id": app_id, "cmd": cmd, "instances": instances, "cpus": 0.1, "mem": 32,
            "backoffSeconds": 0.5, "taskKillGracePeriodSeconds": 1, **fields}


class Local:
    """``mesoslite local`` on ephemeral ports (one agent, no DNS) as a real process."""

    def __init__(self, root: Path, name: str, *flags: str,
                 env: dict[str, str] | None = None, log_dir: Path | None = None) -> None:
        self.work = root / name
        args = mesoslite("local", "--no_dns", "--work_dir", str(self.work), "--agents", "1",
                         "--port", "0", "--zmq_port", "0", "--agent_port_base", "0",
                         "--marathon_port", "0", "--agent_resources",
                         "cpus:4;mem:2048;disk:4000;ports:[31000-31100]", *flags)
        self.proc = Proc(args, (log_dir or root) / f"{name}.log", env=env)
        wanted = "HTTP: MESOSLITE_PRINCIPAL=" if "--secure" in flags else "Ctrl-C stops"
        out = self.proc.wait_output(wanted, timeout=120)
        found = re.search(r"master http://[\d.]+:(\d+)\s+zmq tcp://([\d.]+:\d+)", out)
        agent = re.search(r"agent (\S+) http://[\d.]+:(\d+)", out)
        marathon = re.search(r"marathon http://[\d.]+:(\d+)", out)
        assert found and agent and marathon, out[-2000:]
        self.master_port, self.zmq = int(found.group(1)), found.group(2)
        self.agent_id, self.agent_port = agent.group(1), int(agent.group(2))
        self.marathon_port = int(marathon.group(1))
        self.auth: dict[str, str] = {}
        if "--secure" in flags:
            secret = (self.work / "secure" / "operator.secret").read_text().strip()
            self.auth = {"Authorization": "Basic " + base64.b64encode(
                f"operator:{secret}".encode()).decode()}
        wait_for(lambda: self.framework_id(), 60, what="the framework registered")

    def get(self, port: int, path: str) -> Any:
        """GET JSON with the operator's credentials (if any)."""
        status, doc = raw(port, "GET", path, headers=self.auth)
        assert status == 200, (path, status, doc)
        return doc

    def framework_id(self) -> str:
        """The bundled framework's id from /v2/info."""
        return str(self.get(self.marathon_port, "/v2/info").get("frameworkId") or "")

    def running(self, app_id: str) -> int:
        """tasksRunning of a Marathon app (0 when absent)."""
        status, doc = raw(self.marathon_port, "GET", f"/v2/apps{app_id}", headers=self.auth)
        return int(doc["app"]["tasksRunning"]) if status == 200 else 0

    def tasks(self, app_id: str) -> list[dict[str, Any]]:
        """The app's tasks (Marathon)."""
        return list(self.get(self.marathon_port, f"/v2/apps{app_id}/tasks")["tasks"])

    def launch(self, app_id: str, cmd: str, instances: int = 1, timeout: float = 60,
               **fields: Any) -> list[dict[str, Any]]:
        """Create an app and wait until ``instances`` tasks run."""
        status, doc = post_json(self.marathon_port, "/v2/apps",
                                app(app_id, cmd, instances, **fields), self.auth)
        assert status == 201, (status, doc)
        wait_for(lambda: self.running(app_id) >= instances, timeout, what=f"{app_id} runs")
        return self.tasks(app_id)

    def delete(self, app_id: str) -> None:
        """Remove an app (best effort)."""
        with contextlib.suppress(Exception):
            raw(self.marathon_port, "DELETE", f"/v2/apps{app_id}?force=true", headers=self.auth)

    def sandbox(self, task_id: str) -> Path:
        """The task's sandbox directory (found under the work dir)."""
        found = wait_for(lambda: next(iter(self.work.glob(
            f"agent-*/agents/*/frameworks/*/executors/{task_id}/runs/latest")), None), 30,
            what=f"the sandbox of {task_id}")
        return Path(found)

    def alive_and_serving(self) -> bool:
        """The process is up and master, agent and framework answer within 5 s."""
        if not self.proc.alive():
            return False
        try:
            return all(raw(port, "GET", path, headers=self.auth, timeout=5)[0] == 200
                       for port, path in ((self.master_port, "/health"),
                                          (self.agent_port, "/health"),
                                          (self.marathon_port, "/ping")))
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the cluster (and its tasks)."""
        self.proc.stop(timeout=30)


def answers(sock: zmq.Socket, msg: Any, seconds: float = 3.0) -> list[Any]:
    """Send ``msg``; every message decoded within ``seconds``."""
    sock.send(encode(msg))
    got: list[Any] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if sock.poll(int(left * 1000)):
            with contextlib.suppress(Exception):
                got.append(decode(sock.recv()))
    return got


def brief(messages: list[Any]) -> str:
    """A short description of answers on a ZeroMQ link."""
    if not messages:
        return "no answer"
    parts = []
    for msg in messages[:3]:
        if isinstance(msg, ProtocolError):
            parts.append(f"ProtocolError {msg.code}: {msg.message[:90]}")
        else:
            text = getattr(msg, "message", "")
            parts.append(type(msg).__name__ + (f": {text[:90]}" if text else ""))
    return "; ".join(parts)


# --------------------------------------------------------------- probes on `mesoslite local`

DEFAULT = "mesoslite local (defaults, --no_dns)"


def probe_csrf(c: Local) -> Result:
    """POST /v2/apps with no Content-Type and a foreign Origin."""
    body = json.dumps(app("/csrf", "id > pwned; exec sleep 600")).encode()
    codes = [raw(c.marathon_port, "POST", "/v2/apps", body, headers)[0] for headers in (
        {"Origin": "http://evil.example"}, {},
        {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"})]
    exists = raw(c.marathon_port, "GET", "/v2/apps/csrf")[0] == 200
    return {"before": "201, the command ran as root",
            "after": f"no type + foreign Origin / no type / form + Origin: {codes}; "
                     f"app created: {exists}",
            "harmless": not exists and all(code in (403, 415) for code in codes)}


def probe_form_teardown(c: Local) -> Result:
    """A form-encoded POST /teardown of the bundled framework."""
    fid = c.framework_id()
    status, doc = raw(c.master_port, "POST", "/teardown", f"frameworkId={fid}".encode(),
                      {"Content-Type": "application/x-www-form-urlencoded"})
    state = c.get(c.master_port, "/state")
    active = any(f["id"] == fid and f["active"] for f in state["frameworks"])
    return {"before": "framework permanently removed",
            "after": f"{status} {doc.get('field', '')}: {str(doc.get('message', ''))[:80]}; "
                     f"framework still active: {active}",
            "harmless": status == 415 and active}


def probe_dns_rebinding(c: Local) -> Result:
    """A foreign Host header on master, agent and framework."""
    seen = {}
    for name, port, path in (("master", c.master_port, "/state"),
                             ("agent", c.agent_port, "/state"),
                             ("marathon", c.marathon_port, "/v2/apps")):
        foreign = raw(port, "GET", path, headers={"Host": f"rebind.example:{port}"})[0]
        own = raw(port, "GET", path, headers={"Host": f"localhost:{port}"})[0]
        seen[name] = (foreign, own)
    return {"before": "no server checked Host: rebinding reached the 127.0.0.1 defaults",
            "after": "foreign Host / localhost: " + ", ".join(
                f"{k} {v[0]}/{v[1]}" for k, v in seen.items()),
            "harmless": all(v == (403, 200) for v in seen.values())}


WHOAMI = (f"echo uid=$(id -u); (cat /etc/shadow >/dev/null 2>&1 && echo SHADOW=read) "
          f"|| echo SHADOW=denied; env | grep -c {CANARY_ENV} | sed 's/^/CANARY=/'; "
          "exec sleep 600")


def _whoami(c: Local) -> dict[str, str]:
    """Run (once) the app with "user": "nobody" and parse what its task printed."""
    if not hasattr(c, "whoami"):
        [task] = c.launch("/nobody", WHOAMI, user="nobody")
        stdout = c.sandbox(task["id"]) / "stdout"
        text = wait_for(lambda: stdout.read_text() if "CANARY=" in stdout.read_text()
                        else None, 30, what="the task printed its identity")
        c.whoami = dict(re.findall(r"^(uid|SHADOW|CANARY)=(\S+)$", text, re.MULTILINE))  # type: ignore[attr-defined]
        c.whoami["env"] = " ".join(  # type: ignore[attr-defined]
            sorted(k for k in _task_env(task["id"]) if not k.startswith(("MESOS", "MARATHON"))))
    return dict(c.whoami)  # type: ignore[attr-defined]


def _task_env(task_id: str) -> dict[str, str]:
    """The environment of the task's own process (the `sleep`)."""
    def find() -> dict[str, str] | None:
        for proc in psutil.process_iter(["name"]):
            with contextlib.suppress(psutil.Error):
                env = proc.environ()
                if env.get("MESOS_TASK_ID") == task_id and proc.info["name"] == "sleep":
                    return env
        return None
    return dict(wait_for(find, 30, what="the task's process"))


def probe_user_nobody(c: Local) -> Result:
    """An app with "user": "nobody" reads /etc/shadow and prints its uid."""
    seen = _whoami(c)
    return {"before": "accepted, ran as uid 0 and read /etc/shadow",
            "after": f"task uid {seen.get('uid')}, /etc/shadow {seen.get('SHADOW')}",
            "harmless": seen.get("uid") == "65534" and seen.get("SHADOW") == "denied"}


def probe_env_inherit(c: Local) -> Result:
    """The task's environment against the agent's (a canary variable set for the cluster)."""
    seen = _whoami(c)
    planted = psutil.Process(c.proc.pid).environ().get(CANARY_ENV) == CANARY
    return {"before": "every task inherited the agent's whole environment",
            "after": f"canary in the agent's env: {planted}; seen by the task: "
                     f"{seen.get('CANARY')}; "
                     f"non-MESOS/MARATHON variables: {seen.get('env')}",
            "harmless": planted and seen.get("CANARY") == "0"}


MEM_HOG = ("exec python3 -c \"import time; b = b'x' * (225 << 20); print('grown', "
           "flush=True); time.sleep(600)\"")


def probe_mem_limit(c: Local) -> Result:
    """A mem: 16 task grows to 225 MB."""
    status, doc = post_json(c.marathon_port, "/v2/apps", app("/memhog", MEM_HOG, mem=16))
    assert status == 201, doc
    biggest = [0]

    def failed() -> dict[str, Any] | None:
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error, TypeError):
                if "225 << 20" in " ".join(proc.info["cmdline"]):
                    biggest[0] = max(biggest[0], proc.memory_info().rss)
        state = c.get(c.master_port, "/state")
        return next((t for f in state["frameworks"] for t in f["completed_tasks"]
                     if t["name"].startswith("memhog") and t["state"] == "TASK_FAILED"), None)
    task = wait_for(failed, 90, what="the memory hog is stopped")
    statuses = task.get("statuses") or [{}]
    reason = statuses[-1].get("reason", "")
    message = str(statuses[-1].get("message", ""))[:80]
    c.delete("/memhog")
    return {"before": "grew to 225 MB and kept running",
            "after": f"TASK_FAILED {reason} ({message}); largest RSS seen "
                     f"{biggest[0] >> 20} MB",
            "harmless": reason == "REASON_CONTAINER_LIMITATION_MEMORY"
                        and biggest[0] < 64 << 20}


def probe_fake_agent(c: Local) -> Result:
    """An unauthenticated agent offering 1000 cpus (default flags: no agent authentication)."""
    before = len(c.get(c.master_port, "/state")["slaves"])
    fake = AgentInfo(hostname="evil", resources=Resources.parse("cpus:1000;mem:100000"))
    with raw_dealer(c.zmq) as sock:
        got = answers(sock, RegisterAgent(agent_info=fake), 3.0)
        slaves = c.get(c.master_port, "/state")["slaves"]
    admitted = len(slaves) > before
    return {"before": "admitted (1000 cpus offered to frameworks)",
            "after": f"{brief(got)}; admitted: {admitted} (Mesos admits agents too unless "
                     "--authenticate_agents; see fake_agent under --secure)",
            "harmless": not admitted}


def probe_agent_takeover(c: Local) -> Result:
    """A fake agent re-registers with the real agent's id, with no and a guessed token."""
    fake = AgentInfo(hostname="evil", id=c.agent_id,
                     resources=Resources.parse("cpus:1000;mem:100000"))
    got: list[Any] = []
    with raw_dealer(c.zmq) as sock:
        for token in ("", "0" * 64):
            got += answers(sock, ReregisterAgent(agent_info=fake, agent_token=token), 2.0)
    slaves = c.get(c.master_port, "/state")["slaves"]
    real = [s for s in slaves if s["id"] == c.agent_id]
    kept = bool(real) and real[0]["hostname"] != "evil" and real[0]["active"]
    refused = all(isinstance(m, ProtocolError) and m.code == "UNAUTHENTICATED" for m in got)
    return {"before": "a real agent's id could be taken over",
            "after": f"{brief(got)}; real agent kept its id: {kept}",
            "harmless": bool(got) and refused and kept}


def _executor_env(fid: str) -> dict[str, str]:
    """The environment of the framework's command executor (through /proc; one executor
    process hosts the framework's command tasks on an agent)."""
    def find() -> dict[str, str] | None:
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                env = proc.environ()
                if env.get("MESOS_FRAMEWORK_ID") == fid and "MESOSLITE_AGENT_ZMQ" in env:
                    return env
        return None
    return dict(wait_for(find, 30, what="the executor process"))


def probe_forged_update(c: Local) -> Result:
    """A forged TASK_FAILED on the agent's executor socket with the real executor's ids."""
    [task] = c.launch("/victim", "exec sleep 600")
    fid = c.framework_id()
    env = _executor_env(fid)
    forged = StatusUpdate(fid, TaskStatus(task_id=task["id"], state=TaskState.TASK_FAILED,
                                          uuid=secrets.token_bytes(16),
                                          executor_id=env["MESOS_EXECUTOR_ID"]))
    ids = (fid, env["MESOS_EXECUTOR_ID"], env["MESOS_CONTAINER_ID"])
    got: list[Any] = []
    with raw_dealer(env["MESOSLITE_AGENT_ZMQ"]) as sock:
        for token in ("", "0" * 64):
            got += answers(sock, ReregisterExecutor(*ids, updates=(forged,), token=token), 1.5)
            got += answers(sock, RegisterExecutor(*ids, token=token), 1.5)
        got += answers(sock, forged, 1.5)
    after = c.tasks("/victim")
    still = [t["state"] for t in after if t["id"] == task["id"]]
    c.launch("/victim-next", "exec sleep 600")  # the next launch reaches a real executor
    codes = sorted({f"{m.code}/{m.field}" for m in got if isinstance(m, ProtocolError)})
    c.delete("/victim")
    c.delete("/victim-next")
    return {"before": "accepted; the agent sent its next launch to the impersonator",
            "after": f"refused {codes}; victim task {still}; next launch ran",
            "harmless": still == ["TASK_RUNNING"]
                        and all(isinstance(m, ProtocolError) for m in got) and bool(got)}


def probe_fifo_files(c: Local) -> Result:
    """A task's named pipe read via /files/read (agent and master), then 8 downloads of it at
    once through the master while the cluster launches an app and writes its registry."""
    [task] = c.launch("/fifo", "mkfifo pipe && touch planted && exec sleep 600")
    sandbox = c.sandbox(task["id"])
    wait_for(lambda: (sandbox / "planted").exists(), 20, what="the FIFO is planted")
    path = urllib.parse.quote(str(sandbox / "pipe"))
    started = time.monotonic()
    agent = raw(c.agent_port, "GET", f"/files/read?path={path}&offset=0", timeout=15)[0]
    master = raw(c.master_port, "GET", f"/agents/{c.agent_id}/files/read?path={path}",
                 timeout=15)[0]
    first = time.monotonic() - started
    codes: list[Any] = []

    def download() -> None:
        try:
            codes.append(raw(c.master_port, "GET", f"/agents/{c.agent_id}/files/download"
                             f"?path={path}", timeout=30)[0])
        except OSError as exc:
            codes.append(type(exc).__name__)
    threads = [threading.Thread(target=download) for _ in range(8)]
    for thread in threads:
        thread.start()
    t0 = time.monotonic()
    weights = raw(c.master_port, "PUT", "/weights", json.dumps(
        [{"role": "probe", "weight": 2.0}]).encode(), JSON, timeout=15)[0]
    registry_s = time.monotonic() - t0
    c.launch("/after-fifo", "exec sleep 600", timeout=60)
    launched_s = time.monotonic() - t0
    for thread in threads:
        thread.join(40)
    c.delete("/fifo")
    c.delete("/after-fifo")
    return {"before": "one read froze master, agents and framework; 8 downloads stalled "
                      "the master's registry writes",
            "after": f"/files/read agent {agent}, via master {master} in {first:.2f} s; "
                     f"8 downloads {sorted(map(str, codes))}; PUT /weights {weights} in "
                     f"{registry_s:.2f} s; a new app ran {launched_s:.1f} s later",
            "harmless": agent == 403 and master == 403 and weights == 200 and first < 5
                        and registry_s < 5 and all(code == 403 for code in codes)}


def probe_bad_envelopes(c: Local) -> Result:
    """One 2 MB ZeroMQ frame packed with ~419k bad envelopes to the master."""
    one = msgpack.packb([1, "Po"])  # 5 bytes: ~419k envelopes in 2 MB
    frame = one * (2 * 1024 * 1024 // len(one))
    count = len(frame) // len(one)
    replies: list[bytes] = []
    stalls: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            with contextlib.suppress(OSError):
                raw(c.master_port, "GET", "/health", timeout=10)
            stalls.append(time.monotonic() - t0)
            time.sleep(0.05)
    process = psutil.Process(c.proc.pid)
    rss_before = process.memory_info().rss
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with raw_dealer(c.zmq) as sock:
            sock.send(frame)
            while sock.poll(2000):
                replies.extend(sock.recv_multipart())
    finally:
        stop.set()
        watcher.join(15)
    size = sum(map(len, replies))
    worst = max(stalls or [0.0])
    grown = (process.memory_info().rss - rss_before) >> 20
    return {"before": "39 MB of error replies and a 5 s stall",
            "after": f"{count} envelopes: {len(replies)} reply ({size} bytes); slowest "
                     f"/health meanwhile {worst:.2f} s; cluster RSS grew {grown} MB",
            "harmless": len(replies) <= 1 and worst < 2.0 and grown < 100
                        and c.alive_and_serving()}


def probe_like_constraint(c: Local) -> Result:
    """A Marathon LIKE constraint with a catastrophic pattern."""
    pattern = "(a+)+$"
    t0 = time.monotonic()
    status, doc = post_json(c.marathon_port, "/v2/apps", app(
        "/redos", "exec sleep 600", constraints=[["hostname", "LIKE", pattern]]))
    took = time.monotonic() - t0
    return {"before": "the framework stalled ~2 s per offer check",
            "after": f"{status} in {took:.2f} s: {str(doc.get('message', doc))[:40]} "
                     f"{json.dumps(doc.get('details', ''))[:120]}",
            "harmless": status == 422 and took < 2}


def probe_secret_files(c: Local) -> Result:
    """/files on the agent's checkpoint (an app's DB_PASSWORD inside) and the modes of the
    framework's journal and the agent's checkpoint."""
    c.launch("/dbapp", "exec sleep 600", env={"DB_PASSWORD": "hunter2-probe"})
    journals = list((c.work / "agent-0" / "meta").rglob("journal"))
    codes = []
    for target in [*journals[:1], c.work / "agent-0" / "meta"]:
        status, doc = raw(c.agent_port, "GET", "/files/read?path=" + urllib.parse.quote(
            str(target)) + "&offset=0")
        codes.append((status, "hunter2-probe" in json.dumps(doc)))
    files = [p for p in (c.work / "marathon").rglob("*") if p.is_file()]
    files += [p for p in (c.work / "agent-0" / "meta").rglob("*") if p.is_file()]
    loose = [f"{p.relative_to(c.work)} {oct(p.stat().st_mode & 0o777)}" for p in files
             if p.stat().st_mode & 0o077]
    c.delete("/dbapp")
    mode = oct((c.work / "marathon" / "journal").stat().st_mode & 0o777)
    return {"before": "/files served the checkpoint (DB_PASSWORD readable); the framework's "
                      "journal was world-readable",
            "after": f"/files on journal, meta/: {[s for s, _ in codes]}; framework journal "
                     f"{mode}; group/world-readable state files: {loose or 'none'}",
            "harmless": bool(journals) and all(s == 403 and not leaked for s, leaked in codes)
                        and not loose}


def answers_http(port: int, path: str) -> bool:
    """``path`` answers 200 within 3 s."""
    try:
        return raw(port, "GET", path, timeout=3)[0] == 200
    except OSError:
        return False


def probe_framework_takeover(c: Local) -> Result:
    """Re-subscribe (no principal, default flags) with the framework id from /v2/info."""
    fid = c.framework_id()
    [task] = c.launch("/kept", "exec sleep 600")
    with raw_dealer(c.zmq) as sock:
        got = answers(sock, Subscribe(FrameworkInfo(user="intruder", name="marathon", id=fid,
                                                    failover_timeout=60.0)), 3.0)
        subscribed = any(type(m).__name__ == "Subscribed" for m in got)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not answers_http(c.marathon_port, "/v2/apps"), 20,
                     what="the framework stops serving")
        stale = answers_http(c.marathon_port, "/v2/apps")
        others = c.proc.alive() and answers_http(c.master_port, "/health") and \
            answers_http(c.agent_port, "/health")
        state = c.get(c.master_port, "/state")
        kept = [t["state"] for f in state["frameworks"] for t in f["tasks"]
                if t["id"] == task["id"]]
    return {"before": "took the framework over; its driver aborted while its API kept "
                      "serving, reporting a killed task as running",
            "after": f"{brief(got)}: the id is taken over without a principal, as in Mesos "
                     f"with authentication off (refused under --secure, see "
                     f"framework_takeover_secure); the bundled framework stopped serving: "
                     f"{not stale}; master and agent serve: {others}; its task {kept}",
            "harmless": not subscribed or (not stale and others)}


# ---------------------------------------------------------- probes on `mesoslite local --secure`

SECURE = "mesoslite local --secure (--no_dns)"


def _client_keys(c: Local) -> CurveClientKeys:
    keys = c.work / "secure" / "keys"
    return CurveClientKeys.from_files(str(keys / "client.key_secret"), str(keys / "master.key"))


def probe_curve(c: Local) -> Result:
    """CURVE on the master's port of `mesoslite local --secure`; an app runs over it."""
    c.launch("/curve", "exec sleep 600")
    fake = RegisterAgent(agent_info=AgentInfo(hostname="evil",
                                              resources=Resources.parse("cpus:1000")))
    with raw_dealer(c.zmq) as sock:
        plain = answers(sock, fake, 2.0)
    _public, secret = generate_keys(c.work.parent / "stranger", "stranger")
    stranger_keys = CurveClientKeys.from_files(
        str(secret), str(c.work / "secure" / "keys" / "master.key"))
    with raw_dealer(c.zmq, stranger_keys) as sock:
        stranger = answers(sock, fake, 2.0)
    helps = {kind: flag in subprocess.run(
        mesoslite(kind, "--help"), capture_output=True, text=True, timeout=60).stdout
        for kind, flag in (("marathon", "--curve_secret_file"), ("local", "--secure"))}
    c.delete("/curve")
    return {"before": "CURVE off by default; local and marathon could not use it",
            "after": f"an app ran over CURVE; plain-text peer: {brief(plain)}; unknown CURVE "
                     f"key: {brief(stranger)}; "
                     f"marathon --curve_secret_file, local --secure: {helps}",
            "harmless": not plain and not stranger and all(helps.values())}


def probe_fake_agent_secure(c: Local) -> Result:
    """The 1000-cpu fake agent with an authorised CURVE key but no agent credential."""
    fake = AgentInfo(hostname="evil", resources=Resources.parse("cpus:1000;mem:100000"))
    with raw_dealer(c.zmq, _client_keys(c)) as sock:
        got = answers(sock, RegisterAgent(agent_info=fake), 3.0)
    slaves = c.get(c.master_port, "/state")["slaves"]
    return {"before": "admitted",
            "after": f"{brief(got)}; agents: {len(slaves)}",
            "harmless": len(slaves) == 1 and bool(got)
                        and getattr(got[0], "code", "") == "UNAUTHENTICATED"}


def probe_takeover_secure(c: Local) -> Result:
    """Re-subscribe with the framework id from /v2/info as another authenticated principal."""
    from mesoslite.scheduler import SchedulerDriver
    from mesoslite.scheduler.auth import link_options
    from tests.support.frameworks import RecordingScheduler

    fid = c.framework_id()
    secure = c.work / "secure"
    options = link_options(principal="client", secret_file=str(secure / "client.secret"),
                           curve_secret_file=str(secure / "keys" / "client.key_secret"),
                           master_public_key_file=str(secure / "keys" / "master.key"))
    thief = RecordingScheduler()
    driver = SchedulerDriver(thief, FrameworkInfo(user="", name="marathon", id=fid,
                                                  failover_timeout=60.0),
                             c.zmq, registration_backoff_factor=0.2, **options)
    driver.start()
    try:
        wait_for(lambda: thief.errors or thief.framework_id, 30, what="the takeover answered")
    finally:
        driver.stop()
    with raw_dealer(c.zmq) as sock:
        plain = answers(sock, Subscribe(FrameworkInfo(user="x", name="m", id=fid)), 2.0)
    ok = c.alive_and_serving() and c.framework_id() == fid
    return {"before": "took the framework over",
            "after": f"as principal 'client': {(thief.errors or ['subscribed!'])[0][:90]}; "
                     f"without CURVE: {brief(plain)}; framework still serving: {ok}",
            "harmless": bool(thief.errors) and not thief.framework_id and not plain and ok}


# ------------------------------------------------------- probes with their own processes

def probe_zk_secret(root: Path) -> Result:
    """An agent following zk://user:password@…: /flags, /state and its start-up log."""
    proc = Proc(mesoslite("agent", "--ip", "127.0.0.1", "--http_port", "0", "--work_dir",
                          str(root / "zk-agent"), "--master",
                          "zk://ops:s3cr3t-probe@127.0.0.1:9/mesoslite"), root / "zk-agent.log")
    try:
        out = proc.wait_output("mesoslite agent:", timeout=60)
        port = int(re.search(r"http://[\d.]+:(\d+)", out).group(1))  # type: ignore[union-attr]
        leaks = {path: "s3cr3t-probe" in json.dumps(raw(port, "GET", path)[1])
                 for path in ("/flags", "/state")}
    finally:
        proc.stop()
    leaks["log"] = "s3cr3t-probe" in proc.output()
    masked = "zk://ops:***@" in proc.output()
    return {"flags": "mesoslite agent --master zk://ops:PASSWORD@…",
            "before": "/flags, /state and the start-up log printed the password in clear",
            "after": f"password shown: {leaks}; log shows zk://ops:***@: {masked}",
            "harmless": not any(leaks.values())}


def probe_flipped_bit(root: Path) -> Result:
    """One flipped bit early in the agent's checkpoint journal, then the agent restarts."""
    from tests.support.marathon_procs import MarathonCluster, shell_app

    with MarathonCluster(root / "bitflip", agents=1) as running:
        running.client.ok("POST", "/v2/apps", shell_app("/kept", 3, cmd="exec sleep 600",
                                                        healthChecks=[]), expect=201)
        wait_for(lambda: running.client.app("/kept")["tasksRunning"] == 3, timeout=90,
                 what="3 tasks run")
        agent = running.agents[0]
        agent.kill9()
        [journal] = (agent.work_dir / "meta").rglob("journal")
        data = bytearray(journal.read_bytes())
        data[len(data) // 8] ^= 0x04
        journal.write_bytes(bytes(data))
        again = Proc(mesoslite("agent", "--master", running.master.address, "--ip",
                               "127.0.0.1", "--http_port", "0", "--work_dir",
                               str(agent.work_dir)), root / "bitflip-agent.log")
        try:
            wait_for(lambda: not again.alive(), timeout=60, what="the agent refuses to start")
        finally:
            again.stop()
        line = next((ln for ln in again.output().splitlines() if "corrupt at" in ln), "")
        line = (re.search(r"journal is corrupt at byte \d+", line) or [line[-100:]])[0]
        kept = journal.read_bytes() == data
        copies = list(journal.parent.glob("journal.corrupt-*"))
    return {"flags": "master + agent + marathon processes (defaults)",
            "before": "87 % dropped as a torn tail, file truncated, 3 tasks forgotten, "
                      "3 duplicates started",
            "after": f"agent exit {again.popen.returncode}: {line[-110:]}; journal untouched: "
                     f"{kept}; quarantined copies: {len(copies)}",
            "harmless": again.popen.returncode not in (0, None) and kept and bool(copies)}


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def probe_fd_flood(root: Path) -> Result:
    """A master limited to 256 descriptors gets 300 idle connections."""
    import socket

    log_path = root / "fd-master.log"
    popen = subprocess.Popen(mesoslite("master", "--ip", "127.0.0.1", "--http_port", "0",
                                       "--zmq_port", "0", "--work_dir", str(root / "fd")),
                             stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
                             preexec_fn=_limit_fds, start_new_session=True)
    idle: list[socket.socket] = []
    try:
        text = wait_for(lambda: (t := log_path.read_text(errors="replace")) and
                        "mesoslite master:" in t and t, 60, what="the master started")
        port = int(re.search(r"mesoslite master: http://[\d.]+:(\d+)", text).group(1))  # type: ignore[union-attr]
        master = psutil.Process(popen.pid)
        cpu0, t0 = sum(master.cpu_times()[:2]), time.monotonic()
        for _ in range(300):
            conn = socket.socket()
            conn.settimeout(10)
            with contextlib.suppress(OSError):
                conn.connect(("127.0.0.1", port))
            idle.append(conn)
        worst = 0.0
        for _ in range(20):
            s0 = time.monotonic()
            assert raw(port, "GET", "/health", timeout=10)[0] == 200
            worst = max(worst, time.monotonic() - s0)
            time.sleep(0.25)
        cpu = (sum(master.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0)
        fds = master.num_fds()
    finally:
        for conn in idle:
            conn.close()
        popen.terminate()
        popen.wait(30)
    size = log_path.stat().st_size
    traces = log_path.read_text(errors="replace").count("Traceback")
    return {"flags": "mesoslite master, RLIMIT_NOFILE 256 (setrlimit in the child)",
            "before": "100 % CPU and 124 MB of tracebacks in 10 s",
            "after": f"/health 20/20 (slowest {worst:.2f} s); master CPU {cpu:.0%} over "
                     f"{time.monotonic() - t0:.0f} s; {fds} fds; log {size} bytes, "
                     f"{traces} tracebacks",
            "harmless": cpu < 0.5 and size < 50_000 and traces == 0 and fds < 256}


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted at ``path`` (unmounted afterwards)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                    str(path)], check=True, timeout=30)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, timeout=30)


def _unsent_updates(c: Local) -> set[tuple[str, str]]:
    """(task, state) pairs the master has from the agent that its journal lacks."""
    from mesoslite.agent.journal import parse

    [journal] = (c.work / "agent-0" / "meta").rglob("journal")
    records, _end, _legacy = parse(journal.read_bytes())
    checkpointed = {(r[4], r[5]["status"]["state"]) for r, _raw in records if r[0] == "UPDATE"}
    state = c.get(c.master_port, "/state")
    seen = {(t["id"], t["state"]) for fw in state["frameworks"]
            for t in fw["tasks"] + fw["completed_tasks"] if t["state"] != "TASK_STAGING"}
    return seen - checkpointed


def probe_disk_full(root: Path) -> Result:
    """A task fills the shared work dir (a 48 MB tmpfs) of `mesoslite local`; then more
    apps are launched and the registry is written."""
    with tmpfs(root / "small", "48m") as mount:
        c = Local(mount, "work", env={CANARY_ENV: CANARY}, log_dir=root)
        try:
            c.launch("/late", "sleep 15; exit 0", 2)  # they end (an update) on a full disk
            c.launch("/fill", "dd if=/dev/zero of=fill bs=1M 2>/dev/null; dd if=/dev/zero "
                     "of=fill2 bs=1k 2>/dev/null; exec sleep 600")
            wait_for(lambda: os.statvfs(mount).f_bavail == 0, 60, what="the disk is full")
            health = wait_for(lambda: raw(c.agent_port, "GET", "/health")
                              if raw(c.agent_port, "GET", "/health")[0] == 503 else None,
                              60, what="the agent reports its failed checkpoint")
            many = [{"role": f"role-{i:04d}-{'x' * 40}", "weight": 1.5} for i in range(200)]
            t0 = time.monotonic()  # the master retries its registry write (Mesos: 20 s)
            weights = raw(c.master_port, "PUT", "/weights", json.dumps(many).encode(), JSON,
                          timeout=60)
            weights_s = time.monotonic() - t0
            unsent: list[set[tuple[str, str]]] = []

            def sound() -> bool:
                unsent.append(_unsent_updates(c))
                return c.proc.alive() and not unsent[-1] and \
                    raw(c.master_port, "GET", "/health")[0] == 200
            holds(sound, 8.0, "no update leaves before its checkpoint; the master serves")
            alive = c.proc.alive()
        finally:
            c.stop()
    return {"flags": "mesoslite local --work_dir on a 48 MB tmpfs",
            "before": "the master exited; the agent kept sending updates it had failed "
                      "to checkpoint",
            "after": f"agent /health {health[0]}: {str(health[1].get('error', ''))[:70]}; "
                     f"PUT /weights {weights[0]} after {weights_s:.0f} s "
                     f"{str(weights[1].get('message', ''))[:60]}; "
                     f"updates at the master not in the journal: {len(unsent[-1])} over 8 s; "
                     f"cluster process alive: {alive}",
            "harmless": alive and not unsent[-1]}


# --------------------------------------------------------------------------- the run

ON_DEFAULT: list[tuple[str, Callable[[Local], Result]]] = [
    ("csrf_post_app", probe_csrf), ("form_teardown", probe_form_teardown),
    ("dns_rebinding", probe_dns_rebinding), ("user_nobody", probe_user_nobody),
    ("agent_env", probe_env_inherit), ("mem_16_grows_225mb", probe_mem_limit),
    ("agent_id_takeover", probe_agent_takeover),
    ("forged_task_failed", probe_forged_update), ("fifo_files_read", probe_fifo_files),
    ("bad_envelopes_2mb", probe_bad_envelopes), ("like_constraint", probe_like_constraint),
    ("secrets_files_and_modes", probe_secret_files),
    ("framework_takeover", probe_framework_takeover),  # the framework steps down
    ("fake_agent_1000_cpus", probe_fake_agent),  # last: the fake agent stays listed a while
]
ON_SECURE: list[tuple[str, Callable[[Local], Result]]] = [
    ("curve_local", probe_curve), ("fake_agent_secure", probe_fake_agent_secure),
    ("framework_takeover_secure", probe_takeover_secure),
]
OWN: list[tuple[str, Callable[[Path], Result]]] = [
    ("zk_password", probe_zk_secret), ("checkpoint_bit_flip", probe_flipped_bit),
    ("idle_connections_256_fds", probe_fd_flood), ("disk_full", probe_disk_full),
]
NAMES = [n for n, _ in ON_DEFAULT] + [n for n, _ in ON_SECURE] + [n for n, _ in OWN]


def run_one(name: str, flags: str, call: Callable[[], Result]) -> Result:
    """One probe with its error (if any) recorded as its outcome."""
    log(f"probe {name} ({flags})")
    t0 = time.monotonic()
    try:
        result = call()
    except Exception as exc:  # noqa: BLE001 - a failed probe is a result, not a crash
        result = {"after": f"probe error: {type(exc).__name__}: {str(exc)[:300]}",
                  "harmless": False}
    result = {"probe": name, "flags": result.pop("flags", flags), **result,
              "seconds": round(time.monotonic() - t0, 1)}
    log(f"  -> harmless={result['harmless']}: {result['after']}")
    return result


def run_on_local(root: Path, name: str, flags: list[str], label: str,
                 probes: list[tuple[str, Callable[[Local], Result]]]) -> list[Result]:
    """Start one `mesoslite local` and run ``probes`` against it in order."""
    if not probes:
        return []
    log(f"starting {label}")
    cluster = Local(root, name, *flags, env={CANARY_ENV: CANARY})
    try:
        results = [run_one(n, label, lambda f=f: f(cluster)) for n, f in probes]  # type: ignore[misc]
        for result in results:
            if result["probe"] != "framework_takeover" and result["harmless"]:
                result["harmless"] = result["harmless"] and (
                    cluster.proc.alive() or any(r["probe"] == "framework_takeover"
                                                for r in results))
        return results
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the probes; print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated probe names: " +
                        ",".join(NAMES))
    parser.add_argument("--work-dir", default="", help="where clusters keep their state")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    only = [n for n in args.only.split(",") if n]
    unknown = sorted(set(only) - set(NAMES))
    if unknown:
        parser.error(f"--only: unknown probe(s) {unknown}; known: {NAMES}")
    chosen = set(only or NAMES)
    root = Path(args.work_dir or tempfile.mkdtemp(prefix="security-probes-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: list[Result] = []
    try:
        results += run_on_local(root, "default", [], DEFAULT,
                                [(n, f) for n, f in ON_DEFAULT if n in chosen])
        results += run_on_local(root, "secure", ["--secure"], SECURE,
                                [(n, f) for n, f in ON_SECURE if n in chosen])
        for name, probe in OWN:
            if name in chosen:
                results.append(run_one(name, "own processes", lambda p=probe: p(root)))  # type: ignore[misc]
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", str(root)], check=False, timeout=120)
    print(json.dumps({
        "benchmark": "security_probes",
        "probes": results,
        "harmless": sum(1 for r in results if r["harmless"]),
        "total": len(results),
        "all_harmless": all(r["harmless"] for r in results),
        "seconds": round(time.monotonic() - started, 1),
        "work_dir": str(root) if args.keep else "",
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
