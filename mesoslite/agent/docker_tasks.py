"""Docker tasks on the agent: one task, one container, run by the Docker containerizer.

Owns: :class:`DockerTasks`, the agent's side of ``TaskInfo.container.type ==
"DOCKER"`` tasks.  It creates the :class:`DockerContainerizer` when
``docker`` is in ``--containerizers`` (imported lazily: agents without it never
load the Docker SDK), checks the daemon's health (at start and in the
background), and runs each Docker task as a *virtual* executor (executor id =
task id, its own container id and sandbox, like a command task): TASK_STARTING,
launch (pull progress kept on the task record), TASK_RUNNING, wait, then
TASK_FINISHED / TASK_FAILED / TASK_KILLED from the container's termination.
Kills send TASK_KILLING (to frameworks with that capability) and stop the
container with the grace period.  Updates enter the agent's status-update
flow exactly like an executor's (checkpointed, retried until acknowledged).

Recovery (``--recover=reconnect``): :mod:`mesoslite.agent.reconnect` calls
:meth:`DockerTasks.expect_recovery` before :meth:`DockerTasks.start`, then
:meth:`DockerTasks.recover` with the checkpointed Docker runs: running
containers carrying this agent's labels are reattached (not restarted; their
logs are appended from where the previous run stopped), ones that exited
meanwhile report their exit status, and labelled containers no checkpoint
names are removed (``docker_kill_orphans``).  :meth:`DockerTasks.adopt`
resumes a recovered task at ``wait``.  Without a previous run to reconnect
to, :meth:`DockerTasks.start` removes every labelled container of this agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

import attrs

from mesoslite.agent.containerizer import ContainerizerError, RecoveredContainer, Termination
from mesoslite.agent.sandbox import sandbox_dir, task_environment
from mesoslite.agent.state import ExecutorRecord, ExecutorState, FrameworkRecord, TaskRecord
from mesoslite.agent.views import statistics_entry
from mesoslite.health.probes import HealthChecker, ProbeResult
from mesoslite.protocol import (
    CommandInfo,
    ExecutorInfo,
    KillPolicy,
    Reason,
    Source,
    TaskInfo,
    TaskState,
)

if TYPE_CHECKING:
    from mesoslite.agent.agent import Agent
    from mesoslite.agent.containerizer.docker import DockerContainerizer

log = logging.getLogger("mesoslite.agent.docker_tasks")

#: Why a Docker task cannot run when the agent has no Docker containerizer.
NO_DOCKER_MESSAGE = (
    "container.type: DOCKER needs the docker containerizer, which this agent does not run "
    "(start it with --containerizers=docker,process)"
)


class DockerTasks:
    """The Docker containerizer of one agent and the Docker tasks it runs."""

    def __init__(self, agent: Agent) -> None:
        """Serve ``agent``; nothing talks to Docker until :meth:`start`."""
        self._agent = agent
        self._cfg = agent.config
        self.containerizer: DockerContainerizer | None = None
        self._jobs: set[asyncio.Task[Any]] = set()
        self._health_job: asyncio.Task[None] | None = None
        #: Why the containerizer could not be created ("" when it was, or is not enabled).
        self.error = ""
        #: container id -> (framework, executor) of Docker tasks not yet ended.
        self._running: dict[str, tuple[FrameworkRecord, ExecutorRecord]] = {}
        #: container id -> grace period of a requested kill.
        self._grace: dict[str, float] = {}
        #: container id → why its task was killed by its failing health check.
        self._health_killed: dict[str, str] = {}
        #: True when a previous run is being reconnected to (orphans wait for recover()).
        self._recovering = False

    @property
    def enabled(self) -> bool:
        """True when ``docker`` is in ``--containerizers``."""
        return "docker" in self._cfg.containerizer_list

    async def start(self) -> None:
        """Create the containerizer, check the daemon, remove orphans, start health checks.

        An unhealthy daemon is logged; the agent keeps running (Docker tasks fail
        with the daemon's error until it answers again).
        """
        if not self.enabled:
            return
        from mesoslite.agent.containerizer.docker import DockerContainerizer

        try:
            dc = DockerContainerizer(
                self._agent.work_dir, self._cfg.docker_options(), on_progress=self._on_progress
            )
        except Exception as exc:  # noqa: BLE001 - e.g. a docker_host the SDK cannot use
            self.error = f"docker containerizer unavailable: {exc}"
            log.error("Docker containerizer: cannot be created (%s); Docker tasks will fail", exc)
            return
        self.containerizer = dc
        if await dc.check_health():
            log.info("Docker containerizer: %s", dc.health_message)
            if self._cfg.docker_kill_orphans and not self._recovering:
                try:
                    await dc.recover([])
                except Exception as exc:  # noqa: BLE001 - best effort at start
                    log.warning("Docker containerizer: orphan cleanup failed: %s", exc)
        else:
            log.error("Docker containerizer: daemon unhealthy (%s); Docker tasks will fail "
                      "until it answers", dc.health_message)
        self._health_job = asyncio.get_running_loop().create_task(
            dc.run_health_checks(self._cfg.docker_health_interval)
        )

    def health(self) -> dict[str, Any] | None:
        """The daemon's health for ``/state`` (None when docker is not enabled)."""
        if self.containerizer is not None:
            return self.containerizer.health()
        if self.error:
            return {"healthy": False, "message": self.error}
        return None

    def refusal(self) -> str:
        """Why a Docker task cannot run here (the containerizer is missing)."""
        return self.error or NO_DOCKER_MESSAGE

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        job = asyncio.get_running_loop().create_task(coro)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return job

    # ------------------------------------------------------------ launch

    def new_executor(self, fw: FrameworkRecord, task: TaskInfo) -> ExecutorRecord:
        """The virtual executor of a Docker task (executor id = task id)."""
        cid = uuid.uuid4().hex
        agent_id = self._agent.agent_id or "unregistered"
        directory = sandbox_dir(self._agent.work_dir, agent_id, fw.id, task.task_id, cid)
        container = task.container
        image = container.docker.image if container and container.docker else "?"
        info = ExecutorInfo(
            executor_id=task.task_id,
            command=CommandInfo(value=f"docker run {image}"),
            framework_id=fw.id,
            name=f"Docker Executor (Task: {task.task_id}) (Image: {image})",
            type="COMMAND",
        )
        ex = ExecutorRecord(
            fw.id, info, cid, directory, "docker", self._cfg.max_completed_tasks_per_executor
        )
        ex.state = ExecutorState.RUNNING
        fw.executors[ex.executor_id] = ex
        self._agent._checkpoint_executor(fw, ex)
        return ex

    def run(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskRecord) -> None:
        """Start the task's container in the background and report its life."""
        ex.launched_tasks[task.task_id] = task
        self._running[ex.container_id] = (fw, ex)
        self._spawn(self._run(fw, ex, task))

    def _update(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskRecord,
                state: TaskState, message: str, reason: Reason | None = None, *,
                healthy: bool | None = None) -> None:
        """A status update of the task, accepted like one its executor sent."""
        agent = self._agent
        update = agent._agent_update(fw.id, task.task_id, state, message, reason, ex.executor_id)
        update = attrs.evolve(
            update, status=attrs.evolve(update.status, source=Source.SOURCE_EXECUTOR,
                                        healthy=healthy)
        )
        agent._accept_update(update, ex)

    async def _run(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskRecord) -> None:
        cid = ex.container_id
        try:
            await self._run_inner(fw, ex, task)
        except Exception:
            log.exception("Docker task %s of framework %s: unexpected error", task.task_id, fw.id)
            if not task.state.is_terminal:
                self._update(fw, ex, task, TaskState.TASK_FAILED,
                             "the agent failed to run the container",
                             Reason.REASON_CONTAINER_LAUNCH_FAILED)
        finally:
            self._running.pop(cid, None)
            self._grace.pop(cid, None)
            if self.containerizer is not None:
                self.containerizer.remove(cid)

    async def _run_inner(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskRecord) -> None:
        from mesoslite.agent.containerizer.docker import DockerLaunchSpec

        dc = self.containerizer
        assert dc is not None
        info = task.info
        self._update(fw, ex, task, TaskState.TASK_STARTING,
                     "launching the Docker container")
        if dc.healthy is False and not await dc.check_health():
            self._update(fw, ex, task, TaskState.TASK_FAILED,
                         f"Docker daemon unhealthy: {dc.health_message}",
                         Reason.REASON_CONTAINER_LAUNCH_FAILED)
            return
        assert info.container is not None
        if task.kill_requested:
            self._update(fw, ex, task, TaskState.TASK_KILLED,
                         "killed before the container was created",
                         Reason.REASON_TASK_KILLED_DURING_LAUNCH)
            return
        env = task_environment(
            info,
            framework_id=fw.id,
            executor_id=ex.executor_id,
            container_id=ex.container_id,
            sandbox=ex.directory,
            agent_endpoint=self._agent.http_endpoint,
            host=self._cfg.effective_hostname,
        )
        spec = DockerLaunchSpec(
            command=info.command or CommandInfo(value=""),
            sandbox=ex.directory,
            environment=env,
            resources=info.resources,
            container_info=info.container,
            agent_id=self._agent.agent_id or "",
            framework_id=fw.id,
            executor_id=ex.executor_id,
            task_id=info.task_id,
        )
        try:
            pid = await dc.launch(ex.container_id, spec)
        except ContainerizerError as exc:
            if task.kill_requested:
                self._update(fw, ex, task, TaskState.TASK_KILLED,
                             "killed before the container started",
                             Reason.REASON_TASK_KILLED_DURING_LAUNCH)
            else:
                reason = getattr(exc, "reason", Reason.REASON_CONTAINER_LAUNCH_FAILED)
                self._update(fw, ex, task, TaskState.TASK_FAILED,
                             f"Failed to launch container: {exc}", reason)
            return
        ex.pid = pid
        pulled = task.progress
        task.progress = ""
        image = info.container.docker.image if info.container.docker else "?"
        message = "container started"
        if pulled:
            message += f"; {pulled}" if pulled.startswith("pulled image") else (
                f"; pulled image {image}")
        if task.kill_requested:
            # The kill came while the container was being created: stop it now.
            await self._kill(ex, self._grace.get(ex.container_id, 0.0))
        else:
            self._update(fw, ex, task, TaskState.TASK_RUNNING, message)
        checker = self._start_health(fw, ex, task, env)
        try:
            termination = await dc.wait(ex.container_id)
        finally:
            if checker is not None:
                checker.stop()
        self._report_end(fw, ex, task, termination)

    def _start_health(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskRecord,
                      env: dict[str, str]) -> HealthChecker | None:
        """Run the task's health check beside its container (None: it has none).

        HTTP and TCP checks connect to the agent's address on the check's port
        (a host port: HOST networking, or the host side of a BRIDGE mapping);
        COMMAND checks run inside the container (``docker exec``).  Transitions
        become TASK_RUNNING updates with ``healthy`` set; too many failures kill
        the task with its grace period, ending TASK_KILLED with healthy=false.
        """
        check = task.info.health_check
        dc = self.containerizer
        if check is None or dc is None or task.kill_requested:
            return None
        cid = ex.container_id
        probe = None
        if check.type == "COMMAND" and check.command is not None:
            argv = (["/bin/sh", "-c", check.command.value] if check.command.shell
                    else [check.command.value, *check.command.arguments])
            check_env = {**env, **dict(check.command.environment)}

            async def probe() -> ProbeResult:
                code, output = await dc.exec_command(cid, argv, check_env,
                                                     check.timeout_seconds)
                if code == 0:
                    return ProbeResult(True, "command exited 0")
                what = f"exited {code}" if code is not None else "did not run"
                return ProbeResult(False, f"command {what}: {output.strip()[-200:]}")

        def on_status(healthy: bool, message: str) -> None:
            if not task.state.is_terminal and not task.kill_requested:
                self._update(fw, ex, task, TaskState.TASK_RUNNING, message,
                             Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED, healthy=healthy)

        def on_kill(message: str) -> None:
            if task.state.is_terminal or task.kill_requested:
                return
            self._health_killed[cid] = message
            self.kill(fw, ex, task, task.info.kill_policy or KillPolicy())

        try:
            checker = HealthChecker(check, env=env, cwd=ex.directory, on_status=on_status,
                                    on_kill=on_kill, host=self._cfg.ip, name=task.task_id,
                                    probe=probe)
        except ValueError as exc:
            log.warning("Docker task %s: health check not run: %s", task.task_id, exc)
            return None
        checker.start()
        return checker

    def _report_end(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskRecord,
                    termination: Termination) -> None:
        """The task's terminal update from how its container ended (exit code in the message)."""
        if task.state.is_terminal:
            return
        code = getattr(termination, "exit_code", None)
        unhealthy = self._health_killed.pop(ex.container_id, None)
        if unhealthy is not None:
            self._update(fw, ex, task, TaskState.TASK_KILLED, f"Task killed: {unhealthy}",
                         Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED, healthy=False)
        elif task.kill_requested:
            self._update(fw, ex, task, TaskState.TASK_KILLED, f"Container {termination.message}")
        elif termination.status == 0:
            self._update(fw, ex, task, TaskState.TASK_FINISHED,
                         f"Container {termination.message}")
        else:
            reason = getattr(termination, "reason", None) or Reason.REASON_COMMAND_EXECUTOR_FAILED
            text = f"Container {termination.message}"
            if code is not None and f"{code}" not in text:
                text += f" (exit code {code})"
            self._update(fw, ex, task, TaskState.TASK_FAILED, text, reason)

    # ------------------------------------------------------------ recovery

    def expect_recovery(self) -> None:
        """A previous run will be reconnected to: :meth:`start` leaves orphans to :meth:`recover`."""
        self._recovering = True

    async def recover(self, runs: list[RecoveredContainer]) -> tuple[set[str], str]:
        """Reattach to the checkpointed Docker task containers ``runs``; remove unknown ones.

        Returns the ids reattached (running, or exited meanwhile with their exit
        status waiting in :meth:`adopt`) and, when none could be looked for, why
        ("" when the daemon answered).  Labelled containers of this agent not in
        ``runs`` are removed when ``docker_kill_orphans`` is set.
        """
        self._recovering = False
        dc = self.containerizer
        if dc is None:
            return set(), self.refusal() if self.enabled else (
                "the docker containerizer is not enabled on this agent any more")
        if dc.healthy is False and not await dc.check_health():
            return set(), f"Docker daemon unhealthy: {dc.health_message}"
        try:
            found = await dc.recover(runs)
        except Exception as exc:  # noqa: BLE001 - reported as the tasks' failure reason
            log.error("Docker containerizer: recovery failed: %s", exc)
            return set(), f"Docker recovery failed: {exc}"
        if dc.orphans_removed:
            log.info("Docker containerizer: removed %d orphan containers",
                     len(dc.orphans_removed))
        return found, ""

    def adopt(self, fw: FrameworkRecord, ex: ExecutorRecord) -> None:
        """Resume a reattached Docker task at ``wait``: TASK_RUNNING if not yet sent, then its end."""
        dc = self.containerizer
        assert dc is not None
        ex.state = ExecutorState.RUNNING
        ex.pid = dc.pid(ex.container_id) or None
        self._running[ex.container_id] = (fw, ex)
        self._spawn(self._resume(fw, ex))

    async def _resume(self, fw: FrameworkRecord, ex: ExecutorRecord) -> None:
        cid = ex.container_id
        dc = self.containerizer
        assert dc is not None
        try:
            if not dc.ended(cid):
                for task in ex.live_tasks():
                    if task.state in (TaskState.TASK_STAGING, TaskState.TASK_STARTING):
                        self._update(fw, ex, task, TaskState.TASK_RUNNING,
                                     "container reattached after an agent restart")
            termination = await dc.wait(cid)
            for task in ex.live_tasks():
                self._report_end(fw, ex, task, termination)
        except Exception:
            log.exception("Docker task container %s of framework %s: unexpected error", cid, fw.id)
            for task in ex.live_tasks():
                self._update(fw, ex, task, TaskState.TASK_FAILED,
                             "the agent failed to follow the reattached container",
                             Reason.REASON_EXECUTOR_TERMINATED)
        finally:
            self._running.pop(cid, None)
            self._grace.pop(cid, None)
            dc.remove(cid)

    def lost(self, fw: FrameworkRecord, ex: ExecutorRecord, why: str) -> None:
        """A checkpointed Docker task whose container was not found after a restart: TASK_FAILED."""
        for task in ex.live_tasks():
            state = TaskState.TASK_KILLED if task.kill_requested else TaskState.TASK_FAILED
            self._update(fw, ex, task, state,
                         f"Container {ex.container_id} was gone when the agent restarted"
                         f" ({why})", Reason.REASON_EXECUTOR_TERMINATED)
        ex.state = ExecutorState.RUNNING  # ended with its task's acknowledged terminal update

    def discard(self, container_id: str) -> None:
        """Stop and remove a reattached container no recovered task needs any more."""
        dc = self.containerizer
        if dc is None or container_id not in dc.containers():
            return

        async def stop() -> None:
            with contextlib.suppress(ContainerizerError):
                await dc.kill(container_id, 0.0)
            dc.remove(container_id)

        log.info("Docker container %s: its tasks are over; removing it", container_id)
        self._spawn(stop())

    def _on_progress(self, container_id: str, message: str) -> None:
        """Pull progress of a container: kept on its task record (shown on /state)."""
        entry = self._running.get(container_id)
        if entry is None:
            return
        for task in entry[1].live_tasks():
            task.progress = message

    # ------------------------------------------------------------ kill and shutdown

    def kill(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskRecord,
             policy: KillPolicy) -> None:
        """TASK_KILLING (if the framework understands it), then stop the container."""
        task.kill_requested = True
        self._grace[ex.container_id] = policy.grace_period
        if fw.info.has_capability("TASK_KILLING_STATE") and task.state in (
            TaskState.TASK_STAGING, TaskState.TASK_STARTING, TaskState.TASK_RUNNING
        ):
            self._update(fw, ex, task, TaskState.TASK_KILLING,
                         f"killing the container (grace {policy.grace_period:g}s)")
        self._spawn(self._kill(ex, policy.grace_period))

    async def _kill(self, ex: ExecutorRecord, grace: float) -> None:
        dc = self.containerizer
        if dc is None or ex.container_id not in dc.containers():
            return
        with contextlib.suppress(ContainerizerError):
            await dc.kill(ex.container_id, grace)

    def kill_framework(self, fw: FrameworkRecord, grace: float) -> None:
        """Kill every Docker task of a framework (framework shutdown)."""
        for cfw, ex in list(self._running.values()):
            if cfw is fw:
                for task in ex.live_tasks():
                    self.kill(fw, ex, task, KillPolicy(grace))

    async def shutdown_all(self, grace: float) -> None:
        """Kill every Docker task with ``grace`` and wait (bounded) for their updates."""
        for fw, ex in list(self._running.values()):
            for task in ex.live_tasks():
                task.kill_requested = True
            self._grace[ex.container_id] = grace
            self._spawn(self._kill(ex, grace))
        jobs = [j for j in self._jobs if not j.done()]
        if jobs:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True),
                                       grace + 15.0)

    def close(self) -> None:
        """Stop health checks and watching (containers of a non-killing stop keep running)."""
        if self._health_job is not None:
            self._health_job.cancel()
        for job in list(self._jobs):
            job.cancel()
        if self.containerizer is not None:
            self.containerizer.close()

    # ------------------------------------------------------------ statistics

    async def statistics(self) -> list[dict[str, Any]]:
        """``/monitor/statistics`` entries of running Docker tasks (measured off the loop)."""
        dc = self.containerizer
        if dc is None or not self._running:
            return []
        running = [ex for _fw, ex in self._running.values() if ex.pid]

        def measure() -> list[tuple[ExecutorRecord, Any]]:
            return [(ex, dc.usage(ex.container_id)) for ex in running]

        results = await asyncio.get_running_loop().run_in_executor(None, measure)
        return [statistics_entry(ex, usage) for ex, usage in results if usage is not None]
