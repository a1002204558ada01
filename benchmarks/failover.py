#!/usr/bin/env python3
"""failover: time to recover from a kill -9 of the leading master.

Owns: the master-failover benchmark.  It starts a real ZooKeeper (Debian's,
``tests/support/zk.py``), three masters contending through it
(``mesoslite master --zk zk://… --quorum 2 --zk_session_timeout S``), agents
that follow the leader (``--agents N`` real ``mesoslite agent --master zk://…``
processes), and a framework in this process (SDK driver on ``zk://…``,
``checkpoint=True``, ``failover_timeout=600``) that launches ``--tasks M``
long-running tasks (``sleep``) and waits until all are RUNNING.  Then it
kill -9s the leading master and measures, from the kill:

* ``a_new_leader_s``: a surviving master's ``/metrics/snapshot`` says
  ``master/elected`` = 1;
* ``b_agents_reregistered_s``: the new leader's ``/state`` counts every agent
  as active (``activated_slaves``);
* ``c_framework_reconciled_s``: the framework got ``reregistered`` and an
  implicit reconciliation (repeated every ``--reconcile-interval`` seconds
  until answered, as the Mesos reconciliation recipe asks) returned every
  task as RUNNING;

each also minus the ZooKeeper session timeout (``*_minus_session_s``: the
part of the recovery that is not waiting for ZooKeeper to expire the dead
leader's session), and ``tasks_lost``: terminal or LOST/UNREACHABLE updates
seen after the kill (must be 0).  It prints ONE JSON object on stdout
(progress goes to stderr)::

    python benchmarks/failover.py [--agents 20] [--simulated-agents 0] [--tasks 100]
        [--session-timeout 4] [--agent-batch 10] [--timeout 60] [--log-level INFO] [--keep]
        [--per-process 5000] [--registration-timeout 0] [--py-spy DIR]

``--simulated-agents N`` adds N agents simulated by ``benchmarks/sim_agents.py``
processes of at most ``--per-process`` agents (default 5000), each process from
its own loopback source address (127.0.0.2, .3, ...; one DealerClient per agent
speaking the real protocol, following the leader through ZooKeeper); they must
all register within ``--registration-timeout`` (default ``--timeout`` + 10 ms
per simulated agent).  The tasks spread over real and simulated agents alike
and the measurements are the same.  ``--py-spy DIR`` records the surviving
masters from the kill until (c).

Every process it started (ZooKeeper, masters, agents, executors, tasks,
simulator) is stopped on the way out, after an error or Ctrl-C too.
Exit status: 0 when every phase completed with no task lost, 1 otherwise,
130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_support import (
    ROOT,
    PySpy,
    check_at_least,
    check_positive,
    cli_argv,
    failure,
    free_port,
    get_json,
    kill_leftovers,
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
from tests.support.zk import ZooKeeperServer

#: Resources of one benchmark task.
TASK_RESOURCES = {"cpus": 0.01, "mem": 1.0}
#: The issue's goal for (c) minus the session timeout, in seconds (at 1,000 agents).
GOAL_C_MINUS_SESSION_S = 1.0
#: Real agent processes by default: 100 is the issue's figure, but on a 2-core
#: machine 100 Python agents (plus 3 masters and ZooKeeper) keep the CPU saturated.
DEFAULT_AGENTS = 20
#: States that mean the task is gone (or may be).
LOST_STATES = {"TASK_LOST", "TASK_UNREACHABLE", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
               "TASK_DROPPED", "TASK_UNKNOWN"}


# ----------------------------------------------------------------- processes


class Procs:
    """The processes of the benchmark under ``root``; :meth:`stop` ends all of them."""

    def __init__(self, root: Path, log_level: str) -> None:
        """Nothing starts until asked."""
        self.root = root
        self.log_level = log_level
        self.masters: list[tuple[subprocess.Popen[bytes], int]] = []  # (process, http port)
        self.agents: list[subprocess.Popen[bytes]] = []
        self.others: list[subprocess.Popen[bytes]] = []
        self._logs: list[Any] = []
        self.names: dict[int, str] = {}

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` with its output in ``<root>/<name>.log``, in its own session."""
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        proc = spawn_logged(argv, log, self.root)
        self.names[proc.pid] = name
        return proc

    def cli(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """``python -m mesoslite.cli --log_level L <args>``."""
        return self.spawn(name, cli_argv(self.log_level, *args))

    def start_masters(self, zk_url: str, session_timeout: float, count: int = 3) -> None:
        """Three masters contending at ``zk_url`` (quorum 2)."""
        for i in range(count):
            http = free_port()
            proc = self.cli(f"master{i}", [
                "master", "--ip", "127.0.0.1", "--http_port", str(http),
                "--zmq_port", str(free_port()), "--work_dir", str(self.root / f"master{i}"),
                "--zk", zk_url, "--quorum", "2", "--zk_session_timeout", f"{session_timeout:g}",
                "--allocation_interval", "0.2",
            ])
            self.masters.append((proc, http))

    def start_agents(self, zk_url: str, count: int, resources: str) -> None:
        """``count`` more agents following the leader at ``zk_url``."""
        first = len(self.agents)
        for i in range(first, first + count):
            self.agents.append(self.cli(f"agent{i}", [
                # HTTP port 0: nothing here reads it, and a port picked in advance can be
                # taken by another process before the agent binds it.
                "agent", "--master", zk_url, "--ip", "127.0.0.1",
                "--http_port", "0", "--work_dir", str(self.root / f"agent{i}"),
                "--resources", resources,
            ]))

    def check_alive(self, skip: int | None = None) -> None:
        """RuntimeError naming the first process (other than pid ``skip``) that exited."""
        for proc in [*(p for p, _ in self.masters), *self.agents, *self.others]:
            if proc.pid != skip and proc.poll() is not None:
                log = self.root / f"{self.names.get(proc.pid, '?')}.log"
                try:
                    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                except OSError:
                    tail = []
                raise RuntimeError(f"{self.names.get(proc.pid)} (pid {proc.pid}) exited with "
                                   f"{proc.returncode}; last lines of {log.name}: {tail}")

    def stop(self) -> None:
        """SIGTERM agents (they kill executors and tasks), then the masters (no sweep yet)."""
        masters = [p for p, _ in self.masters]
        stop_all([*self.agents, *self.others], signal.SIGTERM, 15.0)
        stop_all(masters, signal.SIGTERM, 10.0)
        kill_sessions([*self.agents, *self.others, *masters])
        for log in self._logs:
            log.close()


def elected(http_port: int) -> bool:
    """True when the master on ``http_port`` reports ``master/elected`` = 1."""
    try:
        return bool(get_json(f"http://127.0.0.1:{http_port}/metrics/snapshot", 1.0)
                    .get("master/elected"))
    except (OSError, ValueError):
        return False


def active_agents(http_port: int) -> int:
    """``master/slaves_active`` of the master on ``http_port`` (-1 when it does not answer):
    the connected agents, as ``/state``'s ``activated_slaves`` counts them, without
    rendering every agent (polled during the recovery, that would load the new leader)."""
    try:
        return int(get_json(f"http://127.0.0.1:{http_port}/metrics/snapshot", 5.0)
                   .get("master/slaves_active", -1))
    except (OSError, ValueError):
        return -1


#: The new leader's figures of its recovery, reported as they are.
LEADER_METRICS = ("registrar/state_fetch_ms", "registrar/writes",
                  "master/messages_held_while_recovering",
                  "master/messages_dropped_while_recovering", "master/leader_redirects",
                  "master/recovery_slave_removals", "master/slave_reregistrations_repeated",
                  "master/messages_received")


def leader_metrics(http_port: int) -> dict[str, float]:
    """:data:`LEADER_METRICS` of the master on ``http_port`` (empty when it does not answer)."""
    try:
        snapshot = get_json(f"http://127.0.0.1:{http_port}/metrics/snapshot", 10.0)
    except (OSError, ValueError):
        return {}
    return {name: snapshot[name] for name in LEADER_METRICS if name in snapshot}


# ----------------------------------------------------------------- framework


class LongTasks(Scheduler):
    """Launches ``total`` long-running tasks; records RUNNING, losses and re-registration."""

    def __init__(self, total: int, command: str) -> None:
        """Nothing launched yet."""
        self.total = total
        self.command = command
        self.per_task = Resources.from_dict(TASK_RESOURCES)
        self.launched = 0
        self.running: set[str] = set()
        self.all_running = asyncio.Event()
        self.killed_at: float | None = None
        self.disconnected_at: float | None = None
        self.reregistered_at: float | None = None
        self.reregistered_event = asyncio.Event()
        #: Task ids answered RUNNING by reconciliation after the kill.
        self.reconciled: set[str] = set()
        self.reconciled_all = asyncio.Event()
        self.reconciled_at: float | None = None
        self.lost: dict[str, str] = {}
        self.problems: list[str] = []

    def registered(self, driver: SchedulerDriver, framework_id: str, master_info: Any) -> None:
        """Log the framework id."""
        say(f"framework {framework_id} registered")

    def reregistered(self, driver: SchedulerDriver, master_info: Any) -> None:
        """Note the time; the reconciliation loop starts from here."""
        if self.killed_at is not None and self.reregistered_at is None:
            self.reregistered_at = time.monotonic()
            self.reregistered_event.set()
            driver.reconcile_tasks()

    def disconnected(self, driver: SchedulerDriver) -> None:
        """Note the time."""
        if self.killed_at is not None and self.disconnected_at is None:
            self.disconnected_at = time.monotonic()

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        """Launch what is left, spread over the offers; decline the rest."""
        for offer in offers:
            left = offer.resources
            tasks: list[TaskInfo] = []
            share = max(1, -(-(self.total - self.launched) // max(1, len(offers))))
            while (self.launched < self.total and len(tasks) < share
                   and left.contains(self.per_task)):
                left = left - self.per_task
                task_id = f"sleep-{self.launched}"
                self.launched += 1
                tasks.append(TaskInfo(name=task_id, task_id=task_id, agent_id=offer.agent_id,
                                      resources=self.per_task,
                                      command=CommandInfo(value=self.command)))
            if tasks:
                driver.launch_tasks([offer.id], tasks, Filters(refuse_seconds=0.0))
            else:
                driver.decline_offer(offer.id, Filters(refuse_seconds=3600.0))
        if self.launched >= self.total:
            driver.suppress_offers()

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        """RUNNING before the kill counts toward the start; after it, toward reconciliation."""
        state = status.state.value
        if status.state.is_terminal or state in LOST_STATES:
            if self.killed_at is not None:
                self.lost[status.task_id] = state
            elif len(self.problems) < 10:
                self.problems.append(f"{status.task_id}: {state} {status.message}")
            return
        if status.state is not TaskState.TASK_RUNNING:
            return
        if self.killed_at is None:
            self.running.add(status.task_id)
            if len(self.running) >= self.total:
                self.all_running.set()
        elif self.reregistered_at is not None:
            self.reconciled.add(status.task_id)
            if len(self.reconciled) >= self.total and self.reconciled_at is None:
                self.reconciled_at = time.monotonic()
                self.reconciled_all.set()

    def error(self, driver: SchedulerDriver, message: str) -> None:
        """A fatal error from the master."""
        self.problems.append(f"error from the master: {message}")


# ---------------------------------------------------------------- the run


async def wait_until(check: Any, timeout: float, what: str, period: float = 0.05,
                     procs: Procs | None = None, skip: int | None = None) -> Any:
    """Poll ``check`` (in a thread) until truthy; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if procs is not None:
            procs.check_alive(skip)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        await asyncio.sleep(period)


def registration_timeout(args: argparse.Namespace) -> float:
    """Seconds allowed for the simulated agents to register: ``--registration-timeout``,
    or by default ``--timeout`` plus 10 ms per simulated agent (10,000 agents: 160 s)."""
    if args.registration_timeout > 0:
        return float(args.registration_timeout)
    return float(args.timeout + 0.01 * args.simulated_agents)


def simulator_argvs(zk_url: str, count: int, per_process: int, root: Path,
                    log_level: str) -> list[tuple[str, list[str], Path]]:
    """(name, argv, ready file) of the ``sim_agents.py`` processes for ``count`` agents:
    at most ``per_process`` each, each from its own loopback source (127.0.0.2, .3, ...)."""
    out: list[tuple[str, list[str], Path]] = []
    first = 0
    while first < count:
        n = min(per_process, count - first)
        index = len(out)
        ready = root / f"sim_agents-{index}.ready"
        out.append((f"sim_agents-{index}", [
            sys.executable, str(ROOT / "benchmarks" / "sim_agents.py"), "--zk", zk_url,
            "--count", str(n), "--first", str(first), "--source", f"127.0.0.{2 + index}",
            "--ready-file", str(ready), "--log-level", log_level,
        ], ready))
        first += n
    return out


async def start_simulated_agents(procs: Procs, zk_url: str, args: argparse.Namespace,
                                 leader_http: int) -> None:
    """``sim_agents.py`` processes of ``--per-process`` agents each (own source address);
    wait until every one says all its agents registered and the leader counts them all."""
    # The simulators log only progress (counts every 0.25 s after a move): INFO at least.
    sims = simulator_argvs(zk_url, args.simulated_agents, args.per_process, procs.root,
                           "INFO" if args.log_level.upper() in ("WARNING", "ERROR") else
                           args.log_level)
    say(f"starting {args.simulated_agents} simulated agents ({len(sims)} processes)")
    for name, argv, _ready in sims:
        procs.others.append(procs.spawn(name, argv))
    total = args.agents + args.simulated_agents
    deadline = registration_timeout(args)
    started = time.monotonic()
    await wait_until(lambda: all(ready.exists() for _n, _a, ready in sims), deadline,
                     f"{args.simulated_agents} simulated agents registered", 0.25, procs)
    await wait_until(lambda: active_agents(leader_http) >= total,
                     max(10.0, deadline - (time.monotonic() - started)),
                     f"{total} agents active on the leader", 0.5, procs)
    say(f"{args.simulated_agents} simulated agents registered in "
        f"{time.monotonic() - started:.1f}s")


async def run(procs: Procs, zk_url: str, args: argparse.Namespace,
              result: dict[str, Any], holder: dict[str, LongTasks]) -> None:
    """Start the cluster and the framework, kill the leader, measure into ``result``.

    The framework's scheduler goes into ``holder["sched"]`` (read even after a failure).
    """
    total_agents = args.agents + args.simulated_agents
    procs.start_masters(zk_url, args.session_timeout)

    def leader_port() -> int | None:
        return next((port for _, port in procs.masters if elected(port)), None)

    leader_http = await wait_until(leader_port, 60, "a first leader", procs=procs)
    say(f"leader elected (http {leader_http}); starting {args.agents} agents")
    # In batches: a hundred Python processes starting at once starve a 2-core machine
    # for long enough that the leader's ZooKeeper connection is suspended past its grace.
    while len(procs.agents) < args.agents:
        procs.start_agents(zk_url, min(args.agent_batch, args.agents - len(procs.agents)),
                           args.agent_resources)
        started = len(procs.agents)
        await wait_until(lambda n=started: active_agents(leader_http) >= n, args.timeout,
                         f"{started} agents registered", 0.25, procs)
        if started < args.agents:
            say(f"{started}/{args.agents} agents registered")
    if args.simulated_agents:
        await start_simulated_agents(procs, zk_url, args, leader_http)
    say(f"{total_agents} agents registered; launching {args.tasks} tasks")

    sched = holder["sched"] = LongTasks(args.tasks, f"exec sleep {args.task_seconds:g}")
    info = FrameworkInfo(user="", name="failover-benchmark", checkpoint=True,
                         failover_timeout=600.0)
    driver = SchedulerDriver(sched, info, zk_url,
                             registration_backoff_factor=args.registration_backoff)
    await driver.start_async()
    try:
        try:
            await asyncio.wait_for(sched.all_running.wait(), args.timeout)
        except TimeoutError:
            raise TimeoutError(f"only {len(sched.running)}/{args.tasks} tasks RUNNING within "
                               f"{args.timeout}s; {sched.problems[:3]}") from None
        say(f"{args.tasks} tasks RUNNING; settling {args.settle:g}s, then kill -9 the leader")
        await asyncio.sleep(args.settle)
        leader = next(p for p, port in procs.masters if port == leader_http)
        survivors = [port for p, port in procs.masters if p is not leader]
        spy = PySpy(args.py_spy, "raw") if args.py_spy else None
        if spy is not None:  # the survivors and the first simulator, from the kill until (c)
            spy.attach([(f"failover-master{i}", p.pid) for i, (p, port)
                        in enumerate(procs.masters) if p is not leader]
                       + [(f"failover-{procs.names[p.pid]}", p.pid) for p in procs.others[:1]])
        sched.killed_at = killed = time.monotonic()
        os.kill(leader.pid, signal.SIGKILL)
        say(f"killed the leader (pid {leader.pid})")
        try:
            await measure(procs, sched, driver, survivors, total_agents, killed, args, result,
                          leader.pid)
        finally:
            if spy is not None:
                await asyncio.to_thread(spy.stop)
    finally:
        await driver.stop_async()


async def measure(procs: Procs, sched: LongTasks, driver: SchedulerDriver,
                  survivors: list[int], total_agents: int, killed: float,
                  args: argparse.Namespace, result: dict[str, Any], dead_pid: int) -> None:
    """Phases (a), (b) and (c) after the kill, into ``result``."""
    def new_leader() -> int | None:
        return next((port for port in survivors if elected(port)), None)

    new_http = await wait_until(new_leader, args.timeout, "a new leader", 0.02, procs, dead_pid)
    result["a_new_leader_s"] = time.monotonic() - killed
    say(f"(a) new leader after {result['a_new_leader_s']:.2f}s")

    async def reconcile_loop() -> None:
        await sched.reregistered_event.wait()
        while not sched.reconciled_all.is_set():
            await asyncio.sleep(args.reconcile_interval)
            if not sched.reconciled_all.is_set():
                driver.reconcile_tasks()

    #: Seconds after the kill at which a share of the agents was first seen back.
    shares = {"50": 0.5, "90": 0.9, "99": 0.99}
    back_at: dict[str, float] = result.setdefault("agents_back_s", {})

    async def agents_back() -> None:
        deadline = killed + args.timeout
        while True:
            count = await asyncio.to_thread(active_agents, new_http)
            result["agents_active_last_seen"] = count
            for name, share in shares.items():
                if name not in back_at and count >= share * total_agents:
                    back_at[name] = round(time.monotonic() - killed, 2)
            if count >= total_agents:
                result["b_agents_reregistered_s"] = time.monotonic() - killed
                say(f"(b) every agent re-registered after "
                    f"{result['b_agents_reregistered_s']:.2f}s")
                return
            procs.check_alive(dead_pid)
            if time.monotonic() > deadline:
                raise TimeoutError(f"(b) {count}/{total_agents} agents active on the new "
                                   f"leader {args.timeout:g}s after the kill")
            await asyncio.sleep(0.1)

    async def framework_back() -> None:
        left = max(0.1, killed + args.timeout - time.monotonic())
        try:
            await asyncio.wait_for(sched.reconciled_all.wait(), left)
        except TimeoutError:
            raise TimeoutError(
                f"(c) framework reregistered={sched.reregistered_at is not None}, "
                f"{len(sched.reconciled)}/{args.tasks} tasks reconciled RUNNING "
                f"{args.timeout:g}s after the kill") from None
        result["c_framework_reregistered_s"] = sched.reregistered_at - killed  # type: ignore[operator]
        result["c_framework_reconciled_s"] = sched.reconciled_at - killed  # type: ignore[operator]
        say(f"(c) framework re-registered after {result['c_framework_reregistered_s']:.2f}s, "
            f"reconciled after {result['c_framework_reconciled_s']:.2f}s")

    reconciler = asyncio.get_running_loop().create_task(reconcile_loop())
    try:
        outcomes = await asyncio.gather(agents_back(), framework_back(), return_exceptions=True)
    finally:
        reconciler.cancel()
    if sched.reregistered_at is not None:
        result.setdefault("c_framework_reregistered_s", sched.reregistered_at - killed)
    result["leader_metrics"] = await asyncio.to_thread(leader_metrics, new_http)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if errors:
        raise RuntimeError("; ".join(str(e) for e in errors))
    # Updates still in flight (a lost task shows up as one): give them a moment.
    await asyncio.sleep(args.linger)


# --------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse and check the command line (exit status 2 on a usage error)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=DEFAULT_AGENTS,
                        help=f"real agent processes (default {DEFAULT_AGENTS}; the issue's 100 "
                             "saturate a 2-core machine)")
    parser.add_argument("--simulated-agents", type=int, default=0,
                        help="extra simulated agents (benchmarks/sim_agents.py; default 0)")
    parser.add_argument("--per-process", type=int, default=5000,
                        help="simulated agents per simulator process, each process from its "
                             "own loopback source address (default 5000)")
    parser.add_argument("--registration-timeout", type=float, default=0.0,
                        help="seconds allowed for the simulated agents to register (default "
                             "0: --timeout + 0.01 s per simulated agent)")
    parser.add_argument("--py-spy", default="",
                        help="directory: record the surviving masters with py-spy from the "
                             "kill until (c) (raw stacks, one file per master)")
    parser.add_argument("--agent-batch", type=int, default=10,
                        help="agents started at a time, each batch once the previous one "
                             "registered (default 10)")
    parser.add_argument("--tasks", type=int, default=100, help="long-running tasks (default 100)")
    parser.add_argument("--session-timeout", type=float, default=4.0,
                        help="masters' --zk_session_timeout in seconds (default 4)")
    parser.add_argument("--agent-resources", default="cpus:64;mem:65536;disk:100000",
                        help="resources of every agent")
    parser.add_argument("--task-seconds", type=float, default=3600.0,
                        help="how long each task sleeps (default 3600)")
    parser.add_argument("--registration-backoff", type=float, default=2.0,
                        help="framework driver's registration_backoff_factor (default 2.0, "
                             "the SDK's and Mesos's default)")
    parser.add_argument("--reconcile-interval", type=float, default=0.5,
                        help="seconds between implicit reconciliations until every task is "
                             "answered (default 0.5)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds to wait between all RUNNING and the kill (default 2)")
    parser.add_argument("--linger", type=float, default=2.0,
                        help="seconds to keep listening for lost tasks after (c) (default 2)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds allowed per phase (default 60)")
    parser.add_argument("--log-level", default="INFO", help="masters' and agents' log level")
    parser.add_argument("--work-dir", default="", help="where to create the temporary directory")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (logs) and print its path")
    args = parser.parse_args(argv)
    check_at_least(parser, args, ("agent_batch", "per_process"))
    if args.registration_timeout < 0:
        parser.error(f"--registration-timeout: expected >= 0, got {args.registration_timeout}")
    for name in ("agents", "simulated_agents", "tasks"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')}: expected >= 0, got {getattr(args, name)}")
    if args.agents + args.simulated_agents < 1:
        parser.error("--agents/--simulated-agents: expected at least one agent in all, got 0")
    check_at_least(parser, args, ("tasks",))
    check_positive(parser, args, ("session_timeout",))
    return args


def summarise(args: argparse.Namespace, result: dict[str, Any], problems: list[str],
              lost: dict[str, str], started: float) -> dict[str, Any]:
    """The JSON object printed on stdout."""
    s = args.session_timeout
    out: dict[str, Any] = {
        "benchmark": "failover",
        "agents": args.agents,
        "simulated_agents": args.simulated_agents,
        "tasks": args.tasks,
        "session_timeout_s": s,
        "masters": 3,
    }
    for key in ("a_new_leader_s", "b_agents_reregistered_s", "c_framework_reregistered_s",
                "c_framework_reconciled_s"):
        value = result.get(key)
        out[key] = round(value, 3) if value is not None else None
        out[key.removesuffix("_s") + "_minus_session_s"] = (
            round(value - s, 3) if value is not None else None)
    c = out["c_framework_reconciled_minus_session_s"]
    out["agents_active_on_new_leader"] = result.get("agents_active_last_seen")
    out["agents_back_s"] = result.get("agents_back_s", {})
    out["leader_metrics"] = result.get("leader_metrics", {})
    out["tasks_reconciled_running"] = result.get("tasks_reconciled")
    out["tasks_lost"] = len(lost)
    out["lost_states"] = dict(list(lost.items())[:10])
    out["goal_c_minus_session_s"] = GOAL_C_MINUS_SESSION_S
    out["met"] = bool(c is not None and c <= GOAL_C_MINUS_SESSION_S and not lost)
    out["complete"] = bool(c is not None and not problems and not lost)
    if args.agents >= 50:
        out["note"] = (f"{args.agents} real agent processes on {os.cpu_count()} cores: the "
                       "machine may be CPU-bound, which inflates (b) and (c)")
    out["problems"] = problems[:10]
    out.update(run_facts(started))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the JSON result; return the exit status."""
    args = parse_args(argv)
    set_progress_tag("failover")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="mesoslite-failover-", dir=args.work_dir or None))
    procs = Procs(root, args.log_level)
    zk = ZooKeeperServer(root / "zookeeper")
    # ZooKeeper allows 60 connections per client address by default; every agent,
    # master (contender, detector, registry) and driver holds one, all from 127.0.0.1.
    zk._node.extra_config = ["maxClientCnxns=0"]
    restore_sigterm = sigterm_as_interrupt()
    result: dict[str, Any] = {}
    problems: list[str] = []
    lost: dict[str, str] = {}
    interrupted = False
    holder: dict[str, LongTasks] = {}
    try:
        say(f"starting ZooKeeper under {root}")
        zk.start()
        zk_url = f"zk://{zk.hosts}/mesoslite"
        say(f"ZooKeeper at {zk_url}; starting 3 masters "
            f"(session timeout {args.session_timeout:g}s)")
        asyncio.run(run(procs, zk_url, args, result, holder))
    except KeyboardInterrupt:
        say("interrupted; cleaning up")
        interrupted = True
    except Exception as exc:  # noqa: BLE001 - reported, then cleaned up
        problems.append(failure(exc))
    finally:
        sched = holder.get("sched")
        if sched is not None:
            lost = sched.lost
            problems += sched.problems
            result["tasks_reconciled"] = len(sched.reconciled)
        restore_sigterm()
        say("stopping the cluster")
        try:
            procs.stop()
        finally:
            zk.stop()
            kill_leftovers(root)  # executors and tasks a stuck agent left behind
            remove_or_keep(root, args.keep)
    if interrupted:
        return 130
    out = summarise(args, result, problems, lost, started)
    print_report(out)
    return 0 if out["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
