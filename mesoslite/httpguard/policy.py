"""Which HTTP requests a server refuses before any handler runs (PURE).

Owns :class:`RequestPolicy` and its :meth:`~RequestPolicy.check`, which returns a
:class:`Refusal` (status, field, message) or None, and the helpers it rests on:

- **Host** (every request; against DNS rebinding): an IP literal is always accepted
  (rebinding needs a name the attacker controls); a name must be one of the server's
  names: loopback names (``localhost``, ``*.localhost``), the advertised host name
  and the names given with ``--allowed_hosts`` (``*`` turns the check off).  403.
- **Origin** (writes: POST, PUT, PATCH, DELETE; against cross-site requests): when a
  browser sends ``Origin`` it must be this server (same scheme-less host and port as
  the ``Host`` header).  ``null`` or another site is 403 naming it.
- **Content-Type** (POST, PUT, PATCH, and a DELETE with a body): ``application/json``
  (or ``text/json``, ``application/<x>+json``).  A form or text body is what a
  cross-site HTML form can send without the browser asking first, so it is 415.  The
  endpoints Mesos defines as form posts (``form_paths``, e.g. ``/teardown``) take forms
  only when ``forms_allowed`` or writes are authenticated.
- **Authorization** (with an :class:`AuthPolicy`): HTTP Basic against Mesos-style
  credentials (:func:`parse_credentials`, or Marathon's ``user:password``,
  :func:`parse_user_password`); a request that needs credentials and lacks good ones is
  401 with ``WWW-Authenticate``.  Checked after Host, before Origin and Content-Type.
- **get_endpoints** (with :class:`~mesoslite.authz.Acls`): a GET of a path the ACLs
  guard by a principal they do not allow is 403 (checked after Authorization).

:func:`allowed_host_names` builds the set of names from a server's own names and the
``--allowed_hosts`` text.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from mesoslite.authz import Acls

#: Methods that change something: they need a same-origin request.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Methods whose body must be JSON (DELETE only when it carries a body).
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Names that always mean this machine.
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost",
                            "ip6-loopback"})
#: ``--allowed_hosts`` value that turns the Host check off.
ANY_HOST = "*"
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


@attrs.frozen
class Refusal:
    """A request refused: the status to answer, the header at fault, why, extra headers."""

    status: int
    field: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()


class CredentialsError(ValueError):
    """A credentials file or value that cannot be used (the message says why)."""


def parse_credentials(text: str, source: str = "credentials") -> dict[str, str]:
    """Mesos's JSON ``{"credentials": [{"principal": ..., "secret": ...}]}`` -> principal: secret.

    CredentialsError naming what is wrong (never showing a secret).
    """
    try:
        document: Any = json.loads(text)
    except ValueError as exc:
        raise CredentialsError(f"{source}: not JSON ({exc.args[0][:80]})") from None
    items = document.get("credentials") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        raise CredentialsError(f'{source}: expected {{"credentials": [{{"principal": ..., '
                               '"secret": ...}, ...]} with at least one entry')
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) - {"principal", "secret"}:
            raise CredentialsError(f"{source}: credentials[{i}]: expected an object with "
                                   "principal and secret only")
        principal, secret = item.get("principal"), item.get("secret")
        if not isinstance(principal, str) or not principal or ":" in principal:
            raise CredentialsError(f"{source}: credentials[{i}].principal: expected a "
                                   "non-empty name without ':'")
        if not isinstance(secret, str) or not secret:
            raise CredentialsError(f"{source}: credentials[{i}].secret: expected a "
                                   "non-empty string")
        out[principal] = secret
    return out


def parse_user_password(text: str, source: str = "http_credentials") -> dict[str, str]:
    """Marathon's ``user:password`` (several separated by commas) -> user: password."""
    out: dict[str, str] = {}
    for i, pair in enumerate(part for part in text.split(",") if part.strip()):
        user, sep, password = pair.strip().partition(":")
        if not sep or not user or not password:
            raise CredentialsError(f"{source}: item {i}: expected user:password")
        out[user] = password
    if not out:
        raise CredentialsError(f"{source}: expected user:password")
    return out


