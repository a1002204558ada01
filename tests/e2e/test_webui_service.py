"""The service UI of the Marathon-style framework in a real browser, against real processes.

One master, two agents and the framework (tests.support.marathon_procs) and one
headless Chromium (tests.support.browser) serve the module; every write goes through
the UI's own buttons and forms, and is checked through the /v2 API.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support.browser import PHONE, Tab
from tests.support.marathon_procs import MarathonCluster
from tests.support.procs import wait_for

XSS = "<img src=x onerror=\"window.__xss=1\">"
PRINTER = "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.3; done"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarathonCluster]:
    """A master, two agents and the framework, shared by the module."""
    with MarathonCluster(tmp_path_factory.mktemp("webui-service")) as running:
        yield running


def ui(cluster: MarathonCluster, fragment: str = "") -> str:
    """The service UI at view ``fragment``."""
    return f"{cluster.client.base_url}/ui/{fragment}"


def create(cluster: MarathonCluster, app: dict[str, Any], running: int) -> None:
    """Create ``app`` through the API and wait for its deployment to end with ``running`` tasks
    (a PUT while the creation still deploys would get 409, the app being locked)."""
    cluster.client.ok("POST", "/v2/apps", {"cpus": 0.1, "mem": 32, **app}, expect=201)
    cluster.client.wait_settled(app["id"], running)


def confirm(tab: Tab, button: str) -> None:
    """Answer the open confirmation dialog with ``button``."""
    dialog = tab.page.locator("dialog[open]")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=button).click()
    expect(dialog).to_have_count(0)


def test_an_app_created_through_the_form_reaches_running(cluster: MarathonCluster,
                                                         tab: Tab) -> None:
    """Fill in the form (id, command, instances, env): the app deploys and runs 2 of 2."""
    page = tab.page
    tab.goto(ui(cluster, "#/new"))
    page.get_by_label("ID", exact=True).fill("/form/web")
    page.get_by_label("Shell command", exact=True).fill("echo started; exec sleep 600")
    page.get_by_label("Instances", exact=True).fill("2")
    page.get_by_label("Memory (MB)", exact=True).fill("32")
    page.get_by_label("Environment", exact=True).fill("GREETING=hello")
    json_view = page.get_by_label("JSON definition", exact=True)
    expect(json_view).to_have_value(re.compile(r'"GREETING": "hello"'))
    tab.shot("service-create")
    page.get_by_role("button", name="Create and deploy").click()
    expect(page).to_have_url(re.compile(r"#/app\?id=%2Fform%2Fweb"))
    expect(page.locator("#instances-summary")).to_have_text("2 of 2 instances running")
    expect(page.get_by_role("table", name="instances").locator("tbody tr")).to_have_count(2)
    app = cluster.client.app("/form/web")
    assert app["env"] == {"GREETING": "hello"} and app["instances"] == 2, app
    tab.shot("service-app")


def test_the_json_view_and_the_form_stay_in_sync(cluster: MarathonCluster, tab: Tab) -> None:
    """Editing the JSON refills the form; editing the form rewrites the JSON."""
    page = tab.page
    tab.goto(ui(cluster, "#/new"))
    json_view = page.get_by_label("JSON definition", exact=True)
    json_view.fill('{"id": "/sync/app", "cmd": "sleep 1", "cpus": 0.5, "instances": 3}')
    expect(page.get_by_label("CPUs", exact=True)).to_have_value("0.5")
    expect(page.get_by_label("Instances", exact=True)).to_have_value("3")
    page.get_by_label("Labels", exact=True).fill("tier=web")
    expect(json_view).to_have_value(re.compile(r'"tier": "web"'))


def test_a_bad_value_shows_the_apis_error_next_to_its_field(cluster: MarathonCluster,
                                                            tab: Tab) -> None:
    """cpus -1 is refused by the API (422); its message appears under the CPUs field."""
    tab.allow(r"status of 422")
    page = tab.page
    tab.goto(ui(cluster, "#/new"))
    page.get_by_label("ID", exact=True).fill("/form/bad")
    page.get_by_label("Shell command", exact=True).fill("sleep 600")
    page.get_by_label("CPUs", exact=True).fill("-1")
    page.get_by_role("button", name="Create and deploy").click()
    error = page.locator("#e-cpus")
    expect(error).to_contain_text("0 or more")
    expect(page.get_by_label("CPUs", exact=True)).to_have_attribute("aria-invalid", "true")
    tab.shot("service-form-error")
    assert cluster.client.app_or_none("/form/bad") is None


def test_scaling_from_the_app_page(cluster: MarathonCluster, tab: Tab) -> None:
    """Scale (confirmed in a dialog) from 1 to 3 instances: 3 of 3 run."""
    create(cluster, {"id": "/scale/me", "cmd": "sleep 600", "instances": 1}, 1)
    page = tab.page
    tab.goto(ui(cluster, "#/app?id=/scale/me"))
    expect(page.locator("#instances-summary")).to_have_text("1 of 1 instances running")
    page.get_by_role("button", name="Scale", exact=True).click()
    page.locator("dialog[open] input").fill("3")
    confirm(tab, "Scale")
    expect(page.locator("#instances-summary")).to_have_text("3 of 3 instances running")
    assert cluster.client.app("/scale/me")["instances"] == 3


def test_kill_and_scale_a_selected_instance(cluster: MarathonCluster, tab: Tab) -> None:
    """Select one of two instances, kill-and-scale it: one instance is left, 1 wanted."""
    create(cluster, {"id": "/kill/me", "cmd": "sleep 600", "instances": 2}, 2)
    page = tab.page
    tab.goto(ui(cluster, "#/app?id=/kill/me"))
    rows = page.get_by_role("table", name="instances").locator("tbody tr")
    expect(rows).to_have_count(2)
    rows.first.get_by_role("checkbox").check()
    page.get_by_role("button", name="Kill and scale").click()
    confirm(tab, "Kill and scale")
    expect(page.locator("#instances-summary")).to_have_text("1 of 1 instances running")
    wait_for(lambda: len(cluster.client.tasks("/kill/me")) == 1, timeout=30,
             what="one task of /kill/me left")


def test_rollback_from_the_versions_view(cluster: MarathonCluster, tab: Tab) -> None:
    """Change an app's command, compare with the first version, roll back: it comes back."""
    create(cluster, {"id": "/roll/back", "cmd": "echo one; exec sleep 600", "instances": 1}, 1)
    first = cluster.client.app("/roll/back")["version"]
    cluster.client.ok("PUT", "/v2/apps/roll/back", {"cmd": "echo two; exec sleep 600"})
    wait_for(lambda: cluster.client.app("/roll/back")["version"] != first, timeout=20,
             what="a second version")
    page = tab.page
    tab.goto(ui(cluster, "#/app?id=/roll/back&tab=versions"))
    versions = page.get_by_role("table", name="versions")
    versions.locator("tr", has_text=first).get_by_role("button", name="Compare").click()
    diff = page.get_by_label("differences", exact=True)
    expect(diff).to_contain_text("echo one")
    tab.shot("service-versions")
    page.get_by_role("button", name=f"Roll back to {first}").click()
    confirm(tab, "Roll back")
    wait_for(lambda: cluster.client.app("/roll/back")["cmd"] == "echo one; exec sleep 600",
             timeout=30, what="the first command back")


