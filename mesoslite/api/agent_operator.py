"""The v1 operator API on agents: ``POST /api/v1`` (also under ``/slave(1)``).

Owns: :class:`AgentOperatorHandler` and :func:`agent_task_json`.  Supported:
GET_HEALTH, GET_FLAGS, GET_VERSION, GET_METRICS, GET_LOGGING_LEVEL, GET_AGENT,
GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS, GET_STATE, LIST_FILES and READ_FILE (through
the agent's own ``/files``, which keeps every path inside its work directory), and
LAUNCH_NESTED_CONTAINER_SESSION (``ctl exec``: :mod:`mesoslite.api.exec_session`).  The rest
of Mesos's agent calls (containers, nested containers, resource providers, attach and
launch of debug containers, logging level changes) answer 501 naming the call.  With
``--acls``: GET_FLAGS and GET_METRICS follow ``get_endpoints`` (as ``/flags`` and
``/metrics/snapshot``), the framework, executor and task views ``view_*``.
"""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

from mesoslite.api.exec_session import CALL, serve_session
from mesoslite.api.files import fetch_json
from mesoslite.api.operator import ENDPOINT_OF
from mesoslite.api.ports import AgentOperatorPort
from mesoslite.api.streams import ApiError, JsonApiHandler
from mesoslite.api.v1json import (
    NANOS,
    V1Error,
    agent_info_json,
    container_json,
    discovery_json,
    executor_info_json,
    framework_info_json,
    id_json,
    integer,
    labels_json,
    obj,
    resources_json,
    status_json,
    text,
)
from mesoslite.api.version import version_info
from mesoslite.authz import Viewer, acls_for, endpoint_refusal
from mesoslite.httpguard.server import request_principal
from mesoslite.protocol import Task

SUPPORTED = ("GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_METRICS", "GET_LOGGING_LEVEL",
             "GET_AGENT", "GET_FRAMEWORKS", "GET_EXECUTORS", "GET_TASKS", "GET_STATE",
             "LIST_FILES", "READ_FILE", CALL)
UNSUPPORTED = {
    **dict.fromkeys(("GET_CONTAINERS", "LAUNCH_NESTED_CONTAINER",
                     "WAIT_NESTED_CONTAINER", "KILL_NESTED_CONTAINER",
                     "REMOVE_NESTED_CONTAINER",
                     "ATTACH_CONTAINER_INPUT", "ATTACH_CONTAINER_OUTPUT", "LAUNCH_CONTAINER",
                     "WAIT_CONTAINER", "KILL_CONTAINER", "REMOVE_CONTAINER"),
                    "containers are managed by the agent only"),
    **dict.fromkeys(("ADD_RESOURCE_PROVIDER_CONFIG", "UPDATE_RESOURCE_PROVIDER_CONFIG",
                     "REMOVE_RESOURCE_PROVIDER_CONFIG", "MARK_RESOURCE_PROVIDER_GONE",
                     "GET_RESOURCE_PROVIDERS", "GET_OPERATIONS"),
                    "resource providers are not supported"),
    "SET_LOGGING_LEVEL": "the logging level is set by --log_level at start",
    "PRUNE_IMAGES": "images are not managed by the agent",
}


def agent_task_json(task: Task) -> dict[str, Any]:
    """A protocol Task as v1 JSON."""
    out: dict[str, Any] = {
        "name": task.name, "task_id": id_json(task.task_id),
        "framework_id": id_json(task.framework_id), "agent_id": id_json(task.agent_id),
        "state": task.state.value, "resources": resources_json(task.resources),
        "statuses": [status_json(s) for s in task.statuses], "labels": labels_json(task.labels)}
    if task.executor_id:
        out["executor_id"] = id_json(task.executor_id)
    if task.status_update_state is not None:
        out["status_update_state"] = task.status_update_state.value
    if task.container is not None:
        out["container"] = container_json(task.container)
    if task.discovery is not None:
        out["discovery"] = discovery_json(task.discovery)
    return out


