"""The master's HTTP endpoints (tornado, on the master's event loop).

Owns: :func:`make_app` (every route, also under ``/master/...`` as Mesos
serves them) and :func:`start_http_server`.  Read endpoints: ``/state``,
``/state-summary``, ``/tasks``, ``/frameworks``, ``/slaves`` (= ``/agents``),
``/roles``, ``/weights``, ``/health``, ``/version``, ``/flags``,
``/metrics/snapshot`` (JSON, Mesos names) and ``/metrics`` (Prometheus
text).  Write endpoints: ``PUT /weights``, ``POST /teardown`` (answered once
the change is durable in the registry).  The server is a
:class:`~mesoslite.httpguard.server.GuardedHTTPServer`: every write needs
``Content-Type: application/json`` and no foreign ``Origin``; every request a
``Host`` that names this master (``--allowed_hosts``).  ``/redirect`` answers 307 to the
leading master.

A master that does not act as the leader serves only ``/health``,
``/version``, ``/flags``, ``/metrics/snapshot`` and ``/metrics`` itself
(``master/elected`` is 0); every other endpoint answers 307 to the same
path on the leader, or 503 with a JSON body while no leader is known or
this master is still recovering after its election.

Big documents never stall the loop: ``/state`` is assembled from per-agent
and per-task JSON cached by record version (:mod:`.render`), yielding to
the loop every few hundred records.  Bad input gets 400 with
``{"message": ..., "field": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

import attrs
import tornado.httpserver
import tornado.netutil
import tornado.web

import mesoslite
from mesoslite.allocator import validate_role
from mesoslite.api.jsonp import JsonpTransform
from mesoslite.api.routes import master_api_rules
from mesoslite.api.version import version_info as api_version_info
from mesoslite.authz import Acls, Viewer, acls_for, teardown_refusal, weights_refusal
from mesoslite.httpguard.server import (
    GuardedHTTPServer,
    load_auth,
    request_principal,
    server_policy,
)
from mesoslite.master import render
from mesoslite.master.leadership import LeadershipLost, StorageFailing
from mesoslite.master.metrics import HTTP_METRIC, prometheus_text
from mesoslite.master.records import AgentRecord, FrameworkRecord, TaskEntry
from mesoslite.promtext import RequestTimings, RouteTable
from mesoslite.protocol import MasterInfo
from mesoslite.resources import Resources
from mesoslite.webui.routes import master_ui_rules

if TYPE_CHECKING:
    from mesoslite.master.master import Master
    from mesoslite.master.state import MasterState

#: Records rendered between two yields to the event loop.
YIELD_EVERY = 50
#: Agents (or frameworks) per piece of a streamed /state.
STREAM_RECORDS = 500
#: Largest request body accepted (bytes).
MAX_BODY_SIZE = 1024 * 1024
#: Default and largest ``limit`` of /tasks.
TASKS_DEFAULT_LIMIT = 100
TASKS_MAX_LIMIT = 100_000



class _Pacer:
    """Yields to the event loop every ``every`` steps."""

    def __init__(self, every: int = YIELD_EVERY) -> None:
        self.every = every
        self.count = 0

    async def step(self) -> None:
        self.count += 1
        if self.count % self.every == 0:
            await asyncio.sleep(0)


class BadRequest(Exception):
    """Input a handler refuses: answered 400 with the message and field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class BaseHandler(tornado.web.RequestHandler):
    """JSON answers, JSON errors, and access to the master."""

    #: Served by every master, leading or not (the rest is the leader's).
    SERVED_BY_ANY_MASTER = False

    def initialize(self, master: Master) -> None:
        """Keep the master this application serves."""
        self.master = master

    def prepare(self) -> None:
        """Send requests for the leader's endpoints to the leader when this master is not it."""
        if not self.SERVED_BY_ANY_MASTER and not self.master.is_leading:
            redirect_to_leader(self, self.request.uri or "/")

    def compute_etag(self) -> str | None:
        """No ETag: hashing a multi-megabyte /state would stall the loop for nothing."""
        return None

    @property
    def acls(self) -> Acls:
        """The master's ACLs (``--acls``)."""
        return acls_for(self.master.config.acls)

    def viewer(self) -> Viewer | None:
        """What this request's principal may see; None when it may see everything."""
        viewer = Viewer(self.acls, request_principal())
        return viewer if viewer.filters else None

    def forbid(self, field: str, message: str) -> None:
        """Answer 403 naming the field (an ACL refused the request)."""
        self.write_json({"message": message, "field": field}, 403)

    def write_json(self, value: Any, status: int = 200) -> None:
        """Answer with a JSON document (a value, or text already JSON)."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(value if isinstance(value, str) else render.dumps(value))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors are JSON too: ``{"message": ..., "field": ...}``."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        field = getattr(error, "arg_name", "") if error is not None else ""
        message = self._reason
        if isinstance(error, tornado.web.HTTPError) and error.log_message:
            message = error.log_message % error.args if error.args else error.log_message
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(render.dumps({"message": message, "field": field or ""}))

    def bad_request(self, error: BadRequest) -> None:
        """Answer 400 naming the field."""
        self.write_json({"message": error.message, "field": error.field}, 400)

    async def answer_when_durable(self) -> None:
        """Answer ``{}`` once the registry holds the change; 503 if leadership was lost."""
        try:
            await self.master.leadership.durable()
        except StorageFailing as exc:  # a full disk: the master keeps retrying the write
            self.write_json({"message": f"the change is not durable yet: {exc}",
                             "field": ""}, 507)
            return
        except LeadershipLost as exc:
            self.write_json({"message": f"the change may not be durable: {exc}",
                             "field": ""}, 503)
            return
        self.write_json({})

    def int_argument(self, name: str, default: int, low: int, high: int) -> int:
        """An integer query argument within [low, high] (BadRequest otherwise)."""
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadRequest(name, f"expected an integer, got {raw[:40]!r}") from None
        if not low <= value <= high:
            raise BadRequest(name, f"expected an integer in {low}-{high}, got {value}")
        return value


def leader_base_url(info: MasterInfo) -> str:
    """Where the leader's HTTP endpoints are: its ``http_endpoint``, else ``//host:port``."""
    if info.http_endpoint:
        return info.http_endpoint.rstrip("/")
    host = info.hostname or info.ip
    return f"//{host}:{info.port}"


