"""``/v2/apps`` and ``/v2/tasks`` of the Marathon REST API (tornado handlers).

Owns: the app routes (list with filters and embeds, create, bulk and
partial update, rollback, delete, restart, versions, an app's tasks and
killing them) and the task routes (``GET /v2/tasks`` as JSON or
``text/plain``, ``POST /v2/tasks/delete``), plus :class:`AppViews`, which
renders apps with their embedded extras for this module and the groups API.
"""

from __future__ import annotations

import asyncio
from typing import Any

from frameworks.marathon.api.base import (
    DEPLOYMENT_HEADER,
    ApiError,
    ApiHandler,
    deployment_result,
    invalid,
    normalize_id,
)
from frameworks.marathon.core.model import App, InstanceCondition, MarathonTask
from frameworks.marathon.core.reports import TaskCounts, count_tasks
from frameworks.marathon.facade import UnknownApp, UnknownTask
from frameworks.marathon.wire.app_json import parse_app, render_app
from frameworks.marathon.wire.deployment_json import render_deployment
from frameworks.marathon.wire.render import (
    app_extras,
    deployment_ref,
    labels_match,
    parse_embeds,
    parse_label_selector,
    tasks_text,
)
from frameworks.marathon.wire.task_json import render_task

#: Apps rendered between two yields to the event loop.
YIELD_EVERY = 200
#: Keys of an app that only the server writes: ignored when a client sends them back.
READ_ONLY_KEYS = frozenset({
    "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy", "deployments",
    "tasks", "lastTaskFailure", "readinessCheckResults", "taskStats", "versionInfo",
    "version", "taskFailures",
})
#: Embeds the single-app GET always has.
SINGLE_APP_EMBEDS = frozenset({"counts", "tasks", "deployments", "lastTaskFailure",
                               "readiness"})
#: Embeds every app list has (Marathon keeps counts and deployments for old clients).
LIST_EMBEDS = frozenset({"counts", "deployments"})
#: Most task ids one POST /v2/tasks/delete may name.
MAX_TASK_IDS = 10_000


class AppViews:
    """Renders apps and tasks with embeds, reading shared data once per request."""

    def __init__(self, service: Any, embeds: set[str] | frozenset[str]) -> None:
        self.service = service
        self.embeds = set(embeds)
        self._tasks: dict[str, list[MarathonTask]] | None = None
        self._deployments: dict[str, list[str]] | None = None

    def tasks_of(self, app_id: str) -> list[MarathonTask]:
        """The app's active tasks (all tasks are read once per request)."""
        if self._tasks is None:
            self._tasks = {}
            for task in self.service.tasks():
                self._tasks.setdefault(task.app_id, []).append(task)
        return self._tasks.get(app_id, [])

    def counts_of(self, app_id: str) -> TaskCounts:
        """The app's task counters, from the tasks read once per request.

        Not ``service.task_counts`` (one pass over every task per app): a list
        of A apps with T tasks would cost A x T.
        """
        return count_tasks(self.tasks_of(app_id))

    def deployments_of(self, app_id: str) -> list[str]:
        """Ids of the running deployments affecting the app."""
        if self._deployments is None:
            self._deployments = {}
            for plan in self.service.deployments():
                rendered = render_deployment(plan)
                for affected in rendered.get("affectedApps", []):
                    self._deployments.setdefault(affected, []).append(rendered["id"])
        return self._deployments.get(app_id, [])

    def app(self, app: App) -> dict[str, Any]:
        """The app's JSON with the embeds asked for."""
        embeds = self.embeds
        if not embeds:
            return render_app(app)
        extra = app_extras(
            embeds,
            counts=self.counts_of(app.id) if embeds & {"counts", "taskStats"} else None,
            deployment_ids=self.deployments_of(app.id) if "deployments" in embeds else None,
            tasks=[render_task(t, app) for t in self.tasks_of(app.id)]
            if "tasks" in embeds else None,
            readiness=self.service.readiness_results(app.id) if "readiness" in embeds else None,
            failure=self.service.last_task_failure(app.id)
            if "lastTaskFailure" in embeds else None)
        return render_app(app, extra=extra)

    async def apps(self, apps: list[App]) -> list[dict[str, Any]]:
        """Several apps, yielding to the loop now and then."""
        rendered = []
        for index, app in enumerate(apps, 1):
            rendered.append(self.app(app))
            if index % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        return rendered


