"""The master UI's JSON views (tornado handlers under ``/ui/api/``).

Owns: :class:`MasterUi` (what every handler shares: the master, the
publisher, the agent proxy, row caches and a small cache of answered pages
keyed by the state's change counters, so that several browsers on one view
cost one computation), :class:`UiHandler` (JSON answers and errors, security
headers, and the standby rule: a master that does not lead answers 307 to the
same URL on the leader, 503 while none is known) and the views: overview,
agents, agent, frameworks, framework, tasks, task, offers, roles, metrics,
leader.  Lists are paged, sorted and filtered here (:mod:`.views`); nothing
sends a whole ``/state``.  With ``--acls`` the frameworks, tasks, executors and offers
shown are those the request's principal may see (``view_frameworks``, ``view_tasks``,
``view_executors``; cached pages are kept per principal then); the overview's totals are
not filtered.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import operator
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import tornado.web

from mesoslite.authz import Viewer, acls_for
from mesoslite.httpguard.server import request_principal
from mesoslite.protocol import ExecutorInfo
from mesoslite.resources import Resources
from mesoslite.webui import views
from mesoslite.webui.proxy import AgentProxy, ProxyError
from mesoslite.webui.publisher import Publisher
from mesoslite.webui.sandbox import find_sandbox
from mesoslite.webui.source import AgentSource, MasterSource, TaskSource

#: Pages kept per MasterUi (each for one set of change counters).
PAGE_CACHE_SIZE = 64
#: Rows cached before the row caches start again.
MAX_CACHED_ROWS = 500_000
#: Row lists kept (one per list view and filter of the records it reads).
MAX_ROW_LISTS = 16
_VERSION = operator.attrgetter("version")
#: Records handled between two yields to the loop.
YIELD_EVERY = 2000

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class MasterUi:
    """Shared by the UI's handlers of one master."""

    def __init__(self, master: MasterSource, clock: Callable[[], float] = time.time) -> None:
        self.master = master
        self.clock = clock
        self.publisher = Publisher(master, clock)
        self.publisher.start_sampling()
        self.proxy = AgentProxy(master)
        self._agent_rows: dict[str, tuple[int, views.Row]] = {}
        self._task_rows: dict[int, tuple[int, views.Row]] = {}
        self._pages: collections.OrderedDict[tuple[Any, ...], str] = collections.OrderedDict()
        self._computing: dict[tuple[Any, ...], asyncio.Future[str]] = {}
        self._lists: dict[Any, tuple[list[Any], list[views.Row], list[int]]] = {}
        #: Pages answered from the cache, and computed (for tests and the benchmark).
        self.page_hits = 0
        self.page_misses = 0

    def agent_row(self, agent: AgentSource) -> views.Row:
        """The agent's row, rebuilt only when the agent changed."""
        known = self._agent_rows.get(agent.id)
        if known is not None and known[0] == agent.version:
            return known[1]
        if len(self._agent_rows) > MAX_CACHED_ROWS:
            self._agent_rows.clear()
        row = views.agent_row(agent)
        self._agent_rows[agent.id] = (agent.version, row)
        return row

    def task_row(self, task: TaskSource) -> views.Row:
        """The task's row, rebuilt only when the task changed."""
        key = id(task)
        known = self._task_rows.get(key)
        if known is not None and known[0] == task.version and known[1]["id"] == task.task_id:
            return known[1]
        if len(self._task_rows) > MAX_CACHED_ROWS:
            self._task_rows.clear()
        row = views.task_row(task)
        self._task_rows[key] = (task.version, row)
        return row

    def rows(self, slot: Any, records: Sequence[Any], row: Callable[[Any], views.Row]
             ) -> list[views.Row]:
        """The rows of ``records`` (agents or tasks, each with a ``version``) in their order:
        when they are the same records as last time for ``slot``, only the rows of those
        whose version moved are made again (two C-level passes find them), so that a page
        over 10,000 records costs little more than its sort."""
        versions = list(map(_VERSION, records))
        known = self._lists.get(slot)
        if known is not None and len(known[0]) == len(records) \
                and all(map(operator.is_, known[0], records)):
            rows = list(known[1])
            if versions != known[2]:
                for index, (new, old) in enumerate(zip(versions, known[2], strict=True)):
                    if new != old:
                        rows[index] = row(records[index])
        else:
            rows = list(map(row, records))
            if len(self._lists) >= MAX_ROW_LISTS:
                self._lists.clear()
        self._lists[slot] = (list(records), rows, versions)
        return rows

    def generations(self) -> dict[str, int]:
        """The state's change counters: those of the last summary pushed while pages watch
        (every page re-read after one push is keyed alike, and nothing walks the agents
        per request), otherwise counted now."""
        publisher = self.publisher
        if publisher.watchers and publisher.generations is not None:
            return publisher.generations
        return views.generations(self.master.state)

    async def page(self, key: tuple[Any, ...], compute: Callable[[], Awaitable[Any]]) -> str:
        """The JSON text of a page: answered before for the same request and the same
        counters, being computed for another request now (joined, not started again), or
        computed now."""
        text = self._pages.get(key)
        if text is not None:
            self._pages.move_to_end(key)
            self.page_hits += 1
            return text
        running = self._computing.get(key)
        if running is not None:
            self.page_hits += 1
            return await asyncio.shield(running)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._computing[key] = future
        self.page_misses += 1
        try:
            text = json.dumps(await compute(), separators=(",", ":"))
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: joined requests see it, nobody else must
            raise
        finally:
            self._computing.pop(key, None)
        future.set_result(text)
        self._pages[key] = text
        while len(self._pages) > PAGE_CACHE_SIZE:
            self._pages.popitem(last=False)
        return text


