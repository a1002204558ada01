"""The Marathon-style framework's data model (PURE).

Owns: the attrs classes for an App and its parts, with Marathon's defaults,
and the framework's view of one task (:class:`MarathonTask`).  Python names
are snake_case; the JSON layer (``wire.app_json``) maps them to Marathon's
camelCase field names.  Nothing here validates network input: parsing and
validation live in ``wire.app_json``/``wire.validation``; these classes are the
already-valid values the pure cores work on.

Task ids follow Marathon 1.8: an app ``/grp/web`` has instances
``grp_web.instance-<uuid>``; the instance's n-th task is
``grp_web.instance-<uuid>._app.<n>``.
"""

from __future__ import annotations

import enum
import uuid as _uuid
from typing import Any

import attrs

#: Marathon's default for ``maxLaunchDelaySeconds`` since 1.8.180.
DEFAULT_MAX_LAUNCH_DELAY = 300.0
#: Service ports Marathon allocates come from this range (inclusive).
SERVICE_PORT_RANGE = (10000, 20000)


class KillSelection(str, enum.Enum):
    """Which instances go first when an app scales down."""

    YOUNGEST_FIRST = "YOUNGEST_FIRST"
    OLDEST_FIRST = "OLDEST_FIRST"


@attrs.frozen
class PortDefinition:
    """A port of an app on the host network: ``port`` is the service port (0: allocate)."""

    port: int = 0
    protocol: str = "tcp"
    name: str | None = None
    labels: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class AppPortMapping:
    """A container port mapped onto a host port (0: any offered port)."""

    container_port: int = 0
    host_port: int | None = 0
    service_port: int = 0
    protocol: str = "tcp"
    name: str | None = None
    labels: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Network:
    """One network of an app: mode ``host``, ``container/bridge`` or ``container``."""

    mode: str = "host"
    name: str | None = None
    labels: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class DockerParameter:
    """One extra ``docker run`` option (``key`` without dashes)."""

    key: str
    value: str


@attrs.frozen
class Docker:
    """Docker settings of a DOCKER container."""

    image: str
    force_pull_image: bool = False
    privileged: bool = False
    parameters: tuple[DockerParameter, ...] = ()


@attrs.frozen
class AppVolume:
    """A host path mounted into the container."""

    container_path: str
    host_path: str
    mode: str = "RW"


@attrs.frozen
class Container:
    """An app's container: ``DOCKER`` or ``MESOS`` (the plain process containerizer)."""

    type: str = "DOCKER"
    docker: Docker | None = None
    volumes: tuple[AppVolume, ...] = ()
    port_mappings: tuple[AppPortMapping, ...] | None = None


@attrs.frozen
class FetchUri:
    """A URI fetched into the sandbox before the task starts."""

    uri: str
    executable: bool = False
    extract: bool = True
    cache: bool = False
    dest_path: str | None = None


@attrs.frozen
class AppHealthCheck:
    """A health check as Marathon apps declare it (Marathon's defaults).

    ``protocol`` is one of HTTP, HTTPS, TCP, COMMAND, MESOS_HTTP, MESOS_HTTPS,
    MESOS_TCP.  All are run on the agent beside the task (the Mesos way);
    the non-``MESOS_`` names are accepted for compatibility and mean the same.
    """

    protocol: str = "HTTP"
    path: str | None = "/"
    port_index: int | None = 0
    port: int | None = None
    command: str | None = None
    grace_period_seconds: float = 300.0
    interval_seconds: float = 60.0
    timeout_seconds: float = 20.0
    max_consecutive_failures: int = 3
    delay_seconds: float = 15.0
    ignore_http1xx: bool = False


@attrs.frozen
class ReadinessCheck:
    """A readiness check gating deployments (run by the framework)."""

    name: str = "readinessCheck"
    protocol: str = "HTTP"
    path: str = "/"
    port_name: str = "http-api"
    interval_seconds: float = 30.0
    timeout_seconds: float = 10.0
    http_status_codes_for_ready: tuple[int, ...] = (200,)
    preserve_last_response: bool = False


@attrs.frozen
class UpgradeStrategy:
    """Rolling-upgrade bounds, both fractions in [0, 1]."""

    minimum_health_capacity: float = 1.0
    maximum_over_capacity: float = 1.0


@attrs.frozen
class UnreachableStrategy:
    """When an unreachable instance is replaced and when it is forgotten.

    ``None`` in :attr:`App.unreachable_strategy` means ``"disabled"``.
    """

    inactive_after_seconds: float = 0.0
    expunge_after_seconds: float = 0.0


@attrs.frozen
class VersionInfo:
    """When the app was last scaled and last changed otherwise (ISO-8601 ``Z``)."""

    last_scaling_at: str
    last_config_change_at: str


