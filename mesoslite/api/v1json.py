"""Mesos v1 JSON shapes to and from the protocol's values (PURE).

Owns: the parsers of what Mesos v1 clients send (:func:`parse_framework_info`,
:func:`parse_task_info`, :func:`parse_executor_info`, :func:`parse_filters`, ...)
and the renderers of what they read (:func:`status_json`, :func:`offer_json`,
:func:`master_info_json`, :func:`scheduler_event`, ...).  Ids are ``{"value": ...}``,
bytes are base64, durations are ``{"nanoseconds": ...}``, labels are
``{"labels": [{"key", "value"}]}``, resources are Mesos resource objects.

Parsing is strict: a field of the wrong type, a missing required field, and a field
we do not support (rather than silently dropping it) raise :class:`V1Error` naming the
field by its JSON path (``accept.operations[0].launch.task_infos[1].command.uris[0].value``).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from mesoslite.allocator import validate_role
from mesoslite.protocol import (
    AgentInfo,
    CommandInfo,
    CommandURI,
    ContainerInfo,
    ContainerStatus,
    DiscoveryInfo,
    DiscoveryPort,
    DockerInfo,
    ExecutorInfo,
    Filters,
    FrameworkInfo,
    HealthCheck,
    HTTPCheck,
    KillPolicy,
    MasterInfo,
    Offer,
    Parameter,
    PortMapping,
    TaskInfo,
    TaskStatus,
    TCPCheck,
    Volume,
    valid_id,
)
from mesoslite.protocol.uris import check_uris, mask_uri
from mesoslite.resources import Resources, ResourcesError

T = TypeVar("T")

#: Nanoseconds in a second (Mesos DurationInfo).
NANOS = 1_000_000_000


class V1Error(ValueError):
    """A call or object that does not fit the v1 API; ``field`` is its JSON path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


# ------------------------------------------------------------------ reading


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def obj(value: object, field: str, allowed: frozenset[str] | None = None) -> dict[str, Any]:
    """``value`` as a JSON object whose keys are all in ``allowed`` (V1Error otherwise)."""
    if not isinstance(value, dict):
        raise V1Error(field, f"expected an object, got {_show(value)}")
    if allowed is not None:
        for key in value:
            if key not in allowed:
                raise V1Error(f"{field}.{key}" if field else str(key),
                              f"unknown or unsupported field (expected one of {sorted(allowed)})")
    return value


def arr(value: object, field: str) -> list[Any]:
    """``value`` as a JSON array."""
    if not isinstance(value, list):
        raise V1Error(field, f"expected an array, got {_show(value)}")
    return value


def text(value: object, field: str, empty: bool = True) -> str:
    """``value`` as a string (non-empty unless ``empty``)."""
    if not isinstance(value, str) or (not empty and not value):
        what = "string" if empty else "non-empty string"
        raise V1Error(field, f"expected a {what}, got {_show(value)}")
    return value


def flag(value: object, field: str) -> bool:
    """``value`` as a boolean."""
    if not isinstance(value, bool):
        raise V1Error(field, f"expected true or false, got {_show(value)}")
    return value