def prepare_definition(obj: dict[str, Any], app_id: str | None = None) -> dict[str, Any]:
    """A definition from a client without the read-only keys, ``id`` absolute.

    With ``app_id`` (a path id), a body ``id`` must name the same app.
    """
    body = {k: v for k, v in obj.items() if k not in READ_ONLY_KEYS}
    raw = body.get("id")
    if raw is not None and not isinstance(raw, str):
        raise invalid("/id", f"expected a string, got {type(raw).__name__}")
    if app_id is not None:
        if raw is not None and normalize_id(raw) != app_id:
            raise invalid("/id", f"the id in the body ({raw[:100]!r}) does not match the "
                                 f"id in the path ({app_id!r})")
        body["id"] = app_id
    elif isinstance(raw, str) and not raw.startswith("/"):
        body["id"] = "/" + raw
    return body


def current_app(service: Any, app_id: str) -> App | None:
    """The app's current definition, None when there is no such app."""
    try:
        return service.get_app(app_id)
    except UnknownApp:
        return None


def merge_definition(service: Any, obj: dict[str, Any], app_id: str | None,
                     partial: bool) -> tuple[App, bool]:
    """The App a PUT asks for (partial: merged onto the current one) and whether it is new."""
    body = prepare_definition(obj, app_id)
    target = app_id or (body["id"] if isinstance(body.get("id"), str) else None)
    if target is None:
        raise invalid("/id", "an id is required")
    current = current_app(service, normalize_id(target))
    if current is not None and partial:
        return parse_app(body, base=current, partial=True), False
    return parse_app(body), current is None


def partial_update(handler: ApiHandler) -> bool:
    """Marathon's ``partialUpdate`` query flag (``partial`` accepted too); default true."""
    if handler.get_query_argument("partialUpdate", None) is not None:
        return handler.bool_arg("partialUpdate", True)
    return handler.bool_arg("partial", True)


def wants_text(accept: str) -> bool:
    """True when the Accept header prefers ``text/plain`` over JSON."""
    best: dict[str, tuple[float, int]] = {}
    for index, part in enumerate(accept.split(",")):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        q = 1.0
        for param in fields[1:]:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if media in ("text/plain", "application/json") and media not in best:
            best[media] = (q, index)
    if "text/plain" not in best or best["text/plain"][0] <= 0:
        return False
    if "application/json" not in best:
        return True
    text_q, text_i = best["text/plain"]
    json_q, json_i = best["application/json"]
    return text_q > json_q or (text_q == json_q and text_i < json_i)


class AppsHandler(ApiHandler):
    """``/v2/apps``: list (GET), create (POST), create or update several (PUT)."""

    async def get(self) -> None:
        """``{"apps": [...]}`` filtered by ``cmd``, ``id``, ``label``, with ``embed``s."""
        cmd = self.get_query_argument("cmd", None)
        id_part = self.get_query_argument("id", None)
        label = self.get_query_argument("label", None)
        selector = None
        if label:
            try:
                selector = parse_label_selector(label)
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None
        apps = [a for a in self.service.list_apps()
                if (not cmd or (a.cmd is not None and cmd in a.cmd))
                and (not id_part or id_part.lower() in a.id.lower())
                and (selector is None or labels_match(a.labels, selector))]
        views = AppViews(self.service,
                         parse_embeds(self.get_query_arguments("embed")) | LIST_EMBEDS)
        self.write_json({"apps": await views.apps(apps)})

    async def post(self) -> None:
        """Create one app: 201 with the App, ``Location`` and ``Marathon-Deployment-Id``."""
        body = prepare_definition(self.json_object())
        app = parse_app(body)
        plan = await self.service.create_app(app)
        created = current_app(self.service, app.id) or app
        ref = deployment_ref(plan)
        extra: dict[str, Any] = {"tasksStaged": 0, "tasksRunning": 0, "tasksHealthy": 0,
                                 "tasksUnhealthy": 0,
                                 "deployments": [{"id": ref[0]}] if ref else [],
                                 "tasks": []}
        if ref:
            self.set_header(DEPLOYMENT_HEADER, ref[0])
        self.set_header("Location", f"/v2/apps{created.id}")
        self.write_json(render_app(created, extra=extra), 201)

    async def put(self) -> None:
        """Create or (partially) update several apps in one deployment."""
        value = self.json_body()
        if not isinstance(value, list):
            raise invalid("/", "expected a JSON array of app definitions")
        if not value:
            raise invalid("/", "expected at least one app definition")
        partial = partial_update(self)
        apps: list[App] = []
        seen: set[str] = set()
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise invalid(f"/{index}", "expected a JSON object")
            if not isinstance(item.get("id"), str):
                raise invalid(f"/{index}/id", "an id (string) is required")
            app, _new = merge_definition(self.service, item, None, partial)
            if app.id in seen:
                raise invalid(f"/{index}/id", f"app {app.id} is given more than once")
            seen.add(app.id)
            apps.append(app)
        plan = await self.service.put_apps(apps, force=self.bool_arg("force"))
        deployment_result(self, plan)


