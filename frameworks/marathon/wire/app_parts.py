"""Parsers for the parts of a Marathon App JSON (PURE).

Owns: turning the nested JSON objects of an app (port definitions and
mappings, networks, container, health and readiness checks, fetch URIs,
upgrade and unreachable strategies, env and secrets) into the model's attrs
values, with Marathon's defaults.  Every problem is recorded on the
:class:`~frameworks.marathon.wire.validation.Reader` with the JSON path of the
offending value; a part that failed comes back as ``BAD``.
"""

from __future__ import annotations

from typing import Any

from frameworks.marathon.core.model import (
    AppHealthCheck,
    AppPortMapping,
    AppVolume,
    Container,
    Docker,
    DockerParameter,
    FetchUri,
    Network,
    PortDefinition,
    ReadinessCheck,
    UnreachableStrategy,
    UpgradeStrategy,
)
from frameworks.marathon.wire.validation import (
    BAD,
    MISSING,
    PORT_NAME_RE,
    PORT_PROTOCOLS,
    Reader,
    show,
)
from mesoslite.protocol import CommandURI
from mesoslite.protocol.uris import check_uri, is_archive

HEALTH_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")
HTTP_PROTOCOLS = ("HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS")
NETWORK_MODES = ("host", "container/bridge", "container")
DOCKER_NETWORKS = {"HOST": "host", "BRIDGE": "container/bridge", "USER": "container"}
VOLUME_MODES = ("RW", "RO")


def _known(reader: Reader, obj: dict[str, Any], path: str, allowed: frozenset[str]) -> None:
    for key in obj:
        if key not in allowed:
            reader.error(f"{path}/{key}", f"unknown property {key!r}; expected one of "
                                          f"{', '.join(sorted(allowed))}")


def _opt(obj: dict[str, Any], key: str) -> Any:
    """The value sent for ``key``; a JSON null counts as not sent."""
    value = obj.get(key, MISSING)
    return MISSING if value is None else value


def _name(reader: Reader, value: Any, path: str) -> str | Any | None:
    if value is MISSING:
        return None
    value = reader.string(value, path, min_len=1)
    if value is not BAD and not PORT_NAME_RE.match(value):
        return reader.error(path, f"port name {value!r} must be lowercase letters, digits "
                                  f"and '-' (not at either end)")
    return value


def _labels(reader: Reader, value: Any, path: str) -> dict[str, str] | Any:
    return {} if value is MISSING else reader.str_map(value, path)


_PORT_DEF_KEYS = frozenset({"port", "protocol", "name", "labels"})


def port_definition(reader: Reader, value: Any, path: str) -> PortDefinition | Any:
    """One ``portDefinitions`` element (service ``port`` 0 means allocate)."""
    value = reader.obj(value, path)
    if value is BAD:
        return BAD
    _known(reader, value, path, _PORT_DEF_KEYS)
    port = _opt(value, "port")
    port = 0 if port is MISSING else reader.port(port, f"{path}/port")
    protocol = _opt(value, "protocol")
    protocol = "tcp" if protocol is MISSING else reader.enum(
        protocol, f"{path}/protocol", PORT_PROTOCOLS)
    name = _name(reader, _opt(value, "name"), f"{path}/name")
    labels = _labels(reader, _opt(value, "labels"), f"{path}/labels")
    if BAD in (port, protocol, name, labels):
        return BAD
    return PortDefinition(port=port, protocol=protocol, name=name, labels=labels)


_MAPPING_KEYS = frozenset({"containerPort", "hostPort", "servicePort", "protocol", "name",
                           "labels", "networkNames"})