def number(value: object, field: str, low: float = 0.0, high: float = 1e15) -> float:
    """``value`` as a finite number within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise V1Error(field, f"expected a number, got {_show(value)}")
    if not low <= value <= high:
        raise V1Error(field, f"expected a number in {low:g}-{high:g}, got {value!r}")
    return float(value)


def integer(value: object, field: str, low: int = 0, high: int = 2**63 - 1) -> int:
    """``value`` as an integer within [low, high] (protobuf JSON may quote 64-bit ones)."""
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise V1Error(field, f"expected an integer, got {_show(value)}")
    if not low <= value <= high:
        raise V1Error(field, f"expected an integer in {low}-{high}, got {value}")
    return value


def ident(value: object, field: str) -> str:
    """An id object ``{"value": "..."}`` as its string (ids travel into paths: checked)."""
    result = text(obj(value, field, frozenset({"value"})).get("value"), f"{field}.value",
                  empty=False)
    if not valid_id(result):
        raise V1Error(f"{field}.value", f"invalid id {_show(result)}: expected 1-255 "
                      "characters of A-Z a-z 0-9 _ . - : @")
    return result


def data_bytes(value: object, field: str) -> bytes:
    """Base64 text as bytes."""
    try:
        return base64.b64decode(text(value, field), validate=True)
    except (binascii.Error, ValueError):
        raise V1Error(field, "expected base64 text") from None


def duration(value: object, field: str) -> float:
    """A DurationInfo ``{"nanoseconds": n}`` as seconds."""
    body = obj(value, field, frozenset({"nanoseconds"}))
    return integer(body.get("nanoseconds"), f"{field}.nanoseconds") / NANOS


def labels_in(value: object, field: str) -> dict[str, str]:
    """Labels ``{"labels": [{"key", "value"}]}`` as a dict."""
    items = arr(obj(value, field, frozenset({"labels"})).get("labels", []), f"{field}.labels")
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        where = f"{field}.labels[{i}]"
        entry = obj(item, where, frozenset({"key", "value"}))
        out[text(entry.get("key"), f"{where}.key", empty=False)] = text(
            entry.get("value", ""), f"{where}.value")
    return out


def resources_in(value: object, field: str) -> Resources:
    """Mesos resource objects as Resources."""
    try:
        return Resources.from_wire(arr(value, field))
    except ResourcesError as exc:
        raise V1Error(field, str(exc)) from None


def build(field: str, factory: Callable[..., T], **kwargs: Any) -> T:
    """``factory(**kwargs)``, its validation errors named under ``field``."""
    try:
        return factory(**kwargs)
    except (ValueError, TypeError) as exc:
        name = getattr(exc, "field", "")
        raise V1Error(f"{field}.{name}" if name else field, str(exc)) from None


# -------------------------------------------------------- framework and tasks

_FRAMEWORK_KEYS = frozenset({"user", "name", "id", "failover_timeout", "checkpoint", "role",
                             "roles", "hostname", "principal", "webui_url", "capabilities",
                             "labels"})


def parse_framework_info(value: object, field: str) -> FrameworkInfo:
    """A FrameworkInfo (``role`` is read as ``roles: [role]``)."""
    body = obj(value, field, _FRAMEWORK_KEYS)
    if "role" in body and "roles" in body:
        raise V1Error(f"{field}.role", "give either role or roles, not both")
    if "roles" in body:
        roles = tuple(text(r, f"{field}.roles[{i}]", empty=False)
                      for i, r in enumerate(arr(body["roles"], f"{field}.roles")))
    else:
        roles = (text(body.get("role", "*"), f"{field}.role", empty=False),)
    if not roles or len(set(roles)) != len(roles):
        raise V1Error(f"{field}.roles", f"expected distinct roles, got {list(roles)!r}")
    for i, role in enumerate(roles):
        try:
            validate_role(role)
        except ValueError as exc:
            raise V1Error(f"{field}.roles[{i}]", str(exc)) from None
    capabilities = []
    for i, item in enumerate(arr(body.get("capabilities", []), f"{field}.capabilities")):
        entry = obj(item, f"{field}.capabilities[{i}]", frozenset({"type"}))
        capabilities.append(text(entry.get("type"), f"{field}.capabilities[{i}].type",
                                 empty=False))
    return build(field, FrameworkInfo,
                 user=text(body.get("user", ""), f"{field}.user"),
                 name=text(body.get("name", ""), f"{field}.name"),
                 id=ident(body["id"], f"{field}.id") if "id" in body else "",
                 roles=roles,
                 failover_timeout=number(body.get("failover_timeout", 0.0),
                                         f"{field}.failover_timeout"),
                 checkpoint=flag(body.get("checkpoint", False), f"{field}.checkpoint"),
                 capabilities=tuple(capabilities),
                 hostname=text(body.get("hostname", ""), f"{field}.hostname"),
                 principal=text(body.get("principal", ""), f"{field}.principal"),
                 webui_url=text(body.get("webui_url", ""), f"{field}.webui_url"),
                 labels=labels_in(body.get("labels", {}), f"{field}.labels"))


def _secret_reference(value: object, field: str) -> str:
    """A Secret of type REFERENCE: its ``reference.name`` (a VALUE secret is refused:
    its value would travel and be stored in the clear)."""
    body = obj(value, field, frozenset({"type", "reference", "value"}))
    if body.get("type", "REFERENCE") != "REFERENCE" or "value" in body:
        raise V1Error(f"{field}.type", "only REFERENCE secrets are supported (the agent "
                      "resolves them from its --secret_store_dir)")
    ref = obj(body.get("reference"), f"{field}.reference", frozenset({"name", "key"}))
    if "key" in ref:
        raise V1Error(f"{field}.reference.key", "keys inside a secret are not supported")
    return text(ref.get("name"), f"{field}.reference.name", empty=False)


def _environment(value: object, field: str) -> tuple[dict[str, str], dict[str, str]]:
    """(VALUE variables, SECRET variables as name → reference)."""
    items = arr(obj(value, field, frozenset({"variables"})).get("variables", []),
                f"{field}.variables")
    out: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for i, item in enumerate(items):
        where = f"{field}.variables[{i}]"
        entry = obj(item, where, frozenset({"name", "value", "type", "secret"}))
        name = text(entry.get("name"), f"{where}.name", empty=False)
        kind = entry.get("type", "VALUE")
        if kind == "SECRET":
            secrets[name] = _secret_reference(entry.get("secret"), f"{where}.secret")
        elif kind == "VALUE" and "secret" not in entry:
            out[name] = text(entry.get("value", ""), f"{where}.value")
        else:
            raise V1Error(f"{where}.type", "expected VALUE (with value) or SECRET (with a "
                          "secret reference)")
    return out, secrets


def _uri(value: object, field: str) -> CommandURI:
    """One ``CommandInfo.URI``: ``value`` and the fetcher's options (Mesos defaults)."""
    body = obj(value, field, frozenset({"value", "executable", "extract", "cache",
                                        "output_file"}))
    return CommandURI(value=text(body.get("value"), f"{field}.value", empty=False),
                      executable=flag(body.get("executable", False), f"{field}.executable"),
                      extract=flag(body.get("extract", True), f"{field}.extract"),
                      cache=flag(body.get("cache", False), f"{field}.cache"),
                      output_file=text(body.get("output_file", ""), f"{field}.output_file"))


