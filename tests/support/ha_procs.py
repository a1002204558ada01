"""Several masters and agents as real processes against one ZooKeeper, for HA tests.

Owns: :class:`HAMaster` (a ``mesoslite master --zk`` process on ephemeral
ports, asked over HTTP whether it leads), :class:`ZkAgent` (a ``mesoslite
agent --master zk://…`` process that follows the leader), :class:`HACluster`
(starts them under one root and stops everything it started, tasks and
executors included), :func:`the_leader`, and :func:`task_pids` (the pids of
the task processes of a command whose sandbox lies under an agent's work
directory).
"""

from __future__ import annotations

import http.client
import json
import re
import signal
from pathlib import Path
from typing import Any, Self

import psutil

from tests.support.procs import Proc, kill_processes_under, mesoslite, processes_under, wait_for

_MASTER_LINE = re.compile(r"mesoslite master: http://([\d.]+):(\d+)\s+zmq tcp://([\d.]+):(\d+)")
_AGENT_LINE = re.compile(r"mesoslite agent: http://([\d.]+):(\d+)")


def _flag_args(flags: dict[str, object]) -> list[str]:
    args: list[str] = []
    for name, value in flags.items():
        args += [f"--{name}", str(value)]
    return args


def _request(port: int, path: str) -> tuple[int, Any]:
    """GET ``path`` on 127.0.0.1:``port`` without following redirects: (status, JSON or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, None
    finally:
        conn.close()


class HAMaster:
    """One ``mesoslite master --zk`` process with its own work directory."""

    def __init__(self, root: Path, index: int, zk_url: str, flags: dict[str, object]) -> None:
        """Start the master and wait until it prints its addresses."""
        self.index = index
        self.work_dir = root / f"master-{index}"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        args = {"zk": zk_url, "quorum": 2, "zk_session_timeout": 2, "ip": "127.0.0.1",
                "http_port": 0, "zmq_port": 0, "work_dir": self.work_dir,
                "allocation_interval": 0.1, **flags}
        self.proc = Proc(mesoslite("master", *_flag_args(args)), root / f"master-{index}.log")
        output = self.proc.wait_output("mesoslite master:", timeout=30)
        match = _MASTER_LINE.search(output)
        assert match, f"no address line in master-{index}'s output:\n{output[-2000:]}"
        self.http_port = int(match.group(2))

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.alive()

    def get(self, path: str) -> tuple[int, Any]:
        """(status, JSON body) of ``GET path``, redirects not followed."""
        return _request(self.http_port, path)

    def elected(self) -> bool:
        """True when the master answers that it leads (False if it does not or is down)."""
        if not self.alive():
            return False
        try:
            status, snapshot = self.get("/metrics/snapshot")
        except OSError:
            return False
        return status == 200 and bool(snapshot["master/elected"])

    def state(self) -> dict[str, Any]:
        """The leader's ``/state`` (fails if this master does not answer it itself)."""
        status, body = self.get("/state")
        assert status == 200, f"master-{self.index} answered /state with {status}"
        return body

    def kill9(self) -> None:
        """SIGKILL the master and reap it."""
        self.proc.signal(signal.SIGKILL)
        self.proc.popen.wait(10)


class ZkAgent:
    """A ``mesoslite agent`` process that finds the leader through ZooKeeper."""

    def __init__(self, root: Path, index: int, zk_url: str, flags: dict[str, object]) -> None:
        """Start the agent and wait until it reports itself registered."""
        self.work_dir = root / f"agent-{index}"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        args = {"master": zk_url, "ip": "127.0.0.1", "http_port": 0, "work_dir": self.work_dir,
                "registration_backoff_factor": 0.1, "executor_shutdown_grace_period": 2.0,
                "status_update_retry_min": 1.0, "status_update_retry_max": 2.0, **flags}
        self.proc = Proc(mesoslite("agent", *_flag_args(args)), root / f"agent-{index}.log")
        output = self.proc.wait_output("mesoslite agent:", timeout=30)
        match = _AGENT_LINE.search(output)
        assert match, f"no address line in agent-{index}'s output:\n{output[-2000:]}"
        self.http_port = int(match.group(2))

        def registered() -> str:
            status, state = _request(self.http_port, "/state")
            return state["id"] if status == 200 and state["registered"] else ""

        self.agent_id: str = wait_for(registered, timeout=30, what=f"agent-{index} registered")


class HACluster:
    """Masters and agents started under ``root``; :meth:`stop` cleans up everything."""

    def __init__(self, root: Path, zk_url: str) -> None:
        """Nothing starts until :meth:`add_master`/:meth:`add_agent`."""
        self.root = root
        self.zk_url = zk_url
        self.masters: list[HAMaster] = []
        self.agents: list[ZkAgent] = []

    def add_master(self, **flags: object) -> HAMaster:
        """Start one more master candidate (``flags`` without ``--``)."""
        master = HAMaster(self.root, len(self.masters), self.zk_url, flags)
        self.masters.append(master)
        return master

    def add_agent(self, resources: str, **flags: object) -> ZkAgent:
        """Start one more agent with ``resources`` and wait until it registered."""
        agent = ZkAgent(self.root, len(self.agents), self.zk_url,
                        {"resources": resources, **flags})
        self.agents.append(agent)
        return agent

    def stop(self) -> None:
        """SIGTERM the agents, then the masters; kill whatever still runs under ``root``."""
        for agent in self.agents:
            agent.proc.stop()
        for master in self.masters:
            master.proc.stop()
        kill_processes_under(self.root)
        wait_for(lambda: not task_pids(self.root, ""), timeout=10,
                 what=f"no process left under {self.root}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def the_leader(masters: list[HAMaster], timeout: float = 20.0) -> HAMaster:
    """Wait until exactly one running master reports itself elected; return it."""
    def one() -> HAMaster | None:
        found = [m for m in masters if m.elected()]
        assert len(found) <= 1, f"two leaders at once: {[m.index for m in found]}"
        return found[0] if found else None
    return wait_for(one, timeout, what="exactly one elected master")


def task_pids(directory: Path, command: str) -> list[int]:
    """Live (non-zombie) pids under ``directory`` whose command line is ``command`` ("": any)."""
    found = []
    for proc in processes_under(directory):
        try:
            if (proc.status() != psutil.STATUS_ZOMBIE
                    and (not command or " ".join(proc.cmdline()) == command)):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return sorted(found)
