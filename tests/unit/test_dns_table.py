"""The DNS record table and answers, from fake operator events (no sockets)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from mesoslite.dns.answer import Soa, resolve
from mesoslite.dns.names import check_domain, label, tag
from mesoslite.dns.table import FeedError, Master, RecordTable, Srv

# ------------------------------------------------------------------ fake v1 events


def task(task_id: str, name: str, *, framework: str = "fw-1", agent: str = "agent-S0",
         state: str = "TASK_RUNNING", ports: tuple[tuple[int, int], ...] = (),
         healthy: bool | None = None) -> dict[str, Any]:
    """A v1 Task as the operator API renders it."""
    resources: list[dict[str, Any]] = [{"name": "cpus", "type": "SCALAR",
                                        "scalar": {"value": 0.1}}]
    if ports:
        resources.append({"name": "ports", "type": "RANGES", "ranges": {
            "range": [{"begin": b, "end": e} for b, e in ports]}})
    status: dict[str, Any] = {"task_id": {"value": task_id}, "state": state}
    if healthy is not None:
        status["healthy"] = healthy
    return {"name": name, "task_id": {"value": task_id}, "framework_id": {"value": framework},
            "agent_id": {"value": agent}, "state": state, "resources": resources,
            "statuses": [status]}


def agent(agent_id: str, hostname: str, port: int = 5051) -> dict[str, Any]:
    """A v1 agent of GET_AGENTS."""
    return {"agent_info": {"id": {"value": agent_id}, "hostname": hostname, "port": port}}


def framework(framework_id: str, name: str) -> dict[str, Any]:
    """A v1 framework of GET_FRAMEWORKS."""
    return {"framework_info": {"id": {"value": framework_id}, "name": name}}


def subscribed(tasks: Sequence[dict[str, Any]] = (), agents: Sequence[dict[str, Any]] = (),
               frameworks: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A SUBSCRIBED event with its GET_STATE snapshot."""
    return {"type": "SUBSCRIBED", "subscribed": {"heartbeat_interval_seconds": 15, "get_state": {
        "get_tasks": {"tasks": list(tasks)}, "get_agents": {"agents": list(agents)},
        "get_frameworks": {"frameworks": list(frameworks)}}}}


def updated(task_id: str, state: str, *, framework: str = "fw-1",
            healthy: bool | None = None) -> dict[str, Any]:
    """A TASK_UPDATED event."""
    status: dict[str, Any] = {"task_id": {"value": task_id}, "state": state}
    if healthy is not None:
        status["healthy"] = healthy
    return {"type": "TASK_UPDATED", "task_updated": {
        "framework_id": {"value": framework}, "agent_id": {"value": "agent-S0"},
        "state": state, "status": status}}


def cluster(**options: Any) -> RecordTable:
    """A table with one agent (10.0.0.5) and the framework ``marathon``."""
    table = RecordTable("mesos", **options)
    table.apply(subscribed(agents=[agent("agent-S0", "10.0.0.5")],
                           frameworks=[framework("fw-1", "marathon")]))
    return table


def ask(table: RecordTable, name: str, qtype: str = "A") -> Any:
    """The answer the table gives."""
    return resolve(table.records, name, qtype, domain="mesos", ttl=60,
                   soa=Soa("ns1.mesos", "root.ns1.mesos", table.serial))


def addresses(table: RecordTable, name: str) -> list[str]:
    """The A answer's addresses."""
    return [rr.data for rr in ask(table, name).answer]


# ------------------------------------------------------------------ names


@pytest.mark.parametrize(("name", "expected"), [
    ("web", "web"), ("app.group", "app-group"), ("My_App", "my-app"),
    ("-x-", "x"), ("a b/c", "a-b-c"), ("日本", ""), ("a" * 70, "a" * 63),
    ("a" * 62 + ".b", "a" * 62),
])
def test_label_sanitizes_names_as_mesos_dns_does(name: str, expected: str) -> None:
    """Names become one lower-case RFC 1123 label; dots and other characters become hyphens."""
    assert label(name) == expected


def test_check_domain_refuses_bad_domains() -> None:
    """The domain is lower-cased; empty labels and bad characters are refused."""
    assert check_domain("Mesos.") == "mesos"
    assert check_domain("cluster.example") == "cluster.example"
    for bad in ("", "a..b", "-x", "x_y", "a" * 64):
        with pytest.raises(ValueError, match="expected"):
            check_domain(bad)


