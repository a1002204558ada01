"""The value types that messages carry (PURE).

Owns: framework, agent, master, task, executor, container, health-check and
offer descriptions as frozen attrs classes, with Mesos field names and
defaults, and the id validator shared by all of them.  Durations are float
seconds (Mesos uses nanoseconds on its wire; the HTTP layers convert).
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from mesoslite.protocol.states import Reason, Source, TaskState
from mesoslite.resources import Resources

#: Ids travel into file paths (sandboxes), so they are restricted like Mesos's.
_ID_RE = re.compile(r"^[A-Za-z0-9_.\-:@]{1,255}$")


class FieldError(ValueError):
    """A field value failed validation; ``field`` names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def valid_id(value: str) -> bool:
    """True when ``value`` is acceptable as a task, framework, agent or executor id."""
    return bool(_ID_RE.match(value)) and value not in (".", "..")


def _id(_inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not valid_id(value):
        raise FieldError(
            attribute.name,
            f"invalid id {value!r}: expected 1-255 characters of A-Z a-z 0-9 _ . - : @",
        )


def _optional_id(inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value:
        _id(inst, attribute, value)


def _non_negative(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise FieldError(attribute.name, f"expected a value >= 0, got {value!r}")


def _port(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 0 <= value <= 65535:
        raise FieldError(attribute.name, f"expected a port in 0-65535, got {value!r}")


_EMPTY = Resources()


@attrs.frozen
class MasterInfo:
    """Where the leading master can be reached (Mesos MasterInfo, plus our endpoints)."""

    id: str
    ip: str
    port: int  # HTTP port, as in Mesos
    hostname: str
    version: str
    zmq_endpoint: str
    http_endpoint: str
    pid: str = ""


@attrs.frozen
class AgentInfo:
    """An agent's description, as registered with the master."""

    hostname: str
    resources: Resources
    attributes: dict[str, str] = attrs.field(factory=dict)
    id: str = attrs.field(default="", validator=_optional_id)
    port: int = attrs.field(default=5051, validator=_port)
    http_endpoint: str = ""


@attrs.frozen
class FrameworkInfo:
    """A framework's description, sent on subscription (Mesos FrameworkInfo)."""

    user: str
    name: str
    id: str = attrs.field(default="", validator=_optional_id)
    roles: tuple[str, ...] = ("*",)
    failover_timeout: float = attrs.field(default=0.0, validator=_non_negative)
    checkpoint: bool = False
    capabilities: tuple[str, ...] = ()
    hostname: str = ""
    principal: str = ""
    webui_url: str = ""
    labels: dict[str, str] = attrs.field(factory=dict)

    def has_capability(self, name: str) -> bool:
        """True when the framework declared capability ``name`` (e.g. PARTITION_AWARE)."""
        return name in self.capabilities


@attrs.frozen
class CommandURI:
    """One URI the agent's fetcher puts into the sandbox before the task starts.

    Mesos ``CommandInfo.URI``: ``value`` (http, https, file URI or absolute
    path), ``executable`` (chmod +x), ``extract`` (unpack an archive into the
    sandbox; default true, as in Mesos), ``cache`` (through the agent's fetcher
    cache) and ``output_file`` (a sandbox-relative name instead of the URI's).
    :mod:`mesoslite.protocol.uris` checks them.
    """

    value: str
    executable: bool = False
    extract: bool = True
    cache: bool = False
    output_file: str = ""


@attrs.frozen
class CommandInfo:
    """What to run: a shell string (``shell=True``) or an argv (``value`` + ``arguments``).

    ``uris`` are fetched into the sandbox before the command starts.
    ``secret_environment`` maps variable names to secret references (Mesos's
    ``Environment.Variable`` of type SECRET with a ``reference``): the agent resolves
    them from its secret store right before the task starts; values never travel in
    the message and are never checkpointed.
    """

    value: str = ""
    shell: bool = True
    arguments: tuple[str, ...] = ()
    environment: dict[str, str] = attrs.field(factory=dict)
    user: str = ""
    uris: tuple[CommandURI, ...] = ()
    secret_environment: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class KillPolicy:
    """How long a task has between SIGTERM and SIGKILL."""

    grace_period: float = attrs.field(default=3.0, validator=_non_negative)


@attrs.frozen
class PortMapping:
    """A Docker port mapping from an offered host port to a container port."""

    host_port: int = attrs.field(validator=_port)
    container_port: int = attrs.field(validator=_port)
    protocol: str = "tcp"


@attrs.frozen
class Parameter:
    """A key/value pair (Docker ``parameters``)."""

    key: str
    value: str


@attrs.frozen
class Volume:
    """A volume: host path (optional) mounted at container path, RO or RW."""

    container_path: str
    host_path: str = ""
    mode: str = "RW"


@attrs.frozen
class DockerInfo:
    """Mesos DockerInfo: image, network and options for the Docker containerizer."""

    image: str
    network: str = "HOST"
    port_mappings: tuple[PortMapping, ...] = ()
    privileged: bool = False
    parameters: tuple[Parameter, ...] = ()
    force_pull_image: bool = False
    user_network: str = ""


@attrs.frozen
class ContainerInfo:
    """Mesos ContainerInfo: the containerizer type and its settings."""

    type: str = "MESOS"
    docker: DockerInfo | None = None
    volumes: tuple[Volume, ...] = ()
    hostname: str = ""


@attrs.frozen
class HTTPCheck:
    """An HTTP health check against a port; 200-399 counts as healthy."""

    port: int = attrs.field(validator=_port)
    path: str = "/"
    scheme: str = "http"


@attrs.frozen
class TCPCheck:
    """A TCP health check: healthy when a connection opens."""

    port: int = attrs.field(validator=_port)


@attrs.frozen
class HealthCheck:
    """A health check run by the executor (Mesos defaults)."""

    type: str = "COMMAND"
    delay_seconds: float = 15.0
    interval_seconds: float = 10.0
    timeout_seconds: float = 20.0
    consecutive_failures: int = 3
    grace_period_seconds: float = 10.0
    command: CommandInfo | None = None
    http: HTTPCheck | None = None
    tcp: TCPCheck | None = None


@attrs.frozen
class ExecutorInfo:
    """A custom executor: its id, how to start it, and its own resources."""

    executor_id: str = attrs.field(validator=_id)
    command: CommandInfo
    framework_id: str = attrs.field(default="", validator=_optional_id)
    name: str = ""
    resources: Resources = _EMPTY
    container: ContainerInfo | None = None
    type: str = "CUSTOM"


#: DiscoveryInfo.visibility values (Mesos's).
DISCOVERY_VISIBILITIES = ("FRAMEWORK", "CLUSTER", "EXTERNAL")


def _visibility(_inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in DISCOVERY_VISIBILITIES:
        raise FieldError(attribute.name, f"expected one of {', '.join(DISCOVERY_VISIBILITIES)}, "
                         f"got {value[:40]!r}")


def _optional_visibility(inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value:
        _visibility(inst, attribute, value)


@attrs.frozen
class DiscoveryPort:
    """One port a task exposes to service discovery (Mesos Port)."""

    number: int = attrs.field(validator=_port)
    name: str = ""
    protocol: str = ""
    visibility: str = attrs.field(default="", validator=_optional_visibility)
    labels: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class DiscoveryInfo:
    """How service discovery (Mesos-DNS and the like) should see a task (Mesos DiscoveryInfo)."""

    visibility: str = attrs.field(validator=_visibility)
    name: str = ""
    environment: str = ""
    location: str = ""
    version: str = ""
    ports: tuple[DiscoveryPort, ...] = ()
    labels: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class IPAddress:
    """One address of a container's network (Mesos NetworkInfo.IPAddress)."""

    ip_address: str
    protocol: str = "IPv4"


@attrs.frozen
class NetworkInfo:
    """A network a task's container is on: its addresses and, for a named network, its name."""

    ip_addresses: tuple[IPAddress, ...] = ()
    name: str = ""


@attrs.frozen
class ContainerStatus:
    """What the agent knows of a task's container when it reports a status."""

    network_infos: tuple[NetworkInfo, ...] = ()


@attrs.frozen
class TaskInfo:
    """A task as launched by a framework (Mesos TaskInfo)."""

    name: str
    task_id: str = attrs.field(validator=_id)
    agent_id: str = attrs.field(validator=_id)
    resources: Resources
    command: CommandInfo | None = None
    executor: ExecutorInfo | None = None
    container: ContainerInfo | None = None
    health_check: HealthCheck | None = None
    kill_policy: KillPolicy | None = None
    labels: dict[str, str] = attrs.field(factory=dict)
    data: bytes = b""
    discovery: DiscoveryInfo | None = None


@attrs.frozen
class TaskStatus:
    """One status update for one task (Mesos TaskStatus)."""

    task_id: str = attrs.field(validator=_id)
    state: TaskState
    message: str = ""
    source: Source | None = None
    reason: Reason | None = None
    agent_id: str = ""
    executor_id: str = ""
    timestamp: float = 0.0
    uuid: bytes = b""
    healthy: bool | None = None
    data: bytes = b""
    labels: dict[str, str] = attrs.field(factory=dict)
    #: Filled by the agent: the task's network addresses (Mesos ContainerStatus).
    container_status: ContainerStatus | None = None


@attrs.frozen
class Task:
    """A task as the master and agents track it (Mesos Task)."""

    task_id: str
    name: str
    framework_id: str
    agent_id: str
    executor_id: str
    state: TaskState
    resources: Resources
    statuses: tuple[TaskStatus, ...] = ()
    labels: dict[str, str] = attrs.field(factory=dict)
    container: ContainerInfo | None = None
    health_check: HealthCheck | None = None
    #: Latest state the agent has seen, which may be ahead of what was acknowledged.
    status_update_state: TaskState | None = None
    status_update_uuid: bytes = b""
    #: The role the task's resources were allocated to (multi-role frameworks).
    role: str = ""
    discovery: DiscoveryInfo | None = None


@attrs.frozen
class Offer:
    """Resources on one agent offered to one framework under one role."""

    id: str
    framework_id: str
    agent_id: str
    hostname: str
    role: str
    resources: Resources
    attributes: dict[str, str] = attrs.field(factory=dict)
    executor_ids: tuple[str, ...] = ()
    url: str = ""


@attrs.frozen
class Filters:
    """How long declined (or unused) resources are not re-offered."""

    refuse_seconds: float = 5.0


@attrs.frozen
class Operation:
    """One operation of an ACCEPT call; ``LAUNCH`` carries ``task_infos``."""

    type: str
    task_infos: tuple[TaskInfo, ...] = ()


@attrs.frozen
class ReconcileTask:
    """A task named in an explicit reconciliation request."""

    task_id: str = attrs.field(validator=_id)
    agent_id: str = ""


@attrs.frozen
class ExecutorSnapshot:
    """An executor as an agent reports it when re-registering."""

    executor_id: str
    framework_id: str
    container_id: str
    info: ExecutorInfo | None = None
