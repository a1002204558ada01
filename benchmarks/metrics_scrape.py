"""How long one Prometheus scrape of an agent with 10,000 tasks takes, over real HTTP.

The agent's ``/metrics`` handler does two things per scrape: it turns every running
executor's usage into a ``/monitor/statistics`` entry (:func:`statistics_entry`) and
renders the entries as labelled series (:func:`containers_prometheus_text`), after the
agent's own snapshot.  This benchmark runs exactly that code, in a handler served by
the agent's HTTP server class (:class:`GuardedHTTPServer` with the default policy) on a
loopback port, over ``--tasks`` synthetic command executors (real agent records: an
:class:`AgentFramework` per ``--frameworks``, one :class:`AgentExecutor` and
:class:`AgentTask` each, half of them Marathon tasks with an ``app_id``) with synthetic
usage (what the containerizers would read from cgroups or /proc: that part is per
container and not measured here).  The server runs in its own process, as an agent does; the
client GETs ``/metrics`` ``--scrapes`` times and reads the whole body; the median is
reported.  The first scrape (which fills the agent's per-container label cache) is
reported apart as ``first_scrape_s``.  ``server_cpu_s_median`` is the CPU time the
server process spent per scrape (less sensitive than wall time to a busy machine;
``load_average_1m`` says how busy it was).

The same-run baseline is the same scrape at ``--baseline-tasks``: ``per_task_ratio`` is
the 10,000-task scrape's time per task over the baseline's (1.0: linear).  The goal is a
scrape under 1 s (issue 14, "a Prometheus scrape of 10,000 tasks' metrics stays under
1 s").  ``master`` gives the master's ``/metrics`` text render time with ``--tasks``
tasks on ``--master-agents`` agents (its text has no per-task series: the snapshot sums
over agents).  Prints one JSON object.

    python benchmarks/metrics_scrape.py [--tasks 10000] [--baseline-tasks 1000] \
        [--scrapes 5] [--frameworks 10] [--master-agents 100]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
import tornado.netutil
import tornado.web

from mesoslite.agent.records import AgentExecutor, AgentFramework, AgentTask
from mesoslite.agent.views import ContainerSeries, statistics_entry
from mesoslite.httpguard.server import GuardedHTTPServer, server_policy
from mesoslite.master import metrics as master_metrics
from mesoslite.proc import ProcessUsage
from mesoslite.protocol import CommandInfo, TaskState
from mesoslite.testing.factories import make_executor_info, make_framework_info, make_task_info
from mesoslite.testing.harness import Harness


def build_frameworks(tasks: int, frameworks: int) -> list[AgentFramework]:
    """``tasks`` running command tasks spread over ``frameworks`` framework records."""
    out = [AgentFramework(make_framework_info(f"fw{i}", id=f"fw-{i:04d}"))
           for i in range(frameworks)]
    for n in range(tasks):
        fw = out[n % frameworks]
        task_id = f"app{n % 500}.{n:08d}-aaaa-bbbb-cccc-{n:012d}"
        env = {"MARATHON_APP_ID": f"/group/app{n % 500}"} if n % 2 else {}
        info = make_task_info(task_id=task_id, command=CommandInfo(value="sleep 1000",
                                                                   environment=env))
        executor = AgentExecutor(fw.id, make_executor_info("sleep 1000", executor_id=task_id),
                                 f"container-{n:08d}", f"/sandbox/{task_id}", "command")
        task = AgentTask(info, fw.id, task_id)
        task.state = TaskState.TASK_RUNNING
        executor.launched_tasks[task_id] = task
        fw.executors[task_id] = executor
    return out


def usage(n: int) -> ProcessUsage:
    """Synthetic usage of container ``n`` (what a containerizer would measure)."""
    return ProcessUsage(timestamp=1.7e9 + n, cpus_user_time_secs=12.5 + n * 0.001,
                        cpus_system_time_secs=3.25 + n * 0.0005,
                        mem_rss_bytes=20_000_000 + n * 4096, processes=2)


class AgentMetrics(tornado.web.RequestHandler):
    """``GET /metrics`` as the agent answers it: statistics entries, then the series."""

    def initialize(self, frameworks: list[AgentFramework], series: ContainerSeries) -> None:
        """Keep the framework records and the label cache (one per agent, as make_app)."""
        self.frameworks = frameworks
        self.series = series

    def get(self) -> None:
        """Build the entries from the records and render them."""
        entries = [statistics_entry(ex, usage(n))
                   for n, ex in enumerate(ex for fw in self.frameworks
                                          for ex in fw.executors.values())]
        self.set_header("Content-Type", "text/plain; version=0.0.4")
        self.finish(self.series.render(entries, self.frameworks))


def serve(tasks: int, baseline: int, frameworks: int) -> None:
    """The server process: ``/big/metrics`` and ``/base/metrics``; prints its port."""
    sets = {"big": build_frameworks(tasks, frameworks),
            "base": build_frameworks(baseline, frameworks)}
    app = tornado.web.Application([(f"/{name}/metrics", AgentMetrics,
                                    {"frameworks": fws, "series": ContainerSeries()})
                                   for name, fws in sets.items()])
    server = GuardedHTTPServer(app, server_policy(["127.0.0.1"]))
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    print(sockets[0].getsockname()[1], flush=True)
    asyncio.get_event_loop().run_forever()


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], int]:
    """The server in its own process (as an agent is: no client competing for its GIL)."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--tasks", str(args.tasks),
                             "--baseline-tasks", str(args.baseline_tasks),
                             "--frameworks", str(args.frameworks)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"the server process did not start: {line!r}")
    return proc, int(line)


