"""Containers' cgroups on the file system (I/O; the values come from :mod:`.spec`).

Owns: finding the cgroup layout of this host (:func:`detect_layout`: v1 controllers
under ``--cgroups_hierarchy``, else the v2 unified mount) and whether this process may
create cgroups there (:func:`writable`); :class:`ContainerCgroup`, one container's
cgroup in every controller it needs: created with its limits before the task runs,
:meth:`~ContainerCgroup.enter`\\ ed by the spawning thread around the spawn (so the task
is born inside it: no child escapes between a spawn and a move), read for usage and OOM
kills, and destroyed (leftover processes SIGKILLed, directories removed);
:func:`statistics` reads a container's usage by id (the agent's ``/monitor/statistics``);
:func:`remove_unknown` destroys the cgroups of containers an agent no longer knows.

v1 moves a single thread (its ``tasks`` file), so a multi-threaded spawner moves only
the spawning thread; v2 moves the whole process (``cgroup.procs``): the command executor
spawns from its one thread.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from mesoslite.isolation.spec import (
    CGROUPS_DEFAULT,
    CgroupLayout,
    IsolationSettings,
    agent_scope,
    cgroup_dirs,
    cgroup_statistics,
    limit_writes,
    oom_kills,
    parse_isolation,
    parse_mountinfo,
    resolve_isolation,
    scope_dir,
    v2_layout,
)
from mesoslite.proc import kill_pids

log = logging.getLogger("mesoslite.isolation")

#: Seconds a cleanup waits for the processes it killed to leave a cgroup.
_SETTLE = 2.0
_USER_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def detect_layout(hierarchy: str = "/sys/fs/cgroup") -> CgroupLayout | None:
    """This host's cgroup layout under ``hierarchy`` (None: no cgroups there)."""
    try:
        layout, unified = parse_mountinfo(_read("/proc/self/mountinfo"), hierarchy)
    except OSError:
        return None
    if layout is not None or not unified:
        return layout
    try:
        return v2_layout(unified, _read(os.path.join(unified, "cgroup.controllers")))
    except OSError:
        return None


def writable(settings: IsolationSettings) -> bool:
    """True when this process can make the agent's scope in every controller it needs."""
    if settings.layout is None:
        return False
    try:
        prepare_scope(settings)
    except OSError as exc:
        log.debug("cgroups not writable: %s", exc)
        return False
    return True


def prepare_scope(settings: IsolationSettings) -> None:
    """Create ``<cgroups_root>/<scope>`` under each mount (v2: controllers enabled below)."""
    assert settings.layout is not None
    mounts = {settings.layout.mounts[c] for c in settings.controllers()
              if c in settings.layout.mounts}
    for mount in sorted(mounts):
        scope = scope_dir(settings, mount)
        os.makedirs(scope, exist_ok=True)
        if settings.layout.version == 2:
            _enable_v2_controllers(mount, scope, settings.controllers())


def _enable_v2_controllers(mount: str, scope: str, controllers: Iterable[str]) -> None:
    """Enable the controllers in each ``cgroup.subtree_control`` from the mount to the scope."""
    wanted = " ".join(f"+{c}" for c in controllers if c != "cpuacct")
    node = mount
    for part in os.path.relpath(scope, mount).split(os.sep):
        _write(os.path.join(node, "cgroup.subtree_control"), wanted)
        node = os.path.join(node, part)
    _write(os.path.join(node, "cgroup.subtree_control"), wanted)


#: (thread id, layout version) -> controller -> that thread's own cgroup path.
_HOMES: dict[tuple[int, int], dict[str, str]] = {}


def _thread_cgroups(version: int) -> dict[str, str]:
    """controller -> the calling thread's cgroup path (``/proc/thread-self/cgroup``)."""
    where: dict[str, str] = {}
    for line in _read("/proc/thread-self/cgroup").splitlines():
        _, ctls, path = line.split(":", 2)
        if bool(ctls) == (version == 2):  # v1: the controllers' lines; v2: the "0::" line
            continue
        for ctl in (ctls.split(",") if ctls else ("cpu", "cpuacct", "memory", "pids")):
            where.setdefault(ctl, path)
    return where


