"""FileStore's journal: restart, torn tails, corruption, compaction, migration and the lock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from frameworks.marathon.state import file_store as file_store_module
from frameworks.marathon.state.file_store import FileStore
from frameworks.marathon.state.journal import encode_commit, encode_snapshot, read_snapshot
from frameworks.marathon.state.store import StoreError, get_many


def run_with_store(state: Path, body: Callable[[FileStore], Awaitable[Any]],
                   **options: Any) -> Any:
    """Run ``body(store)`` with a started FileStore on ``state``; close it afterwards."""
    async def main() -> Any:
        store = FileStore(state, **options)
        await store.start()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


async def dump(store: FileStore, key: str = "/") -> dict[str, bytes]:
    """Every key with a value under ``key``, walked through children()."""
    found: dict[str, bytes] = {}
    for name in await store.children(key):
        child = f"{key.rstrip('/')}/{name}"
        value = await store.get(child)
        if value is not None:
            found[child] = value
        found.update(await dump(store, child))
    return found


def test_state_is_reloaded_after_restart(tmp_path: Path) -> None:
    """Puts, overwrites and recursive deletes of several commits read back after reopening."""
    state = tmp_path / "state"

    async def write(store: FileStore) -> dict[str, bytes]:
        await store.commit({"/a/b/c": b"1", "/a/b": b"2", "/a/d": b"3", "/x/y/z": b"4"})
        await store.put("/a/d", b"3b")
        await store.commit({"/n/1": b"n"}, ["/x/y"])
        await store.delete("/a/b/c")
        return await dump(store)

    before = run_with_store(state, write)
    assert before == {"/a/b": b"2", "/a/d": b"3b", "/n/1": b"n"}

    async def read(store: FileStore) -> tuple[dict[str, bytes], list[str], list[str]]:
        return await dump(store), await store.children("/"), await store.children("/a/b")

    assert run_with_store(state, read) == (before, ["a", "n"], [])


def test_children_prune_parents_left_without_values(tmp_path: Path) -> None:
    """A parent with no value disappears from children() once its last descendant goes."""
    async def body(store: FileStore) -> None:
        await store.commit({"/p/q/r": b"1", "/v": b"2", "/v/w": b"3"})
        await store.delete("/p/q/r")
        assert await store.children("/") == ["v"]
        await store.delete("/v/w")
        assert await store.children("/") == ["v"] and await store.get("/v") == b"2"
        assert await store.get("/p") is None and await store.children("/p") == []

    run_with_store(tmp_path / "state", body)


@pytest.mark.parametrize("tail", ["half", "header-only", "zeros"])
def test_torn_last_record_is_cut_off(tmp_path: Path, tail: str) -> None:
    """A partial last record is truncated at start; earlier commits survive and writes resume."""
    state = tmp_path / "state"
    run_with_store(state, lambda s: s.commit({"/keep/1": b"one", "/keep/2": b"two"}))
    journal = state / "journal"
    good_size = journal.stat().st_size
    record = encode_commit({"/torn": b"x" * 500}, [])
    damage = {"half": record[:len(record) // 2], "header-only": record[:6],
              "zeros": b"\0" * 4096}[tail]
    with journal.open("ab") as handle:
        handle.write(damage)

    async def body(store: FileStore) -> dict[str, bytes | None]:
        await store.put("/after", b"a")
        return await get_many(store, ["/keep/1", "/keep/2", "/torn", "/after"])

    expected = {"/keep/1": b"one", "/keep/2": b"two", "/torn": None, "/after": b"a"}
    assert run_with_store(state, body) == expected
    assert journal.stat().st_size == good_size + len(encode_commit({"/after": b"a"}, []))
    found = run_with_store(state, lambda s: get_many(s, list(expected)))
    assert found == expected


def test_bad_crc_before_the_tail_names_file_and_offset(tmp_path: Path) -> None:
    """A damaged record followed by intact ones is an error naming the journal and offset."""
    state = tmp_path / "state"
    journal = state / "journal"
    offsets: list[int] = []

    async def body(store: FileStore) -> None:
        for i in range(3):
            offsets.append(journal.stat().st_size)
            await store.put(f"/k/{i}", f"value-{i}".encode() * 10)

    run_with_store(state, body)
    data = bytearray(journal.read_bytes())
    data[offsets[1] + 20] ^= 0xFF
    journal.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=f"{journal}.*offset {offsets[1]}"):
        run_with_store(state, dump)
    assert journal.read_bytes() == bytes(data)  # nothing was cut away


def test_compaction_under_load_keeps_every_key(tmp_path: Path) -> None:
    """Concurrent commits over a low threshold compact repeatedly and lose no key."""
    state = tmp_path / "state"
    expected: dict[str, bytes] = {}

    async def writer(store: FileStore, worker: int) -> None:
        for round_ in range(20):
            puts = {f"/w{worker}/k{i}": f"{worker}-{round_}-{i}".encode() * 20
                    for i in range(10)}
            await store.commit(puts, [f"/w{worker}/gone"])
            await store.put(f"/w{worker}/gone/x", b"temporary")

    async def body(store: FileStore) -> dict[str, bytes]:
        await asyncio.gather(*(writer(store, w) for w in range(5)))
        return await dump(store)

    for w in range(5):
        expected.update({f"/w{w}/k{i}": f"{w}-19-{i}".encode() * 20 for i in range(10)})
        expected[f"/w{w}/gone/x"] = b"temporary"
    assert run_with_store(state, body, compact_min_bytes=4096) == expected
    generation, _values = read_snapshot(state / "snapshot")
    assert generation > 3
    assert (state / "journal").stat().st_size < 3 * 4096
    assert run_with_store(state, dump) == expected


def test_leftover_temp_snapshot_is_ignored_and_removed(tmp_path: Path) -> None:
    """A temp snapshot left by a crash mid-compaction does not stop the store from loading."""
    state = tmp_path / "state"
    run_with_store(state, lambda s: s.commit({"/a": b"1", "/b": b"2"}))
    (state / "snapshot.tmp-0123").write_bytes(encode_snapshot(7, {"/zzz": b"bogus"})[:10])
    assert run_with_store(state, dump) == {"/a": b"1", "/b": b"2"}
    assert not (state / "snapshot.tmp-0123").exists()


def test_crash_between_new_snapshot_and_new_journal_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compaction stopped after its snapshot: writes are refused, and a restart loads it all."""
    state = tmp_path / "state"
    real_write = file_store_module.write_atomic

    def no_new_journal(path: Path, data: bytes) -> None:
        if path.name == "journal" and (state / "snapshot").exists():
            raise OSError(28, "No space left on device")
        real_write(path, data)

    async def body(store: FileStore) -> dict[str, bytes]:
        acknowledged: dict[str, bytes] = {}
        with pytest.raises(StoreError, match="writes refused"):  # noqa: PT012 - until refused
            for i in range(200):
                value = f"round {i} ".encode() * 20
                await store.commit({f"/k/{i % 5}": value}, [f"/k/{i - 1}/sub"])
                acknowledged[f"/k/{i % 5}"] = value
        return acknowledged

    monkeypatch.setattr(file_store_module, "write_atomic", no_new_journal)
    acknowledged = run_with_store(state, body, compact_min_bytes=2048)
    monkeypatch.undo()
    assert acknowledged and run_with_store(state, dump) == acknowledged
    assert run_with_store(state, lambda s: s.put("/more", b"m")) is None
    assert run_with_store(state, lambda s: s.get("/more")) == b"m"


