#!/usr/bin/env python3
"""scale: one real master under N simulated agents and F frameworks, for growing N.

For each N of ``--agents`` (default 1000,5000,10000,20000,50000) a fresh master
process (``mesoslite master``, its registry in a file under the work directory,
durable as in production) is started, then:

1. **registration**: N simulated agents (``sim_agents.py``: the real protocol,
   one ZeroMQ connection each) in processes of at most ``--per-process`` agents,
   each process from its own loopback source address (127.0.0.2, .3, ...: ~28,000
   ephemeral ports per address); the time from starting them until the master
   counts N agents (``registration_s``);
2. **idle**: ``--idle-seconds`` (at least one ping round) of nothing but pings:
   the master's CPU (% of one core, per agent) and RSS;
3. **first offer**: F frameworks (real ``SchedulerDriver`` s in this process)
   subscribe at once; the time from each SUBSCRIBE to its first offer (p50/max);
4. **load**: the frameworks keep their offers (as Marathon does) and for
   ``--load-seconds`` each launches ``--launch-rate`` tasks a second on a held offer
   (the simulated agent answers TASK_RUNNING at once; the remainder goes back and is
   offered again): the accept -> RUNNING round trip (p50/p99), the master's CPU and
   its allocation cycle times (its own metrics,
   ``allocator/mesos/allocation_run_ms/*``; the batch runs over every agent in
   ``allocator/allocation_full_run_ms/*``);
5. **state**: (the frameworks still connected) ``/state-summary`` and ``/state``
   fetched (client time, bytes) and the worst event-loop stall of the master around
   them (``master/event_loop_lag_ms/max_recent``, after a quiet window).

Each figure carries the issue's goal (stated at N=50,000, F=50) and ``met``.  The
run stops growing N at the first N that fails (a timeout, a dead process) and
says why.  Prints one JSON document::

    python benchmarks/scale.py [--agents 1000,5000,10000,20000,50000] [--frameworks 50]
        [--per-process 8000] [--idle-seconds 16] [--load-seconds 15] [--timeout 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
from bench_support import (
    PySpy,
    check_at_least,
    check_positive,
    cli_argv,
    failure,
    free_port,
    get_json,
    kill_sessions,
    print_report,
    remove_or_keep,
    run_facts,
    say,
    set_progress_tag,
    sigterm_as_interrupt,
    spawn_logged,
    stop_all,
)

from mesoslite.protocol import (
    CommandInfo,
    Filters,
    FrameworkInfo,
    Offer,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mesoslite.resources import Resources
from mesoslite.scheduler import Scheduler, SchedulerDriver

HERE = Path(__file__).resolve().parent
#: The issue's goals (at N = 50,000, F = 50).
GOALS = {
    "registration_s": 60.0,
    "allocation_p99_ms": 1000.0,
    "first_offer_max_s": 1.0,
    "idle_cpu_percent": 30.0,
    "rss_mb": 2048.0,
    "state_summary_s": 1.0,
    "state_loop_stall_ms": 50.0,
}
TASK = Resources.parse("cpus:0.01;mem:1")
#: Descriptors the master needs beside one per agent connection (frameworks, HTTP, files).
FD_MARGIN = 512


# ------------------------------------------------------------------ frameworks


class Launcher(Scheduler):
    """One framework that keeps its offers (as Marathon does until it has work) and, while
    ``launching``, launches on one of them ``rate`` times a second."""

    def __init__(self, name: str) -> None:
        """Nothing subscribed yet."""
        self.name = name
        self.subscribed_at = 0.0
        self.first_offer_s: float | None = None
        self.first_offer = asyncio.Event()
        self.held: dict[str, Offer] = {}
        self.count = 0
        self.accepted_at: dict[str, float] = {}  # task id -> when it was launched
        self.round_trips: list[float] = []
        self.offers_received = 0
        self.problems: list[str] = []

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        """Record the first offer; keep them all."""
        if self.first_offer_s is None:
            self.first_offer_s = time.monotonic() - self.subscribed_at
            self.first_offer.set()
        self.offers_received += len(offers)
        for offer in offers:
            self.held[offer.id] = offer

    def offer_rescinded(self, driver: SchedulerDriver, offer_id: str) -> None:
        """Forget it."""
        self.held.pop(offer_id, None)

    def launch_one(self, driver: SchedulerDriver) -> None:
        """One task on the oldest held offer (its remainder goes back at once)."""
        if not self.held:
            return
        offer_id = next(iter(self.held))
        offer = self.held.pop(offer_id)
        self.count += 1
        task_id = f"{self.name}-{self.count}"
        self.accepted_at[task_id] = time.monotonic()
        driver.launch_tasks([offer_id], [TaskInfo(
            name=task_id, task_id=task_id, agent_id=offer.agent_id, resources=TASK,
            command=CommandInfo(value="true"))], Filters(refuse_seconds=0.0))

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        """RUNNING closes a round trip."""
        started = self.accepted_at.pop(status.task_id, None)
        if status.state is TaskState.TASK_RUNNING and started is not None:
            self.round_trips.append(time.monotonic() - started)
        elif status.state is not TaskState.TASK_RUNNING and len(self.problems) < 5:
            self.problems.append(f"{status.task_id}: {status.state.value} {status.message}")

    def error(self, driver: SchedulerDriver, message: str) -> None:
        """A fatal error from the master."""
        self.problems.append(f"error: {message}")


# --------------------------------------------------------------------- helpers


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


def timed_get(url: str, timeout: float) -> tuple[float, int]:
    """Seconds and bytes of one GET."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started = time.perf_counter()
    with opener.open(url, timeout=timeout) as response:
        size = len(response.read())
    return time.perf_counter() - started, size


