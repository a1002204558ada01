"""A Mesos v1 HTTP executor written only with the standard library (http.client, json).

Launched by the agent as a custom executor (``ExecutorInfo.command``: ``python
v1_executor.py``); it imports nothing of mesoslite.  It reads Mesos's environment
(``MESOS_AGENT_ENDPOINT``, ``MESOS_FRAMEWORK_ID``, ``MESOS_EXECUTOR_ID``, ...),
SUBSCRIBEs at ``/api/v1/executor`` and, for every LAUNCH, sends TASK_RUNNING (its
``data`` is the Mesos environment it saw, as JSON) and then, unless the task is named
``wait`` or carries ``data``, TASK_FINISHED (a task whose ``data`` is a file path gets
it once that file exists); a KILL answers TASK_KILLED; a MESSAGE is echoed back as
``echo:<data>``; SHUTDOWN ends it.

As a Mesos v1 executor does with checkpointing on, it keeps the tasks and updates the
agent has not acknowledged and, when the agent goes away, SUBSCRIBEs again (backoff up
to ``MESOS_SUBSCRIPTION_BACKOFF_MAX``, for at most ``MESOS_RECOVERY_TIMEOUT``) with them
as ``unacknowledged_tasks``/``unacknowledged_updates``; it prints one line
``subscribe tasks=N updates=M`` per SUBSCRIBE (``subscribed`` once answered),
``update queued STATE`` for an update it could not send, ``acknowledged TASK_ID`` per
ACKNOWLEDGED.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import sys
import threading
import time
import uuid
from typing import Any

ENV = os.environ
HOST, _, PORT = ENV["MESOS_AGENT_ENDPOINT"].rpartition(":")
FRAMEWORK = {"value": ENV["MESOS_FRAMEWORK_ID"]}
EXECUTOR = {"value": ENV["MESOS_EXECUTOR_ID"]}
PATH = "/api/v1/executor"
#: As Mesos's executors do: the agent's token for this executor, sent as a bearer.
TOKEN = ENV.get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", "")
HEADERS = {"Content-Type": "application/json",
           **({"Authorization": f"Bearer {TOKEN}"} if TOKEN else {})}
LOCK = threading.Lock()
#: Launched tasks (by id) and sent updates (by uuid) the agent has not acknowledged.
UNACKED_TASKS: dict[str, Any] = {}
UNACKED_UPDATES: dict[str, Any] = {}


def seconds(value: str) -> float:
    """A Mesos duration such as ``2secs`` or ``900secs``."""
    return float(value.removesuffix("secs"))


def post(body: dict[str, Any]) -> int:
    """A call on its own connection; its status."""
    conn = http.client.HTTPConnection(HOST, int(PORT), timeout=30)
    try:
        conn.request("POST", PATH, json.dumps(body), HEADERS)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def update(task_id: dict[str, str], state: str, data: bytes = b"") -> None:
    """Send a status update (the agent acknowledges it with ACKNOWLEDGED)."""
    status: dict[str, Any] = {"task_id": task_id, "state": state, "source": "SOURCE_EXECUTOR",
                              "uuid": base64.b64encode(uuid.uuid4().bytes).decode(),
                              "timestamp": time.time()}
    if data:
        status["data"] = base64.b64encode(data).decode()
    with LOCK:
        UNACKED_UPDATES[status["uuid"]] = status
    try:
        code = post({"type": "UPDATE", "framework_id": FRAMEWORK, "executor_id": EXECUTOR,
                     "update": {"status": status}})
    except (OSError, http.client.HTTPException):
        # The agent is away: the update goes with the next SUBSCRIBE.
        print(f"update queued {state}", flush=True)
        return
    if code not in (202, 403):  # (403: not subscribed yet, as above)
        raise SystemExit(f"UPDATE answered {code}")


def finish_when(task_id: dict[str, str], path: str) -> None:
    """TASK_FINISHED once ``path`` exists (polled: a test creates it)."""
    while not os.path.exists(path):
        time.sleep(0.05)
    update(task_id, "TASK_FINISHED")


def events(response: http.client.HTTPResponse) -> Any:
    """RecordIO records of the stream."""
    while True:
        line = b""
        while not line.endswith(b"\n"):
            ch = response.read(1)
            if not ch:
                return
            line += ch
        yield json.loads(response.read(int(line)))


def subscribe() -> http.client.HTTPResponse | None:
    """SUBSCRIBE with what is unacknowledged; the open stream (None: refused or away)."""
    with LOCK:
        tasks, updates = list(UNACKED_TASKS.values()), list(UNACKED_UPDATES.values())
    print(f"subscribe tasks={len(tasks)} updates={len(updates)}", flush=True)
    conn = http.client.HTTPConnection(HOST, int(PORT), timeout=120)
    try:
        conn.request("POST", PATH, json.dumps({
            "type": "SUBSCRIBE", "framework_id": FRAMEWORK, "executor_id": EXECUTOR,
            "subscribe": {"unacknowledged_tasks": tasks, "unacknowledged_updates": [
                {"framework_id": FRAMEWORK, "status": u} for u in updates]}}),
            {**HEADERS, "Accept": "application/json"})
        response = conn.getresponse()
    except (OSError, http.client.HTTPException):
        conn.close()
        return None
    if response.status != 200:
        print(f"SUBSCRIBE answered {response.status}: {response.read()!r}", flush=True)
        conn.close()
        return None
    print("subscribed", flush=True)
    return response


def serve(response: http.client.HTTPResponse) -> bool:
    """Handle events until the stream ends; True on SHUTDOWN."""
    seen = {k: v for k, v in ENV.items() if k.startswith("MESOS_")}
    for event in events(response):
        kind = event["type"]
        if kind == "LAUNCH":
            task = event["launch"]["task"]
            with LOCK:
                UNACKED_TASKS[task["task_id"]["value"]] = task
            update(task["task_id"], "TASK_RUNNING", json.dumps(seen).encode())
            if "data" in task:
                path = base64.b64decode(task["data"]).decode()
                threading.Thread(target=finish_when, args=(task["task_id"], path),
                                 daemon=True).start()
            elif task["name"] != "wait":
                update(task["task_id"], "TASK_FINISHED")
        elif kind == "ACKNOWLEDGED":
            with LOCK:
                UNACKED_UPDATES.pop(event["acknowledged"]["uuid"], None)
                UNACKED_TASKS.pop(event["acknowledged"]["task_id"]["value"], None)
            print(f"acknowledged {event['acknowledged']['task_id']['value']}", flush=True)
        elif kind == "KILL":
            update(event["kill"]["task_id"], "TASK_KILLED")
        elif kind == "MESSAGE":
            data = base64.b64decode(event["message"]["data"])
            post({"type": "MESSAGE", "framework_id": FRAMEWORK, "executor_id": EXECUTOR,
                  "message": {"data": base64.b64encode(b"echo:" + data).decode()}})
        elif kind == "SHUTDOWN":
            return True
        elif kind == "ERROR":
            raise SystemExit(f"ERROR: {event['error']['message']}")
    return False


def main() -> None:
    """Subscribe and serve until SHUTDOWN; re-subscribe after an agent restart."""
    response = subscribe()
    if response is None:
        raise SystemExit("SUBSCRIBE failed")
    backoff_max = seconds(ENV.get("MESOS_SUBSCRIPTION_BACKOFF_MAX", "2secs"))
    recovery = seconds(ENV.get("MESOS_RECOVERY_TIMEOUT", "900secs"))
    while True:
        try:
            if serve(response):
                return
        except (OSError, http.client.HTTPException):
            pass
        if ENV.get("MESOS_CHECKPOINT") != "1":
            raise SystemExit("the agent went away")
        deadline, backoff = time.monotonic() + recovery, 0.1
        while (again := subscribe()) is None:
            if time.monotonic() > deadline:
                raise SystemExit("the agent did not come back")
            time.sleep(backoff)
            backoff = min(backoff * 2, backoff_max)
        response = again


if __name__ == "__main__":
    main()
    sys.exit(0)
