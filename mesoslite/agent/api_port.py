"""The agent as its v1 operator API reads it (plain protocol values from its records).

Owns: :class:`AgentApiPort`, the adapter :mod:`mesoslite.api.agent_operator` reads the
agent through (flags, metrics, AgentInfo, frameworks, executors and tasks, the address
of its own ``/files``).  Read-only.
"""

from __future__ import annotations

from collections.abc import Awaitable

import attrs

from mesoslite.agent.records import AgentExecutor, AgentFramework
from mesoslite.agent.views import AgentView, metrics_snapshot
from mesoslite.api.ports import ExecRequest, ExecSessionPort
from mesoslite.protocol import AgentInfo, ExecutorInfo, FrameworkInfo, Task


class AgentApiPort:
    """Reads ``agent`` for the v1 operator API."""

    def __init__(self, agent: AgentView) -> None:
        """Read ``agent`` (nothing is copied ahead of a call)."""
        self.agent = agent

    def operator_flags(self) -> dict[str, str]:
        """The agent's flags."""
        return {k: str(v) for k, v in self.agent.config.to_flags().items()}

    def operator_metrics(self) -> dict[str, float]:
        """The metrics snapshot."""
        return metrics_snapshot(self.agent)

    def operator_agent_info(self) -> AgentInfo:
        """This agent's AgentInfo."""
        return self.agent.agent_info()

    def operator_frameworks(self) -> tuple[list[FrameworkInfo], list[FrameworkInfo]]:
        """(active, completed) frameworks."""
        return ([fw.info for fw in self.agent.frameworks],
                [fw.info for fw in self.agent.completed_frameworks])

    def _executors(self) -> list[tuple[AgentFramework, AgentExecutor, bool]]:
        out = []
        for fw in [*self.agent.frameworks, *self.agent.completed_frameworks]:
            out += [(fw, ex, True) for ex in fw.executors.values()]
            out += [(fw, ex, False) for ex in fw.completed_executors]
        return out

    def operator_executors(self) -> tuple[list[ExecutorInfo], list[ExecutorInfo]]:
        """(live, completed) executors, ``framework_id`` set."""
        live: list[ExecutorInfo] = []
        done: list[ExecutorInfo] = []
        for fw, ex, alive in self._executors():
            info = attrs.evolve(ex.info, framework_id=fw.id)
            (live if alive else done).append(info)
        return live, done

    def operator_tasks(self) -> dict[str, list[Task]]:
        """Tasks by kind (queued, launched, terminated, completed)."""
        agent_id = self.agent.agent_id or ""
        kinds: dict[str, list[Task]] = {"queued_tasks": [], "launched_tasks": [],
                                        "terminated_tasks": [], "completed_tasks": []}
        for _fw, ex, _alive in self._executors():
            kinds["queued_tasks"] += [t.to_task(agent_id) for t in ex.queued_tasks.values()]
            kinds["launched_tasks"] += [t.to_task(agent_id)
                                        for t in ex.launched_tasks.values()]
            kinds["terminated_tasks"] += [t.to_task(agent_id)
                                          for t in ex.terminated_tasks.values()]
            kinds["completed_tasks"] += [t.to_task(agent_id) for t in ex.completed_tasks]
        return kinds

    def operator_acls(self) -> str:
        """The agent's ``--acls`` JSON text ("" when unset)."""
        return self.agent.config.acls

    def operator_files_url(self) -> str:
        """``http://ip:port`` of this agent's HTTP server."""
        return f"http://{self.agent.config.ip}:{self.agent.http_port}"

    def operator_launch_session(self, request: ExecRequest) -> Awaitable[ExecSessionPort]:
        """Start ``request`` in a running task's container (ExecRefused when none)."""
        return self.agent.launch_session(request)
