"""The built-in command executor: ``python -m mesoslite.executor.command``.

Owns: running command tasks (``TaskInfo.command``) with Mesos semantics.
One process serves every command task of one framework on one agent (a
Python interpreter per task would cap throughput), yet each task keeps what
Mesos gives it: its own executor id (= task id), container id, sandbox with
``stdout``/``stderr`` (the agent passes them in the task's
``command.environment`` as ``MESOS_SANDBOX``/``MESOS_CONTAINER_ID``), its own
process group, TASK_STARTING → TASK_RUNNING when spawned, TASK_FINISHED on
exit 0 or TASK_FAILED with "Command exited with status N" / "Command
terminated by signal N (NAME)", and on a kill TASK_KILLING (for frameworks
with TASK_KILLING_STATE), SIGTERM to the group, SIGKILL after the grace
period, then TASK_KILLED.  Each task's sandbox is created and its process
spawned right on the event loop with ``posix_spawn`` (a vfork: the loop waits
only until the child has exec'd; no thread hand-off), so TASK_STARTING and
TASK_RUNNING leave in the same loop turn; processes are reaped by pidfds on
the event loop (see :mod:`mesoslite.proc`).  The
process runs in its own session so it can outlive the agent.

Each task is confined first (:mod:`mesoslite.executor.confine`, with the agent's
isolation settings from ``MESOSLITE_ISOLATION``): it runs as its user
(``CommandInfo.user``, else the framework's; an unknown one is TASK_FAILED with
REASON_CONTAINER_LAUNCH_FAILED naming it, before anything runs), with a clean
environment, in a sandbox it owns, inside its own cgroups.  An OOM kill in its memory
cgroup kills the task at once and ends it TASK_FAILED with
REASON_CONTAINER_LIMITATION_MEMORY ("Memory limit exceeded: ..."); with ``posix/disk`` a
``du`` of each sandbox every ``container_disk_watch_interval`` warns, or with
``--enforce_container_disk_quota`` kills (REASON_CONTAINER_LIMITATION_DISK), a task over
its ``disk``; the cgroups are destroyed when the task ends.

Tasks with a ``health_check`` get a
:class:`~mesoslite.health.probes.HealthChecker` once running: each
health transition is a new TASK_RUNNING with ``healthy`` set (reason
REASON_TASK_HEALTH_CHECK_STATUS_UPDATED); after ``consecutive_failures``
failed checks the task is killed with its kill grace and ends TASK_KILLED
with ``healthy=false``.  Checks stop when a kill starts or the task ends.  An
invalid health check fails the launch (TASK_FAILED, REASON_TASK_INVALID).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from mesoslite.executor.confine import ConfineError, Confinement, confine, disk_usage
from mesoslite.executor.driver import DriverStatus, Executor, ExecutorDriver
from mesoslite.health.probes import HealthChecker
from mesoslite.health.schedule import validate_health_check
from mesoslite.isolation.spec import IsolationSettings
from mesoslite.logs import ENV as LOG_FORMAT_ENV
from mesoslite.logs import configure as configure_logs
from mesoslite.logs import set_log_context
from mesoslite.proc import (
    CommandError,
    ManagedProcess,
    command_argv,
    describe_wait_status,
    spawn_now,
    spawn_with_logger,
)
from mesoslite.protocol import (
    AgentInfo,
    ExecutorInfo,
    FrameworkInfo,
    KillPolicy,
    Reason,
    TaskInfo,
    TaskState,
    TaskStatus,
)

log = logging.getLogger("mesoslite.executor.command")

DEFAULT_GRACE = 3.0
#: Variables that describe the command executor itself and must not reach tasks.
_PRIVATE_VARS = ("MESOSLITE_AGENT_ZMQ", "MESOSLITE_AGENT_PID",
                 "MESOS_EXECUTOR_AUTHENTICATION_TOKEN")


class _RunningTask:
    __slots__ = ("checker", "confinement", "env", "grace", "health_kill", "kill_grace",
                 "killing", "proc", "sandbox", "task")

    def __init__(self, task: TaskInfo, grace: float, env: dict[str, str], sandbox: str,
                 confinement: Confinement) -> None:
        """A task being launched: not spawned, not killing, no health checker yet."""
        self.task = task
        self.confinement = confinement
        self.proc: ManagedProcess | None = None  # None until spawned
        self.grace = grace
        self.killing = False
        self.kill_grace = grace
        self.env = env
        self.sandbox = sandbox
        self.checker: HealthChecker | None = None
        #: Why the health checker asked for the kill ("" when it did not).
        self.health_kill = ""

    def stop_checks(self) -> None:
        """Stop the health checker, if any."""
        if self.checker is not None:
            self.checker.stop()


class CommandExecutor(Executor):
    """Runs every command task of one framework on one agent."""

    def __init__(self) -> None:
        """Start with no tasks; the base environment is this process's, minus agent links."""
        self._tasks: dict[str, _RunningTask] = {}
        self._framework: FrameworkInfo | None = None
        self._shutting_down = False
        self._exiting = False
        self._shutdown_grace = 5.0
        self._base_env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_VARS}
        self._isolation = _isolation_settings()
        self._disk_watch: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ callbacks

    def registered(
        self,
        driver: ExecutorDriver,
        executor_info: ExecutorInfo,
        framework_info: FrameworkInfo,
        agent_info: AgentInfo | None,
    ) -> None:
        """Remember the framework (its capabilities decide TASK_KILLING)."""
        self._framework = framework_info
        self._shutdown_grace = driver.settings.shutdown_grace_period
        log.info("Registered with agent %s for framework %s", driver.agent_id, framework_info.id)

    def launch_task(self, driver: ExecutorDriver, task: TaskInfo) -> None:
        """Spawn the task's command in its sandbox and report STARTING then RUNNING."""
        if task.task_id in self._tasks:
            log.warning("Task %s is already running; ignoring a second launch", task.task_id)
            return
        if task.command is None:
            self._send(driver, task.task_id, TaskState.TASK_FAILED,
                       "task.command: the command executor needs a command",
                       Reason.REASON_COMMAND_EXECUTOR_FAILED)
            return
        if self._shutting_down:
            self._send(driver, task.task_id, TaskState.TASK_FAILED,
                       "the command executor is shutting down",
                       Reason.REASON_COMMAND_EXECUTOR_FAILED)
            return
        if task.health_check is not None:
            error = validate_health_check(task.health_check)
            if error:
                self._send(driver, task.task_id, TaskState.TASK_FAILED,
                           f"task {task.task_id}: {error}", Reason.REASON_TASK_INVALID)
                return
        sandbox = task.command.environment.get("MESOS_SANDBOX") or os.getcwd()
        framework = self._framework or driver.framework_info
        try:
            confinement = confine(task, self._isolation, framework.user if framework else "",
                                  self._base_env, sandbox)
        except ConfineError as exc:
            self._send(driver, task.task_id, TaskState.TASK_FAILED,
                       f"Failed to launch command: {exc}", Reason.REASON_CONTAINER_LAUNCH_FAILED)
            self._maybe_exit(driver)
            return
        env = confinement.env
        grace = task.kill_policy.grace_period if task.kill_policy else DEFAULT_GRACE
        running = _RunningTask(task, grace, env, sandbox, confinement)
        self._tasks[task.task_id] = running
        self._send(driver, task.task_id, TaskState.TASK_STARTING)
        try:
            proc = self._spawn(task, running)
        except (OSError, CommandError) as exc:
            self._tasks.pop(task.task_id, None)
            confinement.release(asyncio.get_running_loop())
            self._send(driver, task.task_id, TaskState.TASK_FAILED,
                       f"Failed to launch command: {exc}",
                       Reason.REASON_COMMAND_EXECUTOR_FAILED)
            self._maybe_exit(driver)
            return
        running.proc = proc
        self._watch_disk(driver)
        confinement.watch_oom(asyncio.get_running_loop(),
                              lambda limit: self._kill_at_limit(running, limit))
        proc.exited.add_done_callback(lambda _f: self._on_exit(driver, running))
        self._send(driver, task.task_id, TaskState.TASK_RUNNING)
        self.start_health_checks(driver, task)

    def _spawn(self, task: TaskInfo, running: _RunningTask) -> ManagedProcess:
        """Spawn a task's command in its sandbox, confined (OSError/CommandError)."""
        assert task.command is not None
        argv, executable = command_argv(task.command)
        sandbox, env = running.sandbox, running.env
        logger = rotating_logger_argv(self._base_env, sandbox)
        extra = running.confinement.spawn_kwargs()
        if logger is not None:
            return spawn_with_logger(argv, executable=executable, cwd=sandbox, env=env,
                                     logger_argv=logger, **extra)
        return spawn_now(argv, executable=executable, cwd=sandbox, env=env,
                         stdout_path=os.path.join(sandbox, "stdout"),
                         stderr_path=os.path.join(sandbox, "stderr"), **extra)

    def _watch_disk(self, driver: ExecutorDriver) -> None:
        """Start the ``posix/disk`` watch once a task runs (it ends with the last task)."""
        if self._isolation.has("posix/disk") and self._disk_watch is None:
            self._disk_watch = asyncio.get_running_loop().create_task(self._disk_loop(driver))

    async def _disk_loop(self, driver: ExecutorDriver) -> None:
        """Every ``container_disk_watch_interval``: ``du`` each task's sandbox; with
        ``--enforce_container_disk_quota`` a task over its ``disk`` is killed."""
        try:
            while self._tasks:
                await asyncio.sleep(self._isolation.disk_watch_interval)
                for running in list(self._tasks.values()):
                    await self._check_disk(driver, running)
        finally:
            self._disk_watch = None

    async def _check_disk(self, driver: ExecutorDriver, running: _RunningTask) -> None:
        quota = running.confinement.disk_mb
        if quota <= 0 or running.killing or running.proc is None or running.proc.done:
            return
        used = await disk_usage(running.sandbox)
        if used is None or used <= quota * (1 << 20):
            return
        message = (f"Disk usage ({used / (1 << 20):.1f}MB) exceeds quota "
                   f"({quota:g}MB)")
        log.warning("Task %s: %s", running.task.task_id, message)
        if self._isolation.enforce_disk_quota and self._tasks.get(running.task.task_id):
            self._kill_at_limit(running, (message, Reason.REASON_CONTAINER_LIMITATION_DISK))

    def _kill_at_limit(self, running: _RunningTask, limit: tuple[str, Reason]) -> None:
        """A task over a limit is killed at once; it ends TASK_FAILED with the limitation."""
        if running.proc is None or running.proc.done or running.confinement.limitation:
            return
        log.warning("Task %s: %s; killing it", running.task.task_id, limit[0])
        running.confinement.limitation = limit
        running.killing = True
        running.stop_checks()
        asyncio.get_running_loop().create_task(running.proc.terminate(0.0))

    def start_health_checks(self, driver: ExecutorDriver, task: TaskInfo) -> None:
        """Start a health checker for a running task that carries ``health_check``.

        Transitions become TASK_RUNNING updates with ``healthy`` set; the kill
        verdict kills the task with its own grace period.
        """
        running = self._tasks.get(task.task_id)
        if task.health_check is None or running is None or running.killing:
            return
        task_id = task.task_id

        def on_status(healthy: bool, message: str) -> None:
            if self._tasks.get(task_id) is running and not running.killing:
                self._send(driver, task_id, TaskState.TASK_RUNNING, message,
                           Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED, healthy=healthy)

        def on_kill(message: str) -> None:
            if self._tasks.get(task_id) is running and not running.killing:
                running.health_kill = message
                self._kill(driver, running, running.grace)

        running.checker = HealthChecker(
            task.health_check, env=running.env, cwd=running.sandbox,
            on_status=on_status, on_kill=on_kill, name=task_id,
            credentials=running.confinement.credentials,
        )
        running.checker.start()

    def kill_task(self, driver: ExecutorDriver, task_id: str) -> None:
        """Kill with the task's own grace period."""
        self.kill_task_with_policy(driver, task_id, None)

    def kill_task_with_policy(
        self, driver: ExecutorDriver, task_id: str, kill_policy: KillPolicy | None
    ) -> None:
        """TASK_KILLING (if the framework wants it), SIGTERM, SIGKILL after the grace."""
        running = self._tasks.get(task_id)
        if running is None:
            log.warning("Kill of unknown task %s ignored", task_id)
            return
        grace = kill_policy.grace_period if kill_policy is not None else running.grace
        self._kill(driver, running, grace)

    def _kill(self, driver: ExecutorDriver, running: _RunningTask, grace: float) -> None:
        if running.killing or (running.proc is not None and running.proc.done):
            return
        running.killing = True
        running.kill_grace = grace
        running.stop_checks()  # no health updates once a kill has started
        framework = self._framework or driver.framework_info
        if framework is not None and framework.has_capability("TASK_KILLING_STATE"):
            self._send(driver, running.task.task_id, TaskState.TASK_KILLING)
        if running.proc is None:
            return  # not spawned (launch_task spawns synchronously): nothing to signal
        log.info("Killing task %s (pid %d, grace %.1fs)", running.task.task_id,
                 running.proc.pid, grace)
        asyncio.get_running_loop().create_task(running.proc.terminate(grace))

    def framework_message(self, driver: ExecutorDriver, data: bytes) -> None:
        """Command tasks take no messages; logged and dropped."""
        log.info("Ignoring a %d-byte framework message", len(data))

    def shutdown(self, driver: ExecutorDriver) -> None:
        """Kill every task (within the shutdown grace period), then stop."""
        if self._shutting_down:
            return
        self._shutting_down = True
        budget = max(self._shutdown_grace - 1.0, 0.0)
        log.info("Shutting down: killing %d tasks", len(self._tasks))
        for running in list(self._tasks.values()):
            self._kill(driver, running, min(running.grace, budget))
        self._maybe_exit(driver)

    def error(self, driver: ExecutorDriver, message: str) -> None:
        """Log a fatal error (the driver aborts)."""
        log.error("Fatal: %s", message)

    # ------------------------------------------------------------ internals

    def _on_exit(self, driver: ExecutorDriver, running: _RunningTask) -> None:
        assert running.proc is not None
        status = running.proc.status
        task_id = running.task.task_id
        self._tasks.pop(task_id, None)
        running.stop_checks()
        message = f"Command {describe_wait_status(status)}"
        reason: Reason | None = None
        healthy: bool | None = None
        limit = running.confinement.hit_limit()
        running.confinement.release(asyncio.get_running_loop())
        if limit is not None and (not running.killing or running.confinement.limitation):
            state = TaskState.TASK_FAILED
            message, reason = f"{limit[0]}; {message}", limit[1]
        elif running.killing:
            state = TaskState.TASK_KILLED
            if running.health_kill:
                message = f"Task killed: {running.health_kill}; {message}"
                reason = Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
                healthy = False
        elif status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            state = TaskState.TASK_FINISHED
        else:
            state = TaskState.TASK_FAILED
        self._send(driver, task_id, state, message, reason, healthy=healthy)
        self._maybe_exit(driver)

    def _maybe_exit(self, driver: ExecutorDriver) -> None:
        if self._shutting_down and not self._tasks and not self._exiting:
            self._exiting = True
            asyncio.get_running_loop().create_task(self._exit(driver))

    async def _exit(self, driver: ExecutorDriver) -> None:
        await driver.wait_acknowledged(2.0)
        driver.stop()

    def _send(
        self,
        driver: ExecutorDriver,
        task_id: str,
        state: TaskState,
        message: str = "",
        reason: Reason | None = None,
        *,
        healthy: bool | None = None,
    ) -> None:
        driver.send_status_update(
            TaskStatus(task_id=task_id, state=state, message=message, reason=reason,
                       executor_id=task_id, healthy=healthy)
        )

    def on_sigterm(self, driver: ExecutorDriver) -> None:
        """SIGTERM from the agent's containerizer: shut down like a ShutdownExecutor."""
        log.info("SIGTERM received")
        self.shutdown(driver)
        loop = asyncio.get_running_loop()
        loop.call_later(self._shutdown_grace, driver.stop)