def port_mapping(reader: Reader, value: Any, path: str, bridge: bool) -> AppPortMapping | Any:
    """One ``portMappings`` element; ``hostPort`` defaults to 0 only on the bridge."""
    value = reader.obj(value, path)
    if value is BAD:
        return BAD
    _known(reader, value, path, _MAPPING_KEYS)
    container_port = _opt(value, "containerPort")
    container_port = 0 if container_port is MISSING else reader.port(
        container_port, f"{path}/containerPort")
    host_port = _opt(value, "hostPort")
    if host_port is MISSING:
        host_port = 0 if bridge else None
    else:
        host_port = reader.port(host_port, f"{path}/hostPort")
    service_port = _opt(value, "servicePort")
    service_port = 0 if service_port is MISSING else reader.port(
        service_port, f"{path}/servicePort")
    protocol = _opt(value, "protocol")
    protocol = "tcp" if protocol is MISSING else reader.enum(
        protocol, f"{path}/protocol", PORT_PROTOCOLS)
    name = _name(reader, _opt(value, "name"), f"{path}/name")
    labels = _labels(reader, _opt(value, "labels"), f"{path}/labels")
    names = _opt(value, "networkNames")
    if names is not MISSING and reader.str_list(names, f"{path}/networkNames") not in ([], BAD):
        reader.error(f"{path}/networkNames", "per-network port mappings are not supported: "
                                             "a mapping applies to the app's one network")
    if BAD in (container_port, host_port, service_port, protocol, name, labels):
        return BAD
    return AppPortMapping(container_port=container_port, host_port=host_port,
                       service_port=service_port, protocol=protocol, name=name, labels=labels)


def network(reader: Reader, value: Any, path: str) -> Network | Any:
    """One ``networks`` element (mode defaults to ``container``, as in Marathon)."""
    value = reader.obj(value, path)
    if value is BAD:
        return BAD
    _known(reader, value, path, frozenset({"mode", "name", "labels"}))
    mode = _opt(value, "mode")
    mode = "container" if mode is MISSING else reader.enum(mode, f"{path}/mode", NETWORK_MODES)
    name = _opt(value, "name")
    name = None if name is MISSING else reader.string(name, f"{path}/name", min_len=1)
    labels = _labels(reader, _opt(value, "labels"), f"{path}/labels")
    if BAD in (mode, name, labels):
        return BAD
    if mode != "container" and name is not None:
        return reader.error(f"{path}/name", f"a {mode} network takes no name, got {name!r}")
    return Network(mode=mode, name=name, labels=labels)


def check_networks(reader: Reader, nets: list[Network], path: str) -> None:
    """Marathon's combination rules: host and bridge networks stand alone."""
    modes = [n.mode for n in nets]
    for lone in ("host", "container/bridge"):
        if lone in modes and len(modes) > 1:
            reader.error(path, f"a {lone} network cannot be combined with other networks")
            return


_VOLUME_KEYS = frozenset({"containerPath", "hostPath", "mode"})


def volume(reader: Reader, value: Any, path: str) -> AppVolume | Any:
    """One ``container.volumes`` element (host path mounts only)."""
    value = reader.obj(value, path)
    if value is BAD:
        return BAD
    for key in value:
        if key == "secret":
            reader.error(f"{path}/secret", "file-based secrets are not supported; reference "
                                           "the secret from env instead")
        elif key in ("persistent", "external"):
            kind = "local persistent" if key == "persistent" else "external"
            reader.error(f"{path}/{key}", f"{kind} volumes are not supported; only host "
                                          f"path volumes (containerPath, hostPath, mode) exist")
        elif key not in _VOLUME_KEYS:
            reader.error(f"{path}/{key}", f"unsupported volume property {key!r}; only host "
                                          f"path volumes (containerPath, hostPath, mode) exist")
    cpath = reader.string(value.get("containerPath", MISSING), f"{path}/containerPath",
                          min_len=1) if "containerPath" in value else reader.error(
        f"{path}/containerPath", "expected a container path, got nothing")
    hpath = reader.string(value.get("hostPath"), f"{path}/hostPath", min_len=1) \
        if "hostPath" in value else reader.error(f"{path}/hostPath",
                                                 "expected a host path, got nothing")
    mode = _opt(value, "mode")
    mode = "RW" if mode is MISSING else reader.enum(mode, f"{path}/mode", VOLUME_MODES)
    if BAD in (cpath, hpath, mode):
        return BAD
    return AppVolume(container_path=cpath, host_path=hpath, mode=mode)


