"""The DNS listeners on loopback: UDP and TCP answers, truncation, bad packets and floods.

The server runs in this process on its own event loop thread, answering from a record
table fed with fake operator events; clients are dnspython and raw sockets.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from mesoslite.dns.config import DnsConfig
from mesoslite.dns.http import make_server
from mesoslite.dns.server import DnsService, Listeners, start_listeners
from mesoslite.dns.table import RecordTable
from tests.support.procs import wait_for
from tests.unit.test_dns_table import agent, framework, subscribed, task


class Server:
    """A DnsService with its listeners and HTTP API on a loop thread."""

    def __init__(self, config: DnsConfig, table: RecordTable) -> None:
        self.service = DnsService(config, table)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.listeners: Listeners = self.call(start_listeners(self.service))
        self.port = self.listeners.port

        async def http() -> Any:
            import tornado.netutil

            sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
            server = make_server(self.service, lambda: {"metrics": {}}, sockets)
            return server, sockets[0].getsockname()[1]

        self.http, self.http_port = self.call(http())

    def call(self, coro: Any) -> Any:
        """Run ``coro`` on the server's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        """Close everything and stop the loop."""
        self.http.stop()
        self.call(self.listeners.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def table() -> RecordTable:
    """40 agents each running an instance of ``big`` and one of ``web`` on one agent."""
    table = RecordTable("mesos", own_ip="127.0.0.1")
    agents = [agent(f"agent-S{i}", f"10.0.{i // 200}.{i % 200 + 1}") for i in range(40)]
    tasks = [task(f"big.{i}", "big", agent=f"agent-S{i}", ports=((31000, 31001),))
             for i in range(40)]
    tasks.append(task("web.1", "web", agent="agent-S0", ports=((31005, 31005),)))
    table.apply(subscribed(tasks=tasks, agents=agents,
                           frameworks=[framework("fw-1", "marathon")]))
    return table


@pytest.fixture
def server(table: RecordTable) -> Iterator[Server]:
    """The server on a free loopback port (2 TCP connections at most, 1 s idle timeout)."""
    config = DnsConfig(port=0, http_port=0, max_tcp_connections=2, timeout=1.0)
    running = Server(config, table)
    try:
        yield running
    finally:
        running.stop()


def udp(server: Server, name: str, qtype: str = "A", timeout: float = 3.0,
        **kwargs: Any) -> dns.message.Message:
    """Ask over UDP."""
    return dns.query.udp(dns.message.make_query(name, qtype, **kwargs), "127.0.0.1",
                         port=server.port, timeout=timeout)


def tcp(server: Server, name: str, qtype: str = "A") -> dns.message.Message:
    """Ask over TCP."""
    return dns.query.tcp(dns.message.make_query(name, qtype), "127.0.0.1", port=server.port,
                         timeout=3)


def answers(message: dns.message.Message) -> list[str]:
    """The answer section's values, as text."""
    return sorted(str(rd) for rrset in message.answer for rd in rrset)


def test_a_and_srv_over_udp_and_tcp(server: Server) -> None:
    """A and SRV answers are the same over UDP and TCP, authoritative, with no recursion."""
    for ask in (udp, tcp):
        reply = ask(server, "web.marathon.mesos")
        assert answers(reply) == ["10.0.0.1"]
        assert reply.flags & dns.flags.AA and not reply.flags & dns.flags.RA
        srv = ask(server, "_web._tcp.marathon.mesos", "SRV")
        assert len(answers(srv)) == 1 and " 31005 web-" in answers(srv)[0]
        assert [str(rd) for rrset in srv.additional for rd in rrset] == ["10.0.0.1"]


def test_question_case_is_kept_in_the_answer(server: Server) -> None:
    """A resolver randomizing the question's case gets its own spelling back."""
    reply = udp(server, "WeB.MaraThon.MESOS")
    assert reply.answer[0].name.to_text() == "WeB.MaraThon.MESOS."


def test_nxdomain_and_apex_records(server: Server) -> None:
    """NXDOMAIN and empty answers carry the SOA; the apex has SOA and NS; other zones REFUSED."""
    missing = udp(server, "nothing.marathon.mesos")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert missing.authority[0].rdtype == dns.rdatatype.SOA
    assert udp(server, "marathon.mesos").rcode() == dns.rcode.NOERROR
    soa = udp(server, "mesos", "SOA")
    assert answers(soa)[0].startswith("ns1.mesos. root.ns1.mesos. ")
    assert answers(udp(server, "mesos", "NS")) == ["ns1.mesos."]
    assert udp(server, "example.com").rcode() == dns.rcode.REFUSED


def test_large_answers_set_tc_over_udp_and_come_whole_over_tcp(server: Server) -> None:
    """40 addresses do not fit 512 bytes: UDP sets TC, the TCP retry gets all of them."""
    reply = udp(server, "big.marathon.mesos")
    assert reply.flags & dns.flags.TC and not reply.answer
    full, used_tcp = dns.query.udp_with_fallback(
        dns.message.make_query("big.marathon.mesos", "A"), "127.0.0.1", port=server.port,
        timeout=3)
    assert used_tcp and len(answers(full)) == 40
    srv = tcp(server, "_big._tcp.marathon.mesos", "SRV")
    assert len(answers(srv)) == 80
    edns = udp(server, "big.marathon.mesos", use_edns=0, payload=4096)
    assert not edns.flags & dns.flags.TC and len(answers(edns)) == 40


def raw_udp(server: Server, packet: bytes, timeout: float = 1.0) -> bytes | None:
    """Send ``packet``; the reply, or None when none comes within ``timeout``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, ("127.0.0.1", server.port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def test_malformed_packets_get_formerr_or_nothing(server: Server) -> None:
    """Garbage with a header gets FORMERR with its id; runts and responses get nothing."""
    header = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0)
    for packet in (header + b"\xff" * 20, header, header + b"\x03abc",
                   struct.pack("!HHHHHH", 0xBEEF, 0x0100, 0, 0, 0, 0) + b"junk"):
        reply = raw_udp(server, packet)
        assert reply is not None
        ident, flags = struct.unpack("!HH", reply[:4])
        assert ident == 0xBEEF and flags & 0x8000 and flags & 0xF == dns.rcode.FORMERR
    assert raw_udp(server, b"\x01\x02\x03", timeout=0.3) is None
    response = dns.message.make_response(dns.message.make_query("web.marathon.mesos", "A"))
    assert raw_udp(server, response.to_wire(), timeout=0.3) is None
    two = dns.message.make_query("web.marathon.mesos", "A")
    two.question.append(dns.message.make_query("x.mesos", "A").question[0])
    assert dns.message.from_wire(raw_udp(server, two.to_wire()) or b"").rcode() == \
        dns.rcode.FORMERR
    notify = dns.message.make_query("mesos", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert dns.message.from_wire(raw_udp(server, notify.to_wire()) or b"").rcode() == \
        dns.rcode.NOTIMP
    assert answers(udp(server, "web.marathon.mesos")) == ["10.0.0.1"]


def test_huge_queries_are_refused_and_the_server_keeps_answering(server: Server) -> None:
    """A 60 KB datagram and a 65535-byte TCP message get FORMERR; normal queries still work."""
    query = dns.message.make_query("web.marathon.mesos", "A").to_wire()
    reply = raw_udp(server, query + os.urandom(60000))
    assert reply is not None and struct.unpack("!H", reply[2:4])[0] & 0xF == dns.rcode.FORMERR
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        sock.sendall(struct.pack("!H", 65535) + query + os.urandom(65535 - len(query)))
        size = struct.unpack("!H", sock.recv(2))[0]
        assert size == 12
    assert answers(tcp(server, "web.marathon.mesos")) == ["10.0.0.1"]


def test_tcp_connections_are_capped_and_idle_ones_closed(server: Server) -> None:
    """Past max_tcp_connections new connections are closed; idle ones end after the timeout."""
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(2)]
    try:
        wait_for(lambda: server.service.stats["tcp_connections"] == 2, timeout=5,
                 what="two TCP connections open")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as extra:
            assert extra.recv(1) == b""
        for sock in idle:
            assert sock.recv(1) == b""  # closed by the server after its 1 s idle timeout
    finally:
        for sock in idle:
            sock.close()
    wait_for(lambda: answers(tcp(server, "web.marathon.mesos")) == ["10.0.0.1"], timeout=5,
             what="TCP answers again")
    half = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    half.sendall(b"\x00\x40" + b"\x00" * 10)  # a length, then too few bytes: timed out
    assert half.recv(1) == b""
    half.close()


def test_a_bounded_flood_leaves_the_server_answering(server: Server) -> None:
    """20,000 queries and 5,000 garbage packets sent without reading: others are still answered.

    What the socket buffer cannot hold the kernel drops (a client retries, as resolvers
    do); the server answers every packet it reads and a client that asks again is served.
    """
    query = dns.message.make_query("web.marathon.mesos", "A").to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
        for i in range(20000):
            flood.sendto(query, ("127.0.0.1", server.port))
            if i % 4 == 0:
                flood.sendto(os.urandom(40), ("127.0.0.1", server.port))
        reply = wait_for(lambda: udp(server, "web.marathon.mesos", timeout=0.5), timeout=20,
                         what="an answer after the flood")
    assert answers(reply) == ["10.0.0.1"]
    assert server.service.stats["queries_udp"] > 100
    assert server.service.stats["formerr"] + server.service.stats["dropped"] > 10


def http_get(server: Server, path: str) -> tuple[int, Any]:
    """GET a JSON document from the HTTP API."""
    url = f"http://127.0.0.1:{server.http_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_http_api_like_mesos_dns(server: Server) -> None:
    """/v1/version, /v1/config, /v1/hosts and /v1/services answer as Mesos-DNS's do."""
    assert http_get(server, "/v1/version")[1]["Service"] == "mesoslite dns"
    config = http_get(server, "/v1/config")[1]
    assert config["Domain"] == "mesos" and config["TTL"] == 60
    assert http_get(server, "/v1/hosts/web.marathon.mesos") == (
        200, [{"host": "web.marathon.mesos.", "ip": "10.0.0.1"}])
    status, services = http_get(server, "/v1/services/_web._tcp.marathon.mesos")
    assert status == 200 and len(services) == 1
    assert services[0]["port"] == "31005" and services[0]["ip"] == "10.0.0.1"
    assert services[0]["host"].startswith("web-")
    assert http_get(server, "/v1/hosts/nothing.mesos") == (200, [])
    status, error = http_get(server, "/v1/hosts/bad%20name")
    assert status == 400 and error["field"] == "host"
    status, error = http_get(server, "/v1/services/" + "a" * 300)
    assert status == 400 and error["field"] == "service"


def test_answers_follow_the_table_at_once(server: Server, table: RecordTable) -> None:
    """A change of the table is answered by the next query (the reply cache is emptied)."""
    assert answers(udp(server, "web.marathon.mesos")) == ["10.0.0.1"]
    done = threading.Event()

    def kill() -> None:
        table.apply({"type": "TASK_UPDATED", "task_updated": {
            "framework_id": {"value": "fw-1"}, "agent_id": {"value": "agent-S0"},
            "state": "TASK_KILLED", "status": {"task_id": {"value": "web.1"},
                                               "state": "TASK_KILLED"}}})
        done.set()

    server.loop.call_soon_threadsafe(kill)
    assert done.wait(5)
    started = time.monotonic()
    assert udp(server, "web.marathon.mesos").rcode() == dns.rcode.NXDOMAIN
    assert time.monotonic() - started < 5


def test_a_failure_inside_the_server_is_answered_servfail(table: RecordTable) -> None:
    """A lookup that raises is answered SERVFAIL and counted; the next query is served."""
    service = DnsService(DnsConfig(), table)
    query = dns.message.make_query("web.marathon.mesos", "A")

    def broken(qname: str, qtype: str) -> Any:
        raise RuntimeError("boom")

    service.lookup = broken  # type: ignore[method-assign]
    reply = service.answer(query.to_wire(), udp=True)
    assert reply is not None
    assert dns.message.from_wire(reply).rcode() == dns.rcode.SERVFAIL
    assert service.stats["errors"] == 1
    fixed = DnsService(DnsConfig(), table)
    answer = dns.message.from_wire(fixed.answer(query.to_wire(), udp=True) or b"")
    assert answers(answer) == ["10.0.0.1"]
