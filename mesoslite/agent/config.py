"""The agent's configuration (PURE).

Owns: :class:`AgentConfig`, every agent flag with its Mesos default, and the
validation that turns a bad value into a ``ValueError`` naming the field, the
value and what was expected.  ``resources`` and ``attributes`` are kept as the
Mesos text the operator gave; :attr:`AgentConfig.resources_override` and
:attr:`AgentConfig.attributes_dict` parse them.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from mesoslite.agent.containerizer.docker_spec import DEFAULT_ALLOWED_PARAMETERS, DockerOptions
from mesoslite.protocol import MAX_MESSAGE_SIZE
from mesoslite.resources import Resources, ResourcesError


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


_RECOVER_MODES = ("reconnect", "cleanup")
_KNOWN_CONTAINERIZERS = ("process", "docker")


def parse_attributes(text: str) -> dict[str, str]:
    """Parse Mesos attribute text ``"rack:a;zone:b"`` into ``{"rack": "a", "zone": "b"}``."""
    out: dict[str, str] = {}
    for i, token in enumerate(text.split(";")):
        token = token.strip()
        if not token:
            continue
        name, sep, value = token.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ValueError(
                f"attributes: item {i} is {token!r}, expected 'name:value' (e.g. 'rack:a;zone:b')"
            )
        out[name] = value
    return out


def _positive(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{attribute.name}: expected a number, got {value!r}")
    if value <= 0:
        raise ValueError(f"{attribute.name}: expected a value > 0, got {value!r}")


def _non_negative(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{attribute.name}: expected a number, got {value!r}")
    if value < 0:
        raise ValueError(f"{attribute.name}: expected a value >= 0, got {value!r}")


def _bool(_inst: Any, attribute: attrs.Attribute, value: bool) -> None:
    if not isinstance(value, bool):  # config errors are ValueErrors by contract
        raise ValueError(f"{attribute.name}: expected true or false, got {value!r}")  # noqa: TRY004


def _port(_inst: Any, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"{attribute.name}: expected a port in 0-65535, got {value!r}")


def _text(_inst: Any, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str):  # config errors are ValueErrors by contract
        raise ValueError(f"{attribute.name}: expected a string, got {value!r}")  # noqa: TRY004
    if "\x00" in value:
        raise ValueError(f"{attribute.name}: NUL bytes are not allowed in {value!r}")


def _master(_inst: Any, attribute: attrs.Attribute, value: str) -> None:
    _text(_inst, attribute, value)
    if value.startswith(("zk://", "tcp://")):
        return
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(
            f"{attribute.name}: expected host:port, tcp://host:port or zk://..., got {value!r}"
        )


def _work_dir(_inst: Any, attribute: attrs.Attribute, value: str) -> None:
    _text(_inst, attribute, value)
    if not value:
        raise ValueError(f"{attribute.name}: expected a directory path, got an empty string")


@attrs.frozen
class AgentConfig:
    """Every agent flag, with Mesos defaults; durations are float seconds.

    ``master`` is ``host:port`` of the master's ZMQ endpoint or ``zk://…``
    (the agent follows the leader); ``hostname`` empty means ``ip``; ``http_port`` 0 binds an
    ephemeral port; ``resources`` replaces detected resources by name;
    ``containerizers`` is a comma list of ``process`` and ``docker``; the
    ``docker_*`` fields configure the Docker containerizer (:meth:`docker_options`).
    """

    master: str = attrs.field(default="127.0.0.1:5055", validator=_master)
    ip: str = attrs.field(default="127.0.0.1", validator=_text)
    hostname: str = attrs.field(default="", validator=_text)
    http_port: int = attrs.field(default=5051, validator=_port)
    work_dir: str = attrs.field(default="/tmp/mesoslite/agent", validator=_work_dir)
    resources: str = attrs.field(default="", validator=_text)
    attributes: str = attrs.field(default="", validator=_text)
    containerizers: str = attrs.field(
        default="process", validator=_text,
        metadata={"help": "comma list of containerizers: process, docker (e.g. docker,process)"},
    )
    docker_host: str = attrs.field(
        default="", validator=_text,
        metadata={"help": "Docker daemon address (empty: $DOCKER_HOST or the default socket)"},
    )
    docker_allow_privileged: bool = attrs.field(
        default=False, validator=_bool,
        metadata={"help": "let Docker tasks ask for privileged containers"},
    )
    docker_allowed_parameters: str = attrs.field(
        default="", validator=_text,
        metadata={"help": "comma list of docker run options tasks may pass as parameters "
                          "(empty: the safe default list)"},
    )
    docker_volume_allowed_paths: str = attrs.field(
        default="", validator=_text,
        metadata={"help": "comma list of absolute host paths Docker volumes may mount"},
    )
    docker_kill_orphans: bool = attrs.field(
        default=True, validator=_bool,
        metadata={"help": "remove this agent's labelled containers it does not know on start"},
    )
    docker_pull_timeout: float = attrs.field(
        default=1800.0, validator=_positive,
        metadata={"help": "seconds an image pull may take"},
    )
    docker_health_interval: float = attrs.field(
        default=5.0, validator=_positive,
        metadata={"help": "seconds between Docker daemon health checks"},
    )
    executor_registration_timeout: float = attrs.field(default=60.0, validator=_positive)
    executor_shutdown_grace_period: float = attrs.field(default=5.0, validator=_non_negative)
    executor_reregistration_timeout: float = attrs.field(default=2.0, validator=_positive)
    registration_backoff_factor: float = attrs.field(default=1.0, validator=_non_negative)
    registration_backoff_max: float = attrs.field(default=60.0, validator=_positive)
    status_update_retry_min: float = attrs.field(default=10.0, validator=_positive)
    status_update_retry_max: float = attrs.field(default=600.0, validator=_positive)
    recover: str = attrs.field(default="reconnect", validator=_text)
    recovery_timeout: float = attrs.field(default=900.0, validator=_positive)
    default_kill_grace_period: float = attrs.field(default=3.0, validator=_non_negative)
    max_message_size: int = attrs.field(default=MAX_MESSAGE_SIZE, validator=_positive)
    #: CURVE: this agent's ``.key_secret`` file and the master's public ``.key`` file.
    curve_secret_file: str = attrs.field(default="", validator=_text)
    master_public_key_file: str = attrs.field(default="", validator=_text)
    #: Re-register when no Ping arrived for ``ping_interval × ping_timeout_factor``.
    ping_timeout_factor: float = attrs.field(default=5.0, validator=_positive)
    max_completed_frameworks: int = attrs.field(default=50, validator=_non_negative)
    max_completed_executors_per_framework: int = attrs.field(default=150, validator=_non_negative)
    max_completed_tasks_per_executor: int = attrs.field(default=200, validator=_non_negative)
    #: Cap on ``/files/read`` ``length`` (bytes).
    files_max_read_length: int = attrs.field(default=1 << 20, validator=_positive)

    def __attrs_post_init__(self) -> None:
        """Cross-field checks, and parse the texts once to reject bad ones early."""
        if self.recover not in _RECOVER_MODES:
            raise ValueError(f"recover: expected one of {_RECOVER_MODES}, got {self.recover!r}")
        if self.status_update_retry_max < self.status_update_retry_min:
            raise ValueError(
                f"status_update_retry_max: expected >= status_update_retry_min "
                f"({self.status_update_retry_min}), got {self.status_update_retry_max!r}"
            )
        names = self.containerizer_list
        if not names:
            raise ValueError("containerizers: expected at least one of process, docker, got ''")
        for name in names:
            if name not in _KNOWN_CONTAINERIZERS:
                raise ValueError(
                    f"containerizers: unknown containerizer {name!r}, "
                    f"expected a comma list of {', '.join(_KNOWN_CONTAINERIZERS)}"
                )
        if bool(self.curve_secret_file) != bool(self.master_public_key_file):
            raise ValueError(
                "curve_secret_file: CURVE needs both curve_secret_file and "
                "master_public_key_file, or neither"
            )
        try:
            Resources.parse(self.resources)
        except ResourcesError as exc:
            raise ValueError(f"resources: {exc}") from None
        parse_attributes(self.attributes)
        if "docker" in names:
            self.docker_options()

    def docker_options(self) -> DockerOptions:
        """The Docker containerizer's options from the ``docker_*`` fields (ValueError if bad)."""
        allowed = _comma_list(self.docker_allowed_parameters)
        return DockerOptions(
            docker_host=self.docker_host,
            allow_privileged=self.docker_allow_privileged,
            allowed_parameters=frozenset(allowed) if allowed else DEFAULT_ALLOWED_PARAMETERS,
            volume_allowed_paths=_comma_list(self.docker_volume_allowed_paths),
            kill_orphans=self.docker_kill_orphans,
            pull_timeout=float(self.docker_pull_timeout),
            port_bind_ip=self.ip,
        )

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
        return tuple(n.strip() for n in self.containerizers.split(",") if n.strip())

    def to_flags(self) -> dict[str, Any]:
        """The flags as shown on ``/flags`` and ``/state`` (values as strings, like Mesos)."""
        return {f.name: str(getattr(self, f.name)) for f in attrs.fields(AgentConfig)}
