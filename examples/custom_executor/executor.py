#!/usr/bin/env python3
"""The ping-pong executor: answers ``ping N`` with ``pong N``, then finishes its task.

Started by the agent (the framework's ``ExecutorInfo.command`` runs this
file with the framework's Python).  It reports its task ``TASK_RUNNING``,
answers every ``ping N`` framework message with ``pong N``, and after the
pong numbered like the task's ``data`` (the number of pings, default 3)
reports ``TASK_FINISHED`` and stops.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

try:
    import mesoslite  # noqa: F401
except ImportError:  # running from a source checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mesoslite.executor import DriverStatus, Executor, ExecutorDriver
from mesoslite.protocol import TaskInfo, TaskState, TaskStatus

log = logging.getLogger("pingpong-executor")


class PingPongExecutor(Executor):
    """Runs at most one task: a conversation with the scheduler."""

    def __init__(self) -> None:
        self.task: TaskInfo | None = None
        self.expected_pings = 3
        self.finished = threading.Event()

    def launch_task(self, driver: ExecutorDriver, task: TaskInfo) -> None:
        self.task = task
        if task.data.strip().isdigit():
            self.expected_pings = int(task.data)
        log.info("task %s: waiting for %d pings", task.task_id, self.expected_pings)
        driver.send_status_update(TaskStatus(task_id=task.task_id,
                                             state=TaskState.TASK_RUNNING))

    def framework_message(self, driver: ExecutorDriver, data: bytes) -> None:
        word, _, number = data.decode(errors="replace").partition(" ")
        if word != "ping" or not number.isdigit() or self.task is None:
            log.warning("unexpected message %r", data)
            return
        driver.send_framework_message(f"pong {number}".encode())
        if int(number) >= self.expected_pings and not self.finished.is_set():
            self.finished.set()
            driver.send_status_update(TaskStatus(task_id=self.task.task_id,
                                                 state=TaskState.TASK_FINISHED,
                                                 message=f"answered {number} pings"))
            driver.stop()  # waits (bounded) for the agent to acknowledge, then exits

    def kill_task(self, driver: ExecutorDriver, task_id: str) -> None:
        driver.send_status_update(TaskStatus(task_id=task_id, state=TaskState.TASK_KILLED))
        driver.stop()

    def shutdown(self, driver: ExecutorDriver) -> None:
        driver.stop()


def main() -> int:
    """Run the executor until its task ends; exit 0 when it stopped cleanly."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s pingpong-executor %(levelname)s %(message)s")
    status = ExecutorDriver(PingPongExecutor()).run()
    return 0 if status is DriverStatus.DRIVER_STOPPED else 1


if __name__ == "__main__":
    sys.exit(main())
