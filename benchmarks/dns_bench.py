#!/usr/bin/env python3
"""dns_bench: how fast ``mesoslite dns`` answers, and how soon a running task is resolvable.

Owns: the DNS benchmark.  It starts a real master and agent (``tests/support``'s
ProcCluster, processes on loopback), ``mesoslite dns`` following the master, and a
framework in this process (scheduler SDK) that launches ``--tasks`` tasks one after the
other, each with its own name.  For each task it asks the DNS server over UDP every
millisecond until the name resolves, and after killing it until the name is gone:

* ``running_to_resolvable_ms``: from the task's TASK_RUNNING (the status's own timestamp,
  set on the agent) to the first answer that has the address (p50, p99, max);
* ``framework_told_to_resolvable_ms``: from the moment the framework (in this process)
  got that TASK_RUNNING to the first answer with the address: what the DNS path adds to
  the master's own delivery (negative: DNS knew first);
* ``ended_to_gone_ms``: from TASK_KILLED (its timestamp) to the first NXDOMAIN;
* ``baseline_mesos_dns_poll_s``: Mesos-DNS reads the master's ``/state`` every
  ``refreshSeconds`` (60 s by default), so a new task waits 30 s on average and up to 60 s
  before it resolves: ``speedup_p50`` is 30 s over our p50 (the stated baseline, not
  measured here: Mesos-DNS does not run on this machine).

Then it measures UDP answers per second for ``--seconds`` with one client keeping
``--window`` queries in flight: ``udp_answers_per_s_repeated`` asks one name over and
over (the reply cache serves it), ``udp_answers_per_s_distinct`` asks a different name
every time (answered NXDOMAIN with the SOA), so that each one is parsed and answered in
full.  ``baseline_echo_answers_per_s`` is the same client against an asyncio UDP server
in the same run that sends a fixed reply without reading the query (the floor cost of a
Python UDP server on this machine); ``ratio_*`` divide by it.  The three are measured in
turn ``--rounds`` times and each median is reported (the machine's load varies).

It prints ONE JSON object on stdout (progress on stderr)::

    python benchmarks/dns_bench.py [--tasks 30] [--seconds 3] [--window 64] [--rounds 3]

(It is not called ``dns.py``: a script of that name would shadow dnspython's ``dns``
package for itself and for mypy, which reads ``benchmarks/`` as a module path.)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import attrs
import dns.message
import dns.rcode

from mesoslite.protocol import TaskState
from tests.support.cluster_procs import ProcCluster
from tests.support.frameworks import RecordingScheduler, running_framework, shell_task
from tests.support.procs import Proc, mesoslite

MESOS_DNS_REFRESH_S = 60.0

_ECHO = """
import asyncio, sys
class P(asyncio.DatagramProtocol):
    def connection_made(self, t): self.t = t
    def datagram_received(self, d, a): self.t.sendto(d[:2] + REPLY, a)
async def main():
    loop = asyncio.get_running_loop()
    t, _ = await loop.create_datagram_endpoint(P, local_addr=("127.0.0.1", 0))
    print(t.get_extra_info("sockname")[1], flush=True)
    await asyncio.Event().wait()
