"""Status updates through the agent's core, and what their acknowledgement ends (PURE).

Owns: :class:`UpdateFlow`, the agent's side of reliable status updates.
An update (an executor's, or one the agent makes itself) is recorded on its
task and queued in the pure
:class:`~mesoslite.agent.update_streams.StatusUpdateManager`; a
checkpointing framework's update is written first (``WriteUpdates``); the
head of each task's stream goes to the master while registered, and
``ArmRetry`` keeps the retry timer at the earliest pending resend.  An
acknowledgement pops the head, sends the next, and once a terminal update is
acknowledged completes the task: a command or Docker task's virtual executor
ends with it, and a framework left with nothing is removed.  An executor
that ends fails (or, when a kill was asked, kills) its live tasks and is
reported once with ``ExitedExecutor``.
"""

from __future__ import annotations

import logging

import attrs

from mesoslite.agent.core.base import CoreBase
from mesoslite.agent.effects import (
    ArmRetry,
    Effect,
    ForgetFramework,
    KillStrays,
    ToMaster,
    WriteUpdates,
)
from mesoslite.agent.records import (
    AgentExecutor,
    AgentFramework,
    CommandHost,
    ExecutorProcess,
    ExecutorState,
    FrameworkState,
)
from mesoslite.agent.update_streams import AddOutcome
from mesoslite.protocol import (
    ContainerStatus,
    ExitedExecutor,
    FrameworkInfo,
    IPAddress,
    NetworkInfo,
    Reason,
    Source,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    TaskState,
    TaskStatus,
)

log = logging.getLogger("mesoslite.agent")


