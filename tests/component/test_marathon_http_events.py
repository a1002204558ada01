"""GET /v2/events: server-sent events over a real socket (HTTP/1.1, chunked)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.support.marathon_fake_service import ApiServer, FakeService
from tests.support.procs import until

DEADLINE = 10.0


class Stream:
    """A raw HTTP/1.1 client of /v2/events that decodes the chunked body into SSE blocks."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.text = ""

    @classmethod
    async def open(cls, api: ApiServer, query: str = "") -> Stream:
        """Connect, send the request and read the status line and headers."""
        reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
        writer.write(f"GET /v2/events{query} HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        stream = cls(reader, writer)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
        lines = head.decode().split("\r\n")
        stream.status = int(lines[0].split()[1])
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                stream.headers[name.strip().lower()] = value.strip()
        return stream

    async def _chunk(self) -> None:
        """Read one chunk of the body into ``text``."""
        size_line = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), DEADLINE)
        size = int(size_line.strip(), 16)
        data = await asyncio.wait_for(self.reader.readexactly(size + 2), DEADLINE)
        self.text += data[:-2].decode()

    async def blocks(self, count: int) -> list[str]:
        """The next ``count`` SSE blocks (text between blank lines), comments included."""
        while self.text.count("\n\n") < count:
            await self._chunk()
        parts = self.text.split("\n\n")
        taken, rest = parts[:count], parts[count:]
        self.text = "\n\n".join(rest)
        return taken

    async def events(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        """The next ``count`` events as (event line value, data), skipping comments."""
        found: list[tuple[str, dict[str, Any]]] = []
        while len(found) < count:
            (block,) = await self.blocks(1)
            if block.startswith(":"):
                continue
            kind, data = block.split("\n")
            assert kind.startswith("event: ") and data.startswith("data: "), block
            found.append((kind[len("event: "):], json.loads(data[len("data: "):])))
        return found

    def close(self) -> None:
        """Disconnect."""
        self.writer.close()


def serve(body: Callable[[FakeService, ApiServer], Awaitable[None]], **options: Any) -> None:
    """Run ``body`` with a fake service behind a live API server."""

    async def main() -> None:
        service = FakeService()
        api = ApiServer(service, **options)
        try:
            await body(service, api)
            await until(lambda: service.bus.subscriber_count == 0)
        finally:
            api.stop()

    asyncio.run(main())


def test_events_arrive_in_order_with_event_lines_and_stream_headers() -> None:
    """Each event is `event: <type>` + `data: <json>`, in publication order, unbuffered."""

    async def body(service: FakeService, api: ApiServer) -> None:
        stream = await Stream.open(api)
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert "no-cache" in stream.headers["cache-control"]
        assert stream.headers["x-accel-buffering"] == "no"
        await until(lambda: service.bus.subscriber_count == 1)
        (attached,) = await stream.events(1)
        assert attached[0] == "event_stream_attached"
        for n in range(5):
            service.publish("status_update_event", taskId=f"t{n}", taskStatus="TASK_RUNNING")
        got = await stream.events(5)
        assert [k for k, _ in got] == ["status_update_event"] * 5
        assert [d["taskId"] for _, d in got] == [f"t{n}" for n in range(5)]
        assert all(d["eventType"] == "status_update_event" and d["timestamp"].endswith("Z")
                   for _, d in got)
        stream.close()

    serve(body)


def test_event_type_filter_keeps_only_the_named_types() -> None:
    """Repeated event_type parameters select those types only."""

    async def body(service: FakeService, api: ApiServer) -> None:
        stream = await Stream.open(api, "?event_type=api_post_event"
                                        "&event_type=health_status_changed_event")
        await until(lambda: service.bus.subscriber_count == 1)
        service.publish("status_update_event", taskId="skip")
        service.publish("api_post_event", uri="/v2/apps/a")
        service.publish("deployment_info", plan={"id": "d"})
        service.publish("health_status_changed_event", alive=True)
        got = await stream.events(2)
        assert [k for k, _ in got] == ["api_post_event", "health_status_changed_event"]
        assert service.calls[-1][1] == frozenset({"api_post_event",
                                                  "health_status_changed_event"})
        stream.close()

    serve(body)


def test_keepalive_comment_arrives_when_idle() -> None:
    """With no events, a `: ping` comment is sent every keepalive_seconds."""

    async def body(service: FakeService, api: ApiServer) -> None:
        stream = await Stream.open(api, "?event_type=api_post_event")
        started = time.monotonic()
        blocks = await stream.blocks(2)
        assert blocks == [": ping", ": ping"]
        assert time.monotonic() - started >= 0.3
        stream.close()

    serve(body, keepalive_seconds=0.2)


def test_plan_format_light_drops_original_and_target() -> None:
    """plan-format=light (the default) drops plan.original/target; full keeps them."""

    async def body(service: FakeService, api: ApiServer) -> None:
        light = await Stream.open(api, "?event_type=deployment_info")
        default = await Stream.open(api, "?event_type=deployment_info&plan-format=light")
        full = await Stream.open(api, "?event_type=deployment_info&plan-format=full")
        await until(lambda: service.bus.subscriber_count == 3)
        plan = {"id": "d1", "steps": [], "original": {"id": "/"}, "target": {"id": "/"}}
        service.publish("deployment_info", plan=plan, currentStep={"actions": []})
        for stream in (light, default):
            ((_, data),) = await stream.events(1)
            assert data["plan"] == {"id": "d1", "steps": []}
        ((_, data),) = await full.events(1)
        assert data["plan"] == plan
        for stream in (light, default, full):
            stream.close()

    serve(body)


def test_disconnect_closes_the_subscription() -> None:
    """When the client goes away, its subscription is closed (no leak)."""

    async def body(service: FakeService, api: ApiServer) -> None:
        stream = await Stream.open(api)
        await until(lambda: service.bus.subscriber_count == 1)
        stream.close()
        await until(lambda: service.bus.subscriber_count == 0)

    serve(body, keepalive_seconds=30.0)


def test_a_slow_client_does_not_hold_up_others() -> None:
    """A client that never reads delays no one else and is disconnected after the timeout."""

    async def body(service: FakeService, api: ApiServer) -> None:
        slow = await Stream.open(api, "?event_type=framework_message_event")
        fast = await Stream.open(api, "?event_type=framework_message_event")
        await until(lambda: service.bus.subscriber_count == 2)
        payload = "x" * 20_000
        received: list[int] = []
        for batch in range(15):
            for n in range(20):
                service.publish("framework_message_event", n=batch * 20 + n, message=payload)
            got = await fast.events(20)
            received.extend(d["n"] for _, d in got)
            assert (await api.call("GET", "/ping")).code == 200
        assert received == list(range(300))
        await until(lambda: service.bus.subscriber_count == 1)
        deadline = time.monotonic() + DEADLINE
        while await asyncio.wait_for(slow.reader.read(1 << 20), DEADLINE):
            assert time.monotonic() < deadline, "the stalled stream was never closed"
        slow.close()
        fast.close()

    serve(body, event_write_timeout_seconds=0.5)
