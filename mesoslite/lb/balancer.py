"""The balancer: the framework's events in, coalesced haproxy reloads out.

Owns: :class:`Balancer`.  The event stream (:class:`~mesoslite.lb.events.EventStream`, on
its own thread) only marks the routing dirty; the loop here waits ``debounce`` seconds for
a burst to settle and, so that a big deployment's thousands of status updates do not
become thousands of reloads, at least ``min_reload_interval`` since the previous sync
(every event meanwhile is coalesced into the next one); then it re-reads the apps (on a
thread), computes the services (:mod:`.model`), renders the configuration
(:mod:`.render`) and hands it to :class:`~mesoslite.lb.haproxy.Haproxy`, which reloads
only when the text changed and keeps the last good configuration when ``haproxy -c``
refuses a new one (then an app that is new or changed is left out, so one bad label does
not freeze everybody's routing, and the error names it).  Without events it still
re-reads every ``resync_interval``.  What it serves (services, counters, reload times)
is read by the API (:mod:`.http`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

import attrs

from mesoslite.lb.config import LbConfig
from mesoslite.lb.events import EventStream, fetch_apps
from mesoslite.lb.haproxy import Applied, Haproxy
from mesoslite.lb.model import Service, services_from_apps
from mesoslite.lb.render import Listeners, render_config

log = logging.getLogger("mesoslite.lb")


def _shape(service: Service) -> Service:
    """A service without its servers: what a label or port change changes."""
    return attrs.evolve(service, servers=())


class Balancer:
    """Keeps one haproxy in step with the framework's apps (see the module docstring)."""

    def __init__(self, config: LbConfig) -> None:
        """Nothing runs until :meth:`start`."""
        self.config = config
        work = Path(config.work_dir)
        self.haproxy = Haproxy(config.haproxy_bin, work / "haproxy.cfg", work / "haproxy.pid")
        self.listeners = Listeners(config.bind_address, config.http_port, config.https_port,
                                   config.stats_port, config.appid_port,
                                   config.hard_stop_after)
        self.services: list[Service] = []
        self.warnings: list[str] = []
        self.events = 0
        self.syncs = 0
        self.sync_errors = 0
        self.last_sync = 0.0
        self.connected = False
        #: When each reload happened (monotonic), the last 10,000.
        self.reload_times: collections.deque[float] = collections.deque(maxlen=10_000)
        self._dirty = asyncio.Event()
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self.synced = asyncio.Event()

    async def start(self) -> None:
        """Start haproxy with what the framework has now (or nothing), then follow events."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: Path(self.config.work_dir).mkdir(
            parents=True, exist_ok=True))
        with contextlib.suppress(Exception):  # unreachable framework: an empty config first
            await self.sync()
        if self.haproxy.applied is None:
            await self.haproxy.apply(render_config([], self.listeners))

        def poke() -> None:
            loop.call_soon_threadsafe(self._dirty.set)

        def on_event(_event: dict[str, Any]) -> None:
            self.events += 1
            poke()

        def on_connect() -> None:
            self.connected = True
            poke()

        stream = EventStream(self.config.marathon, on_connect=on_connect, on_event=on_event,
                             silence=self.config.event_silence)
        self._thread = threading.Thread(target=stream.run_forever, args=(self._stop,),
                                        daemon=True, name="lb-events")
        self._thread.start()
        self._task = loop.create_task(self._run())

    async def stop(self) -> None:
        """Stop following; soft-stop haproxy unless ``keep_haproxy``."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if not self.config.keep_haproxy:
            self.haproxy.stop()

    async def _run(self) -> None:
        cfg = self.config
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), cfg.resync_interval)
            await asyncio.sleep(cfg.debounce)  # let a burst settle
            wait = self.last_sync + cfg.min_reload_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # events meanwhile join this sync
            self._dirty.clear()
            try:
                await self.sync()
            except Exception as exc:  # noqa: BLE001 - unreachable framework or nonsense: retried
                self.sync_errors += 1
                log.warning("reading the apps from %s failed: %s; retrying", cfg.marathon, exc)
                await asyncio.sleep(1.0)
                self._dirty.set()

    async def sync(self) -> None:
        """Re-read the apps and apply the configuration they give."""
        loop = asyncio.get_running_loop()
        self.last_sync = time.monotonic()
        apps = await loop.run_in_executor(None, fetch_apps, self.config.marathon)
        services, warnings = services_from_apps(apps, self.config.group)
        for warning in warnings:
            if warning not in self.warnings:
                log.warning("%s", warning)
        self.warnings = warnings
        self.syncs += 1
        applied = await self.haproxy.apply(render_config(services, self.listeners))
        if applied.outcome == "rejected":
            applied, services = await self._without_culprit(services, applied)
        if applied.outcome in ("started", "reloaded", "unchanged"):
            self.services = services
        if applied.outcome == "reloaded":
            self.reload_times.append(time.monotonic())
        if applied.outcome in ("started", "reloaded"):
            log.info("%d services, %d servers", len(services),
                     sum(len(s.servers) for s in services))
        self.synced.set()

    async def _without_culprit(self, services: list[Service],
                               refused: Applied) -> tuple[Applied, list[Service]]:
        """haproxy refused the configuration: leave out one app that is new or changed.

        One app's bad label must not freeze every other app's routing: each app whose
        services differ from the last good ones (servers aside) is tried left out, in turn;
        the first configuration haproxy accepts is applied and the error names that app.
        """
        before = {_shape(s) for s in self.services}
        suspects = sorted({s.app_id for s in services if _shape(s) not in before})
        for app_id in suspects:
            rest = [s for s in services if s.app_id != app_id]
            applied = await self.haproxy.apply(render_config(rest, self.listeners))
            if applied.outcome in ("started", "reloaded", "unchanged"):
                self.haproxy.last_error = f"app {app_id} left out: {refused.message}"
                log.error("%s", self.haproxy.last_error)
                return applied, rest
        return refused, services

    def reloads_in(self, seconds: float) -> int:
        """How many reloads happened in the last ``seconds``."""
        since = time.monotonic() - seconds
        return sum(1 for at in self.reload_times if at >= since)
