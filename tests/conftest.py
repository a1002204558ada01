"""Shared pytest configuration: the repository root on sys.path for `tests.support`, and
how pytest-xdist may spread the suite over worker processes.

Under ``--dist loadgroup`` (what scripts/test.sh uses) every test that depends on a
module- or class-scoped fixture (a ZooKeeper server, a cluster of processes, a
``mesoslite local``) is put in its module's group, so that its module runs on one
worker and sets that fixture up once; every other test goes to whichever worker is
free.  Each worker has its own temp directory tree; tests take free loopback ports,
unique ZooKeeper paths and unique Docker scopes, and steps that touch machine-wide
state hold :func:`tests.support.procs.machine_lock`.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_SHARED_SCOPES = {"module", "class", "package"}


def _shares_a_fixture(item: pytest.Item) -> bool:
    """True when ``item`` uses a fixture set up once for several tests below the session."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(defs and defs[-1].scope in _SHARED_SCOPES
               for defs in info.name2fixturedefs.values())


def pytest_configure(config: pytest.Config) -> None:
    """Give SIGINT Python's usual handler back when the suite was started with it ignored.

    A shell starts background jobs of a script with SIGINT ignored (so may a CI runner),
    and an ignored signal stays ignored in every process a test starts: a ``ctl`` sent
    Ctrl-C would not stop, and the scheduler driver's "the old handler comes back"
    would compare against SIG_IGN.  pytest-xdist workers inherit it from the main
    process.  Tests run as they would from a terminal.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group each module's tests that share a module-scoped fixture (see the module doc)."""
    for item in items:
        if _shares_a_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
