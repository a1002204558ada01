"""pytest fixtures for a real ZooKeeper: ``zookeeper`` (one per module) and ``zk_url``.

Opt in from a test module with::

    from tests.support.zk_fixtures import zookeeper, zk_url  # noqa: F401

(and ``raw_zk``, a plain kazoo client on the same server, for inspecting or
damaging znodes as other tools would).

``zookeeper`` installs ZooKeeper if needed (scripts/ensure-zookeeper.sh),
starts a server on a free loopback port in a temp dir and stops it after the
module; a test that stopped or killed it gets it restarted by the next
``zk_url``.  ``zk_url`` is a fresh ``zk://127.0.0.1:<port>/mesoslite-<uuid>``
per test, so tests never see each other's znodes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from tests.support.zk import ZooKeeperServer, ensure_zookeeper


@pytest.fixture(scope="module")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    """A running standalone ZooKeeper shared by the tests of one module."""
    ensure_zookeeper()
    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def zk_url(zookeeper: ZooKeeperServer) -> str:
    """A zk:// URL with a path no other test uses (the server is restarted if a test stopped it)."""
    if not zookeeper.alive():
        zookeeper.start()
    return f"zk://{zookeeper.hosts}/mesoslite-{uuid.uuid4().hex}"


@pytest.fixture
def raw_zk(zookeeper: ZooKeeperServer) -> Iterator[KazooClient]:
    """A plain kazoo client on the test server, for inspecting or damaging znodes."""
    client = KazooClient(hosts=zookeeper.hosts)
    client.start(timeout=10)
    try:
        yield client
    finally:
        client.stop()
        client.close()
