"""Helpers for testing frameworks and mesoslite itself.

Public names: :class:`FakeClock` (more arrive: factories and an in-process cluster).
"""

from mesoslite.testing.clock import FakeClock

__all__ = ["FakeClock"]