def _docker_param(reader: Reader, value: Any, path: str) -> DockerParameter | Any:
    value = reader.obj(value, path)
    if value is BAD:
        return BAD
    _known(reader, value, path, frozenset({"key", "value"}))
    key = reader.string(value.get("key"), f"{path}/key", min_len=1)
    val = reader.string(value.get("value"), f"{path}/value")
    return BAD if BAD in (key, val) else DockerParameter(key=key, value=val)


_DOCKER_KEYS = frozenset({"image", "forcePullImage", "privileged", "parameters", "network",
                          "portMappings"})
#: Docker properties Marathon defines that nothing here would act on, and why.
_DOCKER_REFUSED = {
    "credential": "registry credentials are not supported; log the agent's Docker daemon "
                  "in to the registry instead",
    "pullConfig": "registry credentials (pullConfig secrets) are not supported; log the "
                  "agent's Docker daemon in to the registry instead",
}


def container(reader: Reader, value: Any, path: str) -> tuple[Any, Any, Any]:
    """``container`` → (Container, legacy docker network mode or None, legacy mappings).

    The port mappings are left raw (they depend on the networks) and are
    parsed by the caller; the legacy ``docker.portMappings`` come back in
    the third slot.
    """
    value = reader.obj(value, path)
    if value is BAD:
        return BAD, None, MISSING
    _known(reader, value, path, frozenset({"type", "docker", "volumes", "portMappings"}))
    ctype = _opt(value, "type")
    ctype = "DOCKER" if ctype is MISSING else reader.enum(ctype, f"{path}/type",
                                                          ("DOCKER", "MESOS"))
    volumes = _opt(value, "volumes")
    volumes = () if volumes is MISSING else reader.items(
        volumes, f"{path}/volumes", lambda v, p: volume(reader, v, p))
    docker: Any = None
    legacy_network: str | None = None
    legacy_mappings: Any = MISSING
    raw = _opt(value, "docker")
    if raw is not MISSING:
        raw = reader.obj(raw, f"{path}/docker")
    if raw is not MISSING and raw is not BAD:
        dpath = f"{path}/docker"
        for key, why in _DOCKER_REFUSED.items():
            if raw.get(key) is not None:
                reader.error(f"{dpath}/{key}", why)
        _known(reader, {k: v for k, v in raw.items() if k not in _DOCKER_REFUSED}, dpath,
               _DOCKER_KEYS)
        image = reader.string(raw.get("image"), f"{dpath}/image", min_len=1) \
            if raw.get("image") is not None else reader.error(
                f"{dpath}/image", "expected an image name, got nothing")
        force = _opt(raw, "forcePullImage")
        force = False if force is MISSING else reader.boolean(force, f"{dpath}/forcePullImage")
        priv = _opt(raw, "privileged")
        priv = False if priv is MISSING else reader.boolean(priv, f"{dpath}/privileged")
        params = _opt(raw, "parameters")
        params = () if params is MISSING else reader.items(
            params, f"{dpath}/parameters", lambda v, p: _docker_param(reader, v, p))
        net = _opt(raw, "network")
        if net is not MISSING:
            if net == "NONE":
                reader.error(f"{dpath}/network", "network NONE is not supported; "
                                                 "use networks instead")
            elif reader.enum(net, f"{dpath}/network", tuple(DOCKER_NETWORKS)) is not BAD:
                legacy_network = DOCKER_NETWORKS[net]
        legacy_mappings = _opt(raw, "portMappings")
        if BAD in (image, force, priv, params):
            docker = BAD
        else:
            docker = Docker(image=image, force_pull_image=force, privileged=priv,
                            parameters=tuple(params))
    elif raw is BAD:
        docker = BAD
    if ctype == "DOCKER" and raw is MISSING:
        reader.error(f"{path}/docker", "a DOCKER container needs a docker object with an image")
        docker = BAD
    if ctype == "MESOS" and docker not in (None, BAD):
        reader.error(f"{path}/docker/image", "images run only in DOCKER containers here: the "
                                             "MESOS containerizer runs the command on the host; "
                                             "use type DOCKER")
        docker = BAD
    if ctype == "MESOS" and volumes not in ((), BAD) and volumes:
        volumes = reader.error(f"{path}/volumes", "volumes need a DOCKER container: the MESOS "
                                                  "containerizer runs the command on the host "
                                                  "and mounts nothing")
    if BAD in (ctype, volumes, docker):
        return BAD, legacy_network, legacy_mappings
    return (Container(type=ctype, docker=docker, volumes=tuple(volumes)),
            legacy_network, legacy_mappings)


