"""A Mesos v1 HTTP client written only with the standard library (http.client, json).

Used by the v1 API tests in two ways: imported (calls run on a thread, so an
in-process master keeps its loop) and run as a script (``python v1http.py ...``
is the scheduler of the process-level tests; it imports nothing of mesoslite).
"""

from __future__ import annotations

import base64
import http.client
import json
import queue
import threading
import urllib.parse
from typing import Any


def split(url: str) -> tuple[str, int]:
    """``http://host:port`` or ``host:port`` as (host, port)."""
    parsed = urllib.parse.urlsplit(url if "//" in url else f"//{url}")
    return parsed.hostname or "127.0.0.1", parsed.port or 5050


def post(url: str, path: str, body: Any, headers: dict[str, str] | None = None,
         timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """POST a JSON body (or raw bytes); return status, headers and body."""
    host, port = split(url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", "Accept": "application/json"}
    all_headers.update(headers or {})
    try:
        conn.request("POST", path, data, all_headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def get(url: str, path: str, timeout: float = 30.0) -> bytes:
    """GET a path; the body (AssertionError unless 200)."""
    host, port = split(url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, (path, response.status, body[:200])
        return body
    finally:
        conn.close()


class EventStream:
    """A SUBSCRIBE stream read on a thread: records arrive on ``events`` (a queue)."""

    def __init__(self, url: str, path: str, call: dict[str, Any], timeout: float = 60.0) -> None:
        """Open the stream; ``status``, ``headers`` and ``stream_id`` are set once open."""
        host, port = split(url)
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self.conn.request("POST", path, json.dumps(call).encode(),
                          {"Content-Type": "application/json", "Accept": "application/json"})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = dict(self.response.getheaders())
        self.stream_id = self.response.getheader("Mesos-Stream-Id", "")
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        if self.status == 200:
            self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                line = b""
                while not line.endswith(b"\n"):
                    ch = self.response.read(1)
                    if not ch:
                        raise EOFError
                    line += ch
                size = int(line)
                record = self.response.read(size)
                if len(record) < size:
                    raise EOFError
                self.events.put(json.loads(record))
        except (EOFError, OSError, ValueError, AttributeError, http.client.HTTPException):
            # (AttributeError: http.client reading a response whose connection was closed)
            self.events.put(None)

    def next(self, kinds: tuple[str, ...] = (), timeout: float = 30.0) -> dict[str, Any]:
        """The next event (of one of ``kinds`` when given; others are skipped)."""
        while True:
            event = self.events.get(timeout=timeout)
            if event is None:
                raise EOFError("the stream ended")
            if not kinds or event.get("type") in kinds:
                return event

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def b64(data: bytes) -> str:
    """Base64 text."""
    return base64.b64encode(data).decode()
