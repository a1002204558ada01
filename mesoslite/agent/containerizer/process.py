"""The process containerizer: one container = one process tree in its own session.

Owns: :class:`ProcessContainerizer`, the
:class:`~mesoslite.agent.containerizer.Containerizer` built on the process
primitives of :mod:`mesoslite.proc` (spawned from a spawn thread, reaped by
pidfds on the event loop, SIGTERM then SIGKILL after the grace, re-attached
by pid and start time after an agent restart, measured by psutil).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable

import attrs

from mesoslite.agent.containerizer import (
    Containerizer,
    ContainerizerError,
    ContainerUsage,
    LaunchSpec,
    RecoveredContainer,
    Termination,
)
from mesoslite.proc import (
    CommandError,
    ManagedProcess,
    command_argv,
    describe_wait_status,
    spawn_async,
    tree_usage,
)

log = logging.getLogger("mesoslite.agent")


class ProcessContainerizer(Containerizer):
    """Containers as plain process trees, each in its own session."""

    def __init__(self) -> None:
        """Start with no containers."""
        self._procs: dict[str, ManagedProcess] = {}

    async def launch(self, container_id: str, spec: LaunchSpec) -> int:
        """Start the command in ``spec.sandbox``; returns its pid."""
        if container_id in self._procs:
            raise ContainerizerError(f"container_id: {container_id!r} is already in use")
        try:
            argv, executable = command_argv(spec.command)
        except CommandError as exc:
            raise ContainerizerError(str(exc)) from exc
        try:
            proc = await spawn_async(
                argv,
                executable=executable,
                cwd=spec.sandbox,
                env=spec.environment,
                stdout_path=os.path.join(spec.sandbox, "stdout"),
                stderr_path=os.path.join(spec.sandbox, "stderr"),
                make_sandbox=True,
                credentials=spec.credentials,
            )
        except OSError as exc:
            raise ContainerizerError(f"failed to start {argv[0]!r}: {exc}") from exc
        self._procs[container_id] = proc
        log.debug("container %s started as pid %d", container_id, proc.pid)
        return proc.pid

    def _get(self, container_id: str) -> ManagedProcess:
        try:
            return self._procs[container_id]
        except KeyError:
            raise ContainerizerError(f"container_id: unknown container {container_id!r}") from None

    async def wait(self, container_id: str) -> Termination:
        """Wait for the container's main process to end."""
        status = await asyncio.shield(self._get(container_id).exited)
        return Termination(status, describe_wait_status(status))

    async def kill(self, container_id: str, grace: float) -> Termination:
        """SIGTERM the process group, SIGKILL after ``grace``."""
        status = await self._get(container_id).terminate(grace)
        return Termination(status, describe_wait_status(status))

    async def recover(self, checkpointed: Iterable[RecoveredContainer]) -> set[str]:
        """Re-attach to checkpointed processes that still run (pid and start time match)."""
        import psutil

        loop = asyncio.get_running_loop()
        alive: set[str] = set()
        for item in checkpointed:
            try:
                proc = psutil.Process(item.pid)
                same = abs(proc.create_time() - item.create_time) < 1.0
                if not same or proc.status() == psutil.STATUS_ZOMBIE:
                    continue
            except psutil.Error:
                continue
            self._procs[item.container_id] = ManagedProcess(
                item.pid, loop, popen=None, create_time=item.create_time
            )
            alive.add(item.container_id)
        return alive

    def usage(self, container_id: str) -> ContainerUsage | None:
        """Usage of the container's process tree; None when it is gone."""
        proc = self._procs.get(container_id)
        if proc is None or proc.done:
            return None
        usage = tree_usage(proc.pid)
        return ContainerUsage(**attrs.asdict(usage)) if usage is not None else None

    def containers(self) -> set[str]:
        """Containers being watched (ended ones until :meth:`remove`)."""
        return set(self._procs)

    def pid(self, container_id: str) -> int | None:
        """The main pid of a container."""
        proc = self._procs.get(container_id)
        return proc.pid if proc else None

    def create_time(self, container_id: str) -> float | None:
        """When the container's process started (epoch seconds)."""
        proc = self._procs.get(container_id)
        return proc.create_time if proc else None

    def remove(self, container_id: str) -> None:
        """Forget a container."""
        proc = self._procs.pop(container_id, None)
        if proc is not None:
            proc.close()
