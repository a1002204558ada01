"""Marathon persistence and leader election against a real ZooKeeper (no mocks)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from frameworks.marathon.election import MarathonElection
from frameworks.marathon.state.file_store import FileStore
from frameworks.marathon.state.repository import (
    AppRepository,
    CorruptValueError,
    DeploymentRepository,
    FrameworkIdRepository,
    encode_app_id,
)
from frameworks.marathon.state.store import (
    Store,
    StoreError,
    StoreFencedError,
    StoreValueTooLargeError,
)
from frameworks.marathon.state.zk_store import ZooKeeperStore
from mesoslite.coordination import parse_zk_url
from tests.support.procs import until
from tests.support.zk_fixtures import raw_zk, zk_url, zookeeper  # noqa: F401

pytestmark = pytest.mark.integration

ONE_MB = 1024 * 1024


def make_store(kind: str, url: str, tmp_path: Path) -> Store:
    """A FileStore or a ZooKeeperStore, by name."""
    return FileStore(tmp_path / "state") if kind == "file" else ZooKeeperStore(url)


def run_with(store: Store, body: Callable[[Any], Awaitable[Any]]) -> Any:
    """Start ``store``, run ``body(store)``, close it."""
    async def main() -> Any:
        await store.start()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def app(app_id: str, version: str, **extra: Any) -> dict[str, Any]:
    """A Marathon-like app dict."""
    return {"id": app_id, "cmd": "python3 -m http.server $PORT0", "instances": 3, "cpus": 0.1,
            "mem": 32.0, "env": {"MODE": "ünïcode"}, "labels": {"team": "a"},
            "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0}],
            "version": version, **extra}


def ts(i: int) -> str:
    """The i-th version timestamp (fixed-width ISO-8601 Z)."""
    return f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}.000Z"


# ------------------------------------------------------------------ the shared contract


@pytest.mark.parametrize("kind", ["file", "zk"])
def test_repository_contract(kind: str, zk_url: str, tmp_path: Path) -> None:  # noqa: F811
    """Apps, versions with pruning, deployments and the framework id round-trip on both stores."""
    async def body(store: Store) -> None:
        apps = AppRepository(store, max_versions=3)
        stored = [app("/grp/web", ts(i), instances=i) for i in range(5)]
        for i, definition in enumerate(stored):
            await apps.store_app("/grp/web", ts(i), definition)
        await apps.store_app("/db", ts(9), app("/db", ts(9)))
        assert await apps.current("/grp/web") == stored[4]
        assert await apps.versions("/grp/web") == [ts(2), ts(3), ts(4)]
        assert await apps.version("/grp/web", ts(2)) == stored[2]
        assert await apps.version("/grp/web", ts(1)) is None
        assert await apps.all_current() == {"/grp/web": stored[4], "/db": app("/db", ts(9))}
        await apps.delete_app("/grp/web")
        assert await apps.ids() == ["/db"]
        deployments = DeploymentRepository(store)
        plan = {"id": "d-1", "steps": [[{"action": "ScaleApplication", "app": "/db"}]]}
        await deployments.store_deployment("d-1", plan)
        assert await deployments.all() == {"d-1": plan}
        await deployments.delete("d-1")
        assert await deployments.all() == {}
        framework_ids = FrameworkIdRepository(store)
        assert await framework_ids.get() is None
        await framework_ids.set("0f1e-0001")
        assert await framework_ids.get() == "0f1e-0001"
        await store.commit({"/k/a": b"1", "/k/b": b"2"}, ["/apps"])
        assert await store.children("/k") == ["a", "b"] and await store.children("/apps") == []

    run_with(make_store(kind, zk_url, tmp_path), body)


@pytest.mark.parametrize("kind", ["file", "zk"])
def test_value_over_the_limit_is_refused(kind: str, zk_url: str,  # noqa: F811
                                         tmp_path: Path) -> None:
    """A value over 900 KiB is refused naming the key, and nothing is written."""
    async def body(store: Store) -> None:
        with pytest.raises(StoreValueTooLargeError, match="/apps/huge/current"):
            await store.commit({"/apps/huge/current": b"x" * (900 * 1024 + 1), "/ok": b"1"})
        assert await store.get("/ok") is None
        await store.put("/fits", b"y" * (900 * 1024))
        assert len(await store.get("/fits") or b"") == 900 * 1024

    run_with(make_store(kind, zk_url, tmp_path), body)


# ------------------------------------------------------------------ ZooKeeper specifics


def test_commit_over_the_transaction_limit_is_refused_whole_and_big_deletes_split(
        zk_url: str) -> None:  # noqa: F811
    """A commit over max_commit_bytes writes nothing; a bigger recursive delete still works."""
    async def body(store: ZooKeeperStore) -> None:
        assert store.max_commit_bytes == 4000
        batch = {f"/big/{i:03d}": b"v" * 100 for i in range(100)}
        with pytest.raises(StoreValueTooLargeError, match="transaction limit"):
            await store.commit(batch)
        assert await store.children("/big") == []
        for key, data in batch.items():
            await store.put(key, data)
        assert len(await store.children("/big")) == 100
        await store.delete("/big")
        assert await store.children("/") == []

    run_with(ZooKeeperStore(zk_url, max_value_bytes=1000, max_txn_bytes=4000), body)



def test_layout_under_state_and_corrupt_znode_names_the_key(
        zk_url: str, raw_zk: KazooClient) -> None:  # noqa: F811
    """Values live under <zk path>/state/...; a corrupt znode raises an error naming its key."""
    path = parse_zk_url(zk_url).path

    async def body(store: Store) -> None:
        await AppRepository(store).store_app("/grp/web", ts(1), app("/grp/web", ts(1)))
        segment = encode_app_id("/grp/web")
        node = f"{path}/state/apps/{segment}/current"
        data, _ = await asyncio.to_thread(raw_zk.get, node)
        assert data.startswith(b'{"id":"/grp/web"')
        await asyncio.to_thread(raw_zk.set, node, b"\x00garbage")
        with pytest.raises(CorruptValueError, match=f"/apps/{segment}/current"):
            await AppRepository(store).current("/grp/web")

    run_with(ZooKeeperStore(zk_url), body)


def test_thousand_apps_with_three_versions_keep_every_znode_small(
        zk_url: str, raw_zk: KazooClient) -> None:  # noqa: F811
    """1,000 apps x 3 versions store and read back; every znode is far under 1 MB."""
    path = parse_zk_url(zk_url).path
    ids = [f"/team-{i % 10}/svc-{i:04d}" for i in range(1000)]

    async def body(store: Store) -> dict[str, float]:
        apps = AppRepository(store)
        limit = asyncio.Semaphore(64)

        async def put_all(app_id: str) -> None:
            async with limit:
                for v in range(3):
                    await apps.store_app(app_id, ts(v), app(app_id, ts(v), instances=v))

        started = time.monotonic()
        await asyncio.gather(*(put_all(i) for i in ids))
        stored = time.monotonic() - started
        started = time.monotonic()
        current = await apps.all_current()
        loaded = time.monotonic() - started
        assert len(current) == 1000
        assert current[ids[7]] == app(ids[7], ts(2), instances=2)
        assert await apps.versions(ids[999]) == [ts(0), ts(1), ts(2)]
        return {"store_s": stored, "load_s": loaded}

    timings = run_with(ZooKeeperStore(zk_url), body)
    print(f"1000 apps x 3 versions: {timings}")

    def walk() -> tuple[int, int]:
        count, biggest, todo = 0, 0, [f"{path}/state"]
        while todo:
            node = todo.pop()
            futures = [(child, raw_zk.get_async(f"{node}/{child}"))
                       for child in raw_zk.get_children(node)]
            for child, future in futures:
                data, _ = future.get(timeout=10)
                count += 1
                biggest = max(biggest, len(data))
                todo.append(f"{node}/{child}")
        return count, biggest

    count, biggest = walk()
    assert count >= 1000 * 5  # app dir, current, versions dir, 3 versions
    assert biggest < ONE_MB // 4


def test_fenced_writes_fail_after_the_leader_znode_is_deleted(
        zk_url: str, raw_zk: KazooClient) -> None:  # noqa: F811
    """A write fenced by a deleted leader znode raises StoreFencedError and changes nothing."""
    async def main() -> None:
        election = MarathonElection(zk_url, "127.0.0.1", 18080)
        await election.start()
        await until(lambda: election.is_leader, 10, "the only instance leads")
        fence = election.fencing_path
        assert fence and fence.startswith(parse_zk_url(zk_url).path + "/leader/json.info_")
        store = ZooKeeperStore(zk_url, fencing_path=fence)
        await store.start()
        apps = AppRepository(store)
        await apps.store_app("/web", ts(1), app("/web", ts(1)))
        deposed: list[str] = []
        election.on_deposed(deposed.append)
        await asyncio.to_thread(raw_zk.delete, fence)
        with pytest.raises(StoreFencedError, match="no longer the leader"):
            await apps.store_app("/web", ts(2), app("/web", ts(2)))
        with pytest.raises(StoreFencedError):
            await store.delete("/apps")
        with pytest.raises(StoreFencedError):
            await FrameworkIdRepository(store).set("fw-2")
        assert await apps.current("/web") == app("/web", ts(1))
        assert await apps.versions("/web") == [ts(1)]
        await until(lambda: deposed, 10, "the election notices the deleted znode")
        assert not election.is_leader
        await store.close()
        await election.stop()

    asyncio.run(main())


def test_store_reports_unreachable_zookeeper_as_store_error() -> None:
    """A ZooKeeperStore with no server answering raises StoreError naming the ensemble."""
    async def main() -> None:
        store = ZooKeeperStore("zk://127.0.0.1:1/marathon", connect_timeout=0.5)
        with pytest.raises(StoreError, match=r"127\.0\.0\.1:1"):
            await store.start()
        await store.close()

    asyncio.run(main())


# ------------------------------------------------------------------ election


def test_two_instances_elect_one_and_the_standby_takes_over(zk_url: str) -> None:  # noqa: F811
    """One of two instances leads; stopping it makes the other lead and the address follows."""
    async def main() -> None:
        first = MarathonElection(zk_url, "127.0.0.1", 18081)
        second = MarathonElection(zk_url, "127.0.0.1", 18082)
        elected: list[str] = []
        first.on_elected(lambda: elected.append("first"))
        second.on_elected(lambda: elected.append("second"))
        await first.start()
        await second.start()
        await until(lambda: first.is_leader or second.is_leader, 10, "a leader")
        leader, standby = (first, second) if first.is_leader else (second, first)
        assert not standby.is_leader
        await until(lambda: standby.leader_http_address() == leader.address, 10,
                    "the standby sees the leader")
        assert leader.leader_http_address() == leader.address
        assert len(elected) == 1
        await leader.stop()
        await until(lambda: standby.is_leader, 10, "the standby takes over")
        assert standby.leader_http_address() == standby.address
        assert len(elected) == 2
        await standby.stop()

    asyncio.run(main())


def test_abdicate_hands_leadership_to_the_other_instance(zk_url: str) -> None:  # noqa: F811
    """An abdicating leader runs its deposed callbacks, rejoins as standby, follows the new one."""
    async def main() -> None:
        first = MarathonElection(zk_url, "127.0.0.1", 18083)
        await first.start()
        await until(lambda: first.is_leader, 10, "the first instance leads")
        second = MarathonElection(zk_url, "127.0.0.1", 18084)
        await second.start()
        reasons: list[str] = []
        first.on_deposed(reasons.append)
        await first.abdicate()
        assert reasons == ["abdicated"]
        await until(lambda: second.is_leader, 10, "the second instance takes over")
        assert not first.is_leader
        await until(lambda: first.leader_http_address() == "127.0.0.1:18084", 10,
                    "the abdicated instance follows the new leader")
        await second.stop()
        await until(lambda: first.is_leader, 10, "the first instance leads again")
        await first.stop()

    asyncio.run(main())
