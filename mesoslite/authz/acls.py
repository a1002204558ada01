"""Mesos-style ACLs: parse them, and answer who may do what (PURE).

Owns :class:`Acls` (Mesos's ``--acls`` JSON, parsed and validated), :func:`parse_acls`
(text -> :class:`Acls`, :class:`AclError` naming the JSON path at fault),
:func:`acls_of` (the same, cached by text, for callers that hold the flag value),
:class:`Entity` and :class:`Rule`, and the helpers that name the object of an action:
:func:`task_user`, :func:`executor_user`, :func:`endpoint_path`.

The language (Mesos's local authorizer)::

    {"permissive": true,
     "register_frameworks": [{"principals": {"values": ["a"]}, "roles": {"values": ["web"]}}],
     "run_tasks": [{"principals": {"type": "ANY"}, "users": {"type": "NONE"}}], ...}

Each action holds an ordered list of rules; a rule pairs a subject entity
(``principals``) with an object entity (``roles``, ``users``, ``framework_principals``
or ``paths``, by action).  An entity is ``{"values": [...]}``, ``{"type": "ANY"}`` or
``{"type": "NONE"}``.  A request is a subject (the principal, or None when nobody
authenticated) and an object (one role, user, principal or path).  The first rule
that *matches* both decides; when none does, ``permissive`` does (default true).

- A rule entity ``NONE`` matches every request and *denies* it: ``{"principals":
  {"type": "NONE"}, "users": {"values": ["root"]}}`` means nobody runs tasks as root.
- ``ANY`` matches and allows every request, an unauthenticated one included.
- ``values`` match (and allow) a request whose value is one of them.  A request
  without a principal matches no ``values`` entity: only ``ANY`` lets it through.
- Roles (``register_frameworks``, ``update_weights``): a value ``"eng/%"`` matches
  every role nested under ``eng`` (``eng/web``, ``eng/web/a``), not ``eng`` itself.

``get_endpoints`` guards GETs of the paths in :data:`AUTHORIZABLE_ENDPOINTS` and of
every path a rule names; paths are compared without ``/master`` or ``/slave(1)``
prefixes and trailing ``/`` (:func:`endpoint_path`), and ``/metrics`` counts as
``/metrics/snapshot`` (the same values in another format).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from mesoslite.config_checks import ConfigError
from mesoslite.protocol import ExecutorInfo, FrameworkInfo, TaskInfo

#: The actions we enforce and the name of each one's object entity.
ACTIONS: Mapping[str, str] = {
    "register_frameworks": "roles",
    "run_tasks": "users",
    "teardown_frameworks": "framework_principals",
    "access_sandboxes": "users",
    "view_frameworks": "users",
    "view_tasks": "users",
    "view_executors": "users",
    "update_weights": "roles",
    "get_endpoints": "paths",
}
#: Mesos actions refused at start (an ACL we would accept and then ignore), and why.
UNSUPPORTED_ACTIONS: Mapping[str, str] = {
    **dict.fromkeys(("reserve_resources", "unreserve_resources"),
                    "reservations are not supported"),
    **dict.fromkeys(("create_volumes", "destroy_volumes", "resize_volumes"),
                    "persistent volumes are not supported"),
    **dict.fromkeys(("get_quotas", "update_quotas", "set_quotas", "remove_quotas"),
                    "quota is not supported"),
    "view_roles": "role views are not filtered",
    "access_mesos_logs": "the processes serve no logs over HTTP",
    "view_flags": "use get_endpoints with the path /flags",
    "shutdown_frameworks": "renamed teardown_frameworks in Mesos",
}
#: Paths ``get_endpoints`` guards even when no rule names them (Mesos's list, plus ours).
AUTHORIZABLE_ENDPOINTS = frozenset({"/flags", "/metrics/snapshot", "/files/debug",
                                    "/containers", "/monitor/statistics", "/logging/toggle"})
#: Paths authorized as another one (same values, another format or name).
ENDPOINT_ALIASES: Mapping[str, str] = {"/metrics": "/metrics/snapshot",
                                      "/state.json": "/state"}
_PREFIXES = ("/master/", "/slave(1)/", "/agent/")
#: Decisions an :class:`Acls` remembers before it starts again.
DECISIONS_KEPT = 4096

Kind = Literal["SOME", "ANY", "NONE"]


class AclError(ValueError):
    """ACLs that cannot be used: ``path`` is the JSON path at fault (``run_tasks[0].users``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


@attrs.frozen
class Entity:
    """``{"values": [...]}`` (kind SOME), ``{"type": "ANY"}`` or ``{"type": "NONE"}``."""

    kind: Kind
    values: frozenset[str] = frozenset()
    #: Roles: ``"a/%"`` values, kept as the prefixes ``"a/"`` they stand for.
    prefixes: tuple[str, ...] = ()

    def matches(self, value: str | None) -> bool:
        """Mesos's match: NONE and ANY match every value; ``values`` match a listed one.

        None (no principal, or "any object") is matched by NONE and ANY only.
        """
        if self.kind != "SOME":
            return True
        if value is None:
            return False
        return value in self.values or (bool(self.prefixes)
                                        and any(value.startswith(p) for p in self.prefixes))

    def allows(self, value: str | None) -> bool:
        """Mesos's allow, for a value this entity matches: NONE denies, the others allow."""
        return self.kind != "NONE"


ANY = Entity("ANY")
NONE = Entity("NONE")


@attrs.frozen
class Rule:
    """One ACL: who (``subjects``) may act on what (``objects``)."""

    subjects: Entity
    objects: Entity

    def decides(self, principal: str | None, value: str | None) -> bool:
        """True when this rule matches the request (so it decides it)."""
        return self.subjects.matches(principal) and self.objects.matches(value)

    def allows(self, principal: str | None, value: str | None) -> bool:
        """The decision of this rule for a request it matches."""
        return self.subjects.allows(principal) and self.objects.allows(value)


@attrs.frozen
class Acls:
    """Every action's ordered rules and the ``permissive`` default (see the module doc)."""

    permissive: bool = True
    rules: Mapping[str, tuple[Rule, ...]] = attrs.field(factory=dict)
    #: Decisions made so far (the rules never change; a view filters thousands of tasks
    #: of a few users), emptied when it holds :data:`DECISIONS_KEPT`.
    _decisions: dict[tuple[str, str | None, str | None], bool] = attrs.field(
        factory=dict, init=False, eq=False, repr=False)

    def authorized(self, action: str, principal: str | None, value: str | None) -> bool:
        """May ``principal`` (None: unauthenticated) do ``action`` on ``value``?

        ``value`` None means "any object" (Mesos's ANY request): only rules whose
        object entity is ANY (or NONE, which denies) match it.  An unknown action is
        a programming error (KeyError).
        """
        key = (action, principal, value)
        known = self._decisions.get(key)
        if known is not None:
            return known
        if action not in ACTIONS:
            raise KeyError(action)
        decision = self.permissive
        for rule in self.rules.get(action, ()):
            if rule.decides(principal, value):
                decision = rule.allows(principal, value)
                break
        if len(self._decisions) >= DECISIONS_KEPT:
            self._decisions.clear()
        self._decisions[key] = decision
        return decision

    def restricts(self, action: str) -> bool:
        """False when every request for ``action`` is allowed (no rules, permissive).

        Lets callers skip filtering in the common case.
        """
        return bool(self.rules.get(action)) or not self.permissive

    @property
    def empty(self) -> bool:
        """True for the default: permissive, no rules (everything allowed)."""
        return self.permissive and not any(self.rules.values())

    def guards_endpoint(self, path: str) -> bool:
        """True when ``get_endpoints`` decides GETs of ``path`` (normalised first)."""
        if not self.restricts("get_endpoints"):
            return False
        path = endpoint_path(path)
        if path in AUTHORIZABLE_ENDPOINTS:
            return True
        return any(path in rule.objects.values for rule in self.rules.get("get_endpoints", ()))

    def endpoint_authorized(self, path: str, principal: str | None) -> bool:
        """May ``principal`` GET ``path``?  True for paths ``get_endpoints`` does not guard."""
        if not self.guards_endpoint(path):
            return True
        return self.authorized("get_endpoints", principal, endpoint_path(path))


def endpoint_path(path: str) -> str:
    """``/master/flags/`` -> ``/flags``; ``/metrics`` -> ``/metrics/snapshot``."""
    path = path.split("?", 1)[0] or "/"
    for prefix in _PREFIXES:
        if path.startswith(prefix):
            path = path[len(prefix) - 1:]
            break
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return ENDPOINT_ALIASES.get(path, path)


def task_user(task: TaskInfo | None, framework: FrameworkInfo) -> str:
    """The user a task runs as: its command's, else its executor's, else the framework's."""
    if task is not None:
        if task.command is not None and task.command.user:
            return task.command.user
        if task.executor is not None and task.executor.command.user:
            return task.executor.command.user
    return framework.user


def executor_user(executor: ExecutorInfo | None, framework: FrameworkInfo) -> str:
    """The user an executor runs as: its command's, else the framework's."""
    if executor is not None and executor.command.user:
        return executor.command.user
    return framework.user


@attrs.frozen
class Viewer:
    """What one principal may see: ``view_frameworks``, ``view_tasks``, ``view_executors``.

    The object of each is a user: the framework's, the task's (:func:`task_user`) or the
    executor's (:func:`executor_user`).  A task or executor is visible only with its
    framework (the callers check both).
    """

    acls: Acls
    principal: str | None

    @property
    def filters(self) -> bool:
        """False when this principal sees everything (no view rule restricts anything)."""
        return any(self.acls.restricts(action)
                   for action in ("view_frameworks", "view_tasks", "view_executors"))

    def framework(self, info: FrameworkInfo) -> bool:
        """May the principal see this framework?"""
        return self.acls.authorized("view_frameworks", self.principal, info.user)

    def task(self, task: TaskInfo | None, framework: FrameworkInfo) -> bool:
        """May the principal see this task (of a framework it may see)?"""
        return self.acls.authorized("view_tasks", self.principal, task_user(task, framework))

    def executor(self, executor: ExecutorInfo | None, framework: FrameworkInfo) -> bool:
        """May the principal see this executor (of a framework it may see)?"""
        return self.acls.authorized("view_executors", self.principal,
                                    executor_user(executor, framework))


def weights_refusal(acls: Acls, principal: str | None, roles: Iterable[str]) -> str:
    """Why ``update_weights`` refuses ``principal`` one of these roles, or ""."""
    for role in sorted(roles):
        if not acls.authorized("update_weights", principal, role):
            who = f"principal {principal!r}" if principal else "an unauthenticated request"
            return (f"{who} is not authorized to update the weight of role {role!r} "
                    "(update_weights ACL)")
    return ""


def teardown_refusal(acls: Acls, principal: str | None, framework: FrameworkInfo | None
                     ) -> str:
    """Why ``teardown_frameworks`` refuses ``principal`` this framework, or ""."""
    if framework is None or acls.authorized("teardown_frameworks", principal,
                                            framework.principal):
        return ""
    who = f"principal {principal!r}" if principal else "an unauthenticated request"
    return (f"{who} is not authorized to tear down framework {framework.id} (principal "
            f"{framework.principal!r}; teardown_frameworks ACL)")


def endpoint_refusal(acls: Acls, principal: str | None, path: str) -> str:
    """Why ``get_endpoints`` refuses ``principal`` a GET of ``path``, or ""."""
    if acls.endpoint_authorized(path, principal):
        return ""
    who = f"principal {principal!r}" if principal else "an unauthenticated request"
    return f"{who} is not authorized to read {endpoint_path(path)} (get_endpoints ACL)"


def sandbox_ids(path: str) -> tuple[str, str] | None:
    """(framework id, executor id) of a sandbox path (``.../frameworks/F/executors/E/...``)."""
    parts = [part for part in path.split("/") if part]
    for i in range(len(parts) - 3):
        if parts[i] == "frameworks" and parts[i + 2] == "executors":
            return parts[i + 1], parts[i + 3]
    return None


# ------------------------------------------------------------------ parsing


def _entity(value: Any, path: str, roles: bool) -> Entity:
    if not isinstance(value, dict):
        raise AclError(path, 'expected {"values": [...]} or {"type": "ANY"|"NONE"}, '
                             f"got {_show(value)}")
    extra = sorted(str(key) for key in value if key not in ("values", "type"))
    if extra:
        raise AclError(f"{path}.{extra[0]}", 'unknown field: an entity has "values" or '
                                             '"type"')
    if "type" in value and "values" in value:
        raise AclError(path, 'give "values" or "type", not both')
    if "type" in value:
        kind = value["type"]
        if kind not in ("ANY", "NONE"):
            raise AclError(f"{path}.type", f'expected "ANY" or "NONE", got {_show(kind)}')
        return ANY if kind == "ANY" else NONE
    items = value.get("values")
    if not isinstance(items, list) or not items:
        raise AclError(f"{path}.values", f"expected a non-empty list of strings, got "
                                         f"{_show(items)}")
    values: set[str] = set()
    prefixes: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise AclError(f"{path}.values[{i}]", f"expected a non-empty string, got "
                                                  f"{_show(item)}")
        if roles and item.endswith("/%") and len(item) > 2:
            prefixes.append(item[:-1])
        elif path.endswith(".paths"):
            if not item.startswith("/"):
                raise AclError(f"{path}.values[{i}]", f"expected a path starting with '/', "
                                                      f"got {_show(item)}")
            values.add(endpoint_path(item))
        else:
            values.add(item)
    return Entity("SOME", frozenset(values), tuple(prefixes))


def _rules(action: str, items: Any, path: str) -> tuple[Rule, ...]:
    if not isinstance(items, list):
        raise AclError(path, f"expected a list of rules, got {_show(items)}")
    object_name = ACTIONS[action]
    rules = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise AclError(where, f'expected {{"principals": ..., "{object_name}": ...}}, '
                                  f"got {_show(item)}")
        for key in sorted(str(k) for k in item):
            if key not in ("principals", object_name):
                raise AclError(f"{where}.{key}", f'unknown field: a {action} rule has '
                                                 f'"principals" and "{object_name}"')
        for key in ("principals", object_name):
            if key not in item:
                raise AclError(f"{where}.{key}", "missing")
        rules.append(Rule(_entity(item["principals"], f"{where}.principals", False),
                          _entity(item[object_name], f"{where}.{object_name}",
                                  object_name == "roles")))
    return tuple(rules)


def acls_from_json(document: Any) -> Acls:
    """A decoded ACL document -> :class:`Acls` (AclError naming the JSON path)."""
    if not isinstance(document, dict):
        raise AclError("", f"expected a JSON object, got {_show(document)}")
    permissive = document.get("permissive", True)
    if not isinstance(permissive, bool):
        raise AclError("permissive", f"expected true or false, got "
                                               f"{_show(permissive)}")
    rules: dict[str, tuple[Rule, ...]] = {}
    for key in document:
        name = str(key)
        if name == "permissive":
            continue
        if name in UNSUPPORTED_ACTIONS:
            raise AclError(name, f"not supported: {UNSUPPORTED_ACTIONS[name]}")
        if name not in ACTIONS:
            raise AclError(name, "unknown action: expected one of "
                                               + ", ".join(sorted(ACTIONS)))
        rules[name] = _rules(name, document[key], name)
    return Acls(permissive, rules)


def parse_acls(text: str) -> Acls:
    """ACL JSON text -> :class:`Acls`; empty text is the permissive default.

    AclError naming the JSON path (``run_tasks[0].users.type``) when the text is not
    valid ACLs ("" when the whole document is at fault).
    """
    if not text.strip():
        return Acls()
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise AclError("", f"not JSON ({str(exc)[:120]})") from None
    return acls_from_json(document)


@functools.lru_cache(maxsize=16)
def acls_of(text: str) -> Acls:
    """:func:`parse_acls` of a flag's JSON text, cached (AclError as there)."""
    return parse_acls(text)


def is_inline(value: str) -> bool:
    """True when an ``--acls`` value is the JSON itself rather than a file name."""
    return value.lstrip().startswith("{")


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (set, frozenset)) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: Help text of the ``--acls`` flag (master and agent).
ACLS_HELP = ("Mesos ACLs: the JSON itself, a file name or a file:// URL; {\"permissive\": ..., "
             "\"register_frameworks\": [...], \"run_tasks\": [...], ...} (empty: allow all)")


def check_acls_flag(value: Any) -> bool:
    """A config validator for ``--acls``: text; inline JSON must be valid ACLs.

    A file name is read (and checked) by the process at start
    (:func:`mesoslite.authz.files.resolve_acls`).  ConfigError naming ``acls`` and the
    JSON path at fault.
    """
    if not isinstance(value, str):
        return False
    if is_inline(value):
        try:
            parse_acls(value)
        except AclError as exc:
            raise ConfigError("acls", f"Mesos ACL JSON: {exc}") from None
    return True


def acls_for(value: str) -> Acls:
    """The ACLs of an ``--acls`` value once the process resolved it to JSON text.

    "" is the permissive default.  A file name still unread is a ConfigError (naming
    ``acls``): ACLs are never silently skipped.
    """
    if not value.strip():
        return Acls()
    if not is_inline(value):
        raise ConfigError("acls", "JSON text here: a file name is read by the process at "
                                  "start (mesoslite.authz.files.resolve_acls)", value)
    try:
        return acls_of(value)
    except AclError as exc:
        raise ConfigError("acls", f"Mesos ACL JSON: {exc}") from None
