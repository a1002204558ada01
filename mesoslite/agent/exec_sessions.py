"""Where ``ctl exec`` runs: a running task's container on this agent (I/O shell).

Owns: :func:`find_executor` (the executor whose container holds the running task, or
the running container a request names; :class:`~mesoslite.api.ports.ExecRefused` 404
naming the task or container otherwise: nothing ever runs outside a running task's
container) and :func:`launch_session` (the process to run beside: a command task's own
process, found among its command host's children by ``MESOS_CONTAINER_ID``; a custom
executor's process; or, for a Docker task, ``docker exec`` in its container).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from mesoslite.agent.containerizer.exec_session import (
    ExecCommand,
    ExecSession,
    start_beside,
    start_in_docker,
)
from mesoslite.agent.docker_tasks import DockerTasks
from mesoslite.agent.records import AgentExecutor, AgentFramework, ExecutorState
from mesoslite.api.ports import ExecRefused, ExecRequest
from mesoslite.proc import find_by_env
from mesoslite.protocol import TaskState

log = logging.getLogger("mesoslite.agent")


def find_executor(frameworks: Iterable[AgentFramework], request: ExecRequest) -> AgentExecutor:
    """The executor whose container the session runs in (ExecRefused 404 when none)."""
    for fw in frameworks:
        for ex in fw.executors.values():
            if ex.state is ExecutorState.TERMINATED:
                continue
            if request.task_id is not None:
                task = ex.launched_tasks.get(request.task_id)
                if task is None:
                    continue
                if task.state is not TaskState.TASK_RUNNING:
                    raise ExecRefused(404, "task_id", f"task {request.task_id} is "
                                      f"{task.state.value}, not TASK_RUNNING: exec runs only "
                                      "in a running task's container")
                return ex
            if ex.container_id == request.parent_container_id and any(
                    t.state is TaskState.TASK_RUNNING for t in ex.launched_tasks.values()):
                return ex
    if request.task_id is not None:
        raise ExecRefused(404, "task_id", f"task {request.task_id} is not running on this "
                          "agent")
    raise ExecRefused(404, "container_id.parent",
                      f"container {request.parent_container_id} is not a running task's "
                      "container on this agent")


async def _task_pid(ex: AgentExecutor) -> int | None:
    if not ex.is_command:
        return ex.pid
    host = ex.host
    if host is None or host.pid is None:
        return None
    found = await asyncio.get_running_loop().run_in_executor(
        None, find_by_env, "MESOS_CONTAINER_ID", [ex.container_id], [host.pid])
    pids = found.get(ex.container_id)
    return pids[0] if pids else None


async def launch_session(frameworks: Iterable[AgentFramework], docker: DockerTasks,
                         request: ExecRequest) -> ExecSession:
    """Start ``request`` in its task's container; ExecRefused when it cannot."""
    ex = find_executor(frameworks, request)
    what = request.task_id or request.parent_container_id
    command = ExecCommand(request.argv, request.executable, request.environment)
    if ex.kind == "docker":
        containerizer = docker.containerizer
        docker_id = containerizer.docker_id(ex.container_id) if containerizer else None
        if containerizer is None or docker_id is None:
            raise ExecRefused(404, "task_id", f"{what}: its Docker container is not running")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, start_in_docker, containerizer.options,
                                              docker_id, command, loop)
        except Exception as exc:
            raise ExecRefused(500, "command", f"docker exec in {what} failed: {exc}") from exc
    pid = await _task_pid(ex)
    if pid is None:
        raise ExecRefused(404, "task_id", f"{what}: its process is not running")
    try:
        session = await start_beside(pid, ex.directory, command)
    except OSError as exc:
        raise ExecRefused(400 if exc.filename else 500, "command",
                          f"cannot run {request.argv[0]!r} in {what}: {exc}") from exc
    log.info("exec in %s (executor %s): %s", what, ex.executor_id, request.argv[0])
    return session
