"""Time, injected: the :class:`Clock` protocol and the real clock.

Owns: the one interface through which every timeout, backoff and interval in
mesoslite reads the time.  Pure cores take a clock argument; tests pass
:class:`mesoslite.testing.FakeClock`.  ``time()`` is wall-clock seconds (for
timestamps shown to people); ``monotonic()`` is for measuring intervals.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the time."""

    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds from :func:`time.monotonic`."""
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()