def leader_url(master: MasterSource) -> str | None:
    """The leading master's HTTP base URL, None when no leader is known."""
    leader = master.info if master.is_leading else master.leadership.leader()
    if leader is None:
        return None
    if leader.http_endpoint:
        return leader.http_endpoint.rstrip("/")
    return f"http://{leader.hostname or leader.ip}:{leader.port}"


class UiHandler(tornado.web.RequestHandler):
    """Base of the UI's handlers: JSON, errors naming the field, standby redirects."""

    #: Served by any master (the rest only by the leader).
    SERVED_BY_ANY_MASTER = False

    def initialize(self, webui: MasterUi) -> None:
        """Keep the shared UI state."""
        self.webui = webui
        self.master = webui.master

    def set_default_headers(self) -> None:
        """Security headers on every answer."""
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)

    def compute_etag(self) -> str | None:
        """No ETag: the answers are small and change often."""
        return None

    def prepare(self) -> None:
        """A master that does not lead sends the browser to the leader."""
        if not self.SERVED_BY_ANY_MASTER and not self.master.is_leading:
            self.to_leader()

    def to_leader(self) -> None:
        """307 to this URL on the leader, or 503 with a JSON body when none is known."""
        url = leader_url(self.master)
        if url is None or self.master.is_leading:
            recovering = self.master.leadership.recovering
            self.set_header("Retry-After", "1")
            self.write_json({"message": "this master was just elected and is recovering; "
                             "retry shortly" if recovering else
                             "this master is not the leader and no leader is known; "
                             "retry shortly", "field": ""}, 503)
            return
        self.redirect(url + (self.request.uri or "/"), status=307)

    def write_json(self, value: Any, status: int = 200) -> None:
        """Answer ``value`` (or text already JSON)."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(value if isinstance(value, str) else json.dumps(value, separators=(",", ":")))

    def fail(self, status: int, field: str, message: str) -> None:
        """Answer an error ``{"message", "field"}``."""
        self.write_json({"message": message, "field": field}, status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error is JSON."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        message = self._reason
        if isinstance(error, tornado.web.HTTPError) and error.log_message:
            message = error.log_message % error.args if error.args else error.log_message
        self.fail(status_code, getattr(error, "arg_name", "") or "", message)

    def args(self) -> dict[str, str]:
        """The query arguments, last value of each."""
        return {name: self.get_query_argument(name) for name in self.request.query_arguments}

    def query(self, sorts: tuple[str, ...], default: str,
              filters: dict[str, Any] | None = None, order: str = "asc") -> views.Query | None:
        """The page request, or None after answering 400."""
        try:
            return views.parse_query(self.args(), sorts, default, filters, order)
        except views.QueryError as exc:
            self.fail(400, exc.field, exc.message)
            return None

    def viewer(self) -> Viewer | None:
        """What this request's principal may see (``view_*`` ACLs); None: everything."""
        viewer = Viewer(acls_for(self.master.config.acls), request_principal())
        return viewer if viewer.filters else None

    def executor_seen(self, framework_id: str, info: ExecutorInfo, viewer: Viewer | None
                      ) -> bool:
        """May ``viewer`` see this executor and its framework?"""
        if viewer is None:
            return True
        framework = self.master.state.frameworks.get(framework_id)
        return (framework is not None and viewer.framework(framework.info)
                and viewer.executor(info, framework.info))

    def framework_seen(self, framework_id: str, viewer: Viewer | None) -> bool:
        """May ``viewer`` see the framework ``framework_id`` (unknown ones: no)?"""
        if viewer is None:
            return True
        state = self.master.state
        framework = state.frameworks.get(framework_id) or next(
            (fw for fw in state.completed_frameworks if fw.id == framework_id), None)
        return framework is not None and viewer.framework(framework.info)

    def task_seen(self, task: TaskSource, viewer: Viewer | None) -> bool:
        """May ``viewer`` see this task and its framework?"""
        if viewer is None:
            return True
        state = self.master.state
        framework = state.frameworks.get(task.framework_id) or next(
            (fw for fw in state.completed_frameworks if fw.id == task.framework_id), None)
        return (framework is not None and viewer.framework(framework.info)
                and viewer.task(task.info, framework.info))

    async def answer_page(self, kind: str, deps: tuple[str, ...],
                          compute: Callable[[], Any]) -> None:
        """Answer ``compute()`` (a value or an awaitable), or the same page computed for the
        same request while the counters it depends on (``deps``) were the same (and, when
        the ACLs filter views, for the same principal)."""
        generations = self.webui.generations()
        who = request_principal() if self.viewer() is not None else None
        key = (kind, self.request.uri, who, *(generations[name] for name in deps))

        async def run() -> Any:
            value = compute()
            return await value if inspect.isawaitable(value) else value

        self.write_json(await self.webui.page(key, run))


