"""Docker tasks choosing a log driver: allowed by the operator, applied by the real engine."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesoslite.agent import AgentConfig
from mesoslite.agent.containerizer.docker import DockerContainerizer, DockerOptions
from mesoslite.protocol import Parameter
from tests.support.docker_env import (
    agent_scope,
    blocking,
    docker_api,
    ensure_docker,
    exit_status,
    new_cid,
    read,
    refused_launch,
    run,
    sandbox,
    spec,
)

pytestmark = pytest.mark.integration

LOGGING = AgentConfig(docker_allowed_parameters="env,log-driver,log-opt",
                      docker_allowed_log_drivers="local,json-file").docker_options()


@pytest.fixture
def docker_scope(tmp_path: Path) -> Iterator[str]:
    """A unique agent scope on a running engine (removed afterwards)."""
    ensure_docker()
    with agent_scope(tmp_path) as scope:
        yield scope


def test_log_driver_is_refused_unless_the_operator_allows_it(docker_scope: str,
                                                               tmp_path: Path) -> None:
    """By default log-driver is not an allowed parameter; a driver off the list is refused."""
    cid = new_cid()
    default = refused_launch(docker_scope, tmp_path, spec(
        tmp_path, cid, "true", parameters=(Parameter("log-driver", "local"),)))
    assert "'log-driver' is not an allowed docker run option" in str(default)
    off_list = refused_launch(docker_scope, tmp_path, spec(
        tmp_path, cid, "true", parameters=(Parameter("log-driver", "syslog"),)), LOGGING)
    assert str(off_list).startswith("container.docker.parameters[0].value: log driver 'syslog'")
    assert "--docker_allowed_log_drivers" in str(off_list)
    bad_opt = refused_launch(docker_scope, tmp_path, spec(
        tmp_path, cid, "true", parameters=(Parameter("log-opt", "max-size"),)), LOGGING)
    assert "expected key=value for log-opt" in str(bad_opt)


def test_allowed_log_driver_applies_and_the_sandbox_still_gets_the_output(
        docker_scope: str, tmp_path: Path) -> None:
    """log-driver=local with max-size reaches the engine; stdout still lands in the sandbox."""
    cid = new_cid()

    async def main() -> tuple[Any, dict[str, Any]]:
        dc = DockerContainerizer(docker_scope, LOGGING)
        try:
            await dc.launch(cid, spec(tmp_path, cid, "echo via-local-driver", parameters=(
                Parameter("log-driver", "local"), Parameter("log-opt", "max-size=1m"))))
            info = await blocking(docker_api().inspect_container, dc.docker_id(cid))
            return await asyncio.wait_for(dc.wait(cid), 30), info
        finally:
            dc.close()

    termination, info = run(main())
    assert exit_status(termination) == 0
    assert info["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {"max-size": "1m"}}
    assert read(sandbox(tmp_path, cid) / "stdout") == "via-local-driver\n"


def test_docker_options_from_agent_flags() -> None:
    """--docker_allowed_log_drivers reaches the Docker options; the default list is local ones."""
    assert LOGGING.allowed_log_drivers == {"local", "json-file"}
    assert DockerOptions().allowed_log_drivers == {"json-file", "local", "journald"}
    assert "log-driver" not in DockerOptions().allowed_parameters
