"""The master's web UI in a real browser, against a real cluster of processes.

One master, two agents and the Marathon-style framework (real processes on loopback,
tests.support.marathon_procs) and one headless Chromium (tests.support.browser) serve
the whole module.  Screenshots of every main view are saved as test artifacts.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support.browser import PHONE, Tab
from tests.support.marathon_procs import MarathonCluster
from tests.support.procs import ROOT

COUNTER = "i=0; while true; do i=$((i+1)); echo line-$i; sleep 0.3; done"
XSS = "<img src=x onerror=\"window.__xss=1\">"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarathonCluster]:
    """A master, two agents and the framework; one app whose tasks print a counter."""
    with MarathonCluster(tmp_path_factory.mktemp("webui-master")) as running:
        running.client.ok("POST", "/v2/apps", {
            "id": "/ui/counter", "cmd": COUNTER, "cpus": 0.1, "mem": 32, "instances": 2,
            "labels": {"owner": XSS}}, expect=201)
        running.client.wait_tasks("/ui/counter", 2)
        yield running


def master_url(cluster: MarathonCluster, fragment: str = "") -> str:
    """The master's UI, at view ``fragment`` (``#/...``)."""
    return f"{cluster.master.base_url}/{fragment}"


def get(url: str) -> tuple[int, Any]:
    """GET ``url``: (status, JSON body) for 2xx and errors alike."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def counter_task(cluster: MarathonCluster) -> dict[str, Any]:
    """One running task of the counter app, as the UI's tasks view lists it."""
    status, page = get(cluster.master.base_url + "/ui/api/tasks?q=counter&state=TASK_RUNNING")
    assert status == 200, page
    assert page["items"], page
    return page["items"][0]


def test_overview_shows_the_agents_and_resources(cluster: MarathonCluster, tab: Tab) -> None:
    """The overview names the leader, counts the two agents and the running tasks."""
    tab.goto(master_url(cluster))
    expect(tab.page.locator("#agents-active")).to_have_text("2")
    expect(tab.page.get_by_role("table", name="resources")).to_contain_text("cpus")
    expect(tab.page.locator("#live")).to_contain_text("live")
    expect(tab.page.get_by_role("table", name="tasks by state")).to_contain_text("RUNNING")
    tab.shot("master-overview")


def test_the_json_index_stays_for_clients_that_do_not_ask_for_html(
        cluster: MarathonCluster) -> None:
    """``GET /`` without text/html is still the master's JSON index of endpoints."""
    status, body = get(cluster.master.base_url + "/")
    assert status == 200 and "/state" in body["endpoints"]


def test_task_stdout_is_tailed_live_through_the_master(cluster: MarathonCluster,
                                                       tab: Tab) -> None:
    """A task's stdout shows what it printed, and new lines appear while it runs."""
    task = counter_task(cluster)
    tab.goto(master_url(cluster, f"#/tasks/{task['framework_id']}/{task['id']}/stdout"))
    log = tab.page.locator("pre.log")
    expect(log).to_contain_text(re.compile(r"line-\d+"))
    first = max(int(n) for n in re.findall(r"line-(\d+)", log.inner_text()))
    expect(log).to_contain_text(f"line-{first + 3}")
    assert f"/agents/{task['agent_id']}/files/" in tab.page.content()
    tab.shot("master-task-stdout")


def test_every_view_has_a_url_and_the_back_button_works(cluster: MarathonCluster,
                                                        tab: Tab) -> None:
    """Agents → an agent → back; every main view loads at its own URL without errors."""
    page = tab.page
    tab.goto(master_url(cluster, "#/agents"))
    rows = page.get_by_role("table", name="agents").locator("tbody tr")
    expect(rows).to_have_count(2)
    tab.shot("master-agents")
    page.get_by_role("table", name="agents").locator("tbody a").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Agent")
    expect(page.get_by_role("table", name="usage")).to_be_visible()
    tab.shot("master-agent")
    page.go_back()
    expect(page).to_have_url(re.compile(r"#/agents$"))
    expect(rows).to_have_count(2)
    for fragment, name, text in (
            ("#/frameworks", "master-frameworks", "marathon"),
            (f"#/frameworks/{cluster.framework_id}", "master-framework", "counter"),
            ("#/tasks", "master-tasks", "counter"),
            ("#/offers", "master-offers", "Offers"),
            ("#/roles", "master-roles", "*"),
            ("#/metrics?q=tasks", "master-metrics", "master/tasks_running")):
        tab.goto(master_url(cluster, fragment))
        expect(page.locator("main")).to_contain_text(text)
        tab.shot(name)
    task = counter_task(cluster)
    tab.goto(master_url(cluster, f"#/tasks/{task['framework_id']}/{task['id']}"))
    expect(page.get_by_role("table", name="status history")).to_contain_text("RUNNING")
    page.get_by_role("link", name="Sandbox").click()
    expect(page.get_by_role("table", name="files")).to_contain_text("stdout")
    tab.shot("master-sandbox")


