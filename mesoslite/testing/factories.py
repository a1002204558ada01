"""Factories for protocol values with sensible defaults and unique ids (PURE).

Owns: :func:`make_framework_info`, :func:`make_agent_info`, :func:`make_offer`,
:func:`make_task_info`, :func:`make_status` and :func:`make_executor_info`.
Every id a factory invents is unique within the process (a per-kind
counter), so tests can build many values without collisions.  Every keyword
that a factory does not name is passed to the attrs class unchanged.
"""

from __future__ import annotations

import itertools
import uuid as _uuid
from typing import Any

from mesoslite.protocol import (
    AgentInfo,
    CommandInfo,
    ExecutorInfo,
    FrameworkInfo,
    Offer,
    Source,
    TaskInfo,
    TaskState,
    TaskStatus,
)
from mesoslite.resources import Resources

_counters: dict[str, itertools.count[int]] = {}


def unique_id(prefix: str) -> str:
    """``<prefix>-<n>``, with ``n`` counting up per prefix in this process."""
    counter = _counters.setdefault(prefix, itertools.count(1))
    return f"{prefix}-{next(counter)}"


def _resources(value: str | Resources) -> Resources:
    return value if isinstance(value, Resources) else Resources.parse(value)


def make_framework_info(name: str | None = None, user: str = "", **fields: Any) -> FrameworkInfo:
    """A FrameworkInfo named ``name`` (unique by default), role ``*``, no id.

    ``user`` "" means tasks run as the agent's user.
    """
    return FrameworkInfo(user=user, name=name or unique_id("test-framework"), **fields)


def make_agent_info(
    resources: str | Resources = "cpus:2;mem:1024;disk:1024;ports:[31000-31100]",
    *,
    id: str | None = None,
    hostname: str | None = None,
    **fields: Any,
) -> AgentInfo:
    """An AgentInfo with a unique id and hostname and the given resources (Mesos text)."""
    agent_id = id if id is not None else unique_id("test-S")
    return AgentInfo(
        hostname=hostname or f"{agent_id}.agents.test",
        resources=_resources(resources),
        id=agent_id,
        **fields,
    )


def make_offer(
    resources: str | Resources = "cpus:2;mem:1024;disk:1024;ports:[31000-31100]",
    *,
    id: str | None = None,
    agent_id: str | None = None,
    framework_id: str = "test-0001",
    hostname: str | None = None,
    role: str = "*",
    **fields: Any,
) -> Offer:
    """An Offer with a unique id, on a unique agent unless ``agent_id`` is given."""
    agent = agent_id if agent_id is not None else unique_id("test-S")
    return Offer(
        id=id if id is not None else unique_id("test-O"),
        framework_id=framework_id,
        agent_id=agent,
        hostname=hostname or f"{agent}.agents.test",
        role=role,
        resources=_resources(resources),
        **fields,
    )


def make_task_info(
    agent_id: str = "test-S-0",
    *,
    task_id: str | None = None,
    name: str | None = None,
    cpus: float = 0.1,
    mem: float = 32.0,
    disk: float = 0.0,
    command: str | CommandInfo | None = "true",
    executor: ExecutorInfo | None = None,
    resources: str | Resources | None = None,
    **fields: Any,
) -> TaskInfo:
    """A TaskInfo with a unique id that runs ``command`` in a shell.

    Resources are ``cpus``/``mem``/``disk`` unless ``resources`` is given.
    Passing ``executor`` makes it a custom-executor task (``command`` is
    then ignored).  Pass an offer's ``agent_id`` to launch on its agent.
    """
    tid = task_id if task_id is not None else unique_id("task")
    if resources is None:
        amounts: dict[str, float] = {"cpus": cpus, "mem": mem}
        if disk:
            amounts["disk"] = disk
        res = Resources.from_dict(amounts)
    else:
        res = _resources(resources)
    cmd: CommandInfo | None = None
    if executor is None and command is not None:
        cmd = command if isinstance(command, CommandInfo) else CommandInfo(value=command)
    return TaskInfo(
        name=name or tid,
        task_id=tid,
        agent_id=agent_id,
        resources=res,
        command=cmd,
        executor=executor,
        **fields,
    )


def make_executor_info(
    command: str | CommandInfo,
    *,
    executor_id: str | None = None,
    resources: str | Resources = "cpus:0.1;mem:32",
    **fields: Any,
) -> ExecutorInfo:
    """A custom ExecutorInfo with a unique id that starts ``command``."""
    cmd = command if isinstance(command, CommandInfo) else CommandInfo(value=command)
    return ExecutorInfo(
        executor_id=executor_id if executor_id is not None else unique_id("executor"),
        command=cmd,
        resources=_resources(resources),
        **fields,
    )


def make_status(
    task_id: str | None = None,
    state: TaskState = TaskState.TASK_RUNNING,
    *,
    agent_id: str = "test-S-0",
    uuid: bytes | bool = True,
    source: Source | None = Source.SOURCE_EXECUTOR,
    **fields: Any,
) -> TaskStatus:
    """A TaskStatus; ``uuid=True`` gives a fresh 16-byte uuid, ``False`` none (master-made)."""
    if uuid is True:
        raw = _uuid.uuid4().bytes
    elif uuid is False:
        raw = b""
    else:
        raw = uuid
    return TaskStatus(
        task_id=task_id if task_id is not None else unique_id("task"),
        state=state,
        agent_id=agent_id,
        uuid=raw,
        source=source,
        **fields,
    )