def _views(port: AgentOperatorPort, viewer: Viewer | None = None
           ) -> dict[str, dict[str, Any]]:
    """GET_FRAMEWORKS, GET_EXECUTORS and GET_TASKS: what ``viewer`` may see, with one.

    (A task's user here is its framework's: the agent's Task carries no command.)
    """
    active, completed = port.operator_frameworks()
    live, done = port.operator_executors()
    tasks = port.operator_tasks()
    if viewer is not None:
        infos = {f.id: f for f in [*active, *completed]}
        seen = {fid for fid, info in infos.items() if viewer.framework(info)}
        active = [f for f in active if f.id in seen]
        completed = [f for f in completed if f.id in seen]
        live, done = ([e for e in group if e.framework_id in seen
                       and viewer.executor(e, infos[e.framework_id])] for group in (live, done))
        tasks = {kind: [t for t in group if t.framework_id in seen
                        and viewer.task(None, infos[t.framework_id])]
                 for kind, group in tasks.items()}
    return {
        "get_frameworks": {"frameworks": [{"framework_info": framework_info_json(f)}
                                          for f in active],
                           "completed_frameworks": [{"framework_info": framework_info_json(f)}
                                                    for f in completed]},
        "get_executors": {"executors": [{"executor_info": executor_info_json(e)} for e in live],
                          "completed_executors": [{"executor_info": executor_info_json(e)}
                                                  for e in done]},
        "get_tasks": {kind: [agent_task_json(t) for t in group]
                      for kind, group in tasks.items()},
    }


class AgentOperatorHandler(JsonApiHandler):
    """``POST /api/v1`` on an agent."""

    def initialize(self, port: AgentOperatorPort) -> None:
        """Serve ``port``."""
        self.port = port

    async def post(self) -> None:
        """Answer one call."""
        try:
            kind, body = self.operator_call(SUPPORTED, UNSUPPORTED)
            if kind == CALL:  # ctl exec: the answer is a stream (mesoslite.api.exec_session)
                await serve_session(self, self.port, body.get(kind.lower()))
                return
            answer = await self._call(kind, body.get(kind.lower(), {}))
        except V1Error as exc:
            self.refuse(ApiError(400, exc.field, exc.message))
            return
        except ApiError as exc:
            self.refuse(exc)
            return
        self.answer({"type": kind, kind.lower(): answer})

    async def _call(self, kind: str, value: Any) -> dict[str, Any]:
        port = self.port
        key = kind.lower()
        if kind == "GET_HEALTH":
            return {"healthy": True}
        acls = acls_for(port.operator_acls())
        if kind in ENDPOINT_OF:  # get_endpoints, as the matching HTTP endpoint
            refused = endpoint_refusal(acls, request_principal(), ENDPOINT_OF[kind])
            if refused:
                raise ApiError(403, "type", f"{kind}: {refused}")
        if kind == "GET_FLAGS":
            return {"flags": [{"name": n, "value": v}
                              for n, v in sorted(port.operator_flags().items())]}
        if kind == "GET_VERSION":
            return {"version_info": version_info()}
        if kind == "GET_METRICS":
            obj(value, key, frozenset({"timeout"}))
            return {"metrics": [{"name": n, "value": float(v)}
                                for n, v in sorted(port.operator_metrics().items())]}
        if kind == "GET_LOGGING_LEVEL":
            return {"level": 0}
        if kind == "GET_AGENT":
            return {"agent_info": agent_info_json(port.operator_agent_info())}
        if kind in ("LIST_FILES", "READ_FILE"):
            return await self._files(kind, value)
        viewer = Viewer(acls, request_principal())
        views = _views(port, viewer if viewer.filters else None)
        if kind == "GET_STATE":
            return views
        return views[key]

    async def _files(self, kind: str, value: Any) -> dict[str, Any]:
        key = kind.lower()
        base = self.port.operator_files_url()
        if kind == "LIST_FILES":
            body = obj(value, key, frozenset({"path"}))
            path = text(body.get("path"), f"{key}.path", empty=False)
            entries = await fetch_json(f"{base}/files/browse?"
                                   f"{urllib.parse.urlencode({'path': path})}", f"{key}.path")
            return {"file_infos": [
                {"path": e["path"], "nlink": e["nlink"], "size": e["size"],
                 "mtime": {"nanoseconds": int(e["mtime"]) * NANOS}, "mode": e["mode"],
                 "uid": e["uid"], "gid": e["gid"]} for e in entries]}
        body = obj(value, key, frozenset({"path", "offset", "length"}))
        path = text(body.get("path"), f"{key}.path", empty=False)
        args: dict[str, Any] = {"path": path,
                                "offset": integer(body.get("offset", 0), f"{key}.offset")}
        if "length" in body:
            args["length"] = integer(body["length"], f"{key}.length")
        size = await fetch_json(f"{base}/files/read?"
                            f"{urllib.parse.urlencode({'path': path, 'offset': -1})}",
                            f"{key}.path")
        doc = await fetch_json(f"{base}/files/read?{urllib.parse.urlencode(args)}", f"{key}.path")
        return {"size": int(size.get("offset", 0)),
                "data": base64.b64encode(str(doc.get("data", "")).encode()).decode()}
