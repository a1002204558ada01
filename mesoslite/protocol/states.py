"""Task states, their legal transitions, and the status-update vocabulary (PURE).

Owns: :class:`TaskState` (the fourteen Mesos task states), the set of
terminal states, the transition table checked by the master and the agent,
and the closed vocabularies of status-update ``source`` and ``reason``.
"""

from __future__ import annotations

import enum


class TaskState(str, enum.Enum):
    """The Mesos task states, with their Mesos names as values."""

    TASK_STAGING = "TASK_STAGING"
    TASK_STARTING = "TASK_STARTING"
    TASK_RUNNING = "TASK_RUNNING"
    TASK_KILLING = "TASK_KILLING"
    TASK_FINISHED = "TASK_FINISHED"
    TASK_FAILED = "TASK_FAILED"
    TASK_KILLED = "TASK_KILLED"
    TASK_ERROR = "TASK_ERROR"
    TASK_LOST = "TASK_LOST"
    TASK_DROPPED = "TASK_DROPPED"
    TASK_UNREACHABLE = "TASK_UNREACHABLE"
    TASK_GONE = "TASK_GONE"
    TASK_GONE_BY_OPERATOR = "TASK_GONE_BY_OPERATOR"
    TASK_UNKNOWN = "TASK_UNKNOWN"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """True when no further state can follow this one."""
        return self in TERMINAL_STATES


TERMINAL_STATES: frozenset[TaskState] = frozenset(
    {
        TaskState.TASK_FINISHED,
        TaskState.TASK_FAILED,
        TaskState.TASK_KILLED,
        TaskState.TASK_ERROR,
        TaskState.TASK_LOST,
        TaskState.TASK_DROPPED,
        TaskState.TASK_GONE,
        TaskState.TASK_GONE_BY_OPERATOR,
    }
)

_ACTIVE = {
    TaskState.TASK_STAGING,
    TaskState.TASK_STARTING,
    TaskState.TASK_RUNNING,
    TaskState.TASK_KILLING,
}

#: Which states may follow which.  A state absent from a row is illegal after it.
#: RUNNING may repeat (health changes are sent as new RUNNING updates);
#: UNREACHABLE may come back to life when its agent re-registers.
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.TASK_STAGING: frozenset(_ACTIVE - {TaskState.TASK_STAGING})
    | TERMINAL_STATES
    | {TaskState.TASK_UNREACHABLE},
    TaskState.TASK_STARTING: frozenset(
        {TaskState.TASK_RUNNING, TaskState.TASK_KILLING, TaskState.TASK_UNREACHABLE}
    )
    | TERMINAL_STATES,
    TaskState.TASK_RUNNING: frozenset(
        {TaskState.TASK_RUNNING, TaskState.TASK_KILLING, TaskState.TASK_UNREACHABLE}
    )
    | TERMINAL_STATES,
    TaskState.TASK_KILLING: frozenset({TaskState.TASK_UNREACHABLE}) | TERMINAL_STATES,
    TaskState.TASK_UNREACHABLE: frozenset(_ACTIVE | TERMINAL_STATES),
    TaskState.TASK_UNKNOWN: frozenset(TaskState),
}
for _terminal in TERMINAL_STATES:
    TRANSITIONS[_terminal] = frozenset()


def can_transition(old: TaskState, new: TaskState) -> bool:
    """True when ``new`` may legally follow ``old``."""
    return new in TRANSITIONS[old]


class TransitionError(ValueError):
    """An illegal task state transition."""

    def __init__(self, task_id: str, old: TaskState, new: TaskState) -> None:
        super().__init__(f"task '{task_id}': illegal transition {old.value} -> {new.value}")
        self.task_id = task_id
        self.old = old
        self.new = new


def check_transition(task_id: str, old: TaskState, new: TaskState) -> None:
    """Raise :class:`TransitionError` unless ``new`` may follow ``old``."""
    if new not in TRANSITIONS[old]:
        raise TransitionError(task_id, old, new)


