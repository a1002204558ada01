"""The common ground of the Marathon REST API handlers (tornado).

Owns: :class:`ApiHandler` (JSON answers, Marathon-shaped JSON errors for
every exception, the request-body checks, query-argument parsing and the
standby behaviour: a standby forwards the request to the leader and relays
its answer), :class:`ApiError`, :func:`normalize_id` and
:func:`deployment_result`.

Errors are ``{"message": ..., "details": [...]}``; facade errors keep their
status (404 unknown ids, 409 locked with ``"deployments": [{"id"}]``, 422
invalid definitions); anything unexpected is logged and answered 500 with a
JSON body.
"""

from __future__ import annotations

import errno
import json
import logging
import re
from typing import Any

import tornado.httpclient
import tornado.web

from frameworks.marathon.facade import AppLocked, NotLeader, ServiceError, ServiceFacade
from frameworks.marathon.wire.render import deployment_ref

log = logging.getLogger(__name__)

#: Request header a standby adds when it forwards a request (loop detection).
VIA_HEADER = "X-Marathon-Via"
#: Response header naming the leading instance (as Marathon sends it).
LEADER_HEADER = "X-Marathon-Leader"
#: Response header carrying the id of the deployment a write started.
DEPLOYMENT_HEADER = "Marathon-Deployment-Id"

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no", ""})
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailers", "transfer-encoding", "upgrade", "content-length", "content-encoding",
    "host", "server", "date",
})
_JSON_TYPES = re.compile(
    r"^(application/json|text/json|application/[\w.+-]+\+json)$", re.IGNORECASE)
_MAX_JSON_DEPTH = 64


