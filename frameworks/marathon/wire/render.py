"""What the REST API adds around App and Task JSON (PURE: no I/O, no tornado).

Owns: the ``embed`` parameter (:func:`parse_embeds`), the embedded extras of
an app (:func:`app_extras`: counts, deployments, tasks, readiness,
lastTaskFailure, taskStats), ``/v2/queue`` entries, the ``text/plain``
rendering of ``/v2/tasks``, the ``label`` selector of ``/v2/apps``,
``{"deploymentId", "version"}`` references and the ``plan-format=light``
trimming of events.  App and Task objects themselves come from
``app_json`` and ``task_json``; nothing here adds keys Marathon does not have.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from frameworks.marathon.core.model import App, InstanceCondition, MarathonTask
from frameworks.marathon.core.reports import QueueEntry, TaskCounts, TaskFailure
from frameworks.marathon.core.service_ports import service_ports
from frameworks.marathon.core.timestamps import iso
from frameworks.marathon.wire.deployment_json import render_deployment

#: Embed names after the ``app.``/``apps.``/``group.apps.`` prefix.
APP_EMBEDS = frozenset({"tasks", "counts", "deployments", "readiness", "lastTaskFailure",
                        "taskStats"})
_EMBED_PREFIXES = ("group.apps.", "apps.", "app.")
#: Event types whose ``plan`` is trimmed by ``plan-format=light``.
_PLAN_KEYS_DROPPED_WHEN_LIGHT = ("original", "target")


def parse_embeds(values: Iterable[str]) -> set[str]:
    """The app embeds asked for (``apps.tasks``, ``app.counts``, ``group.apps.tasks``...).

    ``failures`` means ``lastTaskFailure`` (Marathon's older name) plus tasks;
    unknown names are ignored, as Marathon does.
    """
    found: set[str] = set()
    for value in values:
        for item in value.split(","):
            item = item.strip()
            for prefix in _EMBED_PREFIXES:
                if item.startswith(prefix):
                    name = item[len(prefix):]
                    if name == "failures":
                        found.update({"lastTaskFailure", "tasks"})
                    elif name in APP_EMBEDS:
                        found.add(name)
                    break
    return found


def deployment_ref(plan: Any) -> tuple[str, str] | None:
    """``(id, version)`` of a deployment plan (None for no plan)."""
    if plan is None:
        return None
    dep_id = getattr(plan, "id", None)
    version = getattr(plan, "version", None)
    if not isinstance(dep_id, str) or not isinstance(version, str):
        rendered = render_deployment(plan)
        dep_id, version = rendered["id"], rendered["version"]
    return dep_id, version


def counts_json(counts: TaskCounts) -> dict[str, int]:
    """The four task counters Marathon puts on an app."""
    return {"tasksStaged": counts.staged, "tasksRunning": counts.running,
            "tasksHealthy": counts.healthy, "tasksUnhealthy": counts.unhealthy}


def failure_json(failure: TaskFailure) -> dict[str, Any]:
    """An app's ``lastTaskFailure``."""
    return {"appId": failure.app_id, "host": failure.host, "message": failure.message,
            "state": failure.state, "taskId": failure.task_id,
            "timestamp": iso(failure.timestamp), "version": failure.version,
            "slaveId": failure.agent_id}


def task_stats_json(counts: TaskCounts) -> dict[str, Any]:
    """``taskStats`` with the one summary the facade can fill (``totalSummary``)."""
    if not (counts.staged or counts.running):
        return {}
    return {"totalSummary": {"stats": {"counts": {
        "staged": counts.staged, "running": counts.running,
        "healthy": counts.healthy, "unhealthy": counts.unhealthy}}}}


def app_extras(embeds: set[str], *, counts: TaskCounts | None = None,
               deployment_ids: list[str] | None = None,
               tasks: list[dict[str, Any]] | None = None,
               readiness: list[dict[str, Any]] | None = None,
               failure: TaskFailure | None = None) -> dict[str, Any]:
    """The read-only keys embedded in an app, in Marathon's order, for ``embeds``."""
    extra: dict[str, Any] = {}
    if "counts" in embeds and counts is not None:
        extra.update(counts_json(counts))
    if "deployments" in embeds:
        extra["deployments"] = [{"id": d} for d in deployment_ids or []]
    if "readiness" in embeds:
        extra["readinessCheckResults"] = list(readiness or [])
    if "tasks" in embeds:
        extra["tasks"] = list(tasks or [])
    if "lastTaskFailure" in embeds and failure is not None:
        extra["lastTaskFailure"] = failure_json(failure)
    if "taskStats" in embeds and counts is not None:
        stats = task_stats_json(counts)
        if stats:
            extra["taskStats"] = stats
    return extra


def queue_entry_json(entry: QueueEntry, app_json: dict[str, Any]) -> dict[str, Any]:
    """One ``/v2/queue`` entry (with the offer summary Marathon added in 1.4)."""
    reasons = sorted(entry.rejections.items())
    return {
        "count": entry.count,
        "delay": {"timeLeftSeconds": max(0, round(entry.time_left_seconds)),
                  "overdue": entry.overdue},
        "since": iso(entry.since),
        "processedOffersSummary": {
            "processedOffersCount": entry.processed_offers,
            "unusedOffersCount": entry.unused_offers,
            "rejectSummaryLastOffers": [
                {"reason": reason, "declined": count, "processed": entry.processed_offers}
                for reason, count in reasons],
            "rejectSummaryLaunchAttempt": [
                {"reason": reason, "declined": count, "processed": entry.processed_offers}
                for reason, count in reasons],
        },
        "lastUnusedOffers": [],
        "app": app_json,
    }


def tasks_text(apps: Iterable[App], tasks: Iterable[MarathonTask]) -> str:
    """``/v2/tasks`` as ``text/plain``: one tab-separated line per app and service port.

    ``<app_id_with_underscores>\\t<servicePort>\\t<host:hostPort>\\t...``; an app
    without service ports gets ``" "`` as the port and bare host names.  Only
    running tasks are listed; addresses are sorted.
    """
    by_app: dict[str, list[MarathonTask]] = {}
    for task in tasks:
        if task.condition is InstanceCondition.RUNNING:
            by_app.setdefault(task.app_id, []).append(task)
    lines: list[str] = []
    for app in apps:
        clean = app.id.strip("/").replace("/", "_")
        running = by_app.get(app.id, [])
        ports = service_ports(app)
        if not ports:
            hosts = sorted(t.host for t in running)
            lines.append("\t".join([clean, " ", *hosts]) + "\t")
            continue
        for index, port in enumerate(ports):
            addresses = sorted(f"{t.host}:{t.ports[index]}" for t in running
                               if index < len(t.ports))
            lines.append("\t".join([clean, str(port), *addresses]) + "\t")
    return "".join(line + "\n" for line in lines)


_SELECTOR_TERM = re.compile(
    r"^\s*(?P<key>[^\s=!,()]+)\s*(?:(?P<op>==|!=|\s+in\s+|\s+notin\s+)\s*"
    r"(?P<value>\([^)]*\)|[^\s,()]*))?\s*$")


def _split_selector(text: str) -> list[str]:
    """Split a label selector at commas outside parentheses."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return terms


def parse_label_selector(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """``key``, ``key==v``, ``key!=v``, ``key in (a,b)``, ``key notin (a,b)``, comma-joined.

    Raises :class:`ValueError` naming the bad term.
    """
    result: list[tuple[str, str, tuple[str, ...]]] = []
    for term in _split_selector(text):
        match = _SELECTOR_TERM.match(term)
        if match is None or not term.strip():
            raise ValueError(f"label: invalid selector term {term.strip()[:80]!r}; expected "
                             "key, key==value, key!=value, key in (a,b) or key notin (a,b)")
        op = (match.group("op") or "exists").strip()
        raw = match.group("value") or ""
        if op in ("in", "notin"):
            if not (raw.startswith("(") and raw.endswith(")")):
                raise ValueError(f"label: {op} needs a parenthesised list in {term.strip()!r}")
            values = tuple(v.strip() for v in raw[1:-1].split(",") if v.strip())
        else:
            values = (raw,)
        result.append((match.group("key"), op, values))
    return result


def labels_match(labels: dict[str, str], selector: list[tuple[str, str, tuple[str, ...]]]) -> bool:
    """True when ``labels`` satisfy every term of a parsed selector."""
    for key, op, values in selector:
        present = key in labels
        value = labels.get(key)
        if op == "exists" and not present:
            return False
        if op == "==" and value != values[0]:
            return False
        if op == "!=" and value == values[0]:
            return False
        if op == "in" and value not in values:
            return False
        if op == "notin" and present and value in values:
            return False
    return True


def light_event(event: dict[str, Any]) -> dict[str, Any]:
    """``plan-format=light``: the event without ``plan.original`` and ``plan.target``."""
    plan = event.get("plan")
    if not isinstance(plan, dict) or not any(k in plan for k in _PLAN_KEYS_DROPPED_WHEN_LIGHT):
        return event
    trimmed = {k: v for k, v in plan.items() if k not in _PLAN_KEYS_DROPPED_WHEN_LIGHT}
    return {**event, "plan": trimmed}
