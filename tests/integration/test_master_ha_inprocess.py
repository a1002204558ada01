"""Master leadership in-process: real ZooKeeper (or the standalone file registry), real sockets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from mesoslite.coordination import FencedError, SetWeight
from mesoslite.master import MasterConfig
from mesoslite.master.main import MasterProcess
from mesoslite.protocol import (
    AgentInfo,
    AgentRegistered,
    Heartbeat,
    LeaderRedirect,
    RegisterAgent,
)
from mesoslite.resources import Resources
from mesoslite.transport import DealerClient
from tests.support.ha_inprocess import ha_config, run
from tests.support.procs import until
from tests.support.zk import ZooKeeperServer, expire_session
from tests.support.zk_fixtures import zk_url, zookeeper  # noqa: F401

pytestmark = pytest.mark.integration

AGENT_RESOURCES = "cpus:2;mem:1024;ports:[31000-31005]"


async def get(master: MasterProcess, path: str, **kwargs: Any) -> HTTPResponse:
    """GET ``path`` from ``master`` without following redirects."""
    url = f"http://127.0.0.1:{master.http_port}{path}"
    return await AsyncHTTPClient().fetch(url, raise_error=False, follow_redirects=False,
                                         **kwargs)


async def put_weights(master: MasterProcess, role: str, weight: float) -> HTTPResponse:
    """PUT /weights with one role."""
    body = json.dumps([{"role": role, "weight": weight}])
    return await get(master, "/weights", method="PUT", body=body,
                     headers={"Content-Type": "application/json"})


class Peer:
    """A raw ZeroMQ peer and everything it received."""

    def __init__(self, master: MasterProcess) -> None:
        self.got: list[Any] = []
        self.client = DealerClient(self.got.append)
        self.client.connect(master.zmq_endpoint)
        self.client.start()

    async def first(self, kind: type, timeout: float = 5.0) -> Any:
        """The first received message of ``kind``."""
        def find() -> Any:
            return next((m for m in self.got if isinstance(m, kind)), None)
        return await until(find, timeout, f"a {kind.__name__}")

    def close(self) -> None:
        """Close the socket."""
        self.client.close()


def register_message(hostname: str = "agent-1") -> RegisterAgent:
    """An agent's first registration."""
    return RegisterAgent(AgentInfo(hostname=hostname, resources=Resources.parse(AGENT_RESOURCES)))


async def start_two(zk: str, **extra: Any) -> tuple[MasterProcess, MasterProcess]:
    """Start two masters in one group; return (leader, follower) once one leads."""
    first = MasterProcess(ha_config(zk, **extra))
    second = MasterProcess(ha_config(zk, **extra))
    await first.start()
    await second.start()
    await until(lambda: first.is_leading or second.is_leading, 15, "a leader")
    leader, follower = (first, second) if first.is_leading else (second, first)
    await until(lambda: follower.leadership.leader() == leader.info, 10,
                "the follower to see the leader")
    return leader, follower


def test_one_leader_and_the_other_redirects(zk_url: str) -> None:  # noqa: F811
    """Exactly one of two masters leads; the other sends HTTP and ZeroMQ peers to it."""
    async def test() -> None:
        leader, follower = await start_two(zk_url)
        try:
            assert not follower.is_leading
            snapshot = json.loads((await get(follower, "/metrics/snapshot")).body)
            assert snapshot["master/elected"] == 0
            snapshot = json.loads((await get(leader, "/metrics/snapshot")).body)
            assert snapshot["master/elected"] == 1
            response = await get(follower, "/state?jsonp=no")
            assert response.code == 307
            assert response.headers["Location"] == f"{leader.info.http_endpoint}/state?jsonp=no"
            response = await get(follower, "/master/tasks")
            assert response.headers["Location"].endswith("/master/tasks")
            response = await get(follower, "/redirect")
            assert response.code == 307
            assert response.headers["Location"] == f"//{leader.info.hostname}:{leader.http_port}"
            assert (await get(follower, "/health")).code == 200
            assert (await get(follower, "/flags")).code == 200
            peer = Peer(follower)
            peer.client.send(register_message())
            redirect = await peer.first(LeaderRedirect)
            assert redirect.leader == leader.info
            peer.close()
            state = json.loads((await get(leader, "/state")).body)
            assert state["leader"] == leader.info.pid and state["elected_time"] > 0
        finally:
            await follower.stop()
            await leader.stop()
    run(test)


