"""Tornado HTTP servers that refuse what :mod:`.policy` refuses and survive floods.

Owns:

- :class:`GuardedHTTPServer`: an ``HTTPServer`` whose every request first passes the
  :class:`~mesoslite.httpguard.policy.RequestPolicy` (refused requests are answered
  with a JSON ``{"message", "field"}`` and never reach a handler, so routes added later
  are covered too); at most ``max_connections`` open connections (the cap is also kept
  below half the process's file-descriptor limit): a new client at the cap makes the
  longest-idle connection close, or, when every connection is busy, is answered 503; idle
  clients and clients slow to send headers or bodies are closed (``idle_timeout``,
  ``body_timeout``); running out of file descriptors pauses accepting for a moment
  instead of spinning, and every such error is logged at most once per
  :data:`LOG_INTERVAL` with a count.
- :func:`guard`: the same check as a connection delegate around any application, for
  a server built elsewhere.
- :func:`raise_nofile_limit`: the soft ``RLIMIT_NOFILE`` raised to the hard limit
  (every server's ``main`` calls it at start; :class:`GuardedHTTPServer` calls it too).
- :func:`own_names`: this machine's host names (what the Host check accepts by default
  besides the loopback names and the advertised name); :func:`server_policy` builds a
  server's policy from them; :func:`load_auth` reads Mesos's credentials file;
  :func:`forwarded_authorization` is the ``Authorization`` of the request being handled
  (the master's proxy passes it on to its agents); :func:`request_principal` is the
  principal it authenticated as (what the ACL checks of the handlers use).
"""

from __future__ import annotations

import contextvars
import errno
import ipaddress
import json
import logging
import resource
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.ioloop

from mesoslite.authz import Acls
from mesoslite.httpguard.policy import (
    AuthPolicy,
    CredentialsError,
    Refusal,
    RequestPolicy,
    allowed_host_names,
    parse_credentials,
)

log = logging.getLogger("mesoslite.http")

#: Default cap on open connections per server.
MAX_CONNECTIONS = 1000
#: Seconds an idle keep-alive connection (or one still sending its headers) stays open.
IDLE_TIMEOUT = 60.0
#: Seconds a client may take to send a request body.
BODY_TIMEOUT = 60.0
#: Seconds between two log lines about the same kind of trouble.
LOG_INTERVAL = 10.0
#: Seconds accepting pauses after the process ran out of file descriptors.
ACCEPT_PAUSE = 0.5
#: accept() errors that mean "out of resources", not "this one connection failed".
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
         b"Connection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s")


_AUTHORIZATION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mesoslite_http_authorization", default=None)


_PRINCIPAL: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mesoslite_http_principal", default=None)


def request_principal() -> str | None:
    """The principal the request being handled authenticated as (None: nobody).

    Set by the guard for every request it passes on (HTTP Basic against the server's
    credentials); what the handlers' ACL checks (teardown, weights, views, sandboxes) use.
    """
    return _PRINCIPAL.get()


def forwarded_authorization() -> str | None:
    """The ``Authorization`` header of the request being handled (for a proxy to pass on)."""
    return _AUTHORIZATION.get()


def raise_nofile_limit() -> int:
    """Raise the soft file-descriptor limit to the hard one; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, exc)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def own_names() -> list[str]:
    """This machine's host name and fully qualified name."""
    names = [socket.gethostname()]
    try:
        names.append(socket.getfqdn())
    except OSError:
        pass
    return names


def server_policy(advertised: Iterable[str], allowed_hosts: str = "",
                  form_paths: Iterable[str] = (), forms_allowed: bool = False,
                  auth: AuthPolicy | None = None, acls: Acls | None = None) -> RequestPolicy:
    """The policy of a server advertised as ``advertised`` names, with ``--allowed_hosts``."""
    names = allowed_host_names([*own_names(), *advertised], allowed_hosts)
    return RequestPolicy(names, frozenset(form_paths), forms_allowed, auth,
                         None if acls is None or acls.empty else acls)


def load_auth(readonly: bool, readwrite: bool, credentials_path: str) -> AuthPolicy | None:
    """Mesos's ``--authenticate_http_readonly/readwrite`` and ``--credentials FILE``.

    None when neither kind of request is authenticated; OSError (naming the file and the
    flag) when the file cannot be read or is not Mesos's credentials JSON.
    """
    if not (readonly or readwrite):
        return None
    if not credentials_path:
        raise OSError(errno.EINVAL, "--authenticate_http_readonly/readwrite need "
                                    "--credentials FILE")
    try:
        with open(credentials_path, encoding="utf-8") as f:
            credentials = parse_credentials(f.read(), f"--credentials {credentials_path}")
    except (OSError, UnicodeDecodeError) as exc:
        raise OSError(errno.EINVAL, f"--credentials {credentials_path}: cannot read it "
                                    f"({exc})") from None
    except CredentialsError as exc:
        raise OSError(errno.EINVAL, str(exc)) from None
    return AuthPolicy(credentials, readonly=readonly, readwrite=readwrite)


