"""Loop-side bookkeeping shared by every contender and detector.

Owns: :class:`LeaderTracker` (the current leader, waiters and subscribers of
a detector) and :class:`LeadershipState` (the elected/deposed events and
callbacks of a contender).  Both are touched only on the asyncio loop; a
callback that raises is logged and does not stop the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mesoslite.coordination.interface import DeposedCallback, ElectedCallback, LeaderCallback
from mesoslite.protocol.types import MasterInfo

log = logging.getLogger("mesoslite.coordination")


class LeaderTracker:
    """The leader a detector currently believes in, plus who wants to hear about changes."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._leader: MasterInfo | None = None
        self._changed = asyncio.Event()
        self._subscribers: list[LeaderCallback] = []

    def current(self) -> MasterInfo | None:
        """The leader as last seen (None: none known)."""
        return self._leader

    def set(self, leader: MasterInfo | None) -> bool:
        """Record ``leader``; wake waiters and subscribers if it changed. True if it changed."""
        if leader == self._leader:
            return False
        self._leader = leader
        log.info("%s: leading master %s", self._name,
                 f"{leader.id} at {leader.zmq_endpoint or leader.ip}" if leader else "unknown")
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        for callback in list(self._subscribers):
            try:
                callback(leader)
            except Exception:
                log.exception("%s: leader subscriber %r failed", self._name, callback)
        return True

    async def wait_for_change(self, previous: MasterInfo | None) -> MasterInfo | None:
        """Return the leader once it differs from ``previous``."""
        while self._leader == previous:
            await self._changed.wait()
        return self._leader

    def subscribe(self, callback: LeaderCallback) -> Callable[[], None]:
        """Add a subscriber; the returned function removes it."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe


class LeadershipState:
    """A contender's view of its own leadership: events and callbacks."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.elected = asyncio.Event()
        self.deposed = asyncio.Event()
        self._on_elected: list[ElectedCallback] = []
        self._on_deposed: list[DeposedCallback] = []

    @property
    def is_leader(self) -> bool:
        """True while elected."""
        return self.elected.is_set()

    def on_elected(self, callback: ElectedCallback) -> None:
        """Register ``callback``; it runs at once if already leading."""
        self._on_elected.append(callback)
        if self.is_leader:
            self._run(callback)

    def on_deposed(self, callback: DeposedCallback) -> None:
        """Register ``callback(reason)``."""
        self._on_deposed.append(callback)

    def become_leader(self) -> None:
        """Mark elected and run the elected callbacks (no-op if already leading)."""
        if self.is_leader or self.deposed.is_set():
            return
        log.info("%s: elected leading master", self.name)
        self.elected.set()
        for callback in list(self._on_elected):
            self._run(callback)

    def depose(self, reason: str) -> bool:
        """Mark deposed and run the deposed callbacks; True if this contender was leading."""
        if not self.is_leader:
            return False
        log.warning("%s: no longer the leading master: %s", self.name, reason)
        self.elected.clear()
        self.deposed.set()
        for callback in list(self._on_deposed):
            self._run(callback, reason)
        return True

    def resign(self) -> None:
        """Stop leading voluntarily (withdrawal): no deposed callbacks."""
        self.elected.clear()

    def _run(self, callback: Callable[..., object], *args: object) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("%s: leadership callback %r failed", self.name, callback)
