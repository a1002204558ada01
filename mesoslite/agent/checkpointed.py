"""What a previous agent run left in its checkpoint, as read back (PURE data).

Owns: :class:`CheckpointedAgent` and the framework, executor, run and task
values under it.  :mod:`mesoslite.agent.checkpoint` reads them from disk;
the agent's core rebuilds its records from them
(:mod:`mesoslite.agent.core.rebuild`).
"""

from __future__ import annotations

from typing import Any

import attrs

from mesoslite.agent.update_streams import Record
from mesoslite.protocol import AgentInfo, ExecutorInfo, FrameworkInfo, TaskInfo


@attrs.define
class CheckpointedTask:
    """A task as read back: its info and its status-update records."""

    info: TaskInfo | None
    records: list[Record] = attrs.field(factory=list)


@attrs.define
class CheckpointedRun:
    """One container run of an executor: the process and the tasks it was given."""

    container_id: str
    pid: int = 0
    create_time: float = 0.0
    extra: dict[str, Any] = attrs.field(factory=dict)
    tasks: dict[str, CheckpointedTask] = attrs.field(factory=dict)


@attrs.define
class CheckpointedExecutor:
    """An executor: its info, kind (custom | command | command-host) and runs."""

    executor_id: str
    info: ExecutorInfo | None
    kind: str = "custom"
    host_container_id: str = ""
    runs: dict[str, CheckpointedRun] = attrs.field(factory=dict)


@attrs.define
class CheckpointedFramework:
    """A checkpointing framework and its executors."""

    info: FrameworkInfo | None
    executors: dict[str, CheckpointedExecutor] = attrs.field(factory=dict)


@attrs.define
class CheckpointedAgent:
    """Everything the last agent run left on disk."""

    info: AgentInfo
    boot_id: str
    frameworks: dict[str, CheckpointedFramework] = attrs.field(factory=dict)