def test_journal_newer_than_snapshot_is_refused(tmp_path: Path) -> None:
    """A journal whose generation is ahead of the snapshot (snapshot lost) is an error."""
    state = tmp_path / "state"
    run_with_store(state, lambda s: s.put("/a", b"1"), compact_min_bytes=0)
    (state / "snapshot").unlink()
    with pytest.raises(StoreError, match="generation 1 is newer"):
        run_with_store(state, dump)


def test_old_layout_is_migrated_once(tmp_path: Path) -> None:
    """Old per-key directories are imported into a snapshot and moved to old-layout/."""
    state = tmp_path / "state"
    old_values = {"/apps/web/current": b'{"id": "/web"}', "/apps/web/versions/v1": b"{}",
                  "/framework-id": b"fw-1", "/apps/web": b"parent value"}
    for key, data in old_values.items():
        (state / key.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (state / key.lstrip("/") / ".value").write_bytes(data)
    (state / "apps" / "empty").mkdir()
    (state / "apps" / ".trash-1" / "x").mkdir(parents=True)
    (state / "apps" / ".trash-1" / "x" / ".value").write_bytes(b"deleted")
    (state / "framework-id" / ".value.tmp-dead").write_bytes(b"torn")

    assert run_with_store(state, dump) == old_values
    assert sorted(p.name for p in state.iterdir()) == [
        "journal", "lock", "old-layout", "snapshot"]
    assert (state / "old-layout" / "framework-id" / ".value").read_bytes() == b"fw-1"

    async def change(store: FileStore) -> dict[str, bytes]:
        await store.delete("/apps")
        return await dump(store)

    assert run_with_store(state, change) == {"/framework-id": b"fw-1"}
    assert run_with_store(state, dump) == {"/framework-id": b"fw-1"}


def test_second_store_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    """While one store holds the directory, another fails at start naming it; later it opens."""
    state = tmp_path / "state"

    async def main() -> None:
        first = FileStore(state)
        await first.start()
        second = FileStore(state)
        with pytest.raises(StoreError, match=f"{state}.*in use"):
            await second.start()
        await second.close()
        await first.put("/a", b"1")
        await first.close()
        third = FileStore(state)
        await third.start()
        assert await third.get("/a") == b"1"
        await third.close()

    asyncio.run(main())


def test_commit_before_start_is_refused(tmp_path: Path) -> None:
    """A commit on a store that was never started raises StoreError naming the directory."""
    async def main() -> None:
        store = FileStore(tmp_path / "state")
        with pytest.raises(StoreError, match="not started"):
            await store.put("/a", b"1")
        await store.close()

    asyncio.run(main())
