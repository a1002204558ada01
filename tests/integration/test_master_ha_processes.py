"""Three real `mesoslite master` processes against a real ZooKeeper: one leader, always.

Each master runs with ``--zk_session_timeout 2`` (so it steps down after 0.5 s
without ZooKeeper).  A master that loses leadership exits with status 3, as
Mesos aborts; the tests play the supervisor and start it again as a new
candidate.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesoslite.protocol import AgentInfo, AgentRegistered, LeaderRedirect, RegisterAgent
from mesoslite.resources import Resources
from mesoslite.transport import DealerClient
from tests.support.procs import (
    ROOT,
    Proc,
    WaitAborted,
    free_port,
    holds,
    mesoslite,
    until,
    wait_for,
)
from tests.support.zk import ZooKeeperServer
from tests.support.zk_fixtures import zk_url, zookeeper  # noqa: F401

pytestmark = pytest.mark.integration

#: Exit status of a master that lost leadership (mesoslite.cli.EXIT_DEPOSED).
EXIT_DEPOSED = 3
SESSION_TIMEOUT = "2"


class MasterProc:
    """One `mesoslite master` process with fixed ports (kept across restarts)."""

    def __init__(self, directory: Path, zk: str, index: int) -> None:
        self.directory = directory
        self.zk = zk
        self.index = index
        self.http_port = free_port()
        self.zmq_port = free_port()
        self.runs = 0
        self.proc: Proc | None = None
        self.exit_codes: list[int] = []
        self.start()

    @property
    def pid_string(self) -> str:
        """The Mesos-style pid this master advertises."""
        return f"master@127.0.0.1:{self.http_port}"

    @property
    def http_endpoint(self) -> str:
        """Base URL of its HTTP endpoints."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        """Start (again) as a new candidate."""
        self.runs += 1
        log = self.directory / f"master{self.index}.run{self.runs}.log"
        self.proc = Proc(mesoslite(
            "master", "--zk", self.zk, "--quorum", "2", "--zk_session_timeout", SESSION_TIMEOUT,
            "--ip", "127.0.0.1", "--http_port", str(self.http_port),
            "--zmq_port", str(self.zmq_port), "--agent_reregister_timeout", "60",
            "--allocation_interval", "0.1",
        ), log)
        self.proc.wait_output("mesoslite master:", timeout=30)

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.alive()

    def supervise(self) -> bool:
        """Restart the process if it exited (recording its status); True if it did."""
        if self.proc is None or self.alive():
            return False
        self.exit_codes.append(self.proc.stop())
        self.start()
        return True

    def request(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any, str]:
        """(status, JSON body or None, Location) without following redirects."""
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=3)
        try:
            data = None if body is None else json.dumps(body)
            headers = {} if body is None else {"Content-Type": "application/json"}
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            return response.status, parsed, response.getheader("Location") or ""
        finally:
            conn.close()

    def elected(self) -> bool | None:
        """``master/elected`` as this master reports it (None: not answering)."""
        if not self.alive():
            return None
        try:
            status, snapshot, _ = self.request("/metrics/snapshot")
        except OSError:
            return None
        return bool(snapshot["master/elected"]) if status == 200 else None

    def kill(self) -> None:
        """kill -9."""
        assert self.proc is not None
        self.proc.signal(signal.SIGKILL)
        self.proc.popen.wait(10)

    def stop(self) -> None:
        """Stop for good."""
        if self.proc is not None:
            self.proc.stop()


@pytest.fixture
def masters(zk_url: str, tmp_path: Path) -> Iterator[list[MasterProc]]:  # noqa: F811
    """Three masters contending in one ZooKeeper group."""
    procs: list[MasterProc] = []
    try:
        for i in range(3):
            procs.append(MasterProc(tmp_path, zk_url, i))
        yield procs
    finally:
        for proc in procs:
            proc.stop()


def leaders(masters: list[MasterProc]) -> list[MasterProc]:
    """The masters that report themselves elected right now."""
    return [m for m in masters if m.elected()]


def the_leader(masters: list[MasterProc], timeout: float = 15.0) -> MasterProc:
    """Wait until exactly one running master leads and every other running one knows it."""
    def settled() -> MasterProc | None:
        found = leaders(masters)
        if len(found) > 1:
            raise AssertionError(f"two leaders: {[m.index for m in found]}")
        if len(found) != 1:
            return None
        leader = found[0]
        for other in masters:
            if other is leader or not other.alive():
                continue
            status, _, location = other.request("/state")
            if status != 307 or location != f"{leader.http_endpoint}/state":
                return None
        return leader
    return wait_for(settled, timeout, what="exactly one leader, known to the others")


def watch_at_most_one_leader(masters: list[MasterProc], seconds: float) -> None:
    """Sample for ``seconds``: never two masters elected at once."""
    def at_most_one() -> bool:
        found = leaders(masters)
        assert len(found) <= 1, f"two leaders at once: {[m.index for m in found]}"
        return True

    holds(at_most_one, seconds, "never two leaders at once")


def stable_leader(masters: list[MasterProc], hold: float, timeout: float) -> MasterProc:
    """The leader once the same master has led for ``hold`` seconds with never two at once."""
    deadline = time.monotonic() + timeout

    def held() -> MasterProc | None:
        leader = the_leader(masters, timeout=max(1.0, deadline - time.monotonic()))
        try:
            watch_at_most_one_leader(masters, hold)
        except AssertionError as exc:
            raise WaitAborted(str(exc)) from None
        return leader if leaders(masters) == [leader] else None

    return wait_for(held, timeout, f"the same leader for {hold}s")


def register_agent(master: MasterProc) -> Any:
    """Send RegisterAgent to ``master`` over ZeroMQ; the first answer that came back."""
    async def exchange() -> Any:
        got: list[Any] = []
        client = DealerClient(got.append)
        client.connect(f"tcp://127.0.0.1:{master.zmq_port}")
        client.start()
        info = AgentInfo(hostname="agent-1", resources=Resources.parse("cpus:2;mem:1024"))
        client.send(RegisterAgent(info))
        try:
            await until(lambda: got, 5, "an answer to RegisterAgent")
        finally:
            client.close()
        return got[0]
    return asyncio.run(exchange())


def test_exactly_one_leader_others_redirect(masters: list[MasterProc], zk_url: str) -> None:  # noqa: F811
    """One master leads; the others answer 307 (and /redirect) to it and point ZeroMQ
    peers to it; `mesoslite ctl --master zk://…` finds it."""
    leader = the_leader(masters)
    status, state, _ = leader.request("/state")
    assert status == 200 and state["leader"] == leader.pid_string == state["pid"]
    assert state["leader_info"]["http_endpoint"] == leader.http_endpoint
    for other in masters:
        if other is leader:
            continue
        assert other.elected() is False
        assert other.request("/redirect")[::2] == (307, f"//127.0.0.1:{leader.http_port}")
        assert other.request("/frameworks")[2] == f"{leader.http_endpoint}/frameworks"
        assert other.request("/health")[0] == 200
        redirect = register_agent(other)
        assert isinstance(redirect, LeaderRedirect)
        assert redirect.leader.zmq_endpoint == f"tcp://127.0.0.1:{leader.zmq_port}"
    ctl = subprocess.run([sys.executable, "-m", "mesoslite.cli", "ctl", "--master", zk_url,
                          "state"], check=False, capture_output=True, text=True, timeout=60,
                         cwd=ROOT)
    assert ctl.returncode == 0, ctl.stderr
    assert leader.pid_string in ctl.stdout
    watch_at_most_one_leader(masters, 1.0)


def test_killing_the_leader_elects_another_and_the_registry_survives(
        masters: list[MasterProc]) -> None:
    """kill -9 of the leader: another master leads within seconds, knowing the weights set
    and the agent admitted through the old leader."""
    old = the_leader(masters)
    assert old.request("/weights", "PUT", [{"role": "web", "weight": 3.5}])[0] == 200
    registered = register_agent(old)
    assert isinstance(registered, AgentRegistered)
    old.kill()
    started = time.monotonic()
    rest = [m for m in masters if m is not old]
    new = the_leader(rest, timeout=15)
    assert time.monotonic() - started < 10, "failover took too long"
    watch_at_most_one_leader(rest, 0.5)
    status, weights, _ = new.request("/weights")
    assert status == 200 and {"role": "web", "weight": 3.5} in weights
    status, state, _ = new.request("/state")
    assert [a["id"] for a in state["recovered_slaves"]] == [registered.agent_id]
    old.supervise()
    the_leader(masters)


def test_zookeeper_restart_leaves_exactly_one_leader(
        masters: list[MasterProc], zookeeper: ZooKeeperServer) -> None:  # noqa: F811
    """After ZooKeeper restarts, exactly one master leads (a deposed one exits with status 3)."""
    old = the_leader(masters)
    zookeeper.restart()
    # Right after the restart the old leader may not have noticed its suspended
    # session yet; leadership can move once more.  Wait until it holds.
    new = stable_leader(masters, hold=2.0, timeout=30.0)
    if old is not new:  # it stepped down while ZooKeeper was away, and exited
        wait_for(lambda: not old.alive(), 15, what="the deposed leader to exit")
        assert old.proc is not None
        assert "no longer the leading master" in old.proc.output()
        old.supervise()
        assert old.exit_codes == [EXIT_DEPOSED]
    assert the_leader(masters) is new


def test_zookeeper_outage_leaves_no_leader_until_it_ends(
        masters: list[MasterProc], zookeeper: ZooKeeperServer) -> None:  # noqa: F811
    """While ZooKeeper is down past the session timeout no master acts as leader (all answer
    not elected, and 503 for the leader's endpoints); afterwards exactly one leads."""
    old = the_leader(masters)
    zookeeper.stop()
    try:
        wait_for(lambda: not leaders(masters), 5, what="the leader to step down")
        holds(lambda: not leaders(masters), 3 * float(SESSION_TIMEOUT),
              "no master acting as leader without ZooKeeper", interval=0.1)
        for other in masters:
            if other.alive():
                status, body, _ = other.request("/state")
                assert status == 503 and "no leading master" in body["message"]
        wait_for(lambda: not old.alive(), 15, what="the deposed leader to exit")
        assert old.proc is not None and old.proc.popen.returncode == EXIT_DEPOSED
    finally:
        zookeeper.start()
    for master in masters:
        master.supervise()
    the_leader(masters, timeout=20)
    watch_at_most_one_leader(masters, 1.0)
