"""What the service UI lists: app statuses, health bars, the group tree (PURE).

Owns: :func:`app_row` (one app: status — Running, Deploying, Suspended,
Delayed, Waiting — instances, the health bar's segments: healthy, unhealthy,
staged, unknown, over capacity, unscheduled — cpus, mem, labels),
:func:`group_rows` (the subgroups directly under a group, with totals),
:func:`parse_filters` and :func:`apps_page` (filter by status, health, label
and text; page), all from plain values the service facade hands out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from frameworks.marathon.core.model import App, InstanceCondition, MarathonTask
from frameworks.marathon.core.reports import QueueEntry

STATUSES = ("Running", "Deploying", "Suspended", "Delayed", "Waiting")
HEALTH = ("healthy", "unhealthy", "staged", "unknown", "over", "unscheduled")
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
MAX_TEXT = 200

Row = dict[str, Any]


class FilterError(ValueError):
    """A filter the UI refuses: answered 400 naming ``field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@attrs.frozen
class Filters:
    """The apps view's request, checked."""

    group: str = "/"
    q: str = ""
    status: str = ""
    health: str = ""
    label: str = ""
    offset: int = 0
    limit: int = DEFAULT_LIMIT

    @property
    def searching(self) -> bool:
        """True when a filter is set: the whole subtree is searched, flat."""
        return bool(self.q or self.status or self.health or self.label)


def _number(args: Mapping[str, str], name: str, default: int, high: int) -> int:
    raw = args.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or not 0 <= int(raw) <= high:
        raise FilterError(name, f"{name}: expected an integer in 0-{high}, got {raw[:40]!r}")
    return int(raw)


def parse_filters(args: Mapping[str, str]) -> Filters:
    """:class:`Filters` from query arguments (FilterError naming the bad one)."""
    for name in ("group", "q", "label"):
        if len(args.get(name, "")) > MAX_TEXT:
            raise FilterError(name, f"{name}: expected at most {MAX_TEXT} characters")
    status = args.get("status", "")
    if status and status not in STATUSES:
        raise FilterError("status", f"status: expected one of {', '.join(STATUSES)}, "
                                    f"got {status[:40]!r}")
    health = args.get("health", "")
    if health and health not in HEALTH:
        raise FilterError("health", f"health: expected one of {', '.join(HEALTH)}, "
                                    f"got {health[:40]!r}")
    group = "/" + "/".join(p for p in args.get("group", "").split("/") if p)
    limit = _number(args, "limit", DEFAULT_LIMIT, MAX_LIMIT) or DEFAULT_LIMIT
    return Filters(group=group, q=args.get("q", "").strip().lower(), status=status,
                   health=health, label=args.get("label", "").strip(),
                   offset=_number(args, "offset", 0, 1 << 40), limit=limit)


def health_counts(app: App, tasks: Sequence[MarathonTask]) -> dict[str, int]:
    """The health bar's segments: each active task counted once, then the missing ones."""
    counts = dict.fromkeys(HEALTH, 0)
    active = [t for t in tasks if t.condition.is_active]
    for task in active:
        if task.condition in (InstanceCondition.STAGING, InstanceCondition.STARTING):
            counts["staged"] += 1
        elif task.healthy is True:
            counts["healthy"] += 1
        elif task.healthy is False:
            counts["unhealthy"] += 1
        else:
            counts["unknown"] += 1
    extra = len(active) - app.instances
    if extra > 0:
        counts["over"] = extra
        # The newest tasks are the ones over capacity; take them out of their segment.
        for key in ("unknown", "staged", "healthy", "unhealthy"):
            taken = min(extra, counts[key])
            counts[key] -= taken
            extra -= taken
    counts["unscheduled"] = max(app.instances - len(active), 0)
    return counts


def app_status(app: App, tasks: Sequence[MarathonTask], deploying: bool,
               queued: QueueEntry | None) -> str:
    """Running, Deploying, Suspended, Delayed (backing off) or Waiting (for offers)."""
    if deploying:
        return "Deploying"
    if app.instances == 0 and not any(t.condition.is_active for t in tasks):
        return "Suspended"
    if queued is not None:
        return "Waiting" if queued.overdue or queued.time_left_seconds <= 0 else "Delayed"
    return "Running"


