"""The agent's status-update streams: per-task FIFO, one in flight, retried (PURE).

Owns: reliable, in-order delivery of task status updates to the master.
Every (framework, task) has a FIFO *stream* of updates; only the head of a
stream is in flight.  The head is resent with backoff (``retry_min`` doubling
up to ``retry_max``, measured on the injected clock) until the master
acknowledges its uuid; the ack pops it and the next update becomes the head.
A terminal update, once acknowledged, closes the stream.

The manager performs no I/O: every method returns what must be sent
(:mod:`mesoslite.agent.core.updates` turns that into effects).  The checkpoint holds the same
records this module replays: :meth:`StatusUpdateManager.replay` rebuilds a stream
from ``("UPDATE", StatusUpdate)`` and ``("ACK", uuid)`` records after an
agent restart.
"""

from __future__ import annotations

import collections
import enum
import heapq
import itertools
from collections.abc import Iterable

import attrs

from mesoslite.clock import Clock
from mesoslite.protocol import StatusUpdate

StreamKey = tuple[str, str]  # (framework_id, task_id)
#: A checkpoint record: ``("UPDATE", StatusUpdate)`` or ``("ACK", uuid_bytes)``.
Record = tuple[str, object]


class AddOutcome(str, enum.Enum):
    """What :meth:`StatusUpdateManager.add` did with an update."""

    ACCEPTED = "ACCEPTED"  # queued (and maybe sent)
    DUPLICATE = "DUPLICATE"  # same uuid seen before on this stream: dropped
    REFUSED = "REFUSED"  # after a terminal update, or malformed: dropped


@attrs.frozen
class Added:
    """Result of :meth:`StatusUpdateManager.add`; ``send`` is the update to send now."""

    outcome: AddOutcome
    send: StatusUpdate | None = None
    reason: str = ""


@attrs.frozen
class Acked:
    """Result of :meth:`StatusUpdateManager.acknowledge`.

    ``accepted`` is False for an ack that matches no in-flight update (it is
    ignored; ``reason`` says why).  ``acked`` is the update acknowledged,
    ``send`` the next head to send, ``closed`` True when the acknowledged
    update was terminal and the stream is gone.
    """

    accepted: bool
    acked: StatusUpdate | None = None
    send: StatusUpdate | None = None
    closed: bool = False
    reason: str = ""


class _Stream:
    __slots__ = ("checkpoint", "deadline", "interval", "key", "pending", "seen", "terminal")

    def __init__(self, key: StreamKey, checkpoint: bool) -> None:
        """Resend unacknowledged heads after retry_min, doubling up to retry_max."""
        self.key = key
        self.pending: collections.deque[StatusUpdate] = collections.deque()
        self.seen: set[bytes] = set()
        self.terminal = False  # a terminal update was received
        self.interval = 0.0
        self.deadline: float | None = None  # next resend of the head; None = not sent yet
        self.checkpoint = checkpoint


