"""The v1 executor API's calls and events as protocol messages (PURE).

Owns: :func:`parse_executor_call` (a decoded JSON call → :class:`ExecutorCall`: type,
framework and executor ids, and the message the agent core handles, given the
container of the executor) and :func:`executor_event` (a message the agent sends an
executor → the v1 event).  Calls: SUBSCRIBE (with ``unacknowledged_tasks`` and
``unacknowledged_updates``, re-sent after an agent restart), UPDATE, MESSAGE, HEARTBEAT.
"""

from __future__ import annotations

from typing import Any

import attrs

from mesoslite.api.v1json import (
    V1Error,
    agent_info_json,
    arr,
    b64,
    data_bytes,
    executor_info_json,
    flag,
    framework_info_json,
    id_json,
    ident,
    labels_in,
    number,
    obj,
    parse_task_info,
    task_info_json,
    text,
)
from mesoslite.protocol import (
    ExecutorRegistered,
    ExecutorToFrameworkMessage,
    FrameworkToExecutorMessage,
    Heartbeat,
    KillTask,
    ProtocolError,
    Reason,
    RegisterExecutor,
    ReregisterExecutor,
    RunTask,
    ShutdownExecutor,
    Source,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    TaskState,
    TaskStatus,
)

SUPPORTED = ("SUBSCRIBE", "UPDATE", "MESSAGE", "HEARTBEAT")
_CALL_KEYS = frozenset({"type", "framework_id", "executor_id", "subscribe", "update",
                        "message"})
_STATUS_KEYS = frozenset({"task_id", "state", "message", "source", "reason", "data",
                          "agent_id", "slave_id", "executor_id", "timestamp", "uuid",
                          "healthy", "labels"})


@attrs.frozen
class ExecutorCall:
    """A parsed executor call; ``build(container_id)`` is the core's message."""

    type: str
    framework_id: str
    executor_id: str
    body: dict[str, Any]


def _enum(value: object, field: str, kind: Any) -> Any:
    name = text(value, field, empty=False)
    try:
        return kind(name)
    except ValueError:
        raise V1Error(field, f"unknown value {name[:60]!r}") from None


def parse_status(value: object, field: str, executor_id: str) -> TaskStatus:
    """A TaskStatus sent by an executor (``uuid`` required: the agent acknowledges it)."""
    body = obj(value, field, _STATUS_KEYS)
    uuid = data_bytes(body.get("uuid"), f"{field}.uuid")
    if not uuid:
        raise V1Error(f"{field}.uuid", "expected the update's uuid (base64)")
    source = _enum(body.get("source", "SOURCE_EXECUTOR"), f"{field}.source", Source)
    if source is not Source.SOURCE_EXECUTOR:
        raise V1Error(f"{field}.source", "an executor's updates have source SOURCE_EXECUTOR")
    if "executor_id" in body and ident(body["executor_id"], f"{field}.executor_id") \
            != executor_id:
        raise V1Error(f"{field}.executor_id", f"is not this executor ({executor_id!r})")
    return TaskStatus(
        task_id=ident(body.get("task_id"), f"{field}.task_id"),
        state=_enum(body.get("state"), f"{field}.state", TaskState),
        message=text(body.get("message", ""), f"{field}.message"),
        source=source,
        reason=_enum(body["reason"], f"{field}.reason", Reason) if "reason" in body else None,
        executor_id=executor_id,
        timestamp=number(body.get("timestamp", 0.0), f"{field}.timestamp"),
        uuid=uuid,
        healthy=flag(body["healthy"], f"{field}.healthy") if "healthy" in body else None,
        data=data_bytes(body["data"], f"{field}.data") if "data" in body else b"",
        labels=labels_in(body.get("labels", {}), f"{field}.labels"))