def test_tag_is_stable_and_short() -> None:
    """The per-task tag depends on the id only."""
    assert tag("web.1234") == tag("web.1234")
    assert tag("web.1234") != tag("web.1235")
    assert len(tag("x")) == 5 and label(tag("x")) == tag("x")


# ------------------------------------------------------------------ records


def test_running_task_gets_a_and_srv_records() -> None:
    """A running Marathon task /group/app (named app.group) resolves as app-group.marathon."""
    table = cluster()
    table.apply({"type": "TASK_ADDED", "task_added": {"task": task(
        "app.1", "app.group", state="TASK_STAGING", ports=((31000, 31001),))}})
    assert ask(table, "app-group.marathon.mesos").rcode == "NXDOMAIN"
    table.apply(updated("app.1", "TASK_RUNNING"))
    for name in ("app-group.marathon.mesos", "app-group.marathon.agent.mesos",
                 "app-group.marathon.slave.mesos"):
        assert addresses(table, name) == ["10.0.0.5"]
    srv = ask(table, "_app-group._tcp.marathon.mesos", "SRV")
    target = f"app-group-{tag('app.1')}.marathon.mesos"
    assert [rr.data for rr in srv.answer] == [Srv(31000, target), Srv(31001, target)]
    assert [(rr.name, rr.data) for rr in srv.additional] == [(target, "10.0.0.5")]
    assert [rr.data for rr in ask(table, "_app-group._udp.marathon.mesos", "SRV").answer] == \
        [Srv(31000, target), Srv(31001, target)]


def test_terminal_update_removes_the_task() -> None:
    """After TASK_KILLED the name is gone (NXDOMAIN with the SOA)."""
    table = cluster()
    table.apply({"type": "TASK_ADDED", "task_added": {"task": task("w.1", "web")}})
    assert addresses(table, "web.marathon.mesos") == ["10.0.0.5"]
    table.apply(updated("w.1", "TASK_KILLING"))
    assert addresses(table, "web.marathon.mesos") == []
    table.apply(updated("w.1", "TASK_KILLED"))
    answer = ask(table, "web.marathon.mesos")
    assert answer.rcode == "NXDOMAIN"
    assert [rr.kind for rr in answer.authority] == ["SOA"]
    assert not table.tasks