def raise_nofile(want: int) -> int:
    """Raise this process's open-file limits (children inherit them); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Run:
    """The processes of one N: the master and the simulated agents."""

    def __init__(self, root: Path, log_level: str) -> None:
        """Nothing started."""
        self.root = root
        self.log_level = log_level
        self.procs: list[subprocess.Popen[bytes]] = []
        self.master: subprocess.Popen[bytes] | None = None
        self.http_port = free_port()
        self.ready_files: list[Path] = []
        self.zmq_port = free_port()
        self._logs: list[Any] = []

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` logging into ``<root>/<name>.log``."""
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        proc = spawn_logged(argv, log, self.root)
        self.procs.append(proc)
        return proc

    def start_master(self) -> None:
        """The master, its registry in ``<root>/master``."""
        self.master = self.spawn("master", cli_argv(
            self.log_level, "master", "--ip", "127.0.0.1", "--http_port", str(self.http_port),
            "--zmq_port", str(self.zmq_port), "--work_dir", str(self.root / "master")))

    def start_agents(self, count: int, per_process: int) -> None:
        """``count`` simulated agents in processes of ``per_process``, one source each."""
        first = 0
        index = 0
        while first < count:
            n = min(per_process, count - first)
            self.spawn(f"sim-{index}", [
                sys.executable, str(HERE / "sim_agents.py"), "--master",
                f"127.0.0.1:{self.zmq_port}", "--source", f"127.0.0.{2 + index}",
                "--count", str(n), "--first", str(first), "--log-level", "WARNING",
                "--ready-file", str(self.root / f"sim-{index}.ready")])
            self.ready_files.append(self.root / f"sim-{index}.ready")
            first += n
            index += 1

    def check_alive(self) -> None:
        """RuntimeError naming a process that exited."""
        for proc in self.procs:
            if proc.poll() is not None:
                argv = [str(arg) for arg in proc.args] if isinstance(proc.args, list) else []
                raise RuntimeError(f"{' '.join(argv[-8:])} exited with {proc.returncode}")

    def master_cpu(self) -> float:
        """CPU seconds the master used so far (user + system)."""
        assert self.master is not None
        times = psutil.Process(self.master.pid).cpu_times()
        return float(times.user + times.system)

    def metrics(self) -> dict[str, float]:
        """The master's /metrics/snapshot."""
        return get_json(f"http://127.0.0.1:{self.http_port}/metrics/snapshot", timeout=60)

    def stop(self) -> None:
        """Stop everything (agents first), close the logs."""
        agents = [p for p in self.procs if p is not self.master]
        stop_all(agents, 15, 10.0)
        if self.master is not None:
            stop_all([self.master], 15, 15.0)
        kill_sessions(self.procs)
        for log in self._logs:
            log.close()