def test_task_lists_are_filtered_sorted_and_paged_on_the_server(cluster: MarathonCluster,
                                                                 tab: Tab) -> None:
    """Filter by state and text, sort by a column, page: each a URL the server answers."""
    page = tab.page
    tab.goto(master_url(cluster, "#/tasks?limit=1&sort=id&order=asc"))
    table = page.get_by_role("table", name="tasks")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(page.locator(".pager")).to_contain_text("1–1 of 2")
    page.get_by_role("button", name=re.compile("^Next")).click()
    expect(page).to_have_url(re.compile(r"offset=1"))
    expect(page.locator(".pager")).to_contain_text("2–2 of 2")
    page.get_by_role("button", name=re.compile("^Name")).click()
    expect(page).to_have_url(re.compile(r"sort=name"))
    page.get_by_role("searchbox").fill("no-such-task")
    expect(table).to_contain_text("No tasks match.")


def test_keyboard_reaches_the_views(cluster: MarathonCluster, tab: Tab) -> None:
    """Tab to the navigation and press Enter: the view changes; sort buttons take Enter."""
    page = tab.page
    tab.goto(master_url(cluster))
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Agents":
            break
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#/agents$"))
    sort = page.get_by_role("button", name=re.compile("^Tasks"))
    sort.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"sort=tasks"))


def test_narrow_screen_has_no_sideways_scrolling(cluster: MarathonCluster, browser: Any
                                                 ) -> None:
    """At phone width the overview and the tasks read without a horizontal scroll."""
    phone = Tab(browser, viewport=PHONE)
    try:
        for fragment, name in (("", "master-overview-phone"), ("#/tasks", "master-tasks-phone")):
            phone.goto(master_url(cluster, fragment))
            width = phone.page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"] + 1, (fragment, width)
            phone.shot(name)
        phone.assert_clean()
    finally:
        phone.close()


def test_times_are_local_with_relative_ages(cluster: MarathonCluster, tab: Tab) -> None:
    """A time shows its age ("… ago") and the browser's local time as its title."""
    task = counter_task(cluster)
    tab.goto(master_url(cluster, f"#/tasks/{task['framework_id']}/{task['id']}"))
    stamp = tab.page.locator("dl.kv time").first
    expect(stamp).to_have_text(re.compile(r"(\d+[smhd] ago|in \d+s)"))
    title = stamp.get_attribute("title") or ""
    local = tab.page.evaluate(
        "(s) => new Date(s * 1000).toLocaleString(undefined, "
        "{dateStyle: 'medium', timeStyle: 'medium'})", float(stamp.get_attribute("data-epoch")))
    assert title == local


