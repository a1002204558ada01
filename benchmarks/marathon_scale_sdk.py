"""marathon_scale_sdk: the SDK side of ``marathon_scale.py`` (a minimal framework).

Owns: :class:`HealthyTasks`, a scheduler that launches ``total`` long-running
shell tasks, each with a COMMAND health check, as fast as offers allow, and
ends when every one is ``TASK_RUNNING`` with ``healthy`` true; and
:func:`run_sdk`, which runs it against a master and tears it down.  It is the
baseline the Marathon-style framework is compared with: the same command, the
same resources and the same health check, with none of Marathon's work
(persistence, deployments, REST API, events).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench_framework import BenchScheduler, drive, spread

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
from mesoslite.protocol.types import HealthCheck
from mesoslite.resources import Resources
from mesoslite.scheduler import SchedulerDriver


def health_check(spec: dict[str, Any]) -> HealthCheck:
    """The Mesos-style COMMAND check equivalent to a Marathon app's ``healthChecks[0]``."""
    return HealthCheck(
        type="COMMAND",
        command=CommandInfo(value=spec["command"]["value"], shell=True),
        delay_seconds=float(spec["delaySeconds"]),
        interval_seconds=float(spec["intervalSeconds"]),
        timeout_seconds=float(spec["timeoutSeconds"]),
        consecutive_failures=int(spec["maxConsecutiveFailures"]),
        grace_period_seconds=float(spec["gracePeriodSeconds"]),
    )


class HealthyTasks(BenchScheduler):
    """Launches ``total`` tasks of ``per_task`` running ``command``; done when all are healthy.

    Every offer is used at once (tasks spread round-robin over the offers of
    one callback); the remainder of an accepted offer goes back to the master
    with ``refuse_seconds=0``.  Once everything is launched, offers are
    suppressed.  Updates are acknowledged implicitly by the driver.
    """

    def __init__(self, total: int, per_task: Resources, command: str, check: HealthCheck,
                 prefix: str = "sleep") -> None:
        """Launch ``total`` tasks; ``check`` is every task's health check."""
        super().__init__()
        self.total = total
        self.per_task = per_task
        self.command = command
        self.check = check
        self.prefix = prefix
        self.launched = 0
        self.running: set[str] = set()
        self.healthy: set[str] = set()
        self.registered_at: float | None = None
        self.first_offer_at: float | None = None
        self.all_launched_at: float | None = None
        self.all_running_at: float | None = None
        self.done_at: float | None = None
        self.registered_event = asyncio.Event()
        self._suppressed = False

    def registered(self, driver: SchedulerDriver, framework_id: str,
                   master_info: MasterInfo | None) -> None:
        """Note the time: the run's clock starts here."""
        self.registered_at = time.perf_counter()
        self.registered_event.set()

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        """Fill the offers with tasks until ``total`` are launched; decline the rest."""
        if self.first_offer_at is None:
            self.first_offer_at = time.perf_counter()
        plans = spread(offers, self.total - self.launched, self.per_task, self._task)
        for offer in offers:
            if plans[offer.id]:
                driver.launch_tasks([offer.id], plans[offer.id], Filters(refuse_seconds=0.0))
            else:
                driver.decline_offer(offer.id, Filters(refuse_seconds=60.0))
        if self.launched >= self.total and not self._suppressed:
            self._suppressed = True
            self.all_launched_at = time.perf_counter()
            driver.suppress_offers()

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        """Track RUNNING and healthy; anything terminal is a problem."""
        task_id = status.task_id
        if status.state is TaskState.TASK_RUNNING:
            self.running.add(task_id)
            if status.healthy is True:
                self.healthy.add(task_id)
            elif status.healthy is False:
                self.healthy.discard(task_id)
        elif status.state.is_terminal:
            self.running.discard(task_id)
            self.healthy.discard(task_id)
            if len(self.problems) < 10:
                self.problems.append(f"{task_id}: {status.state.value} {status.message}")
        if self.all_running_at is None and len(self.running) >= self.total:
            self.all_running_at = time.perf_counter()
        if len(self.running) >= self.total and len(self.healthy) >= self.total:
            if self.done_at is None:
                self.done_at = time.perf_counter()
            self.done.set()

    def _task(self, offer: Offer) -> TaskInfo:
        task_id = f"{self.prefix}-{self.launched}"
        self.launched += 1
        return TaskInfo(name=task_id, task_id=task_id, agent_id=offer.agent_id,
                        resources=self.per_task, command=CommandInfo(value=self.command),
                        health_check=self.check)


async def run_sdk(master: str, total: int, per_task: Resources, command: str,
                  check: HealthCheck, timeout: float) -> HealthyTasks:
    """Register a :class:`HealthyTasks` framework at ``master``, run it to the end, stop it.

    The driver stops without failover, so the master kills the tasks.
    """
    sched = HealthyTasks(total, per_task, command, check)
    info = FrameworkInfo(user="", name="marathon-scale-sdk-baseline", checkpoint=True)
    return await drive(sched, info, master, timeout,
                       lambda: f"timed out after {timeout}s: {len(sched.running)} running, "
                               f"{len(sched.healthy)} healthy of {total}")
