"""`mesoslite local` with its DNS server, as a user runs it, with the Marathon-style framework.

An app ``/tour/web`` posted to ``/v2/apps`` resolves as ``web-tour.marathon.mesos`` (A and
SRV, answered by dnspython over UDP) while it runs and is gone after it is scaled to 0.
A second server run with ``--healthy_only`` publishes the app whose health check passes
and never the one whose check fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.marathon_procs import free_port_range
from tests.support.procs import ROOT, Proc, free_port, get_json, holds, mesoslite, wait_for

DEADLINE = 30.0
_DNS_LINE = re.compile(r"dns 127\.0\.0\.1:(\d+) \(udp, tcp; domain mesos\)")
_MASTER_LINE = re.compile(r"master http://127\.0\.0\.1:(\d+)")


class Local:
    """The running ``mesoslite local`` and its addresses."""

    def __init__(self, proc: Proc, marathon: int, master: int, dns_port: int) -> None:
        self.proc, self.marathon, self.master, self.dns_port = proc, marathon, master, dns_port

    def post_app(self, app: dict[str, Any]) -> None:
        """POST an app to the framework."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.marathon}/v2/apps", data=json.dumps(app).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201

    def scale(self, app_id: str, instances: int) -> None:
        """PUT the app's instance count."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.marathon}/v2/apps{app_id}?force=true",
            data=json.dumps({"instances": instances}).encode(),
            headers={"Content-Type": "application/json"}, method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


def ask(port: int, name: str, qtype: str = "A") -> tuple[str, list[str]]:
    """(rcode, sorted answer values) from the DNS server on ``port``."""
    reply = dns.query.udp(dns.message.make_query(name, qtype), "127.0.0.1", port=port,
                          timeout=2)
    return dns.rcode.to_text(reply.rcode()), sorted(
        str(rd) for rrset in reply.answer for rd in rrset)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    """``mesoslite local`` (one agent, the framework, DNS on a free port)."""
    tmp = tmp_path_factory.mktemp("dns_local")
    marathon = free_port()
    first = free_port_range(100)
    proc = Proc(mesoslite("local", "--agents", "1", "--port", "0", "--zmq_port", "0",
                          "--agent_port_base", "0", "--marathon_port", str(marathon),
                          "--dns_port", "0", "--dns_http_port", "0",
                          "--work_dir", str(tmp / "work"), "--agent_resources",
                          f"cpus:2;mem:2048;disk:1024;ports:[{first}-{first + 99}]"),
                tmp / "local.log")
    try:
        output = proc.wait_output("Ctrl-C stops", timeout=60)
        dns_match, master_match = _DNS_LINE.search(output), _MASTER_LINE.search(output)
        assert dns_match and master_match, output[-2000:]
        yield Local(proc, marathon, int(master_match.group(1)), int(dns_match.group(1)))
    finally:
        proc.stop()


def test_an_app_resolves_by_name_while_it_runs(local: Local) -> None:
    """/tour/web's two instances: A web-tour.marathon.mesos and two SRV targets, then gone."""
    local.post_app({"id": "/tour/web", "cmd": "sleep 600", "instances": 2, "cpus": 0.1,
                    "mem": 16, "portDefinitions": [{"port": 0}]})
    name = "web-tour.marathon.mesos"
    wait_for(lambda: ask(local.dns_port, name)[1] == ["127.0.0.1"], timeout=DEADLINE,
             what=f"{name} resolvable")
    srv = wait_for(lambda: (lambda s: s if len(s) == 2 else None)(
        ask(local.dns_port, "_web-tour._tcp.marathon.mesos", "SRV")[1]),
        timeout=DEADLINE, what="two SRV targets")
    assert all(s.endswith(".marathon.mesos.") for s in srv)
    assert ask(local.dns_port, "leader.mesos")[1] == ["127.0.0.1"]
    local.scale("/tour/web", 0)
    wait_for(lambda: ask(local.dns_port, name)[0] == "NXDOMAIN", timeout=DEADLINE,
             what=f"{name} gone after scaling to 0")


def test_healthy_only_publishes_only_tasks_passing_their_checks(
        local: Local, tmp_path: Path) -> None:
    """With --healthy_only an app whose HTTP check fails is never published."""
    check = {"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 0,
             "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 3,
             "delaySeconds": 0}
    strict = Proc(mesoslite("dns", "--master", f"127.0.0.1:{local.master}", "--port", "0",
                            "--http_port", "0", "--healthy_only"), tmp_path / "dns.log")
    try:
        match = re.search(r"on 127\.0\.0\.1:(\d+)", strict.wait_output("mesoslite dns:"))
        assert match
        port = int(match.group(1))
        local.post_app({"id": "/good", "cmd": "python3 -m http.server $PORT0 --bind 127.0.0.1",
                        "instances": 1, "cpus": 0.1, "mem": 32, "healthChecks": [check]})
        local.post_app({"id": "/bad", "cmd": "sleep 600", "instances": 1, "cpus": 0.1,
                        "mem": 16, "healthChecks": [check]})
        wait_for(lambda: ask(local.dns_port, "bad.marathon.mesos")[1] == ["127.0.0.1"],
                 timeout=DEADLINE, what="/bad running (published without --healthy_only)")
        wait_for(lambda: ask(port, "good.marathon.mesos")[1] == ["127.0.0.1"],
                 timeout=DEADLINE, what="/good published once healthy")
        holds(lambda: ask(port, "bad.marathon.mesos")[0] == "NXDOMAIN", 3.0,
              "/bad never published with --healthy_only")
    finally:
        strict.stop()


def test_bad_flags_are_refused_naming_the_flag() -> None:
    """A bad --domain, --port or --ttl exits 2 with one line naming the flag."""
    for flags, name in ((["--domain", "a..b"], "--domain"), (["--port", "x"], "--port"),
                        (["--port", "70000"], "--port"), (["--ttl", "0"], "--ttl")):
        result = subprocess.run(mesoslite("dns", *flags), capture_output=True, text=True,
                                timeout=60, cwd=ROOT)
        assert result.returncode == 2, result
        assert name in result.stderr and "Traceback" not in result.stderr


def test_answers_without_a_master_and_keeps_trying(tmp_path: Path) -> None:
    """With no master reachable the server still answers for its zone (SOA, NXDOMAIN)."""
    proc = Proc(mesoslite("dns", "--master", "127.0.0.1:1", "--port", "0", "--http_port", "0"),
                tmp_path / "dns.log")
    try:
        match = re.search(r"on 127\.0\.0\.1:(\d+) .* http://127\.0\.0\.1:(\d+)",
                          proc.wait_output("mesoslite dns:"))
        assert match
        port = int(match.group(1))
        assert ask(port, "mesos", "SOA")[0] == "NOERROR"
        assert ask(port, "leader.mesos")[0] == "NXDOMAIN"
        state = get_json(f"http://127.0.0.1:{match.group(2)}/state")
        assert state["connected"] is False and state["leader"] is None
        wait_for(lambda: "following the master failed" in proc.output(), timeout=DEADLINE,
                 what="the failed attempt logged")
        assert proc.alive()
    finally:
        proc.stop()
