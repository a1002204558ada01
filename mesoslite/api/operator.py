"""The v1 operator API on the master: ``POST /api/v1`` (also ``/api/v1/operator``).

Owns: :class:`OperatorHandler` (every GET_* call, UPDATE_WEIGHTS, TEARDOWN, LIST_FILES
and READ_FILE through the agents' ``/files``, and SUBSCRIBE; 501 naming the calls we do
not support; the ACLs: teardown_frameworks and update_weights refuse 403, GET_STATE,
GET_FRAMEWORKS, GET_TASKS, GET_EXECUTORS and the streams show what the principal may see,
GET_FLAGS and GET_METRICS follow get_endpoints for /flags and /metrics/snapshot) and
:class:`OperatorHub` (the SUBSCRIBE streams: it follows the master's
change feed, renders each change once and writes it to every stream; HEARTBEAT every
heartbeat interval).  A master that does not lead serves GET_HEALTH, GET_FLAGS,
GET_VERSION, GET_METRICS and GET_LOGGING_LEVEL itself and answers the rest 307.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

import attrs

from mesoslite.allocator import validate_role
from mesoslite.api import files, operator_view
from mesoslite.api.leader import refuse_not_leader
from mesoslite.api.ports import MasterPort
from mesoslite.api.streams import ApiError, JsonApiHandler, RecordStream, dumps
from mesoslite.api.v1json import (
    V1Error,
    arr,
    duration,
    flag,
    ident,
    master_info_json,
    number,
    obj,
    text,
)
from mesoslite.api.version import version_info
from mesoslite.authz import (
    Acls,
    Viewer,
    acls_for,
    endpoint_refusal,
    teardown_refusal,
    weights_refusal,
)
from mesoslite.httpguard.server import request_principal

log = logging.getLogger("mesoslite.api")

#: Calls any master answers, leading or not.
ANY_MASTER = frozenset({"GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_METRICS",
                        "GET_LOGGING_LEVEL"})
#: Operator calls we refuse with 501, and why.
UNSUPPORTED = {
    **dict.fromkeys(("RESERVE_RESOURCES", "UNRESERVE_RESOURCES"),
                    "reservations are not supported"),
    **dict.fromkeys(("CREATE_VOLUMES", "DESTROY_VOLUMES", "GROW_VOLUME", "SHRINK_VOLUME"),
                    "persistent volumes are not supported"),
    **dict.fromkeys(("GET_MAINTENANCE_STATUS", "GET_MAINTENANCE_SCHEDULE",
                     "UPDATE_MAINTENANCE_SCHEDULE", "START_MAINTENANCE", "STOP_MAINTENANCE"),
                    "maintenance schedules are not supported: use DRAIN_AGENT, "
                    "DEACTIVATE_AGENT and REACTIVATE_AGENT"),
    **dict.fromkeys(("GET_QUOTA", "SET_QUOTA", "REMOVE_QUOTA", "UPDATE_QUOTA"),
                    "quota is not supported"),
    "SET_LOGGING_LEVEL": "the logging level is set by flags at start",
    "MARK_AGENT_GONE": "agents leave by unregistering",
    "GET_OPERATIONS": "offer operations with ids are not supported",
    "UPDATE_QUOTA_CONFIG": "quota is not supported",
}
#: Calls whose answer shows what the principal may see (the view_* ACLs).
FILTERED_VIEWS = {"GET_STATE": operator_view.get_state,
                  "GET_FRAMEWORKS": operator_view.get_frameworks,
                  "GET_EXECUTORS": operator_view.get_executors,
                  "GET_TASKS": operator_view.get_tasks}
#: Calls that read what an HTTP endpoint serves: ``get_endpoints`` decides them as that path.
ENDPOINT_OF = {"GET_FLAGS": "/flags", "GET_METRICS": "/metrics/snapshot"}
SUPPORTED = ("GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_METRICS", "GET_LOGGING_LEVEL",
             "LIST_FILES", "READ_FILE", "GET_STATE", "GET_AGENTS", "GET_FRAMEWORKS",
             "GET_EXECUTORS", "GET_TASKS", "GET_ROLES", "GET_WEIGHTS", "UPDATE_WEIGHTS",
             "GET_MASTER", "TEARDOWN", "SUBSCRIBE", "DRAIN_AGENT", "DEACTIVATE_AGENT",
             "REACTIVATE_AGENT")
#: The agent calls and the fields each takes.
AGENT_CALLS = {"DRAIN_AGENT": frozenset({"agent_id", "max_grace_period", "mark_gone"}),
               "DEACTIVATE_AGENT": frozenset({"agent_id"}),
               "REACTIVATE_AGENT": frozenset({"agent_id"})}
def flags_of(config: Any) -> list[dict[str, str]]:
    """A config's attributes as Mesos flags (every value as text)."""
    out = []
    for field in attrs.fields(type(config)):
        value = getattr(config, field.name)
        if "secret" in field.name or "password" in field.name or field.name == "zk":
            continue
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        out.append({"name": field.name, "value": "" if value is None else str(value)})
    return out


