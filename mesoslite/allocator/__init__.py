"""Resource allocation (PURE): who is offered which agent's resources next.

Owns the DRF sorter (``sorter``) and the hierarchical allocator built on it
(``hierarchical``).  Nothing here does I/O or reads the wall clock; the
master shell drives ``HierarchicalAllocator.allocate()`` and turns the
returned ``Allocation`` values into offers.
"""

from mesoslite.allocator.hierarchical import (
    DEFAULT_REFUSE_SECONDS,
    DEFAULT_ROLE,
    MAX_REFUSE_SECONDS,
    Allocation,
    HierarchicalAllocator,
    TimeSource,
    validate_role,
)
from mesoslite.allocator.sorter import DRFSorter

__all__ = [
    "DEFAULT_REFUSE_SECONDS",
    "DEFAULT_ROLE",
    "MAX_REFUSE_SECONDS",
    "Allocation",
    "DRFSorter",
    "HierarchicalAllocator",
    "TimeSource",
    "validate_role",
]
