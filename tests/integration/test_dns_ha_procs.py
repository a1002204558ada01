"""``mesoslite dns`` follows the leading master through a kill -9 of the leader.

Three masters elect a leader in a real ZooKeeper; one agent and an SDK framework
(checkpointing, with a failover timeout) follow it.  Two DNS servers follow the cluster:
one finds the leader through ZooKeeper (``--master zk://…``), the other is given the
masters' HTTP addresses with a standby first (it follows the standby's 307 to the
leader).  After the leader is killed both re-subscribe to the new one: ``_leader._tcp``
names the new leader's port and the running task stays resolvable.
"""

from __future__ import annotations

import re
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from mesoslite.protocol import FrameworkInfo, TaskState
from mesoslite.scheduler import SchedulerDriver
from tests.support.frameworks import RecordingScheduler, shell_task
from tests.support.ha_procs import HACluster, the_leader
from tests.support.procs import Proc, get_json, mesoslite, wait_for
from tests.support.zk_fixtures import zk_url, zookeeper  # noqa: F401

DEADLINE = 60.0


def start_dns(root: Path, master: str, name: str) -> tuple[Proc, int, int]:
    """A DNS server following ``master``: (process, DNS port, HTTP port)."""
    proc = Proc(mesoslite("dns", "--master", master, "--port", "0", "--http_port", "0",
                          "--max_backoff", "0.5"), root / f"{name}.log")
    match = re.search(r"on 127\.0\.0\.1:(\d+) .* http://127\.0\.0\.1:(\d+)",
                      proc.wait_output("mesoslite dns:", timeout=30))
    assert match, proc.output()[-2000:]
    return proc, int(match.group(1)), int(match.group(2))


def answers(port: int, name: str, qtype: str = "A") -> list[str]:
    """The answer values (empty on NXDOMAIN)."""
    reply = dns.query.udp(dns.message.make_query(name, qtype), "127.0.0.1", port=port,
                          timeout=2)
    return sorted(str(rd) for rrset in reply.answer for rd in rrset)


def leader_port(port: int) -> int | None:
    """The port ``_leader._tcp.mesos`` names (None while there is none)."""
    found = answers(port, "_leader._tcp.mesos", "SRV")
    return int(found[0].split()[2]) if len(found) == 1 else None


def test_dns_follows_a_new_leader(zk_url: str, tmp_path: Path) -> None:  # noqa: F811
    """kill -9 of the leading master: both DNS servers follow the new leader."""
    with HACluster(tmp_path / "cluster", zk_url) as cluster:
        for _ in range(3):
            cluster.add_master(agent_reregister_timeout=30)
        old = the_leader(cluster.masters)
        standbys = [m for m in cluster.masters if m is not old]
        cluster.add_agent("cpus:2;mem:512;ports:[31000-31009]")
        servers = [
            start_dns(tmp_path, zk_url, "dns-zk"),
            start_dns(tmp_path, ",".join(f"127.0.0.1:{m.http_port}"
                                         for m in [*standbys, old]), "dns-list"),
        ]
        scheduler = RecordingScheduler()
        info = FrameworkInfo(user="", name="marathon", checkpoint=True, failover_timeout=120.0)
        driver = SchedulerDriver(scheduler, info, zk_url, registration_backoff_factor=0.2)
        driver.start()
        try:
            wait_for(lambda: scheduler.framework_id, 30, what="framework registered")
            agent_id = cluster.agents[0].agent_id
            offer = scheduler.take_held(agent_id)
            driver.launch_tasks([offer.id], [shell_task(
                "web", agent_id, "cpus:0.1;mem:16;ports:[31002-31002]", "sleep 600")])
            scheduler.wait_state("web", TaskState.TASK_RUNNING)
            for _, port, http_port in servers:
                wait_for(lambda p=port: answers(p, "web.marathon.mesos") == ["127.0.0.1"],
                         DEADLINE, what="web resolvable")
                assert leader_port(port) == old.http_port
                assert get_json(f"http://127.0.0.1:{http_port}/state")["leader"] == \
                    f"127.0.0.1:{old.http_port}"

            old.kill9()
            new = the_leader(standbys, timeout=DEADLINE)
            for proc, port, _ in servers:
                wait_for(lambda p=port: leader_port(p) == new.http_port, DEADLINE,
                         what=f"{proc.log_path.name} follows the new leader")
                wait_for(lambda p=port: answers(p, "web.marathon.mesos") == ["127.0.0.1"],
                         DEADLINE, what=f"web resolvable through {proc.log_path.name}")
        finally:
            driver.stop()
            driver.join()
            for proc, _, _ in servers:
                proc.stop()