async def wait_for(check: Any, timeout: float, what: str, run: Run, period: float = 0.5) -> Any:
    """Poll ``check`` in a thread until truthy (TimeoutError naming ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError):
            value = await asyncio.to_thread(check)
            if value:
                return value
        run.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        await asyncio.sleep(period)


# ------------------------------------------------------------------- one N


async def register(run: Run, n: int, args: argparse.Namespace, out: dict[str, Any]) -> None:
    """N agents on the started master; time the registration."""
    await wait_for(lambda: run.metrics().get("master/elected") == 1.0, 60, "master elected", run)
    started, cpu = time.monotonic(), run.master_cpu()
    run.start_agents(n, args.per_process)
    spy = PySpy(args.py_spy, "raw") if args.py_spy else None
    if spy is not None:  # the first simulator's side of the registration
        spy.attach([(f"n{n}-register-sim-0", run.procs[1].pid)])
    try:
        await wait_for(lambda: run.metrics().get("master/slaves_active", 0) >= n, args.timeout,
                       f"{n} agents registered", run, period=1.0)
    finally:
        if spy is not None:
            await asyncio.to_thread(spy.stop)
    out["registration_s"] = round(time.monotonic() - started, 2)
    out["registration_master_cpu_s"] = round(run.master_cpu() - cpu, 2)
    # Every simulator has seen all its answers (else its retries would fall into the idle
    # window).
    await wait_for(lambda: all(f.exists() for f in run.ready_files), args.timeout,
                   "every simulator acknowledged", run)
    metrics = await asyncio.to_thread(run.metrics)
    out["register_messages"] = metrics.get("master/messages_register_agent", 0)
    say(f"N={n}: registered in {out['registration_s']} s (master CPU "
        f"{out['registration_master_cpu_s']} s)")


async def idle(run: Run, n: int, args: argparse.Namespace, out: dict[str, Any]) -> None:
    """CPU and RSS of the master with nothing but pings."""
    assert run.master is not None
    proc = psutil.Process(run.master.pid)
    await asyncio.sleep(2.0)  # the registration's last writes
    before, t0 = proc.cpu_times(), time.monotonic()
    await asyncio.sleep(args.idle_seconds)
    after, t1 = proc.cpu_times(), time.monotonic()
    cpu = (after.user + after.system - before.user - before.system) / (t1 - t0) * 100.0
    out["idle_cpu_percent"] = round(cpu, 1)
    out["idle_cpu_percent_per_1k_agents"] = round(cpu * 1000 / n, 3)
    out["rss_mb"] = round(proc.memory_info().rss / 2**20, 1)
    say(f"N={n}: idle master {out['idle_cpu_percent']}% of a core, RSS {out['rss_mb']} MB")


async def frameworks(run: Run, n: int, args: argparse.Namespace, out: dict[str, Any]) -> None:
    """F frameworks subscribe (first offer), then launch under load (round trips)."""
    master = f"127.0.0.1:{run.zmq_port}"
    scheds = [Launcher(f"fw{i}") for i in range(args.frameworks)]
    drivers = [SchedulerDriver(s, FrameworkInfo(user="", name=s.name), master)
               for s in scheds]
    try:
        cpu = run.master_cpu()
        for sched in scheds:  # all at once, as after a cluster restart
            sched.subscribed_at = time.monotonic()
        await asyncio.gather(*(driver.start_async() for driver in drivers))
        try:
            await asyncio.wait_for(asyncio.gather(*(s.first_offer.wait() for s in scheds)),
                                   args.timeout)
        except TimeoutError:
            got = sum(1 for s in scheds if s.first_offer.is_set())
            raise TimeoutError(f"only {got}/{len(scheds)} frameworks got an offer") from None
        out["first_offers_master_cpu_s"] = round(run.master_cpu() - cpu, 2)
        firsts = [s.first_offer_s or 0.0 for s in scheds]
        out["first_offer_p50_s"] = round(quantile(firsts, 0.5), 3)
        out["first_offer_max_s"] = round(max(firsts), 3)
        say(f"N={n}: first offers p50 {out['first_offer_p50_s']} s, max "
            f"{out['first_offer_max_s']} s")
        await load(run, n, scheds, drivers, args, out)
        await state_reads(run, n, out)  # frameworks still connected, holding their offers
    finally:
        for driver in drivers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(driver.stop_async(), 10)


async def load(run: Run, n: int, scheds: list[Launcher], drivers: list[SchedulerDriver],
               args: argparse.Namespace, out: dict[str, Any]) -> None:
    """``--load-seconds`` of launches (``--launch-rate`` per framework a second, spread):
    round trips and the master's allocation times."""
    await asyncio.sleep(2.0)  # the first offers settle
    cpu = run.master_cpu()
    period = 1.0 / args.launch_rate
    started = time.monotonic()
    tick = 0
    while time.monotonic() - started < args.load_seconds:
        for sched, driver in zip(scheds, drivers, strict=True):
            sched.launch_one(driver)
        tick += 1
        await asyncio.sleep(max(0.0, started + tick * period - time.monotonic()))
    out["load_master_cpu_percent"] = round((run.master_cpu() - cpu) / args.load_seconds * 100, 1)
    await asyncio.sleep(2.0)  # the last RUNNING updates
    trips = [t for s in scheds for t in s.round_trips]
    out["offers_received"] = sum(s.offers_received for s in scheds)
    metrics = await asyncio.to_thread(run.metrics)
    out["tasks_launched"] = len(trips)
    out["launches_per_s"] = round(len(trips) / args.load_seconds, 1)
    out["round_trip_p50_ms"] = round(quantile(trips, 0.5) * 1000, 1)
    out["round_trip_p99_ms"] = round(quantile(trips, 0.99) * 1000, 1)
    for key, name in (("allocation", "allocator/mesos/allocation_run_ms"),
                      ("allocation_full", "allocator/allocation_full_run_ms")):
        for q in ("p50", "p99", "max", "count"):
            out[f"{key}_{q}_ms" if q != "count" else f"{key}_runs"] = \
                round(metrics.get(f"{name}/{q}", 0.0), 2)
    problems = [p for s in scheds for p in s.problems][:5]
    if problems:
        out["problems"] = problems
    say(f"N={n}: {len(trips)} launches, round trip p50 {out['round_trip_p50_ms']} ms p99 "
        f"{out['round_trip_p99_ms']} ms; allocation p99 {out['allocation_p99_ms']} ms, "
        f"full p99 {out['allocation_full_p99_ms']} ms")


