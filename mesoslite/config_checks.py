"""Config checks: the validators every configuration class uses, and the error they raise (PURE).

Owns :class:`ConfigError`, a ``ValueError`` that carries the ``field`` (its
command-line spelling is :attr:`ConfigError.flag`, ``--field``), the ``value``
given and what was ``expected``; and :class:`Check`, an attrs validator that
knows what it expects.  The master's, the agent's and the Marathon-style
framework's config classes take their validators from here, so the three
agree on what a duration, a port or an address is, and the CLI reports
``--flag: expected ..., got ...`` from the error itself.

The checks:

- numbers (finite: ``inf`` and ``nan`` are refused): :data:`positive_seconds`,
  :data:`non_negative_seconds`, :data:`positive_number`,
  :data:`non_negative_number`, :func:`integer` (with bounds), :data:`port`;
- words: :data:`text`, :func:`nonempty`, :data:`boolean`, :func:`one_of`,
  :func:`comma_list` (of given choices), :data:`absolute_paths`;
- addresses: :data:`host`, :data:`ip_address`, :data:`host_port`,
  :data:`master_address`, :data:`zk_url`;
- resources in Mesos text: :data:`resources_text`, :data:`resource_alternatives`
  (parsed by :func:`parse_resource_alternatives`);
- :func:`optional` (``None`` or what another check accepts).

Use one as ``attrs.field(validator=positive_seconds)``, or directly as
``positive_seconds.check("field", value)``.
"""

from __future__ import annotations

import ipaddress
import math
import posixpath
import re
from collections.abc import Callable
from typing import Any, Final

import attrs

from mesoslite.resources import Resources

__all__ = [
    "ALLOWED_HOSTS_HELP",
    "NO_VALUE",
    "Check",
    "ConfigError",
    "absolute_paths",
    "boolean",
    "comma_list",
    "host",
    "host_names",
    "host_port",
    "integer",
    "ip_address",
    "mask_secrets",
    "master_address",
    "non_negative_number",
    "non_negative_seconds",
    "nonempty",
    "one_of",
    "optional",
    "parse_resource_alternatives",
    "port",
    "positive_number",
    "positive_seconds",
    "resource_alternatives",
    "resources_text",
    "split_comma_list",
    "text",
    "zk_url",
]


class _NoValue:
    """The type of :data:`NO_VALUE`."""

    def __repr__(self) -> str:
        return "NO_VALUE"


#: ``ConfigError.value`` when the error is about no single value (a rule over several fields).
NO_VALUE: Final = _NoValue()


class ConfigError(ValueError):
    """A configuration value is invalid.

    ``field`` names the config field (:attr:`flag` is the flag, ``--field``),
    ``value`` is what was given and ``expected`` what a valid value looks
    like; ``detail`` says why, when a parser knows.  The text reads
    ``field: expected <expected>, got <value!r> (<detail>)``.  Without a
    ``value`` (:data:`NO_VALUE`), ``expected`` is the whole explanation:
    ``field: <expected>``.
    """

    def __init__(self, field: str, expected: str, value: Any = NO_VALUE, *,
                 detail: str = "") -> None:
        self.field = field
        self.expected = expected
        self.value = value
        self.detail = detail
        super().__init__(f"{field}: {self.problem}")

    @property
    def flag(self) -> str:
        """The command-line flag of the field: ``--field``."""
        return f"--{self.field}"

    @property
    def problem(self) -> str:
        """The text after ``field: ``: what was expected and what was given."""
        if self.value is NO_VALUE:
            said = self.expected
        else:
            said = f"expected {self.expected}, got {_masked(self.value)!r}"
        return f"{said} ({self.detail})" if self.detail else said


#: ``scheme://user:password@`` in a URL: the password is never shown in an error.
_URL_PASSWORD = re.compile(r"(://[^:/@]*):[^@/]*@")


