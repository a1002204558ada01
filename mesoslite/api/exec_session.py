"""``LAUNCH_NESTED_CONTAINER_SESSION`` on the agent's v1 API: ``ctl exec``'s endpoint.

Owns: :func:`parse_session_call` and :func:`serve_session`.  The call runs a command in
a running task's container and streams its output back on the same response, as
Mesos's session call does; where Mesos ends the stream and leaves the exit status to a
``WAIT_NESTED_CONTAINER`` call, this stream ends with an ``EXIT`` record.

Request (``POST /api/v1``, ``Content-Type: application/json``; it is a write, so it
needs credentials under ``--authenticate_http_readwrite``)::

    {"type": "LAUNCH_NESTED_CONTAINER_SESSION",
     "launch_nested_container_session": {
       "container_id": {"value": "<new id>", "parent": {"value": "<task's container>"}},
       "task_id": {"value": "<task id>"},           # instead of container_id (mesoslite)
       "command": {"shell": false, "value": "sh", "arguments": ["sh", "-c", "pwd"],
                   "environment": {"variables": [{"name": "X", "value": "1"}]}},
       "timeout": {"nanoseconds": 60000000000}}}    # optional (mesoslite): then SIGKILL

Answer: 200, ``Content-Type: application/recordio``, ``Message-Content-Type:
application/json``; records ``{"type": "DATA", "data": {"type": "STDOUT"|"STDERR",
"data": "<base64>"}}`` (Mesos's ProcessIO) in the order read, then one ``{"type":
"EXIT", "exit": {"status": <wait status or null>, "exit_code": <n or null>, "signal":
<n or null>, "timed_out": <bool>}}``.  The command's stdin is ``/dev/null`` (no
``ATTACH_CONTAINER_INPUT``).  Closing the connection kills the command.  Refusals are
JSON ``{"message", "field"}``: 404 when the task is unknown or not TASK_RUNNING on this
agent (or the parent container holds no running task), 400 for a bad call (a
``container`` or a ``command.user`` is refused: the command runs in the task's
container, as the task's user).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
from typing import Any

from mesoslite.api.ports import AgentOperatorPort, ExecRefused, ExecRequest, ExecSessionPort
from mesoslite.api.streams import ApiError, JsonApiHandler, RecordStream
from mesoslite.api.v1json import V1Error, duration, obj, parse_command, text

log = logging.getLogger("mesoslite.api")

CALL = "LAUNCH_NESTED_CONTAINER_SESSION"
_FIELDS = frozenset({"container_id", "task_id", "command", "container", "timeout"})


def parse_session_call(value: Any) -> tuple[ExecRequest, float | None]:
    """The request and its timeout (seconds; None: none) from the call's body."""
    key = CALL.lower()
    body = obj(value, key, _FIELDS)
    if "container" in body:
        raise V1Error(f"{key}.container", "not supported: the command runs in the task's "
                                          "own container")
    task_id = parent = None
    if "task_id" in body:
        task_id = text(obj(body["task_id"], f"{key}.task_id", frozenset({"value"})).get(
            "value"), f"{key}.task_id.value", empty=False)
    elif "container_id" in body:
        cid = obj(body["container_id"], f"{key}.container_id", frozenset({"value", "parent"}))
        parent_body = obj(cid.get("parent"), f"{key}.container_id.parent",
                          frozenset({"value", "parent"}))
        parent = text(parent_body.get("value"), f"{key}.container_id.parent.value",
                      empty=False)
    else:
        raise V1Error(f"{key}.container_id", "required: the parent container (or task_id)")
    command = parse_command(body.get("command"), f"{key}.command")
    if command.user:
        raise V1Error(f"{key}.command.user", "not supported: the command runs as the task's "
                                             "user")
    argv: tuple[str, ...]
    executable: str | None
    if command.shell:
        if not command.value:
            raise V1Error(f"{key}.command.value", "expected a shell command, got ''")
        argv, executable = ("/bin/sh", "-c", command.value), None
    else:
        if not command.value:
            raise V1Error(f"{key}.command.value", "expected an executable, got ''")
        argv, executable = tuple(command.arguments) or (command.value,), command.value
    timeout = None
    if "timeout" in body:
        timeout = duration(body["timeout"], f"{key}.timeout")
        if timeout <= 0:
            raise V1Error(f"{key}.timeout", "expected a positive duration")
    return ExecRequest(argv=argv, executable=executable,
                       environment=tuple(sorted(command.environment.items())),
                       task_id=task_id, parent_container_id=parent), timeout


def _exit_record(status: int | None, timed_out: bool) -> dict[str, Any]:
    code = os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None
    sig = os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None
    return {"type": "EXIT", "exit": {"status": status, "exit_code": code, "signal": sig,
                                     "timed_out": timed_out}}


async def serve_session(handler: JsonApiHandler, port: AgentOperatorPort, value: Any) -> None:
    """Start the session and stream it on ``handler``'s response until the command ends."""
    try:
        request, timeout = parse_session_call(value)
        session: ExecSessionPort = await port.operator_launch_session(request)
    except V1Error as exc:
        handler.refuse(ApiError(400, exc.field, exc.message))
        return
    except ExecRefused as exc:
        handler.refuse(ApiError(exc.status, exc.field, exc.message))
        return
    handler.set_header("Content-Type", "application/recordio")
    handler.set_header("Message-Content-Type", "application/json")
    stream = RecordStream(handler)
    stream.on_close.append(session.kill)
    handler.hangup = lambda: stream.close("the connection closed")  # kills the command
    timer = None
    timed_out = False
    if timeout is not None:
        def expire() -> None:
            nonlocal timed_out
            timed_out = True
            session.kill()
        timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        async for name, data in session.output():
            stream.send({"type": "DATA", "data": {"type": name,
                                                   "data": base64.b64encode(data).decode()}})
        stream.send(_exit_record(session.status, timed_out))
    finally:
        if timer is not None:
            timer.cancel()
        with contextlib.suppress(Exception):
            stream.on_close.clear()
            stream.close("")