async def state_reads(run: Run, n: int, out: dict[str, Any]) -> None:
    """/state-summary and /state: client time, size, the master's worst loop stall."""
    base = f"http://127.0.0.1:{run.http_port}"
    await asyncio.sleep(LAG_WINDOW_S)  # the lag window forgets the load phase
    quiet = await asyncio.to_thread(run.metrics)
    out["loop_stall_quiet_ms"] = round(quiet.get("master/event_loop_lag_ms/max_recent", 0), 1)
    metrics = quiet
    for key, path in (("state_summary", "/state-summary"), ("state", "/state")):
        seconds, size = await asyncio.to_thread(timed_get, base + path, 300)
        metrics = await asyncio.to_thread(run.metrics)
        out[f"{key}_s"] = round(seconds, 3)
        out[f"{key}_mb"] = round(size / 2**20, 2)
        out[f"{key}_loop_stall_ms"] = round(
            metrics.get("master/event_loop_lag_ms/max_recent", 0.0), 1)
    out["loop_stall_max_ms"] = round(metrics.get("master/event_loop_lag_ms/max", 0.0), 1)
    say(f"N={n}: /state-summary {out['state_summary_s']} s, /state {out['state_s']} s "
        f"({out['state_mb']} MB), stall during /state {out['state_loop_stall_ms']} ms")


#: Seconds the master's recent loop-lag maximum covers (mesoslite.master.loopwatch).
LAG_WINDOW_S = 10.0


def judge(out: dict[str, Any]) -> dict[str, Any]:
    """Each figure that has a goal, with the goal and whether it is met."""
    figures = dict(out)
    figures["state_loop_stall_ms"] = out.get("state_loop_stall_ms")
    verdicts = {}
    for key, goal in GOALS.items():
        value = figures.get(key)
        if value is None:
            continue
        verdicts[key] = {"value": value, "goal": f"< {goal:g}", "met": value < goal}
    return verdicts