def redirect_to_leader(handler: BaseHandler, path: str) -> None:
    """Answer 307 to ``path`` on the leading master, or 503 when there is none to name."""
    leadership = handler.master.leadership
    leader = leadership.leader()
    if leader is None:
        message = ("this master was just elected and is recovering its state; retry shortly"
                   if leadership.recovering else
                   "this master is not the leader and no leading master is known; retry shortly")
        handler.set_header("Retry-After", "1")
        handler.write_json({"message": message, "field": "", "leader": None}, 503)
        return
    handler.redirect(leader_base_url(leader) + path, status=307)


# ------------------------------------------------------------------ documents


async def _offered(
    master: Master, framework: FrameworkRecord, pacer: _Pacer
) -> tuple[Resources, list[str]]:
    """The framework's outstanding offers: their sum and their JSON texts."""
    offered = Resources()
    offers: list[str] = []
    for offer_id in sorted(framework.offers):
        record = master.state.offers.get(offer_id)
        if record is not None:
            offered = offered + record.offer.resources
            offers.append(render.offer_json(record))
            await pacer.step()
    return offered, offers


async def framework_json(master: Master, framework: FrameworkRecord, pacer: _Pacer,
                         viewer: Viewer | None = None) -> str:
    """One framework with its tasks, unreachable and completed tasks and offers.

    ``viewer``: only the tasks its principal may see (``view_tasks``).
    """
    offered, offers = await _offered(master, framework, pacer)
    lists: dict[str, list[str]] = {"tasks": [], "unreachable_tasks": [], "completed_tasks": []}
    sources = (framework.tasks.values(), framework.unreachable_tasks.values(),
               framework.completed_tasks)
    for key, tasks in zip(lists, sources, strict=True):
        for task in list(tasks):
            if viewer is not None and not viewer.task(task.info, framework.info):
                continue
            lists[key].append(render.task_json(task))
            await pacer.step()
    return render.splice(render.framework_base(framework, offered), {**lists, "offers": offers})


