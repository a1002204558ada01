#!/usr/bin/env python3
"""ui_load: the web UIs' server cost at 10,000 agents, 10,000 tasks and 1,000 apps.

Builds, in this process, a master state with ``--agents`` agents and ``--tasks``
running tasks through the master's real handlers (mesoslite.testing.Harness: the
same dispatch table a running master uses) and serves it with the real UI routes
(mesoslite.webui) on a loopback port, beside the master's own ``/state`` document
(mesoslite.master.http.state_json) as the baseline.  Beside it, the service UI
(frameworks.marathon.webui) and the real /v2 API over ``--apps`` apps and their
tasks, through a service facade made of plain values, with the real event bus.

Then, with HTTP clients in a separate process:

1. every main view once cold and three times warm: server time (tornado's
   request time), payload bytes; the baselines are ``/state`` (what the Mesos UI
   polls) and ``/v2/apps?embed=apps.counts`` (what a Marathon client reads);
2. ``--seconds`` of task churn (``--churn`` status updates a second, each one
   changing a task) with nobody watching: this process's CPU;
3. the same churn with ``--watchers`` clients that speak the browsers' protocol,
   first on the master UI's push stream (/ui/api/stream; on each summary they
   re-read a tasks page and an agents page, as open tabs on those views do), then
   on the service UI's push stream (/ui/api/events: the /v2/events bus, coalesced;
   on each push, at most once a second, /ui/api/apps): the difference with step 2
   is what watching costs.

Prints one JSON document.  ``python benchmarks/ui_load.py [--agents 10000]
[--tasks 10000] [--apps 1000] [--seconds 60] [--watchers 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
import tornado.web
from bench_support import (
    cli_argv,
    free_port,
    get_json,
    kill_sessions,
    machine_info,
    say,
    set_progress_tag,
    sigterm_as_interrupt,
    spawn_logged,
    stop_all,
)

from frameworks.marathon.api.routes import make_app
from frameworks.marathon.core.model import App, InstanceCondition, MarathonTask
from frameworks.marathon.events import EventBus
from frameworks.marathon.webui.routes import mount_service_ui
from mesoslite.master import http as master_http
from mesoslite.protocol import TaskState
from mesoslite.testing.harness import Harness
from mesoslite.webui.routes import master_ui_rules

VIEWS = ["/state", "/ui/api/overview", "/ui/api/agents", "/ui/api/agents?sort=cpus&order=desc",
         "/ui/api/agents?q=sim-99", "/ui/api/tasks", "/ui/api/tasks?q=task-12&sort=name",
         "/ui/api/tasks?status=completed", "/ui/api/frameworks", "/ui/api/offers",
         "/ui/api/roles", "/ui/api/agents/{agent}", "/ui/api/tasks/{framework}/task-7"]
SERVICE_VIEWS = ["/v2/apps?embed=apps.counts", "/ui/api/apps", "/ui/api/apps?group=/g7",
                 "/ui/api/apps?status=Running&q=app-1", "/v2/apps/g3/app-3"]


# ----------------------------------------------------------------------------- master side


class Leadership:
    """The leadership as the UI and /state read it: this master leads."""

    recovering = False
    zk_url = None

    def __init__(self, info: Any) -> None:
        self.info = info

    def leader(self) -> Any:
        return self.info


class Shell:
    """The master shell's read side over a Harness state (what mesoslite.webui reads)."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.state = harness.state
        self.info = harness.info
        self.config = harness.config
        self.start_time = self.elected_time = time.time()
        self.is_leading = True
        self.leadership = Leadership(harness.info)

    def metrics_snapshot(self) -> dict[str, float]:
        return {"master/elected": 1.0, "master/tasks_running":
                float(self.state.task_states[TaskState.TASK_RUNNING])}


