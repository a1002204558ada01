"""The flags of ``mesoslite dns`` (PURE).

Owns: :class:`DnsConfig`, checked at construction (a ConfigError names the flag).  The
defaults are Mesos-DNS's where it has the setting (``domain`` mesos, ``ttl`` 60,
``http_port`` 8123, DNS ``port`` 53, ``timeout`` 5 s), so a client written for it works.
"""

from __future__ import annotations

from typing import Any

import attrs

from mesoslite.config_checks import ConfigError
from mesoslite.dns.names import check_domain


def _domain(instance: Any, attribute: Any, value: str) -> None:
    try:
        check_domain(value)
    except ValueError as exc:
        raise ConfigError(attribute.name, "a domain of hostname labels such as 'mesos'", value,
                          detail=str(exc)) from None


def _port(instance: Any, attribute: Any, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ConfigError(attribute.name, "a port in 0-65535 (0: any free port)", value)


def _lower_name(value: object) -> str:
    return str(value).strip().lower().rstrip(".")


def _positive(instance: Any, attribute: Any, value: float) -> None:
    if not value > 0:
        raise ConfigError(attribute.name, "a number > 0", value)


@attrs.frozen
class DnsConfig:
    """Where to listen, what to publish and which master to follow."""

    #: The leading master: ``host:port`` of a master's HTTP API (a comma-separated list
    #: of masters is tried in turn; a non-leader's 307 is followed), or ``zk://.../path``.
    master: str = "127.0.0.1:5050"
    #: The domain served (Mesos-DNS's default, so clients written for it work).
    domain: str = attrs.field(default="mesos", validator=_domain, converter=_lower_name)
    #: Address the DNS (UDP and TCP) and HTTP servers listen on.
    ip: str = "127.0.0.1"
    #: DNS port, UDP and TCP (0: any free port).
    port: int = attrs.field(default=53, validator=_port)
    #: Port of the HTTP API (``/v1/...``, ``/state``, ``/metrics``); 0: any free port.
    http_port: int = attrs.field(default=8123, validator=_port)
    #: TTL of the A and SRV records (seconds).
    ttl: int = attrs.field(default=60, validator=_positive)
    #: Publish only tasks whose latest status says they pass their health checks.
    healthy_only: bool = False
    #: Idle TCP connections are closed after this many seconds.
    timeout: float = attrs.field(default=5.0, validator=_positive)
    #: Most TCP connections served at once; more are closed at once.
    max_tcp_connections: int = attrs.field(default=256, validator=_positive)
    #: The SOA's primary name server and mailbox (default ``ns1.<domain>``, ``root.ns1.<domain>``).
    soa_mname: str = ""
    soa_rname: str = ""
    #: Longest wait between attempts to reach a leading master (seconds).
    max_backoff: float = attrs.field(default=2.0, validator=_positive)
    #: ``Authorization`` header value for the master's API when it authenticates
    #: (from ``MESOSLITE_PRINCIPAL`` / ``MESOSLITE_SECRET[_FILE]``); never shown.
    authorization: str = attrs.field(default="", repr=False)

    @property
    def mname(self) -> str:
        """The SOA's primary name server (and the apex's NS)."""
        return (self.soa_mname or f"ns1.{self.domain}").lower().rstrip(".")

    @property
    def rname(self) -> str:
        """The SOA's responsible mailbox, as a name."""
        return (self.soa_rname or f"root.ns1.{self.domain}").lower().rstrip(".")