def leader_info(info: MasterInfo) -> dict[str, Any]:
    """MasterInfo as Mesos shows ``leader_info``."""
    return {
        "id": info.id,
        "pid": info.pid,
        "port": info.port,
        "hostname": info.hostname,
        "address": {"hostname": info.hostname, "ip": info.ip, "port": info.port},
        "version": info.version,
        "zmq_endpoint": info.zmq_endpoint,
        "http_endpoint": info.http_endpoint,
    }


def flags(master: Master) -> dict[str, str]:
    """The configuration as Mesos shows ``flags``: every value as text."""
    out: dict[str, str] = {}
    for field in attrs.fields(type(master.config)):
        value = getattr(master.config, field.name)
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        out[field.name] = "" if value is None else str(value)
    if master.leadership.zk_url is not None:
        out["zk"] = str(master.leadership.zk_url)  # the password masked
    return out


def version_info() -> dict[str, Any]:
    """What /version answers: Mesos's numeric version, ours as ``mesoslite_version``."""
    return api_version_info()


async def agents_json(master: Master, pacer: _Pacer) -> list[str]:
    """Every agent's JSON text (cached per agent version)."""
    out: list[str] = []
    for agent in list(master.state.agents.values()):
        out.append(render.agent_json(agent))
        await pacer.step()
    return out


async def recovered_agents_json(state: MasterState, pacer: _Pacer) -> list[str]:
    """Agents the registry admitted that have not re-registered since the election."""
    out = []
    for agent_id, info in list(state.recovered_agents.items()):
        out.append(render.dumps({
            "id": agent_id, "hostname": info.hostname, "port": info.port,
            "pid": render.agent_pid(info), "resources": render.resources(info.resources),
            "attributes": dict(info.attributes), "active": False, "connected": False,
        }))
        await pacer.step()
    return out


def visible(frameworks: Iterable[FrameworkRecord], viewer: Viewer | None
            ) -> list[FrameworkRecord]:
    """The frameworks ``viewer``'s principal may see (``view_frameworks``); all without one."""
    return [fw for fw in frameworks if viewer is None or viewer.framework(fw.info)]


async def state_json(master: Master, viewer: Viewer | None = None,
                     show_flags: bool = True) -> str:
    """The whole /state document, built without stalling the loop (see :func:`state_chunks`)."""
    return "".join([chunk async for chunk in state_chunks(master, viewer, show_flags)])


async def state_chunks(master: Master, viewer: Viewer | None = None, show_flags: bool = True,
                       records: int = STREAM_RECORDS) -> AsyncIterator[str]:
    """The /state document in pieces of about ``records`` records each (what
    :class:`StateHandler` writes and flushes one at a time: no piece, and no join or
    encoding of the whole document, holds the loop for long).

    ``viewer``: only the frameworks and tasks its principal may see; ``show_flags``
    False leaves ``flags`` out (a principal ``get_endpoints`` refuses ``/flags``).
    """
    state = master.state
    info = master.info
    assert info is not None
    pacer = _Pacer()
    connected = sum(1 for agent in state.agents.values() if agent.connected)
    base = {
        **version_info(),
        "start_time": master.start_time,
        "elected_time": master.elected_time,
        "id": info.id,
        "pid": info.pid,
        "hostname": info.hostname,
        "activated_slaves": connected,
        "deactivated_slaves": len(state.agents) - connected,
        "unreachable_slaves": len(state.unreachable_agents),
        "cluster": master.config.cluster,
        "leader": info.pid,
        "leader_info": leader_info(info),
        "flags": flags(master),
    }
    if not show_flags:
        del base["flags"]
    head = render.dumps(base)
    yield head[:-1]
    sections: list[tuple[str, Any]] = [
        ("slaves", (render.agent_json(agent) for agent in list(state.agents.values()))),
        ("recovered_slaves", None),
        ("frameworks", visible(list(state.frameworks.values()), viewer)),
        ("completed_frameworks", visible(list(state.completed_frameworks), viewer)),
    ]
    for key, items in sections:
        yield f',{render.dumps(key)}:['
        if key == "recovered_slaves":
            yield ",".join(await recovered_agents_json(state, pacer))
        else:
            batch: list[str] = []
            first = True
            for item in items:
                batch.append(item if key == "slaves" else
                             await framework_json(master, item, pacer, viewer))
                await pacer.step()
                if len(batch) >= records:
                    yield ("" if first else ",") + ",".join(batch)
                    first, batch = False, []
            if batch:
                yield ("" if first else ",") + ",".join(batch)
        yield "]"
    yield ',"orphan_tasks":[],"unregistered_frameworks":[]}'


