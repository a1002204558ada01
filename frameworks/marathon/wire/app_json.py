"""Marathon App JSON in and out (PURE).

Owns: :func:`parse_app` (Marathon's camelCase App JSON → :class:`App`, with
Marathon's defaults, legacy ``ports``/``docker.network``/``docker.portMappings``
/``uris`` mapped onto their replacements, partial updates, and every field
error collected into one :class:`AppValidationError`) and :func:`render_app`
(App → Marathon's App JSON, legacy ``ports`` list included, plus the embeds
the API adds).  ``render_app`` then ``parse_app`` gives back an equal App.

Input rules worth knowing: a JSON ``null`` counts as "not sent"; read-only
fields that clients echo back (``tasksRunning``, ``deployments``, ``tasks``,
``lastTaskFailure`` …) are ignored; properties Marathon does not define are
rejected with a detail.  ``ports`` is ignored when ``portDefinitions`` is
sent or the app uses container networks (this layer emits both).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from frameworks.marathon.core.model import (
    App,
    AppHealthCheck,
    AppPortMapping,
    Container,
    FetchUri,
    KillSelection,
    Network,
    PortDefinition,
    VersionInfo,
)
from frameworks.marathon.core.timestamps import iso, parse_iso
from frameworks.marathon.wire import app_parts as parts
from frameworks.marathon.wire.validation import (
    BAD,
    MISSING,
    AppValidationError,
    Reader,
    check_constraint,
    resolve_app_id,
    show,
)

__all__ = ["READ_ONLY_FIELDS", "parse_app", "render_app"]

#: Fields the API shows on an App that a client may send back; ignored on input.
READ_ONLY_FIELDS = frozenset({
    "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy", "deployments", "tasks",
    "lastTaskFailure", "readinessCheckResults", "taskStats", "taskFailures",
})
_APP_FIELDS = frozenset({
    "id", "cmd", "args", "user", "env", "instances", "cpus", "mem", "disk", "gpus", "executor",
    "constraints", "fetch", "uris", "portDefinitions", "ports", "requirePorts",
    "backoffSeconds", "backoffFactor", "maxLaunchDelaySeconds", "container", "networks",
    "healthChecks", "readinessChecks", "dependencies", "upgradeStrategy", "labels",
    "acceptedResourceRoles", "role", "killSelection", "unreachableStrategy",
    "taskKillGracePeriodSeconds", "secrets", "version", "versionInfo", "storeUrls",
    "residency", "ipAddress",
})
#: App properties Marathon defines that nothing here would act on: refused, naming why.
_REFUSED = {
    "residency": "resident apps need local persistent volumes, which are not supported",
    "storeUrls": "storeUrls (Marathon's artifact store) is not supported; use fetch",
}
_MESSAGE = "Object is not valid"
#: Marathon's int32 fields (instances, gpus) accept at most this.
INT32_MAX = 2**31 - 1
_NEEDS_COMMAND = ("AppDefinition must either contain one of 'cmd' or 'args', "
                  "and/or a 'container' with a docker image.")


def parse_app(
    obj: Any, *, base: App | None = None, partial: bool = False, group: str = "/"
) -> App:
    """Parse and validate a Marathon App JSON object.

    ``group`` resolves a relative ``id``.  With ``partial`` and a ``base``
    (``PUT /v2/apps/{id}``), fields not sent keep ``base``'s values, ``id``
    may be omitted (and must match when sent) and ``version``/``versionInfo``
    are ``base``'s.  Without ``partial``, ``base`` only supplies a missing
    ``id``.  Raises :class:`AppValidationError` with every problem found.
    """
    reader = Reader()
    if not isinstance(obj, dict):
        reader.error("/", f"expected a JSON object with the app definition, got {show(obj)}")
        raise AppValidationError(_MESSAGE, reader.details())
    if partial and base is not None:
        obj = _merge(reader, base, obj, group)
    elif base is not None and obj.get("id") is None:
        obj = {**obj, "id": base.id}
    app = _parse(reader, obj, group)
    if reader.errors or app is BAD:
        raise AppValidationError(_MESSAGE, reader.details())
    return app


def _merge(reader: Reader, base: App, update: dict[str, Any], group: str) -> dict[str, Any]:
    """Overlay a partial update on ``base``'s JSON, dropping what the update replaces."""
    sent = {k: v for k, v in update.items()
            if v is not None and k not in READ_ONLY_FIELDS and k not in ("version", "versionInfo")}
    if "id" in sent:
        try:
            if resolve_app_id(sent["id"], group) != base.id:
                reader.error("/id", f"got {show(sent['id'])}, expected the id of the app "
                                    f"being updated ({base.id})")
        except ValueError as exc:
            reader.error("/id", str(exc))
    merged = render_app(base)
    merged.pop("ports", None)
    if "cmd" in sent and "args" not in sent:
        merged.pop("args", None)
    if "args" in sent and "cmd" not in sent:
        merged.pop("cmd", None)
    if "ports" in sent and "portDefinitions" not in sent:
        merged.pop("portDefinitions", None)
    if "uris" in sent and "fetch" not in sent:
        merged.pop("fetch", None)
    if "networks" not in sent and _legacy_network(sent.get("container")):
        merged.pop("networks", None)
    merged.update(sent)
    merged["id"] = base.id
    if "networks" in sent or "container" in sent:
        host = _looks_host(merged)
        if not host and "portDefinitions" not in sent and "ports" not in sent:
            merged.pop("portDefinitions", None)
        container = merged.get("container")
        if host and "container" not in sent and isinstance(container, dict):
            merged["container"] = {k: v for k, v in container.items() if k != "portMappings"}
    return merged