class AppHandler(ApiHandler):
    """``/v2/apps/{id}``: show (GET), update or roll back (PUT), patch (PATCH), destroy (DELETE)."""

    async def get(self, raw_id: str) -> None:
        """``{"app": App}`` with tasks, counts, deployments, readiness and lastTaskFailure.

        ``/v2/apps/grp/*`` lists the apps under a group as ``{"apps": [...]}``.
        """
        embeds = parse_embeds(self.get_query_arguments("embed"))
        if raw_id == "*" or raw_id.endswith("/*"):
            prefix = normalize_id(raw_id[:-1])
            prefix = prefix if prefix.endswith("/") else prefix + "/"
            apps = [a for a in self.service.list_apps() if a.id.startswith(prefix)]
            views = AppViews(self.service, embeds | LIST_EMBEDS)
            self.write_json({"apps": await views.apps(apps)})
            return
        app = self.service.get_app(normalize_id(raw_id))
        self.write_json({"app": AppViews(self.service, embeds | SINGLE_APP_EMBEDS).app(app)})

    async def put(self, raw_id: str) -> None:
        """Partial update (``?partial=false`` replaces), or ``{"version": v}`` to roll back."""
        app_id = normalize_id(raw_id)
        obj = self.json_object()
        force = self.bool_arg("force")
        if "version" in obj and set(obj) <= {"id", "version"}:
            version = obj["version"]
            if not isinstance(version, str) or not version:
                raise invalid("/version", "expected a version string (an ISO-8601 time)")
            prepare_definition(obj, app_id)
            plan = await self.service.rollback_app(app_id, version, force=force)
            deployment_result(self, plan)
            return
        app, new = merge_definition(self.service, obj, app_id, partial_update(self))
        plan = await self.service.put_app(app, force=force)
        if new:
            self.set_header("Location", f"/v2/apps{app.id}")
        deployment_result(self, plan, 201 if new else 200)

    async def patch(self, raw_id: str) -> None:
        """Partial update of an existing app (404 when it does not exist), as PUT's default."""
        app_id = normalize_id(raw_id)
        self.service.get_app(app_id)
        obj = self.json_object()
        app, _new = merge_definition(self.service, obj, app_id, True)
        plan = await self.service.put_app(app, force=self.bool_arg("force"))
        deployment_result(self, plan)

    async def delete(self, raw_id: str) -> None:
        """Destroy the app (a deployment that stops its tasks)."""
        plan = await self.service.delete_app(normalize_id(raw_id),
                                             force=self.bool_arg("force"))
        deployment_result(self, plan)


class AppRestartHandler(ApiHandler):
    """``POST /v2/apps/{id}/restart``: replace every instance (rolling)."""

    async def post(self, raw_id: str) -> None:
        """Start the restart deployment."""
        plan = await self.service.restart_app(normalize_id(raw_id),
                                              force=self.bool_arg("force"))
        deployment_result(self, plan)


class AppVersionsHandler(ApiHandler):
    """``GET /v2/apps/{id}/versions``: ``{"versions": [...]}``, newest first."""

    async def get(self, raw_id: str) -> None:
        """List the stored versions."""
        versions = await self.service.app_versions(normalize_id(raw_id))
        self.write_json({"versions": list(versions)})


class AppVersionHandler(ApiHandler):
    """``GET /v2/apps/{id}/versions/{version}``: that version as a bare App."""

    async def get(self, raw_id: str, version: str) -> None:
        """Show one stored version."""
        app = await self.service.app_version(normalize_id(raw_id), version)
        self.write_json(render_app(app))


def _kill_args(handler: ApiHandler) -> dict[str, bool]:
    """The ``scale``/``wipe``/``force`` flags of a kill request."""
    return {"scale": handler.bool_arg("scale"), "wipe": handler.bool_arg("wipe"),
            "force": handler.bool_arg("force")}


