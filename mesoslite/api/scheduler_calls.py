"""The v1 scheduler API's calls and events as protocol messages (PURE).

Owns: :func:`parse_call` (a decoded JSON call → :class:`Call`: its type, framework id
and the protocol message the master core handles) and :func:`event_json` (a message
the core sends a framework → the v1 event object).  Calls we cannot serve raise
:class:`Unsupported` naming the call (the handler answers 501).
"""

from __future__ import annotations

from typing import Any

import attrs

from mesoslite.api.v1json import (
    V1Error,
    arr,
    b64,
    data_bytes,
    id_json,
    ident,
    master_info_json,
    obj,
    offer_json,
    parse_filters,
    parse_framework_info,
    parse_kill_policy,
    parse_task_info,
    status_json,
    text,
)
from mesoslite.protocol import (
    Accept,
    Acknowledge,
    Decline,
    Error,
    ExecutorToFrameworkMessage,
    Failure,
    FrameworkToExecutorMessage,
    Heartbeat,
    Kill,
    Offers,
    Operation,
    Reconcile,
    ReconcileTask,
    Rescind,
    Revive,
    Shutdown,
    Subscribe,
    Subscribed,
    Suppress,
    Teardown,
    Update,
)

#: Every call type of the v1 scheduler API we serve.
SUPPORTED = ("SUBSCRIBE", "TEARDOWN", "ACCEPT", "DECLINE", "REVIVE", "SUPPRESS", "KILL",
             "SHUTDOWN", "ACKNOWLEDGE", "RECONCILE", "MESSAGE", "REQUEST", "UPDATE_FRAMEWORK")
#: Call types of the v1 scheduler API that we refuse (501), and why.
UNSUPPORTED = {
    "ACCEPT_INVERSE_OFFERS": "there is no maintenance, so there are no inverse offers",
    "DECLINE_INVERSE_OFFERS": "there is no maintenance, so there are no inverse offers",
    "ACKNOWLEDGE_OPERATION_STATUS": "offer operations with ids (reservations, volumes) "
                                    "are not supported",
    "RECONCILE_OPERATIONS": "offer operations with ids (reservations, volumes) are not supported",
}
#: Offer operations of ACCEPT we refuse, and why.
UNSUPPORTED_OPERATIONS = {
    "LAUNCH_GROUP": "task groups (the default executor) are not supported",
    "RESERVE": "reservations are not supported", "UNRESERVE": "reservations are not supported",
    "CREATE": "persistent volumes are not supported",
    "DESTROY": "persistent volumes are not supported",
    "GROW_VOLUME": "persistent volumes are not supported",
    "SHRINK_VOLUME": "persistent volumes are not supported",
    "CREATE_DISK": "disk resources are not supported",
    "DESTROY_DISK": "disk resources are not supported",
}

_CALL_KEYS = frozenset({"type", "framework_id", "subscribe", "accept", "decline", "revive",
                        "suppress", "kill", "shutdown", "acknowledge", "reconcile", "message",
                        "request", "update_framework", "accept_inverse_offers",
                        "decline_inverse_offers", "acknowledge_operation_status",
                        "reconcile_operations"})


