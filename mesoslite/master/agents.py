"""Agent-facing handlers of the master (PURE).

Owns: registration and re-registration (adopting reported tasks and
executors), pings and removal of unreachable agents, unregistration, and the
messages agents send on behalf of tasks and executors: status updates
(recorded, then forwarded to the framework), exited executors and executor
messages.  See protocol.md §1 and §4.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterable

import attrs

from mesoslite.master import authn
from mesoslite.master.core import StateCore
from mesoslite.master.journal import AgentAdmitted, AgentRemoved, record
from mesoslite.master.records import (
    AgentRecord,
    FrameworkRecord,
    Send,
    TaskEntry,
    task_from_report,
    to_agent,
    to_framework,
    to_peer,
)
from mesoslite.protocol import (
    AgentRegistered,
    AgentReregistered,
    ExecutorToFrameworkMessage,
    ExitedExecutor,
    Failure,
    FrameworkInfo,
    KillTask,
    Ping,
    Pong,
    Reason,
    RegisterAgent,
    ReregisterAgent,
    ShutdownAgent,
    ShutdownFramework,
    StatusUpdate,
    StatusUpdateAcknowledgement,
    Task,
    TaskState,
    TaskStatus,
    UnregisterAgent,
)
from mesoslite.resources import Resources

log = logging.getLogger("mesoslite.master")


class AgentHandlers(StateCore):
    """Handlers for messages from agents, and agent liveness."""

    def _init_pings(self) -> None:
        # Each agent is pinged every agent_ping_timeout from its own (re)registration, so
        # pings spread over the interval instead of one burst to every agent at once.
        # Due times only grow (now + timeout), so a FIFO queue is in due order; an entry
        # whose time is not the agent's current one in ``_ping_due`` is stale.
        self._ping_queue: collections.deque[tuple[float, str]] = collections.deque()
        self._ping_due: dict[str, float] = {}

    def _schedule_ping(self, agent_id: str) -> None:
        due = self.clock.monotonic() + self.config.agent_ping_timeout
        self._ping_due[agent_id] = due
        self._ping_queue.append((due, agent_id))

    # ----------------------------------------------------------- registration

    def register_agent(self, peer: bytes, msg: RegisterAgent) -> list[Send]:
        """A new agent joins: assign an id, add its resources, answer AgentRegistered."""
        known = self.agent_peers.get(peer)
        if known is not None:  # a retry whose answer was lost: answer again
            return [to_peer(peer, self._registered(AgentRegistered, known))]
        info = msg.agent_info
        if not info.hostname:
            return self.refuse(peer, msg, "expected a host name", "agent_info.hostname")
        refusal = authn.check_agent(self, peer, msg, "")
        if refusal:
            return refusal
        agent_id = self._new_agent_id()
        authn.bind_agent(self, peer, agent_id, msg.agent_token)
        info = attrs.evolve(info, id=agent_id)
        now = self.clock.time()
        agent = AgentRecord(info=info, peer=peer, registered_time=now,
                            version_string=msg.version, boot_id=msg.boot_id)
        self.agents[agent_id] = agent
        self.agent_peers[peer] = agent_id
        self._schedule_ping(agent_id)
        self.allocator.add_agent(agent_id, info.resources)
        record(self.journal, AgentAdmitted(info, now, self.agent_identities.get(agent_id, "")))
        self.emit("AGENT_ADDED", agent)
        self.request_allocation([agent_id])
        log.info("agent %s registered from %s:%d with %s",
                 agent_id, info.hostname, info.port, info.resources)
        return [to_agent(agent_id, self._registered(AgentRegistered, agent_id))]

    def _registered(self, cls: type[AgentRegistered] | type[AgentReregistered], agent_id: str
                    ) -> AgentRegistered | AgentReregistered:
        return cls(agent_id=agent_id, master_info=self.master_info,
                   ping_interval_seconds=self.config.agent_ping_timeout)

    def reregister_agent(self, peer: bytes, msg: ReregisterAgent) -> list[Send]:
        """A known (or, after a master restart, unknown) agent rejoins with its tasks."""
        info = msg.agent_info
        agent_id = info.id
        if not agent_id:
            return self.refuse(peer, msg, "expected the agent's id", "agent_info.id")
        if not info.hostname:
            return self.refuse(peer, msg, "expected a host name", "agent_info.hostname")
        if agent_id in self.gone_agents:
            log.info("agent %s re-registered after it unregistered: told to shut down", agent_id)
            return [to_peer(peer, ShutdownAgent(f"agent {agent_id} was removed"))]
        refusal = authn.check_agent(self, peer, msg, agent_id)
        if refusal:
            return refusal
        other = self.agent_peers.get(peer)
        if other is not None and other != agent_id:
            return self.refuse(
                peer, msg, f"this connection is registered as agent {other!r}", "agent_info.id"
            )
        authn.bind_agent(self, peer, agent_id, msg.agent_token)
        sends: list[Send] = []
        agent = self.agents.get(agent_id)
        if agent is not None and agent.is_repeat(peer, msg):
            # A retry sent before the answer to the same message arrived: nothing to re-sync.
            self.counters["agent_reregistrations_repeated"] += 1
            return [to_agent(agent_id, self._registered(AgentReregistered, agent_id))]
        now = self.clock.time()
        if agent is None:
            self.unreachable_agents.pop(agent_id, None)
            agent = AgentRecord(info=info, peer=peer, registered_time=now,
                                version_string=msg.version, boot_id=msg.boot_id)
            agent.reregistered_time = now
            self.agents[agent_id] = agent
            self._schedule_ping(agent_id)
            self.emit("AGENT_ADDED", agent)
        else:
            # Re-sync: offers are withdrawn and the allocator learns the agent anew.
            sends += self._rescind_offers(list(agent.offers))
            self.allocator.remove_agent(agent_id)
            if agent.peer != peer:
                self._unmap_peer(agent.peer)
            agent.info = info
            agent.peer = peer
            agent.version_string = msg.version
            agent.boot_id = msg.boot_id
            agent.reregistered_time = now
            agent.missed_pongs = 0
            agent.pong_pending = False
        self.agent_peers[peer] = agent_id
        self.recovered_agents.pop(agent_id, None)
        record(self.journal, AgentAdmitted(info, agent.registered_time,
                                           self.agent_identities.get(agent_id, "")))
        sends += self._reconcile_agent_tasks(agent, msg.tasks, msg.frameworks)
        for snapshot in msg.executors:
            framework = self.frameworks.get(snapshot.framework_id)
            if snapshot.info is not None and snapshot.info.resources and framework is not None:
                key = (snapshot.framework_id, snapshot.executor_id)
                agent.executors[key] = (snapshot.info, framework.info.roles[0])
        agent.recompute_used()
        self.allocator.add_agent(agent_id, info.resources, self._used_by(agent))
        self.request_allocation([agent_id])
        log.info("agent %s re-registered: %s with %d tasks", agent_id, info.hostname,
                 len(agent.tasks))
        agent.touch()  # new info, adopted tasks: cached renderings are stale
        agent.resynced = (msg, agent.task_view())
        sends.append(to_agent(agent_id, self._registered(AgentReregistered, agent_id)))
        return sends

    def _used_by(self, agent: AgentRecord) -> dict[tuple[str, str], Resources]:
        used: dict[tuple[str, str], Resources] = {}
        for task in agent.tasks.values():
            key = (task.framework_id, task.role)
            used[key] = used.get(key, Resources()) + task.resources
        for (framework_id, _eid), (executor, role) in agent.executors.items():
            key = (framework_id, role)
            used[key] = used.get(key, Resources()) + executor.resources
        return used

    def _reconcile_agent_tasks(
        self, agent: AgentRecord, reported: Iterable[Task], infos: Iterable[FrameworkInfo]
    ) -> list[Send]:
        sends: list[Send] = []
        by_key = {(task.framework_id, task.task_id): task for task in reported}
        for key, task in list(agent.tasks.items()):
            if key in by_key or task.state.is_terminal:
                continue
            framework = self.frameworks.get(task.framework_id)
            state = TaskState.TASK_LOST
            if framework is not None and framework.partition_aware:
                state = TaskState.TASK_DROPPED
            sends += self._master_transition(
                task, state, Reason.REASON_TASK_UNKNOWN, "task is unknown to the agent"
            )
            self._complete_task(task)
        framework_infos = {info.id: info for info in infos if info.id}
        shut_down: set[str] = set()
        for key, reported_task in by_key.items():
            if key in agent.tasks:
                continue
            sends += self._adopt_task(agent, reported_task, framework_infos, shut_down)
        return sends

    def _adopt_task(
        self,
        agent: AgentRecord,
        task: Task,
        infos: dict[str, FrameworkInfo],
        shut_down: set[str],
    ) -> list[Send]:
        framework_id = task.framework_id
        if framework_id in self.removed_framework_ids:
            if framework_id in shut_down:
                return []
            shut_down.add(framework_id)
            return [to_agent(agent.id, ShutdownFramework(framework_id))]
        framework = self.frameworks.get(framework_id)
        if framework is None:
            framework = self._recovered_framework(framework_id, infos.get(framework_id))
        entry = framework.unreachable_tasks.pop(task.task_id, None)
        if entry is not None:  # its agent is back from a partition
            framework.tasks[task.task_id] = entry
            entry.agent_id = agent.id
            if task.state != entry.state and not task.state.is_terminal:
                status = self.master_status(
                    task.task_id, task.state, Reason.REASON_AGENT_REREGISTERED,
                    "agent re-registered", agent.id, task.executor_id,
                )
                self._set_state(entry, status)
        else:
            earlier = framework.find_task(task.task_id)
            if earlier is not None and earlier.state.is_terminal and not task.state.is_terminal:
                # The framework was told this task is gone: it must not come back.
                log.info("framework %s task %s on agent %s: killed, it was reported %s",
                         framework_id, task.task_id, agent.id, earlier.state.value)
                return [to_agent(agent.id, KillTask(framework_id, task.task_id))]
            if earlier is not None and task.task_id in framework.tasks:
                log.warning("framework %s task %s: reported by agent %s but known on agent %s",
                            framework_id, task.task_id, agent.id, earlier.agent_id)
                return []
            entry = task_from_report(attrs.evolve(task, agent_id=agent.id), framework.info.roles[0])
            self._count_state(None, entry.state)
            framework.tasks[task.task_id] = entry
            self.emit("TASK_ADDED", entry)
        agent.tasks[(framework_id, task.task_id)] = entry
        entry.touch()
        framework.touch()
        log.info("framework %s task %s on agent %s: adopted in %s",
                 framework_id, task.task_id, agent.id, entry.state.value)
        return []

    def _recovered_framework(self, framework_id: str, info: FrameworkInfo | None
                             ) -> FrameworkRecord:
        """A framework known only from an agent's report, waiting for its scheduler."""
        if info is None:
            info = FrameworkInfo(user="", name="", id=framework_id)
        elif info.id != framework_id:
            info = attrs.evolve(info, id=framework_id)
        framework = self._new_framework_record(info, None)
        framework.connected = False
        framework.active = False
        framework.recovered = True
        self.frameworks[framework_id] = framework
        self.allocator.add_framework(framework_id, info.roles, active=False)
        self.emit("FRAMEWORK_ADDED", framework)
        log.info("framework %s recovered from an agent's report", framework_id)
        return framework

    def _new_framework_record(self, info: FrameworkInfo, peer: bytes | None) -> FrameworkRecord:
        framework = FrameworkRecord(info=info, peer=peer, registered_time=self.clock.time(),
                                    last_seen=self.clock.monotonic())
        framework.completed_tasks = type(framework.completed_tasks)(
            maxlen=self.config.max_completed_tasks_per_framework
        )
        return framework

    # --------------------------------------------------------------- liveness

    def pong(self, peer: bytes, msg: Pong) -> list[Send]:
        """An agent answered a ping: it is connected."""
        agent, refusal = self._agent_of(peer, msg, msg.agent_id)
        if agent is None:
            return refusal
        agent.pong_pending = False
        if agent.missed_pongs:
            agent.missed_pongs = 0
            agent.touch()
            self.allocator.activate_agent(agent.id)
            self.request_allocation([agent.id])
            log.info("agent %s reconnected", agent.id)
        return []

    def ping_agents(self) -> list[Send]:
        """Ping the agents whose ping is due: count a missed pong, remove the silent, ping
        the rest (each agent every ``agent_ping_timeout`` from its registration)."""
        if len(self._ping_due) < len(self.agents):  # an agent added some other way
            for agent_id in self.agents:
                if agent_id not in self._ping_due:
                    self._schedule_ping(agent_id)
        now = self.clock.monotonic()
        queue, due_at = self._ping_queue, self._ping_due
        sends: list[Send] = []
        ping = Ping()
        while queue and queue[0][0] <= now:
            due, agent_id = queue.popleft()
            if due_at.get(agent_id) != due:
                continue  # stale: rescheduled since
            agent = self.agents.get(agent_id)
            if agent is None:
                del due_at[agent_id]
                continue
            if agent.pong_pending:
                agent.missed_pongs += 1
                agent.touch()
                if agent.missed_pongs == 1:
                    self.allocator.deactivate_agent(agent.id)
                    log.info("agent %s disconnected: missed a pong", agent.id)
                if agent.missed_pongs >= self.config.max_agent_ping_timeouts:
                    del due_at[agent_id]
                    sends += self.remove_agent(
                        agent, unreachable=True,
                        why=f"no pong for {agent.missed_pongs} pings",
                    )
                    continue
            agent.pong_pending = True
            sends.append(to_agent(agent.id, ping))
            self._schedule_ping(agent_id)
        return sends

    def unregister_agent(self, peer: bytes, msg: UnregisterAgent) -> list[Send]:
        """An agent leaves for good: its tasks are lost (gone for PARTITION_AWARE frameworks)."""
        agent, refusal = self._agent_of(peer, msg, msg.agent_id)
        if agent is None:
            return refusal
        return self.remove_agent(agent, unreachable=False, why="agent unregistered")

    def remove_agent(self, agent: AgentRecord, unreachable: bool, why: str) -> list[Send]:
        """Remove an agent: rescind its offers, report its tasks, tell every framework."""
        sends = self._rescind_offers(list(agent.offers))
        for task in list(agent.tasks.values()):
            sends += self._task_of_removed_agent(task, unreachable)
        agent.tasks.clear()
        failure = Failure(agent_id=agent.id)
        for framework in self.frameworks.values():
            if framework.connected:
                sends.append(to_framework(framework.id, failure))
        self.allocator.remove_agent(agent.id)
        self._unmap_peer(agent.peer)
        del self.agents[agent.id]
        self.emit("AGENT_REMOVED", agent.id)
        self.counters["agent_removals"] += 1
        now = self.clock.time()
        if unreachable:
            self.unreachable_agents[agent.id] = (agent.info, now)
        else:
            self.gone_agents[agent.id] = now
        record(self.journal, AgentRemoved(agent.id, unreachable, now))
        log.info("agent %s removed (%s)", agent.id, why)
        return sends

    def _task_of_removed_agent(self, task: TaskEntry, unreachable: bool) -> list[Send]:
        framework = self.frameworks.get(task.framework_id)
        if task.state.is_terminal:
            self._complete_task(task)
            return []
        aware = framework is not None and framework.partition_aware
        if aware and unreachable:
            state = TaskState.TASK_UNREACHABLE
        elif aware:
            state = TaskState.TASK_GONE
        else:
            state = TaskState.TASK_LOST
        reason = Reason.REASON_AGENT_REMOVED
        sends = self._master_transition(task, state, reason, f"agent {task.agent_id} removed")
        if state is TaskState.TASK_UNREACHABLE and framework is not None:
            framework.tasks.pop(task.task_id, None)
            framework.unreachable_tasks[task.task_id] = task
            framework.touch()
        else:
            self._complete_task(task)
        return sends

    # -------------------------------------------------- task and executor news

    def status_update(self, peer: bytes, msg: StatusUpdate) -> list[Send]:
        """Record a task's new status and forward it to the framework (protocol.md §4)."""
        status = msg.status
        agent, refusal = self._agent_of(peer, msg, status.agent_id, "status.agent_id")
        if agent is None:
            return refusal
        if not status.agent_id:
            status = attrs.evolve(status, agent_id=agent.id)
        framework_id = msg.framework_id
        framework = self.frameworks.get(framework_id)
        if framework is None:
            if framework_id in self.removed_framework_ids and status.uuid:
                # Nobody will ever acknowledge it: do so for the removed framework.
                ack = StatusUpdateAcknowledgement(agent.id, framework_id, status.task_id,
                                                  status.uuid)
                return [to_agent(agent.id, ack)]
            self.counters["dropped"] += 1
            log.info("framework %s task %s: update %s from agent %s for an unknown framework",
                     framework_id, status.task_id, status.state.value, agent.id)
            return []
        self.counters["status_updates"] += 1
        task = framework.tasks.get(status.task_id)
        if task is not None and task.agent_id != agent.id:
            return self.refuse(
                peer, msg, f"task {status.task_id} runs on agent {task.agent_id}, not {agent.id}",
                "status.task_id",
            )
        if task is not None:
            self._apply_agent_status(task, status)
        else:
            log.info("framework %s task %s on agent %s: update %s for a task the master "
                     "does not track", framework_id, status.task_id, agent.id, status.state.value)
        return self._update_to_framework(framework, status)

    def _apply_agent_status(self, task: TaskEntry, status: TaskStatus) -> None:
        if status.uuid and status.uuid == task.last_uuid:
            return  # a resend: already applied
        task.last_uuid = status.uuid
        if status.state == task.state and task.state.is_terminal:
            pass  # the same end, reported again with a new uuid
        elif self._set_state(task, status):
            # The launch and the end of a task are INFO; the steps between are DEBUG.
            log.log(logging.INFO if status.state.is_terminal else logging.DEBUG,
                    "framework %s task %s on agent %s: %s", task.framework_id, task.task_id,
                    task.agent_id, status.state.value)
        else:
            return
        if task.state.is_terminal:
            if status.uuid:
                task.terminal_uuid = status.uuid
            else:
                self._complete_task(task)

    def exited_executor(self, peer: bytes, msg: ExitedExecutor) -> list[Send]:
        """An executor exited: free its resources and tell its framework (Failure)."""
        agent, refusal = self._agent_of(peer, msg, msg.agent_id)
        if agent is None:
            return refusal
        entry = agent.executors.pop((msg.framework_id, msg.executor_id), None)
        if entry is not None:
            executor, role = entry
            agent.recompute_used()
            self.allocator.recover_resources(msg.framework_id, agent.id, role,
                                             executor.resources, None)
            self.request_allocation([agent.id])
        log.info("framework %s executor %s on agent %s exited with status %d",
                 msg.framework_id, msg.executor_id, agent.id, msg.status)
        framework = self.frameworks.get(msg.framework_id)
        if framework is None or not framework.connected:
            return []
        failure = Failure(agent_id=agent.id, executor_id=msg.executor_id, status=msg.status)
        return [to_framework(framework.id, failure)]

    def executor_message(self, peer: bytes, msg: ExecutorToFrameworkMessage) -> list[Send]:
        """Relay an executor's message to its scheduler (best effort)."""
        agent, refusal = self._agent_of(peer, msg, msg.agent_id)
        if agent is None:
            return refusal
        framework = self.frameworks.get(msg.framework_id)
        if framework is None or not framework.connected:
            self.counters["dropped"] += 1
            return []
        return [to_framework(framework.id, attrs.evolve(msg, agent_id=agent.id))]

