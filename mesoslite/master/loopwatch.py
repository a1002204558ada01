"""Event-loop lag and timing windows of the master shell (I/O-free, but not PURE: it runs a
task on the running loop).

Owns: :class:`LoopLagMonitor`, which wakes every ``period`` seconds and records by how
much each wake-up was late (the longest stall the loop had since the previous one: a
handler, an allocation or a rendering that did not yield), and :class:`TimingWindow`,
the last observations of a duration with their quantiles (Mesos timer metrics:
``<name>/p50``, ``/p99``, ``/max``, ``/count``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time

#: Seconds between two wake-ups of the lag monitor.
LAG_PERIOD = 0.02
#: Seconds the recent-maximum window of the lag covers.
LAG_WINDOW = 10.0


class TimingWindow:
    """The last ``size`` observations (milliseconds) and their count since the start."""

    def __init__(self, size: int = 1000) -> None:
        """Empty."""
        self.values: collections.deque[float] = collections.deque(maxlen=size)
        self.count = 0

    def observe(self, ms: float) -> None:
        """Record one duration in milliseconds."""
        self.values.append(ms)
        self.count += 1

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (nearest rank) of the window; 0 when empty."""
        if not self.values:
            return 0.0
        ordered = sorted(self.values)
        return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]

    def metrics(self, name: str) -> dict[str, float]:
        """``<name>/p50``, ``/p90``, ``/p99``, ``/max`` over the window and ``/count``."""
        return {f"{name}/p50": self.quantile(0.5), f"{name}/p90": self.quantile(0.9),
                f"{name}/p99": self.quantile(0.99),
                f"{name}/max": max(self.values, default=0.0), f"{name}/count": self.count}


class LoopLagMonitor:
    """How late the loop runs a timer: the worst stall ever and in the last ``window`` s."""

    def __init__(self, period: float = LAG_PERIOD, window: float = LAG_WINDOW) -> None:
        """Not running until :meth:`start`."""
        self.period = period
        self.window = window
        self.max_ms = 0.0
        #: (monotonic second, worst lag in it) for the recent window.
        self._recent: collections.deque[tuple[int, float]] = collections.deque()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching the running loop (again after :meth:`stop`)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop watching."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def observe(self, lag_ms: float, now: float) -> None:
        """Record one wake-up ``lag_ms`` late at monotonic time ``now``."""
        self.max_ms = max(self.max_ms, lag_ms)
        second = int(now)
        recent = self._recent
        if recent and recent[-1][0] == second:
            if lag_ms > recent[-1][1]:
                recent[-1] = (second, lag_ms)
        else:
            recent.append((second, lag_ms))
        while recent and recent[0][0] <= second - self.window:
            recent.popleft()

    def recent_max_ms(self) -> float:
        """The worst lag of the last ``window`` seconds."""
        return max((lag for _s, lag in self._recent), default=0.0)

    def metrics(self) -> dict[str, float]:
        """``master/event_loop_lag_ms/max`` (since the start) and ``/max_recent`` (the last
        ``window`` seconds)."""
        return {"master/event_loop_lag_ms/max": self.max_ms,
                "master/event_loop_lag_ms/max_recent": self.recent_max_ms()}

    async def _run(self) -> None:
        expected = time.monotonic() + self.period
        while True:
            await asyncio.sleep(max(0.0, expected - time.monotonic()))
            now = time.monotonic()
            self.observe(max(0.0, (now - expected) * 1000.0), now)
            expected = now + self.period
