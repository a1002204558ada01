"""Garbage thrown at the live ports of a real master and two real agents.

Raw ZeroMQ DEALER sockets and raw TCP sockets hit the master's ZMQ port
(and the agents' executor ports) with bytes that are not messages, broken
and mistyped messages, unknown and misdirected message types, oversized
and multi-frame messages, agent messages from a peer that never registered
and framework calls from a peer that is not the framework; a subscribed
framework tries to accept another framework's offer; every HTTP port gets
bad paths, paths escaping the sandboxes, mistyped arguments, a huge query
string and malformed HTTP.  Afterwards every process must be alive, the
refusals counted in ``/metrics/snapshot``, nobody's state changed by the
intruders, and a framework must still run 10 tasks to TASK_FINISHED.
"""

from __future__ import annotations

import collections
import json
import random
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from mesoslite.protocol import (
    Accept,
    ExitedExecutor,
    FrameworkInfo,
    Kill,
    Operation,
    Ping,
    Pong,
    ProtocolError,
    Reason,
    Rescind,
    StatusUpdate,
    Subscribe,
    TaskState,
    TaskStatus,
    Teardown,
    UnregisterAgent,
    decode,
    encode,
)
from tests.support.cluster_procs import AgentProc, MasterProc, ProcCluster, http_get
from tests.support.frameworks import (
    RecordingScheduler,
    ShapeLauncher,
    running_framework,
    shell_task,
)
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration

MAX_MESSAGE = 16 * 1024 * 1024
REPLY_TIMEOUT = 5.0


class RawDealer:
    """A bare ZeroMQ DEALER socket: send any frames, read (and decode) the replies."""

    def __init__(self, endpoint: str) -> None:
        """Connect to ``endpoint``."""
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self._pending: collections.deque[Any] = collections.deque()

    def send(self, *frames: bytes) -> None:
        """Send one message made of ``frames``."""
        self.sock.send_multipart(list(frames))

    def reply(self, timeout: float = REPLY_TIMEOUT) -> Any:
        """The next message received, decoded (AssertionError when none comes in time).

        A frame may carry several envelopes back to back; each is one message.
        """
        if not self._pending:
            if not self.sock.poll(int(timeout * 1000)):
                raise AssertionError(f"no reply within {timeout}s")
            frames = self.sock.recv_multipart()
            assert len(frames) == 1, f"expected one frame, got {len(frames)}"
            unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
            unpacker.feed(frames[0])
            for envelope in unpacker:
                self._pending.append(decode(msgpack.packb(envelope, use_bin_type=True)))
        return self._pending.popleft()

    def refused(self, *frames: bytes) -> ProtocolError:
        """Send a message and return the ProtocolError it must be answered with."""
        self.send(*frames)
        answer = self.reply()
        assert isinstance(answer, ProtocolError), f"expected a ProtocolError, got {answer!r}"
        return answer

    def close(self) -> None:
        """Close the socket."""
        self.sock.close(0)


def raw_tcp(port: int, data: bytes, timeout: float = 3.0, answer_needed: bool = True) -> bytes:
    """Send ``data`` on a new TCP connection; return what comes back before it closes.

    With ``answer_needed`` the server must answer or close within ``timeout``.
    """
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        try:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the peer may close (or reset) before it has read everything
        try:
            while chunk := conn.recv(65536):
                out += chunk
        except TimeoutError:
            assert not answer_needed, f"no answer and no close within {timeout}s"
        except OSError:
            pass  # reset by the peer
    return out


def packed(*envelope: object) -> bytes:
    """A msgpack value (to build envelopes the encoder would never make)."""
    return msgpack.packb(list(envelope), use_bin_type=True)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[ProcCluster, MasterProc, list[AgentProc]]]:
    """A master and two agents as real processes."""
    with ProcCluster(tmp_path) as procs:
        master = procs.start_master()
        agents = [procs.add_agent("cpus:2;mem:1024"), procs.add_agent("cpus:2;mem:1024")]
        yield procs, master, agents