def build_master(agents: int, tasks: int) -> tuple[Harness, list[tuple[bytes, str]], str]:
    """A master state with ``agents`` agents and ``tasks`` RUNNING tasks of one framework."""
    h = Harness(agent_ping_timeout=3600.0, framework_heartbeat_interval=3600.0)
    peers = []
    for i in range(agents):
        peer = f"sim-{i}".encode()
        peers.append((peer, h.add_agent(peer, "cpus:4;mem:4096;disk:1000;ports:[31000-31009]",
                                        hostname=f"sim-{i}")))
    framework_id = h.subscribe(b"fw-1", name="marathon", roles=("*",))
    launched: list[tuple[bytes, str]] = []
    by_agent = {agent_id: peer for peer, agent_id in peers}
    while len(launched) < tasks:
        offers = h.offers(framework_id)
        if not offers:
            break
        for offer in offers:
            if len(launched) >= tasks:
                break
            task_id = f"task-{len(launched)}"
            h.accept(b"fw-1", framework_id, [offer.id],
                     [h.task(task_id, offer.agent_id, "cpus:0.1;mem:32")])
            h.update(by_agent[offer.agent_id], framework_id, task_id, TaskState.TASK_RUNNING)
            launched.append((by_agent[offer.agent_id], task_id))
    return h, launched, framework_id


class Timings:
    """Server-side request times by URI (tornado's log function)."""

    def __init__(self) -> None:
        self.by_uri: dict[str, list[float]] = {}

    def record(self, handler: tornado.web.RequestHandler) -> None:
        self.by_uri.setdefault(handler.request.uri or "", []).append(
            handler.request.request_time())


class StateHandler(tornado.web.RequestHandler):
    """``/state`` as the master serves it (the baseline)."""

    def initialize(self, shell: Shell) -> None:
        self.shell = shell

    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(await master_http.state_json(self.shell))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- service side


