"""Leader election, detection and the registry against a real ZooKeeper (no mocks)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from mesoslite.coordination import (
    AdmitAgent,
    CoordinationError,
    FencedError,
    MarkAgentUnreachable,
    PutFramework,
    RegistryError,
    RegistryState,
    SetQuota,
    SetWeight,
    StoredAgent,
    StoredFramework,
    ZooKeeperContender,
    ZooKeeperDetector,
    ZooKeeperRegistry,
    parse_zk_url,
)
from mesoslite.protocol.types import MasterInfo
from tests.support.procs import until
from tests.support.zk import ZooKeeperEnsemble, ZooKeeperServer, expire_session
from tests.support.zk_fixtures import raw_zk, zk_url, zookeeper  # noqa: F401

pytestmark = pytest.mark.integration

ONE_MB = 1024 * 1024


def master(i: int) -> MasterInfo:
    """MasterInfo of master number ``i``."""
    return MasterInfo(id=f"master-{i}", ip="127.0.0.1", port=5050 + i, hostname="localhost",
                      version="0.1.0", zmq_endpoint=f"tcp://127.0.0.1:{6050 + i}",
                      http_endpoint=f"http://127.0.0.1:{5050 + i}")


def agent_record(i: int) -> StoredAgent:
    """A realistic admitted-agent record (about 300 bytes of AgentInfo)."""
    return StoredAgent(
        hostname=f"agent-{i:05d}.rack{i % 40:02d}.example.com",
        agent_info={
            "id": f"a1b2c3d4-{i:08d}-S{i}",
            "hostname": f"agent-{i:05d}.rack{i % 40:02d}.example.com",
            "port": 5051,
            "resources": {"cpus": 32.0, "mem": 257024.0, "disk": 1_800_000.0,
                          "ports": "[31000-32000]"},
            "attributes": {"rack": f"rack{i % 40:02d}", "zone": f"zone-{i % 3}",
                           "os": "debian12", "gpu": "none"},
            "http_endpoint": f"http://10.{i // 65536}.{(i // 256) % 256}.{i % 256}:5051",
        },
        registered_time=1_700_000_000.0 + i,
    )


async def within(awaitable: Awaitable[Any], timeout: float) -> Any:
    """Await with a deadline."""
    return await asyncio.wait_for(awaitable, timeout)


# ------------------------------------------------------------------ election


def test_three_contenders_elect_exactly_the_lowest_sequence(zk_url: str) -> None:  # noqa: F811
    """Of three contenders exactly one leads, the one whose znode has the lowest sequence."""
    async def main() -> None:
        contenders = [ZooKeeperContender(zk_url, master(i)) for i in range(3)]
        await asyncio.gather(*(contender.start() for contender in contenders))
        paths = [c.fencing_path() for c in contenders]
        assert all(p and p.startswith(parse_zk_url(zk_url).path + "/json.info_") for p in paths)
        lowest = min(range(3), key=lambda i: int(paths[i][-10:]))
        await until(lambda: contenders[lowest].is_leader, 10, "the lowest sequence leads")
        assert [c.is_leader for c in contenders].count(True) == 1
        for contender in contenders:
            await contender.withdraw()

    asyncio.run(main())


def test_leader_session_expiry_deposes_it_and_next_leads(
        zookeeper: ZooKeeperServer, zk_url: str) -> None:  # noqa: F811
    """Expiring the leader's session deposes it at once and the next candidate takes over."""
    async def main() -> None:
        first, second = ZooKeeperContender(zk_url, master(1)), ZooKeeperContender(zk_url, master(2))
        reasons: list[str] = []
        first.on_deposed(reasons.append)
        await first.start()
        await second.start()
        await within(first.elected.wait(), 10)
        assert not second.is_leader
        client_id = first.session.client_id
        assert client_id is not None
        await asyncio.to_thread(expire_session, zookeeper.hosts, client_id)
        await within(second.elected.wait(), 10)
        await within(first.deposed.wait(), 10)
        assert not first.is_leader and not first.elected.is_set()
        assert reasons and "expired" in reasons[0]
        await first.withdraw()
        await second.withdraw()

    asyncio.run(main())


