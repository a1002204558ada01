"""The master's proxy to its agents: sandbox files and live usage (tornado).

Owns: :class:`AgentProxy` (the HTTP client side: only registered agents'
own endpoints, their sandbox list cached briefly) and the handlers
``/agents/{id}/files/{browse,read,download}`` (so the browser never needs to
reach an agent: it talks to the master only), ``/ui/api/agents/{id}/sandbox``
(an executor's sandbox directory) and ``/ui/api/agents/{id}/statistics``
(the agent's ``/monitor/statistics``).

A sandbox path must be clean and lie inside a sandbox the agent itself lists
(:mod:`.sandbox`); the agent's ``/files`` endpoints then refuse whatever
resolves outside its work directory.  With ``--acls``, ``access_sandboxes`` decides
(:meth:`AgentProxy.sandbox_refusal`, 403) before the agent is asked.  Answers keep the
agent's status and body; an agent that cannot be reached is 502, an unknown agent 404.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from typing import Any

import tornado.httpclient
import tornado.iostream

from mesoslite.authz import acls_for, executor_user, sandbox_ids, task_user
from mesoslite.httpguard.server import forwarded_authorization
from mesoslite.webui import sandbox
from mesoslite.webui.source import MasterSource

log = logging.getLogger("mesoslite.webui")

#: How long an agent's sandbox list is trusted before it is read again (seconds).
SANDBOX_TTL = 2.0
#: How long the master waits for an agent (seconds).
AGENT_TIMEOUT = 10.0
#: Largest /state document read from an agent (bytes).
MAX_AGENT_STATE = 64 * 1024 * 1024


class ProxyError(Exception):
    """A proxied request that cannot be served: ``status``, ``field`` and a message."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


class AgentProxy:
    """HTTP requests from the master to its registered agents."""

    def __init__(self, master: MasterSource) -> None:
        self.master = master
        self._sandboxes: dict[str, tuple[float, list[dict[str, str]]]] = {}

    def endpoint(self, agent_id: str) -> str:
        """The registered agent's HTTP base URL (ProxyError 404 naming ``agent_id``)."""
        agent = self.master.state.agents.get(agent_id)
        if agent is None:
            raise ProxyError(404, "agent_id", f"agent_id: no registered agent {agent_id[:200]!r}")
        info = agent.info
        endpoint = info.http_endpoint.strip().rstrip("/") or f"{info.hostname}:{info.port}"
        if "://" not in endpoint:  # agents advertise host:port
            endpoint = "http://" + endpoint
        if not endpoint.startswith(("http://", "https://")):
            raise ProxyError(502, "agent_id", f"agent_id: agent {agent_id!r} has no HTTP "
                                              f"endpoint (got {endpoint[:100]!r})")
        return endpoint

    def request(self, agent_id: str, path: str, args: dict[str, str],
                **kwargs: Any) -> tornado.httpclient.HTTPRequest:
        """A GET of ``path`` on the agent (its endpoint, never one from the request)."""
        query = urllib.parse.urlencode(args)
        url = f"{self.endpoint(agent_id)}{path}" + (f"?{query}" if query else "")
        # Both timeouts: an agent that accepts but never answers (or never accepts) costs
        # the proxy at most AGENT_TIMEOUT, never a stalled request.  The user's credentials
        # go on to the agent (it authenticates them with the same credentials file).
        authorization = forwarded_authorization()
        if authorization:
            kwargs.setdefault("headers", {})["Authorization"] = authorization
        return tornado.httpclient.HTTPRequest(url, method="GET", follow_redirects=False,
                                              connect_timeout=AGENT_TIMEOUT,
                                              request_timeout=AGENT_TIMEOUT, **kwargs)

    async def get_json(self, agent_id: str, path: str) -> Any:
        """GET a JSON document from the agent (ProxyError 502 when it fails)."""
        client = tornado.httpclient.AsyncHTTPClient()
        request = self.request(agent_id, path, {})
        try:
            response = await client.fetch(request, raise_error=False)
        except Exception as exc:  # noqa: BLE001 - any transport failure is a 502
            raise ProxyError(502, "agent_id", f"agent {agent_id}: {exc}") from None
        if response.code != 200:
            raise ProxyError(502, "agent_id", f"agent {agent_id} answered {path} with "
                                              f"{response.code}: {response.error}")
        if len(response.body) > MAX_AGENT_STATE:
            raise ProxyError(502, "agent_id", f"agent {agent_id}: {path} is too large")
        try:
            return json.loads(response.body)
        except ValueError:
            raise ProxyError(502, "agent_id", f"agent {agent_id}: {path} is not JSON") from None

    async def sandboxes(self, agent_id: str, fresh: bool = False) -> list[dict[str, str]]:
        """The executor sandboxes the agent lists (cached for :data:`SANDBOX_TTL`)."""
        cached = self._sandboxes.get(agent_id)
        now = time.monotonic()
        if cached is not None and not fresh and now - cached[0] < SANDBOX_TTL:
            return cached[1]
        state = await self.get_json(agent_id, "/state")
        found = sandbox.sandbox_directories(state if isinstance(state, dict) else {})
        if len(self._sandboxes) > 10_000:
            self._sandboxes.clear()
        self._sandboxes[agent_id] = (now, found)
        return found

    def sandbox_refusal(self, agent_id: str, path: str, principal: str | None) -> str:
        """Why ``access_sandboxes`` refuses ``principal`` this sandbox path, or "".

        The sandbox's user is its executor's (or task's) user, else its framework's; a
        path naming no framework the master knows is checked as "any user" (only rules
        whose users are ANY match it).
        """
        acls = acls_for(self.master.config.acls)
        if not acls.restricts("access_sandboxes"):
            return ""
        ids = sandbox_ids(path)
        user = self._sandbox_user(agent_id, *ids) if ids is not None else None
        if acls.authorized("access_sandboxes", principal, user):
            return ""
        who = f"principal {principal!r}" if principal else "an unauthenticated request"
        whose = f"user {user!r}" if user is not None else "an unknown user"
        return (f"path: {who} is not authorized to access this sandbox ({whose}; "
                "access_sandboxes ACL)")

    def _sandbox_user(self, agent_id: str, framework_id: str, executor_id: str) -> str | None:
        state = self.master.state
        framework = state.frameworks.get(framework_id) or next(
            (f for f in state.completed_frameworks if f.id == framework_id), None)
        if framework is None:
            return None
        agent = state.agents.get(agent_id)
        if agent is not None:
            executor = agent.executors.get((framework_id, executor_id))
            if executor is not None:
                return executor_user(executor[0], framework.info)
            task = agent.tasks.get((framework_id, executor_id))  # a command task's sandbox
            if task is not None:
                return task_user(task.info, framework.info)
        return framework.info.user

    async def checked_path(self, agent_id: str, raw: str) -> str:
        """``raw`` when it lies in one of the agent's sandboxes (ProxyError otherwise)."""
        try:
            path = sandbox.clean_path(raw)
        except sandbox.PathRefused as exc:
            raise ProxyError(exc.status, "path", exc.message) from None
        self.endpoint(agent_id)
        dirs = [d["directory"] for d in await self.sandboxes(agent_id)]
        if not sandbox.within(path, dirs):
            dirs = [d["directory"] for d in await self.sandboxes(agent_id, fresh=True)]
            if not sandbox.within(path, dirs):
                raise ProxyError(403, "path", f"path: {raw[:200]!r} is not inside a sandbox "
                                              f"of agent {agent_id}")
        return path
