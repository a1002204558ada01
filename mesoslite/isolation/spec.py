"""Isolation settings, cgroup paths and limit values, usage parsing, task environments (PURE).

Owns: the ``--isolation`` names (Mesos's: ``cgroups/cpu``, ``cgroups/mem``,
``cgroups/pids``, ``posix/cpu``, ``posix/mem``, ``posix/disk``; plus ``auto`` and
``none``) and how ``auto`` resolves; :class:`IsolationSettings`, what the agent hands
each command executor (one JSON environment variable, :data:`ENV`); a container's cgroup
directories (``<mount>/<cgroups_root>/<agent scope>/<container_id>``) and the files to
write for its cpus and mem in the v1 and the v2 layout; parsing what the kernel reports
(``cpuacct.stat``, ``memory.stat``, ``cpu.stat``, OOM kills) into Mesos
``ResourceStatistics`` names; and the clean environment a task starts from.  Plain
values in, plain values out: the file system is :mod:`mesoslite.isolation.cgroups`.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Mapping
from typing import Any

import attrs

ENV = "MESOSLITE_ISOLATION"
AUTO = "auto"
NONE = "none"
KNOWN_ISOLATORS = ("cgroups/cpu", "cgroups/mem", "cgroups/pids",
                   "posix/cpu", "posix/mem", "posix/disk")
#: ``auto`` where a cgroup hierarchy is writable, and where none is.
CGROUPS_DEFAULT = ("cgroups/cpu", "cgroups/mem", "cgroups/pids")
POSIX_DEFAULT = ("posix/cpu", "posix/mem")
#: Mesos's floors: a memory limit of at least 32 MB, at least 2 CPU shares, a CFS quota
#: of at least 1 ms; its CFS period (100 ms).
MIN_MEMORY_BYTES = 32 << 20
MIN_CPU_SHARES = 2
CFS_PERIOD_US = 100_000
MIN_CFS_QUOTA_US = 1_000
DEFAULT_PIDS_LIMIT = 4096
#: Where a task's PATH comes from when the executor has none (Mesos's default).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: ``MESOS_*`` variables that belong to the executor alone (a task holding its token could
#: speak for the executor).
EXECUTOR_ONLY = ("MESOS_EXECUTOR_AUTHENTICATION_TOKEN",)
#: The controllers each cgroups isolator needs.
_CONTROLLERS = {"cgroups/cpu": ("cpu", "cpuacct"), "cgroups/mem": ("memory",),
                "cgroups/pids": ("pids",)}


def parse_isolation(text: str) -> tuple[str, ...] | None:
    """``--isolation`` text → isolator names (None: ``auto``; ``()``: ``none``).

    Raises ValueError naming the unknown item.
    """
    items = tuple(dict.fromkeys(i.strip() for i in text.split(",") if i.strip()))
    if items in ((AUTO,), ()):
        return None
    if items == (NONE,):
        return ()
    for item in items:
        if item not in KNOWN_ISOLATORS:
            raise ValueError(f"unknown isolator {item!r} (known: {', '.join(KNOWN_ISOLATORS)}, "
                             f"or {AUTO} or {NONE} alone)")
    return items


def resolve_isolation(requested: tuple[str, ...] | None,
                      cgroups_writable: bool) -> tuple[tuple[str, ...], str]:
    """The isolators to run and a warning ('' for none).

    ``auto`` (None) is the cgroups isolators where a hierarchy is writable, else the
    posix ones with a warning; asking for a ``cgroups/*`` isolator where no hierarchy is
    writable raises ValueError naming ``--isolation``.
    """
    if requested is None:
        if cgroups_writable:
            return CGROUPS_DEFAULT, ""
        return POSIX_DEFAULT, ("no writable cgroup hierarchy: shell tasks get no cpu or "
                               "memory limits from cgroups (rlimits only: posix/mem sets "
                               "RLIMIT_DATA); run the agent as root on a host with cgroups")
    wanted = [i for i in requested if i.startswith("cgroups/")]
    if wanted and not cgroups_writable:
        raise ValueError(f"--isolation: {wanted[0]} needs a writable cgroup hierarchy "
                         "(run the agent as root, or choose posix/cpu,posix/mem)")
    return requested, ""


def agent_scope(work_dir: str) -> str:
    """The agent's own level under ``--cgroups_root`` (several agents share a machine)."""
    digest = hashlib.sha256(work_dir.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"agent-{digest}"


@attrs.frozen
class CgroupLayout:
    """Where the controllers are mounted: v1 (one mount per controller) or v2 (unified)."""

    version: int
    #: controller -> mount point (v2: every controller -> the one unified mount).
    mounts: dict[str, str] = attrs.field(factory=dict)
    #: controller -> the hierarchy path mounted there ("/" unless a subtree is mounted).
    roots: dict[str, str] = attrs.field(factory=dict)


V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")


def _unescape(path: str) -> str:
    """A mountinfo path with its octal escapes (``\\040`` for a space) undone."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"),
                       ("\\134", "\\")):
        path = path.replace(code, char)
    return path


def parse_mountinfo(text: str, hierarchy: str) -> tuple[CgroupLayout | None, str]:
    """The v1 layout from ``/proc/self/mountinfo`` (controllers mounted under
    ``hierarchy``), or ``(None, unified mount)``: the cgroup2 mount at ``hierarchy`` (or
    its ``unified`` child) whose controllers the caller reads; ``(None, "")``: neither."""
    base = hierarchy.rstrip("/") or "/"
    mounts: dict[str, str] = {}
    roots: dict[str, str] = {}
    unified = ""
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        root, point, fstype = _unescape(fields[3]), _unescape(fields[4]), tail[0]
        if posixpath.dirname(point.rstrip("/")) != base and point.rstrip("/") != base:
            continue
        if fstype == "cgroup":
            for ctl in tail[2].split(","):
                if ctl in V1_CONTROLLERS and ctl not in mounts:
                    mounts[ctl], roots[ctl] = point, root
        elif fstype == "cgroup2" and (not unified or point.rstrip("/") == base):
            unified = point
    if mounts.get("memory") or mounts.get("cpu"):
        return CgroupLayout(1, mounts, roots), ""
    return None, unified


def v2_layout(mount: str, controllers_text: str) -> CgroupLayout | None:
    """The v2 layout of the unified ``mount`` given its ``cgroup.controllers`` text."""
    enabled = set(controllers_text.split())
    mounts: dict[str, str] = {ctl: mount for ctl in ("cpu", "memory", "pids") if ctl in enabled}
    if "cpu" in mounts:
        mounts["cpuacct"] = mount  # v2 accounts cpu time in the cpu controller's cpu.stat
    if not mounts:
        return None
    return CgroupLayout(2, mounts, dict.fromkeys(mounts, "/"))


@attrs.frozen
class IsolationSettings:
    """What a command executor applies to each task (the agent's resolved flags)."""

    isolators: tuple[str, ...] = ()
    switch_user: bool = True
    cgroups_root: str = "mesoslite"
    scope: str = ""
    layout: CgroupLayout | None = None
    enable_cfs: bool = False
    pids_limit: int = DEFAULT_PIDS_LIMIT
    disk_watch_interval: float = 15.0
    enforce_disk_quota: bool = False

    def has(self, isolator: str) -> bool:
        """True when ``isolator`` is on."""
        return isolator in self.isolators

    @property
    def cgroups(self) -> bool:
        """True when some cgroups isolator is on (and a layout is known)."""
        return self.layout is not None and bool(self.controllers())

    def controllers(self) -> tuple[str, ...]:
        """The controllers the cgroups isolators need, in a stable order."""
        out: list[str] = []
        for isolator in self.isolators:
            for ctl in _CONTROLLERS.get(isolator, ()):
                if ctl not in out:
                    out.append(ctl)
        return tuple(out)

    def to_env(self) -> dict[str, str]:
        """The one environment variable that carries these settings to an executor."""
        return {ENV: json.dumps(attrs.asdict(self), sort_keys=True)}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> IsolationSettings | None:
        """The settings in ``env`` (None when absent); ValueError when malformed."""
        text = env.get(ENV)
        if not text:
            return None
        try:
            raw = json.loads(text)
            layout = raw.pop("layout", None)
            raw["isolators"] = tuple(raw.get("isolators", ()))
            return cls(**raw, layout=CgroupLayout(**layout) if layout else None)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{ENV}: malformed isolation settings: {exc}") from None


def cgroup_dirs(settings: IsolationSettings, container_id: str) -> dict[str, str]:
    """controller -> the container's cgroup directory (controllers sharing a mount share it)."""
    layout = settings.layout
    if layout is None:
        return {}
    out: dict[str, str] = {}
    for ctl in settings.controllers():
        mount = layout.mounts.get(ctl)
        if mount:
            out[ctl] = posixpath.join(scope_dir(settings, mount), container_id)
    return out


def scope_dir(settings: IsolationSettings, mount: str) -> str:
    """The agent's directory under one mount: ``<mount>/<cgroups_root>/<scope>``."""
    return posixpath.join(mount, settings.cgroups_root.strip("/"), settings.scope)


def cpu_shares(cpus: float) -> int:
    """``cpu.shares`` for ``cpus`` (1024 per cpu, at least 2)."""
    return max(int(cpus * 1024), MIN_CPU_SHARES)


def cpu_weight(shares: int) -> int:
    """The v2 ``cpu.weight`` (1-10000) equivalent to v1 ``shares`` (2-262144)."""
    return 1 + ((max(MIN_CPU_SHARES, min(shares, 262144)) - 2) * 9999) // 262142


def cfs_quota_us(cpus: float) -> int:
    """``cpu.cfs_quota_us`` for ``cpus`` over :data:`CFS_PERIOD_US` (at least 1 ms)."""
    return max(int(cpus * CFS_PERIOD_US), MIN_CFS_QUOTA_US)


def memory_limit_bytes(mem_mb: float) -> int:
    """The memory limit for ``mem`` megabytes (at least 32 MB, as Mesos)."""
    return max(int(mem_mb * (1 << 20)), MIN_MEMORY_BYTES)


def limit_writes(settings: IsolationSettings, cpus: float,
                 mem_mb: float) -> list[tuple[str, str, str]]:
    """``(controller, file, value)`` to write into a new container's cgroups, in order."""
    if settings.layout is None:
        return []
    v2 = settings.layout.version == 2
    out: list[tuple[str, str, str]] = []
    if settings.has("cgroups/cpu") and cpus > 0:
        shares = cpu_shares(cpus)
        out.append(("cpu", "cpu.weight", str(cpu_weight(shares))) if v2
                   else ("cpu", "cpu.shares", str(shares)))
        if settings.enable_cfs:
            quota = cfs_quota_us(cpus)
            out += ([("cpu", "cpu.max", f"{quota} {CFS_PERIOD_US}")] if v2 else
                    [("cpu", "cpu.cfs_period_us", str(CFS_PERIOD_US)),
                     ("cpu", "cpu.cfs_quota_us", str(quota))])
    if settings.has("cgroups/mem") and mem_mb > 0:
        limit = str(memory_limit_bytes(mem_mb))
        out.append(("memory", "memory.max", limit) if v2
                   else ("memory", "memory.limit_in_bytes", limit))
    if settings.has("cgroups/pids") and settings.pids_limit > 0:
        out.append(("pids", "pids.max", str(settings.pids_limit)))
    return out


def parse_keyed(text: str) -> dict[str, int]:
    """``"key value"`` lines (memory.stat, cpu.stat, memory.events, ...) → ints."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        try:
            out[key] = int(value.strip())
        except ValueError:
            continue
    return out


def oom_kills(text: str) -> int:
    """OOM kills in ``memory.oom_control`` (v1) or ``memory.events`` (v2) text."""
    return parse_keyed(text).get("oom_kill", 0)


def _number(text: str | None) -> int:
    """An integer file's value (0 for missing, empty or ``max``)."""
    try:
        return int((text or "").strip())
    except ValueError:
        return 0


def cgroup_statistics(version: int, files: Mapping[str, str], user_hz: int) -> dict[str, Any]:
    """Mesos ``ResourceStatistics`` fields from a container's cgroup files (name -> text).

    Only the fields whose files were read are filled.
    """
    stats: dict[str, Any] = {}
    if version == 2:
        cpu = parse_keyed(files.get("cpu.stat", ""))
        if "user_usec" in cpu:
            stats["cpus_user_time_secs"] = cpu["user_usec"] / 1e6
            stats["cpus_system_time_secs"] = cpu.get("system_usec", 0) / 1e6
        throttled = cpu.get("throttled_usec", 0) / 1e6
    else:
        acct = parse_keyed(files.get("cpuacct.stat", ""))
        if "user" in acct:
            stats["cpus_user_time_secs"] = acct["user"] / user_hz
            stats["cpus_system_time_secs"] = acct.get("system", 0) / user_hz
        cpu = parse_keyed(files.get("cpu.stat", ""))
        throttled = cpu.get("throttled_time", 0) / 1e9
    if "nr_periods" in cpu:
        stats["cpus_nr_periods"] = cpu["nr_periods"]
        stats["cpus_nr_throttled"] = cpu.get("nr_throttled", 0)
        stats["cpus_throttled_time_secs"] = round(throttled, 6)
    if "memory.stat" in files:
        mem = parse_keyed(files["memory.stat"])
        if version == 2:
            stats["mem_rss_bytes"] = mem.get("anon", 0)
            stats["mem_cache_bytes"] = mem.get("file", 0)
        else:
            stats["mem_rss_bytes"] = mem.get("total_rss", mem.get("rss", 0))
            stats["mem_cache_bytes"] = mem.get("total_cache", mem.get("cache", 0))
    for name, key in (("memory.usage_in_bytes", "mem_total_bytes"),
                      ("memory.current", "mem_total_bytes"),
                      ("memory.limit_in_bytes", "mem_limit_bytes"),
                      ("memory.max", "mem_limit_bytes"),
                      ("memory.max_usage_in_bytes", "mem_max_usage_bytes"),
                      ("memory.peak", "mem_max_usage_bytes"),
                      ("pids.current", "processes")):
        if name in files:
            stats[key] = _number(files[name])
    return stats


def clean_environment(executor_env: Mapping[str, str], user: str, home: str) -> dict[str, str]:
    """What a task starts from: ``PATH`` (the executor's, else Mesos's default),
    ``HOME``, ``USER`` and ``LOGNAME`` of the task's user, and the executor's ``MESOS_*``
    variables but the executor's token; nothing else of the agent's environment.  The
    task's own variables (which the agent builds: ``MESOS_SANDBOX``, ``PORT0``,
    ``MARATHON_*``, the app's ``env``) go on top."""
    env = {k: v for k, v in executor_env.items()
           if k.startswith("MESOS_") and k not in EXECUTOR_ONLY}
    env["PATH"] = executor_env.get("PATH") or DEFAULT_PATH
    if home:
        env["HOME"] = home
    if user:
        env["USER"] = env["LOGNAME"] = user
    return env


def user_problem(wanted: str, wanted_uid: int, agent_uid: int, agent_user: str) -> str:
    """Why a task cannot run as ``wanted`` ('' when it can): a non-root agent runs
    tasks only as its own user (as Mesos)."""
    if wanted_uid == agent_uid or agent_uid == 0:
        return ""
    return (f"cannot run the task as user {wanted!r}: the agent runs as {agent_user!r}, "
            "not root, so it cannot switch users (run it as root, or with "
            "--switch_user=false to run tasks as the agent's user)")
