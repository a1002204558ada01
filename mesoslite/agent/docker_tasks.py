"""Docker tasks on the agent: the Docker containerizer's plumbing (I/O shell).

Owns: :class:`DockerTasks`, the I/O of ``TaskInfo.container.type ==
"DOCKER"`` tasks.  With ``docker`` in ``--containerizers`` it creates the
:class:`~mesoslite.agent.containerizer.docker.DockerContainerizer` (through
the factory the composition root gives it, so agents without Docker never
load the SDK), checks the daemon's health (at start, in one clear line naming
``--docker_host`` when it does not answer, and in the background), and
performs the core's Docker effects: ``RunDockerTask`` (launch with pull
progress, health checks beside the container, wait), ``KillDockerTask``,
``ResumeDockerTask`` and ``DiscardDockerContainer``.  What happens to the
task is the core's decision (:mod:`mesoslite.agent.core.docker`); this
module reports each event: not created, launch failed, started, health,
exited.

Recovery (``--recover=reconnect``): :meth:`DockerTasks.expect_recovery`
before :meth:`DockerTasks.start`, then :meth:`DockerTasks.recover` with the
checkpointed Docker runs: running containers carrying this agent's labels are
reattached (not restarted; their logs are appended from where the previous
run stopped), ones that exited meanwhile report their exit status, and
labelled containers no checkpoint names are removed (``docker_kill_orphans``).
Without a previous run to reconnect to, :meth:`DockerTasks.start` removes
every labelled container of this agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from mesoslite.agent.config import AgentConfig
from mesoslite.agent.containerizer import ContainerizerError, RecoveredContainer, Termination
from mesoslite.agent.core import AgentState
from mesoslite.agent.effects import Effect, KillDockerTask, RunDockerTask
from mesoslite.agent.views import statistics_entry
from mesoslite.health.probes import HealthChecker, ProbeResult
from mesoslite.protocol import CommandInfo, Reason

if TYPE_CHECKING:
    from mesoslite.agent.containerizer.docker import DockerContainerizer

log = logging.getLogger("mesoslite.agent.docker_tasks")

#: Makes the Docker containerizer: ``(work_dir, on_progress) -> DockerContainerizer``.
DockerFactory = Callable[[str, Callable[[str, str], None]], "DockerContainerizer"]


class DockerTasks:
    """The Docker containerizer of one agent and the containers of its Docker tasks."""

    def __init__(self, config: AgentConfig, core: AgentState,
                 perform: Callable[[Iterable[Effect]], None],
                 create: DockerFactory | None = None) -> None:
        """Serve ``core``; ``create`` makes the containerizer (None: docker is not enabled)."""
        self._cfg = config
        self._core = core
        self._perform = perform
        self._create = create
        self.containerizer: DockerContainerizer | None = None
        self._jobs: set[asyncio.Task[Any]] = set()
        self._health_job: asyncio.Task[None] | None = None
        #: Why the containerizer could not be created ("" when it was, or is not enabled).
        self.error = ""
        #: Containers of Docker tasks being run or followed.
        self._running: set[str] = set()
        #: Containers whose kill was asked (not created / no health check after that).
        self._killed: set[str] = set()
        #: True when a previous run is being reconnected to (orphans wait for recover()).
        self._recovering = False

    @property
    def enabled(self) -> bool:
        """True when ``docker`` is in ``--containerizers``."""
        return self._create is not None

    async def start(self) -> None:
        """Create the containerizer, check the daemon, remove orphans, start health checks.

        An unreachable daemon is one error line naming ``--docker_host``; the
        agent keeps running (Docker tasks fail with the daemon's error until it
        answers again).
        """
        if self._create is None:
            return
        try:
            dc = self._create(self._core.work_dir, self._on_progress)
        except ImportError as exc:
            self._unavailable(f"--containerizers docker needs the Docker SDK for Python "
                              f"(pip install docker): {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - e.g. a docker_host the SDK cannot use
            self._unavailable(f"cannot create the Docker containerizer (--docker_host "
                              f"{self._docker_host()}): {exc}")
            return
        self.containerizer = dc
        self._core.set_docker("")
        if await dc.check_health():
            log.info("Docker containerizer: %s", dc.health_message)
            if self._cfg.docker_kill_orphans and not self._recovering:
                try:
                    await dc.recover([])
                except Exception as exc:  # noqa: BLE001 - best effort at start
                    log.warning("Docker containerizer: orphan cleanup failed: %s", exc)
        else:
            # "Docker daemon at <url> is unreachable: ..." names the url the flag gave.
            why = dc.health_message.replace(f"Docker daemon at {dc.options.base_url} is ",
                                            "the Docker daemon is ", 1)
            log.error("Docker containerizer: --docker_host %s: %s; Docker tasks will fail until "
                      "it answers", self._docker_host(), why)
        self._health_job = asyncio.get_running_loop().create_task(
            dc.run_health_checks(self._cfg.docker_health_interval)
        )

    def _unavailable(self, why: str) -> None:
        self.error = why
        self._core.set_docker(why)
        log.error("Docker containerizer: %s; Docker tasks will fail", why)

    def _docker_host(self) -> str:
        """The daemon address in use, and where it came from when not from the flag."""
        if self._cfg.docker_host:
            return self._cfg.docker_host
        if os.environ.get("DOCKER_HOST"):
            return f"{os.environ['DOCKER_HOST']} (from $DOCKER_HOST)"
        return "unix:///var/run/docker.sock (the default)"

    def health(self) -> dict[str, Any] | None:
        """The daemon's health for ``/state`` (None when docker is not enabled)."""
        if self.containerizer is not None:
            return self.containerizer.health()
        if self.error:
            return {"healthy": False, "message": self.error}
        return None

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        job = asyncio.get_running_loop().create_task(coro)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return job

    # ------------------------------------------------------------ launch

    def run(self, effect: RunDockerTask) -> None:
        """Start the task's container in the background and report its life."""
        self._running.add(effect.container_id)
        self._spawn(self._run(effect))

    async def _run(self, effect: RunDockerTask) -> None:
        cid = effect.container_id
        try:
            await self._run_inner(effect)
        except Exception:
            log.exception("Docker task %s of framework %s: unexpected error",
                          effect.task.task_id, effect.framework_id)
            self._perform(self._core.docker_failed(cid, "the agent failed to run the container",
                                                   Reason.REASON_CONTAINER_LAUNCH_FAILED))
        finally:
            self._running.discard(cid)
            self._killed.discard(cid)
            if self.containerizer is not None:
                self.containerizer.remove(cid)

    async def _run_inner(self, effect: RunDockerTask) -> None:
        from mesoslite.agent.containerizer.docker import DockerLaunchSpec

        dc = self.containerizer
        assert dc is not None
        cid, info = effect.container_id, effect.task
        if dc.healthy is False and not await dc.check_health():
            self._perform(self._core.docker_failed(
                cid, f"Docker daemon unhealthy: {dc.health_message}",
                Reason.REASON_CONTAINER_LAUNCH_FAILED))
            return
        if cid in self._killed:
            self._perform(self._core.docker_not_created(cid))
            return
        assert info.container is not None
        spec = DockerLaunchSpec(
            command=info.command or CommandInfo(value=""), sandbox=effect.directory,
            environment=effect.environment, resources=info.resources,
            container_info=info.container, agent_id=effect.agent_id,
            framework_id=effect.framework_id, executor_id=effect.executor_id,
            task_id=info.task_id,
        )
        try:
            pid = await dc.launch(cid, spec)
        except ContainerizerError as exc:
            reason = getattr(exc, "reason", Reason.REASON_CONTAINER_LAUNCH_FAILED)
            self._perform(self._core.docker_launch_failed(cid, str(exc), reason))
            return
        self._perform(self._core.docker_started(cid, pid, dc.networks(cid)))
        checker = None if cid in self._killed else self._start_health(effect)
        try:
            termination = await dc.wait(cid)
        finally:
            if checker is not None:
                checker.stop()
        self._report_end(cid, termination)

    def _report_end(self, cid: str, termination: Termination) -> None:
        self._perform(self._core.docker_exited(
            cid, termination.status, termination.message,
            getattr(termination, "exit_code", None), getattr(termination, "reason", None)))

    def _start_health(self, effect: RunDockerTask) -> HealthChecker | None:
        """Run the task's health check beside its container (None: it has none).

        HTTP and TCP checks connect to the agent's address on the check's port
        (a host port: HOST networking, or the host side of a BRIDGE mapping);
        COMMAND checks run inside the container (``docker exec``).  The core
        turns transitions into TASK_RUNNING updates with ``healthy`` and too
        many failures into the task's kill (TASK_KILLED, healthy=false).
        """
        check = effect.task.health_check
        dc = self.containerizer
        if check is None or dc is None:
            return None
        cid, env = effect.container_id, effect.environment
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

        try:
            checker = HealthChecker(
                check, env=env, cwd=effect.directory,
                on_status=lambda healthy, message: self._perform(
                    self._core.docker_health(cid, healthy, message)),
                on_kill=lambda message: self._perform(
                    self._core.docker_health_failed(cid, message)),
                host=self._cfg.ip, name=effect.task.task_id, probe=probe,
            )
        except ValueError as exc:
            log.warning("Docker task %s: health check not run: %s", effect.task.task_id, exc)
            return None
        checker.start()
        return checker

    def _on_progress(self, container_id: str, message: str) -> None:
        """Pull progress of a container (shown on the task in ``/state``)."""
        if container_id in self._running:
            self._core.docker_progress(container_id, message)

    # ------------------------------------------------------------ kill and shutdown

    def kill(self, effect: KillDockerTask) -> None:
        """Stop a task's container: SIGTERM, SIGKILL after the grace period."""
        self._killed.add(effect.container_id)
        self._spawn(self._kill(effect.container_id, effect.grace))

    async def _kill(self, cid: str, grace: float) -> None:
        dc = self.containerizer
        if dc is None or cid not in dc.containers():
            return
        with contextlib.suppress(ContainerizerError):
            await dc.kill(cid, grace)

    async def wait_all(self, grace: float) -> None:
        """After the kills: wait (bounded) until every followed container has reported."""
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

    # ------------------------------------------------------------ recovery

    def expect_recovery(self) -> None:
        """A previous run will be reconnected to.

        :meth:`start` then leaves orphans to :meth:`recover`.
        """
        self._recovering = True

    async def recover(self, runs: list[RecoveredContainer]) -> tuple[set[str], str]:
        """Reattach to the checkpointed Docker task containers ``runs``; remove unknown ones.

        Returns the ids reattached (running, or exited meanwhile with their exit
        status waiting in :meth:`resume`) and, when none could be looked for, why
        ("" when the daemon answered).  Labelled containers of this agent not in
        ``runs`` are removed when ``docker_kill_orphans`` is set.
        """
        self._recovering = False
        dc = self.containerizer
        if dc is None:
            if self.enabled:
                return set(), self.error or self._core.docker_refusal
            return set(), "the docker containerizer is not enabled on this agent any more"
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

    def resume(self, container_id: str) -> None:
        """Follow a reattached task container: TASK_RUNNING if not yet sent, then its end."""
        dc = self.containerizer
        assert dc is not None
        self._running.add(container_id)
        running = not dc.ended(container_id)
        self._perform(self._core.docker_reattached(container_id, dc.pid(container_id) or None,
                                                   running, dc.networks(container_id)))
        self._spawn(self._resume(container_id))

    async def _resume(self, cid: str) -> None:
        dc = self.containerizer
        assert dc is not None
        try:
            termination = await dc.wait(cid)
            self._report_end(cid, termination)
        except Exception:
            log.exception("Docker task container %s: unexpected error", cid)
            self._perform(self._core.docker_failed(
                cid, "the agent failed to follow the reattached container",
                Reason.REASON_EXECUTOR_TERMINATED))
        finally:
            self._running.discard(cid)
            self._killed.discard(cid)
            dc.remove(cid)

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

    # ------------------------------------------------------------ statistics

    async def statistics(self) -> list[dict[str, Any]]:
        """``/monitor/statistics`` entries of running Docker tasks (measured off the loop)."""
        dc = self.containerizer
        if dc is None or not self._running:
            return []
        running = [ex for fw in self._core.frameworks.values() for ex in fw.executors.values()
                   if ex.kind == "docker" and ex.pid and ex.container_id in self._running]

        def measure() -> list[tuple[Any, Any]]:
            return [(ex, dc.usage(ex.container_id)) for ex in running]

        results = await asyncio.get_running_loop().run_in_executor(None, measure)
        return [statistics_entry(ex, usage) for ex, usage in results if usage is not None]