def _legacy_network(container: Any) -> bool:
    """True when a container object uses the deprecated ``docker.network``."""
    docker = container.get("docker") if isinstance(container, dict) else None
    return isinstance(docker, dict) and docker.get("network") is not None


def _looks_host(obj: dict[str, Any]) -> bool:
    nets = obj.get("networks")
    if isinstance(nets, list) and nets:
        return all(isinstance(n, dict) and n.get("mode") == "host" for n in nets)
    container = obj.get("container")
    docker = container.get("docker") if isinstance(container, dict) else None
    return not (isinstance(docker, dict) and docker.get("network") in ("BRIDGE", "USER"))


def _get(obj: dict[str, Any], key: str) -> Any:
    value = obj.get(key, MISSING)
    return MISSING if value is None else value


#: An App of defaults: where an omitted field takes its value from.
_DEFAULTS = App(id="/x")
_Check = Callable[[Any, str], Any]
_Optional = Callable[[str, Any, _Check], Any]


def _parse(r: Reader, obj: dict[str, Any], group: str) -> App | Any:
    """The App in ``obj``, or BAD once any error is recorded (in the order the fields are read)."""
    for key in obj:
        if key not in _APP_FIELDS and key not in READ_ONLY_FIELDS:
            r.error(f"/{key}", f"unknown property {key!r}")
    app_id = _app_id(r, obj, group)
    opt = _optional(obj)
    f: dict[str, Any] = {}
    _command_and_resources(r, opt, f)
    _placement_and_policies(r, opt, obj, f)
    _ports_and_container(r, obj, f)
    _checks_and_dependencies(r, opt, f, app_id)
    if BAD in f.values() or app_id is BAD or r.errors:
        return BAD
    for key in ("cpus", "mem", "disk", "backoff_seconds", "backoff_factor",
                "max_launch_delay_seconds"):
        f[key] = float(f[key])
    if f["task_kill_grace_period_seconds"] is not None:
        f["task_kill_grace_period_seconds"] = float(f["task_kill_grace_period_seconds"])
    return App(id=app_id, **f)


def _optional(obj: dict[str, Any]) -> _Optional:
    """``opt(key, default, check)``: ``check(value, "/key")`` when sent, else ``default``."""
    def opt(key: str, default: Any, check: _Check) -> Any:
        raw = _get(obj, key)
        return default if raw is MISSING else check(raw, f"/{key}")
    return opt


