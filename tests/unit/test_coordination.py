"""Unit tests for mesoslite.coordination: URLs, MasterInfo JSON, standalone election and
detection, the registry value and the file registry (no ZooKeeper needed)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mesoslite.coordination import (
    AdmitAgent,
    CoordinationError,
    EndpointDetector,
    FileRegistry,
    MarkAgentUnreachable,
    MasterInfoError,
    PutFramework,
    RegistryFormatError,
    RegistryState,
    RemoveAgent,
    RemoveFramework,
    SetMaintenance,
    SetQuota,
    SetWeight,
    StandaloneContender,
    StandaloneDetector,
    StoredAgent,
    StoredFramework,
    ZooKeeperContender,
    ZooKeeperDetector,
    create_contender,
    create_detector,
    master_info_from_json,
    master_info_to_json,
    parse_host_port,
    parse_zk_url,
)
from mesoslite.coordination.masterinfo import leader_of, uint32_to_ip
from mesoslite.coordination.registry_state import shard_keys, shard_of
from mesoslite.protocol.types import MasterInfo

ROOT = Path(__file__).resolve().parents[2]


def master(i: int = 1) -> MasterInfo:
    """A MasterInfo for master number ``i``."""
    return MasterInfo(id=f"master-{i}", ip="10.0.0.1", port=5050, hostname="m1.example",
                      version="0.1.0", zmq_endpoint=f"tcp://10.0.0.1:{5055 + i}",
                      http_endpoint="http://10.0.0.1:5050")


def agent_record(i: int) -> StoredAgent:
    """An admitted agent record."""
    return StoredAgent(hostname=f"agent-{i}.example",
                       agent_info={"id": f"A-{i}", "hostname": f"agent-{i}.example",
                                   "resources": {"cpus": 8.0, "mem": 32768.0}},
                       registered_time=1_700_000_000.0 + i)


def full_state() -> RegistryState:
    """A state with something in every section."""
    state = RegistryState()
    AdmitAgent("A-1", agent_record(1)).apply(state)
    AdmitAgent("A-2", agent_record(2)).apply(state)
    MarkAgentUnreachable("A-3", 1_700_000_100.5).apply(state)
    PutFramework("F-1", StoredFramework(info={"name": "marathon", "user": "root"},
                                        failover_timeout=604800.0,
                                        registered_time=1_700_000_001.0)).apply(state)
    PutFramework("F-2", StoredFramework(info={"name": "old"}, registered_time=1.0,
                                        unregistered_time=2.0)).apply(state)
    SetWeight("prod", 2.5).apply(state)
    SetQuota("prod", {"cpus": 4.0, "mem": 1024.0}).apply(state)
    SetMaintenance({"windows": [{"machine_ids": [{"hostname": "h1"}]}]}).apply(state)
    return state


# ------------------------------------------------------------------ URLs


def test_parse_zk_url_with_hosts_ports_and_path() -> None:
    """A multi-host zk:// URL yields every host, its port (2181 by default) and the path."""
    url = parse_zk_url("zk://zk1:2181,zk2,10.0.0.3:2182/mesos/prod")
    assert url.hosts == (("zk1", 2181), ("zk2", 2181), ("10.0.0.3", 2182))
    assert url.path == "/mesos/prod"
    assert url.hosts_string == "zk1:2181,zk2:2181,10.0.0.3:2182"
    assert url.auth_data == []


def test_parse_zk_url_with_credentials_masks_password() -> None:
    """Credentials become digest auth data, and str() and repr() never show the password."""
    url = parse_zk_url("zk://alice:s3cret@zk1:2181/mesos")
    assert (url.username, url.password) == ("alice", "s3cret")
    assert url.auth_data == [("digest", "alice:s3cret")]
    assert "s3cret" not in str(url) and "s3cret" not in repr(url)
    assert url.unmasked() == "zk://alice:s3cret@zk1:2181/mesos"


def test_parse_zk_url_ipv6_host() -> None:
    """A bracketed IPv6 host parses, and is bracketed again in the hosts string."""
    url = parse_zk_url("zk://[::1]:2181/m")
    assert url.hosts == (("::1", 2181),)
    assert url.hosts_string == "[::1]:2181"