_HC_KEYS = frozenset({"protocol", "path", "portIndex", "port", "command",
                      "gracePeriodSeconds", "intervalSeconds", "timeoutSeconds",
                      "maxConsecutiveFailures", "delaySeconds", "ignoreHttp1xx", "ipProtocol"})


def health_check(reader: Reader, value: Any, path: str) -> AppHealthCheck | Any:
    """One ``healthChecks`` element, normalised per protocol.

    COMMAND checks keep only ``command``; TCP checks have no ``path``;
    ``ignoreHttp1xx`` is kept for HTTP/HTTPS only; ``portIndex`` defaults to 0
    unless a fixed ``port`` is given.
    """
    value = reader.obj(value, path)
    if value is BAD:
        return BAD
    _known(reader, value, path, _HC_KEYS)
    d = AppHealthCheck()
    proto = _opt(value, "protocol")
    proto = d.protocol if proto is MISSING else reader.enum(
        proto, f"{path}/protocol", HEALTH_PROTOCOLS)

    def num(key: str, default: float, **bounds: Any) -> Any:
        raw = _opt(value, key)
        return default if raw is MISSING else reader.number(raw, f"{path}/{key}", **bounds)

    grace = num("gracePeriodSeconds", d.grace_period_seconds, minimum=0)
    interval = num("intervalSeconds", d.interval_seconds, above=0)
    timeout = num("timeoutSeconds", d.timeout_seconds, above=0)
    failures = num("maxConsecutiveFailures", d.max_consecutive_failures, minimum=0,
                   integer=True)
    delay = num("delaySeconds", d.delay_seconds, minimum=0)
    ignore = _opt(value, "ignoreHttp1xx")
    ignore = False if ignore is MISSING else reader.boolean(ignore, f"{path}/ignoreHttp1xx")
    if _opt(value, "ipProtocol") is not MISSING and reader.enum(
            value["ipProtocol"], f"{path}/ipProtocol", ("IPv4", "IPv6")) == "IPv6":
        reader.error(f"{path}/ipProtocol", "IPv6 health checks are not supported; "
                                           "checks probe the task's IPv4 address")
    port_index: Any = None
    port: Any = None
    hc_path: Any = None
    command: Any = None
    if proto == "COMMAND":
        raw = _opt(value, "command")
        if raw is MISSING:
            command = reader.error(f"{path}/command", "a COMMAND health check needs "
                                                      "command.value, got nothing")
        elif reader.obj(raw, f"{path}/command") is not BAD:
            command = reader.string(raw.get("value"), f"{path}/command/value", min_len=1)
        else:
            command = BAD
    elif proto is not BAD:
        raw_port = _opt(value, "port")
        raw_index = _opt(value, "portIndex")
        if raw_port is not MISSING and raw_index is not MISSING:
            reader.error(path, "set either port or portIndex, not both")
        if raw_port is not MISSING:
            port = reader.number(raw_port, f"{path}/port", minimum=1, maximum=65535,
                                 integer=True)
        else:
            port_index = 0 if raw_index is MISSING else reader.number(
                raw_index, f"{path}/portIndex", minimum=0, integer=True)
        if proto in HTTP_PROTOCOLS:
            hc_path = _opt(value, "path")
            hc_path = "/" if hc_path is MISSING else reader.string(hc_path, f"{path}/path")
            if hc_path is not BAD and (not hc_path.startswith("/") or any(
                    c.isspace() or ord(c) < 32 or ord(c) == 127 for c in hc_path)):
                hc_path = reader.error(f"{path}/path", f"expected a path starting with '/' "
                                                       f"and without spaces or control "
                                                       f"characters, got {hc_path!r}")
    if proto not in ("HTTP", "HTTPS"):
        ignore = False if ignore is not BAD else BAD
    parts = (proto, grace, interval, timeout, failures, delay, ignore, port_index, port,
             hc_path, command)
    if BAD in parts:
        return BAD
    return AppHealthCheck(
        protocol=proto, path=hc_path, port_index=port_index, port=port, command=command,
        grace_period_seconds=grace, interval_seconds=interval, timeout_seconds=timeout,
        max_consecutive_failures=failures, delay_seconds=delay, ignore_http1xx=ignore,
    )


