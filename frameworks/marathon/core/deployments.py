"""Deployment plans and the decisions of each deployment step (PURE).

Owns: turning a change of the app set (``original`` → ``target``) into a
Marathon deployment plan of steps and actions; deciding, for the action being
executed, what to launch and kill and when the action is done.  Plans in
Marathon's JSON shapes (``GET /v2/deployments``, the event bus, the store)
are ``wire.deployment_json``.

Planning (Marathon's order):

1. ``StopApplication`` for apps that disappear, dependents before their
   dependencies (one step per dependency level);
2. one step of ``StartApplication`` for new apps (they start with 0 instances);
3. one step per dependency level, dependencies first: ``ScaleApplication`` for
   new apps and for apps whose only change is ``instances``;
   ``RestartApplication`` for apps whose configuration changed.  A new
   ``versionInfo.lastConfigChangeAt`` with the same fields counts as a
   configuration change: that is how ``POST /v2/apps/{id}/restart`` is planned.

Rolling restart (:func:`restart_decisions`), with ``n = instances``,
``minHealthy = ⌈n × minimumHealthCapacity⌉`` and
``maxCapacity = ⌊n × (1 + maximumOverCapacity)⌋``: old-configuration tasks
are killed only while the healthy-and-ready tasks stay ≥ ``minHealthy``
(unhealthy old tasks may always go), and new tasks are launched only while all
live tasks (those being killed included) stay ≤ ``maxCapacity``.  When neither
is possible and nothing is in flight (only when ``minHealthy == maxCapacity ==
n``, e.g. 1.0/0.0) one old task is killed to make progress, as Marathon does.

Healthy means ``healthy is True`` for a task of an app with health checks,
RUNNING otherwise (an old task without a verdict counts as healthy when
RUNNING); ready means the task id is in ``ready`` when the app has readiness
checks.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence

import attrs

from frameworks.marathon.core.model import App, InstanceCondition, MarathonTask
from frameworks.marathon.core.reconciler import is_current_config, kill_order

__all__ = [
    "ACTIONS",
    "DeploymentAction",
    "DeploymentPlan",
    "action_decisions",
    "capacity_bounds",
    "is_healthy",
    "plan",
    "restart_decisions",
    "scale_decisions",
    "stop_decisions",
]

START, STOP, SCALE, RESTART = (
    "StartApplication",
    "StopApplication",
    "ScaleApplication",
    "RestartApplication",
)
#: The action names, as Marathon spells them.
ACTIONS = (START, STOP, SCALE, RESTART)

Decision = tuple[int, list[str], bool]


@attrs.frozen
class DeploymentAction:
    """One action of a step: ``action`` (one of :data:`ACTIONS`) on ``app_id``."""

    action: str
    app_id: str


@attrs.frozen
class DeploymentPlan:
    """A deployment: its id, version, the app sets before and after, and its steps.

    ``current_step`` is the 0-based index of the step being executed
    (``len(steps)`` when all are done).
    """

    id: str
    version: str
    original: dict[str, App]
    target: dict[str, App]
    steps: tuple[tuple[DeploymentAction, ...], ...]
    current_step: int = 0

    @property
    def affected_app_ids(self) -> tuple[str, ...]:
        """The ids of all apps an action of this plan touches, sorted."""
        return tuple(sorted({a.app_id for step in self.steps for a in step}))

    @property
    def current_actions(self) -> tuple[DeploymentAction, ...]:
        """The actions of the step being executed (empty when finished)."""
        if 0 <= self.current_step < len(self.steps):
            return self.steps[self.current_step]
        return ()

    @property
    def finished(self) -> bool:
        """True when every step is done."""
        return self.current_step >= len(self.steps)

    def advanced(self) -> DeploymentPlan:
        """This plan with its current step moved to the next one."""
        return attrs.evolve(self, current_step=min(self.current_step + 1, len(self.steps)))


# -- planning ------------------------------------------------------------------------------


def _config_changed(before: App, after: App) -> bool:
    """True when anything other than instances and version differs (see the module doc)."""
    if attrs.evolve(before, instances=0, version="", version_info=None) != attrs.evolve(
        after, instances=0, version="", version_info=None
    ):
        return True
    if before.version_info is not None and after.version_info is not None:
        return before.version_info.last_config_change_at != after.version_info.last_config_change_at
    return False


def _resolve(dependency: str, app_id: str) -> str:
    """A dependency id made absolute relative to ``app_id``'s group."""
    if dependency.startswith("/"):
        return "/" + dependency.strip("/")
    parent = app_id.rstrip("/").rsplit("/", 1)[0]
    parts: list[str] = [p for p in parent.split("/") if p]
    for part in dependency.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def _levels(apps: Mapping[str, App]) -> dict[str, int]:
    """Dependency depth of each app among ``apps`` (0: depends on none of them).

    A dependency may name an app or a group (all apps below it).  Cycles are
    broken by ignoring the edge that closes them (validation rejects them).
    """
    ids = sorted(apps)
    edges: dict[str, set[str]] = {}
    for app_id in ids:
        deps: set[str] = set()
        for dependency in apps[app_id].dependencies:
            target = _resolve(dependency, app_id)
            prefix = target.rstrip("/") + "/"
            deps.update(o for o in ids if o != app_id and (o == target or o.startswith(prefix)))
        edges[app_id] = deps
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(app_id: str) -> int:
        if app_id in depth:
            return depth[app_id]
        visiting.add(app_id)
        level = 0
        for dep in sorted(edges[app_id]):
            if dep not in visiting:
                level = max(level, visit(dep) + 1)
        visiting.discard(app_id)
        depth[app_id] = level
        return level

    for app_id in ids:
        visit(app_id)
    return depth