@attrs.frozen
class App:
    """A Marathon app definition: one version of it."""

    id: str
    cmd: str | None = None
    args: tuple[str, ...] | None = None
    user: str | None = None
    env: dict[str, Any] = attrs.field(factory=dict)
    instances: int = 1
    cpus: float = 1.0
    mem: float = 128.0
    disk: float = 0.0
    gpus: int = 0
    executor: str = ""
    constraints: tuple[tuple[str, ...], ...] = ()
    fetch: tuple[FetchUri, ...] = ()
    port_definitions: tuple[PortDefinition, ...] = (PortDefinition(name="default"),)
    require_ports: bool = False
    backoff_seconds: float = 1.0
    backoff_factor: float = 1.15
    max_launch_delay_seconds: float = DEFAULT_MAX_LAUNCH_DELAY
    container: Container | None = None
    networks: tuple[Network, ...] = (Network(),)
    health_checks: tuple[AppHealthCheck, ...] = ()
    readiness_checks: tuple[ReadinessCheck, ...] = ()
    dependencies: tuple[str, ...] = ()
    upgrade_strategy: UpgradeStrategy = UpgradeStrategy()
    labels: dict[str, str] = attrs.field(factory=dict)
    accepted_resource_roles: tuple[str, ...] | None = None
    role: str | None = None
    kill_selection: KillSelection = KillSelection.YOUNGEST_FIRST
    unreachable_strategy: UnreachableStrategy | None = UnreachableStrategy()
    task_kill_grace_period_seconds: float | None = None
    secrets: dict[str, Any] = attrs.field(factory=dict)
    #: The version (ISO-8601 ``Z`` timestamp) of this definition.
    version: str = ""
    version_info: VersionInfo | None = None

    @property
    def uses_host_ports(self) -> bool:
        """True when the app's ports come from the host network (no container network)."""
        return all(n.mode == "host" for n in self.networks)

    @property
    def host_port_count(self) -> int:
        """How many host ports each instance needs from an offer."""
        if self.uses_host_ports:
            return len(self.port_definitions)
        mappings = self.container.port_mappings if self.container else None
        return sum(1 for m in (mappings or ()) if m.host_port is not None)

    @property
    def is_docker(self) -> bool:
        """True when the app runs in a Docker container."""
        return self.container is not None and self.container.type == "DOCKER"


class InstanceCondition(str, enum.Enum):
    """The framework's view of a task's state (Marathon's ``state`` uses Mesos names)."""

    STAGING = "TASK_STAGING"
    STARTING = "TASK_STARTING"
    RUNNING = "TASK_RUNNING"
    KILLING = "TASK_KILLING"
    UNREACHABLE = "TASK_UNREACHABLE"
    FINISHED = "TASK_FINISHED"
    FAILED = "TASK_FAILED"
    KILLED = "TASK_KILLED"
    ERROR = "TASK_ERROR"
    LOST = "TASK_LOST"
    DROPPED = "TASK_DROPPED"
    GONE = "TASK_GONE"
    GONE_BY_OPERATOR = "TASK_GONE_BY_OPERATOR"
    UNKNOWN = "TASK_UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        """True for states after which the task never runs again."""
        return self not in _ACTIVE_CONDITIONS

    @property
    def is_active(self) -> bool:
        """True while the task occupies (or may occupy) resources on an agent."""
        return self in _ACTIVE_CONDITIONS


_ACTIVE_CONDITIONS = frozenset({
    InstanceCondition.STAGING, InstanceCondition.STARTING, InstanceCondition.RUNNING,
    InstanceCondition.KILLING, InstanceCondition.UNREACHABLE,
})


@attrs.frozen
class HealthResult:
    """The latest health-check verdicts for one task (Marathon's healthCheckResults)."""

    alive: bool
    consecutive_failures: int = 0
    first_success: str | None = None
    last_success: str | None = None
    last_failure: str | None = None
    last_failure_cause: str | None = None


@attrs.frozen
class MarathonTask:
    """One task of an app as the framework tracks it.

    Times are seconds since the epoch (``None`` until they happen); the JSON
    layer renders them as ISO-8601 ``Z``.  ``version`` is the app version the
    task was launched from.  ``healthy`` is ``None`` when the app has no health
    checks or no verdict has arrived yet.
    """

    task_id: str
    instance_id: str
    app_id: str
    version: str
    condition: InstanceCondition = InstanceCondition.STAGING
    agent_id: str = ""
    host: str = ""
    ports: tuple[int, ...] = ()
    service_ports: tuple[int, ...] = ()
    staged_at: float | None = None
    started_at: float | None = None
    #: When the task's current condition began (for unreachable/expunge timing).
    condition_since: float | None = None
    healthy: bool | None = None
    health: HealthResult | None = None
    ip_addresses: tuple[str, ...] = ()
    incarnation: int = 1
    message: str = ""
    #: Set when the framework has asked the master to kill this task.
    kill_requested: bool = False
    #: Agent attributes of the task's host (for constraints), hostname included.
    attributes: dict[str, str] = attrs.field(factory=dict)


def app_id_to_task_prefix(app_id: str) -> str:
    """``/grp/web`` → ``grp_web`` (the prefix of its instance and task ids)."""
    return app_id.strip("/").replace("/", "_")


def new_instance_id(app_id: str, uuid: str | None = None) -> str:
    """A fresh instance id for ``app_id`` (``grp_web.instance-<uuid>``)."""
    return f"{app_id_to_task_prefix(app_id)}.instance-{uuid or _uuid.uuid4()}"


def task_id_for(instance_id: str, incarnation: int = 1) -> str:
    """The id of an instance's ``incarnation``-th task (``<instance>._app.<n>``)."""
    return f"{instance_id}._app.{incarnation}"
