"""The attacker's probes against real processes (master, agent, marathon): refused or harmless.

One cluster (a master, an agent and the Marathon-style framework, each its own process on
loopback) serves every probe of this module; each test checks afterwards that the
cluster still serves and launches.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.marathon_procs import MarathonCluster, shell_app
from tests.support.procs import wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarathonCluster]:
    """A master, one agent and a marathon process for this module."""
    with MarathonCluster(tmp_path_factory.mktemp("security"), agents=1) as running:
        yield running


def raw(port: int, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """One request with exactly ``headers`` (no Content-Type unless given): (status, JSON)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        decoded = json.loads(data) if data else {}
    except ValueError:
        decoded = {"raw": data[:200].decode(errors="replace")}
    return response.status, decoded if isinstance(decoded, dict) else {"value": decoded}


def _app_exists(cluster: MarathonCluster, app_id: str) -> bool:
    return cluster.client.get(f"/v2/apps/{app_id}").status == 200


def test_csrf_app_post_without_json_type_is_refused(cluster: MarathonCluster) -> None:
    """The CSRF probe: POST /v2/apps with no or a form Content-Type is 415, nothing runs."""
    port = cluster.marathon_proc.port  # type: ignore[union-attr]
    body = json.dumps(shell_app("/csrf", 1, cmd="id > pwned; sleep 600")).encode()
    for headers in ({}, {"Content-Type": "text/plain"},
                    {"Content-Type": "application/x-www-form-urlencoded",
                     "Origin": "http://evil.example"}):
        status, answer = raw(port, "POST", "/v2/apps", body, headers)
        assert status in (403, 415), (headers, status, answer)
        assert answer["field"] in ("Content-Type", "Origin"), answer
    assert not _app_exists(cluster, "csrf")


def test_foreign_origin_write_is_403_and_same_origin_works(cluster: MarathonCluster) -> None:
    """A JSON write from another origin is 403 naming it; the UI's own origin is served."""
    port = cluster.marathon_proc.port  # type: ignore[union-attr]
    app = json.dumps(shell_app("/origin-check", 1, cmd="exec sleep 600",
                               healthChecks=[])).encode()
    json_type = {"Content-Type": "application/json"}
    status, answer = raw(port, "POST", "/v2/apps", app,
                         {**json_type, "Origin": "http://evil.example"})
    assert (status, answer["field"]) == (403, "Origin"), answer
    assert "evil.example" in answer["message"]
    assert not _app_exists(cluster, "origin-check")
    status, answer = raw(port, "DELETE", "/v2/apps/anything", None,
                         {"Origin": "http://evil.example"})
    assert status == 403, answer
    status, answer = raw(port, "POST", "/v2/apps", app,
                         {**json_type, "Origin": f"http://127.0.0.1:{port}"})
    assert status == 201, answer
    wait_for(lambda: cluster.client.app("/origin-check")["tasksRunning"] == 1, timeout=40,
             what="the same-origin app runs")
    assert cluster.client.request("DELETE", "/v2/apps/origin-check?force=true").status == 200


def test_form_teardown_of_the_framework_is_refused(cluster: MarathonCluster) -> None:
    """The form-encoded POST /teardown probe: 415, the framework stays registered."""
    master = cluster.master
    form = f"frameworkId={cluster.framework_id}".encode()
    status, answer = raw(master.http_port, "POST", "/teardown", form,
                         {"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, answer["field"]) == (415, "Content-Type"), answer
    status, answer = raw(master.http_port, "POST", "/master/teardown", form, {})
    assert status == 415, answer
    status, answer = raw(master.http_port, "POST", "/teardown",
                         json.dumps({"framework_id": cluster.framework_id}).encode(),
                         {"Content-Type": "application/json", "Origin": "http://evil.example"})
    assert (status, answer["field"]) == (403, "Origin"), answer
    assert master.framework(cluster.framework_id) is not None
    assert cluster.client.ok("GET", "/v2/info")["frameworkId"] == cluster.framework_id


def test_dns_rebinding_host_is_refused_everywhere(cluster: MarathonCluster) -> None:
    """A Host naming another site is 403 on master, agent and marathon; own names serve."""
    ports = {"master": (cluster.master.http_port, "/state"),
             "agent": (cluster.agents[0].http_port, "/state"),
             "marathon": (cluster.marathon_proc.port, "/v2/apps")}  # type: ignore[union-attr]
    for name, (port, path) in ports.items():
        status, answer = raw(port, "GET", path, headers={"Host": f"rebind.example:{port}"})
        assert (status, answer.get("field")) == (403, "Host"), (name, status, answer)
        for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
            status, _ = raw(port, "GET", path, headers={"Host": host})
            assert status == 200, (name, host, status)
