"""The agent's configuration (PURE).

Owns: :class:`AgentConfig`, every agent flag with its Mesos default, validated
on construction by the shared checks of :mod:`mesoslite.config_checks` (a bad
value raises :class:`~mesoslite.config_checks.ConfigError` naming the field, the
value and what was expected), and :func:`parse_attributes`.  ``resources`` and
``attributes`` are kept as the Mesos text the operator gave;
:attr:`AgentConfig.resources_override` and :attr:`AgentConfig.attributes_dict`
parse them.
"""

from __future__ import annotations

from typing import Any

import attrs

from mesoslite import config_checks as checks
from mesoslite.agent.containerizer.docker_spec import (
    DEFAULT_ALLOWED_LOG_DRIVERS,
    DEFAULT_ALLOWED_PARAMETERS,
    SUPPORTED_PARAMETERS,
    DockerOptions,
)
from mesoslite.agent.gc import (
    DEFAULT_DISK_WATCH_INTERVAL,
    DEFAULT_GC_DELAY,
    DEFAULT_GC_DISK_HEADROOM,
    parse_duration,
)
from mesoslite.authz.acls import ACLS_HELP, check_acls_flag
from mesoslite.config_checks import ConfigError, split_comma_list
from mesoslite.isolation.spec import AUTO, DEFAULT_PIDS_LIMIT, KNOWN_ISOLATORS, parse_isolation
from mesoslite.protocol import MAX_MESSAGE_SIZE
from mesoslite.resources import Resources

_RECOVER_MODES = ("reconnect", "cleanup")
_KNOWN_CONTAINERIZERS = ("process", "docker")


def parse_attributes(text: str) -> dict[str, str]:
    """Parse Mesos attribute text ``"rack:a;zone:b"`` into ``{"rack": "a", "zone": "b"}``.

    Raises :class:`~mesoslite.config_checks.ConfigError` (field ``attributes``) naming the
    bad item.
    """
    out: dict[str, str] = {}
    for i, token in enumerate(text.split(";")):
        token = token.strip()
        if not token:
            continue
        name, sep, value = token.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ConfigError("attributes", "name:value items separated by ';' "
                              "(e.g. 'rack:a;zone:b')", token, detail=f"item {i}")
        out[name] = value
    return out


def _duration(field: str) -> Any:
    """A flag parser for seconds or Mesos duration text (ConfigError naming ``field``)."""

    def parse(text: str) -> float:
        try:
            return parse_duration(text)
        except ValueError as exc:
            raise ConfigError(field, "seconds or a duration like 30secs, 10mins, 1weeks",
                              text) from exc

    return parse