def scrape(port: int, path: str) -> tuple[float, int, int]:
    """GET ``path``; (seconds, body bytes, sample lines)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}")
    samples = sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))
    return elapsed, len(body), samples


def master_render(tasks: int, agents: int) -> dict[str, Any]:
    """The master's /metrics text render time with ``tasks`` running tasks."""
    h = Harness()
    agent_ids = [h.add_agent(f"a{i}".encode(), resources="cpus:10000;mem:1000000")
                 for i in range(agents)]
    framework_id = h.subscribe(b"f1")
    per_agent = -(-tasks // agents)
    launched = 0
    offers = {o.agent_id: o for o in h.offers(framework_id)}
    for agent_id in agent_ids:
        batch = [h.task(f"t{launched + i}", agent_id, "cpus:0.1;mem:1")
                 for i in range(min(per_agent, tasks - launched))]
        h.accept(b"f1", framework_id, [offers[agent_id].id], batch)
        launched += len(batch)
    times = []
    text = ""
    for _ in range(5):
        started = time.perf_counter()
        state = h.state
        text = master_metrics.prometheus_text(master_metrics.snapshot(
            state, elected=True, uptime=1.0, messages_received=0, messages_by_type={},
            decode_errors=0, transport_dropped=0, allocation_runs=0, allocation_run_ms=0.0,
            event_queue_dispatches=0)) + master_metrics.histograms_text(
            state.launch_to_running, state.offer_round_trip)
        times.append(time.perf_counter() - started)
    return {"tasks": launched, "agents": agents, "render_s_median":
            round(statistics.median(times), 5), "bytes": len(text)}


def main() -> None:
    """Parse the flags, measure, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--baseline-tasks", type=int, default=1_000)
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--frameworks", type=int, default=10)
    parser.add_argument("--master-agents", type=int, default=100)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.tasks, args.baseline_tasks, args.frameworks)
        return
    proc, port = start_server(args)
    try:
        runs: dict[str, list[tuple[float, int, int]]] = {"big": [], "base": []}
        first = scrape(port, "/big/metrics")[0]  # it fills the label cache
        scrape(port, "/base/metrics")
        server = psutil.Process(proc.pid)
        cpu: dict[str, list[float]] = {"big": [], "base": []}
        for _ in range(args.scrapes):  # alternate, so both see the same machine state
            for name in ("big", "base"):
                before = sum(server.cpu_times()[:2])
                runs[name].append(scrape(port, f"/{name}/metrics"))
                cpu[name].append(sum(server.cpu_times()[:2]) - before)
                print(f"{name}: {runs[name][-1][0]:.3f} s (server cpu {cpu[name][-1]:.3f} s)",
                      file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(30)
    big = statistics.median(r[0] for r in runs["big"])
    base = statistics.median(r[0] for r in runs["base"])
    print(json.dumps({
        "tasks": args.tasks, "baseline_tasks": args.baseline_tasks, "scrapes": args.scrapes,
        "first_scrape_s": round(first, 4), "scrape_s_median": round(big, 4),
        "scrape_s_max": round(max(r[0] for r in runs["big"]), 4),
        "baseline_scrape_s_median": round(base, 4),
        "server_cpu_s_median": round(statistics.median(cpu["big"]), 4),
        "baseline_server_cpu_s_median": round(statistics.median(cpu["base"]), 4),
        "load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
        "per_task_ratio": round((big / args.tasks) / (base / args.baseline_tasks), 3),
        "bytes": runs["big"][0][1], "samples": runs["big"][0][2],
        "goal_s": 1.0, "met": big < 1.0,
        "master": master_render(args.tasks, args.master_agents),
    }))


if __name__ == "__main__":
    main()
