"""Validation of ACCEPT calls, as protocol.md §3 orders it (PURE).

Owns: :func:`check_offers` (every offer outstanding, this framework's, all
on one agent, none repeated) and :func:`check_tasks` (per task: agent id,
exactly one of command/executor, non-empty resources, a health check the
executor can run, no field the agent would not honour (URIs the fetcher cannot
take, :mod:`mesoslite.protocol.honoured`), unique task id, cumulative resources
within what the offers hold).  Both return verdicts
with messages that name the offending offer, task and field; the state
turns them into TASK_DROPPED / TASK_ERROR updates and RunTask messages.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import attrs

from mesoslite.health.schedule import validate_health_check
from mesoslite.master.records import OfferRecord
from mesoslite.protocol import Operation, TaskInfo
from mesoslite.protocol.honoured import unhonoured_field
from mesoslite.resources import Resources

#: The only operation this master performs.
LAUNCH = "LAUNCH"

_EMPTY = Resources()


def check_offers(
    offer_ids: Sequence[str], framework_id: str, offers: Mapping[str, OfferRecord]
) -> tuple[list[OfferRecord], str]:
    """Return (this framework's outstanding offers named in the call, error message).

    The error is ``""`` when the offers may be used.  The returned offers are
    the ones that must be consumed either way (used, or recovered on error);
    offers of other frameworks are never returned.
    """
    errors: list[str] = []
    valid: list[OfferRecord] = []
    seen: set[str] = set()
    first: OfferRecord | None = None
    if not offer_ids:
        errors.append("offer_ids: expected at least one offer id")
    for offer_id in offer_ids:
        if offer_id in seen:
            errors.append(f"offer {offer_id} appears more than once in the call")
            continue
        seen.add(offer_id)
        record = offers.get(offer_id)
        if record is None:
            errors.append(
                f"offer {offer_id} is not outstanding (unknown, already used, declined "
                f"or rescinded)"
            )
            continue
        if record.offer.framework_id != framework_id:
            errors.append(f"offer {offer_id} belongs to another framework")
            continue
        valid.append(record)
        if first is None:
            first = record
        elif record.offer.agent_id != first.offer.agent_id:
            errors.append(
                f"offer {offer_id} is on agent {record.offer.agent_id} but offer {first.id} "
                f"is on agent {first.offer.agent_id}: all offers must be on one agent"
            )
    return valid, "; ".join(errors)


@attrs.frozen
class TaskVerdict:
    """What to do with one task of an ACCEPT: launch it (``error == ""``) or refuse it."""

    task: TaskInfo
    error: str = ""
    field: str = ""
    #: Index of the offer whose resources the task (and a new executor) consume.
    offer_index: int = -1
    role: str = ""
    #: Resources taken from the offer: the task's plus its executor's if it is new.
    consumed: Resources = _EMPTY
    new_executor: bool = False


def _shape_error(task: TaskInfo, agent_id: str) -> tuple[str, str]:
    """The first structural problem of a task as (field, message), or ("", "")."""
    tid = task.task_id
    if task.agent_id != agent_id:
        return "agent_id", (
            f"task {tid}: agent_id {task.agent_id!r} does not match the offers' agent {agent_id!r}"
        )
    if task.command is None and task.executor is None:
        return "command", f"task {tid}: expected exactly one of command or executor, got neither"
    if task.command is not None and task.executor is not None:
        return "command", f"task {tid}: expected exactly one of command or executor, got both"
    if not task.resources:
        return "resources", f"task {tid}: resources: expected non-empty resources"
    if task.health_check is not None:
        problem = validate_health_check(task.health_check, f"task {tid}: health_check")
        if problem:
            return "health_check", problem
    uris = unhonoured_field(task)
    if uris is not None:
        return uris[0], f"task {tid}: {uris[0]}: {uris[1]}"
    return "", ""


def check_tasks(
    operations: Sequence[Operation],
    framework_id: str,
    agent_id: str,
    offered: Sequence[tuple[str, Resources]],
    live_task_ids: Collection[str],
    running_executors: Collection[str],
) -> tuple[list[TaskVerdict], list[Resources], list[str]]:
    """Validate every task of every operation, in order.

    ``offered`` lists (role, resources) per offer; ``running_executors`` are
    the framework's executor ids already on the agent (their resources are
    not taken again).  Returns (verdicts, what is left of each offer,
    operation-level errors such as unsupported operation types).
    """
    remaining = [resources for _role, resources in offered]
    verdicts: list[TaskVerdict] = []
    op_errors: list[str] = []
    in_call: set[str] = set()
    new_executors: set[str] = set()
    for index, operation in enumerate(operations):
        if operation.type != LAUNCH:
            message = (
                f"operations[{index}].type: operation {operation.type!r} is not supported, "
                f"expected {LAUNCH!r}"
            )
            op_errors.append(message)
            for task in operation.task_infos:
                verdicts.append(TaskVerdict(task, f"task {task.task_id}: {message}", "type"))
            continue
        for task in operation.task_infos:
            verdicts.append(
                _check_task(
                    task, framework_id, agent_id, offered, remaining,
                    live_task_ids, in_call, running_executors, new_executors,
                )
            )
    return verdicts, remaining, op_errors


def _check_task(
    task: TaskInfo,
    framework_id: str,
    agent_id: str,
    offered: Sequence[tuple[str, Resources]],
    remaining: list[Resources],
    live_task_ids: Collection[str],
    in_call: set[str],
    running_executors: Collection[str],
    new_executors: set[str],
) -> TaskVerdict:
    tid = task.task_id
    repeated = tid in in_call
    in_call.add(tid)
    field, error = _shape_error(task, agent_id)
    if error:
        return TaskVerdict(task, error, field)
    if tid in live_task_ids:
        return TaskVerdict(
            task, f"task {tid}: task_id {tid!r} is already used by a live task of this framework",
            "task_id",
        )
    if repeated:
        return TaskVerdict(task, f"task {tid}: task_id {tid!r} is repeated in this call", "task_id")
    need = task.resources
    new_executor = False
    executor = task.executor
    if executor is not None:
        if executor.framework_id and executor.framework_id != framework_id:
            return TaskVerdict(
                task,
                f"task {tid}: executor.framework_id {executor.framework_id!r} is not this "
                f"framework ({framework_id!r})",
                "executor.framework_id",
            )
        eid = executor.executor_id
        if eid not in running_executors and eid not in new_executors:
            new_executor = True
            need = need + executor.resources
    for index, left in enumerate(remaining):
        if left.contains(need):
            remaining[index] = left - need
            if new_executor and executor is not None:
                new_executors.add(executor.executor_id)
            return TaskVerdict(
                task,
                offer_index=index,
                role=offered[index][0],
                consumed=need,
                new_executor=new_executor,
            )
    left_total = _EMPTY
    for left in remaining:
        left_total = left_total + left
    return TaskVerdict(
        task,
        f"task {tid}: resources: needs {need or 'nothing'}, more than the offers hold "
        f"({left_total or 'nothing'} left)",
        "resources",
    )