def mask_secrets(text: str) -> str:
    """``text`` with every URL password (``zk://user:password@…``) replaced by ``***``.

    Every flag dump, ``/state`` document and log line that shows a URL goes through this.
    """
    return _URL_PASSWORD.sub(r"\1:***@", text)


def _masked(value: Any) -> Any:
    """``value`` with any URL password replaced by ``***`` (errors end up in logs)."""
    if isinstance(value, str):
        return mask_secrets(value)
    return value


@attrs.frozen
class Check:
    """An attrs validator: ``accepts(value)`` must be true, else :class:`ConfigError`.

    ``accepts`` may raise ``ValueError``: its text becomes the error's
    ``detail`` (a :class:`ConfigError` it raises goes out unchanged).
    """

    expected: str
    accepts: Callable[[Any], object] = attrs.field(repr=False)

    def __call__(self, _instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        """Validate ``value`` of ``attribute`` (the attrs validator signature)."""
        self.check(attribute.name, value)

    def check(self, field: str, value: Any) -> None:
        """Raise :class:`ConfigError` naming ``field`` unless ``value`` is accepted."""
        try:
            accepted = self.accepts(value)
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(field, self.expected, value, detail=str(exc)) from None
        if not accepted:
            raise ConfigError(field, self.expected, value)


# ------------------------------------------------------------------ numbers
def _finite(value: Any) -> bool:
    """A real number (not a bool), neither infinite nor NaN."""
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and math.isfinite(value))


#: A duration in seconds, > 0.
positive_seconds: Final = Check("a finite number of seconds > 0",
                                lambda v: _finite(v) and v > 0)
#: A duration in seconds, >= 0.
non_negative_seconds: Final = Check("a finite number of seconds >= 0",
                                    lambda v: _finite(v) and v >= 0)
#: A factor or size, > 0.
positive_number: Final = Check("a finite number > 0", lambda v: _finite(v) and v > 0)
#: A factor or size, >= 0.
non_negative_number: Final = Check("a finite number >= 0", lambda v: _finite(v) and v >= 0)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(minimum: int = 0, maximum: int | None = None) -> Check:
    """An integer in ``minimum``-``maximum`` (no upper bound when ``maximum`` is None)."""
    if maximum is None:
        return Check(f"an integer >= {minimum}", lambda v: _is_int(v) and v >= minimum)
    return Check(f"an integer in {minimum}-{maximum}",
                 lambda v: _is_int(v) and minimum <= v <= maximum)


#: A TCP port to listen on; 0 asks for any free one.
port: Final = Check("a port in 0-65535 (0 = any)", lambda v: _is_int(v) and 0 <= v <= 65535)


# -------------------------------------------------------------------- words
#: Any text (empty included) without NUL bytes.
text: Final = Check("text without NUL bytes", lambda v: isinstance(v, str) and "\x00" not in v)

#: ``True`` or ``False`` (the CLI turns true/false, yes/no, on/off, 1/0 into one).
boolean: Final = Check("true or false", lambda v: isinstance(v, bool))


def nonempty(what: str) -> Check:
    """Non-empty text without NUL bytes; ``what`` says what it is (``"a directory path"``)."""
    return Check(what, lambda v: isinstance(v, str) and bool(v) and "\x00" not in v)


def one_of(*choices: str) -> Check:
    """Exactly one of ``choices``."""
    return Check(f"one of {', '.join(choices)}", lambda v: v in choices)


