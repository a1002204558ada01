"""One real haproxy, driven by configuration text: check, write, start, soft-reload, stop.

Owns: :class:`Haproxy`.  :meth:`Haproxy.apply` takes a whole configuration: unchanged
text (with haproxy running) does nothing; otherwise the text is checked with
``haproxy -c`` first and, when haproxy refuses it, the running configuration stays and
the refusal (haproxy's own message) is kept in :attr:`Haproxy.last_error` and logged;
a good text is written atomically and haproxy started or soft-reloaded
(``haproxy -D -p PIDFILE -f CFG -sf OLDPIDS``: the new process binds the ports and the
old ones stop accepting, finish their connections and exit, within the configuration's
``hard-stop-after`` at most).  Every process runs through :mod:`mesoslite.proc`.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import attrs

from mesoslite.proc import describe_wait_status, kill_pids, process_alive, run_captured

log = logging.getLogger("mesoslite.lb")


@attrs.frozen
class Applied:
    """What :meth:`Haproxy.apply` did: ``unchanged``, ``started``, ``reloaded``,
    ``rejected`` (``haproxy -c`` refused the text) or ``failed`` (haproxy did not start)."""

    outcome: str
    message: str = ""


class Haproxy:
    """Writes ``config`` and runs haproxy with ``pid_file`` (see the module docstring)."""

    def __init__(self, binary: str, config: Path, pid_file: Path) -> None:
        """Nothing runs until :meth:`apply`."""
        self.binary, self.config, self.pid_file = binary, config, pid_file
        self.applied: str | None = None
        self.last_error = ""
        self.reloads = 0
        self.rejected = 0
        self.failures = 0

    def pids(self) -> list[int]:
        """The pids in the pid file that are still alive."""
        try:
            candidates = [int(p) for p in self.pid_file.read_text().split()]
        except (OSError, ValueError):
            return []
        return [pid for pid in candidates if process_alive(pid)]

    async def _run(self, *args: str) -> tuple[bool, str]:
        outcome = await run_captured([self.binary, *args], executable=None, cwd=None,
                                     env=os.environ, timeout=30.0, keep=8000)
        text = outcome.output.decode("utf-8", "replace").strip()
        if outcome.status is None:
            return False, "timed out after 30 s"
        if outcome.status != 0:
            return False, f"{describe_wait_status(outcome.status)}: {text[-2000:]}"
        return True, text

    async def check(self, text: str) -> str:
        """``haproxy -c`` on ``text``: '' when valid, else haproxy's reason."""
        candidate = self.config.with_name(self.config.name + ".check")
        candidate.write_text(text)
        try:
            ok, output = await self._run("-c", "-f", str(candidate))
        finally:
            candidate.unlink(missing_ok=True)
        return "" if ok else output or "haproxy -c refused the configuration"

    async def apply(self, text: str) -> Applied:
        """Make haproxy serve ``text`` (see the module docstring)."""
        old = self.pids()
        if text == self.applied and old:
            return Applied("unchanged")
        problem = await self.check(text)
        if problem:
            self.rejected += 1
            self.last_error = f"generated configuration refused by haproxy -c: {problem}"
            log.error("%s; keeping the last good configuration", self.last_error)
            return Applied("rejected", self.last_error)
        _write_atomically(self.config, text)
        args = ["-D", "-p", str(self.pid_file), "-f", str(self.config)]
        if old:
            args += ["-sf", *map(str, old)]
        ok, output = await self._run(*args)
        if not ok:
            self.failures += 1
            self.last_error = f"haproxy did not start: {output}"
            log.error("%s", self.last_error)
            return Applied("failed", self.last_error)
        self.applied = text
        self.last_error = ""
        if old:
            self.reloads += 1
        log.info("haproxy %s (pid %s)", "reloaded" if old else "started", self.pids())
        return Applied("reloaded" if old else "started")

    def stop(self) -> None:
        """Soft-stop haproxy: listeners close, connections finish, the processes exit."""
        pids = self.pids()
        kill_pids(pids, signal.SIGUSR1)
        self.pid_file.unlink(missing_ok=True)
        self.applied = None
        if pids:
            log.info("haproxy stopped (pids %s)", pids)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
