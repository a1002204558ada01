"""The agent shell: the master link, task bookkeeping and status-update flow.

Owns: :class:`Agent`.  It registers with the master (randomised capped
backoff), answers ``Ping`` with ``Pong``, re-registers on
``ProtocolError(code="NOT_REGISTERED")`` or when pings stop, and handles
every master → agent message through one dispatch table.  Tasks go to
executors through :class:`~mesoslite.agent.executors.ExecutorManager`;
their status updates go through the pure
:class:`~mesoslite.agent.status_updates.StatusUpdateManager` (checkpointed
first for checkpointing frameworks) and are retried until acknowledged.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from typing import Any

import attrs

import mesoslite
from mesoslite.agent.checkpoint import Checkpointer
from mesoslite.agent.config import AgentConfig
from mesoslite.agent.containerizer import Containerizer
from mesoslite.agent.containerizer.process import ProcessContainerizer
from mesoslite.agent.docker_tasks import DockerTasks
from mesoslite.agent.executors import ExecutorManager
from mesoslite.agent.master_link import MasterLink, master_endpoint
from mesoslite.agent.reconnect import Reconnect, previous_executor_endpoint
from mesoslite.agent.recovery import checkpoint_executor, checkpoint_run
from mesoslite.agent.resources_detect import detect_resources
from mesoslite.agent.state import (
    AgentMetrics,
    CommandHost,
    ExecutorRecord,
    ExecutorState,
    FrameworkRecord,
    FrameworkState,
    TaskRecord,
)
from mesoslite.agent.status_updates import AddOutcome
from mesoslite.agent.updates import UpdateFlow
from mesoslite.clock import SYSTEM_CLOCK, Clock
from mesoslite.protocol import (
    AgentInfo,
    AgentRegistered,
    AgentReregistered,
    ExecutorToFrameworkMessage,
    ExitedExecutor,
    FrameworkInfo,
    FrameworkToExecutorMessage,
    KillPolicy,
    KillTask,
    LeaderRedirect,
    MasterInfo,
    Ping,
    Pong,
    ProtocolError,
    Reason,
    RegisterAgent,
    ReregisterAgent,
    RunTask,
    ShutdownAgent,
    ShutdownExecutor,
    ShutdownFramework,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    TaskInfo,
    TaskState,
    UnregisterAgent,
    UpdateFramework,
)
from mesoslite.resources import Resources
from mesoslite.transport import tcp_endpoint

log = logging.getLogger("mesoslite.agent")

_NEW, _RUNNING, _TERMINATING, _STOPPED = "NEW", "RUNNING", "TERMINATING", "STOPPED"


def read_boot_id() -> str:
    """The host's boot id (changes on reboot); '' when the platform has none."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


