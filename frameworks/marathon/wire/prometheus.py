"""The framework's metrics in Prometheus text, for ``GET /metrics/prometheus`` (PURE).

Owns :func:`prometheus_text`: the ``/metrics`` JSON's gauges and counters under
``mesoslite_marathon_`` names (``apps.count`` becomes ``mesoslite_marathon_apps``,
counter ``deployments.started`` becomes ``mesoslite_marathon_deployments_started_total``),
tasks by state as one labelled gauge, and the deployment-duration histogram.  The HTTP
request histogram is the API layer's (it owns the request timings) and is appended there.
:data:`GAUGES` and :data:`COUNTERS` list every name, so a family exists (at 0) before
its first event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mesoslite.promtext import HistogramFamily, format_value, header

PREFIX = "mesoslite_marathon_"
#: ``/metrics`` gauge -> (Prometheus name without the prefix, help).
GAUGES = {
    "apps.count": ("apps", "Apps defined."),
    "tasks.count": ("tasks", "Tasks tracked (every state)."),
    "tasks.running": ("tasks_running", "Tasks running."),
    "deployments.count": ("deployments", "Deployments in progress."),
    "events.subscribers": ("event_stream_subscribers", "Clients following /v2/events."),
    "leader": ("leader", "1 while this instance leads."),
    "launch_queue.waiting": ("launch_queue_waiting", "Instances waiting for an offer."),
    "offers.suppressed": ("offers_suppressed", "1 while offers are suppressed."),
    "framework.subscribed": ("framework_subscribed", "1 while subscribed to the master."),
}
#: Counters (``/metrics`` counter name -> help); reported as ``<name>_total``.
COUNTERS = {
    "deployments.started": "Deployments started.",
    "deployments.succeeded": "Deployments that finished.",
    "deployments.failed": "Deployments that were canceled or failed.",
    "tasks.launched": "Tasks launched.",
    "tasks.killed": "Tasks killed by the framework.",
    "offers.received": "Offers received from the master.",
    "offers.matched": "Offers used to launch tasks.",
    "offers.declined": "Offers declined.",
}
TASKS_BY_STATE = PREFIX + "tasks_by_state"
DEPLOYMENT_DURATION = PREFIX + "deployment_duration_seconds"
HTTP_METRIC = PREFIX + "http_request_duration_seconds"


def _counter_name(name: str) -> str:
    return PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", name) + "_total"


def prometheus_text(metrics: Mapping[str, Any], tasks_by_state: Mapping[str, int],
                    deployment_durations: HistogramFamily) -> str:
    """The text for ``metrics`` (the ``/metrics`` JSON), task states and deployments."""
    lines: list[str] = []
    gauges = {k: v.get("value", 0) for k, v in metrics.get("gauges", {}).items()}
    for key, (name, help_text) in GAUGES.items():
        lines += header(PREFIX + name, "gauge", help_text)
        lines.append(f"{PREFIX}{name} {format_value(gauges.get(key, 0))}")
    counters = {k: v.get("count", 0) for k, v in metrics.get("counters", {}).items()}
    for key in sorted(set(COUNTERS) | set(counters)):
        metric = _counter_name(key)
        lines += header(metric, "counter", COUNTERS.get(key, f"Counter {key}."))
        lines.append(f"{metric} {format_value(counters.get(key, 0))}")
    lines += header(TASKS_BY_STATE, "gauge", "Tracked tasks by Mesos task state.")
    lines += [f'{TASKS_BY_STATE}{{state="{state}"}} {count}'
              for state, count in sorted(tasks_by_state.items())]
    text = "\n".join(lines) + "\n"
    return text + deployment_durations.text(
        DEPLOYMENT_DURATION, "Seconds from a deployment's start to its end, by outcome.")
