#!/usr/bin/env python3
"""shell_tasks_v1: shell-task throughput through the Mesos v1 HTTP scheduler API vs the SDK.

Owns: the comparison of the two ways a framework can drive a cluster.  It starts the
same cluster as ``shell_tasks.py`` (one master and ``--agents`` agents as real
processes) and, in the same run, alternates two frameworks with the same policy
(keep offers, at most ``--parallelism`` tasks in flight, accept with
``refuse_seconds=0``, acknowledge every update explicitly, suppress at the end):

* ``sdk``: ``shell_tasks.py``'s framework on the Python SDK (ZeroMQ + msgpack);
* ``v1``: an HTTP framework (:class:`V1ShellTasks`) on ``POST /api/v1/scheduler``,
  JSON calls on a few keep-alive connections, events read from the RecordIO stream.

It prints ONE JSON object on stdout: ``sdk_tasks_per_s``, ``v1_tasks_per_s`` (medians
over ``--repeat`` runs of each), and ``ratio`` (v1 / sdk, the median of the back-to-back
pairs)::

    python benchmarks/shell_tasks_v1.py [--tasks 1000] [--agents 2] [--parallelism 64]
        [--connections 4] [--repeat 1] [--timeout 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # running from a source checkout
    sys.path.insert(0, str(ROOT))

from bench_support import (
    Cluster,
    check_at_least,
    failure,
    print_report,
    remove_or_keep,
    run_facts,
    say,
    set_progress_tag,
    sigterm_as_interrupt,
)
from shell_tasks import MEM_PER_TASK_MB, agent_resources, run_framework

from mesoslite.api.recordio import Decoder
from mesoslite.resources import Resources

PATH = "/api/v1/scheduler"


class Connection:
    """One keep-alive HTTP/1.1 connection for calls (one request at a time)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, headers: dict[str, str]) -> int:
        """POST a call; the status."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write((f"POST {PATH} HTTP/1.1\r\nHost: {self.host}\r\n{head}"
                           f"Content-Type: application/json\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()


class V1ShellTasks:
    """The shell_tasks policy as a v1 HTTP scheduler."""

    def __init__(self, host: str, port: int, total: int, parallelism: int,
                 per_task: Resources, connections: int) -> None:
        self.host, self.port = host, port
        self.total, self.parallelism, self.per_task = total, parallelism, per_task
        self.pool: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(connections):
            self.pool.put_nowait(Connection(host, port))
        self.framework_id = ""
        self.stream_id = ""
        self.held: dict[str, dict[str, Any]] = {}
        self.left: dict[str, Resources] = {}
        self.launched = self.in_flight = self.ended = 0
        self.finished = 0
        self.problems: list[str] = []
        self.first_offer_at: float | None = None
        self.last_ack_at: float | None = None
        self.done = asyncio.Event()
        self.suppressed = False
        self.pending: set[asyncio.Task[None]] = set()

    def call(self, kind: str, **body: Any) -> None:
        """Send a call in the background (202 expected)."""
        task = asyncio.get_running_loop().create_task(self._call(kind, body))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _call(self, kind: str, body: dict[str, Any]) -> None:
        payload = json.dumps({"type": kind, "framework_id": {"value": self.framework_id},
                              **body}).encode()
        conn = await self.pool.get()
        try:
            status = await conn.post(payload, {"Mesos-Stream-Id": self.stream_id})
        except (OSError, asyncio.IncompleteReadError) as exc:
            conn.close()
            conn = Connection(self.host, self.port)
            self.problems.append(f"{kind}: {exc}")
            return
        finally:
            self.pool.put_nowait(conn)
        if status != 202 and len(self.problems) < 10:
            self.problems.append(f"{kind} answered {status}")

    async def run(self, timeout: float) -> None:
        """Subscribe and run until every task ended (or the timeout)."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        body = json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "", "name": "shell-tasks-v1-benchmark", "checkpoint": True}}}).encode()
        writer.write((f"POST {PATH} HTTP/1.1\r\nHost: {self.host}\r\n"
                      f"Content-Type: application/json\r\nAccept: application/json\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"SUBSCRIBE answered {status!r}")
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "mesos-stream-id":
                self.stream_id = value.strip()
        try:
            await asyncio.wait_for(self._events(reader), timeout)
        except TimeoutError:
            self.problems.append(f"timed out after {timeout}s with {self.ended} ended")
        self.call("TEARDOWN")
        await asyncio.gather(*list(self.pending), return_exceptions=True)
        writer.close()
        while not self.pool.empty():
            self.pool.get_nowait().close()

    async def _events(self, reader: asyncio.StreamReader) -> None:
        decoder = Decoder()
        while not self.done.is_set():
            size = int((await reader.readline()).strip() or b"0", 16)
            if size == 0:
                raise RuntimeError("the event stream ended")
            chunk = await reader.readexactly(size + 2)
            for record in decoder.feed(chunk[:-2]):
                self.on_event(json.loads(record))

    def on_event(self, event: dict[str, Any]) -> None:
        """Handle one event."""
        kind = event["type"]
        if kind == "SUBSCRIBED":
            self.framework_id = event["subscribed"]["framework_id"]["value"]
            say(f"v1 framework {self.framework_id} subscribed")
        elif kind == "OFFERS":
            if self.first_offer_at is None:
                self.first_offer_at = time.perf_counter()
            for offer in event["offers"]["offers"]:
                self.held[offer["id"]["value"]] = offer
                self.left[offer["id"]["value"]] = Resources.from_wire(offer["resources"])
            self.launch()
        elif kind == "RESCIND":
            oid = event["rescind"]["offer_id"]["value"]
            self.held.pop(oid, None)
            self.left.pop(oid, None)
        elif kind == "UPDATE":
            self.on_update(event["update"]["status"])
        elif kind == "ERROR":
            self.problems.append(event["error"]["message"])
            self.done.set()

    def on_update(self, status: dict[str, Any]) -> None:
        """Acknowledge; a terminal state frees a slot."""
        if "uuid" in status:
            self.call("ACKNOWLEDGE", acknowledge={"agent_id": status["agent_id"],
                                                  "task_id": status["task_id"],
                                                  "uuid": status["uuid"]})
        state = status["state"]
        if state not in ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST",
                         "TASK_ERROR", "TASK_DROPPED", "TASK_GONE"):
            return
        self.ended += 1
        self.in_flight -= 1
        if state == "TASK_FINISHED":
            self.finished += 1
        elif len(self.problems) < 10:
            self.problems.append(f"{status['task_id']['value']}: {state}")
        if self.ended >= self.total:
            self.last_ack_at = time.perf_counter()
            self.done.set()
            return
        self.launch()

    def launch(self) -> None:
        """Launch what the parallelism allows, round-robin over the held offers."""
        budget = min(self.parallelism - self.in_flight, self.total - self.launched)
        plans: dict[str, list[dict[str, Any]]] = {oid: [] for oid in self.held}
        progressed = True
        while budget > 0 and progressed:
            progressed = False
            for oid, offer in self.held.items():
                if budget <= 0 or not self.left[oid].contains(self.per_task):
                    continue
                self.left[oid] = self.left[oid] - self.per_task
                task_id = f"true-{self.launched}"
                self.launched += 1
                plans[oid].append({
                    "name": task_id, "task_id": {"value": task_id},
                    "agent_id": offer["agent_id"], "command": {"value": "true"},
                    "resources": self.per_task.to_wire()})
                budget -= 1
                progressed = True
        for oid, tasks in plans.items():
            if tasks:
                del self.held[oid]
                del self.left[oid]
                self.in_flight += len(tasks)
                self.call("ACCEPT", accept={
                    "offer_ids": [{"value": oid}], "filters": {"refuse_seconds": 0},
                    "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}]})
        if self.launched >= self.total and not self.suppressed:
            self.suppressed = True
            self.call("SUPPRESS")
            if self.held:
                self.call("DECLINE", decline={"offer_ids": [{"value": o} for o in self.held],
                                              "filters": {"refuse_seconds": 60}})
            self.held.clear()
            self.left.clear()


async def run_v1(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    """One v1 run: its rate and problems."""
    per_task = Resources.from_dict({"cpus": args.cpus_per_task, "mem": MEM_PER_TASK_MB})
    sched = V1ShellTasks("127.0.0.1", cluster.http_port, args.tasks, args.parallelism,
                         per_task, args.connections)
    await sched.run(args.timeout)
    seconds = ((sched.last_ack_at - sched.first_offer_at)
               if sched.last_ack_at is not None and sched.first_offer_at is not None
               else float("nan"))
    return {"rate": args.tasks / seconds if seconds > 0 else 0.0, "seconds": seconds,
            "finished": sched.finished, "problems": sched.problems}


async def run_sdk(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    """One SDK run (shell_tasks.py's framework)."""
    sched = await run_framework(cluster.master_address, args)
    seconds = ((sched.last_ack_at - sched.first_offer_at)
               if sched.last_ack_at is not None and sched.first_offer_at is not None
               else float("nan"))
    return {"rate": args.tasks / seconds if seconds > 0 else 0.0, "seconds": seconds,
            "finished": sched.by_state.get("TASK_FINISHED", 0), "problems": sched.problems}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse and check the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per run (default 1000)")
    parser.add_argument("--agents", type=int, default=2, help="agents (default 2)")
    parser.add_argument("--parallelism", type=int, default=64,
                        help="max tasks in flight (default 64)")
    parser.add_argument("--connections", type=int, default=4,
                        help="keep-alive connections of the v1 framework's calls (default 4)")
    parser.add_argument("--cpus-per-task", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (default 1)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    check_at_least(parser, args, ("tasks", "agents", "parallelism", "repeat", "connections"))
    args.checkpoint = True
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the JSON result; return the exit status."""
    args = parse_args(argv)
    set_progress_tag("shell_tasks_v1")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="mesoslite-shell-tasks-v1-"))
    cluster = Cluster(root, args.agents, agent_resources(args), args.log_level)
    restore = sigterm_as_interrupt()
    runs: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        cluster.start()
        for i in range(args.repeat):
            sdk = asyncio.run(run_sdk(cluster, args))
            say(f"run {i + 1}: sdk {sdk['rate']:.0f} tasks/s")
            v1 = asyncio.run(run_v1(cluster, args))
            say(f"run {i + 1}: v1 {v1['rate']:.0f} tasks/s")
            problems += sdk["problems"] + v1["problems"]
            runs.append({"sdk_tasks_per_s": round(sdk["rate"], 1),
                         "v1_tasks_per_s": round(v1["rate"], 1),
                         "ratio": round(v1["rate"] / sdk["rate"], 3) if sdk["rate"] else 0.0,
                         "sdk_finished": sdk["finished"], "v1_finished": v1["finished"]})
    except KeyboardInterrupt:
        cluster.stop()
        return 130
    except Exception as exc:  # noqa: BLE001 - reported, then cleaned up
        problems.append(failure(exc))
    finally:
        restore()
        if cluster.master is not None:
            cluster.stop()
        remove_or_keep(root, args.keep)
    if not runs:
        print_report({"error": problems})
        return 1
    all_finished = all(r["sdk_finished"] == r["v1_finished"] == args.tasks for r in runs)
    facts = run_facts(started)
    print_report({
        "benchmark": "shell_tasks_v1", "tasks": args.tasks, "agents": args.agents,
        "parallelism": args.parallelism, "connections": args.connections,
        "repeat": args.repeat,
        "sdk_tasks_per_s": statistics.median(r["sdk_tasks_per_s"] for r in runs),
        "v1_tasks_per_s": statistics.median(r["v1_tasks_per_s"] for r in runs),
        "ratio": statistics.median(r["ratio"] for r in runs),
        "all_finished": all_finished and not problems, "problems": problems[:10],
        "runs": runs, "machine": facts.pop("machine"), **facts})
    return 0 if all_finished else 1


if __name__ == "__main__":
    sys.exit(main())
