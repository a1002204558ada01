"""Commands run inside a running task's container, for ``ctl exec`` (I/O).

Owns: :class:`ExecCommand` (what to run), :class:`ExecSession` (its output as
``(stream, bytes)`` chunks, then its wait status; :meth:`ExecSession.kill`),
:func:`start_beside` (a process or command task: the command runs beside the task's
process, in the same context: its working directory, its user, its environment and,
where the task's process is in a non-root cgroup, the same cgroups) and
:func:`start_in_docker` (a Docker task: ``docker exec`` through the Engine API).

The context comes from the kernel's view of the task's process (``/proc/<pid>``), so it
is exactly what the task runs with, whichever executor started it.  The command's
stdin is ``/dev/null``; stdout and stderr are pipes read on the event loop; it runs in
a session of its own, so :meth:`ExecSession.kill` ends everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import docker

from mesoslite.agent.containerizer.docker_spec import exit_code_to_wait_status

log = logging.getLogger("mesoslite.agent")

#: Bytes read from a pipe at a time (one output chunk at most).
CHUNK = 64 * 1024
#: Where cgroup hierarchies are mounted.
CGROUP_ROOT = "/sys/fs/cgroup"


@attrs.frozen
class ExecCommand:
    """What to run: ``argv`` (``executable`` when it differs from ``argv[0]``) and
    variables set over the task's environment."""

    argv: tuple[str, ...]
    executable: str | None = None
    environment: tuple[tuple[str, str], ...] = ()


class ExecSession:
    """A running command: :meth:`output` yields its chunks; then :attr:`status` is set."""

    def __init__(self, kill: Callable[[], None]) -> None:
        """An empty session; the starter feeds it."""
        self._queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._kill = kill
        #: The wait status once the command ended (None: unknown).
        self.status: int | None = None
        self.done = asyncio.Event()
        #: What feeds the session (kept so that it is not collected while it runs).
        self.runner: asyncio.Future[None] | None = None

    def put(self, stream: str, data: bytes) -> None:
        """Queue a chunk of ``stream`` (``STDOUT`` or ``STDERR``)."""
        self._queue.put_nowait((stream, data))

    def finish(self, status: int | None) -> None:
        """The command ended with wait status ``status`` (after its last chunk)."""
        self.status = status
        self._queue.put_nowait(None)

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        """The chunks in the order they were read, until the command ended."""
        while (item := await self._queue.get()) is not None:
            yield item
        self.done.set()

    def kill(self) -> None:
        """End the command and everything it started (idempotent)."""
        if not self.done.is_set():
            self._kill()


def _environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        raw = f.read()
    env: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def _cgroup_procs(pid: int) -> list[str]:
    """The ``cgroup.procs`` files of the task's cgroups that are not a hierarchy's root."""
    out: list[str] = []
    with contextlib.suppress(OSError), open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if path in ("", "/"):
                continue
            names = controllers.split(",") if controllers else []
            mounts = ([c.removeprefix("name=") for c in names[:1]] if names
                      else ["unified", ""])
            for mount in mounts:
                procs = os.path.join(CGROUP_ROOT, mount, path.lstrip("/"), "cgroup.procs")
                if os.path.exists(procs):
                    out.append(procs)
                    break
    return out


def task_context(pid: int, sandbox: str) -> tuple[dict[str, str], str, int, int, list[str]]:
    """(environment, working directory, uid, gid, cgroup.procs files) of process ``pid``
    (blocking: run it off the loop).  OSError when the process is gone."""
    env = _environ(pid)
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = env.get("MESOS_SANDBOX", sandbox)
    st = os.stat(f"/proc/{pid}")
    return env, cwd, st.st_uid, st.st_gid, _cgroup_procs(pid)


def join_cgroups(pid: int, cgroups: list[str]) -> None:
    """Move ``pid`` into the task's cgroups (best effort: they may be gone meanwhile)."""
    for procs in cgroups:
        try:
            with open(procs, "w", encoding="ascii") as f:
                f.write(str(pid))
        except OSError as exc:
            log.warning("exec: cannot join %s: %s", procs, exc)


async def _pump(stream: asyncio.StreamReader | None, name: str, session: ExecSession) -> None:
    if stream is None:
        return
    while chunk := await stream.read(CHUNK):
        session.put(name, chunk)


async def start_beside(pid: int, sandbox: str, command: ExecCommand) -> ExecSession:
    """Run ``command`` in the context of process ``pid`` (a task's); OSError if it cannot."""
    loop = asyncio.get_running_loop()
    env, cwd, uid, gid, cgroups = await loop.run_in_executor(None, task_context, pid, sandbox)
    env.update(command.environment)
    ids: dict[str, Any] = {}
    if os.geteuid() == 0 and (uid, gid) != (0, 0):
        ids = {"user": uid, "group": gid, "extra_groups": []}
    proc = await asyncio.create_subprocess_exec(
        *command.argv, executable=command.executable, cwd=cwd, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True, **ids)
    join_cgroups(proc.pid, cgroups)

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    session = ExecSession(kill)

    async def run() -> None:
        await asyncio.gather(_pump(proc.stdout, "STDOUT", session),
                             _pump(proc.stderr, "STDERR", session))
        code = await proc.wait()
        kill()  # what it left behind in its session goes with it
        session.finish(code << 8 if code >= 0 else -code)

    session.runner = asyncio.ensure_future(run())
    return session


def start_in_docker(options: Any, docker_id: str, command: ExecCommand,
                    loop: asyncio.AbstractEventLoop) -> ExecSession:
    """``docker exec`` ``command`` in container ``docker_id`` (blocking until it started:
    run it off the loop).  ``options``: the containerizer's DockerOptions."""
    # No read timeout: a command may be silent for long (types-docker says int; the SDK
    # hands it to requests, which takes None as "wait forever").
    api = docker.APIClient(base_url=options.base_url, version=options.api_version,
                           timeout=None)  # type: ignore[arg-type]
    created = api.exec_create(docker_id, list(command.argv), stdout=True, stderr=True,
                              stdin=False, environment=dict(command.environment) or None)
    exec_id = created["Id"]
    stream = api.exec_start(exec_id, stream=True, demux=True)

    def kill() -> None:
        with contextlib.suppress(Exception):
            host_pid = int(api.exec_inspect(exec_id).get("Pid") or 0)
            if host_pid > 0:
                os.kill(host_pid, signal.SIGKILL)

    session = ExecSession(kill)

    def read() -> None:
        status: int | None = None
        try:
            for out, err in stream:
                for name, data in (("STDOUT", out), ("STDERR", err)):
                    if data:
                        loop.call_soon_threadsafe(session.put, name, data)
            code = api.exec_inspect(exec_id).get("ExitCode")
            status = exit_code_to_wait_status(code if isinstance(code, int) else None)
        except Exception as exc:  # noqa: BLE001 - the daemon went away: status unknown
            log.warning("exec in %s: %s", docker_id[:12], exc)
        finally:
            api.close()
            loop.call_soon_threadsafe(session.finish, status)

    threading.Thread(target=read, name=f"docker-exec-{docker_id[:8]}", daemon=True).start()
    return session
