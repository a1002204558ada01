"""Turning an app and an offer's chosen resources into a TaskInfo (PURE).

Owns: :func:`build_task_info` and the environment helpers
(:func:`task_environment`, :func:`ports_environment`,
:func:`labels_environment`), following Marathon's rules.  The command
comes from ``cmd`` (shell) or ``args`` (argv); the environment carries the
app's plain ``env`` (a secret reference ``{"secret": name}`` becomes a
``secret_environment`` entry naming the secret's ``source``, which the agent
resolves from its secret store, so no value passes through here) and Marathon's task
variables (``PORT0…``, ``PORT``, ``PORTS``, ``PORT_<NAME>``, ``HOST``,
``MARATHON_APP_*``, ``MESOS_TASK_ID``); a Docker container becomes a DOCKER
ContainerInfo with the chosen host ports in its port mappings; the app's
first health check becomes the task's Mesos-style health check (run on the
agent); ``taskKillGracePeriodSeconds`` becomes the kill policy; ``fetch`` (and the
deprecated ``uris``) become ``command.uris`` (``destPath`` → ``output_file``), which
the agent's fetcher puts into the sandbox before the task starts.
"""

from __future__ import annotations

import re

import attrs

from frameworks.marathon.core.model import App, AppHealthCheck
from mesoslite.protocol.types import (
    CommandInfo,
    CommandURI,
    ContainerInfo,
    DockerInfo,
    HealthCheck,
    HTTPCheck,
    KillPolicy,
    Parameter,
    PortMapping,
    TaskInfo,
    TCPCheck,
    Volume,
)
from mesoslite.resources import Resources

#: Label keys are exported with runs of other characters replaced by ``_``.
_LABEL_KEY_RE = re.compile(r"[^a-zA-Z0-9_]+")
#: Marathon's limit on an exported variable's length.
MAX_ENV_VALUE_LENGTH = 512
_LABEL_PREFIX = "MARATHON_APP_LABEL_"
_DOCKER_NETWORK = {"host": "HOST", "container/bridge": "BRIDGE", "container": "USER"}


def _num(value: float) -> str:
    return str(float(value))


def _port_requests(
    app: App, host_ports: tuple[int, ...]
) -> list[tuple[str | None, int, int | None]]:
    """(name, requested port, host port or None) per app port, in declaration order.

    The requested port is the port definition's ``port`` on the host network
    and the mapping's ``containerPort`` with container networks; the host
    port is the one taken from the offer (None for a mapping without one).
    """
    if app.uses_host_ports:
        return [(p.name, p.port, host)
                for p, host in zip(app.port_definitions, host_ports, strict=True)]
    out: list[tuple[str | None, int, int | None]] = []
    hosts = iter(host_ports)
    for m in (app.container.port_mappings if app.container else None) or ():
        out.append((m.name, m.container_port, None if m.host_port is None else next(hosts)))
    return out


def ports_environment(app: App, host_ports: tuple[int, ...]) -> dict[str, str]:
    """``PORT<i>``, ``PORT_<port>``, ``PORT_<NAME>``, ``PORT`` and ``PORTS``, as Marathon sets them.

    ``PORT_<NAME>`` uses the upper-cased port name; when that is not a shell
    name (a ``-`` in it) the ``_`` spelling is set too.
    """
    requests = _port_requests(app, host_ports)
    if not requests:
        return {}
    env: dict[str, str] = {}
    for i, (_name, requested, host) in enumerate(requests):
        if host is not None:
            env[f"PORT{i}"] = str(host)
        elif requested:
            env[f"PORT{i}"] = str(requested)
    for _name, requested, host in requests:
        if host is not None:
            env[f"PORT_{requested or host}"] = str(host)
        elif requested:
            env[f"PORT_{requested}"] = str(requested)
    for name, requested, host in requests:
        value = host if host is not None else requested
        if name and value:
            env[f"PORT_{name.upper()}"] = str(value)
            env[f"PORT_{name.upper().replace('-', '_')}"] = str(value)
    assigned = [host for _n, _r, host in requests if host is not None]
    if assigned:
        env["PORT"] = str(assigned[0])
    env["PORTS"] = ",".join(str(p) for p in assigned)
    return env