def basic_principal(authorization: str | None, credentials: Mapping[str, str]) -> str | None:
    """The principal an ``Authorization: Basic ...`` header proves, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    principal, sep, secret = decoded.partition(":")
    expected = credentials.get(principal)
    if not sep or expected is None:
        return None
    if not hmac.compare_digest(secret.encode(), expected.encode()):
        return None
    return principal


@attrs.frozen
class AuthPolicy:
    """HTTP Basic authentication: who may read (GET...) and who may write.

    ``readonly``/``readwrite``: whether reads/writes need credentials (Mesos's
    ``--authenticate_http_readonly``/``--authenticate_http_readwrite``).  ``open_paths``
    never do (health checks).
    """

    credentials: Mapping[str, str] = attrs.field(repr=False, eq=False)
    readonly: bool = True
    readwrite: bool = True
    realm: str = "mesos"
    open_paths: frozenset[str] = frozenset({"/health", "/version", "/ping",
                                            "/master/health", "/master/version",
                                            "/slave(1)/health", "/slave(1)/version"})

    def with_open(self, *paths: str) -> AuthPolicy:
        """This policy with ``paths`` open too."""
        return attrs.evolve(self, open_paths=self.open_paths | frozenset(paths))

    def check(self, method: str, path: str, authorization: str | None) -> Refusal | None:
        """401 with ``WWW-Authenticate`` when this request needs credentials it lacks."""
        write = method.upper() in WRITE_METHODS
        if len(path) > 1:
            path = path.rstrip("/")
        if not (self.readwrite if write else self.readonly) or path in self.open_paths:
            return None
        if basic_principal(authorization, self.credentials) is not None:
            return None
        why = "wrong credentials" if authorization else "credentials are required"
        return Refusal(401, "Authorization", f"{method.upper()} {path[:200]}: {why} (HTTP "
                       "Basic: a principal and its secret)",
                       (("WWW-Authenticate", f'Basic realm="{self.realm}"'),))


def split_host(value: str) -> tuple[str, int | None] | None:
    """``"name:80"``, ``"[::1]:80"``, ``"1.2.3.4"`` -> (host lower-cased, port); None: malformed."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    elif value.count(":") > 1:  # a bare IPv6 address (not valid in Host, but unambiguous)
        host, port_text = value, ""
    else:
        host, _, port_text = value.partition(":")
    port: int | None = None
    if port_text:
        if not port_text.isdigit() or len(port_text) > 5:
            return None
        port = int(port_text)
    host = host.lower().rstrip(".")
    if not host or any(c.isspace() or c in "/@\\" for c in host):
        return None
    return host, port


def is_ip_literal(host: str) -> bool:
    """True when ``host`` is an IPv4 or IPv6 address rather than a name."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def allowed_host_names(own_names: Iterable[str], extra: str = "") -> frozenset[str]:
    """Loopback names + the server's own names + ``extra`` (``--allowed_hosts``, comma list).

    ``*`` anywhere in ``extra`` gives ``{"*"}``: every Host is accepted.
    """
    given = [part.strip().lower().rstrip(".") for part in extra.split(",") if part.strip()]
    if ANY_HOST in given:
        return frozenset({ANY_HOST})
    names = set(LOOPBACK_NAMES)
    for name in (*own_names, *given):
        name = name.strip().lower().rstrip(".")
        if name and not is_ip_literal(name):
            names.add(name)
    return frozenset(names)


def media_type(content_type: str) -> str:
    """``"application/json; charset=utf-8"`` -> ``"application/json"``."""
    return content_type.split(";", 1)[0].strip().lower()


def is_json_type(content_type: str) -> bool:
    """True for ``application/json``, ``text/json`` and ``application/<something>+json``.

    (None of them is a type a cross-site form or a "simple" cross-site request can send.)
    """
    kind = media_type(content_type)
    return kind in ("application/json", "text/json") or (kind.startswith("application/")
                                                         and kind.endswith("+json"))


def _origin_host(origin: str) -> tuple[str, int] | None:
    """``"http://name:80"`` -> (name, 80); None when not a scheme://host[:port] origin."""
    scheme, sep, rest = origin.strip().partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS or "/" in rest:
        return None
    parsed = split_host(rest)
    if parsed is None:
        return None
    host, port = parsed
    return host, port if port is not None else _DEFAULT_PORTS[scheme]


