"""What a Docker task may ask for, and the ``docker create`` call it becomes.

Owns: the values crossing the Docker containerizer's boundary
(:class:`DockerOptions` — the agent's ``--docker_*`` flags,
:class:`DockerLaunchSpec`, :class:`DockerTermination`, :class:`DockerUsage`,
the errors with their task-status ``reason``) and :func:`plan_container`,
which validates a ``ContainerInfo`` of type DOCKER against the agent's
options and turns it into create arguments: Mesos's DockerInfo semantics
(network HOST by default; port mappings only on BRIDGE/USER networks and only
onto the task's ``ports``; privileged only when allowed; ``parameters`` from
an allow-list; volumes under allowed host paths or inside the sandbox; the
sandbox at ``/mnt/mesos/sandbox``; cpu shares/quota and a memory limit from
the task's resources; the name and labels the agent recognises its containers
by).  No Docker SDK here; the only I/O is resolving volume paths (realpath).
"""

from __future__ import annotations

import os
import re
from typing import Any

import attrs

from mesoslite.agent.containerizer import (
    ContainerizerError,
    ContainerUsage,
    LaunchSpec,
    Termination,
)
from mesoslite.protocol import ContainerInfo, DockerInfo, Reason

#: Where the sandbox appears inside a container (``MESOS_SANDBOX``).
SANDBOX_MOUNT = "/mnt/mesos/sandbox"
LABEL_SCOPE = "mesoslite.agent_scope"
LABEL_AGENT = "mesoslite.agent_id"
LABEL_FRAMEWORK = "mesoslite.framework_id"
LABEL_EXECUTOR = "mesoslite.executor_id"
LABEL_TASK = "mesoslite.task_id"
LABEL_CONTAINER = "mesoslite.container_id"
LABEL_SANDBOX = "mesoslite.sandbox"
#: Mesos's floors: 32 MB of memory, 2 cpu shares; 1024 shares and 100 ms of quota per cpu.
MIN_MEMORY_BYTES = 32 * 1024 * 1024
MIN_CPU_SHARES = 2
CPU_SHARES_PER_CPU = 1024
CPU_CFS_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000
NETWORKS = ("HOST", "BRIDGE", "NONE", "USER")

#: ``docker run`` options a task may pass as ``parameters``: key -> (target, kind).
#: Targets prefixed ``host:`` are HostConfig fields, the others container config.
SUPPORTED_PARAMETERS: dict[str, tuple[str, str]] = {
    "env": ("environment", "keyvalue"),
    "label": ("labels", "keyvalue"),
    "workdir": ("working_dir", "str"),
    "user": ("user", "str"),
    "entrypoint": ("entrypoint", "str"),
    "stop-signal": ("stop_signal", "str"),
    "add-host": ("host:extra_hosts", "hostip"),
    "dns": ("host:dns", "list"),
    "dns-search": ("host:dns_search", "list"),
    "cap-add": ("host:cap_add", "list"),
    "cap-drop": ("host:cap_drop", "list"),
    "security-opt": ("host:security_opt", "list"),
    "ulimit": ("host:ulimits", "ulimit"),
    "shm-size": ("host:shm_size", "str"),
    "init": ("host:init", "bool"),
    "read-only": ("host:read_only", "bool"),
    "tmpfs": ("host:tmpfs", "tmpfs"),
    "pids-limit": ("host:pids_limit", "int"),
    "sysctl": ("host:sysctls", "keyvalue"),
    # The container's Docker logging (the agent still copies its output into the sandbox
    # through the Docker API, which drivers that keep a local copy allow).
    "log-driver": ("host:log_config", "logdriver"),
    "log-opt": ("host:log_config", "logopt"),
}
_ALIASES = {"e": "env", "l": "label", "w": "workdir", "u": "user"}
#: The default allow-list: options that do not widen what a container may do to its host
#: (a log driver may ship output elsewhere: the operator allows log-driver and log-opt).
DEFAULT_ALLOWED_PARAMETERS = frozenset(
    SUPPORTED_PARAMETERS.keys() - {"cap-add", "security-opt", "sysctl", "log-driver", "log-opt"}
)
#: Log drivers a task may choose once log-driver is allowed (``--docker_allowed_log_drivers``).
DEFAULT_ALLOWED_LOG_DRIVERS = frozenset({"json-file", "local", "journald"})


class DockerUnavailableError(ContainerizerError):
    """The Docker daemon did not answer."""

    reason = Reason.REASON_CONTAINER_LAUNCH_FAILED


