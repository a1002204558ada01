"""Where the leading master is: the :class:`MasterDetector` interface.

Owns: the small protocol the scheduler driver uses to learn the leading
master's ZeroMQ endpoint, the static implementation for a fixed
``host:port``, and :func:`detector_for`, which turns the driver's ``master``
argument into a detector: ``zk://…`` follows the leader through ZooKeeper
(:mod:`mesoslite.coordination`), anything else is a fixed address.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from mesoslite.transport import tcp_endpoint


@runtime_checkable
class MasterDetector(Protocol):
    """Tells the driver which master leads, and when that changes (Mesos semantics)."""

    async def detect(self, previous: str | None = None) -> str | None:
        """Return the leader's ZeroMQ endpoint (``tcp://host:port``) once it differs
        from ``previous``; ``None`` means no leader is known right now.

        With ``previous=None`` and a known leader it returns at once.  It may
        wait indefinitely while nothing changes; the driver cancels it on stop.
        """
        ...

    def close(self) -> None:
        """Release whatever the detector holds (sessions, watches)."""
        ...


class StaticMasterDetector:
    """A detector for one fixed master address: the leader never changes."""

    def __init__(self, address: str) -> None:
        """``address`` is ``host:port`` or ``tcp://host:port``; ValueError otherwise."""
        self.endpoint: str = tcp_endpoint(address)

    async def detect(self, previous: str | None = None) -> str | None:
        """Return the fixed endpoint unless it is ``previous``; then wait until cancelled."""
        if previous != self.endpoint:
            return self.endpoint
        await asyncio.Event().wait()  # nothing ever changes
        return self.endpoint  # pragma: no cover - unreachable

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"StaticMasterDetector({self.endpoint!r})"


def detector_for(master: str | MasterDetector) -> MasterDetector:
    """Build the detector for the driver's ``master`` argument.

    ``master`` is a detector (returned as is), ``zk://host:port[,host:port]/path``
    (the leader elected in ZooKeeper, followed as it changes), ``host:port`` or
    ``tcp://host:port``.
    """
    if isinstance(master, MasterDetector):
        return master
    if not isinstance(master, str) or not master:
        raise ValueError(
            f"master: expected 'host:port', 'tcp://host:port' or a MasterDetector, got {master!r}"
        )
    if master.startswith("zk://"):
        from mesoslite.coordination import EndpointDetector, create_detector

        try:
            return EndpointDetector(create_detector(master))
        except ValueError as exc:
            raise ValueError(f"master: {exc}") from None
    try:
        return StaticMasterDetector(master)
    except ValueError:
        raise ValueError(
            f"master: expected 'host:port' or 'tcp://host:port', got {master!r}"
        ) from None