def _app_id(r: Reader, obj: dict[str, Any], group: str) -> Any:
    """The absolute app id (BAD, with an error, when missing or malformed)."""
    raw_id = _get(obj, "id")
    if raw_id is MISSING:
        r.error("/id", "expected an app id, got nothing")
        return BAD
    try:
        return resolve_app_id(raw_id, group)
    except ValueError as exc:
        r.error("/id", str(exc))
        return BAD


def _command_and_resources(r: Reader, opt: _Optional, f: dict[str, Any]) -> None:
    """Fill the command, user, instances, resources and launch backoff."""
    d = _DEFAULTS
    f["cmd"] = opt("cmd", None, lambda v, p: r.string(v, p, min_len=1))
    args = opt("args", None, r.str_list)
    f["args"] = tuple(args) if args not in (None, BAD) and args else (BAD if args is BAD else None)
    if f["cmd"] not in (None, BAD) and f["args"] not in (None, BAD):
        r.error("/", "AppDefinition must not contain both 'cmd' and 'args'.")
    f["user"] = opt("user", None, lambda v, p: r.string(v, p, min_len=1))
    f["instances"] = opt("instances", d.instances,
                         lambda v, p: r.number(v, p, minimum=0, maximum=INT32_MAX, integer=True))
    for key, attr in (("cpus", "cpus"), ("mem", "mem"), ("disk", "disk")):
        f[attr] = opt(key, getattr(d, attr), lambda v, p: r.number(v, p, minimum=0))
    f["gpus"] = opt("gpus", d.gpus,
                    lambda v, p: r.number(v, p, minimum=0, maximum=INT32_MAX, integer=True))
    f["executor"] = opt("executor", d.executor, lambda v, p: _executor(r, v, p))
    f["backoff_seconds"] = opt("backoffSeconds", d.backoff_seconds,
                               lambda v, p: r.number(v, p, minimum=0))
    f["backoff_factor"] = opt("backoffFactor", d.backoff_factor,
                              lambda v, p: r.number(v, p, minimum=1))
    f["max_launch_delay_seconds"] = opt("maxLaunchDelaySeconds", d.max_launch_delay_seconds,
                                        lambda v, p: r.number(v, p, minimum=0))
    f["require_ports"] = opt("requirePorts", False, r.boolean)


def _refuse_secrets(r: Reader, f: dict[str, Any]) -> None:
    """Secrets need a secret store, which this framework does not have: refused by name."""
    if f["secrets"] not in (BAD, {}):
        f["secrets"] = r.error("/secrets", "secrets are not supported (there is no secret "
                                           "store); pass the value through env or a file "
                                           "fetched with fetch")
    if f["env"] is BAD:
        return
    for name, value in f["env"].items():
        if isinstance(value, dict):
            f["env"] = r.error(f"/env/{name}", "secret references are not supported (there "
                                               "is no secret store)")


def _executor(r: Reader, value: Any, path: str) -> Any:
    """``executor``: "" or "//cmd" (the command executor); custom executors are refused."""
    value = r.string(value, path)
    if value is not BAD and value not in ("", "//cmd"):
        return r.error(path, f"custom executors are not supported, got {show(value)}; leave "
                             f"executor empty or \"//cmd\" (the command executor)")
    return value


