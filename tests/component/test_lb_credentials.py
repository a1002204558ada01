"""``mesoslite lb`` sends the environment's credentials to a framework that authenticates.

A real HTTP server on loopback answers ``/v2/apps`` only with the right HTTP Basic
credentials (401 otherwise, as the framework's ``--http_credentials`` does).
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import urllib.error
from collections.abc import Iterator

import pytest

from mesoslite.lb.events import fetch_apps

EXPECTED = "Basic " + base64.b64encode(b"operator:s3cret").decode()


@pytest.fixture
def marathon() -> Iterator[str]:
    """A stand-in for the framework's ``GET /v2/apps`` behind HTTP Basic."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != EXPECTED:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="mesoslite"')
                self.end_headers()
                return
            body = json.dumps({"apps": [{"id": "/web"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_apps_sends_the_environments_credentials(
        marathon: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a principal: 401; with MESOSLITE_PRINCIPAL and a secret (or secret file):
    the apps; a wrong secret: 401 again."""
    monkeypatch.delenv("MESOSLITE_PRINCIPAL", raising=False)
    monkeypatch.delenv("MESOSLITE_SECRET", raising=False)
    monkeypatch.delenv("MESOSLITE_SECRET_FILE", raising=False)
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch_apps(marathon)
    assert refused.value.code == 401
    monkeypatch.setenv("MESOSLITE_PRINCIPAL", "operator")
    monkeypatch.setenv("MESOSLITE_SECRET", "s3cret")
    assert fetch_apps(marathon) == [{"id": "/web"}]
    monkeypatch.setenv("MESOSLITE_SECRET", "wrong")
    with pytest.raises(urllib.error.HTTPError) as wrong:
        fetch_apps(marathon)
    assert wrong.value.code == 401
