"""What the framework reports about an app's tasks and launches (PURE value types).

Owns: :class:`TaskCounts` and :func:`count_tasks` (an app's staged, running,
healthy and unhealthy tasks), :class:`TaskFailure` (an app's last failed task)
and :class:`QueueEntry` (one app waiting for launches).  The service and the
scheduling shell fill them in; the API renders them (``wire.render``).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from frameworks.marathon.core.model import App, InstanceCondition, MarathonTask


@attrs.frozen
class TaskCounts:
    """tasksStaged / tasksRunning / tasksHealthy / tasksUnhealthy of one app."""

    staged: int = 0
    running: int = 0
    healthy: int = 0
    unhealthy: int = 0


def count_tasks(tasks: Iterable[MarathonTask]) -> TaskCounts:
    """The counters of one app from its tasks (terminal ones are skipped).

    Staged: STAGING or STARTING; running: RUNNING; healthy / unhealthy: the
    last health verdict, whatever the condition.
    """
    staged = running = healthy = unhealthy = 0
    for task in tasks:
        condition = task.condition
        if not condition.is_active:
            continue
        if condition is InstanceCondition.STAGING or condition is InstanceCondition.STARTING:
            staged += 1
        elif condition is InstanceCondition.RUNNING:
            running += 1
        if task.healthy is True:
            healthy += 1
        elif task.healthy is False:
            unhealthy += 1
    return TaskCounts(staged, running, healthy, unhealthy)


@attrs.frozen
class TaskFailure:
    """An app's lastTaskFailure (times are epoch seconds)."""

    app_id: str
    task_id: str
    state: str
    message: str
    host: str
    agent_id: str
    timestamp: float
    version: str


@attrs.frozen
class QueueEntry:
    """One app waiting for launches, as ``/v2/queue`` shows it."""

    app: App
    count: int
    time_left_seconds: float
    overdue: bool
    since: float
    #: Offer-rejection summary: reason name → count (last matching rounds).
    rejections: dict[str, int] = attrs.field(factory=dict)
    processed_offers: int = 0
    unused_offers: int = 0
