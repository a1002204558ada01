"""Fixtures of the end-to-end tests: the headless browser of the web UI tests."""

from tests.support.browser import browser, tab  # noqa: F401 - fixtures for tests/e2e/test_webui_*
