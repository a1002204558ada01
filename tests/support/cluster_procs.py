"""A master and agents as real processes on loopback, for integration tests.

Owns: starting ``mesoslite master`` and ``mesoslite agent`` as real
processes (each with its own work directory and ephemeral ports, read back
from what the process prints, so no port can be taken between choosing and
binding it), reading their HTTP endpoints, SIGKILLing an agent, and
:class:`ProcCluster`, which stops everything it started: agents, the master,
and every process left under its root directory (tasks and executors
orphaned by a killed agent included).
"""

from __future__ import annotations

import re
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

import psutil

from tests.support.procs import (
    Proc,
    get_json,
    kill_processes_under,
    mesoslite,
    processes_under,
    wait_for,
)

#: Master flags that make tests fast (each can be overridden).
FAST_MASTER_FLAGS: dict[str, object] = {"allocation_interval": 0.1}
#: Agent flags that make tests fast (each can be overridden).
FAST_AGENT_FLAGS: dict[str, object] = {
    "registration_backoff_factor": 0.1,
    "executor_shutdown_grace_period": 2.0,
}

_MASTER_LINE = re.compile(r"mesoslite master: http://([\d.]+):(\d+)\s+zmq tcp://([\d.]+):(\d+)")
_AGENT_LINE = re.compile(r"mesoslite agent: http://([\d.]+):(\d+)")
_EXECUTORS = re.compile(r"executors (tcp://[\d.]+:\d+)")


def _flag_args(flags: dict[str, object]) -> list[str]:
    args: list[str] = []
    for name, value in flags.items():
        args += [f"--{name}", str(value)]
    return args


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET ``url``; return (status, body) for 2xx and 4xx/5xx answers alike."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _live_under(root: Path) -> list[int]:
    live = []
    for proc in processes_under(root):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                live.append(proc.pid)
        except psutil.Error:
            continue
    return live


class MasterProc:
    """A ``mesoslite master`` process; ``address`` is its ZMQ ``host:port``."""

    def __init__(self, work_dir: Path, log_path: Path, flags: dict[str, object]) -> None:
        """Start the master and wait until it prints its addresses."""
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        args = {"ip": "127.0.0.1", "http_port": 0, "zmq_port": 0, "work_dir": work_dir,
                **FAST_MASTER_FLAGS, **flags}
        self.proc = Proc(mesoslite("master", *_flag_args(args)), log_path)
        output = self.proc.wait_output("mesoslite master:", timeout=30)
        match = _MASTER_LINE.search(output)
        assert match, f"no address line in the master's output:\n{output[-2000:]}"
        self.http_port = int(match.group(2))
        self.zmq_port = int(match.group(4))
        self.address = f"127.0.0.1:{self.zmq_port}"
        self.zmq_endpoint = f"tcp://{self.address}"
        self.base_url = f"http://127.0.0.1:{self.http_port}"

    def get(self, path: str) -> Any:
        """GET a JSON document from the master."""
        return get_json(self.base_url + path)

    def state(self) -> dict[str, Any]:
        """The master's ``/state``."""
        return self.get("/state")

    def metrics(self) -> dict[str, float]:
        """The master's ``/metrics/snapshot``."""
        return self.get("/metrics/snapshot")

    def framework(self, framework_id: str) -> dict[str, Any] | None:
        """The active framework ``framework_id`` from ``/state`` (None if not active)."""
        for framework in self.state()["frameworks"]:
            if framework["id"] == framework_id:
                return framework
        return None

    def tasks_in_state(self, framework_id: str, state: str) -> list[str]:
        """Ids of the framework's tasks the master has in ``state``."""
        framework = self.framework(framework_id)
        if framework is None:
            return []
        return sorted(task["id"] for task in framework["tasks"] if task["state"] == state)


class AgentProc:
    """A ``mesoslite agent`` process with its own work directory."""

    def __init__(self, master: MasterProc, work_dir: Path, log_path: Path,
                 flags: dict[str, object]) -> None:
        """Start the agent and wait until the master lists it as registered."""
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        args = {"master": master.address, "ip": "127.0.0.1", "http_port": 0,
                "work_dir": work_dir, **FAST_AGENT_FLAGS, **flags}
        self.proc = Proc(mesoslite("agent", *_flag_args(args)), log_path)
        output = self.proc.wait_output("mesoslite agent:", timeout=30)
        match = _AGENT_LINE.search(output)
        executors = _EXECUTORS.search(output)
        assert match and executors, f"no address line in the agent's output:\n{output[-2000:]}"
        self.http_port = int(match.group(2))
        self.base_url = f"http://127.0.0.1:{self.http_port}"
        self.executor_endpoint = executors.group(1)

        def registered() -> str:
            state = self.get("/state")
            return state["id"] if state["registered"] else ""

        self.agent_id: str = wait_for(registered, timeout=30, what="agent registered")
        wait_for(lambda: any(s["id"] == self.agent_id for s in master.get("/slaves")["slaves"]),
                 timeout=30, what=f"master lists agent {self.agent_id}")

    def get(self, path: str) -> Any:
        """GET a JSON document from the agent."""
        return get_json(self.base_url + path)

    def kill9(self) -> None:
        """SIGKILL the agent process (its executors and tasks keep running) and reap it."""
        self.proc.signal(signal.SIGKILL)
        self.proc.popen.wait(10)

    def sandbox(self, task_id: str) -> Path:
        """The latest sandbox of a command task (its executor id is the task id)."""
        found = sorted(self.work_dir.glob(f"agents/*/frameworks/*/executors/{task_id}/runs/latest"))
        assert found, f"no sandbox for task {task_id} under {self.work_dir}"
        return found[-1]


class ProcCluster:
    """A master and agents started under ``root``; :meth:`stop` cleans up everything."""

    def __init__(self, root: Path) -> None:
        """Nothing starts until :meth:`start_master`."""
        self.root = root
        self.master: MasterProc | None = None
        self.agents: list[AgentProc] = []

    def start_master(self, **flags: object) -> MasterProc:
        """Start the master (``flags`` are master flags without ``--``)."""
        assert self.master is None, "one master per cluster"
        self.master = MasterProc(self.root / "master", self.root / "master.log", flags)
        return self.master

    def add_agent(self, resources: str, **flags: object) -> AgentProc:
        """Start one more agent with ``resources`` (Mesos syntax) and wait until registered."""
        assert self.master is not None, "start the master first"
        index = len(self.agents)
        agent = AgentProc(self.master, self.root / f"agent-{index}",
                          self.root / f"agent-{index}.log", {"resources": resources, **flags})
        self.agents.append(agent)
        return agent

    def all_alive(self) -> list[str]:
        """Names of the started processes that are not running (empty: all alive)."""
        dead = [] if self.master is None or self.master.proc.alive() else ["master"]
        dead += [f"agent-{i}" for i, agent in enumerate(self.agents) if not agent.proc.alive()]
        return dead

    def stop(self) -> None:
        """SIGTERM the agents, then the master; kill whatever still runs under ``root``."""
        for agent in reversed(self.agents):
            agent.proc.stop()
        if self.master is not None:
            self.master.proc.stop()
        kill_processes_under(self.root)
        wait_for(lambda: not _live_under(self.root), timeout=10,
                 what=f"no process left under {self.root}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
