"""Groups as the REST API shows them, built from app ids (PURE).

Owns: :func:`build_group` (the ``{id, apps, groups, pods, dependencies,
version}`` tree of a group, derived from the ids of the apps under it),
:func:`apps_under` and :func:`flatten_group_definition` (the app definitions a
``POST``/``PUT /v2/groups`` body names, ids made absolute).  Groups are not
stored on their own: a group exists while an app lives under it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from frameworks.marathon.core.model import App

#: Deepest nesting of ``groups`` accepted in a group body.
MAX_GROUP_DEPTH = 16


def parent_of(path_id: str) -> str:
    """``/a/b/c`` → ``/a/b``; ``/a`` → ``/``."""
    head = path_id.rstrip("/").rsplit("/", 1)[0]
    return head or "/"


def child_of(group_id: str, path_id: str) -> str | None:
    """The direct child of ``group_id`` on the way to ``path_id`` (None when not under it)."""
    prefix = group_id if group_id.endswith("/") else group_id + "/"
    if not path_id.startswith(prefix) or path_id == prefix:
        return None
    return prefix + path_id[len(prefix):].split("/", 1)[0]


def apps_under(apps: list[App], group_id: str) -> list[App]:
    """Apps anywhere below ``group_id`` (every app for the root)."""
    prefix = group_id if group_id.endswith("/") else group_id + "/"
    return [a for a in apps if a.id.startswith(prefix)]


def build_group(apps: list[App], group_id: str, render: Callable[[App], dict[str, Any]], *,
                with_apps: bool = True, with_groups: bool = True,
                empty_version: str = "") -> dict[str, Any] | None:
    """The group tree below ``group_id``; None when no app lives there (the root always is).

    ``version`` is the newest version of an app in the group (``empty_version``
    for an empty root).
    """
    members = apps_under(apps, group_id)
    if not members and group_id != "/":
        return None
    direct = sorted((a for a in members if parent_of(a.id) == group_id), key=lambda a: a.id)
    children = sorted({c for a in members if (c := child_of(group_id, a.id)) is not None
                       and c != a.id})
    groups = []
    if with_groups:
        for child in children:
            sub = build_group(members, child, render, with_apps=with_apps,
                              with_groups=True, empty_version=empty_version)
            if sub is not None:
                groups.append(sub)
    version = max((a.version for a in members if a.version), default=empty_version)
    return {"id": group_id, "apps": [render(a) for a in direct] if with_apps else [],
            "groups": groups, "pods": [], "dependencies": [], "version": version}


class GroupDefinitionError(ValueError):
    """A group body that cannot be read: ``path`` names the offending field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _absolute(raw: str, base: str) -> str:
    """A possibly relative id resolved against ``base`` (``..``/``.`` are left to validation)."""
    if raw.startswith("/"):
        return raw
    return (base.rstrip("/") + "/" + raw) if raw else base


def flatten_group_definition(body: dict[str, Any], group_id: str, path: str = "",
                             depth: int = 0) -> list[dict[str, Any]]:
    """The app definitions of a group body (``apps`` and nested ``groups``), ids absolute.

    Raises :class:`GroupDefinitionError` for a wrongly typed field or an app
    outside its group.
    """
    if depth > MAX_GROUP_DEPTH:
        raise GroupDefinitionError(path or "/", f"groups nest deeper than {MAX_GROUP_DEPTH}")
    found: list[dict[str, Any]] = []
    apps = body.get("apps", [])
    if apps is None:
        apps = []
    if not isinstance(apps, list):
        raise GroupDefinitionError(f"{path}/apps", "expected an array of apps")
    prefix = group_id.rstrip("/") + "/"
    for index, app in enumerate(apps):
        where = f"{path}/apps/{index}"
        if not isinstance(app, dict):
            raise GroupDefinitionError(where, "expected a JSON object")
        raw = app.get("id")
        if not isinstance(raw, str) or not raw.strip("/"):
            raise GroupDefinitionError(f"{where}/id", "an app id (string) is required")
        absolute = _absolute(raw, group_id)
        if not absolute.startswith(prefix):
            raise GroupDefinitionError(f"{where}/id",
                                       f"app {absolute!r} is not inside group {group_id!r}")
        found.append({**app, "id": absolute})
    groups = body.get("groups", [])
    if groups is None:
        groups = []
    if not isinstance(groups, list):
        raise GroupDefinitionError(f"{path}/groups", "expected an array of groups")
    for index, group in enumerate(groups):
        where = f"{path}/groups/{index}"
        if not isinstance(group, dict):
            raise GroupDefinitionError(where, "expected a JSON object")
        raw = group.get("id")
        if not isinstance(raw, str) or not raw.strip("/"):
            raise GroupDefinitionError(f"{where}/id", "a group id (string) is required")
        sub_id = "/" + "/".join(p for p in _absolute(raw, group_id).split("/") if p)
        if not sub_id.startswith(prefix):
            raise GroupDefinitionError(f"{where}/id",
                                       f"group {sub_id!r} is not inside group {group_id!r}")
        found.extend(flatten_group_definition(group, sub_id, where, depth + 1))
    return found