async def one_n(n: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Every measurement at ``n`` agents (``error`` says why a step failed)."""
    run_root = root / f"n{n}"
    run_root.mkdir(parents=True, exist_ok=True)
    run = Run(run_root, args.log_level)
    out: dict[str, Any] = {"agents": n, "frameworks": args.frameworks,
                           "load_average_1m_at_start": round(os.getloadavg()[0], 2)}

    @contextlib.asynccontextmanager
    async def profiled(phase: str) -> Any:
        """With ``--py-spy DIR``: the master's profile of ``phase`` in DIR/n<N>-<phase>.txt."""
        spy = PySpy(args.py_spy, "raw") if args.py_spy and run.master is not None else None
        if spy is not None:
            assert run.master is not None
            spy.attach([(f"n{n}-{phase}", run.master.pid)])
        try:
            yield
        finally:
            if spy is not None:
                await asyncio.to_thread(spy.stop)

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if n + FD_MARGIN > soft:
        out["error"] = (f"the master may open {soft} files (the hard limit: raising it needs "
                        f"CAP_SYS_RESOURCE), fewer than {n} agent connections + {FD_MARGIN}")
        say(f"N={n}: not run: {out['error']}")
        out["goals"] = {}
        return out
    try:
        run.start_master()
        async with profiled("register"):
            await register(run, n, args, out)
        async with profiled("idle"):
            await idle(run, n, args, out)
        async with profiled("frameworks"):
            await frameworks(run, n, args, out)
        assert run.master is not None
        out["rss_mb_end"] = round(psutil.Process(run.master.pid).memory_info().rss / 2**20, 1)
    except (TimeoutError, RuntimeError, OSError) as exc:
        out["error"] = failure(exc)
        say(f"N={n}: stopped: {out['error']}")
    finally:
        await asyncio.to_thread(run.stop)
    out["goals"] = judge(out)
    return out


async def main_async(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Every N in turn, until one fails."""
    results = []
    stopped = "every N of --agents ran"
    for n in args.agents:
        result = await one_n(n, args, root)
        results.append(result)
        if "error" in result:
            stopped = f"N={n}: {result['error']}"
            break
    reached = [r["agents"] for r in results if "error" not in r]
    return {"results": results, "largest_n": max(reached, default=0), "stopped": stopped}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="1000,5000,10000,20000,50000",
                        help="comma-separated agent counts (default 1000,...,50000)")
    parser.add_argument("--frameworks", type=int, default=50, help="frameworks (default 50)")
    parser.add_argument("--per-process", type=int, default=8000,
                        help="simulated agents per process (default 8000)")
    parser.add_argument("--idle-seconds", type=float, default=16.0,
                        help="idle window, at least one ping interval (default 16)")
    parser.add_argument("--load-seconds", type=float, default=15.0,
                        help="seconds of launches (default 15)")
    parser.add_argument("--launch-rate", type=float, default=2.0,
                        help="launches a second per framework in the load phase (default 2)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="longest wait of one step (default 300)")
    parser.add_argument("--log-level", default="WARNING", help="of the master (default WARNING)")
    parser.add_argument("--py-spy", default="",
                        help="directory for py-spy profiles of the master, one per phase")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    try:
        args.agents = [int(x) for x in args.agents.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--agents: expected comma-separated integers, got {args.agents!r}")
    if not args.agents or min(args.agents) < 1:
        parser.error(f"--agents: expected counts of at least 1, got {args.agents!r}")
    check_at_least(parser, args, ("frameworks", "per_process"))
    check_positive(parser, args, ("idle_seconds", "load_seconds", "timeout", "launch_rate"))
    return args


def main(argv: list[str] | None = None) -> int:
    """Run and print the JSON report."""
    args = parse_args(argv)
    set_progress_tag("scale")
    limit = raise_nofile(4 * max(args.agents) + 4096)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="mesoslite-scale-"))
    restore = sigterm_as_interrupt()
    try:
        report = asyncio.run(main_async(args, root))
    finally:
        restore()
        remove_or_keep(root, args.keep)
    trips = [r.get("round_trip_p50_ms", 0.0) for r in report["results"] if "error" not in r]
    report.update({
        "benchmark": "scale",
        "command": " ".join(["python", "benchmarks/scale.py", *(argv or sys.argv[1:])]),
        "open_file_limit": limit,
        "goals_at": "N=50,000, F=50",
        "round_trip_p50_ms_median_over_n": round(statistics.median(trips), 1) if trips else None,
        **run_facts(started),
    })
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