def test_the_apps_tree_filters_and_shows_labels_as_text(cluster: MarathonCluster,
                                                        tab: Tab) -> None:
    """Groups, a status filter, a label filter and the search; HTML labels stay text."""
    create(cluster, {"id": "/tree/a/one", "cmd": "sleep 600", "instances": 1,
                     "labels": {"owner": XSS}}, 1)
    create(cluster, {"id": "/tree/two", "cmd": "sleep 600", "instances": 0}, 0)
    page = tab.page
    tab.goto(ui(cluster, "#/apps?group=/tree"))
    table = page.get_by_role("table", name="applications")
    expect(table).to_contain_text("a/")
    expect(table).to_contain_text("/tree/two")
    tab.shot("service-apps")
    page.get_by_label("status", exact=True).select_option("Suspended")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("/tree/two")
    tab.goto(ui(cluster, "#/apps?label=owner"))
    expect(table).to_contain_text("/tree/a/one")
    expect(table).to_contain_text(f"owner={XSS}")
    assert page.evaluate("window.__xss") is None
    page.get_by_role("searchbox").fill("tree/a")
    expect(table.locator("tbody tr")).to_have_count(1)


def test_deployments_are_listed_and_rolled_back(cluster: MarathonCluster, tab: Tab) -> None:
    """An app that cannot be placed keeps its deployment; Roll back ends it."""
    cluster.client.ok("POST", "/v2/apps", {"id": "/stuck/app", "cmd": "sleep 600",
                                           "cpus": 100, "mem": 32, "instances": 1}, expect=201)
    page = tab.page
    tab.goto(ui(cluster, "#/deployments"))
    table = page.get_by_role("table", name="deployments")
    expect(table).to_contain_text("/stuck/app")
    tab.shot("service-deployments")
    table.locator("tr", has_text="/stuck/app").get_by_role("button", name="Roll back").click()
    confirm(tab, "Roll back")
    expect(table).not_to_contain_text("/stuck/app")
    wait_for(lambda: cluster.client.app_or_none("/stuck/app") is None, timeout=30,
             what="the created app rolled back (removed)")