class StatusUpdateManager:
    """Per-task FIFO streams of status updates with one update in flight each."""

    def __init__(self, clock: Clock, retry_min: float = 10.0, retry_max: float = 600.0) -> None:
        """Resend unacknowledged heads after retry_min, doubling up to retry_max."""
        if retry_min <= 0 or retry_max < retry_min:
            raise ValueError(
                f"retry_min/retry_max: expected 0 < retry_min <= retry_max, "
                f"got {retry_min!r}/{retry_max!r}"
            )
        self._clock = clock
        self._min = float(retry_min)
        self._max = float(retry_max)
        self._streams: dict[StreamKey, _Stream] = {}
        self._heap: list[tuple[float, int, StreamKey]] = []
        self._seq = itertools.count()

    # ------------------------------------------------------------ queries

    def __len__(self) -> int:
        """Number of open streams."""
        return len(self._streams)

    def __contains__(self, key: object) -> bool:
        """True when a stream for ``(framework_id, task_id)`` is open."""
        return key in self._streams

    def pending(self, framework_id: str, task_id: str) -> tuple[StatusUpdate, ...]:
        """The unacknowledged updates of a task, oldest first."""
        stream = self._streams.get((framework_id, task_id))
        return tuple(stream.pending) if stream else ()

    def head(self, framework_id: str, task_id: str) -> StatusUpdate | None:
        """The update in flight (or waiting to be sent) for a task."""
        stream = self._streams.get((framework_id, task_id))
        return stream.pending[0] if stream and stream.pending else None

    def streams(self) -> list[StreamKey]:
        """Keys of all open streams."""
        return list(self._streams)

    def is_checkpointed(self, framework_id: str, task_id: str) -> bool:
        """True when the stream was opened with ``checkpoint=True``."""
        stream = self._streams.get((framework_id, task_id))
        return bool(stream and stream.checkpoint)

    def next_retry_time(self) -> float | None:
        """Monotonic time of the earliest pending resend, or None."""
        heap = self._heap
        while heap:
            deadline, _seq, key = heap[0]
            stream = self._streams.get(key)
            if stream is not None and stream.deadline == deadline and stream.pending:
                return deadline
            heapq.heappop(heap)
        return None

    # ------------------------------------------------------------ changes

    def add(self, update: StatusUpdate, checkpoint: bool = False) -> Added:
        """Queue an update; if it becomes the head it is returned in ``send``."""
        uuid = update.status.uuid
        if not uuid:
            return Added(AddOutcome.REFUSED, reason="status.uuid is empty")
        key = (update.framework_id, update.status.task_id)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(key, checkpoint)
        if uuid in stream.seen:
            return Added(AddOutcome.DUPLICATE, reason="an update with this uuid was seen before")
        if stream.terminal:
            return Added(
                AddOutcome.REFUSED,
                reason=f"task {key[1]!r} already had a terminal update",
            )
        stream.seen.add(uuid)
        stream.pending.append(update)
        if update.status.state.is_terminal:
            stream.terminal = True
        if len(stream.pending) == 1:
            self._mark_sent(stream, self._min)
            return Added(AddOutcome.ACCEPTED, send=update)
        return Added(AddOutcome.ACCEPTED)

    def acknowledge(self, framework_id: str, task_id: str, uuid: bytes) -> Acked:
        """Pop the head if ``uuid`` is its uuid; unknown acks are ignored."""
        stream = self._streams.get((framework_id, task_id))
        if stream is None or not stream.pending:
            return Acked(False, reason=f"no pending updates for task {task_id!r}")
        head = stream.pending[0]
        if head.status.uuid != uuid:
            return Acked(
                False,
                reason=f"unexpected uuid {uuid.hex()}, in flight is {head.status.uuid.hex()}",
            )
        stream.pending.popleft()
        if head.status.state.is_terminal:
            del self._streams[stream.key]
            return Acked(True, acked=head, closed=True)
        if stream.pending:
            self._mark_sent(stream, self._min)
            return Acked(True, acked=head, send=stream.pending[0])
        stream.deadline = None
        return Acked(True, acked=head)

    def due(self) -> list[StatusUpdate]:
        """Heads whose retry time has come; each is rescheduled with doubled backoff."""
        now = self._clock.monotonic()
        out: list[StatusUpdate] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _seq, key = heapq.heappop(heap)
            stream = self._streams.get(key)
            if stream is None or stream.deadline != deadline or not stream.pending:
                continue
            out.append(stream.pending[0])
            self._mark_sent(stream, min(stream.interval * 2, self._max))
        return out

    def resend_all(self) -> list[StatusUpdate]:
        """Every head, to send now (after (re-)registration); backoff restarts at min."""
        out: list[StatusUpdate] = []
        for stream in self._streams.values():
            if stream.pending:
                out.append(stream.pending[0])
                self._mark_sent(stream, self._min)
        return out

    def remove_framework(self, framework_id: str) -> int:
        """Drop every stream of a framework (it was shut down); returns how many."""
        keys = [k for k in self._streams if k[0] == framework_id]
        for key in keys:
            del self._streams[key]
        return len(keys)

    def replay(self, framework_id: str, task_id: str, records: Iterable[Record]) -> None:
        """Rebuild one stream from its checkpoint records (UPDATE/ACK, in file order).

        The rebuilt head counts as not yet sent; :meth:`resend_all` sends it.
        A closed stream (terminal update acknowledged) leaves nothing behind.
        """
        key = (framework_id, task_id)
        stream = _Stream(key, checkpoint=True)
        for kind, value in records:
            if kind == "UPDATE":
                assert isinstance(value, StatusUpdate)
                uuid = value.status.uuid
                if not uuid or uuid in stream.seen or stream.terminal:
                    continue
                stream.seen.add(uuid)
                stream.pending.append(value)
                if value.status.state.is_terminal:
                    stream.terminal = True
            elif kind == "ACK":
                if stream.pending and stream.pending[0].status.uuid == value:
                    stream.pending.popleft()
            else:
                raise ValueError(f"record kind: expected 'UPDATE' or 'ACK', got {kind!r}")
        if stream.terminal and not stream.pending:
            self._streams.pop(key, None)
            return
        if stream.pending or stream.seen:
            self._streams[key] = stream

    # ------------------------------------------------------------ internals

    def _mark_sent(self, stream: _Stream, interval: float) -> None:
        stream.interval = interval
        stream.deadline = self._clock.monotonic() + interval
        heapq.heappush(self._heap, (stream.deadline, next(self._seq), stream.key))
