"""The framework's state and the operations the REST API performs on it.

Owns: :class:`MarathonService`, the implementation of
:class:`~frameworks.marathon.facade.ServiceFacade`: the current apps, the
tracked tasks, the running deployments and the last failures; every change
made through the API becomes a deployment (persisted before the call
returns), announced on the event bus.  Launching and killing — the offer
side — belong to :class:`~frameworks.marathon.scheduling.Scheduling`, which
reads this state and reports task changes back through :meth:`task_changed`.
Runs on the event loop only.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from typing import Any

import attrs

from frameworks.marathon.config import MarathonConfig
from frameworks.marathon.core import deployments as dep
from frameworks.marathon.core.model import App, InstanceCondition, MarathonTask, VersionInfo
from frameworks.marathon.core.reports import QueueEntry, TaskCounts, TaskFailure, count_tasks
from frameworks.marathon.core.service_ports import (
    ServicePortsExhausted,
    allocate_service_ports,
    service_ports,
    used_service_ports,
)
from frameworks.marathon.core.timestamps import iso, new_version, parse_iso
from frameworks.marathon.events import EventBus
from frameworks.marathon.facade import (
    AppExists,
    AppLocked,
    InvalidRequest,
    NotLeader,
    TooManyDeployments,
    UnknownApp,
    UnknownDeployment,
    UnknownTask,
)
from frameworks.marathon.state.instances import InstanceRepository
from frameworks.marathon.state.repository import (
    AppRepository,
    DeploymentRepository,
    FrameworkIdRepository,
)
from frameworks.marathon.state.store import Store
from frameworks.marathon.wire.app_json import parse_app, render_app
from frameworks.marathon.wire.deployment_json import (
    plan_from_record,
    plan_to_record,
    render_event_plan,
    render_step,
)
from frameworks.marathon.wire.prometheus import prometheus_text
from mesoslite import __version__
from mesoslite.clock import SYSTEM_CLOCK, Clock
from mesoslite.config_checks import mask_secrets
from mesoslite.promtext import DURATION_BUCKETS, HistogramFamily

log = logging.getLogger("mesoslite.marathon")

#: Task states that count as a failure for lastTaskFailure and the launch backoff.
FAILURE_CONDITIONS = frozenset({
    InstanceCondition.FAILED, InstanceCondition.ERROR, InstanceCondition.LOST,
    InstanceCondition.DROPPED, InstanceCondition.GONE, InstanceCondition.UNKNOWN,
})


def _locked_message(ids: list[str]) -> str:
    where = ids[0] if ids else ""
    return ("App is locked by one or more deployments. Override with the option "
            f"'?force=true'. View details at '/v2/deployments/{where}'.")


class MarathonService:
    """Apps, tasks and deployments of one (leading) framework instance."""

    def __init__(self, config: MarathonConfig, store: Store, *, election: Any = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self.election = election
        self.apps: dict[str, App] = {}
        self.tracked: dict[str, MarathonTask] = {}
        #: The same tasks by app id (kept by :meth:`task_record`), so per-app views
        #: never scan every task.
        self.by_app: dict[str, dict[str, MarathonTask]] = {}
        self.plans: dict[str, dep.DeploymentPlan] = {}
        self.failures: dict[str, TaskFailure] = {}
        #: Stored apps that could not be read: their tasks are left alone (never orphaned).
        self.quarantined: set[str] = set()
        self.framework_id: str | None = None
        self.bus = EventBus(self.now_iso,
                            max_queue=config.event_stream_max_outstanding_messages)
        self.app_repo = AppRepository(store, max_versions=config.zk_max_versions)
        self.deployment_repo = DeploymentRepository(store)
        self.framework_id_repo = FrameworkIdRepository(store)
        self.instance_repo = InstanceRepository(store)
        #: Set by the process that wires the offer side in (``scheduling.Scheduling``).
        self.scheduling: Any = None
        #: True from election until the state is loaded: the API answers 503 meanwhile
        #: (never from a half-loaded state, never proxying to itself).
        self.loading = False
        self.counters: dict[str, int] = {}
        #: Deployment durations by outcome (``/metrics/prometheus``); start times by plan id.
        self.deployment_durations = HistogramFamily(DURATION_BUCKETS, ("outcome",))
        self._deployment_started: dict[str, float] = {}
        self._write_lock = asyncio.Lock()
        self._last_version = ""

    # ------------------------------------------------------------ helpers

    def now_iso(self) -> str:
        """The current time as Marathon renders it."""
        return iso(self.clock.time())

    def count(self, name: str, n: int = 1) -> None:
        """Bump a counter shown in ``/metrics``."""
        self.counters[name] = self.counters.get(name, 0) + n

    def _next_version(self) -> str:
        """A fresh version, later than every version handed out before."""
        version = new_version(self.clock)
        if version <= self._last_version:
            version = iso(parse_iso(self._last_version) + 0.001)
        self._last_version = version
        return version

    def _kick(self) -> None:
        if self.scheduling is not None:
            self.scheduling.kick()

    # ------------------------------------------------------------ loading

    async def load(self) -> None:
        """Read apps, deployments, tasks and the framework id from the store."""
        self.apps.clear()
        self.quarantined.clear()
        for app_id, record in (await self.app_repo.all_current()).items():
            try:
                self.apps[app_id] = parse_app(record)
            except ValueError as exc:  # AppValidationError: a stored app that no longer parses
                log.error("stored app %s cannot be read (%s); its tasks are left running and "
                          "untouched until it is fixed or deleted", app_id, exc)
                self.quarantined.add(app_id)
        self.plans.clear()
        for plan_id, record in (await self.deployment_repo.all()).items():
            try:
                self.plans[plan_id] = self.plan_from_record(record)
            except ValueError as exc:
                log.error("stored deployment %s cannot be read (%s); dropping it", plan_id, exc)
                await self.deployment_repo.delete(plan_id)
        self.tracked = {}
        self.by_app = {}
        for task in await self.instance_repo.load_all():
            self.tracked[task.task_id] = task
            self.by_app.setdefault(task.app_id, {})[task.task_id] = task
        self.framework_id = await self.framework_id_repo.get()
        if self.apps:
            self._last_version = max(a.version for a in self.apps.values())
        log.info("loaded %d apps, %d tasks, %d deployments (framework id %s)",
                 len(self.apps), len(self.tracked), len(self.plans), self.framework_id)

    @staticmethod
    def plan_to_record(plan: dep.DeploymentPlan) -> dict[str, Any]:
        """A deployment as stored."""
        return plan_to_record(plan, render_app)

    @staticmethod
    def plan_from_record(record: dict[str, Any]) -> dep.DeploymentPlan:
        """Rebuild a stored deployment (ValueError on a malformed record)."""
        return plan_from_record(record, parse_app)

    def event_plan(self, plan: dep.DeploymentPlan) -> dict[str, Any]:
        """A deployment's ``plan`` as deployment events carry it (original and target)."""
        return render_event_plan(plan, render_app)

    # ------------------------------------------------------------ leadership / info

    @property
    def is_leader(self) -> bool:
        """True when this instance leads and its state is loaded."""
        return not self.loading and (self.election is None or self.election.is_leader)

    def leader_address(self) -> str | None:
        """``host:port`` of the leader's REST API (None while this one loads its state)."""
        if self.loading:
            return None
        if self.election is None:
            return f"{self.config.advertised_host}:{self.config.http_port}"
        return self.election.leader_http_address()

    def _require_leader(self) -> None:
        if not self.is_leader:
            raise NotLeader("not the leading instance", self.leader_address())

    def info(self) -> dict[str, Any]:
        """``/v2/info``."""
        cfg = self.config
        return {
            "name": "marathon",
            "version": __version__,
            "buildref": "mesoslite",
            "elected": self.is_leader,
            "leader": self.leader_address(),
            "frameworkId": self.framework_id,
            "marathon_config": {
                "master": mask_secrets(cfg.master),
                "framework_name": cfg.framework_name,
                "failover_timeout": int(cfg.failover_timeout),
                "hostname": cfg.advertised_host,
                "mesos_role": cfg.mesos_role,
                "mesos_user": cfg.mesos_user or None,
                "task_launch_timeout": int(cfg.task_launch_timeout * 1000),
                "decline_offer_duration": int(cfg.decline_offer_duration * 1000),
                "reconciliation_initial_delay": int(cfg.reconciliation_initial_delay * 1000),
                "reconciliation_interval": int(cfg.reconciliation_interval * 1000),
                "max_instances_per_offer": cfg.max_instances_per_offer,
                "checkpoint": True,
                "local_port_min": 10000,
                "local_port_max": 20000,
            },
            "zookeeper_config": {
                "zk": _mask_zk(cfg.zk) if cfg.zk else None,
                "zk_timeout": int(cfg.zk_session_timeout * 1000),
                "zk_max_versions": cfg.zk_max_versions,
            },
            "http_config": {
                "http_port": cfg.http_port,
                "https_port": None,
                "assets_path": None,
            },
        }

    async def abdicate(self) -> None:
        """Give up leadership."""
        self._require_leader()
        if self.election is None:
            raise InvalidRequest("this instance runs without --zk and cannot abdicate")
        await self.election.abdicate()

    def metrics(self) -> dict[str, Any]:
        """``/metrics`` JSON (Dropwizard-like layout)."""
        gauges = {
            "apps.count": len(self.apps),
            "tasks.count": len(self.tracked),
            "tasks.running": sum(1 for t in self.tracked.values()
                                 if t.condition is InstanceCondition.RUNNING),
            "deployments.count": len(self.plans),
            "events.subscribers": self.bus.subscriber_count,
            "leader": 1 if self.is_leader else 0,
        }
        if self.scheduling is not None:
            gauges.update(self.scheduling.gauges())
        return {
            "version": "4.0.0",
            "gauges": {k: {"value": v} for k, v in sorted(gauges.items())},
            "counters": {k: {"count": v} for k, v in sorted(self.counters.items())},
            "histograms": {}, "meters": {}, "timers": {},
        }

    def metrics_prometheus(self) -> str:
        """``/metrics/prometheus``: the metrics in Prometheus text (HTTP timings aside)."""
        states: dict[str, int] = {}
        for task in self.tracked.values():
            states[task.condition.value] = states.get(task.condition.value, 0) + 1
        return prometheus_text(self.metrics(), states, self.deployment_durations)

    def _deployment_ended(self, plan_id: str, outcome: str) -> None:
        """Observe a deployment's duration (unknown for plans recovered after a failover)."""
        started = self._deployment_started.pop(plan_id, None)
        if started is not None:
            self.deployment_durations.observe(self.clock.monotonic() - started, outcome)

    # ------------------------------------------------------------ reads

    def list_apps(self) -> list[App]:
        """Every app, sorted by id."""
        return [self.apps[k] for k in sorted(self.apps)]

    def get_app(self, app_id: str) -> App:
        """The current definition of ``app_id``."""
        app = self.apps.get(app_id)
        if app is None:
            raise UnknownApp(f"App '{app_id}' does not exist")
        return app

    async def app_versions(self, app_id: str) -> list[str]:
        """Kept versions, newest first."""
        self.get_app(app_id)
        return sorted(await self.app_repo.versions(app_id), reverse=True)

    async def app_version(self, app_id: str, version: str) -> App:
        """One kept version of ``app_id``."""
        self.get_app(app_id)
        record = await self.app_repo.version(app_id, version)
        if record is None:
            raise UnknownApp(f"App '{app_id}' does not exist in version {version}")
        return parse_app(record)

    def tasks(self, app_id: str | None = None) -> list[MarathonTask]:
        """Active tasks, of one app or of all, in launch order."""
        if app_id is not None:
            self.get_app(app_id)
        source = self.tracked.values() if app_id is None else self.app_tasks(app_id)
        found = [t for t in source
                 if t.condition.is_active and (app_id is None or t.app_id == app_id)]
        found.sort(key=lambda t: (t.staged_at or 0.0, t.task_id))
        return found

    def app_tasks(self, app_id: str) -> list[MarathonTask]:
        """Every tracked task of ``app_id`` (any condition), without scanning the others."""
        return list(self.by_app.get(app_id, {}).values())

    def task_counts(self, app_id: str) -> TaskCounts:
        """tasksStaged/Running/Healthy/Unhealthy."""
        return count_tasks(self.app_tasks(app_id))

    def last_task_failure(self, app_id: str) -> TaskFailure | None:
        """The app's latest failed task."""
        return self.failures.get(app_id)

    def deployments(self, app_id: str | None = None) -> list[dep.DeploymentPlan]:
        """Running deployments, oldest first."""
        plans = list(self.plans.values())
        if app_id is not None:
            plans = [p for p in plans if app_id in p.affected_app_ids]
        return plans

    def queue(self) -> list[QueueEntry]:
        """Apps waiting for launches."""
        return self.scheduling.queue_entries() if self.scheduling is not None else []

    def readiness_results(self, app_id: str) -> list[dict[str, Any]]:
        """readinessCheckResults of the app's tasks in a running deployment."""
        if self.scheduling is None:
            return []
        return self.scheduling.readiness_results(app_id)

    # ------------------------------------------------------------ writes

    async def create_app(self, app: App) -> dep.DeploymentPlan:
        """POST /v2/apps."""
        self._require_leader()
        async with self._write_lock:
            if app.id in self.apps:
                raise AppExists(f"An app with id [{app.id}] already exists.")
            return await self._deploy({app.id: app}, force=False)

    async def put_app(self, app: App, *, force: bool) -> dep.DeploymentPlan:
        """PUT /v2/apps/{id}: create or change one app."""
        self._require_leader()
        async with self._write_lock:
            return await self._deploy({app.id: app}, force=force)

    async def put_apps(self, apps: list[App], *, force: bool) -> dep.DeploymentPlan:
        """PUT /v2/apps: change several apps in one deployment."""
        self._require_leader()
        ids = [a.id for a in apps]
        if len(set(ids)) != len(ids):
            raise InvalidRequest("Object is not valid", [
                {"path": "/", "errors": ["Application ids must be unique in one request"]}])
        async with self._write_lock:
            return await self._deploy({a.id: a for a in apps}, force=force)

    async def rollback_app(self, app_id: str, version: str, *, force: bool
                           ) -> dep.DeploymentPlan:
        """Make a kept version current again (a new version of the same definition)."""
        self._require_leader()
        old = await self.app_version(app_id, version)
        async with self._write_lock:
            return await self._deploy({app_id: old}, force=force)

    async def restart_app(self, app_id: str, *, force: bool) -> dep.DeploymentPlan:
        """Replace every instance of the app (rolling, under its upgrade strategy)."""
        self._require_leader()
        async with self._write_lock:
            app = self.get_app(app_id)
            return await self._deploy({app_id: app}, force=force, restart={app_id})

    async def delete_app(self, app_id: str, *, force: bool) -> dep.DeploymentPlan:
        """Remove the app; its tasks are killed by the deployment."""
        self._require_leader()
        async with self._write_lock:
            self.get_app(app_id)
            return await self._deploy({app_id: None}, force=force)

    async def scale_app(self, app_id: str, instances: int, *, force: bool
                        ) -> dep.DeploymentPlan:
        """Change only the instance count (a scale deployment)."""
        self._require_leader()
        async with self._write_lock:
            app = self.get_app(app_id)
            return await self._deploy({app_id: attrs.evolve(app, instances=instances)},
                                      force=force)

    async def kill_tasks(self, task_ids: list[str], *, scale: bool, wipe: bool, force: bool
                         ) -> tuple[list[MarathonTask], dep.DeploymentPlan | None]:
        """Kill tasks; with ``scale`` lower each app's instances by the tasks killed."""
        self._require_leader()
        found: list[MarathonTask] = []
        for task_id in task_ids:
            task = self.tracked.get(task_id)
            if task is None or not task.condition.is_active:
                raise UnknownTask(f"Task '{task_id}' does not exist")
            found.append(task)
        plan = None
        if scale:
            per_app: dict[str, int] = {}
            for task in found:
                per_app[task.app_id] = per_app.get(task.app_id, 0) + 1
            async with self._write_lock:
                changes: dict[str, App | None] = {}
                for app_id, n in per_app.items():
                    app = self.apps.get(app_id)
                    if app is not None:
                        changes[app_id] = attrs.evolve(app, instances=max(app.instances - n, 0))
                if changes:
                    plan = await self._deploy(changes, force=force, killing=found)
        if plan is None:
            if self.scheduling is None:
                raise NotLeader("not leading yet: try again shortly", self.leader_address())
            for task in found:
                self.scheduling.kill(task, "killed through the API", wipe=wipe)
        return found, plan

    async def cancel_deployment(self, deployment_id: str, *, force: bool
                                ) -> dep.DeploymentPlan | None:
        """Forced: stop the deployment where it is.  Otherwise roll it back."""
        self._require_leader()
        async with self._write_lock:
            plan = self.plans.get(deployment_id)
            if plan is None:
                raise UnknownDeployment(f"DeploymentPlan {deployment_id} does not exist")
            await self._drop_plan(plan, "canceled" if force else "rolled back")
            if force:
                return None
            changes: dict[str, App | None] = {}
            for app_id in set(plan.original) | set(plan.target):
                original = plan.original.get(app_id)
                changes[app_id] = original
            return await self._deploy(changes, force=True)

    def reset_delay(self, app_id: str) -> None:
        """Reset the app's launch backoff."""
        self.get_app(app_id)
        if self.scheduling is None or not self.scheduling.reset_delay(app_id):
            raise UnknownApp(f"Application {app_id} not found in tasks queue.")

    def subscribe(self, event_types: frozenset[str] | None, remote: str) -> Any:
        """A new event-stream subscriber."""
        return self.bus.subscribe(event_types, remote)

    # ------------------------------------------------------------ deployments

    def _locking_plans(self, app_ids: Iterable[str]) -> list[dep.DeploymentPlan]:
        ids = set(app_ids)
        return [p for p in self.plans.values() if ids & set(p.affected_app_ids)]

    async def _deploy(self, changes: dict[str, App | None], *, force: bool,
                      restart: set[str] | frozenset[str] = frozenset(),
                      killing: list[MarathonTask] | None = None) -> dep.DeploymentPlan:
        """Turn ``changes`` (app id → new definition, None: delete) into a deployment."""
        for app_id, app in changes.items():
            if app is None and app_id not in self.apps:
                raise UnknownApp(f"App '{app_id}' does not exist")
        locking = self._locking_plans(changes)
        if locking and not force:
            ids = [p.id for p in locking]
            raise AppLocked(_locked_message(ids), ids)
        if len(self.plans) - len(locking) >= self.config.max_running_deployments:
            raise TooManyDeployments(
                f"Max number of concurrent deployments is {self.config.max_running_deployments}."
                " Please wait until other deployments complete.")
        new_apps = [a for k, a in changes.items() if a is not None and k not in self.apps]
        if self.config.max_apps and len(self.apps) + len(new_apps) > self.config.max_apps:
            raise InvalidRequest("Object is not valid", [
                {"path": "/", "errors": [
                    f"at most {self.config.max_apps} apps are allowed (--max_apps)"]}])
        self._check_roles(changes)
        for plan in locking:
            await self._drop_plan(plan, "canceled by a forced change")
        version = self._next_version()
        original = {k: self.apps[k] for k in changes if k in self.apps}
        target: dict[str, App] = {}
        taken = used_service_ports(a for k, a in self.apps.items() if k not in changes)
        for app_id, app in changes.items():
            if app is None:
                continue
            target[app_id] = self._stamp(app, original.get(app_id), version,
                                         restart=app_id in restart, taken=taken)
        plan = dep.plan(original, target, version=version, id=str(uuid.uuid4()))
        # Deleted apps go first: should we fail over before the deployment is stored,
        # their tasks are orphans that the next leader kills anyway.
        for app_id, change in changes.items():
            if change is None:
                await self.app_repo.delete_app(app_id)
                self.quarantined.discard(app_id)
        for app_id, app in target.items():
            await self.app_repo.store_app(app_id, app.version, render_app(app))
        await self.deployment_repo.store_deployment(plan.id, self.plan_to_record(plan))
        scheduling = self.scheduling
        for app_id, change in changes.items():
            if change is None:
                self.apps.pop(app_id, None)
                self.failures.pop(app_id, None)
                if scheduling is not None:
                    scheduling.launch_queue.remove(app_id)
            elif scheduling is not None and (
                    app_id not in original or not _only_scaled(original[app_id], change)):
                scheduling.launch_queue.app_updated(target[app_id])
        if scheduling is not None:
            scheduling.wants.clear()  # until the next pass recomputes them from the new state
        self.apps.update(target)
        self.plans[plan.id] = plan
        if killing and self.scheduling is not None:
            for task in killing:
                self.scheduling.kill(task, "killed through the API (scale)", wipe=False)
        self.count("deployments.started")
        self._deployment_started[plan.id] = self.clock.monotonic()
        for app in target.values():
            self.bus.publish("api_post_event", clientIp="", uri=f"/v2/apps{app.id}",
                             appDefinition=render_app(app))
        self.bus.publish("group_change_success", groupId="/", version=version)
        self._announce_step(plan)
        self._kick()
        return plan

    def _check_roles(self, changes: dict[str, App | None]) -> None:
        """An app's ``role`` must be the framework's (--mesos_role): its tasks can run under
        no other, so any other is refused (422 naming /role) rather than ignored."""
        role = self.config.mesos_role
        wrong = [a for a in changes.values() if a is not None and a.role not in (None, role)]
        if wrong:
            raise InvalidRequest("Object is not valid", [{"path": "/role", "errors": [
                f"app {a.id}: role {a.role!r} is not the framework's role {role!r} "
                f"(--mesos_role); its tasks could run under no other" for a in wrong]}])

    def _announce_step(self, plan: dep.DeploymentPlan) -> None:
        self.bus.publish("deployment_info", plan=self.event_plan(plan),
                         currentStep=render_step(plan.current_actions))

    def _stamp(self, app: App, old: App | None, version: str, *, restart: bool,
               taken: set[int]) -> App:
        """Give ``app`` its new version, version info and service ports."""
        try:
            app = allocate_service_ports(app, taken, previous=old)
        except ServicePortsExhausted as exc:
            raise InvalidRequest("Object is not valid", [
                {"path": "/portDefinitions", "errors": [str(exc)]}]) from None
        taken.update(p for p in service_ports(app) if p)
        if old is not None and not restart and _only_scaled(old, app):
            info = VersionInfo(last_scaling_at=version,
                               last_config_change_at=old.version_info.last_config_change_at
                               if old.version_info else old.version)
        else:
            info = VersionInfo(last_scaling_at=version, last_config_change_at=version)
        return attrs.evolve(app, version=version, version_info=info)

    async def _drop_plan(self, plan: dep.DeploymentPlan, why: str) -> None:
        self.plans.pop(plan.id, None)
        await self.deployment_repo.delete(plan.id)
        self.count("deployments.failed")
        self._deployment_ended(plan.id, "failed")
        log.info("deployment %s %s", plan.id, why)
        self.bus.publish("deployment_failed", id=plan.id, plan=self.event_plan(plan),
                         reason=why)

    async def advance_plan(self, plan: dep.DeploymentPlan) -> None:
        """The current step of ``plan`` is done: go to the next one, or finish."""
        if self.plans.get(plan.id) is not plan:
            return  # canceled meanwhile
        self.bus.publish("deployment_step_success", plan=self.event_plan(plan),
                         currentStep=render_step(plan.current_actions))
        plan = plan.advanced()
        if not plan.finished:
            self.plans[plan.id] = plan
            await self.deployment_repo.store_deployment(plan.id, self.plan_to_record(plan))
            self._announce_step(plan)
            return
        self.plans.pop(plan.id, None)
        await self.deployment_repo.delete(plan.id)
        self.count("deployments.succeeded")
        self._deployment_ended(plan.id, "succeeded")
        self.bus.publish("deployment_success", id=plan.id, plan=self.event_plan(plan))
        for app_id in plan.original:
            if app_id not in plan.target:
                self.bus.publish("app_terminated_event", appId=app_id)

    # ------------------------------------------------------------ task bookkeeping

    def record_failure(self, task: MarathonTask, state: str, message: str) -> None:
        """Remember the app's latest task failure (lastTaskFailure)."""
        self.failures[task.app_id] = TaskFailure(
            app_id=task.app_id, task_id=task.task_id, state=state, message=message,
            host=task.host, agent_id=task.agent_id, timestamp=self.clock.time(),
            version=task.version)

    def task_record(self, task: MarathonTask, *, durable: bool = True) -> None:
        """Track ``task``; ``durable`` also stages its stored record for the next flush.

        Creation, the first RUNNING, kill requests and the end of a task are
        durable; other changes (health, messages) are rebuilt by reconciliation
        after a failover and are not written.
        """
        if task.condition.is_terminal:
            self.tracked.pop(task.task_id, None)
            per_app = self.by_app.get(task.app_id)
            if per_app is not None:
                per_app.pop(task.task_id, None)
                if not per_app:
                    del self.by_app[task.app_id]
            self.instance_repo.stage_delete(task.task_id)
            return
        self.tracked[task.task_id] = task
        self.by_app.setdefault(task.app_id, {})[task.task_id] = task
        if durable:
            self.instance_repo.stage_put(task)


def _only_scaled(old: App, new: App) -> bool:
    """True when ``new`` differs from ``old`` in its instance count only."""
    def stripped(app: App) -> App:
        return attrs.evolve(app, instances=0, version="", version_info=None)

    return stripped(old) == stripped(new)


def _mask_zk(url: str) -> str:
    """``zk://user:secret@h/p`` → ``zk://user:********@h/p`` (secrets never shown)."""
    head, at, tail = url.partition("@")
    if not at or ":" not in head[len("zk://"):]:
        return url
    user = head[len("zk://"):].split(":", 1)[0]
    return f"zk://{user}:********@{tail}"
