"""Unit tests for the steady-state reconciler (frameworks.marathon.core.reconciler)."""

from __future__ import annotations

import itertools

from frameworks.marathon.core.deployments import plan
from frameworks.marathon.core.model import (
    App,
    InstanceCondition,
    KillSelection,
    MarathonTask,
    UnreachableStrategy,
    VersionInfo,
)
from frameworks.marathon.core.reconciler import Decisions, kill_order, reconcile
from mesoslite.testing import FakeClock

C = InstanceCondition
_ids = itertools.count()


def app(instances: int = 2, **fields: object) -> App:
    """The app under test."""
    base: dict[str, object] = {"id": "/web", "cmd": "serve", "version": "v1"}
    base.update(fields)
    return App(instances=instances, **base)  # type: ignore[arg-type]


def task(
    condition: InstanceCondition = C.RUNNING,
    *,
    app_id: str = "/web",
    staged_at: float = 0.0,
    **fields: object,
) -> MarathonTask:
    """A task of ``app_id``."""
    n = next(_ids)
    return MarathonTask(
        task_id=f"t{n}",
        instance_id=f"i{n}",
        app_id=app_id,
        version=str(fields.pop("version", "v1")),
        condition=condition,
        staged_at=staged_at,
        **fields,  # type: ignore[arg-type]
    )


def run(apps: list[App], tasks: list[MarathonTask], clock: FakeClock | None = None,
        locked: tuple[str, ...] = ()) -> Decisions:
    """reconcile with a fake clock."""
    return reconcile({a.id: a for a in apps}, tasks, set(locked), clock or FakeClock())


def test_launches_missing_instances() -> None:
    """An app short of instances gets launches for the difference."""
    assert run([app(3)], [task()]).launch == {"/web": 2}
    assert run([app(3)], []).launch == {"/web": 3}
    assert run([app(2)], [task(), task(C.STAGING)]) == Decisions()


def test_terminal_tasks_do_not_count() -> None:
    """Failed, lost, killed and finished tasks are replaced."""
    tasks = [task(c) for c in (C.FAILED, C.LOST, C.KILLED, C.FINISHED, C.ERROR, C.GONE)]
    decisions = run([app(2)], [*tasks, task()])
    assert decisions.launch == {"/web": 1}
    assert decisions.kill == []


def test_kills_surplus_youngest_first() -> None:
    """Over capacity: the youngest tasks go first by default."""
    old, mid, young = task(staged_at=1), task(staged_at=2), task(staged_at=3)
    decisions = run([app(1)], [mid, young, old])
    assert decisions.kill == [(young.task_id, "OverCapacity"), (mid.task_id, "OverCapacity")]


def test_kills_surplus_oldest_first() -> None:
    """OLDEST_FIRST kills the oldest tasks."""
    old, young = task(staged_at=1), task(staged_at=3)
    decisions = run([app(1, kill_selection=KillSelection.OLDEST_FIRST)], [young, old])
    assert decisions.kill == [(old.task_id, "OverCapacity")]


def test_kill_order_prefers_unreachable_then_staging_then_outdated() -> None:
    """Unreachable, then not-yet-running, then outdated config, then kill selection."""
    a = app(1, version_info=VersionInfo("v1", "v1"))
    running_new = task(staged_at=9)
    running_old = task(staged_at=1, version="v0")
    staging = task(C.STAGING, staged_at=2)
    unreachable = task(C.UNREACHABLE, staged_at=3)
    ordered = kill_order([running_new, running_old, staging, unreachable], a)
    assert ordered == [unreachable, staging, running_old, running_new]


def test_kill_requested_tasks_are_not_killed_twice() -> None:
    """Tasks already being killed neither count nor get killed again."""
    dying = task(kill_requested=True, staged_at=5)
    killing = task(C.KILLING, staged_at=6)
    decisions = run([app(1)], [task(staged_at=1), dying, killing])
    assert decisions == Decisions()
    # And they do not count toward instances either.
    assert run([app(2)], [task(), dying]).launch == {"/web": 1}


