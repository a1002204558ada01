"""The master's configuration (PURE).

Owns: :class:`MasterConfig`, every knob of the master with its Mesos default,
validated on construction (a bad value raises ``ValueError`` naming the
field), and :func:`parse_weights` for the ``--weights`` flag
(``"role=2,other=1.5"``).  Field metadata carries ``help`` and, where the
text form needs it, ``parse`` (both read by :mod:`mesoslite.cli`).
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from mesoslite.allocator import validate_role
from mesoslite.protocol import MAX_MESSAGE_SIZE
from mesoslite.resources import Resources, ResourcesError


class ConfigError(ValueError):
    """A configuration value is invalid; ``field`` names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def parse_weights(text: str) -> dict[str, float]:
    """Parse ``"role=2,other=1.5"`` into ``{"role": 2.0, "other": 1.5}``.

    Raises :class:`ConfigError` (field ``weights``) naming the bad item.
    """
    if not isinstance(text, str):
        raise ConfigError("weights", f"expected text like 'role=2,other=1.5', got {text!r}")
    out: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        role, sep, value = item.partition("=")
        role = role.strip()
        if not sep or not role:
            raise ConfigError("weights", f"expected role=weight, got {item!r}")
        try:
            weight = float(value)
        except ValueError:
            raise ConfigError(
                "weights", f"weight of role {role!r}: expected a number, got {value.strip()!r}"
            ) from None
        out[role] = weight
    _check_weights(out)
    return out


def _check_weights(weights: Any) -> None:
    if not isinstance(weights, dict):
        raise ConfigError("weights", f"expected a mapping of role to weight, got {weights!r}")
    for role, weight in weights.items():
        try:
            validate_role(role)
        except ValueError as exc:
            raise ConfigError("weights", str(exc)) from None
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not math.isfinite(weight)
            or weight <= 0
        ):
            raise ConfigError(
                "weights", f"weight of role {role!r}: expected a finite number > 0, got {weight!r}"
            )


def parse_min_allocatable(text: str) -> tuple[Resources, ...]:
    """Parse ``"cpus:0.01|mem:32"``: alternatives separated by ``|`` (Mesos syntax)."""
    out: list[Resources] = []
    for part in text.split("|"):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(Resources.parse(part))
        except ResourcesError as exc:
            raise ConfigError("min_allocatable_resources", str(exc)) from None
    return tuple(out)


