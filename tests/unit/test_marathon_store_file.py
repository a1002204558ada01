"""FileStore and the Marathon repositories on a temp directory (no ZooKeeper)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from frameworks.marathon.election import MarathonElection
from frameworks.marathon.state.file_store import FileStore
from frameworks.marathon.state.repository import (
    AppRepository,
    CorruptValueError,
    DeploymentRepository,
    FrameworkIdRepository,
    decode_app_id,
    encode_app_id,
)
from frameworks.marathon.state.store import (
    InvalidKeyError,
    StoreError,
    StoreValueTooLargeError,
    get_many,
)


def run_with_store(tmp_path: Path, body: Callable[[FileStore], Awaitable[Any]],
                   **options: Any) -> Any:
    """Run ``body(store)`` with a started FileStore under ``tmp_path/state``."""
    async def main() -> Any:
        store = FileStore(tmp_path / "state", **options)
        await store.start()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def app(app_id: str, version: str, **extra: Any) -> dict[str, Any]:
    """A Marathon-like app dict."""
    return {"id": app_id, "cmd": "sleep 100", "instances": 2, "cpus": 0.5, "mem": 64.0,
            "env": {"GREETING": "héllo"}, "labels": {}, "portDefinitions": [{"port": 0}],
            "version": version, **extra}


def ts(i: int) -> str:
    """The i-th version timestamp (fixed-width ISO-8601 Z)."""
    return f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}.000Z"


def test_put_get_children_delete_round_trip(tmp_path: Path) -> None:
    """Bytes come back as stored; children lists names; delete is recursive."""
    async def body(store: FileStore) -> None:
        await store.put("/a/b/c", b"one")
        await store.put("/a/b", b"two")
        await store.put("/a/d", b"three")
        assert await store.get("/a/b/c") == b"one"
        assert await store.get("/a/b") == b"two"
        assert await store.get("/a") is None
        assert await store.get("/missing/key") is None
        assert await store.children("/a") == ["b", "d"]
        assert await store.children("/") == ["a"]
        assert await store.children("/nothing") == []
        await store.put("/a/b/c", b"replaced")
        assert await store.get("/a/b/c") == b"replaced"
        await store.delete("/a/b")
        assert await store.get("/a/b/c") is None
        assert await store.get("/a/b") is None
        assert await store.children("/a") == ["d"]
        await store.delete("/a/b")  # absent: no-op

    run_with_store(tmp_path, body)


def test_get_many_reads_every_key(tmp_path: Path) -> None:
    """get_many returns each key's value, None for absent ones, in the given keys."""
    async def body(store: FileStore) -> None:
        await store.commit({f"/t/{i}": str(i).encode() for i in range(100)})
        found = await get_many(store, [f"/t/{i}" for i in range(101)])
        assert found == {**{f"/t/{i}": str(i).encode() for i in range(100)}, "/t/100": None}

    run_with_store(tmp_path, body)


def test_commit_applies_puts_and_deletes(tmp_path: Path) -> None:
    """commit writes every put and removes every deleted subtree."""
    async def body(store: FileStore) -> None:
        await store.put("/x/old/1", b"1")
        await store.put("/x/old/2", b"2")
        await store.commit({"/x/new": b"n", "/y": b"y"}, ["/x/old"])
        assert await store.children("/x") == ["new"]
        assert await store.get("/y") == b"y"
        with pytest.raises(InvalidKeyError, match="/x/new/z"):
            await store.commit({"/x/new/z": b"z"}, ["/x/new"])

    run_with_store(tmp_path, body)