class DockerPullError(ContainerizerError):
    """The image could not be pulled (or is missing and cannot be)."""

    reason = Reason.REASON_CONTAINER_PULL_FAILED


class DockerLaunchError(ContainerizerError):
    """The container could not be created or started (bad spec or daemon refusal)."""

    reason = Reason.REASON_CONTAINER_LAUNCH_FAILED


@attrs.frozen(kw_only=True)
class DockerOptions:
    """The agent's Docker flags (``--docker_*``); durations are float seconds."""

    #: ``DOCKER_HOST`` style address; empty: ``$DOCKER_HOST`` or the default socket.
    docker_host: str = ""
    api_version: str = "1.41"
    allow_privileged: bool = False
    allowed_parameters: frozenset[str] = DEFAULT_ALLOWED_PARAMETERS
    allowed_log_drivers: frozenset[str] = DEFAULT_ALLOWED_LOG_DRIVERS
    #: Host paths (and everything under them) that volumes may mount.
    volume_allowed_paths: tuple[str, ...] = ()
    kill_orphans: bool = True
    pull_timeout: float = 1800.0
    #: Host address that port mappings bind to (the agent's ``ip``).
    port_bind_ip: str = "127.0.0.1"
    cpu_quota: bool = True
    request_timeout: float = 60.0
    #: Seconds between progress reports of a pull.
    pull_progress_interval: float = 1.0

    def __attrs_post_init__(self) -> None:
        """Reject unknown parameter names and non-absolute volume paths."""
        unknown = sorted(set(self.allowed_parameters) - SUPPORTED_PARAMETERS.keys())
        if unknown:
            raise ValueError(
                f"docker_allowed_parameters: unknown option(s) {', '.join(unknown)}; "
                f"expected some of {', '.join(sorted(SUPPORTED_PARAMETERS))}"
            )
        for path in self.volume_allowed_paths:
            if not os.path.isabs(path):
                raise ValueError(
                    f"docker_volume_allowed_paths: {path!r} is not absolute; expected absolute "
                    "host paths"
                )
        for name in ("pull_timeout", "request_timeout", "pull_progress_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"docker_{name}: expected a value > 0, got {getattr(self, name)}")

    @property
    def base_url(self) -> str:
        """The daemon address actually used."""
        return self.docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@attrs.frozen(kw_only=True)
class DockerLaunchSpec(LaunchSpec):
    """A :class:`LaunchSpec` plus what Docker needs: the ContainerInfo and the ids for labels.

    ``environment`` here is the task's environment only (not the agent's);
    ``MESOS_SANDBOX`` is set to :data:`SANDBOX_MOUNT`.  ``command`` follows
    Mesos's Docker rules: ``shell`` runs ``/bin/sh -c value`` as entrypoint,
    otherwise ``[value] + arguments`` are the arguments of the image's
    entrypoint; a shell command with an empty value runs the image's default.
    """

    container_info: ContainerInfo
    agent_id: str
    framework_id: str
    executor_id: str
    task_id: str = ""
    labels: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class DockerTermination(Termination):
    """How a container ended, with Docker's own exit code, OOM flag and a reason."""

    exit_code: int | None = None
    oom_killed: bool = False
    reason: Reason | None = None


@attrs.frozen
class DockerUsage(ContainerUsage):
    """Usage of a container, with its limits and network counters (Mesos names)."""

    mem_limit_bytes: int = 0
    network: dict[str, int] = attrs.field(factory=dict)
    #: Page cache charged to the container's memory cgroup (None: the engine did not say).
    mem_cache_bytes: int | None = None

    def extra_statistics(self) -> dict[str, int]:
        """``net_rx_bytes`` etc. (none on the host network) and ``mem_cache_bytes`` (if known)."""
        extra = dict(self.network)
        if self.mem_cache_bytes is not None:
            extra["mem_cache_bytes"] = self.mem_cache_bytes
        return extra


@attrs.frozen
class ContainerPlan:
    """The docker create call a spec turned into (``create`` and HostConfig ``host`` kwargs)."""

    image: str
    force_pull: bool
    name: str
    create: dict[str, Any]
    host: dict[str, Any]
    mem_limit: int


def _fail(field: str, message: str) -> DockerLaunchError:
    return DockerLaunchError(f"{field}: {message}")


def container_name(agent_id: str, container_id: str) -> str:
    """``mesoslite-<agent>-<container>`` with characters Docker refuses replaced by ``_``."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", f"mesoslite-{agent_id}-{container_id}")


def exit_code_to_wait_status(code: int | None) -> int | None:
    """Docker's exit code as a wait status: 128+N (N a signal) means killed by signal N."""
    if code is None or code < 0:
        return None
    if 128 < code <= 128 + 64:
        return code - 128
    return (code & 0xFF) << 8


def _command(spec: DockerLaunchSpec) -> tuple[list[str] | None, list[str] | None]:
    """(entrypoint, cmd) following Mesos's Docker rules; None keeps the image's."""
    command = spec.command
    if command.shell:
        if not command.value:
            return None, None
        return ["/bin/sh"], ["-c", command.value]
    args = ([command.value] if command.value else []) + list(command.arguments)
    return None, (args or None)


def _parameters(
    spec: DockerLaunchSpec, options: DockerOptions, create: dict[str, Any], host: dict[str, Any]
) -> None:
    docker_info = spec.container_info.docker
    assert docker_info is not None
    allowed = ", ".join(sorted(options.allowed_parameters)) or "none"
    for i, param in enumerate(docker_info.parameters):
        field = f"container.docker.parameters[{i}]"
        key = _ALIASES.get(param.key.lstrip("-"), param.key.lstrip("-"))
        if key not in options.allowed_parameters:
            raise _fail(
                f"{field}.key",
                f"{param.key!r} is not an allowed docker run option on this agent "
                f"(allowed: {allowed})",
            )
        target, kind = SUPPORTED_PARAMETERS[key]
        where = host if target.startswith("host:") else create
        name = target.removeprefix("host:")
        value = param.value
        if kind in ("logdriver", "logopt"):
            _log_parameter(field, key, value, options, host)
        elif kind == "str":
            where[name] = value
        elif kind == "list":
            where.setdefault(name, []).append(value)
        elif kind == "bool":
            if value.lower() not in ("true", "false", "1", "0", ""):
                raise _fail(f"{field}.value", f"expected true or false for {key}, got {value!r}")
            where[name] = value.lower() in ("true", "1", "")
        elif kind == "int":
            try:
                where[name] = int(value)
            except ValueError:
                raise _fail(f"{field}.value",
                            f"expected an integer for {key}, got {value!r}") from None
        elif kind in ("keyvalue", "hostip", "tmpfs"):
            sep = {"keyvalue": "=", "hostip": ":", "tmpfs": ":"}[kind]
            k, found, v = value.partition(sep)
            if not k or (not found and kind != "tmpfs"):
                raise _fail(f"{field}.value", f"expected key{sep}value for {key}, got {value!r}")
            if key == "label" and k.startswith("mesoslite."):
                raise _fail(f"{field}.value", f"label {k!r} is reserved for the agent")
            where.setdefault(name, {})[k] = v
        elif kind == "ulimit":
            m = re.fullmatch(r"([a-z]+)=(-?\d+)(?::(-?\d+))?", value)
            if not m:
                raise _fail(
                    f"{field}.value", f"expected name=soft[:hard] for ulimit, got {value!r}"
                )
            soft = int(m.group(2))
            hard = int(m.group(3)) if m.group(3) is not None else soft
            where.setdefault(name, []).append({"name": m.group(1), "soft": soft, "hard": hard})


def _log_parameter(field: str, key: str, value: str, options: DockerOptions,
                   host: dict[str, Any]) -> None:
    """``log-driver`` (from the agent's allow-list) and ``log-opt key=value``."""
    log_config = host.setdefault("log_config", {"type": "", "config": {}})
    if key == "log-driver":
        if value not in options.allowed_log_drivers:
            allowed = ", ".join(sorted(options.allowed_log_drivers)) or "none"
            raise _fail(f"{field}.value", f"log driver {value!r} is not allowed on this agent "
                        f"(allowed: {allowed}; --docker_allowed_log_drivers)")
        log_config["type"] = value
        return
    k, found, v = value.partition("=")
    if not k or not found:
        raise _fail(f"{field}.value", f"expected key=value for log-opt, got {value!r}")
    log_config["config"][k] = v


def _volumes(spec: DockerLaunchSpec, options: DockerOptions) -> tuple[list[str], list[str]]:
    """(binds, anonymous volume paths): the sandbox first, then the task's volumes."""
    binds = [f"{spec.sandbox}:{SANDBOX_MOUNT}:rw"]
    anonymous: list[str] = []
    seen = {SANDBOX_MOUNT}
    sandbox_real = os.path.realpath(spec.sandbox)
    allowed = [os.path.realpath(p) for p in options.volume_allowed_paths]
    for i, vol in enumerate(spec.container_info.volumes):
        field = f"container.volumes[{i}]"
        mode = vol.mode.upper()
        if mode not in ("RW", "RO"):
            raise _fail(f"{field}.mode", f"expected RW or RO, got {vol.mode!r}")
        target = vol.container_path
        if not target:
            raise _fail(f"{field}.container_path", "expected a path, got ''")
        if not os.path.isabs(target):
            target = os.path.join(SANDBOX_MOUNT, target)
        target = os.path.normpath(target)
        if target in seen or ":" in target:
            raise _fail(
                f"{field}.container_path",
                f"{vol.container_path!r} is already mounted or contains ':'",
            )
        seen.add(target)
        if not vol.host_path:
            anonymous.append(target)
            continue
        if ":" in vol.host_path:
            raise _fail(f"{field}.host_path", f"{vol.host_path!r} must not contain ':'")
        if os.path.isabs(vol.host_path):
            source = os.path.realpath(vol.host_path)
            if not any(source == a or source.startswith(a.rstrip("/") + "/") for a in allowed):
                raise _fail(
                    f"{field}.host_path",
                    f"{vol.host_path!r} is outside the host paths this agent allows "
                    f"({', '.join(options.volume_allowed_paths) or 'none'}); expected a path "
                    "under one of them or a path relative to the sandbox",
                )
        else:
            source = os.path.realpath(os.path.join(spec.sandbox, vol.host_path))
            if source != sandbox_real and not source.startswith(sandbox_real + "/"):
                raise _fail(
                    f"{field}.host_path",
                    f"{vol.host_path!r} escapes the sandbox; expected a relative path inside it",
                )
        binds.append(f"{source}:{target}:{mode.lower()}")
    return binds, anonymous


def _checked_network(spec: DockerLaunchSpec, options: DockerOptions) -> tuple[DockerInfo, str]:
    """The spec's docker section and network (upper case), once the container rules hold."""
    info = spec.container_info
    docker_info = info.docker
    if info.type != "DOCKER" or docker_info is None:
        raise _fail("container.type", f"expected DOCKER with a docker section, got {info.type!r}")
    if not docker_info.image:
        raise _fail("container.docker.image", "expected an image name, got ''")
    network = docker_info.network.upper()
    if network not in NETWORKS:
        raise _fail(
            "container.docker.network",
            f"expected one of {', '.join(NETWORKS)}, got {docker_info.network!r}",
        )
    if network == "USER" and not docker_info.user_network:
        raise _fail("container.docker.user_network", "network USER needs a network name, got ''")
    if docker_info.privileged and not options.allow_privileged:
        raise _fail(
            "container.docker.privileged",
            "privileged containers are not allowed on this agent (--docker_allow_privileged)",
        )
    if info.hostname and network == "HOST":
        raise _fail("container.hostname", "a hostname cannot be set on the HOST network")
    return docker_info, network


def _labels(container_id: str, spec: DockerLaunchSpec, agent_scope: str) -> dict[str, str]:
    """The task's own labels (none in the agent's namespace) plus the agent's."""
    labels = {k: v for k, v in spec.labels.items() if not k.startswith("mesoslite.")}
    labels.update(
        {
            LABEL_SCOPE: agent_scope, LABEL_AGENT: spec.agent_id,
            LABEL_FRAMEWORK: spec.framework_id,
            LABEL_EXECUTOR: spec.executor_id, LABEL_TASK: spec.task_id,
            LABEL_CONTAINER: container_id, LABEL_SANDBOX: spec.sandbox,
        }
    )
    return labels


def _port_mappings(
    spec: DockerLaunchSpec, options: DockerOptions, docker_info: DockerInfo, network: str
) -> tuple[list[tuple[int, str]], dict[str, tuple[str, int]]]:
    """(exposed container ports, port bindings), each host port one of the task's ports."""
    offered = spec.resources.ranges("ports")
    bindings: dict[str, tuple[str, int]] = {}
    exposed: list[tuple[int, str]] = []
    host_ports: set[tuple[int, str]] = set()
    for i, pm in enumerate(docker_info.port_mappings):
        field = f"container.docker.port_mappings[{i}]"
        if network not in ("BRIDGE", "USER"):
            raise _fail(field, f"port mappings need network BRIDGE or USER, got {network}")
        protocol = pm.protocol.lower()
        if protocol not in ("tcp", "udp"):
            raise _fail(f"{field}.protocol", f"expected tcp or udp, got {pm.protocol!r}")
        if not 0 < pm.container_port <= 65535:
            raise _fail(f"{field}.container_port", f"expected 1-65535, got {pm.container_port}")
        if not any(b <= pm.host_port <= e for b, e in offered):
            shown = ",".join(f"{b}-{e}" for b, e in offered) or "none"
            raise _fail(
                f"{field}.host_port",
                f"{pm.host_port} is not in the task's ports resource ([{shown}]); "
                "expected one of the task's ports",
            )
        key = f"{pm.container_port}/{protocol}"
        if key in bindings or (pm.host_port, protocol) in host_ports:
            raise _fail(field, f"{key} or host port {pm.host_port}/{protocol} is mapped twice")
        bindings[key] = (options.port_bind_ip, pm.host_port)
        exposed.append((pm.container_port, protocol))
        host_ports.add((pm.host_port, protocol))
    return exposed, bindings


def _limits(spec: DockerLaunchSpec, options: DockerOptions, host: dict[str, Any]) -> int:
    """CPU shares and quota and the memory limit from the task's resources; the limit."""
    cpus, mem = spec.resources.cpus, spec.resources.mem
    mem_limit = 0
    if cpus > 0:
        host["cpu_shares"] = max(MIN_CPU_SHARES, int(cpus * CPU_SHARES_PER_CPU))
        if options.cpu_quota:
            host["cpu_period"] = CPU_CFS_PERIOD_US
            host["cpu_quota"] = max(MIN_CPU_QUOTA_US, int(cpus * CPU_CFS_PERIOD_US))
    if mem > 0:
        mem_limit = max(MIN_MEMORY_BYTES, int(mem * 1024 * 1024))
        host["mem_limit"] = mem_limit
        host["memswap_limit"] = mem_limit
    return mem_limit


def plan_container(
    container_id: str, spec: DockerLaunchSpec, options: DockerOptions, agent_scope: str
) -> ContainerPlan:
    """Validate a spec against the agent's options and turn it into docker create arguments.

    Raises :class:`DockerLaunchError` naming the field, the value and what was expected.
    """
    info = spec.container_info
    docker_info, network = _checked_network(spec, options)
    entrypoint, cmd = _command(spec)
    env = dict(spec.environment)
    env["MESOS_SANDBOX"] = SANDBOX_MOUNT
    labels = _labels(container_id, spec, agent_scope)
    create: dict[str, Any] = {
        "image": docker_info.image, "command": cmd, "entrypoint": entrypoint,
        "name": container_name(spec.agent_id, container_id), "environment": env,
        "labels": labels, "working_dir": SANDBOX_MOUNT, "detach": True,
    }
    if info.hostname:
        create["hostname"] = info.hostname
    binds, anonymous = _volumes(spec, options)
    host: dict[str, Any] = {
        "binds": binds, "privileged": docker_info.privileged,
        "network_mode": {"HOST": "host", "BRIDGE": "bridge", "NONE": "none"}.get(
            network, docker_info.user_network
        ),
    }
    if anonymous:
        create["volumes"] = anonymous
    exposed, bindings = _port_mappings(spec, options, docker_info, network)
    if bindings:
        create["ports"] = exposed
        host["port_bindings"] = bindings
    mem_limit = _limits(spec, options, host)
    _parameters(spec, options, create, host)
    env["MESOS_SANDBOX"] = SANDBOX_MOUNT  # not even an env parameter moves the sandbox
    for key in create.get("environment", {}):
        if not key or "=" in key:
            raise _fail("environment", f"variable name {key!r} is empty or contains '='")
    create["labels"] = {**create["labels"], **labels}  # parameters cannot override ours
    return ContainerPlan(
        docker_info.image, docker_info.force_pull_image, create["name"], create, host, mem_limit
    )


__all__ = [
    "DEFAULT_ALLOWED_LOG_DRIVERS",
    "DEFAULT_ALLOWED_PARAMETERS",
    "SANDBOX_MOUNT",
    "SUPPORTED_PARAMETERS",
    "ContainerPlan",
    "DockerLaunchError",
    "DockerLaunchSpec",
    "DockerOptions",
    "DockerPullError",
    "DockerTermination",
    "DockerUnavailableError",
    "DockerUsage",
    "container_name",
    "exit_code_to_wait_status",
    "plan_container",
]