def test_tasks_of_deleted_apps_are_killed() -> None:
    """Tasks of an app that no longer exists are killed (unreachable ones also expunged)."""
    orphan = task(app_id="/gone")
    gone_unreachable = task(C.UNREACHABLE, app_id="/gone", condition_since=0.0)
    already = task(app_id="/gone", kill_requested=True)
    finished = task(C.FINISHED, app_id="/gone")
    decisions = run([], [orphan, gone_unreachable, already, finished])
    assert decisions.kill == [(orphan.task_id, "Orphaned"), (gone_unreachable.task_id, "Orphaned")]
    assert decisions.expunge == [gone_unreachable.task_id]
    assert decisions.launch == {}


def test_apps_in_deployment_are_left_alone() -> None:
    """An app locked by a deployment gets no launches or kills from the reconciler."""
    decisions = run([app(5), app(1, id="/other")], [task(), task(app_id="/other")],
                    locked=("/web", "/gone"))
    assert decisions == Decisions()
    assert run([app(5)], [task()], locked=("/other",)).launch == {"/web": 4}


def test_unreachable_tasks_of_locked_apps_are_still_expunged() -> None:
    """Expunging an unreachable task is bookkeeping: it happens during a deployment too."""
    clock = FakeClock()
    lost = task(C.UNREACHABLE, condition_since=clock.time())
    decisions = run([app(1)], [lost], clock, locked=("/web",))
    assert decisions == Decisions(expunge=[lost.task_id])
    assert run([], [task(app_id="/gone")], locked=("/gone",)) == Decisions()


def test_unreachable_counts_until_inactive_then_replaced_then_expunged() -> None:
    """UNREACHABLE counts until inactiveAfterSeconds, is replaced, then expunged."""
    clock = FakeClock()
    a = app(1, unreachable_strategy=UnreachableStrategy(60.0, 300.0))
    lost = task(C.UNREACHABLE, condition_since=clock.time())
    clock.advance(59)
    assert run([a], [lost], clock) == Decisions()
    clock.advance(1)
    assert run([a], [lost], clock).launch == {"/web": 1}
    replacement = task(staged_at=clock.time())
    clock.advance(239)
    assert run([a], [lost, replacement], clock) == Decisions()
    clock.advance(1)
    assert run([a], [lost, replacement], clock) == Decisions(expunge=[lost.task_id])


def test_unreachable_default_strategy_replaces_and_expunges_at_once() -> None:
    """Marathon's default 0/0 strategy replaces and expunges an unreachable task at once."""
    clock = FakeClock()
    lost = task(C.UNREACHABLE, condition_since=clock.time())
    assert run([app(1)], [lost], clock) == Decisions(launch={"/web": 1}, expunge=[lost.task_id])


def test_unreachable_disabled_is_kept() -> None:
    """With unreachableStrategy disabled an unreachable task counts forever."""
    clock = FakeClock()
    lost = task(C.UNREACHABLE, condition_since=clock.time())
    clock.advance(10**6)
    assert run([app(1, unreachable_strategy=None)], [lost], clock) == Decisions()


def test_unreachable_task_coming_back_after_replacement_kills_surplus() -> None:
    """A replaced task that returns makes the app over capacity: the youngest is killed."""
    clock = FakeClock()
    a = app(1, unreachable_strategy=UnreachableStrategy(10.0, 1000.0))
    returned = task(C.RUNNING, staged_at=clock.time())
    clock.advance(20)
    replacement = task(C.RUNNING, staged_at=clock.time())
    decisions = run([a], [returned, replacement], clock)
    assert decisions.kill == [(replacement.task_id, "OverCapacity")]
    assert decisions.launch == {}


def test_scaled_to_zero_kills_everything() -> None:
    """instances 0 kills every live task of the app."""
    tasks = [task(staged_at=i) for i in range(3)]
    decisions = run([app(0)], tasks)
    assert sorted(t for t, _ in decisions.kill) == sorted(t.task_id for t in tasks)


def test_deployment_plans_lock_their_apps() -> None:
    """Running deployment plans may be passed directly: their affected apps are locked."""
    a = app(3)
    deployment = plan({}, {"/web": a}, "v1", "d1")
    decisions = reconcile({"/web": a}, [], [deployment], FakeClock())
    assert decisions == Decisions()