def parse_command(value: object, field: str) -> CommandInfo:
    """A CommandInfo; ``uris`` are fetched into the sandbox before the command starts."""
    body = obj(value, field, frozenset({"value", "shell", "arguments", "environment", "user",
                                        "uris"}))
    uris = tuple(_uri(item, f"{field}.uris[{i}]")
                 for i, item in enumerate(arr(body.get("uris", []), f"{field}.uris")))
    problem = check_uris(uris, f"{field}.uris")
    if problem is not None:
        raise V1Error(*problem)
    arguments = tuple(text(a, f"{field}.arguments[{i}]")
                      for i, a in enumerate(arr(body.get("arguments", []), f"{field}.arguments")))
    environment, secrets = _environment(body.get("environment", {}), f"{field}.environment")
    return build(field, CommandInfo,
                 value=text(body.get("value", ""), f"{field}.value"),
                 shell=flag(body.get("shell", True), f"{field}.shell"),
                 arguments=arguments,
                 environment=environment, secret_environment=secrets,
                 user=text(body.get("user", ""), f"{field}.user"),
                 uris=uris)


def _docker(value: object, field: str) -> DockerInfo:
    body = obj(value, field, frozenset({"image", "network", "port_mappings", "privileged",
                                        "parameters", "force_pull_image"}))
    network = text(body.get("network", "HOST"), f"{field}.network")
    if network not in ("HOST", "BRIDGE", "NONE", "USER"):
        raise V1Error(f"{field}.network", f"expected HOST, BRIDGE, NONE or USER, got {network!r}")
    mappings = []
    for i, item in enumerate(arr(body.get("port_mappings", []), f"{field}.port_mappings")):
        where = f"{field}.port_mappings[{i}]"
        entry = obj(item, where, frozenset({"host_port", "container_port", "protocol"}))
        mappings.append(build(where, PortMapping,
                              host_port=integer(entry.get("host_port"), f"{where}.host_port",
                                                0, 65535),
                              container_port=integer(entry.get("container_port"),
                                                     f"{where}.container_port", 0, 65535),
                              protocol=text(entry.get("protocol", "tcp"), f"{where}.protocol")))
    parameters = []
    for i, item in enumerate(arr(body.get("parameters", []), f"{field}.parameters")):
        where = f"{field}.parameters[{i}]"
        entry = obj(item, where, frozenset({"key", "value"}))
        parameters.append(Parameter(text(entry.get("key"), f"{where}.key", empty=False),
                                    text(entry.get("value", ""), f"{where}.value")))
    return DockerInfo(image=text(body.get("image"), f"{field}.image", empty=False),
                      network=network, port_mappings=tuple(mappings),
                      privileged=flag(body.get("privileged", False), f"{field}.privileged"),
                      parameters=tuple(parameters),
                      force_pull_image=flag(body.get("force_pull_image", False),
                                            f"{field}.force_pull_image"))


