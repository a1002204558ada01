"""A RecordIO event stream on a long-lived HTTP response, with a bounded send buffer.

Owns: :class:`RecordStream` (JSON events framed as RecordIO, written as chunks; a reader
that lets more than ``max_buffer`` bytes pile up is disconnected, never buffered without
limit), and :class:`JsonApiHandler`, the base of the v1 handlers (JSON bodies up to a
limit, JSON errors naming the field, gzip on ``Accept-Encoding: gzip``, 307/503 towards
the leading master).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

import tornado.iostream
import tornado.web

from mesoslite.api.recordio import encode
from mesoslite.api.v1json import obj, text

log = logging.getLogger("mesoslite.api")

#: Bytes a stream may hold unsent before its reader is deemed too slow and disconnected.
DEFAULT_MAX_BUFFER = 8 * 1024 * 1024
#: Largest call body accepted (bytes); a bigger one is answered 413.
MAX_CALL_BODY = 8 * 1024 * 1024
#: Replies shorter than this are not compressed.
GZIP_MIN_BYTES = 1024

# ASCII only: a record's length in bytes is then its length in characters too (some
# clients count characters of the decoded text).
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def dumps(value: Any) -> bytes:
    """Compact JSON bytes (non-ASCII characters escaped)."""
    return _dumps(value).encode()


class RecordStream:
    """RecordIO events on ``handler``'s open response; closes itself on a slow reader."""

    def __init__(self, handler: tornado.web.RequestHandler,
                 max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        """Write on ``handler`` (headers already set); nothing is sent until :meth:`send`."""
        self.handler = handler
        self.max_buffer = max_buffer
        self.pending = 0
        self.sent = 0
        self.closed = asyncio.Event()
        self.why = ""
        self.on_close: list[Callable[[], None]] = []
        self._unflushed = 0
        self._flush_soon = False

    def send(self, event: Any) -> bool:
        """Write one event (a JSON value, or JSON bytes); False once the stream is closed.

        Events written in one turn of the loop leave in one flush (one write).
        """
        if self.closed.is_set():
            return False
        data = encode(event if isinstance(event, bytes) else dumps(event))
        if self.pending + len(data) > self.max_buffer:
            self.close(f"the reader is too slow: over {self.max_buffer} bytes unread",
                       drop=True)
            return False
        try:
            self.handler.write(data)
        except RuntimeError:  # finished already
            self.close("the connection closed")
            return False
        self.pending += len(data)
        self._unflushed += len(data)
        self.sent += 1
        if not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)
        return True

    def _flush(self) -> None:
        self._flush_soon = False
        if self.closed.is_set() or not self._unflushed:
            return
        size, self._unflushed = self._unflushed, 0
        try:
            future = self.handler.flush()
        except (tornado.iostream.StreamClosedError, RuntimeError):
            self.close("the connection closed")
            return
        future.add_done_callback(lambda f: self._written(f, size))

    def _written(self, future: asyncio.Future[None], size: int) -> None:
        self.pending -= size
        if future.cancelled() or future.exception() is not None:
            self.close("the connection closed")

    def close(self, why: str, drop: bool = False) -> None:
        """End the stream (idempotent): finish the response and run the ``on_close`` hooks.

        ``drop``: a slow reader; what it has not read is dropped with the connection.
        """
        if self.closed.is_set():
            return
        self.why = why
        self.closed.set()
        if why and "closed" not in why:
            log.info("event stream to %s ended: %s", self.handler.request.remote_ip, why)
        for hook in self.on_close:
            try:
                hook()
            except Exception:
                log.exception("stream close hook failed")
        conn = self.handler.request.connection
        stream = getattr(conn, "stream", None)
        if stream is not None and drop:
            stream.close()  # a slow reader: drop what it did not read
            return
        if not self.handler._finished:
            try:
                self.handler.finish()
            except Exception:  # noqa: BLE001 - the connection may be gone already
                log.debug("finishing a closed stream failed")


class ApiError(Exception):
    """A call answered with ``status`` and ``{"message", "field"}``."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


@tornado.web.stream_request_body
class JsonApiHandler(tornado.web.RequestHandler):
    """POST handlers of the v1 APIs: bounded JSON bodies, JSON errors, gzip."""

    max_body = MAX_CALL_BODY
    #: Called when the client closes the connection while a streamed answer runs.
    hangup: Callable[[], None] | None = None

    def on_connection_close(self) -> None:
        """The client went away: run :attr:`hangup` (a stream's cleanup) if one is set."""
        super().on_connection_close()
        if self.hangup is not None:
            self.hangup()

    def prepare(self) -> None:
        """Accept bodies up to ``max_body`` (counted here; a bigger one is answered 413)."""
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_big = False
        if self.request.method == "POST" and self.request.connection is not None:
            set_max = getattr(self.request.connection, "set_max_body_size", None)
            if set_max is not None:
                set_max(self.max_body * 8)

    def data_received(self, chunk: bytes) -> None:
        """Keep the body while it is within the limit."""
        self._size += len(chunk)
        if self._size > self.max_body:
            self._too_big = True
            self._chunks = []
        else:
            self._chunks.append(chunk)

    def compute_etag(self) -> str | None:
        """No ETag on API answers."""
        return None

    def json_body(self) -> Any:
        """The request body as JSON (ApiError 413/415/400 otherwise)."""
        if self._too_big:
            raise ApiError(413, "body", f"the body is over {self.max_body} bytes")
        ctype = self.request.headers.get("Content-Type", "application/json").split(";")[0]
        if ctype.strip().lower() not in ("application/json", ""):
            raise ApiError(415, "Content-Type",
                           f"expected application/json, got {ctype[:60]!r} "
                           "(protobuf is not supported)")
        accept = self.request.headers.get("Accept", "application/json")
        if not any(kind in accept for kind in ("application/json", "*/*",
                                               "application/recordio")):
            raise ApiError(406, "Accept", f"only application/json is served, not {accept[:60]!r}")
        body = b"".join(self._chunks)
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "body", f"expected a JSON object: {exc}") from None

    def operator_call(self, supported: Collection[str], unsupported: Mapping[str, str]
                      ) -> tuple[str, dict[str, Any]]:
        """The body's call ``type`` and the body: 501 naming a call we do not support, 400
        naming an unknown type or a field that belongs to no part of this call."""
        body = obj(self.json_body(), "")
        kind = text(body.get("type"), "type", empty=False)
        if kind in unsupported:
            raise ApiError(501, "type", f"{kind}: {unsupported[kind]}")
        if kind not in supported:
            raise ApiError(400, "type", f"unknown call type {kind[:60]!r}")
        for key in body:
            if key not in ("type", kind.lower()):
                raise ApiError(400, key, f"does not belong in a {kind} call")
        return kind, body

    def answer(self, value: Any, status: int = 200) -> None:
        """Answer JSON (gzipped when asked and worth it)."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        data = dumps(value)
        if len(data) >= GZIP_MIN_BYTES and "gzip" in self.request.headers.get(
                "Accept-Encoding", ""):
            data = gzip.compress(data, 5)
            self.set_header("Content-Encoding", "gzip")
        self.finish(data)

    def refuse(self, error: ApiError) -> None:
        """Answer an ApiError."""
        self.set_status(error.status)
        self.set_header("Content-Type", "application/json")
        self.finish(dumps({"message": error.message, "field": error.field}))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Unexpected errors are JSON too."""
        self.set_header("Content-Type", "application/json")
        self.finish(dumps({"message": self._reason, "field": ""}))
