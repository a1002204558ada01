"""What a leader election and a leader detector promise (PURE).

Owns: the :class:`Contender` and :class:`Detector` protocols that the master,
the agents and the scheduler driver program against, whatever the backend
(ZooKeeper or standalone), and :class:`CoordinationError`.

Everything here runs on the asyncio loop: callbacks are invoked on the loop
thread, never from a backend's own threads, and must not block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from mesoslite.protocol.types import MasterInfo

if TYPE_CHECKING:
    import asyncio

#: Called on the loop when this contender becomes the leader.
ElectedCallback = Callable[[], object]
#: Called on the loop when this contender stops being the leader; the argument says why.
DeposedCallback = Callable[[str], object]
#: Called on the loop with the new leader (None: no leader known) each time it changes.
LeaderCallback = Callable[[MasterInfo | None], object]


class CoordinationError(RuntimeError):
    """The coordination backend failed (e.g. ZooKeeper unreachable within a deadline)."""


@runtime_checkable
class Contender(Protocol):
    """One master's candidacy for leadership.

    Lifecycle: ``start()`` enters the election; ``elected`` is set (and the
    ``on_elected`` callbacks run) when this candidate leads.  Leadership ends
    only by ``withdraw()`` (voluntary, no deposed callback) or by deposition
    (session lost, or suspended beyond the grace): ``elected`` is cleared,
    ``deposed`` is set and the ``on_deposed`` callbacks run at once.  A
    deposed contender is finished; contend again with a new contender (and,
    like Mesos, preferably a new master id).
    """

    elected: asyncio.Event
    deposed: asyncio.Event

    @property
    def is_leader(self) -> bool:
        """True from election until withdrawal or deposition."""
        ...

    async def start(self) -> None:
        """Enter the election (returns once the candidacy exists, not when elected)."""
        ...

    async def withdraw(self) -> None:
        """Leave the election for good (idempotent)."""
        ...

    def on_elected(self, callback: ElectedCallback) -> None:
        """Run ``callback()`` on the loop when elected (at once if already leading)."""
        ...

    def on_deposed(self, callback: DeposedCallback) -> None:
        """Run ``callback(reason)`` on the loop when leadership is lost involuntarily."""
        ...

    def fencing_path(self) -> str | None:
        """The token registry writes are fenced with (a znode path), or None if there is none."""
        ...


@runtime_checkable
class Detector(Protocol):
    """Follows which master leads (Mesos's MasterDetector)."""

    async def start(self) -> None:
        """Begin following the leader."""
        ...

    async def stop(self) -> None:
        """Stop following and release the backend (idempotent)."""
        ...

    def current(self) -> MasterInfo | None:
        """The leader as last seen; None when no leader is known."""
        ...

    async def wait_for_change(self, previous: MasterInfo | None) -> MasterInfo | None:
        """The leader as soon as it differs from ``previous`` (at once if it already does)."""
        ...

    def subscribe(self, callback: LeaderCallback) -> Callable[[], None]:
        """Call ``callback(leader)`` on every change; returns a function that unsubscribes."""
        ...