_BYTE_UNITS = {"": 1, "b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}


def _bytes(field: str) -> Any:
    """A flag parser for a byte count: ``1048576`` or Mesos text ``10MB``, ``512KB``, ``1GB``."""

    def parse(text: str) -> int:
        low = text.strip().lower()
        number = low.rstrip("kmgb")
        unit = low[len(number):]
        try:
            value = int(number)
        except ValueError:
            value = -1
        if value < 1 or unit not in _BYTE_UNITS:
            raise ConfigError(field, "a byte count >= 1 like 1048576, 512KB, 10MB or 1GB", text)
        return value * _BYTE_UNITS[unit]

    return parse


def _isolation_names(value: object) -> bool:
    """Known isolator names, or auto/none (ValueError naming the unknown one)."""
    if not isinstance(value, str):
        return False
    parse_isolation(value)
    return True


_isolation = checks.Check("auto, none, or a comma list of " + ", ".join(KNOWN_ISOLATORS),
                          _isolation_names)
_cgroups_root = checks.Check(
    "a relative cgroup path of letters, digits, '_', '-', '.' and '/' (no '..')",
    lambda v: isinstance(v, str) and bool(v.strip("/")) and ".." not in v.split("/")
    and all(c.isalnum() or c in "_-./" for c in v))

_fraction = checks.Check("a number from 0 to 1",
                         lambda v: isinstance(v, (int, float)) and 0.0 <= v <= 1.0)

_attributes = checks.Check("attributes like 'rack:a;zone:b'",
                           lambda v: isinstance(v, str) and parse_attributes(v) is not None)


@attrs.frozen
class AgentConfig:
    """Every agent flag, with Mesos defaults; durations are float seconds.

    ``master`` is ``host:port`` of the master's ZMQ endpoint or ``zk://…``
    (the agent follows the leader); ``hostname`` empty means ``ip``; ``http_port`` 0 binds an
    ephemeral port; ``resources`` replaces detected resources by name;
    ``containerizers`` is a comma list of ``process`` and ``docker``; the
    ``docker_*`` fields configure the Docker containerizer (:meth:`docker_options`).
    """

    master: str = attrs.field(default="127.0.0.1:5055", validator=checks.master_address)
    ip: str = attrs.field(default="127.0.0.1", validator=checks.host)
    hostname: str = attrs.field(default="", validator=checks.text)
    allowed_hosts: str = attrs.field(
        default="", validator=checks.host_names,
        metadata={"help": checks.ALLOWED_HOSTS_HELP},
    )
    http_port: int = attrs.field(default=5051, validator=checks.port)
    authenticate_http_readonly: bool = attrs.field(
        default=False, validator=checks.boolean,
        metadata={"help": "require HTTP Basic credentials (--credentials) for read "
                          "endpoints (all but /health and /version)"},
    )
    authenticate_http_readwrite: bool = attrs.field(
        default=False, validator=checks.boolean,
        metadata={"help": "require HTTP Basic credentials (--credentials) for writes "
                          "(POST, PUT, PATCH, DELETE)"},
    )
    credentials: str = attrs.field(
        default="", validator=checks.text,
        metadata={"help": "JSON file of principals and secrets, Mesos's form "
                          '{"credentials": [{"principal": ..., "secret": ...}]}'},
    )
    acls: str = attrs.field(
        default="", validator=checks.Check("Mesos ACL JSON or a file name", check_acls_flag),
        metadata={"help": ACLS_HELP},
    )
    work_dir: str = attrs.field(
        default="/tmp/mesoslite/agent", validator=checks.nonempty("a directory path"))
    resources: str = attrs.field(default="", validator=checks.resources_text)
    attributes: str = attrs.field(default="", validator=_attributes)
    containerizers: str = attrs.field(
        default="process", validator=checks.comma_list(*_KNOWN_CONTAINERIZERS,
                                                       what="containerizer"),
        metadata={"help": "comma list of containerizers: process, docker (e.g. docker,process)"},
    )
    docker_host: str = attrs.field(
        default="", validator=checks.text,
        metadata={"help": "Docker daemon address (empty: $DOCKER_HOST or the default socket)"},
    )
    docker_allow_privileged: bool = attrs.field(
        default=False, validator=checks.boolean,
        metadata={"help": "let Docker tasks ask for privileged containers"},
    )
    docker_allowed_parameters: str = attrs.field(
        default="", validator=checks.comma_list(*sorted(SUPPORTED_PARAMETERS), what="option",
                                                allow_empty=True),
        metadata={"help": "comma list of docker run options tasks may pass as parameters "
                          "(empty: the safe default list)"},
    )
    docker_allowed_log_drivers: str = attrs.field(
        default=",".join(sorted(DEFAULT_ALLOWED_LOG_DRIVERS)), validator=checks.text,
        metadata={"help": "comma list of Docker log drivers tasks may choose with the "
                          "log-driver parameter (once docker_allowed_parameters allows it)"},
    )
    docker_volume_allowed_paths: str = attrs.field(
        default="", validator=checks.absolute_paths,
        metadata={"help": "comma list of absolute host paths Docker volumes may mount"},
    )
    docker_kill_orphans: bool = attrs.field(
        default=True, validator=checks.boolean,
        metadata={"help": "remove this agent's labelled containers it does not know on start"},
    )
    docker_pull_timeout: float = attrs.field(
        default=1800.0, validator=checks.positive_seconds,
        metadata={"help": "seconds an image pull may take"},
    )
    docker_health_interval: float = attrs.field(
        default=5.0, validator=checks.positive_seconds,
        metadata={"help": "seconds between Docker daemon health checks"},
    )
    executor_registration_timeout: float = attrs.field(
        default=60.0, validator=checks.positive_seconds)
    executor_shutdown_grace_period: float = attrs.field(
        default=5.0, validator=checks.non_negative_seconds)
    executor_reregistration_timeout: float = attrs.field(
        default=2.0, validator=checks.positive_seconds)
    executor_heartbeat_interval: float = attrs.field(
        default=30.0, validator=checks.positive_seconds,
        metadata={"help": "seconds between HEARTBEAT events on v1 executor API streams "
                          "(Mesos's default: 30secs)"},
    )
    registration_backoff_factor: float = attrs.field(
        default=1.0, validator=checks.non_negative_number)
    registration_backoff_max: float = attrs.field(default=60.0, validator=checks.positive_seconds)
    status_update_retry_min: float = attrs.field(default=10.0, validator=checks.positive_seconds)
    status_update_retry_max: float = attrs.field(default=600.0, validator=checks.positive_seconds)
    recover: str = attrs.field(default="reconnect", validator=checks.one_of(*_RECOVER_MODES))
    recovery_timeout: float = attrs.field(default=900.0, validator=checks.positive_seconds)
    default_kill_grace_period: float = attrs.field(
        default=3.0, validator=checks.non_negative_seconds)
    max_message_size: int = attrs.field(default=MAX_MESSAGE_SIZE, validator=checks.integer(1))
    credential: str = attrs.field(
        default="", validator=checks.text,
        metadata={"help": "file with this agent's principal and secret (Mesos's form: JSON "
                          '{"principal": ..., "secret": ...} or "principal secret"); the agent '
                          "authenticates with it (required by --authenticate_agents)"},
    )
    authenticate_http_executors: bool = attrs.field(
        default=False, validator=checks.boolean,
        metadata={"help": "v1 HTTP executors must send Authorization: Bearer "
                          "<MESOS_EXECUTOR_AUTHENTICATION_TOKEN>"},
    )
    #: CURVE: this agent's ``.key_secret`` file and the master's public ``.key`` file.
    curve_secret_file: str = attrs.field(default="", validator=checks.text)
    master_public_key_file: str = attrs.field(default="", validator=checks.text)
    #: Re-register when no Ping arrived for ``ping_interval × ping_timeout_factor``.
    ping_timeout_factor: float = attrs.field(default=5.0, validator=checks.positive_number)
    max_completed_frameworks: int = attrs.field(default=50, validator=checks.integer(0))
    max_completed_executors_per_framework: int = attrs.field(
        default=150, validator=checks.integer(0))
    max_completed_tasks_per_executor: int = attrs.field(default=200, validator=checks.integer(0))
    gc_delay: float = attrs.field(
        default=DEFAULT_GC_DELAY, validator=checks.positive_seconds,
        metadata={"help": "remove a completed executor's sandbox this long after it ended "
                          "(seconds or 1weeks, 2days, ...)", "parse": _duration("gc_delay")},
    )
    gc_disk_headroom: float = attrs.field(
        default=DEFAULT_GC_DISK_HEADROOM, validator=_fraction,
        metadata={"help": "free-disk fraction to keep: sandboxes older than gc_delay * "
                          "max(0, 1 - headroom - disk usage) are removed"},
    )
    disk_watch_interval: float = attrs.field(
        default=DEFAULT_DISK_WATCH_INTERVAL, validator=checks.positive_seconds,
        metadata={"help": "how often disk usage is checked and due sandboxes removed",
                  "parse": _duration("disk_watch_interval")},
    )
    container_logger: str = attrs.field(
        default="plain", validator=checks.one_of("plain", "rotating"),
        metadata={"help": "command tasks' stdout/stderr: plain files, or rotating by size "
                          "(stdout, stdout.1, ... like Mesos's LogrotateContainerLogger)"},
    )
    logrotate_max_stdout_size: int = attrs.field(
        default=10 << 20, validator=checks.integer(1),
        metadata={"help": "rotating logger: bytes per stdout file (or 10MB, 512KB)",
                  "parse": _bytes("logrotate_max_stdout_size")},
    )
    logrotate_max_stderr_size: int = attrs.field(
        default=10 << 20, validator=checks.integer(1),
        metadata={"help": "rotating logger: bytes per stderr file (or 10MB, 512KB)",
                  "parse": _bytes("logrotate_max_stderr_size")},
    )
    logrotate_max_files: int = attrs.field(
        default=5, validator=checks.integer(1, 1000),
        metadata={"help": "rotating logger: rotated files kept per stream (stdout.1..N)"},
    )
    switch_user: bool = attrs.field(
        default=True, validator=checks.boolean,
        metadata={"help": "run command tasks as CommandInfo.user, else the framework's user "
                          "(with that user's groups; an unknown user fails the task); false: "
                          "as the agent's user"},
    )
    isolation: str = attrs.field(
        default=AUTO, validator=_isolation,
        metadata={"help": "comma list of isolators for command tasks: cgroups/cpu, "
                          "cgroups/mem, cgroups/pids, posix/cpu, posix/mem, posix/disk; "
                          "'auto' (the cgroups ones where a cgroup hierarchy is writable, "
                          "else posix/cpu,posix/mem with a warning) or 'none'"},
    )
    cgroups_hierarchy: str = attrs.field(
        default="/sys/fs/cgroup", validator=checks.nonempty("an absolute directory path"),
        metadata={"help": "where the cgroup controllers (v1) or the unified cgroup2 "
                          "hierarchy are mounted"},
    )
    cgroups_root: str = attrs.field(
        default="mesoslite", validator=_cgroups_root,
        metadata={"help": "cgroup under which containers get theirs "
                          "(<root>/agent-<work_dir hash>/<container_id>)"},
    )
    cgroups_enable_cfs: bool = attrs.field(
        default=False, validator=checks.boolean,
        metadata={"help": "cap each command task's CPU time with a CFS quota of cpus x "
                          "100ms per 100ms (cgroups/cpu; shares alone otherwise)"},
    )
    cgroups_pids_limit: int = attrs.field(
        default=DEFAULT_PIDS_LIMIT, validator=checks.integer(0),
        metadata={"help": "most processes and threads one command task may have "
                          "(cgroups/pids; 0: no limit)"},
    )
    container_disk_watch_interval: float = attrs.field(
        default=15.0, validator=checks.positive_seconds,
        metadata={"help": "how often posix/disk measures each task's sandbox (du)",
                  "parse": _duration("container_disk_watch_interval")},
    )
    enforce_container_disk_quota: bool = attrs.field(
        default=False, validator=checks.boolean,
        metadata={"help": "posix/disk: kill a task whose sandbox outgrows its disk "
                          "(TASK_FAILED, REASON_CONTAINER_LIMITATION_DISK)"},
    )
    #: Cap on ``/files/read`` ``length`` (bytes).
    files_max_read_length: int = attrs.field(default=1 << 20, validator=checks.integer(1))
    #: Seconds a ``/files`` read may take before it is answered 504.
    files_timeout: float = attrs.field(default=10.0, validator=checks.positive_seconds)
    # The fetcher (CommandInfo.uris, Marathon fetch/uris): see mesoslite/agent/fetcher.py.
    fetcher_cache_dir: str = attrs.field(
        default="", validator=checks.text,
        metadata={"help": "directory of the fetcher cache (empty: <work_dir>/fetch); "
                          "emptied when the agent starts, as Mesos does"},
    )
    fetcher_cache_size: int = attrs.field(
        default=2 << 30, validator=checks.integer(1),
        metadata={"help": "bytes the fetcher cache may hold, least recently used evicted "
                          "first (or 2GB, 512MB; Mesos's default 2GB)",
                  "parse": _bytes("fetcher_cache_size")},
    )
    fetcher_stall_timeout: float = attrs.field(
        default=60.0, validator=checks.positive_seconds,
        metadata={"help": "a download that receives nothing for this long fails "
                          "(Mesos's default 1mins)", "parse": _duration("fetcher_stall_timeout")},
    )
    fetcher_timeout: float = attrs.field(
        default=1800.0, validator=checks.positive_seconds,
        metadata={"help": "seconds one URI may take to fetch, however steadily it arrives",
                  "parse": _duration("fetcher_timeout")},
    )
    fetcher_max_size: int = attrs.field(
        default=4 << 30, validator=checks.integer(1),
        metadata={"help": "largest download, and largest unpacked content of one archive "
                          "(bytes, or 4GB, 100MB)", "parse": _bytes("fetcher_max_size")},
    )
    secret_store_dir: str = attrs.field(
        default="", validator=checks.text,
        metadata={"help": "directory of secret files (one per reference, mode 0600) that "
                          "tasks' secret variables are read from (empty: tasks with "
                          "secrets fail)"},
    )
    fetcher_max_redirects: int = attrs.field(
        default=5, validator=checks.integer(0, 50),
        metadata={"help": "HTTP redirects the fetcher follows per URI"},
    )

    def __attrs_post_init__(self) -> None:
        """Check the fields that depend on each other."""
        if self.status_update_retry_max < self.status_update_retry_min:
            raise ConfigError("status_update_retry_max", f">= status_update_retry_min "
                              f"({self.status_update_retry_min})", self.status_update_retry_max)
        if (self.authenticate_http_readonly or self.authenticate_http_readwrite) \
                and not self.credentials:
            raise ConfigError("credentials", "a credentials file with "
                              "--authenticate_http_readonly/readwrite", self.credentials)
        if self.enforce_container_disk_quota and "posix/disk" not in (
                parse_isolation(self.isolation) or ()):
            raise ConfigError("enforce_container_disk_quota", "posix/disk in --isolation "
                              "(the quota is enforced by that isolator)", True)
        if not self.cgroups_hierarchy.startswith("/"):
            raise ConfigError("cgroups_hierarchy", "an absolute directory path",
                              self.cgroups_hierarchy)
        if bool(self.curve_secret_file) != bool(self.master_public_key_file):
            field = "master_public_key_file" if self.curve_secret_file else "curve_secret_file"
            raise ConfigError(field, "curve_secret_file and master_public_key_file set "
                              "together (CURVE needs both, or neither)", getattr(self, field))

    def docker_options(self) -> DockerOptions:
        """The Docker containerizer's options from the ``docker_*`` fields."""
        allowed = split_comma_list(self.docker_allowed_parameters)
        return DockerOptions(
            docker_host=self.docker_host,
            allow_privileged=self.docker_allow_privileged,
            allowed_parameters=frozenset(allowed) if allowed else DEFAULT_ALLOWED_PARAMETERS,
            allowed_log_drivers=frozenset(split_comma_list(self.docker_allowed_log_drivers)),
            volume_allowed_paths=split_comma_list(self.docker_volume_allowed_paths),
            kill_orphans=self.docker_kill_orphans,
            pull_timeout=float(self.docker_pull_timeout),
            port_bind_ip=self.ip,
        )

    def container_logger_environment(self) -> dict[str, str]:
        """What tells a command executor to run the rotating logger (empty: plain files)."""
        if self.container_logger != "rotating":
            return {}
        return {"MESOSLITE_CONTAINER_LOGGER": "rotating",
                "MESOSLITE_LOGROTATE_MAX_STDOUT_SIZE": str(self.logrotate_max_stdout_size),
                "MESOSLITE_LOGROTATE_MAX_STDERR_SIZE": str(self.logrotate_max_stderr_size),
                "MESOSLITE_LOGROTATE_MAX_FILES": str(self.logrotate_max_files)}

    @property
    def effective_hostname(self) -> str:
        """``hostname``, or ``ip`` when no hostname was given."""
        return self.hostname or self.ip

    @property
    def resources_override(self) -> Resources:
        """The ``resources`` text parsed (names here replace detected ones)."""
        return Resources.parse(self.resources)

    @property
    def attributes_dict(self) -> dict[str, str]:
        """The ``attributes`` text parsed into a dict."""
        return parse_attributes(self.attributes)

    @property
    def containerizer_list(self) -> tuple[str, ...]:
        """The ``containerizers`` comma list, stripped, in order."""
        return split_comma_list(self.containerizers)

    def to_flags(self) -> dict[str, Any]:
        """The flags as shown on ``/flags`` and ``/state`` (values as strings, like Mesos)."""
        return {f.name: checks.mask_secrets(str(getattr(self, f.name)))
                for f in attrs.fields(AgentConfig)}