def parse_container(value: object, field: str) -> ContainerInfo:
    """A ContainerInfo: MESOS (no image) or DOCKER."""
    body = obj(value, field, frozenset({"type", "docker", "volumes", "hostname"}))
    kind = text(body.get("type", "MESOS"), f"{field}.type")
    if kind not in ("MESOS", "DOCKER"):
        raise V1Error(f"{field}.type", f"expected MESOS or DOCKER, got {kind!r}")
    if kind == "DOCKER" and "docker" not in body:
        raise V1Error(f"{field}.docker", "a DOCKER container needs docker")
    if kind == "MESOS" and "docker" in body:
        raise V1Error(f"{field}.docker", "docker is only for a DOCKER container")
    volumes = []
    for i, item in enumerate(arr(body.get("volumes", []), f"{field}.volumes")):
        where = f"{field}.volumes[{i}]"
        entry = obj(item, where, frozenset({"container_path", "host_path", "mode"}))
        mode = text(entry.get("mode", "RW"), f"{where}.mode")
        if mode not in ("RW", "RO"):
            raise V1Error(f"{where}.mode", f"expected RW or RO, got {mode!r}")
        volumes.append(Volume(text(entry.get("container_path"), f"{where}.container_path",
                                   empty=False),
                              text(entry.get("host_path", ""), f"{where}.host_path"), mode))
    return ContainerInfo(type=kind,
                         docker=_docker(body["docker"], f"{field}.docker")
                         if "docker" in body else None,
                         volumes=tuple(volumes),
                         hostname=text(body.get("hostname", ""), f"{field}.hostname"))


def parse_health_check(value: object, field: str) -> HealthCheck:
    """A HealthCheck (COMMAND, HTTP or TCP) with Mesos's defaults."""
    body = obj(value, field, frozenset({"type", "delay_seconds", "interval_seconds",
                                        "timeout_seconds", "consecutive_failures",
                                        "grace_period_seconds", "command", "http", "tcp"}))
    kind = text(body.get("type", "COMMAND" if "command" in body else ""), f"{field}.type")
    if kind not in ("COMMAND", "HTTP", "TCP"):
        raise V1Error(f"{field}.type", f"expected COMMAND, HTTP or TCP, got {kind!r}")
    http = tcp = None
    if "http" in body:
        entry = obj(body["http"], f"{field}.http", frozenset({"port", "path", "scheme"}))
        http = HTTPCheck(port=integer(entry.get("port"), f"{field}.http.port", 0, 65535),
                         path=text(entry.get("path", "/"), f"{field}.http.path"),
                         scheme=text(entry.get("scheme", "http"), f"{field}.http.scheme"))
    if "tcp" in body:
        entry = obj(body["tcp"], f"{field}.tcp", frozenset({"port"}))
        tcp = TCPCheck(port=integer(entry.get("port"), f"{field}.tcp.port", 0, 65535))
    defaults = HealthCheck()
    return HealthCheck(
        type=kind,
        delay_seconds=number(body.get("delay_seconds", defaults.delay_seconds),
                             f"{field}.delay_seconds"),
        interval_seconds=number(body.get("interval_seconds", defaults.interval_seconds),
                                f"{field}.interval_seconds"),
        timeout_seconds=number(body.get("timeout_seconds", defaults.timeout_seconds),
                               f"{field}.timeout_seconds"),
        consecutive_failures=integer(body.get("consecutive_failures",
                                              defaults.consecutive_failures),
                                     f"{field}.consecutive_failures", 1, 1_000_000),
        grace_period_seconds=number(body.get("grace_period_seconds",
                                             defaults.grace_period_seconds),
                                    f"{field}.grace_period_seconds"),
        command=parse_command(body["command"], f"{field}.command") if "command" in body else None,
        http=http, tcp=tcp)


def parse_kill_policy(value: object, field: str) -> KillPolicy:
    """A KillPolicy ``{"grace_period": {"nanoseconds": n}}``."""
    body = obj(value, field, frozenset({"grace_period"}))
    if "grace_period" not in body:
        return KillPolicy()
    return KillPolicy(grace_period=duration(body["grace_period"], f"{field}.grace_period"))