def _isolation_settings() -> IsolationSettings:
    """The agent's isolation settings from the environment (defaults when absent)."""
    try:
        settings = IsolationSettings.from_env(os.environ)
    except ValueError as exc:
        log.error("%s; running tasks without isolation", exc)
        settings = None
    return settings if settings is not None else IsolationSettings()


def rotating_logger_argv(env: dict[str, str], sandbox: str) -> list[str] | None:
    """The rotating logger's command line when the agent asked for it (None: plain files)."""
    if env.get("MESOSLITE_CONTAINER_LOGGER") != "rotating":
        return None
    return [sys.executable, "-m", "mesoslite.executor.logrotate", "--dir", sandbox,
            "--max_stdout_size", env.get("MESOSLITE_LOGROTATE_MAX_STDOUT_SIZE", "10485760"),
            "--max_stderr_size", env.get("MESOSLITE_LOGROTATE_MAX_STDERR_SIZE", "10485760"),
            "--max_files", env.get("MESOSLITE_LOGROTATE_MAX_FILES", "5")]


async def _main() -> DriverStatus:
    executor = CommandExecutor()
    driver = ExecutorDriver(executor)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, executor.on_sigterm, driver)
    return await driver.run_async()


def main() -> int:
    """Entry point: run until the agent shuts this executor down."""
    fmt = "json" if os.environ.get(LOG_FORMAT_ENV) == "json" else "text"
    configure_logs("INFO", fmt, "executor")
    set_log_context(framework_id=os.environ.get("MESOS_FRAMEWORK_ID"),
                    executor_id=os.environ.get("MESOS_EXECUTOR_ID"))
    try:
        status = asyncio.run(_main())
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    return 0 if status is DriverStatus.DRIVER_STOPPED else 1


if __name__ == "__main__":
    sys.exit(main())
