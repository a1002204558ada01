"""Process primitives below both the agent and the executors: spawn, reap, kill, measure.

Owns: starting a command in its own session (so its own process group) and
watching it.  :func:`spawn_async` runs ``subprocess.Popen``'s vfork path (no
``preexec_fn``) on a small spawn thread pool (the parent waits for the
child's exec, which must not stall an event loop); :func:`spawn_now` uses
``os.posix_spawn`` on the caller's thread (the command executor's cheap
path); stdout/stderr are appended to files.  A command may run as another user
(:class:`Credentials`: the fork path, as posix_spawn cannot switch users), start inside
a :class:`Placement` (a container's cgroups) and get rlimits (:func:`set_rlimits`).
:class:`ManagedProcess` reaps a
child without blocking the event loop (a pidfd watched by the loop; a worker
thread where pidfds are missing), kills what is left of its process group
when it ends, and terminates it with a grace period (SIGTERM to the group,
SIGKILL after the grace).  psutil measures a process tree
(:func:`tree_usage`) and finds processes by an environment variable
(:func:`find_by_env`) for cleanup; :func:`kill_pids` signals them;
:func:`process_alive` probes a pid.  :func:`run_captured` runs a short
command (a health check) with its output captured, bounded by a timeout.

The agent's :class:`~mesoslite.agent.containerizer.process.ProcessContainerizer`
and the command executor (:mod:`mesoslite.executor.command`) are built on
these; this module imports nothing from either.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import attrs

from mesoslite.protocol import CommandInfo

log = logging.getLogger("mesoslite.proc")

_HAS_PIDFD = hasattr(os, "pidfd_open")


class CommandError(ValueError):
    """A ``CommandInfo`` that cannot be run (e.g. no executable named)."""


@attrs.frozen
class ProcessUsage:
    """Resource usage of a process tree (the fields of Mesos ResourceStatistics it fills)."""

    timestamp: float
    cpus_user_time_secs: float
    cpus_system_time_secs: float
    mem_rss_bytes: int
    processes: int


@attrs.frozen
class Credentials:
    """Who a spawned command runs as: uid, primary gid and supplementary groups."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()


#: A context manager entered around a fork (e.g. the spawning thread inside a cgroup).
SpawnContext = contextlib.AbstractContextManager[Any]


class Placement(Protocol):
    """Where a new process must live from its first instruction (a container's cgroups)."""

    def enter(self) -> SpawnContext:
        """A context in which the calling thread's children are born in the place."""

    def place(self, pid: int) -> None:
        """Move a process that has not run its command yet into the place (OSError)."""


#: A shell command waits for this line on descriptor 3 before it runs (see spawn_now).
_GATE = "read _ <&3; exec 3<&-\n"


def describe_wait_status(status: int | None) -> str:
    """'exited with status N' / 'terminated by signal N (SIGNAME)' / 'exited (status unknown)'."""
    if status is None:
        return "exited (status unknown)"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = "unknown"
        return f"terminated by signal {sig} ({name})"
    if os.WIFEXITED(status):
        return f"exited with status {os.WEXITSTATUS(status)}"
    return f"ended with wait status {status}"


def exit_code(status: int | None) -> int | None:
    """The exit code (negative signal number when signalled), like ``Popen.returncode``."""
    if status is None:
        return None
    return os.waitstatus_to_exitcode(status)


def command_argv(command: CommandInfo) -> tuple[list[str], str | None]:
    """Mesos rules: shell → ``/bin/sh -c value``; else ``value`` is the executable and
    ``arguments`` the argv (argv[0] included; ``[value]`` when empty)."""
    if command.shell:
        return ["/bin/sh", "-c", command.value], None
    if not command.value:
        raise CommandError("command.value: expected an executable path, got ''")
    return (list(command.arguments) or [command.value]), command.value


