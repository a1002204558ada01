#!/usr/bin/env python3
"""shell_tasks: end-to-end throughput of shell tasks through a real cluster vs raw spawning.

Owns: the benchmark of the whole task pipeline.  It starts one master and
``--agents`` agents as real processes (``python -m mesoslite.cli master|agent``
on free loopback ports, each with its own work directory under a temporary
directory), runs a framework in this process that launches ``--tasks``
tasks (``true``, a shell command: ``/bin/sh -c true``) as fast as offers
allow with at most ``--parallelism`` tasks in flight, and measures

* ``mesoslite_tasks_per_s``: tasks / (last TASK_FINISHED acknowledged − first offer);
* ``raw_spawn_per_s``: ``sh -c true`` spawned with ``subprocess`` from this one
  Python process by a pool of ``--parallelism`` threads (the same parallelism);
* ``ratio`` of the two; the goal is ``ratio >= 0.5``.

It prints ONE JSON object on stdout (progress goes to stderr)::

    python benchmarks/shell_tasks.py [--tasks 2000] [--agents 2] [--parallelism 64]
        [--cpus-per-task 0.1] [--repeat 1] [--no-checkpoint] [--log-level INFO]
        [--keep] [--py-spy DIR] [--compare isolation|auth|security] [--task-user USER]

With ``--repeat N`` both rates are measured N times (alternating) on the
same cluster: the rates are the medians, ``ratio`` the median of the runs'
own ratios (each pair is measured back to back), every run listed under
``runs``.  ``cpu_ms_per_task``
splits the CPU the cluster used per task by process (master, agents, command
executors, the tasks themselves, this framework); ``other_processes_cpu_share``
is the share of the machine's CPU that processes outside the benchmark used
meanwhile (a busy machine makes the figures lower).  ``--py-spy DIR`` records a
py-spy profile (``--py-spy-format``: flame graph SVG, raw collapsed stacks or
speedscope) of the master, every agent and every command executor during the
last run (needs ``py-spy`` on PATH: ``pip install py-spy``).

With ``--compare NAME`` two clusters run side by side, each warmed up by a short
unmeasured run, and are measured back to back in every round (in the reverse order every
other round): ``isolation`` compares agents with ``--isolation=none --switch_user=false``
and agents with their defaults (``--isolation=auto``: cgroups where writable; tasks run as
``--task-user`` there); ``auth`` framework and agent authentication off and on
(``--authenticate_frameworks``, ``--authenticate_agents``, agents with ``--credential``,
the framework with a credential); ``security`` neither and both. ``comparison`` reports
both median rates and ``on_over_off`` (the median of the rounds' on/off ratios);
``--isolation-compare`` and ``--compare-auth`` are the first two.

Every process it started (master, agents, executors, tasks) is stopped on the
way out, after an error or Ctrl-C too: agents get SIGTERM (they kill their
executors and tasks), then anything left whose command line, working
directory or ``MESOS_SANDBOX`` lies under the benchmark's directory is killed.
Exit status: 0 when every task finished, 1 otherwise, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # running from a source checkout
    sys.path.insert(0, str(ROOT))

from bench_framework import BenchScheduler, drive, spread
from bench_support import (
    Cluster,
    CpuMeter,
    PySpy,
    check_at_least,
    failure,
    filesystem_of,
    inode_create_us,
    print_report,
    remove_or_keep,
    run_facts,
    say,
    set_progress_tag,
    sigterm_as_interrupt,
)

from mesoslite.protocol import (
    CommandInfo,
    Credential,
    Filters,
    FrameworkInfo,
    Offer,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mesoslite.resources import Resources
from mesoslite.scheduler import SchedulerDriver

if TYPE_CHECKING:
    import psutil

GOAL_RATIO = 0.5
MEM_PER_TASK_MB = 32.0


# ---------------------------------------------------------------- framework


class ShellTasks(BenchScheduler):
    """Launches ``total`` shell tasks, at most ``parallelism`` in flight, as offers allow.

    Offers it cannot use yet are kept (not declined) and used as soon as
    tasks end; every accept leaves its remainder to the master with
    ``refuse_seconds=0`` so that it is offered again at once.  Updates are
    acknowledged explicitly; the run ends when the last terminal update
    has been acknowledged.
    """

    def __init__(self, total: int, parallelism: int, per_task: Resources, command: str,
                 on_done: Callable[[], None] | None = None) -> None:
        """Launch ``total`` tasks of ``per_task`` running ``command``; ``on_done`` at the end."""
        super().__init__()
        self.total = total
        self.on_done = on_done
        self.parallelism = parallelism
        self.per_task = per_task
        self.command = command
        self.launched = 0
        self.in_flight = 0
        self.ended = 0
        self.by_state: collections.Counter[str] = collections.Counter()
        self.held: dict[str, Offer] = {}
        self.first_offer_at: float | None = None
        self.first_update_at: float | None = None
        self.last_ack_at: float | None = None
        self._launch_soon = False
        self._suppressed = False
        self._progress_at = 0.0

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        """Keep the offers and launch what the parallelism allows."""
        if self.first_offer_at is None:
            self.first_offer_at = time.perf_counter()
        for offer in offers:
            self.held[offer.id] = offer
        self._launch(driver)

    def offer_rescinded(self, driver: SchedulerDriver, offer_id: str) -> None:
        """Forget a rescinded offer."""
        self.held.pop(offer_id, None)

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        """Acknowledge; on a terminal state free a slot and launch more (batched per loop turn)."""
        driver.acknowledge_status_update(status)
        if self.first_update_at is None:
            self.first_update_at = time.perf_counter()
        if not status.state.is_terminal:
            return
        self.ended += 1
        self.in_flight -= 1
        self.by_state[status.state.value] += 1
        if status.state is not TaskState.TASK_FINISHED and len(self.problems) < 10:
            self.problems.append(f"{status.task_id}: {status.state.value} {status.message}")
        if self.ended >= self.total:
            self.last_ack_at = time.perf_counter()
            self.done.set()
            if self.on_done is not None:
                self.on_done()
            return
        now = time.monotonic()
        if now - self._progress_at > 1.0:
            self._progress_at = now
            say(f"{self.ended}/{self.total} ended, {self.in_flight} in flight")
        if not self._launch_soon:
            self._launch_soon = True
            asyncio.get_running_loop().call_soon(self._launch_later, driver)

    def _launch_later(self, driver: SchedulerDriver) -> None:
        self._launch_soon = False
        self._launch(driver)

    def _launch(self, driver: SchedulerDriver) -> None:
        budget = min(self.parallelism - self.in_flight, self.total - self.launched)
        if budget > 0 and self.held:
            # Round-robin over the agents' offers.
            plans = spread(self.held.values(), budget, self.per_task, self._task)
            for oid, tasks in plans.items():
                if tasks:
                    del self.held[oid]
                    self.in_flight += len(tasks)
                    driver.launch_tasks([oid], tasks, Filters(refuse_seconds=0.0))
        if self.launched >= self.total and not self._suppressed:
            self._suppressed = True
            driver.suppress_offers()
            for oid in list(self.held):
                driver.decline_offer(oid, Filters(refuse_seconds=60.0))
            self.held.clear()

    def _task(self, offer: Offer) -> TaskInfo:
        task_id = f"true-{self.launched}"
        self.launched += 1
        return TaskInfo(name=task_id, task_id=task_id, agent_id=offer.agent_id,
                        resources=self.per_task, command=CommandInfo(value=self.command))


async def run_framework(
    master: str, args: argparse.Namespace, on_done: Callable[[], None] | None = None,
    credential: Credential | None = None,
) -> ShellTasks:
    """Run one framework to completion (or timeout) and tear it down (authenticating with
    ``credential`` when given)."""
    per_task = Resources.from_dict({"cpus": args.cpus_per_task, "mem": MEM_PER_TASK_MB})
    sched = ShellTasks(args.tasks, args.parallelism, per_task, "true", on_done)
    info = FrameworkInfo(user=getattr(args, "run_user", ""), name="shell-tasks-benchmark",
                         checkpoint=args.checkpoint)
    return await drive(sched, info, master, args.timeout,
                       lambda: f"timed out after {args.timeout}s with {sched.ended} ended",
                       implicit_acknowledgements=False, credential=credential)


# ------------------------------------------------------------- raw baseline


def raw_spawn_rate(count: int, parallelism: int) -> float:
    """``sh -c true`` per second, ``parallelism`` at a time, via subprocess from this process."""
    def one(_: int) -> int:
        """One spawn, waited for."""
        return subprocess.run(["sh", "-c", "true"], stdin=subprocess.DEVNULL,
                              close_fds=True, check=False).returncode

    with concurrent.futures.ThreadPoolExecutor(parallelism) as pool:
        list(pool.map(one, range(min(count, 2 * parallelism))))  # warm up the threads
        started = time.perf_counter()
        codes = list(pool.map(one, range(count)))
        elapsed = time.perf_counter() - started
    if any(codes):
        raise RuntimeError("sh -c true failed in the raw baseline")
    return count / elapsed


# --------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse and check the command line (exit status 2 on a usage error)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per run (default 2000)")
    parser.add_argument("--agents", type=int, default=2, help="agents (default 2)")
    parser.add_argument("--parallelism", type=int, default=64,
                        help="max tasks in flight, and threads of the raw baseline (default 64)")
    parser.add_argument("--cpus-per-task", type=float, default=0.1,
                        help="cpus each task asks for (default 0.1)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure both rates this many times; medians reported (default 1)")
    parser.add_argument("--no-checkpoint", dest="checkpoint", action="store_false",
                        help="framework without checkpointing (default: checkpoint=True)")
    parser.add_argument("--log-level", default="INFO",
                        help="log level of the master and agents (default INFO)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds allowed per run (default 300)")
    parser.add_argument("--work-dir", default="",
                        help="directory to create the cluster's temporary directory in "
                             "(default: the system's temporary directory)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (logs, sandboxes) and print its path")
    parser.add_argument("--compare", choices=sorted(COMPARISONS), default="",
                        help="run two clusters and report both rates and on/off: 'isolation' "
                             "(agents with --isolation=none --switch_user=false vs their "
                             "defaults), 'auth' (framework and agent authentication off vs "
                             "on), 'security' (neither vs both)")
    parser.add_argument("--py-spy", metavar="DIR", default="",
                        help="record py-spy profiles of the cluster during the last run")
    parser.add_argument("--py-spy-format", default="flamegraph",
                        choices=("flamegraph", "raw", "speedscope"),
                        help="py-spy output format (default flamegraph: SVG)")
    parser.add_argument("--isolation-compare", action="store_const", const="isolation",
                        dest="compare", help="the same as --compare isolation")
    parser.add_argument("--compare-auth", action="store_const", const="auth", dest="compare",
                        help="the same as --compare auth")
    parser.add_argument("--task-user", default="",
                        help="framework user the tasks run as (default '': the agent's; "
                             "with --compare only on the isolated clusters)")
    args = parser.parse_args(argv)
    check_at_least(parser, args, ("tasks", "agents", "parallelism", "repeat"))
    if args.cpus_per_task <= 0:
        parser.error(f"--cpus-per-task: expected > 0, got {args.cpus_per_task}")
    return args


def authenticated_cluster(root: Path, args: argparse.Namespace, agent_args: list[str]
                          ) -> tuple[Cluster, Credential]:
    """A cluster with framework and agent authentication on, and the framework's credential
    (secrets written 0600 under ``root``)."""
    root.mkdir(mode=0o700)
    credentials = root / "credentials.json"
    credentials.write_text(json.dumps({"credentials": [
        {"principal": "bench", "secret": "bench-secret"},
        {"principal": "agent", "secret": "agent-secret"}]}))
    agent_credential = root / "agent.credential"
    agent_credential.write_text(json.dumps({"principal": "agent", "secret": "agent-secret"}))
    for path in (credentials, agent_credential):
        path.chmod(0o600)
    secured = Cluster(root, args.agents, agent_resources(args), args.log_level,
                      agent_args=[*agent_args, "--credential", str(agent_credential)],
                      master_args=["--authenticate_frameworks", "true", "--authenticate_agents",
                                   "true", "--credentials", str(credentials)])
    return secured, Credential("bench", "bench-secret")


def warm_up(clusters: dict[str, Measured], args: argparse.Namespace) -> None:
    """A short unmeasured run on each cluster (caches, the command executor's code)."""
    short = argparse.Namespace(**{**vars(args), "tasks": min(args.tasks, 4 * args.parallelism)})
    say(f"warming up {len(clusters)} clusters with {short.tasks} tasks each")
    for measured in clusters.values():
        short.run_user = args.task_user if measured.isolated else ""
        asyncio.run(run_framework(measured.cluster.master_address, short, None,
                                  measured.credential))


def agent_resources(args: argparse.Namespace) -> str:
    """Resources of each agent: room for the whole parallelism on any one agent."""
    cpus = max(32.0, args.parallelism * args.cpus_per_task)
    mem = max(32768.0, args.parallelism * MEM_PER_TASK_MB)
    return f"cpus:{cpus:g};mem:{mem:g};disk:100000;ports:[31000-32000]"


async def measure_once(
    cluster: Cluster, args: argparse.Namespace, spy: PySpy | None,
    credential: Credential | None = None,
) -> dict[str, Any]:
    """One mesoslite run with its CPU accounting (and optional profiles)."""
    meter = CpuMeter(cluster)
    meter.begin()
    attach_task = None
    if spy is not None:
        attach_task = asyncio.get_running_loop().create_task(_attach_when_ready(cluster, spy))
    sched = await _run_with_meter(cluster, args, meter, credential)
    if attach_task is not None:
        attach_task.cancel()
        spy.stop()  # type: ignore[union-attr]
    assert sched.first_offer_at is not None or sched.problems
    seconds = (
        (sched.last_ack_at - sched.first_offer_at)
        if sched.last_ack_at is not None and sched.first_offer_at is not None
        else float("nan")
    )
    return {
        "sched": sched,
        "seconds": seconds,
        "rate": args.tasks / seconds if seconds > 0 else 0.0,
        "cpu": meter.used,
        "busy": meter.busy_share,
        "other": meter.other_share,
    }


async def _attach_when_ready(cluster: Cluster, spy: PySpy) -> None:
    targets = [("master", cluster.master.pid)] if cluster.master else []
    targets += [(f"agent{i}", a.pid) for i, a in enumerate(cluster.agents)]
    hosts: list[psutil.Process] = []
    for _ in range(200):
        hosts = cluster.command_executors()
        if len(hosts) >= len(cluster.agents):
            break
        await asyncio.sleep(0.01)
    targets += [(f"command_executor{i}", p.pid) for i, p in enumerate(hosts)]
    spy.attach(targets)


async def _run_with_meter(
    cluster: Cluster, args: argparse.Namespace, meter: CpuMeter,
    credential: Credential | None = None,
) -> ShellTasks:
    # The CPU sample ends when the last update is acknowledged, before the teardown.
    sched = await run_framework(cluster.master_address, args, meter.end, credential)
    if not meter.used:
        meter.end()
    return sched


#: Agent flags without isolation (what the "off" clusters of a comparison run).
NO_ISOLATION = ["--isolation", "none", "--switch_user", "false"]
#: The comparisons (--compare NAME): label -> (isolated agents, authentication on).
COMPARISONS: dict[str, dict[str, tuple[bool, bool]]] = {
    "isolation": {"isolation_off": (False, False), "isolation_on": (True, False)},
    "auth": {"auth_off": (False, False), "auth_on": (False, True)},
    "security": {"security_off": (False, False), "security_on": (True, True)},
}


@attrs.define
class Measured:
    """One cluster of the run: isolated agents or not, the framework's credential if any."""

    cluster: Cluster
    isolated: bool
    credential: Credential | None = None


def make_clusters(root: Path, args: argparse.Namespace) -> dict[str, Measured]:
    """One cluster (the agents' defaults), or the two of ``--compare``."""
    if not args.compare:
        return {"default": Measured(Cluster(root, args.agents, agent_resources(args),
                                            args.log_level), isolated=True)}
    out = {}
    for label, (isolated, authenticated) in COMPARISONS[args.compare].items():
        flags = [] if isolated else NO_ISOLATION
        if authenticated:
            cluster, credential = authenticated_cluster(root / label, args, flags)
            out[label] = Measured(cluster, isolated, credential)
        else:
            (root / label).mkdir()
            out[label] = Measured(Cluster(root / label, args.agents, agent_resources(args),
                                          args.log_level, agent_args=flags), isolated)
    return out


def run_entry(result: dict[str, Any], raw: float, args: argparse.Namespace,
              label: str) -> dict[str, Any]:
    """One run's figures for the JSON report."""
    sched: ShellTasks = result["sched"]
    return {
        "cluster": label,
        "mesoslite_tasks_per_s": round(result["rate"], 1),
        "raw_spawn_per_s": round(raw, 1),
        "ratio": round(result["rate"] / raw, 3),
        "seconds": round(result["seconds"], 3),
        # Until the first update: mostly starting the command executors.
        "first_update_after_s": round(
            (sched.first_update_at or 0.0) - (sched.first_offer_at or 0.0), 3),
        "finished": sched.by_state.get("TASK_FINISHED", 0),
        "cpu_ms_per_task": {
            k: round(v * 1000.0 / args.tasks, 3) for k, v in result["cpu"].items()
        },
        "machine_busy_share": round(result["busy"], 3),
        "other_processes_cpu_share": round(result["other"], 3),
    }


def measure_all(clusters: dict[str, Measured], args: argparse.Namespace,
                problems: list[str]) -> list[dict[str, Any]]:
    """``--repeat`` rounds: the raw baseline, then each cluster back to back (in the
    reverse order every other round, so that none always runs on a machine the other
    warmed)."""
    runs: list[dict[str, Any]] = []
    for i in range(args.repeat):
        say(f"run {i + 1}/{args.repeat}: raw spawning of {args.tasks} x 'sh -c true', "
            f"{args.parallelism} at a time")
        raw = raw_spawn_rate(args.tasks, args.parallelism)
        order = list(clusters.items())
        for label, measured in order if i % 2 == 0 else order[::-1]:
            say(f"run {i + 1}/{args.repeat}: raw {raw:.0f}/s; now {args.tasks} tasks "
                f"through mesoslite ({label})")
            last = i == args.repeat - 1
            spy = PySpy(args.py_spy, args.py_spy_format) if args.py_spy and last else None
            args.run_user = args.task_user if measured.isolated else ""
            result = asyncio.run(measure_once(measured.cluster, args, spy, measured.credential))
            sched: ShellTasks = result["sched"]
            problems += sched.problems
            say(f"run {i + 1}/{args.repeat}: mesoslite {result['rate']:.0f} tasks/s "
                f"({result['seconds']:.2f}s), {dict(sched.by_state)} ({label})")
            runs.append(run_entry(result, raw, args, label))
    return runs


def comparison_summary(runs: list[dict[str, Any]], args: argparse.Namespace
                       ) -> dict[str, Any]:
    """``--compare``: both clusters' median rates and on/off (median of the rounds)."""
    off_label, on_label = COMPARISONS[args.compare]
    off = [r for r in runs if r["cluster"] == off_label]
    on = [r for r in runs if r["cluster"] == on_label]
    pairs = [b["mesoslite_tasks_per_s"] / a["mesoslite_tasks_per_s"]
             for a, b in zip(off, on, strict=False) if a["mesoslite_tasks_per_s"]]
    isolated, authenticated = COMPARISONS[args.compare][on_label]
    return {
        "compare": args.compare,
        "off": f"agents {' '.join(NO_ISOLATION)}, no authentication",
        "on": ("agents with their defaults (--isolation=auto --switch_user=true)"
               if isolated else f"agents {' '.join(NO_ISOLATION)}")
              + (", framework and agent authentication" if authenticated else ""),
        "task_user": args.task_user,
        "off_tasks_per_s": statistics.median(r["mesoslite_tasks_per_s"] for r in off),
        "on_tasks_per_s": statistics.median(r["mesoslite_tasks_per_s"] for r in on),
        "on_over_off": round(statistics.median(pairs), 3) if pairs else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the JSON result; return the exit status."""
    args = parse_args(argv)
    set_progress_tag("shell_tasks")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="mesoslite-shell-tasks-", dir=args.work_dir or None))
    if args.task_user:
        root.chmod(0o755)  # the task user must reach its sandboxes
    clusters = make_clusters(root, args)
    restore_sigterm = sigterm_as_interrupt()
    runs: list[dict[str, Any]] = []
    problems: list[str] = []
    work_fs: dict[str, Any] = {}
    try:
        for label, measured in clusters.items():
            say(f"starting a master and {args.agents} agents under {measured.cluster.root} "
                f"({agent_resources(args)} each; {label})")
            measured.cluster.start()
        if args.compare:
            warm_up(clusters, args)
        work_fs = {"type": filesystem_of(root), "inode_create_us": round(inode_create_us(root), 1)}
        say(f"work directory on {work_fs['type'] or '?'}: "
            f"{work_fs['inode_create_us']} us per inode created")
        runs = measure_all(clusters, args, problems)
    except KeyboardInterrupt:
        say("interrupted; cleaning up")
        for measured in clusters.values():
            measured.cluster.stop()
        return 130
    except Exception as exc:  # noqa: BLE001 - reported, then cleaned up
        problems.append(failure(exc))
    finally:
        restore_sigterm()
        for measured in clusters.values():
            if measured.cluster.master is not None:
                say("stopping the cluster")
                measured.cluster.stop()
        remove_or_keep(root, args.keep)
    if not runs:
        print_report({"error": problems})
        return 1
    return report(args, runs, problems, started, work_fs)


def report(args: argparse.Namespace, runs: list[dict[str, Any]], problems: list[str],
           started: float, work_fs: dict[str, Any]) -> int:
    """Print the JSON report (the default's, or the isolated cluster's, figures)."""
    main_label = list(COMPARISONS[args.compare])[1] if args.compare else "default"
    main_runs = [r for r in runs if r["cluster"] == main_label]
    rate = statistics.median(r["mesoslite_tasks_per_s"] for r in main_runs)
    raw = statistics.median(r["raw_spawn_per_s"] for r in main_runs)
    # Each run's pair is measured back to back on the same machine state: the
    # median of the pairs' ratios is steadier than the ratio of the medians.
    ratio = statistics.median(
        r["mesoslite_tasks_per_s"] / r["raw_spawn_per_s"] for r in main_runs
        if r["raw_spawn_per_s"]
    )
    all_finished = all(r["finished"] == args.tasks for r in runs) and not problems
    facts = run_facts(started)
    out = {
        "benchmark": "shell_tasks",
        "tasks": args.tasks,
        "agents": args.agents,
        "parallelism": args.parallelism,
        "cpus_per_task": args.cpus_per_task,
        "checkpoint": args.checkpoint,
        "repeat": args.repeat,
        "mesoslite_tasks_per_s": round(rate, 1),
        "raw_spawn_per_s": round(raw, 1),
        "ratio": round(ratio, 3),
        "goal_ratio": GOAL_RATIO,
        "met": bool(ratio >= GOAL_RATIO and all_finished),
        "seconds": statistics.median(r["seconds"] for r in main_runs),
        "all_finished": all_finished,
        "problems": problems[:10],
        "cpu_ms_per_task": main_runs[-1]["cpu_ms_per_task"],
        "other_processes_cpu_share": main_runs[-1]["other_processes_cpu_share"],
        **({"comparison": comparison_summary(runs, args)} if args.compare else {}),
        "runs": runs,
        "machine": facts.pop("machine"),
        "work_dir_fs": work_fs,
        **facts,
    }
    print_report(out)
    return 0 if all_finished else 1


if __name__ == "__main__":
    sys.exit(main())