def agent_summary_json(master: Master, agent: AgentRecord) -> str:
    """One agent of /state-summary as JSON text, cached on the shell until the agent changes
    (its ``version``: resources, offers, tasks and their states all touch it)."""
    cache = master.summary_cache
    cached = cache.get(agent.id)
    if cached is not None and cached[0] is agent and cached[1] == agent.version:
        return cached[2]
    entry = render.agent(agent)
    entry.update(render.task_counts(agent.tasks.values()))
    entry["framework_ids"] = sorted({fid for fid, _tid in agent.tasks})
    text = render.dumps(entry)
    cache[agent.id] = (agent, agent.version, text)
    return text


def _seen_tasks(state: MasterState, tasks: Iterable[TaskEntry], viewer: Viewer | None
                ) -> list[TaskEntry]:
    """The tasks ``viewer``'s principal may see (with their frameworks); all without one."""
    if viewer is None:
        return list(tasks)
    out = []
    for task in tasks:
        framework = state.frameworks.get(task.framework_id)
        if framework is not None and viewer.framework(framework.info) \
                and viewer.task(task.info, framework.info):
            out.append(task)
    return out


async def state_summary(master: Master, viewer: Viewer | None = None) -> str:
    """The /state-summary document: agents and frameworks with task counts, no tasks.

    ``viewer``: only the frameworks and tasks its principal may see are counted.
    """
    state = master.state
    pacer = _Pacer()
    cache = master.summary_cache
    if len(cache) > 2 * len(state.agents) + 1024:  # removed agents: forget them
        for agent_id in [a for a in cache if a not in state.agents]:
            del cache[agent_id]
    slaves = []
    for agent in list(state.agents.values()):
        if viewer is None:
            slaves.append(agent_summary_json(master, agent))
        else:  # filtered: not cached (the cache holds the whole view)
            entry = render.agent(agent)
            seen = _seen_tasks(state, agent.tasks.values(), viewer)
            entry.update(render.task_counts(seen))
            entry["framework_ids"] = sorted({task.framework_id for task in seen})
            slaves.append(render.dumps(entry))
        await pacer.step()
    frameworks = []
    for fw in visible(list(state.frameworks.values()), viewer):
        offered, _ = await _offered(master, fw, pacer)
        entry = render.framework_base(fw, offered)
        tasks = list(fw.tasks.values()) + list(fw.unreachable_tasks.values())
        if viewer is not None:
            tasks = [t for t in tasks if viewer.task(t.info, fw.info)]
        done = [t for t in fw.completed_tasks if viewer is None or viewer.task(t.info, fw.info)]
        entry.update(render.task_counts(tasks + done))
        entry["slave_ids"] = sorted({task.agent_id for task in tasks})
        frameworks.append(render.dumps(entry))
        await pacer.step()
    return render.splice({"hostname": master.info.hostname if master.info else "",
                          "cluster": master.config.cluster},
                         {"slaves": slaves, "frameworks": frameworks})


# ------------------------------------------------------------------- handlers


class IndexHandler(BaseHandler):
    """``/``: a JSON index of the endpoints (a web UI comes later)."""

    def get(self) -> None:
        """List the endpoints."""
        self.write_json({"name": "mesoslite master", "version": mesoslite.__version__,
                         "endpoints": sorted(ENDPOINTS)})


class StateHandler(BaseHandler):
    """``/state``: the whole cluster, Mesos-shaped."""

    async def get(self) -> None:
        """Answer the document."""
        show_flags = self.acls.endpoint_authorized("/flags", request_principal())
        if self.get_query_argument("jsonp", None) is not None:
            # A JSONP answer is wrapped whole (JsonpTransform leaves streams alone).
            self.write_json(await state_json(self.master, self.viewer(), show_flags))
            return
        self.set_header("Content-Type", "application/json; charset=utf-8")
        async for chunk in state_chunks(self.master, self.viewer(), show_flags):
            self.write(chunk)
            await self.flush()
        self.finish()


class StateSummaryHandler(BaseHandler):
    """``/state-summary``: agents and frameworks without their tasks."""

    async def get(self) -> None:
        """Answer the document."""
        self.write_json(await state_summary(self.master, self.viewer()))


