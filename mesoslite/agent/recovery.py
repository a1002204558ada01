"""What the agent checkpoints while it runs, and what it does with the last run's leftovers.

Owns: when executors, runs and tasks are written under ``meta/`` (only for
frameworks with ``FrameworkInfo.checkpoint``), and :func:`clean_previous_run`:
with ``recover=cleanup`` or after a reboot a previous run's containers that
still run are killed and the agent registers as a new agent.  Reconnecting
to them (``recover=reconnect``) is :mod:`mesoslite.agent.reconnect`.
"""

from __future__ import annotations

import asyncio
import logging

from mesoslite.agent.checkpoint import Checkpointer
from mesoslite.agent.containerizer import Containerizer, RecoveredContainer
from mesoslite.agent.state import CommandHost, ExecutorRecord, FrameworkRecord
from mesoslite.proc import find_by_env, kill_pids

log = logging.getLogger("mesoslite.agent")


def checkpoint_executor(
    cp: Checkpointer, agent_id: str | None, fw: FrameworkRecord, ex: ExecutorRecord
) -> None:
    """Record a new executor (and, for a command or docker task, its run) of a checkpointing framework."""
    if not (fw.info.checkpoint and agent_id):
        return
    host = ex.host.container_id if ex.host is not None else ""
    # framework.info is written when the framework first runs a task here (and on updates).
    cp.write_executor(agent_id, fw.id, ex.info, ex.kind, host)
    if ex.is_virtual:  # a command or docker task: the run has no process of its own (pid 0)
        cp.write_run(agent_id, fw.id, ex.executor_id, ex.container_id, 0, 0.0, host=host)


def checkpoint_run(
    cp: Checkpointer,
    agent_id: str | None,
    fw: FrameworkRecord,
    ent: ExecutorRecord | CommandHost,
    create_time: float,
    endpoint: str,
) -> None:
    """Record the process of an executor (or command host) of a checkpointing framework."""
    if not (fw.info.checkpoint and agent_id and ent.pid):
        return
    if isinstance(ent, CommandHost):
        cp.write_framework(agent_id, fw.info)
        cp.write_executor(agent_id, fw.id, ent.info, "command-host")
    cp.write_run(
        agent_id, fw.id, ent.executor_id, ent.container_id, ent.pid, create_time,
        endpoint=endpoint,
    )


async def clean_previous_run(cp: Checkpointer, containerizer: Containerizer) -> None:
    """Kill what a previous run left running and forget its agent id."""
    previous = cp.load()
    if previous is None:
        return
    runs: list[RecoveredContainer] = []
    task_containers: set[str] = set()
    for fw in previous.frameworks.values():
        for ex in fw.executors.values():
            for cid, run in ex.runs.items():
                if run.pid:
                    runs.append(RecoveredContainer(cid, run.pid, run.create_time))
                if ex.kind == "command":
                    task_containers.add(cid)
    alive = await containerizer.recover(runs)
    for cid in alive:
        log.warning("Killing container %s left by the previous agent run", cid)
        await containerizer.kill(cid, 0.0)
        containerizer.remove(cid)
    if task_containers:
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(
            None, find_by_env, "MESOS_CONTAINER_ID", task_containers, None
        )
        kill_pids(pid for pids in found.values() for pid in pids)
    cp.forget_latest()
    log.info("Previous agent %s cleaned up; registering as a new agent", previous.info.id)