def parse_executor_info(value: object, field: str) -> ExecutorInfo:
    """A custom ExecutorInfo (``type`` CUSTOM, with a command)."""
    body = obj(value, field, frozenset({"executor_id", "command", "framework_id", "name",
                                        "resources", "container", "type", "source"}))
    kind = text(body.get("type", "CUSTOM"), f"{field}.type")
    if kind != "CUSTOM":
        raise V1Error(f"{field}.type", f"only CUSTOM executors are supported, got {kind!r}")
    if "command" not in body:
        raise V1Error(f"{field}.command", "a custom executor needs a command")
    return build(field, ExecutorInfo,
                 executor_id=ident(body.get("executor_id"), f"{field}.executor_id"),
                 command=parse_command(body["command"], f"{field}.command"),
                 framework_id=ident(body["framework_id"], f"{field}.framework_id")
                 if "framework_id" in body else "",
                 name=text(body.get("name", ""), f"{field}.name"),
                 resources=resources_in(body.get("resources", []), f"{field}.resources"),
                 container=parse_container(body["container"], f"{field}.container")
                 if "container" in body else None)


_TASK_KEYS = frozenset({"name", "task_id", "agent_id", "slave_id", "resources", "command",
                        "executor", "container", "health_check", "kill_policy", "labels",
                        "data", "discovery"})
_DISCOVERY_KEYS = frozenset({"visibility", "name", "environment", "location", "version",
                             "ports", "labels"})


def _discovery_port(value: object, field: str) -> DiscoveryPort:
    body = obj(value, field, frozenset({"number", "name", "protocol", "visibility", "labels"}))
    return build(field, DiscoveryPort,
                 number=integer(body.get("number"), f"{field}.number", 0, 65535),
                 name=text(body.get("name", ""), f"{field}.name"),
                 protocol=text(body.get("protocol", ""), f"{field}.protocol"),
                 visibility=text(body.get("visibility", ""), f"{field}.visibility"),
                 labels=labels_in(body.get("labels", {}), f"{field}.labels"))


def parse_discovery(value: object, field: str) -> DiscoveryInfo:
    """A DiscoveryInfo: ``visibility`` (required), names, ``ports.ports[]``, ``labels``."""
    body = obj(value, field, _DISCOVERY_KEYS)
    ports = obj(body.get("ports", {}), f"{field}.ports", frozenset({"ports"}))
    strings = {key: text(body.get(key, ""), f"{field}.{key}")
               for key in ("name", "environment", "location", "version")}
    return build(field, DiscoveryInfo,
                 visibility=text(body.get("visibility"), f"{field}.visibility", empty=False),
                 ports=tuple(_discovery_port(item, f"{field}.ports.ports[{i}]")
                             for i, item in enumerate(arr(ports.get("ports", []),
                                                          f"{field}.ports.ports"))),
                 labels=labels_in(body.get("labels", {}), f"{field}.labels"), **strings)


def parse_task_info(value: object, field: str) -> TaskInfo:
    """A TaskInfo: a command task, or one for a custom executor."""
    body = obj(value, field, _TASK_KEYS)
    has_command, has_executor = "command" in body, "executor" in body
    if has_command == has_executor:
        raise V1Error(f"{field}.command", "expected exactly one of command and executor")
    agent_key = "agent_id" if "agent_id" in body or "slave_id" not in body else "slave_id"
    if "agent_id" in body and "slave_id" in body and body["agent_id"] != body["slave_id"]:
        raise V1Error(f"{field}.slave_id", "differs from agent_id (give one of them)")
    optional: dict[str, Any] = {}
    parsers: dict[str, Callable[[object, str], Any]] = {
        "command": parse_command, "executor": parse_executor_info,
        "container": parse_container, "health_check": parse_health_check,
        "kill_policy": parse_kill_policy, "discovery": parse_discovery,
    }
    for key, parser in parsers.items():
        if key in body:
            optional[key] = parser(body[key], f"{field}.{key}")
    return build(field, TaskInfo,
                 name=text(body.get("name", ""), f"{field}.name"),
                 task_id=ident(body.get("task_id"), f"{field}.task_id"),
                 agent_id=ident(body.get(agent_key), f"{field}.{agent_key}"),
                 resources=resources_in(body.get("resources", []), f"{field}.resources"),
                 labels=labels_in(body.get("labels", {}), f"{field}.labels"),
                 data=data_bytes(body["data"], f"{field}.data") if "data" in body else b"",
                 **optional)


