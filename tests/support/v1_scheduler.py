"""A Mesos v1 HTTP scheduler written only with the standard library (http.client, json).

It imports nothing of mesoslite: it is what a framework author in any language would
write against Mesos's docs.  Run as ``python v1_scheduler.py host:port[,host:port...]``;
it prints one JSON line per milestone on stdout, for the test that runs it:

1. SUBSCRIBE at any of the masters, following 307 ``Location: //host:port/...`` to the
   leader (and retrying on 503 or a refused connection);
2. launch ``done-1`` (``echo``) and ``long-1`` (``sleep``) on the first offer, decline the
   rest; acknowledge every update that carries a uuid;
3. once ``done-1`` finished and ``long-1`` runs: explicit RECONCILE of ``long-1``;
4. when the stream ends (the leader died): SUBSCRIBE again with its framework id, wherever
   the leader now is; implicit RECONCILE until ``long-1`` is reported running;
5. KILL ``long-1`` (without agent_id), wait for TASK_KILLED, TEARDOWN, exit 0.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from typing import Any

PATH = "/api/v1/scheduler"
DEADLINE = time.monotonic() + 240


def say(event: str, **fields: Any) -> None:
    """One milestone line."""
    print(json.dumps({"event": event, **fields}), flush=True)


def split(address: str) -> tuple[str, int]:
    """``host:port`` or ``//host:port/path`` as (host, port)."""
    address = address.removeprefix("http:").removeprefix("//").split("/", 1)[0]
    host, _, port = address.rpartition(":")
    return host, int(port)


class Scheduler:
    """The scheduler's state: where the leader is, the stream, the framework id."""

    def __init__(self, masters: list[str]) -> None:
        self.masters = masters
        self.leader = masters[0]
        self.framework_id = ""
        self.stream_id = ""
        self.response: http.client.HTTPResponse | None = None
        self.conn: http.client.HTTPConnection | None = None
        self.tasks: dict[str, str] = {}
        self.launched = False

    def subscribe(self) -> None:
        """SUBSCRIBE somewhere, following redirects, until a stream is open."""
        info: dict[str, Any] = {"user": "root", "name": "stdlib-v1", "failover_timeout": 300.0,
                                "capabilities": [{"type": "MULTI_ROLE"}], "roles": ["*"]}
        if self.framework_id:
            info["id"] = {"value": self.framework_id}
        body = json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": info}})
        candidates = [self.leader, *self.masters]
        hops = 0
        while time.monotonic() < DEADLINE:
            target = candidates[hops % len(candidates)]
            hops += 1
            conn = http.client.HTTPConnection(*split(target), timeout=60)
            try:
                conn.request("POST", PATH, body, {"Content-Type": "application/json",
                                                  "Accept": "application/json"})
                response = conn.getresponse()
            except OSError:
                conn.close()
                time.sleep(0.5)
                continue
            if response.status == 307:
                location = response.getheader("Location", "")
                response.read()
                conn.close()
                say("redirected", frm=target, to=location)
                candidates.insert(hops, location)
                continue
            if response.status != 200:
                response.read()
                conn.close()
                time.sleep(0.5)
                continue
            host, port = split(target)
            self.leader, self.conn, self.response = f"{host}:{port}", conn, response
            self.stream_id = response.getheader("Mesos-Stream-Id", "")
            return
        raise SystemExit("no leading master within the deadline")

    def next_event(self) -> dict[str, Any] | None:
        """The next RecordIO record, None when the stream ended."""
        assert self.response is not None
        try:
            line = b""
            while not line.endswith(b"\n"):
                ch = self.response.read(1)
                if not ch:
                    return None
                line += ch
            size = int(line)
            data = self.response.read(size)
            return json.loads(data) if len(data) == size else None
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            return None

    def call(self, kind: str, **body: Any) -> int:
        """A non-SUBSCRIBE call on its own connection; the status (202 expected)."""
        payload = {"type": kind, "framework_id": {"value": self.framework_id}, **body}
        conn = http.client.HTTPConnection(*split(self.leader), timeout=30)
        try:
            conn.request("POST", PATH, json.dumps(payload),
                         {"Content-Type": "application/json", "Mesos-Stream-Id": self.stream_id})
            response = conn.getresponse()
            response.read()
            return response.status
        except OSError:
            return 0
        finally:
            conn.close()

    def on_offers(self, offers: list[dict[str, Any]]) -> None:
        """Launch the two tasks on the first offer; decline everything else."""
        for offer in offers:
            if self.launched:
                self.call("DECLINE", decline={"offer_ids": [offer["id"]],
                                              "filters": {"refuse_seconds": 1}})
                continue
            self.launched = True
            agent = offer["agent_id"]

            def task(task_id: str, command: str, agent: Any = agent) -> dict[str, Any]:
                return {"name": task_id, "task_id": {"value": task_id}, "agent_id": agent,
                        "command": {"shell": True, "value": command},
                        "resources": [
                            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]}

            status = self.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
                {"type": "LAUNCH", "launch": {"task_infos": [
                    task("done-1", "echo hello from v1"), task("long-1", "sleep 600")]}}]})
            say("launched", status=status, agent_id=agent["value"])

    def on_update(self, status: dict[str, Any]) -> str:
        """Acknowledge; remember the state; return the task id."""
        task_id = status["task_id"]["value"]
        self.tasks[task_id] = status["state"]
        if "uuid" in status:
            code = self.call("ACKNOWLEDGE", acknowledge={
                "agent_id": status["agent_id"], "task_id": status["task_id"],
                "uuid": status["uuid"]})
            if code != 202:
                say("ack-refused", status=code)
        say("update", task_id=task_id, state=status["state"],
            reason=status.get("reason", ""), source=status.get("source", ""))
        return task_id