_RC_KEYS = frozenset({"name", "protocol", "path", "portName", "intervalSeconds",
                      "timeoutSeconds", "httpStatusCodesForReady", "preserveLastResponse"})


def readiness_check(reader: Reader, value: Any, path: str) -> ReadinessCheck | Any:
    """One ``readinessChecks`` element with Marathon's defaults."""
    value = reader.obj(value, path)
    if value is BAD:
        return BAD
    _known(reader, value, path, _RC_KEYS)
    d = ReadinessCheck()

    def get(key: str, default: Any, check: Any) -> Any:
        raw = _opt(value, key)
        return default if raw is MISSING else check(raw, f"{path}/{key}")

    name = get("name", d.name, lambda v, p: reader.string(v, p, min_len=1))
    proto = get("protocol", d.protocol, lambda v, p: reader.enum(v, p, ("HTTP", "HTTPS")))
    rpath = get("path", d.path, lambda v, p: reader.string(v, p, min_len=1))
    port_name = get("portName", d.port_name, lambda v, p: reader.string(v, p, min_len=1))
    interval = get("intervalSeconds", d.interval_seconds,
                   lambda v, p: reader.number(v, p, above=0))
    timeout = get("timeoutSeconds", d.timeout_seconds,
                  lambda v, p: reader.number(v, p, minimum=1))
    codes = get("httpStatusCodesForReady", d.http_status_codes_for_ready,
                lambda v, p: reader.items(v, p, lambda c, cp: reader.number(
                    c, cp, minimum=100, maximum=999, integer=True)))
    if codes is not BAD and not codes:
        codes = reader.error(f"{path}/httpStatusCodesForReady",
                             "expected at least one status code, got []")
    preserve = get("preserveLastResponse", d.preserve_last_response, reader.boolean)
    parts = (name, proto, rpath, port_name, interval, timeout, codes, preserve)
    if BAD in parts:
        return BAD
    if timeout >= interval:
        return reader.error(f"{path}/timeoutSeconds", f"got {timeout}, expected less than "
                                                      f"intervalSeconds ({interval})")
    return ReadinessCheck(name=name, protocol=proto, path=rpath, port_name=port_name,
                          interval_seconds=interval, timeout_seconds=timeout,
                          http_status_codes_for_ready=tuple(codes),
                          preserve_last_response=preserve)


def fetch_uri(reader: Reader, value: Any, path: str) -> FetchUri | Any:
    """One ``fetch`` element."""
    value = reader.obj(value, path)
    if value is BAD:
        return BAD
    _known(reader, value, path, frozenset({"uri", "executable", "extract", "cache",
                                           "destPath"}))
    uri = reader.string(value.get("uri"), f"{path}/uri", min_len=1)
    flags = {}
    for key, default in (("executable", False), ("extract", True), ("cache", False)):
        raw = _opt(value, key)
        flags[key] = default if raw is MISSING else reader.boolean(raw, f"{path}/{key}")
    dest = _opt(value, "destPath")
    dest = None if dest is MISSING else reader.string(dest, f"{path}/destPath", min_len=1)
    if BAD in (uri, dest, *flags.values()):
        return BAD
    problem = check_uri(CommandURI(value=uri, output_file=dest or ""))
    if problem is not None:
        where = "uri" if problem[0] == "value" else "destPath"
        return reader.error(f"{path}/{where}", problem[1])
    return FetchUri(uri=uri, dest_path=dest, **flags)


