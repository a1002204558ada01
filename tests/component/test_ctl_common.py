"""The helpers every ``mesoslite ctl`` command shares, against a real HTTP server on loopback."""

from __future__ import annotations

import http.server
import io
import json
import threading
from collections.abc import Iterator

import pytest

from mesoslite.ctl.apps_api import MarathonApiError, MarathonClient
from mesoslite.ctl.common import (
    CtlError,
    HttpError,
    StatusLine,
    format_number,
    format_table,
    get_json,
    http_url,
    request,
)
from tests.support.procs import free_port


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers /ok with JSON, /text with plain text, /missing with 404 and JSON, echoes POST."""

    def do_GET(self) -> None:
        """Serve the three GET paths."""
        answers = {"/ok": (200, b'{"hello": "world"}'), "/text": (200, b"not json"),
                   "/missing": (404, b'{"message": "App \'/x\' does not exist"}')}
        status, body = answers.get(self.path, (500, b"boom"))
        self._answer(status, body)

    def do_POST(self) -> None:
        """Echo the JSON body and its content type."""
        length = int(self.headers.get("Content-Length", "0"))
        echoed = {"got": json.loads(self.rfile.read(length)),
                  "type": self.headers.get("Content-Type")}
        self._answer(201, json.dumps(echoed).encode(), {"Marathon-Deployment-Id": "d-1"})

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        """Quiet."""


@pytest.fixture
def server() -> Iterator[str]:
    """A real HTTP server on a free loopback port; yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def test_get_json_reads_json_and_names_each_failure(server: str) -> None:
    """JSON is decoded; an error status, a non-JSON answer and no server are CtlErrors."""
    assert get_json(f"{server}/ok") == {"hello": "world"}
    with pytest.raises(HttpError) as caught:
        get_json(f"{server}/missing")
    assert caught.value.status == 404
    assert str(caught.value).startswith(f"{server}/missing: HTTP 404 {{\"message\"")
    with pytest.raises(CtlError, match="the answer is not JSON"):
        get_json(f"{server}/text")
    with pytest.raises(CtlError, match=r"cannot connect .*; try again"):
        request(f"http://127.0.0.1:{free_port()}/ok", unreachable_hint="; try again")


def test_marathon_client_sends_json_and_reads_headers(server: str) -> None:
    """The app API client posts JSON, lower-cases headers and turns 404 into MarathonApiError."""
    client = MarathonClient(server.removeprefix("http://"))
    answer, headers = client.request("POST", "/v2/apps", {"id": "/web"})
    assert answer == {"got": {"id": "/web"}, "type": "application/json"}
    assert headers["marathon-deployment-id"] == "d-1"
    with pytest.raises(MarathonApiError) as caught:
        client.request("GET", "/missing")
    assert caught.value.status == 404
    assert "GET /missing: HTTP 404: App '/x' does not exist" in str(caught.value)
    with pytest.raises(CtlError, match="is the framework running"):
        MarathonClient(f"127.0.0.1:{free_port()}").request("GET", "/v2/apps")


def test_tables_numbers_and_addresses() -> None:
    """Tables align columns; 2.0 prints as 2; host:port becomes an http:// base URL."""
    assert format_table(("A", "BB"), [("x", None), ("long", 2)]).splitlines() == [
        "A     BB", "x", "long  2"]
    assert (format_number(2.0), format_number(0.5), format_number(None)) == ("2", "0.5", "")
    assert http_url(" h:5050/ ") == "http://h:5050"
    assert http_url("https://h") == "https://h"


def test_status_line_redraws_on_a_terminal_and_appends_otherwise() -> None:
    """On a terminal the status is redrawn in place; in a pipe, one line per change."""
    tty, pipe = io.StringIO(), io.StringIO()
    for out, is_tty in ((tty, True), (pipe, False)):
        line = StatusLine(out, is_tty)
        for _ in range(2):
            line.show("[#-] one", "one")
        line.show("[##] two", "two")
        line.note("done")
    assert tty.getvalue() == "\r[#-] one\x1b[K\r[##] two\x1b[K\ndone\n"
    assert pipe.getvalue() == "one\ntwo\ndone\n"