class Source(str, enum.Enum):
    """Who generated a status update."""

    SOURCE_MASTER = "SOURCE_MASTER"
    SOURCE_AGENT = "SOURCE_AGENT"
    SOURCE_EXECUTOR = "SOURCE_EXECUTOR"

    def __str__(self) -> str:
        return self.value


class Reason(str, enum.Enum):
    """Why a status update happened (Mesos reason names, plus a few of ours)."""

    REASON_COMMAND_EXECUTOR_FAILED = "REASON_COMMAND_EXECUTOR_FAILED"
    REASON_CONTAINER_LAUNCH_FAILED = "REASON_CONTAINER_LAUNCH_FAILED"
    REASON_CONTAINER_LIMITATION = "REASON_CONTAINER_LIMITATION"
    REASON_CONTAINER_LIMITATION_MEMORY = "REASON_CONTAINER_LIMITATION_MEMORY"
    REASON_CONTAINER_LIMITATION_DISK = "REASON_CONTAINER_LIMITATION_DISK"
    REASON_CONTAINER_PREEMPTED = "REASON_CONTAINER_PREEMPTED"
    REASON_CONTAINER_PULL_FAILED = "REASON_CONTAINER_PULL_FAILED"
    REASON_CONTAINER_UPDATE_FAILED = "REASON_CONTAINER_UPDATE_FAILED"
    REASON_EXECUTOR_REGISTRATION_TIMEOUT = "REASON_EXECUTOR_REGISTRATION_TIMEOUT"
    REASON_EXECUTOR_REREGISTRATION_TIMEOUT = "REASON_EXECUTOR_REREGISTRATION_TIMEOUT"
    REASON_EXECUTOR_TERMINATED = "REASON_EXECUTOR_TERMINATED"
    REASON_EXECUTOR_UNREGISTERED = "REASON_EXECUTOR_UNREGISTERED"
    REASON_FRAMEWORK_REMOVED = "REASON_FRAMEWORK_REMOVED"
    REASON_GC_ERROR = "REASON_GC_ERROR"
    REASON_INVALID_FRAMEWORKID = "REASON_INVALID_FRAMEWORKID"
    REASON_INVALID_OFFERS = "REASON_INVALID_OFFERS"
    REASON_IO_SWITCHBOARD_EXITED = "REASON_IO_SWITCHBOARD_EXITED"
    REASON_MASTER_DISCONNECTED = "REASON_MASTER_DISCONNECTED"
    REASON_RECONCILIATION = "REASON_RECONCILIATION"
    REASON_RESOURCES_UNKNOWN = "REASON_RESOURCES_UNKNOWN"
    REASON_AGENT_DISCONNECTED = "REASON_AGENT_DISCONNECTED"
    REASON_AGENT_DRAINING = "REASON_AGENT_DRAINING"
    REASON_AGENT_REMOVED = "REASON_AGENT_REMOVED"
    REASON_AGENT_REMOVED_BY_OPERATOR = "REASON_AGENT_REMOVED_BY_OPERATOR"
    REASON_AGENT_REREGISTERED = "REASON_AGENT_REREGISTERED"
    REASON_AGENT_RESTARTED = "REASON_AGENT_RESTARTED"
    REASON_AGENT_UNKNOWN = "REASON_AGENT_UNKNOWN"
    REASON_TASK_CHECK_STATUS_UPDATED = "REASON_TASK_CHECK_STATUS_UPDATED"
    REASON_TASK_HEALTH_CHECK_STATUS_UPDATED = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
    REASON_TASK_GROUP_INVALID = "REASON_TASK_GROUP_INVALID"
    REASON_TASK_GROUP_UNAUTHORIZED = "REASON_TASK_GROUP_UNAUTHORIZED"
    REASON_TASK_INVALID = "REASON_TASK_INVALID"
    REASON_TASK_KILLED_DURING_LAUNCH = "REASON_TASK_KILLED_DURING_LAUNCH"
    REASON_TASK_UNAUTHORIZED = "REASON_TASK_UNAUTHORIZED"
    REASON_TASK_UNKNOWN = "REASON_TASK_UNKNOWN"

    def __str__(self) -> str:
        return self.value
