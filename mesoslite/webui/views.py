"""What the master UI shows: summaries, rows, filters, sorting and pages (PURE).

Owns: :func:`parse_query` (a page request: ``offset``, ``limit``, ``sort``,
``order``, ``q`` and the view's own filters, checked, :class:`QueryError`
naming the field), :func:`page` (filter, sort and slice rows), the row of each
table (:func:`agent_row`, :func:`framework_row`, :func:`task_row`,
:func:`offer_row`), the task detail, the overview (:func:`overview`, with
:class:`ResourceTotals`, which keeps per-agent sums by record version so that a
second pass over 10,000 agents only re-adds the ones that changed) and
:func:`generations`, the cheap change counters the live push compares.

Everything here reads the master's records through :mod:`.source` and returns
plain JSON-ready values; the caller supplies the time.
"""

from __future__ import annotations

import heapq
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from mesoslite.protocol import AgentInfo, MasterInfo, TaskState, TaskStatus
from mesoslite.resources import Resources
from mesoslite.webui.source import (
    AgentSource,
    FrameworkSource,
    OfferSource,
    StateSource,
    TaskSource,
)

#: The scalar resources every view shows, in order.
RESOURCE_NAMES = ("cpus", "mem", "disk", "gpus")
#: Largest page a client may ask for.
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
#: Longest search text accepted.
MAX_Q = 200
#: Task states listed in the overview, live ones first.
OVERVIEW_STATES = tuple(state.value for state in TaskState)
#: Which task lists a task view can show.
TASK_STATUSES = ("active", "unreachable", "completed")
AGENT_STATES = ("active", "deactivated", "unreachable", "recovered")
FRAMEWORK_STATUSES = ("active", "inactive", "completed")

Row = dict[str, Any]


class QueryError(ValueError):
    """A page request the UI refuses: answered 400 naming ``field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@attrs.frozen
class Query:
    """One page request, already checked."""

    offset: int = 0
    limit: int = DEFAULT_LIMIT
    sort: str = ""
    descending: bool = False
    q: str = ""
    filters: Mapping[str, str] = attrs.field(factory=dict)


def _int_arg(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(name, f"{name}: expected an integer, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise QueryError(name, f"{name}: expected an integer in {low}-{high}, got {value}")
    return value


def parse_query(args: Mapping[str, str], sort_keys: Iterable[str], default_sort: str,
                filters: Mapping[str, Sequence[str] | None] | None = None,
                default_order: str = "asc") -> Query:
    """A :class:`Query` from query arguments; ``filters`` name each allowed filter and its
    allowed values (``None``: any text up to :data:`MAX_Q` characters)."""
    keys = set(sort_keys)
    sort = args.get("sort", "") or default_sort
    if sort not in keys:
        raise QueryError("sort", f"sort: expected one of {', '.join(sorted(keys))}, "
                                 f"got {sort[:40]!r}")
    order = args.get("order", "") or default_order
    if order not in ("asc", "desc"):
        raise QueryError("order", f"order: expected 'asc' or 'desc', got {order[:40]!r}")
    q = args.get("q", "")
    if len(q) > MAX_Q:
        raise QueryError("q", f"q: expected at most {MAX_Q} characters, got {len(q)}")
    chosen: dict[str, str] = {}
    for name, allowed in (filters or {}).items():
        value = args.get(name, "")
        if not value:
            continue
        if allowed is not None and value not in allowed:
            raise QueryError(name, f"{name}: expected one of {', '.join(allowed)}, "
                                   f"got {value[:40]!r}")
        if len(value) > MAX_Q:
            raise QueryError(name, f"{name}: expected at most {MAX_Q} characters")
        chosen[name] = value
    return Query(offset=_int_arg(args, "offset", 0, 0, 1 << 40),
                 limit=_int_arg(args, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
                 sort=sort, descending=order == "desc", q=q.strip().lower(), filters=chosen)


def _sort_value(value: Any) -> tuple[int, Any]:
    """Sort numbers as numbers, text as text, missing values last."""
    if value is None:
        return (2, 0)
    if isinstance(value, int | float):
        return (0, value)
    return (1, str(value).lower())


def _plain_keys(rows: Sequence[Row], path: Sequence[str]) -> list[Any] | None:
    """The sort values at ``path`` of every row when they sort the same as
    :func:`_sort_value` would sort them but can be compared as they are (all numbers, or
    all text, lower-cased); None otherwise.  Taken with C-level maps, no call per row."""
    values: list[Any] = list(rows)
    try:
        for part in path:
            values = list(map(operator.itemgetter(part), values))
    except (KeyError, TypeError):
        return None
    kinds = set(map(type, values))
    if kinds <= {int, float}:
        return values
    if kinds == {str}:
        return list(map(str.lower, values))
    return None


def page(rows: Sequence[Row], query: Query, key: Callable[[Row], Any] | None = None,
         path: Sequence[str] | None = None) -> dict[str, Any]:
    """Sort ``rows`` by ``query.sort`` (or ``key``, or the value at ``path``), slice the
    page; the total comes along.  Ties keep the rows' order, missing values sort last."""
    end = query.offset + query.limit
    select = end * 8 < len(rows)  # an early page of a long list: select it, sort only it
    plain = _plain_keys(rows, path or (query.sort,)) if key is None or path else None
    if plain is not None:
        order_key = plain.__getitem__
        if select:
            pick = heapq.nlargest if query.descending else heapq.nsmallest
            chosen = pick(end, range(len(rows)), key=order_key)[query.offset:]
        else:
            chosen = sorted(range(len(rows)), key=order_key,
                            reverse=query.descending)[query.offset:end]
        items = [rows[i] for i in chosen]
    else:
        sort_key = key or (lambda row: row.get(query.sort))

        def full_key(row: Row) -> tuple[int, Any]:
            return _sort_value(sort_key(row))

        if select:
            pick = heapq.nlargest if query.descending else heapq.nsmallest
            items = pick(end, rows, key=full_key)[query.offset:]
        else:
            items = sorted(rows, key=full_key, reverse=query.descending)[query.offset:end]
    return {"total": len(rows), "offset": query.offset, "limit": query.limit,
            "sort": query.sort, "order": "desc" if query.descending else "asc",
            "items": items}


