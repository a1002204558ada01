"""``GET /v2/events``: the Marathon event bus as server-sent events (tornado handler).

Owns: :class:`EventStreamHandler`.  Each event is written as
``event: <eventType>`` and ``data: <json>`` lines and flushed at once;
``event_type`` (repeatable, or comma-separated) filters; ``plan-format=light``
(the default) drops ``plan.original`` and ``plan.target``, ``full`` keeps
them.  A ``: ping`` comment goes out after ``keepalive_seconds`` of silence
so that clients and proxies see a live stream.  The subscription is closed
when the client goes away; a slow client only ever waits on its own socket
(the subscription's bounded queue lives in the service), and a client that
takes no data for ``event_write_timeout_seconds`` is disconnected.  A standby answers
302 to the same URL on the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import tornado.iostream

from frameworks.marathon.api.base import ApiError, ApiHandler
from frameworks.marathon.wire.render import light_event

log = logging.getLogger(__name__)

#: Longest event type name accepted in a filter.
_MAX_TYPE_LEN = 100


def sse_frame(event: dict[str, Any]) -> bytes:
    """One event as ``event:``/``data:`` lines and the blank line ending it."""
    kind = str(event.get("eventType", "message")).replace("\n", " ")
    data = json.dumps(event, separators=(",", ":"))
    return f"event: {kind}\ndata: {data}\n\n".encode()


def _ignore_result(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned flush's outcome so that asyncio does not report it."""
    if not future.cancelled():
        future.exception()


class EventStreamHandler(ApiHandler):
    """The SSE stream (a standby redirects to the leader instead of proxying)."""

    LOCAL = True

    def initialize(self, service: Any, options: dict[str, Any]) -> None:
        """Set up the close signal on top of the common initialisation."""
        super().initialize(service, options)
        self._gone = asyncio.Event()
        self._subscription: Any = None

    async def get(self) -> None:
        """Stream events until the client disconnects or the subscription ends."""
        if not self.service.is_leader:
            leader = self.leader_or_503()
            self.redirect(f"http://{leader}{self.request.uri}", status=302)
            return
        types = self._event_types()
        plan_format = self.get_query_argument("plan-format", "light").strip().lower()
        if plan_format not in ("light", "full"):
            raise ApiError(400, "Query parameter 'plan-format' must be light or full, "
                                f"got {plan_format[:40]!r}")
        light = plan_format == "light"
        keepalive = float(self.api_options["keepalive_seconds"])
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache, no-store")
        self.set_header("X-Accel-Buffering", "no")
        self.set_header("Connection", "keep-alive")
        sub = self.service.subscribe(types, self.request.remote_ip or "")
        self._subscription = sub
        try:
            await self._flush()
            while not self._gone.is_set():
                event = await self._next(sub, keepalive)
                if self._gone.is_set():
                    break
                if event is None:
                    if getattr(sub, "closed", False):
                        break
                    self.write(b": ping\n\n")
                else:
                    self.write(sse_frame(light_event(event) if light else event))
                if not await self._flush():
                    break
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            self._close_subscription()
        with contextlib.suppress(tornado.iostream.StreamClosedError):
            self.finish()

    async def _flush(self) -> bool:
        """Send what was written; False (connection closed) when the client stalls too long."""
        pending = self.flush()
        timeout = float(self.api_options["event_write_timeout_seconds"])
        done, _ = await asyncio.wait({pending}, timeout=timeout)
        if not done:
            pending.add_done_callback(_ignore_result)
            log.warning("event stream to %s took no data for %.1f s; closing it",
                        self.request.remote_ip, timeout)
            self._gone.set()
            self.request.connection.close()  # type: ignore[union-attr]
            return False
        pending.result()
        return True

    def _event_types(self) -> frozenset[str] | None:
        """The ``event_type`` filter (None: every event)."""
        names: set[str] = set()
        for value in self.get_query_arguments("event_type"):
            for name in value.split(","):
                name = name.strip()
                if not name:
                    continue
                if len(name) > _MAX_TYPE_LEN or not name.replace("_", "").isalnum():
                    raise ApiError(400, f"Query parameter 'event_type': {name[:40]!r} is not "
                                        "an event type name")
                names.add(name)
        return frozenset(names) if names else None

    async def _next(self, sub: Any, timeout: float) -> dict[str, Any] | None:
        """The next event, None after ``timeout`` or once the client is gone."""
        waiter = asyncio.ensure_future(sub.next(timeout))
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            return None
        return waiter.result()

    def on_connection_close(self) -> None:
        """The client went away: stop waiting and close the subscription."""
        self._gone.set()
        self._close_subscription()

    def on_finish(self) -> None:
        """Whatever ended the request, the subscription ends too."""
        self._close_subscription()

    def _close_subscription(self) -> None:
        """Close the subscription once."""
        sub, self._subscription = self._subscription, None
        if sub is not None:
            try:
                sub.close()
            except Exception:  # closing must not fail the end of the stream
                log.exception("closing an event subscription failed")
