"""``mesoslite dns`` against a real master and agents (processes on loopback).

A framework written with the scheduler SDK starts and kills tasks; dnspython asks the
DNS server over UDP and TCP until the answers follow (every wait has a deadline).  The
two agents advertise the hostnames 127.0.0.2 and 127.0.0.3 (they listen on 127.0.0.1),
so that the A records of tasks on each can be told apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import dns.message
import dns.query
import dns.rcode
import pytest

from mesoslite.protocol import TaskState
from tests.support.cluster_procs import ProcCluster
from tests.support.frameworks import RecordingScheduler, running_framework, shell_task
from tests.support.procs import Proc, get_json, mesoslite, wait_for

#: A change must show in DNS within this deadline (generous: a loaded CI machine).
DEADLINE = 15.0
_LINE = re.compile(r"mesoslite dns: \S+ on 127\.0\.0\.1:(\d+) .* http://127\.0\.0\.1:(\d+)")


class DnsProc:
    """A ``mesoslite dns`` process on free loopback ports."""

    def __init__(self, root: Path, master: str, *flags: str) -> None:
        self.proc = Proc(mesoslite("dns", "--master", master, "--ip", "127.0.0.1",
                                   "--port", "0", "--http_port", "0", *flags),
                         root / f"dns-{len(list(root.glob('dns-*.log')))}.log")
        match = _LINE.search(self.proc.wait_output("mesoslite dns:", timeout=30))
        assert match, self.proc.output()[-2000:]
        self.port, self.http_port = int(match.group(1)), int(match.group(2))

    def ask(self, name: str, qtype: str = "A", tcp: bool = False) -> tuple[str, list[str]]:
        """(rcode, sorted answer values) for ``name``."""
        query = dns.message.make_query(name, qtype)
        send = dns.query.tcp if tcp else dns.query.udp
        reply = send(query, "127.0.0.1", port=self.port, timeout=2)
        return dns.rcode.to_text(reply.rcode()), sorted(
            str(rd) for rrset in reply.answer for rd in rrset)

    def addresses(self, name: str) -> list[str]:
        """The A answer's addresses (empty for NXDOMAIN)."""
        return self.ask(name)[1]

    def state(self) -> Any:
        """Its ``/state``."""
        return get_json(f"http://127.0.0.1:{self.http_port}/state")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    """A master and two agents (hostnames 127.0.0.2 and 127.0.0.3)."""
    with ProcCluster(tmp_path_factory.mktemp("dns-cluster")) as cluster:
        cluster.start_master()
        cluster.add_agent("cpus:2;mem:512;ports:[31000-31009]", hostname="127.0.0.2")
        cluster.add_agent("cpus:2;mem:512;ports:[31010-31019]", hostname="127.0.0.3")
        yield cluster


@pytest.fixture(scope="module")
def dns_server(cluster: ProcCluster) -> Iterator[DnsProc]:
    """The DNS server following the master; an unreachable master is listed first."""
    assert cluster.master is not None
    server = DnsProc(cluster.root, f"127.0.0.1:1,127.0.0.1:{cluster.master.http_port}")
    wait_for(lambda: server.state()["connected"], timeout=DEADLINE, what="dns subscribed")
    try:
        yield server
    finally:
        server.proc.stop()


def launch(driver: Any, scheduler: RecordingScheduler, agent_id: str, task_id: str,
           name: str, ports: str) -> None:
    """Launch a ``sleep`` task called ``name`` on ``agent_id`` holding ``ports``."""
    offer = scheduler.take_held(agent_id)
    task = shell_task(task_id, agent_id, f"cpus:0.1;mem:16;ports:{ports}", "sleep 600")
    driver.launch_tasks([offer.id], [attrs.evolve(task, name=name)])


def test_a_and_srv_answers_follow_tasks(cluster: ProcCluster, dns_server: DnsProc) -> None:
    """Tasks of the app /group/web resolve as web-group.marathon as they start and end."""
    agents = [a.agent_id for a in cluster.agents]
    scheduler = RecordingScheduler()
    name = "web-group.marathon.mesos"
    with running_framework(cluster.master.address, scheduler, "marathon") as driver:
        assert dns_server.ask(name)[0] == "NXDOMAIN"
        launch(driver, scheduler, agents[0], "web.1", "web.group", "[31003-31003]")
        scheduler.wait_state("web.1", TaskState.TASK_RUNNING)
        wait_for(lambda: dns_server.addresses(name) == ["127.0.0.2"], timeout=DEADLINE,
                 what="web.1 resolvable")
        launch(driver, scheduler, agents[1], "web.2", "web.group", "[31012-31013]")
        scheduler.wait_state("web.2", TaskState.TASK_RUNNING)
        wait_for(lambda: dns_server.addresses(name) == ["127.0.0.2", "127.0.0.3"],
                 timeout=DEADLINE, what="web.2 resolvable")
        srv = dns_server.ask("_web-group._tcp.marathon.mesos", "SRV", tcp=True)[1]
        assert sorted(int(s.split()[2]) for s in srv) == [31003, 31012, 31013]
        assert dns_server.addresses("web-group.marathon.slave.mesos") == \
            ["127.0.0.2", "127.0.0.3"]
        assert dns_server.addresses("slave.mesos") == ["127.0.0.2", "127.0.0.3"]
        assert dns_server.addresses("leader.mesos") == ["127.0.0.1"]

        driver.kill_task("web.1")
        scheduler.wait_state("web.1", TaskState.TASK_KILLED)
        wait_for(lambda: dns_server.addresses(name) == ["127.0.0.3"], timeout=DEADLINE,
                 what="web.1 gone")
        srv = dns_server.ask("_web-group._udp.marathon.mesos", "SRV")[1]
        assert sorted(int(s.split()[2]) for s in srv) == [31012, 31013]
        driver.kill_task("web.2")
        scheduler.wait_state("web.2", TaskState.TASK_KILLED)
        wait_for(lambda: dns_server.ask(name)[0] == "NXDOMAIN", timeout=DEADLINE,
                 what="web.2 gone")
    wait_for(lambda: dns_server.ask("marathon.mesos")[0] == "NXDOMAIN", timeout=DEADLINE,
             what="the framework's names gone after its teardown")


def test_tasks_running_before_the_server_starts_are_published(
        cluster: ProcCluster, tmp_path: Path) -> None:
    """A server started later learns running tasks from SUBSCRIBED; --domain is honoured."""
    agents = [a.agent_id for a in cluster.agents]
    scheduler = RecordingScheduler()
    with running_framework(cluster.master.address, scheduler, "Batch_Jobs") as driver:
        launch(driver, scheduler, agents[0], "db.1", "db", "[31005-31005]")
        scheduler.wait_state("db.1", TaskState.TASK_RUNNING)
        late = DnsProc(cluster.root, f"127.0.0.1:{cluster.master.http_port}",
                       "--domain", "Cluster.Example.")
        try:
            wait_for(lambda: late.addresses("db.batch-jobs.cluster.example") == ["127.0.0.2"],
                     timeout=DEADLINE, what="db.1 resolvable from the snapshot")
            assert late.ask("db.batch-jobs.mesos")[0] == "REFUSED"
            soa = late.ask("cluster.example", "SOA", tcp=True)[1]
            assert soa[0].startswith("ns1.cluster.example. root.ns1.cluster.example. ")
            assert late.state()["leader"] == f"127.0.0.1:{cluster.master.http_port}"
        finally:
            late.proc.stop()
