"""Building contenders, detectors and registries from flag values.

Owns: :func:`create_contender`, :func:`create_detector` (``zk://…`` →
ZooKeeper, ``host:port``/``tcp://host:port``/MasterInfo → standalone) and
:class:`EndpointDetector`, which adapts any :class:`Detector` to the
scheduler driver's ``detect(previous_endpoint) -> endpoint`` protocol
(:class:`mesoslite.scheduler.detector.MasterDetector`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from mesoslite.coordination.interface import Contender, Detector
from mesoslite.coordination.standalone import StandaloneContender, StandaloneDetector
from mesoslite.coordination.url import ZkUrl, is_zk_url, parse_zk_url
from mesoslite.protocol.types import MasterInfo


def create_contender(zk: str | ZkUrl | None, master_info: MasterInfo,
                     **options: Any) -> Contender:
    """A ZooKeeperContender for a ``zk://`` URL, else (None or "") a StandaloneContender.

    ``options`` go to :class:`~mesoslite.coordination.zookeeper.ZooKeeperContender`
    (``session_timeout``, ``suspend_grace``, ``connect_timeout``).
    """
    if zk is None or zk == "":
        return StandaloneContender(master_info)
    from mesoslite.coordination.zookeeper import ZooKeeperContender

    url = zk if isinstance(zk, ZkUrl) else parse_zk_url(zk)
    return ZooKeeperContender(url, master_info, **options)


def create_detector(master: str | ZkUrl | MasterInfo, **options: Any) -> Detector:
    """A detector for ``zk://…`` (ZooKeeper), ``host:port``/``tcp://host:port`` or a MasterInfo.

    ``options`` go to :class:`~mesoslite.coordination.zookeeper.ZooKeeperDetector`.
    """
    if isinstance(master, ZkUrl) or (isinstance(master, str) and is_zk_url(master)):
        from mesoslite.coordination.zookeeper import ZooKeeperDetector

        return ZooKeeperDetector(master, **options)
    if isinstance(master, MasterInfo | str):
        return StandaloneDetector(master)
    raise ValueError(
        f"master: expected 'zk://…', 'host:port', 'tcp://host:port' or a MasterInfo, "
        f"got {master!r}"
    )


class EndpointDetector:
    """Adapts a :class:`Detector` to the scheduler driver's endpoint-string protocol.

    ``detect(previous)`` starts the detector on first use and returns the
    leader's ZeroMQ endpoint once it differs from ``previous`` (None while no
    leader is known, or when the leader advertises no endpoint).
    """

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self._started = False
        self._stopping: asyncio.Task[None] | None = None

    async def detect(self, previous: str | None = None) -> str | None:
        """The leader's endpoint once it differs from ``previous``."""
        if not self._started:
            self._started = True
            await self.detector.start()
        while True:
            leader = self.detector.current()
            endpoint = (leader.zmq_endpoint or None) if leader else None
            if endpoint != previous:
                return endpoint
            await self.detector.wait_for_change(leader)

    def close(self) -> None:
        """Stop the detector in the background (call on the loop thread, as the driver does)."""
        if self._started and self._stopping is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError(
                    "EndpointDetector.close() must be called on the event loop thread; "
                    "use 'await aclose()' elsewhere in async code"
                ) from None
            self._stopping = loop.create_task(self.detector.stop())

    async def aclose(self) -> None:
        """Stop the detector and wait for it."""
        self.close()
        if self._stopping is not None:
            await self._stopping
