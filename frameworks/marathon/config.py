"""The Marathon-style framework's configuration (PURE).

Owns: :class:`MarathonConfig`, every knob with Marathon's default (the
flag names follow Marathon's command-line flags where one exists), validated
on construction; a bad value raises ``ValueError`` naming the field.  Field
metadata carries ``help`` for the generated CLI flags.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import attrs


def _positive(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{attribute.name}: expected a number > 0, got {value!r}")


def _non_negative(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{attribute.name}: expected a number >= 0, got {value!r}")


def _port(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"{attribute.name}: expected a port 0-65535, got {value!r}")


def _ip(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{attribute.name}: expected an IP address, got {value!r}") from None


def _zk(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value and not str(value).startswith("zk://"):
        raise ValueError(f"{attribute.name}: expected zk://host:port[,host:port]/path, "
                         f"got {value!r}")


def _text(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str):
        raise ValueError(  # noqa: TRY004 - config errors are ValueErrors
            f"{attribute.name}: expected text, got {value!r}")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@attrs.frozen
class MarathonConfig:
    """Every setting of ``mesoslite marathon``."""

    master: str = attrs.field(
        default="127.0.0.1:5055", validator=_text,
        metadata=_help("leading master: host:port of its ZeroMQ endpoint, or zk://…/mesoslite"))
    zk: str = attrs.field(
        default="", validator=_zk,
        metadata=_help("ZooKeeper URL for state and leader election, e.g. "
                       "zk://localhost:2181/marathon (empty: --state_dir, no election)"))
    state_dir: str = attrs.field(
        default="marathon-state", validator=_text,
        metadata=_help("directory for state when --zk is not given"))
    http_address: str = attrs.field(
        default="127.0.0.1", validator=_ip, metadata=_help("address the REST API binds"))
    http_port: int = attrs.field(
        default=8080, validator=_port, metadata=_help("REST API port (0 = ephemeral)"))
    hostname: str = attrs.field(
        default="", validator=_text,
        metadata=_help("advertised host name (default: --http_address)"))
    framework_name: str = attrs.field(
        default="marathon", validator=_text, metadata=_help("framework name at the master"))
    mesos_role: str = attrs.field(
        default="*", validator=_text, metadata=_help("role the framework registers with"))
    mesos_user: str = attrs.field(
        default="", validator=_text, metadata=_help("user tasks run as (default: current)"))
    failover_timeout: float = attrs.field(
        default=604800.0, validator=_positive,
        metadata=_help("seconds the master keeps our tasks after we disconnect (1 week)"))
    zk_session_timeout: float = attrs.field(
        default=10.0, validator=_positive, metadata=_help("ZooKeeper session timeout, seconds"))
    zk_max_versions: int = attrs.field(
        default=50, validator=_positive, metadata=_help("stored versions kept per app"))
    max_instances_per_offer: int = attrs.field(
        default=5, validator=_positive, metadata=_help("launches per offer, at most"))
    decline_offer_duration: float = attrs.field(
        default=120.0, validator=_positive,
        metadata=_help("seconds an unused offer is filtered when declined"))
    reconciliation_initial_delay: float = attrs.field(
        default=15.0, validator=_non_negative,
        metadata=_help("seconds after election before the first task reconciliation"))
    reconciliation_interval: float = attrs.field(
        default=600.0, validator=_positive, metadata=_help("seconds between reconciliations"))
    task_launch_timeout: float = attrs.field(
        default=300.0, validator=_positive,
        metadata=_help("seconds a task may stay staging before it is killed and replaced"))
    min_healthy_uptime: float = attrs.field(
        default=30.0, validator=_non_negative,
        metadata=_help("seconds a task must run before its app's launch backoff resets"))
    max_running_deployments: int = attrs.field(
        default=100, validator=_positive, metadata=_help("deployments at once, at most"))
    max_apps: int = attrs.field(
        default=0, validator=_non_negative, metadata=_help("apps at most (0 = no limit)"))
    event_stream_max_outstanding_messages: int = attrs.field(
        default=50, validator=_positive,
        metadata=_help("events a slow /v2/events client may lag before it is disconnected"))
    event_stream_keepalive: float = attrs.field(
        default=15.0, validator=_positive,
        metadata=_help("seconds between keep-alive comments on /v2/events"))
    http_max_body: int = attrs.field(
        default=1 << 20, validator=_positive, metadata=_help("largest request body, bytes"))
    tick_interval: float = attrs.field(
        default=1.0, validator=_positive,
        metadata=_help("seconds between scheduling passes when nothing happens"))

    @property
    def advertised_host(self) -> str:
        """The host name other instances and clients use to reach this one."""
        return self.hostname or self.http_address