def parse_filters(value: object, field: str) -> Filters:
    """Filters ``{"refuse_seconds": s}`` (at most a year, as Mesos caps it)."""
    body = obj(value, field, frozenset({"refuse_seconds"}))
    return Filters(refuse_seconds=number(body.get("refuse_seconds", 5.0),
                                         f"{field}.refuse_seconds", 0.0, 31_536_000.0))


# ------------------------------------------------------------------ writing


def id_json(value: str) -> dict[str, str]:
    """An id object."""
    return {"value": value}


def b64(value: bytes) -> str:
    """Bytes as base64 text."""
    return base64.b64encode(value).decode("ascii")


def labels_json(values: Mapping[str, str]) -> dict[str, list[dict[str, str]]]:
    """Labels as Mesos writes them."""
    return {"labels": [{"key": k, "value": v} for k, v in sorted(values.items())]}


def resources_json(value: Resources, role: str | None = None) -> list[dict[str, Any]]:
    """Resources as Mesos resource objects (with ``allocation_info`` when ``role``)."""
    items = value.to_wire()
    if role is not None:
        for item in items:
            item["allocation_info"] = {"role": role}
    return items


def attributes_json(values: Mapping[str, str]) -> list[dict[str, Any]]:
    """Attributes as Mesos TEXT attributes."""
    return [{"name": k, "type": "TEXT", "text": {"value": v}} for k, v in sorted(values.items())]


def ip_uint32(ip: str) -> int:
    """An IPv4 address as Mesos's MasterInfo.ip (network byte order read little-endian)."""
    try:
        return int.from_bytes(ipaddress.IPv4Address(ip).packed, "little")
    except ValueError:
        return 0


def master_info_json(info: MasterInfo) -> dict[str, Any]:
    """A MasterInfo as Mesos writes it (``ip`` as a uint32)."""
    return {"id": info.id, "ip": ip_uint32(info.ip), "port": info.port, "pid": info.pid,
            "hostname": info.hostname, "version": info.version,
            "address": {"hostname": info.hostname, "ip": info.ip, "port": info.port}}


def agent_info_json(info: AgentInfo) -> dict[str, Any]:
    """An AgentInfo."""
    return {"id": id_json(info.id), "hostname": info.hostname, "port": info.port,
            "resources": resources_json(info.resources),
            "attributes": attributes_json(info.attributes)}


def framework_info_json(info: FrameworkInfo) -> dict[str, Any]:
    """A FrameworkInfo."""
    out: dict[str, Any] = {
        "user": info.user, "name": info.name, "roles": list(info.roles),
        "failover_timeout": info.failover_timeout, "checkpoint": info.checkpoint,
        "capabilities": [{"type": name} for name in info.capabilities],
        "hostname": info.hostname, "principal": info.principal, "webui_url": info.webui_url,
        "labels": labels_json(info.labels)}
    if info.id:
        out["id"] = id_json(info.id)
    return out


def status_json(status: TaskStatus) -> dict[str, Any]:
    """A TaskStatus (``uuid`` and ``data`` in base64)."""
    out: dict[str, Any] = {"task_id": id_json(status.task_id), "state": status.state.value,
                           "timestamp": status.timestamp}
    if status.message:
        out["message"] = status.message
    if status.source is not None:
        out["source"] = status.source.value
    if status.reason is not None:
        out["reason"] = status.reason.value
    if status.agent_id:
        out["agent_id"] = id_json(status.agent_id)
    if status.executor_id:
        out["executor_id"] = id_json(status.executor_id)
    if status.uuid:
        out["uuid"] = b64(status.uuid)
    if status.healthy is not None:
        out["healthy"] = status.healthy
    if status.data:
        out["data"] = b64(status.data)
    if status.labels:
        out["labels"] = labels_json(status.labels)
    if status.container_status is not None:
        out["container_status"] = container_status_json(status.container_status)
    return out


def container_status_json(value: ContainerStatus) -> dict[str, Any]:
    """A ContainerStatus: ``network_infos[].ip_addresses[].ip_address`` (Mesos-DNS reads it)."""
    networks = []
    for network in value.network_infos:
        item: dict[str, Any] = {"ip_addresses": [
            {"ip_address": a.ip_address, "protocol": a.protocol} for a in network.ip_addresses]}
        if network.name:
            item["name"] = network.name
        networks.append(item)
    return {"network_infos": networks}


