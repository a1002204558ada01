"""Leader election among Marathon-style framework instances.

Owns: :class:`MarathonElection`.  With ``--zk zk://hosts/marathon`` every
instance contends in ``/marathon/leader`` through mesoslite's ZooKeeper
contender (ephemeral-sequential ``json.info_<seq>`` znodes holding a
MasterInfo whose ``hostname``/``port``/``http_endpoint`` are this instance's
HTTP address) and follows the leader with a detector on the same path, so a
standby knows where to proxy API calls.  Without ZooKeeper the instance leads
at once and alone.

Losing leadership (session lost, or suspended beyond the grace) runs the
``on_deposed`` callbacks; the instance should stop acting as leader (Marathon
exits and lets its supervisor restart it).  :meth:`MarathonElection.abdicate`
gives leadership up on purpose and enters the election again (``DELETE /v2/leader``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from mesoslite.coordination.factory import create_contender, create_detector
from mesoslite.coordination.interface import Contender, Detector
from mesoslite.coordination.url import ZkUrl, parse_zk_url
from mesoslite.protocol.types import MasterInfo

log = logging.getLogger("frameworks.marathon.election")

#: The election directory below the ``--zk`` path.
LEADER_DIR = "leader"
#: The state directory below the ``--zk`` path.
STATE_DIR = "state"


def http_address(host: str, port: int) -> str:
    """``host:port`` (an IPv6 host in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class MarathonElection:
    """This instance's candidacy for leadership, and its view of who leads."""

    def __init__(self, zk_url: str | ZkUrl | None, http_host: str, http_port: int, *,
                 instance_id: str | None = None, version: str = "",
                 session_timeout: float = 10.0, suspend_grace: float | None = None,
                 connect_timeout: float = 30.0) -> None:
        if not isinstance(http_host, str) or not http_host:
            raise ValueError(f"http_host: expected a host name or address, got {http_host!r}")
        if isinstance(http_port, bool) or not isinstance(http_port, int) \
                or not 0 < http_port <= 65535:
            raise ValueError(f"http_port: expected an integer in 1-65535, got {http_port!r}")
        self.zk_url: ZkUrl | None = None
        if zk_url:
            self.zk_url = zk_url if isinstance(zk_url, ZkUrl) else parse_zk_url(zk_url)
        self.http_host = http_host
        self.http_port = http_port
        self.instance_id = instance_id or f"marathon-{uuid.uuid4()}"
        self.address = http_address(http_host, http_port)
        self.master_info = MasterInfo(
            id=self.instance_id, ip=http_host, port=http_port, hostname=http_host,
            version=version, zmq_endpoint="", http_endpoint=f"http://{self.address}",
        )
        self._options = {"session_timeout": session_timeout, "suspend_grace": suspend_grace,
                         "connect_timeout": connect_timeout}
        self._contender: Contender | None = None
        self._detector: Detector | None = None
        self._on_elected: list[Callable[[], object]] = []
        self._on_deposed: list[Callable[[str], object]] = []
        self._started = False

    # ------------------------------------------------------------ paths

    @property
    def leader_url(self) -> ZkUrl | None:
        """``<zk path>/leader`` (None when standalone)."""
        return None if self.zk_url is None else \
            self.zk_url.with_path(f"{self.zk_url.path}/{LEADER_DIR}")

    @property
    def state_root(self) -> str | None:
        """``<zk path>/state``, the ZooKeeperStore root (None when standalone)."""
        return None if self.zk_url is None else f"{self.zk_url.path}/{STATE_DIR}"

    # ------------------------------------------------------------ public

    async def start(self) -> None:
        """Enter the election and start following the leader (standalone: lead at once).

        CoordinationError when ZooKeeper cannot be reached within ``connect_timeout``.
        """
        if self._started:
            return
        self._started = True
        try:
            if self.leader_url is not None:
                self._detector = create_detector(self.leader_url, **self._options)
                await self._detector.start()
            await self._contend()
        except BaseException:
            await self.stop()
            self._started = False
            raise

    async def stop(self) -> None:
        """Leave the election (the znode goes at once) and stop following (idempotent)."""
        contender, self._contender = self._contender, None
        detector, self._detector = self._detector, None
        if contender is not None:
            await contender.withdraw()
        if detector is not None:
            await detector.stop()

    async def abdicate(self) -> None:
        """Give up leadership and contend again (deposed callbacks get reason 'abdicated')."""
        contender = self._contender
        if contender is None:
            return
        was_leader = contender.is_leader
        self._contender = None
        await contender.withdraw()
        if was_leader:
            self._fire_deposed("abdicated")
        await self._contend()

    @property
    def is_leader(self) -> bool:
        """True while this instance leads."""
        contender = self._contender
        return contender is not None and contender.is_leader

    @property
    def fencing_path(self) -> str | None:
        """This instance's leader znode (check it in store writes); None when standalone."""
        contender = self._contender
        return contender.fencing_path() if contender is not None else None

    def leader_info(self) -> MasterInfo | None:
        """The leader's MasterInfo as last seen (this instance's own while it leads)."""
        if self.is_leader:
            return self.master_info
        return self._detector.current() if self._detector is not None else None

    def leader_http_address(self) -> str | None:
        """The leader's HTTP ``host:port`` (None: no leader known)."""
        info = self.leader_info()
        if info is None:
            return None
        return http_address(info.hostname or info.ip, info.port)

    def on_elected(self, callback: Callable[[], object]) -> None:
        """Run ``callback()`` on the loop each time this instance becomes leader."""
        self._on_elected.append(callback)
        if self.is_leader:
            self._call(callback)

    def on_deposed(self, callback: Callable[[str], object]) -> None:
        """Run ``callback(reason)`` on the loop when this instance stops leading involuntarily."""
        self._on_deposed.append(callback)

    # ------------------------------------------------------------ internals

    async def _contend(self) -> None:
        contender = create_contender(self.leader_url, self.master_info, **(
            self._options if self.leader_url is not None else {}))
        self._contender = contender

        def elected() -> None:
            if self._contender is contender:
                log.info("%s: elected leader (%s)", self.instance_id, self.address)
                for callback in list(self._on_elected):
                    self._call(callback)

        def deposed(reason: str) -> None:
            if self._contender is contender:
                self._fire_deposed(reason)

        contender.on_elected(elected)
        contender.on_deposed(deposed)
        await contender.start()

    def _fire_deposed(self, reason: str) -> None:
        log.warning("%s: no longer the leader: %s", self.instance_id, reason)
        for callback in list(self._on_deposed):
            self._call(callback, reason)

    def _call(self, callback: Callable[..., object], *args: object) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("%s: election callback %r failed", self.instance_id, callback)


__all__ = ["LEADER_DIR", "STATE_DIR", "MarathonElection", "http_address"]