def test_failed_commit_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit whose journal sync fails raises naming a key and changes nothing, reopened too."""
    async def body(store: FileStore) -> None:
        await store.put("/k/a", b"old")
        size = store.journal_path.stat().st_size

        real_sync, failures = os.fdatasync, [OSError(5, "Input/output error")]

        def broken_sync(fd: int) -> None:
            if failures:
                raise failures.pop()
            real_sync(fd)

        with monkeypatch.context() as patch:
            patch.setattr(os, "fdatasync", broken_sync)
            with pytest.raises(StoreError, match="/k/a"):
                await store.commit({"/k/a": b"new", "/k/b": b"x"})
        assert await store.get("/k/a") == b"old" and await store.get("/k/b") is None
        assert store.journal_path.stat().st_size == size
        await store.put("/k/c", b"after")

    run_with_store(tmp_path, body)
    found = run_with_store(tmp_path, lambda s: get_many(s, ["/k/a", "/k/b", "/k/c"]))
    assert found == {"/k/a": b"old", "/k/b": None, "/k/c": b"after"}


@pytest.mark.parametrize("key", [
    "/a/../b", "/../etc", "..", "relative/key", "/a//b", "/a/./b", "/a/\x00b", "/a/.hidden",
    "/a/b/", "", "/a\\b", "/" + "x" * 300,
])
def test_keys_that_could_escape_are_refused(tmp_path: Path, key: str) -> None:
    """Escaping, relative, empty or dot segment, NUL and over-long keys raise InvalidKeyError."""
    async def body(store: FileStore) -> None:
        with pytest.raises(InvalidKeyError, match="key"):
            await store.put(key, b"x")
        with pytest.raises(InvalidKeyError):
            await store.get(key)

    run_with_store(tmp_path, body)
    assert not (tmp_path / "etc").exists() and not (tmp_path / "b").exists()


def test_value_limits(tmp_path: Path) -> None:
    """Values over the limit are refused naming the key; empty values are refused too."""
    async def body(store: FileStore) -> None:
        with pytest.raises(StoreValueTooLargeError, match="/big"):
            await store.put("/big", b"x" * 1001)
        with pytest.raises(StoreError, match="/empty"):
            await store.put("/empty", b"")
        await store.put("/fits", b"x" * 1000)
        assert await store.get("/big") is None

    run_with_store(tmp_path, body, max_value_bytes=1000)


def test_start_removes_crash_leftovers(tmp_path: Path) -> None:
    """Temp snapshot and journal files left by a crash are removed on start; state is kept."""
    run_with_store(tmp_path, lambda s: s.put("/apps/a", b"1"))
    state = tmp_path / "state"
    (state / "snapshot.tmp-dead").write_bytes(b"torn")
    (state / "journal.tmp-dead").write_bytes(b"torn")

    async def body(store: FileStore) -> None:
        assert await store.children("/apps") == ["a"]

    run_with_store(tmp_path, body)
    assert sorted(p.name for p in state.iterdir()) == ["journal", "lock"]


@pytest.mark.parametrize("app_id",
                         ["/web", "/grp/sub/app", "/a_b/c", "/%41/x", "/.x/..", "/ü/日本"])
def test_app_id_encoding_is_reversible(app_id: str) -> None:
    """encode_app_id gives one safe segment and decode_app_id restores the id."""
    segment = encode_app_id(app_id)
    assert "/" not in segment and not segment.startswith(".")
    assert decode_app_id(segment) == app_id


def test_app_repository_round_trip_and_versions(tmp_path: Path) -> None:
    """Current and versioned app dicts read back equal to what was stored."""
    async def body(store: FileStore) -> None:
        repo = AppRepository(store)
        v1, v2 = app("/grp/web", ts(1)), app("/grp/web", ts(2), instances=5)
        await repo.store_app("/grp/web", ts(1), v1)
        await repo.store_app("/grp/web", ts(2), v2)
        await repo.store_app("/db", ts(3), app("/db", ts(3)))
        assert await repo.current("/grp/web") == v2
        assert await repo.version("/grp/web", ts(1)) == v1
        assert await repo.versions("/grp/web") == [ts(1), ts(2)]
        assert await repo.all_current() == {"/grp/web": v2, "/db": app("/db", ts(3))}
        assert await repo.current("/nope") is None
        assert await repo.version("/grp/web", ts(9)) is None
        await repo.delete_app("/grp/web")
        assert await repo.ids() == ["/db"]
        assert await repo.versions("/grp/web") == []

    run_with_store(tmp_path, body)


def test_versions_are_pruned_oldest_first(tmp_path: Path) -> None:
    """At most max_versions versions are kept; the oldest go first."""
    async def body(store: FileStore) -> None:
        repo = AppRepository(store, max_versions=5)
        pruned: list[str] = []
        for i in range(8):
            pruned += await repo.store_app("/app", ts(i), app("/app", ts(i)))
        assert await repo.versions("/app") == [ts(i) for i in range(3, 8)]
        assert pruned == [ts(0), ts(1), ts(2)]
        assert await repo.current("/app") == app("/app", ts(7))

    run_with_store(tmp_path, body)


def test_default_max_versions_is_fifty(tmp_path: Path) -> None:
    """The default keeps 50 versions (Marathon's zk_max_versions)."""
    async def body(store: FileStore) -> None:
        repo = AppRepository(store)
        for i in range(53):
            await repo.store_app("/app", ts(i), app("/app", ts(i)))
        versions = await repo.versions("/app")
        assert len(versions) == 50 and versions[0] == ts(3)

    run_with_store(tmp_path, body)


def test_corrupt_value_names_the_key(tmp_path: Path) -> None:
    """A corrupt or non-object stored value raises CorruptValueError naming its key."""
    async def body(store: FileStore) -> None:
        repo = AppRepository(store)
        await repo.store_app("/web", ts(1), app("/web", ts(1)))
        await store.put("/apps/web/current", b"{not json")
        with pytest.raises(CorruptValueError, match="/apps/web/current"):
            await repo.current("/web")
        with pytest.raises(CorruptValueError, match="/apps/web/current"):
            await repo.all_current()
        await store.put("/framework-id", b"[1, 2]")
        with pytest.raises(CorruptValueError, match="/framework-id"):
            await FrameworkIdRepository(store).get()

    run_with_store(tmp_path, body)


def test_corrupt_stored_bytes_name_the_key(tmp_path: Path) -> None:
    """A stored value that is not UTF-8 raises CorruptValueError naming the key."""
    async def body(store: FileStore) -> None:
        deployments = DeploymentRepository(store)
        await deployments.store_deployment("d-1", {"id": "d-1", "steps": []})
        await store.put("/deployments/d-1", b"\xff\xfe\x00")
        with pytest.raises(CorruptValueError, match="/deployments/d-1"):
            await deployments.all()

    run_with_store(tmp_path, body)


def test_deployment_and_framework_id_repositories(tmp_path: Path) -> None:
    """Deployments store, list and delete; the framework id round-trips."""
    async def body(store: FileStore) -> None:
        deployments = DeploymentRepository(store)
        one = {"id": "5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43", "version": ts(1),
               "steps": [[{"action": "StartApplication", "app": "/web"}]], "currentStep": 1}
        two = {"id": "d-2", "version": ts(2), "steps": [], "currentStep": 0}
        await deployments.store_deployment(one["id"], one)
        await deployments.store_deployment("d-2", two)
        assert await deployments.all() == {one["id"]: one, "d-2": two}
        await deployments.delete("d-2")
        assert await deployments.all() == {one["id"]: one}
        framework_ids = FrameworkIdRepository(store)
        assert await framework_ids.get() is None
        await framework_ids.set("fw-0001")
        assert await framework_ids.get() == "fw-0001"

    run_with_store(tmp_path, body)


def test_state_survives_reopening(tmp_path: Path) -> None:
    """A new FileStore on the same directory reads what the previous one wrote."""
    run_with_store(tmp_path, lambda s: AppRepository(s).store_app("/web", ts(1),
                                                                   app("/web", ts(1))))
    found = run_with_store(tmp_path, lambda s: AppRepository(s).all_current())
    assert found == {"/web": app("/web", ts(1))}


def test_standalone_election_leads_at_once() -> None:
    """Without ZooKeeper the instance is leader on start, unfenced, and names itself."""
    async def main() -> None:
        election = MarathonElection(None, "127.0.0.1", 8080)
        elected: list[bool] = []
        election.on_elected(lambda: elected.append(True))
        assert not election.is_leader
        await election.start()
        assert election.is_leader and elected == [True]
        assert election.fencing_path is None
        assert election.leader_http_address() == "127.0.0.1:8080"
        await election.stop()
        assert not election.is_leader

    asyncio.run(main())


def test_election_refuses_bad_address() -> None:
    """A bad HTTP port or host is refused naming the field."""
    with pytest.raises(ValueError, match="http_port"):
        MarathonElection(None, "127.0.0.1", 0)
    with pytest.raises(ValueError, match="http_host"):
        MarathonElection(None, "", 8080)
