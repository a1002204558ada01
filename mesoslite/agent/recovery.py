"""Agent recovery: taking over what the previous run left (I/O shell).

Owns: :class:`Recovery`, the I/O of an agent start on a work directory with
a checkpoint.  :meth:`Recovery.load` reads the checkpoint and decides: same
boot id and ``--recover=reconnect`` → reconnect; another boot id or
``--recover=cleanup`` → :func:`clean_previous_run` (kill what still runs,
register as a new agent).  :meth:`Recovery.adopt` asks the containerizers
which checkpointed containers survived and hands it all to the core's
:meth:`~mesoslite.agent.core.AgentState.rebuild` (records, streams, adoption:
:mod:`mesoslite.agent.core.rebuild`).  :meth:`Recovery.finish` fails what was
lost, waits for surviving executors to re-register and ends the window.

Executors find a restarted agent by themselves: the agent binds the executor
endpoint of its previous run (:func:`previous_executor_endpoint`), an
executor's next message (its heartbeat, at most
:data:`EXECUTOR_HEARTBEAT_INTERVAL` apart) is answered ``NOT_REGISTERED`` and
it re-registers with its unacknowledged tasks and updates.  So the window is
``executor_reregistration_timeout`` plus one heartbeat interval (bounded by
``recovery_timeout``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable

from mesoslite.agent.checkpoint import Checkpointer
from mesoslite.agent.checkpointed import CheckpointedAgent
from mesoslite.agent.config import AgentConfig
from mesoslite.agent.containerizer import Containerizer, RecoveredContainer
from mesoslite.agent.core import AgentState
from mesoslite.agent.core.rebuild import latest_run
from mesoslite.agent.docker_tasks import DockerTasks
from mesoslite.agent.effects import Effect
from mesoslite.proc import find_by_env, find_by_env_prefix, kill_pids

log = logging.getLogger("mesoslite.agent")

#: How often an executor driver sends a heartbeat (ExecutorDriver's default).
EXECUTOR_HEARTBEAT_INTERVAL = 5.0


def previous_executor_endpoint(previous: CheckpointedAgent) -> str | None:
    """The executor endpoint the previous run's executors were given (None: unknown)."""
    for fw in previous.frameworks.values():
        for ex in fw.executors.values():
            for run in ex.runs.values():
                endpoint = run.extra.get("endpoint")
                if isinstance(endpoint, str) and endpoint.startswith("tcp://"):
                    return endpoint
    return None


def recoverable_runs(previous: CheckpointedAgent) -> tuple[list[RecoveredContainer],
                                                          list[RecoveredContainer]]:
    """The containers to look for: executor processes, and Docker task containers."""
    runs: list[RecoveredContainer] = []
    docker_runs: list[RecoveredContainer] = []
    for fw in previous.frameworks.values():
        for ex in fw.executors.values():
            run = latest_run(ex)
            if run is None:
                continue
            if ex.kind == "docker":
                if fw.info is not None and fw.info.checkpoint:
                    docker_runs.append(RecoveredContainer(run.container_id, 0, 0.0))
            elif run.pid and ex.kind != "command":
                runs.append(RecoveredContainer(run.container_id, run.pid, run.create_time))
    return runs, docker_runs


