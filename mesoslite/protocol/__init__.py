"""Messages, their codec and the task state machine (PURE).

Public names are re-exported here: message classes, the value types they
carry, :func:`encode`/:func:`decode`, :class:`DecodeError`, :class:`TaskState`.
"""

from mesoslite.protocol.codec import (
    MAX_MESSAGE_SIZE,
    PROTOCOL_VERSION,
    EncodeError,
    decode,
    encode,
)
from mesoslite.protocol.messages import *  # noqa: F403
from mesoslite.protocol.messages import MESSAGE_TYPES, message
from mesoslite.protocol.schema import DecodeError, structure, unstructure
from mesoslite.protocol.states import (
    TERMINAL_STATES,
    Reason,
    Source,
    TaskState,
    TransitionError,
    can_transition,
    check_transition,
)
from mesoslite.protocol.types import (
    AgentInfo,
    CommandInfo,
    ContainerInfo,
    DockerInfo,
    ExecutorInfo,
    ExecutorSnapshot,
    FieldError,
    Filters,
    FrameworkInfo,
    HealthCheck,
    HTTPCheck,
    KillPolicy,
    MasterInfo,
    Offer,
    Operation,
    Parameter,
    PortMapping,
    ReconcileTask,
    Task,
    TaskInfo,
    TaskStatus,
    TCPCheck,
    Volume,
    valid_id,
)

__all__ = [
    "MAX_MESSAGE_SIZE", "PROTOCOL_VERSION", "EncodeError", "decode", "encode",
    "MESSAGE_TYPES", "message", "DecodeError", "structure", "unstructure",
    "TERMINAL_STATES", "Reason", "Source", "TaskState", "TransitionError",
    "can_transition", "check_transition", "AgentInfo", "CommandInfo", "ContainerInfo",
    "DockerInfo", "ExecutorInfo", "ExecutorSnapshot", "FieldError", "Filters",
    "FrameworkInfo", "HealthCheck", "HTTPCheck", "KillPolicy", "MasterInfo", "Offer",
    "Operation", "Parameter", "PortMapping", "ReconcileTask", "Task", "TaskInfo",
    "TaskStatus", "TCPCheck", "Volume", "valid_id",
] + sorted(MESSAGE_TYPES)
