"""What every ``mesoslite ctl`` command shares: errors, HTTP calls, tables and a status line.

Owns :class:`CtlError` (a failure told to the user, exit status 1) and
:class:`HttpError` (an error status from a server), :func:`http_url` (``host:port``
or a URL to a base URL), :func:`request` and :func:`get_json` (HTTP with the
standard library only), :func:`format_table` and :func:`format_number` (aligned
text tables), and :class:`StatusLine` (a status redrawn in place on a terminal,
one line per change otherwise).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

from mesoslite.httpguard.client import basic_authorization as env_authorization

#: Seconds an HTTP call may take.
HTTP_TIMEOUT = 10.0


class CtlError(Exception):
    """A failure to report to the user (exit status 1)."""


class HttpError(CtlError):
    """A server answered ``status``; ``raw`` is its body."""

    def __init__(self, url: str, status: int, raw: bytes) -> None:
        self.url = url
        self.status = status
        self.raw = raw
        super().__init__(f"{url}: HTTP {status} {raw.decode('utf-8', 'replace')[:300]}")


def guarded(action: Callable[[], int | None], out: TextIO) -> int:
    """Run one ctl command: its exit status (0 for None); 1 with the message of a
    :class:`CtlError` on stderr (after what ``out`` holds); 130 on Ctrl-C."""
    try:
        status = action()
    except CtlError as exc:
        out.flush()
        print(f"mesoslite ctl: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status or 0


def http_url(address: str) -> str:
    """Normalise ``host:port`` or a URL to an ``http://`` base URL without trailing slash."""
    address = address.strip().rstrip("/")
    if "://" not in address:
        address = "http://" + address
    return address


def request(url: str, method: str = "GET", body: Any = None, *, timeout: float = HTTP_TIMEOUT,
            unreachable_hint: str = "") -> tuple[bytes, dict[str, str]]:
    """Send one request (``body``, if not None, as JSON), following redirects.

    Returns the raw answer and its lower-cased headers; :class:`HttpError` on an
    error status, :class:`CtlError` (with ``unreachable_hint`` appended) when the
    server cannot be reached.
    """
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    authorization = basic_authorization()
    if authorization:
        req.add_header("Authorization", authorization)
    if data is not None or method in ("POST", "PUT", "PATCH"):  # servers refuse other writes
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.read(), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        raise HttpError(url, exc.code, exc.read()) from None
    except (urllib.error.URLError, OSError) as exc:
        raise CtlError(f"{url}: cannot connect ({getattr(exc, 'reason', exc)})"
                       f"{unreachable_hint}") from None


def basic_authorization(env: Mapping[str, str] | None = None) -> str | None:
    """``Basic ...`` from ``MESOSLITE_PRINCIPAL`` and ``MESOSLITE_SECRET`` (or
    ``MESOSLITE_SECRET_FILE``), None when no principal is set; CtlError when incomplete
    (:func:`mesoslite.httpguard.client.basic_authorization`)."""
    try:
        return env_authorization(env)
    except ValueError as exc:
        raise CtlError(str(exc)) from None


def get_json(url: str, timeout: float = HTTP_TIMEOUT) -> Any:
    """GET a JSON document, following redirects; CtlError on any failure."""
    raw, _headers = request(url, timeout=timeout)
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        raise CtlError(f"{url}: the answer is not JSON") from None


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Render rows as an aligned text table."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    return "\n".join(lines)


def format_number(value: Any) -> str:
    """A number for a table: ``2.0`` as ``2``, ``None`` as empty."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


class StatusLine:
    """Writes a changing status to ``out``: redrawn in place on a terminal (``tty``),
    one line per change otherwise."""

    def __init__(self, out: TextIO, tty: bool) -> None:
        self.out = out
        self.tty = tty
        self._last: str | None = None
        self._open = False

    def show(self, on_terminal: str, on_pipe: str) -> None:
        """Show the status (``on_terminal`` or ``on_pipe``); nothing when it reads as before."""
        text = on_terminal if self.tty else on_pipe
        if text == self._last:
            return
        self._last = text
        if self.tty:
            self.out.write("\r" + text + "\x1b[K")
            self._open = True
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """A message on a line of its own."""
        self.close()
        self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        """End the status's line (on a terminal)."""
        if self._open:
            self.out.write("\n")
            self._open = False
