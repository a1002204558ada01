"""Frameworks for integration tests, written with the real scheduler SDK.

Owns: :class:`RecordingScheduler` (a :class:`~mesoslite.scheduler.Scheduler`
that records every callback with its arrival time and lets an offer policy
decide about offers; offers the policy does not take are held, so a test
can use them), :class:`ShapeLauncher` (a policy launching tasks of one
shape; with one task per offer and ``refuse_seconds`` 0 it is how DRF is
approximated with offers), :func:`shell_task`, and :func:`running_framework`,
which starts a :class:`~mesoslite.scheduler.SchedulerDriver` on its
background thread and always stops it (tearing the framework down).

Callbacks run on the driver's thread; every query here takes the lock, so
tests read the records from their own thread.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from mesoslite.protocol import (
    CommandInfo,
    Filters,
    FrameworkInfo,
    KillPolicy,
    MasterInfo,
    Offer,
    Reason,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mesoslite.resources import Resources
from mesoslite.scheduler import Scheduler, SchedulerDriver
from tests.support.procs import wait_for

#: ``policy(driver, offer) -> True`` when it answered the offer; False holds it.
OfferPolicy = Callable[[SchedulerDriver, Offer], bool]


def shell_task(task_id: str, agent_id: str, resources: str | Resources, command: str,
               grace: float | None = None) -> TaskInfo:
    """A command task running ``command`` with ``/bin/sh -c``."""
    if isinstance(resources, str):
        resources = Resources.parse(resources)
    return TaskInfo(
        name=task_id, task_id=task_id, agent_id=agent_id, resources=resources,
        command=CommandInfo(value=command),
        kill_policy=KillPolicy(grace) if grace is not None else None,
    )


class RecordingScheduler(Scheduler):
    """Records callbacks (with ``time.monotonic()`` stamps); ``policy`` answers offers."""

    def __init__(self, policy: OfferPolicy | None = None) -> None:
        """Hold every offer unless ``policy`` answers it."""
        self.policy = policy
        self.lock = threading.Lock()
        self.framework_id = ""
        self.updates: list[tuple[float, TaskStatus]] = []
        self.held: dict[str, Offer] = {}
        self.offers_seen = 0
        self.rescinded: list[tuple[float, str]] = []
        self.agents_lost: list[tuple[float, str]] = []
        self.errors: list[str] = []

    # ------------------------------------------------------------ callbacks

    def registered(self, driver: SchedulerDriver, framework_id: str,
                   master_info: MasterInfo | None) -> None:
        """Remember the framework id."""
        with self.lock:
            self.framework_id = framework_id

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        """Let the policy answer each offer; hold the ones it leaves."""
        for offer in offers:
            with self.lock:
                self.offers_seen += 1
            if self.policy is not None and self.policy(driver, offer):
                continue
            with self.lock:
                self.held[offer.id] = offer

    def offer_rescinded(self, driver: SchedulerDriver, offer_id: str) -> None:
        """Record the rescind and forget the held offer."""
        with self.lock:
            self.rescinded.append((time.monotonic(), offer_id))
            self.held.pop(offer_id, None)

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        """Record the update."""
        with self.lock:
            self.updates.append((time.monotonic(), status))

    def agent_lost(self, driver: SchedulerDriver, agent_id: str) -> None:
        """Record the lost agent."""
        with self.lock:
            self.agents_lost.append((time.monotonic(), agent_id))

    def error(self, driver: SchedulerDriver, message: str) -> None:
        """Record the error."""
        with self.lock:
            self.errors.append(message)

    # -------------------------------------------------------------- queries

    def statuses(self, task_id: str | None = None,
                 reconciliation: bool | None = None) -> list[TaskStatus]:
        """Updates received (of one task), optionally only (or no) reconciliation answers."""
        with self.lock:
            found = [status for _t, status in self.updates
                     if task_id is None or status.task_id == task_id]
        if reconciliation is None:
            return found
        return [s for s in found
                if (s.reason is Reason.REASON_RECONCILIATION) == reconciliation]

    def states(self, task_id: str) -> list[TaskState]:
        """States of a task's updates, in arrival order (reconciliation answers excluded)."""
        return [status.state for status in self.statuses(task_id, reconciliation=False)]

    def first(self, task_id: str, state: TaskState) -> tuple[float, TaskStatus] | None:
        """Arrival time and update of the first ``state`` update of a task."""
        with self.lock:
            for stamp, status in self.updates:
                if status.task_id == task_id and status.state is state:
                    return stamp, status
        return None

    def in_state(self, state: TaskState) -> set[str]:
        """Tasks whose latest (non-reconciliation) update is ``state``."""
        latest: dict[str, TaskState] = {}
        for status in self.statuses(reconciliation=False):
            latest[status.task_id] = status.state
        return {task_id for task_id, current in latest.items() if current is state}

    def wait_state(self, task_id: str, state: TaskState, timeout: float = 30.0) -> TaskStatus:
        """Wait for a ``state`` update of a task; return it."""
        try:
            found = wait_for(lambda: self.first(task_id, state), timeout=timeout,
                             what=f"{state.value} for task {task_id}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its updates: {self.states(task_id)}") from None
        return found[1]

    def held_offers(self, agent_id: str | None = None) -> list[Offer]:
        """Offers held now (on ``agent_id`` if given)."""
        with self.lock:
            return [o for o in self.held.values() if agent_id is None or o.agent_id == agent_id]

    def take_held(self, agent_id: str | None = None, timeout: float = 30.0) -> Offer:
        """Wait for a held offer (on ``agent_id`` if given) and take it from the held set."""
        def pick() -> Offer | None:
            with self.lock:
                for offer_id, offer in self.held.items():
                    if agent_id is None or offer.agent_id == agent_id:
                        return self.held.pop(offer_id)
            return None
        return wait_for(pick, timeout=timeout, what=f"an offer on {agent_id or 'any agent'}")


