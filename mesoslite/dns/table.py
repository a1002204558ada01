"""The record table: what the cluster looks like to DNS, built from operator events (PURE).

Owns: :class:`RecordTable`, which keeps the running tasks, frameworks, agents and masters
the master's v1 operator ``SUBSCRIBE`` stream reports (``SUBSCRIBED`` replaces everything,
``TASK_ADDED``/``TASK_UPDATED``/``AGENT_*``/``FRAMEWORK_*`` change it) and derives the
records from them (:class:`Records`: names → A addresses and SRV targets);
:class:`FeedError` for an event that does not have the shape the v1 API gives it.

The records, for the domain ``d`` (``mesos`` by default), as Mesos-DNS publishes them:

* a task ``t`` of framework ``f`` in ``TASK_RUNNING`` (with ``healthy_only``: whose last
  status also says healthy): A ``t.f.d``, ``t.f.agent.d`` and ``t.f.slave.d`` → its
  agent's address, and for each of its ports SRV ``_t._tcp.f.d`` and ``_t._udp.f.d`` →
  (port, ``t-<tag>.f.d``), a name of that one task (A → its agent's address);
* agents: A ``agent.d`` and ``slave.d`` → every agent; ``<agent id>.agent.d`` → one;
  SRV ``_agent._tcp.d`` and ``_slave._tcp.d`` → (HTTP port, ``<agent id>.agent.d``);
* masters: A ``leader.d`` → the leading master, ``master.d`` → every known master,
  ``master<N>.d`` → the N-th; SRV ``_leader._tcp.d`` and ``_leader._udp.d`` → (port,
  ``leader.d``);
* the server itself: A ``ns1.d`` (the apex's NS) when its address is known.

Names are made of :func:`~mesoslite.dns.names.label` parts; a task or framework whose
name leaves no label is not published.  Only IPv4 addresses are published; an agent
named by a hostname is resolved by the ``resolve`` function the shell injects.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import attrs

from mesoslite.dns.names import label, tag

#: States after which a task never runs again: it leaves the table.
TERMINAL = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR",
                      "TASK_LOST", "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"})
#: The one state whose tasks are published.
RUNNING = "TASK_RUNNING"


class FeedError(ValueError):
    """An event without the shape the v1 operator API gives it; ``field`` is the path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def ipv4_only(host: str) -> str | None:
    """``host`` when it is an IPv4 address, else None (the default ``resolve``)."""
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        return None


@attrs.frozen
class Srv:
    """One SRV target: ``port`` on ``target`` (priority 0, weight 1)."""

    port: int
    target: str


@attrs.frozen
class Task:
    """A task the table follows."""

    framework_id: str
    task_id: str
    name: str
    agent_id: str
    state: str
    healthy: bool | None
    ports: tuple[int, ...]


@attrs.frozen
class Agent:
    """An agent: its id, hostname, address (None: unresolved) and HTTP port."""

    id: str
    hostname: str
    ip: str | None
    port: int


@attrs.frozen
class Master:
    """A master: hostname, address and HTTP port."""

    hostname: str
    ip: str | None
    port: int


#: One record a task, agent or master contributes: (kind "A" or "SRV", name, value).
Entry = tuple[str, str, "str | Srv"]


