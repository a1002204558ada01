"""What the master asks of the agent, decided in the agent's core (PURE).

Owns: :class:`TaskFlow`, the handlers of master → agent messages: the
(re-)registration answer, ``RunTask`` (validation and refusals, the
executor choice, the checkpoint, the launch or delivery), ``KillTask``
(queued: TASK_KILLED at once; delivered: to the executor; Docker: TASK_KILLING
and the container's stop), acknowledgements (:mod:`.updates`), framework
messages, ``ShutdownFramework`` / ``ShutdownExecutor`` / ``ShutdownAgent``
and ``UpdateFramework``.  Each returns the effects for the shell to perform.

A ``RunTask`` reads straight through :meth:`TaskFlow.run_task`: find or add
the framework → :meth:`~TaskFlow.refusal` → :meth:`~TaskFlow.executor_for`
(Docker: a virtual executor; custom: the running one or a new process;
command: a virtual executor on the framework's command host) → the task
record (and ``WriteTask``) → Docker: ``RunDockerTask``; else
:meth:`~mesoslite.agent.core.executors.ExecutorFlow.deliver` (``RunTask``
to the executor, or queued until it registers).
"""

from __future__ import annotations

import logging

import attrs

from mesoslite.agent.core.docker import is_docker
from mesoslite.agent.core.fetches import FetchFlow, uris_refusal
from mesoslite.agent.effects import (
    Effect,
    ForgetAgent,
    Registered,
    StopAgent,
    WriteAgentInfo,
    WriteFramework,
    WriteTask,
)
from mesoslite.agent.records import (
    AgentExecutor,
    AgentFramework,
    AgentTask,
    ExecutorState,
    FrameworkState,
)
from mesoslite.protocol import (
    AgentRegistered,
    AgentReregistered,
    FrameworkInfo,
    KillPolicy,
    KillTask,
    Reason,
    RunTask,
    ShutdownAgent,
    ShutdownExecutor,
    ShutdownFramework,
    TaskInfo,
    TaskState,
    UpdateFramework,
)

log = logging.getLogger("mesoslite.agent")

#: Why a Docker task with a custom executor is refused.
DOCKER_CUSTOM_EXECUTOR = (
    "container.type: DOCKER is supported for command tasks only, not for custom executors"
)
#: Why a task is refused: the state to report, the message and the reason.
Refusal = tuple[TaskState, str, Reason | None]


