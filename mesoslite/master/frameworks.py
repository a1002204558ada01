"""Framework-facing handlers of the master (PURE).

Owns: subscription (new, failover, re-admission after a master restart,
refusal of removed ids), heartbeats both ways and disconnect detection,
failover-timeout teardown, Deactivate and Teardown, and the per-task calls:
Kill, Acknowledge (routed to the agent; a terminal ack completes the task),
Reconcile, Shutdown and framework-to-executor messages.  See protocol.md §2,
§4 and §5.
"""

from __future__ import annotations

import logging

import attrs

from mesoslite.allocator import validate_role
from mesoslite.master import authn
from mesoslite.master.agents import AgentHandlers
from mesoslite.master.journal import FrameworkRemoved, FrameworkStored, record
from mesoslite.master.records import (
    FrameworkRecord,
    Send,
    TaskEntry,
    to_agent,
    to_framework,
    to_peer,
)
from mesoslite.protocol import (
    Acknowledge,
    Deactivate,
    Error,
    FrameworkInfo,
    FrameworkToExecutorMessage,
    Heartbeat,
    Kill,
    KillTask,
    Reason,
    Reconcile,
    Rescind,
    Shutdown,
    ShutdownExecutor,
    ShutdownFramework,
    StatusUpdateAcknowledgement,
    Subscribe,
    Subscribed,
    TaskState,
    TaskStatus,
    Teardown,
    Update,
    UpdateFramework,
)

log = logging.getLogger("mesoslite.master")


def check_framework_info(info: FrameworkInfo) -> tuple[str, str]:
    """The first problem with a FrameworkInfo as (field, message), or ("", "")."""
    if not info.roles:
        return "framework_info.roles", "expected at least one role"
    if len(set(info.roles)) != len(info.roles):
        return "framework_info.roles", f"roles {list(info.roles)!r} are repeated"
    for role in info.roles:
        try:
            validate_role(role)
        except ValueError as exc:
            return "framework_info.roles", str(exc)
    return "", ""