@pytest.mark.parametrize(("text", "part"), [
    ("http://zk1:2181/mesos", "scheme"),
    ("zk1:2181/mesos", "scheme"),
    ("zk://zk1:2181", "path"),
    ("zk://zk1:2181/", "path"),
    ("zk://zk1:2181/a//b", "path"),
    ("zk://zk1:2181/a/", "path"),
    ("zk://zk1:2181/a/../b", "path"),
    ("zk:///mesos", "hosts"),
    ("zk://zk1:2181,/mesos", "hosts[1]"),
    ("zk://zk1:99999/mesos", "hosts[0]"),
    ("zk://zk1:abc/mesos", "hosts[0]"),
    ("zk://zk1:/mesos", "hosts[0]"),
    ("zk://bad host/mesos", "hosts[0]"),
    ("zk://[::1/mesos", "hosts[0]"),
    ("zk://alice@zk1/mesos", "credentials"),
    ("zk://:pw@zk1/mesos", "credentials"),
])
def test_parse_zk_url_rejects_invalid_naming_the_part(text: str, part: str) -> None:
    """Each malformed URL is refused with a ValueError that starts with the faulty part."""
    with pytest.raises(ValueError) as info:
        parse_zk_url(text)
    assert str(info.value).startswith(f"{part}:"), str(info.value)


def test_parse_host_port_valid_and_invalid() -> None:
    """host:port and tcp://host:port parse; anything else names the problem."""
    assert parse_host_port("10.0.0.1:5055") == ("10.0.0.1", 5055)
    assert parse_host_port("tcp://master.example:5055") == ("master.example", 5055)
    for bad, words in [("10.0.0.1", "missing port"), ("h:0", "invalid port"),
                       ("zk://h:1/p", "scheme"), ("h:1/x", "expected host:port")]:
        with pytest.raises(ValueError, match=words):
            parse_host_port(bad)


# ------------------------------------------------------------------ MasterInfo JSON


def test_master_info_json_has_mesos_field_names_and_round_trips() -> None:
    """The znode JSON carries Mesos's MasterInfo names plus our endpoints, and decodes back."""
    info = master(1)
    obj = json.loads(master_info_to_json(info))
    assert {"id", "ip", "port", "hostname", "version", "address"} <= set(obj)
    assert obj["address"] == {"ip": "10.0.0.1", "hostname": "m1.example", "port": 5050}
    assert obj["zmq_endpoint"] == "tcp://10.0.0.1:5056"
    assert master_info_from_json(master_info_to_json(info)) == info


def test_master_info_from_mesos_znode_with_uint32_ip() -> None:
    """A znode written by real Mesos (uint32 ip, no endpoints) decodes to the dotted address."""
    data = json.dumps({"id": "abc", "ip": 16777343, "port": 5050, "hostname": "localhost",
                       "pid": "master@127.0.0.1:5050", "version": "1.11.0"}).encode()
    info = master_info_from_json(data)
    assert (info.ip, info.pid, info.zmq_endpoint) == ("127.0.0.1", "master@127.0.0.1:5050", "")
    assert uint32_to_ip(16777343) == "127.0.0.1"


@pytest.mark.parametrize(("data", "field"), [
    (b"not json", "MasterInfo"),
    (b"[1]", "MasterInfo"),
    (b'{"ip": "1.2.3.4", "port": 1}', "id"),
    (b'{"id": "x", "port": 1}', "ip"),
    (b'{"id": "x", "ip": "1.2.3.4", "port": "80"}', "port"),
    (b'{"id": "x", "ip": "1.2.3.4", "port": 1, "address": 3}', "address"),
])
def test_master_info_from_json_rejects_bad_data_naming_field(data: bytes, field: str) -> None:
    """Malformed leader znode data raises MasterInfoError naming the offending field."""
    with pytest.raises(MasterInfoError) as info:
        master_info_from_json(data)
    assert info.value.field == field


def test_leader_is_lowest_sequence_among_candidates_only() -> None:
    """The lowest json.info_ sequence leads; other names in the directory are ignored."""
    children = ["json.info_0000000012", "json.info_0000000003", "lock", "info_0000000001",
                "json.info_12"]
    assert leader_of(children) == "json.info_0000000003"
    assert leader_of(["registry"]) is None


# ------------------------------------------------------------------ standalone