def split_comma_list(value: str) -> tuple[str, ...]:
    """The items of ``"a, b,,c"``: stripped, empty ones dropped, in order."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


def comma_list(*choices: str, what: str = "", allow_empty: bool = False) -> Check:
    """A comma list of items among ``choices`` (``what`` names one item in the error)."""
    def accepts(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        items = split_comma_list(value)
        unknown = [item for item in items if item not in choices]
        if unknown:
            raise ValueError(f"unknown {what + ' ' if what else ''}{unknown[0]!r}")
        return allow_empty or bool(items)

    lead = "a comma list of some of" if allow_empty else "a comma list of"
    return Check(f"{lead} {', '.join(choices)}", accepts)


def _absolute_paths(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    relative = [p for p in split_comma_list(value) if not posixpath.isabs(p)]
    if relative:
        raise ValueError(f"{relative[0]!r} is not absolute")
    return True


#: A comma list of absolute paths (empty: none).
absolute_paths: Final = Check("a comma list of absolute paths", _absolute_paths)


# ---------------------------------------------------------------- addresses
def _is_host(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not any(c.isspace() or c == "\x00"
                                                              for c in value)


#: An IP address or a host name (not empty, no spaces).
host: Final = Check("an IP address or host name", _is_host)

_HOST_NAME = re.compile(r"^(\*|[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252}))$")


def _is_host_names(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    bad = [name for name in split_comma_list(value) if not _HOST_NAME.match(name)]
    if bad:
        raise ValueError(f"{bad[0][:80]!r} is not a host name")
    return True


#: The help of every server's ``--allowed_hosts``.
ALLOWED_HOSTS_HELP: Final = (
    "host names a request's Host may name besides loopback names, this machine's names "
    "and the advertised name, comma list (* = any; IP addresses are always accepted); "
    "a guard against DNS rebinding")

#: A comma list of host names, or ``*`` (empty: none).
host_names: Final = Check("a comma list of host names, or *", _is_host_names)


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


#: An IPv4 or IPv6 address.
ip_address: Final = Check("an IP address", _is_ip)


def _is_host_port(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    name, sep, number = value.rpartition(":")
    return bool(sep) and _is_host(name) and number.isdigit() and 0 < int(number) <= 65535


#: ``host:port`` with a port in 1-65535.
host_port: Final = Check("host:port", _is_host_port)


def _is_zk_url(value: Any) -> bool:
    """``zk://[user:pass@]host[:port][,...]/path`` in shape; the coordination layer parses it."""
    if not isinstance(value, str) or not value.startswith("zk://"):
        return False
    hosts, slash, path = value.removeprefix("zk://").partition("/")
    return bool(slash) and _is_host(hosts.rpartition("@")[2]) and path not in ("", "/")


#: Empty (no ZooKeeper) or ``zk://host1:2181,host2:2181/path``.
zk_url: Final = Check("zk://host1:2181,host2:2181/path (a path other than '/') or empty",
                      lambda v: v == "" or _is_zk_url(v))


def _is_master_address(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if value.startswith("zk://"):
        return _is_zk_url(value)
    return _is_host_port(value.removeprefix("tcp://"))


#: Where the leading master is: ``host:port``, ``tcp://host:port`` or a ``zk://`` URL.
master_address: Final = Check("host:port, tcp://host:port or zk://host:2181/path",
                              _is_master_address)


# ---------------------------------------------------------------- resources
#: Resources in Mesos text (empty: none), e.g. ``cpus:2;mem:1024;ports:[31000-32000]``.
resources_text: Final = Check(
    "resources like 'cpus:2;mem:1024;ports:[31000-32000]'",
    lambda v: isinstance(v, str) and Resources.parse(v) is not None,
)


def parse_resource_alternatives(value: str) -> tuple[Resources, ...]:
    """Parse ``"cpus:0.01|mem:32"``: alternatives separated by ``|`` (ValueError if bad)."""
    return tuple(Resources.parse(part.strip()) for part in value.split("|") if part.strip())


#: Resource alternatives separated by ``|``, e.g. ``cpus:0.01|mem:32``.
resource_alternatives: Final = Check(
    "resource alternatives like 'cpus:0.01|mem:32'",
    lambda v: isinstance(v, str) and parse_resource_alternatives(v) is not None,
)


def optional(check: Check) -> Check:
    """``None`` (unset), or what ``check`` accepts."""
    return Check(f"{check.expected} (or none)", lambda v: v is None or check.accepts(v))
