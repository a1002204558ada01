"""The master UI's live push: one coalescing publisher per master, any number of watchers.

Owns: :class:`Publisher` and :class:`Watcher`.  While at least one watcher is
attached, the publisher wakes every ``interval`` seconds, compares the
master's change counters (:func:`~.views.generations`) with the last ones and,
only when something changed, computes the overview once, encodes it once as
one server-sent-events frame, and hands that same frame to every watcher.  Its
cost does not depend on how many watch; a slow watcher never delays the others
(each keeps only the newest frame it has not sent yet: frames are whole
summaries, so skipping one loses nothing).  With no watcher the publisher
sleeps.

It also keeps the overview's chart, the last ``history_seconds``: a point per
push, and, while this master leads, a point every ``interval`` that no push
gave, taken from the counters alone (the incremental resource totals and the
task state counts; no summary is computed), so that the chart has history
when a first page opens.  And it knows every master of the cluster: the
members of the ZooKeeper group, read again at most every
:data:`MASTERS_REFRESH_SECONDS` while the overview is looked at.  Runs on the
master's event loop only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mesoslite.protocol import MasterInfo, TaskState
from mesoslite.webui import views
from mesoslite.webui.source import MasterSource

log = logging.getLogger("mesoslite.webui")

#: Seconds between two looks at the master's state while someone watches.
PUSH_INTERVAL = 1.0
#: How much chart history is kept (seconds).
HISTORY_SECONDS = 900.0
#: How often the list of masters is read again from ZooKeeper while it is shown (seconds).
MASTERS_REFRESH_SECONDS = 5.0


def sse_frame(event: str, data: Any) -> bytes:
    """One server-sent event: ``event:`` and ``data:`` lines and the blank line."""
    text = json.dumps(data, separators=(",", ":"))
    return f"event: {event}\ndata: {text}\n\n".encode()


class Watcher:
    """One attached stream: the newest frame not yet written, and a wake-up."""

    def __init__(self) -> None:
        self.pending: bytes | None = None
        self.wake = asyncio.Event()
        self.closed = False

    def offer(self, frame: bytes) -> None:
        """Replace what is waiting with ``frame`` (it supersedes any older one)."""
        self.pending = frame
        self.wake.set()

    def take(self) -> bytes | None:
        """The frame to write now, if any."""
        frame, self.pending = self.pending, None
        self.wake.clear()
        return frame


class Publisher:
    """Computes the overview at most once per ``interval`` and fans it out."""

    def __init__(self, master: MasterSource, clock: Callable[[], float], *,
                 interval: float = PUSH_INTERVAL,
                 history_seconds: float = HISTORY_SECONDS) -> None:
        self.master = master
        self.clock = clock
        self.interval = interval
        self.totals = views.ResourceTotals()
        self.history: collections.deque[list[float]] = collections.deque(
            maxlen=max(2, int(history_seconds / interval)))
        self.watchers: set[Watcher] = set()
        self.latest: dict[str, Any] | None = None
        self.latest_frame: bytes | None = None
        #: The change counters of the latest summary.
        self.generations: dict[str, int] | None = None
        self._task: asyncio.Task[None] | None = None
        #: How many times the state was summarised, and frames published (for tests and
        #: the benchmark).
        self.computed = 0
        self.published = 0
        #: Chart points taken from the counters while no push gave one.
        self.sampled = 0
        #: Every master contending, leader first (empty: not read yet, or no ZooKeeper).
        self.masters: list[MasterInfo] = []
        self._masters_read_at = -MASTERS_REFRESH_SECONDS
        self._masters_task: asyncio.Task[None] | None = None
        self._sampler: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ chart samples

    def start_sampling(self) -> None:
        """Take a chart point every ``interval`` from now on (idempotent; needs a running
        loop, else the first page's request starts it).  A timer, not a task: nothing is
        left pending when the loop ends."""
        if self._sampler is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._sampler = loop.call_later(self.interval, self._sample_tick)

    def _sample_tick(self) -> None:
        self._sampler = None
        try:
            if self.watchers and self.master.is_leading:
                self._read_masters()  # a master that joins or leaves shows within seconds
            self.sample_counters()
        except Exception:  # a bad pass must not end the chart
            log.exception("web UI: sampling the master's resources failed")
        self.start_sampling()

    def sample_counters(self) -> bool:
        """Add a chart point from the counters unless a push added one within the last
        half interval; only while leading.  True if a point was added."""
        master = self.master
        if not master.is_leading:
            return False
        now = self.clock()
        if self.history and self.history[-1][0] > now - self.interval / 2:
            return False
        state = master.state
        res = self.totals.update(state.agents)
        point = [now, res["cpus"]["allocated"], res["cpus"]["offered"], res["cpus"]["total"],
                 res["mem"]["allocated"], res["mem"]["offered"], res["mem"]["total"],
                 state.task_states.get(TaskState.TASK_RUNNING, 0)]
        self.history.append(point)
        self.sampled += 1
        return True

    # ------------------------------------------------------------------ masters

    def _read_masters(self) -> None:
        """Read the group's members again in the background when the list is old."""
        if self._masters_task is not None or \
                time.monotonic() - self._masters_read_at < MASTERS_REFRESH_SECONDS:
            return
        detector = getattr(self.master.leadership, "detector", None)
        members = getattr(detector, "members", None)
        if members is None:
            return
        self._masters_read_at = time.monotonic()
        self._masters_task = asyncio.get_running_loop().create_task(self._members(members))

    async def _members(self, members: Callable[[], Awaitable[list[MasterInfo]]]) -> None:
        try:
            found = list(await members())
        except Exception as exc:  # noqa: BLE001 - the overview keeps the last list
            log.info("web UI: reading the masters from ZooKeeper failed: %r", exc)
            return
        finally:
            self._masters_task = None
        changed = found != self.masters
        self.masters = found
        if changed and self.watchers:
            self.refresh(force=True)  # the pages learn of the new list at once

    # ------------------------------------------------------------------ watchers

    def attach(self) -> Watcher:
        """A new watcher; it is offered the latest summary at once (computed if needed)."""
        watcher = Watcher()
        self.watchers.add(watcher)
        self.start_sampling()
        if self.latest_frame is None or self._task is None:
            self.refresh(force=True)
        if self.latest_frame is not None:
            watcher.offer(self.latest_frame)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return watcher

    def detach(self, watcher: Watcher) -> None:
        """Forget ``watcher`` (idempotent); the publisher sleeps once none is left."""
        watcher.closed = True
        watcher.wake.set()
        self.watchers.discard(watcher)

    async def _run(self) -> None:
        try:
            while self.watchers:
                await asyncio.sleep(self.interval)
                if not self.master.is_leading:  # the streams end; browsers find the leader
                    for watcher in list(self.watchers):
                        self.detach(watcher)
                if not self.watchers:
                    break
                try:
                    self.refresh()
                except Exception:  # a bad pass must not end the stream for everyone
                    log.exception("web UI: summarising the master's state failed")
        finally:
            self._task = None

    async def stop(self) -> None:
        """Detach every watcher, stop the loop and the samples."""
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None
        for watcher in list(self.watchers):
            self.detach(watcher)
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ summaries

    def overview(self) -> dict[str, Any] | None:
        """The overview now (None while this master does not lead)."""
        master = self.master
        if not master.is_leading:
            return None
        state = master.state
        resources = self.totals.update(state.agents)
        self.computed += 1
        self._read_masters()
        return views.overview(state, resources, me=master.info,
                              leader=master.leadership.leader(), masters=self.masters,
                              cluster=master.config.cluster, start_time=master.start_time,
                              elected_time=master.elected_time, now=self.clock())

    def refresh(self, force: bool = False) -> bool:
        """Publish a new summary when the state changed (or ``force``); True if published."""
        master = self.master
        if not master.is_leading:
            return False
        generations = views.generations(master.state)
        if not force and generations == self.generations:
            return False
        view = self.overview()
        if view is None:
            return False
        self.generations = generations
        point = views.sample(view)
        if not self.history or point[0] > self.history[-1][0]:
            self.history.append(point)
        view["generations"] = generations
        view["sample"] = point
        self.latest = view
        self.latest_frame = sse_frame("overview", view)
        self.published += 1
        for watcher in list(self.watchers):
            watcher.offer(self.latest_frame)
        return True