def test_standalone_contender_is_elected_at_once_and_withdraws() -> None:
    """start() elects at once and runs on_elected; withdraw() ends leadership without deposing."""
    async def main() -> None:
        contender = StandaloneContender(master(1))
        seen: list[str] = []
        contender.on_elected(lambda: seen.append("elected"))
        contender.on_deposed(lambda reason: seen.append(f"deposed {reason}"))
        assert not contender.is_leader
        await contender.start()
        assert contender.is_leader and contender.elected.is_set()
        late: list[str] = []
        contender.on_elected(lambda: late.append("late"))
        await contender.withdraw()
        assert not contender.is_leader and not contender.deposed.is_set()
        assert seen == ["elected"] and late == ["late"]
        assert contender.fencing_path() is None

    asyncio.run(main())


def test_standalone_detector_from_address_and_appoint() -> None:
    """A static host:port becomes a leader with that ZMQ endpoint; appoint() notifies waiters."""
    async def main() -> None:
        detector = StandaloneDetector("127.0.0.1:5055")
        await detector.start()
        first = detector.current()
        assert first is not None and first.zmq_endpoint == "tcp://127.0.0.1:5055"
        assert await detector.wait_for_change(None) == first
        seen: list[MasterInfo | None] = []
        unsubscribe = detector.subscribe(seen.append)
        waiter = asyncio.ensure_future(detector.wait_for_change(first))
        await asyncio.sleep(0)
        assert not waiter.done()
        detector.appoint(master(2))
        assert await asyncio.wait_for(waiter, 1) == master(2)
        unsubscribe()
        detector.appoint(None)
        assert seen == [master(2)] and detector.current() is None
        await detector.stop()

    asyncio.run(main())


def test_factories_pick_backend_from_flag() -> None:
    """zk:// URLs select ZooKeeper; empty/None and host:port select standalone."""
    assert isinstance(create_contender(None, master()), StandaloneContender)
    assert isinstance(create_contender("", master()), StandaloneContender)
    assert isinstance(create_contender("zk://h:2181/m", master()), ZooKeeperContender)
    assert isinstance(create_detector("zk://h:2181/m"), ZooKeeperDetector)
    assert isinstance(create_detector("h:5055"), StandaloneDetector)
    assert isinstance(create_detector(master()), StandaloneDetector)
    with pytest.raises(ValueError, match="path"):
        create_detector("zk://h:2181")


def test_zookeeper_timing_is_validated() -> None:
    """The suspension grace must be positive and shorter than the session timeout."""
    with pytest.raises(ValueError, match="suspend_grace"):
        ZooKeeperContender("zk://h/m", master(), 2.0, suspend_grace=2.0)
    with pytest.raises(ValueError, match="session_timeout"):
        ZooKeeperDetector("zk://h/m", 0.0)


def test_withdrawn_zookeeper_contender_cannot_start() -> None:
    """A contender is single-use: after withdraw() start() refuses instead of contending."""
    async def main() -> None:
        contender = ZooKeeperContender("zk://127.0.0.1:1/m", master())
        await contender.withdraw()
        with pytest.raises(CoordinationError, match="create a new contender"):
            await contender.start()
        assert not contender.is_leader

    asyncio.run(main())


def test_endpoint_detector_adapts_to_driver_protocol() -> None:
    """EndpointDetector.detect returns the endpoint, then waits until it changes."""
    async def main() -> None:
        inner = StandaloneDetector(master(1))
        adapter = EndpointDetector(inner)
        assert await adapter.detect(None) == "tcp://10.0.0.1:5056"
        waiting = asyncio.ensure_future(adapter.detect("tcp://10.0.0.1:5056"))
        await asyncio.sleep(0)
        assert not waiting.done()
        inner.appoint(master(3))
        assert await asyncio.wait_for(waiting, 1) == "tcp://10.0.0.1:5058"
        await adapter.aclose()

    asyncio.run(main())


# ------------------------------------------------------------------ registry value


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_registry_state_round_trips(fmt: str) -> None:
    """Every section survives encode/decode in both formats."""
    state = full_state()
    assert RegistryState.decode(state.encode(fmt), fmt) == state


def test_registry_operations_move_agents_between_sections() -> None:
    """Unreachable moves an agent out of admitted; re-admission and removal clear it."""
    state = full_state()
    MarkAgentUnreachable("A-1", 5.0).apply(state)
    assert "A-1" not in state.agents and state.unreachable["A-1"] == 5.0
    AdmitAgent("A-1", agent_record(1)).apply(state)
    assert "A-1" in state.agents and "A-1" not in state.unreachable
    RemoveAgent("A-3").apply(state)
    RemoveFramework("F-2").apply(state)
    SetWeight("prod").apply(state)
    SetQuota("prod").apply(state)
    assert "A-3" not in state.unreachable and "F-2" not in state.frameworks
    assert state.weights == {} and state.quota == {}