class RateLimitedLog:
    """Log a recurring problem at most once per ``interval`` seconds, with a count."""

    def __init__(self, logger: logging.Logger, interval: float = LOG_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def report(self, key: str, message: str, *args: Any) -> None:
        """Log ``message`` unless ``key`` was logged less than ``interval`` ago."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += " (and %d more like it since the last report)"
            args = (*args, suppressed)
        self.logger.warning(message, *args)


class _GuardedMessage(tornado.httputil.HTTPMessageDelegate):
    """One request: checked when its headers arrive; a refused one never reaches the app."""

    def __init__(self, inner: tornado.httputil.HTTPMessageDelegate,
                 connection: tornado.httputil.HTTPConnection, guard: _Guard,
                 server_conn: object) -> None:
        self.inner = inner
        self.connection = connection
        self.policy = guard.policy
        self.logs = guard.logs
        self.guard = guard
        self.server_conn = server_conn
        self.refusal: Refusal | None = None

    def headers_received(self, start_line: Any, headers: tornado.httputil.HTTPHeaders) -> Any:
        """Check the request line and headers; pass them on unless refused."""
        self.guard.idle.pop(self.server_conn, None)  # a request arrived: busy until answered
        method = getattr(start_line, "method", "GET")
        path = getattr(start_line, "path", "/").split("?", 1)[0]
        length = headers.get("Content-Length", "")
        has_body = (length not in ("", "0")
                    or "chunked" in headers.get("Transfer-Encoding", "").lower())
        # The request's handler runs in a task copied from this connection's context: the
        # master's proxy to its agents passes the same credentials on (forwarded_authorization).
        _AUTHORIZATION.set(headers.get("Authorization"))
        _PRINCIPAL.set(self.policy.principal(headers.get("Authorization")))
        self.refusal = self.policy.check(
            method, path, host=headers.get("Host", ""), origin=headers.get("Origin"),
            content_type=headers.get("Content-Type", ""), has_body=has_body,
            authorization=headers.get("Authorization"))
        if self.refusal is None:
            return self.inner.headers_received(start_line, headers)
        remote = getattr(getattr(self.connection, "context", None), "remote_ip", "?")
        self.logs.report(f"refused-{self.refusal.field}", "refused %s %s from %s: %d %s",
                          method, path[:200], remote, self.refusal.status,
                          self.refusal.message)
        return None

    def data_received(self, chunk: bytes) -> Any:
        """Drop a refused request's body; pass the others' on."""
        if self.refusal is None:
            return self.inner.data_received(chunk)
        return None

    def finish(self) -> None:
        """Answer a refused request; let the app finish the others."""
        if self.refusal is None:
            self.inner.finish()
            return
        refusal = self.refusal
        body = json.dumps({"message": refusal.message, "field": refusal.field}).encode()
        headers = tornado.httputil.HTTPHeaders({
            "Content-Type": "application/json; charset=utf-8",
            "Content-Length": str(len(body)),
        })
        for name, value in refusal.headers:
            headers[name] = value
        reason = tornado.httputil.responses.get(refusal.status, "Refused")
        start = tornado.httputil.ResponseStartLine("HTTP/1.1", refusal.status, reason)
        self.connection.write_headers(start, headers, body)
        self.connection.finish()

    def on_connection_close(self) -> None:
        """Tell the app, unless it never saw this request."""
        if self.refusal is None:
            self.inner.on_connection_close()


class _Guard(tornado.httputil.HTTPServerConnectionDelegate):
    """Wraps an application: each request goes through :class:`_GuardedMessage`.

    Also knows which connections are idle (waiting for a request's headers) and since
    when, so a server at its connection cap can close the longest-idle one.
    """

    def __init__(self, inner: tornado.httputil.HTTPServerConnectionDelegate,
                 policy: RequestPolicy, logs: RateLimitedLog) -> None:
        self.inner = inner
        self.policy = policy
        self.logs = logs
        self.idle: dict[object, float] = {}

    def start_request(self, server_conn: object,
                      request_conn: tornado.httputil.HTTPConnection
                      ) -> tornado.httputil.HTTPMessageDelegate:
        """A guarded delegate around the application's own (the connection waits: idle)."""
        self.idle[server_conn] = time.monotonic()
        inner = self.inner.start_request(server_conn, request_conn)
        return _GuardedMessage(inner, request_conn, self, server_conn)

    def on_close(self, server_conn: object) -> None:
        """Pass the close on."""
        self.idle.pop(server_conn, None)
        self.inner.on_close(server_conn)

    def oldest_idle(self) -> object | None:
        """The connection idle for the longest time, if any."""
        return min(self.idle, key=self.idle.__getitem__) if self.idle else None


def guard(app: tornado.httputil.HTTPServerConnectionDelegate, policy: RequestPolicy
          ) -> tornado.httputil.HTTPServerConnectionDelegate:
    """``app`` behind ``policy``: pass the result to any ``HTTPServer``."""
    return _Guard(app, policy, RateLimitedLog(log))


class GuardedHTTPServer(tornado.httpserver.HTTPServer):
    """An ``HTTPServer`` behind a :class:`RequestPolicy`, with connection and fd limits."""

    def initialize(self, request_callback: Any,  # type: ignore[override]
                   policy: RequestPolicy | None = None, *,
                   max_connections: int = MAX_CONNECTIONS,
                   idle_timeout: float = IDLE_TIMEOUT, body_timeout: float = BODY_TIMEOUT,
                   **kwargs: Any) -> None:
        """``request_callback``: the application; other keywords go to ``HTTPServer``."""
        self.logs = RateLimitedLog(log)
        fd_limit = raise_nofile_limit()
        self.max_connections = max(8, min(max_connections, fd_limit // 2))
        self.refused_connections = 0
        self.evicted_connections = 0
        self.guard = _Guard(request_callback, policy or RequestPolicy(), self.logs)
        super().initialize(self.guard, idle_connection_timeout=idle_timeout,
                           body_timeout=body_timeout, **kwargs)

    @property
    def open_connections(self) -> int:
        """Connections open now."""
        return len(self._connections)

    def add_sockets(self, sockets: Any) -> None:
        """Accept on ``sockets`` with an accept loop that survives running out of fds.

        Warns when one listens beyond loopback and nothing authenticates the requests.
        """
        for sock in sockets:
            address = sock.getsockname()[0] if sock.family in (socket.AF_INET,
                                                               socket.AF_INET6) else ""
            if address and self.guard.policy.auth is None and not _loopback(address):
                log.warning("HTTP on %s:%s is reachable beyond this machine and no request is "
                            "authenticated: anyone who reaches it can act on the cluster "
                            "(see --authenticate_http_readonly/readwrite, --credentials, "
                            "--http_credentials)", address, sock.getsockname()[1])
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = _accept_forever(sock, self._accept, self.logs)

    def _accept(self, connection: socket.socket, address: Any) -> None:
        if len(self._connections) >= self.max_connections:
            victim = self.guard.oldest_idle()
            if victim is not None:  # make room: the longest-idle client goes
                self.guard.idle.pop(victim, None)
                self.evicted_connections += 1
                self.logs.report("evict", "%d connections open (the cap): closed the "
                                 "longest-idle one", len(self._connections))
                victim.stream.close()  # type: ignore[attr-defined]
                self._handle_connection(connection, address)
                return
            self.refused_connections += 1
            self.logs.report("cap", "refused a connection from %s: %d connections open "
                              "(the cap)", address, len(self._connections))
            body = json.dumps({"message": f"too many connections (cap "
                                          f"{self.max_connections}); retry shortly",
                               "field": ""}).encode()
            try:
                connection.setblocking(False)
                connection.send(_BUSY % (len(body), body))
            except OSError:
                pass
            connection.close()
            return
        self._handle_connection(connection, address)


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _accept_forever(sock: socket.socket, callback: Callable[[socket.socket, Any], None],
                    logs: RateLimitedLog) -> Callable[[], None]:
    """Like tornado's accept handler, but EMFILE & co. pause accepting instead of spinning."""
    loop = tornado.ioloop.IOLoop.current()
    state: dict[str, Any] = {"removed": False, "listening": True, "timer": None}

    def resume() -> None:
        state["timer"] = None
        if not state["removed"] and not state["listening"]:
            state["listening"] = True
            loop.add_handler(sock, on_readable, tornado.ioloop.IOLoop.READ)

    def on_readable(_fd: Any, _events: int) -> None:
        for _ in range(128):
            if state["removed"]:
                return
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    logs.report(f"accept-{exc.errno}", "accept failed: %s", exc)
                    return
                logs.report("accept-resources", "cannot accept connections: %s; pausing "
                             "%.1f s", exc.strerror, ACCEPT_PAUSE)
                loop.remove_handler(sock)
                state["listening"] = False
                state["timer"] = loop.call_later(ACCEPT_PAUSE, resume)
                return
            callback(connection, address)

    def remove() -> None:
        state["removed"] = True
        if state["timer"] is not None:
            loop.remove_timeout(state["timer"])
        if state["listening"]:
            loop.remove_handler(sock)

    loop.add_handler(sock, on_readable, tornado.ioloop.IOLoop.READ)
    return remove