class ManagedProcess:
    """A child process (or a re-attached one) watched by the event loop.

    ``exited`` resolves with the raw wait status (None when it is unknown: a
    re-attached process that is not our child).  When the process ends, what
    is left of its process group is SIGKILLed (the container is destroyed).
    """

    def __init__(
        self,
        pid: int,
        loop: asyncio.AbstractEventLoop,
        popen: subprocess.Popen[bytes] | None = None,
        create_time: float | None = None,
        *,
        child: bool | None = None,
    ) -> None:
        """Start watching ``pid``: our child when ``popen`` is given or ``child`` is True."""
        self.pid = pid
        self._loop = loop
        self._popen = popen
        self._is_child = popen is not None if child is None else child
        self._create_time = create_time
        self._started_at = time.time()
        self.exited: asyncio.Future[int | None] = loop.create_future()
        self._pidfd: int | None = None
        self._watch()

    @property
    def create_time(self) -> float:
        """When the process started, in the kernel's time base (what recovery compares).

        Read lazily from /proc through psutil: the kernel's start time can differ
        from ``time.time()`` at spawn by a second or more (boot-time rounding).
        """
        if self._create_time is None:
            import psutil

            try:
                self._create_time = psutil.Process(self.pid).create_time()
            except psutil.Error:
                self._create_time = self._started_at
        return self._create_time

    @property
    def status(self) -> int | None:
        """The wait status once ended (None before, or when unknown)."""
        return self.exited.result() if self.exited.done() else None

    @property
    def done(self) -> bool:
        """True once the process has ended and been reaped."""
        return self.exited.done()

    def _watch(self) -> None:
        if _HAS_PIDFD:
            try:
                self._pidfd = os.pidfd_open(self.pid)
            except ProcessLookupError:
                self._finish(self._reap(block=False))
                return
            except OSError:
                self._pidfd = None
            if self._pidfd is not None:
                self._loop.add_reader(self._pidfd, self._on_pidfd)
                return
        if self._is_child:
            fut = self._loop.run_in_executor(None, self._blocking_wait)
            fut.add_done_callback(lambda f: self._finish(f.result()))
        else:
            self._loop.create_task(self._poll_foreign())

    def _on_pidfd(self) -> None:
        assert self._pidfd is not None
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self._finish(self._reap(block=False))

    def _blocking_wait(self) -> int | None:  # worker thread (no pidfd support)
        try:
            return os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            return None

    async def _poll_foreign(self) -> None:
        import psutil

        while True:
            try:
                proc = psutil.Process(self.pid)
                if proc.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            await asyncio.sleep(0.5)
        self._finish(None)

    def _reap(self, block: bool) -> int | None:
        if not self._is_child:
            return None
        # The leader is a zombie: its pgid cannot be reused yet; clear the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return None
        if pid == 0:  # not actually ended (should not happen with a readable pidfd)
            pid, status = os.waitpid(self.pid, 0)
        return status

    def _finish(self, status: int | None) -> None:
        if self.exited.done():
            return
        if self._popen is not None:
            self._popen.returncode = exit_code(status) if status is not None else -1
        self.exited.set_result(status)

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the process group; False when it is gone."""
        if self.exited.done():
            return False
        try:
            os.killpg(self.pid, sig)
            return True
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
                return True
            return False
        except PermissionError:
            return False

    async def terminate(self, grace: float) -> int | None:
        """SIGTERM the group, SIGKILL after ``grace`` seconds; returns the wait status."""
        if not self.exited.done():
            self.signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self.exited), max(grace, 0.0))
            except TimeoutError:
                self.signal_group(signal.SIGKILL)
        return await asyncio.shield(self.exited)

    def close(self) -> None:
        """Stop watching (the process itself is left alone)."""
        if self._pidfd is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None


def _open_and_popen(
    argv: list[str],
    executable: str | None,
    cwd: str,
    env: Mapping[str, str],
    stdout_path: str,
    stderr_path: str,
    make_sandbox: bool,
    credentials: Credentials | None = None,
    context: SpawnContext | None = None,
) -> subprocess.Popen[bytes]:
    """Blocking part of a spawn: (sandbox), output files, fork/exec.

    With ``credentials`` the child takes that user, group and supplementary groups before
    it execs (a plain fork rather than a vfork: Python's rule for changing credentials);
    the output files are given to that user.  ``context`` is entered around the fork.
    """
    if make_sandbox:
        prepare_sandbox(cwd)
        if credentials is not None:  # the sandbox belongs to the user who runs in it
            os.chown(cwd, credentials.uid, credentials.gid)
            os.chmod(cwd, 0o750)  # noqa: S103 - the owner's group may read, as Mesos
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    out_fd = os.open(stdout_path, flags, 0o644)
    try:
        err_fd = os.open(stderr_path, flags, 0o644)
        try:
            return _popen(argv, executable, cwd, env, out_fd, err_fd, credentials, context)
        finally:
            os.close(err_fd)
    finally:
        os.close(out_fd)


def _as_user(credentials: Credentials | None) -> dict[str, Any]:
    """Popen's keyword arguments that switch to ``credentials`` (none when None)."""
    if credentials is None:
        return {}
    return {"user": credentials.uid, "group": credentials.gid,
            "extra_groups": list(credentials.groups or (credentials.gid,))}


def _give_files(credentials: Credentials | None, *fds: int) -> None:
    """Hand the task's output files to its user (it may rotate or reopen them)."""
    if credentials is not None:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.fchown(fd, credentials.uid, credentials.gid)


def _popen(argv: list[str], executable: str | None, cwd: str, env: Mapping[str, str],
           out_fd: int, err_fd: int, credentials: Credentials | None,
           context: SpawnContext | None) -> subprocess.Popen[bytes]:
    """Popen in a new session with stdin from /dev/null (as ``credentials``, in ``context``)."""
    _give_files(credentials, out_fd, err_fd)
    with context if context is not None else contextlib.nullcontext():
        return subprocess.Popen(
            argv, executable=executable, cwd=cwd, env=dict(env), stdin=_devnull(),
            stdout=out_fd, stderr=err_fd, start_new_session=True, close_fds=True,
            **_as_user(credentials),
        )


_DEVNULL: int | None = None
_POOL: concurrent.futures.ThreadPoolExecutor | None = None
#: Spawns run on this many threads so that waiting for a child's exec (and creating
#: its sandbox) never blocks an event loop; 0 spawns inline.  Tunable for benchmarks.
SPAWN_THREADS = int(os.environ.get("MESOSLITE_SPAWN_THREADS", "2"))


def _devnull() -> int:
    global _DEVNULL
    if _DEVNULL is None:
        _DEVNULL = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return _DEVNULL


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(SPAWN_THREADS, thread_name_prefix="spawn")
    return _POOL


def prepare_sandbox(path: str) -> None:
    """Create a run directory and point the ``latest`` link beside it at it."""
    os.makedirs(path, exist_ok=True)
    runs, name = os.path.split(path.rstrip("/"))
    latest = os.path.join(runs, "latest")
    try:
        os.symlink(name, latest)
    except FileExistsError:
        tmp = os.path.join(runs, f".latest.{name}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(name, tmp)
        os.replace(tmp, latest)


def _resolve_executable(path: str, env: Mapping[str, str]) -> list[str]:
    """Candidates for ``path`` as Popen tries them: as given when it names a directory,
    else in each directory of the child's ``PATH``."""
    if os.sep in path:
        return [path]
    return [os.path.join(d, path) for d in os.get_exec_path(env)]


def _posix_spawn_in(
    cwd: str, candidates: list[str], argv: list[str], env: Mapping[str, str],
    out_fd: int, err_fd: int, gate_fd: int = -1,
) -> int:
    actions = [
        (os.POSIX_SPAWN_DUP2, _devnull(), 0),
        (os.POSIX_SPAWN_DUP2, out_fd, 1),
        (os.POSIX_SPAWN_DUP2, err_fd, 2),
    ]
    if gate_fd >= 0:
        actions.append((os.POSIX_SPAWN_DUP2, gate_fd, 3))
    home = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(cwd)
        try:
            error: OSError | None = None
            for path in candidates:
                try:
                    return os.posix_spawn(path, argv, env, file_actions=actions, setsid=True,
                                          setsigdef=_RESTORED_SIGNALS)
                except (FileNotFoundError, NotADirectoryError) as exc:
                    error = error or exc
                except PermissionError as exc:  # as execvpe: remember it, try the next one
                    error = exc
            assert error is not None
            raise error
        finally:
            os.fchdir(home)
    finally:
        os.close(home)


#: Signals Python ignores that a command must get back at their defaults (as Popen does).
_RESTORED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(signal, name)
)
_HAS_POSIX_SPAWN = (
    hasattr(os, "posix_spawn") and hasattr(os, "POSIX_SPAWN_DUP2") and sys.platform == "linux"
)


def spawn_now(
    argv: list[str],
    *,
    executable: str | None = None,
    cwd: str,
    env: Mapping[str, str],
    stdout_path: str,
    stderr_path: str,
    make_sandbox: bool = False,
    loop: asyncio.AbstractEventLoop | None = None,
    credentials: Credentials | None = None,
    placement: Placement | None = None,
    rlimits: Mapping[int, int] | None = None,
) -> ManagedProcess:
    """Start ``argv`` in a new session in ``cwd`` right here, without a spawn thread.

    ``credentials`` (a user other than ours) are taken by util-linux's ``setpriv`` in
    front of the command (posix_spawn cannot change users; forking this process would
    block the caller far longer), else by the Popen path inline; ``rlimits`` (resource ->
    limit) are set on the child right after it starts (:func:`set_rlimits`).  With
    ``placement`` the command runs inside it from its start: a shell command on the
    posix_spawn path waits on a pipe (a first line ``read _ <&3; exec 3<&-`` in the same
    shell) until ``placement.place(pid)`` has moved it (one move); anything else is
    spawned inside ``placement.enter()`` (the spawning thread joins the place and comes
    back: two moves).

    The cheap path for a single-threaded process that spawns often (the command
    executor): ``os.posix_spawn`` (a vfork: the caller waits only until the child
    has exec'd) with ``setsid``, stdin from /dev/null, stdout/stderr appended to
    the files, and SIGPIPE/SIGXFSZ back at their defaults; with ``make_sandbox``
    the sandbox and its ``latest`` link are created first.  posix_spawn cannot
    change directory, so this process's working directory is switched to
    ``cwd`` around the call and back at once: that is only safe while no other
    thread runs, so with other threads alive (or without posix_spawn) it takes
    the Popen path inline instead.  Descriptors are not closed in the child:
    Python makes every descriptor close-on-exec (PEP 446), as do ZeroMQ and
    asyncio.  Raises OSError when the command cannot start.
    """
    loop = loop or asyncio.get_running_loop()
    prefix = _switch_prefix(credentials, executable)
    if not _HAS_POSIX_SPAWN or threading.active_count() > 1 or prefix is None:
        popen = _open_and_popen(argv, executable, cwd, env, stdout_path, stderr_path,
                                make_sandbox, credentials,
                                placement.enter() if placement is not None else None)
        set_rlimits(popen.pid, rlimits)
        return ManagedProcess(popen.pid, loop, popen=popen)
    if make_sandbox:
        prepare_sandbox(cwd)
    candidates = _resolve_executable(prefix[0] if prefix else executable or argv[0], env)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    out_fd = os.open(stdout_path, flags, 0o644)
    try:
        err_fd = os.open(stderr_path, flags, 0o644)
        try:
            _give_files(credentials, out_fd, err_fd)
            pid = _spawn_placed(cwd, candidates, argv, executable, env, out_fd, err_fd,
                                placement, prefix)
        finally:
            os.close(err_fd)
    finally:
        os.close(out_fd)
    set_rlimits(pid, rlimits)
    return ManagedProcess(pid, loop, child=True)


def _spawn_placed(cwd: str, candidates: list[str], argv: list[str], executable: str | None,
                  env: Mapping[str, str], out_fd: int, err_fd: int,
                  placement: Placement | None, prefix: list[str]) -> int:
    """posix_spawn in ``placement``: gated shell commands moved once, others born inside;
    ``prefix`` (a user switch) goes in front of the command."""
    if placement is None or executable is not None or len(argv) != 3 \
            or argv[:2] != ["/bin/sh", "-c"]:
        with placement.enter() if placement is not None else contextlib.nullcontext():
            return _posix_spawn_in(cwd, candidates, [*prefix, *argv], env, out_fd, err_fd)
    gate_r, gate_w = os.pipe()
    if gate_r == 3:  # (a dup2 onto itself would keep close-on-exec)
        gate_r, old = os.dup(gate_r), gate_r
        os.close(old)
    try:
        pid = _posix_spawn_in(cwd, candidates, [*prefix, argv[0], "-c", _GATE + argv[2]],
                              env, out_fd, err_fd, gate_r)
        try:
            placement.place(pid)
        except OSError:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            raise
        os.write(gate_w, b"\n")
        return pid
    finally:
        os.close(gate_r)
        os.close(gate_w)


#: util-linux's setpriv (resolved on first use; None: not installed).
_SETPRIV: list[str | None] = []


def _switch_prefix(credentials: Credentials | None, executable: str | None) -> list[str] | None:
    """What runs a command as ``credentials`` on the posix_spawn path: ``[]`` for no switch,
    ``setpriv --reuid --regid --groups --`` (an exec instead of forking this process); None
    when only Popen can (no setpriv, or an ``executable`` apart from ``argv[0]``)."""
    if credentials is None:
        return []
    if not _SETPRIV:
        _SETPRIV.append(next((p for p in ("/usr/bin/setpriv", "/bin/setpriv")
                              if os.access(p, os.X_OK)), None))
    if _SETPRIV[0] is None or executable is not None:
        return None
    groups = ",".join(str(g) for g in credentials.groups)
    return [_SETPRIV[0], f"--reuid={credentials.uid}", f"--regid={credentials.gid}",
            f"--groups={groups}" if groups else "--clear-groups", "--"]


def set_rlimits(pid: int, rlimits: Mapping[int, int] | None) -> None:
    """Set soft and hard ``rlimits`` (resource -> value) on a just-started process.

    The approximation of a memory limit where no cgroup can be made: applied right
    after the spawn (the child is still loading), so a child forked in between keeps the
    old limits.
    """
    import resource

    for res, value in (rlimits or {}).items():
        with contextlib.suppress(OSError, ValueError):
            resource.prlimit(pid, res, (value, value))


#: Rotating loggers still running, kept until they exit (so they are reaped).
_LOGGERS: set[ManagedProcess] = set()


def spawn_with_logger(
    argv: list[str],
    *,
    executable: str | None = None,
    cwd: str,
    env: Mapping[str, str],
    logger_argv: list[str],
    make_sandbox: bool = False,
    loop: asyncio.AbstractEventLoop | None = None,
    credentials: Credentials | None = None,
    placement: Placement | None = None,
    rlimits: Mapping[int, int] | None = None,
) -> ManagedProcess:
    """Start ``argv`` like :func:`spawn_now`, its stdout and stderr piped to a logger process.

    The logger (``logger_argv`` plus ``--stderr_fd N``) reads stdout on its standard input
    and stderr on descriptor N; it runs in its own session in ``cwd`` with ``env`` (so a
    search by ``MESOS_CONTAINER_ID`` finds it) and exits when both pipes close; it is
    reaped in the background; ``credentials``, ``placement`` (entered around the fork) and
    ``rlimits`` apply to the command as in :func:`spawn_now` (the logger keeps ours).
    Raises OSError when either cannot start.
    """
    loop = loop or asyncio.get_running_loop()
    if make_sandbox:
        prepare_sandbox(cwd)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        logger = subprocess.Popen(
            [*logger_argv, "--stderr_fd", str(err_r)], cwd=cwd, env=dict(env), stdin=out_r,
            stdout=_devnull(), stderr=_devnull(), pass_fds=(err_r,), start_new_session=True,
        )
        watched = ManagedProcess(logger.pid, loop, popen=logger)
        _LOGGERS.add(watched)
        watched.exited.add_done_callback(lambda _f: _LOGGERS.discard(watched))
        os.close(out_r)
        os.close(err_r)
        out_r = err_r = -1
        popen = _popen(argv, executable, cwd, env, out_w, err_w, credentials,
                       placement.enter() if placement is not None else None)
    finally:
        for fd in (out_r, err_r, out_w, err_w):
            if fd >= 0:
                os.close(fd)
    set_rlimits(popen.pid, rlimits)
    return ManagedProcess(popen.pid, loop, popen=popen)


def spawn(
    argv: list[str],
    *,
    executable: str | None = None,
    cwd: str,
    env: Mapping[str, str],
    stdout_path: str,
    stderr_path: str,
    loop: asyncio.AbstractEventLoop | None = None,
) -> ManagedProcess:
    """Start ``argv`` in a new session, blocking the caller until it has exec'd.

    Prefer :func:`spawn_async` on an event loop.  Raises OSError when it
    cannot start (missing executable or directory).
    """
    loop = loop or asyncio.get_running_loop()
    popen = _open_and_popen(argv, executable, cwd, env, stdout_path, stderr_path, False)
    return ManagedProcess(popen.pid, loop, popen=popen)


async def spawn_async(
    argv: list[str],
    *,
    executable: str | None = None,
    cwd: str,
    env: Mapping[str, str],
    stdout_path: str,
    stderr_path: str,
    make_sandbox: bool = False,
    credentials: Credentials | None = None,
) -> ManagedProcess:
    """Start ``argv`` in a new session from a spawn thread (the loop keeps running).

    With ``make_sandbox`` the working directory (a sandbox run directory) and
    its ``latest`` link are created first (owned by ``credentials``' user, mode 0750,
    when the command runs as that user).  Raises OSError when it cannot start.
    """
    loop = asyncio.get_running_loop()
    if SPAWN_THREADS <= 0:
        popen = _open_and_popen(
            argv, executable, cwd, env, stdout_path, stderr_path, make_sandbox, credentials
        )
        return ManagedProcess(popen.pid, loop, popen=popen)
    popen = await loop.run_in_executor(
        _pool(),
        _open_and_popen,
        argv,
        executable,
        cwd,
        env,
        stdout_path,
        stderr_path,
        make_sandbox,
        credentials,
    )
    return ManagedProcess(popen.pid, loop, popen=popen)


def tree_usage(pid: int) -> ProcessUsage | None:
    """CPU times and RSS of ``pid`` and all its descendants (blocking; psutil)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    user = system = 0.0
    rss = 0
    count = 0
    for proc in procs:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                rss += proc.memory_info().rss
        except psutil.Error:
            continue
        user += times.user + times.children_user
        system += times.system + times.children_system
        count += 1
    if not count:
        return None
    return ProcessUsage(
        timestamp=time.time(),
        cpus_user_time_secs=user,
        cpus_system_time_secs=system,
        mem_rss_bytes=rss,
        processes=count,
    )


def find_by_env(
    key: str, values: Iterable[str], parents: Iterable[int] | None = None
) -> dict[str, list[int]]:
    """Live processes whose environment has ``key`` set to one of ``values``.

    With ``parents``, only their direct children are looked at (cheap);
    otherwise every process of the machine (blocking; for cleanup only).
    """
    import psutil

    wanted = set(values)
    out: dict[str, list[int]] = {}
    if not wanted:
        return out
    me = os.getpid()
    candidates: list[Any] = []
    if parents is not None:
        for ppid in parents:
            with contextlib.suppress(psutil.Error):
                candidates.extend(psutil.Process(ppid).children())
    else:
        candidates = list(psutil.process_iter())
    for proc in candidates:
        if proc.pid == me:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            value = proc.environ().get(key)
        except psutil.Error:
            continue
        if value in wanted:
            out.setdefault(value, []).append(proc.pid)
    return out


def find_by_env_prefix(key: str, prefix: str) -> dict[str, list[int]]:
    """Live processes whose environment has ``key`` set to a path under ``prefix``
    (blocking: every process of the machine is looked at; for recovery only)."""
    import psutil

    out: dict[str, list[int]] = {}
    me = os.getpid()
    root = prefix.rstrip("/") + "/"
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            value = proc.environ().get(key)
        except psutil.Error:
            continue
        if value and value.startswith(root):
            out.setdefault(value, []).append(proc.pid)
    return out


def kill_pids(pids: Iterable[int], sig: int = signal.SIGKILL) -> int:
    """Signal each pid's process group and the pid itself; returns how many were signalled."""
    count = 0
    for pid in pids:
        hit = False
        for fn in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                fn(pid, sig)
                hit = True
        count += hit
    return count


# ------------------------------------------------------------------ short commands


@attrs.frozen
class CommandOutcome:
    """How a short command ran: its wait status (None: it timed out) and its output's tail."""

    status: int | None
    output: bytes


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _read_tail(stream: asyncio.StreamReader | None, keep: int) -> bytes:
    """Read a stream to its end, keeping only its last ``keep`` bytes."""
    if stream is None:
        return b""
    tail = b""
    while True:
        chunk = await stream.read(4096)
        if not chunk:
            return tail
        tail = (tail + chunk)[-keep:]


async def run_captured(argv: list[str], *, executable: str | None, cwd: str | None,
                       env: Mapping[str, str], timeout: float, keep: int,
                       credentials: Credentials | None = None) -> CommandOutcome:
    """Run ``argv`` in its own session, stdout and stderr together (the last ``keep`` bytes).

    Whatever the command leaves in its process group is killed when it ends;
    at the ``timeout`` the whole group is killed (status None), and so it is
    when the caller is cancelled; with ``credentials`` it runs as that user.  Raises
    OSError when it cannot start.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv, executable=executable, cwd=cwd, env=dict(env),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True, **_as_user(credentials),
    )
    reader = asyncio.ensure_future(_read_tail(proc.stdout, keep))
    try:
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            return CommandOutcome(None, b"")
        finally:
            # Whatever the command left in its group (background children) goes too.
            _kill_group(proc.pid)
        try:
            tail = await asyncio.wait_for(asyncio.shield(reader), 1.0)
        except TimeoutError:
            tail = b""
    except BaseException:
        _kill_group(proc.pid)  # cancelled: the command is abandoned; reap what was killed
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(proc.wait(), 2.0)
        raise
    finally:
        reader.cancel()
    status = (code << 8) if code >= 0 else -code  # back to a raw wait status
    return CommandOutcome(status, tail)


def process_alive(pid: int) -> bool:
    """True while a process with this pid exists (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
