"""Helpers for testing frameworks and mesoslite itself.

Public names: :class:`FakeClock`; the factories :func:`make_framework_info`,
:func:`make_agent_info`, :func:`make_offer`, :func:`make_task_info`,
:func:`make_executor_info`, :func:`make_status`; :class:`Harness` (the
master's pure state on a fake clock, see :mod:`mesoslite.testing.harness`);
and :class:`InProcessCluster` (a real master and agents on the running
loop).  ``Harness`` and ``InProcessCluster`` are imported on first use so
that pure-core tests importing :class:`FakeClock` do not pull in the master
and agent.  The pytest fixture ``mesoslite_cluster`` lives in
:mod:`mesoslite.testing.pytest_plugin`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mesoslite.testing.clock import FakeClock
from mesoslite.testing.factories import (
    make_agent_info,
    make_executor_info,
    make_framework_info,
    make_offer,
    make_status,
    make_task_info,
)

if TYPE_CHECKING:
    from mesoslite.testing.cluster import InProcessCluster
    from mesoslite.testing.harness import Harness

__all__ = [
    "FakeClock",
    "Harness",
    "InProcessCluster",
    "make_agent_info",
    "make_executor_info",
    "make_framework_info",
    "make_offer",
    "make_status",
    "make_task_info",
]


def __getattr__(name: str) -> Any:
    if name == "InProcessCluster":
        from mesoslite.testing.cluster import InProcessCluster

        return InProcessCluster
    if name == "Harness":
        from mesoslite.testing.harness import Harness

        return Harness
    raise AttributeError(f"module 'mesoslite.testing' has no attribute {name!r}")