def matches(query: Query, *texts: str) -> bool:
    """True when the search text is empty or found in one of ``texts`` (any case)."""
    return not query.q or any(query.q in text.lower() for text in texts)


#: Scalars of recently seen resource bags (Resources are immutable and hashable, and
#: many agents and tasks hold equal ones): a memo, emptied when it grows large.
_SCALARS: dict[Resources, tuple[float, ...]] = {}
_MAX_SCALARS = 8192


def scalar_tuple(value: Resources) -> tuple[float, ...]:
    """``value``'s cpus, mem, disk and gpus, in :data:`RESOURCE_NAMES` order."""
    found = _SCALARS.get(value)
    if found is None:
        if len(_SCALARS) >= _MAX_SCALARS:
            _SCALARS.clear()
        found = _SCALARS[value] = tuple(value.scalar(name) for name in RESOURCE_NAMES)
    return found


def scalars(value: Resources) -> dict[str, float]:
    """The UI's scalar resources of ``value`` (cpus, mem, disk, gpus)."""
    return dict(zip(RESOURCE_NAMES, scalar_tuple(value), strict=True))


def address(info: AgentInfo) -> str:
    """An agent's ``host:port`` as its HTTP endpoint names it."""
    endpoint = info.http_endpoint.split("://", 1)[-1].rstrip("/")
    return endpoint or f"{info.hostname}:{info.port}"


# ----------------------------------------------------------------------------- agents


def agent_row(agent: AgentSource) -> Row:
    """One agent in the agents table."""
    info = agent.info
    return {
        "id": info.id, "hostname": info.hostname, "address": address(info),
        "state": "active" if agent.connected else "deactivated",
        "resources": scalars(info.resources), "allocated": scalars(agent.used),
        "offered": scalars(agent.offered), "attributes": dict(info.attributes),
        "registered_time": agent.registered_time,
        "reregistered_time": agent.reregistered_time, "tasks": len(agent.tasks),
        "version": agent.version_string, **maintenance_fields(getattr(agent, "maintenance", None)),
    }


def maintenance_fields(entry: Any) -> Row:
    """An operator's hold on an agent: ``maintenance`` is ``DRAINING``, ``DRAINED``,
    ``DEACTIVATED`` or empty; ``drain`` the drain's config (None when not draining)."""
    if entry is None:
        return {"maintenance": "", "drain": None}
    if entry.drain_state is None:
        return {"maintenance": "DEACTIVATED", "drain": None}
    return {"maintenance": entry.drain_state,
            "drain": {"max_grace_period": entry.max_grace_period, "mark_gone": entry.mark_gone,
                      "started": entry.drain_started}}