@attrs.frozen
class RequestPolicy:
    """What a server refuses; see the module docstring.

    ``allowed_hosts``: lower-cased names (``{"*"}``: any).  ``form_paths``: paths that
    take form posts when ``forms_allowed``.
    """

    allowed_hosts: frozenset[str] = attrs.field(default=LOOPBACK_NAMES)
    form_paths: frozenset[str] = frozenset()
    forms_allowed: bool = False
    auth: AuthPolicy | None = None
    #: Mesos-style ACLs: their ``get_endpoints`` rules refuse GETs of guarded paths (403).
    acls: Acls | None = None

    def principal(self, authorization: str | None) -> str | None:
        """The principal ``authorization`` proves (None: none, or no credentials here)."""
        if self.auth is None:
            return None
        return basic_principal(authorization, self.auth.credentials)

    def host_allowed(self, host: str) -> bool:
        """True when a request naming ``host`` (no port) may be served."""
        return (ANY_HOST in self.allowed_hosts or is_ip_literal(host)
                or host in self.allowed_hosts or host.endswith(".localhost"))

    def check(self, method: str, path: str, *, host: str, origin: str | None,
              content_type: str, has_body: bool,
              authorization: str | None = None) -> Refusal | None:
        """The refusal for this request, or None to serve it."""
        parsed = split_host(host) if host else None
        if host and (parsed is None or not self.host_allowed(parsed[0])):
            return Refusal(403, "Host", f"Host {host[:100]!r} is not a name of this server; "
                           "add it with --allowed_hosts (a guard against DNS rebinding)")
        if self.auth is not None:
            refused = self.auth.check(method, path, authorization)
            if refused is not None:
                return refused
        method = method.upper()
        if method in ("GET", "HEAD") and self.acls is not None \
                and self.acls.guards_endpoint(path):
            principal = self.principal(authorization)
            if not self.acls.endpoint_authorized(path, principal):
                who = f"principal {principal!r}" if principal else "an unauthenticated request"
                return Refusal(403, "principal", f"{method} {path[:200]}: {who} is not "
                               "authorized to read this endpoint (get_endpoints ACL)")
        if method not in WRITE_METHODS:
            return None
        if origin is not None and not self._same_origin(origin, parsed):
            return Refusal(403, "Origin", f"cross-origin {method} refused: Origin "
                           f"{origin[:100]!r} is not this server ({host[:100]!r})")
        if method in BODY_METHODS or has_body:
            return self._check_type(method, path, content_type)
        return None

    def _same_origin(self, origin: str, host: tuple[str, int | None] | None) -> bool:
        theirs = _origin_host(origin)
        if theirs is None or host is None:
            return False
        name, port = host
        return theirs[0] == name and ((port is None and theirs[1] in (80, 443))
                                      or theirs[1] == port)

    def _check_type(self, method: str, path: str, content_type: str) -> Refusal | None:
        if is_json_type(content_type):
            return None
        kind = media_type(content_type) or "none"
        if path in self.form_paths and kind in _FORM_TYPES:
            if self.forms_allowed or (self.auth is not None and self.auth.readwrite):
                return None
            return Refusal(415, "Content-Type", f"{method} {path}: form posts are accepted "
                           "only with HTTP authentication on; send application/json")
        return Refusal(415, "Content-Type", f"{method} {path[:200]}: Content-Type {kind[:80]!r} "
                       "refused: writes need Content-Type: application/json")
