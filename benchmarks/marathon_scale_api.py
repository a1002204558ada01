"""marathon_scale_api: part (b) of ``marathon_scale.py`` — the REST API with a large state.

Owns: a child process (:func:`serve`) holding a real
:class:`~frameworks.marathon.service.MarathonService` (on an in-memory
:class:`MemoryStore`) populated with ``apps`` apps (parsed from Marathon JSON
by ``parse_app``) and ``tasks`` tasks (RUNNING, healthy, one host port each,
recorded with ``service.task_record`` and flushed to the store), served by
``frameworks.marathon.api.routes.make_app`` on an ephemeral 127.0.0.1 port; and
:func:`measure`, which times real HTTP GETs against it from this process
(keep-alive connection) next to baselines measured in the same run: ``GET
/ping`` and ``json.dumps`` of the same document as plain Python objects.
With ``profile`` the child runs cProfile over a separate series of requests
and returns the top functions by cumulative and by own time.
"""

from __future__ import annotations

import asyncio
import cProfile
import http.client
import io
import json
import multiprocessing
import pstats
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import psutil

from frameworks.marathon.config import MarathonConfig
from frameworks.marathon.core.model import (
    HealthResult,
    InstanceCondition,
    MarathonTask,
    new_instance_id,
    task_id_for,
)
from frameworks.marathon.core.timestamps import iso
from frameworks.marathon.service import MarathonService
from frameworks.marathon.wire.app_json import parse_app

LIST_PATH = "/v2/apps?embed=apps.tasks"
BASE_TIME = 1767323045.0


class MemoryStore:
    """The :class:`~frameworks.marathon.state.store.Store` protocol held in a dict."""

    def __init__(self) -> None:
        """Empty."""
        self.data: dict[str, bytes] = {}

    async def start(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``."""
        return self.data.get(key)

    async def put(self, key: str, data: bytes) -> None:
        """Write ``key``."""
        self.data[key] = data

    async def delete(self, key: str) -> None:
        """Remove ``key`` and everything under it."""
        for k in [k for k in self.data if k == key or k.startswith(key.rstrip("/") + "/")]:
            del self.data[k]

    async def children(self, key: str) -> list[str]:
        """Names directly under ``key``."""
        prefix = key.rstrip("/") + "/"
        return sorted({k[len(prefix):].split("/", 1)[0] for k in self.data
                       if k.startswith(prefix)})

    async def commit(self, puts: Mapping[str, bytes], deletes: Sequence[str] = ()) -> None:
        """Apply ``puts`` and ``deletes`` together."""
        for key in deletes:
            await self.delete(key)
        self.data.update(puts)


async def populate(service: MarathonService, apps: int, tasks: int) -> None:
    """``apps`` apps and ``tasks`` RUNNING healthy tasks spread evenly over them."""
    version = iso(BASE_TIME)
    for i in range(apps):
        app = parse_app({
            "id": f"/bench/group-{i % 20:02d}/app-{i:04d}", "cmd": "sleep 3600",
            "cpus": 0.01, "mem": 8, "instances": tasks // apps + (1 if i < tasks % apps else 0),
            "portDefinitions": [{"port": 10000 + i, "name": "http"}],
            "labels": {"team": f"t{i % 7}"},
            "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"},
                              "intervalSeconds": 10, "delaySeconds": 1}],
            "version": version,
            "versionInfo": {"lastScalingAt": version, "lastConfigChangeAt": version},
        })
        service.apps[app.id] = app
    ids = sorted(service.apps)
    stamp = iso(BASE_TIME + 5)
    for k in range(tasks):
        app = service.apps[ids[k % len(ids)]]
        instance = new_instance_id(app.id)
        service.task_record(MarathonTask(
            task_id=task_id_for(instance), instance_id=instance, app_id=app.id,
            version=app.version, condition=InstanceCondition.RUNNING,
            agent_id=f"agent-{k % 50:03d}", host=f"10.0.{k % 50}.1", ports=(31000 + k % 1000,),
            service_ports=(app.port_definitions[0].port,), staged_at=BASE_TIME + 1,
            started_at=BASE_TIME + 2, condition_since=BASE_TIME + 2, healthy=True,
            health=HealthResult(alive=True, first_success=stamp, last_success=stamp),
            attributes={"hostname": f"10.0.{k % 50}.1"}))
    await service.instance_repo.flush()


def serve(conn: Any, apps: int, tasks: int, top: int) -> None:
    """Child process: populate, serve, report the port; profile on request; stop on "stop"."""
    from frameworks.marathon.api.routes import make_app, start_http_server

    async def main() -> None:
        service = MarathonService(MarathonConfig(http_port=0), MemoryStore())
        started = time.perf_counter()
        await populate(service, apps, tasks)
        populate_s = time.perf_counter() - started
        server, port = start_http_server(make_app(service), host="127.0.0.1", port=0)
        loop = asyncio.get_running_loop()
        profiler = cProfile.Profile()
        conn.send({"port": port, "populate_s": round(populate_s, 3),
                   "apps": len(service.apps), "tasks": len(service.tracked)})
        while True:
            message = await loop.run_in_executor(None, conn.recv)
            if message == "stop":
                break
            if message == "profile_on":
                profiler = cProfile.Profile()
                profiler.enable()
                conn.send("profiling")
            elif message == "profile_off":
                profiler.disable()
                conn.send(profile_report(profiler, top))
        server.stop()

    asyncio.run(main())


def profile_report(profiler: cProfile.Profile, top: int) -> dict[str, Any]:
    """The ``top`` functions by cumulative and by own time, as text lines."""
    out: dict[str, Any] = {}
    for key in ("cumulative", "tottime"):
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.sort_stats(key).print_stats(top)
        lines = [ln.rstrip() for ln in stream.getvalue().splitlines() if ln.strip()]
        start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
        out[key] = lines[start:]
    return out


def timed_get(conn: http.client.HTTPConnection, path: str) -> tuple[float, int]:
    """Seconds for one GET (request sent → body read) and the body's size."""
    started = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"GET {path} answered {response.status}: {body[:300]!r}")
    return elapsed, len(body)