def absent_agent_row(agent_id: str, info: AgentInfo | None, state: str,
                     since: float | None) -> Row:
    """An unreachable or recovered (not yet re-registered) agent."""
    return {
        "id": agent_id, "hostname": info.hostname if info else "",
        "address": address(info) if info else "", "state": state,
        "resources": scalars(info.resources if info else Resources()),
        "allocated": scalars(Resources()), "offered": scalars(Resources()),
        "attributes": dict(info.attributes) if info else {},
        "registered_time": None, "reregistered_time": None, "tasks": 0, "version": "",
        "since": since,
    }


AGENT_SORTS = ("id", "hostname", "state", "registered_time", "tasks", "cpus", "mem",
               "disk", "gpus", "cpus_allocated", "mem_allocated")


def agent_sort_path(name: str) -> tuple[str, ...]:
    """Where the agents table's column ``name`` is in a row."""
    if name in RESOURCE_NAMES:
        return ("resources", name)
    if name.endswith("_allocated"):
        return ("allocated", name.removesuffix("_allocated"))
    return (name,)


def agent_sort_key(name: str) -> Callable[[Row], Any]:
    """How the agents table sorts by column ``name``."""
    if name in RESOURCE_NAMES:
        return lambda row: row["resources"][name]
    if name.endswith("_allocated"):
        resource = name.removesuffix("_allocated")
        return lambda row: row["allocated"][resource]
    return lambda row: row.get(name)


def agent_matches(row: Row, query: Query) -> bool:
    """The agents table's search: id, host, address and attributes."""
    wanted = query.filters.get("state")
    if wanted and row["state"] != wanted:
        return False
    attributes = " ".join(f"{k}:{v}" for k, v in row["attributes"].items())
    return matches(query, row["id"], row["hostname"], row["address"], attributes)


def agent_rows(state: StateSource, query: Query, registered: Sequence[Row]) -> list[Row]:
    """Every agent row matching ``query``: ``registered`` (the rows of the registered
    agents), the unreachable and the recovered ones."""
    wanted = query.filters.get("state")
    rows: list[Row] = []
    if wanted is None and not query.q:  # no filter: every row, nothing to test
        rows.extend(registered)
    elif wanted in (None, "active", "deactivated"):
        rows.extend(row for row in registered if agent_matches(row, query))
    if wanted in (None, "unreachable"):
        for agent_id, (info, since) in state.unreachable_agents.items():
            row = absent_agent_row(agent_id, info, "unreachable", since)
            if agent_matches(row, query):
                rows.append(row)
    if wanted in (None, "recovered"):
        for agent_id, info in state.recovered_agents.items():
            row = absent_agent_row(agent_id, info, "recovered", None)
            if agent_matches(row, query):
                rows.append(row)
    return rows


# ------------------------------------------------------------------------ frameworks


def framework_status(framework: FrameworkSource, completed: bool) -> str:
    """``active``, ``inactive`` (deactivated or disconnected) or ``completed``."""
    if completed:
        return "completed"
    return "active" if framework.active and framework.connected else "inactive"


def dominant_share(framework: FrameworkSource, shares: Mapping[str, Mapping[str, float]]
                   ) -> float:
    """The framework's largest dominant share over its roles."""
    return max((shares.get(role, {}).get(framework.id, 0.0) for role in framework.info.roles),
               default=0.0)


def task_state_counts(tasks: Iterable[TaskSource]) -> dict[str, int]:
    """How many of ``tasks`` are in each state (only the states present)."""
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task.state.value] = counts.get(task.state.value, 0) + 1
    return counts


def framework_row(framework: FrameworkSource, status: str, share: float,
                  offered: Resources) -> Row:
    """One framework in the frameworks table."""
    info = framework.info
    used = Resources()
    for task in framework.tasks.values():
        used = used + task.resources
    return {
        "id": info.id, "name": info.name, "user": info.user, "principal": info.principal,
        "roles": list(info.roles), "hostname": info.hostname, "status": status,
        "webui_url": info.webui_url, "share": share,
        "tasks": task_state_counts([*framework.tasks.values(),
                                    *framework.unreachable_tasks.values()]),
        "active_tasks": len(framework.tasks),
        "unreachable_tasks": len(framework.unreachable_tasks),
        "completed_tasks": len(framework.completed_tasks),
        "allocated": scalars(used), "offered": scalars(offered),
        "offers": len(framework.offers), "registered_time": framework.registered_time,
        "reregistered_time": framework.reregistered_time,
        "unregistered_time": framework.unregistered_time,
        "capabilities": list(info.capabilities), "failover_timeout": info.failover_timeout,
        "labels": dict(info.labels),
    }


