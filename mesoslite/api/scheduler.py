"""The v1 scheduler API on the master: ``POST /api/v1/scheduler``.

Owns: :class:`SchedulerHandler` and :class:`SchedulerHub`.  An HTTP framework is a
peer of the master core like one on ZeroMQ: SUBSCRIBE registers an in-process peer
(``master.local_peers``) whose messages become RecordIO events on the open response
(:class:`SchedulerStream`, with a ``Mesos-Stream-Id``); every other call is parsed
(:mod:`.scheduler_calls`), checked against the stream id and the framework's offers,
and handed to the core as that peer's message, so the allocator, ``/state`` and the UI
see one kind of framework, and a framework fails over between the SDK and HTTP with its
id.  The stream answers each master heartbeat for the framework (the open connection is
the liveness Mesos uses); a closed stream disconnects the framework (its failover
timeout starts).  Answers: 202, 400 naming the field, 403 (no or wrong subscription),
307 with ``Location: //host:port/api/v1/scheduler`` on a non-leader, 503 without a
leader, 501 for calls we do not support.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from mesoslite.api.launch_check import check_launch
from mesoslite.api.leader import refuse_not_leader
from mesoslite.api.ports import MasterPort
from mesoslite.api.scheduler_calls import Call, Unsupported, event_json, parse_call
from mesoslite.api.streams import ApiError, JsonApiHandler, RecordStream
from mesoslite.api.v1json import V1Error
from mesoslite.protocol import (
    Accept,
    Deactivate,
    Error,
    Heartbeat,
    ProtocolError,
    Subscribed,
)

log = logging.getLogger("mesoslite.api")

#: The path Mesos clients are redirected to.
SCHEDULER_PATH = "/api/v1/scheduler"


class SchedulerStream:
    """One subscribed HTTP scheduler: its peer id, stream id and event stream."""

    def __init__(self, hub: SchedulerHub, records: RecordStream) -> None:
        """Register as a peer of the master; nothing is sent until the core answers."""
        self.hub = hub
        self.records = records
        self.peer = b"\xffhttp-" + uuid.uuid4().bytes
        self.stream_id = str(uuid.uuid4())
        self.framework_id = ""
        #: ProtocolErrors the core answered while a call was being handled.
        self.capture: list[ProtocolError] | None = None
        self.quiet_subscribed = 0

    def receive(self, message: Any) -> None:
        """A message the core sends this framework: an event on the stream."""
        if isinstance(message, ProtocolError):
            if self.capture is not None:
                self.capture.append(message)
            else:
                log.info("framework %s: call refused: %s", self.framework_id, message.message)
            return
        if isinstance(message, Subscribed):
            self.framework_id = message.framework_id
            self.hub.by_framework[message.framework_id] = self
            if self.quiet_subscribed:
                self.quiet_subscribed -= 1
                return
        if isinstance(message, Heartbeat) and self.framework_id:
            # The open stream is the framework's liveness: answer for it.
            asyncio.get_running_loop().call_soon(
                self.hub.master_handle, self.peer, Heartbeat(self.framework_id))
        event = event_json(message)
        if event is not None:
            self.records.send(event)
        if isinstance(message, Error):
            self.records.close(f"framework {self.framework_id}: {message.message}")

    def closed(self) -> None:
        """The stream ended: forget the peer; a still-subscribed framework is disconnected."""
        hub = self.hub
        hub.streams.pop(self.stream_id, None)
        if hub.by_framework.get(self.framework_id) is self:
            del hub.by_framework[self.framework_id]
        master = hub.master
        master.local_peers.pop(self.peer, None)
        if not self.framework_id or not master.is_leading:
            return
        framework = master.state.frameworks.get(self.framework_id)
        if framework is not None and framework.connected and framework.peer == self.peer:
            master.local_peers[self.peer] = lambda _message: None
            try:
                master.handle(self.peer, Deactivate(self.framework_id))
            finally:
                master.local_peers.pop(self.peer, None)


class SchedulerHub:
    """The HTTP schedulers of one master, by stream id and framework id."""

    def __init__(self, master: MasterPort) -> None:
        """Serve schedulers on ``master``."""
        self.master = master
        self.streams: dict[str, SchedulerStream] = {}
        self.by_framework: dict[str, SchedulerStream] = {}

    def master_handle(self, peer: bytes, message: Any) -> None:
        """Hand a message to the core as ``peer``'s, if this master still leads."""
        if self.master.is_leading and peer in self.master.local_peers:
            self.master.handle(peer, message)

    def stop(self) -> None:
        """Close every stream."""
        for stream in list(self.streams.values()):
            stream.records.close("the master stops")


