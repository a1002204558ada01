"""LIST_FILES and READ_FILE on the master, answered through the agents' ``/files``.

Owns: :func:`call`.  A path names a sandbox the way Mesos lays them out
(``.../slaves/<agent id>/frameworks/...``); the master finds that agent and asks its
``/files/browse`` or ``/files/read`` (the agent keeps every path inside its work
directory).  A path that names no known agent is answered 404 naming ``path``.
"""

from __future__ import annotations

import base64
import itertools
import json
import urllib.parse
from typing import Any

import tornado.httpclient

from mesoslite.api.ports import MasterPort
from mesoslite.api.streams import ApiError
from mesoslite.api.v1json import NANOS, integer, obj, text
from mesoslite.httpguard.server import forwarded_authorization

#: Seconds to wait for an agent's /files.
AGENT_TIMEOUT = 10.0


def _agent_endpoint(master: MasterPort, path: str, field: str) -> str:
    parts = [p for p in path.split("/") if p]
    for marker, agent_id in itertools.pairwise(parts):
        if marker in ("slaves", "agents"):
            agent = master.state.agents.get(agent_id)
            if agent is not None:
                info = agent.info
                base: str = info.http_endpoint or f"{info.hostname}:{info.port}"
                if "://" not in base:
                    base = f"http://{base}"
                return base.rstrip("/")
    raise ApiError(404, field, f"{path[:200]!r} is not in the sandbox of a known agent")


async def fetch_json(url: str, field: str) -> Any:
    """GET JSON from an agent's ``/files`` (ApiError naming ``field`` on failure)."""
    client = tornado.httpclient.AsyncHTTPClient()
    try:
        # The caller's credentials go on: the agent authenticates them and decides
        # access_sandboxes for that principal.
        authorization = forwarded_authorization()
        headers = {"Authorization": authorization} if authorization else None
        response = await client.fetch(url, request_timeout=AGENT_TIMEOUT, raise_error=False,
                                      headers=headers)
    except (OSError, ValueError) as exc:
        raise ApiError(503, field, f"the agent did not answer: {exc}") from None
    if response.code >= 400:
        try:
            answer = json.loads(response.body or b"{}")
            message = answer.get("message", "") or answer.get("error", "")
        except (ValueError, AttributeError):
            message = ""
        status = response.code if response.code in (400, 403, 404) else 503
        raise ApiError(status, field, message or f"the agent answered {response.code}")
    return json.loads(response.body)


async def call(master: MasterPort, kind: str, value: object) -> dict[str, Any]:
    """Answer LIST_FILES or READ_FILE (``value`` is the call's body)."""
    key = kind.lower()
    if kind == "LIST_FILES":
        body = obj(value, key, frozenset({"path"}))
        path = text(body.get("path"), f"{key}.path", empty=False)
        base = _agent_endpoint(master, path, f"{key}.path")
        query = urllib.parse.urlencode({"path": path})
        entries = await fetch_json(f"{base}/files/browse?{query}", f"{key}.path")
        return {"file_infos": [
            {"path": e["path"], "nlink": e["nlink"], "size": e["size"],
             "mtime": {"nanoseconds": int(e["mtime"]) * NANOS}, "mode": e["mode"],
             "uid": e["uid"], "gid": e["gid"]} for e in entries]}
    body = obj(value, key, frozenset({"path", "offset", "length"}))
    path = text(body.get("path"), f"{key}.path", empty=False)
    offset = integer(body.get("offset", 0), f"{key}.offset")
    args: dict[str, Any] = {"path": path, "offset": offset}
    if "length" in body:
        args["length"] = integer(body["length"], f"{key}.length")
    base = _agent_endpoint(master, path, f"{key}.path")
    size_doc = await fetch_json(f"{base}/files/read?"
                            f"{urllib.parse.urlencode({'path': path, 'offset': -1})}",
                            f"{key}.path")
    doc = await fetch_json(f"{base}/files/read?{urllib.parse.urlencode(args)}", f"{key}.path")
    data = str(doc.get("data", "")).encode()
    return {"size": int(size_doc.get("offset", 0)), "data": base64.b64encode(data).decode()}
