#!/usr/bin/env python3
"""hello_framework: launch N shell tasks across the agents and watch them finish.

Usage::

    python examples/hello_framework.py --master 127.0.0.1:5055 --tasks 20 \\
        [--cpus 0.1 --mem 32 --command 'echo hello from $MESOS_TASK_ID; sleep 0.5'] \\
        [--timeout 120]

It subscribes, spreads the tasks over the offers it gets (round-robin over
the agents of each batch of offers), prints every state change of every
task (TASK_STARTING -> TASK_RUNNING -> TASK_FINISHED), lets the driver
acknowledge updates implicitly, declines what it does not use, checks that
every task went through STARTING, RUNNING and FINISHED, prints a summary
and tears the framework down.  Exit status: 0 when every task finished
cleanly, 1 when one failed or the timeout expired, 2 on a usage error.
Ctrl-C stops it (the driver's ``run()`` handles SIGINT/SIGTERM).
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

try:
    import mesoslite  # noqa: F401
except ImportError:  # running from a source checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mesoslite.protocol import (
    CommandInfo,
    Filters,
    FrameworkInfo,
    MasterInfo,
    Offer,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mesoslite.resources import Resources
from mesoslite.scheduler import Scheduler, SchedulerDriver, Status
from mesoslite.scheduler.auth import link_options_from_env

EXPECTED = [TaskState.TASK_STARTING, TaskState.TASK_RUNNING, TaskState.TASK_FINISHED]
#: Leftover offers are declined for this long, so others (or we, later) get them.
DECLINE_SECONDS = 5.0


class Progress:
    """A one-line counter: redrawn in place on a terminal; otherwise printed as a
    line whenever ``key`` changes (not on every redraw)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = out.isatty()
        self._last = ""
        self._last_key: object = None

    def show(self, text: str, key: object) -> None:
        """Show ``text``; off a terminal only when ``key`` differs from last time."""
        if self._tty:
            self._out.write("\r\x1b[K" + text)
            self._out.flush()
        elif key != self._last_key:
            print(text, file=self._out, flush=True)
        self._last = text
        self._last_key = key

    def clear(self) -> None:
        """Erase the counter line (on a terminal) before printing something else."""
        if self._tty and self._last:
            self._out.write("\r\x1b[K")
            self._out.flush()


