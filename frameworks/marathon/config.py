"""The Marathon-style framework's configuration (PURE).

Owns: :class:`MarathonConfig`, every knob with Marathon's default (the
flag names follow Marathon's command-line flags where one exists), validated
on construction by the shared checks of :mod:`mesoslite.config_checks` (a bad
value raises :class:`~mesoslite.config_checks.ConfigError` naming the field,
the value and what was expected).  Field metadata carries ``help`` for the
generated CLI flags.
"""

from __future__ import annotations

import attrs

from mesoslite import config_checks as checks


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@attrs.frozen
class MarathonConfig:
    """Every setting of ``mesoslite marathon``."""

    master: str = attrs.field(
        default="127.0.0.1:5055", validator=checks.master_address,
        metadata=_help("leading master: host:port of its ZeroMQ endpoint, or zk://…/mesoslite"))
    zk: str = attrs.field(
        default="", validator=checks.zk_url,
        metadata=_help("ZooKeeper URL for state and leader election, e.g. "
                       "zk://localhost:2181/marathon (empty: --state_dir, no election)"))
    state_dir: str = attrs.field(
        default="marathon-state", validator=checks.text,
        metadata=_help("directory for state when --zk is not given"))
    http_address: str = attrs.field(
        default="127.0.0.1", validator=checks.ip_address,
        metadata=_help("address the REST API binds"))
    http_credentials: str = attrs.field(
        default="", validator=checks.text, repr=False,
        metadata=_help("user:password (several separated by commas) every request but "
                       "/ping must present with HTTP Basic (empty: no authentication; "
                       "prefer the environment MESOSLITE_HTTP_CREDENTIALS: flags are "
                       "visible to other users in the process list)"))
    http_realm: str = attrs.field(
        default="Mesosphere", validator=checks.text,
        metadata=_help("realm named in WWW-Authenticate"))
    http_port: int = attrs.field(
        default=8080, validator=checks.port, metadata=_help("REST API port (0 = ephemeral)"))
    hostname: str = attrs.field(
        default="", validator=checks.text,
        metadata=_help("advertised host name (default: --http_address)"))
    allowed_hosts: str = attrs.field(
        default="", validator=checks.host_names,
        metadata=_help(checks.ALLOWED_HOSTS_HELP))
    framework_name: str = attrs.field(
        default="marathon", validator=checks.text, metadata=_help("framework name at the master"))
    mesos_authentication_principal: str = attrs.field(
        default="", validator=checks.text,
        metadata=_help("principal the framework authenticates with at the master (and "
                       "registers as); needs --mesos_authentication_secret_file"))
    mesos_authentication_secret_file: str = attrs.field(
        default="", validator=checks.text,
        metadata=_help("file holding the secret of --mesos_authentication_principal"))
    curve_secret_file: str = attrs.field(
        default="", validator=checks.text,
        metadata=_help("CURVE: this framework's .key_secret file (with "
                       "--master_public_key_file: encrypted, authenticated link to the master)"))
    master_public_key_file: str = attrs.field(
        default="", validator=checks.text,
        metadata=_help("CURVE: the master's public .key file"))
    mesos_role: str = attrs.field(
        default="*", validator=checks.text, metadata=_help("role the framework registers with"))
    mesos_user: str = attrs.field(
        default="", validator=checks.text, metadata=_help("user tasks run as (default: current)"))
    failover_timeout: float = attrs.field(
        default=604800.0, validator=checks.positive_seconds,
        metadata=_help("seconds the master keeps our tasks after we disconnect (1 week)"))
    zk_session_timeout: float = attrs.field(
        default=10.0, validator=checks.positive_seconds,
        metadata=_help("ZooKeeper session timeout, seconds"))
    zk_max_versions: int = attrs.field(
        default=50, validator=checks.integer(1), metadata=_help("stored versions kept per app"))
    max_instances_per_offer: int = attrs.field(
        default=5, validator=checks.integer(1), metadata=_help("launches per offer, at most"))
    decline_offer_duration: float = attrs.field(
        default=120.0, validator=checks.positive_seconds,
        metadata=_help("seconds an unused offer is filtered when declined"))
    reconciliation_initial_delay: float = attrs.field(
        default=15.0, validator=checks.non_negative_seconds,
        metadata=_help("seconds after election before the first task reconciliation"))
    reconciliation_interval: float = attrs.field(
        default=600.0, validator=checks.positive_seconds,
        metadata=_help("seconds between reconciliations"))
    task_launch_timeout: float = attrs.field(
        default=300.0, validator=checks.positive_seconds,
        metadata=_help("seconds a task may stay staging before it is killed and replaced"))
    min_healthy_uptime: float = attrs.field(
        default=30.0, validator=checks.non_negative_seconds,
        metadata=_help("seconds a task must run before its app's launch backoff resets"))
    max_running_deployments: int = attrs.field(
        default=100, validator=checks.integer(1), metadata=_help("deployments at once, at most"))
    max_apps: int = attrs.field(
        default=0, validator=checks.integer(0), metadata=_help("apps at most (0 = no limit)"))
    event_stream_max_outstanding_messages: int = attrs.field(
        default=50, validator=checks.integer(1),
        metadata=_help("events a slow /v2/events client may lag before it is disconnected"))
    event_stream_keepalive: float = attrs.field(
        default=15.0, validator=checks.positive_seconds,
        metadata=_help("seconds between keep-alive comments on /v2/events"))
    http_max_body: int = attrs.field(
        default=1 << 20, validator=checks.integer(1), metadata=_help("largest request body, bytes"))
    tick_interval: float = attrs.field(
        default=1.0, validator=checks.positive_seconds,
        metadata=_help("seconds between scheduling passes when nothing happens"))

    @property
    def advertised_host(self) -> str:
        """The host name other instances and clients use to reach this one."""
        return self.hostname or self.http_address