class SlavesHandler(BaseHandler):
    """``/slaves`` and ``/agents``: every agent."""

    async def get(self) -> None:
        """Answer ``{"slaves": [...]}``, optionally only ``?slave_id=``."""
        wanted = self.get_query_argument("slave_id", "") or self.get_query_argument("agent_id", "")
        if wanted:
            agent = self.master.state.agents.get(wanted)
            items = [render.agent_json(agent)] if agent is not None else []
        else:
            items = await agents_json(self.master, _Pacer())
        recovered = await recovered_agents_json(self.master.state, _Pacer())
        self.write_json(render.splice({}, {"slaves": items, "recovered_slaves": recovered}))


class FrameworksHandler(BaseHandler):
    """``/frameworks``: frameworks with their tasks."""

    async def get(self) -> None:
        """Answer active and completed frameworks, optionally only ``?framework_id=``."""
        state = self.master.state
        wanted = self.get_query_argument("framework_id", "")
        pacer = _Pacer()
        viewer = self.viewer()
        active = [fw for fw in visible(state.frameworks.values(), viewer)
                  if not wanted or fw.id == wanted]
        done = [fw for fw in visible(state.completed_frameworks, viewer)
                if not wanted or fw.id == wanted]
        self.write_json(render.splice({}, {
            "frameworks": [await framework_json(self.master, fw, pacer, viewer)
                           for fw in active],
            "completed_frameworks": [await framework_json(self.master, fw, pacer, viewer)
                                     for fw in done],
            "unregistered_frameworks": [],
        }))


class TasksHandler(BaseHandler):
    """``/tasks``: tasks, paged (``limit``, ``offset``, ``order=asc|des``)."""

    async def get(self) -> None:
        """Answer ``{"tasks": [...]}``."""
        try:
            limit = self.int_argument("limit", TASKS_DEFAULT_LIMIT, 1, TASKS_MAX_LIMIT)
            offset = self.int_argument("offset", 0, 0, 1 << 62)
            order = self.get_query_argument("order", "des")
            if order not in ("asc", "des"):
                raise BadRequest("order", f"expected 'asc' or 'des', got {order[:40]!r}")
        except BadRequest as error:
            self.bad_request(error)
            return
        framework_id = self.get_query_argument("framework_id", "")
        task_id = self.get_query_argument("task_id", "")
        state = self.master.state
        tasks: list[TaskEntry] = []
        viewer = self.viewer()
        for fw in visible(list(state.frameworks.values()) + list(state.completed_frameworks),
                          viewer):
            if framework_id and fw.id != framework_id:
                continue
            for group in (fw.tasks.values(), fw.unreachable_tasks.values(), fw.completed_tasks):
                tasks.extend(t for t in group if (not task_id or t.task_id == task_id)
                             and (viewer is None or viewer.task(t.info, fw.info)))
        if order == "des":
            tasks.reverse()
        page = tasks[offset:offset + limit]
        pacer = _Pacer()
        items = []
        for task in page:
            items.append(render.task_json(task))
            await pacer.step()
        self.write_json(render.splice({}, {"tasks": items}))


class RolesHandler(BaseHandler):
    """``/roles``: each role's weight, dominant share and frameworks."""

    async def get(self) -> None:
        """Answer ``{"roles": [...]}``."""
        state = self.master.state
        pacer = _Pacer()
        weights = state.weights()
        shares = state.allocator.role_shares()
        members: dict[str, list[str]] = {}
        allocated: dict[str, Resources] = {}
        for fw in state.frameworks.values():
            for role in fw.info.roles:
                members.setdefault(role, []).append(fw.id)
            for task in list(fw.tasks.values()):
                allocated[task.role] = allocated.get(task.role, Resources()) + task.resources
                await pacer.step()
        for record in list(state.offers.values()):
            role = record.offer.role
            allocated[role] = allocated.get(role, Resources()) + record.offer.resources
            await pacer.step()
        roles = []
        for role in sorted(set(weights) | set(shares) | set(members)):
            roles.append({
                "name": role,
                "role": role,
                "weight": weights.get(role, 1.0),
                "share": shares.get(role, 0.0),
                "frameworks": sorted(members.get(role, [])),
                "framework_shares": state.allocator.framework_shares(role),
                "resources": render.resources(allocated.get(role, Resources())),
            })
        self.write_json({"roles": roles})


