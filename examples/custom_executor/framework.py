#!/usr/bin/env python3
"""A framework whose tasks run in a custom executor and talk to it by messages.

Usage::

    python examples/custom_executor/framework.py --master 127.0.0.1:5055 \\
        [--tasks 2] [--pings 3] [--timeout 60]

Each task is launched with an ``ExecutorInfo`` whose command runs
``executor.py`` (beside this file) with the same Python interpreter.  When a
task is RUNNING the scheduler sends ``ping 1`` to its executor; the executor
answers ``pong 1``; the scheduler sends ``ping 2``, and so on up to
``--pings``.  After the last pong the executor finishes the task.  Exit
status 0 when every task finished after the full exchange, 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import threading
from pathlib import Path

try:
    import mesoslite
except ImportError:  # running from a source checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import mesoslite

from mesoslite.protocol import (
    CommandInfo,
    ExecutorInfo,
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

EXECUTOR_SCRIPT = Path(__file__).resolve().with_name("executor.py")
TASK_RESOURCES = Resources.parse("cpus:0.1;mem:32")
EXECUTOR_RESOURCES = Resources.parse("cpus:0.1;mem:32")


def executor_info(task_id: str) -> ExecutorInfo:
    """One executor per task, started as ``<this python> executor.py``."""
    source_root = str(Path(mesoslite.__file__).resolve().parents[1])
    python_path = os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)
    return ExecutorInfo(
        executor_id=f"pingpong-{task_id}",
        name="ping-pong executor",
        command=CommandInfo(
            value=f"{shlex.quote(sys.executable)} {shlex.quote(str(EXECUTOR_SCRIPT))}",
            environment={"PYTHONPATH": python_path},
        ),
        resources=EXECUTOR_RESOURCES,
    )


class PingPongScheduler(Scheduler):
    """Launches tasks on the custom executor and plays ping-pong with each."""

    def __init__(self, tasks: int, pings: int) -> None:
        self.pings = pings
        self.to_launch = [f"pingpong-task-{i}" for i in range(1, tasks + 1)]
        self.total = tasks
        self.pongs: dict[str, list[int]] = {}  # executor id -> pong numbers received
        self.final: dict[str, TaskState] = {}
        self.done = threading.Event()

    def registered(
        self, driver: SchedulerDriver, framework_id: str, master_info: MasterInfo | None
    ) -> None:
        print(f"registered as {framework_id}", flush=True)

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        need = TASK_RESOURCES + EXECUTOR_RESOURCES
        for offer in offers:
            left, tasks = offer.resources, []
            while self.to_launch and left.contains(need):
                task_id = self.to_launch.pop(0)
                left = left - need
                tasks.append(TaskInfo(
                    name=task_id, task_id=task_id, agent_id=offer.agent_id,
                    resources=TASK_RESOURCES, executor=executor_info(task_id),
                    data=str(self.pings).encode(),
                ))
            if tasks:
                driver.launch_tasks([offer.id], tasks)
            else:
                driver.decline_offer(offer.id, Filters(refuse_seconds=30.0))
        if not self.to_launch:
            driver.suppress_offers()

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        print(f"{status.task_id}: {status.state}", flush=True)
        if status.state is TaskState.TASK_RUNNING and status.executor_id:
            self.pongs.setdefault(status.executor_id, [])
            driver.send_framework_message(status.executor_id, status.agent_id, b"ping 1")
        elif status.state.is_terminal:
            if status.state is not TaskState.TASK_FINISHED:
                print(f"  {status.reason}: {status.message}", flush=True)
            self.final[status.task_id] = status.state
            if len(self.final) == self.total:
                self.done.set()
                driver.stop()

    def framework_message(
        self, driver: SchedulerDriver, executor_id: str, agent_id: str, data: bytes
    ) -> None:
        text = data.decode(errors="replace")
        print(f"{executor_id} says {text!r}", flush=True)
        word, _, number = text.partition(" ")
        if word != "pong" or not number.isdigit():
            return
        self.pongs.setdefault(executor_id, []).append(int(number))
        if int(number) < self.pings:
            driver.send_framework_message(executor_id, agent_id,
                                          f"ping {int(number) + 1}".encode())

    def error(self, driver: SchedulerDriver, message: str) -> None:
        print(f"error: {message}", flush=True)

    def succeeded(self) -> bool:
        """Every task FINISHED after receiving pong 1..pings in order."""
        expected = list(range(1, self.pings + 1))
        return (
            len(self.final) == self.total
            and all(state is TaskState.TASK_FINISHED for state in self.final.values())
            and len(self.pongs) == self.total
            and all(numbers == expected for numbers in self.pongs.values())
        )


def main(argv: list[str] | None = None) -> int:
    """Run the framework; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--master", default="127.0.0.1:5055", help="master host:port")
    parser.add_argument("--tasks", type=int, default=2, help="tasks (default 2)")
    parser.add_argument("--pings", type=int, default=3, help="pings per task (default 3)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    scheduler = PingPongScheduler(args.tasks, args.pings)
    driver = SchedulerDriver(scheduler, FrameworkInfo(user="", name="ping-pong"), args.master)
    timer = threading.Timer(args.timeout, driver.stop)
    timer.daemon = True
    timer.start()
    status = driver.run()
    timer.cancel()
    ok = status is Status.DRIVER_STOPPED and scheduler.succeeded()
    print("result: OK" if ok else "result: FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
