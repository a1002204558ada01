"""Docker tasks in the agent's core: what each event of a task's container means (PURE).

Owns: :class:`DockerFlow`.  A Docker task (``TaskInfo.container.type ==
"DOCKER"``, command tasks only) runs as a *virtual* executor (executor id =
task id, its own container id and sandbox).  The core asks for the container
(``RunDockerTask``, with TASK_STARTING) and turns what
:class:`~mesoslite.agent.docker_tasks.DockerTasks` reports into status
updates in the executor's name: started → TASK_RUNNING (or the kill, if one
came meanwhile), failed to launch → TASK_FAILED (TASK_KILLED when a kill was
asked), health transitions → TASK_RUNNING with ``healthy``, too many failed
checks → the kill, the container's end → TASK_FINISHED / TASK_FAILED (exit
code in the message) / TASK_KILLED.  Kills send TASK_KILLING to frameworks
with that capability and stop the container with the grace period.
"""

from __future__ import annotations

import logging

from mesoslite.agent.core.executors import ExecutorFlow
from mesoslite.agent.effects import Effect, KillDockerTask, RunDockerTask
from mesoslite.agent.records import AgentExecutor, AgentFramework, AgentTask, ExecutorState
from mesoslite.agent.sandbox import task_environment
from mesoslite.protocol import CommandInfo, ExecutorInfo, KillPolicy, Reason, TaskInfo, TaskState

log = logging.getLogger("mesoslite.agent")

_KILLABLE = (TaskState.TASK_STAGING, TaskState.TASK_STARTING, TaskState.TASK_RUNNING)


def is_docker(task: TaskInfo) -> bool:
    """True for a task (or its executor) in a DOCKER container."""
    container = task.container or (task.executor.container if task.executor else None)
    return container is not None and container.type == "DOCKER"


