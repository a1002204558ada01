"""Mesos-shaped JSON for the master's HTTP endpoints (PURE).

Owns: how agents, frameworks, tasks, offers and statuses look in ``/state``,
``/state-summary``, ``/tasks``, ``/frameworks`` and ``/slaves`` (Mesos field
names: ``slaves``, ``slave_id``, resources as ``{"cpus": 1.0, "ports":
"[31000-32000]"}``), and the per-record caches: an agent's and a task's
JSON text is kept with the record's ``version`` and re-rendered only when it
changed, so a big ``/state`` mostly joins cached strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from mesoslite.api.v1json import container_status_json, discovery_json
from mesoslite.master.drain_info import state_fields
from mesoslite.master.records import AgentRecord, FrameworkRecord, OfferRecord, TaskEntry
from mesoslite.protocol import AgentInfo, TaskState, TaskStatus
from mesoslite.resources import Resources

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

#: Task states listed (as counts) in /state-summary.
SUMMARY_STATES = tuple(state.value for state in TaskState)


def dumps(value: Any) -> str:
    """Compact JSON text."""
    return _dumps(value)


def resources(value: Resources) -> dict[str, float | str]:
    """Resources as Mesos shows them in /state."""
    return value.to_json_dict()


def labels(values: Mapping[str, str]) -> list[dict[str, str]]:
    """Labels as Mesos shows them: a list of key/value objects."""
    return [{"key": key, "value": value} for key, value in sorted(values.items())]


def status(value: TaskStatus) -> dict[str, Any]:
    """One task status."""
    out: dict[str, Any] = {"state": value.state.value, "timestamp": value.timestamp}
    if value.source is not None:
        out["source"] = value.source.value
    if value.reason is not None:
        out["reason"] = value.reason.value
    if value.message:
        out["message"] = value.message
    if value.healthy is not None:
        out["healthy"] = value.healthy
    if value.labels:
        out["labels"] = labels(value.labels)
    if value.container_status is not None:
        out["container_status"] = container_status_json(value.container_status)
    return out


def task(entry: TaskEntry) -> dict[str, Any]:
    """A task as in Mesos /state and /tasks."""
    out: dict[str, Any] = {
        "id": entry.task_id,
        "name": entry.name,
        "framework_id": entry.framework_id,
        "executor_id": entry.executor_id,
        "slave_id": entry.agent_id,
        "agent_id": entry.agent_id,
        "state": entry.state.value,
        "role": entry.role,
        "resources": resources(entry.resources),
        "statuses": [status(s) for s in entry.statuses],
        "labels": labels(entry.labels),
    }
    info = entry.info
    if info is not None and info.container is not None:
        container: dict[str, Any] = {"type": info.container.type}
        if info.container.docker is not None:
            docker = info.container.docker
            container["docker"] = {
                "image": docker.image,
                "network": docker.network,
                "port_mappings": [
                    {"host_port": m.host_port, "container_port": m.container_port,
                     "protocol": m.protocol}
                    for m in docker.port_mappings
                ],
            }
        out["container"] = container
    if entry.discovery is not None:
        out["discovery"] = discovery_json(entry.discovery)
    return out


def task_json(entry: TaskEntry) -> str:
    """A task's JSON text, cached until the task changes."""
    cached = entry.rendered
    if cached is not None and cached[0] == entry.version:
        return cached[1]
    text = dumps(task(entry))
    entry.rendered = (entry.version, text)
    return text


def agent_pid(info: AgentInfo) -> str:
    """A Mesos-style pid, ``slave(1)@host:port``, naming the agent's HTTP address."""
    address = info.http_endpoint.split("://", 1)[-1].rstrip("/")
    return f"slave(1)@{address or f'{info.hostname}:{info.port}'}"


def agent(record: AgentRecord) -> dict[str, Any]:
    """An agent as in Mesos /state and /slaves."""
    info = record.info
    total = resources(info.resources)
    return {
        "id": info.id,
        "hostname": info.hostname,
        "port": info.port,
        "pid": agent_pid(info),
        "resources": total,
        "used_resources": resources(record.used),
        "offered_resources": resources(record.offered),
        "reserved_resources": {},
        "unreserved_resources": total,
        "attributes": dict(info.attributes),
        "active": record.connected,
        "connected": record.connected,
        "registered_time": record.registered_time,
        "reregistered_time": record.reregistered_time,
        "version": record.version_string,
        "capabilities": [],
        **state_fields(record.maintenance),
    }


def agent_json(record: AgentRecord) -> str:
    """An agent's JSON text, cached until the agent changes."""
    cached = record.rendered
    if cached is not None and cached[0] == record.version:
        return cached[1]
    text = dumps(agent(record))
    record.rendered = (record.version, text)
    return text


def offer(record: OfferRecord) -> dict[str, Any]:
    """An outstanding offer."""
    value = record.offer
    return {
        "id": value.id,
        "framework_id": value.framework_id,
        "slave_id": value.agent_id,
        "agent_id": value.agent_id,
        "hostname": value.hostname,
        "role": value.role,
        "allocation_info": {"role": value.role},
        "resources": resources(value.resources),
    }


def offer_json(record: OfferRecord) -> str:
    """An offer's JSON text, rendered once."""
    if not record.rendered:
        record.rendered = dumps(offer(record))
    return record.rendered


def framework_base(record: FrameworkRecord, offered: Resources) -> dict[str, Any]:
    """A framework's own fields, without its task and offer lists."""
    info = record.info
    used = record.used_resources()
    allocated = resources(used + offered)
    return {
        "id": info.id,
        "name": info.name,
        "user": info.user,
        "roles": list(info.roles),
        "role": info.roles[0] if info.roles else "*",
        "active": record.active,
        "connected": record.connected,
        "recovered": record.recovered,
        "registered_time": record.registered_time,
        "reregistered_time": record.reregistered_time,
        "unregistered_time": record.unregistered_time,
        "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint,
        "capabilities": [{"type": name} for name in info.capabilities],
        "hostname": info.hostname,
        "principal": info.principal,
        "webui_url": info.webui_url,
        "labels": labels(info.labels),
        "resources": allocated,
        "allocated_resources": allocated,
        "used_resources": resources(used),
        "offered_resources": resources(offered),
        "executors": [],
    }


def splice(base: Mapping[str, Any], arrays: Mapping[str, Iterable[str]]) -> str:
    """JSON text of ``base`` plus arrays whose items are already JSON text."""
    head = dumps(dict(base))
    parts = [head[:-1]]
    sep = "," if len(head) > 2 else ""
    for key, items in arrays.items():
        parts.append(f"{sep}{dumps(key)}:[{','.join(items)}]")
        sep = ","
    parts.append("}")
    return "".join(parts)


def task_counts(tasks: Iterable[TaskEntry]) -> dict[str, int]:
    """How many of ``tasks`` are in each state, every state listed."""
    counts = dict.fromkeys(SUMMARY_STATES, 0)
    for entry in tasks:
        counts[entry.state.value] += 1
    return counts
