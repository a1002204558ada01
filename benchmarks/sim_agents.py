#!/usr/bin/env python3
"""sim_agents: N simulated agents on one asyncio loop, speaking the real protocol.

Owns: the agent simulator of ``benchmarks/failover.py --simulated-agents N``.
Each simulated agent has its own :class:`~mesoslite.transport.DealerClient`
(its own ZeroMQ identity and connection to the leading master) and:

* registers (``RegisterAgent``, hostname ``sim-<i>``, ``cpus:4;mem:4096;
  ports:[31000-31010]``) and keeps the id of ``AgentRegistered``;
* answers every ``Ping`` with ``Pong(agent_id)``;
* on ``RunTask`` records the task as RUNNING and sends a RUNNING
  ``StatusUpdate`` (source executor), resent every couple of seconds until
  its ``StatusUpdateAcknowledgement`` arrives;
* follows the leader through one ZooKeeper detector shared by all agents: on
  a change every client moves to the new endpoint and sends
  ``ReregisterAgent`` (with its tasks) at once, as a real agent does
  (``mesoslite.agent.master_link``);
* resends (re)registration until answered (a message lost while no master
  was listening, or a ``LeaderRedirect`` from a master not yet elected) with
  the real agent's randomised capped backoff: retry ``n`` after a uniform
  delay in ``[0.05, min(factor * 2**n, 60)]`` seconds, factor 1 s;
* ignores anything else.  No executor or process is started.

::

    python benchmarks/sim_agents.py (--zk zk://127.0.0.1:2181/mesoslite | --master tcp://H:P) \
        --count 1000 [--first 0] [--churn 0] [--update-retry 2] [--ready-file F] \
        [--source 127.0.0.2] [--log-level INFO]

``--master`` names one master instead of following the leader in ZooKeeper.
``--source`` is the loopback address the agents' connections come from (each
source address has ~28,000 ephemeral ports: spread big runs over several).
Each agent needs about two open files (its connection and ZeroMQ's own), and
the process raises its limit as far as it may: where the hard limit is 20,000,
one process holds up to ~9,900 agents; run several with ``--first`` apart.
``--churn N`` sends, once registered, N updates a second over random running
tasks: RUNNING again with the health flipped (each a change the master and the
framework pass on).  ``--ready-file`` is written once every agent is
registered.  SIGTERM or Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import random
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mesoslite.coordination import create_detector
from mesoslite.protocol import (
    AgentInfo,
    AgentRegistered,
    AgentReregistered,
    FrameworkInfo,
    Ping,
    Pong,
    RegisterAgent,
    ReregisterAgent,
    RunTask,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    Task,
    TaskState,
    TaskStatus,
)
from mesoslite.protocol.states import Source
from mesoslite.resources import Resources
from mesoslite.transport import DealerClient

log = logging.getLogger("sim_agents")

RESOURCES = "cpus:4;mem:4096;ports:[31000-31010]"
#: The agent's registration_backoff_factor and _max (Mesos defaults), seconds.
BACKOFF_FACTOR_S = 1.0
BACKOFF_MAX_S = 60.0
#: Seconds between resends of unacknowledged status updates.
UPDATE_RETRY_S = 2.0


class SimAgent:
    """One simulated agent: a DealerClient and what the master told it."""

    def __init__(self, index: int, resources: Resources) -> None:
        """Not connected yet."""
        self.index = index
        self.info = AgentInfo(hostname=f"sim-{index}", resources=resources,
                              port=20000 + index % 40000)
        self.agent_id = ""
        self.registered = asyncio.Event()
        self.asked_at = 0.0  # when (re)registration was last sent
        self.retry_at = 0.0  # when to send it again if still unanswered (0: not pending)
        self.attempts = 0  # sends since the last leader change
        self.tasks: dict[str, Task] = {}
        self.frameworks: dict[str, FrameworkInfo] = {}
        #: Unacknowledged updates by uuid.
        self.resend: dict[bytes, StatusUpdate] = {}
        self.client = DealerClient(self.on_message, name=f"sim-{index}")

    # ---------------------------------------------------------- outgoing

    def register(self) -> None:
        """RegisterAgent, or ReregisterAgent with the tasks once an id is known."""
        self.asked_at = time.monotonic()
        bound = min(BACKOFF_FACTOR_S * 2 ** min(self.attempts, 32), BACKOFF_MAX_S)
        self.retry_at = self.asked_at + max(0.05, random.uniform(0.0, bound))
        self.attempts += 1
        if not self.agent_id:
            self.client.send(RegisterAgent(agent_info=self.info))
        else:
            self.client.send(ReregisterAgent(
                agent_info=self.info_with_id(), tasks=tuple(self.tasks.values()),
                frameworks=tuple(self.frameworks.values())))

    def info_with_id(self) -> AgentInfo:
        """AgentInfo carrying the id the master gave."""
        return AgentInfo(hostname=self.info.hostname, resources=self.info.resources,
                         id=self.agent_id, port=self.info.port)

    def move(self, endpoint: str) -> None:
        """Follow a new leader: new connection, not registered there yet."""
        self.registered.clear()
        self.attempts = 0
        self.client.connect(endpoint)

    # ---------------------------------------------------------- incoming

    def on_message(self, msg: Any) -> None:
        """The master's messages; anything unexpected is ignored."""
        if isinstance(msg, Ping):
            self.client.send(Pong(agent_id=self.agent_id))
        elif isinstance(msg, AgentRegistered | AgentReregistered):
            self.agent_id = msg.agent_id
            self.registered.set()
            for update in self.resend.values():
                self.client.send(update)
        elif isinstance(msg, RunTask):
            self.run_task(msg)
        elif isinstance(msg, StatusUpdateAcknowledgement):
            self.resend.pop(msg.uuid, None)

    def run_task(self, msg: RunTask) -> None:
        """Record the task RUNNING and report it."""
        info, fw = msg.task, msg.framework_info
        self.frameworks[fw.id] = fw
        status = TaskStatus(task_id=info.task_id, state=TaskState.TASK_RUNNING,
                            source=Source.SOURCE_EXECUTOR, agent_id=self.agent_id,
                            executor_id=info.task_id, timestamp=time.time(),
                            uuid=os.urandom(16))
        self.tasks[info.task_id] = Task(
            task_id=info.task_id, name=info.name, framework_id=fw.id,
            agent_id=self.agent_id, executor_id=info.task_id,
            state=TaskState.TASK_RUNNING, resources=info.resources, statuses=(status,),
            status_update_state=TaskState.TASK_RUNNING, status_update_uuid=status.uuid)
        update = StatusUpdate(framework_id=fw.id, status=status)
        self.resend[status.uuid] = update
        self.client.send(update)

    def flip_health(self, task_id: str) -> None:
        """A new RUNNING update of ``task_id`` with its health flipped (a change the
        master and the framework pass on), resent until acknowledged."""
        task = self.tasks[task_id]
        last = task.statuses[-1]
        status = TaskStatus(task_id=task_id, state=TaskState.TASK_RUNNING,
                            source=Source.SOURCE_EXECUTOR, agent_id=self.agent_id,
                            executor_id=task_id, timestamp=time.time(), uuid=os.urandom(16),
                            healthy=not last.healthy)
        self.tasks[task_id] = attrs.evolve(task, statuses=(status,),
                                           status_update_uuid=status.uuid)
        update = StatusUpdate(framework_id=task.framework_id, status=status)
        self.resend[status.uuid] = update
        self.client.send(update)


