"""A pytest plugin with a ``mesoslite_cluster`` fixture for synchronous tests.

Owns: the ``mesoslite_cluster`` and ``mesoslite_cluster_options`` fixtures, the
``mesoslite_cluster`` marker and :class:`ClusterHandle`.
Enable it in a test suite with::

    pytest_plugins = ["mesoslite.testing.pytest_plugin"]

The fixture starts an :class:`~mesoslite.testing.cluster.InProcessCluster`
on a background thread's event loop, so the test itself stays synchronous
(a scheduler under test typically runs with ``driver.start()``).  Its
``InProcessCluster`` keywords come from the ``mesoslite_cluster_options``
fixture (override it, or parametrize it for one test), then from the
``mesoslite_cluster`` marker (usable once the plugin is registered before
collection, e.g. from the root ``conftest.py``)::

    @pytest.mark.parametrize("mesoslite_cluster_options", [{"agents": 3}])
    def test_three_agents(mesoslite_cluster): ...

    @pytest.mark.mesoslite_cluster(agents=3, agent_resources="cpus:4;mem:2048")
    def test_three_bigger_agents(mesoslite_cluster): ...
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from mesoslite.testing.cluster import InProcessCluster

T = TypeVar("T")


class ClusterHandle:
    """A running cluster seen from another thread: addresses and thread-safe helpers."""

    def __init__(self, cluster: InProcessCluster, loop: asyncio.AbstractEventLoop) -> None:
        """Wrap ``cluster``, which runs on ``loop`` (another thread's)."""
        self.cluster = cluster
        self.loop = loop
        self.master_address: str = cluster.master_address
        self.http_url: str = cluster.http_url

    def run(self, coro: Awaitable[T], timeout: float = 30.0) -> T:
        """Run a coroutine on the cluster's loop and return its result."""

        async def wrapper() -> T:
            return await coro

        future = asyncio.run_coroutine_threadsafe(wrapper(), self.loop)
        return future.result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Call ``fn`` on the cluster's loop thread (to read master/agent state safely)."""

        async def invoke() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(invoke(), self.loop).result(timeout)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0, message: str = "") -> T:
        """Poll ``predicate`` on the cluster's loop until truthy; TimeoutError after ``timeout``."""
        return self.run(self.cluster.wait_for(predicate, timeout, message=message),
                        timeout=timeout + 5.0)

    def get_json(self, path: str, timeout: float = 10.0) -> Any:
        """GET ``path`` (e.g. ``/state``) from the master's HTTP server and parse the JSON."""
        with urllib.request.urlopen(self.http_url + path, timeout=timeout) as response:
            return json.loads(response.read())

    def state(self) -> dict[str, Any]:
        """The master's ``/state`` document."""
        state: dict[str, Any] = self.get_json("/state")
        return state

    def add_agent(self, resources: str | None = None, **overrides: Any) -> Any:
        """Start one more agent (see :meth:`InProcessCluster.add_agent`) and return it."""
        if resources is None:
            return self.run(self.cluster.add_agent(**overrides))
        return self.run(self.cluster.add_agent(resources, **overrides))

    @property
    def agents(self) -> list[Any]:
        """The agents (their state belongs to the cluster's loop thread)."""
        return self.cluster.agents

    @property
    def master(self) -> Any:
        """The master (its state belongs to the cluster's loop thread)."""
        return self.cluster.master


class _ClusterThread:
    """An event loop on a daemon thread that owns one cluster."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="mesoslite-cluster",
                                        daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def run(self, coro: Awaitable[T], timeout: float) -> T:
        async def wrapper() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10.0)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``mesoslite_cluster`` marker."""
    config.addinivalue_line(
        "markers",
        "mesoslite_cluster(**kwargs): InProcessCluster arguments for the mesoslite_cluster "
        "fixture (agents, agent_resources, master_config, agent_config, ...)",
    )


@pytest.fixture
def mesoslite_cluster_options() -> dict[str, Any]:
    """Keyword arguments for the ``mesoslite_cluster`` fixture's InProcessCluster ({})."""
    return {}


@pytest.fixture
def mesoslite_cluster(
    request: pytest.FixtureRequest, mesoslite_cluster_options: dict[str, Any]
) -> Iterator[ClusterHandle]:
    """A running in-process master and agents (default 2) on a background thread."""
    marker = request.node.get_closest_marker("mesoslite_cluster")
    kwargs: dict[str, Any] = dict(mesoslite_cluster_options)
    if marker is not None:
        kwargs.update(marker.kwargs)
    runner = _ClusterThread()
    cluster = InProcessCluster(**kwargs)
    try:
        runner.run(cluster.start(), timeout=60.0)
    except BaseException:
        runner.close()
        raise
    try:
        yield ClusterHandle(cluster, runner.loop)
    finally:
        try:
            runner.run(cluster.stop(), timeout=60.0)
        finally:
            runner.close()