def parse_weights(body: dict[str, Any]) -> dict[str, float]:
    """UPDATE_WEIGHTS' weight_infos as {role: weight} (V1Error naming the field)."""
    call = obj(body.get("update_weights"), "update_weights", frozenset({"weight_infos"}))
    weights: dict[str, float] = {}
    for i, item in enumerate(arr(call.get("weight_infos"), "update_weights.weight_infos")):
        where = f"update_weights.weight_infos[{i}]"
        entry = obj(item, where, frozenset({"role", "weight"}))
        role = text(entry.get("role"), f"{where}.role", empty=False)
        try:
            validate_role(role)
        except ValueError as exc:
            raise V1Error(f"{where}.role", str(exc)) from None
        weight = number(entry.get("weight"), f"{where}.weight", -math.inf, math.inf)
        if weight <= 0:
            raise V1Error(f"{where}.weight", f"expected a number > 0, got {weight!r}")
        weights[role] = weight
    return weights


def parse_agent_call(kind: str, body: dict[str, Any]) -> tuple[str, float | None, bool]:
    """DRAIN_AGENT, DEACTIVATE_AGENT or REACTIVATE_AGENT: (agent id, max grace, mark gone)."""
    key = kind.lower()
    call = obj(body.get(key), key, AGENT_CALLS[kind])
    agent_id = ident(call.get("agent_id"), f"{key}.agent_id")
    grace = None
    if call.get("max_grace_period") is not None:
        grace = duration(call["max_grace_period"], f"{key}.max_grace_period")
    mark_gone = flag(call.get("mark_gone", False), f"{key}.mark_gone")
    return agent_id, grace, mark_gone


class OperatorHub:
    """The operator SUBSCRIBE streams of one master, fed by its change feed."""

    def __init__(self, master: MasterPort) -> None:
        """Follow ``master``'s change feed (nothing is kept while no stream is open)."""
        self.master = master
        self.streams: set[RecordStream] = set()
        #: What each stream's principal may see (None: everything).
        self.viewers: dict[RecordStream, Viewer | None] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        master.feed_listeners.append(self.on_feed)

    def on_feed(self, entries: list[tuple[str, Any]]) -> None:
        """Render each change once and send it to every stream."""
        if not self.streams:
            return
        state = self.master.state
        for kind, value in entries:
            event = operator_view.feed_event(state, kind, value)
            if event is not None:
                data = dumps(event)
                for stream in list(self.streams):
                    viewer = self.viewers.get(stream)
                    if viewer is None or operator_view.event_visible(state, kind, value,
                                                                     viewer):
                        stream.send(data)

    def add(self, stream: RecordStream, viewer: Viewer | None = None) -> None:
        """Serve a new stream (its SUBSCRIBED event already sent), showing what ``viewer`` may."""
        self.streams.add(stream)
        self.viewers[stream] = viewer

        def forget() -> None:
            self.streams.discard(stream)
            self.viewers.pop(stream, None)
        stream.on_close.append(forget)
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        interval = self.master.config.framework_heartbeat_interval
        while self.streams:
            await asyncio.sleep(interval)
            leading = self.master.is_leading
            for stream in list(self.streams):
                if leading:
                    stream.send({"type": "HEARTBEAT"})
                else:
                    stream.close("this master no longer leads")

    async def stop(self) -> None:
        """Close every stream and stop the heartbeats."""
        for stream in list(self.streams):
            stream.close("the master stops")
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat


