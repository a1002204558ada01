"""Per-app launch delay (backoff) with crash-loop protection (PURE).

Owns: when an app may next launch tasks after its tasks failed, and since when
it has been waiting (for ``/v2/queue``).  Time comes from the injected clock:
deadlines use ``monotonic()``, ``since`` uses ``time()`` (shown to people).

Backoff (Marathon's rule): the first failure delays launches by
``backoffSeconds``; each further failure multiplies the delay by
``backoffFactor``; the delay never exceeds ``maxLaunchDelaySeconds``.  The
delay is cleared by :meth:`LaunchQueue.reset` (``DELETE /v2/queue/{app}/delay``)
and by a new app version.

Crash-loop protection (Marathon issues #1111 and #1504, where a single
``TASK_RUNNING`` reset the backoff and a crashing app piled up thousands of
dead containers): a task reaching RUNNING does *not* reset the backoff.  Only
a task that has stayed RUNNING for the minimum uptime does: by default
``max(backoffSeconds, 30 s)`` for the app, or the ``min_uptime_seconds`` given
to the queue.  A task that fails before that keeps growing the delay, and
only a task that started RUNNING after the app's latest failure can reset it.

The shell reports what happens: :meth:`task_failed` for a task that ended
without being asked to (FAILED, ERROR, LOST, FINISHED, GONE… and KILLED when
nobody killed it); :meth:`task_running` when a task reports RUNNING;
:meth:`task_gone` when a task ends for any reason; :meth:`note_wanted` with
the number of instances waiting to launch.  Kills the framework asked for are
not failures.
"""

from __future__ import annotations

import attrs

from frameworks.marathon.core.model import App
from mesoslite.clock import Clock

__all__ = ["DEFAULT_MIN_UPTIME", "DelayState", "LaunchQueue"]

#: The floor of the default minimum uptime before a RUNNING task resets the backoff.
DEFAULT_MIN_UPTIME = 30.0


@attrs.frozen
class DelayState:
    """An app's current backoff: the delay applied last, when it ends and when the
    last failure was (monotonic), and the app version it applies to."""

    delay: float
    until: float
    version: str
    failed_at: float


@attrs.define
class _Running:
    """A RUNNING task whose uptime is being watched."""

    app_id: str
    version: str
    since: float
    min_uptime: float


class LaunchQueue:
    """Launch delays and waiting times of apps; see the module doc."""

    def __init__(self, clock: Clock, *, min_uptime_seconds: float | None = None) -> None:
        """Use ``clock``; ``min_uptime_seconds`` overrides the per-app default minimum uptime."""
        self._clock = clock
        self._min_uptime = min_uptime_seconds
        self._delays: dict[str, DelayState] = {}
        self._running: dict[str, _Running] = {}
        self._since: dict[str, float] = {}
        self._versions: dict[str, str] = {}

    # -- configuration -------------------------------------------------------------------

    def min_uptime_for(self, app: App) -> float:
        """How long a task of ``app`` must stay RUNNING before the backoff resets."""
        if self._min_uptime is not None:
            return self._min_uptime
        return max(app.backoff_seconds, DEFAULT_MIN_UPTIME)

    # -- events from the shell -------------------------------------------------------------

    def app_updated(self, app: App) -> None:
        """Record the app's current version; a new version clears its delay."""
        previous = self._versions.get(app.id)
        self._versions[app.id] = app.version
        if previous is not None and previous != app.version:
            self._delays.pop(app.id, None)
        state = self._delays.get(app.id)
        if state is not None and state.version != app.version:
            self._delays.pop(app.id, None)

    def task_failed(self, app: App) -> float:
        """A task of ``app`` ended on its own: grow the delay; returns the new delay."""
        self._settle()
        now = self._clock.monotonic()
        state = self._delays.get(app.id)
        if state is None or state.version != app.version:
            delay = app.backoff_seconds
        else:
            delay = state.delay * app.backoff_factor
        delay = max(0.0, min(delay, app.max_launch_delay_seconds))
        self._delays[app.id] = DelayState(delay, now + delay, app.version, now)
        self._versions.setdefault(app.id, app.version)
        return delay

    def task_running(self, app: App, task_id: str) -> None:
        """A task of ``app`` reported RUNNING: start watching its uptime."""
        if task_id not in self._running:
            self._running[task_id] = _Running(
                app.id, app.version, self._clock.monotonic(), self.min_uptime_for(app)
            )

    def task_gone(self, task_id: str) -> None:
        """A task ended (for any reason): stop watching it."""
        self._settle()
        self._running.pop(task_id, None)

    def reset(self, app_id: str) -> None:
        """Clear the app's delay (``DELETE /v2/queue/{app}/delay``)."""
        self._delays.pop(app_id, None)

    def remove(self, app_id: str) -> None:
        """Forget everything about a deleted app."""
        self._delays.pop(app_id, None)
        self._since.pop(app_id, None)
        self._versions.pop(app_id, None)
        for task_id in [t for t, r in self._running.items() if r.app_id == app_id]:
            del self._running[task_id]

    def note_wanted(self, app_id: str, count: int) -> None:
        """``count`` instances of the app are waiting to launch (starts/ends ``since``)."""
        if count > 0:
            self._since.setdefault(app_id, self._clock.time())
        else:
            self._since.pop(app_id, None)

    def tick(self) -> None:
        """Reset the backoff of apps whose tasks have stayed up the minimum uptime."""
        self._settle()

    # -- queries -----------------------------------------------------------------------------

    def delay_for(self, app_id: str) -> tuple[float, bool]:
        """``(time_left, overdue)``: seconds until the app may launch, and whether it may now."""
        self._settle()
        state = self._delays.get(app_id)
        if state is None:
            return 0.0, True
        left = state.until - self._clock.monotonic()
        if left <= 0:
            return 0.0, True
        return left, False

    def can_launch(self, app_id: str) -> bool:
        """True when the app's launch delay (if any) is over."""
        return self.delay_for(app_id)[1]

    def current_delay(self, app_id: str) -> float | None:
        """The delay last applied to the app (None when it has none)."""
        self._settle()
        state = self._delays.get(app_id)
        return None if state is None else state.delay

    def since(self, app_id: str) -> float | None:
        """When (epoch seconds) the app started waiting to launch; None when it is not."""
        return self._since.get(app_id)

    def next_deadline(self) -> float | None:
        """The earliest monotonic time a delay ends or an uptime matures (for timers)."""
        now = self._clock.monotonic()
        times = [s.until for s in self._delays.values() if s.until > now]
        times += [r.since + r.min_uptime for r in self._running.values()]
        return min(times) if times else None

    # -- internals ---------------------------------------------------------------------------

    def _settle(self) -> None:
        """Apply matured uptimes: a task up long enough resets its app's backoff once.

        Only a task that started RUNNING after the app's latest failure counts, so
        one long-lived instance cannot hide other instances crash-looping.
        """
        if not self._running:
            return
        now = self._clock.monotonic()
        matured = [t for t, r in self._running.items() if now - r.since >= r.min_uptime]
        for task_id in matured:
            watched = self._running.pop(task_id)
            state = self._delays.get(watched.app_id)
            if (
                state is not None
                and state.version == watched.version
                and watched.since >= state.failed_at
            ):
                del self._delays[watched.app_id]
