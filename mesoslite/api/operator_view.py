"""The master's state as the v1 operator API shows it (PURE).

Owns: the answers of GET_STATE, GET_AGENTS, GET_FRAMEWORKS, GET_TASKS, GET_EXECUTORS,
GET_ROLES and GET_WEIGHTS, and the events of the operator SUBSCRIBE stream
(:func:`feed_event`: one entry of the master's change feed → one v1 event).  It reads
the master's records through :mod:`.ports` Protocols (attributes only; never writes).
With a :class:`~mesoslite.authz.Viewer` the answers hold only the frameworks, tasks and
executors its principal may see (``view_frameworks``, ``view_tasks``,
``view_executors``); :func:`event_visible` says the same of a stream's events.
"""

from __future__ import annotations

from typing import Any

from mesoslite.api.ports import AgentView, FrameworkView, StateView, TaskView
from mesoslite.api.v1json import (
    NANOS,
    agent_info_json,
    container_json,
    discovery_json,
    executor_info_json,
    framework_info_json,
    id_json,
    labels_json,
    offer_json,
    resources_json,
    status_json,
)
from mesoslite.authz import Viewer
from mesoslite.resources import Resources


def time_info(seconds: float | None) -> dict[str, int] | None:
    """Seconds since the epoch as a TimeInfo."""
    return None if seconds is None else {"nanoseconds": round(seconds * NANOS)}


def task_json(task: TaskView) -> dict[str, Any]:
    """A Task."""
    out: dict[str, Any] = {
        "name": task.name, "task_id": id_json(task.task_id),
        "framework_id": id_json(task.framework_id), "agent_id": id_json(task.agent_id),
        "state": task.state.value, "resources": resources_json(task.resources, task.role),
        "statuses": [status_json(s) for s in task.statuses],
        "labels": labels_json(task.labels)}
    if task.executor_id:
        out["executor_id"] = id_json(task.executor_id)
    if task.statuses:
        out["status_update_state"] = task.statuses[-1].state.value
    info = task.info
    if info is not None and info.container is not None:
        out["container"] = container_json(info.container)
    if task.discovery is not None:
        out["discovery"] = discovery_json(task.discovery)
    return out


def maintenance_json(entry: Any) -> dict[str, Any]:
    """An agent's ``deactivated``, ``drain_info`` and ``estimated_drain_start_time``."""
    if entry is None:
        return {"deactivated": False}
    out: dict[str, Any] = {"deactivated": bool(entry.deactivated)}
    if entry.drain_state is not None:
        config: dict[str, Any] = {"mark_gone": entry.mark_gone}
        if entry.max_grace_period is not None:
            config["max_grace_period"] = {"nanoseconds": round(entry.max_grace_period * NANOS)}
        out["drain_info"] = {"state": entry.drain_state, "config": config}
        if entry.drain_started is not None:
            out["estimated_drain_start_time"] = time_info(entry.drain_started)
    return out


def agent_json(agent: AgentView) -> dict[str, Any]:
    """An agent of GET_AGENTS."""
    out: dict[str, Any] = {
        "agent_info": agent_info_json(agent.info), "active": agent.connected,
        **maintenance_json(getattr(agent, "maintenance", None)), "version": agent.version_string,
        "pid": f"slave(1)@{agent.info.hostname}:{agent.info.port}",
        "registered_time": time_info(agent.registered_time),
        "total_resources": resources_json(agent.info.resources),
        "allocated_resources": resources_json(agent.used + agent.offered),
        "offered_resources": resources_json(agent.offered), "capabilities": []}
    if agent.reregistered_time is not None:
        out["reregistered_time"] = time_info(agent.reregistered_time)
    return out


def framework_json(state: StateView, framework: FrameworkView) -> dict[str, Any]:
    """A framework of GET_FRAMEWORKS."""
    offers = [state.offers[o].offer for o in sorted(framework.offers) if o in state.offers]
    offered = Resources()
    for offer in offers:
        offered = offered + offer.resources
    out: dict[str, Any] = {
        "framework_info": framework_info_json(framework.info), "active": framework.active,
        "connected": framework.connected, "recovered": framework.recovered,
        "registered_time": time_info(framework.registered_time),
        "offers": [offer_json(o) for o in offers],
        "allocated_resources": resources_json(framework.used_resources() + offered),
        "offered_resources": resources_json(offered)}
    for key in ("reregistered_time", "unregistered_time"):
        value = getattr(framework, key)
        if value is not None:
            out[key] = time_info(value)
    return out


def get_agents(state: StateView) -> dict[str, Any]:
    """GET_AGENTS."""
    return {"agents": [agent_json(a) for a in list(state.agents.values())],
            "recovered_agents": [agent_info_json(i)
                                 for i in list(state.recovered_agents.values())]}


def _seen(frameworks: list[FrameworkView], viewer: Viewer | None) -> list[FrameworkView]:
    return [f for f in frameworks if viewer is None or viewer.framework(f.info)]


def _task_seen(state: StateView, task: TaskView, viewer: Viewer | None) -> bool:
    """May ``viewer`` see this task (and its framework)?"""
    if viewer is None:
        return True
    framework = state.frameworks.get(task.framework_id)
    if framework is None:
        framework = next((f for f in state.completed_frameworks
                          if f.id == task.framework_id), None)
    return (framework is not None and viewer.framework(framework.info)
            and viewer.task(task.info, framework.info))


def get_frameworks(state: StateView, viewer: Viewer | None = None) -> dict[str, Any]:
    """GET_FRAMEWORKS (those ``viewer`` may see)."""
    return {"frameworks": [framework_json(state, f)
                           for f in _seen(list(state.frameworks.values()), viewer)],
            "completed_frameworks": [framework_json(state, f)
                                     for f in _seen(list(state.completed_frameworks), viewer)]}


