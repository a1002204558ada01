"""What an ACCEPT of the v1 scheduler API may launch, checked before the core sees it (PURE).

Owns: :func:`check_launch`.  The master core answers a task it cannot launch with a
TASK_ERROR (the SDK's contract, unchanged); an HTTP scheduler instead gets a 400 naming
the field (``accept.operations[0].launch.task_infos[1].resources``) and nothing changes:
no update, the offers stay outstanding.  The rules are the core's (one agent for all
offers, each task on that agent, unique task ids, a runnable health check, no field the
agent would not honour (:mod:`mesoslite.protocol.honoured`), the executor of this
framework, cumulative resources within the offers, a new executor's resources taken
once), applied to the state as the handler sees it just before the call.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from mesoslite.api.v1json import V1Error
from mesoslite.health.schedule import validate_health_check
from mesoslite.protocol import Accept, Offer, TaskInfo
from mesoslite.protocol.honoured import unhonoured_field
from mesoslite.resources import Resources


def _offers_agent(offers: Sequence[Offer]) -> str:
    """The one agent the offers are on (V1Error naming the offer that is elsewhere)."""
    for index, offer in enumerate(offers):
        if offer.agent_id != offers[0].agent_id:
            raise V1Error(f"accept.offer_ids[{index}]",
                          f"offer {offer.id!r} is on agent {offer.agent_id!r} but offer "
                          f"{offers[0].id!r} is on agent {offers[0].agent_id!r}: all offers "
                          "of an ACCEPT must be on one agent")
    return offers[0].agent_id if offers else ""


def _task_shape(task: TaskInfo, where: str, agent_id: str, known_agents: Collection[str],
                framework_id: str) -> None:
    if task.agent_id not in known_agents:
        raise V1Error(f"{where}.agent_id", f"agent {task.agent_id!r} is not a registered agent")
    if task.agent_id != agent_id:
        raise V1Error(f"{where}.agent_id", f"agent {task.agent_id!r} is not the agent of the "
                      f"offers ({agent_id!r})")
    if not task.resources:
        raise V1Error(f"{where}.resources", "expected non-empty resources")
    if task.health_check is not None:
        problem = validate_health_check(task.health_check, "health_check")
        if problem:
            raise V1Error(f"{where}.health_check", problem)
    uris = unhonoured_field(task)
    if uris is not None:
        raise V1Error(f"{where}.{uris[0]}", uris[1])
    executor = task.executor
    if executor is not None and executor.framework_id and executor.framework_id != framework_id:
        raise V1Error(f"{where}.executor.framework_id",
                      f"{executor.framework_id!r} is not this framework ({framework_id!r})")


def check_launch(accept: Accept, offers: Sequence[Offer], known_agents: Collection[str],
                 live_task_ids: Collection[str], running_executors: Collection[str]) -> None:
    """Raise V1Error naming the first field of ``accept`` the core would refuse.

    ``offers`` are the call's offers in order (already known outstanding and this
    framework's); ``live_task_ids`` the framework's non-terminal (and unreachable) task
    ids; ``running_executors`` its executor ids on the offers' agent.
    """
    agent_id = _offers_agent(offers)
    remaining = [offer.resources for offer in offers]
    seen: dict[str, str] = {}
    new_executors: set[str] = set()
    for i, operation in enumerate(accept.operations):
        for j, task in enumerate(operation.task_infos):
            where = f"accept.operations[{i}].launch.task_infos[{j}]"
            _task_shape(task, where, agent_id, known_agents, accept.framework_id)
            tid = task.task_id
            if tid in seen:
                raise V1Error(f"{where}.task_id", f"task id {tid!r} is repeated in this call "
                              f"(also {seen[tid]})")
            seen[tid] = where
            if tid in live_task_ids:
                raise V1Error(f"{where}.task_id", f"task id {tid!r} is used by a live task of "
                              "this framework")
            need = task.resources
            executor = task.executor
            new = (executor is not None and executor.executor_id not in running_executors
                   and executor.executor_id not in new_executors)
            if new and executor is not None:
                need = need + executor.resources
            for index, left in enumerate(remaining):
                if left.contains(need):
                    remaining[index] = left - need
                    if new and executor is not None:
                        new_executors.add(executor.executor_id)
                    break
            else:
                left_total = sum(remaining, Resources())
                extra = " (with its new executor's)" if new else ""
                raise V1Error(f"{where}.resources",
                              f"task {tid!r} needs {need}{extra}, more than the offers hold "
                              f"after the tasks before it ({left_total or 'nothing'} left)")