def summary(samples: list[float]) -> dict[str, float]:
    """Median, p95, min and max in milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": round(statistics.median(ordered) * 1000, 2),
            "p95_ms": round(p95 * 1000, 2), "min_ms": round(ordered[0] * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2)}


def measure(apps: int, tasks: int, requests: int, profile: bool, top: int = 25
            ) -> dict[str, Any]:
    """Serve the populated state in a child process; time the GETs and the baselines."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=serve, args=(child, apps, tasks, top), daemon=True)
    proc.start()
    try:
        if not parent.poll(120):
            raise RuntimeError("the API process did not start within 120 s")
        info = parent.recv()
        conn = http.client.HTTPConnection("127.0.0.1", info["port"], timeout=60)
        out: dict[str, Any] = {"apps": info["apps"], "tasks": info["tasks"],
                               "populate_s": info["populate_s"], "requests": requests}
        timed_get(conn, LIST_PATH)  # warm-up
        psutil.cpu_percent()  # starts the machine-wide CPU sample
        paths = {"apps_embed_tasks": LIST_PATH, "apps": "/v2/apps",
                 "tasks": "/v2/tasks", "ping": "/ping"}
        for name, path in paths.items():
            samples, size = [], 0
            for _ in range(requests):
                elapsed, size = timed_get(conn, path)
                samples.append(elapsed)
            out[name] = {"path": path, **summary(samples), "body_bytes": size}
        # Baseline: serialising the same document as plain objects, as write_json does.
        conn.request("GET", LIST_PATH)
        document = json.loads(conn.getresponse().read())
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            json.dumps(document, separators=(",", ":"))
            samples.append(time.perf_counter() - started)
        out["json_dumps_baseline"] = summary(samples)
        #: Share of the machine's CPU in use meanwhile (this benchmark uses about one core).
        out["machine_busy_share"] = round(psutil.cpu_percent() / 100.0, 3)
        main = out["apps_embed_tasks"]["median_ms"]
        out["ratio_to_json_dumps"] = round(main / out["json_dumps_baseline"]["median_ms"], 2)
        out["ratio_to_ping"] = round(main / out["ping"]["median_ms"], 1)
        if profile:
            parent.send("profile_on")
            parent.recv()
            for _ in range(max(3, requests // 4)):
                timed_get(conn, LIST_PATH)
            parent.send("profile_off")
            out["profile"] = parent.recv()
            out["profile"]["requests"] = max(3, requests // 4)
        conn.close()
        parent.send("stop")
        proc.join(10)
        return out
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)
