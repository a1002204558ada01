"""ROUTER/DEALER sockets on the event loop, over real loopback TCP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import zmq

from mesoslite.protocol import Heartbeat, Ping, Pong, ProtocolError, decode_frame, encode
from mesoslite.transport import (
    CurveClientKeys,
    CurveServerKeys,
    DealerClient,
    RouterServer,
    generate_keys,
)
from tests.support.procs import holding, until


def _run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())


def test_request_reply_round_trip() -> None:
    """A dealer's message reaches the router, whose reply reaches the dealer."""

    async def main() -> None:
        got: list[Any] = []
        server: RouterServer

        def on_server(peer: bytes, msg: Any) -> None:
            server.send(peer, Pong(agent_id="a-1"))

        server = RouterServer("tcp://127.0.0.1:0", on_server)
        server.start()
        client = DealerClient(got.append)
        client.connect(f"127.0.0.1:{server.port}")
        client.start()
        for _ in range(1000):
            client.send(Ping())
        await until(lambda: len(got) == 1000)
        assert all(m == Pong(agent_id="a-1") for m in got)
        client.close()
        server.close()

    _run(main)


def test_garbage_is_counted_answered_and_survived() -> None:
    """Garbage and multi-frame messages are refused; valid traffic still flows."""

    async def main() -> None:
        received: list[Any] = []
        server = RouterServer("tcp://127.0.0.1:0", lambda p, m: received.append(m))
        server.start()
        raw = zmq.Context.instance().socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(server.endpoint)
        raw.send(b"\x00garbage")
        raw.send_multipart([b"a", b"b"])
        raw.send(b"\x93\x01\xa4Ping\x80"[:4])  # truncated
        replies: list[Any] = []

        def drained() -> bool:
            while raw.poll(0):
                # Replies of one loop turn share a frame (envelopes back to back).
                replies.extend(decode_frame(raw.recv()))
            return len(replies) >= 3

        await until(drained, 5, "3 replies on the raw socket")
        assert len(replies) == 3
        assert all(isinstance(r, ProtocolError) for r in replies)
        await until(lambda: server.stats["decode_errors"] == 3)
        client = DealerClient(lambda m: None)
        client.connect(server.endpoint)
        client.start()
        client.send(Heartbeat(sender_id="x"))
        await until(lambda: received == [Heartbeat(sender_id="x")])
        raw.close()
        client.close()
        server.close()

    _run(main)


def test_oversized_frame_never_reaches_the_handler() -> None:
    """A frame over the size limit is not delivered and the server keeps serving."""

    async def main() -> None:
        received: list[Any] = []
        server = RouterServer(
            "tcp://127.0.0.1:0", lambda p, m: received.append(m), max_message_size=1024
        )
        server.start()
        raw = zmq.Context.instance().socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(server.endpoint)
        raw.send(b"x" * 100_000)
        client = DealerClient(lambda m: None)
        client.connect(server.endpoint)
        client.start()
        client.send(Ping())
        await until(lambda: received == [Ping()])
        raw.close()
        client.close()
        server.close()

    _run(main)


