"""The master's configuration (PURE).

Owns: :class:`MasterConfig`, every knob of the master with its Mesos default,
validated on construction by the shared checks of :mod:`mesoslite.config_checks`
(a bad value raises :class:`~mesoslite.config_checks.ConfigError` naming the
field, the value and what was expected), and :func:`parse_weights` for the
``--weights`` flag (``"role=2,other=1.5"``).  Field metadata carries ``help``
and, where the text form needs it, ``parse`` (both read by :mod:`mesoslite.cli`).
"""

from __future__ import annotations

from typing import Any

import attrs

from mesoslite import config_checks as checks
from mesoslite.allocator import validate_role
from mesoslite.authz.acls import ACLS_HELP, check_acls_flag
from mesoslite.config_checks import ConfigError
from mesoslite.protocol import MAX_MESSAGE_SIZE
from mesoslite.resources import Resources


def parse_weights(text: str) -> dict[str, float]:
    """Parse ``"role=2,other=1.5"`` into ``{"role": 2.0, "other": 1.5}``.

    Raises :class:`ConfigError` (field ``weights``) naming the bad item.
    """
    if not isinstance(text, str):
        raise ConfigError("weights", "text like 'role=2,other=1.5'", text)
    out: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        role, sep, value = item.partition("=")
        role = role.strip()
        if not sep or not role:
            raise ConfigError("weights", "role=weight", item)
        try:
            weight = float(value)
        except ValueError:
            raise ConfigError("weights", f"a number as the weight of role {role!r}",
                              value.strip()) from None
        out[role] = weight
    _check_weights(out)
    return out


def _check_weights(weights: Any) -> bool:
    """True for a mapping of valid role names to finite weights > 0; ConfigError otherwise."""
    if not isinstance(weights, dict):
        raise ConfigError("weights", "a mapping of role to weight", weights)
    for role, weight in weights.items():
        try:
            validate_role(role)
        except ValueError as exc:
            raise ConfigError("weights", "valid role names", role, detail=str(exc)) from None
        if not checks.positive_number.accepts(weight):
            raise ConfigError("weights", f"a finite number > 0 as the weight of role {role!r}",
                              weight)
    return True


def parse_min_allocatable(text: str) -> tuple[Resources, ...]:
    """Parse ``"cpus:0.01|mem:32"``: alternatives separated by ``|`` (Mesos syntax)."""
    checks.resource_alternatives.check("min_allocatable_resources", text)
    return checks.parse_resource_alternatives(text)


#: ``--registry`` values (Mesos's flag; ``replicated_log`` means "durable" here).
REGISTRY_KINDS = ("replicated_log", "in_memory")


def _to_weights(value: Any) -> Any:
    return parse_weights(value) if isinstance(value, str) else value


