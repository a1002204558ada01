"""Reading the Marathon-style framework's REST API: the apps, and the event stream.

Owns: :func:`fetch_apps` (``GET /v2/apps?embed=apps.tasks&embed=apps.readiness``) and
:class:`EventStream`, a client of ``GET /v2/events`` (server-sent events) for the events
that can change routing (:data:`EVENT_TYPES`), on its own thread: it follows one redirect
(a standby points at the leader), reconnects with a backoff (1 s doubling to 30 s, from 1 s
again after a stream that worked), and reopens a stream silent for ``silence`` seconds
(the server sends keep-alive comments, so silence means a dead connection).  It calls
``on_connect`` after every (re)connection and ``on_event`` for each well-formed event,
from its thread; a malformed event is logged and skipped.  Both send the environment's
credentials (:func:`request_headers`) to a framework that authenticates (its
``--http_credentials``).
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from mesoslite.httpguard.client import basic_authorization

log = logging.getLogger("mesoslite.lb")

#: The event types that can change what haproxy should route to.
EVENT_TYPES = ("api_post_event", "status_update_event", "health_status_changed_event")
#: Seconds without a byte on the event stream after which it is reopened.
SILENCE_SECONDS = 300.0


def request_headers(accept: str) -> dict[str, str]:
    """``Accept``, and the environment's credentials (``MESOSLITE_PRINCIPAL`` with
    ``MESOSLITE_SECRET`` or ``MESOSLITE_SECRET_FILE``) for a framework that authenticates."""
    headers = {"Accept": accept}
    authorization = basic_authorization()
    if authorization is not None:
        headers["Authorization"] = authorization
    return headers


def fetch_apps(marathon: str, timeout: float = 10.0) -> Any:
    """``GET /v2/apps?embed=apps.tasks&embed=apps.readiness``: its ``apps`` list."""
    url = f"{marathon.rstrip('/')}/v2/apps?embed=apps.tasks&embed=apps.readiness"
    request = urllib.request.Request(url, headers=request_headers("application/json"))
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = json.loads(response.read())
    if not isinstance(body, dict) or "apps" not in body:
        raise ValueError(f"GET {url}: expected an object with 'apps', got {str(body)[:80]}")
    return body["apps"]


class EventStream:
    """Reads Marathon's SSE stream and calls ``on_event`` (and ``on_connect``) for each."""

    def __init__(self, marathon: str, on_connect: Callable[[], None],
                 on_event: Callable[[dict[str, Any]], None],
                 silence: float = SILENCE_SECONDS) -> None:
        """Stream from ``marathon``'s ``/v2/events`` once :meth:`run_forever` runs."""
        query = urllib.parse.urlencode([("event_type", t) for t in EVENT_TYPES])
        self.url = f"{marathon.rstrip('/')}/v2/events?{query}"
        self.on_connect, self.on_event, self.silence = on_connect, on_event, silence
        self.connected = False

    def run_forever(self, stop: threading.Event) -> None:
        """Stream, and reconnect with a backoff (1 s doubling to 30 s) when the stream ends."""
        backoff = 1.0
        while not stop.is_set():
            self.connected = False
            try:
                self._stream()
                problem = "ended"
            except (OSError, http.client.HTTPException, ValueError) as exc:
                problem = str(exc) or type(exc).__name__
            if self.connected:  # it worked for a while: start the backoff afresh
                backoff = 1.0
            log.warning("event stream: %s; reconnecting in %.0f s", problem, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)

    def _open(self, url: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        parts = urllib.parse.urlsplit(url)
        kind = http.client.HTTPSConnection if parts.scheme == "https" else \
            http.client.HTTPConnection
        conn = kind(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(self.silence)  # a read waits at most this long for a byte
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path, headers=request_headers("text/event-stream"))
        return conn, conn.getresponse()

    def _stream(self) -> None:
        conn, response = self._open(self.url)
        try:
            if response.status in (301, 302, 303, 307, 308):  # a standby: follow once
                location = response.getheader("Location") or ""
                conn.close()
                log.info("event stream redirected to %s", location)
                conn, response = self._open(urllib.parse.urljoin(self.url, location))
            if response.status != 200:
                raise ValueError(f"GET /v2/events answered {response.status} {response.reason}")
            log.info("event stream connected")
            self.connected = True
            self.on_connect()
            kind, data = "message", []
            while True:
                raw = response.readline(1 << 20)
                if not raw:
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith(":"):
                    continue  # keep-alive comment
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif line == "" and data:
                    self._dispatch(kind, "\n".join(data))
                    kind, data = "message", []
        finally:
            conn.close()

    def _dispatch(self, kind: str, data: str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            log.warning("event %s: data is not JSON: %r", kind, data[:80])
            return
        if not isinstance(event, dict) or not isinstance(event.get("eventType"), str):
            log.warning("event %s: data must be an object with a string eventType", kind)
            return
        self.on_event(event)
