"""The agent's fetcher against a real HTTP server on 127.0.0.1 and real files.

Each test starts a small ``http.server`` on a loopback port (it counts the requests
per path and can hold a response back until the test releases it) and runs
:class:`~mesoslite.agent.fetcher.Fetcher` on a temporary sandbox: extraction and
modes, 404s and connection errors naming the URI, credentials sent as HTTP Basic
but never shown, redirect limits, the stall timeout, the size limit, the cache (one
request for two tasks, least recently used evicted first), ``file://`` URIs (a FIFO
cannot block the fetcher), and ``output_file``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import http.server
import io
import os
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesoslite.agent.config import AgentConfig
from mesoslite.agent.effects import CancelFetch, FetchUris
from mesoslite.agent.fetcher import Fetcher, FetchError, FetchLimits, FetchTasks
from mesoslite.protocol import CommandURI
from tests.support.procs import until


class Server:
    """A loopback HTTP server serving ``files`` (path → bytes), counting requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        self.requests: collections.Counter[str] = collections.Counter()
        self.auth: list[str] = []
        self.release = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests[self.path] += 1
                owner.auth.append(self.headers.get("Authorization", ""))
                if self.path in owner.redirects:
                    self.send_response(302)
                    self.send_header("Location", owner.redirects[self.path])
                    self.end_headers()
                    return
                if self.path == "/trickle":  # 1 kB every 20 ms until released
                    self.send_response(200)
                    self.send_header("Content-Length", str(10 << 20))
                    self.end_headers()
                    while not owner.release.wait(0.02):
                        self.wfile.write(b"x" * 1024)
                        self.wfile.flush()
                    return
                if self.path == "/stall":
                    self.send_response(200)
                    self.send_header("Content-Length", "10")
                    self.end_headers()
                    self.wfile.write(b"12345")
                    self.wfile.flush()
                    owner.release.wait(30)
                    return
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
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        """The http URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        """Release held responses and stop."""
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    """A loopback HTTP server for one test."""
    srv = Server()
    try:
        yield srv
    finally:
        srv.close()


def tarball(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A .tar.gz of ``files`` (name → (content, mode))."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def fetcher(tmp_path: Path, **limits: float) -> Fetcher:
    """A Fetcher with small limits and a cache under ``tmp_path``."""
    base = {"stall_timeout": 5.0, "timeout": 60.0, "max_size": 1 << 20, "max_redirects": 2}
    base.update(limits)
    return Fetcher(FetchLimits(**base), str(tmp_path / "cache"), 1 << 20)  # type: ignore[arg-type]


def sandbox(tmp_path: Path, name: str = "box") -> Path:
    """A fresh sandbox path (the fetcher creates it)."""
    return tmp_path / name


def test_http_archive_extracts_and_executable_file_is_runnable(tmp_path: Path,
                                                               server: Server) -> None:
    """extract unpacks a .tar.gz into the sandbox; executable makes a plain file 0755."""
    server.files["/pkg/app.tar.gz"] = tarball({"app/run.sh": (b"#!/bin/sh\necho hi\n", 0o755)})
    server.files["/tool"] = b"#!/bin/sh\n"
    box = sandbox(tmp_path)
    fetcher(tmp_path).fetch_all([CommandURI(value=server.url("/pkg/app.tar.gz")),
                                 CommandURI(value=server.url("/tool"), executable=True,
                                            extract=False)],
                                str(box), "", threading.Event())
    assert (box / "app.tar.gz").is_file()
    assert os.access(box / "app" / "run.sh", os.X_OK)
    assert (box / "tool").stat().st_mode & 0o777 == 0o755
    assert "Fetched" in (box / "stderr").read_text()


def test_extract_false_keeps_the_archive_packed(tmp_path: Path, server: Server) -> None:
    """extract=false: the archive is stored as is, 0644, nothing unpacked."""
    server.files["/a.tgz"] = tarball({"inner": (b"x", 0o644)})
    box = sandbox(tmp_path)
    fetcher(tmp_path).fetch_all([CommandURI(value=server.url("/a.tgz"), extract=False)],
                                str(box), "", threading.Event())
    assert (box / "a.tgz").stat().st_mode & 0o777 == 0o644
    assert not (box / "inner").exists()


def test_a_404_fails_naming_the_uri_and_the_status(tmp_path: Path, server: Server) -> None:
    """HTTP 404: FetchError naming the URI and 'HTTP 404'; the sandbox's stderr says so."""
    box = sandbox(tmp_path)
    uri = server.url("/missing.tgz")
    with pytest.raises(FetchError) as caught:
        fetcher(tmp_path).fetch_all([CommandURI(value=uri)], str(box), "", threading.Event())
    assert str(caught.value) == f"Failed to fetch URI '{uri}': HTTP 404 Not Found"
    assert "HTTP 404" in (box / "stderr").read_text()