class UpdateFlow(CoreBase):
    """Accepting, sending, retrying and acknowledging status updates (see the module doc)."""

    # ------------------------------------------------------------ making and accepting

    def agent_update(
        self,
        framework_id: str,
        task_id: str,
        state: TaskState,
        message: str,
        reason: Reason | None = None,
        executor_id: str = "",
        *,
        source: Source = Source.SOURCE_AGENT,
        healthy: bool | None = None,
    ) -> StatusUpdate:
        """An update made by the agent (SOURCE_AGENT unless told otherwise, fresh uuid)."""
        status = TaskStatus(
            task_id=task_id,
            state=state,
            message=message,
            source=source,
            reason=reason,
            agent_id=self.agent_id or "",
            executor_id=executor_id,
            timestamp=self.clock.time(),
            uuid=self._new_uuid(),
            healthy=healthy,
        )
        return StatusUpdate(framework_id=framework_id, status=status)

    def drop_state(self, info: FrameworkInfo) -> TaskState:
        """TASK_DROPPED for partition-aware frameworks, else TASK_LOST."""
        if info.has_capability("PARTITION_AWARE"):
            return TaskState.TASK_DROPPED
        return TaskState.TASK_LOST

    def container_status(self, ex: AgentExecutor, task_id: str) -> ContainerStatus | None:
        """The task's network as Mesos reports it: the agent's IP on the host network, a
        Docker container's own IPs on Docker's networks (None while they are not known)."""
        task = ex.find_task(task_id)
        container = task.info.container if task is not None else None
        docker = container.docker if container is not None else None
        if docker is None or docker.network.upper() == "HOST":
            addresses: tuple[tuple[str, str], ...] = (("", self.config.ip),)
        else:
            addresses = ex.networks
        if not addresses:
            return None
        return ContainerStatus(tuple(
            NetworkInfo((IPAddress(ip, "IPv6" if ":" in ip else "IPv4"),), name)
            for name, ip in addresses))

    def accept_update(self, update: StatusUpdate, ex: AgentExecutor | None) -> list[Effect]:
        """Record and queue an update (checkpointed first when the framework checkpoints).

        An update of a task of ours gets the task's ``container_status`` (its network
        addresses) when it comes without one, as Mesos agents fill it in.
        """
        if ex is not None and update.status.container_status is None:
            found = self.container_status(ex, update.status.task_id)
            if found is not None:
                update = attrs.evolve(update, status=attrs.evolve(update.status,
                                                                  container_status=found))
        fw = self.frameworks.get(update.framework_id)
        checkpoint = bool(fw and fw.info.checkpoint and ex is not None)
        res = self.updates.add(update, checkpoint=checkpoint)
        status = update.status
        if res.outcome is AddOutcome.DUPLICATE:
            log.debug("Duplicate status update %s for task %s", status.uuid.hex(), status.task_id)
            return []
        if res.outcome is AddOutcome.REFUSED:
            self.metrics.invalid_status_updates += 1
            log.warning(
                "Refused status update %s (%s) for task %s of framework %s: %s",
                status.uuid.hex(), status.state.value, status.task_id, update.framework_id,
                res.reason,
            )
            return []
        self.metrics.valid_status_updates += 1
        out: list[Effect] = []
        if checkpoint and ex is not None and self.agent_id:
            out.append(WriteUpdates(self.agent_id, update.framework_id, ex.executor_id,
                                    ex.container_id, status.task_id, (("UPDATE", update),)))
        task = ex.find_task(status.task_id) if ex is not None else None
        if task is not None and ex is not None:
            was_terminal = task.state.is_terminal
            task.record(status)
            if status.state.is_terminal and not was_terminal:
                ex.launched_tasks.pop(status.task_id, None)
                ex.queued_tasks.pop(status.task_id, None)
                ex.terminated_tasks[status.task_id] = task
                self.metrics.count_terminal(status.state)
        elif status.state.is_terminal:
            self.metrics.count_terminal(status.state)
        if res.send is not None and self.registered:
            out.append(ToMaster(res.send))
        return out + self._arm_retry()

    def report(self, fw: AgentFramework, ex: AgentExecutor, task_id: str, state: TaskState,
               message: str, reason: Reason | None = None, *,
               healthy: bool | None = None) -> list[Effect]:
        """A task update the agent reports in its executor's name (Docker tasks)."""
        update = self.agent_update(fw.id, task_id, state, message, reason, ex.executor_id,
                                   source=Source.SOURCE_EXECUTOR, healthy=healthy)
        return self.accept_update(update, ex)

    def executor_update(self, ex: AgentExecutor, msg: StatusUpdate) -> list[Effect]:
        """An executor's update for one of its tasks (ids filled in; TASK_STAGING refused)."""
        status = msg.status
        if status.state is TaskState.TASK_STAGING:
            self.metrics.invalid_status_updates += 1
            log.warning("Executor %s sent TASK_STAGING for task %s; refused",
                        ex.executor_id, status.task_id)
            return []
        if status.agent_id != (self.agent_id or "") or status.executor_id != ex.executor_id:
            msg = StatusUpdate(
                framework_id=msg.framework_id,
                status=attrs.evolve(status, agent_id=self.agent_id or "",
                                    executor_id=ex.executor_id),
            )
        return self.accept_update(msg, ex)

    # ------------------------------------------------------------ sending and retrying

    def resend_all(self) -> list[Effect]:
        """After (re-)registration: every stream's head again, and the retry timer."""
        out: list[Effect] = [ToMaster(update) for update in self.updates.resend_all()]
        return out + self._arm_retry()

    def retry_due(self) -> list[Effect]:
        """The retry timer fired: resend the heads that are due, re-arm the timer."""
        self._retry_at = None
        if not self._retrying or not self.registered:
            return []
        out: list[Effect] = []
        for update in self.updates.due():
            log.debug("Resending status update %s for task %s",
                      update.status.uuid.hex(), update.status.task_id)
            out.append(ToMaster(update))
        return out + self._arm_retry()

    def stop_retrying(self) -> None:
        """No more retries (the agent stops; the shell cancels its timer)."""
        self._retrying = False
        self._retry_at = None

    def _arm_retry(self) -> list[Effect]:
        """``ArmRetry`` when the earliest pending resend is earlier than the armed timer."""
        if not self._retrying or not self.registered:
            return []
        when = self.updates.next_retry_time()
        if when is None or (self._retry_at is not None and self._retry_at <= when):
            return []
        self._retry_at = when
        return [ArmRetry(when)]

    # ------------------------------------------------------------ acknowledgements

    def acknowledge(self, msg: StatusUpdateAcknowledgement) -> list[Effect]:
        """The master acknowledged an update: send the next, complete a finished task."""
        agent_id = self.agent_id
        if agent_id and msg.agent_id and msg.agent_id != agent_id:
            log.warning("Ignoring acknowledgement for agent %s (this is %s)", msg.agent_id,
                        agent_id)
            return []
        res = self.updates.acknowledge(msg.framework_id, msg.task_id, msg.uuid)
        if not res.accepted:
            log.warning("Ignoring acknowledgement %s for task %s of framework %s: %s",
                        msg.uuid.hex(), msg.task_id, msg.framework_id, res.reason)
            return []
        fw = self.frameworks.get(msg.framework_id)
        ex = fw.task_index.get(msg.task_id) if fw else None
        out: list[Effect] = []
        if fw is not None and ex is not None and fw.info.checkpoint and agent_id:
            out.append(WriteUpdates(agent_id, fw.id, ex.executor_id, ex.container_id,
                                    msg.task_id, (("ACK", msg.uuid),)))
        if res.send is not None:
            out.append(ToMaster(res.send))
        out += self._arm_retry()
        if res.closed and fw is not None and ex is not None:
            out += self.complete_task(fw, ex, msg.task_id)
        return out

    def complete_task(self, fw: AgentFramework, ex: AgentExecutor, task_id: str) -> list[Effect]:
        """A task's terminal update was acknowledged: forget it, end what it alone kept alive."""
        fw.task_index.pop(task_id, None)
        task = (
            ex.terminated_tasks.pop(task_id, None)
            or ex.launched_tasks.pop(task_id, None)
            or ex.queued_tasks.pop(task_id, None)
        )
        if task is not None:
            ex.completed_tasks.append(task)
        fw.remember_completed(task_id)
        if ex.is_command and ex.host is not None:
            # The command executor reported the end: the task's processes are gone.
            ex.host.task_containers.discard(ex.container_id)
        out: list[Effect] = []
        if ex.is_virtual and not ex.live_tasks() and not ex.terminated_tasks:
            # A command or Docker task's executor ends with its task.
            out += self.executor_ended(fw, ex, 0, "exited with status 0",
                                       Reason.REASON_EXECUTOR_TERMINATED)
            if ex.host is not None:
                ex.host.executors.pop(ex.executor_id, None)
        return out + self.maybe_remove_framework(fw)

    # ------------------------------------------------------------ executors and frameworks ending

    def process_ended(self, fw: AgentFramework, ent: ExecutorProcess, status: int | None,
                      message: str, reason: Reason) -> list[Effect]:
        """An executor process (custom executor or command host) ended."""
        if ent.state is ExecutorState.TERMINATED:
            return []
        ent.state = ExecutorState.TERMINATED
        if ent.peer is not None:
            self.peers.pop(ent.peer, None)
        self.containers.pop(ent.container_id, None)
        self.metrics.executors_terminated += 1
        log.info("Executor %s of framework %s (container %s) %s",
                 ent.executor_id, fw.id, ent.container_id, message)
        out: list[Effect] = []
        if isinstance(ent, CommandHost):
            if fw.command_host is ent:
                fw.command_host = None
            for ex in list(ent.executors.values()):
                out += self.executor_ended(fw, ex, status, message, reason)
            ent.executors.clear()
            if ent.task_containers:
                out.append(KillStrays(frozenset(ent.task_containers)))
        else:
            out += self.executor_ended(fw, ent, status, message, reason)
        return out + self.maybe_remove_framework(fw)

    def executor_ended(self, fw: AgentFramework, ex: AgentExecutor, status: int | None,
                       message: str, reason: Reason) -> list[Effect]:
        """An executor (or a command task's virtual one) ended: fail its live tasks, report it."""
        out: list[Effect] = []
        for task in ex.live_tasks():
            state = TaskState.TASK_KILLED if task.kill_requested else TaskState.TASK_FAILED
            update = self.agent_update(fw.id, task.task_id, state, f"Executor {message}",
                                       reason, ex.executor_id)
            out += self.accept_update(update, ex)
        ex.state = ExecutorState.TERMINATED
        ex.exit_status = status
        if not ex.exited_reported:
            ex.exited_reported = True
            if self.agent_id and self.registered:
                out.append(ToMaster(ExitedExecutor(
                    agent_id=self.agent_id, framework_id=fw.id, executor_id=ex.executor_id,
                    status=status if status is not None else 0,
                )))
        if fw.executors.get(ex.executor_id) is ex:
            del fw.executors[ex.executor_id]
            fw.completed_executors.append(ex)
        if ex.is_command and ex.host is not None and not ex.terminated_tasks:
            ex.host.executors.pop(ex.executor_id, None)
        if ex.kind == "docker":
            self.docker_tasks.pop(ex.container_id, None)
        return out

    def maybe_remove_framework(self, fw: AgentFramework) -> list[Effect]:
        """Remove a framework with nothing left here (and its checkpoint)."""
        if self.frameworks.get(fw.id) is not fw or not fw.idle():
            return []
        if fw.state is FrameworkState.RUNNING and fw.task_index:
            return []
        del self.frameworks[fw.id]
        self.completed_frameworks.append(fw)
        self.updates.remove_framework(fw.id)
        log.info("Framework %s removed from agent %s", fw.id, self.agent_id)
        if fw.info.checkpoint and self.agent_id:
            return [ForgetFramework(self.agent_id, fw.id)]
        return []