def labels_environment(labels: dict[str, str]) -> dict[str, str]:
    """``MARATHON_APP_LABELS`` and one ``MARATHON_APP_LABEL_<KEY>`` per exportable label."""
    names: list[str] = []
    env: dict[str, str] = {}
    for key, value in labels.items():
        if len(key) >= MAX_ENV_VALUE_LENGTH - len(_LABEL_PREFIX) or \
                len(value) >= MAX_ENV_VALUE_LENGTH:
            continue
        name = _LABEL_KEY_RE.sub("_", key).upper()
        if name not in env:
            names.append(name)
        env[f"{_LABEL_PREFIX}{name}"] = value
    return {"MARATHON_APP_LABELS": " ".join(names), **env}


def task_environment(
    app: App, *, task_id: str, hostname: str, host_ports: tuple[int, ...]
) -> dict[str, str]:
    """The environment Marathon gives a task of ``app`` launched with ``host_ports``."""
    env = {k: v for k, v in app.env.items() if isinstance(v, str)}
    env.update(ports_environment(app, host_ports))
    env["HOST"] = hostname
    env["MARATHON_APP_ID"] = app.id
    env["MARATHON_APP_VERSION"] = app.version
    env["MESOS_TASK_ID"] = task_id
    if app.is_docker and app.container is not None and app.container.docker is not None:
        env["MARATHON_APP_DOCKER_IMAGE"] = app.container.docker.image
    env.update(labels_environment(app.labels))
    env["MARATHON_APP_RESOURCE_CPUS"] = _num(app.cpus)
    env["MARATHON_APP_RESOURCE_MEM"] = _num(app.mem)
    env["MARATHON_APP_RESOURCE_DISK"] = _num(app.disk)
    env["MARATHON_APP_RESOURCE_GPUS"] = str(int(app.gpus))
    return env


def _uris(app: App) -> tuple[CommandURI, ...]:
    """The app's ``fetch`` as the URIs the agent's fetcher puts into the sandbox."""
    return tuple(CommandURI(value=u.uri, executable=u.executable, extract=u.extract,
                            cache=u.cache, output_file=u.dest_path or "") for u in app.fetch)


def secret_environment(app: App) -> dict[str, str]:
    """``env`` entries ``{"secret": name}`` → variable name → the secret's ``source``
    (the reference the agent resolves from its secret store)."""
    out: dict[str, str] = {}
    for name, value in app.env.items():
        if isinstance(value, dict) and isinstance(value.get("secret"), str):
            spec = app.secrets.get(value["secret"])
            if isinstance(spec, dict) and isinstance(spec.get("source"), str):
                out[name] = spec["source"]
    return out


def _command(app: App, env: dict[str, str]) -> CommandInfo:
    base = CommandInfo(environment=env, user=app.user or "", uris=_uris(app),
                       secret_environment=secret_environment(app))
    if app.cmd is not None:
        return attrs.evolve(base, value=app.cmd, shell=True)
    if app.args:
        value = "" if app.is_docker else app.args[0]
        return attrs.evolve(base, value=value, shell=False, arguments=tuple(app.args))
    return attrs.evolve(base, value="", shell=False)


def _container(app: App, host_ports: tuple[int, ...]) -> ContainerInfo | None:
    container = app.container
    if container is None:
        return None
    volumes = tuple(Volume(container_path=v.container_path, host_path=v.host_path, mode=v.mode)
                    for v in container.volumes)
    if container.type != "DOCKER" or container.docker is None:
        return ContainerInfo(type="MESOS", volumes=volumes) if volumes else None
    net = app.networks[0]
    mappings: list[PortMapping] = []
    if not app.uses_host_ports:
        hosts = iter(host_ports)
        for m in container.port_mappings or ():
            if m.host_port is None:
                continue
            host = next(hosts)
            for proto in m.protocol.split(","):
                mappings.append(PortMapping(host_port=host, container_port=m.container_port
                                            or host, protocol=proto))
    docker = container.docker
    info = DockerInfo(
        image=docker.image,
        network=_DOCKER_NETWORK[net.mode],
        port_mappings=tuple(mappings),
        privileged=docker.privileged,
        parameters=tuple(Parameter(key=p.key, value=p.value) for p in docker.parameters),
        force_pull_image=docker.force_pull_image,
        user_network=(net.name or "") if net.mode == "container" else "",
    )
    return ContainerInfo(type="DOCKER", docker=info, volumes=volumes)


