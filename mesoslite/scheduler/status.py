"""The driver status values (PURE).

Owns: :class:`Status`, returned by every :class:`~mesoslite.scheduler.SchedulerDriver`
method, with the Mesos names.
"""

from __future__ import annotations

import enum


class Status(str, enum.Enum):
    """The driver's state, returned by every driver method (as in Mesos)."""

    DRIVER_NOT_STARTED = "DRIVER_NOT_STARTED"
    DRIVER_RUNNING = "DRIVER_RUNNING"
    DRIVER_ABORTED = "DRIVER_ABORTED"
    DRIVER_STOPPED = "DRIVER_STOPPED"

    def __str__(self) -> str:
        return self.value