FRAMEWORK_SORTS = ("id", "name", "user", "principal", "share", "registered_time",
                   "active_tasks", "cpus", "mem", "offers")


def framework_sort_key(name: str) -> Callable[[Row], Any]:
    """How the frameworks table sorts by column ``name``."""
    if name in RESOURCE_NAMES:
        return lambda row: row["allocated"][name]
    return lambda row: row.get(name)


# ----------------------------------------------------------------------------- tasks


def _first(statuses: Sequence[TaskStatus], state: TaskState) -> float | None:
    for status in statuses:
        if status.state is state:
            return status.timestamp
    return None


def task_row(task: TaskSource) -> Row:
    """One task in the tasks table (framework name and host are added per page)."""
    statuses = task.statuses
    last = statuses[-1] if statuses else None
    return {
        "id": task.task_id, "name": task.name, "framework_id": task.framework_id,
        "agent_id": task.agent_id, "state": task.state.value,
        # A command task's executor is the task itself (Mesos names it by the task id).
        "executor_id": task.executor_id or task.task_id,
        "role": task.role, "cpus": task.resources.scalar("cpus"),
        "mem": task.resources.scalar("mem"),
        "started": _first(statuses, TaskState.TASK_RUNNING),
        "updated": last.timestamp if last else None,
        "healthy": last.healthy if last else None,
    }


TASK_SORTS = ("updated", "started", "id", "name", "state", "framework_id", "agent_id",
              "cpus", "mem")


def task_matches(row: Row, query: Query) -> bool:
    """The tasks table's filters: state, framework, agent and the search (id, name)."""
    filters = query.filters
    for name, key in (("state", "state"), ("framework", "framework_id"),
                      ("agent", "agent_id")):
        wanted = filters.get(name)
        if wanted and row[key] != wanted:
            return False
    return matches(query, row["id"], row["name"])


def task_sources(state: StateSource, status: str, framework_id: str = "",
                 agent_id: str = "") -> Iterable[TaskSource]:
    """The tasks of one list (``active``, ``unreachable``, ``completed``), narrowed early."""
    if status == "active" and agent_id and not framework_id:
        agent = state.agents.get(agent_id)
        return list(agent.tasks.values()) if agent is not None else []
    frameworks = [*state.frameworks.values(), *state.completed_frameworks]
    if framework_id:
        frameworks = [fw for fw in frameworks if fw.id == framework_id]
    out: list[TaskSource] = []
    for framework in frameworks:
        group: Iterable[TaskSource] = (
            framework.tasks.values() if status == "active"
            else framework.unreachable_tasks.values() if status == "unreachable"
            else framework.completed_tasks)
        out.extend(group)
    return out


def task_list_counts(state: StateSource) -> dict[str, int]:
    """How many tasks each list holds."""
    frameworks = [*state.frameworks.values(), *state.completed_frameworks]
    return {"active": sum(len(fw.tasks) for fw in frameworks),
            "unreachable": sum(len(fw.unreachable_tasks) for fw in frameworks),
            "completed": sum(len(fw.completed_tasks) for fw in frameworks)}


def status_json(status: TaskStatus) -> Row:
    """One entry of a task's status history."""
    return {"state": status.state.value, "timestamp": status.timestamp,
            "source": status.source.value if status.source is not None else None,
            "reason": status.reason.value if status.reason is not None else None,
            "message": status.message, "healthy": status.healthy,
            "labels": dict(status.labels)}


def task_detail(task: TaskSource) -> Row:
    """A task with everything the task page shows."""
    out = task_row(task)
    resources = task.resources
    out.update({
        "resources": resources.to_json_dict(),
        "ports": [list(r) for r in resources.ranges("ports")],
        "labels": dict(task.labels),
        "statuses": [status_json(s) for s in task.statuses],
    })
    info = task.info
    if info is not None:
        command = info.command
        out["command"] = command.value if command is not None else ""
        container = info.container
        if container is not None and container.docker is not None:
            out["container"] = {"type": container.type, "image": container.docker.image,
                                "network": container.docker.network}
        check = info.health_check
        if check is not None:
            out["health_check"] = {"type": check.type, "interval": check.interval_seconds,
                                   "timeout": check.timeout_seconds,
                                   "grace_period": check.grace_period_seconds}
    return out


