"""How the command executor confines one command task (user, environment, cgroups, disk).

Owns: :func:`confine`, which readies everything a task needs before it is spawned, in
the agent's :class:`~mesoslite.isolation.spec.IsolationSettings`: its user
(``CommandInfo.user``, else the framework's, with ``--switch_user``; an unknown user or
a non-root executor asked to switch is a :class:`ConfineError` naming it), its clean
environment (the task's own variables over ``PATH``/``HOME``/``USER`` and the
``MESOS_*`` ones, never the agent's environment), its sandbox (created, owned by the
user, mode 0750), its cgroups (created with the cpus, mem and pids limits; entered by the
spawn so the task is born inside) or, without cgroups, an ``RLIMIT_DATA`` for
``posix/mem``; and :class:`Confinement`, what the executor keeps per task: the spawn's
keyword arguments, whether the task hit a limit (OOM kills in its memory cgroup, or a
disk quota :func:`disk_usage` found exceeded) and :meth:`Confinement.release`, which
destroys the cgroups once the task has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from mesoslite.isolation.cgroups import ContainerCgroup
from mesoslite.isolation.spec import IsolationSettings, clean_environment, memory_limit_bytes
from mesoslite.isolation.users import TaskUser, UserError, own_sandbox, task_user
from mesoslite.proc import Credentials, prepare_sandbox, run_captured
from mesoslite.protocol import Reason, TaskInfo

log = logging.getLogger("mesoslite.executor.command")

#: How often (seconds) and how many times a cgroup whose processes are still exiting is
#: tried again before it is left for the agent's cleanup.
_RELEASE_RETRY = 0.1
_RELEASE_TRIES = 100


class ConfineError(RuntimeError):
    """The task cannot be confined as asked (the message names the user or the cgroup)."""


@attrs.define
class Confinement:
    """One task's user, environment, cgroup and limits (and a limit it hit)."""

    user: TaskUser
    env: dict[str, str]
    cgroup: ContainerCgroup | None = None
    rlimits: dict[int, int] = attrs.field(factory=dict)
    mem_mb: float = 0.0
    disk_mb: float = 0.0
    #: (message, reason) of a limit the task was killed for (disk, memory), else None.
    limitation: tuple[str, Reason] | None = None
    #: The v1 OOM eventfd being watched (None: none).
    oom_fd: int | None = None

    @property
    def credentials(self) -> Credentials | None:
        """The task user's credentials (None: the executor's own user)."""
        if not self.user.switches:
            return None
        return Credentials(self.user.uid, self.user.gid, self.user.groups)

    def spawn_kwargs(self) -> dict[str, Any]:
        """``credentials``, ``placement`` and ``rlimits`` for the spawn functions."""
        return {"credentials": self.credentials, "placement": self.cgroup,
                "rlimits": self.rlimits or None}

    def memory_limitation(self, oom: bool = False) -> tuple[str, Reason] | None:
        """The memory cgroup's OOM kills (or the OOM ``oom`` says the kernel just
        signalled) as a limitation (None: none happened)."""
        if self.cgroup is None or (not oom and self.cgroup.oom_kills() <= 0):
            return None
        used = self.cgroup.max_usage_bytes() / (1 << 20)
        message = (f"Memory limit exceeded: Requested: {self.mem_mb:g}MB Maximum Used: "
                   f"{used:.0f}MB")
        return message, Reason.REASON_CONTAINER_LIMITATION_MEMORY

    def hit_limit(self) -> tuple[str, Reason] | None:
        """Why the task ended at a limit: the memory cgroup's OOM kills, or the disk quota."""
        return self.memory_limitation() or self.limitation

    def watch_oom(self, loop: asyncio.AbstractEventLoop,
                  on_oom: Callable[[tuple[str, Reason]], None]) -> None:
        """Call ``on_oom(limitation)`` as soon as the kernel OOM-kills inside the task's
        memory cgroup (v1; elsewhere the end of the task tells)."""
        if self.cgroup is None:
            return
        fd = self.cgroup.oom_notifier()
        if fd is None:
            return
        self.oom_fd = fd

        def readable() -> None:
            # The kernel signals the OOM before its kill counts it: the event itself is the
            # limitation, as in Mesos (the watch stops before the cgroup is removed, which
            # signals too).
            with contextlib.suppress(OSError):
                os.eventfd_read(fd)
            limit = self.memory_limitation(oom=True)
            self._stop_oom_watch(loop)
            if limit is not None:
                on_oom(limit)

        loop.add_reader(fd, readable)

    def _stop_oom_watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.oom_fd is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_reader(self.oom_fd)
            os.close(self.oom_fd)
            self.oom_fd = None

    def release(self, loop: asyncio.AbstractEventLoop, tries: int = _RELEASE_TRIES) -> None:
        """Destroy the cgroups (again a little later while processes are still exiting)."""
        self._stop_oom_watch(loop)
        if self.cgroup is None or self.cgroup.destroy():
            return
        if tries > 1:
            loop.call_later(_RELEASE_RETRY, self.release, loop, tries - 1)
        else:
            log.warning("cgroups of container %s still busy; left for the agent",
                        self.cgroup.container_id)


def confine(task: TaskInfo, settings: IsolationSettings, framework_user: str,
            executor_env: Mapping[str, str], sandbox: str) -> Confinement:
    """Ready ``task`` to be spawned in ``sandbox`` (ConfineError: it cannot be)."""
    assert task.command is not None
    try:
        user = task_user(task.command.user, framework_user, settings.switch_user)
    except UserError as exc:
        raise ConfineError(str(exc)) from None
    env = clean_environment(executor_env, user.name, user.home)
    env.update(task.command.environment)
    conf = Confinement(user, env, mem_mb=task.resources.mem, disk_mb=task.resources.disk)
    try:
        prepare_sandbox(sandbox)
        own_sandbox(sandbox, user)
    except OSError as exc:
        raise ConfineError(f"cannot prepare the sandbox {sandbox} for user "
                           f"{user.name!r}: {exc}") from None
    container_id = env.get("MESOS_CONTAINER_ID", "")
    if settings.cgroups and container_id:
        cgroup = ContainerCgroup(settings, container_id)
        try:
            cgroup.create(task.resources.cpus, task.resources.mem)
        except OSError as exc:
            raise ConfineError(f"cannot create the cgroups of container {container_id}: "
                               f"{exc}") from None
        conf.cgroup = cgroup
    if settings.has("posix/mem") and not settings.has("cgroups/mem") and conf.mem_mb > 0:
        conf.rlimits[resource.RLIMIT_DATA] = memory_limit_bytes(conf.mem_mb)
    return conf


async def disk_usage(path: str, timeout: float = 60.0) -> int | None:
    """Bytes under ``path`` as ``du -k -s`` counts them (None when du fails)."""
    try:
        outcome = await run_captured(["du", "-k", "-s", path], executable=None, cwd=None,
                                     env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                                     timeout=timeout, keep=4096)
    except OSError:
        return None
    if outcome.status is None:
        return None
    first = outcome.output.decode(errors="replace").split("\n", 1)[0].split()
    try:
        return int(first[0]) * 1024
    except (IndexError, ValueError):
        return None
