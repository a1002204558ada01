"""The master UI shows agents taken out by an operator, in a real browser against a real
master and two agents (processes on loopback)."""

from __future__ import annotations

import json
import urllib.request

from playwright.sync_api import expect

from tests.support.browser import Tab
from tests.support.cluster_procs import ProcCluster


def _operator(base_url: str, kind: str, **fields: object) -> None:
    """One v1 operator call that must succeed."""
    host = base_url.removeprefix("http://")
    request = urllib.request.Request(
        f"{base_url}/api/v1", method="POST",
        data=json.dumps({"type": kind, kind.lower(): fields}).encode(),
        headers={"Host": host, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_agents_page_and_agent_page_show_the_maintenance(tmp_path, tab: Tab) -> None:
    """The agents table badges a deactivated and a drained agent; the drained agent's page
    tells its drain (state, bounded kill grace)."""
    with ProcCluster(tmp_path) as cluster:
        master = cluster.start_master()
        held, drained = cluster.add_agent("cpus:1;mem:256"), cluster.add_agent("cpus:1;mem:256")
        _operator(master.base_url, "DEACTIVATE_AGENT", agent_id={"value": held.agent_id})
        _operator(master.base_url, "DRAIN_AGENT", agent_id={"value": drained.agent_id},
                  max_grace_period={"nanoseconds": 5_000_000_000})
        tab.goto(f"{master.base_url}/#/agents")
        table = tab.page.get_by_role("table", name="agents")
        held_row = table.locator("tr", has_text=held.agent_id)
        drained_row = table.locator("tr", has_text=drained.agent_id)
        expect(held_row).to_contain_text("deactivated")
        expect(drained_row).to_contain_text("drained")
        tab.shot("master-agents-maintenance")
        tab.goto(f"{master.base_url}/#/agents/{drained.agent_id}")
        details = tab.page.locator("dl.kv")
        expect(details).to_contain_text("drained since")
        expect(details).to_contain_text("kill grace at most 5 s")
        tab.goto(f"{master.base_url}/#/agents/{held.agent_id}")
        expect(tab.page.locator("dl.kv")).to_contain_text("deactivated: no offers")
        tab.assert_clean()