def find_task(state: StateSource, framework_id: str, task_id: str) -> TaskSource | None:
    """A live, unreachable or completed task (newest first), or None."""
    for framework in (state.frameworks.get(framework_id),
                      *(fw for fw in state.completed_frameworks if fw.id == framework_id)):
        if framework is None:
            continue
        found = framework.tasks.get(task_id) or framework.unreachable_tasks.get(task_id)
        if found is not None:
            return found
        for done in reversed(framework.completed_tasks):
            if done.task_id == task_id:
                return done
    return None


# ----------------------------------------------------------------------------- offers


OFFER_SORTS = ("id", "framework_id", "agent_id", "hostname", "role", "cpus", "mem")


def offer_row(record: OfferSource) -> Row:
    """One outstanding offer."""
    offer = record.offer
    return {"id": offer.id, "framework_id": offer.framework_id, "agent_id": offer.agent_id,
            "hostname": offer.hostname, "role": offer.role,
            "resources": scalars(offer.resources), "cpus": offer.resources.scalar("cpus"),
            "mem": offer.resources.scalar("mem"), "expires_at": record.expires_at}


# ----------------------------------------------------------------------------- roles


def roles(state: StateSource) -> list[Row]:
    """Each role: weight, dominant share, frameworks and what they hold (tasks + offers)."""
    allocator = state.allocator
    weights = allocator.weights()
    shares = allocator.role_shares()
    members: dict[str, list[str]] = {}
    held: dict[str, dict[str, float]] = {}

    def add(role: str, resources: Resources) -> None:
        sums = held.setdefault(role, dict.fromkeys(RESOURCE_NAMES, 0.0))
        for name in RESOURCE_NAMES:
            sums[name] += resources.scalar(name)

    for framework in state.frameworks.values():
        for role in framework.info.roles:
            members.setdefault(role, []).append(framework.id)
        for task in framework.tasks.values():
            add(task.role, task.resources)
    offered: dict[str, dict[str, float]] = {}
    for record in state.offers.values():
        sums = offered.setdefault(record.offer.role, dict.fromkeys(RESOURCE_NAMES, 0.0))
        for name in RESOURCE_NAMES:
            sums[name] += record.offer.resources.scalar(name)
    return [{"role": role, "weight": weights.get(role, 1.0), "share": shares.get(role, 0.0),
             "frameworks": sorted(members.get(role, [])),
             "allocated": held.get(role, dict.fromkeys(RESOURCE_NAMES, 0.0)),
             "offered": offered.get(role, dict.fromkeys(RESOURCE_NAMES, 0.0))}
            for role in sorted(set(weights) | set(shares) | set(members) | set(held))]


# ---------------------------------------------------------------------------- overview

#: Per agent: total, allocated, offered for each of RESOURCE_NAMES, flattened.
_Sums = tuple[float, ...]


class ResourceTotals:
    """Cluster totals of total / allocated / offered resources, kept up to date cheaply.

    Each pass compares every agent's record version with the one summed last
    time and re-adds only the agents that changed (and takes out those gone);
    every ``resum_every`` passes it sums from scratch, so that rounding never
    drifts.
    """

    def __init__(self, resum_every: int = 60) -> None:
        self._seen: dict[str, tuple[int, _Sums]] = {}
        self._sums = [0.0] * (3 * len(RESOURCE_NAMES))
        self._passes = 0
        self._resum_every = resum_every

    @staticmethod
    def _of(agent: AgentSource) -> _Sums:
        return (scalar_tuple(agent.info.resources) + scalar_tuple(agent.used)
                + scalar_tuple(agent.offered))

    def update(self, agents: Mapping[str, AgentSource]) -> dict[str, dict[str, float]]:
        """Bring the totals up to date with ``agents``; answer them per resource."""
        self._passes += 1
        if self._passes % self._resum_every == 0:
            self._seen.clear()
            self._sums = [0.0] * len(self._sums)
        seen, sums = self._seen, self._sums
        for agent_id in [key for key in seen if key not in agents]:
            _, old = seen.pop(agent_id)
            for i, value in enumerate(old):
                sums[i] -= value
        for agent_id, agent in agents.items():
            known = seen.get(agent_id)
            if known is not None and known[0] == agent.version:
                continue
            new = self._of(agent)
            old = known[1] if known is not None else (0.0,) * len(sums)
            for i, value in enumerate(new):
                sums[i] += value - old[i]
            seen[agent_id] = (agent.version, new)
        return self.totals()

    def totals(self) -> dict[str, dict[str, float]]:
        """``{resource: {total, allocated, offered, idle}}`` from the current sums."""
        count = len(RESOURCE_NAMES)
        out: dict[str, dict[str, float]] = {}
        for i, name in enumerate(RESOURCE_NAMES):
            total = round(self._sums[i], 6)
            allocated = round(self._sums[count + i], 6)
            offered = round(self._sums[2 * count + i], 6)
            out[name] = {"total": total, "allocated": allocated, "offered": offered,
                         "idle": round(max(total - allocated - offered, 0.0), 6)}
        return out


