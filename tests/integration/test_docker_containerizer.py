"""The Docker containerizer against a real Docker engine: running, logs, networks, kills, limits.

Each test drives :class:`DockerContainerizer` directly on its own event loop,
with its own agent scope (containers labelled with it are removed afterwards).
The engine and the test image come from scripts/ensure-docker.sh; pulls,
recovery and outages are in ``test_docker_containerizer_recovery.py``.
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from mesoslite.agent.containerizer.docker import (
    SANDBOX_MOUNT,
    DockerContainerizer,
    DockerLaunchError,
    DockerLaunchSpec,
    DockerOptions,
    DockerTermination,
    DockerUnavailableError,
    DockerUsage,
    container_name,
    exit_code_to_wait_status,
    parse_log_timestamp,
    plan_container,
)
from mesoslite.protocol import ContainerInfo, DockerInfo, Parameter, PortMapping, Reason, Volume
from tests.support.docker_env import (
    AGENT_ID,
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
    scope_containers,
    signal_of,
    spec,
    until,
)
from tests.support.procs import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def docker_engine() -> str:
    """The test image, once the engine answers (scripts/ensure-docker.sh; failure fails)."""
    return ensure_docker()


@pytest.fixture
def docker_scope(docker_engine: str, tmp_path: Path) -> Iterator[str]:
    """A unique agent scope for one test; containers labelled with it are removed afterwards."""
    with agent_scope(tmp_path) as scope:
        yield scope


# ---------------------------------------------------------------- exit codes and logs


def test_exit_zero_finishes_with_logs_labels_and_sandbox(docker_scope: str, tmp_path: Path) -> None:
    """A container that prints and exits 0: status 0, both streams in the sandbox, our labels."""
    cid = new_cid()

    async def main() -> tuple[Any, dict[str, Any]]:
        dc = DockerContainerizer(docker_scope)
        try:
            pid = await dc.launch(cid, spec(
                tmp_path, cid,
                "echo hello-out; echo hello-err >&2; echo sandbox=$MESOS_SANDBOX; pwd; "
                "echo from-container > $MESOS_SANDBOX/made-inside",
            ))
            assert pid >= 0  # 0 when it already ended: the pid of a finished container is gone
            info = await blocking(docker_api().inspect_container, dc.docker_id(cid))
            termination = await asyncio.wait_for(dc.wait(cid), 30)
            dc.remove(cid)
            return termination, info
        finally:
            dc.close()

    termination, info = run(main())
    box = sandbox(tmp_path, cid)
    assert exit_status(termination) == 0 and termination.exit_code == 0
    assert termination.message == "exited with status 0"
    out = read(box / "stdout")
    assert "hello-out\n" in out and f"sandbox={SANDBOX_MOUNT}\n" in out
    assert f"{SANDBOX_MOUNT}\n" in out.replace(f"sandbox={SANDBOX_MOUNT}\n", "")
    assert read(box / "stderr") == "hello-err\n"
    assert read(box / "made-inside") == "from-container\n"
    assert info["Name"] == "/" + container_name(AGENT_ID, cid) == f"/mesoslite-{AGENT_ID}-{cid}"
    labels = info["Config"]["Labels"]
    assert labels["mesoslite.agent_id"] == AGENT_ID
    assert labels["mesoslite.framework_id"] == "fw-1"
    assert labels["mesoslite.executor_id"] == labels["mesoslite.task_id"] == f"task-{cid}"
    assert labels["mesoslite.container_id"] == cid
    assert labels["mesoslite.agent_scope"] == docker_scope
    assert labels["team"] == "tests"
    assert info["HostConfig"]["NetworkMode"] == "host"


def test_exit_one_is_reported_as_status_one(docker_scope: str, tmp_path: Path) -> None:
    """A container that exits 1 ends with exit status 1 and a message saying so."""
    cid = new_cid()

    async def main() -> Any:
        dc = DockerContainerizer(docker_scope)
        try:
            await dc.launch(cid, spec(tmp_path, cid, "echo failing >&2; exit 1"))
            return await asyncio.wait_for(dc.wait(cid), 30)
        finally:
            dc.close()

    termination = run(main())
    assert isinstance(termination, DockerTermination)
    assert exit_status(termination) == 1 and termination.exit_code == 1
    assert termination.message == "exited with status 1"
    assert termination.reason is None and not termination.oom_killed
    assert read(sandbox(tmp_path, cid) / "stderr") == "failing\n"


def test_argv_command_runs_value_and_arguments(docker_scope: str, tmp_path: Path) -> None:
    """shell=false runs ``[value] + arguments`` (Mesos's Docker rule) with the task's env."""
    cid = new_cid()

    async def main() -> Any:
        dc = DockerContainerizer(docker_scope)
        try:
            await dc.launch(cid, spec(
                tmp_path, cid, "/bin/sh", shell=False, arguments=("-c", "echo $GREETING"),
                environment={"GREETING": "hi there"},
            ))
            return await asyncio.wait_for(dc.wait(cid), 30)
        finally:
            dc.close()

    termination = run(main())
    assert exit_status(termination) == 0
    assert read(sandbox(tmp_path, cid) / "stdout") == "hi there\n"


def test_logs_reach_the_sandbox_while_the_container_runs(docker_scope: str, tmp_path: Path) -> None:
    """Output appears in the sandbox as it is written, before the container ends."""
    cid = new_cid()
    box = sandbox(tmp_path, cid)

    async def main() -> None:
        dc = DockerContainerizer(docker_scope)
        try:
            pid = await dc.launch(cid, spec(
                tmp_path, cid,
                "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second; sleep 300",
            ))
            await until(lambda: read(box / "stdout") == "first\n", what="first line")
            assert pid > 0 and dc.pid(cid) == pid and psutil.pid_exists(pid)
            assert not dc.containers() - {cid} and cid in dc.containers()
            (box / "go").write_text("")
            await until(lambda: read(box / "stdout") == "first\nsecond\n", what="second line")
            assert not dc.ended(cid)
            await dc.kill(cid, 0.0)
        finally:
            dc.close()

    run(main())


# ---------------------------------------------------------------- networking


def test_bridge_port_mapping_answers_http_on_the_host_port(
    docker_scope: str, tmp_path: Path
) -> None:
    """BRIDGE network: busybox httpd on 8080 answers on the offered host port, on 127.0.0.1."""
    cid = new_cid()
    port = free_port()

    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2) as r:
            return r.read().decode()

    async def main() -> tuple[str, dict[str, Any], Any]:
        dc = DockerContainerizer(docker_scope)
        try:
            await dc.launch(cid, spec(
                tmp_path, cid,
                "mkdir -p /www && echo hello-from-$MESOS_TASK_ID > /www/index.html && "
                "exec httpd -f -p 8080 -h /www",
                resources=f"cpus:0.2;mem:32;ports:[{port}-{port}]",
                network="BRIDGE",
                port_mappings=(PortMapping(host_port=port, container_port=8080),),
            ))
            body = await until(lambda: blocking(fetch), 20, "httpd answering on the host port",
                               interval=0.1)
            info = await blocking(docker_api().inspect_container, dc.docker_id(cid))
            usage = await blocking(dc.usage, cid)
            await dc.kill(cid, 1.0)  # httpd as pid 1 ignores SIGTERM: SIGKILL after 1s
            return body, info, usage
        finally:
            dc.close()

    body, info, usage = run(main())
    assert body == f"hello-from-task-{cid}\n"
    assert info["HostConfig"]["NetworkMode"] == "bridge"
    assert info["NetworkSettings"]["Ports"]["8080/tcp"] == [
        {"HostIp": "127.0.0.1", "HostPort": str(port)}
    ]
    assert isinstance(usage, DockerUsage)
    assert usage.network["net_rx_bytes"] > 0 and usage.network["net_tx_bytes"] > 0
    assert usage.mem_rss_bytes > 0 and usage.processes >= 1
    assert usage.mem_limit_bytes == 32 * 1024 * 1024


def test_usage_reports_cpu_time_and_memory(docker_scope: str, tmp_path: Path) -> None:
    """usage() reports the container's cpu seconds, memory and processes; None once ended."""
    cid = new_cid()

    async def main() -> tuple[Any, Any, Any]:
        dc = DockerContainerizer(docker_scope)
        try:
            await dc.launch(cid, spec(
                tmp_path, cid,
                "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo busy-done; sleep 300",
                resources="cpus:1;mem:64",
            ))
            box = sandbox(tmp_path, cid)
            await until(lambda: "busy-done" in read(box / "stdout"), 60, "busy loop")
            usage = await blocking(dc.usage, cid)
            missing = await blocking(dc.usage, "no-such-container")
            await dc.kill(cid, 0.0)
            after = await blocking(dc.usage, cid)
            return usage, missing, after
        finally:
            dc.close()

    usage, missing, after = run(main())
    assert usage.cpus_user_time_secs + usage.cpus_system_time_secs > 0.05
    assert usage.mem_rss_bytes > 0 and usage.processes >= 1
    assert usage.network == {}  # HOST network: no per-container counters
    assert missing is None and after is None


# ---------------------------------------------------------------- kill and limits


def test_kill_sends_sigterm_and_honours_the_grace(docker_scope: str, tmp_path: Path) -> None:
    """kill(grace) sends SIGTERM; a trap inside the container runs and exits before SIGKILL."""
    cid = new_cid()
    box = sandbox(tmp_path, cid)

    async def main() -> tuple[Any, float]:
        dc = DockerContainerizer(docker_scope)
        try:
            await dc.launch(cid, spec(
                tmp_path, cid,
                "trap 'echo got-sigterm; sleep 1; echo cleaned-up; exit 3' TERM; echo ready; "
                "while true; do sleep 0.1; done",
            ))
            await until(lambda: "ready" in read(box / "stdout"), what="ready")
            start = time.monotonic()
            termination = await dc.kill(cid, 10.0)
            return termination, time.monotonic() - start
        finally:
            dc.close()

    termination, elapsed = run(main())
    assert exit_status(termination) == 3, termination
    assert read(box / "stdout") == "ready\ngot-sigterm\ncleaned-up\n"
    assert 1.0 <= elapsed < 10.0


def test_kill_escalates_to_sigkill_after_the_grace(docker_scope: str, tmp_path: Path) -> None:
    """A container ignoring SIGTERM is SIGKILLed once the grace period has passed."""
    cid = new_cid()
    box = sandbox(tmp_path, cid)

    async def main() -> tuple[Any, float]:
        dc = DockerContainerizer(docker_scope)
        try:
            await dc.launch(cid, spec(
                tmp_path, cid, "trap '' TERM; echo ready; while true; do sleep 0.1; done"
            ))
            await until(lambda: "ready" in read(box / "stdout"), what="ready")
            start = time.monotonic()
            termination = await dc.kill(cid, 1.5)
            return termination, time.monotonic() - start
        finally:
            dc.close()

    termination, elapsed = run(main())
    assert signal_of(termination) == 9 and termination.exit_code == 137
    assert termination.message == "terminated by signal 9 (SIGKILL)"
    assert 1.5 <= elapsed < 10.0


def test_memory_limit_is_enforced(docker_scope: str, tmp_path: Path) -> None:
    """A container growing past its mem is OOM-killed: SIGKILL, oom_killed, memory reason."""
    cid = new_cid()

    async def main() -> tuple[Any, dict[str, Any]]:
        dc = DockerContainerizer(docker_scope)
        try:
            await dc.launch(cid, spec(
                tmp_path, cid,
                "echo growing; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
                resources="cpus:0.5;mem:32",
            ))
            info = await blocking(docker_api().inspect_container, dc.docker_id(cid))
            return await asyncio.wait_for(dc.wait(cid), 60), info
        finally:
            dc.close()

    termination, info = run(main())
    host = info["HostConfig"]
    assert host["Memory"] == host["MemorySwap"] == 32 * 1024 * 1024
    assert host["CpuShares"] == 512 and host["CpuQuota"] == 50_000 and host["CpuPeriod"] == 100_000
    assert termination.oom_killed
    assert termination.reason is Reason.REASON_CONTAINER_LIMITATION_MEMORY
    assert signal_of(termination) == 9
    assert "out of memory" in termination.message and "32 MB" in termination.message
    assert "survived" not in read(sandbox(tmp_path, cid) / "stdout")


# ---------------------------------------------------------------- validation




def test_privileged_is_refused_unless_the_agent_allows_it(
    docker_scope: str, tmp_path: Path
) -> None:
    """privileged=true fails without --docker_allow_privileged and runs privileged with it."""
    cid, cid2 = new_cid(), new_cid()
    error = refused_launch(docker_scope, tmp_path, spec(tmp_path, cid, "true", privileged=True))
    allowed = plan_container(
        cid2, spec(tmp_path, cid2, "true", privileged=True), DockerOptions(allow_privileged=True),
        docker_scope,
    )
    assert allowed.host["privileged"] is True
    assert str(error).startswith("container.docker.privileged: ")
    assert "--docker_allow_privileged" in str(error)

    async def main() -> tuple[dict[str, Any] | None, str]:
        dc = DockerContainerizer(docker_scope, DockerOptions(allow_privileged=True))
        try:
            await dc.launch(cid2, spec(tmp_path, cid2, "sleep 300", privileged=True))
        except DockerLaunchError as exc:
            return None, str(exc)
        try:
            info = await blocking(docker_api().inspect_container, dc.docker_id(cid2))
            await dc.kill(cid2, 0.0)
            return info, ""
        finally:
            dc.close()

    info, refusal = run(main())
    if info is not None:
        assert info["HostConfig"]["Privileged"] is True
    else:
        # This machine's runtime may lack capabilities a privileged container needs: then the
        # engine (not the agent's validation) refuses at start.
        assert refusal.startswith("docker start ") and "privileged" not in refusal


def test_parameters_outside_the_allow_list_are_refused(docker_scope: str, tmp_path: Path) -> None:
    """cap-add is not allowed by default; allowed parameters (env, label, ulimit) apply."""
    cid, cid2 = new_cid(), new_cid()
    error = refused_launch(docker_scope, tmp_path, spec(
        tmp_path, cid, "true", parameters=(Parameter("env", "A=1"), Parameter("cap-add", "ALL")),
    ))
    assert str(error).startswith("container.docker.parameters[1].key: 'cap-add' is not an allowed")
    bad_label = refused_launch(docker_scope, tmp_path, spec(
        tmp_path, cid, "true", parameters=(Parameter("label", "mesoslite.task_id=x"),),
    ))
    assert "reserved" in str(bad_label)

    async def main() -> tuple[Any, dict[str, Any]]:
        dc = DockerContainerizer(docker_scope)
        try:
            await dc.launch(cid2, spec(
                tmp_path, cid2, "echo $FROM_PARAM; ulimit -n",
                parameters=(
                    Parameter("env", "FROM_PARAM=param-value"), Parameter("--label", "x=y"),
                    Parameter("ulimit", "nofile=512:1024"),
                ),
            ))
            info = await blocking(docker_api().inspect_container, dc.docker_id(cid2))
            return await asyncio.wait_for(dc.wait(cid2), 30), info
        finally:
            dc.close()

    termination, info = run(main())
    assert exit_status(termination) == 0
    assert read(sandbox(tmp_path, cid2) / "stdout") == "param-value\n512\n"
    assert info["Config"]["Labels"]["x"] == "y"


def test_volume_host_paths_outside_the_allow_list_are_refused(
    docker_scope: str, tmp_path: Path
) -> None:
    """Host paths outside the allow-list or the sandbox are refused; allowed ones are mounted."""
    cid, cid2 = new_cid(), new_cid()
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data.txt").write_text("shared-data\n")
    options = DockerOptions(volume_allowed_paths=(str(shared),))
    error = refused_launch(docker_scope, tmp_path, spec(
        tmp_path, cid, "true", volumes=(Volume("/host-etc", "/etc", "RO"),),
    ), options)
    assert str(error).startswith("container.volumes[0].host_path: '/etc' is outside")
    escape = refused_launch(docker_scope, tmp_path, spec(
        tmp_path, cid, "true", volumes=(Volume("/x", "../../../..", "RW"),),
    ), options)
    assert "escapes the sandbox" in str(escape)
    bad_mode = refused_launch(docker_scope, tmp_path, spec(
        tmp_path, cid, "true", volumes=(Volume("/x", str(shared), "RX"),),
    ), options)
    assert str(bad_mode) == "container.volumes[0].mode: expected RW or RO, got 'RX'"

    async def main() -> Any:
        dc = DockerContainerizer(docker_scope, options)
        try:
            await dc.launch(cid2, spec(
                tmp_path, cid2,
                "cat /shared/data.txt; echo x > /shared/new && echo wrote || echo read-only; "
                "echo inner > /work/inner.txt",
                volumes=(Volume("/shared", str(shared), "RO"), Volume("/work", "workdir", "RW")),
            ))
            return await asyncio.wait_for(dc.wait(cid2), 30)
        finally:
            dc.close()

    termination = run(main())
    assert exit_status(termination) == 0
    assert read(sandbox(tmp_path, cid2) / "stdout") == "shared-data\nread-only\n"
    assert read(sandbox(tmp_path, cid2) / "workdir" / "inner.txt") == "inner\n"
    assert not (shared / "new").exists()


def test_port_mappings_must_use_the_tasks_ports(docker_scope: str, tmp_path: Path) -> None:
    """A host port outside the task's ports resource, or a mapping on HOST, is refused."""
    cid = new_cid()
    error = refused_launch(docker_scope, tmp_path, spec(
        tmp_path, cid, "true", resources="cpus:0.1;mem:32;ports:[31000-31001]", network="BRIDGE",
        port_mappings=(PortMapping(host_port=31005, container_port=80),),
    ))
    assert str(error) == (
        "container.docker.port_mappings[0].host_port: 31005 is not in the task's ports "
        "resource ([31000-31001]); expected one of the task's ports"
    )
    on_host = refused_launch(docker_scope, tmp_path, spec(
        tmp_path, cid, "true", resources="cpus:0.1;mem:32;ports:[31000-31001]", network="HOST",
        port_mappings=(PortMapping(host_port=31000, container_port=80),),
    ))
    assert "need network BRIDGE or USER, got HOST" in str(on_host)
    bad_network = refused_launch(
        docker_scope, tmp_path, spec(tmp_path, cid, "true", network="MESH")
    )
    assert str(bad_network).startswith("container.docker.network: expected one of HOST, BRIDGE")


def test_user_network_by_name(docker_scope: str, tmp_path: Path) -> None:
    """network USER joins the named network; an unknown name fails with the daemon's message."""
    cid, cid2 = new_cid(), new_cid()
    api = docker_api()
    name = f"mesoslite-test-{uuid.uuid4().hex[:8]}"
    api.create_network(name, driver="bridge")

    def user_spec(c: str, network_name: str) -> DockerLaunchSpec:
        base = spec(tmp_path, c, "sleep 300", network="USER")
        info = base.container_info
        assert info.docker is not None
        docker_info = DockerInfo(image=info.docker.image, network="USER", user_network=network_name)
        return DockerLaunchSpec(
            command=base.command, sandbox=base.sandbox, environment=base.environment,
            resources=base.resources, container_info=ContainerInfo(type="DOCKER",
                                                                   docker=docker_info),
            agent_id=AGENT_ID, framework_id="fw-1", executor_id=c,
        )

    async def main() -> dict[str, Any]:
        dc = DockerContainerizer(docker_scope)
        try:
            await dc.launch(cid, user_spec(cid, name))
            info = await blocking(api.inspect_container, dc.docker_id(cid))
            await dc.kill(cid, 0.0)
            return info
        finally:
            dc.close()

    try:
        info = run(main())
        assert name in info["NetworkSettings"]["Networks"]
        error = refused_launch(
            docker_scope + "-missing", tmp_path, user_spec(cid2, name + "-missing")
        )
        assert "not found" in str(error) and name + "-missing" in str(error)
    finally:
        for summary in scope_containers(api, docker_scope):
            api.remove_container(summary["Id"], force=True)
        api.remove_network(name)


# ---------------------------------------------------------------- daemon health


def test_unreachable_daemon_is_unhealthy_and_fails_launches(tmp_path: Path) -> None:
    """A daemon that does not answer: health says so, and launches fail at once, clearly."""
    cid = new_cid()
    socket_path = tmp_path / "no-docker.sock"

    async def main() -> tuple[bool, dict[str, Any], DockerUnavailableError, float]:
        dc = DockerContainerizer(
            str(tmp_path), DockerOptions(docker_host=f"unix://{socket_path}")
        )
        try:
            healthy = await dc.check_health()
            health = dc.health()
            start = time.monotonic()
            with pytest.raises(DockerUnavailableError) as failed:
                await dc.launch(cid, spec(tmp_path, cid, "true"))
            return healthy, health, failed.value, time.monotonic() - start
        finally:
            dc.close()

    healthy, health, error, elapsed = run(main())
    assert healthy is False and health["healthy"] is False
    assert health["message"].startswith(f"Docker daemon at unix://{socket_path} is unreachable")
    assert error.reason is Reason.REASON_CONTAINER_LAUNCH_FAILED
    assert "is unreachable" in str(error)
    assert elapsed < 5.0


def test_reachable_daemon_is_healthy(docker_engine: str, tmp_path: Path) -> None:
    """check_health() against the real engine reports healthy with its version."""

    async def main() -> tuple[bool, dict[str, Any]]:
        dc = DockerContainerizer(str(tmp_path))
        try:
            return await dc.check_health(), dc.health()
        finally:
            dc.close()

    healthy, health = run(main())
    assert healthy is True and health["healthy"] is True
    assert health["message"].startswith("Docker ") and "API" in health["message"]


# ---------------------------------------------------------------- small pure helpers


def test_exit_codes_map_to_wait_statuses() -> None:
    """Docker exit codes become wait statuses: 0..128 exits, 128+N signal N."""
    assert os.WEXITSTATUS(exit_code_to_wait_status(0) or 0) == 0
    status = exit_code_to_wait_status(3)
    assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3
    status = exit_code_to_wait_status(137)
    assert status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9
    assert exit_code_to_wait_status(None) is None and exit_code_to_wait_status(-1) is None


def test_log_timestamps_parse_to_nanoseconds() -> None:
    """Docker's RFC 3339 log timestamps parse to exact nanoseconds; junk gives None."""
    assert parse_log_timestamp(b"1970-01-01T00:00:01.000000002Z") == 1_000_000_002
    assert parse_log_timestamp(b"2026-11-22T00:29:10.99Z") == 1795307350_990_000_000
    assert parse_log_timestamp(b"2026-11-22T00:29:10Z") == 1795307350_000_000_000
    assert parse_log_timestamp(b"hello") is None
