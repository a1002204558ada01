"""An in-memory ServiceFacade for exercising the Marathon REST API handlers.

Owns: :class:`FakeService`, a test fake (no scheduling, no store): apps and
their versions in dicts, tasks added by the test, deployment plans that stay
"running" until :meth:`FakeService.finish_deployments` (so the 409 locking
rules can be tested), a real :class:`~frameworks.marathon.events.EventBus`
and a call log.  The lead's integration tests cover the real service.
"""

from __future__ import annotations

from typing import Any

import attrs

from frameworks.marathon.core import deployments as dep
from frameworks.marathon.core.model import (
    App,
    InstanceCondition,
    MarathonTask,
    VersionInfo,
    new_instance_id,
    task_id_for,
)
from frameworks.marathon.core.reports import QueueEntry, TaskCounts, TaskFailure
from frameworks.marathon.core.timestamps import iso
from frameworks.marathon.events import EventBus
from frameworks.marathon.facade import (
    AppExists,
    AppLocked,
    UnknownApp,
    UnknownDeployment,
    UnknownTask,
)
from frameworks.marathon.wire.deployment_json import render_deployment

#: Version timestamps start here (2026-01-02T03:04:05Z) and tick one second per write.
BASE_TIME = 1767323045.0


def locked_message(ids: list[str]) -> str:
    """Marathon's 409 message for an app locked by deployments."""
    return ("App is locked by one or more deployments. Override with the option "
            f"'?force=true'. View details at '/v2/deployments/{ids[0]}'.")