def master_json(info: MasterInfo | None) -> Row | None:
    """A master as the overview names it."""
    if info is None:
        return None
    return {"id": info.id, "hostname": info.hostname, "ip": info.ip, "port": info.port,
            "pid": info.pid, "version": info.version, "http_endpoint": info.http_endpoint}


def masters_json(masters: Sequence[MasterInfo], me: MasterInfo | None,
                 leader: MasterInfo | None) -> list[Row]:
    """Every master, leader first, each marked ``leading``; without a member list (no
    ZooKeeper, or not read yet) the leader and this master."""
    known = list(masters) or [m for m in (leader or me, me) if m is not None]
    head = leader or me
    leading = head.id if head is not None else ""
    out: list[Row] = []
    seen: set[str] = set()
    for info in known:
        if info.id in seen:
            continue
        seen.add(info.id)
        row = master_json(info) or {}
        row["leading"] = info.id == leading
        row["self"] = me is not None and info.id == me.id
        out.append(row)
    out.sort(key=lambda row: not row["leading"])
    return out


def overview(state: StateSource, resources: Mapping[str, Mapping[str, float]], *,
             me: MasterInfo | None, leader: MasterInfo | None, cluster: str,
             start_time: float, elected_time: float, now: float,
             masters: Sequence[MasterInfo] = ()) -> Row:
    """The overview: who leads, the masters, agents, frameworks, tasks by state and
    resources."""
    connected = sum(1 for agent in state.agents.values() if agent.connected)
    active = sum(1 for fw in state.frameworks.values() if fw.active and fw.connected)
    counts = state.task_states
    return {
        "cluster": cluster, "leader": master_json(leader or me), "master": master_json(me),
        "masters": masters_json(masters, me, leader),
        "version": me.version if me else "", "start_time": start_time,
        "elected_time": elected_time, "time": now,
        "agents": {"active": connected, "deactivated": len(state.agents) - connected,
                   "unreachable": len(state.unreachable_agents),
                   "recovered": len(state.recovered_agents)},
        "frameworks": {"active": active, "inactive": len(state.frameworks) - active,
                       "completed": len(state.completed_frameworks)},
        "tasks": {name: counts.get(TaskState(name), 0) for name in OVERVIEW_STATES},
        "offers": len(state.offers),
        "resources": {name: dict(values) for name, values in resources.items()},
    }


def sample(view: Row) -> list[float]:
    """One point of the overview's chart: time, cpus and mem allocated/offered/total,
    running tasks."""
    res = view["resources"]
    return [view["time"],
            res["cpus"]["allocated"], res["cpus"]["offered"], res["cpus"]["total"],
            res["mem"]["allocated"], res["mem"]["offered"], res["mem"]["total"],
            view["tasks"].get("TASK_RUNNING", 0)]


_MASK = (1 << 52) - 1


def generations(state: StateSource) -> dict[str, int]:
    """Numbers that change whenever what a view shows changes (agents, frameworks and
    their tasks, offers); equal numbers mean nothing to re-read."""
    agents = hash((len(state.agents), sum(a.version for a in state.agents.values()),
                   len(state.unreachable_agents), len(state.recovered_agents)))
    frameworks = hash((len(state.frameworks), sum(f.version for f in state.frameworks.values()),
                       len(state.completed_frameworks),
                       id(state.completed_frameworks[-1]) if state.completed_frameworks else 0,
                       tuple(sorted((k.value, v) for k, v in state.task_states.items()))))
    offers = hash((len(state.offers), frameworks))
    return {"agents": agents & _MASK, "frameworks": frameworks & _MASK,
            "tasks": hash((frameworks, agents)) & _MASK, "offers": offers & _MASK}
