"""What ``mesoslite ctl`` shows about apps of the Marathon-style framework (no I/O of its own).

Owns: the ``ctl apps`` table and the ``ctl app`` view, the choice of a
rollback version, and the progress of a running deployment
(:class:`Progress`, its bar and line renderings, :class:`ProgressView`,
which writes them to a stream as a :class:`~mesoslite.ctl.common.StatusLine`).
No I/O beyond writing to the given stream; the inputs are the REST API's JSON
documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mesoslite.ctl.common import CtlError, StatusLine, format_number, format_table

#: Task states of an instance that is still there.
ACTIVE_STATES = {
    "TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_UNREACHABLE",
}
_STAGED = {"TASK_STAGING", "TASK_STARTING"}
_CMD_WIDTH = 60


def normalize_app_id(app_id: str) -> str:
    """An app id as an absolute path; CtlError for an empty one."""
    parts = [p for p in app_id.strip().split("/") if p]
    if not parts:
        raise CtlError(f"app id {app_id!r}: expected a path such as /web or /group/web")
    return "/" + "/".join(parts)


# -------------------------------------------------------------------- tables (pure)
def app_command(app: dict[str, Any]) -> str:
    """What an app runs: its Docker image, else its ``cmd``, else its ``args``."""
    docker = ((app.get("container") or {}).get("docker") or {})
    if docker.get("image"):
        return f"image {docker['image']}" + (f" ({app['cmd']})" if app.get("cmd") else "")
    if app.get("cmd"):
        return str(app["cmd"])
    return " ".join(str(a) for a in app.get("args") or [])


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def format_apps(apps: Sequence[dict[str, Any]]) -> str:
    """The ``ctl apps`` table, one row per app sorted by id."""
    rows = []
    for app in sorted(apps, key=lambda a: str(a.get("id", ""))):
        health = (f"{app.get('tasksHealthy', 0)}/{app.get('tasksUnhealthy', 0)}"
                  if app.get("healthChecks") else "-")
        deployments = ",".join(str(d.get("id", ""))[:8] for d in app.get("deployments") or [])
        rows.append((app.get("id"), f"{app.get('tasksRunning', 0)}/{app.get('instances', 0)}",
                     health, format_number(app.get("cpus")), format_number(app.get("mem")),
                     deployments or "-", _clip(app_command(app), _CMD_WIDTH)))
    headers = ("ID", "INSTANCES", "HEALTH", "CPUS", "MEM", "DEPLOYMENTS", "CMD/IMAGE")
    return format_table(headers, rows)


def task_health(task: dict[str, Any], checked: bool) -> str:
    """``healthy``, ``unhealthy``, ``unknown`` (no verdict yet) or ``-`` (no health checks)."""
    if not checked:
        return "-"
    results = task.get("healthCheckResults") or []
    if not results:
        return "unknown"
    return "healthy" if all(r.get("alive") for r in results) else "unhealthy"


def task_address(task: dict[str, Any]) -> str:
    """``host:port,port`` (or just the host when the task has no ports)."""
    ports = ",".join(str(p) for p in task.get("ports") or [])
    host = str(task.get("host") or "?")
    return f"{host}:{ports}" if ports else host


def _health_check_text(check: dict[str, Any]) -> str:
    protocol = str(check.get("protocol", "HTTP"))
    if protocol == "COMMAND":
        target = str((check.get("command") or {}).get("value", ""))
    elif "port" in check:
        target = f"port {check['port']}"
    else:
        target = f"port index {check.get('portIndex', 0)}"
    if protocol.endswith(("HTTP", "HTTPS")):
        target += f" {check.get('path', '/')}"
    return (f"{protocol} {target} every {check.get('intervalSeconds', '?')}s "
            f"(grace {check.get('gracePeriodSeconds', '?')}s, "
            f"max failures {check.get('maxConsecutiveFailures', '?')})")


def format_app(app: dict[str, Any]) -> str:
    """The ``ctl app`` view: the app's main fields, then one row per task."""
    checks = app.get("healthChecks") or []
    failure = app.get("lastTaskFailure")
    fields: list[tuple[str, Any]] = [
        ("id", app.get("id")),
        ("version", app.get("version")),
        ("cmd/image", app_command(app) or "-"),
        ("instances", (f"{app.get('tasksRunning', 0)} running of {app.get('instances', 0)} "
                       f"wanted, {app.get('tasksStaged', 0)} staged")),
        ("health", (f"{app.get('tasksHealthy', 0)} healthy, {app.get('tasksUnhealthy', 0)} "
                    "unhealthy") if checks else "no health checks"),
        ("resources", (f"cpus {format_number(app.get('cpus'))}  "
                       f"mem {format_number(app.get('mem'))}  "
                       f"disk {format_number(app.get('disk'))}")),
        ("service ports", ",".join(str(p) for p in app.get("ports") or []) or "-"),
    ]
    fields += [("health check", _health_check_text(c)) for c in checks]
    if app.get("constraints"):
        fields.append(("constraints", "; ".join(":".join(str(x) for x in c)
                                                for c in app["constraints"])))
    if app.get("labels"):
        fields.append(("labels", ", ".join(f"{k}={v}" for k, v in sorted(app["labels"].items()))))
    fields.append(("deployments", ", ".join(str(d.get("id")) for d in app.get("deployments") or [])
                   or "-"))
    if isinstance(failure, dict):
        fields.append(("last failure", (f"{failure.get('state')} {failure.get('taskId')} at "
                                        f"{failure.get('timestamp')}: {failure.get('message')}")))
    text = format_table(("FIELD", "VALUE"), fields)
    tasks = sorted(app.get("tasks") or [], key=lambda t: str(t.get("id", "")))
    rows = [(t.get("id"), task_address(t), t.get("state"), task_health(t, bool(checks)),
             t.get("version") or "-", t.get("startedAt") or "-") for t in tasks]
    table = format_table(("TASK", "HOST:PORTS", "STATE", "HEALTH", "VERSION", "STARTED"), rows)
    return f"{text}\n\n{table}"