class HelloScheduler(Scheduler):
    """Launches ``total`` shell tasks and records every status update."""

    def __init__(self, total: int, cpus: float, mem: float, command: str) -> None:
        self.total = total
        self.per_task = Resources.from_dict({"cpus": cpus, "mem": mem})
        self.command = command
        self.to_launch = collections.deque(f"hello-{i}" for i in range(1, total + 1))
        self.states: dict[str, list[TaskState]] = {}
        self.agent_of: dict[str, str] = {}
        self.final: dict[str, TaskStatus] = {}
        self.done = threading.Event()
        self.progress = Progress(sys.stderr)
        self.started_at = time.monotonic()

    # ------------------------------------------------------------ callbacks

    def registered(
        self, driver: SchedulerDriver, framework_id: str, master_info: MasterInfo | None
    ) -> None:
        where = master_info.zmq_endpoint if master_info else "?"
        self._say(f"registered as framework {framework_id} with master {where}")

    def reregistered(self, driver: SchedulerDriver, master_info: MasterInfo | None) -> None:
        self._say("re-registered; reconciling")
        driver.reconcile_tasks()

    def disconnected(self, driver: SchedulerDriver) -> None:
        self._say("disconnected from the master; the driver is re-subscribing")

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        plan: dict[str, list[TaskInfo]] = {offer.id: [] for offer in offers}
        left = {offer.id: offer.resources for offer in offers}
        progressed = True
        while self.to_launch and progressed:  # one task per offer per round: spread out
            progressed = False
            for offer in offers:
                if not self.to_launch or not left[offer.id].contains(self.per_task):
                    continue
                task_id = self.to_launch.popleft()
                left[offer.id] = left[offer.id] - self.per_task
                plan[offer.id].append(TaskInfo(
                    name=f"hello {task_id}", task_id=task_id, agent_id=offer.agent_id,
                    resources=self.per_task, command=CommandInfo(value=self.command),
                ))
                self.agent_of[task_id] = offer.agent_id
                self.states[task_id] = []
                progressed = True
        for offer in offers:
            tasks = plan[offer.id]
            if tasks:
                driver.launch_tasks([offer.id], tasks, Filters(refuse_seconds=DECLINE_SECONDS))
            else:
                driver.decline_offer(offer.id, Filters(refuse_seconds=DECLINE_SECONDS))
        if not self.to_launch:
            driver.suppress_offers()  # nothing more to launch: no more offers, please
        self._show_progress()

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        task_id = status.task_id
        history = self.states.setdefault(task_id, [])
        if history and history[-1] is status.state:
            return  # e.g. a reconciliation answer repeating what we know
        history.append(status.state)
        detail = ""
        if status.state.is_terminal and status.state is not TaskState.TASK_FINISHED:
            why = [str(part) for part in (status.reason, status.message) if part]
            detail = f" ({': '.join(why)})" if why else ""
        agent = self.agent_of.get(task_id, status.agent_id)
        self._say(f"{task_id} on {agent}: {status.state}{detail}")
        if status.state.is_terminal:
            self.final[task_id] = status
            if len(self.final) == self.total:
                self.done.set()
                driver.stop()  # tears the framework down; run() returns
        self._show_progress()

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self._say(f"error from the master: {message}")
        self.done.set()

    # --------------------------------------------------------------- output

    def _say(self, line: str) -> None:
        self.progress.clear()
        print(line, flush=True)
        self._show_progress()

    def _show_progress(self) -> None:
        finished = sum(1 for s in self.final.values() if s.state is TaskState.TASK_FINISHED)
        failed = len(self.final) - finished
        running = sum(1 for h in self.states.values()
                      if h and h[-1] is TaskState.TASK_RUNNING)
        launched = len(self.states)
        elapsed = time.monotonic() - self.started_at
        self.progress.show(f"[{finished}/{self.total} finished, {running} running, "
                           f"{launched} launched, {failed} failed, {elapsed:.1f}s]",
                           key=(finished, failed))

    def summary(self, timed_out: bool) -> bool:
        """Print the summary; True when every task went STARTING → RUNNING → FINISHED."""
        self.progress.clear()
        by_agent = collections.Counter(self.agent_of[t] for t in self.final if t in self.agent_of)
        by_state = collections.Counter(str(s.state) for s in self.final.values())
        bad = [t for t, h in sorted(self.states.items()) if h != EXPECTED]
        never = len(self.to_launch)
        elapsed = time.monotonic() - self.started_at
        print(f"\nsummary: {len(self.final)}/{self.total} tasks ended in {elapsed:.2f}s")
        for state, count in sorted(by_state.items()):
            print(f"  {state:<16} {count}")
        for agent, count in sorted(by_agent.items()):
            print(f"  agent {agent}: {count} tasks")
        if never:
            print(f"  {never} tasks never launched")
        for task_id in bad:
            shown = " -> ".join(str(s) for s in self.states[task_id]) or "(no update)"
            print(f"  {task_id}: expected STARTING -> RUNNING -> FINISHED, saw {shown}")
        if timed_out:
            print("  timed out before every task ended")
        ok = not timed_out and not bad and not never and len(self.final) == self.total
        print("result: OK" if ok else "result: FAILED", flush=True)
        return ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse and check the command line (exits with status 2 on a usage error)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--master", default="127.0.0.1:5055",
        help="master address: host:port or zk://host:port/path (default %(default)s)")
    parser.add_argument("--tasks", type=int, default=20, help="tasks to run (default 20)")
    parser.add_argument("--cpus", type=float, default=0.1, help="cpus per task (default 0.1)")
    parser.add_argument("--mem", type=float, default=32.0, help="MB per task (default 32)")
    parser.add_argument("--command", default="echo hello from $MESOS_TASK_ID; sleep 0.5",
                        help="shell command of each task")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds before giving up (default 120)")
    parser.add_argument("--name", default="hello-framework", help="framework name")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the driver's steps")
    args = parser.parse_args(argv)
    if args.tasks < 1:
        parser.error(f"--tasks: expected at least 1, got {args.tasks}")
    if args.cpus <= 0 or args.mem <= 0:
        parser.error("--cpus and --mem: expected values > 0")
    if args.timeout <= 0:
        parser.error(f"--timeout: expected seconds > 0, got {args.timeout}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the framework; return the process exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    scheduler = HelloScheduler(args.tasks, args.cpus, args.mem, args.command)
    framework = FrameworkInfo(user="", name=args.name)
    try:
        # MESOSLITE_PRINCIPAL/_SECRET_FILE and CURVE keys from the environment, if set
        # (`mesoslite local --secure` prints them).
        driver = SchedulerDriver(scheduler, framework, args.master, **link_options_from_env())
    except ValueError as exc:
        print(f"hello_framework: {exc}", file=sys.stderr)
        return 2
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        driver.stop()

    timer = threading.Timer(args.timeout, on_timeout)
    timer.daemon = True
    timer.start()
    print(f"launching {args.tasks} tasks via {args.master} "
          f"({args.cpus} cpus, {args.mem:g} MB each)", flush=True)
    status = driver.run()
    timer.cancel()
    ok = scheduler.summary(timed_out.is_set() and not scheduler.done.is_set())
    if status is Status.DRIVER_ABORTED:
        print("driver aborted", file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