def _placement_and_policies(r: Reader, opt: _Optional, obj: dict[str, Any],
                            f: dict[str, Any]) -> None:
    """Fill labels, secrets, env, constraints, fetch, strategies, roles and the version."""
    d = _DEFAULTS
    f["labels"] = opt("labels", {}, r.str_map)
    f["secrets"] = opt("secrets", {}, lambda v, p: parts.secrets(r, v, p))
    names = f["secrets"] if f["secrets"] is not BAD else None
    f["env"] = opt("env", {}, lambda v, p: parts.env(r, v, p, names))
    cons = opt("constraints", [], lambda v, p: r.items(
        v, p, lambda c, cp: check_constraint(r, c, cp)))
    f["constraints"] = BAD if cons is BAD else tuple(cons)
    f["fetch"] = _fetch(r, obj)
    f["upgrade_strategy"] = opt("upgradeStrategy", d.upgrade_strategy,
                                lambda v, p: parts.upgrade_strategy(r, v, p))
    f["unreachable_strategy"] = opt("unreachableStrategy", d.unreachable_strategy,
                                    lambda v, p: parts.unreachable_strategy(r, v, p))
    kill = opt("killSelection", d.kill_selection.value,
               lambda v, p: r.enum(v, p, tuple(k.value for k in KillSelection)))
    f["kill_selection"] = BAD if kill is BAD else KillSelection(kill)
    f["task_kill_grace_period_seconds"] = opt("taskKillGracePeriodSeconds", None,
                                              lambda v, p: r.number(v, p, minimum=0))
    roles = opt("acceptedResourceRoles", None, lambda v, p: r.str_list(v, p, unique=True))
    f["accepted_resource_roles"] = tuple(roles) if roles not in (None, BAD) and roles else (
        BAD if roles is BAD else None)
    f["role"] = opt("role", None, lambda v, p: r.string(v, p, min_len=1))
    for key, why in _REFUSED.items():
        if _get(obj, key) not in (MISSING, [], {}):  # empty: nothing to act on
            r.error(f"/{key}", why)
    if _get(obj, "ipAddress") is not MISSING:
        r.error("/ipAddress", "ipAddress is not supported; use networks with mode container")
    f["version"] = opt("version", "", _version(r))
    f["version_info"] = opt("versionInfo", None, lambda v, p: _version_info(r, v, p))


def _checks_and_dependencies(r: Reader, opt: _Optional, f: dict[str, Any],
                             app_id: Any) -> None:
    """Fill health and readiness checks and dependencies; then check the fields together."""
    hcs = opt("healthChecks", [], lambda v, p: r.items(
        v, p, lambda h, hp: parts.health_check(r, h, hp)))
    f["health_checks"] = BAD if hcs is BAD else tuple(hcs)
    rcs = opt("readinessChecks", [], lambda v, p: r.items(
        v, p, lambda c, cp: parts.readiness_check(r, c, cp)))
    f["readiness_checks"] = BAD if rcs is BAD else tuple(rcs)
    deps = opt("dependencies", [], r.str_list)
    f["dependencies"] = _dependencies(r, deps, app_id)
    cross = ("networks", "container", "port_definitions", "health_checks", "readiness_checks")
    if all(f[k] is not BAD for k in cross):
        _cross_checks(r, f)
    container = f["container"]
    if f["cmd"] is None and f["args"] is None and (
            container is None or (container is not BAD and container.docker is None)):
        r.error("/", _NEEDS_COMMAND)


def _version(r: Reader) -> Any:
    def check(value: Any, path: str) -> Any:
        try:
            return iso(parse_iso(value))
        except ValueError as exc:
            return r.error(path, str(exc))
    return check


def _version_info(r: Reader, value: Any, path: str) -> Any:
    value = r.obj(value, path)
    if value is BAD:
        return BAD
    check = _version(r)
    out = []
    for key in ("lastScalingAt", "lastConfigChangeAt"):
        if value.get(key) is None:
            out.append(r.error(f"{path}/{key}", "expected an ISO-8601 date-time, got nothing"))
        else:
            out.append(check(value[key], f"{path}/{key}"))
    if BAD in out:
        return BAD
    return VersionInfo(last_scaling_at=out[0], last_config_change_at=out[1])


def _fetch(r: Reader, obj: dict[str, Any]) -> Any:
    fetch, uris = _get(obj, "fetch"), _get(obj, "uris")
    if fetch is not MISSING and uris is not MISSING:
        return r.error("/uris", "set fetch or the deprecated uris, not both")
    if uris is not MISSING:
        uris = r.str_list(uris, "/uris")
        if uris is BAD:
            return BAD
        out = [parts.legacy_uri(r, u, f"/uris/{i}") for i, u in enumerate(uris)]
        return BAD if BAD in out else tuple(out)
    if fetch is MISSING:
        return ()
    out = r.items(fetch, "/fetch", lambda v, p: parts.fetch_uri(r, v, p))
    return BAD if out is BAD else tuple(out)