class ApiError(Exception):
    """An error answered with ``status`` and ``{"message", "details"}`` (plus ``extra``)."""

    def __init__(self, status: int, message: str, details: list[dict[str, Any]] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or []
        self.extra = extra


def invalid(path: str, error: str, message: str = "Object is not valid") -> ApiError:
    """A 422 naming one field (``path`` is a JSON pointer-like path such as ``/ids``)."""
    return ApiError(422, message, [{"path": path, "errors": [error]}])


def normalize_id(raw: str) -> str:
    """An app or group id as an absolute path: ``a//b/`` → ``/a/b``, ``""`` → ``/``."""
    parts = [p for p in raw.split("/") if p]
    return "/" + "/".join(parts)


def deployment_result(handler: ApiHandler, plan: Any, status: int = 200) -> None:
    """Answer ``{"deploymentId", "version"}`` with the ``Marathon-Deployment-Id`` header."""
    ref = deployment_ref(plan)
    if ref is None:
        handler.write_json({"deploymentId": None, "version": None}, status)
        return
    dep_id, version = ref
    handler.set_header(DEPLOYMENT_HEADER, dep_id)
    handler.write_json({"deploymentId": dep_id, "version": version}, status)


def _check_depth(value: Any, depth: int = 0) -> None:
    """Refuse absurdly nested JSON before anything recurses over it."""
    if depth > _MAX_JSON_DEPTH:
        raise ApiError(400, "Invalid JSON", [{"path": "/", "errors": [
            f"nesting deeper than {_MAX_JSON_DEPTH} levels"]}])
    if isinstance(value, dict):
        for item in value.values():
            _check_depth(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_depth(item, depth + 1)


def _refuse_constant(name: str) -> Any:
    """json.loads hook: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not a valid JSON value")


class ApiHandler(tornado.web.RequestHandler):
    """Base of every Marathon API handler."""

    #: Answered by a standby itself (the rest is forwarded to the leader).
    LOCAL = False

    def initialize(self, service: ServiceFacade, options: dict[str, Any]) -> None:
        """Keep the service and the API options (max_body_bytes, keepalive_seconds, ...)."""
        self.service = service
        self.api_options = options
        self._name_leader()

    # -- plumbing --------------------------------------------------------------
    def set_default_headers(self) -> None:
        """JSON by default; name the leader like Marathon does."""
        self.set_header("Content-Type", "application/json; charset=utf-8")
        if hasattr(self, "service"):
            self._name_leader()

    def _name_leader(self) -> None:
        """The ``X-Marathon-Leader`` header, when a leader is known."""
        try:
            leader = self.service.leader_address()
        except Exception:  # noqa: BLE001 - a header is never worth a failed request
            leader = None
        if leader:
            self.set_header(LEADER_HEADER, leader)

    def compute_etag(self) -> str | None:
        """No ETag (hashing large documents costs loop time for nothing)."""
        return None

    async def prepare(self) -> None:
        """Refuse oversize bodies; on a standby, forward to the leader."""
        limit = int(self.api_options["max_body_bytes"])
        declared = self.request.headers.get("Content-Length", "")
        if (declared.isdigit() and int(declared) > limit) or len(self.request.body) > limit:
            raise ApiError(413, f"Request body is larger than the limit of {limit} bytes")
        if not self.LOCAL and not self.service.is_leader:
            await self.forward_to_leader()

    def write_json(self, value: Any, status: int = 200) -> None:
        """Answer with ``value`` as JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(value, separators=(",", ":")))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Expected API errors are not server faults: log those quietly."""
        if isinstance(value, ApiError | ServiceError) or _is_validation_error(value):
            log.debug("%s %s: %s", self.request.method, self.request.uri, value)
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error is JSON: ``{"message", "details"}`` with the error's own status."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        status, body = _error_body(status_code, error, self._reason)
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        if status == 503:
            self.set_header("Retry-After", "1")
        self.finish(json.dumps(body, separators=(",", ":")))

    # -- input -----------------------------------------------------------------
    def bool_arg(self, name: str, default: bool = False) -> bool:
        """A boolean query argument (true/false/1/0, any case); 400 otherwise."""
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False if value else default
        raise ApiError(400, f"Query parameter '{name}' must be true or false, got {raw[:40]!r}")

    def json_body(self) -> Any:
        """The request body as JSON (400 ``Invalid JSON`` naming the problem, 415 not JSON)."""
        raw = self.request.body
        if not raw.strip():
            raise ApiError(400, "Invalid JSON", [{"path": "/", "errors": [
                "the request body is empty; expected a JSON document"]}])
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype and not _JSON_TYPES.match(ctype):
            raise ApiError(415, f"Unsupported Content-Type {ctype[:80]!r}: "
                                "send application/json")
        try:
            text = raw.decode("utf-8")
            value = json.loads(text, parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ApiError(400, "Invalid JSON", [{"path": "/", "errors": [
                str(exc)[:300]]}]) from None
        _check_depth(value)
        return value

    def json_object(self) -> dict[str, Any]:
        """The body, which must be a JSON object (422 otherwise)."""
        value = self.json_body()
        if not isinstance(value, dict):
            raise invalid("/", f"expected a JSON object, got {_json_type(value)}")
        return value

    # -- standby ---------------------------------------------------------------
    def leader_or_503(self) -> str:
        """The leader's ``host:port``; 503 when none is known."""
        leader = self.service.leader_address()
        if not leader:
            raise ApiError(503, "Could not determine the current leader; retry shortly")
        return leader

    async def forward_to_leader(self) -> None:
        """Relay this request to the leader and its answer back (status, headers, body)."""
        if self.request.headers.get(VIA_HEADER):
            raise ApiError(502, "Detected proxying loop: this instance is not the leader "
                                f"either (via {self.request.headers[VIA_HEADER][:100]})")
        leader = self.leader_or_503()
        # Origin stays here: this instance's server already refused a foreign one, and the
        # leader would see this instance's address as a foreign origin.
        headers = {k: v for k, v in self.request.headers.get_all()
                   if k.lower() not in _HOP_BY_HOP and k.lower() != "origin"}
        headers[VIA_HEADER] = f"1.1 {self.request.host}"
        forwarded = self.request.headers.get("X-Forwarded-For")
        remote = self.request.remote_ip or ""
        headers["X-Forwarded-For"] = f"{forwarded}, {remote}" if forwarded else remote
        method = self.request.method or "GET"
        body = self.request.body if method in ("POST", "PUT", "PATCH") or self.request.body \
            else None
        request = tornado.httpclient.HTTPRequest(
            f"http://{leader}{self.request.uri}", method=method, headers=headers, body=body,
            follow_redirects=False, allow_nonstandard_methods=True,
            request_timeout=float(self.api_options["proxy_timeout_seconds"]),
            decompress_response=False)
        client = tornado.httpclient.AsyncHTTPClient()
        try:
            response = await client.fetch(request, raise_error=False)
        except Exception as exc:  # noqa: BLE001 - any transport failure is a 502
            raise ApiError(502, f"Could not reach the leader at {leader}: {exc}") from None
        if response.code == 599:
            status = 504 if isinstance(response.error, TimeoutError) \
                or "Timeout" in str(response.error) else 502
            raise ApiError(status, f"Could not reach the leader at {leader}: {response.error}")
        self.clear()
        self.set_status(response.code, response.reason)
        relayed: set[str] = set()
        for name, value in response.headers.get_all():
            key = name.lower()
            if key in _HOP_BY_HOP:
                continue
            if key in relayed:
                self.add_header(name, value)
            else:
                self.set_header(name, value)
                relayed.add(key)
        self.finish(response.body or b"")


#: errno values that mean the disk (or a quota, or a file-size limit) is full.
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _storage_full(error: BaseException | None) -> OSError | None:
    """The "disk full" error behind ``error`` (its causes followed), or None."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in _FULL:
            return error
        error = error.__cause__ or error.__context__
    return None


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type."""
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _is_validation_error(value: Any) -> bool:
    """True for app_json's AppValidationError (matched by name: no import cycle)."""
    return type(value).__name__ == "AppValidationError" and hasattr(value, "details")


def _error_body(status: int, error: Any, reason: str) -> tuple[int, dict[str, Any]]:
    """The status and JSON body for an exception raised by a handler."""
    if isinstance(error, ApiError):
        return error.status, {"message": error.message, "details": error.details,
                              **error.extra}
    if isinstance(error, AppLocked):
        return error.status, {"message": error.message,
                              "deployments": [{"id": d} for d in error.deployment_ids]}
    if isinstance(error, NotLeader):
        return 503, {"message": error.message, "details": []}
    if isinstance(error, ServiceError):
        body: dict[str, Any] = {"message": error.message}
        if error.details or error.status == 422:
            body["details"] = error.details
        return error.status, body
    if _is_validation_error(error):
        message = getattr(error, "message", None) or str(error) or "Object is not valid"
        return 422, {"message": message, "details": list(getattr(error, "details", []))}
    if isinstance(error, tornado.web.HTTPError):
        message = error.log_message or reason
        if error.log_message and error.args:
            try:
                message = error.log_message % error.args
            except (TypeError, ValueError):
                message = error.log_message
        return error.status_code, {"message": message, "details": []}
    full = _storage_full(error)
    if full is not None:
        return 507, {"message": f"Insufficient storage: {full.strerror or full}; the change "
                                "was not saved", "details": []}
    if status >= 500:
        return status, {"message": "Internal server error; see the log of this instance",
                        "details": []}
    return status, {"message": reason, "details": []}
