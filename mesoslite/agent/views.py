"""What the agent shows: ``/state`` JSON, ``/metrics/snapshot`` and Prometheus text.

Owns: turning the agent's records into Mesos-shaped JSON (field names as in
Mesos's agent ``/state``) and Mesos metric names (``slave/...``, kept for
tool compatibility), and the Prometheus rendering of those metrics.  Reads
the agent through :class:`AgentView` (what
:class:`~mesoslite.agent.main.AgentProcess` offers); changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

import mesoslite
from mesoslite.agent.config import AgentConfig
from mesoslite.agent.records import AgentFramework, AgentMetrics, ExecutorState
from mesoslite.api.ports import ExecRequest, ExecSessionPort, ExecutorPort
from mesoslite.api.version import MESOS_VERSION, version_info
from mesoslite.authz import Viewer, executor_user
from mesoslite.clock import Clock
from mesoslite.protocol import AgentInfo, MasterInfo, TaskState
from mesoslite.resources import Resources


class AgentView(Protocol):
    """What the views and HTTP handlers read of a running agent."""

    @property
    def executors(self) -> ExecutorPort:
        """The executor side (the v1 executor API serves HTTP executors through it)."""
        ...

    def agent_info(self) -> AgentInfo:
        """This agent's AgentInfo."""
        ...

    @property
    def config(self) -> AgentConfig:
        """The agent's flags."""
        ...

    @property
    def clock(self) -> Clock:
        """The agent's clock."""
        ...

    @property
    def agent_id(self) -> str | None:
        """The id the master gave (None until registered)."""
        ...

    @property
    def work_dir(self) -> str:
        """The work directory (absolute)."""
        ...

    @property
    def http_port(self) -> int:
        """The HTTP port bound."""
        ...

    @property
    def start_time(self) -> float:
        """When the agent started (epoch seconds)."""
        ...

    @property
    def master_info(self) -> MasterInfo | None:
        """The master registered with."""
        ...

    @property
    def resources(self) -> Resources:
        """Total resources."""
        ...

    @property
    def attributes(self) -> dict[str, str]:
        """Attributes."""
        ...

    @property
    def frameworks(self) -> list[AgentFramework]:
        """Frameworks with executors or unacknowledged tasks."""
        ...

    @property
    def completed_frameworks(self) -> list[AgentFramework]:
        """Recently removed frameworks."""
        ...

    @property
    def metrics(self) -> AgentMetrics:
        """The counters."""
        ...

    def is_registered(self) -> bool:
        """True while registered with a master."""
        ...

    @property
    def checkpoint_error(self) -> str:
        """Why checkpoint writes fail now ("" while they work)."""
        ...

    def registration_counts(self) -> tuple[int, int]:
        """(registration messages sent, re-registrations started)."""
        ...

    def containerizers_health(self) -> dict[str, Any]:
        """``containerizers`` of ``/state``."""
        ...

    def launch_session(self, request: ExecRequest) -> Awaitable[ExecSessionPort]:
        """``ctl exec``: start ``request`` in a running task's container."""
        ...

    def monitor_statistics(self) -> Awaitable[list[dict[str, Any]]]:
        """``/monitor/statistics``."""
        ...

    def gc_metrics(self) -> dict[str, float]:
        """Sandbox GC's ``gc/...`` metrics (Mesos names)."""
        ...

    def fetcher_metrics(self) -> dict[str, float]:
        """The fetcher's ``containerizer/fetcher/...`` metrics (Mesos names)."""
        ...

    def sandbox_gone(self, path: str) -> str | None:
        """Why a missing ``/files`` path is gone (sandbox GC removed it), else None."""
        ...

_GAUGE_STATES = {
    TaskState.TASK_STAGING: "staging",
    TaskState.TASK_STARTING: "starting",
    TaskState.TASK_RUNNING: "running",
    TaskState.TASK_KILLING: "killing",
}

#: Metric names that are counters (everything else is a gauge).
COUNTERS = frozenset(
    {
        "slave/tasks_finished",
        "slave/tasks_failed",
        "slave/tasks_killed",
        "slave/tasks_lost",
        "slave/tasks_dropped",
        "slave/tasks_error",
        "slave/tasks_gone",
        "slave/valid_status_updates",
        "slave/invalid_status_updates",
        "slave/executors_terminated",
        "slave/executors_registered_total",
        "slave/container_launch_errors",
        "slave/checkpoint_failures",
        "slave/recovery_unknown_processes_killed",
        "slave/registration_attempts",
        "slave/reregistrations",
        "gc/path_removals_succeeded",
        "gc/path_removals_failed",
    }
)