def _tasks_json(service: Any, tasks: list[MarathonTask]) -> list[dict[str, Any]]:
    """Tasks rendered with their apps."""
    apps: dict[str, App | None] = {}
    rendered = []
    for task in tasks:
        if task.app_id not in apps:
            apps[task.app_id] = current_app(service, task.app_id)
        rendered.append(render_task(task, apps[task.app_id]))
    return rendered


class AppTasksHandler(ApiHandler):
    """``/v2/apps/{id}/tasks``: list (GET) or kill (DELETE, ``host``/``scale``/``wipe``)."""

    async def get(self, raw_id: str) -> None:
        """``{"tasks": [...]}`` of the app (``text/plain`` when asked for)."""
        app = self.service.get_app(normalize_id(raw_id))
        tasks = self.service.tasks(app.id)
        if wants_text(self.request.headers.get("Accept", "")):
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(tasks_text([app], tasks))
            return
        self.write_json({"tasks": [render_task(t, app) for t in tasks]})

    async def delete(self, raw_id: str) -> None:
        """Kill the app's tasks (on ``host`` only if given)."""
        app = self.service.get_app(normalize_id(raw_id))
        host = self.get_query_argument("host", None)
        flags = _kill_args(self)
        tasks = [t for t in self.service.tasks(app.id) if host is None or t.host == host]
        if not tasks:
            self.write_json({"tasks": []})
            return
        killed, plan = await self.service.kill_tasks([t.task_id for t in tasks], **flags)
        if flags["scale"] and plan is not None:
            deployment_result(self, plan)
            return
        self.write_json({"tasks": [render_task(t, app) for t in killed]})


class AppTaskHandler(ApiHandler):
    """``DELETE /v2/apps/{id}/tasks/{taskId}``: kill one task of the app."""

    async def delete(self, raw_id: str, task_id: str) -> None:
        """``{"task": Task}``, or a deployment with ``scale=true``."""
        app = self.service.get_app(normalize_id(raw_id))
        task = next((t for t in self.service.tasks(app.id) if t.task_id == task_id), None)
        if task is None:
            raise UnknownTask(f"Task '{task_id}' does not exist")
        flags = _kill_args(self)
        killed, plan = await self.service.kill_tasks([task_id], **flags)
        if flags["scale"] and plan is not None:
            deployment_result(self, plan)
            return
        self.write_json({"task": render_task(killed[0] if killed else task, app)})


def _status_filter(values: list[str]) -> set[InstanceCondition] | None:
    """``status=running`` (repeatable or comma-separated) → conditions; None: no filter."""
    wanted: set[InstanceCondition] = set()
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if not name:
                continue
            key = name.upper()
            key = key if key.startswith("TASK_") else "TASK_" + key
            try:
                wanted.add(InstanceCondition(key))
            except ValueError:
                known = ", ".join(c.name.lower() for c in InstanceCondition)
                raise ApiError(400, f"Query parameter 'status': unknown task status "
                                    f"{name[:40]!r}; expected one of {known}") from None
    return wanted or None


class TaskListHandler(ApiHandler):
    """``GET /v2/tasks``: every task (``status`` filter; JSON or ``text/plain``)."""

    async def get(self) -> None:
        """List tasks."""
        wanted = _status_filter(self.get_query_arguments("status")
                                + self.get_query_arguments("status[]"))
        tasks = [t for t in self.service.tasks() if wanted is None or t.condition in wanted]
        if wants_text(self.request.headers.get("Accept", "")):
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(tasks_text(self.service.list_apps(), tasks))
            return
        self.write_json({"tasks": _tasks_json(self.service, tasks)})


class TasksDeleteHandler(ApiHandler):
    """``POST /v2/tasks/delete`` with ``{"ids": [...]}`` (``scale``, ``wipe``, ``force``)."""

    async def post(self) -> None:
        """Kill the named tasks."""
        body = self.json_object()
        ids = body.get("ids")
        if not isinstance(ids, list):
            raise invalid("/ids", "expected an array of task ids")
        if len(ids) > MAX_TASK_IDS:
            raise invalid("/ids", f"at most {MAX_TASK_IDS} task ids per request, "
                                  f"got {len(ids)}")
        for index, task_id in enumerate(ids):
            if not isinstance(task_id, str) or not task_id:
                raise invalid(f"/ids/{index}", "expected a non-empty task id string")
        flags = _kill_args(self)
        killed, plan = await self.service.kill_tasks(list(dict.fromkeys(ids)), **flags)
        if flags["scale"] and plan is not None:
            deployment_result(self, plan)
            return
        self.write_json({"tasks": _tasks_json(self.service, killed)})
