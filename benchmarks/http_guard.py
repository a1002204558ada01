"""What the HTTP guard costs per request: a plain tornado server next to a guarded one.

Starts, in this process, one small JSON endpoint three times on loopback ports: behind
a plain ``tornado.httpserver.HTTPServer`` (the baseline), behind a
:class:`mesoslite.httpguard.server.GuardedHTTPServer` with the default policy (Host,
Origin and Content-Type checks), and behind one that also authenticates (HTTP Basic).
A client thread sends ``--requests`` keep-alive requests to each, alternating GETs and
JSON POSTs, ``--rounds`` times in turns; the medians are reported with their ratio to the
baseline measured in the same round (median over the rounds).  Prints one JSON object.

    python benchmarks/http_guard.py [--requests 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tornado.httpserver
import tornado.netutil
import tornado.web

from mesoslite.httpguard.policy import AuthPolicy
from mesoslite.httpguard.server import GuardedHTTPServer, server_policy

AUTH = "Basic " + base64.b64encode(b"bench:bench-secret").decode()


class Echo(tornado.web.RequestHandler):
    """GET answers a small document; POST echoes the body's length."""

    def get(self) -> None:
        """Answer a small JSON document."""
        self.write({"ok": True})

    def post(self) -> None:
        """Answer the body's length."""
        self.write({"length": len(self.request.body)})


def _serve(kind: str) -> tuple[Any, int]:
    app = tornado.web.Application([(r"/echo", Echo)])
    if kind == "plain":
        server: Any = tornado.httpserver.HTTPServer(app)
    else:
        auth = AuthPolicy({"bench": "bench-secret"}) if kind == "auth" else None
        server = GuardedHTTPServer(app, server_policy(["localhost"], auth=auth))
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[1]


def _client(port: int, requests: int, auth: bool) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": AUTH} if auth else {}
    post = {**headers, "Content-Type": "application/json"}
    body = json.dumps({"id": "/x", "cmd": "true"}).encode()
    started = time.perf_counter()
    for i in range(requests):
        if i % 2:
            conn.request("POST", "/echo", body=body, headers=post)
        else:
            conn.request("GET", "/echo", headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"port {port}: HTTP {response.status}")
    elapsed = time.perf_counter() - started
    conn.close()
    return requests / elapsed


async def _measure(requests: int, rounds: int) -> dict[str, Any]:
    servers = {kind: _serve(kind) for kind in ("plain", "guarded", "auth")}
    rates: dict[str, list[float]] = {kind: [] for kind in servers}
    loop = asyncio.get_running_loop()
    for _ in range(rounds):
        for kind, (_server, port) in servers.items():
            rate = await loop.run_in_executor(None, _client, port, requests, kind == "auth")
            rates[kind].append(rate)
            print(f"{kind}: {rate:.0f} requests/s", file=sys.stderr)
    for server, _port in servers.values():
        server.stop()
    await asyncio.sleep(0)
    median = {kind: statistics.median(values) for kind, values in rates.items()}
    # Each round measures the three back to back: the ratios are taken per round.
    ratio = {kind: statistics.median(r / p for r, p in zip(rates[kind], rates["plain"],
                                                            strict=True))
             for kind in ("guarded", "auth")}
    return {
        "requests_per_round": requests,
        "rounds": rounds,
        "plain_requests_per_s": round(median["plain"], 1),
        "guarded_requests_per_s": round(median["guarded"], 1),
        "guarded_with_auth_requests_per_s": round(median["auth"], 1),
        "guarded_ratio": round(ratio["guarded"], 3),
        "guarded_with_auth_ratio": round(ratio["auth"], 3),
    }


def main() -> None:
    """Parse the flags, measure, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_measure(args.requests, args.rounds))))


if __name__ == "__main__":
    main()
