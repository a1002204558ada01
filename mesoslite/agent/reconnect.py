"""Agent recovery in ``--recover=reconnect`` mode: take over what the previous run left.

Owns: deciding what to do with a previous run's checkpoint (same boot id:
reconnect; another boot id or ``--recover=cleanup``: clean up and register
anew), rebuilding framework / executor / task records and status-update
streams from the checkpoint, adopting executor processes that survived,
failing the tasks of those that did not, reattaching Docker task containers
(through :class:`~mesoslite.agent.docker_tasks.DockerTasks`: running ones are
resumed at ``wait``, ones that exited meanwhile report their exit status, ones
that are gone fail their task, unknown labelled ones are removed), and the
reconnection window after which executors that stayed silent are killed.

Executors find a restarted agent by themselves: the agent binds the executor
endpoint of its previous run, an executor's next message (its heartbeat, at
most :data:`EXECUTOR_HEARTBEAT_INTERVAL` apart) is answered
``NOT_REGISTERED`` and it re-registers with its unacknowledged tasks and
updates.  So the window is ``executor_reregistration_timeout`` plus one
heartbeat interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from mesoslite.agent.checkpoint import (
    CheckpointedAgent,
    CheckpointedExecutor,
    CheckpointedFramework,
    CheckpointedRun,
)
from mesoslite.agent.containerizer import RecoveredContainer
from mesoslite.agent.executors import COMMAND_HOST_ID
from mesoslite.agent.recovery import clean_previous_run
from mesoslite.agent.sandbox import sandbox_dir
from mesoslite.agent.state import (
    CommandHost,
    ExecutorRecord,
    ExecutorState,
    FrameworkRecord,
    TaskRecord,
)
from mesoslite.protocol import StatusUpdate

if TYPE_CHECKING:
    from mesoslite.agent.agent import Agent

log = logging.getLogger("mesoslite.agent")

#: How often an executor driver sends a heartbeat (ExecutorDriver's default).
EXECUTOR_HEARTBEAT_INTERVAL = 5.0


def _latest_run(ex: CheckpointedExecutor) -> CheckpointedRun | None:
    """The run with a process (the last one written), else the last run."""
    runs = list(ex.runs.values())
    with_pid = [r for r in runs if r.pid]
    return (with_pid or runs or [None])[-1]


def previous_executor_endpoint(previous: CheckpointedAgent) -> str | None:
    """The executor endpoint the previous run's executors were given (None: unknown)."""
    for fw in previous.frameworks.values():
        for ex in fw.executors.values():
            for run in ex.runs.values():
                endpoint = run.extra.get("endpoint")
                if isinstance(endpoint, str) and endpoint.startswith("tcp://"):
                    return endpoint
    return None