def test_detector_follows_leader_and_sees_none_during_outage(tmp_path: Path) -> None:
    """The detector tracks failover, reports no leader while ZooKeeper is down, then recovers."""
    server = ZooKeeperServer(tmp_path / "zk").start()

    async def main() -> None:
        url = f"zk://{server.hosts}/mesoslite"
        timing = {"session_timeout": 4.0, "suspend_grace": 1.0}
        first = ZooKeeperContender(url, master(1), **timing)
        second = ZooKeeperContender(url, master(2), **timing)
        detector = ZooKeeperDetector(url, **timing)
        await detector.start()
        assert detector.current() is None
        seen: list[MasterInfo | None] = []
        detector.subscribe(seen.append)
        await first.start()
        assert await within(detector.wait_for_change(None), 10) == master(1)
        await second.start()

        await first.withdraw()  # voluntary: the detector follows to the next leader
        assert await within(detector.wait_for_change(master(1)), 10) == master(2)
        await within(second.elected.wait(), 10)

        await asyncio.to_thread(server.kill)
        await within(second.deposed.wait(), 10)  # suspended beyond the grace
        assert await within(detector.wait_for_change(master(2)), 10) is None
        assert not second.is_leader

        third = ZooKeeperContender(url, master(3), **timing)
        await asyncio.to_thread(server.start)
        await third.start()
        # A leftover of the deposed leader may show briefly until its znode is gone.
        await until(lambda: detector.current() == master(3), 15, "detector sees the new leader")
        await within(third.elected.wait(), 10)
        assert seen[:3] == [master(1), master(2), None] and seen[-1] == master(3)
        await third.withdraw()
        await second.withdraw()
        await detector.stop()
        assert detector.current() is None

    try:
        asyncio.run(main())
    finally:
        server.stop()


def test_leader_znode_holds_mesos_master_info_json(zk_url: str, raw_zk: KazooClient) -> None:  # noqa: F811
    """The leader's json.info_ znode is ephemeral and holds MasterInfo JSON with Mesos's names."""
    async def main() -> str:
        contender = ZooKeeperContender(zk_url, master(7))
        await contender.start()
        await within(contender.elected.wait(), 10)
        path = contender.fencing_path()
        assert path is not None
        data, stat = await asyncio.to_thread(raw_zk.get, path)
        assert stat.ephemeralOwner == contender.session.client_id[0]
        obj = json.loads(data)
        assert obj["id"] == "master-7" and obj["hostname"] == "localhost"
        assert obj["ip"] == 16777343  # 127.0.0.1 as the uint32 Mesos writes
        assert obj["port"] == 5057 and obj["version"] == "0.1.0"
        assert obj["address"] == {"ip": "127.0.0.1", "hostname": "localhost", "port": 5057}
        assert obj["zmq_endpoint"] == "tcp://127.0.0.1:6057"
        directory = parse_zk_url(zk_url).path
        assert await asyncio.to_thread(raw_zk.get_children, directory) == [path.rsplit("/")[-1]]
        await contender.withdraw()
        return directory

    directory = asyncio.run(main())
    assert raw_zk.get_children(directory) == []  # withdrawal removed the candidate at once


# ------------------------------------------------------------------ registry


def test_registry_round_trip_in_zookeeper(zk_url: str) -> None:  # noqa: F811
    """State stored and changed by one writer is read back identically by a fresh reader."""
    async def main() -> None:
        writer = ZooKeeperRegistry(zk_url, None)
        assert await writer.load() == RegistryState()
        state = RegistryState()
        for i in range(50):
            AdmitAgent(f"A-{i}", agent_record(i)).apply(state)
        PutFramework("F-1", StoredFramework(info={"name": "marathon"}, failover_timeout=60.0,
                                            registered_time=5.0)).apply(state)
        SetWeight("prod", 2.0).apply(state)
        await writer.store(state)
        first_generation = writer.generation
        await asyncio.gather(
            writer.apply(MarkAgentUnreachable("A-3", 77.0)),
            writer.apply(AdmitAgent("A-100", agent_record(100)), SetQuota("prod", {"cpus": 8})),
        )
        assert writer.generation == first_generation  # small changes rewrite shards in place
        for op in (MarkAgentUnreachable("A-3", 77.0), AdmitAgent("A-100", agent_record(100)),
                   SetQuota("prod", {"cpus": 8})):
            op.apply(state)
        reader = ZooKeeperRegistry(zk_url, None)
        assert await reader.load() == state
        await writer.close()
        await reader.close()

    asyncio.run(main())


