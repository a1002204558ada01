"""A Mesos v1 HTTP executor written only with the standard library (http.client, json).

Launched by the agent as a custom executor (``ExecutorInfo.command``: ``python
v1_executor.py``); it imports nothing of mesoslite.  It reads Mesos's environment
(``MESOS_AGENT_ENDPOINT``, ``MESOS_FRAMEWORK_ID``, ``MESOS_EXECUTOR_ID``, ...),
SUBSCRIBEs at ``/api/v1/executor`` and, for every LAUNCH, sends TASK_RUNNING (its
``data`` is the Mesos environment it saw, as JSON) and then, unless the task is named
``wait``, TASK_FINISHED; a KILL answers TASK_KILLED; a MESSAGE is echoed back as
``echo:<data>``; SHUTDOWN ends it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import sys
import time
import uuid
from typing import Any

ENV = os.environ
HOST, _, PORT = ENV["MESOS_AGENT_ENDPOINT"].rpartition(":")
FRAMEWORK = {"value": ENV["MESOS_FRAMEWORK_ID"]}
EXECUTOR = {"value": ENV["MESOS_EXECUTOR_ID"]}
PATH = "/api/v1/executor"


def post(body: dict[str, Any]) -> int:
    """A call on its own connection; its status."""
    conn = http.client.HTTPConnection(HOST, int(PORT), timeout=30)
    try:
        conn.request("POST", PATH, json.dumps(body), {"Content-Type": "application/json"})
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
    code = post({"type": "UPDATE", "framework_id": FRAMEWORK, "executor_id": EXECUTOR,
                 "update": {"status": status}})
    if code != 202:
        raise SystemExit(f"UPDATE answered {code}")


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


def main() -> None:
    """Subscribe and serve until SHUTDOWN."""
    conn = http.client.HTTPConnection(HOST, int(PORT), timeout=120)
    conn.request("POST", PATH, json.dumps({
        "type": "SUBSCRIBE", "framework_id": FRAMEWORK, "executor_id": EXECUTOR,
        "subscribe": {"unacknowledged_tasks": [], "unacknowledged_updates": []}}),
        {"Content-Type": "application/json", "Accept": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise SystemExit(f"SUBSCRIBE answered {response.status}: {response.read()!r}")
    seen = {k: v for k, v in ENV.items() if k.startswith("MESOS_")}
    for event in events(response):
        kind = event["type"]
        if kind == "LAUNCH":
            task = event["launch"]["task"]
            update(task["task_id"], "TASK_RUNNING", json.dumps(seen).encode())
            if task["name"] != "wait":
                update(task["task_id"], "TASK_FINISHED")
        elif kind == "KILL":
            update(event["kill"]["task_id"], "TASK_KILLED")
        elif kind == "MESSAGE":
            data = base64.b64decode(event["message"]["data"])
            post({"type": "MESSAGE", "framework_id": FRAMEWORK, "executor_id": EXECUTOR,
                  "message": {"data": base64.b64encode(b"echo:" + data).decode()}})
        elif kind == "SHUTDOWN":
            return
        elif kind == "ERROR":
            raise SystemExit(f"ERROR: {event['error']['message']}")


if __name__ == "__main__":
    main()
    sys.exit(0)