def _by_level(levels: Mapping[str, int], app_ids: Iterable[str]) -> list[list[str]]:
    """``app_ids`` grouped by dependency level, lowest first, sorted within a level."""
    grouped: dict[int, list[str]] = {}
    for app_id in sorted(app_ids):
        grouped.setdefault(levels[app_id], []).append(app_id)
    return [grouped[level] for level in sorted(grouped)]


def plan(
    original: Mapping[str, App], target: Mapping[str, App], version: str, id: str
) -> DeploymentPlan:
    """The deployment plan taking the app set ``original`` to ``target`` (module doc)."""
    steps: list[tuple[DeploymentAction, ...]] = []
    to_stop = original.keys() - target.keys()
    to_start = target.keys() - original.keys()
    stop_levels = _levels(original)
    for group in reversed(_by_level(stop_levels, to_stop)):
        steps.append(tuple(DeploymentAction(STOP, a) for a in group))
    if to_start:
        steps.append(tuple(DeploymentAction(START, a) for a in sorted(to_start)))
    target_levels = _levels(target)
    for group in _by_level(target_levels, target.keys()):
        actions = []
        for app_id in group:
            after = target[app_id]
            before = original.get(app_id)
            if before is None:
                actions.append(DeploymentAction(SCALE, app_id))
            elif _config_changed(before, after):
                actions.append(DeploymentAction(RESTART, app_id))
            elif before.instances != after.instances:
                actions.append(DeploymentAction(SCALE, app_id))
        if actions:
            steps.append(tuple(actions))
    return DeploymentPlan(id, version, dict(original), dict(target), tuple(steps))


# -- step decisions --------------------------------------------------------------------------


def _ceil(x: float) -> int:
    """Ceiling that ignores float noise (10 × 0.7 is 7, not 8)."""
    return math.ceil(round(x, 9))


def _floor(x: float) -> int:
    """Floor that ignores float noise (10 × 1.2 is 12)."""
    return math.floor(round(x, 9))


def capacity_bounds(app: App) -> tuple[int, int]:
    """``(minHealthy, maxCapacity)`` of a rolling restart of ``app``."""
    n = app.instances
    strategy = app.upgrade_strategy
    min_healthy = _ceil(n * strategy.minimum_health_capacity)
    max_capacity = max(n, _floor(n * (1 + strategy.maximum_over_capacity)))
    return min_healthy, max_capacity


def is_healthy(task: MarathonTask, app: App, *, current: bool = True) -> bool:
    """Healthy in the deployment sense (module doc); ``current``: runs ``app``'s config."""
    if task.condition is not InstanceCondition.RUNNING or task.kill_requested:
        return False
    if task.healthy is not None:
        return task.healthy
    return not (current and app.health_checks)


def _ok(task: MarathonTask, app: App, current: bool, ready: Collection[str]) -> bool:
    """Healthy and (for a current task of an app with readiness checks) ready."""
    if not is_healthy(task, app, current=current):
        return False
    return not (current and app.readiness_checks) or task.task_id in ready