class WeightsHandler(BaseHandler):
    """``/weights``: GET the role weights; PUT ``[{"role": ..., "weight": ...}]``."""

    def get(self) -> None:
        """Answer ``[{"role", "weight"}]``."""
        weights = self.master.state.weights()
        self.write_json([{"role": role, "weight": weights[role]} for role in sorted(weights)])

    async def put(self) -> None:
        """Validate every entry first, then change the weights; answer once they are durable."""
        try:
            weights = parse_weights_body(self.request.body)
        except BadRequest as error:
            self.bad_request(error)
            return
        refused = weights_refusal(self.acls, request_principal(), weights)
        if refused:
            self.forbid("role", refused)
            return
        self.master.set_weights(weights)
        await self.answer_when_durable()


def parse_weights_body(body: bytes) -> dict[str, float]:
    """``[{"role": "a", "weight": 2}]`` -> ``{"a": 2.0}`` (BadRequest naming the field)."""
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body", "expected a JSON array of {\"role\", \"weight\"}") from None
    if not isinstance(items, list):
        raise BadRequest("body", "expected a JSON array of {\"role\", \"weight\"}")
    weights: dict[str, float] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(f"[{i}]", "expected an object with role and weight")
        extra = sorted(str(key) for key in item if key not in ("role", "weight"))
        if extra:
            raise BadRequest(f"[{i}].{extra[0]}", "unknown field: expected role and weight")
        role = item.get("role")
        try:
            validate_role(role)  # type: ignore[arg-type]
        except ValueError as exc:
            raise BadRequest(f"[{i}].role", str(exc)) from None
        weight = item.get("weight")
        if (isinstance(weight, bool) or not isinstance(weight, (int, float))
                or not math.isfinite(weight) or weight <= 0):
            raise BadRequest(f"[{i}].weight", f"expected a finite number > 0, got {weight!r}")
        weights[str(role)] = float(weight)
    return weights


class TeardownHandler(BaseHandler):
    """``POST /teardown`` with ``frameworkId`` (form) or ``{"framework_id": ...}`` (JSON)."""

    async def post(self) -> None:
        """Tear the framework down: its tasks are killed."""
        try:
            framework_id = self._framework_id()
        except BadRequest as error:
            self.bad_request(error)
            return
        record = self.master.state.frameworks.get(framework_id)
        refused = teardown_refusal(self.acls, request_principal(),
                                   record.info if record is not None else None)
        if refused:
            self.forbid("framework_id", refused)
            return
        if not self.master.teardown_framework(framework_id):
            self.bad_request(BadRequest("framework_id", f"no framework with id {framework_id!r}"))
            return
        await self.answer_when_durable()

    def _framework_id(self) -> str:
        value: Any = None
        if "json" in self.request.headers.get("Content-Type", ""):
            try:
                body = json.loads(self.request.body)
            except (ValueError, UnicodeDecodeError):
                raise BadRequest("body", "expected a JSON object with framework_id") from None
            if not isinstance(body, dict):
                raise BadRequest("body", "expected a JSON object with framework_id")
            value = body.get("framework_id", body.get("frameworkId"))
        else:
            for name in ("frameworkId", "framework_id"):
                value = value or self.get_argument(name, None)
        if not isinstance(value, str) or not value:
            raise BadRequest("framework_id", f"expected a framework id, got {value!r}")
        return value


class HealthHandler(BaseHandler):
    """``/health``: 200 with an empty body while the master serves."""

    SERVED_BY_ANY_MASTER = True

    def get(self) -> None:
        """Answer 200."""
        self.set_status(200)
        self.finish()


class VersionHandler(BaseHandler):
    """``/version``."""

    SERVED_BY_ANY_MASTER = True

    def get(self) -> None:
        """Answer the version and build information."""
        self.write_json(version_info())


class FlagsHandler(BaseHandler):
    """``/flags``: the configuration."""

    SERVED_BY_ANY_MASTER = True

    def get(self) -> None:
        """Answer ``{"flags": {...}}``."""
        self.write_json({"flags": flags(self.master)})