def version_json() -> dict[str, Any]:
    """``/version``: Mesos's numeric version, ours as ``mesoslite_version``."""
    return version_info()


def framework_view(fw: AgentFramework, agent_id: str, viewer: Viewer | None
                   ) -> dict[str, Any] | None:
    """A framework's /state JSON as ``viewer``'s principal may see it (None: not at all).

    ``view_frameworks`` hides the framework, ``view_executors`` its executors,
    ``view_tasks`` their tasks.
    """
    out = fw.to_json(agent_id)
    if viewer is None:
        return out
    if not viewer.framework(fw.info):
        return None
    for key, records in (("executors", list(fw.executors.values())),
                         ("completed_executors", list(fw.completed_executors))):
        kept = []
        for record, shown in zip(records, out[key], strict=True):
            if not viewer.executor(record.info, fw.info):
                continue
            tasks = {"tasks": record.launched_tasks.values(),
                     "queued_tasks": record.queued_tasks.values(),
                     "completed_tasks": [*record.terminated_tasks.values(),
                                         *record.completed_tasks]}
            for name, group in tasks.items():
                shown[name] = [entry for task, entry in zip(group, shown[name], strict=True)
                               if viewer.task(task.info, fw.info)]
            kept.append(shown)
        out[key] = kept
    return out


def sandbox_user(agent: AgentView, framework_id: str, executor_id: str) -> str | None:
    """The user whose sandbox this is (``access_sandboxes``); None when no record is left."""
    for fw in (*agent.frameworks, *agent.completed_frameworks):
        if fw.id != framework_id:
            continue
        for executor in (*fw.executors.values(), *fw.completed_executors):
            if executor.executor_id == executor_id:
                return executor_user(executor.info, fw.info)
        return executor_user(None, fw.info)
    return None


def state_json(agent: AgentView, viewer: Viewer | None = None,
               show_flags: bool = True) -> dict[str, Any]:
    """The agent's ``/state`` (Mesos field names); what ``viewer`` may see, with one.

    ``show_flags`` False leaves ``flags`` out (``get_endpoints`` refuses ``/flags``).
    """
    agent_id = agent.agent_id or ""
    info = agent.master_info
    config = agent.config
    out: dict[str, Any] = {
        "version": MESOS_VERSION,
        "mesoslite_version": mesoslite.__version__,
        "start_time": agent.start_time,
        "id": agent_id,
        "pid": f"slave(1)@{config.ip}:{agent.http_port}",
        "hostname": config.effective_hostname,
        "port": agent.http_port,
        "registered": agent.is_registered(),
        "resources": agent.resources.to_json_dict(),
        "attributes": agent.attributes,
        "master_hostname": info.hostname if info else "",
        "flags": config.to_flags(),
        "containerizers": agent.containerizers_health(),
        "frameworks": [view for fw in agent.frameworks
                       if (view := framework_view(fw, agent_id, viewer)) is not None],
        "completed_frameworks": [view for fw in agent.completed_frameworks
                                 if (view := framework_view(fw, agent_id, viewer)) is not None],
    }
    if not show_flags:
        del out["flags"]
    return out


def _used(agent: AgentView) -> Resources:
    used = Resources()
    for fw in agent.frameworks:
        for ex in fw.executors.values():
            if ex.state is not ExecutorState.TERMINATED:
                used = used + ex.resources()
    return used


def metrics_snapshot(agent: AgentView) -> dict[str, float]:
    """``/metrics/snapshot`` with Mesos agent metric names."""
    metrics = agent.metrics
    attempts, reregistrations = agent.registration_counts()
    gauges = dict.fromkeys(_GAUGE_STATES.values(), 0)
    executors = dict.fromkeys(ExecutorState, 0)
    for fw in agent.frameworks:
        for ex in fw.executors.values():
            executors[ex.state] += 1
            for task in [*ex.queued_tasks.values(), *ex.launched_tasks.values()]:
                name = _GAUGE_STATES.get(task.state)
                if name:
                    gauges[name] += 1
    total = agent.resources
    used = _used(agent)
    out: dict[str, float] = {
        "slave/registered": 1.0 if agent.is_registered() else 0.0,
        "slave/uptime_secs": max(agent.clock.time() - agent.start_time, 0.0)
        if agent.start_time
        else 0.0,
        "slave/frameworks_active": float(len(agent.frameworks)),
        "slave/executors_registering": float(executors[ExecutorState.REGISTERING]),
        "slave/executors_running": float(executors[ExecutorState.RUNNING]),
        "slave/executors_terminating": float(executors[ExecutorState.TERMINATING]),
        "slave/executors_terminated": float(metrics.executors_terminated),
        "slave/executors_registered_total": float(metrics.executors_registered),
        "slave/container_launch_errors": float(metrics.launch_failures),
        "slave/checkpoint_failures": float(metrics.checkpoint_failures),
        "slave/recovery_unknown_processes_killed": float(metrics.unknown_processes_killed),
        "slave/valid_status_updates": float(metrics.valid_status_updates),
        "slave/invalid_status_updates": float(metrics.invalid_status_updates),
        "slave/registration_attempts": float(attempts),
        "slave/reregistrations": float(reregistrations),
        **agent.gc_metrics(),
        **agent.fetcher_metrics(),
    }
    for name, count in gauges.items():
        out[f"slave/tasks_{name}"] = float(count)
    for name in ("finished", "failed", "killed", "lost", "dropped", "error", "gone"):
        out[f"slave/tasks_{name}"] = float(metrics.terminal.get(name, 0))
    for res in ("cpus", "gpus", "mem", "disk"):
        t, u = total.scalar(res), used.scalar(res)
        out[f"slave/{res}_total"] = t
        out[f"slave/{res}_used"] = u
        out[f"slave/{res}_percent"] = u / t if t else 0.0
    return out


