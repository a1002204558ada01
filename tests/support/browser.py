"""A real headless browser for the web UI tests: Debian's Chromium driven by Playwright.

Owns: the module-scoped ``browser`` fixture (one Chromium per test module,
launched from ``/usr/bin/chromium`` with the flags that work on these machines;
``scripts/ensure-chromium.sh`` installs it and Playwright for Python, and
``playwright install`` is never used), :class:`Tab` (one page in a fresh
context: every console error and uncaught exception is collected, so that a
test can assert there were none; screenshots are saved as test artifacts) and
the ``tab`` fixture.  Every wait is Playwright's own (``expect`` and
``wait_for`` with a deadline).

Screenshots go to ``$MESOSLITE_TEST_ARTIFACTS/webui`` (default: the temp
directory's ``mesoslite-test-artifacts/webui``).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("MESOSLITE_TEST_ARTIFACTS")
                 or Path(tempfile.gettempdir()) / "mesoslite-test-artifacts") / "webui"
#: How long a Playwright expectation waits by default (ms): the machine is shared.
EXPECT_TIMEOUT_MS = 20_000
#: A phone's screen.
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def _playwright() -> Any:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: run scripts/ensure-chromium.sh")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh")
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    return sync_playwright


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole test module."""
    sync_playwright = _playwright()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Tab:
    """One page in its own browser context, with its console errors collected."""

    def __init__(self, browser: Any, viewport: dict[str, int] | None = None,
                 timezone: str = "America/New_York") -> None:
        self.context = browser.new_context(viewport=viewport or DESKTOP, timezone_id=timezone,
                                           locale="en-US")
        self.context.set_default_timeout(EXPECT_TIMEOUT_MS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def allow(self, pattern: str) -> None:
        """Accept console errors matching ``pattern`` (say, the 422 a bad form gets)."""
        self.allowed.append(re.compile(pattern))

    def unexpected_errors(self) -> list[str]:
        """Console errors and uncaught exceptions that were not allowed."""
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]

    def assert_clean(self) -> None:
        """No console error and no uncaught exception so far."""
        errors = self.unexpected_errors()
        assert not errors, f"browser errors on {self.page.url}: {errors}"

    def goto(self, url: str) -> Any:
        """Open ``url`` and wait until the view says it loaded."""
        self.page.goto(url)
        return self.loaded()

    def loaded(self) -> Any:
        """The current view, once it has rendered its data."""
        view = self.page.locator("main [data-loaded=true]").first
        view.wait_for()
        return view

    def shot(self, name: str, full_page: bool = True) -> Path:
        """Save a screenshot as a test artifact; returns its path."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def close(self) -> None:
        """Close the context (and its page)."""
        self.context.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    """A fresh page at 1280 px; the test fails if the page logged an error."""
    page = Tab(browser)
    try:
        yield page
        page.assert_clean()
    finally:
        page.close()
