"""The offer side of the framework: the scheduler callbacks and the scheduling pass.

Owns: :class:`Scheduling`, the mesoslite :class:`~mesoslite.scheduler.Scheduler`
of the Marathon-style framework.  A *pass* (on every change, and every
``tick_interval``) asks the pure cores what to do — the running deployments'
current steps (``deployments``) and, for every other app, the steady-state
``reconciler`` — kills what they say, and keeps the launch *wants* (app →
instances to start, once its backoff allows) that incoming offers are matched
against (``matcher``).  Tasks are persisted before their launch is sent.
Offers are suppressed when nothing waits and revived when work appears;
unused offers are declined with ``decline_offer_duration`` filters.  Status
updates update the tracked tasks and the event bus.  Runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import attrs

from frameworks.marathon import deployments as dep
from frameworks.marathon.facade import QueueEntry
from frameworks.marathon.launch_queue import LaunchQueue
from frameworks.marathon.matcher import LaunchWant, Placement, match_offers
from frameworks.marathon.model import (
    App,
    HealthResult,
    InstanceCondition,
    MarathonTask,
    new_instance_id,
    task_id_for,
)
from frameworks.marathon.readiness import ReadinessChecks
from frameworks.marathon.reconciler import reconcile
from frameworks.marathon.service import FAILURE_CONDITIONS, MarathonService
from frameworks.marathon.task_builder import build_task_info
from frameworks.marathon.timestamps import iso
from mesoslite.protocol import Filters, KillPolicy, Offer, TaskStatus
from mesoslite.protocol.states import TaskState
from mesoslite.scheduler import Scheduler, SchedulerDriver

log = logging.getLogger("mesoslite.marathon.scheduling")

#: Seconds an offer is filtered when it did not fit what is waiting (short: work remains).
UNFIT_OFFER_FILTER = 5.0
#: How soon a pass follows a change (changes arriving together share one pass).
KICK_DELAY = 0.02


class Scheduling(Scheduler):
    """Turns the service's apps and deployments into launches and kills."""

    def __init__(self, service: MarathonService, *, rng: random.Random | None = None) -> None:
        self.service = service
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
        self.subscribed = True
        self.suppressed = False
        if self.service.framework_id != framework_id:
            self.service.framework_id = framework_id
            self._spawn(self.service.framework_id_repo.set(framework_id))
        self._start_reconciliation()
        self.kick()

    def reregistered(self, driver: SchedulerDriver, master_info: Any) -> None:
        """Subscribed again (new leading master): reconcile and schedule."""
        log.info("re-registered with the master")
        self.subscribed = True
        self.suppressed = False
        self._start_reconciliation()
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
        """An agent is gone; its tasks arrive as status updates."""
        log.warning("agent %s lost", agent_id)

    def error(self, driver: SchedulerDriver, message: str) -> None:
        """The master refused the framework."""
        log.error("the master reported an error: %s", message)

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
            await self.run_pass()

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
        locked: set[str] = set()
        for plan in list(service.plans.values()):
            locked.update(plan.affected_app_ids)
            if await self._step(plan, launch):
                await service.advance_plan(plan)
                self.kick()
        tasks = list(service.tracked.values())
        decisions = reconcile(service.apps, tasks, locked, self.clock)
        for app_id, n in decisions.launch.items():
            launch[app_id] = launch.get(app_id, 0) + n
        for task_id, reason in decisions.kill:
            task = service.tracked.get(task_id)
            if task is not None:
                self.kill(task, reason)
        for task_id in decisions.expunge:
            task = service.tracked.get(task_id)
            if task is not None:
                log.info("expunging unreachable task %s", task_id)
                service.task_record(attrs.evolve(task, condition=InstanceCondition.UNKNOWN))
        self._kill_overdue_launches(now)
        self._set_wants(launch)
        if service.instance_repo.pending:
            await service.instance_repo.flush()

    async def _step(self, plan: dep.DeploymentPlan, launch: dict[str, int]) -> bool:
        """Drive the current step of ``plan``; True when every action in it is done."""
        service = self.service
        done = True
        for action in plan.current_actions:
            app_id = action.app_id
            tasks = [t for t in service.tracked.values()
                     if t.app_id == app_id and t.condition.is_active]
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
        service = self.service
        wants = [LaunchWant(service.apps[app_id], n) for app_id, n in self.wants.items()
                 if n > 0 and app_id in service.apps]
        if not wants:
            filters = Filters(refuse_seconds=self.config.decline_offer_duration)
            for offer in offers:
                driver.decline_offer(offer.id, filters)
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
                        service.tracked.pop(info.task_id, None)
                for offer in offers:
                    driver.decline_offer(offer.id, Filters(refuse_seconds=UNFIT_OFFER_FILTER))
                self.kick()
                return
        for offer_id, items in by_offer.items():
            driver.launch_tasks([offer_id], [info for _p, info in items])
            service.count("tasks.launched", len(items))
        unused = [o for o in offers if o.id not in by_offer]
        for offer in unused:
            for want in wants:
                self.offers_unused[want.app.id] = self.offers_unused.get(want.app.id, 0) + 1
            driver.decline_offer(offer.id, Filters(refuse_seconds=UNFIT_OFFER_FILTER))

    def _prepare(self, app: App, placement: Placement, now: float) -> tuple[Any, MarathonTask]:
        instance_id = new_instance_id(app.id)
        task_id = task_id_for(instance_id, 1)
        service_ports = _service_ports(app)
        info = build_task_info(
            app, task_id=task_id, agent_id=placement.agent_id, hostname=placement.hostname,
            resources=placement.resources, host_ports=placement.host_ports,
            service_ports=service_ports, framework_name=self.config.framework_name)
        task = MarathonTask(
            task_id=task_id, instance_id=instance_id, app_id=app.id, version=app.version,
            condition=InstanceCondition.STAGING, agent_id=placement.agent_id,
            host=placement.hostname, ports=placement.host_ports, service_ports=service_ports,
            staged_at=now, condition_since=now, attributes=dict(placement.attributes))
        return info, task

    # ------------------------------------------------------------ kills

    def kill(self, task: MarathonTask, reason: str, *, wipe: bool = False) -> None:
        """Ask the master to kill ``task`` (once), honouring the app's kill grace period."""
        if task.kill_requested and not wipe:
            return
        service = self.service
        service.task_record(attrs.evolve(task, kill_requested=True))
        app = service.apps.get(task.app_id)
        policy = None
        if app is not None and app.task_kill_grace_period_seconds is not None:
            policy = KillPolicy(grace_period=app.task_kill_grace_period_seconds)
        log.info("killing task %s: %s", task.task_id, reason)
        service.count("tasks.killed")
        if self.driver is not None:
            self.driver.kill_task(task.task_id, task.agent_id, policy)
        self.kick()

    # ------------------------------------------------------------ status updates

    def on_status(self, status: TaskStatus) -> None:
        """Apply one status update to the tracked task."""
        service = self.service
        task = service.tracked.get(status.task_id)
        state = status.state.value if isinstance(status.state, TaskState) else str(status.state)
        if task is None:
            if not TaskState(state).is_terminal and self.driver is not None:
                log.warning("unknown task %s (%s): killing it", status.task_id, state)
                self.driver.kill_task(status.task_id, status.agent_id)
            else:
                service.bus.publish("unknown_instance_terminated_event",
                                    instanceId=status.task_id, appId="", condition=state)
            return
        condition = InstanceCondition(state)
        now = self.clock.time()
        changes: dict[str, Any] = {"message": status.message}
        if condition is not task.condition:
            changes["condition"] = condition
            changes["condition_since"] = now
        if status.agent_id:
            changes["agent_id"] = status.agent_id
        if condition is InstanceCondition.RUNNING and task.started_at is None:
            changes["started_at"] = now
        health_changed = False
        if status.healthy is not None and condition.is_active:
            changes["health"] = _health_after(task.health, status.healthy, now, status.message)
            health_changed = status.healthy != task.healthy
            changes["healthy"] = status.healthy
        new = attrs.evolve(task, **changes)
        app = service.apps.get(task.app_id)
        if condition is InstanceCondition.RUNNING and app is not None:
            self.launch_queue.task_running(app, task.task_id)
        if condition.is_terminal:
            self.launch_queue.task_gone(task.task_id)
            self.readiness.forget(task.task_id)
            failed = condition in FAILURE_CONDITIONS or condition is InstanceCondition.FINISHED \
                or (condition is InstanceCondition.KILLED and not task.kill_requested)
            if failed:
                service.record_failure(task, state, status.message)
                if app is not None and app.version == task.version:
                    self.launch_queue.task_failed(app)
            if status.healthy is False and condition is InstanceCondition.KILLED:
                service.bus.publish("unhealthy_task_kill_event", appId=task.app_id,
                                    taskId=task.task_id, instanceId=task.instance_id,
                                    version=task.version, reason=status.message,
                                    host=task.host, slaveId=task.agent_id)
        durable = condition.is_terminal or "started_at" in changes or (
            "condition" in changes and condition is InstanceCondition.UNREACHABLE)
        service.task_record(new, durable=durable)
        service.count(f"tasks.updates.{state.lower()}")
        service.bus.publish(
            "status_update_event", slaveId=new.agent_id, taskId=new.task_id,
            taskStatus=state, message=status.message, appId=new.app_id, host=new.host,
            ipAddresses=[{"ipAddress": ip, "protocol": "IPv4"} for ip in new.ip_addresses],
            ports=list(new.ports), version=new.version)
        service.bus.publish(
            "instance_changed_event", instanceId=new.instance_id, condition=_condition_name(
                condition), runSpecId=new.app_id, agentId=new.agent_id, host=new.host,
            runSpecVersion=new.version)
        if health_changed:
            service.bus.publish("health_status_changed_event", appId=new.app_id,
                                taskId=new.task_id, instanceId=new.instance_id,
                                version=new.version, alive=bool(status.healthy))
            if status.healthy is False:
                service.bus.publish("failed_health_check_event", appId=new.app_id,
                                    taskId=new.task_id, instanceId=new.instance_id,
                                    healthCheck={}, version=new.version)
        if condition is InstanceCondition.RUNNING and app is not None and app.readiness_checks:
            self.readiness.watch(app, new)
        self.kick()

    # ------------------------------------------------------------ reconciliation

    def _start_reconciliation(self) -> None:
        driver = self.driver
        if driver is None:
            return
        known = [TaskStatus(task_id=t.task_id, state=TaskState(t.condition.value),
                            agent_id=t.agent_id)
                 for t in self.service.tracked.values() if t.condition.is_active]
        if known:
            driver.reconcile_tasks(known)
        if self._reconcile_task is None or self._reconcile_task.done():
            self._reconcile_task = asyncio.get_running_loop().create_task(
                self._periodic_reconciliation())

    async def _periodic_reconciliation(self) -> None:
        await asyncio.sleep(self.config.reconciliation_initial_delay)
        while True:
            if self.driver is not None and self.subscribed:
                log.info("reconciling all tasks with the master")
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


def _service_ports(app: App) -> tuple[int, ...]:
    from frameworks.marathon.service_ports import service_ports
    return service_ports(app)


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
