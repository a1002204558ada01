"""ZooKeeper URLs and static master addresses (PURE).

Owns: parsing and validating ``zk://[user:pass@]host1:2181,host2:2181/path``
(the ``--zk`` / ``--master`` flag syntax of Mesos) into a :class:`ZkUrl`, and
``host:port`` / ``tcp://host:port`` into a ``(host, port)`` pair for
standalone mode.  Every error is a :class:`ValueError` that names the part of
the URL that is wrong, the value found and what was expected.
"""

from __future__ import annotations

import re

import attrs

#: ZooKeeper's client port when a host in a ``zk://`` URL names none.
DEFAULT_ZK_PORT = 2181

_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9\-_.]{0,251}[A-Za-z0-9])?$")
_IPV6_RE = re.compile(r"^[0-9A-Fa-f:.]+$")


def _repr_secret(value: str) -> str:
    return "'***'" if value else "''"


@attrs.frozen
class ZkUrl:
    """A parsed ``zk://`` URL: the ensemble, the znode path and optional digest credentials."""

    hosts: tuple[tuple[str, int], ...]
    path: str
    username: str = ""
    password: str = attrs.field(default="", repr=_repr_secret)

    @property
    def hosts_string(self) -> str:
        """The ensemble as kazoo wants it: ``h1:2181,h2:2181`` (IPv6 hosts in brackets)."""
        return ",".join(f"{_bracket(host)}:{port}" for host, port in self.hosts)

    @property
    def auth_data(self) -> list[tuple[str, str]]:
        """kazoo ``auth_data``: a digest credential when the URL carries one, else empty."""
        if not self.username:
            return []
        return [("digest", f"{self.username}:{self.password}")]

    def with_path(self, path: str) -> ZkUrl:
        """The same ensemble and credentials with another (validated) znode path."""
        return attrs.evolve(self, path=_check_path(path))

    def __str__(self) -> str:
        """The URL with the password masked (safe for logs)."""
        cred = f"{self.username}:***@" if self.username else ""
        return f"zk://{cred}{self.hosts_string}{self.path}"

    def unmasked(self) -> str:
        """The full URL including the password (for handing to another process)."""
        cred = f"{self.username}:{self.password}@" if self.username else ""
        return f"zk://{cred}{self.hosts_string}{self.path}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _check_port(text: str, where: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 65535:
        raise ValueError(f"{where}: invalid port {text!r}, expected an integer in 1-65535")
    return int(text)


def _check_host(host: str, where: str) -> str:
    if ":" in host:
        if not _IPV6_RE.match(host):
            raise ValueError(f"{where}: invalid IPv6 address {host!r}")
        return host
    if not _HOSTNAME_RE.match(host):
        raise ValueError(
            f"{where}: invalid host {host!r}, expected a hostname or an IP address"
        )
    return host


def _split_host_port(item: str, where: str, default_port: int | None) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` → (host, port)."""
    if item.startswith("["):
        end = item.find("]")
        if end < 0:
            raise ValueError(f"{where}: unterminated '[' in {item!r}, expected [ipv6]:port")
        host, rest = item[1:end], item[end + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{where}: unexpected {rest!r} after ']' in {item!r}")
        port_text = rest[1:] if rest else ""
    else:
        host, sep, port_text = item.partition(":")
        if sep and not port_text:
            raise ValueError(f"{where}: empty port in {item!r}, expected host:port")
    if not host:
        raise ValueError(f"{where}: empty host in {item!r}, expected host:port")
    _check_host(host, where)
    if not port_text:
        if default_port is None:
            raise ValueError(f"{where}: missing port in {item!r}, expected host:port")
        return host, default_port
    return host, _check_port(port_text, where)


def _check_path(path: str) -> str:
    """ZooKeeper path rules, plus: not the root (a master group needs its own directory)."""
    if not path.startswith("/"):
        raise ValueError(f"path: {path!r} must start with '/'")
    if path == "/":
        raise ValueError("path: '/' (the root) is not allowed; expected e.g. '/mesoslite'")
    if path.endswith("/"):
        raise ValueError(f"path: {path!r} must not end with '/'")
    for part in path[1:].split("/"):
        if part in ("", ".", ".."):
            raise ValueError(
                f"path: {path!r} has an empty, '.' or '..' component; expected /a/b"
            )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise ValueError(f"path: {path!r} contains control characters")
    return path


def parse_zk_url(text: str) -> ZkUrl:
    """Parse ``zk://[user:pass@]h1[:port],h2[:port]/path``; ValueError naming the bad part."""
    if not isinstance(text, str):
        raise TypeError(f"zk url: expected a string, got {type(text).__name__}")
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError(f"scheme: {text!r} has no scheme, expected zk://host:port/path")
    if scheme != "zk":
        raise ValueError(f"scheme: expected 'zk', got {scheme!r} in {text!r}")
    slash = rest.find("/")
    if slash < 0:
        raise ValueError(f"path: {text!r} has no path, expected zk://host:port/path")
    authority, path = rest[:slash], rest[slash:]
    username = password = ""
    if "@" in authority:
        cred, _, authority = authority.rpartition("@")
        username, colon, password = cred.partition(":")
        if not colon or not username or not password:
            raise ValueError("credentials: expected user:password before '@' (both non-empty)")
    if not authority:
        raise ValueError(f"hosts: {text!r} names no host, expected zk://host:port/path")
    hosts = tuple(
        _split_host_port(item, f"hosts[{i}]", DEFAULT_ZK_PORT)
        for i, item in enumerate(authority.split(","))
    )
    return ZkUrl(hosts=hosts, path=_check_path(path), username=username, password=password)


def parse_host_port(text: str) -> tuple[str, int]:
    """Parse a standalone master address ``host:port`` or ``tcp://host:port``."""
    if not isinstance(text, str):
        raise TypeError(f"master address: expected a string, got {type(text).__name__}")
    item = text
    if "://" in text:
        scheme, _, item = text.partition("://")
        if scheme != "tcp":
            raise ValueError(f"scheme: expected 'tcp' (or none), got {scheme!r} in {text!r}")
    if "/" in item or "," in item:
        raise ValueError(f"master address: expected host:port, got {text!r}")
    return _split_host_port(item, "master address", None)


def is_zk_url(text: str) -> bool:
    """True when ``text`` looks like a ``zk://`` URL (it may still be invalid)."""
    return isinstance(text, str) and text.startswith("zk://")
