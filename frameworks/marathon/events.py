"""The event bus behind ``/v2/events``.

Owns: :class:`EventBus` (publish one event to every matching subscriber)
and :class:`BusSubscription` (one subscriber's bounded queue).  Events are
dicts with Marathon's ``eventType`` and ``timestamp`` keys.  A subscriber
that falls more than ``max_queue`` events behind is closed (as Marathon does
with ``event_stream_max_outstanding_messages``) rather than silently missing
events: the client reconnects and re-reads the state.  The publisher and the
other subscribers are never blocked.  Runs on the event loop only.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("mesoslite.marathon.events")

#: Marathon's event types (the bus accepts only these).
EVENT_TYPES = frozenset({
    "api_post_event", "status_update_event", "instance_changed_event",
    "instance_health_changed_event", "health_status_changed_event",
    "failed_health_check_event", "add_health_check_event", "remove_health_check_event",
    "unhealthy_task_kill_event", "unhealthy_instance_kill_event", "deployment_info",
    "deployment_success", "deployment_failed", "deployment_step_success",
    "deployment_step_failure", "group_change_success", "group_change_failed",
    "app_terminated_event", "unknown_instance_terminated_event", "framework_message_event",
    "event_stream_attached", "event_stream_detached", "subscribe_event",
    "unsubscribe_event", "pod_created_event", "pod_updated_event", "pod_deleted_event",
})


class BusSubscription:
    """One subscriber: a bounded queue of events, optionally filtered by type."""

    def __init__(self, bus: EventBus, event_types: frozenset[str] | None, remote: str,
                 max_queue: int) -> None:
        self._bus = bus
        self.event_types = event_types
        self.remote = remote
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._max_queue = max_queue
        self._wakeup = asyncio.Event()
        #: True when the subscriber was closed because it fell too far behind.
        self.overflowed = False
        self.closed = False

    def wants(self, event_type: str) -> bool:
        """True when this subscriber asked for ``event_type`` (or for everything)."""
        return self.event_types is None or event_type in self.event_types

    def offer(self, event: dict[str, Any]) -> None:
        """Queue ``event``; a subscriber whose queue is full is closed instead."""
        if self.closed:
            return
        if len(self._queue) >= self._max_queue:
            self.overflowed = True
            log.warning("event stream to %s closed: more than %d events outstanding",
                        self.remote, self._max_queue)
            self.close()
            return
        self._queue.append(event)
        self._wakeup.set()

    async def next(self, timeout: float) -> dict[str, Any] | None:
        """The next event; None on timeout, or once closed and drained (see ``closed``)."""
        if not self._queue and not self.closed:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                return None
        return self._queue.popleft() if self._queue else None

    def close(self) -> None:
        """Stop receiving events (idempotent)."""
        if not self.closed:
            self.closed = True
            self._wakeup.set()
            self._bus.unsubscribe(self)


class EventBus:
    """Fans events out to subscribers; ``clock`` stamps them."""

    def __init__(self, timestamp: Callable[[], str], *, max_queue: int = 50) -> None:
        self._timestamp = timestamp
        self._max_queue = max_queue
        self._subscribers: list[BusSubscription] = []
        self.published = 0

    @property
    def subscriber_count(self) -> int:
        """How many event streams are attached."""
        return len(self._subscribers)

    def subscribe(self, event_types: frozenset[str] | None, remote: str) -> BusSubscription:
        """Attach a subscriber and announce it with ``event_stream_attached``."""
        sub = BusSubscription(self, event_types, remote, self._max_queue)
        self._subscribers.append(sub)
        self.publish("event_stream_attached", remoteAddress=remote)
        return sub

    def unsubscribe(self, sub: BusSubscription) -> None:
        """Detach ``sub`` and announce it with ``event_stream_detached``."""
        if sub in self._subscribers:
            self._subscribers.remove(sub)
            self.publish("event_stream_detached", remoteAddress=sub.remote)

    def publish(self, event_type: str, **fields: Any) -> dict[str, Any]:
        """Send one event of ``event_type`` with ``fields`` to every matching subscriber."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"event_type: unknown Marathon event type {event_type!r}")
        event = {"eventType": event_type, "timestamp": self._timestamp(), **fields}
        self.published += 1
        for sub in list(self._subscribers):
            if sub.wants(event_type):
                sub.offer(event)
        return event