def test_why_an_app_waits_and_its_instances_logs(cluster: MarathonCluster, tab: Tab) -> None:
    """Debug names the declined offers; an instance's stdout opens in the master's UI."""
    create(cluster, {"id": "/logs/printer", "cmd": PRINTER, "instances": 1}, 1)
    page = tab.page
    tab.goto(ui(cluster, "#/app?id=/logs/printer"))
    page.get_by_role("link", name="stdout").click()
    expect(page).to_have_url(re.compile(r"#/agents/.+/file\?path="))
    expect(page.locator("pre.log")).to_contain_text("tick-")
    tab.goto(ui(cluster, "#/app?id=/logs/printer&tab=debug"))
    expect(page.locator("main")).to_contain_text("Nothing is waiting to launch.")
    tab.shot("service-debug")


def test_suspend_then_destroy(cluster: MarathonCluster, tab: Tab) -> None:
    """Suspend scales to 0 (Suspended); Destroy removes the app and goes back to the list."""
    create(cluster, {"id": "/gone/soon", "cmd": "sleep 600", "instances": 1}, 1)
    page = tab.page
    tab.goto(ui(cluster, "#/app?id=/gone/soon"))
    page.get_by_role("button", name="Suspend").click()
    confirm(tab, "Suspend")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Suspended")
    page.get_by_role("button", name="Destroy").click()
    confirm(tab, "Destroy")
    expect(page).to_have_url(re.compile(r"#/apps$"))
    wait_for(lambda: cluster.client.app_or_none("/gone/soon") is None, timeout=30,
             what="/gone/soon destroyed")


def test_phone_width_and_keyboard(cluster: MarathonCluster, browser: Any) -> None:
    """At phone width nothing scrolls sideways; the nav is reachable with the keyboard."""
    phone = Tab(browser, viewport=PHONE)
    try:
        phone.goto(ui(cluster, "#/apps"))
        assert phone.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1
        phone.shot("service-apps-phone")
        page = phone.page
        for _ in range(12):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == "Deployments":
                break
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"#/deployments$"))
        phone.assert_clean()
    finally:
        phone.close()



def test_the_open_page_follows_changes_made_elsewhere(cluster: MarathonCluster,
                                                      tab: Tab) -> None:
    """With the apps view open, an app created and then scaled through the API shows up
    and its instances reach the new count without a reload (the framework's pushes)."""
    page = tab.page
    tab.goto(ui(cluster, "#/apps?group=/live"))
    expect(page.locator("#live")).to_contain_text("live")
    page.evaluate("window.__sameDocument = true")
    table = page.get_by_role("table", name="applications")
    cluster.client.ok("POST", "/v2/apps", {"id": "/live/pushed", "cmd": "sleep 600",
                                           "cpus": 0.1, "mem": 16, "instances": 0}, expect=201)
    row = table.locator("tr", has_text="/live/pushed")
    expect(row).to_be_visible()
    cluster.client.ok("PUT", "/v2/apps/live/pushed", {"instances": 1})
    expect(row).to_contain_text("Running")
    assert page.evaluate("window.__sameDocument") is True  # the page was never reloaded