def test_credentials_go_as_basic_auth_and_are_never_shown(tmp_path: Path,
                                                          server: Server) -> None:
    """user:password@ is sent as an Authorization header; errors show ***@ instead."""
    server.files["/secret.txt"] = b"s"
    box = sandbox(tmp_path)
    uri = f"http://bob:hunter2@127.0.0.1:{server.port}/secret.txt"
    fetcher(tmp_path).fetch_all([CommandURI(value=uri)], str(box), "", threading.Event())
    assert server.auth == ["Basic " + base64.b64encode(b"bob:hunter2").decode()]
    with pytest.raises(FetchError) as caught:
        fetcher(tmp_path).fetch_all([CommandURI(value=uri.replace("secret", "gone"))],
                                    str(box), "", threading.Event())
    assert "hunter2" not in str(caught.value) and "***@127.0.0.1" in str(caught.value)
    assert "hunter2" not in (box / "stderr").read_text()


def test_redirects_are_followed_up_to_the_limit(tmp_path: Path, server: Server) -> None:
    """Two redirects are followed (limit 2); a chain of three fails naming the flag."""
    server.files["/final"] = b"done"
    server.redirects.update({"/r1": server.url("/r2"), "/r2": server.url("/final"),
                             "/r0": server.url("/r1")})
    box = sandbox(tmp_path)
    fetcher(tmp_path).fetch_all([CommandURI(value=server.url("/r1"), output_file="out")],
                                str(box), "", threading.Event())
    assert (box / "out").read_bytes() == b"done"
    with pytest.raises(FetchError, match="more than 2 redirects"):
        fetcher(tmp_path).fetch_all([CommandURI(value=server.url("/r0"), output_file="o2")],
                                    str(box), "", threading.Event())


def test_a_stalled_download_fails_after_the_stall_timeout(tmp_path: Path,
                                                          server: Server) -> None:
    """A server that stops sending: FetchError naming --fetcher_stall_timeout, in time."""
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"stalled.*fetcher_stall_timeout"):
        fetcher(tmp_path, stall_timeout=0.5).fetch_all(
            [CommandURI(value=server.url("/stall"))], str(sandbox(tmp_path)), "",
            threading.Event())
    assert time.monotonic() - started < 20


def test_a_download_over_the_size_limit_fails(tmp_path: Path, server: Server) -> None:
    """Content-Length above --fetcher_max_size fails before anything is written."""
    server.files["/big"] = b"x" * 5000
    box = sandbox(tmp_path)
    with pytest.raises(FetchError, match=r"more than 4096 .*fetcher_max_size"):
        fetcher(tmp_path, max_size=4096).fetch_all([CommandURI(value=server.url("/big"))],
                                                   str(box), "", threading.Event())


def test_cached_uris_are_downloaded_once_and_evicted_least_recently_used(
        tmp_path: Path, server: Server) -> None:
    """Two sandboxes, one request; a full cache evicts the least recently used entry."""
    for name in ("a", "b", "c"):
        server.files[f"/{name}"] = name.encode() * 400_000  # 400 kB each; cache holds 1 MiB
    f = fetcher(tmp_path)
    abort = threading.Event()
    for box in ("t1", "t2"):
        f.fetch_all([CommandURI(value=server.url("/a"), cache=True)],
                    str(sandbox(tmp_path, box)), "", abort)
    assert server.requests["/a"] == 1 and f.cache.hits == 1
    assert (sandbox(tmp_path, "t2") / "a").read_bytes() == b"a" * 400_000
    f.fetch_all([CommandURI(value=server.url("/b"), cache=True)], str(sandbox(tmp_path, "t3")),
                "", abort)
    f.fetch_all([CommandURI(value=server.url("/a"), cache=True)], str(sandbox(tmp_path, "t4")),
                "", abort)  # a is now the most recently used
    f.fetch_all([CommandURI(value=server.url("/c"), cache=True)], str(sandbox(tmp_path, "t5")),
                "", abort)  # evicts b, keeps a
    assert f.cache.evictions == 1 and f.cache.used <= f.cache.capacity
    f.fetch_all([CommandURI(value=server.url("/a"), cache=True),
                 CommandURI(value=server.url("/b"), cache=True)],
                str(sandbox(tmp_path, "t6")), "", abort)
    assert (server.requests["/a"], server.requests["/b"], server.requests["/c"]) == (1, 2, 1)


