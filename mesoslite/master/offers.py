"""Offers: making them, using them, declining and timing them out (PURE).

Owns: turning the allocator's decisions into ``Offers`` (one offer per
agent per role, ids ``<master_id>-O<n>``), ACCEPT and DECLINE (validated by
:mod:`.validation`, then ``RunTask`` to the agent and the unused remainder
recovered with the call's ``refuse_seconds``), REVIVE and SUPPRESS, and the
``offer_timeout`` rescinds.  See protocol.md §3.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence

import attrs

from mesoslite.allocator import DEFAULT_REFUSE_SECONDS
from mesoslite.authz import task_user
from mesoslite.master.frameworks import FrameworkHandlers
from mesoslite.master.records import (
    FrameworkRecord,
    OfferRecord,
    Send,
    TaskEntry,
    to_agent,
    to_framework,
)
from mesoslite.master.validation import TaskVerdict, check_offers, check_tasks
from mesoslite.protocol import (
    Accept,
    Decline,
    Filters,
    Offer,
    Offers,
    Operation,
    Reason,
    Revive,
    RunTask,
    Suppress,
    TaskInfo,
    TaskState,
)

log = logging.getLogger("mesoslite.master")

#: Offers per Offers message (keeps each message far below the size limit).
OFFERS_PER_MESSAGE = 100


class OfferHandlers(FrameworkHandlers):
    """Allocation into offers, and the scheduler calls that answer them."""

    def _init_offers(self) -> None:
        self._offer_deadlines: list[tuple[float, str]] = []

    # -------------------------------------------------------------- allocation

    def allocate(self, agent_ids: Sequence[str] | None = None) -> list[Send]:
        """Run the allocator (over ``agent_ids``, or all agents) and send the offers."""
        allocations = self.allocator.allocate(agent_ids)
        by_framework: dict[str, list[Offer]] = {}
        timeout = self.config.offer_timeout
        now = self.clock.monotonic()
        for allocation in allocations:
            agent = self.agents.get(allocation.agent_id)
            framework = self.frameworks.get(allocation.framework_id)
            if agent is None or framework is None or not framework.connected:
                self.allocator.recover_resources(allocation.framework_id, allocation.agent_id,
                                                 allocation.role, allocation.resources, None)
                continue
            offer = Offer(
                id=self._new_offer_id(),
                framework_id=framework.id,
                agent_id=agent.id,
                hostname=agent.info.hostname,
                role=allocation.role,
                resources=allocation.resources,
                attributes=dict(agent.info.attributes),
                executor_ids=self.executor_ids(agent, framework.id),
            )
            expires_at = None if timeout is None else now + timeout
            self.offers[offer.id] = OfferRecord(offer, expires_at, offered_at=now)
            if expires_at is not None:
                heapq.heappush(self._offer_deadlines, (expires_at, offer.id))
            agent.offers.add(offer.id)
            agent.offered = agent.offered + offer.resources
            agent.touch()
            framework.offers.add(offer.id)
            framework.touch()
            by_framework.setdefault(framework.id, []).append(offer)
        sends: list[Send] = []
        for framework_id, offers in by_framework.items():
            for start in range(0, len(offers), OFFERS_PER_MESSAGE):
                batch = tuple(offers[start:start + OFFERS_PER_MESSAGE])
                sends.append(to_framework(framework_id, Offers(batch)))
            log.info("framework %s: offered %d agents", framework_id, len(offers))
        return sends

    def expire_offers(self) -> list[Send]:
        """Rescind offers older than ``offer_timeout``."""
        now = self.clock.monotonic()
        expired: list[str] = []
        heap = self._offer_deadlines
        while heap and heap[0][0] <= now:
            _, offer_id = heapq.heappop(heap)
            if offer_id in self.offers:
                expired.append(offer_id)
        return self._rescind_offers(expired)

    # ------------------------------------------------------------ accept/decline

    def accept(self, peer: bytes, msg: Accept) -> list[Send]:
        """Launch tasks on offers after validating both (protocol.md §3)."""
        framework, refusal = self._framework_of(peer, msg, msg.framework_id)
        if framework is None:
            return refusal
        return self._accept(framework, msg.offer_ids, msg.operations, msg.filters)

    def decline(self, peer: bytes, msg: Decline) -> list[Send]:
        """Give offers back, not to be re-offered for ``refuse_seconds``."""
        framework, refusal = self._framework_of(peer, msg, msg.framework_id)
        if framework is None:
            return refusal
        if not msg.offer_ids:
            return []
        return self._accept(framework, msg.offer_ids, (), msg.filters)

    def _accept(
        self,
        framework: FrameworkRecord,
        offer_ids: Sequence[str],
        operations: Sequence[Operation],
        filters: Filters | None,
    ) -> list[Send]:
        refuse = DEFAULT_REFUSE_SECONDS if filters is None else filters.refuse_seconds
        tasks = [task for operation in operations for task in operation.task_infos]
        valid, offer_error = check_offers(offer_ids, framework.id, self.offers)
        answer = "accept" if operations else "decline"
        now = self.clock.monotonic()
        for record in valid:
            self._remove_offer(record, recover=False)
            self.offer_round_trip.observe(now - record.offered_at, answer)
        sends: list[Send] = []
        if offer_error:
            for record in valid:
                offer = record.offer
                self.allocator.recover_resources(framework.id, offer.agent_id, offer.role,
                                                 offer.resources, None)
                self.request_allocation([offer.agent_id])
            log.info("framework %s: accept refused: %s", framework.id, offer_error)
            for task in tasks:
                status = self.master_status(task.task_id, TaskState.TASK_DROPPED,
                                            Reason.REASON_INVALID_OFFERS, offer_error,
                                            task.agent_id)
                sends += self._update_to_framework(framework, status)
            return sends
        agent_id = valid[0].offer.agent_id
        agent = self.agents.get(agent_id)
        if agent is None:  # cannot happen: offers go when their agent goes
            return sends
        if tasks and self.acls.restricts("run_tasks"):  # the run_tasks ACLs
            operations, denied = self._authorized_operations(framework, operations)
            for task, why in denied:
                log.info("framework %s task %s: %s", framework.id, task.task_id, why)
                self.counters["unauthorized"] += 1
                status = self.master_status(task.task_id, TaskState.TASK_ERROR,
                                            Reason.REASON_TASK_UNAUTHORIZED, why, task.agent_id)
                sends += self._update_to_framework(framework, status)
        live: set[str] = set()
        if tasks:  # a decline launches nothing: no need to list the framework's tasks
            live.update(framework.unreachable_tasks)
            live.update(tid for tid, task in framework.tasks.items()
                        if not task.state.is_terminal)
        verdicts, remaining, op_errors = check_tasks(
            operations, framework.id, agent_id,
            [(record.offer.role, record.offer.resources) for record in valid],
            live, self.executor_ids(agent, framework.id),
        )
        for message in op_errors:
            log.info("framework %s: %s", framework.id, message)
        for verdict in verdicts:
            if verdict.error:
                log.info("framework %s task %s: invalid: %s", framework.id,
                         verdict.task.task_id, verdict.error)
                status = self.master_status(verdict.task.task_id, TaskState.TASK_ERROR,
                                            Reason.REASON_TASK_INVALID, verdict.error,
                                            verdict.task.agent_id)
                sends += self._update_to_framework(framework, status)
            else:
                sends += self._launch(framework, verdict)
        for record, left in zip(valid, remaining, strict=True):
            if left:
                self.allocator.recover_resources(framework.id, agent_id, record.offer.role,
                                                 left, refuse)
        self.request_allocation([agent_id])
        return sends

    def _authorized_operations(
        self, framework: FrameworkRecord, operations: Sequence[Operation]
    ) -> tuple[list[Operation], list[tuple[TaskInfo, str]]]:
        """``operations`` without the tasks ``run_tasks`` refuses, and those with why."""
        principal = framework.info.principal or None
        kept: list[Operation] = []
        denied: list[tuple[TaskInfo, str]] = []
        for operation in operations:
            allowed = []
            for task in operation.task_infos:
                user = task_user(task, framework.info)
                if self.acls.authorized("run_tasks", principal, user):
                    allowed.append(task)
                    continue
                who = (f"principal {principal!r}" if principal
                       else "a framework without a principal")
                why = (f"task {task.task_id}: {who} is not authorized to run tasks as user "
                       f"{user!r} (run_tasks ACL; the user is CommandInfo.user, else "
                       "FrameworkInfo.user)")
                denied.append((task, why))
            kept.append(attrs.evolve(operation, task_infos=tuple(allowed))
                        if len(allowed) != len(operation.task_infos) else operation)
        return kept, denied

    def _launch(self, framework: FrameworkRecord, verdict: TaskVerdict) -> list[Send]:
        task = verdict.task
        agent = self.agents[task.agent_id]
        entry = TaskEntry(
            task_id=task.task_id,
            name=task.name,
            framework_id=framework.id,
            agent_id=agent.id,
            executor_id=task.executor.executor_id if task.executor is not None else "",
            role=verdict.role,
            resources=task.resources,
            state=TaskState.TASK_STAGING,
            info=task,
            labels=dict(task.labels),
            discovery=task.discovery,
            launched_at=self.clock.monotonic(),
        )
        if verdict.new_executor and task.executor is not None:
            agent.executors[(framework.id, task.executor.executor_id)] = (task.executor,
                                                                          verdict.role)
        framework.tasks[task.task_id] = entry
        agent.tasks[(framework.id, task.task_id)] = entry
        agent.used = agent.used + verdict.consumed
        agent.touch()
        framework.touch()
        self._count_state(None, TaskState.TASK_STAGING)
        self.emit("TASK_ADDED", entry)
        log.info("framework %s task %s on agent %s: launching with %s",
                 framework.id, task.task_id, agent.id, verdict.consumed)
        return [to_agent(agent.id, RunTask(framework_info=framework.info, task=task))]

    # ----------------------------------------------------------- revive/suppress

    def revive(self, peer: bytes, msg: Revive) -> list[Send]:
        """Clear filters and resume offers for the roles (all when none named)."""
        framework, refusal = self._framework_of(peer, msg, msg.framework_id)
        if framework is None:
            return refusal
        try:
            self.allocator.revive(framework.id, msg.roles or None)
        except ValueError as exc:
            return self.refuse(peer, msg, str(exc), "roles")
        self.request_allocation(None)
        log.info("framework %s: revived %s", framework.id, ",".join(msg.roles) or "all roles")
        return []

    def suppress(self, peer: bytes, msg: Suppress) -> list[Send]:
        """Stop offers for the roles (all when none named); outstanding offers stay."""
        framework, refusal = self._framework_of(peer, msg, msg.framework_id)
        if framework is None:
            return refusal
        try:
            self.allocator.suppress(framework.id, msg.roles or None)
        except ValueError as exc:
            return self.refuse(peer, msg, str(exc), "roles")
        log.info("framework %s: suppressed %s", framework.id, ",".join(msg.roles) or "all roles")
        return []