def test_registry_write_from_deposed_leader_is_fenced(
        zookeeper: ZooKeeperServer, zk_url: str) -> None:  # noqa: F811
    """Once its leader znode is gone a master's registry writes fail with FencedError."""
    async def main() -> None:
        old, new = ZooKeeperContender(zk_url, master(1)), ZooKeeperContender(zk_url, master(2))
        await old.start()
        await new.start()
        await within(old.elected.wait(), 10)
        old_registry = ZooKeeperRegistry(zk_url, old.fencing_path())
        await old_registry.load()
        await old_registry.apply(SetWeight("before", 1.5))

        await asyncio.to_thread(expire_session, zookeeper.hosts, old.session.client_id)
        await within(new.elected.wait(), 10)
        with pytest.raises(FencedError, match="no longer the leader"):
            await old_registry.apply(SetWeight("stale", 9.0))
        with pytest.raises(FencedError):
            await old_registry.store(RegistryState())

        new_registry = ZooKeeperRegistry(zk_url, new.fencing_path())
        assert (await new_registry.load()).weights == {"before": 1.5}
        await new_registry.apply(SetWeight("after", 2.0))
        assert (await new_registry.load()).weights == {"before": 1.5, "after": 2.0}
        for closable in (old_registry, new_registry):
            await closable.close()
        await old.withdraw()
        await new.withdraw()

    asyncio.run(main())


def test_registry_with_50000_agents_keeps_every_znode_under_1mb(
        zk_url: str, raw_zk: KazooClient) -> None:  # noqa: F811
    """50,000 agents store and load back, and no znode under the registry reaches 1 MB."""
    state = RegistryState()
    for i in range(50_000):
        AdmitAgent(f"S{i}", agent_record(i)).apply(state)
        if i % 10 == 0:
            MarkAgentUnreachable(f"U{i}", 1.0 + i).apply(state)
    for i in range(2000):
        PutFramework(f"F{i}", StoredFramework(info={"name": f"fw-{i}", "user": "root",
                                                    "roles": ["*"]},
                                              failover_timeout=604800.0)).apply(state)

    async def main() -> ZooKeeperRegistry:
        registry = ZooKeeperRegistry(zk_url, None)
        await registry.store(state)
        await registry.apply(AdmitAgent("S-late", agent_record(50_001)))
        AdmitAgent("S-late", agent_record(50_001)).apply(state)
        reader = ZooKeeperRegistry(zk_url, None)
        assert await reader.load() == state
        await reader.close()
        await registry.close()
        return registry

    registry = asyncio.run(main())
    sizes: dict[str, int] = {}

    def walk(path: str) -> None:
        data, _ = raw_zk.get(path)
        sizes[path] = len(data)
        for child in raw_zk.get_children(path):
            walk(f"{path}/{child}")

    walk(registry.url.path)
    shard_nodes = [p for p in sizes if "/agents." in p]
    assert len(shard_nodes) >= 16
    assert max(sizes.values()) < ONE_MB / 2, max(sizes.items(), key=lambda kv: kv[1])
    assert sum(sizes.values()) > ONE_MB  # the state really is bigger than one znode could hold


def test_registry_reshards_into_a_new_generation_and_deletes_the_old(
        zk_url: str, raw_zk: KazooClient) -> None:  # noqa: F811
    """A shard outgrowing its limit moves the registry to a new generation with more shards;
    readers see the complete state and only the current generation remains."""
    limits = {"target_shard_bytes": 600, "max_znode_bytes": 900, "txn_budget": 8192}

    async def main() -> ZooKeeperRegistry:
        registry = ZooKeeperRegistry(zk_url, None, **limits)
        await registry.apply(SetWeight("prod", 2.0))
        first = registry.generation
        expected = RegistryState()
        SetWeight("prod", 2.0).apply(expected)
        for i in range(300):
            op = AdmitAgent(f"S{i}", agent_record(i))
            op.apply(expected)
            await registry.apply(op)
        assert registry.generation != first
        reader = ZooKeeperRegistry(zk_url, None, **limits)
        assert await reader.load() == expected
        await reader.close()
        await registry.close()
        return registry

    registry = asyncio.run(main())
    root = registry.url.path
    children = raw_zk.get_children(root)
    assert sorted(children) == sorted(["meta", registry.generation])
    meta = json.loads(raw_zk.get(f"{root}/meta")[0])
    assert meta["generation"] == registry.generation and meta["shards"]["agents"] > 16
    shards = raw_zk.get_children(f"{root}/{registry.generation}")
    assert max(len(raw_zk.get(f"{root}/{registry.generation}/{n}")[0]) for n in shards) <= 900


