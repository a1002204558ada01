"""/state streamed in pieces is the same document as built whole, and /state-summary's cached
agent texts follow the agents' changes."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from mesoslite.master import http
from mesoslite.protocol import TaskState
from mesoslite.testing.harness import Harness


class Shell:
    """What the renderers read of the master shell, over a Harness state."""

    def __init__(self, harness: Harness) -> None:
        """Leading, with an empty summary cache."""
        self.state = harness.state
        self.info = harness.info
        self.config = harness.config
        self.start_time = self.elected_time = time.time()
        self.summary_cache: dict[str, Any] = {}
        self.is_leading = True
        self.leadership = self  # flags() reads leadership.zk_url

    zk_url = None


def cluster(agents: int, tasks: int) -> tuple[Harness, list[tuple[bytes, str]], str]:
    """``agents`` agents, one framework, ``tasks`` RUNNING tasks on the first agents."""
    h = Harness(agent_ping_timeout=3600.0, framework_heartbeat_interval=3600.0)
    peers = [(f"a{i}".encode(), h.add_agent(f"a{i}".encode(), "cpus:4;mem:4096",
                                            hostname=f"h{i}")) for i in range(agents)]
    framework_id = h.subscribe(b"f1")
    by_agent = {agent_id: peer for peer, agent_id in peers}
    for n, offer in enumerate(h.offers(framework_id)[:tasks]):
        h.accept(b"f1", framework_id, [offer.id], [h.task(f"t{n}", offer.agent_id, "cpus:1")])
        h.update(by_agent[offer.agent_id], framework_id, f"t{n}", TaskState.TASK_RUNNING)
    return h, peers, framework_id


def test_state_pieces_join_to_the_whole_document() -> None:
    """Any piece size gives the same text; small pieces make many of them."""
    h, _peers, _fid = cluster(12, 5)
    shell: Any = Shell(h)

    async def main() -> None:
        whole = await http.state_json(shell)
        pieces = [piece async for piece in http.state_chunks(shell, records=3)]
        assert "".join(pieces) == whole
        assert len(pieces) > 12 // 3
        document = json.loads(whole)
        assert len(document["slaves"]) == 12
        assert len(document["frameworks"][0]["tasks"]) == 5

    asyncio.run(main())


def test_summary_follows_agent_changes_through_its_cache() -> None:
    """A task's new state shows in /state-summary after the cached text was made."""
    h, peers, framework_id = cluster(3, 1)
    shell: Any = Shell(h)

    async def summary() -> dict[str, Any]:
        return json.loads(await http.state_summary(shell))

    first = asyncio.run(summary())
    running = [s for s in first["slaves"] if s["TASK_RUNNING"] == 1]
    assert len(running) == 1 and len(shell.summary_cache) == 3
    agent_id = running[0]["id"]
    peer = {a: p for p, a in peers}[agent_id]
    h.update(peer, framework_id, "t0", TaskState.TASK_FINISHED)
    second = asyncio.run(summary())
    [entry] = [s for s in second["slaves"] if s["id"] == agent_id]
    assert entry["TASK_RUNNING"] == 0 and entry["TASK_FINISHED"] == 1