class OverviewHandler(UiHandler):
    """``/ui/api/overview``: the overview and the chart's history."""

    def get(self) -> None:
        """Answer the latest summary (computed now when nobody watches)."""
        publisher = self.webui.publisher
        publisher.start_sampling()
        publisher.refresh(force=not publisher.watchers)
        self.write_json({"overview": publisher.latest, "history": list(publisher.history)})


class LeaderHandler(UiHandler):
    """``/ui/api/leader``: where the leader's UI is (any master answers)."""

    SERVED_BY_ANY_MASTER = True

    def get(self) -> None:
        """``{"leading": bool, "leader": url | null}``."""
        self.write_json({"leading": self.master.is_leading, "leader": leader_url(self.master)})


class AgentsHandler(UiHandler):
    """``/ui/api/agents``: agents paged, sorted, filtered by state and text."""

    async def get(self) -> None:
        """Answer one page and the count of each state."""
        query = self.query(views.AGENT_SORTS, "hostname", {"state": views.AGENT_STATES})
        if query is None:
            return
        state = self.master.state

        def compute() -> dict[str, Any]:
            registered = self.webui.rows("agents", list(state.agents.values()),
                                         self.webui.agent_row)
            rows = views.agent_rows(state, query, registered)
            out = views.page(rows, query, views.agent_sort_key(query.sort),
                             views.agent_sort_path(query.sort))
            connected = sum(1 for a in state.agents.values() if a.connected)
            out["counts"] = {"active": connected, "deactivated": len(state.agents) - connected,
                             "unreachable": len(state.unreachable_agents),
                             "recovered": len(state.recovered_agents)}
            return out

        await self.answer_page("agents", ("agents",), compute)


class AgentHandler(UiHandler):
    """``/ui/api/agents/{id}``: one agent, its frameworks, executors and tasks."""

    def get(self, agent_id: str) -> None:
        """Answer the agent (404 naming agent_id when unknown)."""
        state = self.master.state
        agent = state.agents.get(agent_id)
        if agent is None:
            gone = state.unreachable_agents.get(agent_id)
            if gone is not None:
                self.write_json({"agent": views.absent_agent_row(agent_id, gone[0],
                                                                 "unreachable", gone[1])})
                return
            self.fail(404, "agent_id", f"agent_id: no agent {agent_id[:200]!r}")
            return
        names = {fid: fw.info.name for fid, fw in state.frameworks.items()}
        viewer = self.viewer()
        seen = [t for t in agent.tasks.values() if self.task_seen(t, viewer)]
        frameworks: dict[str, int] = {}
        for task in seen:
            frameworks[task.framework_id] = frameworks.get(task.framework_id, 0) + 1
        executors = [{"framework_id": fid, "executor_id": eid, "name": info.name, "role": role,
                      "resources": views.scalars(info.resources)}
                     for (fid, eid), (info, role) in agent.executors.items()
                     if self.executor_seen(fid, info, viewer)]
        tasks = sorted((self.webui.task_row(t) for t in seen),
                       key=lambda row: row["updated"] or 0, reverse=True)
        self.write_json({
            "agent": self.webui.agent_row(agent),
            "frameworks": [{"id": fid, "name": names.get(fid, ""), "tasks": count}
                           for fid, count in sorted(frameworks.items())],
            "executors": executors, "tasks": tasks[:views.MAX_LIMIT], "tasks_total": len(tasks),
        })