class Facade:
    """The service facade over plain values: ``apps`` apps, their tasks, the real event bus."""

    is_leader = True

    def __init__(self, apps: int, tasks: int) -> None:
        self.apps = [App(id=f"/g{i % 50}/app-{i}", cmd="sleep 600", instances=max(1, tasks // apps),
                         cpus=0.1, mem=32, version="2026-01-01T00:00:00.000Z",
                         labels={"team": f"t{i % 7}"}) for i in range(apps)]
        self.task_list = [MarathonTask(task_id=f"t-{i}", instance_id=f"i-{i}",
                                       app_id=self.apps[i % apps].id, version="v",
                                       condition=InstanceCondition.RUNNING, agent_id=f"a-{i}",
                                       host=f"sim-{i}", ports=(31000,), started_at=1.0)
                          for i in range(tasks)]
        self.by_id = {app.id: app for app in self.apps}
        self.bus = EventBus(lambda: "2026-01-01T00:00:00.000Z", max_queue=1000)

    def leader_address(self) -> str:
        return "127.0.0.1:0"

    def info(self) -> dict[str, Any]:
        return {"frameworkId": "fw-1"}

    def list_apps(self) -> list[App]:
        return list(self.apps)

    def get_app(self, app_id: str) -> App:
        return self.by_id[app_id]

    def tasks(self, app_id: str | None = None) -> list[MarathonTask]:
        return [t for t in self.task_list if app_id is None or t.app_id == app_id]

    def deployments(self, app_id: str | None = None) -> list[Any]:
        return []

    def queue(self) -> list[Any]:
        return []

    def readiness_results(self, app_id: str) -> list[dict[str, Any]]:
        return []

    def last_task_failure(self, app_id: str) -> None:
        return None

    def subscribe(self, event_types: frozenset[str] | None, remote: str) -> Any:
        return self.bus.subscribe(event_types, remote)


# ------------------------------------------------------------------------------ clients


def client_views(base: str, service: str, views: list[str], service_views: list[str]) -> None:
    """Fetch every view once cold, three times warm; print sizes and client times."""
    out: dict[str, Any] = {}
    for root, paths in ((base, views), (service, service_views)):
        for path in paths:
            times, size = [], 0
            for _ in range(4):
                started = time.perf_counter()
                with urllib.request.urlopen(root + path, timeout=120) as response:
                    size = len(response.read())
                times.append(time.perf_counter() - started)
            out[path] = {"bytes": size, "client_cold_ms": round(times[0] * 1000, 1),
                         "client_warm_ms": round(statistics.median(times[1:]) * 1000, 1)}
    print(json.dumps(out))


def _sse(url: str, on_event: Any, stop: threading.Event) -> None:
    with urllib.request.urlopen(url, timeout=30) as stream:
        for raw in stream:
            if stop.is_set():
                return
            if raw.startswith(b"data:"):
                on_event()


def client_watch(base: str, service: str, watchers: int, seconds: float, which: str) -> None:
    """``watchers`` browsers' worth of streams and re-reads for ``seconds`` on the master
    UI or the service UI (``which``); print counts."""
    stop = threading.Event()
    counts = {"master_events": 0, "master_reads": 0, "service_events": 0, "service_reads": 0}
    lock = threading.Lock()

    def master_event() -> None:
        with lock:
            counts["master_events"] += 1
        for path in ("/ui/api/tasks", "/ui/api/agents"):
            with urllib.request.urlopen(base + path, timeout=30) as response:
                response.read()
            with lock:
                counts["master_reads"] += 1

    last_read = [0.0] * watchers

    def service_event(index: int) -> None:
        with lock:
            counts["service_events"] += 1
        if time.monotonic() - last_read[index] >= 1.0:
            last_read[index] = time.monotonic()
            with urllib.request.urlopen(service + "/ui/api/apps", timeout=30) as response:
                response.read()
            with lock:
                counts["service_reads"] += 1

    threads = []
    for index in range(watchers):
        if which == "master":
            threads.append(threading.Thread(target=_sse, daemon=True, args=(
                base + "/ui/api/stream", master_event, stop)))
        else:
            threads.append(threading.Thread(target=_sse, daemon=True, args=(
                service + "/ui/api/events", lambda i=index: service_event(i), stop)))
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    print(json.dumps(counts))


# -------------------------------------------------------------------------------- running


async def run_client(*args: str) -> Any:
    """Run this script as a client process; its JSON answer."""
    proc = await asyncio.create_subprocess_exec(sys.executable, __file__, *args,
                                                stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    return json.loads(out.decode().strip().splitlines()[-1])


async def churn(h: Harness, shell: Shell, facade: Facade, launched: list[tuple[bytes, str]],
                framework_id: str, per_second: int, seconds: float) -> dict[str, float]:
    """Status updates that change tasks (health flips) and their Marathon events; CPU used."""
    rng = random.Random(3)
    steps = int(seconds * 10)
    cpu, wall = time.process_time(), time.monotonic()
    for step in range(steps):
        for _ in range(max(1, per_second // 10)):
            peer, task_id = rng.choice(launched)
            h.update(peer, framework_id, task_id, TaskState.TASK_RUNNING,
                     healthy=bool(step % 2), timestamp=time.time())
            facade.bus.publish("status_update_event", taskId=task_id, taskStatus="TASK_RUNNING")
        await asyncio.sleep(max(0.0, wall + (step + 1) * 0.1 - time.monotonic()))
    used, elapsed = time.process_time() - cpu, time.monotonic() - wall
    return {"cpu_seconds": round(used, 3), "wall_seconds": round(elapsed, 2),
            "cpu_share_of_one_core": round(used / elapsed, 4)}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Build the state, serve it, measure the views and the watchers; the report."""
    started = time.monotonic()
    h, launched, framework_id = build_master(args.agents, args.tasks)
    built = time.monotonic() - started
    shell = Shell(h)
    timings = Timings()
    rules = master_ui_rules(shell)
    publisher = rules[1].target_kwargs["webui"].publisher
    master_app = tornado.web.Application(
        [*rules, (r"/state", StateHandler, {"shell": shell})], log_function=timings.record)
    master_port = free_port()
    master_app.listen(master_port, address="127.0.0.1")
    facade = Facade(args.apps, args.tasks)
    service_app = make_app(facade)  # type: ignore[arg-type]
    mount_service_ui(service_app, facade, master_url=lambda: None)  # type: ignore[arg-type]
    service_app.settings["log_function"] = timings.record
    service_port = free_port()
    service_app.listen(service_port, address="127.0.0.1")
    base, service = f"http://127.0.0.1:{master_port}", f"http://127.0.0.1:{service_port}"
    agent_id = launched[0][0].decode()
    agent = next(a.id for a in h.state.agents.values() if a.info.hostname == agent_id)
    views = [v.format(agent=agent, framework=framework_id) for v in VIEWS]
    sizes = await run_client("--client-views", base, service, json.dumps(views),
                             json.dumps(SERVICE_VIEWS))
    per_view = {}
    for path, measured in sizes.items():
        server = timings.by_uri.get(path, [])
        per_view[path] = {**measured,
                          "server_cold_ms": round(server[0] * 1000, 1) if server else None,
                          "server_warm_ms": round(statistics.median(server[1:]) * 1000, 1)
                          if len(server) > 1 else None}
    idle = await churn(h, shell, facade, launched, framework_id, args.churn, args.seconds)
    before = publisher.published
    watched: dict[str, Any] = {}
    clients: dict[str, Any] = {}
    for which in ("master", "service"):
        watch_task = asyncio.ensure_future(run_client(
            "--client-watch", base, service, str(args.watchers), str(args.seconds + 1), which))
        await asyncio.sleep(1.0)
        watched[which] = await churn(h, shell, facade, launched, framework_id, args.churn,
                                     args.seconds)
        clients[which] = await watch_task
    return {
        "benchmark": "ui_load", "agents": len(h.state.agents), "tasks": len(launched),
        "apps": args.apps, "service_tasks": args.tasks, "build_seconds": round(built, 1),
        "views": per_view,
        "churn_updates_per_second": args.churn,
        "churn_without_watchers": idle, "churn_with_watchers": watched,
        "watchers": args.watchers,
        "watching_cost_share_of_one_core": {
            which: round(watched[which]["cpu_share_of_one_core"]
                         - idle["cpu_share_of_one_core"], 4) for which in watched},
        "publisher": {"summaries_published": publisher.published - before,
                      "state_summarised": publisher.computed},
        "page_cache": {"hits": rules[1].target_kwargs["webui"].page_hits,
                       "misses": rules[1].target_kwargs["webui"].page_misses},
        "clients": clients, "machine": machine_info(),
    }


# --------------------------------------------------------------------- real processes


class RealCluster:
    """A real master process, ``--agents`` simulated agents (benchmarks/sim_agents.py, one
    process speaking the real ZeroMQ protocol) and a real ``mesoslite marathon`` process;
    :meth:`stop` ends them all."""

    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        self.root = root
        self.args = args
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []
        self.zmq_port, self.http_port, self.service_port = free_port(), free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.service = f"http://127.0.0.1:{self.service_port}"

    def spawn(self, name: str, argv: list[str]) -> None:
        """Start one process, its output in ``<name>.log``."""
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        self.procs[name] = spawn_logged(argv, log, self.root)

    def check(self) -> None:
        """Raise if a process has exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see "
                                   f"{self.root / (name + '.log')}")

    def overview(self) -> dict[str, Any]:
        """The master UI's overview."""
        data: dict[str, Any] = get_json(self.base + "/ui/api/overview", 30.0)["overview"]
        return data

    def start(self) -> dict[str, float]:
        """Master, agents (until all are active), framework, apps (until every task runs);
        the seconds each phase took."""
        args, took = self.args, {}
        self.spawn("master", cli_argv("WARNING", "master", "--ip", "127.0.0.1", "--http_port",
                                      str(self.http_port), "--zmq_port", str(self.zmq_port),
                                      "--work_dir", str(self.root / "master")))
        self.wait(lambda: bool(self.overview()), 60, "the master")
        started = time.monotonic()
        groups = -(-args.agents // args.agents_per_process)
        for group in range(groups):  # one process holds ~9,900 agents at 20,000 open files
            first = group * args.agents_per_process
            count = min(args.agents_per_process, args.agents - first)
            self.spawn(f"agents-{group}", [
                sys.executable, str(Path(__file__).parent / "sim_agents.py"), "--master",
                f"tcp://127.0.0.1:{self.zmq_port}", "--count", str(count), "--first",
                str(first), "--churn", str(args.churn * count // args.agents),
                "--log-level", "WARNING"])
        self.wait(lambda: self.overview()["agents"]["active"] >= args.agents,
                  args.register_timeout, f"{args.agents} agents to register",
                  progress=lambda: f"{self.overview()['agents']['active']} agents active")
        took["agents_registered_seconds"] = time.monotonic() - started
        state = Path(args.state_parent) / f"ui-load-marathon-{os.getpid()}"
        self.state_dir = state
        self.spawn("marathon", cli_argv(
            "WARNING", "marathon", "--master", f"127.0.0.1:{self.zmq_port}",
            "--http_address", "127.0.0.1", "--http_port", str(self.service_port),
            "--state_dir", str(state), "--max_instances_per_offer", "40",
            "--max_running_deployments", str(args.apps + 10)))
        self.wait(lambda: get_json(self.service + "/v2/info", 5.0).get("elected"), 60,
                  "the framework")
        started = time.monotonic()
        self.create_apps()
        took["apps_created_seconds"] = time.monotonic() - started
        self.wait(lambda: self.overview()["tasks"]["TASK_RUNNING"] >= args.tasks,
                  args.launch_timeout, f"{args.tasks} tasks to run",
                  progress=lambda: f"{self.overview()['tasks']['TASK_RUNNING']} tasks running")
        took["tasks_running_seconds"] = time.monotonic() - started
        return {key: round(value, 1) for key, value in took.items()}

    def create_apps(self) -> None:
        """``--apps`` apps of ``--tasks / --apps`` instances each, 8 requests at a time."""
        args = self.args
        per_app = max(1, args.tasks // args.apps)

        def create(index: int) -> None:
            body = json.dumps({"id": f"/g{index % 50}/app-{index}", "cmd": "sleep 3600",
                               "cpus": 0.1, "mem": 32, "instances": per_app,
                               "labels": {"team": f"t{index % 7}"}}).encode()
            request = urllib.request.Request(self.service + "/v2/apps", data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=120) as response:
                response.read()

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(args.apps)))

    def wait(self, ready: Any, timeout: float, what: str, progress: Any = None) -> None:
        """Poll ``ready()`` every half second until true (RuntimeError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        said = time.monotonic()
        while True:
            self.check()
            try:
                if ready():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                seen = progress() if progress else ""
                raise RuntimeError(f"waited {timeout:.0f} s for {what}; {seen}")
            if progress is not None and time.monotonic() - said > 15:
                said = time.monotonic()
                with contextlib.suppress(OSError):
                    say(progress())
            time.sleep(0.5)

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by the master and the framework."""
        out = {}
        for name in ("master", "marathon"):
            times = psutil.Process(self.procs[name].pid).cpu_times()
            out[name] = times.user + times.system
        return out

    def stop(self) -> None:
        """Stop every process, remove the framework's state."""
        stop_all(list(self.procs.values()), signal.SIGTERM, 20.0)
        kill_sessions(self.procs.values())
        for log in self._logs:
            log.close()
        shutil.rmtree(getattr(self, "state_dir", self.root / "none"), ignore_errors=True)


def measure(cluster: RealCluster, seconds: float, which: str, watchers: int) -> dict[str, Any]:
    """CPU shares of the master and the framework over ``seconds`` while ``watchers``
    clients watch ``which`` (``none``: nobody)."""
    client = None
    if which != "none":
        client = subprocess.Popen(
            [sys.executable, __file__, "--client-watch", cluster.base, cluster.service,
             str(watchers), str(seconds + 2), which], stdout=subprocess.PIPE)
        time.sleep(1.0)  # the streams attach
    before, wall = cluster.cpu(), time.monotonic()
    time.sleep(seconds)
    after, elapsed = cluster.cpu(), time.monotonic() - wall
    out: dict[str, Any] = {name: round((after[name] - before[name]) / elapsed, 4)
                           for name in after}
    if client is not None:
        text, _ = client.communicate(timeout=120)
        out["clients"] = json.loads(text.decode().strip().splitlines()[-1])
    return out


def main_processes(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark against real processes: views and the cost of watching."""
    set_progress_tag("ui_load")
    restore = sigterm_as_interrupt()  # SIGTERM stops the processes too
    root = Path(tempfile.mkdtemp(prefix="ui-load-"))
    cluster = RealCluster(root, args)
    try:
        took = cluster.start()
        say(f"cluster ready: {took}")
        agent = get_json(cluster.base + "/ui/api/agents?limit=1", 30.0)["items"][0]["id"]
        task = get_json(cluster.base + "/ui/api/tasks?limit=1", 30.0)["items"][0]
        views = [v.format(agent=agent, framework=task["framework_id"]).replace(
            "task-7", task["id"]) for v in VIEWS]
        text = subprocess.run([sys.executable, __file__, "--client-views", cluster.base,
                               cluster.service, json.dumps(views), json.dumps(SERVICE_VIEWS)],
                              stdout=subprocess.PIPE, check=True).stdout
        sizes = json.loads(text.decode().strip().splitlines()[-1])
        phases: dict[str, list[dict[str, Any]]] = {}
        for round_ in range(args.rounds):
            for which in ("none", "master", "service"):
                say(f"round {round_ + 1}: {which} watching")
                phases.setdefault(which, []).append(
                    measure(cluster, args.seconds, which, args.watchers))
        idle = {name: statistics.median(p[name] for p in phases["none"])
                for name in ("master", "marathon")}
        cost = {which: {name: round(statistics.median(p[name] for p in phases[which])
                                    - idle[name], 4) for name in ("master", "marathon")}
                for which in ("master", "service")}
        overview = cluster.overview()
        return {"benchmark": "ui_load", "mode": "processes", "agents": args.agents,
                "apps": args.apps, "tasks": overview["tasks"]["TASK_RUNNING"],
                "setup": took, "views": sizes, "churn_updates_per_second": args.churn,
                "watchers": args.watchers, "seconds_per_phase": args.seconds,
                "rounds": args.rounds, "cpu_share_of_one_core": phases,
                "idle_median": idle, "watching_cost_share_of_one_core": cost,
                "machine": machine_info()}
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        restore()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or one of its client processes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-process", action="store_true",
                        help="build the master state in this process (no agents, no ZeroMQ)")
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--apps", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--watchers", type=int, default=5)
    parser.add_argument("--churn", type=int, default=200, help="status updates a second")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the three phases (processes; medians reported)")
    parser.add_argument("--agents-per-process", type=int, default=5000,
                        help="simulated agents per sim_agents.py process")
    parser.add_argument("--register-timeout", type=float, default=900.0)
    parser.add_argument("--launch-timeout", type=float, default=1800.0)
    parser.add_argument("--state-parent", default="/dev/shm" if os.path.isdir("/dev/shm")
                        else tempfile.gettempdir(), help="where the framework keeps its state")
    parser.add_argument("--client-views", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--client-watch", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client_views:
        base, service, views, service_views = args.client_views
        client_views(base, service, json.loads(views), json.loads(service_views))
        return 0
    if args.client_watch:
        base, service, watchers, seconds, which = args.client_watch
        client_watch(base, service, int(watchers), float(seconds), which)
        return 0
    for name in ("agents", "tasks", "apps", "watchers", "rounds", "agents_per_process"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected at least 1, "
                         f"got {getattr(args, name)}")
    if args.in_process:
        print(json.dumps(asyncio.run(main_async(args)), indent=2))
    else:
        print(json.dumps(main_processes(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
