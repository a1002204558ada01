"""When completed sandboxes are garbage collected (PURE).

Owns: the agent's sandbox garbage-collection schedule, as Mesos's agent does it.
A completed executor run's sandbox is removed ``gc_delay`` after it completed
(its directory's modification time, which the shell sets at completion); as the
disk fills, sooner: every ``disk_watch_interval`` the shell measures the work
directory's disk usage and removes every tracked sandbox older than
``gc_delay * max(0, 1 - gc_disk_headroom - usage)`` (:func:`age_limit`).

- :class:`GcSchedule` tracks completed sandboxes (path → completion time) and
  answers which are due (:meth:`GcSchedule.due`); it never sees a live one (the
  shell only tracks runs its core no longer knows as running, and checks again
  before removing).
- :func:`parse_duration` reads Mesos duration text (``1weeks``, ``30secs``) or
  plain seconds for the GC flags.
- :class:`Collected` remembers (bounded) what was removed, so ``/files`` can say
  that a sandbox is gone instead of only "does not exist".
"""

from __future__ import annotations

import collections
import re

import attrs

#: Mesos's Duration units (stout's ``Duration::parse``), in seconds.
_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "secs": 1.0, "mins": 60.0, "hrs": 3600.0,
          "days": 86400.0, "weeks": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$")

#: Mesos defaults: ``--gc_delay=1weeks``, ``--gc_disk_headroom=0.1``,
#: ``--disk_watch_interval=1mins``.
DEFAULT_GC_DELAY = 604800.0
DEFAULT_GC_DISK_HEADROOM = 0.1
DEFAULT_DISK_WATCH_INTERVAL = 60.0


def parse_duration(text: str) -> float:
    """Seconds from ``"90"``, ``"1.5"`` or Mesos text like ``"1weeks"``, ``"10mins"``.

    Raises ValueError naming the text and the accepted units.
    """
    match = _DURATION.match(text.lower())
    unit = match.group(2) if match else ""
    if match is None or (unit and unit not in _UNITS):
        raise ValueError(f"expected seconds or a number with a unit "
                         f"({', '.join(_UNITS)}), got {text!r}")
    return float(match.group(1)) * _UNITS.get(unit, 1.0)


def age_limit(gc_delay: float, headroom: float, disk_usage: float) -> float:
    """How old a completed sandbox may get at ``disk_usage`` (0..1) before it is removed.

    ``gc_delay * max(0, 1 - headroom - usage)``: the full delay on an empty disk,
    nothing left once usage reaches ``1 - headroom``.
    """
    return gc_delay * max(0.0, 1.0 - headroom - disk_usage)


@attrs.frozen
class Sandbox:
    """A completed run's sandbox: its path and the ids it belongs to."""

    path: str
    agent_id: str
    framework_id: str
    executor_id: str
    container_id: str


class GcSchedule:
    """Completed sandboxes and when each completed; which are due for removal."""

    def __init__(self, gc_delay: float = DEFAULT_GC_DELAY,
                 headroom: float = DEFAULT_GC_DISK_HEADROOM) -> None:
        """An empty schedule for ``gc_delay`` seconds and ``headroom`` (fraction of the disk)."""
        self.gc_delay = gc_delay
        self.headroom = headroom
        self._completed: dict[str, tuple[float, Sandbox]] = {}

    def __len__(self) -> int:
        """How many sandboxes are tracked (waiting for removal)."""
        return len(self._completed)

    def __contains__(self, path: object) -> bool:
        """True when ``path`` is tracked."""
        return path in self._completed

    def track(self, sandbox: Sandbox, completed_at: float) -> None:
        """Track a completed sandbox (again: the first completion time is kept)."""
        self._completed.setdefault(sandbox.path, (completed_at, sandbox))

    def untrack(self, path: str) -> None:
        """Stop tracking ``path`` (removed, vanished, or live after all)."""
        self._completed.pop(path, None)

    def paths(self) -> list[str]:
        """Every tracked path."""
        return list(self._completed)

    def limit(self, disk_usage: float) -> float:
        """The age limit at ``disk_usage`` (see :func:`age_limit`)."""
        return age_limit(self.gc_delay, self.headroom, disk_usage)

    def due(self, now: float, disk_usage: float) -> list[Sandbox]:
        """Sandboxes old enough to remove at ``now`` with the disk ``disk_usage`` full.

        Oldest first; their removal is the shell's job (it calls :meth:`untrack`).
        """
        limit = self.limit(disk_usage)
        ready = [(at, sb) for at, sb in self._completed.values() if now - at >= limit]
        ready.sort(key=lambda item: item[0])
        return [sb for _at, sb in ready]

    def next_due(self, disk_usage: float) -> float | None:
        """When the next sandbox becomes due at this usage (None: nothing tracked)."""
        if not self._completed:
            return None
        limit = self.limit(disk_usage)
        return min(at for at, _sb in self._completed.values()) + limit


@attrs.frozen
class GoneRecord:
    """A removed sandbox: which executor's, and when (epoch seconds)."""

    sandbox: Sandbox
    removed_at: float


class Collected:
    """A bounded memory of removed sandboxes, to explain a ``/files`` 404."""

    def __init__(self, limit: int = 10_000) -> None:
        """Remember at most ``limit`` removals (the oldest are forgotten first)."""
        self._limit = limit
        self._by_path: collections.OrderedDict[str, GoneRecord] = collections.OrderedDict()

    def add(self, sandbox: Sandbox, removed_at: float) -> None:
        """Remember that ``sandbox`` was removed at ``removed_at``."""
        self._by_path[sandbox.path.rstrip("/")] = GoneRecord(sandbox, removed_at)
        self._by_path.move_to_end(sandbox.path.rstrip("/"))
        while len(self._by_path) > self._limit:
            self._by_path.popitem(last=False)

    def __len__(self) -> int:
        """How many removals are remembered."""
        return len(self._by_path)

    def find(self, path: str) -> GoneRecord | None:
        """The removal that explains a missing ``path`` (inside a removed sandbox), if any.

        A path through an executor's ``runs/latest`` link matches the latest removed run of
        that executor.
        """
        path = path.rstrip("/")
        probe = path
        while probe and probe != "/":
            found = self._by_path.get(probe)
            if found is not None:
                return found
            head, tail = probe.rsplit("/", 1) if "/" in probe else ("", probe)
            if tail == "latest" and head.endswith("/runs"):
                return self._latest_under(head + "/")
            probe = head
        return None

    def _latest_under(self, runs_prefix: str) -> GoneRecord | None:
        best: GoneRecord | None = None
        for key, record in self._by_path.items():
            if key.startswith(runs_prefix) and (best is None
                                                or record.removed_at >= best.removed_at):
                best = record
        return best


def gone_message(record: GoneRecord, when: str) -> str:
    """The ``/files`` 404 message for a path inside a removed sandbox (``when``: the time)."""
    sb = record.sandbox
    return (f"path: the sandbox of executor {sb.executor_id!r} of framework "
            f"{sb.framework_id!r} (container {sb.container_id}) was garbage collected "
            f"at {when}")
