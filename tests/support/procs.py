"""Real processes for integration and end-to-end tests.

Owns: free loopback ports, starting ``mesoslite`` sub-commands as real
processes with their output captured to files, waiting on conditions with
a deadline, and cleaning up every process a test started, including tasks
left behind by a killed agent (found by their sandbox under the test's
work directory).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
             what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout}s (last error: {last_exc!r})")


async def until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition",
                interval: float = 0.02) -> Any:
    """:func:`wait_for` on the event loop: poll a cheap, non-blocking ``predicate``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout}s")


def get_json(url: str, timeout: float = 5.0) -> Any:
    """GET a JSON document."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


class Proc:
    """A started process with its combined output in a log file."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self.popen = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env=full_env,
            cwd=str(cwd or ROOT), start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def output(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_output(self, text: str, timeout: float = 20.0) -> str:
        """Wait until ``text`` appears in the output (fails early if the process died)."""
        def seen() -> bool:
            if text in self.output():
                return True
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.args[:3]} exited with {self.popen.returncode}:\n"
                                     f"{self.output()[-3000:]}")
            return False
        wait_for(seen, timeout, what=f"output {text!r} from {self.args[:3]}")
        return self.output()

    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        """Send a signal to the process."""
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()
        return self.popen.returncode


def mesoslite(*args: str) -> list[str]:
    """The argv that runs the ``mesoslite`` CLI with this interpreter."""
    return [sys.executable, "-m", "mesoslite.cli", *args]


def processes_under(directory: Path) -> list[psutil.Process]:
    """Processes whose working directory or command line lies under ``directory``."""
    found = []
    target = str(directory)
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cwd = proc.cwd()
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.Error, OSError):
            continue
        if cwd.startswith(target) or target in cmdline:
            found.append(proc)
    return found


def kill_processes_under(directory: Path) -> None:
    """Kill every process that runs in or names ``directory`` (cleanup after kill -9 tests)."""
    for proc in processes_under(directory):
        try:
            proc.kill()
        except psutil.Error:
            pass
