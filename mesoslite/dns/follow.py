"""Following the leading master's operator event stream into the record table.

Owns: :class:`Follower`.  It finds the leading master (``--master`` as ``zk://…``: the
leader ZooKeeper names, re-read whenever it changes; ``host:port[,host:port…]``: each
in turn), asks it ``GET_MASTER`` (for ``leader.<domain>``), then opens the v1 operator
``SUBSCRIBE`` stream (``POST /api/v1``) and applies every event to the
:class:`~mesoslite.dns.table.RecordTable` as it arrives: a task is resolvable as soon
as its ``TASK_UPDATED`` to ``TASK_RUNNING`` is read, and gone at its terminal update.
A master that does not lead answers 307 with the leader's address, which is followed;
a stream that ends, breaks, or stays silent for three heartbeat intervals is opened
again (from a fresh ``SUBSCRIBED`` snapshot) after a backoff that doubles from 0.1 s
to ``--max_backoff``.  The HTTP client is a small HTTP/1.1 one over asyncio streams, so
that a stalled stream can be timed out per read and dropped at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any

from mesoslite.api.recordio import Decoder, RecordIOError
from mesoslite.dns.config import DnsConfig
from mesoslite.dns.table import FeedError, Master, RecordTable, ipv4_only

log = logging.getLogger("mesoslite.dns")

#: Seconds to connect to a master and to read a non-streaming answer.
CONNECT_TIMEOUT = 5.0
#: Redirects followed in a row before the attempt counts as failed.
MAX_REDIRECTS = 5
#: Largest header block and chunk-size line accepted from a master.
MAX_HEAD = 64 * 1024
#: Silence (in heartbeat intervals) after which the stream is deemed dead.
SILENT_BEATS = 3.0
#: The first backoff after a failure (seconds); it doubles up to ``max_backoff``.
FIRST_BACKOFF = 0.1


class StreamError(Exception):
    """The master's answer is not what the v1 API gives."""


class Redirect(Exception):
    """The master does not lead: go to ``base``."""

    def __init__(self, base: str) -> None:
        super().__init__(base)
        self.base = base


def resolve_host(host: str) -> str | None:
    """An IPv4 address for ``host`` (None when it does not resolve)."""
    found = ipv4_only(host)
    if found is not None:
        return found
    try:
        return socket.gethostbyname(host)
    except OSError:
        return None


class _Http:
    """One HTTP/1.1 exchange with a master: a POST, its status, headers and body."""

    def __init__(self, base: str, authorization: str = "") -> None:
        parts = urllib.parse.urlsplit(base if "//" in base else f"//{base}")
        self.authorization = authorization
        if not parts.hostname or not parts.port:
            raise StreamError(f"expected host:port, got {base!r}")
        self.host = parts.hostname
        self.port = parts.port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.headers: dict[str, str] = {}
        #: Seconds a read of the body may wait (the stream's silence allowance).
        self.read_timeout = CONNECT_TIMEOUT * 2

    @property
    def base(self) -> str:
        return f"{self.host}:{self.port}"

    async def post(self, body: dict[str, Any]) -> int:
        """Send ``body`` to ``/api/v1``; return the status (headers in ``self.headers``)."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=MAX_HEAD), CONNECT_TIMEOUT)
        self.reader, self.writer = reader, writer
        payload = json.dumps(body).encode()
        auth = f"Authorization: {self.authorization}\r\n" if self.authorization else ""
        writer.write(
            f"POST /api/v1 HTTP/1.1\r\nHost: {self.base}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json\r\n{auth}"
            f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT)
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            raise StreamError(f"not an HTTP status line: {lines[0][:80]!r}") from None
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                self.headers[name.strip().lower()] = value.strip()
        if status in (301, 302, 307, 308):
            location = self.headers.get("location", "")
            target = urllib.parse.urlsplit(location if "//" in location else f"//{location}")
            if not target.hostname or not target.port:
                raise StreamError(f"a redirect without a usable Location: {location[:80]!r}")
            raise Redirect(f"{target.hostname}:{target.port}")
        return status

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, piece by piece (chunked or by length); a read waits ``read_timeout``."""
        reader = self.reader
        assert reader is not None
        if self.headers.get("transfer-encoding", "").lower() != "chunked":
            length = int(self.headers.get("content-length", "0") or 0)
            yield await asyncio.wait_for(reader.readexactly(length), self.read_timeout)
            return
        while True:
            line = await asyncio.wait_for(reader.readuntil(b"\r\n"), self.read_timeout)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise StreamError(f"bad chunk size {line[:40]!r}") from None
            if size == 0:
                return
            data = await asyncio.wait_for(reader.readexactly(size + 2), self.read_timeout)
            yield data[:-2]

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 1.0)


