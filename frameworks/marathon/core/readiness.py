"""Readiness-check decisions (PURE): what to probe for a task, and which tasks are ready.

Owns: :func:`port_for` (the task's host port whose port definition, or port
mapping, carries the check's ``portName``; the first port when no name
matches), :func:`probe_target` (the URL, timing and ready status codes of a
task's probe, from the app's first readiness check) and
:func:`ready_task_ids` (the tasks a deployment may count as ready).  The probe
loops that perform the checks live in ``readiness_probes``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from frameworks.marathon.core.model import App, MarathonTask


@attrs.frozen
class ProbeTarget:
    """What to ask a task, from the app's first readiness check.

    ``url`` is None when the task has no port to probe: it counts as ready at once.
    """

    name: str
    url: str | None
    interval_seconds: float
    timeout_seconds: float
    ready_codes: frozenset[int]
    keep_body: bool


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


def probe_target(app: App, task: MarathonTask) -> ProbeTarget | None:
    """The probe of ``task`` by the app's first readiness check (None: the app has none)."""
    if not app.readiness_checks:
        return None
    check = app.readiness_checks[0]
    port = port_for(app, task, check.port_name)
    url = None if port is None else f"{check.protocol.lower()}://{task.host}:{port}{check.path}"
    return ProbeTarget(name=check.name, url=url, interval_seconds=check.interval_seconds,
                       timeout_seconds=check.timeout_seconds,
                       ready_codes=frozenset(check.http_status_codes_for_ready),
                       keep_body=check.preserve_last_response)


def ready_task_ids(app: App, tasks: Iterable[MarathonTask],
                   is_ready: Callable[[str], bool]) -> set[str]:
    """Ids of ``tasks`` that passed their readiness check (all of them when the app has none)."""
    if not app.readiness_checks:
        return {t.task_id for t in tasks}
    return {t.task_id for t in tasks if is_ready(t.task_id)}
