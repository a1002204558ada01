"""The file registry's log mode: writes append the touched records (group commit costs
the batch, not the registry), loads replay the log, compaction keeps it bounded, and a
torn last line or a crash during compaction loses nothing acknowledged."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from mesoslite.coordination import (
    AdmitAgent,
    FileRegistry,
    MarkAgentUnreachable,
    PutFramework,
    RegistryFormatError,
    RegistryState,
    RemoveAgent,
    SetQuota,
    SetWeight,
    StoredAgent,
    StoredFramework,
)
from mesoslite.coordination import registry as registry_module


def agent(i: int) -> StoredAgent:
    """An agent record."""
    return StoredAgent(hostname=f"h{i}", agent_info={"id": f"A-{i}", "hostname": f"h{i}"},
                       registered_time=1_700_000_000.0 + i)


def random_ops(rng: random.Random, count: int) -> list[object]:
    """Operations over a few agents, frameworks and roles, in random order."""
    ops: list[object] = []
    for _ in range(count):
        i = rng.randrange(40)
        kind = rng.randrange(6)
        if kind <= 1:
            ops.append(AdmitAgent(f"A-{i}", agent(i)))
        elif kind == 2:
            ops.append(RemoveAgent(f"A-{i}"))
        elif kind == 3:
            ops.append(MarkAgentUnreachable(f"A-{i}", float(i)))
        elif kind == 4:
            ops.append(PutFramework(f"F-{i % 5}", StoredFramework(
                info={"name": f"fw{i}"}, registered_time=float(i))))
        else:
            ops.append(SetWeight(f"r{i % 3}", 1.0 + i) if i % 2
                       else SetQuota(f"r{i % 3}", {"cpus": float(i)}))
    return ops


def test_log_mode_appends_and_a_new_reader_sees_every_write(tmp_path: Path) -> None:
    """Batches go to the log (the snapshot is not rewritten); a reader replays them."""
    path = tmp_path / "registry.json"
    rng = random.Random(5)
    ops = random_ops(rng, 300)

    async def main() -> None:
        registry = FileRegistry(path, log=True)
        await registry.load()
        expected = RegistryState()
        await registry.apply(SetWeight("first", 1.0))  # the first write is a snapshot
        SetWeight("first", 1.0).apply(expected)
        snapshot = path.read_bytes()
        for start in range(0, len(ops), 7):
            batch = ops[start:start + 7]
            await asyncio.gather(*(registry.apply(op) for op in batch))  # type: ignore[arg-type]
            for op in batch:
                op.apply(expected)  # type: ignore[attr-defined]
        assert path.read_bytes() == snapshot  # only the log grew
        assert (tmp_path / "registry.json.log").stat().st_size > 0
        assert await FileRegistry(path, log=True).load() == expected
        assert await registry.load() == expected

    asyncio.run(main())


def test_log_compaction_and_a_crash_before_the_log_is_emptied(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """Past the bound the snapshot is rewritten and the log emptied; replaying the old log
    over the new snapshot (a crash between the two) gives the same state."""
    monkeypatch.setattr(registry_module, "LOG_COMPACT_MIN", 2000)
    path = tmp_path / "registry.json"
    log_path = tmp_path / "registry.json.log"
    ops = random_ops(random.Random(9), 400)

    async def main() -> None:
        registry = FileRegistry(path, log=True)
        original = registry._encode_and_write
        logs_at_compaction: list[bytes] = []

        def spy(state: RegistryState) -> None:
            """Keep the log as a crash right after the snapshot would leave it."""
            logs_at_compaction.append(log_path.read_bytes() if log_path.exists() else b"")
            original(state)

        registry._encode_and_write = spy  # type: ignore[method-assign]
        expected = RegistryState()
        for op in ops:
            compactions = len(logs_at_compaction)
            await registry.apply(op)  # type: ignore[arg-type]
            op.apply(expected)  # type: ignore[attr-defined]
            if len(logs_at_compaction) > compactions and logs_at_compaction[-1]:
                assert log_path.read_bytes() == b""  # emptied after the snapshot
                log_path.write_bytes(logs_at_compaction[-1])  # the crash before that
                assert await FileRegistry(path, log=True).load() == expected
                log_path.write_bytes(b"")
        assert len([log for log in logs_at_compaction if log]) >= 2
        assert await FileRegistry(path, log=True).load() == expected

    asyncio.run(main())


def test_a_torn_last_line_is_ignored_but_a_corrupt_line_is_an_error(tmp_path: Path) -> None:
    """A crash during an append (never acknowledged) loses only that append; garbage in the
    middle of the log is refused, never silently skipped."""
    path = tmp_path / "registry.json"
    log_path = tmp_path / "registry.json.log"

    async def main() -> None:
        registry = FileRegistry(path, log=True)
        await registry.apply(SetWeight("a", 1.0))
        await registry.apply(SetWeight("b", 2.0))
        good = log_path.read_bytes()
        log_path.write_bytes(good + b'{"policy":{"weights":{"c"')  # torn
        assert (await FileRegistry(path, log=True).load()).weights == {"a": 1.0, "b": 2.0}
        log_path.write_bytes(b"{garbage\n" + good)
        with pytest.raises(RegistryFormatError):
            await FileRegistry(path, log=True).load()

    asyncio.run(main())


def test_chunked_snapshot_encoding_is_the_plain_encoding(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """The snapshot written a few records at a time is byte for byte ``state.encode()``."""
    monkeypatch.setattr(registry_module, "ENCODE_CHUNK", 3)
    state = RegistryState()
    for op in random_ops(random.Random(2), 200):
        op.apply(state)  # type: ignore[attr-defined]
    assert registry_module._encode_chunked(state) == state.encode("json")
    assert registry_module._encode_chunked(RegistryState()) == RegistryState().encode("json")
