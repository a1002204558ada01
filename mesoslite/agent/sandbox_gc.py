"""Removing completed sandboxes from the agent's disk (the shell of :mod:`.gc`).

Owns: :class:`SandboxCollector`.  Every ``disk_watch_interval`` it walks the
sandbox tree (``agents/*/frameworks/*/executors/*/runs/*``) and measures the
work directory's disk usage on its own thread, then, on the event loop, tracks
every run its core no longer knows as live in the PURE
:class:`~mesoslite.agent.gc.GcSchedule` (completed at the run directory's
modification time on the first walk after a start, so a restart does not extend
a sandbox's life; at discovery afterwards, and the directory is touched so the
next start agrees), and removes what is due on its thread: the run directory,
then a dangling ``runs/latest`` link and the executor and framework directories
left empty (unless that executor or framework is live).  Live runs are checked
again on the loop just before a batch goes to the thread; container ids are
never reused, so a run that was not live then cannot become live.  Removal runs
off the event loop: a big sandbox does not stall the agent.  After a batch the
core prunes the completed executor and framework records of the removed sandboxes
(``on_collected``), and :meth:`SandboxCollector.gone` explains a ``/files`` 404.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable

import attrs

from mesoslite.agent.gc import Collected, GcSchedule, Sandbox, gone_message
from mesoslite.clock import Clock

log = logging.getLogger("mesoslite.agent.gc")


@attrs.frozen
class LiveSet:
    """What must not be removed: live container ids, executors and frameworks."""

    containers: frozenset[str]
    executors: frozenset[tuple[str, str]]
    frameworks: frozenset[str]


@attrs.frozen
class _Scan:
    runs: list[tuple[Sandbox, float]]
    usage: float


def _subdirs(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            return [e for e in entries if not e.name.startswith(".")
                    and e.name != "latest" and e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def walk_runs(work_dir: str) -> list[tuple[Sandbox, float]]:
    """Every run directory under ``work_dir/agents`` with its modification time."""
    out: list[tuple[Sandbox, float]] = []
    for agent in _subdirs(os.path.join(work_dir, "agents")):
        for fw in _subdirs(os.path.join(agent.path, "frameworks")):
            for ex in _subdirs(os.path.join(fw.path, "executors")):
                for run in _subdirs(os.path.join(ex.path, "runs")):
                    try:
                        mtime = run.stat(follow_symlinks=False).st_mtime
                    except OSError:
                        continue
                    out.append((Sandbox(run.path, agent.name, fw.name, ex.name, run.name),
                                mtime))
    return out


def disk_usage(path: str) -> float:
    """The used fraction (0..1) of the filesystem holding ``path``, as Mesos computes it."""
    st = os.statvfs(path)
    if st.f_blocks == 0:
        return 0.0
    return (st.f_blocks - st.f_bfree) / st.f_blocks


def _rmdir_if_empty(path: str) -> bool:
    try:
        os.rmdir(path)
        return True
    except OSError:
        return False


def remove_sandbox(sb: Sandbox, live: LiveSet) -> None:
    """Remove a run directory and the empty parents it leaves (not live ones); OSError if not."""
    shutil.rmtree(sb.path)
    runs = os.path.dirname(sb.path)
    latest = os.path.join(runs, "latest")
    if os.path.islink(latest) and not os.path.exists(latest):
        with contextlib.suppress(OSError):
            os.unlink(latest)
    if (sb.framework_id, sb.executor_id) in live.executors:
        return
    executor_dir = os.path.dirname(runs)
    if not (_rmdir_if_empty(runs) and _rmdir_if_empty(executor_dir)):
        return
    if sb.framework_id in live.frameworks:
        return
    executors = os.path.dirname(executor_dir)
    if _rmdir_if_empty(executors):
        _rmdir_if_empty(os.path.dirname(executors))


class SandboxCollector:
    """Tracks completed sandboxes and removes them when due (see the module docstring)."""

    def __init__(self, work_dir: str, clock: Clock, *, gc_delay: float, headroom: float,
                 interval: float, live: Callable[[], LiveSet],
                 on_collected: Callable[[list[Sandbox]], None]) -> None:
        """Nothing runs until :meth:`start`; ``live`` and ``on_collected`` run on the loop."""
        self.work_dir = work_dir
        self.clock = clock
        self.interval = interval
        self.schedule = GcSchedule(gc_delay, headroom)
        self.collected = Collected()
        self._live = live
        self._on_collected = on_collected
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sandbox-gc")
        self._task: asyncio.Task[None] | None = None
        self._first = True
        #: Mesos's ``gc/path_removals_succeeded`` and ``gc/path_removals_failed``.
        self.removals_succeeded = 0
        self.removals_failed = 0
        self.last_usage = 0.0

    def start(self) -> None:
        """Check now and every ``interval`` seconds."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop checking; a removal in progress finishes on its thread."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._pool.shutdown(wait=False)

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Sandbox garbage collection failed; retrying in %.0f s",
                              self.interval)
            await asyncio.sleep(self.interval)

    def _scan(self) -> _Scan:
        return _Scan(walk_runs(self.work_dir), disk_usage(self.work_dir))

    async def check(self) -> list[Sandbox]:
        """One round: walk, track completed runs, remove the due ones; returns those removed."""
        loop = asyncio.get_running_loop()
        scan = await loop.run_in_executor(self._pool, self._scan)
        self.last_usage = scan.usage
        fresh = self._track(scan.runs, self._live())
        if fresh:
            await loop.run_in_executor(self._pool, _touch, fresh)
        live = self._live()
        due = [sb for sb in self.schedule.due(self.clock.time(), scan.usage)
               if sb.container_id not in live.containers]
        if not due:
            return []
        log.info("Removing %d completed sandbox(es): disk %.1f%% used, age limit %.0f s",
                 len(due), scan.usage * 100, self.schedule.limit(scan.usage))
        failed = await loop.run_in_executor(self._pool, _remove_all, due, live)
        removed = [sb for sb in due if sb.path not in failed]
        now = self.clock.time()
        for sb in due:
            self.schedule.untrack(sb.path)
            if sb.path in failed:
                log.warning("Could not remove sandbox %s: %s", sb.path, failed[sb.path])
                continue
            self.collected.add(sb, now)
            log.info("Removed sandbox of executor %s of framework %s (container %s)",
                     sb.executor_id, sb.framework_id, sb.container_id)
        self.removals_succeeded += len(removed)
        self.removals_failed += len(failed)
        if removed:
            self._on_collected(removed)
        return removed

    def _track(self, runs: list[tuple[Sandbox, float]], live: LiveSet) -> list[str]:
        """Track the completed runs found; returns those first seen now (to touch)."""
        now = self.clock.time()
        fresh: list[str] = []
        seen = set()
        for sb, mtime in runs:
            seen.add(sb.path)
            if sb.container_id in live.containers:
                self.schedule.untrack(sb.path)
            elif sb.path not in self.schedule:
                self.schedule.track(sb, mtime if self._first else now)
                if not self._first:
                    fresh.append(sb.path)
        for path in self.schedule.paths():
            if path not in seen:
                self.schedule.untrack(path)
        self._first = False
        return fresh

    def gone(self, path: str) -> str | None:
        """Why ``path`` (absolute, inside the work directory) is missing, if GC removed it."""
        record = self.collected.find(path)
        if record is None:
            return None
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.removed_at))
        return gone_message(record, when)


def _touch(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.utime(path)


def _remove_all(due: list[Sandbox], live: LiveSet) -> dict[str, str]:
    """Remove each sandbox; returns path → error for those that could not be removed."""
    failed: dict[str, str] = {}
    for sb in due:
        try:
            remove_sandbox(sb, live)
        except FileNotFoundError:
            continue
        except OSError as exc:
            failed[sb.path] = str(exc)
    return failed