def _dependencies(r: Reader, deps: Any, app_id: Any) -> Any:
    if deps is BAD:
        return BAD
    out: list[str] = []
    # Marathon resolves relative dependencies against the app's own id
    # ("../db" of /prod/web is /prod/db).
    base = app_id if app_id is not BAD else "/"
    for i, dep in enumerate(deps):
        try:
            out.append(resolve_app_id(dep, base))
        except ValueError as exc:
            r.error(f"/dependencies/{i}", str(exc))
    return tuple(out)


def _ports_and_container(r: Reader, obj: dict[str, Any], f: dict[str, Any]) -> None:
    """Fill container, networks and port_definitions (they depend on each other)."""
    container: Any = None
    legacy_net: str | None = None
    legacy_maps: Any = MISSING
    raw_container = _get(obj, "container")
    if raw_container is not MISSING:
        container, legacy_net, legacy_maps = parts.container(r, raw_container, "/container")
    raw_nets = _get(obj, "networks")
    nets: Any
    if raw_nets is not MISSING:
        nets = r.items(raw_nets, "/networks", lambda v, p: parts.network(r, v, p))
        if legacy_net is not None and nets is not BAD and nets:
            r.error("/container/docker/network",
                    "set networks or the deprecated container.docker.network, not both")
    else:
        nets = [Network(mode=legacy_net)] if legacy_net else []
    if nets is not BAD:
        nets = tuple(nets) or (Network(),)
        parts.check_networks(r, list(nets), "/networks")
    f["networks"] = nets
    host = nets is BAD or all(n.mode == "host" for n in nets)
    bridge = nets is not BAD and any(n.mode == "container/bridge" for n in nets)
    raw_maps = MISSING
    if isinstance(raw_container, dict) and raw_container.get("portMappings") is not None:
        raw_maps = raw_container["portMappings"]
        if legacy_maps is not MISSING:
            r.error("/container/docker/portMappings", "set container.portMappings or the "
                                                      "deprecated docker.portMappings, not both")
    elif legacy_maps is not MISSING:
        raw_maps = legacy_maps
    maps_path = "/container/portMappings"
    if not host and (container is None or (container is not BAD and container.type != "DOCKER")):
        r.error("/networks", "container and bridge networks need a DOCKER container")
    mappings: Any = None
    if not host:
        if raw_maps is MISSING:
            mappings = (AppPortMapping(container_port=0, host_port=0 if bridge else None),)
        else:
            mappings = r.items(raw_maps, maps_path,
                               lambda v, p: parts.port_mapping(r, v, p, bridge))
            mappings = BAD if mappings is BAD else tuple(mappings)
    elif raw_maps is not MISSING and raw_maps != []:
        r.error(maps_path, "port mappings need container or bridge networking; "
                           "use portDefinitions with host networking")
    if container not in (None, BAD) and mappings is not BAD:
        container = Container(type=container.type, docker=container.docker,
                              volumes=container.volumes, port_mappings=mappings)
    f["container"] = BAD if mappings is BAD else container
    defs: Any = ()
    raw_defs, raw_ports = _get(obj, "portDefinitions"), _get(obj, "ports")
    if host:
        if raw_defs is not MISSING:
            defs = r.items(raw_defs, "/portDefinitions",
                           lambda v, p: parts.port_definition(r, v, p))
        elif raw_ports is not MISSING:
            ports = r.items(raw_ports, "/ports", r.port)
            defs = BAD if ports is BAD else [PortDefinition(port=p) for p in ports]
        else:
            defs = [PortDefinition(name="default")]
    elif raw_defs is not MISSING and raw_defs != []:
        r.error("/portDefinitions", "must be empty with container or bridge networking; "
                                    "use container.portMappings")
    f["port_definitions"] = BAD if defs is BAD else tuple(defs)


