"""Leader election and leader detection through ZooKeeper, in Mesos's layout.

Owns: :class:`ZooKeeperContender` and :class:`ZooKeeperDetector`.

Layout (what Mesos tools expect): the URL's path (e.g. ``/mesoslite``) is a
persistent znode, created before anyone watches it.  Each contender creates
one ephemeral-sequential child ``json.info_<10 digits>`` whose data is the
MasterInfo JSON (:mod:`mesoslite.coordination.masterinfo`).  The child with
the lowest sequence number leads.  Nothing else lives in that directory.

Losing leadership: when the session is LOST, or SUSPENDED for longer than
the suspend grace, the contender is deposed at once: ``elected`` is cleared,
``deposed`` is set, the ``on_deposed`` callbacks run, and its session is
closed.  The detector likewise reports "no leader" (None) when its own
session is lost or suspended beyond the grace.  The grace is derived from
the session timeout the server *granted* (:func:`derived_suspend_grace`),
read when the suspension starts; an explicit ``suspend_grace`` overrides it
but is capped to that safe window (:func:`effective_suspend_grace`).

All state here lives on the asyncio loop; kazoo's threads reach it only
through :class:`~mesoslite.coordination.session.ZkSession`'s single bridge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from kazoo.exceptions import KazooException, NoNodeError
from kazoo.protocol.states import WatchedEvent
from kazoo.security import READ_ACL_UNSAFE, make_digest_acl

from mesoslite.coordination.interface import (
    CoordinationError,
    DeposedCallback,
    ElectedCallback,
    LeaderCallback,
)
from mesoslite.coordination.masterinfo import (
    MASTER_INFO_LABEL,
    MasterInfoError,
    candidate_sequence,
    leader_of,
    master_info_from_json,
    master_info_to_json,
)
from mesoslite.coordination.session import CONNECTED, LOST, SUSPENDED, ZkSession
from mesoslite.coordination.tracking import LeadershipState, LeaderTracker
from mesoslite.coordination.url import ZkUrl, parse_zk_url
from mesoslite.protocol.types import MasterInfo

log = logging.getLogger("mesoslite.coordination.zk")

#: Default ZooKeeper session timeout, seconds (Mesos ``--zk_session_timeout``).
DEFAULT_SESSION_TIMEOUT = 10.0
#: Longest a leader may stay disconnected before it deposes itself, seconds.
MAX_SUSPEND_GRACE = 2.0
#: Kept for callers that name it: the longest derived grace, seconds.
DEFAULT_SUSPEND_GRACE = MAX_SUSPEND_GRACE
#: Default deadline for the first connection, seconds.
DEFAULT_CONNECT_TIMEOUT = 30.0

_RETRY_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)


def as_zk_url(zk_url: str | ZkUrl) -> ZkUrl:
    """Accept a parsed :class:`ZkUrl` or parse a ``zk://`` string."""
    return zk_url if isinstance(zk_url, ZkUrl) else parse_zk_url(zk_url)


def election_acl(url: ZkUrl) -> list[Any] | None:
    """ACL for the group directory and candidates: creator all + world read when credentialed.

    None (kazoo's open ACL) when the URL carries no credentials; detectors never need any.
    """
    if not url.username:
        return None
    return [make_digest_acl(url.username, url.password, all=True), *READ_ACL_UNSAFE]


def derived_suspend_grace(session_timeout: float) -> float:
    """The grace for a suspended connection, from the (negotiated) session timeout.

    A quarter of the timeout, at most :data:`MAX_SUSPEND_GRACE`: kazoo reports
    SUSPENDED after two thirds of the timeout without a reply, and the server
    expires the session (so that another master may lead) one third later; a
    quarter leaves a margin inside that third.
    """
    return min(MAX_SUSPEND_GRACE, session_timeout / 4)


def effective_suspend_grace(configured: float | None, session_timeout: float) -> float:
    """The grace to apply: ``configured`` (None: derived), capped to the derived safe window.

    ``session_timeout`` is the negotiated one when known.  A configured grace
    longer than a third of it would let the session expire -- and another
    master lead -- while this one still acts, so it is cut to the derived value.
    """
    derived = derived_suspend_grace(session_timeout)
    if configured is None:
        return derived
    if configured >= session_timeout / 3:
        return derived
    return configured


def _check_timing(session_timeout: float, suspend_grace: float | None) -> None:
    if session_timeout <= 0:
        raise ValueError(f"session_timeout: expected seconds > 0, got {session_timeout!r}")
    if suspend_grace is not None and not 0 < suspend_grace < session_timeout:
        raise ValueError(
            f"suspend_grace: expected 0 < seconds < session_timeout ({session_timeout}), "
            f"got {suspend_grace!r}"
        )
    if suspend_grace is not None and suspend_grace >= session_timeout / 3:
        log.warning("suspend_grace %.3gs is not below a third of the %.3gs session timeout; "
                    "%.3gs is used instead", suspend_grace, session_timeout,
                    derived_suspend_grace(session_timeout))


