"""Benchmark: the agent's fetcher against plain downloads and plain unpacking, same run.

Serves a ``--size`` MB file and a ``.tar.gz`` of ``--files`` small files from an HTTP
server thread on 127.0.0.1, then times (median of ``--repeat`` runs, each on a fresh
sandbox under one temporary directory):

- ``raw_download_s``: ``urllib.request`` reading the file into a file (the baseline);
- ``fetch_s``: :class:`~mesoslite.agent.fetcher.Fetcher` fetching it (no cache);
- ``cache_miss_s`` / ``cache_hit_s``: with ``cache: true``, first and second fetch;
- ``raw_extract_s``: ``tarfile.extractall`` without checks (the baseline);
- ``fetch_extract_s``: the fetcher fetching and safely unpacking the archive;

and prints one JSON object with the ratios to the baselines.
"""

from __future__ import annotations

import argparse
import http.server
import io
import json
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mesoslite.agent.fetcher import Fetcher, FetchLimits
from mesoslite.protocol import CommandURI


def _server(files: dict[str, bytes]) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _tarball(count: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for i in range(count):
            data = f"file {i}\n".encode() * 20
            info = tarfile.TarInfo(f"pkg/d{i % 50}/f{i}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _timed(work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=64, help="MB of the plain file")
    parser.add_argument("--files", type=int, default=2000, help="files in the archive")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    blob = os.urandom(1 << 20) * args.size
    archive = _tarball(args.files)
    httpd = _server({"/blob": blob, "/pkg.tar.gz": archive})
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    root = Path(tempfile.mkdtemp(prefix="fetcher-bench-"))
    limits = FetchLimits(max_size=max(len(blob), len(archive)) * 2)
    runs: dict[str, list[float]] = {k: [] for k in (
        "raw_download_s", "fetch_s", "cache_miss_s", "cache_hit_s", "raw_extract_s",
        "fetch_extract_s")}
    try:
        for run in range(args.repeat):
            box = root / f"run{run}"
            box.mkdir()
            fetcher = Fetcher(limits, str(box / "cache"), len(blob) * 4)
            abort = threading.Event()

            def raw(box: Path = box) -> None:
                with urllib.request.urlopen(base + "/blob") as src, \
                        open(box / "raw", "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 16)

            def fetch(name: str, cache: bool, fetcher: Fetcher = fetcher,
                      box: Path = box, abort: threading.Event = abort) -> None:
                fetcher.fetch_all([CommandURI(value=base + "/blob", cache=cache)],
                                  str(box / name), "", abort)

            def raw_extract(box: Path = box) -> None:
                with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                    # the baseline: an archive this script made, unpacked unchecked
                    tar.extractall(box / "raw-x", filter="fully_trusted")  # noqa: S202

            def fetch_extract(fetcher: Fetcher = fetcher, box: Path = box,
                              abort: threading.Event = abort) -> None:
                fetcher.fetch_all([CommandURI(value=base + "/pkg.tar.gz")], str(box / "x"),
                                  "", abort)

            runs["raw_download_s"].append(_timed(raw))
            runs["fetch_s"].append(_timed(lambda: fetch("direct", False)))
            runs["cache_miss_s"].append(_timed(lambda: fetch("miss", True)))
            runs["cache_hit_s"].append(_timed(lambda: fetch("hit", True)))
            runs["raw_extract_s"].append(_timed(raw_extract))
            runs["fetch_extract_s"].append(_timed(fetch_extract))
            shutil.rmtree(box)
            print(f"run {run + 1}/{args.repeat} done", file=sys.stderr)
    finally:
        httpd.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    med = {k: round(statistics.median(v), 4) for k, v in runs.items()}
    print(json.dumps({
        "size_mb": args.size, "archive_files": args.files, "repeat": args.repeat, **med,
        "fetch_vs_raw_download_ratio": round(med["fetch_s"] / med["raw_download_s"], 2),
        "cache_hit_vs_raw_download_ratio": round(med["cache_hit_s"] / med["raw_download_s"], 2),
        "fetch_extract_vs_raw_extract_ratio": round(
            med["fetch_extract_s"] / med["raw_extract_s"], 2),
        "fetch_mb_per_s": round(args.size / med["fetch_s"], 1),
    }, indent=1))


if __name__ == "__main__":
    main()