class Recovery:
    """One recovery of an agent from its checkpoint (``load`` → ``adopt`` → ``finish``)."""

    def __init__(self, config: AgentConfig, core: AgentState, checkpointer: Checkpointer,
                 containerizer: Containerizer, docker: DockerTasks,
                 perform: Callable[[Iterable[Effect]], None], boot_id: str) -> None:
        """Recover ``core`` (not yet started) from ``checkpointer``'s work directory."""
        self._cfg = config
        self._core = core
        self._checkpointer = checkpointer
        self._containerizer = containerizer
        self._docker = docker
        self._perform = perform
        self._boot_id = boot_id
        self.previous: CheckpointedAgent | None = None
        #: Why no Docker container could be looked for ("" when the daemon answered).
        self._docker_why = ""

    async def load(self) -> CheckpointedAgent | None:
        """Read the checkpoint; clean up instead when it must not be reconnected to.

        Returns what will be recovered (None: register as a new agent).
        """
        cp = self._checkpointer
        previous = cp.load()
        if previous is None:
            return None
        if self._cfg.recover != "reconnect":
            log.info("recover=%s: cleaning up agent %s", self._cfg.recover, previous.info.id)
            await clean_previous_run(cp, self._containerizer)
            return None
        if previous.boot_id and self._boot_id and previous.boot_id != self._boot_id:
            log.warning("Host rebooted since agent %s ran (boot id %s, now %s); "
                        "registering as a new agent", previous.info.id, previous.boot_id,
                        self._boot_id)
            await clean_previous_run(cp, self._containerizer)
            return None
        self.previous = previous
        # Orphan containers are removed by adopt() once the checkpointed ones are known.
        self._docker.expect_recovery()
        return previous

    async def adopt(self) -> None:
        """Find the surviving containers; rebuild records and adopt them (socket bound already)."""
        previous = self.previous
        assert previous is not None
        runs, docker_runs = recoverable_runs(previous)
        alive = await self._containerizer.recover(runs)
        docker_alive: set[str] = set()
        if self._docker.enabled or docker_runs:
            docker_alive, self._docker_why = await self._docker.recover(docker_runs)
            for run in docker_runs:
                log.info("Checkpointed Docker container %s: %s", run.container_id,
                         "reattached" if run.container_id in docker_alive
                         else f"gone ({self._docker_why})" if self._docker_why else "gone")
        for run in runs:
            log.info("Checkpointed container %s (pid %d): %s", run.container_id, run.pid,
                     "still running" if run.container_id in alive else "gone")
        self._perform(self._core.rebuild(previous, alive, docker_alive))
        await self._kill_unknown(previous)

    async def _kill_unknown(self, previous: CheckpointedAgent) -> None:
        """Kill processes of this agent's sandboxes that the checkpoint does not know.

        A process whose ``MESOS_SANDBOX`` lies under this agent's sandboxes but in no run
        the journal recorded (a crash between starting it and checkpointing it) cannot be
        adopted: it would run on untracked beside the replacement the framework starts.
        """
        runs = [(fid, eid, cid) for fid, fw in previous.frameworks.items()
                for eid, ex in fw.executors.items() for cid in ex.runs]
        loop = asyncio.get_running_loop()
        unknown = await loop.run_in_executor(None, _unknown_processes,
                                             self._checkpointer.work_dir, previous.info.id, runs)
        for sandbox, pids in sorted(unknown.items()):
            log.warning("Killing %d process(es) (pids %s) of sandbox %s: not in the "
                        "checkpoint, so they cannot be recovered", len(pids),
                        ", ".join(map(str, pids)), sandbox)
            self._core.metrics.unknown_processes_killed += len(pids)
        kill_pids(pid for pids in unknown.values() for pid in pids)

    async def finish(self) -> None:
        """Fail what was lost, wait for executors to come back, kill the ones that did not."""
        core = self._core
        self._perform(core.fail_lost(self._docker_why))
        window = self._cfg.executor_reregistration_timeout + EXECUTOR_HEARTBEAT_INTERVAL
        window = min(window, self._cfg.recovery_timeout)  # the agent's recovery is bounded
        deadline = time.monotonic() + window
        # (Polled: the pure core decides when re-registration is done and has no event to
        # signal; bounded by the window.)
        while core.pending_reregistration() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        self._perform(core.end_reregistration_window())


def _unknown_processes(work_dir: str, agent_id: str,
                       runs: list[tuple[str, str, str]]) -> dict[str, list[int]]:
    """Sandbox -> pids of live processes under ``agent_id``'s sandboxes in none of ``runs``."""
    root = os.path.join(os.path.realpath(work_dir), "agents", agent_id)
    known = {os.path.join(root, "frameworks", fid, "executors", eid, "runs", cid)
             for fid, eid, cid in runs}
    found = find_by_env_prefix("MESOS_SANDBOX", root)
    return {sandbox: pids for sandbox, pids in found.items()
            if sandbox not in known and os.path.realpath(sandbox) not in known}


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
