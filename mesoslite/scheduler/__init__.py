"""The framework SDK: write a scheduler, run it with a driver (public, stable).

Subclass :class:`Scheduler` and override the callbacks you need, then run it
with :class:`SchedulerDriver`::

    driver = SchedulerDriver(MyScheduler(), FrameworkInfo(user="", name="hello"),
                             "127.0.0.1:5055")
    status = driver.run()        # or: await driver.start_async(); await driver.join_async()

Public names: :class:`Scheduler`, :class:`SchedulerDriver`, :class:`Status`,
:class:`MasterDetector`, :class:`StaticMasterDetector`, :func:`detector_for`.
The message value types (``FrameworkInfo``, ``TaskInfo``, ``Offer``,
``TaskStatus``, ...) come from :mod:`mesoslite.protocol`.
"""

from mesoslite.scheduler.detector import MasterDetector, StaticMasterDetector, detector_for
from mesoslite.scheduler.driver import SchedulerDriver
from mesoslite.scheduler.scheduler import Scheduler
from mesoslite.scheduler.status import Status

__all__ = [
    "MasterDetector",
    "Scheduler",
    "SchedulerDriver",
    "StaticMasterDetector",
    "Status",
    "detector_for",
]
