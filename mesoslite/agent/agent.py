"""The agent shell: master messages in, the core's effects out (thin; I/O only).

Owns: :class:`Agent`.  Every message from the master goes through one table
(:data:`~mesoslite.agent.core.MASTER_DISPATCH`) to the pure
:class:`~mesoslite.agent.core.AgentState`; the link's own messages (Ping,
ProtocolError, LeaderRedirect) are answered here.  :meth:`Agent.perform`
carries out the effects the core returns, each with the part that owns the
I/O: the master link, the executor manager, the Docker tasks, the
checkpoint, the status-update retry timer.  Also the checkpoint's
durability barrier (records of one loop turn: one journal write + fdatasync,
before that turn's messages leave), the start (fresh, or after a recovery)
and :meth:`Agent.stop`.  The composition root (:mod:`mesoslite.agent.main`)
builds the parts and the sockets and hands them over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from mesoslite.agent.checkpoint import Checkpointer
from mesoslite.agent.config import AgentConfig
from mesoslite.agent.core import MASTER_DISPATCH, AgentState
from mesoslite.agent.docker_tasks import DockerTasks
from mesoslite.agent.effects import (
    AdoptContainer,
    ArmRetry,
    CancelFetch,
    DiscardDockerContainer,
    Effect,
    EnforceShutdown,
    FetchUris,
    ForgetAgent,
    ForgetFramework,
    KillContainer,
    KillDockerTask,
    KillStrays,
    LaunchExecutor,
    Registered,
    ResumeDockerTask,
    RunDockerTask,
    StopAgent,
    ToExecutor,
    ToMaster,
    WriteAgentInfo,
    WriteExecutor,
    WriteFramework,
    WriteRun,
    WriteTask,
    WriteUpdates,
)
from mesoslite.agent.executors import ExecutorManager
from mesoslite.agent.master_link import MasterLink
from mesoslite.agent.recovery import Recovery
from mesoslite.clock import Clock
from mesoslite.protocol import (
    AuthenticationCompleted,
    AuthenticationFailed,
    AuthenticationStep,
    LeaderRedirect,
    Ping,
    Pong,
    ProtocolError,
    UnregisterAgent,
)
from mesoslite.protocol.authn import UNAUTHENTICATED
from mesoslite.transport import tcp_endpoint

log = logging.getLogger("mesoslite.agent")

#: The checkpoint effects (a failure counts in ``checkpoint_failures``).
WRITES = (WriteAgentInfo, WriteFramework, WriteExecutor, WriteRun, WriteTask, WriteUpdates,
          ForgetFramework, ForgetAgent)

_NEW, _RUNNING, _TERMINATING, _STOPPED = "NEW", "RUNNING", "TERMINATING", "STOPPED"


class Agent:
    """The shell around one agent's core: ``start()``, messages and effects, ``stop()``."""

    def __init__(
        self,
        config: AgentConfig,
        clock: Clock,
        core: AgentState,
        *,
        link: MasterLink,
        executors: ExecutorManager,
        docker: DockerTasks,
        checkpointer: Checkpointer,
        request_stop: Callable[[], None],
        fetch: Callable[[FetchUris], None] | None = None,
        cancel_fetch: Callable[[CancelFetch], None] | None = None,
    ) -> None:
        """Join the parts; ``request_stop`` stops the whole process (the master asked);
        ``fetch`` performs FetchUris and ``cancel_fetch`` CancelFetch (the fetcher; without
        one such tasks fail)."""
        self.config = config
        self.clock = clock
        self.core = core
        self.link = link
        self.executors = executors
        self.docker = docker
        self.checkpointer = checkpointer
        self._request_stop = request_stop
        self._state = _NEW
        self._unregister_on_stop = True
        self._recovery_job: asyncio.Task[None] | None = None
        self._retry_handle: asyncio.TimerHandle | None = None
        self._sync_scheduled = False
        #: Why the last checkpoint write failed ("" while writes work): /health names it.
        self.checkpoint_error = ""
        self._own_handlers: dict[type, Callable[[Any], None]] = {
            Ping: self._on_ping,
            ProtocolError: self._on_protocol_error,
            LeaderRedirect: self._on_leader_redirect,
            AuthenticationStep: link.on_authentication_step,
            AuthenticationCompleted: link.on_authentication_completed,
            AuthenticationFailed: link.on_authentication_failed,
        }
        write = self._write_checkpoint
        self._performers: dict[type, Callable[[Any], None]] = {
            ToMaster: lambda e: self._send_master(e.message),
            ToExecutor: lambda e: executors.send(e.peer, e.message),
            WriteAgentInfo: write, WriteFramework: write, WriteExecutor: write, WriteRun: write,
            WriteTask: write, WriteUpdates: write, ForgetFramework: write,
            ForgetAgent: lambda _e: checkpointer.forget_latest(),
            LaunchExecutor: executors.launch,
            KillContainer: lambda e: executors.kill(e.container_id),
            EnforceShutdown: lambda e: executors.kill_after(e.container_id, e.grace),
            KillStrays: lambda e: executors.kill_strays(e.container_ids),
            AdoptContainer: lambda e: executors.adopt(e.container_id),
            RunDockerTask: docker.run,
            KillDockerTask: docker.kill,
            ResumeDockerTask: lambda e: docker.resume(e.container_id),
            DiscardDockerContainer: lambda e: docker.discard(e.container_id),
            Registered: self._link_registered,
            ArmRetry: self._arm_retry,
            StopAgent: self._stop_requested,
            FetchUris: fetch or self._no_fetcher,
            CancelFetch: cancel_fetch or (lambda _e: None),
        }

    # ------------------------------------------------------------ messages and effects

    def on_master_message(self, msg: Any) -> None:
        """A message from the master: to the core (or the link's own handling)."""
        handler = MASTER_DISPATCH.get(type(msg))
        if handler is not None:
            self.perform(handler(self.core, msg))
            return
        own = self._own_handlers.get(type(msg))
        if own is None:
            log.warning("Agent %s ignoring unexpected %s from master", self.core.agent_id,
                        type(msg).__name__)
            return
        own(msg)

    def perform(self, effects: Iterable[Effect]) -> None:
        """Carry out the core's effects, in order.

        One effect that fails (a checkpoint write on a full disk, say) is logged
        and counted; the ones after it are still performed, so a status update
        is still sent and the retry timer still armed.
        """
        for effect in effects:
            try:
                self._performers[type(effect)](effect)
            except Exception:  # keep performing the rest
                if isinstance(effect, WRITES):
                    self.core.metrics.checkpoint_failures += 1
                log.exception("Agent %s: %s failed", self.core.agent_id, type(effect).__name__)

    def _no_fetcher(self, effect: FetchUris) -> None:
        self.perform(self.core.fetch_finished(effect.framework_id, effect.executor_id,
                                              effect.task_id, "this agent has no fetcher", {}))

    def _send_master(self, msg: Any) -> None:
        if self._state != _STOPPED:
            self.link.send(msg)

    def _write_checkpoint(self, effect: Any) -> None:
        if isinstance(effect, WriteRun) and effect.pid:
            self.checkpointer.write(effect, create_time=self.executors.create_time(
                effect.container_id), endpoint=self.executors.endpoint)
        else:
            self.checkpointer.write(effect)

    def _link_registered(self, effect: Registered) -> None:
        self.link.registered_with(effect.ping_interval)

    def _arm_retry(self, effect: ArmRetry) -> None:
        if self._retry_handle is not None:
            self._retry_handle.cancel()
        delay = max(effect.at - self.clock.monotonic(), 0.0)
        self._retry_handle = asyncio.get_running_loop().call_later(delay, self._retry_fired)

    def _retry_fired(self) -> None:
        self._retry_handle = None
        self.perform(self.core.retry_due())

    def _stop_requested(self, _effect: StopAgent) -> None:
        self._unregister_on_stop = False
        self._request_stop()

    def _on_ping(self, msg: Ping) -> None:
        self.link.note_ping()
        self._send_master(Pong(agent_id=self.core.agent_id or ""))

    def _on_protocol_error(self, msg: ProtocolError) -> None:
        if msg.code == "NOT_REGISTERED":
            log.warning("Master does not know agent %s (%s); re-registering",
                        self.core.agent_id, msg.message)
            self.link.reregistrations += 1
            self.link.begin_registration("master said NOT_REGISTERED")
            return
        if msg.code == UNAUTHENTICATED:
            self.link.authentication_refused()
            log.error("Master refused the registration of agent %s: %s", self.core.agent_id,
                      msg.message)
            return
        log.warning("Master refused %s from agent %s: %s (field %s)",
                    msg.in_reply_to or "a message", self.core.agent_id, msg.message, msg.field)

    def _on_leader_redirect(self, msg: LeaderRedirect) -> None:
        # A standby names the leader: go there.  LeaderRedirect(None): no leader yet; keep
        # retrying here with backoff and let the detector (zk:// master) move us when one is known.
        if self.link.follows_detector:
            # The detector is the authority: a standby that has not yet seen the
            # election may still name a leader that is already dead.
            log.info("Master %s is not leading yet; retrying there", self.link.endpoint)
            return
        if msg.leader is not None and msg.leader.zmq_endpoint:
            if tcp_endpoint(msg.leader.zmq_endpoint) != self.link.endpoint:
                self.set_master(msg.leader.zmq_endpoint)
            return
        log.info("Master %s knows no leader yet; waiting", self.link.endpoint)

    def set_master(self, address: str) -> None:
        """Follow a new leading master (``host:port`` or ``tcp://``): reconnect and re-register."""
        endpoint = tcp_endpoint(address)
        log.info("Agent %s: master is now %s", self.core.agent_id, endpoint)
        self.link.move_to(endpoint, "new master")

    # ------------------------------------------------------------ checkpoint durability

    def schedule_checkpoint_sync(self) -> None:
        """Sync the checkpoint journal at the end of this loop turn (records were buffered)."""
        if self._sync_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on a loop (tests): the next flush or load syncs
            return
        self._sync_scheduled = True
        loop.call_soon(self.sync_checkpoint)

    def sync_checkpoint(self) -> bool:
        """Make buffered checkpoint records durable: one write and fdatasync per batch.

        Runs before any message leaves the agent (the sockets' flush barrier)
        and at the end of every loop turn that buffered records.  False when the
        write failed: the sockets then hold every message (nothing leaves ahead of
        a record it depends on) and try again shortly.
        """
        self._sync_scheduled = False
        try:
            self.checkpointer.sync()
        except OSError as exc:
            self.core.metrics.checkpoint_failures += 1
            self.checkpoint_error = f"checkpoint write failed: {exc}"
            log.error("Agent %s: checkpoint write failed (%s); messages are held until a "
                      "retry succeeds", self.core.agent_id, exc)
            return False
        if self.checkpoint_error:
            log.info("Agent %s: checkpoint writes work again", self.core.agent_id)
            self.checkpoint_error = ""
        return True

    # ------------------------------------------------------------ lifecycle

    async def start(self, recovery: Recovery | None, follow: str | None) -> None:
        """Run: register (``follow``: a ``zk://`` URL to find the leader), or recover first.

        With ``recovery`` the records are rebuilt and surviving executors
        adopted now; re-registration under the old id waits until they had
        their chance to come back.
        """
        if self._state != _NEW:
            raise RuntimeError(f"agent state: expected NEW to start, got {self._state}")
        self._state = _RUNNING
        if recovery is None:
            self.link.start(follow=follow)
            return
        try:
            await recovery.adopt()
        finally:
            self.executors.release()
        self._recovery_job = asyncio.get_running_loop().create_task(
            self._finish_recovery(recovery, follow))

    async def _finish_recovery(self, recovery: Recovery, follow: str | None) -> None:
        """Wait for surviving executors, then re-register with the master under the old id."""
        try:
            await recovery.finish()
        finally:
            if self._state == _RUNNING:
                self.link.start(follow=follow)

    async def stop(self, kill_tasks: bool = True) -> None:
        """Stop; with ``kill_tasks`` kill every task and executor and wait for them.

        Without ``kill_tasks`` executors keep running (they outlive the agent and
        exit by themselves unless their framework checkpoints).
        """
        if self._state in (_TERMINATING, _STOPPED):
            return
        was_running = self._state == _RUNNING
        self._state = _TERMINATING
        self.core.stop_accepting()
        log.info("Agent %s stopping (kill_tasks=%s)", self.core.agent_id, kill_tasks)
        self.link.stop_registering()
        if self._recovery_job is not None and not self._recovery_job.done():
            self._recovery_job.cancel()
        if was_running and kill_tasks:
            strays = self.core.stray_task_containers()
            self.perform(self.core.shutdown_everything())
            await asyncio.gather(
                self.executors.wait_all(strays),
                self.docker.wait_all(self.config.executor_shutdown_grace_period),
            )
            await self._drain_updates(0.5)
            if self._unregister_on_stop and self.core.registered and self.core.agent_id:
                self._send_master(UnregisterAgent(agent_id=self.core.agent_id))
            # Everything was shut down: the next start is a new agent, not a recovery.
            self.checkpointer.forget_latest()
        self.core.stop_retrying()
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None
        self.executors.close()
        self.docker.close()
        await self.link.close()
        self.sync_checkpoint()
        self.checkpointer.close()
        self._state = _STOPPED
        log.info("Agent %s stopped", self.core.agent_id)

    async def _drain_updates(self, timeout: float) -> None:
        """Wait (bounded) for the master to acknowledge what is in flight."""
        if not self.core.registered:
            return
        deadline = time.monotonic() + timeout
        # (Polled: the pure core owns the updates and has no event to signal; bounded.)
        while len(self.core.updates) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
