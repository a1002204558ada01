"""Readiness checks: the framework asks a new task whether it is ready for traffic.

Owns: :class:`ReadinessChecks`, one probe loop per RUNNING task of an app
that declares ``readinessChecks``: ``GET http://<host>:<port><path>`` every
``intervalSeconds`` (each attempt bounded by ``timeoutSeconds``) until the
status is in ``httpStatusCodesForReady``.  Deployments count a task of such
an app only once it is ready.  The port is the task's host port whose port
definition (or port mapping) carries ``portName``; the first port when no
name matches.  Results are shown as Marathon's ``readinessCheckResults``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from frameworks.marathon.model import App, MarathonTask
from mesoslite.clock import Clock

log = logging.getLogger("mesoslite.marathon.readiness")


@attrs.define
class _Probe:
    app_id: str
    task_id: str
    name: str
    ready: bool = False
    last_status: int | None = None
    last_body: str = ""
    job: asyncio.Task[None] | None = None


def port_for(app: App, task: MarathonTask, port_name: str) -> int | None:
    """The host port of ``task`` named ``port_name`` (first port when unnamed)."""
    if not task.ports:
        return None
    if app.uses_host_ports:
        names = [d.name for d in app.port_definitions]
    else:
        mappings = app.container.port_mappings if app.container else None
        names = [m.name for m in (mappings or ()) if m.host_port is not None]
    if port_name in names and names.index(port_name) < len(task.ports):
        return task.ports[names.index(port_name)]
    return task.ports[0]


class ReadinessChecks:
    """Readiness probes of running tasks; ``on_change`` fires when a task becomes ready."""

    def __init__(self, clock: Clock, *, on_change: Callable[[], None]) -> None:
        self._clock = clock
        self._on_change = on_change
        self._probes: dict[str, _Probe] = {}

    def watch(self, app: App, task: MarathonTask) -> None:
        """Start probing ``task`` (once) with the app's first readiness check."""
        if task.task_id in self._probes or not app.readiness_checks:
            return
        check = app.readiness_checks[0]
        probe = _Probe(app.id, task.task_id, check.name)
        self._probes[task.task_id] = probe
        port = port_for(app, task, check.port_name)
        if port is None:
            probe.ready = True
            return
        url = f"{check.protocol.lower()}://{task.host}:{port}{check.path}"
        probe.job = asyncio.get_running_loop().create_task(
            self._run(probe, url, check.interval_seconds, check.timeout_seconds,
                      frozenset(check.http_status_codes_for_ready),
                      check.preserve_last_response))

    async def _run(self, probe: _Probe, url: str, interval: float, timeout: float,
                   codes: frozenset[int], keep_body: bool) -> None:
        client = AsyncHTTPClient()
        while True:
            status, body = await _get(client, url, timeout)
            probe.last_status = status
            if keep_body:
                probe.last_body = body
            if status in codes:
                probe.ready = True
                log.info("task %s is ready (%s answered %s)", probe.task_id, url, status)
                self._on_change()
                return
            await asyncio.sleep(interval)

    def ready_tasks(self, app: App, tasks: Iterable[MarathonTask]) -> set[str]:
        """Ids of ``tasks`` that passed their readiness check (all, without checks)."""
        if not app.readiness_checks:
            return {t.task_id for t in tasks}
        out = set()
        for task in tasks:
            probe = self._probes.get(task.task_id)
            if probe is not None and probe.ready:
                out.add(task.task_id)
        return out

    def results(self, app_id: str) -> list[dict[str, Any]]:
        """Marathon's ``readinessCheckResults`` for the app's watched tasks."""
        out = []
        for probe in self._probes.values():
            if probe.app_id != app_id:
                continue
            response = None
            if probe.last_status is not None:
                response = {"status": probe.last_status, "contentType": "text/plain",
                            "body": probe.last_body}
            out.append({"name": probe.name, "taskId": probe.task_id, "ready": probe.ready,
                        "lastResponse": response})
        return out

    def forget(self, task_id: str) -> None:
        """Stop probing a task that ended."""
        probe = self._probes.pop(task_id, None)
        if probe is not None and probe.job is not None:
            probe.job.cancel()

    async def stop(self) -> None:
        """Stop every probe."""
        for task_id in list(self._probes):
            self.forget(task_id)


async def _get(client: AsyncHTTPClient, url: str, timeout: float) -> tuple[int | None, str]:
    try:
        response = await client.fetch(url, request_timeout=timeout, connect_timeout=timeout,
                                      raise_error=False, follow_redirects=False)
    except (TimeoutError, HTTPClientError, OSError) as exc:
        log.debug("readiness probe %s: %s", url, exc)
        return None, ""
    body = response.body.decode("utf-8", "replace")[:4096] if response.body else ""
    return (response.code if response.code != 599 else None), body
