"""The Docker containerizer against a real Docker engine: image pulls, recovery, daemon outages.

Pulls come from :class:`~tests.support.docker_env.LocalRegistry` (no registry
is reachable here); an agent restart is a containerizer closed and a new one
recovering; an outage is a :class:`~tests.support.docker_env.SocketProxy` cut.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesoslite.agent.containerizer import RecoveredContainer
from mesoslite.agent.containerizer.docker import (
    DockerContainerizer,
    DockerLaunchError,
    DockerOptions,
    DockerPullError,
    DockerUnavailableError,
)
from mesoslite.protocol import Reason
from tests.support.docker_env import (
    AGENT_ID,
    LocalRegistry,
    SocketProxy,
    agent_scope,
    docker_api,
    ensure_docker,
    exit_status,
    new_cid,
    read,
    remove_image,
    run,
    sandbox,
    scope_containers,
    spec,
    until,
)
from tests.support.procs import free_port, wait_for

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


# ---------------------------------------------------------------- images


def test_missing_image_fails_the_pull_with_the_daemons_message(
    docker_scope: str, tmp_path: Path
) -> None:
    """An image no registry has: DockerPullError with REASON_CONTAINER_PULL_FAILED."""
    cid, cid2 = new_cid(), new_cid()
    unreachable = f"127.0.0.1:{free_port()}/mesoslite-test/missing:1"

    async def main() -> tuple[DockerPullError, DockerPullError, set[str]]:
        dc = DockerContainerizer(docker_scope)
        try:
            with LocalRegistry({"mesoslite-test/present:1"}) as registry:
                absent = registry.image("mesoslite-test/absent:1")
                with pytest.raises(DockerPullError) as unknown:
                    await dc.launch(cid, spec(tmp_path, cid, "true", image=absent))
            with pytest.raises(DockerPullError) as refused:
                await dc.launch(cid2, spec(tmp_path, cid2, "true", image=unreachable))
            return unknown.value, refused.value, dc.containers()
        finally:
            dc.close()

    unknown, refused, left = run(main())
    assert unknown.reason is refused.reason is Reason.REASON_CONTAINER_PULL_FAILED
    assert "failed to pull image" in str(unknown) and "mesoslite-test/absent:1" in str(unknown)
    assert "manifest unknown" in str(unknown)
    assert unreachable in str(refused) and "connection refused" in str(refused)
    assert left == set()
    assert scope_containers(docker_api(), docker_scope) == []


def test_slow_pull_reports_progress_then_runs(docker_scope: str, tmp_path: Path) -> None:
    """A throttled pull from a local registry reports progress and then starts the container."""
    cid = new_cid()
    progress: list[tuple[str, str]] = []
    repo = f"mesoslite-test/pulled:{uuid.uuid4().hex[:8]}"

    async def main(image: str) -> tuple[Any, float]:
        dc = DockerContainerizer(
            docker_scope, DockerOptions(pull_progress_interval=0.2),
            on_progress=lambda c, m: progress.append((c, m)),
        )
        try:
            start = time.monotonic()
            await dc.launch(cid, spec(tmp_path, cid, "cat /etc/mesoslite-registry", image=image))
            elapsed = time.monotonic() - start
            return await asyncio.wait_for(dc.wait(cid), 30), elapsed
        finally:
            dc.close()

    with LocalRegistry({repo}, rate=600_000) as registry:
        image = registry.image(repo)
        try:
            termination, elapsed = run(main(image))
        finally:
            remove_image(image)
    assert exit_status(termination) == 0
    assert len(read(sandbox(tmp_path, cid) / "stdout").strip()) == 32  # the registry's marker
    assert elapsed >= registry.blob_size / 600_000 * 0.8
    messages = [m for c, m in progress if c == cid]
    assert messages[0] == f"pulling image {image}"
    assert any("layers downloaded" in m and " MB" in m for m in messages), messages
    assert messages[-1].startswith(f"pulled image {image} in ")


def test_pull_timeout_fails_the_launch(docker_scope: str, tmp_path: Path) -> None:
    """A pull slower than docker_pull_timeout fails with a pull reason naming the timeout."""
    cid = new_cid()
    repo = f"mesoslite-test/slow:{uuid.uuid4().hex[:8]}"

    async def main(image: str) -> DockerPullError:
        dc = DockerContainerizer(docker_scope, DockerOptions(pull_timeout=0.5))
        try:
            with pytest.raises(DockerPullError) as failed:
                await dc.launch(cid, spec(tmp_path, cid, "true", image=image))
            assert dc.containers() == set()
            return failed.value
        finally:
            dc.close()

    with LocalRegistry({repo}, rate=100_000) as registry:
        try:
            error = run(main(registry.image(repo)))
        finally:
            remove_image(registry.image(repo))
    assert error.reason is Reason.REASON_CONTAINER_PULL_FAILED
    assert "not done within 0.5s" in str(error)


def test_kill_during_a_pull_cancels_the_launch(docker_scope: str, tmp_path: Path) -> None:
    """kill() while the image is being pulled ends the launch before any container exists."""
    cid = new_cid()
    repo = f"mesoslite-test/cancel:{uuid.uuid4().hex[:8]}"

    async def main(image: str) -> tuple[BaseException | None, Any]:
        dc = DockerContainerizer(docker_scope)
        try:
            launch = asyncio.ensure_future(dc.launch(cid, spec(tmp_path, cid, "true", image=image)))
            await until(lambda: cid in dc.containers(), what="launch registered")
            # The pull has started once a blob is being served (it takes seconds).
            await until(lambda: [r for r in registry.requests if "/blobs/" in r], 20,
                        "the registry serving a blob of the pull")
            termination = await asyncio.wait_for(dc.kill(cid, 1.0), 10)
            return (await asyncio.gather(launch, return_exceptions=True))[0], termination
        finally:
            dc.close()

    with LocalRegistry({repo}, rate=100_000) as registry:
        try:
            error, termination = run(main(registry.image(repo)))
        finally:
            remove_image(registry.image(repo))
    assert isinstance(error, DockerLaunchError) and "killed before it started" in str(error)
    assert termination.status is None and "killed before it started" in termination.message
    assert scope_containers(docker_api(), docker_scope) == []


# ---------------------------------------------------------------- recovery


def test_recover_reattaches_reports_exits_and_removes_orphans(
    docker_scope: str, tmp_path: Path
) -> None:
    """After a restart: running ones reattached, exits reported, orphans removed, others kept."""
    keep, exited, orphan, other = new_cid(), new_cid(), new_cid(), new_cid()
    api = docker_api()

    async def first_run() -> dict[str, str]:
        dc = DockerContainerizer(docker_scope)
        neighbour = DockerContainerizer(docker_scope + "-neighbour")
        try:
            await dc.launch(keep, spec(
                tmp_path, keep,
                "echo before; while [ ! -e go ]; do sleep 0.05; done; echo after; "
                "trap 'exit 0' TERM; while true; do sleep 0.1; done",
            ))
            await dc.launch(exited, spec(
                tmp_path, exited, "while [ ! -e go ]; do sleep 0.05; done; echo bye; exit 7"
            ))
            await dc.launch(orphan, spec(tmp_path, orphan, "sleep 300"))
            await neighbour.launch(other, spec(tmp_path, other, "sleep 300"))
            box = sandbox(tmp_path, keep)
            await until(lambda: read(box / "stdout") == "before\n", what="before")
            return {c: dc.docker_id(c) or "" for c in (keep, exited, orphan)} | {
                other: neighbour.docker_id(other) or ""
            }
        finally:
            dc.close()  # the agent dies: containers keep running, nobody follows them
            neighbour.close()

    ids = run(first_run())
    started = api.inspect_container(ids[keep])["State"]["StartedAt"]
    # While the agent is down, one container exits and the other writes more output.
    (sandbox(tmp_path, exited) / "go").write_text("")
    (sandbox(tmp_path, keep) / "go").write_text("")
    wait_for(lambda: not api.inspect_container(ids[exited])["State"]["Running"], 20,
             "the container to exit")

    async def second_run() -> tuple[set[str], Any, Any, list[str], str]:
        dc = DockerContainerizer(docker_scope)
        try:
            found = await dc.recover([
                RecoveredContainer(keep, 0, 0.0), RecoveredContainer(exited, 0, 0.0),
                RecoveredContainer(new_cid(), 0, 0.0),  # checkpointed but gone
            ])
            gone = await asyncio.wait_for(dc.wait(exited), 20)
            box = sandbox(tmp_path, keep)
            await until(lambda: read(box / "stdout") == "before\nafter\n", what="after")
            assert not dc.ended(keep)
            killed = await dc.kill(keep, 5.0)
            return found, gone, killed, list(dc.orphans_removed), read(box / "stdout")
        finally:
            dc.close()

    found, gone, killed, orphans, keep_out = run(second_run())
    assert found == {keep, exited}
    assert exit_status(gone) == 7 and gone.exit_code == 7
    assert read(sandbox(tmp_path, exited) / "stdout") == "bye\n"
    assert api.inspect_container(ids[keep])["State"]["StartedAt"] == started  # not restarted
    assert exit_status(killed) == 0
    assert keep_out == "before\nafter\n"
    assert orphans == [orphan]
    remaining = {c["Id"] for c in scope_containers(api, docker_scope)}
    assert ids[orphan] not in remaining and ids[keep] in remaining
    assert api.inspect_container(ids[other])["State"]["Running"]
    api.remove_container(ids[other], force=True)


def test_recover_keeps_orphans_when_told_to(docker_scope: str, tmp_path: Path) -> None:
    """With kill_orphans off, unknown labelled containers are left running."""
    cid = new_cid()

    async def main() -> tuple[set[str], list[str], str]:
        first = DockerContainerizer(docker_scope)
        try:
            await first.launch(cid, spec(tmp_path, cid, "sleep 300"))
            docker_id = first.docker_id(cid) or ""
        finally:
            first.close()
        second = DockerContainerizer(docker_scope, DockerOptions(kill_orphans=False))
        try:
            return await second.recover([]), list(second.orphans_removed), docker_id
        finally:
            second.close()

    found, orphans, docker_id = run(main())
    assert found == set() and orphans == []
    assert docker_api().inspect_container(docker_id)["State"]["Running"]


# ---------------------------------------------------------------- daemon outage


def test_daemon_outage_while_watching_is_survived(docker_scope: str, tmp_path: Path) -> None:
    """A daemon outage: unhealthy, launches fail; afterwards the exit and output are reported."""
    cid, cid2 = new_cid(), new_cid()
    box = sandbox(tmp_path, cid)
    proxy = SocketProxy(tmp_path / "docker.sock")
    proxy.start()

    async def main() -> tuple[Any, DockerUnavailableError, dict[str, Any]]:
        dc = DockerContainerizer(docker_scope, DockerOptions(docker_host=proxy.url))
        try:
            await dc.launch(cid, spec(
                tmp_path, cid,
                "echo started; while [ ! -e go ]; do sleep 0.05; done; echo finished; exit 5",
            ))
            await until(lambda: read(box / "stdout") == "started\n", what="started")
            assert await dc.check_health()
            proxy.stop()
            await until(lambda: dc.health()["healthy"] is False, what="unhealthy")
            (box / "go").write_text("")
            with pytest.raises(DockerUnavailableError) as failed:
                await dc.launch(cid2, spec(tmp_path, cid2, "true"))
            direct = docker_api()  # the real socket: the container ends while dc cannot see it
            docker_id = dc.docker_id(cid)
            await until(lambda: not direct.inspect_container(docker_id)["State"]["Running"],
                        what="container exited")
            assert not dc.ended(cid)
            proxy.start()
            termination = await asyncio.wait_for(dc.wait(cid), 30)
            await dc.check_health()
            return termination, failed.value, dc.health()
        finally:
            dc.close()
            proxy.stop()

    termination, error, health = run(main())
    assert exit_status(termination) == 5
    assert read(box / "stdout") == "started\nfinished\n"
    assert "is unreachable" in str(error) and error.reason is Reason.REASON_CONTAINER_LAUNCH_FAILED
    assert health["healthy"] is True


def test_recover_removes_a_container_created_but_never_started(
    docker_scope: str, tmp_path: Path
) -> None:
    """A checkpointed container left in state 'created' (agent died before start) is removed."""
    cid = new_cid()
    api = docker_api()
    box = sandbox(tmp_path, cid)
    box.mkdir(parents=True)
    created = api.create_container(
        "mesoslite-test/busybox:latest", ["sleep", "300"],
        labels={"mesoslite.agent_scope": docker_scope, "mesoslite.container_id": cid,
                "mesoslite.sandbox": str(box)},
    )

    async def main() -> tuple[set[str], set[str]]:
        dc = DockerContainerizer(docker_scope)
        try:
            return await dc.recover([RecoveredContainer(cid, 0, 0.0)]), dc.containers()
        finally:
            dc.close()

    found, watched = run(main())
    assert found == set() and watched == set()
    assert created["Id"] not in {c["Id"] for c in scope_containers(api, docker_scope)}


def test_launch_replaces_a_leftover_container_of_the_same_name(
    docker_scope: str, tmp_path: Path
) -> None:
    """A container already holding the name (a failed earlier attempt) is removed, then launched."""
    cid = new_cid()
    api = docker_api()
    leftover = api.create_container("mesoslite-test/busybox:latest", ["sleep", "300"],
                                    name=f"mesoslite-{AGENT_ID}-{cid}",
                                    labels={"mesoslite.agent_scope": docker_scope})

    async def main() -> Any:
        dc = DockerContainerizer(docker_scope)
        try:
            await dc.launch(cid, spec(tmp_path, cid, "echo replaced"))
            return await asyncio.wait_for(dc.wait(cid), 30)
        finally:
            dc.close()

    termination = run(main())
    assert exit_status(termination) == 0
    assert read(sandbox(tmp_path, cid) / "stdout") == "replaced\n"
    assert leftover["Id"] not in {c["Id"] for c in scope_containers(api, docker_scope)}