class FrameworksHandler(UiHandler):
    """``/ui/api/frameworks``: active, inactive or completed frameworks, paged."""

    async def get(self) -> None:
        """Answer one page and the count of each status."""
        query = self.query(views.FRAMEWORK_SORTS, "name",
                           {"status": views.FRAMEWORK_STATUSES})
        if query is None:
            return
        wanted = query.filters.get("status", "active")
        viewer = self.viewer()
        await self.answer_page("frameworks", ("frameworks", "offers"),
                               lambda: self._page(query, wanted, viewer))

    def _page(self, query: views.Query, wanted: str, viewer: Viewer | None) -> dict[str, Any]:
        state = self.master.state
        shares = {role: state.allocator.framework_shares(role)
                  for role in state.allocator.weights()}
        counts = dict.fromkeys(views.FRAMEWORK_STATUSES, 0)
        rows = []
        pairs = [(fw, False) for fw in state.frameworks.values()]
        pairs += [(fw, True) for fw in state.completed_frameworks]
        if viewer is not None:
            pairs = [(fw, done) for fw, done in pairs if viewer.framework(fw.info)]
        for framework, completed in pairs:
            status = views.framework_status(framework, completed)
            counts[status] += 1
            if status != wanted or not views.matches(query, framework.id, framework.info.name,
                                                      framework.info.user):
                continue
            offered = Resources()
            for offer_id in framework.offers:
                record = state.offers.get(offer_id)
                if record is not None:
                    offered = offered + record.offer.resources
            rows.append(views.framework_row(framework, status,
                                            views.dominant_share(framework, shares), offered))
        out = views.page(rows, query, views.framework_sort_key(query.sort))
        out["counts"] = counts
        return out


class FrameworkHandler(UiHandler):
    """``/ui/api/frameworks/{id}``: one framework (its tasks come from the tasks view)."""

    def get(self, framework_id: str) -> None:
        """Answer the framework (404 naming framework_id when unknown)."""
        state = self.master.state
        framework = state.frameworks.get(framework_id)
        completed = False
        if framework is None:
            framework = next((fw for fw in state.completed_frameworks
                              if fw.id == framework_id), None)
            completed = True
        if framework is None or not self.framework_seen(framework_id, self.viewer()):
            self.fail(404, "framework_id", f"framework_id: no framework {framework_id[:200]!r}")
            return
        shares = {role: state.allocator.framework_shares(role) for role in framework.info.roles}
        offers = [views.offer_row(state.offers[o]) for o in sorted(framework.offers)
                  if o in state.offers]
        offered = Resources()
        for offer_id in framework.offers:
            if offer_id in state.offers:
                offered = offered + state.offers[offer_id].offer.resources
        row = views.framework_row(framework, views.framework_status(framework, completed),
                                  views.dominant_share(framework, shares), offered)
        self.write_json({"framework": row, "offers": offers[:views.MAX_LIMIT]})


class TasksHandler(UiHandler):
    """``/ui/api/tasks``: one task list, filtered by state, framework, agent and text."""

    async def get(self) -> None:
        """Answer one page, with framework names and agent hosts for its rows."""
        query = self.query(views.TASK_SORTS, "updated",
                           {"status": views.TASK_STATUSES, "state": views.OVERVIEW_STATES,
                            "framework": None, "agent": None}, order="desc")
        if query is None:
            return
        viewer = self.viewer()
        await self.answer_page("tasks", ("tasks",), lambda: self._page(query, viewer))

    async def _page(self, query: views.Query, viewer: Viewer | None) -> dict[str, Any]:
        state = self.master.state
        status = query.filters.get("status", "active")
        framework_id = query.filters.get("framework", "")
        agent_id = query.filters.get("agent", "")
        sources = list(views.task_sources(state, status, framework_id, agent_id))
        if viewer is not None:
            sources = [t for t in sources if self.task_seen(t, viewer)]
        await asyncio.sleep(0)
        rows = self.webui.rows(("tasks", status, framework_id, agent_id), sources,
                               self.webui.task_row)
        if query.q or any(name in query.filters for name in ("state", "framework", "agent")):
            rows = [row for row in rows if views.task_matches(row, query)]
        out = views.page(rows, query)
        items = []
        for row in out["items"]:
            framework = state.frameworks.get(row["framework_id"])
            agent = state.agents.get(row["agent_id"])
            items.append({**row, "framework_name": framework.info.name if framework else "",
                          "hostname": views.address(agent.info) if agent else ""})
        out["items"] = items
        if viewer is None:
            out["counts"] = views.task_list_counts(state)
        else:  # only what this principal may see is counted
            out["counts"] = {name: sum(1 for t in views.task_sources(state, name)
                                       if self.task_seen(t, viewer))
                             for name in views.TASK_STATUSES}
        return out