def _cross_checks(r: Reader, f: dict[str, Any]) -> None:
    """Rules spanning fields: unique port names, check ports, readiness port names."""
    container = f["container"]
    host = all(n.mode == "host" for n in f["networks"])
    if host:
        named = [(f"/portDefinitions/{i}/name", p.name)
                 for i, p in enumerate(f["port_definitions"])]
    else:
        maps = container.port_mappings if container is not None else ()
        named = [(f"/container/portMappings/{i}/name", m.name) for i, m in enumerate(maps or ())]
    seen: set[str] = set()
    for path, name in named:
        if name is None:
            continue
        if name in seen:
            r.error(path, f"port name {name!r} is used more than once; names must be unique")
        seen.add(name)
    count = len(named)
    maps = () if host or container is None else (container.port_mappings or ())
    for i, hc in enumerate(f["health_checks"]):
        if hc.port_index is not None and hc.port_index >= count:
            r.error(f"/healthChecks/{i}/portIndex",
                    f"got {hc.port_index}, but the app has {count} port(s): the index must "
                    f"address an element of portDefinitions or container.portMappings")
        elif hc.port_index is not None and maps and maps[hc.port_index].host_port is None \
                and maps[hc.port_index].container_port == 0:
            r.error(f"/healthChecks/{i}/portIndex",
                    f"port mapping {hc.port_index} has neither a hostPort nor a containerPort "
                    f"to probe")
    if len(f["health_checks"]) > 1:
        r.error("/healthChecks", f"at most one health check is supported (the agent runs it, "
                                 f"as Mesos runs one per task), got {len(f['health_checks'])}")
    if len(f["readiness_checks"]) > 1:
        r.error("/readinessChecks", f"at most one readiness check is supported, "
                                    f"got {len(f['readiness_checks'])}")
    for i, rc in enumerate(f["readiness_checks"]):
        if rc.port_name not in seen:
            r.error(f"/readinessChecks/{i}/portName",
                    f"got {rc.port_name!r}, expected the name of one of the app's ports "
                    f"({', '.join(sorted(seen)) or 'none are named'})")


# --- rendering ------------------------------------------------------------