def test_registry_operations_validate_their_fields() -> None:
    """Bad ids, weights and times are refused with the field named."""
    with pytest.raises(ValueError, match="agent_id"):
        AdmitAgent("bad id", agent_record(1))
    with pytest.raises(ValueError, match="weight"):
        SetWeight("prod", 0.0)
    with pytest.raises(ValueError, match="time"):
        MarkAgentUnreachable("A-1", float("nan"))


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: d.update(format=99), "format"),
    (lambda d: d["agents"]["A-1"].update(registered_time="x"), "agents['A-1'].registered_time"),
    (lambda d: d["agents"].update({"bad id": d["agents"]["A-1"]}), "agents['bad id']"),
    (lambda d: d["unreachable"].update({"A-9": -1}), "unreachable['A-9']"),
    (lambda d: d["policy"]["weights"].update(prod=-1), "weights['prod']"),
])
def test_registry_decode_names_the_bad_field(mutate, field: str) -> None:
    """Decoding malformed registry data raises RegistryFormatError naming the field."""
    obj = full_state().to_dict()
    mutate(obj)
    with pytest.raises(RegistryFormatError) as info:
        RegistryState.decode(json.dumps(obj).encode())
    assert info.value.field == field


def test_shards_are_stable_and_complete() -> None:
    """Every key lands in exactly one shard, the same one every time."""
    keys = [f"A-{i}" for i in range(1000)]
    buckets = shard_keys(keys, 16)
    assert sorted(k for b in buckets for k in b) == sorted(keys)
    assert all(shard_of(k, 16) == i for i, b in enumerate(buckets) for k in b)
    assert min(map(len, buckets)) > 0


# ------------------------------------------------------------------ file registry


def test_file_registry_round_trip_store_and_apply(tmp_path: Path) -> None:
    """A fresh file registry loads empty; store and apply persist for a new reader."""
    async def main() -> None:
        path = tmp_path / "state" / "registry.json"
        registry = FileRegistry(path)
        assert await registry.load() == RegistryState()
        await registry.store(full_state())
        await asyncio.gather(
            registry.apply(AdmitAgent("A-7", agent_record(7))),
            registry.apply(MarkAgentUnreachable("A-2", 9.0), SetWeight("dev", 0.5)),
        )
        expected = full_state()
        AdmitAgent("A-7", agent_record(7)).apply(expected)
        MarkAgentUnreachable("A-2", 9.0).apply(expected)
        SetWeight("dev", 0.5).apply(expected)
        assert await FileRegistry(path).load() == expected
        await registry.close()

    asyncio.run(main())


def test_file_registry_crash_before_rename_keeps_old_state(tmp_path: Path) -> None:
    """A process killed between writing the temp file and renaming it leaves the old state."""
    path = tmp_path / "registry.json"
    script = textwrap.dedent(f"""
        import asyncio, os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from mesoslite.coordination import FileRegistry, SetWeight, RegistryState

        async def main():
            registry = FileRegistry({str(path)!r})
            await registry.apply(SetWeight("old", 1.5))
            os.replace = lambda *args: os._exit(17)   # die just before the rename
            await registry.apply(SetWeight("new", 3.0))

        asyncio.run(main())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60,
                            check=False)
    assert result.returncode == 17, result.stderr.decode()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1, leftovers
    assert b"new" in (tmp_path / leftovers[0]).read_bytes()

    async def main() -> None:
        registry = FileRegistry(path)
        state = await registry.load()
        assert state.weights == {"old": 1.5}
        await registry.apply(SetWeight("after", 2.0))
        assert (await FileRegistry(path).load()).weights == {"old": 1.5, "after": 2.0}

    asyncio.run(main())
    assert sorted(os.listdir(tmp_path)) == ["registry.json"]


def test_file_registry_refuses_corrupt_file(tmp_path: Path) -> None:
    """A corrupt registry file is an error, never silently an empty state."""
    path = tmp_path / "registry.json"
    path.write_bytes(b"{garbage")

    async def main() -> None:
        with pytest.raises(RegistryFormatError):
            await FileRegistry(path).load()
        with pytest.raises(RegistryFormatError):
            await FileRegistry(path).apply(SetWeight("x", 1.0))

    asyncio.run(main())
    assert path.read_bytes() == b"{garbage"