def legacy_uri(reader: Reader, value: str, path: str) -> FetchUri | Any:
    """One deprecated ``uris`` string: extracted when it names an archive, as Marathon does."""
    problem = check_uri(CommandURI(value=value))
    if problem is not None:
        return reader.error(path, problem[1])
    return FetchUri(uri=value, extract=is_archive(value.split("?", 1)[0]))


def upgrade_strategy(reader: Reader, value: Any, path: str) -> UpgradeStrategy | Any:
    """``upgradeStrategy``: both fractions in [0, 1]."""
    value = reader.obj(value, path)
    if value is BAD:
        return BAD
    _known(reader, value, path, frozenset({"minimumHealthCapacity", "maximumOverCapacity"}))
    d = UpgradeStrategy()
    out = []
    for key, default in (("minimumHealthCapacity", d.minimum_health_capacity),
                         ("maximumOverCapacity", d.maximum_over_capacity)):
        raw = _opt(value, key)
        out.append(default if raw is MISSING else reader.number(
            raw, f"{path}/{key}", minimum=0, maximum=1))
    if BAD in out:
        return BAD
    return UpgradeStrategy(minimum_health_capacity=float(out[0]),
                           maximum_over_capacity=float(out[1]))


def unreachable_strategy(reader: Reader, value: Any, path: str) -> UnreachableStrategy | Any | None:
    """``unreachableStrategy``: an object or the string ``"disabled"`` (→ None)."""
    if value == "disabled":
        return None
    if isinstance(value, str):
        return reader.error(path, f"expected an object or \"disabled\", got {show(value)}")
    value = reader.obj(value, path)
    if value is BAD:
        return BAD
    _known(reader, value, path, frozenset({"inactiveAfterSeconds", "expungeAfterSeconds"}))
    d = UnreachableStrategy()
    out = []
    for key, default in (("inactiveAfterSeconds", d.inactive_after_seconds),
                         ("expungeAfterSeconds", d.expunge_after_seconds)):
        raw = _opt(value, key)
        out.append(default if raw is MISSING else reader.number(raw, f"{path}/{key}",
                                                                minimum=0))
    if BAD in out:
        return BAD
    if out[0] > out[1]:
        return reader.error(f"{path}/inactiveAfterSeconds",
                            f"got {out[0]}, expected at most expungeAfterSeconds ({out[1]})")
    return UnreachableStrategy(inactive_after_seconds=float(out[0]),
                               expunge_after_seconds=float(out[1]))


def secrets(reader: Reader, value: Any, path: str) -> dict[str, Any] | Any:
    """``secrets``: name → ``{"source": "..."}``."""
    value = reader.obj(value, path)
    if value is BAD:
        return BAD
    out: dict[str, Any] = {}
    for name, spec in value.items():
        spath = f"{path}/{name}"
        spec = reader.obj(spec, spath)
        if spec is BAD:
            continue
        _known(reader, spec, spath, frozenset({"source"}))
        source = reader.string(spec.get("source"), f"{spath}/source", min_len=1)
        if source is not BAD:
            out[str(name)] = {"source": source}
    return out if len(out) == len(value) else BAD


def env(reader: Reader, value: Any, path: str, secret_names: Any) -> dict[str, Any] | Any:
    """``env``: name → string, or ``{"secret": name}`` naming a declared secret."""
    value = reader.obj(value, path)
    if value is BAD:
        return BAD
    out: dict[str, Any] = {}
    ok = True
    for name, item in value.items():
        ipath = f"{path}/{name}"
        if isinstance(item, str):
            out[str(name)] = item
            continue
        if isinstance(item, dict) and set(item) == {"secret"} and isinstance(item["secret"], str):
            ref = item["secret"]
            if isinstance(secret_names, set | dict) and ref not in secret_names:
                reader.error(ipath, f"references an undefined secret named {ref!r}")
                ok = False
                continue
            out[str(name)] = {"secret": ref}
            continue
        reader.error(ipath, f"expected a string or {{\"secret\": name}}, got {show(item)}")
        ok = False
    return out if ok else BAD