class TaskFlow(FetchFlow):
    """Handlers of the master's messages (see the module docstring)."""

    # ------------------------------------------------------------ registration

    def registration_accepted(self, msg: AgentRegistered | AgentReregistered) -> list[Effect]:
        """The master (re-)registered this agent: keep the id, resend pending updates."""
        if not self.accepting:
            return []
        if self.agent_id is not None and msg.agent_id != self.agent_id:
            log.error("Master gave id %s to agent %s; adopting it", msg.agent_id, self.agent_id)
        first = self.agent_id is None
        self.agent_id = msg.agent_id
        self.master_info = msg.master_info or self.master_info
        out: list[Effect] = [Registered(msg.ping_interval_seconds)]
        if self.registered:
            return out
        self.registered = True
        log.info("Agent %s %s with master %s", msg.agent_id,
                 "registered" if isinstance(msg, AgentRegistered) else "re-registered",
                 self.master_info.id if self.master_info else "?")
        if first:
            out.append(WriteAgentInfo(self.agent_info()))
        return out + self.resend_all()

    def registration_lost(self) -> None:
        """The master link is registering again (or closed): not registered any more."""
        self.registered = False

    # ------------------------------------------------------------ RunTask

    def run_task(self, msg: RunTask) -> list[Effect]:
        """Run a task: validate it, pick (or start) its executor, checkpoint, launch or deliver."""
        info, task = msg.framework_info, msg.task
        if not info.id:
            log.error("RunTask for task %s without framework_info.id; ignored", task.task_id)
            return []
        if not self.accepting:
            return self.refuse_task(info, task, (self.drop_state(info), "agent is shutting down",
                                                 None))
        if self.agent_id is None:
            log.warning("Ignoring task %s: agent is not registered yet", task.task_id)
            return []
        fw = self.frameworks.get(info.id)
        if fw is not None and fw.state is FrameworkState.TERMINATING:
            return self.refuse_task(info, task, (
                self.drop_state(info), f"framework {info.id} is shutting down",
                Reason.REASON_FRAMEWORK_REMOVED))
        fw, out = self.framework_for(info)
        if task.task_id in fw.task_index:
            log.error("Ignoring task %s of framework %s: a task with this id is already here",
                      task.task_id, info.id)
            return out
        refusal = self.refusal(fw, task)
        if refusal is not None:
            return out + self.refuse_task(info, task, refusal)
        ex, launch = self.executor_for(fw, task)
        out += launch
        record = AgentTask(task, fw.id, ex.executor_id)
        fw.task_index[task.task_id] = ex
        if fw.info.checkpoint:
            out.append(WriteTask(self.agent_id, fw.id, ex.executor_id, ex.container_id, task))
        out += self.start_task(fw, ex, record)  # after fetching its URIs, if it has any
        log.info("Launching task %s of framework %s with executor %s",
                 task.task_id, fw.id, ex.executor_id)
        return out

    def framework_for(self, info: FrameworkInfo) -> tuple[AgentFramework, list[Effect]]:
        """The framework's record (added, or its info updated), checkpointed if it asks."""
        fw = self.frameworks.get(info.id)
        if fw is not None and fw.info == info:
            return fw, []
        if fw is None:
            fw = AgentFramework(info, self.config.max_completed_executors_per_framework)
            self.frameworks[info.id] = fw
        fw.info = info
        if info.checkpoint and self.agent_id:
            return fw, [WriteFramework(self.agent_id, info)]
        return fw, []

    def refusal(self, fw: AgentFramework, task: TaskInfo) -> Refusal | None:
        """Why ``task`` cannot run on ``fw`` here (None: it can)."""
        if (task.command is None) == (task.executor is None):
            return (TaskState.TASK_ERROR, "task: expected exactly one of command and executor",
                    Reason.REASON_TASK_INVALID)
        uris = uris_refusal(task)
        if uris:
            return TaskState.TASK_ERROR, uris, Reason.REASON_TASK_INVALID
        if is_docker(task) and task.executor is not None:
            return (TaskState.TASK_FAILED, DOCKER_CUSTOM_EXECUTOR,
                    Reason.REASON_CONTAINER_LAUNCH_FAILED)
        if is_docker(task) and self.docker_refusal:
            return (TaskState.TASK_FAILED, self.docker_refusal,
                    Reason.REASON_CONTAINER_LAUNCH_FAILED)
        if task.executor is None:
            return None
        ex = fw.executors.get(task.executor.executor_id)
        if ex is None:
            return None
        if ex.state in (ExecutorState.TERMINATING, ExecutorState.TERMINATED):
            return (self.drop_state(fw.info), f"executor {ex.executor_id} is terminating",
                    Reason.REASON_EXECUTOR_TERMINATED)
        if attrs.evolve(ex.info, framework_id="") != attrs.evolve(task.executor, framework_id=""):
            message = (f"executor: ExecutorInfo of {ex.executor_id} differs from the running "
                       "executor's")
            return (self.drop_state(fw.info), message, Reason.REASON_TASK_INVALID)
        return None

    def executor_for(self, fw: AgentFramework, task: TaskInfo) -> tuple[AgentExecutor,
                                                                         list[Effect]]:
        """The executor that runs ``task`` (a new one, with the effects that start it)."""
        if is_docker(task):
            return self.new_docker_executor(fw, task)
        if task.executor is not None:
            ex = fw.executors.get(task.executor.executor_id)
            if ex is not None:
                return ex, []
            return self.launch_custom(fw, task.executor)
        return self.new_command_executor(fw, task)

    def refuse_task(self, info: FrameworkInfo, task: TaskInfo, refusal: Refusal) -> list[Effect]:
        """Answer a task that cannot run with an update in ``refusal``'s state."""
        state, message, reason = refusal
        log.warning("Task %s of framework %s refused (%s): %s",
                    task.task_id, info.id, state.value, message)
        return self.accept_update(self.agent_update(info.id, task.task_id, state, message,
                                                    reason), None)

    # ------------------------------------------------------------ kills and shutdowns

    def kill_task(self, msg: KillTask) -> list[Effect]:
        """Kill a task: at once if still queued, else through its executor (or container)."""
        fw = self.frameworks.get(msg.framework_id)
        if fw is None:
            log.warning("Ignoring kill of task %s: no framework %s on this agent",
                        msg.task_id, msg.framework_id)
            return []
        ex = fw.task_index.get(msg.task_id)
        if ex is None:
            if msg.task_id in fw.completed_task_ids:
                log.info("Ignoring kill of completed task %s", msg.task_id)
                return []
            # As Mesos: the task never launched here.
            return self.accept_update(self.agent_update(
                fw.id, msg.task_id, self.drop_state(fw.info),
                "Cannot find executor: the task is unknown to this agent",
                Reason.REASON_EXECUTOR_TERMINATED), None)
        task = ex.find_task(msg.task_id)
        if task is None or task.state.is_terminal:
            return []
        task.kill_requested = True
        if msg.task_id in ex.queued_tasks:
            log.info("Killing task %s of framework %s before it reached its executor",
                     msg.task_id, fw.id)
            out = self.cancel_fetch(fw.id, task)
            out += self.accept_update(self.agent_update(
                fw.id, msg.task_id, TaskState.TASK_KILLED,
                "killed before it was delivered to its executor",
                Reason.REASON_TASK_KILLED_DURING_LAUNCH, ex.executor_id), ex)
            return out + self.task_dequeued(ex)
        policy = msg.kill_policy or task.info.kill_policy or KillPolicy(
            self.config.default_kill_grace_period)
        log.info("Killing task %s of framework %s (grace %.1fs)",
                 msg.task_id, fw.id, policy.grace_period)
        if ex.kind == "docker":
            return self.kill_docker_task(fw, ex, task, policy)
        return self.kill_in_executor(ex, msg.task_id, policy)

    def shutdown_framework(self, msg: ShutdownFramework) -> list[Effect]:
        """Shut down every executor and Docker task of a framework; remove it once idle."""
        fw = self.frameworks.get(msg.framework_id)
        if fw is None:
            log.info("Shutdown of unknown framework %s ignored", msg.framework_id)
            return []
        log.info("Shutting down framework %s", fw.id)
        fw.state = FrameworkState.TERMINATING
        out = self.shutdown_framework_executors(fw)
        out += self.kill_docker_framework(fw, self.config.executor_shutdown_grace_period)
        return out + self.maybe_remove_framework(fw)

    def shutdown_executor_message(self, msg: ShutdownExecutor) -> list[Effect]:
        """Shut down one executor (a command or Docker task's: kill its task)."""
        fw = self.frameworks.get(msg.framework_id)
        ex = fw.executors.get(msg.executor_id) if fw else None
        if fw is None or ex is None:
            log.info("Shutdown of unknown executor %s of framework %s ignored",
                     msg.executor_id, msg.framework_id)
            return []
        log.info("Shutting down executor %s of framework %s", ex.executor_id, fw.id)
        if not ex.is_virtual:
            return self.shutdown_executor(ex)
        grace = self.config.executor_shutdown_grace_period
        out: list[Effect] = []
        for task in ex.live_tasks():
            out += self.kill_task(KillTask(fw.id, task.task_id, KillPolicy(grace)))
        return out

    def shutdown_agent(self, msg: ShutdownAgent) -> list[Effect]:
        """The master wants this agent gone: forget the checkpoint, stop, kill everything."""
        log.warning("Master asked agent %s to shut down: %s", self.agent_id, msg.message)
        return [ForgetAgent(), StopAgent()]

    def shutdown_everything(self) -> list[Effect]:
        """The agent stops and kills its tasks: every executor and Docker task goes."""
        out: list[Effect] = []
        for fw in list(self.frameworks.values()):
            out += self.shutdown_framework_executors(fw)
        return out + self.kill_all_docker_tasks(self.config.executor_shutdown_grace_period)

    def update_framework(self, msg: UpdateFramework) -> list[Effect]:
        """A framework's info changed (e.g. its capabilities)."""
        fw = self.frameworks.get(msg.framework_info.id)
        if fw is None:
            return []
        fw.info = msg.framework_info
        if fw.info.checkpoint and self.agent_id:
            return [WriteFramework(self.agent_id, fw.info)]
        return []