def discovery_json(value: DiscoveryInfo) -> dict[str, Any]:
    """A DiscoveryInfo as Mesos writes it (in /state and in TaskInfo)."""
    out: dict[str, Any] = {"visibility": value.visibility}
    for key in ("name", "environment", "location", "version"):
        if getattr(value, key):
            out[key] = getattr(value, key)
    ports = []
    for port in value.ports:
        item: dict[str, Any] = {"number": port.number}
        for key in ("name", "protocol", "visibility"):
            if getattr(port, key):
                item[key] = getattr(port, key)
        if port.labels:
            item["labels"] = labels_json(port.labels)
        ports.append(item)
    out["ports"] = {"ports": ports}
    if value.labels:
        out["labels"] = labels_json(value.labels)
    return out


def offer_json(offer: Offer) -> dict[str, Any]:
    """An Offer (resources carry the offer's role as ``allocation_info``)."""
    return {"id": id_json(offer.id), "framework_id": id_json(offer.framework_id),
            "agent_id": id_json(offer.agent_id), "hostname": offer.hostname,
            "allocation_info": {"role": offer.role},
            "resources": resources_json(offer.resources, offer.role),
            "attributes": attributes_json(offer.attributes),
            "executor_ids": [id_json(e) for e in offer.executor_ids]}


def command_json(command: CommandInfo) -> dict[str, Any]:
    """A CommandInfo."""
    return {"value": command.value, "shell": command.shell,
            "arguments": list(command.arguments), "user": command.user,
            "environment": {"variables": [
                *({"name": k, "value": v} for k, v in sorted(command.environment.items())),
                *({"name": k, "type": "SECRET", "secret": {
                    "type": "REFERENCE", "reference": {"name": ref}}}
                  for k, ref in sorted(command.secret_environment.items()))]},
            "uris": [{"value": mask_uri(u.value), "executable": u.executable,
                      "extract": u.extract, "cache": u.cache,
                      **({"output_file": u.output_file} if u.output_file else {})}
                     for u in command.uris]}


def container_json(container: ContainerInfo) -> dict[str, Any]:
    """A ContainerInfo."""
    out: dict[str, Any] = {"type": container.type}
    if container.docker is not None:
        docker = container.docker
        out["docker"] = {
            "image": docker.image, "network": docker.network, "privileged": docker.privileged,
            "force_pull_image": docker.force_pull_image,
            "port_mappings": [{"host_port": m.host_port, "container_port": m.container_port,
                               "protocol": m.protocol} for m in docker.port_mappings],
            "parameters": [{"key": p.key, "value": p.value} for p in docker.parameters]}
    if container.volumes:
        out["volumes"] = [{"container_path": v.container_path, "host_path": v.host_path,
                           "mode": v.mode} for v in container.volumes]
    if container.hostname:
        out["hostname"] = container.hostname
    return out


def executor_info_json(info: ExecutorInfo) -> dict[str, Any]:
    """An ExecutorInfo."""
    out: dict[str, Any] = {"type": info.type, "executor_id": id_json(info.executor_id),
                           "name": info.name, "command": command_json(info.command),
                           "resources": resources_json(info.resources)}
    if info.framework_id:
        out["framework_id"] = id_json(info.framework_id)
    if info.container is not None:
        out["container"] = container_json(info.container)
    return out


def task_info_json(task: TaskInfo) -> dict[str, Any]:
    """A TaskInfo (as LAUNCH events carry it)."""
    out: dict[str, Any] = {"name": task.name, "task_id": id_json(task.task_id),
                           "agent_id": id_json(task.agent_id),
                           "resources": resources_json(task.resources),
                           "labels": labels_json(task.labels)}
    if task.command is not None:
        out["command"] = command_json(task.command)
    if task.executor is not None:
        out["executor"] = executor_info_json(task.executor)
    if task.container is not None:
        out["container"] = container_json(task.container)
    if task.kill_policy is not None:
        out["kill_policy"] = {"grace_period": {
            "nanoseconds": round(task.kill_policy.grace_period * NANOS)}}
    if task.data:
        out["data"] = b64(task.data)
    if task.discovery is not None:
        out["discovery"] = discovery_json(task.discovery)
    return out