class Reconnect:
    """One recovery of an agent from its checkpoint (``load`` → ``adopt`` → ``finish``)."""

    def __init__(self, agent: Agent) -> None:
        """Recover ``agent`` (not yet started)."""
        self._agent = agent
        self.previous: CheckpointedAgent | None = None
        self._lost: list[tuple[FrameworkRecord, ExecutorRecord | CommandHost]] = []
        #: Docker task containers reattached, and why none could be looked for ("" if they were).
        self._docker_alive: set[str] = set()
        self._docker_why = ""
        self._docker_adopted: set[str] = set()

    async def load(self) -> CheckpointedAgent | None:
        """Read the checkpoint; clean up instead when it must not be reconnected to.

        Returns what will be recovered (None: register as a new agent).
        """
        agent = self._agent
        cp = agent._checkpointer
        previous = cp.load()
        if previous is None:
            return None
        containerizer = agent._executors.containerizer
        if agent.config.recover != "reconnect":
            log.info("recover=%s: cleaning up agent %s", agent.config.recover, previous.info.id)
            await clean_previous_run(cp, containerizer)
            return None
        if previous.boot_id and agent._boot_id and previous.boot_id != agent._boot_id:
            log.warning("Host rebooted since agent %s ran (boot id %s, now %s); "
                        "registering as a new agent", previous.info.id, previous.boot_id,
                        agent._boot_id)
            await clean_previous_run(cp, containerizer)
            return None
        self.previous = previous
        # Orphan containers are removed by adopt() once the checkpointed ones are known.
        agent._docker.expect_recovery()
        return previous

    async def adopt(self) -> None:
        """Rebuild records and streams; adopt live executor processes (socket bound already)."""
        previous = self.previous
        assert previous is not None
        agent = self._agent
        agent._agent_id = previous.info.id
        runs: list[RecoveredContainer] = []
        docker_runs: list[RecoveredContainer] = []
        for fw in previous.frameworks.values():
            for ex in fw.executors.values():
                run = _latest_run(ex)
                if run is None:
                    continue
                if ex.kind == "docker":
                    if fw.info is not None and fw.info.checkpoint:
                        docker_runs.append(RecoveredContainer(run.container_id, 0, 0.0))
                elif run.pid and ex.kind != "command":
                    runs.append(RecoveredContainer(run.container_id, run.pid, run.create_time))
        alive = await agent._executors.containerizer.recover(runs)
        if agent._docker.enabled or docker_runs:
            self._docker_alive, self._docker_why = await agent._docker.recover(docker_runs)
            for run in docker_runs:
                log.info("Checkpointed Docker container %s: %s", run.container_id,
                         "reattached" if run.container_id in self._docker_alive
                         else f"gone ({self._docker_why})" if self._docker_why else "gone")
        for run in runs:
            log.info("Checkpointed container %s (pid %d): %s", run.container_id, run.pid,
                     "still running" if run.container_id in alive else "gone")
        for fid, cfw in previous.frameworks.items():
            if cfw.info is None or not cfw.info.checkpoint:
                continue
            self._recover_framework(fid, cfw, alive)
        for cid in self._docker_alive - self._docker_adopted:
            agent._docker.discard(cid)  # every task of it had ended and been acknowledged
        log.info("Agent %s recovering: %d frameworks, %d executors to reconnect, %d lost",
                 agent._agent_id, len(agent._frameworks),
                 agent._executors.pending_reregistration(), len(self._lost))

    def _recover_framework(self, fid: str, cfw: CheckpointedFramework, alive: set[str]) -> None:
        agent = self._agent
        assert cfw.info is not None
        fw = FrameworkRecord(cfw.info, agent.config.max_completed_executors_per_framework)
        executors = cfw.executors
        hosts: dict[str, CommandHost] = {}
        for eid, cex in executors.items():
            if cex.kind != "command-host" or cex.info is None:
                continue
            run = _latest_run(cex)
            if run is None or not run.pid:
                continue
            host = CommandHost(fid, cex.info, run.container_id,
                               self._sandbox(fid, COMMAND_HOST_ID, run.container_id))
            host.pid = run.pid
            hosts[run.container_id] = host
        for eid, cex in executors.items():
            if cex.kind == "command-host" or cex.info is None:
                continue
            run = _latest_run(cex)
            if run is None:
                continue
            ex = ExecutorRecord(fid, cex.info, run.container_id,
                                self._sandbox(fid, eid, run.container_id), cex.kind,
                                agent.config.max_completed_tasks_per_executor)
            if not self._recover_tasks(fw, ex, run):
                continue
            if ex.is_command:
                host = hosts.get(cex.host_container_id)
                if host is None:
                    log.warning("Command executor %s of framework %s: its host %r was not "
                                "checkpointed; failing its tasks", eid, fid,
                                cex.host_container_id)
                    fw.executors[eid] = ex
                    self._lost.append((fw, ex))
                    continue
                ex.host = host
                host.executors[eid] = ex
                host.task_containers.add(ex.container_id)
            else:
                ex.pid = run.pid or None
            fw.executors[eid] = ex
        agent._frameworks[fid] = fw
        for host in hosts.values():
            if not host.executors:
                if host.container_id in alive:
                    # Nothing left to run: let it go.
                    agent._executors.adopt(fw, host)
                    fw.command_host = host
                    agent._executors.shutdown_executor(host, 0.0)
                continue
            fw.command_host = host
            self._adopt_or_lose(fw, host, alive)
        for ex in list(fw.executors.values()):
            if not ex.is_command:
                self._adopt_or_lose(fw, ex, alive)

    def _adopt_or_lose(self, fw: FrameworkRecord, ent: ExecutorRecord | CommandHost,
                       alive: set[str]) -> None:
        if isinstance(ent, ExecutorRecord) and ent.kind == "docker":
            if ent.container_id in self._docker_alive:
                self._docker_adopted.add(ent.container_id)
                self._agent._docker.adopt(fw, ent)
            else:
                self._lost.append((fw, ent))
            return
        if ent.container_id in alive:
            ent.state = ExecutorState.REGISTERING
            self._agent._executors.adopt(fw, ent)
        else:
            self._lost.append((fw, ent))

    def _recover_tasks(self, fw: FrameworkRecord, ex: ExecutorRecord, run: CheckpointedRun) -> bool:
        """Tasks not yet completed go back on ``ex``; False when none is left."""
        manager = self._agent._updates.manager
        for tid, ctask in run.tasks.items():
            if ctask.info is None:
                continue
            manager.replay(fw.id, tid, ctask.records)
            task = TaskRecord(ctask.info, fw.id, ex.executor_id)
            for kind, value in ctask.records:
                if kind == "UPDATE" and isinstance(value, StatusUpdate):
                    task.record(value.status)
            unacked = (fw.id, tid) in manager
            if task.state.is_terminal and not unacked:
                fw.remember_completed(tid)
                continue
            if task.state.is_terminal:
                ex.terminated_tasks[tid] = task
            else:
                ex.launched_tasks[tid] = task
            fw.task_index[tid] = ex
        return bool(ex.launched_tasks or ex.terminated_tasks)

    def _sandbox(self, fid: str, eid: str, cid: str) -> str:
        agent = self._agent
        return sandbox_dir(agent.work_dir, agent._agent_id or "", fid, eid, cid)

    async def finish(self) -> None:
        """Fail what was lost, wait for executors to come back, kill the ones that did not."""
        agent = self._agent
        for fw, ent in self._lost:
            if isinstance(ent, ExecutorRecord) and ent.kind == "docker":
                agent._docker.lost(fw, ent, self._docker_why or "not found in the Docker engine")
                continue
            agent._executors.terminate_lost(
                fw, ent, "was gone when the agent restarted (it exited while the agent was down)"
            )
        for fw in list(agent._frameworks.values()):
            agent._maybe_remove_framework(fw)  # nothing of it was left to recover
        window = agent.config.executor_reregistration_timeout + EXECUTOR_HEARTBEAT_INTERVAL
        window = min(window, agent.config.recovery_timeout)  # the agent's recovery is bounded
        deadline = time.monotonic() + window
        while agent._executors.pending_reregistration() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        late = agent._executors.expire_reregistration()
        log.info("Agent %s recovered (%d executors did not re-register)",
                 agent._agent_id, len(late))