def _garbage_to_master_zmq(master: MasterProc, owner_id: str, offer_id: str,
                           agent_ids: list[str]) -> int:
    """Throw everything at the master's ZMQ port; return how many refusals were answered."""
    rng = random.Random(20240601)
    peer = RawDealer(master.zmq_endpoint)
    answered = 0
    try:
        for size in (1, 7, 64, 4096):
            assert peer.refused(rng.randbytes(size)).field == "frame"
            answered += 1
        for junk in (b"", b"\xc1", b"\x91" * 100_000, b"\xdd\xff\xff\xff\xff",
                     packed(1, "Pong", {1: 2}), msgpack.packb("just a string")):
            assert peer.refused(junk).field == "frame"
            answered += 1
        valid = encode(Subscribe(FrameworkInfo(user="x", name="intruder")))
        for cut in (1, len(valid) // 2, len(valid) - 1):
            assert peer.refused(valid[:cut]).field == "frame"
            answered += 1
        mistyped = {
            packed(1, "Pong", {"agent_id": 123}): "Pong.agent_id",
            packed(1, "Pong", {"agent_id": "x", "extra": 1}): "Pong.extra",
            packed(1, "Subscribe", {"framework_info": "me"}): "Subscribe.framework_info",
            packed("1", "Pong", {}): "version",
            packed(99, "Pong", {}): "version",
            packed(1, 42, {}): "type",
            packed(1, "FormatAllDisks", {}): "type",
        }
        for data, field in mistyped.items():
            assert peer.refused(data).field == field
            answered += 1
        # A type the master only ever sends is refused by the dispatcher.
        assert peer.refused(encode(Ping())).field == "type"
        answered += 1
        # Just over the message limit (ZeroMQ still delivers it): refused, not decoded.
        assert peer.refused(b"\x00" * (MAX_MESSAGE + 100)).field == "frame"
        answered += 1
        for frames in ((encode(Ping()), encode(Ping())), (b"", b"", b"")):
            assert peer.refused(*frames).field == "frame"
            answered += 1
        # Agent messages from a peer that never registered as an agent.
        status = TaskStatus(task_id="ghost-1", state=TaskState.TASK_RUNNING,
                            agent_id=agent_ids[0], uuid=uuid.uuid4().bytes)
        for msg in (Pong(agent_id=agent_ids[0]),
                    StatusUpdate(framework_id=owner_id, status=status),
                    ExitedExecutor(agent_id=agent_ids[0], framework_id=owner_id,
                                   executor_id="x", status=0),
                    UnregisterAgent(agent_id=agent_ids[0])):
            assert peer.refused(encode(msg)).code == "NOT_REGISTERED"
            answered += 1
        # Framework calls from a peer that is not subscribed as that framework.
        accept = Accept(framework_id=owner_id, offer_ids=(offer_id,),
                        operations=(Operation(type="LAUNCH"),))
        for msg in (accept, Kill(framework_id=owner_id, task_id="any"),
                    Teardown(framework_id=owner_id)):
            assert peer.refused(encode(msg)).code == "NOT_SUBSCRIBED"
            answered += 1
        # A last refusal marks the end: any further answer to the garbage came before it.
        peer.send(encode(Rescind(offer_id="end-of-garbage")))
        while (answer := peer.reply()).in_reply_to != "Rescind":
            assert isinstance(answer, ProtocolError), answer
            answered += 1
        answered += 1
    finally:
        peer.close()
    # Over twice the message limit: ZeroMQ drops the connection unread, nothing is answered.
    huge = RawDealer(master.zmq_endpoint)
    try:
        huge.send(b"\x00" * (2 * MAX_MESSAGE + 1024 * 1024))
        with pytest.raises(AssertionError, match="no reply"):
            huge.reply(timeout=1.0)
    finally:
        huge.close()
    return answered


def _garbage_to_tcp(port: int) -> None:
    """Raw TCP: junk, HTTP, a ZMTP greeting followed by junk, half-open connections."""
    rng = random.Random(port)
    greeting = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL" + b"\x00" * 16
    for data in (rng.randbytes(3000), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                 greeting + b"\x04\xff" + rng.randbytes(600), greeting[:5], b""):
        raw_tcp(port, data, timeout=2.0, answer_needed=False)
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    for conn in conns:
        conn.sendall(b"\x00\x01\x02")
        conn.close()


def _garbage_to_http(base_url: str, port: int, is_agent: bool) -> None:
    """Bad paths, escapes, mistyped arguments, huge queries and malformed HTTP."""
    for path in ("/nope", "/state/../../etc/passwd", "/%00", "/files/nope", "/metrics/x/y"):
        status, body = http_get(base_url + path)
        assert status == 404, (path, status)
        assert json.loads(body)["field"] == "path"
    escapes = ["/files/read?path=../../etc/passwd", "/files/read?path=/etc/passwd",
               "/files/read?path=%2Fetc%2Fpasswd&offset=0&length=100",
               "/files/download?path=/etc/passwd", "/files/browse?path=/",
               "/files/read?path=agents/../../../../etc/passwd", "/files/read?path=%00"]
    for path in escapes:
        status, body = http_get(base_url + path)
        assert status in ((403,) if is_agent else (404,)), (path, status, body[:200])
        assert b"root:" not in body
    if is_agent:
        for query, field in (("path=x&offset=abc", "offset"), ("path=x&length=1.5", "length"),
                             ("path=x&offset=-7", "offset"), ("path=x&length=%ff", "length"),
                             ("offset=0", "path"), ("path=", "path")):
            status, body = http_get(f"{base_url}/files/read?{query}")
            assert status == 400, (query, status, body[:200])
            assert json.loads(body)["field"] == field
    else:
        for query, field in (("limit=abc", "limit"), ("offset=-1", "offset"),
                             ("order=sideways", "order"), ("limit=99999999999", "limit")):
            status, body = http_get(f"{base_url}/tasks?{query}")
            assert status == 400, (query, status)
            assert json.loads(body)["field"] == field
    status, _ = http_get(f"{base_url}/state?junk={'a' * 30_000}")
    assert status == 200  # long but within the header limit: served normally
    # Far beyond the header limit: the server refuses or drops the connection.
    answer = raw_tcp(port, b"GET /state?x=" + b"a" * 200_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:100]
    malformed = [b"\x00\x01garbage\r\n\r\n", b"GET\r\n\r\n",
                 b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
                 b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
                 b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                 b"PUT /weights HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n",
                 b"POST /teardown HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                 b"PUT /weights HTTP/1.0\r\nContent-Length: 9\r\n\r\n{\"a\": []}"]
    for data in malformed:
        answer = raw_tcp(port, data)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), (data[:40], answer[:100])


def test_garbage_everywhere_then_work_goes_on(
    cluster: tuple[ProcCluster, MasterProc, list[AgentProc]],
) -> None:
    """After garbage on every port all processes live, refusals are counted, 10 tasks finish."""
    procs, master, agents = cluster
    agent_ids = [agent.agent_id for agent in agents]
    owner, intruder = RecordingScheduler(), RecordingScheduler()  # both hold every offer
    with running_framework(master.address, owner, "owner") as owner_driver, \
            running_framework(master.address, intruder, "intruder") as intruder_driver:
        wait_for(lambda: {o.agent_id for o in owner.held_offers()} == set(agent_ids),
                 timeout=30, what="the owner holds an offer of each agent")
        offer = owner.held_offers()[0]
        before = master.metrics()

        # A subscribed framework uses another framework's offer: refused, offer unharmed.
        stolen = shell_task("stolen-1", offer.agent_id, "cpus:1;mem:64", "echo stolen")
        intruder_driver.launch_tasks([offer.id], [stolen])
        dropped = intruder.wait_state("stolen-1", TaskState.TASK_DROPPED, timeout=10)
        assert dropped.reason is Reason.REASON_INVALID_OFFERS
        assert offer.id in dropped.message and "another framework" in dropped.message

        answered = _garbage_to_master_zmq(master, owner.framework_id, offer.id, agent_ids)
        counted = master.metrics()
        invalid = counted["master/invalid_messages"] - before["master/invalid_messages"]
        assert invalid == answered, f"{invalid} invalid messages counted, {answered} refused"
        # Raw TCP junk may happen to form ZMTP frames: those are refused too, never fatal.
        _garbage_to_tcp(master.zmq_port)
        for agent in agents:
            executor_port = int(agent.executor_endpoint.rsplit(":", 1)[1])
            peer = RawDealer(agent.executor_endpoint)
            try:
                assert peer.refused(random.Random(7).randbytes(100)).field == "frame"
                assert peer.refused(packed(1, "Pong", {"agent_id": 5})).field == "Pong.agent_id"
            finally:
                peer.close()
            _garbage_to_tcp(executor_port)
        _garbage_to_http(master.base_url, master.http_port, is_agent=False)
        for agent in agents:
            _garbage_to_http(agent.base_url, agent.http_port, is_agent=True)

        assert procs.all_alive() == []
        after = master.metrics()
        assert after["master/invalid_messages"] >= counted["master/invalid_messages"]
        assert after["master/slaves_active"] == 2
        assert after["master/frameworks_active"] == 2
        assert after["master/slave_removals"] == 0
        state = master.state()
        assert sorted(s["id"] for s in state["slaves"]) == sorted(agent_ids)
        owner_state = next(f for f in state["frameworks"] if f["id"] == owner.framework_id)
        assert offer.id in {o["id"] for o in owner_state["offers"]}

        # The owner's offer was never rescinded and still launches the owner's task.
        task = shell_task("owner-1", offer.agent_id, "cpus:1;mem:64", "echo mine")
        owner_driver.launch_tasks([offer.id], [task])
        owner.wait_state("owner-1", TaskState.TASK_FINISHED, timeout=30)
        assert owner.rescinded == [] and owner.errors == [] and intruder.errors == []
        assert owner.states("owner-1") == [TaskState.TASK_STARTING, TaskState.TASK_RUNNING,
                                           TaskState.TASK_FINISHED]

    # Everything still works: a new framework runs 10 tasks to TASK_FINISHED.
    launcher = ShapeLauncher("after", "cpus:0.5;mem:64", "echo ok", limit=10, per_offer=10,
                             refuse_seconds=0.0)
    finisher = RecordingScheduler(launcher)
    with running_framework(master.address, finisher, "finisher"):
        wait_for(lambda: len(finisher.in_state(TaskState.TASK_FINISHED)) == 10, timeout=60,
                 what="10 tasks finished")
    assert len(launcher.launched) == 10
    assert {s.agent_id for s in finisher.statuses()} <= set(agent_ids)
    assert procs.all_alive() == []


def test_frame_over_the_transport_limit_is_counted(tmp_path: Path) -> None:
    """A frame larger than ZeroMQ's limit shows up in the master's /metrics/snapshot."""
    with ProcCluster(tmp_path) as procs:
        master = procs.start_master()
        before = master.metrics()
        huge = RawDealer(master.zmq_endpoint)
        try:
            huge.send(b"\x00" * (MAX_MESSAGE + 1024 * 1024))

            def counted() -> bool:
                now = master.metrics()
                return any(now[name] > before[name] for name in
                           ("master/invalid_messages", "master/dropped_messages"))

            wait_for(counted, timeout=3, what="the oversized frame counted")
        finally:
            huge.close()
        assert procs.all_alive() == []


def test_clean_framework_stop_is_not_an_invalid_message(tmp_path: Path) -> None:
    """Frameworks that subscribe and stop cleanly leave master/invalid_messages unchanged."""
    with ProcCluster(tmp_path) as procs:
        master = procs.start_master()
        before = master.metrics()["master/invalid_messages"]
        for n in range(2):
            with running_framework(master.address, RecordingScheduler(), f"clean-{n}"):
                pass
        # stop() returns once the master answered the stop probe: the count is final.
        assert master.metrics()["master/invalid_messages"] == before