async def churn(agents: list[SimAgent], per_second: int) -> None:
    """``per_second`` health flips a second over random running tasks, in tenths."""
    rng = random.Random(11)
    step = time.monotonic()
    running: list[SimAgent] = []
    for tick in itertools.count():
        step += 0.1
        await asyncio.sleep(max(0.0, step - time.monotonic()))
        if tick % 10 == 0:  # who has tasks, looked at once a second
            running = [a for a in agents if a.tasks and a.registered.is_set()]
        for _ in range(max(1, per_second // 10) if running else 0):
            agent = rng.choice(running)
            agent.flip_health(rng.choice(list(agent.tasks)))


class StaticDetector:
    """A detector for ``--master``: the one master at a fixed endpoint, never changing."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    async def start(self) -> None:
        """Nothing to connect."""

    async def stop(self) -> None:
        """Nothing to release."""

    def current(self) -> Any:
        """The master, as something with a ``zmq_endpoint``."""
        return self

    @property
    def zmq_endpoint(self) -> str:
        """The fixed endpoint."""
        return self.endpoint

    async def wait_for_change(self, previous: Any) -> Any:
        """Never returns: the master does not change."""
        await asyncio.Event().wait()


def restart_retry_clocks(agents: list[SimAgent], now: float | None = None) -> None:
    """Start each agent's retry delay when its (re)registration leaves, not when it was
    queued: the messages of a move leave together once every agent moved (seconds for
    thousands of agents), and a real agent's timer starts when it sends."""
    now = time.monotonic() if now is None else now
    for agent in agents:
        if agent.retry_at:
            agent.retry_at = now + (agent.retry_at - agent.asked_at)
            agent.asked_at = now


def from_source(endpoint: str, source: str) -> str:
    """``endpoint`` connected to from the local address ``source`` (ZeroMQ's
    ``tcp://source:0;host:port``); unchanged when ``source`` is empty."""
    if not source:
        return endpoint
    return f"tcp://{source}:0;{endpoint.removeprefix('tcp://')}"


async def follow(agents: list[SimAgent], zk_url: str, ready_file: str,
                 master: str = "", update_retry: float = UPDATE_RETRY_S,
                 source: str = "") -> None:
    """Register everyone with the leader (``master``: this one), then follow changes."""
    detector: Any = StaticDetector(master) if master else create_detector(zk_url)
    await detector.start()
    loop = asyncio.get_running_loop()
    current = None
    endpoint: str | None = None
    ready_written = False
    waiting: list[SimAgent] = []  # not registered since the last move

    async def retry() -> None:
        """Resend unanswered registrations and unacknowledged updates."""
        last_updates = time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            if endpoint is None:
                continue
            # Only the agents not registered yet (all of them after a move) are looked at.
            waiting[:] = [agent for agent in waiting if not agent.registered.is_set()]
            for agent in waiting:
                if agent.retry_at and now >= agent.retry_at:
                    agent.register()
            if now - last_updates > update_retry:
                last_updates = now
                for agent in agents:
                    if agent.registered.is_set():
                        for update in agent.resend.values():
                            agent.client.send(update)

    async def ready() -> None:
        nonlocal ready_written
        while not all(a.registered.is_set() for a in agents):
            await asyncio.gather(*(a.registered.wait() for a in agents))
        if ready_file and not ready_written:
            ready_written = True
            await asyncio.to_thread(Path(ready_file).write_text, f"{len(agents)}\n")
        log.info("%d simulated agents registered", len(agents))

    async def progress(since: float) -> None:
        """Log how the (re)registration with a new leader goes, until everyone is back."""
        while True:
            await asyncio.sleep(0.25)
            back = sum(a.registered.is_set() for a in agents)
            sends = sum(a.attempts for a in agents)
            log.info("%.2fs after the move: %d/%d registered, %d (re)registration messages sent",
                     time.monotonic() - since, back, len(agents), sends)
            if back == len(agents):
                return

    retrier = loop.create_task(retry())
    readier = loop.create_task(ready())
    watchers: set[asyncio.Task[None]] = set()  # referenced until done, so none is collected
    try:
        while True:
            leader = detector.current()
            new = (from_source(leader.zmq_endpoint, source) or None) \
                if leader and leader.zmq_endpoint else None
            if new != endpoint and new is not None:
                log.info("leader is now %s; moving %d agents", new, len(agents))
                endpoint = new
                for agent in agents:
                    agent.move(new)
                    agent.register()
                restart_retry_clocks(agents)
                waiting[:] = agents
                watcher = loop.create_task(progress(time.monotonic()))
                watchers.add(watcher)
                watcher.add_done_callback(watchers.discard)
            current = leader
            await detector.wait_for_change(current)
    finally:
        retrier.cancel()
        readier.cancel()
        await detector.stop()


async def main_async(args: argparse.Namespace) -> None:
    """Create the agents and run until cancelled."""
    # ZeroMQ's default cap is 1,023 sockets per context, and a move to a new
    # leader opens each agent's new socket while the old one is still being
    # reaped: allow a few per agent (set before the first socket is created).
    zmq.Context.instance().set(zmq.MAX_SOCKETS, 3 * args.count + 64)
    # Each agent holds a TCP connection and ZeroMQ's own descriptors: raise the open-file
    # limit as far as allowed (root may raise the hard limit too).
    want = 4 * args.count + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    resources = Resources.parse(RESOURCES)
    agents = [SimAgent(args.first + i, resources) for i in range(args.count)]
    for agent in agents:
        agent.client.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    follower = loop.create_task(follow(agents, args.zk, args.ready_file, args.master,
                                       args.update_retry, args.source))
    churner = loop.create_task(churn(agents, args.churn)) if args.churn else None
    waiter = loop.create_task(stop.wait())
    done, _ = await asyncio.wait({follower, waiter}, return_when=asyncio.FIRST_COMPLETED)
    follower.cancel()
    if churner is not None:
        churner.cancel()
    try:
        await follower
    except asyncio.CancelledError:
        pass
    for agent in agents:
        agent.client.close()
    if follower in done and follower.exception() is not None:
        raise follower.exception()  # type: ignore[misc]


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zk", default="", help="zk://host:port/path of the masters")
    parser.add_argument("--master", default="",
                        help="tcp://host:port of one master (instead of --zk)")
    parser.add_argument("--update-retry", type=float, default=UPDATE_RETRY_S,
                        help="seconds between resends of unacknowledged updates "
                             f"(default {UPDATE_RETRY_S})")
    parser.add_argument("--churn", type=int, default=0,
                        help="health flips a second over the running tasks (default 0)")
    parser.add_argument("--count", type=int, required=True, help="simulated agents")
    parser.add_argument("--first", type=int, default=0,
                        help="index of the first agent (host names sim-<index>; default 0)")
    parser.add_argument("--source", default="",
                        help="local address the connections come from (default: any)")
    parser.add_argument("--ready-file", default="", help="written once all are registered")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count: expected at least 1, got {args.count}")
    if bool(args.zk) == bool(args.master):
        parser.error("--zk or --master: expected exactly one of them")
    if args.first < 0:
        parser.error(f"--first: expected at least 0, got {args.first}")
    if args.update_retry <= 0:
        parser.error(f"--update-retry: expected > 0, got {args.update_retry}")
    if args.churn < 0:
        parser.error(f"--churn: expected at least 0, got {args.churn}")
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