class FakeService:
    """A ServiceFacade held entirely in memory."""

    def __init__(self, *, leader: bool = True, leader_address: str | None = "127.0.0.1:8080"
                 ) -> None:
        self.leading = leader
        self.leader = leader_address
        self.apps: dict[str, App] = {}
        self.versions: dict[str, list[App]] = {}
        self.task_list: list[MarathonTask] = []
        self.plans: list[dep.DeploymentPlan] = []
        self.failures: dict[str, TaskFailure] = {}
        self.queue_entries: list[QueueEntry] = []
        self.readiness: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.now = BASE_TIME
        self.bus = EventBus(lambda: iso(self.now), max_queue=100)
        self._plan_seq = 0

    # -- helpers for tests -------------------------------------------------------
    def tick(self) -> str:
        """Advance the fake clock one second; the new version string."""
        self.now += 1.0
        return iso(self.now)

    def finish_deployments(self) -> None:
        """Every running deployment completes."""
        for plan in self.plans:
            self.bus.publish("deployment_success", id=plan.id, plan=render_deployment(plan))
        self.plans.clear()

    def add_task(self, app_id: str, *, host: str = "agent-1", ports: tuple[int, ...] = (31000,),
                 condition: InstanceCondition = InstanceCondition.RUNNING,
                 healthy: bool | None = None) -> MarathonTask:
        """Add an active task of ``app_id``."""
        app = self.apps[app_id]
        instance = new_instance_id(app_id)
        task = MarathonTask(
            task_id=task_id_for(instance), instance_id=instance, app_id=app_id,
            version=app.version, condition=condition, agent_id="agent-id-1", host=host,
            ports=ports, service_ports=tuple(p.port for p in app.port_definitions),
            staged_at=self.now, started_at=self.now, healthy=healthy,
            ip_addresses=("127.0.0.1",))
        self.task_list.append(task)
        return task

    def publish(self, event_type: str, **fields: Any) -> dict[str, Any]:
        """Publish an event on the bus."""
        return self.bus.publish(event_type, **fields)

    def _locks(self, app_ids: set[str]) -> list[dep.DeploymentPlan]:
        return [p for p in self.plans if app_ids & set(p.affected_app_ids)]

    def _deploy(self, target: dict[str, App | None], force: bool) -> dep.DeploymentPlan:
        """Apply ``target`` (None: delete) as one deployment; 409 when locked and not forced."""
        locking = self._locks(set(target))
        if locking and not force:
            ids = [p.id for p in locking]
            raise AppLocked(locked_message(ids), ids)
        for plan in locking:
            self.plans.remove(plan)
        version = self.tick()
        original = dict(self.apps)
        for app_id, app in target.items():
            if app is None:
                self.apps.pop(app_id, None)
                self.task_list = [t for t in self.task_list if t.app_id != app_id]
                continue
            old = self.apps.get(app_id)
            scaling_only = old is not None and attrs.evolve(
                old, instances=app.instances, version="", version_info=None) == attrs.evolve(
                app, version="", version_info=None)
            config_at = old.version_info.last_config_change_at \
                if scaling_only and old is not None and old.version_info else version
            stored = attrs.evolve(app, version=version,
                                  version_info=VersionInfo(version, config_at))
            self.apps[app_id] = stored
            self.versions.setdefault(app_id, []).insert(0, stored)
        self._plan_seq += 1
        plan = dep.plan(original, dict(self.apps), version, f"deployment-{self._plan_seq}")
        self.plans.append(plan)
        self.bus.publish("deployment_info", plan=render_deployment(plan),
                         currentStep={"actions": []})
        return plan

    # -- leadership and info -------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        """Whether this fake leads."""
        return self.leading

    def leader_address(self) -> str | None:
        """The configured leader address."""
        return self.leader

    def info(self) -> dict[str, Any]:
        """A /v2/info document."""
        return {"name": "mesoslite-marathon", "version": "1.0.0", "elected": self.leading,
                "leader": self.leader, "frameworkId": "fw-1", "marathon_config": {},
                "zookeeper_config": {}, "http_config": {}}

    async def abdicate(self) -> None:
        """Record the abdication."""
        self.calls.append(("abdicate",))
        self.leading = False

    def metrics(self) -> dict[str, Any]:
        """A small metrics document."""
        return {"counters": {"apps": len(self.apps)}, "gauges": {}, "timers": {}}

    # -- reads -----------------------------------------------------------------------
    def list_apps(self) -> list[App]:
        """Apps sorted by id."""
        return [self.apps[k] for k in sorted(self.apps)]

    def get_app(self, app_id: str) -> App:
        """One app or UnknownApp."""
        try:
            return self.apps[app_id]
        except KeyError:
            raise UnknownApp(f"App '{app_id}' does not exist") from None

    async def app_versions(self, app_id: str) -> list[str]:
        """Versions newest first."""
        self.get_app(app_id)
        return [a.version for a in self.versions.get(app_id, [])]

    async def app_version(self, app_id: str, version: str) -> App:
        """One stored version."""
        for app in self.versions.get(app_id, []):
            if app.version == version:
                return app
        raise UnknownApp(f"App '{app_id}' does not exist in version {version}")

    def tasks(self, app_id: str | None = None) -> list[MarathonTask]:
        """Active tasks."""
        if app_id is not None:
            self.get_app(app_id)
        return [t for t in self.task_list if app_id is None or t.app_id == app_id]

    def task_counts(self, app_id: str) -> TaskCounts:
        """Counts from the task list."""
        tasks = [t for t in self.task_list if t.app_id == app_id]
        running = [t for t in tasks if t.condition is InstanceCondition.RUNNING]
        return TaskCounts(staged=sum(t.condition is InstanceCondition.STAGING for t in tasks),
                          running=len(running),
                          healthy=sum(t.healthy is True for t in running),
                          unhealthy=sum(t.healthy is False for t in running))

    def last_task_failure(self, app_id: str) -> TaskFailure | None:
        """The failure the test set."""
        return self.failures.get(app_id)

    def deployments(self, app_id: str | None = None) -> list[Any]:
        """Running plans."""
        return [p for p in self.plans if app_id is None or app_id in p.affected_app_ids]

    def queue(self) -> list[QueueEntry]:
        """The entries the test set."""
        return list(self.queue_entries)

    def readiness_results(self, app_id: str) -> list[dict[str, Any]]:
        """The results the test set."""
        return list(self.readiness.get(app_id, []))

    # -- writes ----------------------------------------------------------------------
    async def create_app(self, app: App) -> Any:
        """POST /v2/apps."""
        self.calls.append(("create_app", app.id))
        if app.id in self.apps:
            raise AppExists(f"An app with id [{app.id}] already exists.")
        return self._deploy({app.id: app}, force=False)

    async def put_app(self, app: App, *, force: bool) -> Any:
        """PUT /v2/apps/{id}."""
        self.calls.append(("put_app", app.id, force))
        return self._deploy({app.id: app}, force)

    async def put_apps(self, apps: list[App], *, force: bool) -> Any:
        """PUT /v2/apps."""
        self.calls.append(("put_apps", [a.id for a in apps], force))
        return self._deploy({a.id: a for a in apps}, force)

    async def rollback_app(self, app_id: str, version: str, *, force: bool) -> Any:
        """Roll back to a stored version."""
        self.calls.append(("rollback_app", app_id, version, force))
        old = await self.app_version(app_id, version)
        return self._deploy({app_id: old}, force)

    async def restart_app(self, app_id: str, *, force: bool) -> Any:
        """Restart: a new version of the same definition."""
        self.calls.append(("restart_app", app_id, force))
        return self._deploy({app_id: self.get_app(app_id)}, force)

    async def delete_app(self, app_id: str, *, force: bool) -> Any:
        """Delete the app."""
        self.calls.append(("delete_app", app_id, force))
        self.get_app(app_id)
        return self._deploy({app_id: None}, force)

    async def kill_tasks(self, task_ids: list[str], *, scale: bool, wipe: bool, force: bool
                         ) -> tuple[list[MarathonTask], Any | None]:
        """Remove the tasks; with ``scale`` lower the apps' instances."""
        self.calls.append(("kill_tasks", list(task_ids), scale, wipe, force))
        by_id = {t.task_id: t for t in self.task_list}
        for task_id in task_ids:
            if task_id not in by_id:
                raise UnknownTask(f"Task '{task_id}' does not exist")
        killed = [attrs.evolve(by_id[i], condition=InstanceCondition.KILLING) for i in task_ids]
        self.task_list = [t for t in self.task_list if t.task_id not in set(task_ids)]
        plan = None
        if scale:
            target: dict[str, App | None] = {}
            for task in killed:
                app = target.get(task.app_id) or self.apps[task.app_id]
                target[task.app_id] = attrs.evolve(app, instances=max(0, app.instances - 1))
            plan = self._deploy(target, force)
        return killed, plan

    async def cancel_deployment(self, deployment_id: str, *, force: bool) -> Any | None:
        """Stop (force) or roll back a running deployment."""
        self.calls.append(("cancel_deployment", deployment_id, force))
        plan = next((p for p in self.plans if p.id == deployment_id), None)
        if plan is None:
            raise UnknownDeployment(f"DeploymentPlan {deployment_id} does not exist")
        self.plans.remove(plan)
        if force:
            return None
        revert: dict[str, App | None] = {a: plan.original.get(a) for a in plan.affected_app_ids}
        return self._deploy(revert, force=True)

    def reset_delay(self, app_id: str) -> None:
        """DELETE /v2/queue/{id}/delay."""
        self.calls.append(("reset_delay", app_id))
        if not any(e.app.id == app_id for e in self.queue_entries):
            raise UnknownApp(f"Application {app_id} not found in tasks queue.")

    # -- events ----------------------------------------------------------------------
    def subscribe(self, event_types: frozenset[str] | None, remote: str) -> Any:
        """A bus subscription."""
        self.calls.append(("subscribe", event_types, remote))
        return self.bus.subscribe(event_types, remote)


