"""One real haproxy, driven by configuration text: check, write, start, soft-reload, stop.

Owns: :class:`Haproxy`.  :meth:`Haproxy.apply` takes a whole configuration: unchanged
text (with haproxy running) does nothing; otherwise the text is checked with
``haproxy -c`` first and, when haproxy refuses it, the running configuration stays and
the refusal (haproxy's own message) is kept in :attr:`Haproxy.last_error` and logged;
a good text is written atomically and haproxy started or soft-reloaded: a new
``haproxy -f CFG -p PIDFILE -sf OLDPIDS`` runs in the foreground as this process's child
(so its pid is known, never read back from a file, and it is reaped), binds the ports,
and the old ones stop accepting, finish their connections and exit, within the
configuration's ``hard-stop-after`` at most; a new process that exits within
``settle`` seconds failed (its output, in ``haproxy.log`` beside the configuration, is
the reason).  Every process runs through :mod:`mesoslite.proc`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import attrs

from mesoslite.proc import (
    ManagedProcess,
    describe_wait_status,
    kill_pids,
    run_captured,
    spawn_async,
)

log = logging.getLogger("mesoslite.lb")


@attrs.frozen
class Applied:
    """What :meth:`Haproxy.apply` did: ``unchanged``, ``started``, ``reloaded``,
    ``rejected`` (``haproxy -c`` refused the text) or ``failed`` (haproxy did not start)."""

    outcome: str
    message: str = ""


class Haproxy:
    """Writes ``config`` and runs haproxy processes (see the module docstring)."""

    def __init__(self, binary: str, config: Path, pid_file: Path,
                 admin_socket: Path | None = None, settle: float = 0.3) -> None:
        """Nothing runs until :meth:`apply`; ``admin_socket`` (in the configuration's
        ``stats socket … expose-fd listeners``) makes reloads seamless (``-x``); a new
        process that is still running ``settle`` seconds after its start took over."""
        self.binary, self.config, self.pid_file = binary, config, pid_file
        self.admin_socket = admin_socket
        self.settle = settle
        self.applied: str | None = None
        self.last_error = ""
        self.reloads = 0
        self.rejected = 0
        self.failures = 0
        #: The processes started here that still run: the current one last.
        self._procs: list[ManagedProcess] = []

    def pids(self) -> list[int]:
        """The haproxy processes started here that still run (replaced ones draining too)."""
        self._procs = [p for p in self._procs if not p.done]
        return [p.pid for p in self._procs]

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

    async def _start(self, old: list[int]) -> str:
        """Start a haproxy process in the foreground (our child); '' once it took over."""
        args = [self.binary, "-f", str(self.config), "-p", str(self.pid_file)]
        if old and self.admin_socket is not None and self.admin_socket.exists():
            args += ["-x", str(self.admin_socket)]
        if old:
            args += ["-sf", *map(str, old)]
        log_file = str(self.config.with_name("haproxy.log"))
        spawning = asyncio.ensure_future(spawn_async(
            args, executable=None, cwd=str(self.config.parent), env=os.environ,
            stdout_path=log_file, stderr_path=log_file))
        try:
            proc = await asyncio.shield(spawning)
        except asyncio.CancelledError:  # stopping: the process must still be known (stop())
            self._procs.append(await spawning)
            raise
        self._procs.append(proc)  # known at once: a stop() during the settle wait ends it too
        try:
            status = await asyncio.wait_for(asyncio.shield(proc.exited), self.settle)
        except TimeoutError:
            return ""
        return f"{describe_wait_status(status)}: {_tail(log_file)}"

    async def apply(self, text: str) -> Applied:
        """Make haproxy serve ``text`` (see the module docstring)."""
        old = self.pids()
        if text == self.applied and old:
            return Applied("unchanged")
        problem = await self.check(text)
        if problem:
            self.rejected += 1
            self.last_error = f"generated configuration refused by haproxy -c: {problem}"
            log.error("%s", self.last_error)
            return Applied("rejected", self.last_error)
        _write_atomically(self.config, text)
        problem = await self._start(old)
        if problem:
            self.failures += 1
            self.last_error = f"haproxy did not start: {problem}"
            log.error("%s", self.last_error)
            return Applied("failed", self.last_error)
        self.applied = text
        self.last_error = ""
        if old:
            self.reloads += 1
        log.info("haproxy %s (pid %s)", "reloaded" if old else "started", self.pids()[-1])
        return Applied("reloaded" if old else "started")

    def stop(self) -> None:
        """Soft-stop haproxy: listeners close, connections finish, the processes exit."""
        pids = self.pids()
        kill_pids(pids, signal.SIGUSR1)
        self.pid_file.unlink(missing_ok=True)
        self.applied = None
        if pids:
            log.info("haproxy stopped (pids %s)", pids)


def _tail(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-2000:]
    except OSError:
        return ""


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