class OperatorHandler(JsonApiHandler):
    """``POST /api/v1``: the v1 operator API of the master."""

    def initialize(self, master: MasterPort, hub: OperatorHub) -> None:
        """Serve ``master``; SUBSCRIBE streams join ``hub``."""
        self.master = master
        self.hub = hub
        self.stream: RecordStream | None = None

    async def post(self) -> None:
        """Answer one call."""
        try:
            kind, body = self.operator_call(SUPPORTED, UNSUPPORTED)
            if kind not in ANY_MASTER and not self.master.is_leading:
                refuse_not_leader(self, self.master, self.request.path)
                return
            if kind == "SUBSCRIBE":
                await self._subscribe()
                return
            answer = await self._call(kind, body)
        except V1Error as exc:
            self.refuse(ApiError(400, exc.field, exc.message))
            return
        except ApiError as exc:
            self.refuse(exc)
            return
        if answer is None:
            self.set_status(200)
            self.finish()
        else:
            self.answer(answer)

    def _acls(self) -> Acls:
        return acls_for(self.master.config.acls)

    def _viewer(self) -> Viewer | None:
        viewer = Viewer(self._acls(), request_principal())
        return viewer if viewer.filters else None

    async def _call(self, kind: str, body: dict[str, Any]) -> dict[str, Any] | None:
        key = kind.lower()
        master = self.master
        if kind in ENDPOINT_OF:  # the get_endpoints ACLs of the matching HTTP endpoint
            refused = endpoint_refusal(self._acls(), request_principal(), ENDPOINT_OF[kind])
            if refused:
                raise ApiError(403, "type", f"{kind}: {refused}")
        if kind in FILTERED_VIEWS:  # view_frameworks, view_tasks, view_executors
            return {"type": kind, key: FILTERED_VIEWS[kind](master.state, self._viewer())}
        if kind in ("GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_LOGGING_LEVEL"):
            values: dict[str, Any] = {
                "GET_HEALTH": {"healthy": True},
                "GET_FLAGS": {"flags": flags_of(master.config)},
                "GET_VERSION": {"version_info": version_info()},
                "GET_LOGGING_LEVEL": {"level": 0},
            }
            return {"type": kind, key: values[kind]}
        if kind == "GET_METRICS":
            obj(body.get(key, {}), key, frozenset({"timeout"}))
            snapshot = master.metrics_snapshot()
            return {"type": kind, key: {"metrics": [
                {"name": n, "value": float(v)} for n, v in sorted(snapshot.items())]}}
        if kind == "GET_MASTER":
            info = master.info
            assert info is not None
            return {"type": kind, key: {"master_info": master_info_json(info),
                                        "start_time": master.start_time,
                                        "elected_time": master.elected_time}}
        if kind in ("LIST_FILES", "READ_FILE"):
            return {"type": kind, key: await files.call(master, kind, body.get(key))}
        if kind == "UPDATE_WEIGHTS":
            weights = parse_weights(body)
            refused = weights_refusal(self._acls(), request_principal(), weights)
            if refused:
                raise ApiError(403, "update_weights.weight_infos", refused)
            master.set_weights(weights)
            await self._durable()
            return None
        if kind == "TEARDOWN":
            call = obj(body.get(key), key, frozenset({"framework_id"}))
            framework_id = ident(call.get("framework_id"), f"{key}.framework_id")
            record = master.state.frameworks.get(framework_id)
            refused = teardown_refusal(self._acls(), request_principal(),
                                       record.info if record is not None else None)
            if refused:
                raise ApiError(403, f"{key}.framework_id", refused)
            if not master.teardown_framework(framework_id):
                raise ApiError(400, f"{key}.framework_id",
                               f"no framework with id {framework_id!r}")
            await self._durable()
            return None
        if kind in AGENT_CALLS:
            agent_id, grace, mark_gone = parse_agent_call(kind, body)
            try:
                master.maintain_agent(kind.split("_", 1)[0].lower(), agent_id, grace, mark_gone)
            except ValueError as exc:
                field = getattr(exc, "field", "")
                raise ApiError(getattr(exc, "status", 400), f"{key}.{field}",
                               getattr(exc, "message", str(exc))) from None
            await self._durable()
            return None
        views = {"GET_STATE": operator_view.get_state, "GET_AGENTS": operator_view.get_agents,
                 "GET_FRAMEWORKS": operator_view.get_frameworks,
                 "GET_EXECUTORS": operator_view.get_executors,
                 "GET_TASKS": operator_view.get_tasks, "GET_ROLES": operator_view.get_roles,
                 "GET_WEIGHTS": operator_view.get_weights}
        return {"type": kind, key: views[kind](master.state)}

    async def _durable(self) -> None:
        try:
            await self.master.leadership.durable()
        except Exception as exc:  # noqa: BLE001 - LeadershipLost (the master's own type)
            raise ApiError(503, "", f"the change may not be durable: {exc}") from None

    async def _subscribe(self) -> None:
        self.set_status(200)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-cache")
        stream = self.stream = RecordStream(self)
        interval = self.master.config.framework_heartbeat_interval
        viewer = self._viewer()
        stream.send({"type": "SUBSCRIBED", "subscribed": {
            "get_state": operator_view.get_state(self.master.state, viewer),
            "heartbeat_interval_seconds": interval}})
        self.hub.add(stream, viewer)
        await stream.closed.wait()

    def on_connection_close(self) -> None:
        """The subscriber went away: end its stream."""
        if self.stream is not None:
            self.stream.close("the connection closed")
