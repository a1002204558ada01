"""Executors in the agent's core: creating them, talking to them, their processes' lives (PURE).

Owns: :class:`ExecutorFlow`.  It creates executor records and asks for their
processes (``LaunchExecutor``): a custom executor per ``ExecutorInfo``, and
per framework one command host (``python -m mesoslite.executor.command``)
that runs every command task, each as a *virtual* executor (executor id =
task id, its own container id and sandbox, the complete environment in the
task's ``command.environment``).  It delivers tasks (at once, or queued until
the executor registers), handles what executors send (:meth:`executor_message`:
registration and re-registration checks, status updates, messages for the
framework, heartbeats), follows their processes (launched, failed to launch,
exited, registration timeouts, the re-registration window after an agent
restart) and shuts them down (``ShutdownExecutor``, a kill after the grace).
Connections are opaque ``peer`` values: the core does not know the transport.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs

from mesoslite.agent.core.updates import UpdateFlow
from mesoslite.agent.effects import (
    Effect,
    EnforceShutdown,
    KillContainer,
    LaunchExecutor,
    ToExecutor,
    ToMaster,
    WriteExecutor,
    WriteFramework,
    WriteRun,
)
from mesoslite.agent.records import (
    AgentExecutor,
    AgentFramework,
    AgentTask,
    CommandHost,
    ExecutorProcess,
    ExecutorState,
    Peer,
)
from mesoslite.agent.sandbox import task_environment
from mesoslite.protocol import (
    CommandInfo,
    ExecutorInfo,
    ExecutorRegistered,
    ExecutorReregistered,
    ExecutorToFrameworkMessage,
    FrameworkToExecutorMessage,
    Heartbeat,
    KillPolicy,
    KillTask,
    Reason,
    RegisterExecutor,
    ReregisterExecutor,
    RunTask,
    ShutdownExecutor,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    TaskInfo,
)

log = logging.getLogger("mesoslite.agent")

#: The executor id of a framework's command host (internal; never shown as an executor).
COMMAND_HOST_ID = "mesoslite.command-host"

_GONE = (ExecutorState.TERMINATING, ExecutorState.TERMINATED)


class ExecutorFlow(UpdateFlow):
    """Executor records, their processes and their messages (see the module docstring)."""

    # ------------------------------------------------------------ creating executors

    def launch_custom(self, fw: AgentFramework, info: ExecutorInfo) -> tuple[AgentExecutor,
                                                                              list[Effect]]:
        """A custom executor's record, and the effects that start its process."""
        cid = self._new_container_id()
        directory = self.sandbox(fw.id, info.executor_id, cid)
        ex = AgentExecutor(fw.id, info, cid, directory, "custom",
                           self.config.max_completed_tasks_per_executor)
        fw.executors[ex.executor_id] = ex
        self.containers[cid] = (fw, ex)
        out = self.write_executor(fw, ex)
        out.append(LaunchExecutor(fw.id, info.executor_id, cid, directory, info.command,
                                  info.resources, dict(info.command.environment),
                                  fw.info.checkpoint))
        log.info("Launching executor %s of framework %s in container %s (%s)",
                 ex.executor_id, fw.id, cid, directory)
        return ex, out

    def new_command_executor(self, fw: AgentFramework, task: TaskInfo) -> tuple[AgentExecutor,
                                                                                 list[Effect]]:
        """The virtual executor of a command task (and its framework's host, if needed)."""
        out: list[Effect] = []
        host = fw.command_host
        if host is None or host.state in _GONE:
            host, out = self._launch_host(fw)
        cid = self._new_container_id()
        # The command executor creates this sandbox right before it spawns the task.
        directory = self.sandbox(fw.id, task.task_id, cid)
        assert task.command is not None
        shown = task.command.value if task.command.shell else " ".join(task.command.arguments)
        info = ExecutorInfo(
            executor_id=task.task_id,
            command=CommandInfo(value=f"{self.python} -m mesoslite.executor.command"),
            framework_id=fw.id,
            name=f"Command Executor (Task: {task.task_id}) (Command: sh -c '{shown[:100]}')",
            type="COMMAND",
        )
        ex = AgentExecutor(fw.id, info, cid, directory, "command",
                           self.config.max_completed_tasks_per_executor)
        ex.host = host
        host.executors[ex.executor_id] = ex
        host.task_containers.add(cid)
        fw.executors[ex.executor_id] = ex
        if host.state is ExecutorState.RUNNING:
            ex.state = ExecutorState.RUNNING
        return ex, out + self.write_executor(fw, ex)

    def _launch_host(self, fw: AgentFramework) -> tuple[CommandHost, list[Effect]]:
        cid = self._new_container_id()
        directory = self.sandbox(fw.id, COMMAND_HOST_ID, cid)
        info = ExecutorInfo(
            executor_id=COMMAND_HOST_ID,
            command=CommandInfo(value=self.python, shell=False,
                                arguments=(self.python, "-m", "mesoslite.executor.command")),
            framework_id=fw.id,
            name="mesoslite command executor",
            type="COMMAND",
        )
        host = CommandHost(fw.id, info, cid, directory)
        fw.command_host = host
        self.containers[cid] = (fw, host)
        log.info("Launching command executor of framework %s in container %s", fw.id, cid)
        launch = LaunchExecutor(fw.id, COMMAND_HOST_ID, cid, directory, info.command,
                                checkpoint=fw.info.checkpoint)
        return host, [launch]

    def write_executor(self, fw: AgentFramework, ex: AgentExecutor) -> list[Effect]:
        """Checkpoint a new executor (and a command or Docker task's run, which has no pid)."""
        if not (fw.info.checkpoint and self.agent_id):
            return []
        host = ex.host.container_id if ex.host is not None else ""
        # framework.info is written when the framework first runs a task here (and on updates).
        out: list[Effect] = [WriteExecutor(self.agent_id, fw.id, ex.info, ex.kind, host)]
        if ex.is_virtual:
            out.append(WriteRun(self.agent_id, fw.id, ex.executor_id, ex.container_id, 0, host))
        return out

    # ------------------------------------------------------------ delivering tasks

    def deliver(self, ex: AgentExecutor, task: AgentTask) -> list[Effect]:
        """Give a task to its executor now, or queue it until the executor registers."""
        peer = ex.host.peer if ex.host is not None else ex.peer
        registered = ex.host.state if ex.host is not None else ex.state
        if registered is ExecutorState.RUNNING and peer is not None:
            ex.launched_tasks[task.task_id] = task
            return [self._run_task(ex, task, peer)]
        ex.queued_tasks[task.task_id] = task
        return []

    def _run_task(self, ex: AgentExecutor, task: AgentTask, peer: Peer) -> ToExecutor:
        fw = self.frameworks[ex.framework_id]
        info = self._host_task(fw, ex, task.info, task.secret_env) if ex.is_command \
            else task.info
        return ToExecutor(peer, RunTask(framework_info=fw.info, task=info))

    def _host_task(self, fw: AgentFramework, ex: AgentExecutor, task: TaskInfo,
                   secrets: dict[str, str]) -> TaskInfo:
        """The task as the command host gets it: full environment (its resolved secrets
        included), explicit kill policy."""
        env = task_environment(
            task, framework_id=fw.id, executor_id=ex.executor_id, container_id=ex.container_id,
            sandbox=ex.directory, agent_endpoint=self.http_endpoint,
            host=self.config.effective_hostname, secrets=secrets,
        )
        assert task.command is not None
        policy = task.kill_policy or KillPolicy(self.config.default_kill_grace_period)
        return attrs.evolve(task, command=attrs.evolve(task.command, environment=env),
                            kill_policy=policy)

    def _flush_queued(self, ent: ExecutorProcess) -> list[Effect]:
        assert ent.peer is not None
        out: list[Effect] = []
        executors = list(ent.executors.values()) if isinstance(ent, CommandHost) else [ent]
        for ex in executors:
            ex.state = ExecutorState.RUNNING
            queued = [t for t in ex.queued_tasks.values() if not t.fetching]
            for task in queued:  # a task still fetching its URIs stays queued
                del ex.queued_tasks[task.task_id]
                ex.launched_tasks[task.task_id] = task
                out.append(self._run_task(ex, task, ent.peer))
        return out

    def task_dequeued(self, ex: AgentExecutor) -> list[Effect]:
        """A queued task was removed: a custom executor left with nothing is stopped."""
        if not ex.is_command and ex.state is ExecutorState.REGISTERING and not ex.live_tasks():
            return self.shutdown_executor(ex)
        return []

    def kill_in_executor(self, ex: AgentExecutor, task_id: str,
                         policy: KillPolicy) -> list[Effect]:
        """Forward a kill to the executor (the command host for command tasks)."""
        peer = ex.host.peer if ex.host is not None else ex.peer
        if peer is None:
            return []
        return [ToExecutor(peer, KillTask(framework_id=ex.framework_id, task_id=task_id,
                                          kill_policy=policy))]

    # ------------------------------------------------------------ shutting down

    def shutdown_executor(self, ent: ExecutorProcess, grace: float | None = None) -> list[Effect]:
        """ShutdownExecutor to a registered executor and a kill after the grace period."""
        if ent.state is ExecutorState.TERMINATED:
            return []
        grace = self.config.executor_shutdown_grace_period if grace is None else grace
        ent.shutdown_requested = True
        for ex in ent.executors.values() if isinstance(ent, CommandHost) else [ent]:
            for task in ex.live_tasks():
                task.kill_requested = True
        if ent.state is ExecutorState.TERMINATING:
            return []
        if ent.peer is not None:
            ent.state = ExecutorState.TERMINATING
            message = ShutdownExecutor(framework_id=ent.framework_id, executor_id=ent.executor_id)
            return [ToExecutor(ent.peer, message), EnforceShutdown(ent.container_id, grace)]
        if ent.pid is not None:
            ent.state = ExecutorState.TERMINATING
            return [KillContainer(ent.container_id)]
        return []  # still launching: killed once launched (container_launched)

    def shutdown_framework_executors(self, fw: AgentFramework) -> list[Effect]:
        """Shut down every executor process of a framework (its command host included)."""
        out: list[Effect] = []
        for ex in list(fw.executors.values()):
            if not ex.is_virtual:  # command tasks end with their host; Docker tasks are killed
                out += self.shutdown_executor(ex)
        if fw.command_host is not None:
            out += self.shutdown_executor(fw.command_host)
        return out

    def stray_task_containers(self) -> set[str]:
        """Container ids of every command task of every live command host (for cleanup)."""
        out: set[str] = set()
        for _fw, ent in self.containers.values():
            if isinstance(ent, CommandHost):
                out |= ent.task_containers
        return out

    # ------------------------------------------------------------ executor processes

    def container_launched(self, container_id: str, pid: int) -> list[Effect]:
        """An executor process started: checkpoint its run; kill it if shut down meanwhile."""
        entry = self.containers.get(container_id)
        if entry is None:
            return []
        fw, ent = entry
        ent.pid = pid
        out: list[Effect] = []
        if fw.info.checkpoint and self.agent_id:
            if isinstance(ent, CommandHost):
                out.append(WriteFramework(self.agent_id, fw.info))
                out.append(WriteExecutor(self.agent_id, fw.id, ent.info, "command-host"))
            out.append(WriteRun(self.agent_id, fw.id, ent.executor_id, container_id, pid))
        if ent.shutdown_requested and ent.state is ExecutorState.REGISTERING:
            out.append(KillContainer(container_id))
        return out

    def container_launch_failed(self, container_id: str, error: str) -> list[Effect]:
        """An executor process could not start."""
        entry = self.containers.get(container_id)
        if entry is None:
            return []
        fw, ent = entry
        log.error("Failed to launch container %s of framework %s: %s", container_id, fw.id, error)
        self.metrics.launch_failures += 1
        return self.process_ended(fw, ent, None, f"failed to launch: {error}",
                                  Reason.REASON_CONTAINER_LAUNCH_FAILED)

    def container_exited(self, container_id: str, status: int | None,
                         message: str) -> list[Effect]:
        """An executor process ended (``status``: the wait status, None when unknown)."""
        entry = self.containers.get(container_id)
        if entry is None:
            return []
        fw, ent = entry
        reason = Reason.REASON_EXECUTOR_TERMINATED
        if ent.timed_out and container_id in self.adopted:
            reason = Reason.REASON_EXECUTOR_REREGISTRATION_TIMEOUT
            message = f"did not re-register after the agent restarted (then {message})"
        elif ent.timed_out:
            reason = Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT
            message = (f"did not register within {self.config.executor_registration_timeout}s "
                       f"(then {message})")
        return self.process_ended(fw, ent, status, message, reason)

    def registration_timed_out(self, container_id: str) -> list[Effect]:
        """``executor_registration_timeout`` passed since the launch: kill it if still silent."""
        entry = self.containers.get(container_id)
        if entry is None or entry[1].state is not ExecutorState.REGISTERING:
            return []
        fw, ent = entry
        log.warning("Executor %s of framework %s did not register within %ss; killing "
                    "container %s", ent.executor_id, fw.id,
                    self.config.executor_registration_timeout, container_id)
        ent.timed_out = True
        return [KillContainer(container_id)]

    def pending_reregistration(self) -> int:
        """Adopted executor processes that have not re-registered yet."""
        return len(self._adopted_waiting())

    def _adopted_waiting(self) -> list[ExecutorProcess]:
        return [entry[1] for cid in sorted(self.adopted)
                if (entry := self.containers.get(cid)) is not None
                and entry[1].state is ExecutorState.REGISTERING]

    def end_reregistration_window(self) -> list[Effect]:
        """The re-registration window closed: kill the adopted executors still silent."""
        late = self._adopted_waiting()
        out: list[Effect] = []
        for ent in late:
            log.warning("Executor %s of framework %s did not re-register; killing container %s",
                        ent.executor_id, ent.framework_id, ent.container_id)
            ent.timed_out = True
            out.append(KillContainer(ent.container_id))
        log.info("Agent %s recovered (%d executors did not re-register)", self.agent_id,
                 len(late))
        return out

    # ------------------------------------------------------------ executor messages

    def executor_message(self, peer: Peer, msg: Any) -> list[Effect]:
        """Handle one message from an executor connection."""
        handler = _EXECUTOR_DISPATCH.get(type(msg))
        if handler is None:
            return self.refuse_executor(peer, msg, f"{type(msg).__name__} is not an executor "
                                        "message", "type")
        return handler(self, peer, msg)

    def _register(self, peer: Peer, msg: RegisterExecutor) -> list[Effect]:
        entry = self.containers.get(msg.container_id)
        ent = entry[1] if entry is not None else None
        if ent is None or ent.framework_id != msg.framework_id or (
            ent.executor_id != msg.executor_id
        ):
            return self._unknown(peer, msg, f"unknown executor {msg.executor_id!r} in container "
                                 f"{msg.container_id!r} of framework {msg.framework_id!r}")
        fw = self.frameworks.get(ent.framework_id)
        if ent.state is not ExecutorState.REGISTERING or fw is None:
            if ent.peer == peer:
                return []  # a duplicate registration
            return self.refuse_executor(peer, msg, f"executor {msg.executor_id!r} is "
                                        f"{ent.state.value}", "state")
        ent.peer = peer
        ent.state = ExecutorState.RUNNING
        self.peers[peer] = ent
        self.metrics.executors_registered += 1
        out: list[Effect] = [ToExecutor(peer, ExecutorRegistered(
            executor_info=ent.info, framework_info=fw.info, agent_id=self.agent_id or "",
            agent_info=self.agent_info(),
        ))]
        log.info("Executor %s of framework %s registered (container %s)",
                 ent.executor_id, ent.framework_id, ent.container_id)
        out += self._flush_queued(ent)
        if ent.shutdown_requested:
            out += self.shutdown_executor(ent)
        return out

    def _reregister(self, peer: Peer, msg: ReregisterExecutor) -> list[Effect]:
        entry = self.containers.get(msg.container_id)
        ent = entry[1] if entry is not None else None
        if ent is None or ent.framework_id != msg.framework_id or (
            ent.executor_id != msg.executor_id
        ) or ent.state is ExecutorState.TERMINATED:
            # Executors of a previous agent run re-attach only through agent recovery.
            return self._unknown(peer, msg, f"unknown container {msg.container_id!r}")
        out: list[Effect] = []
        fresh = ent.state is ExecutorState.REGISTERING
        if fresh:
            out += self._register(peer, RegisterExecutor(
                framework_id=msg.framework_id, executor_id=msg.executor_id,
                container_id=msg.container_id,
            ))
        # A live executor whose connection was renewed gets its identity refreshed.
        if ent.peer is not None and ent.peer != peer:
            self.peers.pop(ent.peer, None)
        ent.peer = peer
        self.peers[peer] = ent
        for update in msg.updates:
            out += self._status_update(peer, update)
        if not fresh:
            out.append(ToExecutor(peer, ExecutorReregistered(agent_id=self.agent_id or "",
                                                             agent_info=self.agent_info())))
        return out

    def _unknown(self, peer: Peer, msg: RegisterExecutor | ReregisterExecutor,
                 message: str) -> list[Effect]:
        """Refuse an executor this agent does not know and tell it to shut down."""
        shutdown = ShutdownExecutor(framework_id=msg.framework_id, executor_id=msg.executor_id)
        return [*self.refuse_executor(peer, msg, message, "container_id"),
                ToExecutor(peer, shutdown)]

    def _sender(self, peer: Peer, msg: Any) -> tuple[ExecutorProcess | None, list[Effect]]:
        """The registered executor process behind ``peer`` (or the refusal to send)."""
        ent = self.peers.get(peer)
        if ent is None:
            return None, self.refuse_executor(peer, msg, "executor is not registered", "peer",
                                              code="NOT_REGISTERED")
        fid = getattr(msg, "framework_id", ent.framework_id)
        if fid != ent.framework_id:
            return None, self.refuse_executor(
                peer, msg, f"framework_id {fid!r} is not this executor's "
                f"({ent.framework_id!r})", "framework_id")
        return ent, []

    def _status_update(self, peer: Peer, msg: StatusUpdate) -> list[Effect]:
        ent, out = self._sender(peer, msg)
        if ent is None:
            return out
        status = msg.status
        ex: AgentExecutor | None
        if isinstance(ent, CommandHost):
            ex = ent.executors.get(status.executor_id or status.task_id)
            if ex is None:
                fw = self.frameworks.get(ent.framework_id)
                found = fw.task_index.get(status.task_id) if fw else None
                ex = found if found is not None and found.host is ent else None
        else:
            ex = ent
        if ex is None:
            self.metrics.invalid_status_updates += 1
            return self.refuse_executor(peer, msg, f"task {status.task_id!r} does not belong "
                                        "to this executor", "status.task_id")
        out = self.executor_update(ex, msg)
        out.append(ToExecutor(peer, StatusUpdateAcknowledgement(
            agent_id=self.agent_id or "", framework_id=msg.framework_id,
            task_id=status.task_id, uuid=status.uuid,
        )))
        return out

    def _framework_message(self, peer: Peer, msg: ExecutorToFrameworkMessage) -> list[Effect]:
        ent, out = self._sender(peer, msg)
        if ent is None:
            return out
        if self.agent_id and msg.agent_id != self.agent_id:
            msg = attrs.evolve(msg, agent_id=self.agent_id)
        return [ToMaster(msg)] if self.registered else []

    def _heartbeat(self, peer: Peer, msg: Heartbeat) -> list[Effect]:
        return self._sender(peer, msg)[1]  # unknown peers are told NOT_REGISTERED

    def message_to_executor(self, msg: FrameworkToExecutorMessage) -> list[Effect]:
        """A scheduler's message for an executor (dropped when it is not connected)."""
        fw = self.frameworks.get(msg.framework_id)
        ex = fw.executors.get(msg.executor_id) if fw else None
        peer = None if ex is None else ex.host.peer if ex.host is not None else ex.peer
        if peer is None:
            log.warning("Dropping message for executor %s of framework %s: not running here",
                        msg.executor_id, msg.framework_id)
            return []
        return [ToExecutor(peer, msg)]


_EXECUTOR_DISPATCH: dict[type, Callable[[Any, Peer, Any], list[Effect]]] = {
    RegisterExecutor: ExecutorFlow._register,
    ReregisterExecutor: ExecutorFlow._reregister,
    StatusUpdate: ExecutorFlow._status_update,
    ExecutorToFrameworkMessage: ExecutorFlow._framework_message,
    Heartbeat: ExecutorFlow._heartbeat,
}