def run(masters: list[str]) -> None:
    """The scenario of the module docstring."""
    sched = Scheduler(masters)
    sched.subscribe()
    phase = "start"
    while time.monotonic() < DEADLINE:
        event = sched.next_event()
        if event is None:
            say("stream-ended", phase=phase)
            sched.subscribe()
            continue
        kind = event["type"]
        if kind == "SUBSCRIBED":
            sched.framework_id = event["subscribed"]["framework_id"]["value"]
            say("subscribed", framework_id=sched.framework_id, master=sched.leader,
                stream_id=sched.stream_id, heartbeat=event["subscribed"].get(
                    "heartbeat_interval_seconds"))
            if phase == "reconciled":
                phase = "failed-over"
                sched.call("RECONCILE", reconcile={"tasks": []})
        elif kind == "OFFERS":
            sched.on_offers(event["offers"]["offers"])
        elif kind == "UPDATE":
            status = event["update"]["status"]
            task_id = sched.on_update(status)
            reconciliation = status.get("reason") == "REASON_RECONCILIATION"
            if phase == "start" and sched.tasks.get("done-1") == "TASK_FINISHED" \
                    and sched.tasks.get("long-1") == "TASK_RUNNING":
                phase = "reconciling"
                sched.call("RECONCILE", reconcile={"tasks": [{"task_id": {"value": "long-1"}}]})
            elif phase == "reconciling" and reconciliation and task_id == "long-1":
                phase = "reconciled"
                say("reconciled", state=status["state"])
            elif phase == "failed-over" and reconciliation and task_id == "long-1":
                if status["state"] == "TASK_RUNNING":
                    phase = "killing"
                    say("reconciled-after-failover", state=status["state"],
                        master=sched.leader)
                    sched.call("KILL", kill={"task_id": {"value": "long-1"}})
            elif phase == "killing" and task_id == "long-1" \
                    and status["state"] == "TASK_KILLED":
                say("killed")
                say("teardown", status=sched.call("TEARDOWN"))
                return
        elif kind == "HEARTBEAT":
            if phase == "failed-over":
                sched.call("RECONCILE", reconcile={"tasks": []})
        elif kind == "ERROR":
            say("error", message=event["error"]["message"])
            raise SystemExit(2)
    raise SystemExit("the scenario did not finish within the deadline")


if __name__ == "__main__":
    run(sys.argv[1].split(","))