def _n(value: float) -> float:
    """Whole numbers as JSON integers (Marathon writes ``128``, not ``128.0``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


def _port_definition(p: PortDefinition) -> dict[str, Any]:
    out: dict[str, Any] = {"port": p.port, "protocol": p.protocol}
    if p.name is not None:
        out["name"] = p.name
    if p.labels:
        out["labels"] = dict(p.labels)
    return out


def _port_mapping(m: AppPortMapping) -> dict[str, Any]:
    out: dict[str, Any] = {"containerPort": m.container_port}
    if m.host_port is not None:
        out["hostPort"] = m.host_port
    out["servicePort"] = m.service_port
    out["protocol"] = m.protocol
    if m.name is not None:
        out["name"] = m.name
    if m.labels:
        out["labels"] = dict(m.labels)
    return out


def _network(n: Network) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": n.mode}
    if n.name is not None:
        out["name"] = n.name
    if n.labels:
        out["labels"] = dict(n.labels)
    return out


def _container(c: Container, host: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"type": c.type}
    if c.docker is not None:
        out["docker"] = {
            "image": c.docker.image,
            "forcePullImage": c.docker.force_pull_image,
            "privileged": c.docker.privileged,
            "parameters": [{"key": p.key, "value": p.value} for p in c.docker.parameters],
        }
    out["volumes"] = [{"containerPath": v.container_path, "hostPath": v.host_path,
                       "mode": v.mode} for v in c.volumes]
    if not host:
        out["portMappings"] = [_port_mapping(m) for m in (c.port_mappings or ())]
    return out


def render_health_check(hc: AppHealthCheck) -> dict[str, Any]:
    """One health check as Marathon shows it (only the fields its protocol uses)."""
    out: dict[str, Any] = {
        "gracePeriodSeconds": _n(hc.grace_period_seconds),
        "intervalSeconds": _n(hc.interval_seconds),
        "maxConsecutiveFailures": hc.max_consecutive_failures,
        "timeoutSeconds": _n(hc.timeout_seconds),
        "delaySeconds": _n(hc.delay_seconds),
        "protocol": hc.protocol,
    }
    if hc.protocol == "COMMAND":
        out["command"] = {"value": hc.command}
        return out
    if hc.port is not None:
        out["port"] = hc.port
    else:
        out["portIndex"] = hc.port_index if hc.port_index is not None else 0
    if hc.path is not None and hc.protocol in parts.HTTP_PROTOCOLS:
        out["path"] = hc.path
    if hc.protocol in ("HTTP", "HTTPS"):
        out["ignoreHttp1xx"] = hc.ignore_http1xx
    return out


def render_app(app: App, *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Marathon's App JSON for ``app``; ``extra`` adds the API's embeds.

    ``extra`` carries tasksStaged/tasksRunning/tasksHealthy/tasksUnhealthy,
    deployments, tasks, lastTaskFailure, readinessCheckResults … as the
    caller computed them; they are added last, unchanged.
    """
    host = app.uses_host_ports
    out: dict[str, Any] = {"id": app.id}
    if app.accepted_resource_roles is not None:
        out["acceptedResourceRoles"] = list(app.accepted_resource_roles)
    if app.args is not None:
        out["args"] = list(app.args)
    out["backoffFactor"] = _n(app.backoff_factor)
    out["backoffSeconds"] = _n(app.backoff_seconds)
    if app.cmd is not None:
        out["cmd"] = app.cmd
    out["constraints"] = [list(c) for c in app.constraints]
    if app.container is not None:
        out["container"] = _container(app.container, host)
    out["cpus"] = _n(app.cpus)
    out["dependencies"] = list(app.dependencies)
    out["disk"] = _n(app.disk)
    out["env"] = copy.deepcopy(app.env)
    out["executor"] = app.executor
    out["fetch"] = [_fetch_json(u) for u in app.fetch]
    out["gpus"] = app.gpus
    out["healthChecks"] = [render_health_check(h) for h in app.health_checks]
    out["instances"] = app.instances
    out["labels"] = dict(app.labels)
    out["maxLaunchDelaySeconds"] = _n(app.max_launch_delay_seconds)
    out["mem"] = _n(app.mem)
    out["networks"] = [_network(n) for n in app.networks]
    if host:
        out["ports"] = [p.port for p in app.port_definitions]
        out["portDefinitions"] = [_port_definition(p) for p in app.port_definitions]
    else:
        maps = app.container.port_mappings if app.container is not None else None
        out["ports"] = [m.service_port for m in (maps or ())]
    out["readinessChecks"] = [{
        "name": c.name, "protocol": c.protocol, "path": c.path, "portName": c.port_name,
        "intervalSeconds": _n(c.interval_seconds), "timeoutSeconds": _n(c.timeout_seconds),
        "httpStatusCodesForReady": list(c.http_status_codes_for_ready),
        "preserveLastResponse": c.preserve_last_response,
    } for c in app.readiness_checks]
    out["requirePorts"] = app.require_ports
    out["secrets"] = copy.deepcopy(app.secrets)
    if app.task_kill_grace_period_seconds is not None:
        out["taskKillGracePeriodSeconds"] = _n(app.task_kill_grace_period_seconds)
    out["upgradeStrategy"] = {
        "maximumOverCapacity": _n(app.upgrade_strategy.maximum_over_capacity),
        "minimumHealthCapacity": _n(app.upgrade_strategy.minimum_health_capacity),
    }
    if app.user is not None:
        out["user"] = app.user
    if app.version:
        out["version"] = app.version
    if app.version_info is not None:
        out["versionInfo"] = {"lastScalingAt": app.version_info.last_scaling_at,
                              "lastConfigChangeAt": app.version_info.last_config_change_at}
    out["killSelection"] = app.kill_selection.value
    us = app.unreachable_strategy
    out["unreachableStrategy"] = "disabled" if us is None else {
        "inactiveAfterSeconds": _n(us.inactive_after_seconds),
        "expungeAfterSeconds": _n(us.expunge_after_seconds),
    }
    if app.role is not None:
        out["role"] = app.role
    if extra:
        out.update(extra)
    return out


def _fetch_json(u: FetchUri) -> dict[str, Any]:
    out: dict[str, Any] = {"uri": u.uri, "executable": u.executable, "extract": u.extract,
                           "cache": u.cache}
    if u.dest_path is not None:
        out["destPath"] = u.dest_path
    return out