class ContainerCgroup:
    """One container's cgroup directories (one per distinct mount)."""

    def __init__(self, settings: IsolationSettings, container_id: str) -> None:
        """Name the container's cgroups (nothing is created until :meth:`create`)."""
        assert settings.layout is not None
        self.settings = settings
        self.container_id = container_id
        self.layout: CgroupLayout = settings.layout
        self.dirs = cgroup_dirs(settings, container_id)
        self._distinct = sorted(set(self.dirs.values()))

    def create(self, cpus: float, mem_mb: float) -> None:
        """Make the directories and write the limits; OSError (nothing left) on failure."""
        try:
            for path in self._distinct:
                try:
                    os.mkdir(path)
                except FileNotFoundError:  # the scope went away (another agent cleaned)
                    prepare_scope(self.settings)
                    os.mkdir(path)
            for ctl, name, value in limit_writes(self.settings, cpus, mem_mb):
                _write(os.path.join(self.dirs[ctl], name), value)
        except OSError:
            self.destroy()
            raise

    @contextlib.contextmanager
    def enter(self) -> Iterator[None]:
        """Run the body (a spawn) with the calling thread in this cgroup, then move back."""
        v1 = self.layout.version == 1
        own = str(threading.get_native_id() if v1 else os.getpid())
        target = "tasks" if v1 else "cgroup.procs"
        back = self._current_dirs()
        moved: list[str] = []
        try:
            for path in self._distinct:
                _write(os.path.join(path, target), own)
                moved.append(path)
            yield
        finally:
            for path in moved:
                home = back.get(path)
                if home is not None:
                    with contextlib.suppress(OSError):
                        _write(os.path.join(home, target), own)

    def place(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into this cgroup (OSError)."""
        for path in self._distinct:
            _write(os.path.join(path, "cgroup.procs"), str(pid))

    def _current_dirs(self) -> dict[str, str]:
        """Our directory -> where the calling thread is now in the same mount."""
        key = (threading.get_native_id(), self.layout.version)
        where = _HOMES.get(key)
        if where is None:  # (read once per thread: only enter() moves it, and back)
            where = _HOMES[key] = _thread_cgroups(self.layout.version)
        out: dict[str, str] = {}
        for ctl, path in self.dirs.items():
            mount, root = self.layout.mounts[ctl], self.layout.roots.get(ctl, "/")
            rel = where.get(ctl, "/")
            if root != "/" and rel.startswith(root):
                rel = rel[len(root):]
            out[path] = os.path.join(mount, rel.lstrip("/"))
        return out

    def oom_kills(self) -> int:
        """How many processes the kernel killed for exceeding the memory limit."""
        path = self.dirs.get("memory")
        if path is None:
            return 0
        name = "memory.events" if self.layout.version == 2 else "memory.oom_control"
        try:
            return oom_kills(_read(os.path.join(path, name)))
        except OSError:
            return 0

    def oom_notifier(self) -> int | None:
        """v1: a non-blocking eventfd the kernel signals on an OOM in this memory cgroup
        (and when the cgroup is removed); None on v2 or without a memory cgroup."""
        path = self.dirs.get("memory")
        if path is None or self.layout.version != 1 or not hasattr(os, "eventfd"):
            return None
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            ofd = os.open(os.path.join(path, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
            try:
                _write(os.path.join(path, "cgroup.event_control"), f"{efd} {ofd}")
            finally:
                os.close(ofd)
        except OSError as exc:
            log.debug("no OOM notification for %s: %s", self.container_id, exc)
            os.close(efd)
            return None
        return efd

    def max_usage_bytes(self) -> int:
        """The most memory the container used (0 when unknown)."""
        path = self.dirs.get("memory")
        name = "memory.peak" if self.layout.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int(_read(os.path.join(path, name)).strip()) if path else 0
        except (OSError, ValueError):
            return 0

    def pids(self) -> set[int]:
        """The processes in the container's cgroups."""
        found: set[int] = set()
        for path in self._distinct:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in _read(os.path.join(path, "cgroup.procs")).split())
        return found

    def destroy(self, settle: float = 0.0) -> bool:
        """SIGKILL what is left inside, remove the directories; False if some remain.

        ``settle``: seconds to wait (blocking) for the killed processes to leave.
        """
        if self._remove():
            return True
        deadline = time.monotonic() + settle
        while True:
            pids = self.pids()
            if pids:
                kill_pids(pids, signal.SIGKILL)
            if not pids or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        return self._remove()

    def _remove(self) -> bool:
        """rmdir each directory (one with processes left stays: False)."""
        gone = True
        for path in self._distinct:
            try:
                os.rmdir(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    log.warning("cgroup %s: %s", path, exc)
                gone = False
        return gone


#: Files read for a container's statistics, per controller and layout version.
_STAT_FILES = {
    1: {"cpuacct": ("cpuacct.stat",), "cpu": ("cpu.stat",),
        "memory": ("memory.stat", "memory.usage_in_bytes", "memory.limit_in_bytes",
                   "memory.max_usage_in_bytes"),
        "pids": ("pids.current",)},
    2: {"cpu": ("cpu.stat",), "memory": ("memory.stat", "memory.current", "memory.max",
                                         "memory.peak"),
        "pids": ("pids.current",)},
}


def statistics(settings: IsolationSettings, container_id: str) -> dict[str, Any] | None:
    """A container's usage from its cgroups (None when it has none; blocking)."""
    if settings.layout is None:
        return None
    dirs = cgroup_dirs(settings, container_id)
    version = settings.layout.version
    files: dict[str, str] = {}
    for ctl, names in _STAT_FILES[version].items():
        if ctl not in dirs:
            continue
        for name in names:
            with contextlib.suppress(OSError):
                files[name] = _read(os.path.join(dirs[ctl], name))
    if not files:
        return None
    stats = cgroup_statistics(version, files, _USER_HZ)
    procs = ContainerCgroup(settings, container_id).pids()
    if procs:  # resident memory of its processes (what psutil would say), as posix/mem
        stats["mem_rss_bytes"] = sum(_resident_bytes(pid) for pid in procs)
    return stats


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _resident_bytes(pid: int) -> int:
    """A process's resident set (0 when it is gone)."""
    try:
        return int(_read(f"/proc/{pid}/statm").split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def known_containers(settings: IsolationSettings) -> set[str]:
    """Container ids that have a cgroup in the agent's scope (any controller)."""
    found: set[str] = set()
    if settings.layout is None:
        return found
    for ctl in settings.controllers():
        mount = settings.layout.mounts.get(ctl)
        if mount is None:
            continue
        with contextlib.suppress(OSError):
            found.update(e.name for e in os.scandir(scope_dir(settings, mount)) if e.is_dir())
    return found


def remove_unknown(settings: IsolationSettings, keep: Iterable[str]) -> list[str]:
    """Destroy the cgroups in the agent's scope of containers not in ``keep`` (blocking)."""
    if not settings.cgroups:
        return []
    removed = []
    for cid in sorted(known_containers(settings) - set(keep)):
        cgroup = ContainerCgroup(settings, cid)
        if cgroup.pids():
            log.warning("Killing %d process(es) left in the cgroup of unknown container %s",
                        len(cgroup.pids()), cid)
        if not cgroup.destroy(settle=_SETTLE):
            log.warning("cgroups of unknown container %s: still busy", cid)
        removed.append(cid)
    return removed


def remove_scope(settings: IsolationSettings) -> None:
    """Remove the agent's own cgroup level where no container is left in it."""
    if settings.layout is None:
        return
    for mount in sorted({settings.layout.mounts[c] for c in settings.controllers()
                         if c in settings.layout.mounts}):
        with contextlib.suppress(OSError):
            os.rmdir(scope_dir(settings, mount))


def destroy(settings: IsolationSettings, container_ids: Iterable[str]) -> None:
    """Destroy these containers' cgroups, if they have any (blocking)."""
    if settings.cgroups:
        for cid in container_ids:
            ContainerCgroup(settings, cid).destroy(settle=_SETTLE)


def resolve_settings(requested: str, *, work_dir: str, hierarchy: str, cgroups_root: str,
                     **options: object) -> tuple[IsolationSettings, str]:
    """The agent's settings for ``--isolation`` text on this host, and a warning ('').

    ``auto`` takes the cgroups isolators where the agent can create its scope under
    ``hierarchy``; ValueError (naming ``--isolation``) when a ``cgroups/*`` isolator is
    asked for where that is impossible.  ``options`` are the other
    :class:`IsolationSettings` fields.
    """
    names = parse_isolation(requested)
    probe = IsolationSettings(isolators=CGROUPS_DEFAULT, cgroups_root=cgroups_root,
                              scope=agent_scope(work_dir), layout=detect_layout(hierarchy))
    wanted = names if names is not None else CGROUPS_DEFAULT
    probe = attrs.evolve(probe, isolators=tuple(i for i in wanted if i.startswith("cgroups/")))
    can = bool(probe.isolators) and probe.cgroups and writable(probe)
    isolators, warning = resolve_isolation(names, can or (names is not None and
                                                          not probe.isolators))
    settings = IsolationSettings(isolators=isolators, cgroups_root=cgroups_root,
                                 scope=probe.scope,
                                 layout=probe.layout if can else None,
                                 **options)  # type: ignore[arg-type]
    return settings, warning