class _Refresher:
    """Runs one coroutine at a time on demand; requests made meanwhile coalesce into one rerun.

    A failed run is retried with backoff while the session is connected; when it
    is not, the next CONNECTED requests a run anyway.
    """

    def __init__(self, name: str, session: ZkSession, body: Callable[[], Any],
                 active: Callable[[], bool]) -> None:
        self._name = name
        self._session = session
        self._body = body
        self._active = active
        self._dirty = False
        self._task: asyncio.Task[None] | None = None

    def request(self) -> asyncio.Task[None]:
        """Ask for a run; returns the task that will perform it."""
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self._task

    def again(self) -> None:
        """From inside the body: run once more after this run."""
        self._dirty = True

    def cancel(self) -> None:
        """Stop any run in progress."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _run(self) -> None:
        failures = 0
        while self._dirty and self._active():
            self._dirty = False
            try:
                await self._body()
                failures = 0
            except (KazooException, CoordinationError) as exc:
                if not self._session.connected:
                    log.info("%s: %r while disconnected; retrying on reconnection",
                             self._name, exc)
                    return
                delay = _RETRY_DELAYS[min(failures, len(_RETRY_DELAYS) - 1)]
                failures += 1
                log.info("%s: %r; retrying in %.1fs", self._name, exc, delay)
                self._dirty = True
                await asyncio.sleep(delay)
            except Exception:
                log.exception("%s: unexpected error while reading ZooKeeper; retrying on "
                              "the next change or reconnection", self._name)
                return


class ZooKeeperContender:
    """A master's candidacy in the ZooKeeper group at ``zk_url``'s path."""

    def __init__(
        self,
        zk_url: str | ZkUrl,
        master_info: MasterInfo,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        *,
        suspend_grace: float | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        """``suspend_grace`` None: derived from the negotiated session timeout."""
        _check_timing(session_timeout, suspend_grace)
        self.url = as_zk_url(zk_url)
        self.master_info = master_info
        #: The configured grace (None: derived); see :attr:`current_suspend_grace`.
        self.suspend_grace = suspend_grace
        self.connect_timeout = connect_timeout
        name = f"contender {master_info.id or master_info.zmq_endpoint}"
        self.session = ZkSession(self.url, session_timeout=session_timeout, name=name)
        self._leadership = LeadershipState(name)
        self.elected: asyncio.Event = self._leadership.elected
        self.deposed: asyncio.Event = self._leadership.deposed
        self._data = master_info_to_json(master_info)
        self._acl = election_acl(self.url)
        self._znode: str | None = None
        self._maybe_orphan = False
        self._started = False
        self._active = False
        self._grace_timer: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None
        self._refresher = _Refresher(name, self.session, self._refresh, lambda: self._active)
        self._children_watch = self.session.watcher(self._on_children_changed)
        self.session.add_state_handler(self._on_session_state)

    # ------------------------------------------------------------ public

    @property
    def is_leader(self) -> bool:
        """True from election until withdrawal or deposition."""
        return self._leadership.is_leader

    @property
    def current_suspend_grace(self) -> float:
        """The grace a suspension gets now (from the negotiated session timeout once known)."""
        return effective_suspend_grace(self.suspend_grace, self.session.effective_timeout)

    def on_elected(self, callback: ElectedCallback) -> None:
        """Run ``callback()`` on the loop when elected (at once if already leading)."""
        self._leadership.on_elected(callback)

    def on_deposed(self, callback: DeposedCallback) -> None:
        """Run ``callback(reason)`` on the loop when deposed."""
        self._leadership.on_deposed(callback)

    def fencing_path(self) -> str | None:
        """This candidate's znode (absolute path); a valid fence only while leading.

        After deposition or withdrawal it still returns the old path (which no
        longer exists), so a registry built from it is fenced, never unfenced.
        """
        return self._znode

    async def start(self) -> None:
        """Connect, create the group directory if needed and the candidate znode.

        Returns once the candidacy exists; ``elected`` follows when it leads.
        CoordinationError if ZooKeeper cannot be reached within ``connect_timeout``.
        A contender starts once; a deposed or withdrawn one cannot start again.
        """
        if self._started:
            if self._active:
                return
            raise CoordinationError(
                f"{self.session.name}: this candidacy has ended (deposed, withdrawn or failed "
                "to start); create a new contender to contend again"
            )
        self._started = True
        try:
            await self.session.start(self.connect_timeout)
            await self.session.call("ensure_path", self.url.path, acl=self._acl)
            self._active = True
            await self._create()
        except Exception as exc:
            self._active = False
            await self.session.close()
            if isinstance(exc, CoordinationError):
                raise
            raise CoordinationError(
                f"{self.session.name}: could not enter the election at {self.url}: {exc!r}"
            ) from exc
        await self._refresher.request()

    async def withdraw(self) -> None:
        """Leave the election: the candidate znode is deleted and the session closed."""
        self._started = True  # a withdrawn contender never starts (again)
        self._active = False
        self._cancel_grace()
        self._refresher.cancel()
        self._leadership.resign()
        if self._closing is not None and not self._closing.done():
            self._closing.cancel()
        await self.session.close()

    # ------------------------------------------------------------ loop-side events

    def _on_session_state(self, state: str) -> None:
        if not self._active:
            return
        if state == SUSPENDED:
            if self.is_leader and self._grace_timer is None:
                grace = self.current_suspend_grace
                self._grace_timer = asyncio.get_running_loop().call_later(
                    grace, self._depose,
                    f"ZooKeeper connection suspended for more than {grace:.3g}s",
                )
        elif state == LOST:
            self._cancel_grace()
            self._maybe_orphan = False
            if self.is_leader:
                self._depose("ZooKeeper session expired")
            else:
                self._znode = None  # gone with the session; a new one is made on reconnection
        elif state == CONNECTED:
            self._cancel_grace()
            self._refresher.request()

    def _on_children_changed(self, _event: WatchedEvent) -> None:
        if self._active:
            self._refresher.request()

    def _cancel_grace(self) -> None:
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None

    def _depose(self, reason: str) -> None:
        self._grace_timer = None
        if not self._active:
            return
        self._active = False
        self._refresher.cancel()
        self._leadership.depose(reason)
        self._closing = asyncio.get_running_loop().create_task(self._retire())

    async def _retire(self) -> None:
        """After deposition: delete our znode as soon as ZooKeeper hears us, then close.

        While disconnected kazoo queues the delete; if the session survived the
        outage, the znode goes at reconnection instead of at session expiry, so
        the next candidate leads sooner.  Closing the session covers every other case.
        """
        if self._znode is not None and self.session.state != LOST:
            try:
                await asyncio.wait_for(self.session.call("delete", self._znode),
                                       self.session.session_timeout)
            except (KazooException, TimeoutError):
                pass
        await self.session.close()

    # ------------------------------------------------------------ ZooKeeper work

    async def _create(self) -> None:
        try:
            self._znode = await self.session.call(
                "create", f"{self.url.path}/{MASTER_INFO_LABEL}", self._data,
                acl=self._acl, ephemeral=True, sequence=True,
            )
        except KazooException:
            # The create may have happened with its reply lost: find it by owner later.
            self._maybe_orphan = True
            raise
        log.info("%s: candidate znode %s", self.session.name, self._znode)

    async def _adopt_orphans(self) -> None:
        """After an uncertain create: keep our lowest candidate znode, delete the others."""
        client_id = self.session.client_id
        children = await self.session.call("get_children", self.url.path)
        mine: list[tuple[int, str]] = []
        for name in children:
            seq = candidate_sequence(name)
            if seq is None or client_id is None:
                continue
            stat = await self.session.call("exists", f"{self.url.path}/{name}")
            if stat is not None and stat.ephemeralOwner == client_id[0]:
                mine.append((seq, f"{self.url.path}/{name}"))
        mine.sort()
        for _, path in mine[1:]:
            try:
                await self.session.call("delete", path)
            except NoNodeError:
                pass
        if mine:
            self._znode = mine[0][1]
        self._maybe_orphan = False

    async def _refresh(self) -> None:
        if self._znode is None:
            if self._maybe_orphan:
                await self._adopt_orphans()
            if self._znode is None:
                await self._create()
        children = await self.session.call(
            "get_children", self.url.path, watch=self._children_watch
        )
        if not self._active or self._znode is None:
            return
        mine = self._znode.rsplit("/", 1)[1]
        if mine not in children:
            if self.is_leader:
                self._depose(f"leader znode {self._znode} was deleted")
            else:
                log.warning("%s: candidate znode %s vanished; re-entering the election",
                            self.session.name, self._znode)
                self._znode = None
                self._refresher.again()
            return
        if leader_of(children) == mine:
            self._leadership.become_leader()


class ZooKeeperDetector:
    """Follows the leader of the ZooKeeper group at ``zk_url``'s path."""

    def __init__(
        self,
        zk_url: str | ZkUrl,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        *,
        suspend_grace: float | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        """``suspend_grace`` None: derived from the negotiated session timeout."""
        _check_timing(session_timeout, suspend_grace)
        self.url = as_zk_url(zk_url)
        #: The configured grace (None: derived); see :attr:`current_suspend_grace`.
        self.suspend_grace = suspend_grace
        self.connect_timeout = connect_timeout
        self.session = ZkSession(self.url, session_timeout=session_timeout,
                                 name=f"detector {self.url}")
        self._tracker = LeaderTracker(self.session.name)
        self._leader_node: str | None = None
        self._bad_nodes: set[str] = set()
        self._active = False
        self._grace_timer: asyncio.TimerHandle | None = None
        self._refresher = _Refresher(self.session.name, self.session, self._refresh,
                                     lambda: self._active)
        self._children_watch = self.session.watcher(self._on_children_changed)
        self.session.add_state_handler(self._on_session_state)

    async def start(self) -> None:
        """Connect and read the current leader (``current()`` is up to date on return)."""
        if self._active:
            return
        await self.session.start(self.connect_timeout)
        try:
            await self.session.call("ensure_path", self.url.path, acl=election_acl(self.url))
        except KazooException as exc:
            await self.session.close()
            raise CoordinationError(
                f"{self.session.name}: cannot create or read {self.url.path}: {exc!r}"
            ) from exc
        self._active = True
        await self._refresher.request()

    async def stop(self) -> None:
        """Stop following; the leader becomes unknown (None)."""
        self._active = False
        self._cancel_grace()
        self._refresher.cancel()
        await self.session.close()
        self._forget_leader()

    def current(self) -> MasterInfo | None:
        """The leader as last seen (None: none known)."""
        return self._tracker.current()

    @property
    def current_suspend_grace(self) -> float:
        """The grace a suspension gets now (from the negotiated session timeout once known)."""
        return effective_suspend_grace(self.suspend_grace, self.session.effective_timeout)

    async def wait_for_change(self, previous: MasterInfo | None) -> MasterInfo | None:
        """Return the leader once it differs from ``previous`` (at once if it already does)."""
        return await self._tracker.wait_for_change(previous)

    def subscribe(self, callback: LeaderCallback) -> Callable[[], None]:
        """Call ``callback(leader)`` on each change; returns the unsubscribe function."""
        return self._tracker.subscribe(callback)

    async def members(self) -> list[MasterInfo]:
        """Every master contending now (the group's candidate znodes, leader first).

        Read on demand (a listing and one read per candidate; nothing is watched);
        a znode that goes away meanwhile or is not a MasterInfo is left out.
        """
        children = await self.session.call("get_children", self.url.path)
        named = sorted((seq, name) for name in children
                       if (seq := candidate_sequence(name)) is not None)
        out: list[MasterInfo] = []
        for _seq, name in named:
            try:
                data, _stat = await self.session.call("get", f"{self.url.path}/{name}")
                out.append(master_info_from_json(data))
            except (NoNodeError, MasterInfoError):
                continue
        return out

    # ------------------------------------------------------------ loop-side events

    def _on_session_state(self, state: str) -> None:
        if not self._active:
            return
        if state == SUSPENDED:
            if self._grace_timer is None:
                self._grace_timer = asyncio.get_running_loop().call_later(
                    self.current_suspend_grace, self._forget_leader
                )
        elif state == LOST:
            self._cancel_grace()
            self._forget_leader()
        elif state == CONNECTED:
            self._cancel_grace()
            self._refresher.request()

    def _on_children_changed(self, _event: WatchedEvent) -> None:
        if self._active:
            self._refresher.request()

    def _cancel_grace(self) -> None:
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None

    def _forget_leader(self) -> None:
        self._grace_timer = None
        self._leader_node = None
        self._tracker.set(None)

    async def _refresh(self) -> None:
        try:
            children = await self.session.call(
                "get_children", self.url.path, watch=self._children_watch
            )
        except NoNodeError:  # the directory was deleted under us: recreate and look again
            await self.session.call("ensure_path", self.url.path, acl=election_acl(self.url))
            self._refresher.again()
            return
        leader = leader_of(children)
        if leader is None:
            self._forget_leader()
            return
        if leader == self._leader_node:
            return
        try:
            data, _stat = await self.session.call("get", f"{self.url.path}/{leader}")
        except NoNodeError:  # it went away between the listing and the read
            self._refresher.again()
            return
        self._leader_node = leader
        try:
            info = master_info_from_json(data)
        except MasterInfoError as exc:
            if leader not in self._bad_nodes:
                self._bad_nodes.add(leader)
                log.error("%s: leader znode %s/%s is not a MasterInfo: %s",
                          self.session.name, self.url.path, leader, exc)
            self._tracker.set(None)
            return
        self._tracker.set(info)