def test_deposed_leader_stops_and_its_writes_are_fenced(
        zk_url: str, zookeeper: ZooKeeperServer) -> None:  # noqa: F811
    """When the leader's session expires it stops acting; the other master leads; the old
    leader's registry writes are refused and it now redirects to the new leader."""
    async def test() -> None:
        leader, follower = await start_two(zk_url)
        try:
            assert (await put_weights(leader, "web", 3.0)).code == 200
            contender = leader.leadership.contender
            session = contender.session  # type: ignore[union-attr]
            await asyncio.to_thread(expire_session, zookeeper.hosts, session.client_id)
            await until(leader.deposed.is_set, 10, "the old leader to be deposed")
            assert not leader.is_leading
            await until(lambda: follower.is_leading, 10, "the follower to lead")
            weights = json.loads((await get(follower, "/weights")).body)
            assert {"role": "web", "weight": 3.0} in weights
            registry = leader.leadership.registry
            assert registry is not None
            with pytest.raises(FencedError):
                await registry.apply(SetWeight("web", 9.0))
            await until(lambda: leader.leadership.leader() == follower.info, 10,
                        "the old leader to see the new one")
            response = await get(leader, "/weights")
            assert response.code == 307
            assert response.headers["Location"].startswith(follower.info.http_endpoint)
            snapshot = json.loads((await get(leader, "/metrics/snapshot")).body)
            assert snapshot["master/elected"] == 0
        finally:
            await follower.stop()
            await leader.stop()
    run(test)


def test_admitted_agent_is_expected_back_by_the_next_leader(zk_url: str) -> None:  # noqa: F811
    """An agent admitted by one leader is shown recovered by the next, and marked
    unreachable when it does not re-register within agent_reregister_timeout."""
    async def test() -> None:
        leader, follower = await start_two(zk_url, agent_reregister_timeout=1.0)
        try:
            peer = Peer(leader)
            peer.client.send(register_message())
            agent_id = (await peer.first(AgentRegistered)).agent_id
            peer.close()
            await leader.stop()
            await until(lambda: follower.is_leading, 10, "the follower to lead")
            state = json.loads((await get(follower, "/state")).body)
            assert [a["id"] for a in state["recovered_slaves"]] == [agent_id]

            async def unreachable() -> bool:
                state = json.loads((await get(follower, "/state")).body)
                return state["unreachable_slaves"] == 1 and not state["recovered_slaves"]
            await until(unreachable, 10, "the agent marked unreachable")
        finally:
            await follower.stop()
            await leader.stop()
    run(test)


def test_standalone_registry_survives_a_restart(tmp_path: Path) -> None:
    """Standalone, the registry file keeps admitted agents and weights across a restart."""
    async def test() -> None:
        config = MasterConfig(http_port=0, zmq_port=0, work_dir=str(tmp_path),
                              allocation_interval=0.05)
        first = MasterProcess(config)
        await first.start()
        assert first.is_leading
        peer = Peer(first)
        peer.client.send(register_message())
        agent_id = (await peer.first(AgentRegistered)).agent_id
        peer.close()
        assert (await put_weights(first, "web", 2.5)).code == 200
        await first.stop()
        assert (tmp_path / "registry.json").exists()
        second = MasterProcess(config)
        await second.start()
        try:
            assert second.is_leading
            state = json.loads((await get(second, "/state")).body)
            assert [a["id"] for a in state["recovered_slaves"]] == [agent_id]
            weights = json.loads((await get(second, "/weights")).body)
            assert {"role": "web", "weight": 2.5} in weights
            peer = Peer(second)
            peer.client.send(Heartbeat())  # a leader does not redirect
            # A message it answers, sent after the heartbeat: once its answer is in, any
            # redirect of the heartbeat would be too (one peer's messages stay in order).
            peer.client.send(register_message("agent-2"))
            await peer.first(AgentRegistered)
            assert not [m for m in peer.got if isinstance(m, LeaderRedirect)]
            peer.close()
        finally:
            await second.stop()
    run(test)


def test_ctl_names_the_leader_or_says_there_is_none(zk_url: str) -> None:  # noqa: F811
    """`ctl --master zk://…` resolves to the leader's HTTP endpoint; no ZooKeeper: a clear error."""
    from mesoslite.ctl.cluster import resolve_master
    from mesoslite.ctl.common import CtlError

    async def test() -> None:
        leader, follower = await start_two(zk_url)
        try:
            resolved = await asyncio.to_thread(resolve_master, zk_url)
            assert resolved == leader.info.http_endpoint
        finally:
            await follower.stop()
            await leader.stop()
    run(test)
    assert resolve_master("127.0.0.1:5050") == "http://127.0.0.1:5050"
    with pytest.raises(CtlError) as caught:
        resolve_master("zk://127.0.0.1:1/nowhere", timeout=0.5)
    assert "zk://127.0.0.1:1/nowhere" in str(caught.value)
