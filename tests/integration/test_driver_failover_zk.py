"""The scheduler driver follows the leading master through ZooKeeper (zk:// master)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from mesoslite.master.main import MasterProcess
from mesoslite.protocol import FrameworkInfo, MasterInfo
from mesoslite.scheduler import Scheduler, SchedulerDriver
from tests.support.ha_inprocess import ha_config, run
from tests.support.procs import until
from tests.support.zk_fixtures import zk_url, zookeeper  # noqa: F401

pytestmark = pytest.mark.integration


class Recorder(Scheduler):
    """Records registrations from the driver's thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.registrations: list[tuple[str, str]] = []
        self.reregistrations: list[str] = []

    def registered(self, driver: Any, framework_id: str, master_info: MasterInfo) -> None:  # type: ignore[override]
        with self.lock:
            self.registrations.append((framework_id, master_info.id))

    def reregistered(self, driver: Any, master_info: MasterInfo) -> None:  # type: ignore[override]
        with self.lock:
            self.reregistrations.append(master_info.id)


def test_driver_resubscribes_to_the_new_leader(zk_url: str) -> None:  # noqa: F811
    """When the leader goes away, the driver re-subscribes with its id to the next leader."""

    async def main() -> None:
        masters = [MasterProcess(ha_config(zk_url)) for _ in range(2)]
        for master in masters:
            await master.start()
        leader = await until(lambda: next((m for m in masters if m.is_leading), None), 15,
                             "a leader")
        follower = next(m for m in masters if m is not leader)
        scheduler = Recorder()
        info = FrameworkInfo(user="test", name="zk-follower", failover_timeout=60.0)
        driver = SchedulerDriver(scheduler, info, zk_url)
        driver.start()
        try:
            await until(lambda: scheduler.registrations, 20, "registration with the leader")
            framework_id, master_id = scheduler.registrations[0]
            assert master_id == leader.info.id
            await leader.stop()
            await until(lambda: follower.is_leading, 20, "the follower leading")
            await until(lambda: scheduler.reregistrations, 30,
                        "re-registration with the new leader")
            assert scheduler.reregistrations[-1] == follower.info.id
            assert driver.framework_id == framework_id
            frameworks = follower.state.frameworks
            await until(lambda: framework_id in frameworks and frameworks[framework_id].active,
                        10, "the framework active on the new leader")
        finally:
            await asyncio.to_thread(driver.stop, True)
            for master in masters:
                await master.stop()

    run(main)