class ShapeLauncher:
    """Launch ``shape`` tasks, at most ``per_offer`` per offer; decline the rest of each offer.

    With ``per_offer=1`` and ``refuse_seconds=0`` this is how DRF shows
    through offers: the allocator offers an agent's whole remainder to the
    framework with the lowest dominant share, which takes one task's worth
    and hands the rest back at once.
    """

    def __init__(self, prefix: str, shape: str, command: str, *, limit: int | None = None,
                 per_offer: int = 1, refuse_seconds: float = 0.0,
                 gate: threading.Event | None = None) -> None:
        """Tasks are ``<prefix>-<n>``, at most ``limit`` in all (None: no limit).

        Until ``gate`` (if given) is set every offer is declined, so that
        frameworks subscribing one after the other start competing together.
        """
        self.prefix = prefix
        self.shape = Resources.parse(shape)
        self.command = command
        self.limit = limit
        self.per_offer = per_offer
        self.refuse = Filters(refuse_seconds=refuse_seconds)
        self.gate = gate
        self.launched: list[str] = []
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self, driver: SchedulerDriver, offer: Offer) -> bool:
        """Answer the offer: launch what fits and is wanted, decline the rest."""
        tasks = []
        with self._lock:
            left = offer.resources
            while (len(tasks) < self.per_offer and left.contains(self.shape)
                   and (self.limit is None or len(self.launched) < self.limit)
                   and (self.gate is None or self.gate.is_set())):
                task_id = f"{self.prefix}-{next(self._numbers)}"
                self.launched.append(task_id)
                tasks.append(shell_task(task_id, offer.agent_id, self.shape, self.command))
                left = left - self.shape
        if tasks:
            driver.launch_tasks([offer.id], tasks, self.refuse)
        else:
            driver.decline_offer(offer.id, self.refuse)
        return True


@contextlib.contextmanager
def running_framework(master_address: str, scheduler: RecordingScheduler, name: str, *,
                      roles: Iterable[str] = ("*",), capabilities: Iterable[str] = (),
                      implicit_acknowledgements: bool = True,
                      timeout: float = 30.0) -> Iterator[SchedulerDriver]:
    """Run ``scheduler`` with a real driver until the block ends; then tear it down."""
    info = FrameworkInfo(user="", name=name, roles=tuple(roles),
                         capabilities=tuple(capabilities))
    driver = SchedulerDriver(scheduler, info, master_address,
                             implicit_acknowledgements=implicit_acknowledgements,
                             registration_backoff_factor=0.2)
    driver.start()
    try:
        wait_for(lambda: scheduler.framework_id, timeout=timeout,
                 what=f"framework {name!r} registered")
        yield driver
    finally:
        driver.stop()
        driver.join()
