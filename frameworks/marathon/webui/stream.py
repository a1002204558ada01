"""The service UI's live push: the event bus, coalesced, one subscription for every page.

Owns: :data:`UI_EVENTS` (the bus events that change what a page shows),
:class:`ChangePublisher` and :class:`ChangesHandler` (``/ui/api/events``).

Pages only need to know *that* something they show changed, at most once a
second (they then re-read their view).  Sending each page every event of
``/v2/events`` costs the framework one encoding and one write per event and per
page: at 200 task updates a second and 5 open pages, 1,000 writes a second.
Instead, while at least one page watches, the publisher holds one subscription
to the same bus ``/v2/events`` reads, folds what arrives into one pending
change (the event types and the app ids concerned), and once per ``interval``
encodes it once as a server-sent event ``changes`` and hands those bytes to
every page (each keeps only the newest one it has not sent yet); should a burst
overflow the subscription's bounded queue, it subscribes again and the next
push says ``event_stream_overflow`` (pages re-read all the same).  ``seq``
numbers the pushes: pages re-read after one push share one computation of
their view (see :class:`~frameworks.marathon.webui.routes.AppsSummaryHandler`).
With no page watching, nothing is subscribed.

A standby has no events of its own (the bus runs on the leader): its handler
relays the leader's ``/ui/api/events`` to the browser, so that a page served by
a standby stays live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import tornado.httpclient
import tornado.iostream

from frameworks.marathon.api.base import VIA_HEADER, ApiHandler
from frameworks.marathon.facade import ServiceFacade
from mesoslite.webui.publisher import Watcher, sse_frame
from mesoslite.webui.routes import pump

log = logging.getLogger(__name__)

#: Seconds between two pushes while events arrive.
PUSH_INTERVAL = 1.0
#: App ids listed in one push at most (more: ``"more": true``).
MAX_APPS = 100

#: The bus events a page is refreshed on.
UI_EVENTS = frozenset({
    "status_update_event", "instance_changed_event", "health_status_changed_event",
    "instance_health_changed_event", "failed_health_check_event", "deployment_info",
    "deployment_success", "deployment_failed", "deployment_step_success",
    "deployment_step_failure", "api_post_event", "group_change_success",
    "app_terminated_event", "unhealthy_instance_kill_event",
})


def _app_of(event: dict[str, Any]) -> str:
    value = event.get("appId")
    return value if isinstance(value, str) else ""


class ChangePublisher:
    """One bus subscription while pages watch; a ``changes`` frame per interval at most."""

    def __init__(self, service: ServiceFacade, *, interval: float = PUSH_INTERVAL) -> None:
        self.service = service
        self.interval = interval
        self.watchers: set[Watcher] = set()
        #: Number of the latest push (pages are cached per push while pages watch).
        self.seq = 0
        self.latest_frame: bytes | None = None
        self._types: set[str] = set()
        self._apps: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        #: Bus events folded, and frames published (for tests and the benchmark).
        self.folded = 0
        self.published = 0

    @property
    def live(self) -> bool:
        """True while pages watch through this publisher (pushes number their changes)."""
        return bool(self.watchers) and self._task is not None

    def attach(self) -> Watcher:
        """A new watcher; it is sent a first frame at once (its page loads its view)."""
        watcher = Watcher()
        self.watchers.add(watcher)
        watcher.offer(sse_frame("changes", {"seq": self.seq, "types": [], "apps": []}))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return watcher

    def detach(self, watcher: Watcher) -> None:
        """Forget ``watcher`` (idempotent); the subscription ends once none is left."""
        watcher.closed = True
        watcher.wake.set()
        self.watchers.discard(watcher)

    async def stop(self) -> None:
        """Detach every watcher and end the subscription."""
        for watcher in list(self.watchers):
            self.detach(watcher)
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def fold(self, event: dict[str, Any]) -> None:
        """Add one bus event to the pending change."""
        self.folded += 1
        self._types.add(str(event.get("eventType", "")))
        app = _app_of(event)
        if app and len(self._apps) <= MAX_APPS:
            self._apps.add(app)

    def publish(self) -> bool:
        """Push the pending change, if any, to every watcher; True if pushed."""
        if not self._types:
            return False
        self.seq += 1
        apps = sorted(self._apps)
        frame = sse_frame("changes", {"seq": self.seq, "types": sorted(self._types),
                                      "apps": apps[:MAX_APPS], "more": len(apps) > MAX_APPS})
        self._types.clear()
        self._apps.clear()
        self.latest_frame = frame
        self.published += 1
        for watcher in list(self.watchers):
            watcher.offer(frame)
        return True

    async def _run(self) -> None:
        sub: Any = None
        try:
            next_push = time.monotonic() + self.interval
            while self.watchers:
                if not self.service.is_leader:
                    for watcher in list(self.watchers):  # their pages reconnect to a leader
                        self.detach(watcher)
                    break
                if sub is None or getattr(sub, "closed", False):
                    if sub is not None:  # it fell behind a burst: events were lost
                        self.fold({"eventType": "event_stream_overflow"})
                    sub = self.service.subscribe(UI_EVENTS, "web UI")
                event = await sub.next(max(0.0, next_push - time.monotonic()))
                if event is not None:
                    self.fold(event)
                if time.monotonic() >= next_push:
                    self.publish()
                    next_push = time.monotonic() + self.interval
        finally:
            if sub is not None:
                sub.close()
            self._task = None


class ChangesHandler(ApiHandler):
    """``/ui/api/events``: the publisher's ``changes`` (a standby relays the leader's)."""

    LOCAL = True

    def initialize(self, service: ServiceFacade, options: dict[str, Any],  # type: ignore[override]
                   publisher: ChangePublisher) -> None:
        """Keep the publisher."""
        super().initialize(service, options)
        self.publisher = publisher
        self.watcher: Watcher | None = None
        self._relay: Any = None
        self._gone = False

    async def get(self) -> None:
        """Stream until the client goes (or this instance's role changes)."""
        if not self.service.is_leader:
            await self._relay_leader()
            return
        watcher = self.watcher = self.publisher.attach()
        try:
            await pump(self, watcher)
        finally:
            self.publisher.detach(watcher)

    async def _relay_leader(self) -> None:
        """Relay the leader's stream chunk by chunk (ends when either side does)."""
        if self.request.headers.get(VIA_HEADER):
            self.set_status(502)
            self.finish()
            return
        leader = self.leader_or_503()
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache, no-store")
        self.set_header("X-Accel-Buffering", "no")

        def relay(chunk: bytes) -> None:
            if self._gone:  # raising here ends the upstream request
                raise tornado.iostream.StreamClosedError()
            self.write(chunk)
            self.flush()

        request = tornado.httpclient.HTTPRequest(
            f"http://{leader}/ui/api/events", headers={VIA_HEADER: f"1.1 {self.request.host}"},
            streaming_callback=relay, request_timeout=24 * 3600.0, connect_timeout=10.0)
        self._relay = asyncio.ensure_future(
            tornado.httpclient.AsyncHTTPClient().fetch(request, raise_error=False))
        try:
            await self._relay
        except asyncio.CancelledError:
            return
        except Exception as exc:  # noqa: BLE001 - the browser reconnects
            log.info("web UI: relaying the leader's changes ended: %r", exc)
        with contextlib.suppress(tornado.iostream.StreamClosedError):
            self.finish()

    def on_connection_close(self) -> None:
        """The browser went away."""
        self._gone = True
        if self.watcher is not None:
            self.publisher.detach(self.watcher)
        if self._relay is not None:
            self._relay.cancel()