def check_port(app: App, check: AppHealthCheck, host_ports: tuple[int, ...]) -> int:
    """The port a health check probes: the fixed ``port``, or the one at ``portIndex``.

    On the host network that is the host port; with container networks it is
    the host port mapped to the indexed mapping (its container port when the
    mapping has no host port).
    """
    if check.port is not None:
        return check.port
    index = check.port_index or 0
    requests = _port_requests(app, host_ports)
    if index >= len(requests):
        raise ValueError(f"health check portIndex {index} is out of range: the app has "
                         f"{len(requests)} port(s)")
    _name, requested, host = requests[index]
    return host if host is not None else requested


def build_health_check(
    app: App, check: AppHealthCheck, host_ports: tuple[int, ...], env: dict[str, str]
) -> HealthCheck:
    """One app health check as the Mesos-style check the executor runs."""
    timing = HealthCheck(
        delay_seconds=float(check.delay_seconds),
        interval_seconds=float(check.interval_seconds),
        timeout_seconds=float(check.timeout_seconds),
        consecutive_failures=int(check.max_consecutive_failures),
        grace_period_seconds=float(check.grace_period_seconds),
    )
    if check.protocol == "COMMAND":
        return attrs.evolve(timing, type="COMMAND", command=CommandInfo(
            value=check.command or "", shell=True, environment=dict(env)))
    port = check_port(app, check, host_ports)
    if check.protocol in ("TCP", "MESOS_TCP"):
        return attrs.evolve(timing, type="TCP", tcp=TCPCheck(port=port))
    scheme = "https" if check.protocol in ("HTTPS", "MESOS_HTTPS") else "http"
    return attrs.evolve(timing, type="HTTP", http=HTTPCheck(port=port, path=check.path or "/",
                                                            scheme=scheme))


def task_name(app_id: str) -> str:
    """Marathon names a task after its app, reversed like a hostname (``/g/web`` → ``web.g``)."""
    return ".".join(reversed([s for s in app_id.split("/") if s]))


def build_task_info(
    app: App,
    *,
    task_id: str,
    agent_id: str,
    hostname: str,
    resources: Resources,
    host_ports: tuple[int, ...],
    service_ports: tuple[int, ...],
    framework_name: str = "marathon",
) -> TaskInfo:
    """The TaskInfo launching one task of ``app`` on ``agent_id`` with ``resources``.

    ``host_ports`` are the ports taken from the offer, one per port the app
    needs from the host (:attr:`App.host_port_count`), in declaration order;
    ``service_ports`` are the app's service ports (informational here).
    Raises :class:`ValueError` when the number of host ports does not match.
    """
    del service_ports, framework_name  # the task carries no extra keys for them
    if len(host_ports) != app.host_port_count:
        raise ValueError(f"host_ports: app {app.id} needs {app.host_port_count} host port(s), "
                         f"got {len(host_ports)}")
    env = task_environment(app, task_id=task_id, hostname=hostname, host_ports=host_ports)
    health = build_health_check(app, app.health_checks[0], host_ports, env) \
        if app.health_checks else None
    kill = KillPolicy(grace_period=float(app.task_kill_grace_period_seconds)) \
        if app.task_kill_grace_period_seconds is not None else None
    return TaskInfo(
        name=task_name(app.id),
        task_id=task_id,
        agent_id=agent_id,
        resources=resources,
        command=_command(app, env),
        container=_container(app, host_ports),
        health_check=health,
        kill_policy=kill,
        labels=dict(app.labels),
    )
