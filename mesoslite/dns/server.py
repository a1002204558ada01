"""The DNS listeners: UDP and TCP on one port, answering from the record table.

Owns: :class:`DnsService` (a packet → its reply, through :func:`~.wire.reply` and a
cache of replies keyed by the query's bytes after its id, emptied whenever the records
change; counters for ``/metrics``), :func:`start_listeners` (binds UDP and TCP on the
same port; port 0 picks a free one for both) and the TCP connection handler (two-byte
length framing, several queries per connection, idle connections closed after the
configured timeout, at most ``max_tcp_connections`` at once).

Every packet is handled on the event loop without awaiting, so a flood of UDP queries
queues in the kernel's socket buffer (which drops the excess) while each one that is
read is answered; nothing a packet holds can stop the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import typing
from collections import Counter
from collections.abc import Callable

from mesoslite.dns.answer import Answer, Soa, resolve
from mesoslite.dns.config import DnsConfig
from mesoslite.dns.table import RecordTable
from mesoslite.dns.wire import SERVFAIL, Dropped, error_reply, reply

log = logging.getLogger("mesoslite.dns")

#: Replies kept in the cache (it is emptied when full, and whenever the records change).
CACHE_SIZE = 4096
#: Attempts at finding a port free for both UDP and TCP when port 0 is asked for.
PORT_ATTEMPTS = 20


class DnsService:
    """Answers packets from ``table`` under ``config``; counts what it did."""

    def __init__(self, config: DnsConfig, table: RecordTable) -> None:
        """Serve ``table``'s records as ``config`` says."""
        self.config = config
        self.table = table
        self.stats: Counter[str] = Counter()
        self._cache: dict[tuple[bytes, bool], bytes] = {}
        self._serial = -1

    def lookup(self, qname: str, qtype: str) -> Answer:
        """The answer to one question, from the table's records now."""
        table = self.table
        soa = Soa(self.config.mname, self.config.rname, table.serial)
        return resolve(table.records, qname, qtype, domain=self.config.domain,
                       ttl=self.config.ttl, soa=soa)

    def answer(self, data: bytes, *, udp: bool) -> bytes | None:
        """The reply to the packet ``data`` (None: no reply)."""
        self.stats["queries_udp" if udp else "queries_tcp"] += 1
        if self._serial != self.table.serial:
            self._cache.clear()
            self._serial = self.table.serial
        key = (data[2:], udp)
        cached = self._cache.get(key)
        if cached is not None:
            self.stats["cache_hits"] += 1
            return data[:2] + cached[2:]
        try:
            out, outcome = reply(data, self.lookup, udp=udp)
        except Dropped:
            self.stats["dropped"] += 1
            return None
        except Exception:  # a packet must never stop the server: SERVFAIL, counted, logged
            self.stats["errors"] += 1
            log.exception("dns: failed to answer a %d-byte packet", len(data))
            try:
                return error_reply(data, SERVFAIL)
            except Dropped:
                return None
        self.stats[outcome.lower()] += 1
        if outcome != "FORMERR":
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = out
        return out


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, service: DnsService) -> None:
        self.service = service
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        out = self.service.answer(data, udp=True)
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        self.service.stats["udp_errors"] += 1


class _TcpConnections:
    """The TCP side: framing, idle timeout and the connection cap."""

    def __init__(self, service: DnsService) -> None:
        self.service = service
        self.open = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        config = self.service.config
        stats = self.service.stats
        if self.open >= config.max_tcp_connections:
            stats["tcp_refused"] += 1
            writer.close()
            return
        self.open += 1
        stats["tcp_connections"] += 1
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), config.timeout)
                (size,) = struct.unpack("!H", head)
                data = await asyncio.wait_for(reader.readexactly(size), config.timeout)
                out = self.service.answer(data, udp=False)
                if out is None:
                    break
                writer.write(struct.pack("!H", len(out)) + out)
                await asyncio.wait_for(writer.drain(), config.timeout)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.open -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class Listeners:
    """The bound UDP transport and TCP server; :meth:`close` stops both."""

    def __init__(self, udp: asyncio.DatagramTransport, tcp: asyncio.Server, port: int,
                 connections: _TcpConnections) -> None:
        """Hold what :func:`start_listeners` bound."""
        self.udp = udp
        self.tcp = tcp
        self.port = port
        self.connections = connections

    async def close(self) -> None:
        """Stop listening (open TCP connections end at their next read)."""
        self.udp.close()
        self.tcp.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.tcp.wait_closed(), 2.0)


async def _bind(service: DnsService, ip: str, port: int,
                connections: _TcpConnections) -> Listeners:
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(service), local_addr=(ip, port),
                                                 family=socket.AF_INET)
    bound = udp.get_extra_info("sockname")[1]
    try:
        tcp = await asyncio.start_server(connections.handle, ip, bound, family=socket.AF_INET,
                                         reuse_address=True, backlog=512)
    except BaseException:
        udp.close()
        raise
    return Listeners(udp, tcp, bound, connections)


async def start_listeners(service: DnsService) -> Listeners:
    """Bind UDP and TCP on the config's address and port (port 0: a free one for both)."""
    config = service.config
    connections = _TcpConnections(service)
    attempts = PORT_ATTEMPTS if config.port == 0 else 1
    for attempt in range(attempts):
        try:
            return await _bind(service, config.ip, config.port, connections)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def counters(service: DnsService, extra: Callable[[], dict[str, float]]) -> dict[str, float]:
    """The service's counters and ``extra``'s, for ``/metrics``."""
    out: dict[str, float] = {f"dns/{k}": float(v) for k, v in service.stats.items()}
    out.update(extra())
    return out
