"""Masters contending through a real ZooKeeper inside the test's process.

Owns: :func:`ha_config` (a master on ephemeral ports in a ZooKeeper group,
with short timeouts) and :func:`run` (run an async test body), shared by the
in-process HA tests.  Waiting is :func:`tests.support.procs.until`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from mesoslite.master import MasterConfig


def run(test: Callable[[], Awaitable[None]]) -> None:
    """Run an async test body."""
    asyncio.run(test())


def ha_config(zk: str, **extra: Any) -> MasterConfig:
    """A master on ephemeral ports in the ZooKeeper group ``zk``, with short timeouts."""
    fields: dict[str, Any] = {"http_port": 0, "zmq_port": 0, "zk": zk, "quorum": 2,
                              "zk_session_timeout": 2.0, "allocation_interval": 0.05}
    fields.update(extra)
    return MasterConfig(**fields)
