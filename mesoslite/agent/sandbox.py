"""Sandbox paths and the environments of executors and tasks (PURE).

Owns: the sandbox layout of protocol.md §6
(``<work_dir>/agents/<agent_id>/frameworks/<fid>/executors/<eid>/runs/<cid>``)
and the environment variables the agent gives a task (``MESOS_SANDBOX``,
``MESOS_TASK_ID``, ``PORT0..n``, ``PORTS``, ``PORT``, ``HOST``, ...) and an
executor process (additionally ``MESOSLITE_AGENT_ZMQ``,
``MESOS_CONTAINER_ID``, ``MESOS_CHECKPOINT``,
``MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD``, and ``MESOSLITE_AGENT_PID`` so an
executor can tell that its agent died).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mesoslite.protocol import TaskInfo

#: At most this many ports become PORTn variables (a huge range must not blow up env).
MAX_PORT_VARS = 1000


def executor_dir(work_dir: str, agent_id: str, framework_id: str, executor_id: str) -> str:
    """``<work_dir>/agents/<aid>/frameworks/<fid>/executors/<eid>``."""
    return os.path.join(
        work_dir, "agents", agent_id, "frameworks", framework_id, "executors", executor_id
    )


def sandbox_dir(
    work_dir: str, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> str:
    """The sandbox of one container run: ``.../executors/<eid>/runs/<cid>``."""
    return os.path.join(
        executor_dir(work_dir, agent_id, framework_id, executor_id), "runs", container_id
    )


def task_ports(task: TaskInfo) -> list[int]:
    """The task's ``ports`` resource expanded in order (capped at MAX_PORT_VARS)."""
    ports: list[int] = []
    for begin, end in task.resources.ranges("ports"):
        for port in range(begin, end + 1):
            ports.append(port)
            if len(ports) >= MAX_PORT_VARS:
                return ports
    return ports


def task_environment(
    task: TaskInfo,
    *,
    framework_id: str,
    executor_id: str,
    container_id: str,
    sandbox: str,
    agent_endpoint: str,
    host: str,
    secrets: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables the agent sets for a command task (user variables applied on top,
    then the task's resolved ``secrets``).

    ``MESOS_CONTAINER_ID`` is set last: the agent finds a task's processes by it.
    """
    env: dict[str, str] = {
        "MESOS_SANDBOX": sandbox,
        "MESOS_TASK_ID": task.task_id,
        "MESOS_FRAMEWORK_ID": framework_id,
        "MESOS_EXECUTOR_ID": executor_id,
        "MESOS_AGENT_ENDPOINT": agent_endpoint,
        "HOST": host,
    }
    ports = task_ports(task)
    for i, port in enumerate(ports):
        env[f"PORT{i}"] = str(port)
    if ports:
        env["PORT"] = str(ports[0])
        env["PORTS"] = ",".join(str(p) for p in ports)
    if task.command is not None:
        env.update(task.command.environment)
    env.update(secrets or {})
    env["MESOS_CONTAINER_ID"] = container_id
    return env


#: How long an executor backs off at most between (re)subscription attempts (Mesos's value).
SUBSCRIPTION_BACKOFF_MAX = "2secs"


def executor_environment(
    base: Mapping[str, str],
    *,
    framework_id: str,
    executor_id: str,
    container_id: str,
    sandbox: str,
    agent_endpoint: str,
    host: str,
    agent_zmq: str,
    checkpoint: bool,
    shutdown_grace_period: float,
    recovery_timeout: float,
    agent_pid: int,
    extra: Mapping[str, str] = {},
    python_path: str = "",
) -> dict[str, str]:
    """The full environment of an executor process.

    ``base`` is inherited (Mesos executors inherit the agent's environment);
    ``extra`` (the executor command's own environment) is applied on top;
    ``python_path`` is prepended to ``PYTHONPATH`` so mesoslite is importable.
    """
    env = dict(base)
    env.update(
        {
            "MESOS_SANDBOX": sandbox,
            "MESOS_FRAMEWORK_ID": framework_id,
            "MESOS_EXECUTOR_ID": executor_id,
            "MESOS_AGENT_ENDPOINT": agent_endpoint,
            "HOST": host,
            "MESOSLITE_AGENT_ZMQ": agent_zmq,
            "MESOSLITE_AGENT_PID": str(agent_pid),
            "MESOS_DIRECTORY": sandbox,
            # Durations as Mesos writes them ("5secs"), which its executor libraries parse.
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": f"{shutdown_grace_period:g}secs",
            "MESOS_RECOVERY_TIMEOUT": f"{recovery_timeout:g}secs",
            "MESOS_SUBSCRIPTION_BACKOFF_MAX": SUBSCRIPTION_BACKOFF_MAX,
        }
    )
    env.pop("MESOS_CHECKPOINT", None)
    if checkpoint:  # as Mesos: set only when the framework checkpoints
        env["MESOS_CHECKPOINT"] = "1"
    # A stale task id inherited from an enclosing task must not leak in.
    env.pop("MESOS_TASK_ID", None)
    if python_path:
        current = env.get("PYTHONPATH", "")
        parts = [python_path] + [p for p in current.split(os.pathsep) if p and p != python_path]
        env["PYTHONPATH"] = os.pathsep.join(parts)
    env.update(extra)
    env["MESOS_CONTAINER_ID"] = container_id
    return env