def test_curve_admits_authorised_clients_only(tmp_path: Path) -> None:
    """With CURVE on, an authorised client talks; an unknown key gets nothing through."""
    keys = tmp_path / "keys"
    authorised = tmp_path / "authorised"
    authorised.mkdir()
    _, server_secret = generate_keys(keys, "server")
    client_public, client_secret = generate_keys(keys, "client")
    _, stranger_secret = generate_keys(tmp_path / "other", "stranger")
    (authorised / "client.key").write_bytes(client_public.read_bytes())

    async def main() -> None:
        received: list[Any] = []
        server = RouterServer(
            "tcp://127.0.0.1:0",
            lambda p, m: received.append(m),
            curve=CurveServerKeys.from_files(str(server_secret), str(authorised)),
        )
        server.start()
        server_public = str(keys / "server.key")
        good = DealerClient(
            lambda m: None, curve=CurveClientKeys.from_files(str(client_secret), server_public)
        )
        bad = DealerClient(
            lambda m: None, curve=CurveClientKeys.from_files(str(stranger_secret), server_public)
        )
        plain = DealerClient(lambda m: None)
        for client in (bad, plain, good):
            client.connect(server.endpoint)
            client.start()
        bad.send(Heartbeat(sender_id="bad"))
        plain.send(Heartbeat(sender_id="plain"))
        good.send(Heartbeat(sender_id="good"))
        await until(lambda: Heartbeat(sender_id="good") in received)
        # Give the refused clients the same chance again after the good one got in.
        good.send(Heartbeat(sender_id="good-2"))
        await until(lambda: Heartbeat(sender_id="good-2") in received)
        assert {m.sender_id for m in received} == {"good", "good-2"}
        for client in (bad, plain, good):
            client.close()
        server.close()

    _run(main)


def test_sends_of_one_loop_turn_leave_as_one_frame_in_order() -> None:
    """Messages queued in one loop turn share a frame; a lone message is a plain envelope."""

    async def main() -> None:
        raw = zmq.Context.instance().socket(zmq.ROUTER)
        raw.setsockopt(zmq.LINGER, 0)
        port = raw.bind_to_random_port("tcp://127.0.0.1")
        client = DealerClient(lambda m: None)
        client.connect(f"127.0.0.1:{port}")
        client.start()
        frames: list[list[bytes]] = []

        def received(count: int) -> bool:
            while raw.poll(0):
                frames.append(raw.recv_multipart())
            return len(frames) >= count

        client.send(Heartbeat(sender_id="lone"))
        await until(lambda: received(1), 5, "1 frame on the raw socket")
        assert frames[0][1] == encode(Heartbeat(sender_id="lone"))
        for i in range(20):
            client.send(Heartbeat(sender_id=f"h-{i}"))
        await until(lambda: received(2), 5, "2 frames on the raw socket")
        assert decode_frame(frames[1][1]) == [Heartbeat(sender_id=f"h-{i}") for i in range(20)]
        assert client.stats["sent"] == 21 and client.stats["frames_sent"] == 2
        client.close()
        raw.close()

    _run(main)


def test_flush_barrier_runs_before_each_batch_and_holds_it_when_it_fails() -> None:
    """The barrier runs before each batch; a failing one holds the batch until a retry works."""

    async def main() -> None:
        received: list[Any] = []
        server = RouterServer("tcp://127.0.0.1:0", lambda p, m: received.append(m))
        server.start()
        client = DealerClient(lambda m: None)
        client.connect(server.endpoint)
        client.start()
        seen_at_barrier: list[int] = []

        def barrier() -> bool:
            seen_at_barrier.append(len(received))
            if len(seen_at_barrier) == 2:
                raise OSError("disk full")
            return len(seen_at_barrier) != 3  # the first retry fails too (returns False)

        client.set_flush_barrier(barrier)
        client.send(Ping())
        client.send(Ping())
        await until(lambda: len(received) == 2)
        client.send(Pong(agent_id="a"))
        await holding(lambda: len(received) == 2, 0.5, "the batch is held")
        client.send(Ping())  # joins the held batch, after it
        await until(lambda: len(received) == 4, timeout=10)
        assert seen_at_barrier == [0, 2, 2, 2]
        assert [type(m).__name__ for m in received[2:]] == ["Pong", "Ping"]
        assert client.stats["held"] == 2
        client.close()
        server.close()

    _run(main)


def test_unroutable_peer_is_counted_as_dropped() -> None:
    """A reply to a peer the router does not know is dropped and counted, not raised."""

    async def main() -> None:
        server = RouterServer("tcp://127.0.0.1:0", lambda p, m: None)
        server.start()
        assert server.send(b"nobody", Ping())
        await until(lambda: server.stats["dropped"] == 1)
        server.close()

    _run(main)
