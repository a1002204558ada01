"""Rebuilding the agent's records from a previous run's checkpoint (PURE).

Owns: :class:`Rebuild`, the decisions of agent recovery in
``--recover=reconnect`` mode once the shell has read the checkpoint and asked
the containerizers which containers survived.  :meth:`Rebuild.rebuild` takes
the agent id, rebuilds each checkpointing framework's executors, command
hosts, tasks and status-update streams (unacknowledged updates are resent
after re-registration; tasks whose terminal update was acknowledged are
remembered as completed), adopts the executor processes that survived
(``AdoptContainer``; they re-register), stops idle command hosts, resumes
reattached Docker task containers (``ResumeDockerTask``) and discards the
ones no task needs.  :meth:`Rebuild.fail_lost` then fails the tasks of
executors and containers that did not survive, and removes frameworks with
nothing left.  The shell keeps the re-registration window
(:meth:`~mesoslite.agent.core.executors.ExecutorFlow.end_reregistration_window`).
"""

from __future__ import annotations

import logging

from mesoslite.agent.checkpointed import (
    CheckpointedAgent,
    CheckpointedExecutor,
    CheckpointedFramework,
    CheckpointedRun,
)
from mesoslite.agent.core.executors import COMMAND_HOST_ID
from mesoslite.agent.core.tasks import TaskFlow
from mesoslite.agent.effects import (
    AdoptContainer,
    DiscardDockerContainer,
    Effect,
    ResumeDockerTask,
)
from mesoslite.agent.records import (
    AgentExecutor,
    AgentFramework,
    AgentTask,
    CommandHost,
    ExecutorProcess,
    ExecutorState,
)
from mesoslite.protocol import Reason, StatusUpdate

log = logging.getLogger("mesoslite.agent")


def latest_run(ex: CheckpointedExecutor) -> CheckpointedRun | None:
    """The run with a process (the last one written), else the last run."""
    runs = list(ex.runs.values())
    with_pid = [r for r in runs if r.pid]
    chosen = with_pid or runs
    return chosen[-1] if chosen else None