class Follower:
    """Keeps ``table`` in step with the leading master; :meth:`run` until :meth:`stop`."""

    def __init__(self, config: DnsConfig, table: RecordTable,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Follow the master(s) ``config.master`` names."""
        self.config = config
        self.table = table
        self.clock = clock
        self.connected = False
        self.leader: str | None = None
        self.subscriptions = 0
        self.bad_events = 0
        self.last_event = 0.0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._detector: Any = None
        self._last_failure = ""
        self._candidates = [m.strip() for m in config.master.split(",") if m.strip()]
        self._next = 0

    def start(self) -> None:
        """Start following in the background."""
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        """Stop following (and ZooKeeper detection)."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._detector is not None:
            with contextlib.suppress(Exception):
                await self._detector.stop()

    async def run(self) -> None:
        """Subscribe, apply events, and subscribe again after a failure, until stopped."""
        backoff = FIRST_BACKOFF
        while not self._stopping.is_set():
            try:
                base = await self._find_leader()
                if base is not None:
                    await self._follow(base)
                    backoff = FIRST_BACKOFF  # a stream that ended after SUBSCRIBED
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of one attempt: try again
                self._failed(exc)
            self.connected = False
            delay = backoff * (0.5 + random.random() / 2)
            backoff = min(backoff * 2, self.config.max_backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def _failed(self, exc: Exception) -> None:
        """Log a failed attempt: a new reason as a warning, the same one again at debug."""
        if isinstance(exc, asyncio.IncompleteReadError):
            why = "the master closed the connection"
        elif isinstance(exc, TimeoutError):
            why = "the master did not answer in time (or the stream went silent)"
        else:
            why = str(exc) or type(exc).__name__
        level = logging.DEBUG if why == self._last_failure else logging.WARNING
        self._last_failure = why
        log.log(level, "dns: following the master failed (retrying with backoff): %s", why)

    async def _find_leader(self) -> str | None:
        """``host:port`` of the master to ask first (ZooKeeper's leader, or the next one)."""
        from mesoslite.coordination import create_detector, is_zk_url

        if is_zk_url(self.config.master):
            if self._detector is None:
                self._detector = create_detector(self.config.master)
                await self._detector.start()
            leader = self._detector.current()
            if leader is None:
                with contextlib.suppress(TimeoutError):
                    leader = await asyncio.wait_for(self._detector.wait_for_change(None),
                                                    self.config.max_backoff * 5)
            if leader is None:
                return None
            return leader.http_endpoint or f"{leader.hostname or leader.ip}:{leader.port}"
        base = self._candidates[self._next % len(self._candidates)]
        self._next += 1
        return base

    async def _exchange(self, base: str, body: dict[str, Any]) -> tuple[_Http, int]:
        """POST ``body`` to the master at ``base``, following redirects to the leader."""
        for _ in range(MAX_REDIRECTS):
            http = _Http(base, self.config.authorization)
            try:
                return http, await http.post(body)
            except Redirect as redirect:
                await http.close()
                base = redirect.base
            except BaseException:
                await http.close()
                raise
        raise StreamError(f"more than {MAX_REDIRECTS} redirects from {base}")

    async def _master_info(self, base: str) -> str:
        """Ask GET_MASTER; record the leader; return where it was answered."""
        http, status = await self._exchange(base, {"type": "GET_MASTER"})
        try:
            if status != 200:
                raise StreamError(f"GET_MASTER answered {status}")
            body = b"".join([c async for c in http.chunks()])
        finally:
            await http.close()
        info = json.loads(body).get("get_master", {}).get("master_info", {})
        address = info.get("address") or {}
        host = str(info.get("hostname") or address.get("ip") or http.host)
        ip = address.get("ip") or resolve_host(host) or resolve_host(http.host)
        leader = Master(host, ip, int(address.get("port") or info.get("port") or http.port))
        self.table.set_masters(leader, self._known_masters())
        return http.base

    def _known_masters(self) -> tuple[Master, ...]:
        masters = []
        for candidate in self._candidates:
            if "://" in candidate:
                continue
            host, _, port = candidate.rpartition(":")
            if port.isdigit():
                masters.append(Master(host, resolve_host(host), int(port)))
        return tuple(masters)

    async def _follow(self, base: str) -> None:
        """One subscription: SUBSCRIBED, then events until the stream ends or goes silent."""
        base = await self._master_info(base)
        http, status = await self._exchange(base, {"type": "SUBSCRIBE"})
        try:
            if status != 200:
                raise StreamError(f"SUBSCRIBE answered {status}")
            self.leader = http.base
            decoder = Decoder(max_record=256 * 1024 * 1024)
            async for chunk in http.chunks():
                for record in decoder.feed(chunk):
                    http.read_timeout = self._apply(record, http.read_timeout)
            log.info("dns: the event stream from %s ended", http.base)
        except RecordIOError as exc:
            raise StreamError(f"the event stream is not RecordIO: {exc}") from None
        finally:
            self.connected = False
            await http.close()

    def _apply(self, record: bytes, silence: float) -> float:
        """Apply one event; return the silence allowed before the next one."""
        self.last_event = self.clock()
        try:
            event = json.loads(record)
        except ValueError:
            self.bad_events += 1
            log.warning("dns: an event that is not JSON (%d bytes), ignored", len(record))
            return silence
        try:
            self.table.apply(event)
        except FeedError as exc:
            self.bad_events += 1
            if isinstance(event, dict) and event.get("type") == "SUBSCRIBED":
                raise StreamError(f"a SUBSCRIBED event we cannot read: {exc}") from None
            log.warning("dns: ignored an event: %s", exc)
            return silence
        if event.get("type") == "SUBSCRIBED":
            self._last_failure = ""
            self.connected = True
            self.subscriptions += 1
            interval = event["subscribed"].get("heartbeat_interval_seconds")
            if isinstance(interval, int | float) and interval > 0:
                silence = SILENT_BEATS * float(interval) + 1.0
            log.info("dns: following %s (%d tasks, %d agents)", self.leader,
                     len(self.table.tasks), len(self.table.agents))
        return silence
