"""The master's metrics: Mesos names in JSON, and the same as Prometheus text (PURE).

Owns: :func:`snapshot` (the ``/metrics/snapshot`` document, Mesos metric
names such as ``master/tasks_running`` and ``allocator/mesos/allocation_runs``)
and :func:`prometheus_text` (``/metrics``: each name prefixed ``mesoslite_``
and sanitised, so ``master/tasks_running`` becomes
``mesoslite_master_tasks_running``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from mesoslite.master.records import Histogram
from mesoslite.master.state import MasterState
from mesoslite.promtext import HistogramFamily, header, histogram_lines
from mesoslite.protocol import TaskState

#: Task states reported as ``master/tasks_<state>``.
TASK_METRIC_STATES = (
    TaskState.TASK_STAGING, TaskState.TASK_STARTING, TaskState.TASK_RUNNING,
    TaskState.TASK_KILLING, TaskState.TASK_FINISHED, TaskState.TASK_FAILED,
    TaskState.TASK_KILLED, TaskState.TASK_LOST, TaskState.TASK_ERROR,
    TaskState.TASK_DROPPED, TaskState.TASK_UNREACHABLE, TaskState.TASK_GONE,
    TaskState.TASK_GONE_BY_OPERATOR,
)

#: Metrics that only ever grow (Prometheus ``counter``); the rest are gauges.
_COUNTER_RE = re.compile(
    r"^(master/(messages_.*|invalid_messages|dropped_messages|slave_removals|"
    r"slave_registrations|valid_status_updates|illegal_transitions|"
    r"tasks_(finished|failed|killed|lost|error|dropped|gone|gone_by_operator))|"
    r"allocator/mesos/allocation_runs)$"
)
_CAMEL_RE = re.compile(r"(?<!^)(?=[A-Z])")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_]")


def snake_case(name: str) -> str:
    """``RegisterAgent`` -> ``register_agent``."""
    return _CAMEL_RE.sub("_", name).lower()


def _percent(used: float, total: float) -> float:
    return used / total if total > 0 else 0.0


def snapshot(
    state: MasterState,
    *,
    elected: bool,
    uptime: float,
    messages_received: int,
    messages_by_type: Mapping[str, int],
    decode_errors: int,
    transport_dropped: int,
    allocation_runs: int,
    allocation_run_ms: float,
    event_queue_dispatches: int,
) -> dict[str, float]:
    """The ``/metrics/snapshot`` document."""
    agents = state.agents.values()
    frameworks = state.frameworks.values()
    connected_agents = sum(1 for agent in agents if agent.connected)
    connected_frameworks = sum(1 for fw in frameworks if fw.connected)
    active_frameworks = sum(1 for fw in frameworks if fw.active)
    counters = state.counters
    out: dict[str, float] = {
        "master/elected": 1.0 if elected else 0.0,
        "master/uptime_secs": uptime,
        "master/slaves_active": connected_agents,
        "master/slaves_inactive": len(state.agents) - connected_agents,
        "master/slaves_connected": connected_agents,
        "master/slaves_disconnected": len(state.agents) - connected_agents,
        "master/slaves_unreachable": len(state.unreachable_agents),
        "master/slave_removals": counters["agent_removals"],
        "master/slave_reregistrations_repeated": counters["agent_reregistrations_repeated"],
        "master/frameworks_active": active_frameworks,
        "master/frameworks_inactive": len(state.frameworks) - active_frameworks,
        "master/frameworks_connected": connected_frameworks,
        "master/frameworks_disconnected": len(state.frameworks) - connected_frameworks,
        "master/frameworks_completed": len(state.completed_frameworks),
        "master/outstanding_offers": len(state.offers),
        "master/messages_received": messages_received,
        "master/invalid_messages": decode_errors + counters["refused"],
        "master/dropped_messages": transport_dropped + counters["dropped"],
        "master/valid_status_updates": counters["status_updates"],
        "master/illegal_transitions": counters["illegal_transitions"],
        "allocator/mesos/allocation_runs": allocation_runs,
        "allocator/mesos/allocation_run_ms": allocation_run_ms,
        "allocator/mesos/event_queue_dispatches": event_queue_dispatches,
    }
    for task_state in TASK_METRIC_STATES:
        short = task_state.value.lower().removeprefix("task_")
        out[f"master/tasks_{short}"] = state.task_states[task_state]
    for name, count in messages_by_type.items():
        out[f"master/messages_{snake_case(name)}"] = count
    for resource in ("cpus", "mem", "disk", "gpus"):
        total = sum(agent.info.resources.scalar(resource) for agent in agents)
        used = sum(agent.used.scalar(resource) for agent in agents)
        out[f"master/{resource}_total"] = total
        out[f"master/{resource}_used"] = used
        out[f"master/{resource}_percent"] = _percent(used, total)
    return out


def prometheus_name(name: str) -> str:
    """``master/tasks_running`` -> ``mesoslite_master_tasks_running``."""
    return "mesoslite_" + _UNSAFE_RE.sub("_", name)


def _format(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def prometheus_text(values: Mapping[str, float]) -> str:
    """The metrics in the Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []
    for name in sorted(values):
        metric = prometheus_name(name)
        kind = "counter" if _COUNTER_RE.match(name) else "gauge"
        lines.append(f"# HELP {metric} Mesos metric {name}")
        lines.append(f"# TYPE {metric} {kind}")
        lines.append(f"{metric} {_format(values[name])}")
    return "\n".join(lines) + "\n"


def histogram_text(metric: str, help_text: str, histogram: Histogram) -> str:
    """One histogram in the text format: cumulative ``_bucket``s, ``_sum`` and ``_count``."""
    return "\n".join([*header(metric, "histogram", help_text),
                      *histogram_lines(metric, "", histogram)]) + "\n"


#: The master's histogram families (``/metrics``), for the dashboard check and the docs.
LAUNCH_TO_RUNNING_METRIC = "mesoslite_master_task_launch_to_running_seconds"
OFFER_ROUND_TRIP_METRIC = "mesoslite_master_offer_round_trip_seconds"
HTTP_METRIC = "mesoslite_master_http_request_duration_seconds"


def histograms_text(launch_to_running: Histogram, offer_round_trip: HistogramFamily) -> str:
    """The master's histograms (``/metrics`` only: the JSON snapshot has no place for them)."""
    return histogram_text(
        LAUNCH_TO_RUNNING_METRIC,
        "Seconds from the master sending a launch to the task's first TASK_RUNNING.",
        launch_to_running) + offer_round_trip.text(
        OFFER_ROUND_TRIP_METRIC,
        "Seconds from the master sending an offer to the framework's accept or decline "
        "of it, by answer.")
