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
from collections.abc import Callable, Mapping
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


@attrs.frozen
class Records:
    """Every record of the zone: A and SRV by name, and every name that exists."""

    a: Mapping[str, tuple[str, ...]]
    srv: Mapping[str, tuple[Srv, ...]]
    names: frozenset[str]


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
        self._records: Records | None = None

    # ------------------------------------------------------------ changes

    def _changed(self) -> None:
        self.serial = (self.serial + 1) % 2**32 or 1
        self._records = None

    def set_masters(self, leader: Master | None, masters: tuple[Master, ...]) -> None:
        """The leading master and every known one (the leader need not be among them)."""
        if leader != self.leader or masters != self.masters:
            self.leader = leader
            self.masters = masters
            self._changed()

    def apply(self, event: object) -> bool:
        """Apply one operator event; True when the records may have changed."""
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
            if self.agents.pop(agent_id, None) is None:
                return False
        elif kind in ("FRAMEWORK_ADDED", "FRAMEWORK_UPDATED"):
            key = kind.lower()
            framework = _obj(_obj(body.get(key), key).get("framework"), f"{key}.framework")
            self._put_framework(framework.get("framework_info"), f"{key}.framework.framework_info")
        elif kind == "FRAMEWORK_REMOVED":
            info = _obj(_obj(body.get("framework_removed"), "framework_removed")
                        .get("framework_info"), "framework_removed.framework_info")
            framework_id = _id(info.get("id"), "framework_removed.framework_info.id")
            self.frameworks.pop(framework_id, None)
            self.tasks = {k: t for k, t in self.tasks.items() if k[0] != framework_id}
        else:  # HEARTBEAT and events that name nothing DNS publishes
            return False
        self._changed()
        return True

    def _load(self, state: dict[str, Any], field: str) -> None:
        """Replace everything with a GET_STATE answer."""
        tasks: dict[tuple[str, str], Task] = {}
        listed = _obj(state.get("get_tasks", {}), f"{field}.get_tasks")
        for i, item in enumerate(_list(listed.get("tasks"), f"{field}.get_tasks.tasks")):
            task = parse_task(item, f"{field}.get_tasks.tasks[{i}]")
            if task.state not in TERMINAL:
                tasks[task.framework_id, task.task_id] = task
        self.tasks = tasks
        self.frameworks = {}
        frameworks = _obj(state.get("get_frameworks", {}), f"{field}.get_frameworks")
        where = f"{field}.get_frameworks.frameworks"
        for i, item in enumerate(_list(frameworks.get("frameworks"), where)):
            self._put_framework(_obj(item, f"{where}[{i}]").get("framework_info"),
                                f"{where}[{i}].framework_info")
        self.agents = {}
        agents = _obj(state.get("get_agents", {}), f"{field}.get_agents")
        for i, item in enumerate(_list(agents.get("agents"), f"{field}.get_agents.agents")):
            self._put_agent(item, f"{field}.get_agents.agents[{i}]")

    def _put_task(self, task: Task) -> None:
        if task.state in TERMINAL:
            self.tasks.pop((task.framework_id, task.task_id), None)
        else:
            self.tasks[task.framework_id, task.task_id] = task

    def _update_task(self, body: dict[str, Any]) -> None:
        framework_id = _id(body.get("framework_id"), "task_updated.framework_id")
        status = _obj(body.get("status"), "task_updated.status")
        task_id = _id(status.get("task_id"), "task_updated.status.task_id")
        state = _str(body.get("state"), "task_updated.state")
        healthy = _healthy(status, "task_updated.status")
        known = self.tasks.get((framework_id, task_id))
        if known is None:
            return  # added before we subscribed and already gone, or never launched
        if state in TERMINAL:
            del self.tasks[framework_id, task_id]
        else:
            self.tasks[framework_id, task_id] = attrs.evolve(known, state=state,
                                                             healthy=healthy)

    def _put_framework(self, info: object, field: str) -> None:
        body = _obj(info, field)
        self.frameworks[_id(body.get("id"), f"{field}.id")] = _str(body.get("name", ""),
                                                                  f"{field}.name")

    def _put_agent(self, value: object, field: str) -> None:
        info = _obj(_obj(value, field).get("agent_info"), f"{field}.agent_info")
        hostname = _str(info.get("hostname"), f"{field}.agent_info.hostname")
        agent_id = _id(info.get("id"), f"{field}.agent_info.id")
        port = _port(info.get("port", 5051), f"{field}.agent_info.port")
        self.agents[agent_id] = Agent(agent_id, hostname, self.resolve(hostname), port)

    # ------------------------------------------------------------ records

    def published(self, task: Task) -> bool:
        """True when ``task`` is published (running; healthy too with ``healthy_only``)."""
        if task.state != RUNNING:
            return False
        return not self.healthy_only or task.healthy is True

    @property
    def records(self) -> Records:
        """The records now (rebuilt after a change, on first use)."""
        if self._records is None:
            self._records = self._build()
        return self._records

    def _build(self) -> Records:
        a: dict[str, set[str]] = {}
        srv: dict[str, set[Srv]] = {}
        d = self.domain

        def add_a(name: str, ip: str | None) -> None:
            if ip is not None:
                a.setdefault(name, set()).add(ip)

        for task in self.tasks.values():
            agent = self.agents.get(task.agent_id)
            framework = label(self.frameworks.get(task.framework_id, ""))
            name = label(task.name)
            if agent is None or agent.ip is None or not framework or not name \
                    or not self.published(task):
                continue
            for host in (f"{name}.{framework}.{d}", f"{name}.{framework}.agent.{d}",
                         f"{name}.{framework}.slave.{d}"):
                add_a(host, agent.ip)
            target = f"{label(name[:56])}-{tag(task.task_id)}.{framework}.{d}"
            add_a(target, agent.ip)
            for port in task.ports:
                for proto in ("_tcp", "_udp"):
                    srv.setdefault(f"_{name}.{proto}.{framework}.{d}", set()).add(
                        Srv(port, target))
        for agent in self.agents.values():
            own = f"{label(agent.id) or tag(agent.id)}.agent.{d}"
            add_a(own, agent.ip)
            add_a(f"agent.{d}", agent.ip)
            add_a(f"slave.{d}", agent.ip)
            if agent.ip is not None:
                for service in (f"_agent._tcp.{d}", f"_slave._tcp.{d}"):
                    srv.setdefault(service, set()).add(Srv(agent.port, own))
        self._masters(add_a, srv)
        add_a(f"ns1.{d}", self.own_ip)
        return _records(d, a, srv)

    def _masters(self, add_a: Callable[[str, str | None], None],
                 srv: dict[str, set[Srv]]) -> None:
        d = self.domain
        if self.leader is not None and self.leader.ip is not None:
            add_a(f"leader.{d}", self.leader.ip)
            add_a(f"master.{d}", self.leader.ip)
            for proto in ("_tcp", "_udp"):
                srv.setdefault(f"_leader.{proto}.{d}", set()).add(
                    Srv(self.leader.port, f"leader.{d}"))
        for index, master in enumerate(self.masters):
            add_a(f"master.{d}", master.ip)
            add_a(f"master{index}.{d}", master.ip)


def _records(domain: str, a: dict[str, set[str]], srv: dict[str, set[Srv]]) -> Records:
    """Freeze the maps and list every name, with each ancestor inside the zone."""
    names = {domain}
    for name in list(a) + list(srv):
        parts = name.split(".")
        for i in range(len(parts) - domain.count(".")):
            names.add(".".join(parts[i:]))
    return Records(
        a={k: tuple(sorted(v, key=ipaddress.IPv4Address)) for k, v in a.items()},
        srv={k: tuple(sorted(v, key=lambda s: (s.target, s.port))) for k, v in srv.items()},
        names=frozenset(names))
