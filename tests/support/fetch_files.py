"""A loopback HTTP server for fetcher tests: serves files from memory, counts requests.

Used by the integration tests that have an agent fetch URIs (``fetch`` of Marathon
apps): the server runs on a thread of the test process, on 127.0.0.1 only.
"""

from __future__ import annotations

import collections
import http.server
import io
import tarfile
import threading


class FileServer:
    """Serves ``files`` on 127.0.0.1 from a thread, counting requests per path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: collections.Counter[str] = collections.Counter()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests[self.path] += 1
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        """The URL of ``path`` here."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


def tarball(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A .tar.gz of name → (content, mode)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