# -- a real HTTP server and client for component tests ------------------------------


@attrs.define
class Reply:
    """One HTTP answer: status, headers, raw body and the decoded JSON (None if not JSON)."""

    code: int
    headers: Any
    body: bytes
    json: Any = None

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", "replace")


class ApiServer:
    """The REST API of ``service`` served on 127.0.0.1 (an ephemeral port)."""

    def __init__(self, service: Any, **options: Any) -> None:
        from frameworks.marathon.api.routes import make_app, start_http_server

        self.service = service
        self.app = make_app(service, **options)
        self.server, self.port = start_http_server(
            self.app, host="127.0.0.1", port=0,
            max_body_bytes=options.get("max_body_bytes", 1024 * 1024))

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop listening."""
        self.server.stop()

    async def call(self, method: str, path: str, body: Any = None, *,
                   raw: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
        """One request; ``body`` is sent as JSON, ``raw`` as is."""
        import json as _json

        from tornado.httpclient import AsyncHTTPClient, HTTPRequest

        data = raw if raw is not None else (
            _json.dumps(body).encode() if body is not None else None)
        writes = data is not None or method in ("POST", "PUT", "PATCH")
        send_headers = {"Content-Type": "application/json"} if writes else {}
        send_headers.update(headers or {})
        if data is None and method in ("POST", "PUT"):
            data = b""
        request = HTTPRequest(f"http://{self.address}{path}", method=method, body=data,
                              headers=send_headers, allow_nonstandard_methods=True,
                              follow_redirects=False, request_timeout=20)
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        reply = Reply(response.code, response.headers, response.body or b"")
        if response.headers.get("Content-Type", "").startswith("application/json") \
                and reply.body:
            reply.json = _json.loads(reply.body)
        return reply
