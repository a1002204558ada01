"""Marathon's Task JSON (PURE).

Owns: :func:`render_task` — one :class:`MarathonTask` as Marathon's
``/v2/tasks`` element, with exactly Marathon's keys: ``id``, ``appId``,
``host``, ``ports``, ``servicePorts``, ``slaveId``, ``state``, ``stagedAt``,
``startedAt``, ``version``, ``ipAddresses``, ``localVolumes``,
``healthCheckResults`` (only when the app has health checks) and ``role``
(when the app has one).  Times are ISO-8601 with ``Z``; as in Marathon, a
task that is no longer active shows no ports, times or version.
"""

from __future__ import annotations

from typing import Any

from frameworks.marathon.core.model import App, MarathonTask
from frameworks.marathon.core.timestamps import iso


def _ip(address: str) -> dict[str, str]:
    return {"ipAddress": address, "protocol": "IPv6" if ":" in address else "IPv4"}


def render_health_result(task: MarathonTask) -> dict[str, Any]:
    """One ``healthCheckResults`` element for ``task`` (``alive`` false until a verdict)."""
    health = task.health
    return {
        "alive": bool(health.alive) if health is not None else bool(task.healthy),
        "consecutiveFailures": health.consecutive_failures if health is not None else 0,
        "firstSuccess": health.first_success if health is not None else None,
        "lastFailure": health.last_failure if health is not None else None,
        "lastSuccess": health.last_success if health is not None else None,
        "lastFailureCause": health.last_failure_cause if health is not None else None,
        "taskId": task.task_id,
        "instanceId": task.instance_id,
    }


def render_task(task: MarathonTask, app: App | None) -> dict[str, Any]:
    """Marathon's Task JSON for ``task``; ``app`` (its current definition) may be None."""
    active = task.condition.is_active
    out: dict[str, Any] = {
        "id": task.task_id,
        "appId": task.app_id,
        "host": task.host,
        "ports": list(task.ports) if active else [],
        "servicePorts": list(task.service_ports),
        "slaveId": task.agent_id,
        "state": task.condition.value,
    }
    if active and task.staged_at is not None:
        out["stagedAt"] = iso(task.staged_at)
    if active and task.started_at is not None:
        out["startedAt"] = iso(task.started_at)
    if active and task.version:
        out["version"] = task.version
    out["ipAddresses"] = [_ip(a) for a in task.ip_addresses]
    out["localVolumes"] = []
    if app is not None and app.health_checks:
        has_verdict = task.health is not None or task.healthy is not None
        out["healthCheckResults"] = [render_health_result(task)] if has_verdict else []
    if app is not None and app.role is not None:
        out["role"] = app.role
    return out
