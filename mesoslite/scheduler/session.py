"""The driver's subscription state and timers, as a pure state machine (PURE).

Owns: :class:`Session` (subscribe retries with randomised capped backoff,
heartbeat schedule, master-silence detection) and :class:`SeenUpdates`
(bounded memory of status-update uuids for de-duplication).  Nothing here
sends anything or sleeps: the driver feeds in events, asks :meth:`Session.due`
what to do now and :meth:`Session.next_deadline` when to ask again.  Time
comes from an injected clock's ``monotonic()``.
"""

from __future__ import annotations

import collections
import enum
import random

from mesoslite.clock import Clock

#: Consecutive heartbeat intervals of silence after which the master is presumed gone.
MAX_MISSED_HEARTBEATS = 5
#: Quick retries (per detected leader) when the detected leader says it does not lead yet.
MAX_QUICK_RETRIES = 3
#: A quick retry waits uniform [QUICK_RETRY_MIN, QUICK_RETRY_MAX] seconds.
QUICK_RETRY_MIN = 0.05
QUICK_RETRY_MAX = 0.25


class Phase(enum.Enum):
    """Where the subscription stands."""

    NO_MASTER = "NO_MASTER"  # no leader known: nothing to do
    SUBSCRIBING = "SUBSCRIBING"  # sending Subscribe with backoff until Subscribed
    SUBSCRIBED = "SUBSCRIBED"  # heartbeating; watching for master silence
    CLOSED = "CLOSED"  # stopped or aborted: nothing more happens


class Action(enum.Enum):
    """What the driver must do now."""

    SUBSCRIBE = "SUBSCRIBE"  # send Subscribe(framework_info with the current id)
    HEARTBEAT = "HEARTBEAT"  # send Heartbeat(sender_id=framework_id)
    MASTER_SILENT = "MASTER_SILENT"  # report disconnected() and reconnect the socket