class Rebuild(TaskFlow):
    """Records, streams and adoptions from a previous run's checkpoint."""

    def rebuild(self, previous: CheckpointedAgent, alive: set[str],
                docker_alive: set[str]) -> list[Effect]:
        """Take over ``previous``: ``alive`` / ``docker_alive`` are the containers still there."""
        self.agent_id = previous.info.id
        self._lost = []
        out: list[Effect] = []
        for fid, cfw in previous.frameworks.items():
            if cfw.info is not None and cfw.info.checkpoint:
                out += self._rebuild_framework(fid, cfw, alive, docker_alive)
        adopted_docker = {e.container_id for e in out if isinstance(e, ResumeDockerTask)}
        for cid in sorted(docker_alive - adopted_docker):
            out.append(DiscardDockerContainer(cid))  # every task of it ended and was acknowledged
        log.info("Agent %s recovering: %d frameworks, %d executors to reconnect, %d lost",
                 self.agent_id, len(self.frameworks), self.pending_reregistration(),
                 len(self._lost))
        return out

    def _rebuild_framework(self, fid: str, cfw: CheckpointedFramework, alive: set[str],
                           docker_alive: set[str]) -> list[Effect]:
        assert cfw.info is not None
        fw = AgentFramework(cfw.info, self.config.max_completed_executors_per_framework)
        hosts = self._rebuild_hosts(fid, cfw)
        for eid, cex in cfw.executors.items():
            if cex.kind == "command-host" or cex.info is None:
                continue
            run = latest_run(cex)
            if run is None:
                continue
            ex = AgentExecutor(fid, cex.info, run.container_id,
                               self.sandbox(fid, eid, run.container_id), cex.kind,
                               self.config.max_completed_tasks_per_executor)
            if not self._rebuild_tasks(fw, ex, run):
                continue
            fw.executors[eid] = ex
            if not ex.is_command:
                ex.pid = run.pid or None
                continue
            host = hosts.get(cex.host_container_id)
            if host is None:
                log.warning("Command executor %s of framework %s: its host %r was not "
                            "checkpointed; failing its tasks", eid, fid, cex.host_container_id)
                self._lost.append((fw, ex))
                continue
            ex.host = host
            host.executors[eid] = ex
            host.task_containers.add(ex.container_id)
        self.frameworks[fid] = fw
        out: list[Effect] = []
        for host in hosts.values():
            if host.executors:
                fw.command_host = host
                out += self._adopt_or_lose(fw, host, alive, docker_alive)
            elif host.container_id in alive:
                # Nothing left to run: let it go.
                out += self._adopt(fw, host)
                fw.command_host = host
                out += self.shutdown_executor(host, 0.0)
        for ex in list(fw.executors.values()):
            if not ex.is_command:
                out += self._adopt_or_lose(fw, ex, alive, docker_alive)
        return out

    def _rebuild_hosts(self, fid: str, cfw: CheckpointedFramework) -> dict[str, CommandHost]:
        """The framework's command hosts that had a process, by container id."""
        hosts: dict[str, CommandHost] = {}
        for cex in cfw.executors.values():
            if cex.kind != "command-host" or cex.info is None:
                continue
            run = latest_run(cex)
            if run is None or not run.pid:
                continue
            host = CommandHost(fid, cex.info, run.container_id,
                               self.sandbox(fid, COMMAND_HOST_ID, run.container_id))
            host.pid = run.pid
            hosts[run.container_id] = host
        return hosts

    def _rebuild_tasks(self, fw: AgentFramework, ex: AgentExecutor, run: CheckpointedRun) -> bool:
        """Tasks not yet completed go back on ``ex``; False when none is left."""
        for tid, ctask in run.tasks.items():
            if ctask.info is None:
                continue
            self.updates.replay(fw.id, tid, ctask.records)
            task = AgentTask(ctask.info, fw.id, ex.executor_id)
            for kind, value in ctask.records:
                if kind == "UPDATE" and isinstance(value, StatusUpdate):
                    task.record(value.status)
            unacked = (fw.id, tid) in self.updates
            if task.state.is_terminal and not unacked:
                fw.remember_completed(tid)
                continue
            if task.state.is_terminal:
                ex.terminated_tasks[tid] = task
            else:
                ex.launched_tasks[tid] = task
            fw.task_index[tid] = ex
        return bool(ex.launched_tasks or ex.terminated_tasks)

    def _adopt_or_lose(self, fw: AgentFramework, ent: ExecutorProcess, alive: set[str],
                       docker_alive: set[str]) -> list[Effect]:
        if isinstance(ent, AgentExecutor) and ent.kind == "docker":
            if ent.container_id not in docker_alive:
                self._lost.append((fw, ent))
                return []
            self.docker_tasks[ent.container_id] = (fw, ent)
            return [ResumeDockerTask(ent.container_id)]
        if ent.container_id not in alive:
            self._lost.append((fw, ent))
            return []
        ent.state = ExecutorState.REGISTERING
        return self._adopt(fw, ent)

    def _adopt(self, fw: AgentFramework, ent: ExecutorProcess) -> list[Effect]:
        """Take over a surviving executor process (REGISTERING until it re-registers)."""
        self.containers[ent.container_id] = (fw, ent)
        self.adopted.add(ent.container_id)
        return [AdoptContainer(ent.container_id)]

    def fail_lost(self, docker_why: str) -> list[Effect]:
        """Fail what did not survive the restart; remove frameworks with nothing left."""
        out: list[Effect] = []
        for fw, ent in self._lost:
            if isinstance(ent, AgentExecutor) and ent.kind == "docker":
                out += self.docker_lost(fw, ent, docker_why or "not found in the Docker engine")
            else:
                out += self.process_ended(
                    fw, ent, None,
                    "was gone when the agent restarted (it exited while the agent was down)",
                    Reason.REASON_EXECUTOR_TERMINATED)
        self._lost = []
        for fw in list(self.frameworks.values()):
            out += self.maybe_remove_framework(fw)  # nothing of it was left to recover
        return out