def _positive(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(attribute.name, f"expected a finite number > 0, got {value!r}")
    if value <= 0:
        raise ConfigError(attribute.name, f"expected a number > 0, got {value!r}")


def _positive_int(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(attribute.name, f"expected an integer >= 1, got {value!r}")


def _non_negative_int(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(attribute.name, f"expected an integer >= 0, got {value!r}")


def _port(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(attribute.name, f"expected a port in 0-65535 (0 = any), got {value!r}")


def _text(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str):
        raise ConfigError(attribute.name, f"expected text, got {value!r}")


def _ip(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ConfigError(attribute.name, f"expected an IP address or host name, got {value!r}")


def _optional_positive(inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None:
        _positive(inst, attribute, value)


#: ``--registry`` values (Mesos's flag; ``replicated_log`` means "durable" here).
REGISTRY_KINDS = ("replicated_log", "in_memory")


def _zk(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    """Empty (standalone) or the shape of ``zk://[user:pass@]host[:port][,...]/path``.

    The full parse (host names, ports, path rules) is done by the shell with
    :func:`mesoslite.coordination.parse_zk_url`; this PURE module only checks the shape.
    """
    if not isinstance(value, str):
        raise ConfigError(attribute.name, f"expected a zk:// URL or empty, got {value!r}")
    if not value:
        return
    rest = value.removeprefix("zk://")
    hosts, slash, path = rest.partition("/")
    if rest == value or not slash or not hosts.rpartition("@")[2] or path in ("", "/"):
        raise ConfigError(attribute.name, "expected zk://host1:2181,host2:2181/path "
                          f"(a path other than '/'), got {value!r}")


def _optional_positive_int(inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None:
        _positive_int(inst, attribute, value)


def _registry_kind(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value not in REGISTRY_KINDS:
        raise ConfigError(attribute.name, f"expected one of {', '.join(REGISTRY_KINDS)}, "
                          f"got {value!r}")


def _min_allocatable(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str):
        raise ConfigError(attribute.name, f"expected text like 'cpus:0.01|mem:32', got {value!r}")
    parse_min_allocatable(value)


def _weights(_inst: Any, _attribute: attrs.Attribute, value: Any) -> None:
    _check_weights(value)


def _to_weights(value: Any) -> Any:
    return parse_weights(value) if isinstance(value, str) else value


@attrs.frozen
class MasterConfig:
    """Everything the master can be told; defaults are Mesos's."""

    ip: str = attrs.field(default="127.0.0.1", validator=_ip, metadata={"help": "address to bind"})
    hostname: str = attrs.field(
        default="", validator=_text, metadata={"help": "advertised host name (default: ip)"}
    )
    http_port: int = attrs.field(
        default=5050, validator=_port, metadata={"help": "HTTP port (0 = ephemeral)"}
    )
    zmq_port: int = attrs.field(
        default=5055, validator=_port, metadata={"help": "ZeroMQ port (0 = ephemeral)"}
    )
    work_dir: str = attrs.field(
        default="", validator=_text, metadata={"help": "directory for the master's files"}
    )
    allocation_interval: float = attrs.field(
        default=1.0, validator=_positive, metadata={"help": "seconds between batch allocations"}
    )
    offer_timeout: float | None = attrs.field(
        default=None,
        validator=_optional_positive,
        metadata={"help": "seconds before an unanswered offer is rescinded (unset: never)"},
    )
    agent_ping_timeout: float = attrs.field(
        default=15.0, validator=_positive, metadata={"help": "seconds between agent pings"}
    )
    max_agent_ping_timeouts: int = attrs.field(
        default=5,
        validator=_positive_int,
        metadata={"help": "missed pongs before an agent is removed as unreachable"},
    )
    framework_heartbeat_interval: float = attrs.field(
        default=15.0, validator=_positive, metadata={"help": "seconds between heartbeats"}
    )
    max_framework_missed_heartbeats: int = attrs.field(
        default=5,
        validator=_positive_int,
        metadata={"help": "silent heartbeat intervals before a framework is disconnected"},
    )
    min_allocatable_resources: str = attrs.field(
        default="cpus:0.01|mem:32",
        validator=_min_allocatable,
        metadata={"help": "smallest offer, alternatives separated by |"},
    )
    weights: dict[str, float] = attrs.field(
        factory=dict,
        converter=_to_weights,
        validator=_weights,
        metadata={"help": "role weights, e.g. role=2,other=1.5", "parse": parse_weights},
    )
    max_completed_frameworks: int = attrs.field(
        default=50,
        validator=_non_negative_int,
        metadata={"help": "completed frameworks kept for /state"},
    )
    max_completed_tasks_per_framework: int = attrs.field(
        default=1000,
        validator=_non_negative_int,
        metadata={"help": "completed tasks kept per framework for /state"},
    )
    max_message_size: int = attrs.field(
        default=MAX_MESSAGE_SIZE,
        validator=_positive_int,
        metadata={"help": "largest accepted message in bytes"},
    )
    curve_secret_key: str = attrs.field(
        default="", validator=_text, metadata={"help": "CURVE secret key file (enables CURVE)"}
    )
    curve_authorized_dir: str = attrs.field(
        default="", validator=_text, metadata={"help": "directory of authorised client keys"}
    )
    cluster: str = attrs.field(default="", validator=_text, metadata={"help": "cluster name"})
    zk: str = attrs.field(
        default="",
        validator=_zk,
        metadata={"help": "ZooKeeper URL for leader election and the registry, e.g. "
                          "zk://h1:2181,h2:2181,h3:2181/mesoslite (empty: standalone)"},
    )
    quorum: int | None = attrs.field(
        default=None,
        validator=_optional_positive_int,
        metadata={"help": "number of masters that make a majority (required with --zk; "
                          "2 of 3 masters); recorded, as mesoslite keeps its registry in "
                          "ZooKeeper rather than a replicated log"},
    )
    zk_session_timeout: float = attrs.field(
        default=10.0,
        validator=_positive,
        metadata={"help": "ZooKeeper session timeout in seconds; a leader that loses its "
                          "session stops leading"},
    )
    zk_suspend_grace: float | None = attrs.field(
        default=None,
        validator=_optional_positive,
        metadata={"help": "seconds a leader whose ZooKeeper connection is suspended keeps "
                          "acting before it steps down (default: a quarter of the session "
                          "timeout the server granted, at most 2; a value not below a third "
                          "of it is cut to that default)"},
    )
    agent_reregister_timeout: float = attrs.field(
        default=600.0,
        validator=_positive,
        metadata={"help": "seconds a new leader waits for agents in the registry to "
                          "re-register before marking them unreachable (Mesos requires at "
                          "least 600; smaller values are meant for tests)"},
    )
    registry: str = attrs.field(
        default="replicated_log",
        validator=_registry_kind,
        metadata={"help": "where durable state lives: replicated_log (in ZooKeeper with "
                          "--zk, else <work_dir>/registry.json, else in memory) or in_memory"},
    )
    registry_store_timeout: float = attrs.field(
        default=20.0,
        validator=_positive,
        metadata={"help": "seconds a registry write may take before the master gives up "
                          "leadership"},
    )
    registry_fetch_timeout: float = attrs.field(
        default=60.0,
        validator=_positive,
        metadata={"help": "seconds reading the registry may take after an election"},
    )

    def __attrs_post_init__(self) -> None:
        """Check the fields that depend on each other."""
        if bool(self.curve_secret_key) != bool(self.curve_authorized_dir):
            field = "curve_authorized_dir" if self.curve_secret_key else "curve_secret_key"
            raise ConfigError(
                field, "expected curve_secret_key and curve_authorized_dir to be set together"
            )
        if self.zk_suspend_grace is not None and \
                self.zk_suspend_grace >= self.zk_session_timeout:
            raise ConfigError(
                "zk_suspend_grace", f"expected less than zk_session_timeout "
                f"({self.zk_session_timeout}), got {self.zk_suspend_grace!r}"
            )
        if self.zk and self.quorum is None:
            raise ConfigError(
                "quorum", "expected --quorum with --zk: the number of masters that make a "
                "majority (2 for 3 masters)"
            )

    @property
    def advertised_hostname(self) -> str:
        """The host name shown to peers: ``hostname``, else ``ip``."""
        return self.hostname or self.ip

    @property
    def min_allocatable(self) -> tuple[Resources, ...]:
        """``min_allocatable_resources`` parsed into its alternatives."""
        return parse_min_allocatable(self.min_allocatable_resources)