class _Sorted(Mapping[str, tuple[Any, ...]]):
    """A live view of name → values (each kept with a count of contributors), sorted."""

    def __init__(self, values: dict[str, Counter[Any]], key: Callable[[Any], Any]) -> None:
        self._values = values
        self._key = key

    def __getitem__(self, name: str) -> tuple[Any, ...]:
        return tuple(sorted(self._values[name], key=self._key))

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _ip_key(ip: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(ip)


def _srv_key(srv: Srv) -> tuple[str, int]:
    return (srv.target, srv.port)


class Records:
    """Every record of the zone (a live view): A and SRV by name, and every name that exists.

    A name exists when it has records or is an ancestor of one inside the zone
    (``marathon.mesos`` exists while a task of ``marathon`` is published).  The index is
    kept up to date entry by entry as tasks, agents and masters change, so a change costs
    what it touches, not the size of the cluster.
    """

    def __init__(self, domain: str) -> None:
        """An empty zone (only the apex exists)."""
        self.domain = domain
        self._a: dict[str, Counter[str]] = {}
        self._srv: dict[str, Counter[Srv]] = {}
        self._names: Counter[str] = Counter({domain: 1})
        self._depth = domain.count(".") + 1
        #: A records by name (sorted addresses).
        self.a: Mapping[str, tuple[str, ...]] = _Sorted(self._a, _ip_key)
        #: SRV records by name (sorted by target, port).
        self.srv: Mapping[str, tuple[Srv, ...]] = _Sorted(self._srv, _srv_key)

    @property
    def names(self) -> Collection[str]:
        """Every name that exists."""
        return self._names.keys()

    def change(self, entries: tuple[Entry, ...], sign: int) -> None:
        """Add (``sign`` 1) or withdraw (-1) one contributor's entries."""
        for kind, name, value in entries:
            table: dict[str, Counter[Any]] = self._a if kind == "A" else self._srv
            values = table.setdefault(name, Counter())
            values[value] += sign
            if values[value] <= 0:
                del values[value]
                if not values:
                    del table[name]
            parts = name.split(".")
            for i in range(len(parts) - self._depth):
                ancestor = ".".join(parts[i:])
                self._names[ancestor] += sign
                if self._names[ancestor] <= 0:
                    del self._names[ancestor]


# ---------------------------------------------------------------- reading events


def _obj(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FeedError(field, f"expected an object, got {type(value).__name__}")
    return value


def _list(value: object, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FeedError(field, f"expected an array, got {type(value).__name__}")
    return value


def _str(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise FeedError(field, f"expected a string, got {type(value).__name__}")
    return value


def _id(value: object, field: str) -> str:
    return _str(_obj(value, field).get("value"), f"{field}.value")


def _port(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise FeedError(field, f"expected a port number, got {value!r}")
    return value


def _ports(resources: object, field: str, limit: int = 64) -> tuple[int, ...]:
    """The ``ports`` ranges of a resource list (at most ``limit`` ports are published)."""
    ports: list[int] = []
    for i, item in enumerate(_list(resources, field)):
        entry = _obj(item, f"{field}[{i}]")
        if entry.get("name") != "ports":
            continue
        ranges = _obj(entry.get("ranges", {}), f"{field}[{i}].ranges")
        for j, rng in enumerate(_list(ranges.get("range"), f"{field}[{i}].ranges.range")):
            where = f"{field}[{i}].ranges.range[{j}]"
            bounds = _obj(rng, where)
            begin = _port(bounds.get("begin"), f"{where}.begin")
            end = _port(bounds.get("end"), f"{where}.end")
            ports.extend(range(begin, min(end, begin + limit) + 1))
            if len(ports) >= limit:
                return tuple(sorted(set(ports[:limit])))
    return tuple(sorted(set(ports)))


def _healthy(status: object, field: str) -> bool | None:
    if status is None:
        return None
    value = _obj(status, field).get("healthy")
    if value is None or isinstance(value, bool):
        return value
    raise FeedError(f"{field}.healthy", f"expected true or false, got {value!r}")


def parse_task(value: object, field: str) -> Task:
    """A v1 ``Task`` object as a :class:`Task`."""
    task = _obj(value, field)
    statuses = _list(task.get("statuses"), f"{field}.statuses")
    return Task(
        framework_id=_id(task.get("framework_id"), f"{field}.framework_id"),
        task_id=_id(task.get("task_id"), f"{field}.task_id"),
        name=_str(task.get("name", ""), f"{field}.name"),
        agent_id=_id(task.get("agent_id"), f"{field}.agent_id"),
        state=_str(task.get("state"), f"{field}.state"),
        healthy=_healthy(statuses[-1], f"{field}.statuses[-1]") if statuses else None,
        ports=_ports(task.get("resources"), f"{field}.resources"))


# ---------------------------------------------------------------- the table


class RecordTable:
    """Tasks, frameworks, agents and masters, and the records they make."""

    def __init__(self, domain: str, *, healthy_only: bool = False,
                 resolve: Callable[[str], str | None] = ipv4_only,
                 own_ip: str | None = None) -> None:
        """Publish under ``domain`` (already checked); ``resolve`` maps agent hostnames."""
        self.domain = domain
        self.healthy_only = healthy_only
        self.resolve = resolve
        self.own_ip = own_ip
        self.tasks: dict[tuple[str, str], Task] = {}
        self.frameworks: dict[str, str] = {}
        self.agents: dict[str, Agent] = {}
        self.leader: Master | None = None
        self.masters: tuple[Master, ...] = ()
        #: Bumped at every change of the records (the SOA serial).
        self.serial = 1
        self.events = 0
        self.records = Records(domain)
        self._entries: dict[tuple[str, ...], tuple[Entry, ...]] = {}
        self._put(("ns",), self._own_entries())

    # ------------------------------------------------------------ the index

    def _put(self, key: tuple[str, ...], entries: tuple[Entry, ...]) -> None:
        """Replace the entries contributed under ``key``."""
        old = self._entries.pop(key, ())
        if old == entries:
            if entries:
                self._entries[key] = entries
            return
        self.records.change(old, -1)
        if entries:
            self.records.change(entries, 1)
            self._entries[key] = entries
        self.serial = (self.serial + 1) % 2**32 or 1

    def _refresh_tasks(self, *, agent_id: str | None = None,
                       framework_id: str | None = None) -> None:
        """Recompute the entries of the tasks on ``agent_id`` or of ``framework_id``."""
        for key, task in self.tasks.items():
            if task.agent_id == agent_id or task.framework_id == framework_id:
                self._put(("task", *key), self._task_entries(task))

    # ------------------------------------------------------------ changes

    def set_masters(self, leader: Master | None, masters: tuple[Master, ...]) -> None:
        """The leading master and every known one (the leader need not be among them)."""
        self.leader = leader
        self.masters = masters
        self._put(("masters",), self._master_entries())

    def apply(self, event: object) -> bool:
        """Apply one operator event; True when it was one DNS follows."""
        body = _obj(event, "event")
        kind = _str(body.get("type"), "type")
        self.events += 1
        if kind == "SUBSCRIBED":
            state = _obj(_obj(body.get("subscribed"), "subscribed").get("get_state"),
                         "subscribed.get_state")
            self._load(state, "subscribed.get_state")
        elif kind == "TASK_ADDED":
            self._put_task(parse_task(_obj(body.get("task_added"), "task_added").get("task"),
                                      "task_added.task"))
        elif kind == "TASK_UPDATED":
            self._update_task(_obj(body.get("task_updated"), "task_updated"))
        elif kind == "AGENT_ADDED":
            self._put_agent(_obj(body.get("agent_added"), "agent_added").get("agent"),
                            "agent_added.agent")
        elif kind == "AGENT_REMOVED":
            agent_id = _id(_obj(body.get("agent_removed"), "agent_removed").get("agent_id"),
                           "agent_removed.agent_id")
            if self.agents.pop(agent_id, None) is not None:
                self._put(("agent", agent_id), ())
                self._refresh_tasks(agent_id=agent_id)
        elif kind in ("FRAMEWORK_ADDED", "FRAMEWORK_UPDATED"):
            key = kind.lower()
            framework = _obj(_obj(body.get(key), key).get("framework"), f"{key}.framework")
            self._put_framework(framework.get("framework_info"), f"{key}.framework.framework_info")
        elif kind == "FRAMEWORK_REMOVED":
            info = _obj(_obj(body.get("framework_removed"), "framework_removed")
                        .get("framework_info"), "framework_removed.framework_info")
            framework_id = _id(info.get("id"), "framework_removed.framework_info.id")
            self.frameworks.pop(framework_id, None)
            for task_key in [k for k in self.tasks if k[0] == framework_id]:
                del self.tasks[task_key]
                self._put(("task", *task_key), ())
        else:  # HEARTBEAT and events that name nothing DNS publishes
            return False
        return True

    def _load(self, state: dict[str, Any], field: str) -> None:
        """Replace everything with a GET_STATE answer (checked whole before it is used)."""
        tasks: dict[tuple[str, str], Task] = {}
        listed = _obj(state.get("get_tasks", {}), f"{field}.get_tasks")
        for i, item in enumerate(_list(listed.get("tasks"), f"{field}.get_tasks.tasks")):
            task = parse_task(item, f"{field}.get_tasks.tasks[{i}]")
            if task.state not in TERMINAL:
                tasks[task.framework_id, task.task_id] = task
        frameworks: dict[str, str] = {}
        listed = _obj(state.get("get_frameworks", {}), f"{field}.get_frameworks")
        where = f"{field}.get_frameworks.frameworks"
        for i, item in enumerate(_list(listed.get("frameworks"), where)):
            framework_id, name = _framework(_obj(item, f"{where}[{i}]").get("framework_info"),
                                            f"{where}[{i}].framework_info")
            frameworks[framework_id] = name
        agents: dict[str, Agent] = {}
        listed = _obj(state.get("get_agents", {}), f"{field}.get_agents")
        for i, item in enumerate(_list(listed.get("agents"), f"{field}.get_agents.agents")):
            agent = self._agent(item, f"{field}.get_agents.agents[{i}]")
            agents[agent.id] = agent
        self.tasks, self.frameworks, self.agents = tasks, frameworks, agents
        self.records = Records(self.domain)
        self._entries = {}
        self._put(("ns",), self._own_entries())
        self._put(("masters",), self._master_entries())
        for agent in agents.values():
            self._put(("agent", agent.id), self._agent_entries(agent))
        for key, task in tasks.items():
            self._put(("task", *key), self._task_entries(task))

    def _put_task(self, task: Task) -> None:
        key = (task.framework_id, task.task_id)
        if task.state in TERMINAL:
            self.tasks.pop(key, None)
            self._put(("task", *key), ())
        else:
            self.tasks[key] = task
            self._put(("task", *key), self._task_entries(task))

    def _update_task(self, body: dict[str, Any]) -> None:
        framework_id = _id(body.get("framework_id"), "task_updated.framework_id")
        status = _obj(body.get("status"), "task_updated.status")
        task_id = _id(status.get("task_id"), "task_updated.status.task_id")
        state = _str(body.get("state"), "task_updated.state")
        healthy = _healthy(status, "task_updated.status")
        known = self.tasks.get((framework_id, task_id))
        if known is None:
            return  # added before we subscribed and already gone, or never launched
        self._put_task(attrs.evolve(known, state=state, healthy=healthy))

    def _put_framework(self, info: object, field: str) -> None:
        framework_id, name = _framework(info, field)
        if self.frameworks.get(framework_id) != name:
            self.frameworks[framework_id] = name
            self._refresh_tasks(framework_id=framework_id)

    def _agent(self, value: object, field: str) -> Agent:
        info = _obj(_obj(value, field).get("agent_info"), f"{field}.agent_info")
        hostname = _str(info.get("hostname"), f"{field}.agent_info.hostname")
        agent_id = _id(info.get("id"), f"{field}.agent_info.id")
        port = _port(info.get("port", 5051), f"{field}.agent_info.port")
        return Agent(agent_id, hostname, self.resolve(hostname), port)

    def _put_agent(self, value: object, field: str) -> None:
        agent = self._agent(value, field)
        if self.agents.get(agent.id) != agent:
            self.agents[agent.id] = agent
            self._put(("agent", agent.id), self._agent_entries(agent))
            self._refresh_tasks(agent_id=agent.id)

    # ------------------------------------------------------------ records

    def published(self, task: Task) -> bool:
        """True when ``task`` is published (running; healthy too with ``healthy_only``)."""
        if task.state != RUNNING:
            return False
        return not self.healthy_only or task.healthy is True

    def _task_entries(self, task: Task) -> tuple[Entry, ...]:
        """What a task publishes (nothing unless running with a usable name and agent)."""
        agent = self.agents.get(task.agent_id)
        framework = label(self.frameworks.get(task.framework_id, ""))
        name = label(task.name)
        if agent is None or agent.ip is None or not framework or not name \
                or not self.published(task):
            return ()
        d, ip = self.domain, agent.ip
        target = f"{label(name[:56])}-{tag(task.task_id)}.{framework}.{d}"
        entries: list[Entry] = [("A", f"{name}.{framework}.{d}", ip),
                                ("A", f"{name}.{framework}.agent.{d}", ip),
                                ("A", f"{name}.{framework}.slave.{d}", ip),
                                ("A", target, ip)]
        for port in task.ports:
            for proto in ("_tcp", "_udp"):
                entries.append(("SRV", f"_{name}.{proto}.{framework}.{d}", Srv(port, target)))
        return tuple(entries)

    def _agent_entries(self, agent: Agent) -> tuple[Entry, ...]:
        if agent.ip is None:
            return ()
        d = self.domain
        own = f"{label(agent.id) or tag(agent.id)}.agent.{d}"
        return (("A", own, agent.ip), ("A", f"agent.{d}", agent.ip),
                ("A", f"slave.{d}", agent.ip), ("SRV", f"_agent._tcp.{d}", Srv(agent.port, own)),
                ("SRV", f"_slave._tcp.{d}", Srv(agent.port, own)))

    def _master_entries(self) -> tuple[Entry, ...]:
        d = self.domain
        entries: list[Entry] = []
        leader = self.leader
        if leader is not None and leader.ip is not None:
            entries += [("A", f"leader.{d}", leader.ip), ("A", f"master.{d}", leader.ip),
                        ("SRV", f"_leader._tcp.{d}", Srv(leader.port, f"leader.{d}")),
                        ("SRV", f"_leader._udp.{d}", Srv(leader.port, f"leader.{d}"))]
        for index, master in enumerate(self.masters):
            if master.ip is not None:
                entries += [("A", f"master.{d}", master.ip),
                            ("A", f"master{index}.{d}", master.ip)]
        return tuple(entries)

    def _own_entries(self) -> tuple[Entry, ...]:
        return (("A", f"ns1.{self.domain}", self.own_ip),) if self.own_ip else ()


def _framework(info: object, field: str) -> tuple[str, str]:
    """(id, name) of a v1 FrameworkInfo."""
    body = _obj(info, field)
    return _id(body.get("id"), f"{field}.id"), _str(body.get("name", ""), f"{field}.name")
