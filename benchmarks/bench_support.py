"""Support for the benchmarks: a cluster as real processes, CPU accounting, profiles.

Owns: :class:`Cluster` (a master and agents started as ``python -m
mesoslite.cli`` processes on free loopback ports, and the cleanup of
everything they started, tasks included), the process helpers every
benchmark uses (:func:`spawn_logged`, :func:`stop_all`, :func:`kill_sessions`,
:func:`kill_leftovers`), :class:`CpuMeter` (CPU per process kind over a run,
and the share other processes took), :class:`PySpy` (py-spy recorders
attached to the cluster), facts about the machine and the work directory's
filesystem, and the command-line and report plumbing the benchmarks share
(progress lines, SIGTERM as Ctrl-C, argument checks, the report's run facts).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any, cast

import psutil

ROOT = Path(__file__).resolve().parents[1]


#: The tag of progress lines: the running benchmark's name (:func:`set_progress_tag`).
_progress_tag = "shell_tasks"


def set_progress_tag(tag: str) -> None:
    """Tag every later progress line (:func:`say`, here and in the benchmarks) with ``tag``."""
    global _progress_tag
    _progress_tag = tag


def say(text: str) -> None:
    """Progress line on stderr."""
    print(f"[{_progress_tag}] {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, timeout: float = 5.0) -> Any:
    """GET a JSON document (no proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        return json.loads(response.read())


# ---------------------------------------------------------------- processes


def cli_argv(log_level: str, *args: str) -> list[str]:
    """``python -m mesoslite.cli --log_level <log_level> <args>``."""
    return [sys.executable, "-m", "mesoslite.cli", "--log_level", log_level, *args]


def spawn_logged(argv: list[str], log: IO[bytes], cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in ``cwd``, in its own session, its output into ``log``.

    The child runs unbuffered, without proxies for loopback, and imports this
    checkout's mesoslite, installed or not.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1", NO_PROXY="127.0.0.1,localhost")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=str(cwd), env=env,
                            start_new_session=True)


def stop_all(procs: Sequence[subprocess.Popen[bytes]], sig: int, timeout: float) -> None:
    """Send ``sig`` to every one of ``procs``, then wait for each (SIGKILL after ``timeout``)."""
    for proc in procs:
        signal_process(proc, sig)
    for proc in procs:
        wait_or_kill(proc, timeout)


def kill_sessions(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGKILL whatever is left in the sessions (process groups) ``procs`` lead."""
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def remove_or_keep(root: Path, keep: bool) -> None:
    """Remove the work directory ``root``, or (``keep``) say where it is."""
    if keep:
        say(f"kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------ cluster


class Cluster:
    """A master and agents as real processes under ``root``; :meth:`stop` cleans up all."""

    def __init__(self, root: Path, agents: int, resources: str, log_level: str,
                 agent_args: Sequence[str] = (), master_args: Sequence[str] = ()) -> None:
        """Nothing starts until :meth:`start`; ``agent_args`` go to every agent's command line,
        ``master_args`` to the master's."""
        self.root = root
        self.agent_count = agents
        self.resources = resources
        self.log_level = log_level
        self.agent_args = list(agent_args)
        self.master_args = list(master_args)
        self.master: subprocess.Popen[bytes] | None = None
        self.agents: list[subprocess.Popen[bytes]] = []
        self.zmq_port = 0
        self.http_port = 0
        self._logs: list[Any] = []

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        return spawn_logged(cli_argv(self.log_level, *args), log, self.root)

    def start(self, timeout: float = 30.0) -> None:
        """Start the master, then the agents; return once every agent is registered."""
        self.zmq_port, self.http_port = free_port(), free_port()
        self.master = self._start("master", [
            "master", "--ip", "127.0.0.1", "--http_port", str(self.http_port),
            "--zmq_port", str(self.zmq_port), "--work_dir", str(self.root / "master"),
            *self.master_args,
        ])
        for i in range(self.agent_count):
            self.agents.append(self._start(f"agent{i}", [
                "agent", "--master", f"127.0.0.1:{self.zmq_port}", "--ip", "127.0.0.1",
                "--http_port", str(free_port()), "--work_dir", str(self.agent_dir(i)),
                "--resources", self.resources, *self.agent_args,
            ]))
        deadline = time.monotonic() + timeout
        while True:
            for proc in [self.master, *self.agents]:
                if proc.poll() is not None:
                    argv = cast("list[str]", proc.args)  # as _start() gave it
                    raise RuntimeError(f"{argv[3:5]} exited with {proc.returncode}; "
                                       f"see the logs in {self.root}")
            try:
                state = get_json(f"http://127.0.0.1:{self.http_port}/state", 2.0)
                if state.get("activated_slaves", 0) >= self.agent_count:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                who = "the agent" if self.agent_count == 1 else "agents"
                raise RuntimeError(f"{who} did not register within {timeout}s; "
                                   f"see the logs in {self.root}")
            time.sleep(0.05)

    def agent_dir(self, i: int = 0) -> Path:
        """Agent ``i``'s work directory."""
        return self.root / f"agent{i}"

    @property
    def master_address(self) -> str:
        """``host:port`` of the master's ZMQ endpoint."""
        return f"127.0.0.1:{self.zmq_port}"

    def command_executors(self) -> list[psutil.Process]:
        """The live command executor processes (children of the agents)."""
        found = []
        for agent in self.agents:
            try:
                children = psutil.Process(agent.pid).children()
            except psutil.Error:
                continue
            for child in children:
                try:
                    if "mesoslite.executor.command" in " ".join(child.cmdline()):
                        found.append(child)
                except psutil.Error:
                    continue
        return found

    def stop(self) -> None:
        """Stop the agents (they kill executors and tasks), then the master; sweep leftovers."""
        masters = [self.master] if self.master is not None else []
        stop_all(self.agents, signal.SIGTERM, 15.0)
        stop_all(masters, signal.SIGTERM, 10.0)
        kill_sessions([*self.agents, *masters])
        kill_leftovers(self.root)
        for log in self._logs:
            log.close()


def signal_process(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to ``proc`` unless it has already exited."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def wait_or_kill(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait up to ``timeout`` seconds for ``proc``, then SIGKILL it."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        signal_process(proc, signal.SIGKILL)
        proc.wait(5.0)


def kill_leftovers(root: Path) -> int:
    """Kill processes whose cmdline, cwd or MESOS_SANDBOX lies under ``root``; how many."""
    target = str(root)
    me = os.getpid()
    killed = 0
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid == me:
            continue
        try:
            hit = target in " ".join(proc.info["cmdline"] or [])
            hit = hit or proc.cwd().startswith(target)
            hit = hit or proc.environ().get("MESOS_SANDBOX", "").startswith(target)
            if hit:
                proc.kill()
                killed += 1
        except (psutil.Error, OSError):
            continue
    if killed:
        say(f"killed {killed} leftover processes")
    return killed


class CpuMeter:
    """CPU seconds used by the cluster's processes between :meth:`begin` and :meth:`end`."""

    def __init__(self, cluster: Cluster) -> None:
        """Measure ``cluster``'s processes."""
        self.cluster = cluster
        self._before: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.other_share = 0.0
        self.busy_share = 0.0

    def _sample(self) -> dict[str, float]:
        out: dict[str, float] = collections.defaultdict(float)
        procs = [("master", self.cluster.master)] + [("agents", a) for a in self.cluster.agents]
        for key, popen in procs:
            if popen is None:
                continue
            try:
                t = psutil.Process(popen.pid).cpu_times()
                out[key] += t.user + t.system
            except psutil.Error:
                pass
        for proc in self.cluster.command_executors():
            try:
                t = proc.cpu_times()
                out["command_executors"] += t.user + t.system
                out["tasks"] += t.children_user + t.children_system
            except psutil.Error:
                pass
        out["framework"] = time.process_time()
        machine = psutil.cpu_times()
        out["_machine_busy"] = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        out["_wall"] = time.monotonic()
        return out

    def begin(self) -> None:
        """Take the starting sample (command executors do not exist yet: they count from 0)."""
        self._before = self._sample()

    def end(self) -> None:
        """Take the final sample while the command executors still run."""
        after = self._sample()
        delta = {k: after[k] - self._before.get(k, 0.0) for k in after}
        wall = delta.pop("_wall")
        busy = delta.pop("_machine_busy")
        ours = sum(delta.values())
        self.used = delta
        cpus = len(os.sched_getaffinity(0))
        #: Share of the machine's CPU used by processes outside the benchmark (noise).
        self.other_share = max(0.0, busy - ours) / (wall * cpus) if wall > 0 else 0.0
        self.busy_share = busy / (wall * cpus) if wall > 0 else 0.0


def inode_create_us(directory: Path, count: int = 200) -> float:
    """Microseconds to create a directory and a file in ``directory``.

    Sandboxes cost about six such creations per task; on ext4 without a
    journal this jumps for a minute or so after many inodes were deleted.
    The probe stays until the work directory goes (deleting it now would
    slow the run down the same way).
    """
    probe = directory / ".inode-probe"
    probe.mkdir()
    started = time.perf_counter()
    for i in range(count):
        path = probe / str(i)
        path.mkdir()
        os.close(os.open(path / "f", os.O_WRONLY | os.O_CREAT, 0o644))
    elapsed = time.perf_counter() - started
    return elapsed / (2 * count) * 1e6


def filesystem_of(path: Path) -> str:
    """The filesystem type ``path`` lives on (from /proc/mounts; '' when unknown)."""
    best, kind = "", ""
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def git_commit() -> dict[str, Any]:
    """The checkout's commit and whether it has local changes (empty when unknown)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True, timeout=5).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    cwd=ROOT, capture_output=True, text=True, check=True,
                                    timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "dirty": dirty}


def machine_info() -> dict[str, Any]:
    """nproc and what else tells two machines apart."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class PySpy:
    """py-spy recorders attached to the cluster's processes (``--py-spy``)."""

    def __init__(self, out_dir: str, fmt: str) -> None:
        """Write profiles into ``out_dir`` in py-spy's ``fmt``."""
        self.out_dir = Path(out_dir)
        self.format = fmt
        self.procs: list[subprocess.Popen[bytes]] = []

    def attach(self, targets: list[tuple[str, int]]) -> None:
        """Start recording each (name, pid)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        suffix = {"flamegraph": "svg", "raw": "txt"}.get(self.format, "json")
        for name, pid in targets:
            self.procs.append(subprocess.Popen(
                ["py-spy", "record", "--pid", str(pid), "--rate", "250", "--nonblocking",
                 "--format", self.format, "-o", str(self.out_dir / f"{name}.{suffix}")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))

    def stop(self) -> None:
        """Stop recording (py-spy writes the SVG on SIGINT)."""
        stop_all(self.procs, signal.SIGINT, 20.0)
        self.procs = []


# ------------------------------------------------- command line and report


def sigterm_as_interrupt() -> Callable[[], None]:
    """From now on SIGTERM raises KeyboardInterrupt (stop like Ctrl-C); returns the undo."""

    def on_sigterm(_signum: int, _frame: Any) -> None:
        """SIGTERM: stop like Ctrl-C (the run's clean-up still happens)."""
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        """Put the previous SIGTERM handler back."""
        signal.signal(signal.SIGTERM, previous)

    return restore


def check_at_least(parser: argparse.ArgumentParser, args: argparse.Namespace,
                   names: Iterable[str], low: int = 1) -> None:
    """Usage error (exit status 2) naming the first option of ``names`` below ``low``."""
    for name in names:
        value = getattr(args, name)
        if value < low:
            parser.error(f"--{name.replace('_', '-')}: expected at least {low}, got {value}")


def check_positive(parser: argparse.ArgumentParser, args: argparse.Namespace,
                   names: Iterable[str]) -> None:
    """Usage error (exit status 2) naming the first option of ``names`` not above 0."""
    for name in names:
        value = getattr(args, name)
        if value <= 0:
            parser.error(f"--{name.replace('_', '-')}: expected > 0, got {value}")


def failure(exc: BaseException) -> str:
    """An exception as one problem line of a report; said on stderr too."""
    say(f"failed: {exc}")
    return f"{type(exc).__name__}: {exc}"


def run_facts(started: float) -> dict[str, Any]:
    """The report's closing facts: the machine, the commit, wall seconds since ``started``."""
    return {
        "machine": machine_info(),
        "git": git_commit(),
        "wall_seconds": round(time.monotonic() - started, 1),
    }


def print_report(out: dict[str, Any]) -> None:
    """The benchmark's one JSON object, on stdout."""
    print(json.dumps(out), flush=True)
