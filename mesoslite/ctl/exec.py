"""``mesoslite ctl exec TASK -- CMD ARGS...``: run a command in a running task's container.

Owns :func:`cmd_exec`, its parser (:func:`add_exec_parser`) and :func:`exit_code`.  It
finds the task's agent in the master's ``/state`` (an unknown task, or one that is not
``TASK_RUNNING``, is an error naming it), then posts the agent v1 call
``LAUNCH_NESTED_CONTAINER_SESSION`` naming the task (see
:mod:`mesoslite.api.exec_session` for the call and its stream) with credentials from
``MESOSLITE_PRINCIPAL``/``MESOSLITE_SECRET`` when set.  The command's stdout and stderr
are copied to ours as they arrive; ctl exits with the command's exit status (128+N when
a signal N ended it, as a shell reports it; 1 when the agent could not tell).
``--timeout`` kills the command after that many seconds (the agent does it).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import http.client
import json
import sys
import urllib.parse
from typing import IO, Any, TextIO

from mesoslite.api.recordio import Decoder, RecordIOError
from mesoslite.ctl.cluster import _agent_base, _all_tasks, resolve_master
from mesoslite.ctl.common import CtlError, basic_authorization, get_json, guarded

#: Bytes read from the agent's stream at a time.
READ_CHUNK = 64 * 1024


def exit_code(record: dict[str, Any]) -> int:
    """Our exit status from the stream's ``EXIT`` record's ``exit`` object."""
    code, sig = record.get("exit_code"), record.get("signal")
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    if isinstance(sig, int) and not isinstance(sig, bool):
        return 128 + sig
    return 1


def session_call(task_id: str, argv: list[str], timeout: float | None) -> dict[str, Any]:
    """The agent v1 call that runs ``argv`` (no shell) in ``task_id``'s container."""
    body: dict[str, Any] = {"task_id": {"value": task_id},
                            "command": {"shell": False, "value": argv[0], "arguments": argv}}
    if timeout is not None:
        body["timeout"] = {"nanoseconds": int(timeout * 1e9)}
    return {"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": body}


def _running_task_agent(master: str, task_id: str) -> str:
    state = get_json(f"{master}/state")
    matches = [t for t in _all_tasks(state) if t.get("id") == task_id]
    if not matches:
        raise CtlError(f"task {task_id} is not known to the master")
    task = matches[-1]
    if task.get("state") != "TASK_RUNNING":
        raise CtlError(f"task {task_id} is {task.get('state')}: exec needs a running task")
    return _agent_base(state, task["slave_id"])


def _open(agent: str, call: dict[str, Any]) -> http.client.HTTPResponse:
    url = urllib.parse.urlsplit(agent)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 5051)
    headers = {"Host": url.netloc, "Content-Type": "application/json",
               "Accept": "application/recordio"}
    authorization = basic_authorization()
    if authorization:
        headers["Authorization"] = authorization
    try:
        conn.request("POST", "/api/v1", body=json.dumps(call).encode(), headers=headers)
        return conn.getresponse()
    except OSError as exc:
        raise CtlError(f"{agent}: cannot connect ({exc})") from None


def _refusal(agent: str, response: http.client.HTTPResponse) -> CtlError:
    raw = response.read()
    try:
        message = json.loads(raw)["message"]
    except (ValueError, KeyError, TypeError):
        message = raw.decode("utf-8", "replace")[:300]
    return CtlError(f"{agent}/api/v1: HTTP {response.status}: {message}")


def _copy(response: http.client.HTTPResponse, out: IO[bytes], err: IO[bytes]) -> int:
    decoder = Decoder()
    while chunk := response.read1(READ_CHUNK):
        try:
            records = decoder.feed(chunk)
        except RecordIOError as exc:
            raise CtlError(f"the agent's stream is not RecordIO: {exc}") from None
        for raw in records:
            record = json.loads(raw)
            if record.get("type") == "EXIT":
                return exit_code(record.get("exit") or {})
            data = record.get("data") or {}
            try:
                payload = base64.b64decode(data.get("data", ""), validate=True)
            except (binascii.Error, ValueError):
                raise CtlError("the agent sent output that is not base64") from None
            target = err if data.get("type") == "STDERR" else out
            target.write(payload)
            target.flush()
    raise CtlError("the agent's stream ended before the command's exit status")


def cmd_exec(master: str, task_id: str, argv: list[str], timeout: float | None,
             out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run ``argv`` in the running task ``task_id``; the command's exit status."""
    if not argv:
        raise CtlError("exec: give the command after the task id: ctl exec TASK -- CMD ...")
    agent = _running_task_agent(master, task_id)
    response = _open(agent, session_call(task_id, argv, timeout))
    if response.status != 200:
        raise _refusal(agent, response)
    out.flush()
    return _copy(response, getattr(out, "buffer", sys.stdout.buffer),
                 getattr(err, "buffer", sys.stderr.buffer))


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def add_exec_parser(ctl: Any) -> None:
    """Add ``exec`` to the ctl sub-parsers ``ctl``."""
    e = ctl.add_parser("exec", help="run a command in a running task's container "
                                    "(ctl exec TASK -- CMD ARGS...)")
    e.add_argument("--timeout", type=_positive, default=None,
                   help="kill the command after this many seconds (default: no limit)")
    e.add_argument("words", nargs=argparse.REMAINDER, metavar="TASK [--timeout S] -- CMD ARGS")


def split_words(words: list[str], timeout: float | None) -> tuple[str, list[str], float | None]:
    """``TASK [--timeout S] -- CMD ARGS...`` -> (task id, command, timeout).

    Options may come before or after the task id, never after ``--`` (all of that is the
    command); without ``--`` everything after the task id is the command.
    """
    if not words or words[0] == "--":
        raise CtlError("exec: give a task id: ctl exec TASK -- CMD ARGS...")
    task_id, rest = words[0], words[1:]
    if "--" not in rest:
        return task_id, rest, timeout
    options, command = rest[:rest.index("--")], rest[rest.index("--") + 1:]
    while options:
        word = options.pop(0)
        value = word.partition("=")[2] if word.startswith("--timeout=") else None
        if word == "--timeout" and options:
            value = options.pop(0)
        if value is None:
            raise CtlError(f"exec: unexpected {word!r} before --")
        try:
            timeout = _positive(value)
        except argparse.ArgumentTypeError as exc:
            raise CtlError(f"exec: --timeout: {exc}") from None
    return task_id, command, timeout


def run_exec_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run ``ctl exec``: the command's exit status; 1 with a message when it cannot run."""
    return guarded(lambda: _run_exec_command(args, out), out)


def _run_exec_command(args: argparse.Namespace, out: TextIO) -> int:
    task_id, command, timeout = split_words(list(args.words), args.timeout)
    return cmd_exec(resolve_master(args.master), task_id, command, timeout, out)