# ------------------------------------------------------------- rollback (pure)
def _time_key(version: str) -> tuple[int, datetime | str]:
    try:
        parsed = datetime.fromisoformat(version)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return (1, parsed)
    except ValueError:
        return (0, version)


def choose_rollback_version(versions: Sequence[str], current: str | None,
                            requested: str | None = None) -> str:
    """The version to roll back to: ``requested`` if it is stored, else the newest one older
    than ``current``; CtlError naming what is stored otherwise."""
    stored = sorted(set(versions), key=_time_key, reverse=True)
    shown = ", ".join(stored[:5]) + (" ..." if len(stored) > 5 else "")
    if requested is not None:
        if requested not in stored:
            raise CtlError(f"version {requested!r} is not stored for this app "
                           f"(newest first: {shown or 'none'})")
        if requested == current:
            raise CtlError(f"version {requested} is already the current version")
        return requested
    if current is None or current not in stored:
        older = stored[1:] if current is None else stored
    else:
        older = stored[stored.index(current) + 1:]
    if not older:
        raise CtlError(f"there is no version older than the current one ({current}) "
                       f"to roll back to (stored: {shown or 'none'})")
    return older[0]


# ------------------------------------------------------------- progress (pure)
@dataclass(frozen=True)
class Progress:
    """One look at an app while its deployment runs."""

    app_id: str
    wanted: int  #: instances wanted; for a destroy, the tasks there were at the start
    ready: int  #: up-to-date instances healthy (running when unchecked); destroy: stopped
    running: int
    staged: int
    checked: bool
    removing: bool = False
    step: int = 0
    total_steps: int = 0
    actions: tuple[str, ...] = ()

    @property
    def word(self) -> str:
        """What ``ready`` counts."""
        return "stopped" if self.removing else "healthy" if self.checked else "running"


def _after(version: Any, since: Any) -> bool:
    if not isinstance(since, str) or not since:
        return True
    if not isinstance(version, str) or not version:
        return False
    return _time_key(version) >= _time_key(since)


def _for_app(actions: Any, app_id: str) -> list[str]:
    """The action names in ``actions`` (a deployment's action list) that concern ``app_id``."""
    items = actions if isinstance(actions, list) else []
    return [str(a.get("action")) for a in items
            if isinstance(a, dict) and normalize_app_id(str(a.get("app") or "/?")) == app_id]


def progress_from(app_id: str, app: dict[str, Any] | None, deployment: dict[str, Any] | None,
                  removing: bool = False, baseline: int = 0) -> Progress:
    """A :class:`Progress` from ``GET /v2/apps/{id}`` (None: gone) and the deployment (None:
    finished).

    A task counts as ready when it is healthy, or running when the app has no health checks;
    while a deployment replaces tasks (a ``RestartApplication`` step: restart or new
    configuration), only tasks of the app's latest configuration
    (``versionInfo.lastConfigChangeAt``) count.  For a destroy, ``baseline`` is the number of
    tasks at the start and ready counts the ones stopped since.
    """
    app = app or {}
    tasks = [t for t in app.get("tasks") or [] if t.get("state") in ACTIVE_STATES]
    checked = bool(app.get("healthChecks"))
    running = sum(1 for t in tasks if t.get("state") == "TASK_RUNNING")
    staged = sum(1 for t in tasks if t.get("state") in _STAGED)
    step = total = 0
    actions: tuple[str, ...] = ()
    replacing = False
    if deployment is not None:
        step = int(deployment.get("currentStep") or 0)
        total = int(deployment.get("totalSteps") or 0)
        actions = tuple(_for_app(deployment.get("currentActions"), app_id))
        replacing = any("RestartApplication" in _for_app(s.get("actions"), app_id)
                        for s in deployment.get("steps") or [] if isinstance(s, dict))
    since = (app.get("versionInfo") or {}).get("lastConfigChangeAt") if replacing else None
    if removing:
        wanted, ready = baseline, max(0, baseline - len(tasks))
    else:
        wanted = int(app.get("instances") or 0)
        ready = sum(1 for t in tasks if t.get("state") == "TASK_RUNNING"
                    and _after(t.get("version"), since)
                    and (not checked or task_health(t, True) == "healthy"))
    return Progress(app_id, wanted, ready, running, staged, checked, removing, step, total,
                    actions)


def render_line(p: Progress) -> str:
    """One progress line without a bar (for logs and pipes)."""
    text = f"{p.app_id}: {p.ready}/{p.wanted} {p.word} ({p.running} running, {p.staged} staged)"
    if p.total_steps:
        text += f"; step {p.step}/{p.total_steps}"
        if p.actions:
            text += " " + ",".join(p.actions)
    return text


def render_bar(p: Progress, width: int = 30) -> str:
    """One progress line with a ``[####----]`` bar of ready over wanted (for a terminal)."""
    fraction = 1.0 if p.wanted <= 0 else min(1.0, p.ready / p.wanted)
    filled = round(fraction * width)
    rest = render_line(p).split(": ", 1)[1]
    return f"{p.app_id} [{'#' * filled}{'-' * (width - filled)}] {rest}"


class ProgressView(StatusLine):
    """Writes a deployment's progress to ``out``: a bar redrawn in place on a terminal, one
    line per change otherwise."""

    def update(self, progress: Progress) -> None:
        """Show ``progress`` (nothing when it reads the same as the last one)."""
        self.show(render_bar(progress), render_line(progress))