def test_names_and_labels_are_shown_as_text_never_run(cluster: MarathonCluster,
                                                      tab: Tab) -> None:
    """HTML in a framework name, a task label and a task's output is text, not markup."""
    hello = subprocess.run(
        [sys.executable, "examples/hello_framework.py", "--master", cluster.master.address,
         "--tasks", "1", "--name", XSS, "--command", f"echo '{XSS}'"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert hello.returncode == 0, hello.stdout[-2000:] + hello.stderr[-2000:]
    page = tab.page
    tab.goto(master_url(cluster, "#/frameworks?status=completed"))
    expect(page.get_by_role("table", name="frameworks")).to_contain_text(XSS)
    task = counter_task(cluster)
    tab.goto(master_url(cluster, f"#/tasks/{task['framework_id']}/{task['id']}"))
    expect(page.locator("main")).to_contain_text(f"owner={XSS}")
    status, done = get(cluster.master.base_url + "/ui/api/tasks?status=completed&q=hello")
    assert status == 200 and done["items"], done
    hello_task = done["items"][0]
    tab.goto(master_url(cluster,
                        f"#/tasks/{hello_task['framework_id']}/{hello_task['id']}/stdout"))
    expect(page.locator("pre.log")).to_contain_text(XSS)
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img").count() == 0


def test_the_sandbox_proxy_never_leaves_a_sandbox(cluster: MarathonCluster) -> None:
    """Paths outside every sandbox, dot segments and unknown agents are refused."""
    task = counter_task(cluster)
    base = cluster.master.base_url
    args = urllib.parse.urlencode({"framework_id": task["framework_id"],
                                   "executor_id": task["executor_id"]})
    status, found = get(f"{base}/ui/api/agents/{task['agent_id']}/sandbox?{args}")
    assert status == 200, found
    sandbox = found["directory"]

    def read(agent_id: str, path: str) -> tuple[int, Any]:
        query = urllib.parse.urlencode({"path": path, "offset": 0, "length": 100})
        return get(f"{base}/agents/{urllib.parse.quote(agent_id)}/files/read?{query}")

    status, body = read(task["agent_id"], sandbox + "/stdout")
    assert status == 200 and "line-" in body["data"], body
    for path, expected in ((sandbox + "/../../../../../../../../etc/passwd", 403),
                           ("/etc/passwd", 403), (sandbox + "/./stdout", 403),
                           ("stdout", 400), (sandbox + "\x00", 403)):
        status, body = read(task["agent_id"], path)
        assert (status, body["field"]) == (expected, "path"), (path, body)
    status, body = read("no-such-agent", sandbox + "/stdout")
    assert (status, body["field"]) == (404, "agent_id"), body
    other = next(a for a in cluster.agents if a.agent_id != task["agent_id"])
    status, body = read(other.agent_id, sandbox + "/stdout")
    assert (status, body["field"]) == (403, "path"), body


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_a_download_through_the_master_follows_a_slow_reader(cluster: MarathonCluster,
                                                             tmp_path: Path) -> None:
    """A 160 MiB sandbox file downloaded through the master by a reader with a small
    receive window that takes 64 KiB at a time: every byte arrives, and the master's
    peak memory during the transfer stays far below the file's size (it relays a chunk
    only once the reader took the previous one; without that it buffers the file)."""
    task = counter_task(cluster)
    base = cluster.master.base_url
    args = urllib.parse.urlencode({"framework_id": task["framework_id"],
                                   "executor_id": task["executor_id"]})
    status, found = get(f"{base}/ui/api/agents/{task['agent_id']}/sandbox?{args}")
    assert status == 200, found
    size = 160 * 1024 * 1024
    big = Path(found["directory"]) / "big.bin"
    with big.open("wb") as handle:  # sparse: reads as zeros, costs no disk
        handle.truncate(size)
    pid = cluster.master.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS starts again from now
    before = _memory_kib(pid, "VmRSS")
    host, port = urllib.parse.urlsplit(base).netloc.rsplit(":", 1)
    query = urllib.parse.urlencode({"path": str(big)})
    received = 0
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.connect((host, int(port)))
        sock.sendall(f"GET /agents/{task['agent_id']}/files/download?{query} HTTP/1.0\r\n"
                     f"Host: {host}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            piece = sock.recv(4096)
            assert piece, head
            head += piece
        header, _, rest = head.partition(b"\r\n\r\n")
        assert header.startswith(b"HTTP/1.1 200"), header
        received = len(rest)
        while True:
            piece = sock.recv(64 * 1024)
            if not piece:
                break
            received += len(piece)
            time.sleep(0.002)  # the slow reader: ~30 MB/s, several times slower than loopback
    peak = _memory_kib(pid, "VmHWM")
    big.unlink()
    assert received == size
    assert peak - before < 48 * 1024, (before, peak)


def test_pages_carry_a_strict_content_security_policy(cluster: MarathonCluster) -> None:
    """The page allows only this origin's own scripts; API answers are not sniffed."""
    request = urllib.request.Request(cluster.master.base_url + "/",
                                     headers={"Accept": "text/html"})
    with urllib.request.urlopen(request, timeout=10) as response:
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_live_stream_pushes_summaries(cluster: MarathonCluster) -> None:
    """``/ui/api/stream`` sends an overview event at once (server-sent events)."""
    with urllib.request.urlopen(cluster.master.base_url + "/ui/api/stream",
                                timeout=10) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        lines = []
        for raw in stream:
            lines.append(raw.decode())
            if raw.startswith(b"data:"):
                break
    event = json.loads(lines[-1][len("data:"):])
    assert event["agents"]["active"] == 2 and "generations" in event, event
