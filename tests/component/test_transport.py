"""ROUTER/DEALER sockets on the event loop, over real loopback TCP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import zmq

from mesoslite.protocol import Heartbeat, Ping, Pong, ProtocolError
from mesoslite.transport import (
    CurveClientKeys,
    CurveServerKeys,
    DealerClient,
    RouterServer,
    generate_keys,
)


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.005)


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
        await _until(lambda: len(got) == 1000)
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
        replies: list[bytes] = []

        async def drain() -> None:
            while len(replies) < 3:
                if raw.poll(10):
                    replies.append(raw.recv())
                else:
                    await asyncio.sleep(0.01)

        await asyncio.wait_for(drain(), 5)
        from mesoslite.protocol import decode

        assert all(isinstance(decode(r), ProtocolError) for r in replies)
        await _until(lambda: server.stats["decode_errors"] == 3)
        client = DealerClient(lambda m: None)
        client.connect(server.endpoint)
        client.start()
        client.send(Heartbeat(sender_id="x"))
        await _until(lambda: received == [Heartbeat(sender_id="x")])
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
        await _until(lambda: received == [Ping()])
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
        await _until(lambda: Heartbeat(sender_id="good") in received)
        # Give the refused clients the same chance again after the good one got in.
        good.send(Heartbeat(sender_id="good-2"))
        await _until(lambda: Heartbeat(sender_id="good-2") in received)
        assert {m.sender_id for m in received} == {"good", "good-2"}
        for client in (bad, plain, good):
            client.close()
        server.close()

    _run(main)
