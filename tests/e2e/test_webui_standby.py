"""Standbys: a standby master sends the browser to the leader's UI, whose overview lists
every master; a standby framework serves the service UI itself and forwards its calls.

Real processes against a real ZooKeeper: two ``mesoslite master --zk`` and two
``mesoslite marathon --zk``; a headless Chromium opens each standby's UI.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect

from tests.support.browser import Tab
from tests.support.ha_procs import HAMaster
from tests.support.procs import Proc, mesoslite, wait_for
from tests.support.zk_fixtures import zk_url, zookeeper  # noqa: F401

_MARATHON_LINE = re.compile(r"mesoslite marathon: http://([\d.]+):(\d+)")


def start_marathon(root: Path, name: str, master: str, zk: str) -> tuple[Proc, int]:
    """One ``mesoslite marathon --zk`` on an ephemeral port: the process and its port."""
    args = ["--master", master, "--zk", zk, "--http_address", "127.0.0.1", "--http_port", "0",
            "--zk_session_timeout", "2"]
    proc = Proc(mesoslite("marathon", *args), root / f"{name}.log")
    match = _MARATHON_LINE.search(proc.wait_output("mesoslite marathon:", timeout=30))
    assert match, proc.output()[-2000:]
    return proc, int(match.group(2))


def test_standbys_serve_or_send_the_browser_to_the_leader(zk_url: str,  # noqa: F811
                                                          tmp_path: Path, tab: Tab) -> None:
    """A standby master's #/agents ends on the leader's, whose overview lists both masters;
    a standby framework's UI stays on the standby, shows the leader's apps, is live, and a
    Destroy confirmed there removes the app from the leader."""
    masters = [HAMaster(tmp_path, index, zk_url, {}) for index in range(2)]
    frameworks: list[Proc] = []
    try:
        leader = wait_for(lambda: next((m for m in masters if m.elected()), None), timeout=30,
                          what="an elected master")
        standby = next(m for m in masters if m is not leader)
        tab.page.goto(f"http://127.0.0.1:{standby.http_port}/#/agents")
        expect(tab.page).to_have_url(f"http://127.0.0.1:{leader.http_port}/#/agents")
        tab.loaded()
        expect(tab.page.get_by_role("heading", level=1)).to_have_text("Agents")
        tab.goto(f"http://127.0.0.1:{leader.http_port}/#/")
        rows = tab.page.get_by_role("table", name="masters").locator("tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.filter(has_text=f":{leader.http_port}")).to_contain_text("leader")
        expect(rows.filter(has_text=f":{standby.http_port}")).to_contain_text("standby")

        ports = []
        for name in ("marathon-a", "marathon-b"):
            proc, port = start_marathon(tmp_path, name, zk_url, zk_url + "-marathon")
            frameworks.append(proc)
            ports.append(port)

        def leading_port() -> int | None:
            for port in ports:
                status = tab.page.request.get(f"http://127.0.0.1:{port}/v2/info")
                if status.ok and status.json().get("elected"):
                    return port
            return None

        lead = wait_for(leading_port, timeout=30, what="an elected framework instance")
        other = next(port for port in ports if port != lead)
        created = tab.page.request.post(f"http://127.0.0.1:{lead}/v2/apps", data={
            "id": "/standby/app", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 0})
        assert created.status == 201, created.text()
        page = tab.page
        tab.goto(f"http://127.0.0.1:{other}/ui/#/app?id=/standby/app")
        expect(page).to_have_url(re.compile(rf"^http://127\.0\.0\.1:{other}/ui/#/app\?"))
        expect(page.get_by_role("heading", level=1)).to_contain_text("/standby/app")
        expect(page.locator("#live")).to_contain_text("live")  # the leader's stream, relayed
        tab.shot("standby-framework")
        page.get_by_role("button", name="Destroy").click()
        dialog = page.locator("dialog[open]")
        dialog.get_by_role("button", name="Destroy").click()
        wait_for(lambda: tab.page.request.get(
            f"http://127.0.0.1:{lead}/v2/apps/standby/app").status == 404, timeout=30,
                 what="the leader to forget the app destroyed through the standby")
    finally:
        for proc in frameworks:
            proc.stop()
        for master in masters:
            master.proc.stop()
