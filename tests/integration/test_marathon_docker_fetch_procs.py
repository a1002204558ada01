"""Marathon ``fetch`` for a Docker app: the fetched files are in the container's sandbox.

A master, one agent with ``--containerizers docker,process`` and ``mesoslite marathon``
as real processes, a real Docker engine and the local busybox test image (nothing is
pulled).  An HTTP server thread in the test serves a ``.tar.gz`` and a script; the
app's command, run in the container (working directory ``/mnt/mesos/sandbox``, the
sandbox mounted), uses both, which proves the agent fetched them into the sandbox
before the container started.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.docker_env import ensure_docker, remove_scope_containers
from tests.support.fetch_files import FileServer, tarball
from tests.support.marathon_procs import MarathonCluster
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration

CONF = b"from-the-archive\n"
TOOL = b"#!/bin/sh\necho tool-ran-in-$(pwd) > tool.out\n"


@pytest.fixture(scope="module")
def docker_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarathonCluster]:
    """Master, one Docker-capable agent and marathon; its containers removed afterwards."""
    ensure_docker()
    cluster = MarathonCluster(tmp_path_factory.mktemp("docker-fetch"), agents=1,
                              agent_flags={"containerizers": "docker,process"})
    try:
        yield cluster
    finally:
        cluster.stop()
        for agent in cluster.agents:
            remove_scope_containers(os.path.realpath(agent.work_dir))


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    """The artifact server."""
    server = FileServer()
    server.files["/pkg/conf.tar.gz"] = tarball({"conf/app.conf": (CONF, 0o644)})
    server.files["/bin/tool"] = TOOL
    try:
        yield server
    finally:
        server.close()


def test_a_docker_app_sees_its_fetched_files_in_the_sandbox(
        docker_cluster: MarathonCluster, files: FileServer) -> None:
    """The container runs the fetched executable and reads the unpacked archive."""
    image = ensure_docker()
    app: dict[str, Any] = {
        "id": "/dfetch/app", "instances": 1, "cpus": 0.1, "mem": 32,
        "cmd": "./tool && cp conf/app.conf seen && exec sleep 300",
        "container": {"type": "DOCKER", "docker": {"image": image}},
        "networks": [{"mode": "host"}], "portDefinitions": [],
        "fetch": [{"uri": files.url("/pkg/conf.tar.gz")},
                  {"uri": files.url("/bin/tool"), "executable": True}],
    }
    docker_cluster.client.ok("POST", "/v2/apps", app, expect=201)
    [task] = docker_cluster.client.wait_settled("/dfetch/app", 1, timeout=90)
    sandbox = docker_cluster.sandbox(task)
    wait_for(lambda: (sandbox / "seen").exists(), timeout=30, what="the container copied")
    assert (sandbox / "seen").read_bytes() == CONF
    assert (sandbox / "tool.out").read_text() == "tool-ran-in-/mnt/mesos/sandbox\n"
    assert files.requests["/pkg/conf.tar.gz"] == 1