def test_file_uris_copy_regular_files_and_refuse_fifos(tmp_path: Path) -> None:
    """file:// and absolute paths copy; a FIFO is refused at once instead of blocking."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.txt").write_text("conf")
    os.mkfifo(src / "pipe")
    box = sandbox(tmp_path)
    f = fetcher(tmp_path)
    f.fetch_all([CommandURI(value=f"file://{src}/conf.txt", output_file="etc/conf"),
                 CommandURI(value=str(src / "conf.txt"))], str(box), "", threading.Event())
    assert (box / "etc" / "conf").read_text() == "conf" and (box / "conf.txt").is_file()
    with pytest.raises(FetchError, match="not a regular file"):
        f.fetch_all([CommandURI(value=f"file://{src}/pipe")], str(box), "", threading.Event())
    with pytest.raises(FetchError, match="no such file"):
        f.fetch_all([CommandURI(value=f"file://{src}/nope")], str(box), "", threading.Event())


@pytest.mark.skipif(os.geteuid() != 0, reason="reading as another user needs root")
def test_file_uris_are_read_as_the_task_user(tmp_path: Path) -> None:
    """As root, a file the task's user cannot read (itself, or a directory above it) is
    refused; what is fetched belongs to the user; an unknown user fails the fetch."""
    shared = Path(tempfile.mkdtemp(prefix="fetch-as-user-", dir="/tmp"))
    try:
        shared.chmod(0o755)
        secret, public = shared / "secret", shared / "public"
        secret.write_text("s")
        secret.chmod(0o600)
        public.write_text("p")
        public.chmod(0o644)
        hidden = tmp_path / "hidden.txt"  # readable, but under a 0700 directory
        hidden.write_text("h")
        box = sandbox(tmp_path)
        f = fetcher(tmp_path)
        for path in (secret, hidden):
            with pytest.raises(FetchError, match="not readable by user nobody"):
                f.fetch_all([CommandURI(value=str(path))], str(box), "nobody",
                            threading.Event())
        f.fetch_all([CommandURI(value=str(public))], str(box), "nobody", threading.Event())
        assert (box / "public").stat().st_uid == 65534
        with pytest.raises(FetchError, match="user 'no-such-user' does not exist"):
            f.fetch_all([CommandURI(value=str(public))], str(box), "no-such-user",
                        threading.Event())
    finally:
        shutil.rmtree(shared)


def test_a_cancelled_fetch_stops_at_once_and_reports(tmp_path: Path, server: Server) -> None:
    """FetchTasks: CancelFetch (the task was killed) aborts a download in flight; the core
    hears of it with an error naming the URI."""
    results: list[tuple[str, ...]] = []

    def finished(fw: str, ex: str, task: str, error: str, secrets: dict[str, str]) -> list[Any]:
        results.append((fw, task, error))
        return []

    async def scenario() -> float:
        tasks = FetchTasks(AgentConfig(work_dir=str(tmp_path)), finished, lambda _e: None)
        uri = server.url("/trickle")
        tasks.fetch(FetchUris("fw", "t1", "c1", "t1", str(tmp_path / "box"),
                              (CommandURI(value=uri),)))
        await until(lambda: server.requests["/trickle"] == 1, 20, "the download started")
        cancelled = time.monotonic()
        tasks.cancel(CancelFetch("fw", "t1"))
        await until(lambda: results, 20, "the core heard of the cancelled fetch")
        tasks.close()
        return time.monotonic() - cancelled

    took = asyncio.run(scenario())
    [(fw, task, error)] = results
    assert (fw, task) == ("fw", "t1") and "was cancelled" in error
    assert error.startswith(f"Failed to fetch URI '{server.url('/trickle')}'")
    assert took < 10  # the next chunk notices, not the stall timeout (5 s) nor the end