def parse_executor_call(value: object) -> ExecutorCall:
    """A decoded JSON call (V1Error naming the field)."""
    call = obj(value, "", _CALL_KEYS)
    kind = text(call.get("type"), "type", empty=False)
    if kind not in SUPPORTED:
        raise V1Error("type", f"unknown executor call type {kind[:60]!r}")
    for key in call:
        if key not in ("type", "framework_id", "executor_id", kind.lower()):
            raise V1Error(key, f"does not belong in a {kind} call")
    fid = ident(call.get("framework_id"), "framework_id")
    eid = ident(call.get("executor_id"), "executor_id")
    body = obj(call.get(kind.lower(), {}), kind.lower())
    return ExecutorCall(kind, fid, eid, body)


def executor_message(call: ExecutorCall, container_id: str) -> Any:
    """The agent core's message for ``call`` from the executor in ``container_id``."""
    key = call.type.lower()
    body = call.body
    fid, eid = call.framework_id, call.executor_id
    if call.type == "SUBSCRIBE":
        obj(body, key, frozenset({"unacknowledged_tasks", "unacknowledged_updates"}))
        tasks = tuple(parse_task_info(t, f"{key}.unacknowledged_tasks[{i}]")
                      for i, t in enumerate(arr(body.get("unacknowledged_tasks", []),
                                                f"{key}.unacknowledged_tasks")))
        updates = []
        for i, item in enumerate(arr(body.get("unacknowledged_updates", []),
                                     f"{key}.unacknowledged_updates")):
            where = f"{key}.unacknowledged_updates[{i}]"
            entry = obj(item, where, frozenset({"framework_id", "status"}))
            if "framework_id" in entry and ident(entry["framework_id"],
                                                 f"{where}.framework_id") != fid:
                raise V1Error(f"{where}.framework_id", "is not this executor's framework")
            updates.append(StatusUpdate(fid, parse_status(entry.get("status"),
                                                          f"{where}.status", eid)))
        if tasks or updates:
            return ReregisterExecutor(fid, eid, container_id, tasks, tuple(updates))
        return RegisterExecutor(fid, eid, container_id)
    if call.type == "UPDATE":
        obj(body, key, frozenset({"status"}))
        return StatusUpdate(fid, parse_status(body.get("status"), f"{key}.status", eid))
    if call.type == "MESSAGE":
        obj(body, key, frozenset({"data"}))
        return ExecutorToFrameworkMessage(fid, "", eid, data_bytes(body.get("data"),
                                                                   f"{key}.data"))
    obj(body, key, frozenset())
    return Heartbeat(eid)


def executor_event(message: Any, container_id: str) -> dict[str, Any] | None:
    """The v1 event for a message the agent sends an executor (None: not an event)."""
    if isinstance(message, ExecutorRegistered):
        subscribed: dict[str, Any] = {
            "executor_info": executor_info_json(message.executor_info),
            "framework_info": framework_info_json(message.framework_info),
            "container_id": id_json(container_id)}
        if message.agent_info is not None:
            subscribed["agent_info"] = agent_info_json(message.agent_info)
        return {"type": "SUBSCRIBED", "subscribed": subscribed}
    if isinstance(message, RunTask):
        return {"type": "LAUNCH", "launch": {"task": task_info_json(message.task)}}
    if isinstance(message, KillTask):
        kill: dict[str, Any] = {"task_id": id_json(message.task_id)}
        if message.kill_policy is not None:
            kill["kill_policy"] = {"grace_period": {
                "nanoseconds": round(message.kill_policy.grace_period * 1e9)}}
        return {"type": "KILL", "kill": kill}
    if isinstance(message, StatusUpdateAcknowledgement):
        return {"type": "ACKNOWLEDGED", "acknowledged": {
            "task_id": id_json(message.task_id), "uuid": b64(message.uuid)}}
    if isinstance(message, FrameworkToExecutorMessage):
        return {"type": "MESSAGE", "message": {"data": b64(message.data)}}
    if isinstance(message, ShutdownExecutor):
        return {"type": "SHUTDOWN"}
    if isinstance(message, ProtocolError):
        return {"type": "ERROR", "error": {"message": message.message}}
    if isinstance(message, Heartbeat):
        return {"type": "HEARTBEAT"}
    return None