# ------------------------------------------------------------------ ensemble


def test_leader_survives_losing_one_of_three_zookeeper_servers(tmp_path: Path) -> None:
    """With a 3-node ensemble, stopping one server does not depose the leader or blind the
    detector, and a new candidate can still join."""
    ensemble = ZooKeeperEnsemble(tmp_path / "ensemble", n=3).start()

    async def main() -> None:
        url = f"zk://{ensemble.hosts}/mesoslite"
        timing = {"session_timeout": 10.0, "suspend_grace": 3.0}
        leader = ZooKeeperContender(url, master(1), **timing)
        detector = ZooKeeperDetector(url, **timing)
        await leader.start()
        await detector.start()
        await within(leader.elected.wait(), 10)
        await until(lambda: detector.current() == master(1), 10, "detector sees the leader")
        session_id = leader.session.client_id[0]
        states: list[str] = []
        leader.session.add_state_handler(states.append)
        node = await asyncio.to_thread(ensemble.node_of_session, session_id)
        assert node is not None
        await asyncio.to_thread(ensemble.stop_node, node)  # the server the leader talks to
        await until(lambda: "SUSPENDED" in states, 10, "leader notices the lost server")
        await until(lambda: leader.session.connected, 10, "leader reconnects to a survivor")
        assert await asyncio.to_thread(ensemble.node_of_session, session_id) not in (None, node)
        standby = ZooKeeperContender(url, master(2), **timing)
        await standby.start()
        assert leader.is_leader and not leader.deposed.is_set()
        await until(lambda: detector.session.connected, 10, "detector connected")
        assert detector.current() == master(1) and not standby.is_leader
        await asyncio.to_thread(ensemble.start_node, node)
        await leader.withdraw()
        await within(standby.elected.wait(), 10)
        assert await within(detector.wait_for_change(master(1)), 10) == master(2)
        await standby.withdraw()
        await detector.stop()

    try:
        asyncio.run(main())
    finally:
        ensemble.stop()


# ------------------------------------------------------------------ credentials


def test_credentials_protect_writes_but_leader_stays_readable(
        zookeeper: ZooKeeperServer) -> None:  # noqa: F811
    """With user:pass in the URL, anyone can read the leader but only the owner can
    read the registry or join the election."""
    path = f"/secure-{time.monotonic_ns()}"
    owner_url = f"zk://alice:s3cret@{zookeeper.hosts}{path}"
    anonymous_url = f"zk://{zookeeper.hosts}{path}"

    async def main() -> None:
        contender = ZooKeeperContender(owner_url, master(1))
        await contender.start()
        await within(contender.elected.wait(), 10)
        detector = ZooKeeperDetector(anonymous_url)
        await detector.start()
        assert detector.current() == master(1)
        registry = ZooKeeperRegistry(owner_url, contender.fencing_path())
        await registry.apply(SetWeight("prod", 3.0))
        stranger = ZooKeeperRegistry(anonymous_url, None)
        with pytest.raises(RegistryError, match="NoAuth"):
            await stranger.load()
        intruder = ZooKeeperContender(anonymous_url, master(2))
        with pytest.raises(CoordinationError, match="NoAuth"):
            await intruder.start()
        reader = ZooKeeperRegistry(owner_url, None)
        assert (await reader.load()).weights == {"prod": 3.0}
        for closable in (registry, stranger, reader):
            await closable.close()
        await detector.stop()
        await contender.withdraw()

    asyncio.run(main())
