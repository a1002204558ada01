"""The suspend grace follows the session timeout a real ZooKeeper grants, not the one asked for."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from mesoslite.coordination import ZooKeeperContender
from mesoslite.protocol.types import MasterInfo
from tests.support.zk import ZooKeeperServer


def _master() -> MasterInfo:
    return MasterInfo(id="grace-1", ip="127.0.0.1", port=5050, hostname="m1", version="t",
                      zmq_endpoint="tcp://127.0.0.1:5055", http_endpoint="http://127.0.0.1:5050")


def test_leader_steps_down_after_the_grace_of_the_granted_timeout(tmp_path: Path) -> None:
    """Asking for 20 s from a server that grants at most 4 s gives a 1 s grace (not 2 s): the
    leader is deposed about 1 s after its connection is suspended."""
    server = ZooKeeperServer(tmp_path / "zk")
    server._node.extra_config = ["maxSessionTimeout=4000"]
    server.start()

    async def main() -> None:
        contender = ZooKeeperContender(f"zk://{server.hosts}/grace", _master(), 20.0)
        suspended_at: list[float] = []
        contender.session.add_state_handler(
            lambda state: suspended_at.append(time.monotonic()) if state == "SUSPENDED" else None)
        await contender.start()
        await asyncio.wait_for(contender.elected.wait(), 10)
        assert contender.session.negotiated_timeout == 4.0
        assert contender.current_suspend_grace == 1.0
        await asyncio.to_thread(server.kill)
        await asyncio.wait_for(contender.deposed.wait(), 10)
        deposed_at = time.monotonic()
        assert suspended_at, "the connection was never reported suspended"
        assert 0.9 <= deposed_at - suspended_at[0] < 1.9
        await contender.withdraw()

    try:
        asyncio.run(main())
    finally:
        server.stop()