def test_instances_on_two_agents_give_two_addresses() -> None:
    """Tasks with the same name on two agents: the A record lists both agents."""
    table = cluster()
    table.apply({"type": "AGENT_ADDED", "agent_added": {"agent": agent("agent-S1", "10.0.0.7")}})
    table.apply({"type": "TASK_ADDED", "task_added": {"task": task("w.1", "web")}})
    table.apply({"type": "TASK_ADDED", "task_added": {"task": task("w.2", "web",
                                                                  agent="agent-S1")}})
    assert addresses(table, "web.marathon.mesos") == ["10.0.0.5", "10.0.0.7"]
    assert addresses(table, "slave.mesos") == ["10.0.0.5", "10.0.0.7"]
    assert addresses(table, "agent.mesos") == ["10.0.0.5", "10.0.0.7"]
    table.apply({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": "agent-S1"}}})
    assert addresses(table, "web.marathon.mesos") == ["10.0.0.5"]


def test_healthy_only_publishes_tasks_that_pass_their_checks() -> None:
    """With healthy_only a running task appears once its status says healthy."""
    table = cluster(healthy_only=True)
    table.apply({"type": "TASK_ADDED", "task_added": {"task": task("w.1", "web")}})
    assert addresses(table, "web.marathon.mesos") == []
    table.apply(updated("w.1", "TASK_RUNNING", healthy=True))
    assert addresses(table, "web.marathon.mesos") == ["10.0.0.5"]
    table.apply(updated("w.1", "TASK_RUNNING", healthy=False))
    assert addresses(table, "web.marathon.mesos") == []
    plain = cluster()
    plain.apply({"type": "TASK_ADDED", "task_added": {"task": task("w.1", "web",
                                                                  healthy=False)}})
    assert addresses(plain, "web.marathon.mesos") == ["10.0.0.5"]


def test_subscribed_replaces_everything() -> None:
    """A new SUBSCRIBED snapshot (after a reconnect) drops what it no longer lists."""
    table = cluster()
    table.apply({"type": "TASK_ADDED", "task_added": {"task": task("w.1", "web")}})
    table.apply(subscribed(tasks=[task("d.1", "db")], agents=[agent("agent-S0", "10.0.0.5")],
                           frameworks=[framework("fw-1", "marathon")]))
    assert ask(table, "web.marathon.mesos").rcode == "NXDOMAIN"
    assert addresses(table, "db.marathon.mesos") == ["10.0.0.5"]


def test_framework_removed_drops_its_tasks_and_names() -> None:
    """FRAMEWORK_REMOVED removes the framework's tasks."""
    table = cluster()
    table.apply({"type": "TASK_ADDED", "task_added": {"task": task("w.1", "web")}})
    table.apply({"type": "FRAMEWORK_REMOVED", "framework_removed": {
        "framework_info": {"id": {"value": "fw-1"}, "name": "marathon"}}})
    assert ask(table, "marathon.mesos").rcode == "NXDOMAIN"


def test_masters_and_leader() -> None:
    """leader.mesos, master.mesos, masterN.mesos and the _leader SRV records."""
    table = cluster()
    table.set_masters(Master("m2", "10.0.0.2", 5050),
                      (Master("m1", "10.0.0.1", 5050), Master("m2", "10.0.0.2", 5050)))
    assert addresses(table, "leader.mesos") == ["10.0.0.2"]
    assert addresses(table, "master.mesos") == ["10.0.0.1", "10.0.0.2"]
    assert addresses(table, "master0.mesos") == ["10.0.0.1"]
    srv = ask(table, "_leader._tcp.mesos", "SRV")
    assert [rr.data for rr in srv.answer] == [Srv(5050, "leader.mesos")]
    agents = ask(table, "_slave._tcp.mesos", "SRV")
    assert [rr.data.port for rr in agents.answer] == [5051]


def test_apex_soa_ns_and_negative_answers() -> None:
    """SOA/NS at the apex; NOERROR without records for inner names; REFUSED outside."""
    table = RecordTable("mesos", own_ip="127.0.0.1")
    soa = ask(table, "mesos", "SOA")
    assert soa.rcode == "NOERROR" and soa.answer[0].data.mname == "ns1.mesos"
    ns = ask(table, "mesos", "NS")
    assert ns.answer[0].data == "ns1.mesos"
    assert [rr.data for rr in ns.additional] == ["127.0.0.1"]
    assert ask(table, "mesos", "A").rcode == "NOERROR"
    assert ask(table, "ns1.mesos", "AAAA").rcode == "NOERROR"
    assert ask(table, "ns1.mesos", "AAAA").authority[0].kind == "SOA"
    assert ask(table, "example.com").rcode == "REFUSED"
    assert ask(table, "xmesos").rcode == "REFUSED"
    assert ask(table, "x.mesos").rcode == "NXDOMAIN"


def test_unusable_names_and_unresolved_agents_are_not_published() -> None:
    """A task whose name leaves no label, or whose agent has no address, has no record."""
    table = RecordTable("mesos")
    table.apply(subscribed(agents=[agent("agent-S0", "agent.example")],
                           frameworks=[framework("fw-1", "marathon")],
                           tasks=[task("w.1", "web")]))
    assert ask(table, "web.marathon.mesos").rcode == "NXDOMAIN"
    resolved = RecordTable("mesos", resolve=lambda host: "10.1.1.1")
    resolved.apply(subscribed(agents=[agent("agent-S0", "agent.example")],
                              frameworks=[framework("fw-1", "marathon")],
                              tasks=[task("w.1", "web"), task("x.1", "%%%")]))
    assert addresses(resolved, "web.marathon.mesos") == ["10.1.1.1"]
    assert sorted(n for n in resolved.records.a if n.endswith(".marathon.mesos")) == [
        f"web-{tag('w.1')}.marathon.mesos", "web.marathon.mesos"]


def test_serial_changes_with_the_records() -> None:
    """Every change bumps the SOA serial; a HEARTBEAT does not."""
    table = cluster()
    serial = table.serial
    assert table.apply({"type": "HEARTBEAT"}) is False
    assert table.serial == serial
    table.apply({"type": "TASK_ADDED", "task_added": {"task": task("w.1", "web")}})
    assert table.serial == serial + 1


@pytest.mark.parametrize(("event", "field"), [
    ({"type": 7}, "type"),
    ({"type": "SUBSCRIBED", "subscribed": []}, "subscribed"),
    ({"type": "TASK_ADDED", "task_added": {"task": {"name": "x"}}},
     "task_added.task.framework_id"),
    ({"type": "TASK_UPDATED", "task_updated": {"framework_id": {"value": "f"}, "state": "X",
                                               "status": {"task_id": 3}}},
     "task_updated.status.task_id"),
    ({"type": "AGENT_ADDED", "agent_added": {"agent": {"agent_info": {
        "id": {"value": "a"}, "hostname": "h", "port": 99999}}}},
     "agent_added.agent.agent_info.port"),
    ({"type": "TASK_ADDED", "task_added": {"task": {**task("w", "w"), "resources": [
        {"name": "ports", "ranges": {"range": [{"begin": "x", "end": 2}]}}]}}},
     "task_added.task.resources[0].ranges.range[0].begin"),
])
def test_malformed_events_raise_feed_error_naming_the_field(event: Any, field: str) -> None:
    """An event without the v1 shape is refused with the path of the bad field."""
    table = cluster()
    table.apply({"type": "TASK_ADDED", "task_added": {"task": task("w.1", "web")}})
    before = dict(table.records.a)
    with pytest.raises(FeedError) as caught:
        table.apply(event)
    assert caught.value.field == field
    assert dict(table.records.a) == before


def test_port_ranges_are_bounded() -> None:
    """A task holding a huge port range publishes at most 64 ports."""
    table = cluster()
    table.apply({"type": "TASK_ADDED", "task_added": {"task": task(
        "w.1", "web", ports=((1000, 60000),))}})
    assert len(ask(table, "_web._tcp.marathon.mesos", "SRV").answer) == 64


def test_the_incremental_index_matches_a_fresh_snapshot() -> None:
    """After 600 random events the records equal those of a table loaded from a snapshot."""
    rng = random.Random(14)
    table = RecordTable("mesos")
    table.apply(subscribed(frameworks=[framework("fw-1", "marathon")]))
    states = ["TASK_STAGING", "TASK_RUNNING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"]
    for _ in range(600):
        roll = rng.random()
        agent_id = f"agent-S{rng.randrange(4)}"
        if roll < 0.1:
            table.apply({"type": "AGENT_ADDED", "agent_added": {
                "agent": agent(agent_id, f"10.0.0.{rng.randrange(1, 4)}")}})
        elif roll < 0.15:
            table.apply({"type": "AGENT_REMOVED", "agent_removed": {
                "agent_id": {"value": agent_id}}})
        elif roll < 0.2:
            fw = f"fw-{rng.randrange(1, 3)}"
            table.apply({"type": "FRAMEWORK_UPDATED", "framework_updated": {
                "framework": framework(fw, rng.choice(["marathon", "chronos"]))}})
        elif roll < 0.5:
            table.apply({"type": "TASK_ADDED", "task_added": {"task": task(
                f"t{rng.randrange(30)}", f"app{rng.randrange(5)}.g",
                framework=f"fw-{rng.randrange(1, 3)}", agent=agent_id,
                state=rng.choice(states[:2]), ports=((31000 + rng.randrange(5),) * 2,))}})
        else:
            table.apply(updated(f"t{rng.randrange(30)}", rng.choice(states),
                                framework=f"fw-{rng.randrange(1, 3)}"))
    fresh = RecordTable("mesos")
    fresh.apply(subscribed(
        agents=[agent(a.id, a.hostname, a.port) for a in table.agents.values()],
        frameworks=[framework(f, n) for f, n in table.frameworks.items()],
        tasks=[task(t.task_id, t.name, framework=t.framework_id, agent=t.agent_id,
                    state=t.state, ports=tuple((p, p) for p in t.ports))
               for t in table.tasks.values()]))
    assert dict(table.records.a) == dict(fresh.records.a)
    assert dict(table.records.srv) == dict(fresh.records.srv)
    assert set(table.records.names) == set(fresh.records.names)
    assert any(n.endswith(".marathon.mesos") for n in table.records.a)
