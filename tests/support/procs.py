"""Real processes for integration and end-to-end tests.

Owns: free loopback ports, :func:`machine_lock` (one holder at a time across
test processes), starting ``mesoslite`` sub-commands as real
processes with their output captured to files, the one way tests wait —
:func:`wait_for` (sync) and :func:`until` (async) poll a condition with a
deadline and fail naming what was awaited and the last value seen;
:func:`holds` checks a condition stays true for a while — and cleaning up
every process a test started, including tasks left behind by a killed agent
(found by their sandbox under the test's work directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]


_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (never the same one twice
    in one test process, so two servers of one test cannot be handed one port)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise AssertionError("no free loopback port that was not handed out before")


@contextlib.contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """Hold the machine-wide lock ``name`` (a file lock in the temp directory): for steps
    that touch shared state — installing, building a shared image, fixed ports — when
    several test processes (pytest-xdist workers, other checkouts) run at once."""
    path = Path(tempfile.gettempdir()) / f"mesoslite-tests-{name}.lock"
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class WaitAborted(AssertionError):
    """Raised by a predicate of :func:`wait_for`/:func:`until` to stop waiting at once
    (say, the process whose output it awaits has exited): it is never retried."""


def _describe(value: Any, limit: int = 600) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _not_met(what: str, timeout: float, last: Any, error: BaseException | None) -> AssertionError:
    """The failure of a wait: what was awaited, the deadline, the last value and error seen."""
    message = f"{what}: not met within {timeout}s; last value: {_describe(last)}"
    if error is not None:
        message += f"; last error: {error!r}"
    return AssertionError(message)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition", *,
             interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that.

    An exception from ``predicate`` counts as "not yet" (a server still starting
    refuses connections) and is named in the failure, except :class:`WaitAborted`,
    which ends the wait at once.  After ``timeout`` seconds the wait fails with an
    AssertionError naming ``what`` and the last value and error seen.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    error: Exception | None = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except WaitAborted:
            raise
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            error = exc
        if time.monotonic() >= deadline:
            raise _not_met(what, timeout, last, error)
        time.sleep(interval)


async def until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition", *,
                interval: float = 0.01) -> Any:
    """:func:`wait_for` on the event loop (same rules); ``predicate`` may be a coroutine
    function.  It must not block: the loop runs the code under test between polls."""
    deadline = time.monotonic() + timeout
    last: Any = None
    error: Exception | None = None
    while True:
        try:
            last = predicate()
            if inspect.isawaitable(last):
                last = await last
            if last:
                return last
        except WaitAborted:
            raise
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            error = exc
        if time.monotonic() >= deadline:
            raise _not_met(what, timeout, last, error)
        await asyncio.sleep(interval)


def holds(predicate: Callable[[], Any], seconds: float, what: str, *,
          interval: float = 0.05) -> None:
    """Check that ``predicate`` stays truthy for ``seconds`` (sampled every ``interval``):
    the counterpart of :func:`wait_for` for "this never happens" properties."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        assert value, (f"{what}: broken after {seconds - (deadline - time.monotonic()):.2f}s; "
                       f"value: {_describe(value)}")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


async def holding(predicate: Callable[[], Any], seconds: float, what: str, *,
                  interval: float = 0.01) -> None:
    """:func:`holds` on the event loop: ``predicate`` stays truthy for ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        assert value, (f"{what}: broken after {seconds - (deadline - time.monotonic()):.2f}s; "
                       f"value: {_describe(value)}")
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)


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
                raise WaitAborted(f"{self.args[:3]} exited with {self.popen.returncode}:\n"
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
    # A trailing separator, so that ``…/run1`` does not also match ``…/run10``.
    root = str(directory).rstrip(os.sep)
    target = root + os.sep
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cwd = proc.cwd()
            cmdline = " ".join(proc.info["cmdline"] or []) + " "
        except (psutil.Error, OSError):
            continue
        if cwd == root or cwd.startswith(target) or target in cmdline or root + " " in cmdline:
            found.append(proc)
    return found


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (zombies count as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def read_pid(path: Path) -> int | None:
    """The pid a task wrote into ``path`` (None until written)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def kill_processes_under(directory: Path) -> None:
    """Kill every process that runs in or names ``directory`` (cleanup after kill -9 tests)."""
    for proc in processes_under(directory):
        try:
            proc.kill()
        except psutil.Error:
            pass
