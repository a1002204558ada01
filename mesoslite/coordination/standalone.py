"""Election and detection without ZooKeeper (``mesoslite local``, single-master setups).

Owns: :class:`StandaloneContender` (elected as soon as it starts, never
deposed) and :class:`StandaloneDetector` (a fixed leader, or one appointed
by the process that runs the master, like Mesos's StandaloneMasterDetector).
No I/O: everything happens on the asyncio loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mesoslite.coordination.interface import DeposedCallback, ElectedCallback, LeaderCallback
from mesoslite.coordination.tracking import LeadershipState, LeaderTracker
from mesoslite.coordination.url import parse_host_port
from mesoslite.protocol.types import MasterInfo


def master_info_for_address(address: str) -> MasterInfo:
    """A MasterInfo for a static ``host:port`` / ``tcp://host:port`` (the ZMQ endpoint).

    The id and version are unknown (empty) and ``port`` is the given port; only
    ``zmq_endpoint`` is meant to be used.
    """
    host, port = parse_host_port(address)
    shown = f"[{host}]" if ":" in host else host
    return MasterInfo(
        id="", ip=host, port=port, hostname=host, version="",
        zmq_endpoint=f"tcp://{shown}:{port}", http_endpoint="",
    )


class StandaloneContender:
    """The only candidate: elected at ``start()``, leads until ``withdraw()``."""

    def __init__(self, master_info: MasterInfo | None = None) -> None:
        self.master_info = master_info
        self._state = LeadershipState("standalone contender")
        self.elected: asyncio.Event = self._state.elected
        self.deposed: asyncio.Event = self._state.deposed
        self._withdrawn = False

    @property
    def is_leader(self) -> bool:
        """True from ``start()`` until ``withdraw()``."""
        return self._state.is_leader

    async def start(self) -> None:
        """Become the leader at once (no-op after withdrawal)."""
        if not self._withdrawn:
            self._state.become_leader()

    async def withdraw(self) -> None:
        """Stop leading (idempotent; no deposed callbacks)."""
        self._withdrawn = True
        self._state.resign()

    def on_elected(self, callback: ElectedCallback) -> None:
        """Run ``callback()`` when elected (at once if already leading)."""
        self._state.on_elected(callback)

    def on_deposed(self, callback: DeposedCallback) -> None:
        """Accepted for interface parity; a standalone contender is never deposed."""
        self._state.on_deposed(callback)

    def fencing_path(self) -> str | None:
        """None: standalone stores (a local file) need no fencing."""
        return None


class StandaloneDetector:
    """A detector whose leader is fixed, or set with :meth:`appoint`."""

    def __init__(self, leader: MasterInfo | str | None = None) -> None:
        """``leader`` is a MasterInfo, a ``host:port``/``tcp://host:port`` string, or None."""
        self._tracker = LeaderTracker("standalone detector")
        self._initial = master_info_for_address(leader) if isinstance(leader, str) else leader
        self._started = False

    async def start(self) -> None:
        """Publish the initial leader (if any)."""
        if not self._started:
            self._started = True
            self._tracker.set(self._initial)

    async def stop(self) -> None:
        """Nothing to release."""

    def appoint(self, leader: MasterInfo | None) -> None:
        """Make ``leader`` the leader (None: no leader); waiters and subscribers hear of it."""
        self._started = True
        self._tracker.set(leader)

    def current(self) -> MasterInfo | None:
        """The appointed leader (the initial one is visible before ``start()`` too)."""
        return self._tracker.current() if self._started else self._initial

    async def wait_for_change(self, previous: MasterInfo | None) -> MasterInfo | None:
        """Return the leader once it differs from ``previous``."""
        await self.start()
        return await self._tracker.wait_for_change(previous)

    def subscribe(self, callback: LeaderCallback) -> Callable[[], None]:
        """Call ``callback(leader)`` on every change; returns the unsubscribe function."""
        return self._tracker.subscribe(callback)