def prometheus_text(snapshot: dict[str, float]) -> str:
    """Render a snapshot as Prometheus text (``slave/x`` → ``mesoslite_slave_x``)."""
    lines = []
    for name in sorted(snapshot):
        metric = "mesoslite_" + name.replace("/", "_").replace("-", "_")
        kind = "counter" if name in COUNTERS else "gauge"
        lines.append(f"# TYPE {metric} {kind}")
        lines.append(f"{metric} {snapshot[name]:.17g}")
    return "\n".join(lines) + "\n"


def statistics_entry(ex: Any, usage: Any) -> dict[str, Any]:
    """One ``/monitor/statistics`` entry (Mesos shape) for an executor and its usage.

    Containerizers that know more (Docker: a memory limit, network counters)
    provide ``mem_limit_bytes`` and ``extra_statistics()`` on their usage.
    """
    # The executor's resources plus its live tasks' (ex.resources()), in exact thousandths
    # and without building a Resources: this runs for every container on every scrape.
    live = ex.live_tasks()
    cpus = (ex.info.resources.scalar_milli("cpus")
            + sum(t.info.resources.scalar_milli("cpus") for t in live)) / 1000
    mem = (ex.info.resources.scalar_milli("mem")
           + sum(t.info.resources.scalar_milli("mem") for t in live)) / 1000
    extra = getattr(usage, "extra_statistics", None)
    return {
        "executor_id": ex.executor_id,
        "executor_name": ex.info.name,
        "framework_id": ex.framework_id,
        "source": ex.executor_id,
        "container_id": ex.container_id,
        "statistics": {
            "timestamp": usage.timestamp,
            "cpus_user_time_secs": round(usage.cpus_user_time_secs, 3),
            "cpus_system_time_secs": round(usage.cpus_system_time_secs, 3),
            "cpus_limit": cpus,
            "mem_rss_bytes": usage.mem_rss_bytes,
            "mem_limit_bytes": getattr(usage, "mem_limit_bytes", 0) or int(mem * 1024 * 1024),
            "processes": usage.processes,
            **(extra() if extra is not None else {}),
        },
    }


#: Per-container series on ``/metrics``: (statistics key, metric name, type, help).
CONTAINER_SERIES = (
    ("cpus_user_time_secs", "mesoslite_container_cpu_user_seconds_total", "counter",
     "CPU time the container spent in user mode"),
    ("cpus_system_time_secs", "mesoslite_container_cpu_system_seconds_total", "counter",
     "CPU time the container spent in kernel mode"),
    ("cpus_limit", "mesoslite_container_cpus_limit", "gauge",
     "CPUs the container's tasks and executor were given"),
    ("mem_rss_bytes", "mesoslite_container_memory_rss_bytes", "gauge",
     "Resident memory of the container"),
    ("mem_limit_bytes", "mesoslite_container_memory_limit_bytes", "gauge",
     "Memory limit of the container (its cgroup limit, else the memory given)"),
    ("mem_cache_bytes", "mesoslite_container_memory_cache_bytes", "gauge",
     "Page cache charged to the container's memory cgroup (Docker tasks)"),
    ("processes", "mesoslite_container_processes", "gauge",
     "Processes in the container"),
    ("mem_total_bytes", "mesoslite_container_memory_usage_bytes", "gauge",
     "Memory charged to the container's memory cgroup (command tasks with cgroups/mem)"),
    ("cpus_nr_throttled", "mesoslite_container_cpu_throttled_periods_total", "counter",
     "CFS periods in which the container was throttled (cgroups/cpu)"),
    ("cpus_throttled_time_secs", "mesoslite_container_cpu_throttled_seconds_total", "counter",
     "Time the container was throttled by its CFS quota (cgroups/cpu)"),
    *(
        (f"net_{d}_{w}", f"mesoslite_container_network_{d}_{w}_total", "counter",
         f"Network {w} {'received' if d == 'rx' else 'sent'} by the container")
        for d in ("rx", "tx")
        for w in ("bytes", "packets", "errors", "dropped")
    ),
)


