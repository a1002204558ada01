"""The containerizer interface: how the agent starts, watches and stops containers.

Owns: :class:`Containerizer` (Nomad-like driver interface: ``launch``,
``wait``, ``kill``, ``recover``, ``usage``) and the values crossing it:
:class:`LaunchSpec`, :class:`Termination`, :class:`ContainerUsage`,
:class:`RecoveredContainer`.  Implementations: ``process`` (a process tree
in its own session, on :mod:`mesoslite.proc`) and ``docker``.  Only the
containerizers and :mod:`mesoslite.proc` start subprocesses or talk to Docker.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any

import attrs

from mesoslite.protocol import CommandInfo
from mesoslite.resources import Resources


@attrs.frozen
class LaunchSpec:
    """What to run in a container: the command, where, and with which environment.

    ``environment`` is the complete environment of the process (the agent
    builds it); stdout and stderr go to ``<sandbox>/stdout`` and ``stderr``.
    """

    command: CommandInfo
    sandbox: str
    environment: dict[str, str]
    resources: Resources = attrs.field(factory=Resources)
    #: Who the process runs as, a :class:`mesoslite.proc.Credentials` (None: the agent's
    #: user); its sandbox is theirs.  (Typed loosely: the pure agent config imports this
    #: package's docker_spec, so it cannot import mesoslite.proc.)
    credentials: Any = None


@attrs.frozen
class Termination:
    """How a container ended: ``status`` is the wait status (None when unknown)."""

    status: int | None
    message: str


@attrs.frozen
class ContainerUsage:
    """Resource usage of a container's process tree (Mesos ResourceStatistics subset)."""

    timestamp: float
    cpus_user_time_secs: float
    cpus_system_time_secs: float
    mem_rss_bytes: int
    processes: int


@attrs.frozen
class RecoveredContainer:
    """A checkpointed container to look for after an agent restart."""

    container_id: str
    pid: int
    create_time: float


class ContainerizerError(RuntimeError):
    """A container could not be launched (or is unknown)."""


class Containerizer(abc.ABC):
    """Starts containers, reports their end, kills them and measures them."""

    @abc.abstractmethod
    async def launch(self, container_id: str, spec: LaunchSpec) -> int:
        """Start a container; returns its main pid. Raises ContainerizerError."""

    @abc.abstractmethod
    async def wait(self, container_id: str) -> Termination:
        """Wait until the container ends (returns at once if it already has)."""

    @abc.abstractmethod
    async def kill(self, container_id: str, grace: float) -> Termination:
        """SIGTERM the container, SIGKILL after ``grace`` seconds; returns its termination."""

    @abc.abstractmethod
    async def recover(self, checkpointed: Iterable[RecoveredContainer]) -> set[str]:
        """Re-attach to checkpointed containers still alive; returns their ids."""

    @abc.abstractmethod
    def usage(self, container_id: str) -> ContainerUsage | None:
        """Current usage (blocking: call from a worker thread); None when gone."""

    @abc.abstractmethod
    def containers(self) -> set[str]:
        """Ids of the containers this containerizer is watching."""

    @abc.abstractmethod
    def pid(self, container_id: str) -> int | None:
        """The main pid of a container, or None."""

    @abc.abstractmethod
    def remove(self, container_id: str) -> None:
        """Forget an ended container (after its termination was handled)."""


__all__ = [
    "ContainerUsage",
    "Containerizer",
    "ContainerizerError",
    "LaunchSpec",
    "RecoveredContainer",
    "Termination",
]
