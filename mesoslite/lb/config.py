"""The load balancer's configuration (PURE).

Owns: :class:`LbConfig`, every ``mesoslite lb`` flag with marathon-lb's defaults where it
has one (group ``external``, HTTP 80, HTTPS 443, stats 9090, app-id routing 9091),
validated on construction (a bad value raises
:class:`~mesoslite.config_checks.ConfigError` naming the field).
"""

from __future__ import annotations

import re

import attrs

from mesoslite import config_checks as checks
from mesoslite.config_checks import ConfigError

_URL = re.compile(r"^https?://[A-Za-z0-9._:\[\]-]+(/.*)?$")
_url = checks.Check("an http:// or https:// URL of the framework",
                    lambda v: isinstance(v, str) and bool(_URL.match(v)))
_group = checks.Check("a group name (letters, digits, . _ -) or *",
                      lambda v: isinstance(v, str) and bool(re.match(r"^(\*|[\w.-]{1,64})$", v)))


@attrs.frozen
class LbConfig:
    """Every ``mesoslite lb`` flag; durations are float seconds, port 0 means any free one
    (``api_port`` only: haproxy's ports must be known to clients)."""

    marathon: str = attrs.field(
        default="http://127.0.0.1:8080", validator=_url,
        metadata={"help": "the Marathon-style framework's URL (a standby redirects)"})
    group: str = attrs.field(
        default="external", validator=_group,
        metadata={"help": "serve apps whose HAPROXY_GROUP label lists this group (* for all)"})
    bind_address: str = attrs.field(default="127.0.0.1", validator=checks.ip_address,
                                    metadata={"help": "address haproxy binds"})
    http_port: int = attrs.field(default=80, validator=checks.integer(1, 65535),
                                 metadata={"help": "shared port routing HAPROXY_n_VHOST hosts"})
    https_port: int = attrs.field(default=443, validator=checks.integer(1, 65535),
                                  metadata={"help": "shared TLS port (HAPROXY_n_SSL_CERT)"})
    stats_port: int = attrs.field(default=9090, validator=checks.integer(1, 65535),
                                  metadata={"help": "haproxy's stats page (/haproxy?stats)"})
    appid_port: int = attrs.field(
        default=9091, validator=checks.integer(1, 65535),
        metadata={"help": "port routing HTTP requests by their X-Marathon-App-Id header"})
    api_port: int = attrs.field(
        default=9092, validator=checks.port,
        metadata={"help": "the balancer's own API: /lookup?host=, maps, /state, /metrics"})
    haproxy_bin: str = attrs.field(default="haproxy", validator=checks.nonempty("a program"))
    work_dir: str = attrs.field(
        default="/tmp/mesoslite/lb", validator=checks.nonempty("a directory path"),
        metadata={"help": "where haproxy.cfg and haproxy.pid are kept"})
    debounce: float = attrs.field(
        default=0.2, validator=checks.non_negative_seconds,
        metadata={"help": "seconds to let a burst of events settle before re-reading apps"})
    min_reload_interval: float = attrs.field(
        default=1.0, validator=checks.non_negative_seconds,
        metadata={"help": "at most one haproxy reload per this many seconds (coalesced)"})
    resync_interval: float = attrs.field(
        default=60.0, validator=checks.positive_seconds,
        metadata={"help": "re-read the apps at least this often, events or not"})
    event_silence: float = attrs.field(
        default=300.0, validator=checks.positive_seconds,
        metadata={"help": "reopen the event stream after this long without a byte"})
    hard_stop_after: float = attrs.field(
        default=30.0, validator=checks.positive_seconds,
        metadata={"help": "a replaced haproxy process ends its connections within this"})
    keep_haproxy: bool = attrs.field(
        default=False, validator=checks.boolean,
        metadata={"help": "leave haproxy running when the balancer stops"})

    def __attrs_post_init__(self) -> None:
        """The listeners must not share a port."""
        ports = {"http_port": self.http_port, "https_port": self.https_port,
                 "stats_port": self.stats_port, "appid_port": self.appid_port}
        if self.api_port:
            ports["api_port"] = self.api_port
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if port in seen:
                raise ConfigError(name, f"a port other than {seen[port]}'s", port)
            seen[port] = name
