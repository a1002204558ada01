"""Executor processes on the agent: launch, registration, messages, exit, shutdown.

Owns: the agent's executor-facing ``RouterServer`` and everything about
executor *processes*: creating sandboxes, launching custom executors and the
per-framework command host through the containerizer, the registration
handshake and its timeout, routing messages both ways, noticing exits, and
shutting executors down (ShutdownExecutor, then a kill after
``executor_shutdown_grace_period``).  Task-level consequences (status
updates, ExitedExecutor) are left to the :class:`~mesoslite.agent.agent.Agent`
through its ``_executor_*`` callbacks.

Command tasks: every command task gets a virtual executor (executor id =
task id, its own container id and sandbox); the framework's one command
host (``python -m mesoslite.executor.command``) receives the task with its
complete environment in ``command.environment`` (including
``MESOS_SANDBOX`` and ``MESOS_CONTAINER_ID``) and runs it in that sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import uuid
from typing import TYPE_CHECKING, Any

import attrs

import mesoslite
from mesoslite.agent.containerizer import Containerizer, ContainerizerError, LaunchSpec
from mesoslite.agent.sandbox import executor_environment, sandbox_dir, task_environment
from mesoslite.agent.state import (
    CommandHost,
    ExecutorRecord,
    ExecutorState,
    FrameworkRecord,
    TaskRecord,
)
from mesoslite.agent.views import statistics_entry
from mesoslite.proc import find_by_env, kill_pids, tree_usage
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
    ProtocolError,
    Reason,
    RegisterExecutor,
    ReregisterExecutor,
    RunTask,
    ShutdownExecutor,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    TaskInfo,
)
from mesoslite.transport import RouterServer

if TYPE_CHECKING:
    from mesoslite.agent.agent import Agent

log = logging.getLogger("mesoslite.agent")

COMMAND_HOST_ID = "mesoslite.command-host"
_PYTHON_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(mesoslite.__file__)))

Entity = ExecutorRecord | CommandHost


#: Executor messages kept at most while a recovering agent rebuilds its records.
MAX_HELD_MESSAGES = 100_000


class ExecutorManager:
    """The agent's executor processes and the socket they talk to the agent on."""

    def __init__(self, agent: Agent, containerizer: Containerizer) -> None:
        """Serve ``agent``; executors run through ``containerizer``."""
        self._agent = agent
        self._cfg = agent.config
        self.containerizer = containerizer
        self._server: RouterServer | None = None
        self._peers: dict[bytes, Entity] = {}
        self._containers: dict[str, Entity] = {}
        self._jobs: set[asyncio.Task[Any]] = set()
        #: Container ids of executors taken over from a previous agent run.
        self._adopted: set[str] = set()
        #: Messages from executors that arrive while a recovering agent rebuilds its
        #: records (None: not holding): handled in order once :meth:`release` runs.
        self._held: list[tuple[bytes, Any]] | None = None
        self._dispatch = {
            RegisterExecutor: self._on_register,
            ReregisterExecutor: self._on_reregister,
            StatusUpdate: self._on_status_update,
            ExecutorToFrameworkMessage: self._on_executor_message,
            Heartbeat: self._on_heartbeat,
        }

    # ------------------------------------------------------------ lifecycle

    @property
    def endpoint(self) -> str:
        """The executor-facing ZMQ endpoint (``MESOSLITE_AGENT_ZMQ``)."""
        assert self._server is not None
        return self._server.endpoint

    def start(self, endpoint: str = "tcp://127.0.0.1:0") -> None:
        """Bind the executor socket on ``endpoint`` (default: an ephemeral loopback port).

        A recovering agent binds the endpoint of its previous run, so surviving
        executors reconnect by themselves; when that port is taken it falls
        back to an ephemeral one (those executors then cannot come back).
        """
        try:
            self._server = self._bind(endpoint)
        except Exception as exc:  # zmq errors stay inside the transport package
            if endpoint == "tcp://127.0.0.1:0":
                raise
            log.error("Cannot bind the previous executor endpoint %s (%s); using a new port",
                      endpoint, exc)
            self._server = self._bind("tcp://127.0.0.1:0")
        # Checkpoint records are durable before anything that depends on them leaves.
        self._server.set_flush_barrier(self._agent._sync_checkpoint)
        self._server.start()

    def _bind(self, endpoint: str) -> RouterServer:
        return RouterServer(
            endpoint,
            self._on_message,
            name="agent<-executors",
            max_message_size=self._cfg.max_message_size,
        )

    def adopt(self, fw: FrameworkRecord, ent: Entity) -> None:
        """Take over a recovered executor process (REGISTERING until it re-registers)."""
        self._containers[ent.container_id] = ent
        self._adopted.add(ent.container_id)
        self._spawn(self._watch_adopted(fw, ent))

    async def _watch_adopted(self, fw: FrameworkRecord, ent: Entity) -> None:
        termination = await self.containerizer.wait(ent.container_id)
        if ent.timed_out:
            self._terminated(
                fw, ent, termination.status,
                "did not re-register after the agent restarted "
                f"(then {termination.message})",
                Reason.REASON_EXECUTOR_REREGISTRATION_TIMEOUT,
            )
        else:
            self._terminated(fw, ent, termination.status, termination.message,
                             Reason.REASON_EXECUTOR_TERMINATED)
        self.containerizer.remove(ent.container_id)

    def expire_reregistration(self) -> list[Entity]:
        """Kill adopted executors that did not re-register in time; returns them."""
        late = self._adopted_waiting()
        for ent in late:
            log.warning("Executor %s of framework %s did not re-register; killing container %s",
                        ent.executor_id, ent.framework_id, ent.container_id)
            ent.timed_out = True
            self._spawn(self.containerizer.kill(ent.container_id, 0.0))
        return late

    def pending_reregistration(self) -> int:
        """Adopted executors that have not re-registered yet."""
        return len(self._adopted_waiting())

    def _adopted_waiting(self) -> list[Entity]:
        return [e for cid in self._adopted if (e := self._containers.get(cid)) is not None
                and e.state is ExecutorState.REGISTERING]

    def terminate_lost(self, fw: FrameworkRecord, ent: Entity, message: str) -> None:
        """A checkpointed executor whose process did not survive the agent restart."""
        self._terminated(fw, ent, None, message, Reason.REASON_EXECUTOR_TERMINATED)

    def close(self) -> None:
        """Close the socket and stop watching processes (they keep running)."""
        for job in list(self._jobs):
            job.cancel()
        for cid in list(self.containerizer.containers()):
            self.containerizer.remove(cid)
        if self._server is not None:
            self._server.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        job = asyncio.get_running_loop().create_task(coro)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return job

    def containerizer_create_time(self, container_id: str) -> float:
        """When a container's process started (0.0 when the containerizer cannot say)."""
        getter = getattr(self.containerizer, "create_time", None)
        value = getter(container_id) if getter is not None else None
        return float(value or 0.0)

    def live_containers(self) -> list[Entity]:
        """Executor processes (custom executors and command hosts) not yet ended."""
        return [e for e in self._containers.values() if e.state is not ExecutorState.TERMINATED]

    # ------------------------------------------------------------ creation

    def _sandbox(self, fid: str, eid: str, cid: str) -> str:
        """Where a run's sandbox lives; whoever starts the run creates it (off the loop)."""
        agent_id = self._agent.agent_id or "unregistered"
        return sandbox_dir(self._agent.work_dir, agent_id, fid, eid, cid)

    def launch_custom(self, fw: FrameworkRecord, info: ExecutorInfo) -> ExecutorRecord:
        """Create a custom executor record and start its process."""
        cid = uuid.uuid4().hex
        directory = self._sandbox(fw.id, info.executor_id, cid)
        ex = ExecutorRecord(
            fw.id, info, cid, directory, "custom", self._cfg.max_completed_tasks_per_executor
        )
        fw.executors[ex.executor_id] = ex
        self._containers[cid] = ex
        self._agent._checkpoint_executor(fw, ex)
        env = self._executor_env(fw, info.executor_id, cid, directory, info.command.environment)
        spec = LaunchSpec(info.command, directory, env, info.resources)
        self._spawn(self._run_container(fw, ex, spec))
        log.info(
            "Launching executor %s of framework %s in container %s (%s)",
            ex.executor_id, fw.id, cid, directory,
        )
        return ex

    def new_command_executor(self, fw: FrameworkRecord, task: TaskInfo) -> ExecutorRecord:
        """Create the virtual executor of a command task, starting the host if needed."""
        host = fw.command_host
        if host is None or host.state in (ExecutorState.TERMINATING, ExecutorState.TERMINATED):
            host = self._launch_host(fw)
        cid = uuid.uuid4().hex
        # The command executor creates this sandbox right before it spawns the task.
        directory = self._sandbox(fw.id, task.task_id, cid)
        assert task.command is not None
        shown = task.command.value if task.command.shell else " ".join(task.command.arguments)
        info = ExecutorInfo(
            executor_id=task.task_id,
            command=CommandInfo(value=f"{sys.executable} -m mesoslite.executor.command"),
            framework_id=fw.id,
            name=f"Command Executor (Task: {task.task_id}) (Command: sh -c '{shown[:100]}')",
            type="COMMAND",
        )
        ex = ExecutorRecord(
            fw.id, info, cid, directory, "command", self._cfg.max_completed_tasks_per_executor
        )
        ex.host = host
        host.executors[ex.executor_id] = ex
        host.task_containers.add(cid)
        fw.executors[ex.executor_id] = ex
        if host.state is ExecutorState.RUNNING:
            ex.state = ExecutorState.RUNNING
        self._agent._checkpoint_executor(fw, ex)
        return ex

    def _launch_host(self, fw: FrameworkRecord) -> CommandHost:
        cid = uuid.uuid4().hex
        directory = self._sandbox(fw.id, COMMAND_HOST_ID, cid)
        info = ExecutorInfo(
            executor_id=COMMAND_HOST_ID,
            command=CommandInfo(
                value=sys.executable,
                shell=False,
                arguments=(sys.executable, "-m", "mesoslite.executor.command"),
            ),
            framework_id=fw.id,
            name="mesoslite command executor",
            type="COMMAND",
        )
        host = CommandHost(fw.id, info, cid, directory)
        fw.command_host = host
        self._containers[cid] = host
        env = self._executor_env(fw, COMMAND_HOST_ID, cid, directory, {})
        spec = LaunchSpec(info.command, directory, env)
        self._spawn(self._run_container(fw, host, spec))
        log.info("Launching command executor of framework %s in container %s", fw.id, cid)
        return host

    def _executor_env(
        self, fw: FrameworkRecord, eid: str, cid: str, directory: str, extra: dict[str, str]
    ) -> dict[str, str]:
        agent = self._agent
        return executor_environment(
            os.environ,
            framework_id=fw.id,
            executor_id=eid,
            container_id=cid,
            sandbox=directory,
            agent_endpoint=agent.http_endpoint,
            host=agent.config.effective_hostname,
            agent_zmq=self.endpoint,
            checkpoint=fw.info.checkpoint,
            shutdown_grace_period=self._cfg.executor_shutdown_grace_period,
            recovery_timeout=self._cfg.recovery_timeout,
            agent_pid=os.getpid(),
            extra=extra,
            python_path=_PYTHON_ROOT,
        )

    async def _run_container(self, fw: FrameworkRecord, ent: Entity, spec: LaunchSpec) -> None:
        cid = ent.container_id
        try:
            ent.pid = await self.containerizer.launch(cid, spec)
        except ContainerizerError as exc:
            log.error("Failed to launch container %s of framework %s: %s", cid, fw.id, exc)
            self._agent.metrics.launch_failures += 1
            self._terminated(
                fw, ent, None, f"failed to launch: {exc}", Reason.REASON_CONTAINER_LAUNCH_FAILED
            )
            return
        self._agent._checkpoint_run(fw, ent)
        loop = asyncio.get_running_loop()
        ent.registration_timer = loop.call_later(
            self._cfg.executor_registration_timeout, self._registration_timeout, fw, ent
        )
        if ent.shutdown_requested and ent.state is ExecutorState.REGISTERING:
            self._spawn(self.containerizer.kill(cid, 0.0))
        termination = await self.containerizer.wait(cid)
        if ent.registration_timer is not None:
            ent.registration_timer.cancel()
        reason = (
            Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT
            if ent.timed_out
            else Reason.REASON_EXECUTOR_TERMINATED
        )
        message = termination.message
        if ent.timed_out:
            message = (
                f"did not register within {self._cfg.executor_registration_timeout}s "
                f"(then {termination.message})"
            )
        self._terminated(fw, ent, termination.status, message, reason)
        self.containerizer.remove(cid)

    def _registration_timeout(self, fw: FrameworkRecord, ent: Entity) -> None:
        ent.registration_timer = None
        if ent.state is not ExecutorState.REGISTERING:
            return
        log.warning(
            "Executor %s of framework %s did not register within %ss; killing container %s",
            ent.executor_id, fw.id, self._cfg.executor_registration_timeout, ent.container_id,
        )
        ent.timed_out = True
        self._spawn(self.containerizer.kill(ent.container_id, 0.0))

    def _terminated(
        self,
        fw: FrameworkRecord,
        ent: Entity,
        status: int | None,
        message: str,
        reason: Reason,
    ) -> None:
        if ent.state is ExecutorState.TERMINATED:
            return
        ent.state = ExecutorState.TERMINATED
        if ent.peer is not None:
            self._peers.pop(ent.peer, None)
        self._containers.pop(ent.container_id, None)
        self._agent.metrics.executors_terminated += 1
        log.info(
            "Executor %s of framework %s (container %s) %s",
            ent.executor_id, fw.id, ent.container_id, message,
        )
        if isinstance(ent, CommandHost):
            if fw.command_host is ent:
                fw.command_host = None
            for ex in list(ent.executors.values()):
                self._agent._executor_terminated(fw, ex, status, message, reason)
            ent.executors.clear()
            self._spawn(self._kill_strays(set(ent.task_containers)))
        else:
            self._agent._executor_terminated(fw, ent, status, message, reason)
        self._agent._maybe_remove_framework(fw)

    async def _kill_strays(self, container_ids: set[str]) -> None:
        """Kill task processes left behind by a dead command host (found by environment)."""
        if not container_ids:
            return
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(
            None, find_by_env, "MESOS_CONTAINER_ID", container_ids, None
        )
        pids = [pid for pids in found.values() for pid in pids]
        if pids:
            log.warning("Killing %d task processes left by a command executor", len(pids))
            kill_pids(pids)

    # ------------------------------------------------------------ delivery

    def deliver(self, ex: ExecutorRecord, task: TaskRecord) -> None:
        """Give a task to its executor now, or queue it until the executor registers."""
        peer = ex.host.peer if ex.host is not None else ex.peer
        registered = ex.host.state if ex.host is not None else ex.state
        if registered is ExecutorState.RUNNING and peer is not None:
            ex.launched_tasks[task.task_id] = task
            self._send_run_task(ex, task, peer)
        else:
            ex.queued_tasks[task.task_id] = task

    def _send_run_task(self, ex: ExecutorRecord, task: TaskRecord, peer: bytes) -> None:
        fw = self._agent._frameworks.get(ex.framework_id)
        assert fw is not None
        info = task.info
        if ex.is_command:
            info = self._host_task(fw, ex, info)
        assert self._server is not None
        self._server.send(peer, RunTask(framework_info=fw.info, task=info))

    def _host_task(self, fw: FrameworkRecord, ex: ExecutorRecord, task: TaskInfo) -> TaskInfo:
        """The task as the command host gets it: full environment, explicit kill policy."""
        env = task_environment(
            task,
            framework_id=fw.id,
            executor_id=ex.executor_id,
            container_id=ex.container_id,
            sandbox=ex.directory,
            agent_endpoint=self._agent.http_endpoint,
            host=self._agent.config.effective_hostname,
        )
        assert task.command is not None
        policy = task.kill_policy or KillPolicy(self._cfg.default_kill_grace_period)
        return attrs.evolve(
            task, command=attrs.evolve(task.command, environment=env), kill_policy=policy
        )

    def _flush_queued(self, ent: Entity) -> None:
        assert ent.peer is not None
        executors = list(ent.executors.values()) if isinstance(ent, CommandHost) else [ent]
        for ex in executors:
            ex.state = ExecutorState.RUNNING
            queued = list(ex.queued_tasks.values())
            ex.queued_tasks.clear()
            for task in queued:
                ex.launched_tasks[task.task_id] = task
                self._send_run_task(ex, task, ent.peer)

    def task_dequeued(self, ex: ExecutorRecord) -> None:
        """A queued task was removed: a custom executor left with nothing is stopped."""
        if not ex.is_command and ex.state is ExecutorState.REGISTERING and not ex.live_tasks():
            self.shutdown_executor(ex)

    def kill_task(self, ex: ExecutorRecord, task_id: str, policy: KillPolicy) -> None:
        """Forward a kill to the executor (the command host for command tasks)."""
        peer = ex.host.peer if ex.host is not None else ex.peer
        if peer is None or self._server is None:
            return
        self._server.send(
            peer, KillTask(framework_id=ex.framework_id, task_id=task_id, kill_policy=policy)
        )

    def send_framework_message(self, ex: ExecutorRecord, msg: FrameworkToExecutorMessage) -> bool:
        """Forward a scheduler's message to a registered executor (best effort)."""
        peer = ex.host.peer if ex.host is not None else ex.peer
        if peer is None or self._server is None:
            return False
        return self._server.send(peer, msg)

    # ------------------------------------------------------------ shutdown

    def shutdown_executor(self, ent: Entity, grace: float | None = None) -> None:
        """ShutdownExecutor to a registered executor, a kill after the grace period."""
        if ent.state is ExecutorState.TERMINATED:
            return
        grace = self._cfg.executor_shutdown_grace_period if grace is None else grace
        ent.shutdown_requested = True
        for ex in ent.executors.values() if isinstance(ent, CommandHost) else [ent]:
            for task in ex.live_tasks():
                task.kill_requested = True
        if ent.state is ExecutorState.TERMINATING:
            return
        if ent.peer is not None and self._server is not None:
            ent.state = ExecutorState.TERMINATING
            self._server.send(
                ent.peer,
                ShutdownExecutor(framework_id=ent.framework_id, executor_id=ent.executor_id),
            )
            self._spawn(self._kill_after(ent, grace))
        elif ent.container_id in self.containerizer.containers():
            ent.state = ExecutorState.TERMINATING
            self._spawn(self.containerizer.kill(ent.container_id, 0.0))
        # else: still launching; _run_container kills it once started.

    async def _kill_after(self, ent: Entity, grace: float) -> None:
        cid = ent.container_id
        if cid not in self.containerizer.containers():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.containerizer.wait(cid), grace)
            return
        log.warning(
            "Executor %s of framework %s did not exit within %ss of shutdown; killing it",
            ent.executor_id, ent.framework_id, grace,
        )
        with contextlib.suppress(ContainerizerError):
            await self.containerizer.kill(cid, 0.0)

    def shutdown_framework(self, fw: FrameworkRecord) -> None:
        """Shut down every executor of a framework (and its command host)."""
        for ex in list(fw.executors.values()):
            if not ex.is_virtual:  # docker tasks: Agent stops them through DockerTasks
                self.shutdown_executor(ex)
        if fw.command_host is not None:
            self.shutdown_executor(fw.command_host)

    async def shutdown_all(self, frameworks: list[FrameworkRecord]) -> None:
        """Shut down every executor and wait (bounded) until all processes are gone."""
        for fw in frameworks:
            self.shutdown_framework(fw)
        grace = self._cfg.executor_shutdown_grace_period
        cids = [e.container_id for e in self._containers.values()]
        strays: set[str] = set()
        for ent in self._containers.values():
            if isinstance(ent, CommandHost):
                strays |= ent.task_containers
        waits = [
            self.containerizer.wait(c) for c in cids if c in self.containerizer.containers()
        ]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), grace + 2.0)
        for cid in cids:
            if cid in self.containerizer.containers():
                with contextlib.suppress(ContainerizerError, TimeoutError):
                    await asyncio.wait_for(self.containerizer.kill(cid, 0.0), 5.0)
        # Let exit handlers run (terminal updates are generated there).
        for _ in range(3):
            await asyncio.sleep(0)
        await self._kill_strays(strays)

    # ------------------------------------------------------------ statistics

    async def statistics(self, frameworks: list[FrameworkRecord]) -> list[dict[str, Any]]:
        """``/monitor/statistics`` entries, measured in a worker thread."""
        custom: list[tuple[ExecutorRecord, int]] = []
        virtual: list[ExecutorRecord] = []
        host_pids: set[int] = set()
        for fw in frameworks:
            for ex in fw.executors.values():
                if ex.state is ExecutorState.TERMINATED or ex.kind == "docker":
                    continue  # docker tasks are measured by DockerTasks
                if ex.is_command:
                    if ex.host is not None and ex.host.pid is not None and ex.launched_tasks:
                        virtual.append(ex)
                        host_pids.add(ex.host.pid)
                elif ex.pid is not None:
                    custom.append((ex, ex.pid))

        def measure() -> list[tuple[ExecutorRecord, Any]]:
            out = [(ex, tree_usage(pid)) for ex, pid in custom]
            if virtual:
                found = find_by_env(
                    "MESOS_CONTAINER_ID", {ex.container_id for ex in virtual}, host_pids
                )
                for ex in virtual:
                    pids = found.get(ex.container_id)
                    out.append((ex, tree_usage(pids[0]) if pids else None))
            return out

        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(None, measure)
        return [statistics_entry(ex, usage) for ex, usage in results if usage is not None]

    # ------------------------------------------------------------ inbound

    def hold(self) -> None:
        """Keep executors' messages until :meth:`release` (agent recovery in progress).

        A surviving executor re-attaches within ~0.1 s of the new agent binding
        its endpoint, often before the checkpoint's executors (and, with Docker,
        the daemon's containers) are known: answering then would shut it down.
        """
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Handle the held messages, in arrival order, and stop holding."""
        held, self._held = self._held, None
        for peer, msg in held or ():
            self._on_message(peer, msg)

    def _on_message(self, peer: bytes, msg: Any) -> None:
        if self._held is not None:
            if len(self._held) < MAX_HELD_MESSAGES:
                self._held.append((peer, msg))
            else:
                log.warning("Dropped %s from executor peer %r: %d messages already held "
                            "while recovering", type(msg).__name__, peer, MAX_HELD_MESSAGES)
            return
        handler = self._dispatch.get(type(msg))
        if handler is None:
            self._refuse(peer, msg, f"{type(msg).__name__} is not an executor message", "type")
            return
        handler(peer, msg)

    def _refuse(self, peer: bytes, msg: Any, message: str, field: str, code: str = "INVALID") -> None:
        log.warning("Refused %s from executor peer %r: %s", type(msg).__name__, peer, message)
        assert self._server is not None
        self._server.send(
            peer,
            ProtocolError(
                message=message, field=field, in_reply_to=type(msg).__name__, code=code
            ),
        )

    def _on_register(self, peer: bytes, msg: RegisterExecutor) -> None:
        ent = self._containers.get(msg.container_id)
        if ent is None or ent.framework_id != msg.framework_id or (
            ent.executor_id != msg.executor_id
        ):
            self._refuse(
                peer, msg, f"unknown executor {msg.executor_id!r} in container "
                f"{msg.container_id!r} of framework {msg.framework_id!r}", "container_id",
            )
            assert self._server is not None
            self._server.send(
                peer, ShutdownExecutor(framework_id=msg.framework_id, executor_id=msg.executor_id)
            )
            return
        fw = self._agent._frameworks.get(ent.framework_id)
        if ent.state is not ExecutorState.REGISTERING or fw is None:
            if ent.peer == peer:
                return  # a duplicate registration
            self._refuse(peer, msg, f"executor {msg.executor_id!r} is {ent.state.value}", "state")
            return
        if ent.registration_timer is not None:
            ent.registration_timer.cancel()
            ent.registration_timer = None
        ent.peer = peer
        ent.state = ExecutorState.RUNNING
        self._peers[peer] = ent
        self._agent.metrics.executors_registered += 1
        assert self._server is not None
        self._server.send(
            peer,
            ExecutorRegistered(
                executor_info=ent.info,
                framework_info=fw.info,
                agent_id=self._agent.agent_id or "",
                agent_info=self._agent.agent_info(),
            ),
        )
        log.info(
            "Executor %s of framework %s registered (container %s)",
            ent.executor_id, ent.framework_id, ent.container_id,
        )
        self._flush_queued(ent)
        if ent.shutdown_requested:
            self.shutdown_executor(ent)

    def _on_reregister(self, peer: bytes, msg: ReregisterExecutor) -> None:
        ent = self._containers.get(msg.container_id)
        if ent is None or ent.framework_id != msg.framework_id or (
            ent.executor_id != msg.executor_id
        ) or ent.state is ExecutorState.TERMINATED:
            # Re-attaching executors of a previous agent run arrives with agent recovery.
            self._refuse(peer, msg, f"unknown container {msg.container_id!r}", "container_id")
            assert self._server is not None
            self._server.send(
                peer, ShutdownExecutor(framework_id=msg.framework_id, executor_id=msg.executor_id)
            )
            return
        fresh = ent.state is ExecutorState.REGISTERING
        if fresh:
            self._on_register(
                peer,
                RegisterExecutor(
                    framework_id=msg.framework_id,
                    executor_id=msg.executor_id,
                    container_id=msg.container_id,
                ),
            )
        # A live executor whose connection was renewed gets its identity refreshed.
        if ent.peer is not None and ent.peer != peer:
            self._peers.pop(ent.peer, None)
        ent.peer = peer
        self._peers[peer] = ent
        for update in msg.updates:
            self._on_status_update(peer, update)
        if fresh:
            return
        assert self._server is not None
        self._server.send(
            peer,
            ExecutorReregistered(
                agent_id=self._agent.agent_id or "", agent_info=self._agent.agent_info()
            ),
        )

    def _entity(self, peer: bytes, msg: Any) -> Entity | None:
        ent = self._peers.get(peer)
        if ent is None:
            self._refuse(peer, msg, "executor is not registered", "peer", code="NOT_REGISTERED")
            return None
        fid = getattr(msg, "framework_id", ent.framework_id)
        if fid != ent.framework_id:
            self._refuse(
                peer, msg, f"framework_id {fid!r} is not this executor's "
                f"({ent.framework_id!r})", "framework_id",
            )
            return None
        return ent

    def _on_status_update(self, peer: bytes, msg: StatusUpdate) -> None:
        ent = self._entity(peer, msg)
        if ent is None:
            return
        status = msg.status
        if isinstance(ent, CommandHost):
            ex = ent.executors.get(status.executor_id or status.task_id)
            if ex is None:
                fw = self._agent._frameworks.get(ent.framework_id)
                found = fw.task_index.get(status.task_id) if fw else None
                ex = found if found is not None and found.host is ent else None
        else:
            ex = ent
        if ex is None:
            self._agent.metrics.invalid_status_updates += 1
            self._refuse(
                peer, msg, f"task {status.task_id!r} does not belong to this executor",
                "status.task_id",
            )
            return
        self._agent._executor_status_update(ex, msg)
        assert self._server is not None
        self._server.send(
            peer,
            StatusUpdateAcknowledgement(
                agent_id=self._agent.agent_id or "",
                framework_id=msg.framework_id,
                task_id=status.task_id,
                uuid=status.uuid,
            ),
        )

    def _on_executor_message(self, peer: bytes, msg: ExecutorToFrameworkMessage) -> None:
        ent = self._entity(peer, msg)
        if ent is None:
            return
        self._agent._forward_executor_message(msg)

    def _on_heartbeat(self, peer: bytes, msg: Heartbeat) -> None:
        self._entity(peer, msg)  # unknown peers are told NOT_REGISTERED