class Unsupported(Exception):
    """A call (or operation) that exists in Mesos but not here; answered 501."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@attrs.frozen
class Call:
    """A parsed scheduler call: ``message`` is what the core handles (None: nothing to do)."""

    type: str
    framework_id: str
    message: Any
    offer_ids: tuple[str, ...] = ()


def _offer_ids(value: object, field: str) -> tuple[str, ...]:
    ids = tuple(ident(item, f"{field}[{i}]") for i, item in enumerate(arr(value, field)))
    if len(set(ids)) != len(ids):
        raise V1Error(field, "an offer id is repeated")
    return ids


def _roles(body: dict[str, Any], field: str) -> tuple[str, ...]:
    roles = [text(r, f"{field}.roles[{i}]", empty=False)
             for i, r in enumerate(arr(body.get("roles", []), f"{field}.roles"))]
    if "role" in body:
        roles.append(text(body["role"], f"{field}.role", empty=False))
    return tuple(roles)


def _operations(value: object, field: str) -> tuple[Operation, ...]:
    operations = []
    for i, item in enumerate(arr(value, field)):
        where = f"{field}[{i}]"
        body = obj(item, where, frozenset({"type", "launch", "id"}
                                          | {k.lower() for k in UNSUPPORTED_OPERATIONS}))
        kind = text(body.get("type"), f"{where}.type", empty=False)
        if kind in UNSUPPORTED_OPERATIONS:
            raise Unsupported(f"{where}.type", f"{kind}: {UNSUPPORTED_OPERATIONS[kind]}")
        if kind != "LAUNCH":
            raise V1Error(f"{where}.type", f"unknown operation {kind!r}")
        if "id" in body:
            raise Unsupported(f"{where}.id", "operation ids (operation feedback) "
                              "are not supported")
        launch = obj(body.get("launch"), f"{where}.launch", frozenset({"task_infos"}))
        tasks = tuple(parse_task_info(task, f"{where}.launch.task_infos[{j}]")
                      for j, task in enumerate(arr(launch.get("task_infos", []),
                                                   f"{where}.launch.task_infos")))
        operations.append(Operation("LAUNCH", tasks))
    return tuple(operations)


def _subscribe(body: dict[str, Any], framework_id: str) -> Subscribe:
    sub = obj(body.get("subscribe"), "subscribe", frozenset({"framework_info",
                                                             "suppressed_roles"}))
    if sub.get("suppressed_roles"):
        raise Unsupported("subscribe.suppressed_roles", "subscribing suppressed is not "
                          "supported: SUPPRESS after SUBSCRIBED")
    info = parse_framework_info(sub.get("framework_info"), "subscribe.framework_info")
    if framework_id and info.id != framework_id:
        raise V1Error("framework_id", "must equal subscribe.framework_info.id")
    return Subscribe(info)


def _message(kind: str, body: dict[str, Any], fid: str) -> tuple[Any, tuple[str, ...]]:
    """The core message for a call that needs a subscription, and the offers it uses."""
    key = kind.lower()
    if kind == "TEARDOWN":
        return Teardown(fid), ()
    if kind == "REQUEST":
        obj(body.get(key, {}), key, frozenset({"requests"}))
        return None, ()
    if kind == "UPDATE_FRAMEWORK":
        upd = obj(body.get(key), key, frozenset({"framework_info"}))
        info = parse_framework_info(upd.get("framework_info"), f"{key}.framework_info")
        if info.id != fid:
            raise V1Error(f"{key}.framework_info.id", "must equal framework_id")
        return Subscribe(info), ()
    if kind in ("ACCEPT", "DECLINE"):
        keys = {"offer_ids", "filters"} | ({"operations"} if kind == "ACCEPT" else set())
        call = obj(body.get(key), key, frozenset(keys))
        ids = _offer_ids(call.get("offer_ids"), f"{key}.offer_ids")
        filters = parse_filters(call["filters"], f"{key}.filters") if "filters" in call else None
        if kind == "DECLINE":
            return Decline(fid, ids, filters), ids
        operations = _operations(call.get("operations", []), f"{key}.operations")
        return Accept(fid, ids, operations, filters), ids
    if kind in ("REVIVE", "SUPPRESS"):
        call = obj(body.get(key, {}), key, frozenset({"role", "roles"}))
        roles = _roles(call, key)
        return (Revive(fid, roles) if kind == "REVIVE" else Suppress(fid, roles)), ()
    if kind == "KILL":
        call = obj(body.get(key), key, frozenset({"task_id", "agent_id", "kill_policy"}))
        policy = parse_kill_policy(call["kill_policy"], f"{key}.kill_policy") \
            if "kill_policy" in call else None
        agent = ident(call["agent_id"], f"{key}.agent_id") if "agent_id" in call else ""
        return Kill(fid, ident(call.get("task_id"), f"{key}.task_id"), agent, policy), ()
    if kind == "SHUTDOWN":
        call = obj(body.get(key), key, frozenset({"executor_id", "agent_id"}))
        return Shutdown(fid, ident(call.get("executor_id"), f"{key}.executor_id"),
                        ident(call.get("agent_id"), f"{key}.agent_id")), ()
    if kind == "ACKNOWLEDGE":
        call = obj(body.get(key), key, frozenset({"agent_id", "task_id", "uuid"}))
        uuid = data_bytes(call.get("uuid"), f"{key}.uuid")
        if not uuid:
            raise V1Error(f"{key}.uuid", "expected the uuid of the update")
        return Acknowledge(fid, ident(call.get("agent_id"), f"{key}.agent_id"),
                           ident(call.get("task_id"), f"{key}.task_id"), uuid), ()
    if kind == "RECONCILE":
        call = obj(body.get(key, {}), key, frozenset({"tasks"}))
        tasks = []
        for i, item in enumerate(arr(call.get("tasks", []), f"{key}.tasks")):
            where = f"{key}.tasks[{i}]"
            entry = obj(item, where, frozenset({"task_id", "agent_id"}))
            tasks.append(ReconcileTask(ident(entry.get("task_id"), f"{where}.task_id"),
                                       ident(entry["agent_id"], f"{where}.agent_id")
                                       if "agent_id" in entry else ""))
        return Reconcile(fid, tuple(tasks)), ()
    # MESSAGE
    call = obj(body.get(key), key, frozenset({"agent_id", "executor_id", "data"}))
    return FrameworkToExecutorMessage(
        fid, ident(call.get("agent_id"), f"{key}.agent_id"),
        ident(call.get("executor_id"), f"{key}.executor_id"),
        data_bytes(call.get("data"), f"{key}.data")), ()


def parse_call(body: object) -> Call:
    """A decoded JSON call as a :class:`Call` (V1Error / Unsupported naming the field)."""
    call = obj(body, "", _CALL_KEYS)
    kind = text(call.get("type"), "type", empty=False)
    if kind in UNSUPPORTED:
        raise Unsupported("type", f"{kind}: {UNSUPPORTED[kind]}")
    if kind not in SUPPORTED:
        raise V1Error("type", f"unknown call type {kind[:60]!r}")
    fid = ident(call["framework_id"], "framework_id") if "framework_id" in call else ""
    for key in call:
        if key not in ("type", "framework_id") and key != kind.lower():
            raise V1Error(key, f"does not belong in a {kind} call")
    if kind == "SUBSCRIBE":
        return Call(kind, fid, _subscribe(call, fid))
    if not fid:
        raise V1Error("framework_id", f"a {kind} call needs framework_id")
    try:
        message, offer_ids = _message(kind, call, fid)
    except (V1Error, Unsupported):
        raise
    except (ValueError, TypeError) as exc:  # a protocol validator (FieldError names it)
        name = getattr(exc, "field", "")
        raise V1Error(f"{kind.lower()}.{name}" if name else kind.lower(), str(exc)) from None
    return Call(kind, fid, message, offer_ids)


def event_json(message: Any) -> dict[str, Any] | None:
    """The v1 event for a message the core sends a framework (None: not an event)."""
    if isinstance(message, Subscribed):
        body: dict[str, Any] = {
            "framework_id": id_json(message.framework_id),
            "heartbeat_interval_seconds": message.heartbeat_interval_seconds}
        if message.master_info is not None:
            body["master_info"] = master_info_json(message.master_info)
        return {"type": "SUBSCRIBED", "subscribed": body}
    if isinstance(message, Offers):
        return {"type": "OFFERS", "offers": {"offers": [offer_json(o) for o in message.offers]}}
    if isinstance(message, Rescind):
        return {"type": "RESCIND", "rescind": {"offer_id": id_json(message.offer_id)}}
    if isinstance(message, Update):
        return {"type": "UPDATE", "update": {"status": status_json(message.status)}}
    if isinstance(message, ExecutorToFrameworkMessage):
        return {"type": "MESSAGE", "message": {
            "agent_id": id_json(message.agent_id), "executor_id": id_json(message.executor_id),
            "data": b64(message.data)}}
    if isinstance(message, Failure):
        failure: dict[str, Any] = {"agent_id": id_json(message.agent_id)}
        if message.executor_id:
            failure["executor_id"] = id_json(message.executor_id)
        if message.status is not None:
            failure["status"] = message.status
        return {"type": "FAILURE", "failure": failure}
    if isinstance(message, Error):
        return {"type": "ERROR", "error": {"message": message.message}}
    if isinstance(message, Heartbeat):
        return {"type": "HEARTBEAT"}
    return None