class SnapshotHandler(BaseHandler):
    """``/metrics/snapshot``: metrics with Mesos names."""

    SERVED_BY_ANY_MASTER = True

    def get(self) -> None:
        """Answer the snapshot."""
        self.write_json(self.master.metrics_snapshot())


class PrometheusHandler(BaseHandler):
    """``/metrics``: the snapshot as Prometheus text."""

    SERVED_BY_ANY_MASTER = True

    def get(self) -> None:
        """Answer in the text exposition format."""
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        timings = getattr(self.application, "timings", None)
        self.finish(prometheus_text(self.master.metrics_snapshot())
                    + self.master.metrics_histograms()
                    + (timings.text() if isinstance(timings, RequestTimings) else ""))


class RedirectHandler(BaseHandler):
    """``/redirect``: 307 to the leading master (503 when no leader is known)."""

    SERVED_BY_ANY_MASTER = True

    def get(self) -> None:
        """Redirect as Mesos does (``//host:port``)."""
        info = self.master.info
        if self.master.is_leading and info is not None:
            self.redirect(f"//{info.hostname}:{info.port}", status=307)
            return
        leader = self.master.leadership.leader()
        if leader is None:
            redirect_to_leader(self, "")
            return
        self.redirect(f"//{leader.hostname or leader.ip}:{leader.port}", status=307)


class NotFoundHandler(BaseHandler):
    """Any other path: 404 with a JSON body."""

    def prepare(self) -> None:
        """Answer 404 for every method."""
        self.write_json({"message": f"no endpoint {self.request.path[:200]}", "field": "path"},
                        404)


ENDPOINTS: dict[str, type[BaseHandler]] = {
    "/": IndexHandler,
    "/state": StateHandler,
    "/state.json": StateHandler,
    "/state-summary": StateSummaryHandler,
    "/slaves": SlavesHandler,
    "/agents": SlavesHandler,
    "/frameworks": FrameworksHandler,
    "/tasks": TasksHandler,
    "/roles": RolesHandler,
    "/weights": WeightsHandler,
    "/teardown": TeardownHandler,
    "/health": HealthHandler,
    "/version": VersionHandler,
    "/flags": FlagsHandler,
    "/metrics/snapshot": SnapshotHandler,
    "/metrics": PrometheusHandler,
    "/redirect": RedirectHandler,
}


#: Endpoints Mesos defines as form posts: forms are accepted there only with HTTP
#: authentication on (until then they need JSON like every other write).
FORM_PATHS = frozenset({"/teardown", "/master/teardown"})


class MasterApplication(tornado.web.Application):
    """The master's application: times every request by route pattern for ``/metrics``."""

    timings: RequestTimings

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        """Count the request's duration, then log it as tornado does."""
        self.timings.observe_handler(handler)
        super().log_request(handler)


def make_app(master: Master) -> tornado.web.Application:
    """The master's application; every endpoint also answers under ``/master``."""
    routes: list[Any] = master_ui_rules(master)  # the web UI first: it answers / to browsers
    routes += master_api_rules(master)  # the Mesos v1 APIs (mesoslite.api)
    for path, handler in ENDPOINTS.items():
        routes.append((path, handler, {"master": master}))
        if path != "/":
            routes.append(("/master" + path, handler, {"master": master}))
    app = MasterApplication(
        routes, transforms=[JsonpTransform], default_handler_class=NotFoundHandler,
        default_handler_args={"master": master}
    )
    app.timings = RequestTimings(HTTP_METRIC, RouteTable(routes))
    return app


def start_http_server(
    master: Master, address: str, port: int
) -> tuple[tornado.httpserver.HTTPServer, int]:
    """Bind and serve on the running loop; return the server and the bound port."""
    config = master.config
    auth = load_auth(config.authenticate_http_readonly, config.authenticate_http_readwrite,
                     config.credentials)
    if auth is not None:  # HTTP schedulers: Mesos's --authenticate_http_frameworks (not yet)
        auth = auth.with_open("/api/v1/scheduler", "/master/api/v1/scheduler")
    policy = server_policy([config.hostname, config.advertised_hostname, address],
                           config.allowed_hosts, form_paths=FORM_PATHS, auth=auth,
                           acls=acls_for(config.acls))
    sockets = tornado.netutil.bind_sockets(port, address)
    server = GuardedHTTPServer(make_app(master), policy, max_body_size=MAX_BODY_SIZE)
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[1]