@attrs.frozen
class MasterConfig:
    """Everything the master can be told; defaults are Mesos's."""

    ip: str = attrs.field(
        default="127.0.0.1", validator=checks.host, metadata={"help": "address to bind"},
    )
    hostname: str = attrs.field(
        default="", validator=checks.text, metadata={"help": "advertised host name (default: ip)"},
    )
    allowed_hosts: str = attrs.field(
        default="", validator=checks.host_names,
        metadata={"help": checks.ALLOWED_HOSTS_HELP},
    )
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
    authenticate_frameworks: bool = attrs.field(
        default=False, validator=checks.boolean,
        metadata={"help": "require schedulers to authenticate a principal of --credentials "
                          "(challenge-response; the secret never crosses the wire)"},
    )
    authenticate_agents: bool = attrs.field(
        default=False, validator=checks.boolean,
        metadata={"help": "require agents to authenticate a principal of --credentials"},
    )
    authentication_v0_timeout: float = attrs.field(
        default=15.0, validator=checks.positive_seconds,
        metadata={"help": "seconds a framework or agent has to answer an authentication "
                          "challenge"},
    )
    http_port: int = attrs.field(
        default=5050, validator=checks.port, metadata={"help": "HTTP port (0 = ephemeral)"},
    )
    zmq_port: int = attrs.field(
        default=5055, validator=checks.port, metadata={"help": "ZeroMQ port (0 = ephemeral)"},
    )
    work_dir: str = attrs.field(
        default="", validator=checks.text, metadata={"help": "directory for the master's files"},
    )
    allocation_interval: float = attrs.field(
        default=1.0, validator=checks.positive_seconds,
        metadata={"help": "seconds between batch allocations"},
    )
    offer_timeout: float | None = attrs.field(
        default=None,
        validator=checks.optional(checks.positive_seconds),
        metadata={"help": "seconds before an unanswered offer is rescinded (unset: never)"},
    )
    agent_ping_timeout: float = attrs.field(
        default=15.0, validator=checks.positive_seconds,
        metadata={"help": "seconds between agent pings"},
    )
    max_agent_ping_timeouts: int = attrs.field(
        default=5,
        validator=checks.integer(1),
        metadata={"help": "missed pongs before an agent is removed as unreachable"},
    )
    framework_heartbeat_interval: float = attrs.field(
        default=15.0, validator=checks.positive_seconds,
        metadata={"help": "seconds between heartbeats"},
    )
    max_framework_missed_heartbeats: int = attrs.field(
        default=5,
        validator=checks.integer(1),
        metadata={"help": "silent heartbeat intervals before a framework is disconnected"},
    )
    min_allocatable_resources: str = attrs.field(
        default="cpus:0.01|mem:32",
        validator=checks.resource_alternatives,
        metadata={"help": "smallest offer, alternatives separated by |"},
    )
    weights: dict[str, float] = attrs.field(
        factory=dict,
        converter=_to_weights,
        validator=checks.Check("a mapping of role to weight", _check_weights),
        metadata={"help": "role weights, e.g. role=2,other=1.5", "parse": parse_weights},
    )
    max_completed_frameworks: int = attrs.field(
        default=50,
        validator=checks.integer(0),
        metadata={"help": "completed frameworks kept for /state"},
    )
    max_completed_tasks_per_framework: int = attrs.field(
        default=1000,
        validator=checks.integer(0),
        metadata={"help": "completed tasks kept per framework for /state"},
    )
    max_message_size: int = attrs.field(
        default=MAX_MESSAGE_SIZE,
        validator=checks.integer(1),
        metadata={"help": "largest accepted message in bytes"},
    )
    curve_secret_key: str = attrs.field(
        default="", validator=checks.text,
        metadata={"help": "CURVE secret key file (enables CURVE)"},
    )
    curve_authorized_dir: str = attrs.field(
        default="", validator=checks.text, metadata={"help": "directory of authorised client keys"},
    )
    cluster: str = attrs.field(default="", validator=checks.text, metadata={"help": "cluster name"})
    zk: str = attrs.field(
        default="",
        validator=checks.zk_url,
        metadata={"help": "ZooKeeper URL for leader election and the registry, e.g. "
                          "zk://h1:2181,h2:2181,h3:2181/mesoslite (empty: standalone)"},
    )
    quorum: int | None = attrs.field(
        default=None,
        validator=checks.optional(checks.integer(1)),
        metadata={"help": "number of masters that make a majority (required with --zk; "
                          "2 of 3 masters); recorded, as mesoslite keeps its registry in "
                          "ZooKeeper rather than a replicated log"},
    )
    zk_session_timeout: float = attrs.field(
        default=10.0,
        validator=checks.positive_seconds,
        metadata={"help": "ZooKeeper session timeout in seconds; a leader that loses its "
                          "session stops leading"},
    )
    zk_suspend_grace: float | None = attrs.field(
        default=None,
        validator=checks.optional(checks.positive_seconds),
        metadata={"help": "seconds a leader whose ZooKeeper connection is suspended keeps "
                          "acting before it steps down (default: a quarter of the session "
                          "timeout the server granted, at most 2; a value not below a third "
                          "of it is cut to that default)"},
    )
    agent_reregister_timeout: float = attrs.field(
        default=600.0,
        validator=checks.positive_seconds,
        metadata={"help": "seconds a new leader waits for agents in the registry to "
                          "re-register before marking them unreachable (Mesos requires at "
                          "least 600; smaller values are meant for tests)"},
    )
    registry: str = attrs.field(
        default="replicated_log",
        validator=checks.one_of(*REGISTRY_KINDS),
        metadata={"help": "where durable state lives: replicated_log (in ZooKeeper with "
                          "--zk, else <work_dir>/registry.json, else in memory) or in_memory"},
    )
    registry_store_timeout: float = attrs.field(
        default=20.0,
        validator=checks.positive_seconds,
        metadata={"help": "seconds a registry write may take before the master gives up "
                          "leadership"},
    )
    registry_fetch_timeout: float = attrs.field(
        default=60.0,
        validator=checks.positive_seconds,
        metadata={"help": "seconds reading the registry may take after an election"},
    )

    def __attrs_post_init__(self) -> None:
        """Check the fields that depend on each other."""
        if bool(self.curve_secret_key) != bool(self.curve_authorized_dir):
            field = "curve_authorized_dir" if self.curve_secret_key else "curve_secret_key"
            raise ConfigError(field, "curve_secret_key and curve_authorized_dir set together",
                              getattr(self, field))
        if self.zk_suspend_grace is not None and \
                self.zk_suspend_grace >= self.zk_session_timeout:
            raise ConfigError("zk_suspend_grace", f"less than zk_session_timeout "
                              f"({self.zk_session_timeout})", self.zk_suspend_grace)
        if (self.authenticate_frameworks or self.authenticate_agents) and not self.credentials:
            raise ConfigError("credentials", "a credentials file with "
                              "--authenticate_frameworks/--authenticate_agents", self.credentials)
        if (self.authenticate_http_readonly or self.authenticate_http_readwrite) \
                and not self.credentials:
            raise ConfigError("credentials", "a credentials file with "
                              "--authenticate_http_readonly/readwrite", self.credentials)
        if self.zk and self.quorum is None:
            raise ConfigError("quorum", "the number of masters that make a majority with --zk "
                              "(2 for 3 masters)", self.quorum)

    @property
    def advertised_hostname(self) -> str:
        """The host name shown to peers: ``hostname``, else ``ip``."""
        return self.hostname or self.ip

    @property
    def min_allocatable(self) -> tuple[Resources, ...]:
        """``min_allocatable_resources`` parsed into its alternatives."""
        return parse_min_allocatable(self.min_allocatable_resources)
