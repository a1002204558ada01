"""The client of the Marathon-style framework's REST API v2 that ``mesoslite ctl`` uses.

Owns :class:`ApiClient` (what the app commands need: one request), its HTTP
implementation :class:`MarathonClient` (JSON over :func:`mesoslite.ctl.common.request`),
:class:`MarathonApiError` with :func:`describe_api_error` (the API's message,
per-field details and locking deployments as user-facing text), and
:func:`app_path`.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, Protocol

from mesoslite.ctl.apps_view import normalize_app_id
from mesoslite.ctl.common import HTTP_TIMEOUT, CtlError, HttpError, http_url, request


class MarathonApiError(CtlError):
    """The framework answered an error status; the text carries its message and details."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body if isinstance(body, dict) else {}
        super().__init__(describe_api_error(method, path, status, body))


def describe_api_error(method: str, path: str, status: int, body: Any) -> str:
    """A user-facing text for an API error: message, per-field details, locking deployments."""
    if isinstance(body, dict):
        message = str(body.get("message") or "no message")
    else:
        message = str(body)[:300] if body else "no message"
    lines = [f"{method} {path}: HTTP {status}: {message}"]
    details = body.get("details") if isinstance(body, dict) else None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict):
            errors = detail.get("errors")
            text = "; ".join(str(e) for e in errors) if isinstance(errors, list) else str(errors)
            lines.append(f"  {detail.get('path', '/')}: {text}")
        else:
            lines.append(f"  {detail}")
    deployments = body.get("deployments") if isinstance(body, dict) else None
    if status == 409:
        ids = [str(d.get("id")) for d in deployments or [] if isinstance(d, dict)]
        if ids:
            lines.append(f"  locked by deployment(s): {', '.join(ids)}")
        lines.append("  use --force to cancel the running deployment and go ahead")
    return "\n".join(lines)


class ApiClient(Protocol):
    """What the commands need from the REST API (a fake one in tests)."""

    def request(self, method: str, path: str, body: Any = None,
                query: dict[str, str] | None = None) -> tuple[Any, dict[str, str]]:
        """Send one request; (decoded JSON body, lower-cased headers)."""
        ...


class MarathonClient:
    """JSON over HTTP to the framework at ``base`` (``http://host:port``)."""

    def __init__(self, base: str, timeout: float = HTTP_TIMEOUT) -> None:
        self.base = http_url(base)
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None,
                query: dict[str, str] | None = None) -> tuple[Any, dict[str, str]]:
        """Send one request; MarathonApiError on an error status, CtlError when unreachable."""
        url = self.base + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        try:
            raw, headers = request(url, method, body, timeout=self.timeout,
                                   unreachable_hint="; is the framework running? "
                                                    "(--marathon or MESOSLITE_MARATHON)")
        except HttpError as exc:
            try:
                decoded: Any = json.loads(exc.raw.decode("utf-8"))
            except ValueError:
                decoded = exc.raw.decode("utf-8", "replace")
            raise MarathonApiError(method, path, exc.status, decoded) from None
        if not raw.strip():
            return None, headers
        try:
            return json.loads(raw.decode("utf-8")), headers
        except ValueError:
            raise CtlError(f"{method} {url}: the answer is not JSON") from None


def api_get(client: ApiClient, path: str, query: dict[str, str] | None = None) -> Any:
    """GET ``path``: the decoded answer (MarathonApiError on an error status)."""
    return client.request("GET", path, query=query)[0]


def app_path(app_id: str) -> str:
    """``/v2/apps/<id>`` for an id with or without its leading slash (``//`` collapsed)."""
    return "/v2/apps" + urllib.parse.quote(normalize_app_id(app_id), safe="/")


