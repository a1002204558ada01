"""Dominant Resource Fairness sorter (PURE).

Owns: the per-client bookkeeping that DRF needs (scalar allocations, weights,
activity) and the order in which clients should be offered resources next.
A client is an opaque name: the allocator uses one sorter whose clients are
roles and, per role, one sorter whose clients are frameworks.

Quantities are kept as integer thousandths, the same fixed point that
``Resources`` uses for scalars, so adding and subtracting never drifts.

The order is maintained incrementally: a change to one client's allocation,
weight or activity moves only that client inside an already sorted list
(``bisect``); only a change of the cluster total, which changes every share,
forces a full re-sort, and that happens lazily on the next ``sort()``.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Mapping

_SCALE = 1000

#: Sort key of an active client: (weighted share, allocation count, name).
_Key = tuple[float, int, str]


def _to_fixed(field: str, scalars: Mapping[str, float]) -> dict[str, int]:
    """Convert ``scalars`` to positive thousandths, rejecting bad values."""
    out: dict[str, int] = {}
    for name, value in scalars.items():
        if not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value):
            raise ValueError(f"{field}[{name!r}] = {value!r}: expected a finite number")
        if value < 0:
            raise ValueError(f"{field}[{name!r}] = {value!r}: expected a value >= 0")
        fixed = round(value * _SCALE)
        if fixed > 0:
            out[name] = fixed
    return out


def _check_weight(client: str, weight: float) -> float:
    if (
        not isinstance(weight, (int, float))
        or math.isnan(weight)
        or math.isinf(weight)
        or weight <= 0
    ):
        raise ValueError(f"weight of {client!r} = {weight!r}: expected a finite number > 0")
    return float(weight)


class _Client:
    """One sorter client: its weight, activity and allocation."""

    __slots__ = ("active", "alloc", "count", "key", "name", "weight")

    def __init__(self, name: str, weight: float) -> None:
        self.name = name
        self.weight = weight
        self.active = True
        self.alloc: dict[str, int] = {}
        self.count = 0  # number of allocations made, the first tie-breaker
        self.key: _Key | None = None  # position in the order while active and in sync


class DRFSorter:
    """Orders clients by ascending weighted dominant share.

    A client's dominant share is the largest, over the scalar kinds it holds,
    of its allocation divided by the cluster total of that kind (kinds with a
    zero total are ignored).  The weighted share divides that by the client's
    weight.  Ties are broken by the number of allocations the client has
    received, then by name, so the order is deterministic.
    """

    def __init__(self) -> None:
        """Create an empty sorter with an empty cluster total."""
        self._clients: dict[str, _Client] = {}
        self._total: dict[str, int] = {}
        self._order: list[_Key] = []  # keys of active clients, sorted
        self._stale = False  # True when every key must be recomputed
        self._names: tuple[str, ...] | None = None  # cached names of ``_order``

    # -- membership -------------------------------------------------------

    def add(self, client: str, weight: float = 1.0) -> None:
        """Add ``client`` (active, nothing allocated); ValueError if already present."""
        if client in self._clients:
            raise ValueError(f"client {client!r}: already in the sorter")
        entry = _Client(client, _check_weight(client, weight))
        self._clients[client] = entry
        self._place(entry)

    def remove(self, client: str) -> None:
        """Remove ``client`` and forget its allocation."""
        entry = self._get(client)
        self._unplace(entry)
        del self._clients[client]

    def __contains__(self, client: object) -> bool:
        """True when ``client`` has been added and not removed."""
        return client in self._clients

    def __len__(self) -> int:
        """Number of clients, active or not."""
        return len(self._clients)

    def clients(self) -> list[str]:
        """All clients, active or not, in the order they were added."""
        return list(self._clients)

    def set_weight(self, client: str, weight: float) -> None:
        """Change ``client``'s weight (finite, > 0)."""
        entry = self._get(client)
        weight = _check_weight(client, weight)
        self._unplace(entry)
        entry.weight = weight
        self._place(entry)

    def weight(self, client: str) -> float:
        """The weight of ``client``."""
        return self._get(client).weight

    def activate(self, client: str) -> None:
        """Make ``client`` appear in ``sort()`` again."""
        entry = self._get(client)
        if not entry.active:
            entry.active = True
            self._place(entry)

    def deactivate(self, client: str) -> None:
        """Hide ``client`` from ``sort()``; its allocation stays counted."""
        entry = self._get(client)
        if entry.active:
            self._unplace(entry)
            entry.active = False

    def is_active(self, client: str) -> bool:
        """True when ``client`` takes part in ``sort()``."""
        return self._get(client).active

    # -- quantities -------------------------------------------------------

    def allocated(self, client: str, scalars: Mapping[str, float]) -> None:
        """Add ``scalars`` to ``client``'s allocation."""
        entry = self._get(client)
        fixed = _to_fixed("scalars", scalars)
        if not fixed:
            return
        self._unplace(entry)
        alloc = entry.alloc
        for name, value in fixed.items():
            alloc[name] = alloc.get(name, 0) + value
        entry.count += 1
        self._place(entry)

    def unallocated(self, client: str, scalars: Mapping[str, float]) -> None:
        """Subtract ``scalars`` from ``client``'s allocation (kinds reaching 0 vanish)."""
        entry = self._get(client)
        fixed = _to_fixed("scalars", scalars)
        if not fixed:
            return
        self._unplace(entry)
        alloc = entry.alloc
        for name, value in fixed.items():
            left = alloc.get(name, 0) - value
            if left > 0:
                alloc[name] = left
            else:
                alloc.pop(name, None)
        self._place(entry)

    def set_total(self, scalars: Mapping[str, float]) -> None:
        """Replace the cluster total that shares are computed against."""
        fixed = _to_fixed("total", scalars)
        if fixed == self._total:
            return
        self._total = fixed
        self._stale = True
        self._names = None

    def total(self) -> dict[str, float]:
        """The cluster total, as floats."""
        return {name: value / _SCALE for name, value in self._total.items()}

    def allocation(self, client: str) -> dict[str, float]:
        """A copy of ``client``'s allocation, as floats."""
        return {name: value / _SCALE for name, value in self._get(client).alloc.items()}

    def share(self, client: str) -> float:
        """``client``'s dominant share, ignoring its weight."""
        return self._share(self._get(client))

    def weighted_share(self, client: str) -> float:
        """``client``'s dominant share divided by its weight."""
        entry = self._get(client)
        return self._share(entry) / entry.weight

    def sort(self) -> list[str]:
        """Active clients, lowest weighted share first (a fresh list)."""
        return list(self.ordered())

    def ordered(self) -> tuple[str, ...]:
        """Like ``sort()`` but returns the cached tuple itself (no copy while unchanged)."""
        if self._stale:
            self._order = sorted(
                self._key(entry) for entry in self._clients.values() if entry.active
            )
            for key in self._order:
                self._clients[key[2]].key = key
            self._stale = False
            self._names = None
        if self._names is None:
            self._names = tuple(key[2] for key in self._order)
        return self._names

    # -- internals --------------------------------------------------------

    def _get(self, client: str) -> _Client:
        try:
            return self._clients[client]
        except KeyError:
            raise KeyError(f"client {client!r}: not in the sorter") from None

    def _share(self, entry: _Client) -> float:
        total = self._total
        share = 0.0
        for name, value in entry.alloc.items():
            whole = total.get(name, 0)
            if whole > 0:
                ratio = value / whole
                share = max(share, ratio)
        return share

    def _key(self, entry: _Client) -> _Key:
        return (self._share(entry) / entry.weight, entry.count, entry.name)

    def _unplace(self, entry: _Client) -> None:
        """Take an active client out of the sorted order before it changes."""
        if not entry.active or self._stale:
            return
        key = entry.key
        index = bisect_left(self._order, key) if key is not None else len(self._order)
        if index < len(self._order) and self._order[index] == key:
            del self._order[index]
        entry.key = None
        self._names = None

    def _place(self, entry: _Client) -> None:
        """Put an active client back into the sorted order after it changed."""
        if not entry.active or self._stale:
            return
        entry.key = self._key(entry)
        insort(self._order, entry.key)
        self._names = None