class FrameworkHandlers(AgentHandlers):
    """Handlers for messages from schedulers, and framework liveness."""

    # ----------------------------------------------------------- subscription

    def subscribe(self, peer: bytes, msg: Subscribe) -> list[Send]:
        """Admit a framework: new, failing over, or bringing its id from an earlier master."""
        info = msg.framework_info
        field, problem = check_framework_info(info)
        if problem:
            self.counters["refused"] += 1
            log.warning("refused a subscription: %s: %s", field, problem)
            return [to_peer(peer, Error(f"{field}: {problem}"))]
        refusal = authn.check_subscribe(self, peer, info)
        if refusal:
            return refusal
        problem = self.unauthorized_roles(info)  # the register_frameworks ACLs
        if problem:
            self.counters["refused"] += 1
            self.counters["unauthorized"] += 1
            log.warning("refused a subscription: %s", problem)
            return [to_peer(peer, Error(problem))]
        if info.id and info.id in self.removed_framework_ids:
            self.counters["refused"] += 1
            log.info("framework %s: refused to re-subscribe, it was removed", info.id)
            return [to_peer(peer, Error(f"framework {info.id} has been removed"))]
        sends: list[Send] = []
        previous = self.framework_peers.get(peer)
        if not info.id and previous is not None:
            # A retry whose answer was lost (or queued while connecting): answer again.
            log.info("framework %s: repeated subscription from its connection", previous)
            return [to_framework(previous, self._subscribed(previous))]
        if previous is not None and previous != info.id and previous in self.frameworks:
            # One connection, one framework: the earlier one is disconnected.
            sends += self.disconnect_framework(self.frameworks[previous], "its connection "
                                               "subscribed as another framework")
        if not info.id:
            info = attrs.evolve(info, id=self._new_framework_id())
        framework = self.frameworks.get(info.id)
        if framework is None:
            framework = self._new_framework_record(info, peer)
            self.frameworks[info.id] = framework
            self.allocator.add_framework(info.id, info.roles, active=True)
            self.emit("FRAMEWORK_ADDED", framework)
            log.info("framework %s subscribed: name %r user %r roles %s",
                     info.id, info.name, info.user, ",".join(info.roles))
        else:
            sends += self._failover(framework, peer, info)
        self.framework_peers[peer] = info.id
        framework.last_seen = self.clock.monotonic()
        record(self.journal, FrameworkStored(framework.info, framework.registered_time))
        self.request_allocation(None)
        sends.append(to_framework(info.id, self._subscribed(info.id)))
        return sends

    def unauthorized_roles(self, info: FrameworkInfo) -> str:
        """Why ``register_frameworks`` refuses ``info``'s principal a role, or ""."""
        if not self.acls.restricts("register_frameworks"):
            return ""
        principal = info.principal or None
        for role in info.roles:
            if not self.acls.authorized("register_frameworks", principal, role):
                who = (f"principal {principal!r}" if principal
                       else "a framework without a principal")
                return (f"framework_info.roles: {who} is not authorized to register in role "
                        f"{role!r} (register_frameworks ACL)")
        return ""

    def _subscribed(self, framework_id: str) -> Subscribed:
        return Subscribed(
            framework_id=framework_id,
            heartbeat_interval_seconds=self.config.framework_heartbeat_interval,
            master_info=self.master_info,
        )

    def _failover(self, framework: FrameworkRecord, peer: bytes, info: FrameworkInfo) -> list[Send]:
        sends: list[Send] = []
        old_peer = framework.peer
        for offer_id in sorted(framework.offers):
            record = self.offers[offer_id]
            self._remove_offer(record)
            if old_peer is not None and framework.connected:
                sends.append(to_peer(old_peer, Rescind(offer_id)))
        if old_peer is not None and old_peer != peer:
            if framework.connected:
                sends.append(to_peer(old_peer, Error("framework failed over")))
            self._unmap_peer(old_peer)
        if tuple(info.roles) != tuple(framework.info.roles):
            self.allocator.update_framework_roles(framework.id, info.roles)
        was_recovered = framework.recovered
        framework.info = info
        framework.peer = peer
        framework.connected = True
        framework.active = True
        framework.recovered = False
        framework.disconnected_at = None
        framework.reregistered_time = self.clock.time()
        framework.touch()
        self.allocator.activate_framework(framework.id)
        self.emit("FRAMEWORK_UPDATED", framework)
        agent_ids = sorted({task.agent_id for task in framework.tasks.values()})
        update = UpdateFramework(info)
        sends += [to_agent(agent_id, update) for agent_id in agent_ids if agent_id in self.agents]
        log.info("framework %s %s: name %r roles %s", framework.id,
                 "re-subscribed after a master change" if was_recovered else "failed over",
                 info.name, ",".join(info.roles))
        return sends

    # ---------------------------------------------------------------- liveness

    def heartbeat(self, peer: bytes, msg: Heartbeat) -> list[Send]:
        """A scheduler's heartbeat: it is alive (checking it is who it says)."""
        framework, refusal = self._framework_of(peer, msg, msg.sender_id, "sender_id")
        return refusal if framework is None else []

    def heartbeat_frameworks(self) -> list[Send]:
        """Send a Heartbeat to every connected scheduler."""
        beat = Heartbeat()
        return [to_framework(fid, beat) for fid, fw in self.frameworks.items() if fw.connected]

    def check_frameworks(self) -> list[Send]:
        """Disconnect silent schedulers; tear down those past their failover timeout."""
        sends: list[Send] = []
        now = self.clock.monotonic()
        silence = self.config.framework_heartbeat_interval * (
            self.config.max_framework_missed_heartbeats
        )
        for framework in list(self.frameworks.values()):
            if framework.connected and now - framework.last_seen >= silence:
                sends += self.disconnect_framework(
                    framework, f"no message for {now - framework.last_seen:.1f} s"
                )
            elif self._failover_expired(framework, now):
                sends += self.remove_framework(framework.id, "failover timeout expired")
        return sends

    def _failover_expired(self, framework: FrameworkRecord, now: float) -> bool:
        if framework.connected or framework.recovered or framework.disconnected_at is None:
            return False
        return now - framework.disconnected_at >= framework.info.failover_timeout

    def disconnect_framework(self, framework: FrameworkRecord, why: str) -> list[Send]:
        """The scheduler is gone (or left on purpose): no offers; failover timeout starts."""
        if not framework.connected:
            return []
        for offer_id in sorted(framework.offers):
            self._remove_offer(self.offers[offer_id])
        self._unmap_peer(framework.peer)
        framework.peer = None
        framework.connected = False
        framework.active = False
        framework.disconnected_at = self.clock.monotonic()
        framework.touch()
        self.allocator.deactivate_framework(framework.id)
        self.emit("FRAMEWORK_UPDATED", framework)
        log.info("framework %s disconnected (%s); failover timeout %.1f s",
                 framework.id, why, framework.info.failover_timeout)
        if self._failover_expired(framework, framework.disconnected_at):
            return self.remove_framework(framework.id, "failover timeout expired")
        return []

    def deactivate(self, peer: bytes, msg: Deactivate) -> list[Send]:
        """The scheduler disconnects on purpose (driver stop with failover)."""
        framework, refusal = self._framework_of(peer, msg, msg.framework_id)
        if framework is None:
            return refusal
        return self.disconnect_framework(framework, "deactivated by its scheduler")

    def teardown(self, peer: bytes, msg: Teardown) -> list[Send]:
        """The framework ends: kill its tasks and forget it."""
        framework, refusal = self._framework_of(peer, msg, msg.framework_id)
        if framework is None:
            return refusal
        return self.remove_framework(framework.id, "torn down by its scheduler", notify=False)

    def remove_framework(self, framework_id: str, why: str, notify: bool = True) -> list[Send]:
        """Kill every task of a framework, free its resources, move it to completed."""
        framework = self.frameworks.get(framework_id)
        if framework is None:
            return []
        sends: list[Send] = []
        if notify and framework.connected:
            sends.append(to_framework(framework_id, Error(f"framework {framework_id} has been "
                                                          f"removed ({why})")))
        for offer_id in sorted(framework.offers):
            self._remove_offer(self.offers[offer_id], recover=False)
        # Every agent is told (as Mesos does): executors without tasks may linger anywhere.
        shutdown = ShutdownFramework(framework_id)
        for agent in self.agents.values():
            for key in [key for key in agent.executors if key[0] == framework_id]:
                del agent.executors[key]
            sends.append(to_agent(agent.id, shutdown))
        reason = Reason.REASON_FRAMEWORK_REMOVED
        for task in list(framework.tasks.values()) + list(framework.unreachable_tasks.values()):
            if not task.state.is_terminal:
                status = self.master_status(task.task_id, TaskState.TASK_KILLED, reason,
                                            "framework removed", task.agent_id, task.executor_id)
                self._set_state(task, status)
            holder = self.agents.get(task.agent_id)
            if holder is not None and holder.tasks.pop((framework_id, task.task_id),
                                                        None) is not None:
                holder.recompute_used()
            framework.completed_tasks.append(task)
        framework.tasks.clear()
        framework.unreachable_tasks.clear()
        self.allocator.remove_framework(framework_id)
        self._unmap_peer(framework.peer)
        framework.peer = None
        framework.connected = False
        framework.active = False
        framework.unregistered_time = self.clock.time()
        framework.touch()
        del self.frameworks[framework_id]
        self.completed_frameworks.append(framework)
        self.emit("FRAMEWORK_REMOVED", framework)
        self.removed_framework_ids[framework_id] = None
        record(self.journal, FrameworkRemoved(framework.info, framework.registered_time,
                                              framework.unregistered_time or self.clock.time()))
        self.request_allocation(None)
        log.info("framework %s removed (%s)", framework_id, why)
        return sends

    # --------------------------------------------------------------- task calls

    def kill(self, peer: bytes, msg: Kill) -> list[Send]:
        """Kill a task: forward to its agent; an unknown task is answered TASK_LOST."""
        framework, refusal = self._framework_of(peer, msg, msg.framework_id)
        if framework is None:
            return refusal
        task = framework.tasks.get(msg.task_id)
        if task is None:
            if msg.task_id in framework.unreachable_tasks:
                log.info("framework %s task %s: kill deferred, its agent is unreachable",
                         framework.id, msg.task_id)
                return []
            status = self.master_status(msg.task_id, TaskState.TASK_LOST,
                                        Reason.REASON_RECONCILIATION,
                                        f"task {msg.task_id} is unknown to the master",
                                        msg.agent_id)
            log.info("framework %s task %s: kill of an unknown task: TASK_LOST",
                     framework.id, msg.task_id)
            return [to_framework(framework.id, Update(status))]
        if task.agent_id not in self.agents:
            self.counters["dropped"] += 1
            return []
        log.info("framework %s task %s on agent %s: kill requested",
                 framework.id, task.task_id, task.agent_id)
        return [to_agent(task.agent_id, KillTask(framework.id, task.task_id, msg.kill_policy))]

    def acknowledge(self, peer: bytes, msg: Acknowledge) -> list[Send]:
        """Route an acknowledgement to the agent; a terminal one completes the task."""
        framework, refusal = self._framework_of(peer, msg, msg.framework_id)
        if framework is None:
            return refusal
        if not msg.uuid:
            return self.refuse(peer, msg, "expected the uuid of the update", "uuid")
        task = framework.tasks.get(msg.task_id)
        if task is not None and task.terminal_uuid and task.terminal_uuid == msg.uuid:
            self._complete_task(task)
        if msg.agent_id not in self.agents:
            self.counters["dropped"] += 1
            log.info("framework %s task %s: acknowledgement for unknown agent %s dropped",
                     framework.id, msg.task_id, msg.agent_id)
            return []
        ack = StatusUpdateAcknowledgement(msg.agent_id, framework.id, msg.task_id, msg.uuid)
        return [to_agent(msg.agent_id, ack)]

    def reconcile(self, peer: bytes, msg: Reconcile) -> list[Send]:
        """Answer the latest known state of the listed tasks (all tasks when none listed)."""
        framework, refusal = self._framework_of(peer, msg, msg.framework_id)
        if framework is None:
            return refusal
        reason = Reason.REASON_RECONCILIATION
        sends: list[Send] = []
        if not msg.tasks:
            tasks = list(framework.tasks.values()) + list(framework.unreachable_tasks.values())
            for known in tasks:
                sends.append(to_framework(framework.id, Update(self._reconciled(known))))
            log.info("framework %s: implicit reconciliation of %d tasks", framework.id, len(tasks))
            return sends
        for wanted in msg.tasks:
            task = framework.find_task(wanted.task_id)
            if task is None:
                if self._awaiting_agent(wanted.agent_id):
                    continue  # as Mesos: no answer until the agent is back or deemed unreachable
                lost = TaskState.TASK_LOST
                if framework.partition_aware and wanted.agent_id in self.unreachable_agents:
                    lost = TaskState.TASK_UNREACHABLE
                status = self.master_status(wanted.task_id, lost, reason,
                                            f"task {wanted.task_id} is unknown to the master",
                                            wanted.agent_id)
            else:
                status = self._reconciled(task)
            sends.append(to_framework(framework.id, Update(status)))
        log.info("framework %s: explicit reconciliation of %d tasks", framework.id, len(msg.tasks))
        return sends

    def _awaiting_agent(self, agent_id: str) -> bool:
        """True while a task on ``agent_id`` may still be reported by a recovering agent."""
        if agent_id:
            return agent_id in self.recovered_agents
        return bool(self.recovered_agents)

    def _reconciled(self, task: TaskEntry) -> TaskStatus:
        healthy = task.statuses[-1].healthy if task.statuses else None
        return self.master_status(task.task_id, task.state, Reason.REASON_RECONCILIATION,
                                  "reconciliation: the latest state known to the master",
                                  task.agent_id, task.executor_id, healthy)

    def shutdown(self, peer: bytes, msg: Shutdown) -> list[Send]:
        """Ask an agent to shut one of the framework's executors down."""
        framework, refusal = self._framework_of(peer, msg, msg.framework_id)
        if framework is None:
            return refusal
        if msg.agent_id not in self.agents:
            self.counters["dropped"] += 1
            return []
        log.info("framework %s executor %s on agent %s: shutdown requested",
                 framework.id, msg.executor_id, msg.agent_id)
        return [to_agent(msg.agent_id, ShutdownExecutor(framework.id, msg.executor_id))]

    def framework_message(self, peer: bytes, msg: FrameworkToExecutorMessage) -> list[Send]:
        """Relay a scheduler's message to an executor through its agent (best effort)."""
        framework, refusal = self._framework_of(peer, msg, msg.framework_id)
        if framework is None:
            return refusal
        if msg.agent_id not in self.agents:
            self.counters["dropped"] += 1
            return []
        return [to_agent(msg.agent_id, msg)]