class Agent:
    """One agent: ``await start()``, run tasks for the master, ``await stop()``.

    ``clock`` (default: the system clock) times status-update retries, ping
    liveness and timestamps; ``containerizer`` defaults to the process one.
    """

    def __init__(
        self,
        config: AgentConfig,
        clock: Clock | None = None,
        *,
        containerizer: Containerizer | None = None,
    ) -> None:
        """Create the agent; nothing runs until :meth:`start`."""
        self.config = config
        self._clock: Clock = clock or SYSTEM_CLOCK
        self._state = _NEW
        self._agent_id: str | None = None
        self._stopped = asyncio.Event()
        self._work_dir = os.path.abspath(config.work_dir)
        self._http_port = 0
        self._http_server: Any = None
        self._master_info: MasterInfo | None = None
        self._link = MasterLink(
            config, self._clock, self._on_master_message, self._registration_message,
            flush_barrier=self._sync_checkpoint,
        )
        self._boot_id = read_boot_id()
        self._start_time = 0.0
        self._resources = Resources()
        self._attributes = config.attributes_dict
        self._frameworks: dict[str, FrameworkRecord] = {}
        self._completed_frameworks: collections.deque[FrameworkRecord] = collections.deque(
            maxlen=config.max_completed_frameworks
        )
        self._checkpointer = Checkpointer(self._work_dir)
        self._checkpointer.on_dirty = self._schedule_checkpoint_sync
        self._checkpoint_sync_scheduled = False
        self.metrics = AgentMetrics()
        self._executors = ExecutorManager(self, containerizer or ProcessContainerizer())
        self._docker = DockerTasks(self)
        self._updates = UpdateFlow(self)
        self._unregister_on_stop = True
        self._recovery_job: asyncio.Task[None] | None = None
        self._dispatch: dict[type, Any] = {
            AgentRegistered: self._on_registered,
            AgentReregistered: self._on_registered,
            Ping: self._on_ping,
            RunTask: self._on_run_task,
            KillTask: self._on_kill_task,
            StatusUpdateAcknowledgement: self._on_ack,
            FrameworkToExecutorMessage: self._on_framework_message,
            ShutdownFramework: self._on_shutdown_framework,
            ShutdownExecutor: self._on_shutdown_executor,
            ShutdownAgent: self._on_shutdown_agent,
            UpdateFramework: self._on_update_framework,
            ProtocolError: self._on_protocol_error,
            LeaderRedirect: self._on_leader_redirect,
        }

    # ------------------------------------------------------------ properties

    @property
    def agent_id(self) -> str | None:
        """The id the master gave this agent (None until registered)."""
        return self._agent_id

    @property
    def http_port(self) -> int:
        """The HTTP port actually bound (0 before start)."""
        return self._http_port

    @property
    def http_endpoint(self) -> str:
        """``ip:port`` of the agent's HTTP server (``MESOS_AGENT_ENDPOINT``)."""
        return f"{self.config.ip}:{self._http_port}"

    @property
    def registered(self) -> asyncio.Event:
        """Set while the agent is registered with a master."""
        return self._link.registered

    @property
    def stopped(self) -> asyncio.Event:
        """Set once the agent has stopped (also after ShutdownAgent from the master)."""
        return self._stopped

    @property
    def work_dir(self) -> str:
        """The agent's work directory (absolute)."""
        return self._work_dir

    @property
    def executor_endpoint(self) -> str:
        """The ZMQ endpoint executors connect to."""
        return self._executors.endpoint

    @property
    def master_info(self) -> MasterInfo | None:
        """The master this agent registered with, when it said who it is."""
        return self._master_info

    @property
    def resources(self) -> Resources:
        """Total resources this agent offers."""
        return self._resources

    @property
    def attributes(self) -> dict[str, str]:
        """The agent's attributes."""
        return dict(self._attributes)

    @property
    def start_time(self) -> float:
        """When the agent started (epoch seconds)."""
        return self._start_time

    @property
    def frameworks(self) -> list[FrameworkRecord]:
        """Frameworks with executors or unacknowledged tasks here."""
        return list(self._frameworks.values())

    @property
    def completed_frameworks(self) -> list[FrameworkRecord]:
        """Recently removed frameworks."""
        return list(self._completed_frameworks)

    def agent_info(self) -> AgentInfo:
        """This agent's AgentInfo (with its id once registered)."""
        return AgentInfo(
            hostname=self.config.effective_hostname,
            resources=self._resources,
            attributes=dict(self._attributes),
            id=self._agent_id or "",
            port=self._http_port,
            http_endpoint=self.http_endpoint,
        )

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind HTTP and the executor socket, connect to the master and start registering."""
        if self._state != _NEW:
            raise RuntimeError(f"agent state: expected NEW to start, got {self._state}")
        os.makedirs(self._work_dir, exist_ok=True)
        self._work_dir = os.path.realpath(self._work_dir)
        self._start_time = self._clock.time()
        recovery = Reconnect(self)
        previous = await recovery.load()
        self._checkpointer.write_boot_id(self._boot_id)
        self._resources = detect_resources(self._work_dir, self.config.resources_override)
        await self._docker.start()
        bind = previous_executor_endpoint(previous) if previous is not None else None
        if previous is not None:
            self._executors.hold()  # surviving executors wait until their records exist
        self._executors.start(bind or "tcp://127.0.0.1:0")
        from mesoslite.agent.http import start_http_server

        self._http_server, self._http_port = start_http_server(self)
        endpoint = master_endpoint(self.config.master)
        if endpoint is not None:
            self._link.connect(endpoint)
        self._state = _RUNNING
        follow = None if endpoint is not None else self.config.master
        if previous is None:
            self._link.start(follow=follow)
        else:
            try:
                await recovery.adopt()
            finally:
                self._executors.release()
            self._recovery_job = asyncio.get_running_loop().create_task(
                self._finish_recovery(recovery, follow)
            )
        log.info(
            "Agent started on %s (HTTP %s, executors %s), master %s, resources %s",
            self.config.effective_hostname, self._http_port, self._executors.endpoint,
            self.config.master, self._resources,
        )

    async def _finish_recovery(self, recovery: Reconnect, follow: str | None) -> None:
        """Wait for surviving executors, then re-register with the master under the old id."""
        try:
            await recovery.finish()
        finally:
            if self._state == _RUNNING:
                self._link.start(follow=follow)

    async def stop(self, kill_tasks: bool = True) -> None:
        """Stop the agent; with ``kill_tasks`` kill every task and executor and wait for them.

        Without ``kill_tasks`` executors keep running (they outlive the agent and
        exit by themselves unless their framework checkpoints).
        """
        if self._state in (_TERMINATING, _STOPPED):
            await self._stopped.wait()
            return
        was_running = self._state == _RUNNING
        self._state = _TERMINATING
        log.info("Agent %s stopping (kill_tasks=%s)", self._agent_id, kill_tasks)
        self._link.stop_registering()
        if self._recovery_job is not None and not self._recovery_job.done():
            self._recovery_job.cancel()
        if was_running and kill_tasks:
            await asyncio.gather(
                self._executors.shutdown_all(list(self._frameworks.values())),
                self._docker.shutdown_all(self.config.executor_shutdown_grace_period),
            )
            await self._drain_updates(0.5)
            if self._unregister_on_stop and self.is_registered() and self._agent_id:
                self._send_master(UnregisterAgent(agent_id=self._agent_id))
            # Everything was shut down: the next start is a new agent, not a recovery.
            self._checkpointer.forget_latest()
        self._updates.close()
        if self._http_server is not None:
            self._http_server.stop()
        self._executors.close()
        self._docker.close()
        await self._link.close()
        self._sync_checkpoint()
        self._checkpointer.close()
        self._state = _STOPPED
        self._stopped.set()
        log.info("Agent %s stopped", self._agent_id)

    async def _drain_updates(self, timeout: float) -> None:
        """Wait (bounded) for the master to acknowledge what is in flight."""
        if not self.is_registered():
            return
        deadline = time.monotonic() + timeout
        while len(self._updates) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def set_master(self, address: str) -> None:
        """Follow a new leading master (``host:port`` or ``tcp://``): reconnect and re-register."""
        endpoint = tcp_endpoint(address)
        log.info("Agent %s: master is now %s", self._agent_id, endpoint)
        self._link.move_to(endpoint, "new master")

    def _registration_message(self) -> RegisterAgent | ReregisterAgent:
        version = mesoslite.__version__
        if self._agent_id is None:
            return RegisterAgent(agent_info=self.agent_info(), boot_id=self._boot_id, version=version)
        tasks = []
        executors = []
        for fw in self._frameworks.values():
            for ex in fw.executors.values():
                if ex.state is not ExecutorState.TERMINATED:
                    executors.append(ex.snapshot())
                for task in [*ex.queued_tasks.values(), *ex.launched_tasks.values(),
                             *ex.terminated_tasks.values()]:
                    tasks.append(task.to_task(self._agent_id))
        return ReregisterAgent(
            agent_info=self.agent_info(),
            boot_id=self._boot_id,
            version=version,
            tasks=tuple(tasks),
            executors=tuple(executors),
            frameworks=tuple(fw.info for fw in self._frameworks.values()),
        )

    def _on_master_message(self, msg: Any) -> None:
        handler = self._dispatch.get(type(msg))
        if handler is None:
            log.warning("Agent %s ignoring unexpected %s from master", self._agent_id,
                        type(msg).__name__)
            return
        handler(msg)

    def _send_master(self, msg: Any) -> None:
        if self._state != _STOPPED:
            self._link.send(msg)

    def _on_registered(self, msg: AgentRegistered | AgentReregistered) -> None:
        if self._state != _RUNNING:
            return
        if self._agent_id is not None and msg.agent_id != self._agent_id:
            log.error(
                "Master gave id %s to agent %s; adopting it", msg.agent_id, self._agent_id
            )
        first = self._agent_id is None
        self._agent_id = msg.agent_id
        self._master_info = msg.master_info or self._master_info
        if not self._link.registered_with(msg.ping_interval_seconds):
            return
        log.info(
            "Agent %s %s with master %s", msg.agent_id,
            "registered" if isinstance(msg, AgentRegistered) else "re-registered",
            self._master_info.id if self._master_info else "?",
        )
        if first:
            self._checkpointer.write_agent(self.agent_info())
        self._updates.resend_all()

    def _on_ping(self, msg: Ping) -> None:
        self._link.note_ping()
        self._send_master(Pong(agent_id=self._agent_id or ""))

    def _on_protocol_error(self, msg: ProtocolError) -> None:
        if msg.code == "NOT_REGISTERED":
            log.warning("Master does not know agent %s (%s); re-registering",
                        self._agent_id, msg.message)
            self._link.reregistrations += 1
            self._link.begin_registration("master said NOT_REGISTERED")
            return
        log.warning("Master refused %s from agent %s: %s (field %s)",
                    msg.in_reply_to or "a message", self._agent_id, msg.message, msg.field)

    def _on_leader_redirect(self, msg: LeaderRedirect) -> None:
        # A standby names the leader: go there.  LeaderRedirect(None): no leader yet; keep
        # retrying here with backoff and let the detector (zk:// master) move us when one is known.
        if self._link.follows_detector:
            # The detector is the authority: a standby that has not yet seen the
            # election may still name a leader that is already dead.
            log.info("Master %s is not leading yet; retrying there", self._link.endpoint)
            return
        if msg.leader is not None and msg.leader.zmq_endpoint:
            if tcp_endpoint(msg.leader.zmq_endpoint) != self._link.endpoint:
                self.set_master(msg.leader.zmq_endpoint)
            return
        log.info("Master %s knows no leader yet; waiting", self._link.endpoint)

    # ------------------------------------------------------------ status updates

    def _agent_update(
        self,
        framework_id: str,
        task_id: str,
        state: TaskState,
        message: str,
        reason: Reason | None = None,
        executor_id: str = "",
    ) -> StatusUpdate:
        return self._updates.make(framework_id, task_id, state, message, reason, executor_id)

    def _accept_update(self, update: StatusUpdate, ex: ExecutorRecord | None) -> AddOutcome:
        return self._updates.accept(update, ex)

    def _on_ack(self, msg: StatusUpdateAcknowledgement) -> None:
        self._updates.on_ack(msg)

    def _complete_task(self, fw: FrameworkRecord, ex: ExecutorRecord, task_id: str) -> None:
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
        if ex.is_virtual and not ex.live_tasks() and not ex.terminated_tasks:
            # A command executor's life ends with its task.
            self._executor_terminated(fw, ex, 0, "exited with status 0",
                                      Reason.REASON_EXECUTOR_TERMINATED)
            if ex.host is not None:
                ex.host.executors.pop(ex.executor_id, None)
        self._maybe_remove_framework(fw)

    # ------------------------------------------------------------ executor callbacks

    def _executor_status_update(self, ex: ExecutorRecord, msg: StatusUpdate) -> None:
        """An executor sent a status update (the manager acknowledges it)."""
        status = msg.status
        if status.state is TaskState.TASK_STAGING:
            self.metrics.invalid_status_updates += 1
            log.warning("Executor %s sent TASK_STAGING for task %s; refused",
                        ex.executor_id, status.task_id)
            return
        if status.agent_id != (self._agent_id or "") or status.executor_id != ex.executor_id:
            msg = StatusUpdate(
                framework_id=msg.framework_id,
                status=attrs.evolve(
                    status, agent_id=self._agent_id or "", executor_id=ex.executor_id
                ),
            )
        self._accept_update(msg, ex)

    def _forward_executor_message(self, msg: ExecutorToFrameworkMessage) -> None:
        if self._agent_id and msg.agent_id != self._agent_id:
            msg = attrs.evolve(msg, agent_id=self._agent_id)
        if self.is_registered():
            self._send_master(msg)

    def _executor_terminated(
        self,
        fw: FrameworkRecord,
        ex: ExecutorRecord,
        status: int | None,
        message: str,
        reason: Reason,
    ) -> None:
        """An executor (or a command task's virtual executor) ended."""
        for task in ex.live_tasks():
            if task.kill_requested:
                state, why = TaskState.TASK_KILLED, reason
            else:
                state, why = TaskState.TASK_FAILED, reason
            text = f"Executor {message}"
            self._accept_update(
                self._agent_update(fw.id, task.task_id, state, text, why, ex.executor_id), ex
            )
        ex.state = ExecutorState.TERMINATED
        ex.exit_status = status
        if not ex.exited_reported:
            ex.exited_reported = True
            if self._agent_id and self.is_registered():
                self._send_master(
                    ExitedExecutor(
                        agent_id=self._agent_id,
                        framework_id=fw.id,
                        executor_id=ex.executor_id,
                        status=status if status is not None else 0,
                    )
                )
        if fw.executors.get(ex.executor_id) is ex:
            del fw.executors[ex.executor_id]
            fw.completed_executors.append(ex)
        if ex.is_command and ex.host is not None and not ex.terminated_tasks:
            ex.host.executors.pop(ex.executor_id, None)

    def _maybe_remove_framework(self, fw: FrameworkRecord) -> None:
        if self._frameworks.get(fw.id) is not fw or not fw.idle():
            return
        if fw.state is FrameworkState.RUNNING and fw.task_index:
            return
        del self._frameworks[fw.id]
        self._completed_frameworks.append(fw)
        self._updates.remove_framework(fw.id)
        if fw.info.checkpoint and self._agent_id:
            self._checkpointer.remove_framework(self._agent_id, fw.id)
        log.info("Framework %s removed from agent %s", fw.id, self._agent_id)

    def _schedule_checkpoint_sync(self) -> None:
        """Sync the checkpoint journal at the end of this loop turn (records were buffered)."""
        if self._checkpoint_sync_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on a loop (tests): the next flush or load syncs
            return
        self._checkpoint_sync_scheduled = True
        loop.call_soon(self._sync_checkpoint)

    def _sync_checkpoint(self) -> None:
        """Make buffered checkpoint records durable: one write and fdatasync per batch.

        Runs before any message leaves the agent (the sockets' flush barrier)
        and at the end of every loop turn that buffered records.
        """
        self._checkpoint_sync_scheduled = False
        try:
            self._checkpointer.sync()
        except OSError as exc:
            self.metrics.checkpoint_failures += 1
            log.error("Agent %s: checkpoint write failed (%s); retried with the next batch",
                      self._agent_id, exc)

    def _checkpoint_executor(self, fw: FrameworkRecord, ex: ExecutorRecord) -> None:
        checkpoint_executor(self._checkpointer, self._agent_id, fw, ex)

    def _checkpoint_run(self, fw: FrameworkRecord, ent: ExecutorRecord | CommandHost) -> None:
        checkpoint_run(
            self._checkpointer, self._agent_id, fw, ent,
            self._executors.containerizer_create_time(ent.container_id),
            self._executors.endpoint,
        )

    # ------------------------------------------------------------ master messages

    def _drop_state(self, info: FrameworkInfo) -> TaskState:
        if info.has_capability("PARTITION_AWARE"):
            return TaskState.TASK_DROPPED
        return TaskState.TASK_LOST

    def _refuse_task(
        self, info: FrameworkInfo, task: TaskInfo, state: TaskState, message: str,
        reason: Reason | None,
    ) -> None:
        log.warning("Task %s of framework %s refused (%s): %s",
                    task.task_id, info.id, state.value, message)
        self._accept_update(self._agent_update(info.id, task.task_id, state, message, reason), None)

    def _on_run_task(self, msg: RunTask) -> None:
        info, task = msg.framework_info, msg.task
        if not info.id:
            log.error("RunTask for task %s without framework_info.id; ignored", task.task_id)
            return
        if self._state != _RUNNING:
            self._refuse_task(info, task, self._drop_state(info), "agent is shutting down", None)
            return
        if self._agent_id is None:
            log.warning("Ignoring task %s: agent is not registered yet", task.task_id)
            return
        fw = self._frameworks.get(info.id)
        if fw is None:
            fw = FrameworkRecord(info, self.config.max_completed_executors_per_framework)
            self._frameworks[info.id] = fw
            if info.checkpoint:
                self._checkpointer.write_framework(self._agent_id, info)
        elif fw.state is FrameworkState.TERMINATING:
            self._refuse_task(info, task, self._drop_state(info),
                              f"framework {info.id} is shutting down",
                              Reason.REASON_FRAMEWORK_REMOVED)
            return
        elif fw.info != info:
            fw.info = info
            if info.checkpoint:
                self._checkpointer.write_framework(self._agent_id, info)
        if task.task_id in fw.task_index:
            log.error("Ignoring task %s of framework %s: a task with this id is already here",
                      task.task_id, info.id)
            return
        if (task.command is None) == (task.executor is None):
            self._refuse_task(info, task, TaskState.TASK_ERROR,
                              "task: expected exactly one of command and executor",
                              Reason.REASON_TASK_INVALID)
            return
        container = task.container or (task.executor.container if task.executor else None)
        docker = container is not None and container.type == "DOCKER"
        if docker and (task.executor is not None or self._docker.containerizer is None):
            message = self._docker.refusal() if task.executor is None else (
                "container.type: DOCKER is supported for command tasks only, "
                "not for custom executors")
            self._refuse_task(info, task, TaskState.TASK_FAILED, message,
                              Reason.REASON_CONTAINER_LAUNCH_FAILED)
            return
        if docker:
            ex = self._docker.new_executor(fw, task)
        elif task.executor is not None:
            ex = fw.executors.get(task.executor.executor_id)
            if ex is not None and ex.state in (ExecutorState.TERMINATING,
                                               ExecutorState.TERMINATED):
                self._refuse_task(info, task, self._drop_state(info),
                                  f"executor {ex.executor_id} is terminating",
                                  Reason.REASON_EXECUTOR_TERMINATED)
                return
            if ex is not None and attrs.evolve(ex.info, framework_id="") != attrs.evolve(
                task.executor, framework_id=""
            ):
                self._refuse_task(info, task, self._drop_state(info),
                                  f"executor: ExecutorInfo of {ex.executor_id} differs from "
                                  "the running executor's", Reason.REASON_TASK_INVALID)
                return
            if ex is None:
                ex = self._executors.launch_custom(fw, task.executor)
        else:
            ex = self._executors.new_command_executor(fw, task)
        record = TaskRecord(task, fw.id, ex.executor_id)
        fw.task_index[task.task_id] = ex
        if fw.info.checkpoint:
            self._checkpointer.write_task(self._agent_id, fw.id, ex.executor_id,
                                          ex.container_id, task)
        if docker:
            self._docker.run(fw, ex, record)
        else:
            self._executors.deliver(ex, record)
        log.info("Launching task %s of framework %s with executor %s",
                 task.task_id, fw.id, ex.executor_id)

    def _on_kill_task(self, msg: KillTask) -> None:
        fw = self._frameworks.get(msg.framework_id)
        if fw is None:
            log.warning("Ignoring kill of task %s: no framework %s on this agent",
                        msg.task_id, msg.framework_id)
            return
        ex = fw.task_index.get(msg.task_id)
        if ex is None:
            if msg.task_id in fw.completed_task_ids:
                log.info("Ignoring kill of completed task %s", msg.task_id)
                return
            # As Mesos: the task never launched here.
            self._accept_update(
                self._agent_update(fw.id, msg.task_id, self._drop_state(fw.info),
                                   "Cannot find executor: the task is unknown to this agent",
                                   Reason.REASON_EXECUTOR_TERMINATED),
                None,
            )
            return
        task = ex.find_task(msg.task_id)
        if task is None or task.state.is_terminal:
            return
        task.kill_requested = True
        if msg.task_id in ex.queued_tasks:
            log.info("Killing task %s of framework %s before it reached its executor",
                     msg.task_id, fw.id)
            self._accept_update(
                self._agent_update(fw.id, msg.task_id, TaskState.TASK_KILLED,
                                   "killed before it was delivered to its executor",
                                   Reason.REASON_TASK_KILLED_DURING_LAUNCH, ex.executor_id),
                ex,
            )
            self._executors.task_dequeued(ex)
            return
        policy = msg.kill_policy or task.info.kill_policy or KillPolicy(
            self.config.default_kill_grace_period
        )
        log.info("Killing task %s of framework %s (grace %.1fs)",
                 msg.task_id, fw.id, policy.grace_period)
        if ex.kind == "docker":
            self._docker.kill(fw, ex, task, policy)
        else:
            self._executors.kill_task(ex, msg.task_id, policy)

    def _on_framework_message(self, msg: FrameworkToExecutorMessage) -> None:
        fw = self._frameworks.get(msg.framework_id)
        ex = fw.executors.get(msg.executor_id) if fw else None
        if ex is None or not self._executors.send_framework_message(ex, msg):
            log.warning("Dropping message for executor %s of framework %s: not running here",
                        msg.executor_id, msg.framework_id)

    def _on_shutdown_framework(self, msg: ShutdownFramework) -> None:
        fw = self._frameworks.get(msg.framework_id)
        if fw is None:
            log.info("Shutdown of unknown framework %s ignored", msg.framework_id)
            return
        log.info("Shutting down framework %s", fw.id)
        fw.state = FrameworkState.TERMINATING
        self._executors.shutdown_framework(fw)
        self._docker.kill_framework(fw, self.config.executor_shutdown_grace_period)
        self._maybe_remove_framework(fw)

    def _on_shutdown_executor(self, msg: ShutdownExecutor) -> None:
        fw = self._frameworks.get(msg.framework_id)
        ex = fw.executors.get(msg.executor_id) if fw else None
        if fw is None or ex is None:
            log.info("Shutdown of unknown executor %s of framework %s ignored",
                     msg.executor_id, msg.framework_id)
            return
        log.info("Shutting down executor %s of framework %s", ex.executor_id, fw.id)
        if ex.is_virtual:
            grace = self.config.executor_shutdown_grace_period
            for task in ex.live_tasks():
                self._on_kill_task(KillTask(fw.id, task.task_id, KillPolicy(grace)))
        else:
            self._executors.shutdown_executor(ex)

    def _on_shutdown_agent(self, msg: ShutdownAgent) -> None:
        log.warning("Master asked agent %s to shut down: %s", self._agent_id, msg.message)
        self._checkpointer.forget_latest()
        self._unregister_on_stop = False
        asyncio.get_running_loop().create_task(self.stop(kill_tasks=True))

    def _on_update_framework(self, msg: UpdateFramework) -> None:
        fw = self._frameworks.get(msg.framework_info.id)
        if fw is None:
            return
        fw.info = msg.framework_info
        if fw.info.checkpoint and self._agent_id:
            self._checkpointer.write_framework(self._agent_id, fw.info)

    # ------------------------------------------------------------ observability

    async def monitor_statistics(self) -> list[dict[str, Any]]:
        """``/monitor/statistics``: usage of every running executor."""
        entries = await self._executors.statistics(list(self._frameworks.values()))
        return entries + await self._docker.statistics()

    def containerizers_health(self) -> dict[str, Any]:
        """``/state`` ``containerizers``: the Docker daemon's health when docker is enabled."""
        health = self._docker.health()
        return {"docker": health} if health is not None else {}

    def is_registered(self) -> bool:
        """True while registered with a master."""
        return self._link.registered.is_set()

    def registration_counts(self) -> tuple[int, int]:
        """(registration messages sent, re-registrations started)."""
        return self._link.registration_attempts, self._link.reregistrations