class DockerFlow(ExecutorFlow):
    """Docker tasks' records and the meaning of their containers' events."""

    # ------------------------------------------------------------ launch

    def new_docker_executor(self, fw: AgentFramework, task: TaskInfo) -> tuple[AgentExecutor,
                                                                                list[Effect]]:
        """The virtual executor of a Docker task (executor id = task id)."""
        cid = self._new_container_id()
        directory = self.sandbox(fw.id, task.task_id, cid)
        container = task.container
        image = container.docker.image if container and container.docker else "?"
        info = ExecutorInfo(
            executor_id=task.task_id,
            command=CommandInfo(value=f"docker run {image}"),
            framework_id=fw.id,
            name=f"Docker Executor (Task: {task.task_id}) (Image: {image})",
            type="COMMAND",
        )
        ex = AgentExecutor(fw.id, info, cid, directory, "docker",
                           self.config.max_completed_tasks_per_executor)
        ex.state = ExecutorState.RUNNING
        fw.executors[ex.executor_id] = ex
        self.docker_tasks[cid] = (fw, ex)
        return ex, self.write_executor(fw, ex)

    def run_docker_task(self, fw: AgentFramework, ex: AgentExecutor,
                        task: AgentTask) -> list[Effect]:
        """TASK_STARTING, and the container's launch."""
        ex.launched_tasks[task.task_id] = task
        out = self.report(fw, ex, task.task_id, TaskState.TASK_STARTING,
                          "launching the Docker container")
        env = task_environment(
            task.info, framework_id=fw.id, executor_id=ex.executor_id,
            container_id=ex.container_id, sandbox=ex.directory,
            agent_endpoint=self.http_endpoint, host=self.config.effective_hostname,
            secrets=task.secret_env,
        )
        out.append(RunDockerTask(self.agent_id or "", fw.id, ex.executor_id, ex.container_id,
                                 ex.directory, task.info, env))
        return out

    # ------------------------------------------------------------ kills

    def kill_docker_task(self, fw: AgentFramework, ex: AgentExecutor, task: AgentTask,
                         policy: KillPolicy) -> list[Effect]:
        """TASK_KILLING (if the framework understands it), then stop the container."""
        task.kill_requested = True
        ex.kill_grace = policy.grace_period
        out: list[Effect] = []
        if fw.info.has_capability("TASK_KILLING_STATE") and task.state in _KILLABLE:
            out += self.report(fw, ex, task.task_id, TaskState.TASK_KILLING,
                               f"killing the container (grace {policy.grace_period:g}s)")
        out.append(KillDockerTask(ex.container_id, policy.grace_period))
        return out

    def kill_docker_framework(self, fw: AgentFramework, grace: float) -> list[Effect]:
        """Kill every Docker task of a framework (framework shutdown)."""
        out: list[Effect] = []
        for ex in list(fw.executors.values()):
            if ex.kind == "docker":
                for task in ex.live_tasks():
                    out += self.kill_docker_task(fw, ex, task, KillPolicy(grace))
        return out

    def kill_all_docker_tasks(self, grace: float) -> list[Effect]:
        """The agent stops: kill every Docker task's container with ``grace`` (no TASK_KILLING)."""
        out: list[Effect] = []
        for _fw, ex in list(self.docker_tasks.values()):
            live = ex.live_tasks()
            if not live:
                continue
            for task in live:
                task.kill_requested = True
            ex.kill_grace = grace
            out.append(KillDockerTask(ex.container_id, grace))
        return out

    # ------------------------------------------------------------ what the container did

    def _docker_task(self, container_id: str) -> tuple[AgentFramework, AgentExecutor,
                                                       list[AgentTask]] | None:
        entry = self.docker_tasks.get(container_id)
        if entry is None:
            return None
        fw, ex = entry
        return fw, ex, ex.live_tasks()

    def docker_progress(self, container_id: str, message: str) -> None:
        """Pull progress of a container: kept on its task record (shown on ``/state``)."""
        found = self._docker_task(container_id)
        for task in found[2] if found else ():
            task.progress = message

    def docker_not_created(self, container_id: str) -> list[Effect]:
        """A kill came before the container was created: TASK_KILLED."""
        return self._each_live(container_id, TaskState.TASK_KILLED,
                               "killed before the container was created",
                               Reason.REASON_TASK_KILLED_DURING_LAUNCH)

    def docker_launch_failed(self, container_id: str, error: str,
                             reason: Reason) -> list[Effect]:
        """The container could not start: TASK_FAILED with why (TASK_KILLED if a kill came)."""
        found = self._docker_task(container_id)
        if found is None:
            return []
        fw, ex, live = found
        out: list[Effect] = []
        for task in live:
            if task.kill_requested:
                out += self.report(fw, ex, task.task_id, TaskState.TASK_KILLED,
                                   "killed before the container started",
                                   Reason.REASON_TASK_KILLED_DURING_LAUNCH)
            else:
                out += self.report(fw, ex, task.task_id, TaskState.TASK_FAILED,
                                   f"Failed to launch container: {error}", reason)
        return out

    def docker_failed(self, container_id: str, message: str, reason: Reason) -> list[Effect]:
        """The agent could not run or follow the container: its live tasks fail."""
        return self._each_live(container_id, TaskState.TASK_FAILED, message, reason)

    def docker_started(self, container_id: str, pid: int,
                       networks: tuple[tuple[str, str], ...] = ()) -> list[Effect]:
        """The container runs: TASK_RUNNING (with the pull, if any), or the kill asked meanwhile.

        ``networks`` are the container's (network name, IP) on Docker's networks: its
        updates carry them as their ``container_status``.
        """
        found = self._docker_task(container_id)
        if found is None:
            return []
        fw, ex, live = found
        ex.pid = pid
        ex.networks = networks
        out: list[Effect] = []
        for task in live:
            pulled, task.progress = task.progress, ""
            if task.kill_requested:
                # The kill came while the container was being created: stop it now.
                out.append(KillDockerTask(container_id, ex.kill_grace))
                continue
            container = task.info.container
            image = container.docker.image if container and container.docker else "?"
            message = "container started"
            if pulled:
                message += f"; {pulled}" if pulled.startswith("pulled image") else (
                    f"; pulled image {image}")
            out += self.report(fw, ex, task.task_id, TaskState.TASK_RUNNING, message)
        return out

    def docker_health(self, container_id: str, healthy: bool, message: str) -> list[Effect]:
        """A health transition of the task: TASK_RUNNING with ``healthy`` (unless it ends)."""
        found = self._docker_task(container_id)
        if found is None:
            return []
        fw, ex, live = found
        out: list[Effect] = []
        for task in live:
            if not task.kill_requested:
                out += self.report(fw, ex, task.task_id, TaskState.TASK_RUNNING, message,
                                   Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED,
                                   healthy=healthy)
        return out

    def docker_health_failed(self, container_id: str, message: str) -> list[Effect]:
        """The task failed its health check too often: kill it with its grace period."""
        found = self._docker_task(container_id)
        if found is None:
            return []
        fw, ex, live = found
        out: list[Effect] = []
        for task in live:
            if not task.kill_requested:
                ex.health_kill = message
                out += self.kill_docker_task(fw, ex, task, task.info.kill_policy or KillPolicy())
        return out

    def docker_exited(self, container_id: str, status: int | None, message: str,
                      exit_code: int | None = None, reason: Reason | None = None) -> list[Effect]:
        """The container ended: the task's terminal update (exit code in the message)."""
        found = self._docker_task(container_id)
        if found is None:
            return []
        fw, ex, live = found
        out: list[Effect] = []
        for task in live:
            if ex.health_kill:
                out += self.report(fw, ex, task.task_id, TaskState.TASK_KILLED,
                                   f"Task killed: {ex.health_kill}",
                                   Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED, healthy=False)
            elif task.kill_requested:
                out += self.report(fw, ex, task.task_id, TaskState.TASK_KILLED,
                                   f"Container {message}")
            elif status == 0:
                out += self.report(fw, ex, task.task_id, TaskState.TASK_FINISHED,
                                   f"Container {message}")
            else:
                text = f"Container {message}"
                if exit_code is not None and f"{exit_code}" not in text:
                    text += f" (exit code {exit_code})"
                out += self.report(fw, ex, task.task_id, TaskState.TASK_FAILED, text,
                                   reason or Reason.REASON_COMMAND_EXECUTOR_FAILED)
        return out

    # ------------------------------------------------------------ after an agent restart

    def docker_reattached(self, container_id: str, pid: int | None, running: bool,
                          networks: tuple[tuple[str, str], ...] = ()) -> list[Effect]:
        """A recovered task's container was found: TASK_RUNNING if it runs and was not yet."""
        found = self._docker_task(container_id)
        if found is None:
            return []
        fw, ex, live = found
        ex.state = ExecutorState.RUNNING
        ex.pid = pid
        ex.networks = networks
        out: list[Effect] = []
        if running:
            for task in live:
                if task.state in (TaskState.TASK_STAGING, TaskState.TASK_STARTING):
                    out += self.report(fw, ex, task.task_id, TaskState.TASK_RUNNING,
                                       "container reattached after an agent restart")
        return out

    def docker_lost(self, fw: AgentFramework, ex: AgentExecutor, why: str) -> list[Effect]:
        """A recovered task's container was not found: TASK_FAILED (KILLED if a kill was asked)."""
        out: list[Effect] = []
        for task in ex.live_tasks():
            state = TaskState.TASK_KILLED if task.kill_requested else TaskState.TASK_FAILED
            out += self.report(fw, ex, task.task_id, state,
                               f"Container {ex.container_id} was gone when the agent restarted"
                               f" ({why})", Reason.REASON_EXECUTOR_TERMINATED)
        ex.state = ExecutorState.RUNNING  # ended with its task's acknowledged terminal update
        return out

    def _each_live(self, container_id: str, state: TaskState, message: str,
                   reason: Reason) -> list[Effect]:
        found = self._docker_task(container_id)
        if found is None:
            return []
        fw, ex, live = found
        out: list[Effect] = []
        for task in live:
            out += self.report(fw, ex, task.task_id, state, message, reason)
        return out
