"""tasksStaged/Running/Healthy/Unhealthy are counted from an app's tasks in one pass."""

from __future__ import annotations

from frameworks.marathon.core.model import InstanceCondition as C
from frameworks.marathon.core.model import MarathonTask
from frameworks.marathon.core.reports import TaskCounts, count_tasks


def _task(n: int, condition: C, healthy: bool | None) -> MarathonTask:
    return MarathonTask(task_id=f"a.instance-{n}._app.1", instance_id=f"a.instance-{n}",
                        app_id="/a", version="v", condition=condition, healthy=healthy)


def test_counts_by_condition_and_health_skipping_terminal_tasks() -> None:
    """Staged counts STAGING and STARTING; terminal tasks count for nothing."""
    tasks = [_task(1, C.STAGING, None), _task(2, C.STARTING, None), _task(3, C.RUNNING, True),
             _task(4, C.RUNNING, False), _task(5, C.KILLING, True), _task(6, C.FAILED, False),
             _task(7, C.UNREACHABLE, None)]
    assert count_tasks(tasks) == TaskCounts(staged=2, running=2, healthy=2, unhealthy=1)


def test_no_tasks_no_counts() -> None:
    """An app without tasks has all counters at zero."""
    assert count_tasks([]) == TaskCounts()
