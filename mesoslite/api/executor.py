"""The v1 executor API on the agent: ``POST /api/v1/executor``.

Owns: :class:`ExecutorHandler` and :class:`ExecutorHub`.  An executor on HTTP is a peer
of the agent core like one on ZeroMQ: SUBSCRIBE finds the container the agent launched
for ``(framework_id, executor_id)`` and registers an in-process peer
(``local_peers``) whose messages become events on the open response (SUBSCRIBED,
LAUNCH, KILL, ACKNOWLEDGED, MESSAGE, SHUTDOWN, ERROR, HEARTBEAT every
``--executor_heartbeat_interval``, 30 s by default as in Mesos); UPDATE, MESSAGE and
HEARTBEAT are handed to the core as that peer's messages (``202``; ``400`` naming the
field, ``403`` when the executor has no open subscription).
``unacknowledged_tasks``/``unacknowledged_updates`` of a SUBSCRIBE after an agent restart
re-register the executor with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from mesoslite.api.executor_calls import (
    ExecutorCall,
    executor_event,
    executor_message,
    parse_executor_call,
)
from mesoslite.api.ports import ExecutorPort
from mesoslite.api.streams import ApiError, JsonApiHandler, RecordStream
from mesoslite.api.v1json import V1Error
from mesoslite.protocol import ProtocolError

log = logging.getLogger("mesoslite.api")



class ExecutorStream:
    """One subscribed HTTP executor."""

    def __init__(self, hub: ExecutorHub, call: ExecutorCall, container_id: str,
                 records: RecordStream) -> None:
        """A new peer of the agent for the executor in ``container_id``."""
        self.hub = hub
        self.key = (call.framework_id, call.executor_id)
        self.container_id = container_id
        self.records = records
        self.peer = b"\xffhttp-executor-" + uuid.uuid4().bytes
        self.capture: list[ProtocolError] | None = None

    def receive(self, message: Any) -> None:
        """A message the agent sends this executor: an event on the stream."""
        if isinstance(message, ProtocolError) and self.capture is not None:
            self.capture.append(message)
            return
        event = executor_event(message, self.container_id)
        if event is not None:
            self.records.send(event)
        if isinstance(message, ProtocolError) and message.field == "container_id":
            self.records.close(f"executor {self.key[1]}: {message.message}")

    def closed(self) -> None:
        """The stream ended: forget the peer."""
        if self.hub.streams.get(self.key) is self:
            del self.hub.streams[self.key]
        self.hub.port.local_peers.pop(self.peer, None)


class ExecutorHub:
    """The HTTP executors of one agent, by (framework id, executor id)."""

    def __init__(self, port: ExecutorPort) -> None:
        """Serve executors of ``port``."""
        self.port = port
        self.streams: dict[tuple[str, str], ExecutorStream] = {}
        self._beat: asyncio.Task[None] | None = None

    def add(self, stream: ExecutorStream) -> None:
        """Serve a new subscription (a previous one of the same executor ends)."""
        old = self.streams.get(stream.key)
        self.streams[stream.key] = stream
        self.port.local_peers[stream.peer] = stream.receive
        if old is not None:
            old.records.close("the executor subscribed again")
        if self._beat is None or self._beat.done():
            self._beat = asyncio.create_task(self._heartbeats())

    async def _heartbeats(self) -> None:
        while self.streams:
            await asyncio.sleep(self.port.heartbeat_interval)
            for stream in list(self.streams.values()):
                stream.records.send({"type": "HEARTBEAT"})

    async def stop(self) -> None:
        """Close every stream."""
        for stream in list(self.streams.values()):
            stream.records.close("the agent stops")
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat


class ExecutorHandler(JsonApiHandler):
    """``POST /api/v1/executor``."""

    def initialize(self, hub: ExecutorHub) -> None:
        """Serve the agent's executors through ``hub``."""
        self.hub = hub
        self.stream: ExecutorStream | None = None

    async def post(self) -> None:
        """Answer one call (SUBSCRIBE keeps the response open as the event stream)."""
        try:
            call = parse_executor_call(self.json_body())
            if call.type == "SUBSCRIBE":
                container_id = self.hub.port.container_of(call.framework_id,
                                                          call.executor_id)
                if container_id is None:
                    raise ApiError(400, "executor_id",
                                   f"no executor {call.executor_id!r} of framework "
                                   f"{call.framework_id!r} was launched on this agent")
                self._authenticate(container_id)
                message = executor_message(call, container_id)
                await self._subscribe(call, container_id, message)
                return
            stream = self.hub.streams.get((call.framework_id, call.executor_id))
            if stream is None:
                raise ApiError(403, "executor_id",
                               f"executor {call.executor_id!r} of framework "
                               f"{call.framework_id!r} is not subscribed: SUBSCRIBE first")
            self._authenticate(stream.container_id)
            self._call(stream, executor_message(call, stream.container_id))
        except V1Error as exc:
            self.refuse(ApiError(400, exc.field, exc.message))
            return
        except ApiError as exc:
            self.refuse(exc)
            return
        self.set_status(202)
        self.finish()

    def _authenticate(self, container_id: str) -> None:
        """With ``--authenticate_http_executors``: 401 unless the bearer is the container's
        executor token (``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``)."""
        if not self.hub.port.authenticate_http_executors:
            return
        scheme, _, token = (self.request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not self.hub.port.check_token(container_id,
                                                                        token.strip()):
            self.set_header("WWW-Authenticate", 'Bearer realm="mesoslite-executor"')
            raise ApiError(401, "Authorization", "expected Authorization: Bearer <the "
                           "executor's MESOS_EXECUTOR_AUTHENTICATION_TOKEN>")

    def _call(self, stream: ExecutorStream, message: Any) -> None:
        stream.capture = []
        try:
            self.hub.port.on_message(stream.peer, message)
            refused = stream.capture
        finally:
            stream.capture = None
        if refused:
            error = refused[0]
            raise ApiError(400, error.field or "body", error.message)

    async def _subscribe(self, call: ExecutorCall, container_id: str, message: Any) -> None:
        self.set_status(200)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-cache")
        records = RecordStream(self)
        stream = self.stream = ExecutorStream(self.hub, call, container_id, records)
        records.on_close.append(stream.closed)
        self.hub.add(stream)
        self.flush()
        self.hub.port.on_message(stream.peer, message)
        await records.closed.wait()

    def on_connection_close(self) -> None:
        """The executor went away: end its stream."""
        if self.stream is not None:
            self.stream.records.close("the connection closed")