def get_tasks(state: StateView, viewer: Viewer | None = None) -> dict[str, Any]:
    """GET_TASKS (those ``viewer`` may see)."""
    tasks: list[dict[str, Any]] = []
    unreachable: list[dict[str, Any]] = []
    completed: list[dict[str, Any]] = []
    frameworks = list(state.frameworks.values()) + list(state.completed_frameworks)
    for framework in _seen(frameworks, viewer):
        def seen(task: TaskView, info: Any = framework.info) -> bool:
            return viewer is None or viewer.task(task.info, info)
        tasks += [task_json(t) for t in framework.tasks.values() if seen(t)]
        unreachable += [task_json(t) for t in framework.unreachable_tasks.values() if seen(t)]
        completed += [task_json(t) for t in framework.completed_tasks if seen(t)]
    return {"tasks": tasks, "unreachable_tasks": unreachable, "completed_tasks": completed,
            "orphan_tasks": [], "pending_tasks": []}


def _executor_seen(state: StateView, framework_id: str, info: Any,
                   viewer: Viewer | None) -> bool:
    if viewer is None:
        return True
    framework = state.frameworks.get(framework_id)
    return (framework is not None and viewer.framework(framework.info)
            and viewer.executor(info, framework.info))


def get_executors(state: StateView, viewer: Viewer | None = None) -> dict[str, Any]:
    """GET_EXECUTORS: the custom executors the master knows of (those ``viewer`` may see)."""
    executors = []
    for agent in list(state.agents.values()):
        for (framework_id, _eid), (info, _role) in agent.executors.items():
            if _executor_seen(state, framework_id, info, viewer):
                executors.append({"executor_info": executor_info_json(info),
                                  "agent_id": id_json(agent.id)})
        for task in agent.tasks.values():
            executor = task.info.executor if task.info is not None else None
            if executor is not None and (task.framework_id, executor.executor_id) \
                    not in agent.executors \
                    and _executor_seen(state, task.framework_id, executor, viewer):
                executors.append({"executor_info": executor_info_json(executor),
                                  "agent_id": id_json(agent.id)})
    seen: set[str] = set()
    unique = []
    for entry in executors:
        key = repr((entry["agent_id"], entry["executor_info"]["executor_id"]))
        if key not in seen:
            seen.add(key)
            unique.append(entry)
    return {"executors": unique, "orphan_executors": []}


def get_state(state: StateView, viewer: Viewer | None = None) -> dict[str, Any]:
    """GET_STATE: tasks, executors, frameworks and agents (what ``viewer`` may see)."""
    return {"get_tasks": get_tasks(state, viewer),
            "get_executors": get_executors(state, viewer),
            "get_frameworks": get_frameworks(state, viewer), "get_agents": get_agents(state)}


def get_roles(state: StateView) -> dict[str, Any]:
    """GET_ROLES: every role with its weight, frameworks and allocated resources."""
    weights = state.weights()
    members: dict[str, list[str]] = {}
    allocated: dict[str, Resources] = {}
    for framework in state.frameworks.values():
        for role in framework.info.roles:
            members.setdefault(role, []).append(framework.id)
        for task in framework.tasks.values():
            allocated[task.role] = allocated.get(task.role, Resources()) + task.resources
    for record in state.offers.values():
        role = record.offer.role
        allocated[role] = allocated.get(role, Resources()) + record.offer.resources
    roles = []
    for role in sorted(set(weights) | set(members) | set(allocated)):
        roles.append({"name": role, "weight": weights.get(role, 1.0),
                      "frameworks": [id_json(f) for f in sorted(members.get(role, []))],
                      "resources": resources_json(allocated.get(role, Resources()))})
    return {"roles": roles}


def get_weights(state: StateView) -> dict[str, Any]:
    """GET_WEIGHTS."""
    weights = state.weights()
    return {"weight_infos": [{"role": r, "weight": weights[r]} for r in sorted(weights)]}


def event_visible(state: StateView, kind: str, value: Any, viewer: Viewer | None) -> bool:
    """May ``viewer`` see the event of this feed entry?  (Agent events: always.)"""
    if viewer is None:
        return True
    if kind == "TASK_ADDED":
        return _task_seen(state, value, viewer)
    if kind == "TASK_UPDATED":
        return _task_seen(state, value[0], viewer)
    if kind in ("FRAMEWORK_ADDED", "FRAMEWORK_UPDATED", "FRAMEWORK_REMOVED"):
        return viewer.framework(value.info)
    return True


def feed_event(state: StateView, kind: str, value: Any) -> dict[str, Any] | None:
    """One entry of the master's change feed as an operator event (None: not shown)."""
    if kind == "TASK_ADDED":
        return {"type": kind, "task_added": {"task": task_json(value)}}
    if kind == "TASK_UPDATED":
        task, status = value
        body: dict[str, Any] = {"framework_id": id_json(task.framework_id),
                                "agent_id": id_json(task.agent_id),
                                "state": status.state.value, "status": status_json(status)}
        if task.executor_id:
            body["executor_id"] = id_json(task.executor_id)
        return {"type": kind, "task_updated": body}
    if kind == "AGENT_ADDED":
        return {"type": kind, "agent_added": {"agent": agent_json(value)}}
    if kind == "AGENT_REMOVED":
        return {"type": kind, "agent_removed": {"agent_id": id_json(value)}}
    if kind in ("FRAMEWORK_ADDED", "FRAMEWORK_UPDATED"):
        return {"type": kind, kind.lower(): {"framework": framework_json(state, value)}}
    if kind == "FRAMEWORK_REMOVED":
        return {"type": kind,
                "framework_removed": {"framework_info": framework_info_json(value.info)}}
    return None
