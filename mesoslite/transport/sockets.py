"""ZeroMQ sockets on the event loop: a ROUTER server and a DEALER client.

Owns: the only use of zmq in mesoslite (with :mod:`.curve`).  Both classes
wrap a *synchronous* zmq socket driven by ``loop.add_reader`` on its file
descriptor, draining everything that is ready on each wake-up; that is much
cheaper per message than awaiting one future per frame.

Sending is batched per event-loop turn: :meth:`send` encodes at once (an
encoding error is reported to the caller) and queues the bytes for their
peer; at the end of the turn everything queued for one peer leaves as one
frame holding the envelopes back to back (:func:`~mesoslite.protocol.join_frames`;
a lone message is a plain one-envelope frame).  Under load that turns many
small ZeroMQ messages, each waking two I/O threads and the receiver, into
a few; order per peer is kept.  A message that cannot be routed when the
batch leaves (an unknown or departed ROUTER peer) is counted in
``stats["dropped"]``.

A DEALER's routing id is 24 random bytes, new with every socket
(:data:`ROUTING_ID_BYTES`): ZeroMQ's own ids are sequential, and a ROUTER hands an id
over to the newest connection claiming it, so a guessable id would let a peer take
another's connection (and the principal authenticated on it) over.

Thread-safety: none.  Create, use and close both classes on the event loop's
thread only.

Received bytes are decoded with :func:`mesoslite.protocol.decode`; a frame
that fails to decode is counted (``stats["decode_errors"]``), logged once per
peer and type of fault, and never reaches the handler; a ROUTER answers at most
one ``ProtocolError`` per received frame (naming the first fault and how many
more there were), and per peer a burst of :data:`ERROR_BURST` answers, then
:data:`ERROR_RATE` a second.  A frame
carries at most ``MAX_ENVELOPES_PER_FRAME`` envelopes, and a wake-up's budget
counts envelopes, so a frame packed with garbage costs bounded work and the
loop gets its turn.  Handlers are plain callables run
on the loop; an exception in a handler is logged and counted, never fatal.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, cast

import zmq

from mesoslite.protocol import (
    MAX_MESSAGE_SIZE,
    DecodeError,
    EncodeError,
    ProtocolError,
    decode_frame,
    encode,
    join_frames,
)
from mesoslite.transport.curve import CurveClientKeys, CurveServerKeys

log = logging.getLogger("mesoslite.transport")

ServerHandler = Callable[[bytes, Any], None]
ClientHandler = Callable[[Any], None]

#: Bounded send queue per socket (messages) before ZeroMQ itself pushes back.
SEND_HWM = 200_000
RECV_HWM = 200_000
#: pyzmq's flags as plain ints: combining its enum flags builds enum objects, a cost on
#: every message at tens of thousands of messages a second.
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_NOBLOCK = int(zmq.NOBLOCK)
#: Longest a socket handles input in one turn of the loop before yielding (seconds).
TURN_SECONDS = 0.02
#: Frames between the message limit and this multiple of it are refused and
#: counted; larger ones make ZeroMQ drop the connection unread.
HARD_FRAME_FACTOR = 2


def tcp_endpoint(address: str) -> str:
    """Turn ``host:port`` (or a full ``tcp://`` URL) into a ZeroMQ endpoint."""
    if "://" in address:
        return address
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    return f"tcp://{host}:{int(port)}"


class _Stats(collections.Counter[str]):
    """Counters: received, sent, decode_errors, handler_errors, dropped, ..."""


class _LoopSocket:
    """Common plumbing: a sync zmq socket whose FD is watched by the loop."""

    def __init__(self, kind: int, name: str, max_message_size: int) -> None:
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._max = max_message_size
        self._sock = self._new_socket(kind)
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._check_scheduled = False
        self._closed = False
        self._outbox: collections.deque[list[bytes]] = collections.deque()
        # Encoded envelopes waiting for the end of this loop turn, per destination
        # (a ROUTER peer id; None for a DEALER's one server), in order.
        self._pending: dict[bytes | None, list[bytes]] = {}
        self._flush_scheduled = False
        self._barrier: Callable[[], Any] | None = None
        self._logged_faults: set[tuple[Any, str]] = set()
        self._error_tokens: dict[bytes, tuple[float, float]] = {}
        self.stats: _Stats = _Stats()

    def _new_socket(self, kind: int) -> zmq.Socket[bytes]:
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, SEND_HWM)
        sock.setsockopt(zmq.RCVHWM, RECV_HWM)
        # Frames up to twice the message limit are read, then refused by the
        # decoder with an answer and a count; past that ZeroMQ closes the
        # peer's connection without reading the frame (memory protection).
        sock.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_FACTOR * self._max + 4096)
        return sock

    def start(self) -> None:
        """Start receiving; call from a coroutine on the event loop."""
        self._watch()

    def _encode(self, msg: Any) -> bytes | None:
        try:
            return encode(msg, self._max)
        except EncodeError as exc:
            log.error("%s: cannot send %s: %s", self._name, type(msg).__name__, exc)
            self.stats["encode_errors"] += 1
            return None

    def _watch(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._on_ready)
        self._schedule_check()

    def _schedule_check(self) -> None:
        # ZeroMQ's FD is edge-triggered: after any send/recv, events may be
        # pending without the FD signalling again, so check once more soon.
        if not self._check_scheduled and self._loop is not None and not self._closed:
            self._check_scheduled = True
            self._loop.call_soon(self._on_ready)

    def _on_ready(self) -> None:
        self._check_scheduled = False
        if self._closed:
            return
        sock = self._sock
        budget = 5000  # yield to the loop now and then under heavy load
        # ... and after TURN_SECONDS at most, so timers and other sockets are not starved.
        deadline = time.perf_counter() + TURN_SECONDS
        turns = 0
        while budget > 0:
            try:
                events = cast(int, sock.getsockopt(zmq.EVENTS))
            except zmq.ZMQError:
                return
            progressed = False
            if events & _POLLOUT and self._outbox:
                self._flush()
                progressed = True
            cost = 1
            if events & _POLLIN:
                try:
                    frames = sock.recv_multipart(_NOBLOCK, copy=True)
                except zmq.Again:
                    frames = None
                if frames is not None:
                    self.stats["frames_received"] += 1
                    # A frame of many envelopes costs more of the budget: the loop gets a
                    # turn after a few big frames, not after 5000 of them.
                    cost += self._dispatch(frames) // ENVELOPES_PER_BUDGET_UNIT
                    progressed = True
            if not progressed:
                return
            budget -= cost
            turns += 1
            if turns % 32 == 0 and time.perf_counter() > deadline:
                break
        self._schedule_check()

    def _queue(self, key: bytes | None, data: bytes) -> bool:
        """Queue one encoded envelope for ``key``'s frame at the end of this loop turn."""
        if self._closed:
            self.stats["dropped"] += 1
            return False
        if self._loop is None:  # not started yet: no loop turn to wait for
            return self._send_frames(self._frames_for(key, data))
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = [data]
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush_pending)
        else:
            pending.append(data)
        return True

    def set_flush_barrier(self, barrier: Callable[[], Any] | None) -> None:
        """Run ``barrier()`` each time before queued messages are handed to ZeroMQ.

        The agent makes its checkpoint durable there, so that nothing it sends
        gets ahead of the records it depends on.  When the barrier fails (returns
        False or raises), nothing is sent: the queued messages are held, in order, and
        the flush is tried again every :data:`BARRIER_RETRY` seconds (messages queued
        meanwhile join them), counted in ``stats["held"]``.
        """
        self._barrier = barrier

    def _flush_pending(self, receive: bool = True) -> None:
        """Send what this loop turn queued: one frame per destination (split by size).

        With ``receive``, input that arrived meanwhile is handled right after.
        """
        self._flush_scheduled = False
        if not self._pending:
            return
        if self._barrier is not None and not self._barrier_holds():
            self.stats["held"] += 1
            if self._loop is not None and not self._closed:
                self._flush_scheduled = True
                self._loop.call_later(BARRIER_RETRY, self._flush_pending)
            return
        pending, self._pending = self._pending, {}
        for key, envelopes in pending.items():
            for data in join_frames(envelopes, self._max):
                self._send_frames(self._frames_for(key, data), check=False)
            self.stats["sent"] += len(envelopes)
        if receive:
            # Sending may have consumed the edge of ZeroMQ's FD: look for input
            # now rather than one loop turn later.
            self._on_ready()

    def _barrier_holds(self) -> bool:
        """Run the barrier: True when the queued messages may go."""
        assert self._barrier is not None
        try:
            return self._barrier() is not False
        except Exception:
            log.exception("%s: flush barrier failed; holding the messages", self._name)
            return False

    def _frames_for(self, key: bytes | None, data: bytes) -> list[bytes]:
        return [data] if key is None else [key, data]

    def _send_frames(self, frames: list[bytes], check: bool = True) -> bool:
        if self._closed:
            self.stats["dropped"] += 1
            return False
        if self._outbox:
            self._outbox.append(frames)
            return True
        try:
            self._sock.send_multipart(frames, _NOBLOCK)
        except zmq.Again:
            self._outbox.append(frames)
        except zmq.ZMQError as exc:
            self.stats["dropped"] += 1
            log.debug("%s: send failed: %s", self._name, exc)
            return False
        self.stats["frames_sent"] += 1
        if check:
            self._schedule_check()
        return True

    def _flush(self) -> None:
        while self._outbox:
            try:
                self._sock.send_multipart(self._outbox[0], _NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:
                self.stats["dropped"] += 1
            self._outbox.popleft()

    def _log_fault_once(self, peer: Any, fault: str, detail: str) -> None:
        key = (peer, fault)
        if key not in self._logged_faults and len(self._logged_faults) < 10_000:
            self._logged_faults.add(key)
            log.warning("%s: refused a message from %r: %s", self._name, peer, detail)

    def _dispatch(self, frames: list[bytes]) -> int:
        """Handle one received message; return how many envelopes it held."""
        raise NotImplementedError

    def close(self, linger: float = 0.0) -> None:
        """Stop watching and close the socket.

        Messages queued in this loop turn are handed to ZeroMQ first.  With
        ``linger`` > 0, messages ZeroMQ still holds keep going out in the
        background for up to that many seconds; otherwise they are dropped.
        """
        if self._closed:
            return
        self._flush_pending(receive=False)
        self._closed = True
        if self._loop is not None:
            try:
                self._loop.remove_reader(self._sock.fileno())
            except (zmq.ZMQError, ValueError, RuntimeError):
                pass
        self._sock.close(linger=int(linger * 1000))


#: Seconds between two tries to flush messages held by a failing flush barrier.
BARRIER_RETRY = 1.0
#: ProtocolError answers one peer may get at once, and per second after that (more
#: faults are only counted, in ``stats["errors_unanswered"]``).
ERROR_BURST = 100
ERROR_RATE = 10.0
#: Envelopes decoded per unit of a wake-up's budget (a wake-up has 5000 units).
ENVELOPES_PER_BUDGET_UNIT = 50

#: A DEALER's routing id: a fixed first byte (ids starting with 0 are ZeroMQ's own)
#: and random bytes, unguessable.
ROUTING_ID_PREFIX = b"\x01"
ROUTING_ID_BYTES = 24

#: The listen queue of a bound socket (the kernel caps it at net.core.somaxconn).
LISTEN_BACKLOG = 4096


class RouterServer(_LoopSocket):
    """A ROUTER socket bound to an endpoint; peers are identified by bytes ids.

    ``handler(peer, message)`` is called for every valid message.  Replies go
    back with :meth:`send` using the same peer id.
    """

    def __init__(
        self,
        endpoint: str,
        handler: ServerHandler,
        *,
        name: str = "router",
        curve: CurveServerKeys | None = None,
        max_message_size: int = MAX_MESSAGE_SIZE,
    ) -> None:
        super().__init__(zmq.ROUTER, name, max_message_size)
        self._handler = handler
        self._sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self._sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # A new leading master is dialled by every agent at once: with ZeroMQ's default
        # listen backlog (100) most connections would overflow it and retry ~1 s later.
        self._sock.setsockopt(zmq.BACKLOG, LISTEN_BACKLOG)
        self._curve = curve
        if curve is not None:
            curve.apply(self._sock)
        self._sock.bind(endpoint)
        self.endpoint: str = self._sock.get_string(zmq.LAST_ENDPOINT)

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with port 0)."""
        return int(self.endpoint.rsplit(":", 1)[1])

    def send(self, peer: bytes, msg: Any) -> bool:
        """Send a message to a peer; False when it could not be queued."""
        data = self._encode(msg)
        return data is not None and self._queue(peer, data)

    def send_encoded(self, peer: bytes, data: bytes) -> bool:
        """Send bytes already produced by :func:`encode` (to fan one message out)."""
        return self._queue(peer, data)

    def _send_frames(self, frames: list[bytes], check: bool = True) -> bool:
        try:
            return super()._send_frames(frames, check)
        except zmq.ZMQError:
            return False

    def _flush(self) -> None:
        try:
            super()._flush()
        except zmq.ZMQError:
            self._outbox.clear()

    def _answer_fault(self, peer: bytes, first: DecodeError, count: int) -> None:
        """One ProtocolError per frame; per peer a burst of ERROR_BURST, then ERROR_RATE/s."""
        now = time.monotonic()
        tokens, last = self._error_tokens.get(peer, (float(ERROR_BURST), now))
        tokens = min(float(ERROR_BURST), tokens + (now - last) * ERROR_RATE)
        if len(self._error_tokens) >= 10_000:
            self._error_tokens.clear()
        if tokens < 1.0:
            self._error_tokens[peer] = (tokens, now)
            self.stats["errors_unanswered"] += 1
            return
        self._error_tokens[peer] = (tokens - 1.0, now)
        more = f" (and {count - 1} more faults in this frame)" if count > 1 else ""
        self.send(peer, ProtocolError(message=str(first)[:500] + more, field=first.field))

    def _dispatch(self, frames: list[bytes]) -> int:
        peer = frames[0]
        if len(frames) != 2:
            self.stats["decode_errors"] += 1
            self._log_fault_once(peer, "frames", f"{len(frames) - 1} body frames, expected 1")
            self._answer_fault(peer, DecodeError("frame", "expected exactly one body frame"), 1)
            return 1
        stats = self.stats
        items = decode_frame(frames[1], self._max)
        first: DecodeError | None = None
        faults = 0
        for msg in items:
            if isinstance(msg, DecodeError):
                stats["decode_errors"] += 1
                faults += 1
                if first is None:
                    first = msg
                    self._log_fault_once(peer, msg.field, str(msg))
                continue
            stats["received"] += 1
            stats["msg." + type(msg).__name__] += 1
            try:
                self._handler(peer, msg)
            except Exception:
                stats["handler_errors"] += 1
                log.exception("%s: handler failed on %s", self._name, type(msg).__name__)
        if first is not None:
            self._answer_fault(peer, first, faults)
        return len(items)


class DealerClient(_LoopSocket):
    """A DEALER socket connected to one server endpoint at a time.

    ZeroMQ reconnects by itself after a drop; :meth:`connect` moves the
    client to another endpoint (a new leader) with a fresh socket identity.
    """

    def __init__(
        self,
        handler: ClientHandler,
        *,
        name: str = "dealer",
        curve: CurveClientKeys | None = None,
        max_message_size: int = MAX_MESSAGE_SIZE,
        reconnect_ivl_ms: int = 100,
        reconnect_ivl_max_ms: int = 2000,
    ) -> None:
        super().__init__(zmq.DEALER, name, max_message_size)
        self._handler = handler
        self._curve = curve
        self._reconnect = (reconnect_ivl_ms, reconnect_ivl_max_ms)
        #: This socket's routing id as the server sees it (new with every socket).
        self.identity = b""
        self._configure(self._sock)
        self.endpoint: str | None = None

    def _configure(self, sock: zmq.Socket[bytes]) -> None:
        # A random routing id per socket: ZeroMQ's own ids are sequential, and a peer
        # that guessed one could take the connection over (the ROUTER hands an id over
        # to its newest connection); a session authenticated on this id is bound to it.
        self.identity = ROUTING_ID_PREFIX + secrets.token_bytes(ROUTING_ID_BYTES - 1)
        sock.setsockopt(zmq.ROUTING_ID, self.identity)
        sock.setsockopt(zmq.RECONNECT_IVL, self._reconnect[0])
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, self._reconnect[1])
        if self._curve is not None:
            self._curve.apply(sock)

    def connect(self, endpoint: str) -> None:
        """Connect (or move) to ``endpoint``; queued messages go to the new peer."""
        endpoint = tcp_endpoint(endpoint)
        if self.endpoint is not None:
            # A fresh socket: stale queued frames must not reach the new peer
            # under the old identity.
            was_watching = self._loop is not None
            self._pending.clear()
            self.close()
            self._closed = False
            self._sock = self._new_socket(zmq.DEALER)
            self._configure(self._sock)
            self._outbox.clear()
            self._sock.connect(endpoint)
            self.endpoint = endpoint
            if was_watching:
                self._watch()
            return
        self._sock.connect(endpoint)
        self.endpoint = endpoint

    def send(self, msg: Any) -> bool:
        """Queue a message for the server; False when it could not be queued."""
        data = self._encode(msg)
        return data is not None and self._queue(None, data)

    def _dispatch(self, frames: list[bytes]) -> int:
        if len(frames) != 1:
            self.stats["decode_errors"] += 1
            self._log_fault_once(None, "frames", f"{len(frames)} frames, expected 1")
            return 1
        stats = self.stats
        items = decode_frame(frames[0], self._max)
        for msg in items:
            if isinstance(msg, DecodeError):
                stats["decode_errors"] += 1
                self._log_fault_once(None, msg.field, str(msg))
                continue
            stats["received"] += 1
            stats["msg." + type(msg).__name__] += 1
            try:
                self._handler(msg)
            except Exception:
                stats["handler_errors"] += 1
                log.exception("%s: handler failed on %s", self._name, type(msg).__name__)
        return len(items)