class SchedulerHandler(JsonApiHandler):
    """``POST /api/v1/scheduler``."""

    def initialize(self, master: MasterPort, hub: SchedulerHub) -> None:
        """Serve ``master``'s schedulers through ``hub``."""
        self.master = master
        self.hub = hub
        self.stream: SchedulerStream | None = None

    async def post(self) -> None:
        """Answer one call (SUBSCRIBE keeps the response open as the event stream)."""
        try:
            call = parse_call(self.json_body())
        except V1Error as exc:
            self.refuse(ApiError(400, exc.field, exc.message))
            return
        except Unsupported as exc:
            self.refuse(ApiError(501, exc.field, exc.message))
            return
        except ApiError as exc:
            self.refuse(exc)
            return
        if not self.master.is_leading:
            refuse_not_leader(self, self.master, SCHEDULER_PATH)
            return
        if call.type == "SUBSCRIBE":
            if "Mesos-Stream-Id" in self.request.headers:
                self.refuse(ApiError(400, "Mesos-Stream-Id", "SUBSCRIBE must not carry a "
                                                             "Mesos-Stream-Id"))
                return
            await self._subscribe(call)
            return
        try:
            self._call(call)
        except ApiError as exc:
            self.refuse(exc)
            return
        self.set_status(202)
        self.finish()

    async def _subscribe(self, call: Call) -> None:
        self.set_status(200)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-cache")
        records = RecordStream(self)
        stream = self.stream = SchedulerStream(self.hub, records)
        self.set_header("Mesos-Stream-Id", stream.stream_id)
        self.hub.streams[stream.stream_id] = stream
        self.master.local_peers[stream.peer] = stream.receive
        records.on_close.append(stream.closed)
        self.flush()
        self.master.handle(stream.peer, call.message)
        await records.closed.wait()

    def _call(self, call: Call) -> None:
        stream_id = self.request.headers.get("Mesos-Stream-Id")
        if not stream_id:
            raise ApiError(400, "Mesos-Stream-Id", f"a {call.type} call needs the "
                           "Mesos-Stream-Id header of the framework's SUBSCRIBE")
        stream = self.hub.streams.get(stream_id)
        if stream is None or stream.framework_id != call.framework_id:
            raise ApiError(403, "Mesos-Stream-Id",
                           f"framework {call.framework_id!r} is not subscribed on stream "
                           f"{stream_id[:64]!r}: subscribe first")
        framework = self.master.state.frameworks.get(call.framework_id)
        if framework is None or framework.peer != stream.peer:
            raise ApiError(403, "framework_id", f"framework {call.framework_id!r} is not "
                           "subscribed on this stream")
        offers = self.master.state.offers
        key = call.type.lower()
        for i, offer_id in enumerate(call.offer_ids):
            record = offers.get(offer_id)
            if record is None or record.offer.framework_id != call.framework_id:
                raise ApiError(400, f"{key}.offer_ids[{i}]",
                               f"offer {offer_id!r} is not an outstanding offer of "
                               f"framework {call.framework_id!r}")
        if call.message is None:
            return
        if isinstance(call.message, Accept) and call.message.operations:
            self._check_launch(call.message, framework)
        if call.type == "UPDATE_FRAMEWORK":
            stream.quiet_subscribed += 1
        stream.capture = []
        try:
            self.master.handle(stream.peer, call.message)
            refused = stream.capture
        finally:
            stream.capture = None
        if refused:
            error = refused[0]
            raise ApiError(403 if error.code == "NOT_SUBSCRIBED" else 400,
                           f"{key}.{error.field}" if error.field else key, error.message)
        if call.type == "TEARDOWN":  # the framework is gone: its stream ends, as in Mesos
            stream.records.close(f"framework {call.framework_id} torn down")

    def _check_launch(self, accept: Accept, framework: Any) -> None:
        """400 naming the field for tasks the core would refuse (nothing changes then)."""
        state = self.master.state
        offers = [state.offers[offer_id].offer for offer_id in accept.offer_ids]
        live = set(framework.unreachable_tasks)
        live.update(tid for tid, task in framework.tasks.items() if not task.state.is_terminal)
        agent = state.agents.get(offers[0].agent_id) if offers else None
        executors = {eid for fid, eid in agent.executors if fid == framework.id} \
            if agent is not None else set()
        try:
            check_launch(accept, offers, state.agents, live, executors)
        except V1Error as exc:
            raise ApiError(400, exc.field, exc.message) from None

    def on_connection_close(self) -> None:
        """The scheduler went away: end its stream."""
        if self.stream is not None:
            self.stream.records.close("the connection closed")