class Session:
    """Subscription bookkeeping for one driver.

    Backoff follows the Mesos v0 driver: the first Subscribe to a newly
    detected leader goes out at once; retry ``n`` (0-based) waits a uniform
    random delay in ``[0, min(factor * 2**n, backoff_max)]``.  When the
    detected leader answers that it does not lead yet (it has not seen its own
    election), :meth:`leader_not_ready` brings the next attempt forward to a
    short random delay, at most :data:`MAX_QUICK_RETRIES` times per leader.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        framework_id: str = "",
        backoff_factor: float = 2.0,
        backoff_max: float = 60.0,
        rng: random.Random | None = None,
        max_missed_heartbeats: int = MAX_MISSED_HEARTBEATS,
    ) -> None:
        """Start with no master known; ``framework_id`` is the id to subscribe with."""
        if backoff_factor <= 0:
            raise ValueError(f"registration_backoff_factor: expected > 0, got {backoff_factor!r}")
        if backoff_max < backoff_factor:
            raise ValueError(
                f"registration_backoff_max: expected >= registration_backoff_factor "
                f"({backoff_factor!r}), got {backoff_max!r}"
            )
        self._clock = clock
        self._factor = backoff_factor
        self._max = backoff_max
        self._rng = rng or random.Random()
        self._max_missed = max_missed_heartbeats
        self.phase = Phase.NO_MASTER
        self.framework_id = framework_id
        self.heartbeat_interval: float | None = None
        self.subscriptions = 0  # how many Subscribed were accepted so far
        self.attempts = 0  # Subscribe messages sent since the last (re)start of subscribing
        self.quick_retries = 0  # leader_not_ready() retries since the last leader detection
        self._next_subscribe = 0.0
        self._next_heartbeat = 0.0
        self._last_heard = 0.0

    # ----------------------------------------------------------------- events

    def master_detected(self) -> bool:
        """A (new) leader is known: start subscribing at once.

        Returns True when the framework was subscribed (the caller reports
        ``disconnected()`` before re-subscribing).
        """
        self.quick_retries = 0
        return self._resubscribe()

    def leader_not_ready(self) -> bool:
        """The detected leader says it does not lead yet: retry soon instead of backing off.

        Returns True when the next Subscribe was brought forward (only while
        subscribing, at most :data:`MAX_QUICK_RETRIES` times per leader).
        """
        if self.phase is not Phase.SUBSCRIBING or self.quick_retries >= MAX_QUICK_RETRIES:
            return False
        self.quick_retries += 1
        soon = self._clock.monotonic() + self._rng.uniform(QUICK_RETRY_MIN, QUICK_RETRY_MAX)
        if soon < self._next_subscribe:
            self._next_subscribe = soon
            self.attempts = max(0, self.attempts - 1)  # the refused attempt does not count
        return True

    def master_lost(self) -> bool:
        """No leader is known; True when the framework was subscribed."""
        if self.phase is Phase.CLOSED:
            return False
        was = self.phase is Phase.SUBSCRIBED
        self.phase = Phase.NO_MASTER
        return was

    def not_subscribed(self) -> bool:
        """The master says we are not subscribed: subscribe again.

        True when we believed we were subscribed (the caller reports
        ``disconnected()``); while already subscribing nothing changes.
        """
        if self.phase is not Phase.SUBSCRIBED:
            return False
        return self._resubscribe()

    def subscribed(self, framework_id: str, heartbeat_interval: float) -> bool:
        """The master accepted us; returns True for the first subscription ever."""
        now = self._clock.monotonic()
        self.framework_id = framework_id
        self.heartbeat_interval = heartbeat_interval if heartbeat_interval > 0 else None
        self.phase = Phase.SUBSCRIBED
        self.attempts = 0
        self._last_heard = now
        if self.heartbeat_interval is not None:
            self._next_heartbeat = now + self.heartbeat_interval
        self.subscriptions += 1
        return self.subscriptions == 1

    def heard_from_master(self) -> None:
        """Any message from the master arrived: it is alive."""
        self._last_heard = self._clock.monotonic()

    def close(self) -> None:
        """The driver stopped or aborted: no more actions."""
        self.phase = Phase.CLOSED

    @property
    def is_subscribed(self) -> bool:
        """True while the master has accepted our subscription."""
        return self.phase is Phase.SUBSCRIBED

    # ------------------------------------------------------------------ timers

    def due(self) -> list[Action]:
        """The actions due now, in order; updates the schedule as if they were done."""
        now = self._clock.monotonic()
        actions: list[Action] = []
        if self.phase is Phase.SUBSCRIBED and self.heartbeat_interval is not None:
            silence = self.heartbeat_interval * self._max_missed
            if now - self._last_heard >= silence:
                actions.append(Action.MASTER_SILENT)
                self._resubscribe()
            elif now >= self._next_heartbeat:
                actions.append(Action.HEARTBEAT)
                self._next_heartbeat = now + self.heartbeat_interval
        if self.phase is Phase.SUBSCRIBING and now >= self._next_subscribe:
            actions.append(Action.SUBSCRIBE)
            self._next_subscribe = now + self.retry_delay(self.attempts)
            self.attempts += 1
        return actions

    def next_deadline(self) -> float | None:
        """The monotonic time at which :meth:`due` may next return something."""
        if self.phase is Phase.SUBSCRIBING:
            return self._next_subscribe
        if self.phase is Phase.SUBSCRIBED and self.heartbeat_interval is not None:
            silent_at = self._last_heard + self.heartbeat_interval * self._max_missed
            return min(self._next_heartbeat, silent_at)
        return None

    def retry_delay(self, attempt: int) -> float:
        """Random delay before retry ``attempt``: uniform in [0, min(factor·2^n, max)]."""
        bound = self._max if attempt >= 64 else min(self._factor * (2**attempt), self._max)
        return self._rng.uniform(0.0, bound)

    def _resubscribe(self) -> bool:
        if self.phase is Phase.CLOSED:
            return False
        was = self.phase is Phase.SUBSCRIBED
        self.phase = Phase.SUBSCRIBING
        self.attempts = 0
        self._next_subscribe = self._clock.monotonic()
        return was


class SeenUpdates:
    """Bounded memory of status-update uuids: which were delivered, which acknowledged.

    The oldest entries are forgotten first once ``capacity`` is exceeded.  The
    agent keeps at most one update per task in flight, so a few thousand
    entries cover every realistic retry window.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        """Remember at most ``capacity`` uuids (ValueError unless >= 1)."""
        if capacity < 1:
            raise ValueError(f"capacity: expected >= 1, got {capacity!r}")
        self._capacity = capacity
        self._acked: collections.OrderedDict[bytes, bool] = collections.OrderedDict()

    def first_sight(self, uuid: bytes) -> bool:
        """Record ``uuid``; True the first time it is seen (while still remembered)."""
        if uuid in self._acked:
            return False
        self._acked[uuid] = False
        if len(self._acked) > self._capacity:
            self._acked.popitem(last=False)
        return True

    def mark_acknowledged(self, uuid: bytes) -> None:
        """The update was acknowledged (a resend of it should be re-acknowledged)."""
        if uuid in self._acked:
            self._acked[uuid] = True

    def is_acknowledged(self, uuid: bytes) -> bool:
        """True when ``uuid`` is remembered and was acknowledged."""
        return self._acked.get(uuid, False)

    def forget(self, uuid: bytes) -> None:
        """Drop ``uuid`` so that a resend is delivered again."""
        self._acked.pop(uuid, None)

    def __len__(self) -> int:
        return len(self._acked)