#: Series whose TYPE is shown even with no container (the rest only when measured).
_ALWAYS_SHOWN = frozenset({"cpus_user_time_secs", "cpus_system_time_secs", "cpus_limit",
                           "mem_rss_bytes", "mem_limit_bytes", "processes"})


def escape_label_value(value: str) -> str:
    """A label value for the Prometheus text format (backslash, quote, newline escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def container_labels(entry: dict[str, Any], frameworks: list[AgentFramework]) -> dict[str, str]:
    """The labels of one ``/monitor/statistics`` entry's series.

    ``task_id`` is the executor's running task (several joined by commas for a
    custom executor running more than one); ``app_id`` is the Marathon app
    (``MARATHON_APP_ID`` of the task's environment) when a task names one.
    """
    framework_id = str(entry.get("framework_id", ""))
    ex = next((fw.executors.get(str(entry.get("executor_id", ""))) for fw in frameworks
               if fw.id == framework_id), None)
    return _labels(entry, ex)


def _labels(entry: dict[str, Any], ex: Any) -> dict[str, str]:
    labels = {"framework_id": str(entry.get("framework_id", "")),
              "executor_id": str(entry.get("executor_id", "")),
              "container_id": str(entry.get("container_id", ""))}
    tasks = sorted(ex.launched_tasks.values(), key=lambda t: t.task_id) if ex else []
    labels["task_id"] = ",".join(t.task_id for t in tasks)
    apps = sorted({t.info.command.environment.get("MARATHON_APP_ID", "")
                   for t in tasks if t.info.command is not None} - {""})
    if apps:
        labels["app_id"] = ",".join(apps)
    return labels


class ContainerSeries:
    """Renders the per-container series, keeping each container's label text between scrapes.

    A container's labels change only when its executor's tasks do, so the label text is
    cached by (framework, executor, container, task ids); entries not seen in a scrape
    are dropped from the cache, which therefore holds at most the running containers.
    """

    def __init__(self) -> None:
        """An empty cache."""
        self._labels: dict[tuple[Any, ...], str] = {}

    def label_texts(self, entries: list[dict[str, Any]],
                    frameworks: list[AgentFramework]) -> list[str]:
        """Each entry's label text (``a="x",b="y"``), from the cache where it is current."""
        by_id = {fw.id: fw for fw in frameworks}
        old, new = self._labels, {}
        out = []
        for entry in entries:
            fw = by_id.get(str(entry.get("framework_id", "")))
            ex = fw.executors.get(str(entry.get("executor_id", ""))) if fw else None
            key = (entry.get("framework_id"), entry.get("executor_id"),
                   entry.get("container_id"), tuple(ex.launched_tasks) if ex else ())
            text = old.get(key)
            if text is None:
                text = ",".join(f'{k}="{escape_label_value(v)}"'
                                for k, v in sorted(_labels(entry, ex).items()))
            new[key] = text
            out.append(text)
        self._labels = new
        return out

    def render(self, entries: list[dict[str, Any]], frameworks: list[AgentFramework]) -> str:
        """Per-container usage (the ``/monitor/statistics`` entries) as Prometheus text."""
        texts = self.label_texts(entries, frameworks)
        stats = [entry.get("statistics") or {} for entry in entries]
        lines: list[str] = []
        numbers = (int, float)
        for key, metric, kind, help_text in CONTAINER_SERIES:
            present = [f"{metric}{{{text}}} {value!r}"  # ints as ints, floats round-trip
                       for text, value in zip(texts, [st.get(key) for st in stats], strict=True)
                       if value.__class__ in numbers]
            if present or key in _ALWAYS_SHOWN:
                lines.append(f"# HELP {metric} {help_text}.")
                lines.append(f"# TYPE {metric} {kind}")
                lines += present
        return "\n".join(lines) + "\n"


def containers_prometheus_text(entries: list[dict[str, Any]],
                               frameworks: list[AgentFramework]) -> str:
    """Per-container usage (the ``/monitor/statistics`` entries) as Prometheus text."""
    return ContainerSeries().render(entries, frameworks)
