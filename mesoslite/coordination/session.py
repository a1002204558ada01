"""One ZooKeeper session and the single bridge from kazoo's threads into asyncio.

Owns: :class:`ZkSession`, which wraps a ``KazooClient``.  kazoo runs its own
threads; they never touch application state.  Everything they produce --
session state changes, watch events, results of asynchronous calls -- is
handed to the loop in exactly one place, :meth:`ZkSession._deliver`, with
``loop.call_soon_threadsafe``.  Handlers registered here therefore always
run on the loop thread.

Session states as seen by handlers (kazoo's names):

* ``CONNECTED`` -- connected; after ``LOST`` this is a *new* session.
* ``SUSPENDED`` -- connection dropped; the session may still be alive.
  kazoo forgets every watch at this point, so handlers re-read and re-watch
  on the next ``CONNECTED``.
* ``LOST`` -- the session expired (its ephemeral znodes are gone).

The server may grant a session timeout other than the one asked for (it
clamps it to ``[2, 20] x tickTime`` by default); :attr:`ZkSession.negotiated_timeout`
is the one it granted, learnt at each connection.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient, KazooState, TransactionRequest
from kazoo.exceptions import KazooException
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import WatchedEvent

from mesoslite.coordination.interface import CoordinationError
from mesoslite.coordination.url import ZkUrl

log = logging.getLogger("mesoslite.coordination.zk")

CONNECTED = KazooState.CONNECTED
SUSPENDED = KazooState.SUSPENDED
LOST = KazooState.LOST

StateHandler = Callable[[str], object]
WatchHandler = Callable[[WatchedEvent], object]

#: Reconnect quickly after an outage (kazoo's own default backs off for up to a minute).
_CONNECTION_RETRY = {"max_tries": -1, "delay": 0.1, "backoff": 2, "max_delay": 1.0}


class ZkSession:
    """A kazoo client owned by one component, driven from the asyncio loop."""

    def __init__(self, url: ZkUrl, *, session_timeout: float = 10.0, name: str = "zk") -> None:
        if session_timeout <= 0:
            raise ValueError(f"session_timeout: expected seconds > 0, got {session_timeout!r}")
        self.url = url
        self.name = name
        self.session_timeout = session_timeout
        self.state: str = LOST
        self._client: KazooClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._connected = asyncio.Event()
        self._handlers: list[StateHandler] = []
        self._close_done: asyncio.Future[None] | None = None
        #: The session timeout the server granted (seconds; None until connected once).
        self.negotiated_timeout: float | None = None

    # ------------------------------------------------------------ the bridge

    def _deliver(self, fn: Callable[..., object], *args: Any) -> None:
        """THE crossing point: run ``fn(*args)`` on the loop. Safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed between the check and the call
            pass

    def watcher(self, handler: WatchHandler) -> Callable[[WatchedEvent], None]:
        """A kazoo watch function that runs ``handler(event)`` on the loop.

        Create it once per purpose and reuse it: kazoo keeps watch functions in
        a set, so the same object registered twice fires once.
        """
        def watch(event: WatchedEvent) -> None:
            self._deliver(handler, event)

        return watch

    async def wait(self, async_result: IAsyncResult) -> Any:
        """Await a kazoo asynchronous result on the loop (its exception is raised here)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def settle(result: IAsyncResult) -> None:  # on the loop
            if future.done():
                return
            try:
                future.set_result(result.get(block=False))
            except Exception as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                future.set_exception(exc)

        async_result.rawlink(lambda result: self._deliver(settle, result))
        return await future

    # ------------------------------------------------------------ lifecycle

    @property
    def client_id(self) -> tuple[int, bytes] | None:
        """(session id, password) of the live session, for diagnostics and tests."""
        client = self._client
        return client.client_id if client is not None else None

    @property
    def connected(self) -> bool:
        """True while the state is CONNECTED."""
        return self.state == CONNECTED

    def add_state_handler(self, handler: StateHandler) -> None:
        """Run ``handler(state)`` on the loop at every session state change."""
        self._handlers.append(handler)

    async def start(self, timeout: float = 30.0) -> None:
        """Connect; CoordinationError if no server answers within ``timeout`` seconds."""
        if self._client is not None:
            await self.wait_connected(timeout)
            return
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self._close_done = None
        client = KazooClient(
            hosts=self.url.hosts_string,
            timeout=self.session_timeout,
            auth_data=self.url.auth_data or None,
            connection_retry=dict(_CONNECTION_RETRY),
        )
        client.add_listener(lambda state: self._deliver(self._on_state, state))
        self._watch_negotiation(client)
        self._client = client
        client.start_async()
        try:
            await self.wait_connected(timeout)
        except CoordinationError:
            await self.close()
            raise

    async def wait_connected(self, timeout: float) -> None:
        """Wait until CONNECTED; CoordinationError after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            raise CoordinationError(
                f"{self.name}: no ZooKeeper server at {self.url.hosts_string} answered "
                f"within {timeout}s"
            ) from None

    async def close(self) -> None:
        """End the session (its ephemeral znodes go at once when connected).

        Idempotent; concurrent callers all wait for the same close, and cancelling
        a caller does not abandon it.
        """
        client, self._client = self._client, None
        self._closing = True
        self._connected.clear()
        self.state = LOST
        if client is not None:
            self._close_done = asyncio.get_running_loop().create_future()
            self._stop_client(client, self._close_done)
        if self._close_done is not None:
            await asyncio.shield(self._close_done)

    def _watch_negotiation(self, client: KazooClient) -> None:
        """Learn the session timeout the server grants at each connection.

        kazoo 2.x keeps it in a local variable of its connection routine, whose
        result is ``(read_timeout, connect_timeout)`` in milliseconds with
        ``read_timeout`` = two thirds of the negotiated timeout; the value
        crosses into the loop through :meth:`_deliver` like everything else.
        When kazoo's internals differ, :attr:`negotiated_timeout` stays None
        and callers use the requested timeout.
        """
        connection = getattr(client, "_connection", None)
        original = getattr(connection, "_connect", None)
        if connection is None or not callable(original):
            return

        def connect(*args: Any, **kwargs: Any) -> Any:  # on kazoo's connection thread
            result = original(*args, **kwargs)
            try:
                read_timeout_ms = float(result[0])
            except (TypeError, ValueError, IndexError):
                return result
            if read_timeout_ms > 0:
                self._deliver(self._set_negotiated, read_timeout_ms * 1.5 / 1000.0)
            return result

        connection._connect = connect

    def _set_negotiated(self, seconds: float) -> None:  # on the loop
        if self.negotiated_timeout is None or abs(seconds - self.negotiated_timeout) > 1e-3:
            if abs(seconds - self.session_timeout) > 1e-3:
                log.info("%s: the server granted a %.3gs session timeout (asked for %.3gs)",
                         self.name, seconds, self.session_timeout)
            self.negotiated_timeout = seconds

    @property
    def effective_timeout(self) -> float:
        """The negotiated session timeout once known, else the requested one (seconds)."""
        return self.negotiated_timeout or self.session_timeout

    def _stop_client(self, client: KazooClient, done: asyncio.Future[None]) -> None:
        """Stop ``client`` on a helper thread (stop() and close() block); resolve ``done``."""

        def resolve() -> None:  # on the loop
            if not done.done():
                done.set_result(None)

        def stop_client() -> None:  # on a helper thread: stop() and close() block
            try:
                client.stop()
                client.close()
            except Exception:
                log.debug("%s: error while closing the kazoo client", self.name, exc_info=True)
            finally:
                self._deliver(resolve)

        threading.Thread(target=stop_client, name=f"{self.name}-close", daemon=True).start()

    def _on_state(self, state: str) -> None:  # on the loop
        if self._closing or state == self.state:
            return
        log.info("%s: ZooKeeper session %s", self.name, state)
        self.state = state
        if state == CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        for handler in list(self._handlers):
            try:
                handler(state)
            except Exception:
                log.exception("%s: session state handler %r failed", self.name, handler)

    # ------------------------------------------------------------ calls

    def _require(self) -> KazooClient:
        if self._client is None:
            raise CoordinationError(f"{self.name}: the ZooKeeper session is not started")
        return self._client

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run kazoo's ``<method>_async(*args, **kwargs)`` and await its result."""
        client = self._require()
        return await self.wait(getattr(client, f"{method}_async")(*args, **kwargs))

    def transaction(self) -> TransactionRequest:
        """A new kazoo transaction; commit it with :meth:`commit`."""
        return self._require().transaction()

    async def commit(self, txn: TransactionRequest) -> list[Any]:
        """Commit ``txn``; the per-operation results (exceptions in place of failed ones)."""
        return await self.wait(txn.commit_async())


__all__ = ["CONNECTED", "LOST", "SUSPENDED", "KazooException", "ZkSession"]


class Fenced:
    """Mixin: a ZooKeeper writer whose writes check its leader znode (``fencing_path``)."""

    _fencing_path: str | None = None

    @property
    def fencing_path(self) -> str | None:
        """The znode every write checks (None: unfenced); may be reassigned at any time."""
        return self._fencing_path

    @fencing_path.setter
    def fencing_path(self, value: str | None) -> None:
        if value is not None and (not isinstance(value, str) or not value.startswith("/")):
            raise ValueError(
                f"fencing_path: expected an absolute znode path or None, got {value!r}")
        self._fencing_path = value
