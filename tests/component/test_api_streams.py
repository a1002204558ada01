"""RecordIO event streams on a real loopback connection: a reader that never reads."""

from __future__ import annotations

import asyncio
import socket

import tornado.httpserver
import tornado.netutil
import tornado.web

from mesoslite.api.streams import RecordStream

MAX_BUFFER = 1024 * 1024


class Flood(tornado.web.RequestHandler):
    """Streams 64 KiB events until its RecordStream gives up."""

    def initialize(self, result: dict[str, object], done: asyncio.Event) -> None:
        self.result = result
        self.done = done

    async def get(self) -> None:
        stream = RecordStream(self, max_buffer=MAX_BUFFER)
        self.set_status(200)
        event = {"type": "HEARTBEAT", "pad": "x" * 65536}
        sent = 0
        while stream.send(event):
            sent += 1
            assert stream.pending <= MAX_BUFFER
            await asyncio.sleep(0)
            if sent > 100_000:
                break
        self.result.update(sent=sent, why=stream.why, pending=stream.pending)
        self.done.set()


def test_a_subscriber_that_never_reads_is_disconnected_with_bounded_memory() -> None:
    """Unread events pile up to the buffer bound, then the stream is closed, not grown."""

    async def main() -> None:
        result: dict[str, object] = {}
        done = asyncio.Event()
        app = tornado.web.Application([("/", Flood, {"result": result, "done": done})])
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port))
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(done.wait(), 60)
        client.close()
        server.stop()
        assert "too slow" in str(result.get("why")), result
        sent = result["sent"]
        assert isinstance(sent, int) and sent < 100_000  # it stopped, it did not buffer on

    asyncio.run(main())