def app_row(app: App, tasks: Sequence[MarathonTask], deployments: Sequence[str],
            queued: QueueEntry | None) -> Row:
    """One app of the apps view."""
    health = health_counts(app, tasks)
    running = sum(1 for t in tasks if t.condition is InstanceCondition.RUNNING)
    image = app.container.docker.image if app.container and app.container.docker else ""
    return {
        "id": app.id, "name": app.id.rsplit("/", 1)[-1], "instances": app.instances,
        "running": running, "tasks": sum(1 for t in tasks if t.condition.is_active),
        "status": app_status(app, tasks, bool(deployments), queued), "health": health,
        "cpus": app.cpus, "mem": app.mem, "disk": app.disk, "labels": dict(app.labels),
        "deployments": list(deployments), "image": image, "cmd": app.cmd or "",
        "version": app.version, "waiting": queued.count if queued is not None else 0,
    }


def under(app_id: str, group: str) -> bool:
    """True when ``app_id`` lies somewhere below ``group``."""
    return group == "/" or app_id.startswith(group.rstrip("/") + "/")


def child_group(app_id: str, group: str) -> str | None:
    """The subgroup of ``group`` that holds ``app_id`` (None: the app is directly in it)."""
    rest = app_id[len(group.rstrip("/")) + 1:]
    if "/" not in rest:
        return None
    return group.rstrip("/") + "/" + rest.split("/", 1)[0]


def group_rows(rows: Iterable[Row], group: str) -> list[Row]:
    """The subgroups directly under ``group``: apps, instances, running, cpus, mem, statuses."""
    groups: dict[str, Row] = {}
    for row in rows:
        if not under(row["id"], group):
            continue
        child = child_group(row["id"], group)
        if child is None:
            continue
        entry = groups.setdefault(child, {"id": child, "name": child.rsplit("/", 1)[-1],
                                          "apps": 0, "instances": 0, "running": 0,
                                          "cpus": 0.0, "mem": 0.0,
                                          "statuses": dict.fromkeys(STATUSES, 0)})
        entry["apps"] += 1
        entry["instances"] += row["instances"]
        entry["running"] += row["running"]
        entry["cpus"] += row["cpus"] * row["instances"]
        entry["mem"] += row["mem"] * row["instances"]
        entry["statuses"][row["status"]] += 1
    return [groups[key] for key in sorted(groups)]


def label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    """``key`` (present) or ``key=value`` (equal)."""
    key, sep, value = wanted.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value


def row_matches(row: Row, filters: Filters) -> bool:
    """The apps view's filters on one row."""
    if filters.status and row["status"] != filters.status:
        return False
    if filters.health and not row["health"][filters.health]:
        return False
    if filters.label and not label_matches(row["labels"], filters.label):
        return False
    return not filters.q or filters.q in row["id"].lower() or filters.q in row["cmd"].lower() \
        or filters.q in row["image"].lower()


def apps_page(rows: Sequence[Row], filters: Filters) -> dict[str, Any]:
    """The apps view: subgroups (when not searching), one page of apps, and counts."""
    inside = [row for row in rows if under(row["id"], filters.group)]
    if filters.searching:
        listed = [row for row in inside if row_matches(row, filters)]
        groups: list[Row] = []
    else:
        listed = [row for row in inside if child_group(row["id"], filters.group) is None]
        groups = group_rows(inside, filters.group)
    listed.sort(key=lambda row: row["id"])
    statuses = dict.fromkeys(STATUSES, 0)
    health = dict.fromkeys(HEALTH, 0)
    for row in inside:
        statuses[row["status"]] += 1
        for key, count in row["health"].items():
            if count:
                health[key] += 1
    return {"group": filters.group, "groups": groups, "total": len(listed),
            "offset": filters.offset, "limit": filters.limit,
            "apps": listed[filters.offset:filters.offset + filters.limit],
            "counts": {"status": statuses, "health": health, "apps": len(inside)}}
