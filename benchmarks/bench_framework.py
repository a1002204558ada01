"""The minimal SDK framework pieces the benchmarks' own schedulers share.

Owns: :class:`BenchScheduler` (the ``problems`` list, the ``done`` event, a
logged registration, and a master error that ends the run), :func:`spread`
(tasks placed round-robin over a set of offers) and :func:`drive` (register
a scheduler at a master, wait until it is done or the time is up, stop the
driver).  Each benchmark keeps its own offer and status policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from bench_support import say

from mesoslite.protocol import FrameworkInfo, MasterInfo, Offer, TaskInfo
from mesoslite.resources import Resources
from mesoslite.scheduler import Scheduler, SchedulerDriver


class BenchScheduler(Scheduler):
    """A benchmark's scheduler: what went wrong in ``problems``; ``done`` ends the run."""

    def __init__(self) -> None:
        """No problems yet; not done."""
        self.problems: list[str] = []
        self.done = asyncio.Event()

    def registered(self, driver: SchedulerDriver, framework_id: str,
                   master_info: MasterInfo | None) -> None:
        """Log the framework id."""
        say(f"framework {framework_id} registered")

    def error(self, driver: SchedulerDriver, message: str) -> None:
        """A fatal error from the master ends the run."""
        self.problems.append(f"error from the master: {message}")
        self.done.set()


SchedulerT = TypeVar("SchedulerT", bound=BenchScheduler)


def spread(offers: Iterable[Offer], count: int, per_task: Resources,
           make_task: Callable[[Offer], TaskInfo]) -> dict[str, list[TaskInfo]]:
    """Up to ``count`` tasks of ``per_task``, one per offer in turn while any has room.

    ``make_task(offer)`` builds each task, in launch order.  Returns the tasks
    by offer id, an empty list for an offer that got none.
    """
    offers = list(offers)
    plans: dict[str, list[TaskInfo]] = {offer.id: [] for offer in offers}
    left = {offer.id: offer.resources for offer in offers}
    progressed = True
    while count > 0 and progressed:
        progressed = False
        for offer in offers:
            if count <= 0 or not left[offer.id].contains(per_task):
                continue
            left[offer.id] = left[offer.id] - per_task
            plans[offer.id].append(make_task(offer))
            count -= 1
            progressed = True
    return plans


async def drive(sched: SchedulerT, info: FrameworkInfo, master: str, timeout: float,
                timed_out: Callable[[], str], **driver_options: Any) -> SchedulerT:
    """Run ``sched`` as framework ``info`` at ``master`` until done or ``timeout``; stop it.

    On the timeout, ``timed_out()`` says what was reached and goes into
    ``sched.problems``.  ``driver_options`` go to :class:`SchedulerDriver`.
    The driver stops without failover, so the master kills the tasks.
    """
    driver = SchedulerDriver(sched, info, master, **driver_options)
    await driver.start_async()
    try:
        await asyncio.wait_for(sched.done.wait(), timeout)
    except TimeoutError:
        sched.problems.append(timed_out())
    finally:
        await driver.stop_async()
    return sched
