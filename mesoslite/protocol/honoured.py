"""Fields of a TaskInfo that nothing on the agent would act on (PURE).

Owns: :func:`unhonoured_field`, the one rule the master (TASK_ERROR), the v1
scheduler API (400) and the agent (TASK_ERROR) share so that a field a task
carries is either acted on or refused by name, never dropped: URIs nothing
fetches (:func:`mesoslite.protocol.uris.task_uris_problem`), secret variables on a
custom executor's or a health check's command (only a task's own command gets
them), and volumes or a
hostname on a ``MESOS`` container, which runs its command on the host without
mounts or a UTS namespace of its own (a ``DOCKER`` container honours both).
"""

from __future__ import annotations

from mesoslite.protocol.types import ContainerInfo, TaskInfo
from mesoslite.protocol.uris import task_uris_problem

__all__ = ["unhonoured_field"]


def _mesos_container(container: ContainerInfo | None, field: str) -> tuple[str, str] | None:
    if container is None or container.type != "MESOS":
        return None
    if container.volumes:
        return (f"{field}.volumes", ("volumes need a DOCKER container: a MESOS container "
                                     "runs its command on the host and mounts nothing"))
    if container.hostname:
        return (f"{field}.hostname", ("a hostname needs a DOCKER container: a MESOS "
                                      "container shares the host's"))
    return None


def unhonoured_field(task: TaskInfo) -> tuple[str, str] | None:
    """The first field of ``task`` the agent would not honour, as (field path, why)."""
    problem = task_uris_problem(task)
    if problem is not None:
        return problem
    problem = _mesos_container(task.container, "container")
    if problem is not None:
        return problem
    if task.executor is not None and task.executor.command.secret_environment:
        return ("executor.command.environment", ("secret variables are resolved for command "
                                                 "tasks only, not for a custom executor's "
                                                 "own command"))
    check = task.health_check.command if task.health_check is not None else None
    if check is not None and check.secret_environment:
        return ("health_check.command.environment", ("a health check's command gets no "
                                                     "secret variables"))
    if task.executor is not None:
        return _mesos_container(task.executor.container, "executor.container")
    return None