def _active(app: App, tasks: Iterable[MarathonTask]) -> list[MarathonTask]:
    """The app's non-terminal tasks (being killed or not)."""
    return [t for t in tasks if t.app_id == app.id and t.condition.is_active]


def _live(tasks: Iterable[MarathonTask]) -> list[MarathonTask]:
    """Tasks nobody is killing."""
    return [
        t for t in tasks if not t.kill_requested and t.condition is not InstanceCondition.KILLING
    ]


def restart_decisions(
    app: App, tasks: Sequence[MarathonTask], ready: Collection[str]
) -> Decision:
    """``(launch_count, kill_task_ids, done)`` for a rolling restart to ``app`` (module doc)."""
    n = app.instances
    min_healthy, max_capacity = capacity_bounds(app)
    active = _active(app, tasks)
    live = _live(active)
    current = {t.task_id: is_current_config(t, app) for t in active}
    ok = {t.task_id: _ok(t, app, current[t.task_id], ready) for t in live}
    old = [t for t in live if not current[t.task_id]]
    new = [t for t in live if current[t.task_id]]
    done = (
        len(active) == n
        and all(current[t.task_id] for t in active)
        and len(live) == n
        and all(ok[t.task_id] for t in live)
    )
    if done:
        return 0, [], True
    budget = sum(ok.values()) - min_healthy
    kills: list[str] = []
    # New tasks beyond the instance count (the target has fewer instances).
    if len(new) > n:
        surplus = len(new) - n
        ordered = sorted(kill_order(new, app), key=lambda t: ok[t.task_id])
        for task in ordered[:surplus]:
            if ok[task.task_id]:
                if budget <= 0:
                    break
                budget -= 1
            kills.append(task.task_id)
    # Old tasks: unhealthy ones freely, healthy ones while the floor holds.
    for task in sorted(kill_order(old, app), key=lambda t: ok[t.task_id]):
        if ok[task.task_id]:
            if budget <= 0:
                break
            budget -= 1
        kills.append(task.task_id)
    room = max_capacity - len(active)
    launch = max(0, min(n - len(new), room))
    if not kills and launch == 0 and old:
        in_flight = len(active) > len(live) or any(not ok[t.task_id] for t in new)
        if not in_flight:
            kills.append(kill_order(old, app)[0].task_id)
    return launch, kills, False


def scale_decisions(
    app: App, tasks: Sequence[MarathonTask], ready: Collection[str]
) -> Decision:
    """``(launch_count, kill_task_ids, done)`` for scaling ``app`` to its instance count.

    Surplus tasks are killed in :func:`~frameworks.marathon.core.reconciler.kill_order`;
    done when exactly ``instances`` tasks are alive, none is being killed, and
    all are healthy (and ready).
    """
    n = app.instances
    active = _active(app, tasks)
    live = _live(active)
    if len(live) < n:
        return n - len(live), [], False
    if len(live) > n:
        return 0, [t.task_id for t in kill_order(live, app)[: len(live) - n]], False
    done = len(active) == n and all(
        _ok(t, app, is_current_config(t, app), ready) for t in live
    )
    return 0, [], done


def stop_decisions(app: App, tasks: Sequence[MarathonTask]) -> Decision:
    """``(0, kill_task_ids, done)`` for stopping ``app``: kill every task.

    Done when only UNREACHABLE tasks (if any) are left; the shell expunges the
    app's remaining tasks then.
    """
    active = _active(app, tasks)
    kills = [t.task_id for t in active if not t.kill_requested]
    done = all(t.condition is InstanceCondition.UNREACHABLE for t in active)
    return 0, kills, done


def action_decisions(
    deployment: DeploymentPlan,
    action: DeploymentAction,
    tasks: Sequence[MarathonTask],
    ready: Collection[str] = frozenset(),
) -> Decision:
    """``(launch_count, kill_task_ids, done)`` for one action of ``deployment``."""
    if action.action == START:
        return 0, [], True
    if action.action == STOP:
        app = deployment.original.get(action.app_id)
        if app is None:
            return 0, [], True
        return stop_decisions(app, tasks)
    app = deployment.target[action.app_id]
    if action.action == RESTART:
        return restart_decisions(app, tasks, ready)
    if action.action == SCALE:
        return scale_decisions(app, tasks, ready)
    raise ValueError(f"action: expected one of {', '.join(ACTIONS)}, got {action.action!r}")
