"""Readiness probes: the framework asks a new task whether it is ready for traffic.

Owns: :class:`ReadinessChecks`, one probe loop per RUNNING task of an app
that declares ``readinessChecks``: ``GET http://<host>:<port><path>`` every
``intervalSeconds`` (each attempt bounded by ``timeoutSeconds``) until the
status is in ``httpStatusCodesForReady``.  Deployments count a task of such
an app only once it is ready.  What to probe (the URL, the port named by
``portName``) and which tasks count as ready are decided in
``core.readiness``.  Results are shown as Marathon's ``readinessCheckResults``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from frameworks.marathon.core.model import App, MarathonTask
from frameworks.marathon.core.readiness import ProbeTarget, probe_target, ready_task_ids
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


class ReadinessChecks:
    """Readiness probes of running tasks; ``on_change`` fires when a task becomes ready."""

    def __init__(self, clock: Clock, *, on_change: Callable[[], None]) -> None:
        self._clock = clock
        self._on_change = on_change
        self._probes: dict[str, _Probe] = {}

    def watch(self, app: App, task: MarathonTask) -> None:
        """Start probing ``task`` (once) with the app's first readiness check."""
        if task.task_id in self._probes:
            return
        target = probe_target(app, task)
        if target is None:
            return
        probe = _Probe(app.id, task.task_id, target.name)
        self._probes[task.task_id] = probe
        if target.url is None:
            probe.ready = True
            return
        probe.job = asyncio.get_running_loop().create_task(self._run(probe, target.url, target))

    async def _run(self, probe: _Probe, url: str, target: ProbeTarget) -> None:
        client = AsyncHTTPClient()
        while True:
            status, body = await _get(client, url, target.timeout_seconds)
            probe.last_status = status
            if target.keep_body:
                probe.last_body = body
            if status in target.ready_codes:
                probe.ready = True
                log.info("task %s is ready (%s answered %s)", probe.task_id, url, status)
                self._on_change()
                return
            await asyncio.sleep(target.interval_seconds)

    def ready_tasks(self, app: App, tasks: Iterable[MarathonTask]) -> set[str]:
        """Ids of ``tasks`` that passed their readiness check (all, without checks)."""
        return ready_task_ids(app, tasks, self._is_ready)

    def _is_ready(self, task_id: str) -> bool:
        probe = self._probes.get(task_id)
        return probe is not None and probe.ready

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
