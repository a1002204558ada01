"""A clock that moves only when a test says so.

Owns: :class:`FakeClock`, the clock handed to pure cores in tests.
"""

from __future__ import annotations


class FakeClock:
    """A manually advanced clock; ``time()`` and ``monotonic()`` move together."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = float(start)

    def time(self) -> float:
        """The fake wall-clock time."""
        return self._now

    def monotonic(self) -> float:
        """The fake monotonic time (same value as :meth:`time`)."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (must be >= 0)."""
        if seconds < 0:
            raise ValueError(f"cannot move time backwards by {seconds!r}")
        self._now += seconds
