"""``mesoslite local``: when the master ends the bundled framework (another scheduler
subscribed with its id), the framework stops instead of serving state it no longer owns;
the master and the agents keep serving."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

from mesoslite.local import LocalCluster
from mesoslite.protocol import FrameworkInfo, Subscribe, encode
from tests.support.zmq_peer import raw_dealer


def _get(url: str) -> tuple[int, str]:
    """(status, body) of a GET; (0, error) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError as exc:
        return 0, str(exc)


def _subscribe_as(zmq_address: str, framework_id: str) -> None:
    """An intruder's Subscribe with ``framework_id`` (no principal: accepted, as Mesos)."""
    with raw_dealer(zmq_address) as sock:
        sock.send(encode(Subscribe(FrameworkInfo(user="intruder", name="marathon",
                                                 id=framework_id, failover_timeout=60.0))))
        assert sock.poll(20_000), "the master did not answer the intruder"


async def _until(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(check):  # type: ignore[arg-type]
        assert asyncio.get_running_loop().time() < deadline, f"{what}: not within {timeout}s"
        await asyncio.sleep(0.1)


def test_bundled_framework_stops_when_the_master_ends_it(tmp_path: Path) -> None:
    """The takeover probe on ``mesoslite local``: the framework's API stops answering; the
    master and the agent still answer; nothing is left half-stopped."""
    async def main() -> None:
        cluster = LocalCluster(1, http_port=0, zmq_port=0, agent_port_base=0,
                               work_dir=str(tmp_path / "w"), agent_resources="cpus:1;mem:256",
                               marathon_port=0, dns_port=None)
        await cluster.start()
        try:
            assert cluster.master is not None and cluster.marathon is not None
            url = cluster.marathon.url
            info: dict[str, str] = {}

            def registered() -> bool:
                status, body = _get(f"{url}/v2/info")
                info.update(json.loads(body) if status == 200 else {})
                return bool(info.get("frameworkId"))
            await _until(registered, "the framework registered")
            assert (await asyncio.to_thread(_get, f"{url}/v2/apps"))[0] == 200
            await asyncio.to_thread(_subscribe_as, cluster.master_address,
                                    info["frameworkId"])
            await _until(lambda: _get(f"{url}/v2/apps")[0] == 0, "the framework stops serving")
            assert cluster.marathon is None
            master = f"http://127.0.0.1:{cluster.master.http_port}"
            agent = f"http://127.0.0.1:{cluster.agents[0].http_port}"
            for base in (master, agent):
                assert (await asyncio.to_thread(_get, f"{base}/health"))[0] == 200, base
        finally:
            await cluster.stop()

    asyncio.run(asyncio.wait_for(main(), 120))
