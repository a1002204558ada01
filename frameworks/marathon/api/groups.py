"""``/v2/groups`` of the Marathon REST API (tornado handler).

Owns: :class:`GroupsHandler`: GET a group tree (built from app ids by
``wire.group_json``), POST a new group of apps, PUT apps into a group or
``{"scaleBy": f}`` (every app's instances × f, rounded up), DELETE every app
of a group.  Groups have no state of their own here: a group exists while an
app lives under it, so an empty group cannot be created.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from frameworks.marathon.api.apps import AppViews, merge_definition, partial_update
from frameworks.marathon.api.base import ApiError, ApiHandler, deployment_result, invalid
from frameworks.marathon.core.model import App
from frameworks.marathon.wire.app_json import parse_app
from frameworks.marathon.wire.group_json import (
    GroupDefinitionError,
    apps_under,
    build_group,
    flatten_group_definition,
)
from frameworks.marathon.wire.render import parse_embeds

#: Largest scaleBy factor accepted.
MAX_SCALE_BY = 1000.0
#: Keys a group body may carry besides apps and groups (read-only ones are ignored).
_GROUP_KEYS = frozenset({"id", "apps", "groups", "pods", "dependencies", "version",
                         "scaleBy", "enforceRole"})


def _group_id(raw: str) -> str:
    """The absolute group id of a path argument (``""`` → ``/``)."""
    return "/" + "/".join(p for p in raw.split("/") if p)


def _definitions(body: dict[str, Any], group_id: str) -> list[dict[str, Any]]:
    """The app definitions a group body names (422 naming the field on bad input)."""
    unknown = sorted(set(body) - _GROUP_KEYS)
    if unknown:
        raise invalid(f"/{unknown[0]}", f"unknown group field {unknown[0]!r}")
    if body.get("pods"):
        raise invalid("/pods", "pods are not supported")
    try:
        return flatten_group_definition(body, group_id)
    except GroupDefinitionError as exc:
        raise invalid(exc.path, exc.message) from None


class GroupsHandler(ApiHandler):
    """``/v2/groups`` and ``/v2/groups/{id}``."""

    async def get(self, raw_id: str = "") -> None:
        """The group tree (``embed=group.groups``/``group.apps``/``group.apps.tasks``...)."""
        group_id = _group_id(raw_id)
        embed_args = self.get_query_arguments("embed")
        with_apps = not embed_args or any(e.startswith("group.apps") for e in embed_args)
        with_groups = not embed_args or "group.groups" in embed_args
        views = AppViews(self.service, parse_embeds(embed_args))
        tree = build_group(self.service.list_apps(), group_id, views.app,
                           with_apps=with_apps, with_groups=with_groups)
        if tree is None:
            raise ApiError(404, f"Group '{group_id}' does not exist")
        self.write_json(tree)

    async def post(self, raw_id: str = "") -> None:
        """Create a group of apps: 201 ``{"deploymentId", "version"}``."""
        body = self.json_object()
        base = _group_id(raw_id)
        raw = body.get("id")
        if not isinstance(raw, str) or not raw.strip("/"):
            raise invalid("/id", "a group id (string) is required")
        group_id = _group_id(raw if raw.startswith("/") else base.rstrip("/") + "/" + raw)
        apps = self.service.list_apps()
        if apps_under(apps, group_id):
            raise ApiError(409, f"Group {group_id} is already created. "
                                "Use PUT to change this group.")
        definitions = _definitions(body, group_id)
        if not definitions:
            raise invalid("/apps", "a group needs at least one app (empty groups are not "
                                   "stored)")
        parsed = [parse_app(d) for d in definitions]
        plan = await self.service.put_apps(parsed, force=self.bool_arg("force"))
        self.set_header("Location", f"/v2/groups{group_id}")
        deployment_result(self, plan, 201)

    async def put(self, raw_id: str = "") -> None:
        """Scale (``{"scaleBy": f}``) or create/update the apps of the group."""
        group_id = _group_id(raw_id)
        body = self.json_object()
        force = self.bool_arg("force")
        if "scaleBy" in body and body["scaleBy"] is not None:
            await self._scale(group_id, body["scaleBy"], force)
            return
        if "version" in body and set(body) <= {"id", "version"}:
            raise invalid("/version", "rolling a whole group back to a version is not "
                                      "supported; roll back each app with PUT /v2/apps/{id}")
        raw = body.get("id")
        if raw is not None and (not isinstance(raw, str) or _group_id(raw) != group_id):
            raise invalid("/id", f"the id in the body does not match the group {group_id!r}")
        definitions = _definitions(body, group_id)
        if not definitions:
            raise invalid("/apps", "expected apps (or scaleBy) to change")
        partial = partial_update(self)
        apps: list[App] = []
        for definition in definitions:
            app, _new = merge_definition(self.service, definition, None, partial)
            apps.append(app)
        plan = await self.service.put_apps(apps, force=force)
        deployment_result(self, plan)

    async def _scale(self, group_id: str, factor: Any, force: bool) -> None:
        """Every app under the group with instances × ``factor`` (rounded up)."""
        if isinstance(factor, bool) or not isinstance(factor, int | float) \
                or not math.isfinite(factor) or not 0 <= factor <= MAX_SCALE_BY:
            raise invalid("/scaleBy", f"expected a number between 0 and {MAX_SCALE_BY:g}, "
                                      f"got {str(factor)[:40]}")
        members = apps_under(self.service.list_apps(), group_id)
        if not members:
            raise ApiError(404, f"Group '{group_id}' does not exist")
        scaled = [attrs.evolve(a, instances=math.ceil(a.instances * factor)) for a in members]
        plan = await self.service.put_apps(scaled, force=force)
        deployment_result(self, plan)

    async def delete(self, raw_id: str = "") -> None:
        """Destroy every app of the group (one deployment per app)."""
        group_id = _group_id(raw_id)
        members = apps_under(self.service.list_apps(), group_id)
        if not members and group_id != "/":
            raise ApiError(404, f"Group '{group_id}' does not exist")
        force = self.bool_arg("force")
        plan = None
        for app in sorted(members, key=lambda a: a.id, reverse=True):
            plan = await self.service.delete_app(app.id, force=force) or plan
        deployment_result(self, plan)