REPLY = bytes.fromhex(sys.argv[1])
asyncio.run(main())
"""


def say(text: str) -> None:
    """Progress on stderr."""
    print(f"[dns] {text}", file=sys.stderr, flush=True)


def ask(sock: socket.socket, port: int, name: str) -> str:
    """The rcode of an A query for ``name`` ("TIMEOUT" after 0.5 s), NOERROR only with data."""
    query = dns.message.make_query(name, "A")
    sock.sendto(query.to_wire(), ("127.0.0.1", port))
    sock.settimeout(0.5)
    try:
        reply = dns.message.from_wire(sock.recv(65535))
    except TimeoutError:
        return "TIMEOUT"
    if reply.rcode() == dns.rcode.NOERROR and not reply.answer:
        return "NODATA"
    return dns.rcode.to_text(reply.rcode())


def wait_answer(sock: socket.socket, port: int, name: str, want: str,
                timeout: float = 30.0) -> float:
    """Ask every millisecond until the rcode is ``want``; the wall-clock time it was."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ask(sock, port, name) == want:
            return time.time()
        time.sleep(0.001)
    raise TimeoutError(f"{name} did not become {want} within {timeout} s")


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p99 and max in milliseconds."""
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered) * 1000, 2), "p99": round(p99 * 1000, 2),
            "max": round(ordered[-1] * 1000, 2)}


def follow_tasks(cluster: ProcCluster, port: int, count: int) -> dict[str, Any]:
    """Launch and kill ``count`` tasks one by one; time when DNS follows each."""
    assert cluster.master is not None
    agent_id = cluster.agents[0].agent_id
    scheduler = RecordingScheduler()
    to_resolvable: list[float] = []
    to_gone: list[float] = []
    seen_by_framework: list[float] = []
    with running_framework(cluster.master.address, scheduler, "bench") as driver, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(count):
            task_id, name = f"svc-{i}", f"svc-{i}.bench.mesos"
            offer = scheduler.take_held(agent_id)
            task = shell_task(task_id, agent_id, "cpus:0.1;mem:16", "sleep 600")
            driver.launch_tasks([offer.id], [attrs.evolve(task, name=f"svc-{i}")])
            running = scheduler.wait_state(task_id, TaskState.TASK_RUNNING)
            resolvable = wait_answer(sock, port, name, "NOERROR")
            to_resolvable.append(resolvable - running.timestamp)
            first = scheduler.first(task_id, TaskState.TASK_RUNNING)
            assert first is not None
            seen_by_framework.append(time.monotonic() - (time.time() - resolvable) - first[0])
            driver.kill_task(task_id)
            killed = scheduler.wait_state(task_id, TaskState.TASK_KILLED)
            to_gone.append(wait_answer(sock, port, name, "NXDOMAIN") - killed.timestamp)
            say(f"task {i + 1}/{count}: resolvable after {to_resolvable[-1] * 1000:.1f} ms, "
                f"gone after {to_gone[-1] * 1000:.1f} ms")
    return {"running_to_resolvable_ms": percentiles(to_resolvable),
            "framework_told_to_resolvable_ms": percentiles(seen_by_framework),
            "ended_to_gone_ms": percentiles(to_gone)}


def answers_per_second(port: int, queries: list[bytes], seconds: float, window: int) -> float:
    """Replies per second with ``window`` queries in flight (lost ones are re-sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sock.settimeout(0.2)
        answered = 0
        index = 0
        started = time.monotonic()
        end = started + seconds
        in_flight = 0
        while time.monotonic() < end:
            while in_flight < window:
                sock.send(queries[index % len(queries)])
                index += 1
                in_flight += 1
            try:
                sock.recv(65535)
                answered += 1
                in_flight -= 1
            except TimeoutError:
                in_flight = 0  # dropped by a full buffer: send a fresh window
        return answered / (time.monotonic() - started)


def distinct_queries(count: int) -> list[bytes]:
    """``count`` queries, each for another name (NXDOMAIN with the SOA): no cache hit."""
    out = []
    for i in range(count):
        query = dns.message.make_query(f"q{i}-{random.randrange(10**6)}.bench.mesos", "A")
        out.append(query.to_wire())
    return out


def throughput(port: int, seconds: float, window: int, rounds: int) -> dict[str, Any]:
    """Answers per second: ours (repeated, distinct) and the echo server's, interleaved.

    The three are measured in turn ``rounds`` times and the median of each kept, so that
    a load spike of the machine touches all three alike.
    """
    repeated = [dns.message.make_query("leader.mesos", "A").to_wire()]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(repeated[0], ("127.0.0.1", port))
        sock.settimeout(2)
        reply = sock.recv(65535)
    echo = subprocess.Popen([sys.executable, "-c", _ECHO, reply[2:].hex()],
                            stdout=subprocess.PIPE, text=True)
    samples: dict[str, list[float]] = {"repeated": [], "distinct": [], "echo": []}
    try:
        assert echo.stdout is not None
        echo_port = int(echo.stdout.readline())
        for _ in range(rounds):
            samples["repeated"].append(answers_per_second(port, repeated, seconds, window))
            samples["distinct"].append(answers_per_second(port, distinct_queries(20000),
                                                          seconds, window))
            samples["echo"].append(answers_per_second(echo_port, repeated, seconds, window))
    finally:
        echo.terminate()
        echo.wait(10)
    median = {kind: statistics.median(values) for kind, values in samples.items()}
    return {"udp_answers_per_s_repeated": round(median["repeated"]),
            "udp_answers_per_s_distinct": round(median["distinct"]),
            "baseline_echo_answers_per_s": round(median["echo"]),
            "ratio_repeated_vs_echo": round(median["repeated"] / median["echo"], 3),
            "ratio_distinct_vs_echo": round(median["distinct"] / median["echo"], 3),
            "rounds": rounds}


def main() -> int:
    """Run the benchmark; print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-dns-"))
    report: dict[str, Any] = {"benchmark": "dns", "tasks": args.tasks, "cpus": os.cpu_count()}
    with ProcCluster(root) as cluster:
        master = cluster.start_master()
        cluster.add_agent("cpus:4;mem:4096")
        proc = Proc(mesoslite("dns", "--master", f"127.0.0.1:{master.http_port}", "--port",
                              "0", "--http_port", "0"), root / "dns.log")
        try:
            match = re.search(r"on 127\.0\.0\.1:(\d+)", proc.wait_output("mesoslite dns:"))
            assert match, proc.output()
            port = int(match.group(1))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                wait_answer(sock, port, "leader.mesos", "NOERROR")
            report.update(follow_tasks(cluster, port, args.tasks))
            say("measuring UDP answers per second")
            report.update(throughput(port, args.seconds, args.window, args.rounds))
        finally:
            proc.stop()
    report["baseline_mesos_dns_poll_s"] = {"refresh": MESOS_DNS_REFRESH_S,
                                           "mean_wait": MESOS_DNS_REFRESH_S / 2,
                                           "worst_wait": MESOS_DNS_REFRESH_S}
    p50 = report["running_to_resolvable_ms"]["p50"] / 1000
    report["speedup_p50_vs_mesos_dns_mean"] = round(MESOS_DNS_REFRESH_S / 2 / max(p50, 1e-4))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