class TaskHandler(UiHandler):
    """``/ui/api/tasks/{framework_id}/{task_id}``: one task with its status history."""

    def get(self, framework_id: str, task_id: str) -> None:
        """Answer the task (404 naming task_id when unknown)."""
        state = self.master.state
        task = views.find_task(state, framework_id, task_id)
        if task is None or not self.task_seen(task, self.viewer()):
            self.fail(404, "task_id", f"task_id: no task {task_id[:200]!r} of framework "
                                      f"{framework_id[:200]!r}")
            return
        detail = views.task_detail(task)
        framework = state.frameworks.get(framework_id)
        agent = state.agents.get(task.agent_id)
        detail["framework_name"] = framework.info.name if framework else ""
        detail["hostname"] = agent.info.hostname if agent else ""
        detail["agent_address"] = views.address(agent.info) if agent else ""
        self.write_json({"task": detail})


class OffersHandler(UiHandler):
    """``/ui/api/offers``: outstanding offers, paged."""

    async def get(self) -> None:
        """Answer one page."""
        query = self.query(views.OFFER_SORTS, "id")
        if query is None:
            return
        state = self.master.state
        viewer = self.viewer()
        await self.answer_page("offers", ("offers",), lambda: views.page(
            [row for row in map(views.offer_row, state.offers.values())
             if views.matches(query, row["id"], row["hostname"], row["framework_id"])
             and self.framework_seen(row["framework_id"], viewer)],
            query))


class RolesHandler(UiHandler):
    """``/ui/api/roles``: every role's weight, share and holdings."""

    async def get(self) -> None:
        """Answer ``{"roles": [...]}``."""
        state = self.master.state
        weights = tuple(sorted(state.allocator.weights().items()))  # set through the API
        await self.answer_page(f"roles {weights}", ("frameworks", "offers"),
                               lambda: {"roles": views.roles(state)})


class MetricsHandler(UiHandler):
    """``/ui/api/metrics``: the metrics snapshot (any master answers for itself)."""

    SERVED_BY_ANY_MASTER = True

    def get(self) -> None:
        """Answer ``{"metrics": {...}}``."""
        self.write_json({"metrics": self.master.metrics_snapshot()})


class StatisticsHandler(UiHandler):
    """``/ui/api/agents/{id}/statistics``: the agent's ``/monitor/statistics``."""

    async def get(self, agent_id: str) -> None:
        """Answer the agent's list, or the proxy's error."""
        try:
            self.write_json({"statistics": await self.webui.proxy.get_json(
                agent_id, "/monitor/statistics")})
        except ProxyError as exc:
            self.fail(exc.status, exc.field, exc.message)


class SandboxHandler(UiHandler):
    """``/ui/api/agents/{id}/sandbox?framework_id=&executor_id=``: a sandbox directory."""

    async def get(self, agent_id: str) -> None:
        """Answer ``{"directory": ...}`` (404 naming executor_id when the agent has none)."""
        framework_id = self.get_query_argument("framework_id", "")
        executor_id = self.get_query_argument("executor_id", "")
        if not framework_id or not executor_id:
            field = "framework_id" if not framework_id else "executor_id"
            self.fail(400, field, f"{field}: expected an id")
            return
        try:
            directory = find_sandbox(await self.webui.proxy.sandboxes(agent_id, fresh=True),
                                     framework_id, executor_id)
        except ProxyError as exc:
            self.fail(exc.status, exc.field, exc.message)
            return
        if directory is None:
            self.fail(404, "executor_id", f"executor_id: agent {agent_id} has no sandbox of "
                                          f"executor {executor_id[:200]!r}")
            return
        self.write_json({"directory": directory})

