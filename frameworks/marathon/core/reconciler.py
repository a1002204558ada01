"""The steady-state reconciler of the Marathon-style framework (PURE).

Owns: comparing the apps that should run with the tasks that exist, for apps
*not* in a deployment, and deciding what to launch, kill and forget.

Rules:

* An app's *counted* instances are its active tasks (any version: a
  force-cancelled deployment leaves old-version tasks running, as in
  Marathon) that are not being killed and not inactive-unreachable.  Failed,
  lost, killed… tasks are terminal and do not count.
* Fewer than ``instances`` counted: launch the difference.  More: kill the
  surplus in :func:`kill_order` (reason ``OverCapacity``).  This is also how a
  task that comes back from UNREACHABLE after it was replaced is dealt with.
* UNREACHABLE (with an ``unreachableStrategy``): counted until
  ``inactiveAfterSeconds`` have passed since it became unreachable (then it is
  replaced); expunged after ``expungeAfterSeconds``.  With the strategy
  ``disabled`` (None) an unreachable task is counted and kept forever.
* Tasks of apps that no longer exist are killed (reason ``Orphaned``);
  unreachable ones among them are also expunged.
* A task already ``kill_requested`` is never killed twice.
* Apps in a deployment are left to the deployment logic, except that their
  unreachable tasks are still expunged on time (a deployment step waits for
  them to disappear).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import attrs

from frameworks.marathon.core.model import App, InstanceCondition, KillSelection, MarathonTask
from mesoslite.clock import Clock

__all__ = [
    "Decisions",
    "counted_tasks",
    "is_current_config",
    "is_inactive_unreachable",
    "kill_order",
    "reconcile",
]

_PRE_RUNNING = frozenset({InstanceCondition.STAGING, InstanceCondition.STARTING})


@attrs.frozen
class Decisions:
    """What the shell should do: launch counts per app, kills and expunges."""

    launch: dict[str, int] = attrs.field(factory=dict)
    kill: list[tuple[str, str]] = attrs.field(factory=list)
    expunge: list[str] = attrs.field(factory=list)


def is_current_config(task: MarathonTask, app: App) -> bool:
    """True when ``task`` runs the app's current configuration.

    A scale-only change makes a new version but keeps ``lastConfigChangeAt``,
    so tasks launched at or after that moment run the current configuration.
    """
    if task.version == app.version:
        return True
    info = app.version_info
    return info is not None and task.version >= info.last_config_change_at


def _unreachable_for(task: MarathonTask, now: float) -> float:
    """Seconds the task has been unreachable (0 when the moment is unknown)."""
    since = task.condition_since
    return 0.0 if since is None else max(0.0, now - since)


def is_inactive_unreachable(task: MarathonTask, app: App | None, now: float) -> bool:
    """True for an UNREACHABLE task past its app's ``inactiveAfterSeconds``."""
    if task.condition is not InstanceCondition.UNREACHABLE:
        return False
    strategy = app.unreachable_strategy if app is not None else None
    if strategy is None:
        return False
    return _unreachable_for(task, now) >= strategy.inactive_after_seconds


def _should_expunge(task: MarathonTask, app: App | None, now: float) -> bool:
    """True for an UNREACHABLE task past ``expungeAfterSeconds`` (orphans: always)."""
    if task.condition is not InstanceCondition.UNREACHABLE:
        return False
    if app is None:
        return True
    strategy = app.unreachable_strategy
    if strategy is None:
        return False
    return _unreachable_for(task, now) >= strategy.expunge_after_seconds


def counted_tasks(app: App, tasks: Iterable[MarathonTask], now: float) -> list[MarathonTask]:
    """The app's tasks that count toward its instances (see the module doc)."""
    return [
        t
        for t in tasks
        if t.app_id == app.id
        and t.condition.is_active
        and not t.kill_requested
        and t.condition is not InstanceCondition.KILLING
        and not is_inactive_unreachable(t, app, now)
    ]


def kill_order(
    tasks: Sequence[MarathonTask], app: App, *, selection: KillSelection | None = None
) -> list[MarathonTask]:
    """``tasks`` in the order they should be killed when scaling ``app`` down.

    Unreachable tasks first, then tasks not yet RUNNING, then tasks of an
    outdated configuration, then by ``killSelection`` on ``staged_at``
    (YOUNGEST_FIRST: latest staged first).
    """
    chosen = selection if selection is not None else app.kill_selection
    youngest = chosen is KillSelection.YOUNGEST_FIRST

    def key(task: MarathonTask) -> tuple[int, int, float, str]:
        if task.condition is InstanceCondition.UNREACHABLE:
            rank = 0
        elif task.condition in _PRE_RUNNING:
            rank = 1
        else:
            rank = 2
        outdated = 0 if not is_current_config(task, app) else 1
        staged = task.staged_at if task.staged_at is not None else 0.0
        return (rank, outdated, -staged if youngest else staged, task.task_id)

    return sorted(tasks, key=key)


def _locked_ids(deployments_in_progress: Iterable[Any]) -> set[str]:
    """App ids from a mix of app ids and objects with ``affected_app_ids`` (plans)."""
    locked: set[str] = set()
    for item in deployments_in_progress:
        if isinstance(item, str):
            locked.add(item)
        else:
            locked.update(item.affected_app_ids)
    return locked


def reconcile(
    apps: Mapping[str, App],
    tasks: Sequence[MarathonTask],
    deployments_in_progress: Collection[Any],
    clock: Clock,
) -> Decisions:
    """Steady-state decisions for every app not in a deployment (see the module doc).

    ``deployments_in_progress`` holds the running deployments
    (``DeploymentPlan``s) or directly the ids of the apps they lock.
    """
    now = clock.time()
    locked_ids = _locked_ids(deployments_in_progress)
    by_app: dict[str, list[MarathonTask]] = {}
    for task in tasks:
        by_app.setdefault(task.app_id, []).append(task)
    decisions = Decisions()
    for app_id in sorted(by_app.keys() | apps.keys()):
        app = apps.get(app_id)
        app_tasks = by_app.get(app_id, [])
        locked = app_id in locked_ids
        for task in app_tasks:
            if _should_expunge(task, app, now) and not (locked and app is None):
                decisions.expunge.append(task.task_id)
        if locked:
            continue
        if app is None:
            for task in app_tasks:
                if task.condition.is_active and not task.kill_requested:
                    decisions.kill.append((task.task_id, "Orphaned"))
            continue
        counted = counted_tasks(app, app_tasks, now)
        missing = app.instances - len(counted)
        if missing > 0:
            decisions.launch[app_id] = missing
        elif missing < 0:
            for task in kill_order(counted, app)[: -missing]:
                decisions.kill.append((task.task_id, "OverCapacity"))
    return decisions
