"""The offer side of the framework: the scheduler callbacks and the scheduling pass.

Owns: :class:`Scheduling`, the mesoslite :class:`~mesoslite.scheduler.Scheduler`
of the Marathon-style framework.  A *pass* (on every change, and every
``tick_interval``) asks the pure cores what to do — the running deployments'
current steps (``core.deployments``) and, for every other app, the steady-state
``core.reconciler`` — kills what they say, and keeps the launch *wants* (app →
instances to start, once its backoff allows) that incoming offers are matched
against (``core.matcher``).  Tasks are persisted before their launch is sent.
Offers are suppressed when nothing waits and revived when work appears;
unused offers are declined with ``decline_offer_duration`` filters.  Status
updates update the tracked tasks and the event bus.  Runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

import attrs

from frameworks.marathon.core import deployments as dep
from frameworks.marathon.core.launch_queue import LaunchQueue
from frameworks.marathon.core.matcher import LaunchWant, Placement, match_offers
from frameworks.marathon.core.model import (
    App,
    HealthResult,
    InstanceCondition,
    MarathonTask,
    new_instance_id,
    task_id_for,
)
from frameworks.marathon.core.reconciler import reconcile
from frameworks.marathon.core.reports import QueueEntry
from frameworks.marathon.core.service_ports import service_ports
from frameworks.marathon.core.task_builder import build_task_info
from frameworks.marathon.core.timestamps import iso
from frameworks.marathon.readiness_probes import ReadinessChecks
from frameworks.marathon.service import FAILURE_CONDITIONS, MarathonService
from frameworks.marathon.wire.app_json import render_health_check
from mesoslite.protocol import Filters, KillPolicy, Offer, TaskStatus
from mesoslite.protocol.states import TaskState
from mesoslite.scheduler import Scheduler, SchedulerDriver

log = logging.getLogger("mesoslite.marathon.scheduling")

#: Seconds an offer is filtered when it did not fit what is waiting (short: work remains).
UNFIT_OFFER_FILTER = 5.0
#: How soon a pass follows a change (changes arriving together share one pass).
KICK_DELAY = 0.02
#: Seconds before a kill that has not taken effect is sent again (Marathon's kill retry).
KILL_RETRY_SECONDS = 10.0
#: Seconds after (re)registration during which nothing is expunged or timed out:
#: reconciliation answers about tasks on recovering agents arrive meanwhile.
RECONCILIATION_GRACE = 10.0
#: Reasons of terminal updates that say nothing about the task itself (no backoff).
#: REASON_AGENT_DRAINING: an operator drained the task's agent; the instance is replaced
#: at once elsewhere (the draining agent gets no offers).
NOT_TASK_FAILURES = frozenset({"REASON_MASTER_DISCONNECTED", "REASON_INVALID_OFFERS",
                               "REASON_RECONCILIATION", "REASON_AGENT_DRAINING"})


class Scheduling(Scheduler):
    """Turns the service's apps and deployments into launches and kills."""

    def __init__(self, service: MarathonService, *, rng: random.Random | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.service = service
        #: Called when the master ends the framework (failed over elsewhere, removed,
        #: torn down): the process stops serving state it no longer owns.
        self.on_error = on_error
        self.config = service.config
        self.clock = service.clock
        self.rng = rng or random.Random()
        self.driver: SchedulerDriver | None = None
        self.launch_queue = LaunchQueue(self.clock,
                                        min_uptime_seconds=self.config.min_healthy_uptime)
        self.readiness = ReadinessChecks(self.clock, on_change=self.kick)
        #: app id → instances waiting for an offer (their backoff is over).
        self.wants: dict[str, int] = {}
        #: app id → instances waiting, backoff or not (for /v2/queue).
        self.waiting: dict[str, int] = {}
        self.rejections: dict[str, dict[str, int]] = {}
        self.offers_processed: dict[str, int] = {}
        self.offers_unused: dict[str, int] = {}
        self.suppressed = False
        #: True after offers were declined with the long filter (a revive clears it).
        self.offers_filtered = False
        self.subscribed = False
        self._kick_handle: asyncio.TimerHandle | None = None
        self._pass_running = False
        self._pass_again = False
        self._periodic: asyncio.Task[None] | None = None
        self._reconcile_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        #: task id → monotonic time its kill was last sent.
        self._kill_sent: dict[str, float] = {}
        #: Monotonic time of the last (re)registration (expunges wait RECONCILIATION_GRACE).
        self._registered_at: float | None = None
        #: True once the framework id is durably stored (no launch before that).
        self.framework_id_stored = service.framework_id is not None

    # ------------------------------------------------------------ lifecycle

    def start(self, driver: SchedulerDriver) -> None:
        """Begin scheduling through ``driver`` (already started)."""
        self.driver = driver
        self._periodic = asyncio.get_running_loop().create_task(self._periodic_passes())

    async def stop(self) -> None:
        """Stop passes, readiness probes and background work."""
        for task in (self._periodic, self._reconcile_task, *self._background):
            if task is not None:
                task.cancel()
        if self._kick_handle is not None:
            self._kick_handle.cancel()
        await self.readiness.stop()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    # ------------------------------------------------------------ scheduler callbacks

    def registered(self, driver: SchedulerDriver, framework_id: str, master_info: Any) -> None:
        """First subscription: keep the framework id, reconcile, schedule."""
        log.info("registered with framework id %s", framework_id)
        self._on_subscribed()
        if self.service.framework_id != framework_id or not self.framework_id_stored:
            self.service.framework_id = framework_id
            self.framework_id_stored = False
            self._spawn(self._store_framework_id(framework_id))
        self.kick()

    async def _store_framework_id(self, framework_id: str) -> None:
        """Store the id before anything is launched; retry until it is stored."""
        delay = 0.5
        while True:
            try:
                await self.service.framework_id_repo.set(framework_id)
            except Exception:
                log.exception("cannot store the framework id; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self.framework_id_stored = True
            self.kick()
            return

    def _on_subscribed(self) -> None:
        """(Re)subscribed: the master keeps suppression and filters, so settle them anew."""
        self.subscribed = True
        self.suppressed = False
        self.offers_filtered = True  # the next pass revives if anything waits, else suppresses
        self._registered_at = self.clock.monotonic()
        self._kill_sent.clear()  # kills sent before may have been dropped: resend them
        self._start_reconciliation()

    def reregistered(self, driver: SchedulerDriver, master_info: Any) -> None:
        """Subscribed again (new leading master): reconcile and schedule."""
        log.info("re-registered with the master")
        self._on_subscribed()
        self.kick()

    def disconnected(self, driver: SchedulerDriver) -> None:
        """Lost the master; the driver re-subscribes by itself."""
        log.warning("disconnected from the master")
        self.subscribed = False

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        """Match offers against what waits; launch, or decline."""
        self._spawn(self._handle_offers(offers))

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        """A task changed: track it, publish it, schedule a pass."""
        self.on_status(status)

    def agent_lost(self, driver: SchedulerDriver, agent_id: str) -> None:
        """An agent is gone: ask the master about the tasks we had there."""
        log.warning("agent %s lost", agent_id)
        self._reconcile_explicitly(lambda t: t.agent_id == agent_id)

    def error(self, driver: SchedulerDriver, message: str) -> None:
        """The master ended the framework (the driver aborts; the process steps down)."""
        log.error("the master reported an error: %s", message)
        self.subscribed = False
        if self.on_error is not None:
            self.on_error(message)

    # ------------------------------------------------------------ passes

    def kick(self) -> None:
        """Ask for a scheduling pass soon (several kicks share one pass)."""
        if self._kick_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._kick_handle = loop.call_later(KICK_DELAY, self._kicked)

    def _kicked(self) -> None:
        self._kick_handle = None
        self._spawn(self.run_pass())

    async def _periodic_passes(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_interval)
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduling pass failed; the next one follows in %.1f s",
                              self.config.tick_interval)

    async def run_pass(self) -> None:
        """One scheduling pass (re-run at once if asked for while running)."""
        if self._pass_running:
            self._pass_again = True
            return
        self._pass_running = True
        try:
            while True:
                self._pass_again = False
                await self._pass()
                if not self._pass_again:
                    break
        finally:
            self._pass_running = False

    async def _pass(self) -> None:
        service = self.service
        now = self.clock.time()
        self.launch_queue.tick()
        launch: dict[str, int] = {}
        locked: set[str] = set(service.quarantined)
        finished: list[dep.DeploymentPlan] = []
        for plan in list(service.plans.values()):
            locked.update(plan.affected_app_ids)
            if self._step(plan, launch):
                finished.append(plan)
        settling = self._settling()
        tasks = list(service.tracked.values())
        decisions = reconcile(service.apps, tasks, locked, self.clock)
        for app_id, n in decisions.launch.items():
            launch[app_id] = launch.get(app_id, 0) + n
        for task_id, reason in decisions.kill:
            task = service.tracked.get(task_id)
            if task is not None:
                self.kill(task, reason)
        if not settling:
            for task_id in decisions.expunge:
                task = service.tracked.get(task_id)
                if task is not None:
                    log.info("expunging unreachable task %s", task_id)
                    service.task_record(
                        attrs.evolve(task, condition=InstanceCondition.UNKNOWN))
            self._kill_overdue_launches(now)
        self._retry_kills()
        # Wants are set before anything below awaits, so offers never see stale counts.
        self._set_wants(launch)
        for plan in finished:
            await service.advance_plan(plan)
        if finished:
            self.kick()
        if service.instance_repo.pending:
            await service.instance_repo.flush()

    def _settling(self) -> bool:
        """True shortly after (re)registration, while reconciliation answers arrive."""
        return self._registered_at is None or (
            self.clock.monotonic() - self._registered_at < RECONCILIATION_GRACE)

    def _retry_kills(self) -> None:
        """Send again every kill that has not taken effect within KILL_RETRY_SECONDS."""
        if self.driver is None or not self.subscribed:
            return
        now = self.clock.monotonic()
        for task in list(self.service.tracked.values()):
            if not task.kill_requested or not task.condition.is_active:
                continue
            sent = self._kill_sent.get(task.task_id)
            if sent is None or now - sent >= KILL_RETRY_SECONDS:
                log.info("sending the kill of task %s again", task.task_id)
                self._send_kill(task)

    def _step(self, plan: dep.DeploymentPlan, launch: dict[str, int]) -> bool:
        """Drive the current step of ``plan``; True when every action in it is done."""
        service = self.service
        done = True
        for action in plan.current_actions:
            app_id = action.app_id
            tasks = [t for t in service.app_tasks(app_id) if t.condition.is_active]
            target = plan.target.get(app_id)
            ready = self.readiness.ready_tasks(target, tasks) if target is not None else set()
            n, kills, action_done = dep.action_decisions(plan, action, tasks, ready)
            if n:
                launch[app_id] = launch.get(app_id, 0) + n
            for task_id in kills:
                task = service.tracked.get(task_id)
                if task is not None:
                    self.kill(task, f"{action.action} of deployment {plan.id}")
            if action_done and action.action == dep.STOP:
                for task in tasks:  # only unreachable ones are left: forget them
                    service.task_record(attrs.evolve(task, condition=InstanceCondition.UNKNOWN))
            done = done and action_done
        return done

    def _kill_overdue_launches(self, now: float) -> None:
        limit = self.config.task_launch_timeout
        for task in list(self.service.tracked.values()):
            if (task.condition in (InstanceCondition.STAGING, InstanceCondition.STARTING)
                    and not task.kill_requested and task.staged_at is not None
                    and now - task.staged_at > limit):
                self.kill(task, f"not running after task_launch_timeout ({limit:g} s)")

    def _set_wants(self, launch: dict[str, int]) -> None:
        self.waiting = {k: v for k, v in launch.items() if v > 0}
        wants: dict[str, int] = {}
        for app_id, n in self.waiting.items():
            self.launch_queue.note_wanted(app_id, n)
            if self.launch_queue.can_launch(app_id):
                wants[app_id] = n
        for app_id in list(self.rejections):
            if app_id not in self.waiting:
                self.rejections.pop(app_id, None)
                self.offers_processed.pop(app_id, None)
                self.offers_unused.pop(app_id, None)
        for app_id in self.service.apps:
            if app_id not in self.waiting:
                self.launch_queue.note_wanted(app_id, 0)
        self.wants = wants
        driver = self.driver
        if driver is None or not self.subscribed:
            return
        if wants and (self.suppressed or self.offers_filtered):
            self.suppressed = self.offers_filtered = False
            driver.revive_offers()
        elif not wants and not self.suppressed and not self.waiting:
            self.suppressed = True
            driver.suppress_offers()

    # ------------------------------------------------------------ offers

    async def _handle_offers(self, offers: list[Offer]) -> None:
        driver = self.driver
        if driver is None:
            return
        answered: set[str] = set()
        self.service.count("offers.received", len(offers))
        try:
            await self._use_offers(driver, offers, answered)
        finally:
            for offer in offers:
                if offer.id not in answered:
                    driver.decline_offer(offer.id, Filters(refuse_seconds=UNFIT_OFFER_FILTER))
                    self.service.count("offers.declined")

    async def _use_offers(self, driver: SchedulerDriver, offers: list[Offer],
                          answered: set[str]) -> None:
        service = self.service
        if not self.framework_id_stored:
            return  # declined (short filter) in _handle_offers: nothing launches before that
        wants = [LaunchWant(service.apps[app_id], n) for app_id, n in self.wants.items()
                 if n > 0 and app_id in service.apps]
        if not wants:
            filters = Filters(refuse_seconds=self.config.decline_offer_duration)
            for offer in offers:
                driver.decline_offer(offer.id, filters)
                answered.add(offer.id)
            service.count("offers.declined", len(offers))
            self.offers_filtered = True
            if not self.waiting and not self.suppressed:
                self.suppressed = True
                driver.suppress_offers()
            return
        running: dict[str, list[dict[str, str]]] = {}
        for task in service.tracked.values():
            if task.condition.is_active:
                running.setdefault(task.app_id, []).append(
                    {**task.attributes, "hostname": task.host})
        result = match_offers(offers, wants, running,
                              max_per_offer=self.config.max_instances_per_offer, rng=self.rng)
        for want in wants:
            app_id = want.app.id
            self.offers_processed[app_id] = self.offers_processed.get(app_id, 0) + len(offers)
        for app_id, reasons in result.rejections.items():
            bucket = self.rejections.setdefault(app_id, {})
            for reason, n in reasons.items():
                bucket[reason] = bucket.get(reason, 0) + n
        by_offer: dict[str, list[tuple[Placement, Any]]] = {}
        now = self.clock.time()
        for placement in result.placements:
            app = service.apps.get(placement.app_id)
            if app is None or self.wants.get(app.id, 0) <= 0:
                continue
            self.wants[app.id] -= 1
            info, task = self._prepare(app, placement, now)
            service.task_record(task)
            by_offer.setdefault(placement.offer_id, []).append((placement, info))
        if by_offer:
            try:
                await service.instance_repo.flush()
            except Exception:
                log.exception("cannot persist new tasks; not launching them")
                for items in by_offer.values():
                    for _placement, info in items:
                        staged = service.tracked.get(info.task_id)
                        if staged is not None:  # forget it (and its staged record)
                            service.task_record(
                                attrs.evolve(staged, condition=InstanceCondition.DROPPED))
                self.kick()
                return  # every offer is declined by _handle_offers
        for offer_id, items in by_offer.items():
            # refuse_seconds=0: what is left of the offer comes back in the next
            # allocation, so large scale-ups are not paced by the default 5 s filter.
            driver.launch_tasks([offer_id], [info for _p, info in items],
                                Filters(refuse_seconds=0.0))
            answered.add(offer_id)
            service.count("tasks.launched", len(items))
            service.count("offers.matched")
        for offer in offers:
            if offer.id not in by_offer:
                for want in wants:
                    self.offers_unused[want.app.id] = self.offers_unused.get(want.app.id, 0) + 1

    def _prepare(self, app: App, placement: Placement, now: float) -> tuple[Any, MarathonTask]:
        instance_id = new_instance_id(app.id)
        task_id = task_id_for(instance_id, 1)
        ports = service_ports(app)
        info = build_task_info(
            app, task_id=task_id, agent_id=placement.agent_id, hostname=placement.hostname,
            resources=placement.resources, host_ports=placement.host_ports,
            service_ports=ports, framework_name=self.config.framework_name)
        task = MarathonTask(
            task_id=task_id, instance_id=instance_id, app_id=app.id, version=app.version,
            condition=InstanceCondition.STAGING, agent_id=placement.agent_id,
            host=placement.hostname, ports=placement.host_ports, service_ports=ports,
            staged_at=now, condition_since=now, attributes=dict(placement.attributes))
        return info, task

    # ------------------------------------------------------------ kills

    def kill(self, task: MarathonTask, reason: str, *, wipe: bool = False) -> None:
        """Ask the master to kill ``task`` (once; retried until it takes effect)."""
        service = self.service
        current = service.tracked.get(task.task_id)
        if current is None or (current.kill_requested and not wipe):
            return
        current = attrs.evolve(current, kill_requested=True)
        service.task_record(current)
        log.info("killing task %s: %s", task.task_id, reason)
        service.count("tasks.killed")
        self._send_kill(current)
        self.kick()

    def _send_kill(self, task: MarathonTask) -> None:
        if self.driver is None or not self.subscribed:
            return  # sent by _retry_kills once subscribed
        app = self.service.apps.get(task.app_id)
        policy = None
        if app is not None and app.task_kill_grace_period_seconds is not None:
            policy = KillPolicy(grace_period=app.task_kill_grace_period_seconds)
        self._kill_sent[task.task_id] = self.clock.monotonic()
        self.driver.kill_task(task.task_id, task.agent_id, policy)

    # ------------------------------------------------------------ status updates

    def on_status(self, status: TaskStatus) -> None:
        """Apply one status update to the tracked task."""
        service = self.service
        task = service.tracked.get(status.task_id)
        state = status.state.value if isinstance(status.state, TaskState) else str(status.state)
        reason = status.reason.value if status.reason is not None else ""
        if task is None:
            self._unknown_task(status, state)
            return
        condition = InstanceCondition(state)
        now = self.clock.time()
        changed = condition is not task.condition
        if not changed and reason == "REASON_RECONCILIATION" and (
                status.healthy is None or status.healthy == task.healthy):
            return  # a reconciliation answer that tells nothing new (health is rebuilt from it)
        changes: dict[str, Any] = {"message": status.message}
        if changed:
            changes["condition"] = condition
            changes["condition_since"] = now
        if status.agent_id:
            changes["agent_id"] = status.agent_id
        if condition is InstanceCondition.RUNNING and task.started_at is None:
            changes["started_at"] = now
        health_changed = False
        if status.healthy is not None and condition.is_active and (
                status.healthy != task.healthy or task.health is None or not status.healthy):
            changes["health"] = _health_after(task.health, status.healthy, now, status.message)
            health_changed = status.healthy != task.healthy
            changes["healthy"] = status.healthy
        new = attrs.evolve(task, **changes)
        app = service.apps.get(task.app_id)
        if condition is InstanceCondition.RUNNING and app is not None and changed:
            self.launch_queue.task_running(attrs.evolve(app, version=task.version),
                                           task.task_id)
        if condition.is_terminal:
            self._ended(task, condition, state, reason, status)
        durable = condition.is_terminal or "started_at" in changes or (
            changed and InstanceCondition.UNREACHABLE in (condition, task.condition))
        service.task_record(new, durable=durable)
        service.count(f"tasks.updates.{state.lower()}")
        service.bus.publish(
            "status_update_event", slaveId=new.agent_id, taskId=new.task_id,
            taskStatus=state, message=status.message, appId=new.app_id, host=new.host,
            ipAddresses=[{"ipAddress": ip, "protocol": "IPv4"} for ip in new.ip_addresses],
            ports=list(new.ports), version=new.version)
        if changed:
            service.bus.publish(
                "instance_changed_event", instanceId=new.instance_id,
                condition=_condition_name(condition), runSpecId=new.app_id,
                agentId=new.agent_id, host=new.host, runSpecVersion=new.version,
                goal="Running" if not new.kill_requested else "Stopped")
        if health_changed:
            service.bus.publish("health_status_changed_event", appId=new.app_id,
                                taskId=new.task_id, instanceId=new.instance_id,
                                version=new.version, alive=bool(status.healthy))
            if status.healthy is False and app is not None and app.health_checks:
                service.bus.publish("failed_health_check_event", appId=new.app_id,
                                    taskId=new.task_id, instanceId=new.instance_id,
                                    healthCheck=render_health_check(app.health_checks[0]),
                                    version=new.version)
        if condition is InstanceCondition.RUNNING and app is not None and app.readiness_checks:
            self.readiness.watch(app, new)
        self.kick()

    def _ended(self, task: MarathonTask, condition: InstanceCondition, state: str,
               reason: str, status: TaskStatus) -> None:
        """Bookkeeping for a task that reached a terminal state."""
        service = self.service
        self.launch_queue.task_gone(task.task_id)
        self.readiness.forget(task.task_id)
        self._kill_sent.pop(task.task_id, None)
        failed = reason not in NOT_TASK_FAILURES and (
            condition in FAILURE_CONDITIONS or condition is InstanceCondition.FINISHED
            or (condition is InstanceCondition.KILLED and not task.kill_requested))
        app = service.apps.get(task.app_id)
        if failed:
            service.record_failure(task, state, status.message)
            if app is not None and app.version == task.version:
                self.launch_queue.task_failed(app)
        if status.healthy is False and condition is InstanceCondition.KILLED:
            service.bus.publish("unhealthy_task_kill_event", appId=task.app_id,
                                taskId=task.task_id, instanceId=task.instance_id,
                                version=task.version, reason=status.message,
                                host=task.host, slaveId=task.agent_id)

    def _unknown_task(self, status: TaskStatus, state: str) -> None:
        """A task this framework does not track: kill it while it lives."""
        if not TaskState(state).is_terminal:
            if self.driver is not None:
                log.warning("unknown task %s (%s): killing it", status.task_id, state)
                self.driver.kill_task(status.task_id, status.agent_id)
            return
        head, _sep, _tail = status.task_id.partition(".instance-")
        self.service.bus.publish(
            "unknown_instance_terminated_event", instanceId=status.task_id,
            runSpecId="/" + head.replace("_", "/") if head else "",
            condition=_condition_name(InstanceCondition(state)))

    # ------------------------------------------------------------ reconciliation

    def _start_reconciliation(self) -> None:
        self._reconcile_explicitly(lambda t: True)
        if self._reconcile_task is None or self._reconcile_task.done():
            self._reconcile_task = asyncio.get_running_loop().create_task(
                self._periodic_reconciliation())

    def _reconcile_explicitly(self, which: Any) -> None:
        """Ask the master for the state of the tracked active tasks ``which(task)`` selects."""
        driver = self.driver
        if driver is None or not self.subscribed:
            return
        known = [TaskStatus(task_id=t.task_id, state=TaskState(t.condition.value),
                            agent_id=t.agent_id)
                 for t in self.service.tracked.values() if t.condition.is_active and which(t)]
        if known:
            driver.reconcile_tasks(known)

    async def _periodic_reconciliation(self) -> None:
        """Explicit (tasks we know), then implicit (tasks we do not), as Marathon does."""
        await asyncio.sleep(self.config.reconciliation_initial_delay)
        while True:
            if self.driver is not None and self.subscribed:
                log.info("reconciling tasks with the master")
                self._reconcile_explicitly(lambda t: True)
                self.driver.reconcile_tasks([])
            await asyncio.sleep(self.config.reconciliation_interval)

    # ------------------------------------------------------------ views

    def queue_entries(self) -> list[QueueEntry]:
        """``/v2/queue`` entries: apps with instances waiting."""
        out = []
        for app_id, n in sorted(self.waiting.items()):
            app = self.service.apps.get(app_id)
            if app is None:
                continue
            left, overdue = self.launch_queue.delay_for(app_id)
            since = self.launch_queue.since(app_id) or self.clock.time()
            out.append(QueueEntry(
                app=app, count=n, time_left_seconds=left, overdue=overdue, since=since,
                rejections=dict(self.rejections.get(app_id, {})),
                processed_offers=self.offers_processed.get(app_id, 0),
                unused_offers=self.offers_unused.get(app_id, 0)))
        return out

    def reset_delay(self, app_id: str) -> bool:
        """Reset an app's backoff; False when the app waits for nothing."""
        if app_id not in self.waiting:
            return False
        self.launch_queue.reset(app_id)
        self.kick()
        return True

    def readiness_results(self, app_id: str) -> list[dict[str, Any]]:
        """Readiness results of the app's tasks (Marathon's readinessCheckResults)."""
        return self.readiness.results(app_id)

    def gauges(self) -> dict[str, Any]:
        """Scheduling gauges for ``/metrics``."""
        return {
            "launch_queue.waiting": sum(self.waiting.values()),
            "offers.suppressed": 1 if self.suppressed else 0,
            "framework.subscribed": 1 if self.subscribed else 0,
        }


def _health_after(old: HealthResult | None, healthy: bool, now: float, message: str
                  ) -> HealthResult:
    stamp = iso(now)
    old = old or HealthResult(alive=healthy)
    if healthy:
        return HealthResult(alive=True, consecutive_failures=0,
                            first_success=old.first_success or stamp, last_success=stamp,
                            last_failure=old.last_failure,
                            last_failure_cause=old.last_failure_cause)
    return HealthResult(alive=False, consecutive_failures=old.consecutive_failures + 1,
                        first_success=old.first_success, last_success=old.last_success,
                        last_failure=stamp, last_failure_cause=message or "health check failed")


def _condition_name(condition: InstanceCondition) -> str:
    """Marathon's instance condition names (``Running``, ``Staging`` …)."""
    name = condition.value.removeprefix("TASK_")
    return "".join(part.capitalize() for part in name.split("_"))


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("scheduling task failed", exc_info=task.exception())


__all__ = ["Scheduling"]
