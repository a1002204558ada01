"""The Docker containerizer: task containers run by a Docker engine through the Docker SDK.

Owns: everything the agent says to a Docker engine.  :class:`DockerContainerizer`
implements the :class:`~mesoslite.agent.containerizer.Containerizer` interface
for tasks whose ``ContainerInfo`` is of type DOCKER: it validates the spec
(:func:`~mesoslite.agent.containerizer.docker_spec.plan_container`), pulls the
image when missing or asked to (with progress reports), creates and starts the
container (sandbox mounted at ``/mnt/mesos/sandbox``, cpu shares
and quota and a memory limit from the task's resources, named
``mesoslite-<agent>-<container>`` and labelled with agent, framework,
executor, task and container ids), streams its stdout and stderr into the
sandbox files as they are written, reports how it ended (exit code, OOM kill),
kills it with a grace period, reattaches to labelled containers after an agent
restart (removing unknown ones) and measures cpu, memory and network usage.

Every Docker SDK call blocks, so none runs on the event loop: short calls go
to a small thread pool; each container has a waiter thread and two log
threads (one per stream) with their own clients.  Results cross into the loop
through ``loop.call_soon_threadsafe``.  What those threads do is in
:mod:`mesoslite.agent.containerizer.docker_watch`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import docker
import docker.errors

from mesoslite.agent.containerizer import (
    Containerizer,
    ContainerizerError,
    LaunchSpec,
    RecoveredContainer,
    Termination,
)
from mesoslite.agent.containerizer.docker_spec import (
    DEFAULT_ALLOWED_PARAMETERS,
    LABEL_CONTAINER,
    LABEL_SANDBOX,
    LABEL_SCOPE,
    SANDBOX_MOUNT,
    SUPPORTED_PARAMETERS,
    ContainerPlan,
    DockerLaunchError,
    DockerLaunchSpec,
    DockerOptions,
    DockerPullError,
    DockerTermination,
    DockerUnavailableError,
    DockerUsage,
    container_name,
    exit_code_to_wait_status,
    plan_container,
)
from mesoslite.agent.containerizer.docker_watch import (
    PullProgress,
    Watch,
    explain,
    follow_logs,
    parse_log_timestamp,
    to_loop,
    unreachable,
    wait_exit,
)
from mesoslite.proc import prepare_sandbox
from mesoslite.protocol import Reason

log = logging.getLogger("mesoslite.agent.docker")

#: Containers between ``docker create`` and started at once (the SDK thread pool's size).
LAUNCH_CONCURRENCY = 8


def container_networks(info: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """(network name, IP) pairs of an inspected container (none on the host network)."""
    networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
    return tuple((str(name), str(net["IPAddress"])) for name, net in sorted(networks.items())
                 if isinstance(net, dict) and net.get("IPAddress"))


class _ImageMissing(Exception):
    """``docker create`` found no such image (pull it, then create again)."""


class DockerContainerizer(Containerizer):
    """Containers run by a Docker engine (see the module docstring).

    ``agent_scope`` identifies this agent on the host across restarts (its work
    directory): recovery only looks at, and orphan cleanup only removes,
    containers labelled with it.  ``on_progress(container_id, message)`` is
    called on the event loop while an image is pulled.
    """

    def __init__(
        self,
        agent_scope: str,
        options: DockerOptions | None = None,
        on_progress: Callable[[str, str], None] | None = None,
    ) -> None:
        """Prepare; nothing talks to the daemon until :meth:`check_health` or a launch."""
        if not agent_scope:
            raise ValueError("agent_scope: expected a non-empty identifier (the work_dir)")
        self.agent_scope = agent_scope
        self.options = options or DockerOptions()
        self._on_progress = on_progress
        self._watches: dict[str, Watch] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(
            LAUNCH_CONCURRENCY, thread_name_prefix="docker")
        self._launch_slots = asyncio.Semaphore(LAUNCH_CONCURRENCY)
        self._api = self._new_client()
        self._closed = False
        self.healthy: bool | None = None
        self.health_message = "not checked yet"
        self.health_checked_at = 0.0
        self.orphans_removed: list[str] = []

    # ------------------------------------------------------------ plumbing

    def _new_client(self) -> docker.APIClient:
        return docker.APIClient(
            base_url=self.options.base_url,
            version=self.options.api_version,
            # (types-docker says int; the SDK hands it to requests, which takes float seconds)
            timeout=self.options.request_timeout,  # type: ignore[arg-type]
            max_pool_size=16,
        )

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking SDK call on the pool; daemon failures become DockerUnavailableError."""
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        except Exception as exc:
            if unreachable(exc):
                self._set_health(False, f"Docker daemon at {self.options.base_url} is "
                                 f"unreachable: {explain(exc)}")
                raise DockerUnavailableError(self.health_message) from exc
            raise
        if self.healthy is False:
            self._set_health(True, f"Docker daemon at {self.options.base_url} answers again")
        return result

    def _set_health(self, healthy: bool, message: str) -> None:
        # Changes are logged; the first verdict is the caller's to report (the agent
        # names the flag that chose the daemon).
        if self.healthy is not None and healthy != self.healthy:
            (log.info if healthy else log.error)("Docker containerizer: %s", message)
        self.healthy, self.health_message = healthy, message
        self.health_checked_at = time.time()

    async def check_health(self) -> bool:
        """Ask the daemon for its version; updates :meth:`health`. Never raises."""
        try:
            version = await self._call(self._api.version)
        except ContainerizerError:
            return False
        except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy"
            self._set_health(False, f"Docker daemon answered badly: {explain(exc)}")
            return False
        self._set_health(True, f"Docker {version.get('Version', '?')} (API "
                         f"{version.get('ApiVersion', '?')}) at {self.options.base_url}")
        return True

    async def run_health_checks(self, interval: float = 5.0) -> None:
        """Check the daemon every ``interval`` seconds until cancelled (an agent task)."""
        while not self._closed:
            await self.check_health()
            await asyncio.sleep(interval)

    def health(self) -> dict[str, Any]:
        """For ``/state`` and ``/health``: healthy (None before the first check), message."""
        return {
            "healthy": self.healthy,
            "message": self.health_message,
            "checked_at": self.health_checked_at,
            "docker_host": self.options.base_url,
        }

    def _get(self, container_id: str) -> Watch:
        try:
            return self._watches[container_id]
        except KeyError:
            raise ContainerizerError(f"container_id: unknown container {container_id!r}") from None

    def _progress(self, w: Watch, message: str) -> None:
        if self._on_progress is not None and not w.closed.is_set():
            to_loop(w.loop, self._on_progress, w.container_id, message)

    # ------------------------------------------------------------ launch

    async def launch(self, container_id: str, spec: LaunchSpec) -> int:
        """Pull if needed, create and start the container; returns its main pid.

        Raises :class:`DockerLaunchError` (bad spec, daemon refusal),
        :class:`DockerPullError` or :class:`DockerUnavailableError`; each has a
        ``reason`` for the task's status update.
        """
        if self._closed:
            raise ContainerizerError("docker containerizer is closed")
        if not isinstance(spec, DockerLaunchSpec):
            raise DockerLaunchError(
                "spec: the docker containerizer needs a DockerLaunchSpec, "
                f"got {type(spec).__name__}"
            )
        if container_id in self._watches:
            raise ContainerizerError(f"container_id: {container_id!r} is already in use")
        loop = asyncio.get_running_loop()
        w = Watch(container_id, spec.sandbox, loop)
        self._watches[container_id] = w
        try:
            # Off the loop too (volume paths are resolved, the sandbox is created), and not
            # on the SDK pool: a burst of launches must not queue its creates behind this.
            plan = await loop.run_in_executor(
                None, _plan_and_prepare, container_id, spec, self.options, self.agent_scope)
            w.mem_limit = plan.mem_limit
            if plan.force_pull:
                await self._pull(w, plan.image)
            self._check_cancel(w)
            await self._create_and_start(w, plan)
        except BaseException as exc:
            self._watches.pop(container_id, None)
            reason = getattr(exc, "reason", Reason.REASON_CONTAINER_LAUNCH_FAILED)
            w.finish(DockerTermination(None, f"failed to launch: {exc}", reason=reason))
            w.launched.set_result(None)
            w.close()
            raise
        w.launched.set_result(None)
        self._watch(w)
        log.info("Docker container %s (%s) started as pid %d", container_id, plan.name, w.pid)
        return w.pid

    def _check_cancel(self, w: Watch) -> None:
        if w.cancel.is_set():
            raise DockerLaunchError("container: killed before it started")

    async def _pull(self, w: Watch, image: str) -> None:
        """Pull on its own thread, reporting progress; bounded by pull_timeout, cancellable."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        abandon = threading.Event()
        started = time.monotonic()

        def settle(exc: BaseException | None) -> None:
            if done.done():
                return
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)

        def run() -> None:
            client = self._new_client()
            progress = PullProgress(image)
            last = 0.0
            try:
                for event in client.pull(image, stream=True, decode=True):
                    if abandon.is_set():
                        return
                    if "error" in event:
                        raise DockerPullError(f"failed to pull image {image!r}: {event['error']}")
                    progress.update(event)
                    now = time.monotonic()
                    if now - last >= self.options.pull_progress_interval:
                        last = now
                        self._progress(w, progress.message())
                error: BaseException | None = None
            except DockerPullError as exc:
                error = exc
            except Exception as exc:  # noqa: BLE001 - every failure is a pull failure
                error = DockerPullError(f"failed to pull image {image!r}: {explain(exc)}")
                if unreachable(exc):
                    error = DockerUnavailableError(
                        f"Docker daemon at {self.options.base_url} is unreachable while "
                        f"pulling {image!r}: {explain(exc)}"
                    )
            finally:
                with contextlib.suppress(Exception):
                    client.close()
            to_loop(loop, settle, error)

        self._progress(w, f"pulling image {image}")
        log.info("Pulling image %s for container %s", image, w.container_id)
        threading.Thread(target=run, name=f"docker-pull-{w.container_id[:8]}", daemon=True).start()
        deadline = started + self.options.pull_timeout
        try:
            while not done.done():
                self._check_cancel(w)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DockerPullError(
                        f"failed to pull image {image!r}: not done within "
                        f"{self.options.pull_timeout:g}s (docker_pull_timeout)"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(done), min(remaining, 0.2))
        finally:
            abandon.set()
        done.result()
        self._progress(w, f"pulled image {image} in {time.monotonic() - started:.1f}s")

    async def _create_and_start(self, w: Watch, plan: ContainerPlan) -> None:
        """Create and start the container; pull its image first if the daemon lacks it.

        Optimistic, to save round trips on the common path: no image inspection
        before the create, and a leftover container of the same name (a failed
        attempt) is removed only when the daemon reports the conflict.  At most
        :data:`LAUNCH_CONCURRENCY` containers are between create and started at
        once, each one's calls back to back, so that a burst of launches
        reports its first containers running early; pulls hold no slot.
        """
        pulled = plan.force_pull
        while True:
            try:
                async with self._launch_slots:
                    self._check_cancel(w)
                    await self._create_and_start_once(w, plan)
                return
            except _ImageMissing as missing:
                if pulled:
                    raise DockerPullError(f"image {plan.image!r}: {missing}") from None
            pulled = True
            await self._pull(w, plan.image)
            self._check_cancel(w)

    async def _create_and_start_once(self, w: Watch, plan: ContainerPlan) -> None:
        api = self._api
        try:
            host_config = api.create_host_config(**plan.host)
        except docker.errors.DockerException as exc:  # invalid arguments caught by the SDK
            raise DockerLaunchError(f"docker create {plan.image}: {exc}") from exc
        removed = False
        while True:
            try:
                created = await self._call(api.create_container, host_config=host_config,
                                           **plan.create)
                break
            except docker.errors.ImageNotFound as exc:
                raise _ImageMissing(explain(exc)) from exc
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and not removed:  # a leftover of a failed attempt
                    removed = True
                    with contextlib.suppress(docker.errors.NotFound):
                        await self._call(api.remove_container, plan.name, force=True)
                    continue
                raise DockerLaunchError(f"docker create {plan.image}: {explain(exc)}") from exc
            except docker.errors.DockerException as exc:
                raise DockerLaunchError(f"docker create {plan.image}: {exc}") from exc
        w.docker_id = created["Id"]
        for warning in created.get("Warnings") or ():
            log.warning("Docker container %s: %s", w.container_id, warning)
        try:
            self._check_cancel(w)
            await self._call(api.start, w.docker_id)
            info = await self._call(api.inspect_container, w.docker_id)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await self._call(api.remove_container, w.docker_id, force=True)
            if isinstance(exc, docker.errors.APIError):
                raise DockerLaunchError(f"docker start {plan.image}: {explain(exc)}") from exc
            raise
        w.pid = int(info["State"].get("Pid") or 0)
        w.stop_signal = info["Config"].get("StopSignal") or "SIGTERM"
        w.networks = container_networks(info)

    def networks(self, container_id: str) -> tuple[tuple[str, str], ...]:
        """(network name, IP) of a started container on Docker's networks (empty: none known)."""
        w = self._watches.get(container_id)
        return w.networks if w is not None else ()

    # ------------------------------------------------------------ watching

    def _watch(self, w: Watch) -> None:
        """Start the log threads and the waiter of a started (or recovered) container."""
        for stream in ("stdout", "stderr"):
            t = threading.Thread(
                target=follow_logs, args=(w, stream, self._client_for(w)), daemon=True,
                name=f"docker-{stream}-{w.container_id[:8]}",
            )
            w.log_threads.append(t)
            t.start()

        def on_outage(exc: BaseException) -> None:
            to_loop(w.loop, self._set_health, False,
                    f"Docker daemon at {self.options.base_url} is unreachable: {explain(exc)}")

        threading.Thread(
            target=wait_exit, args=(w, self._client_for(w), on_outage), daemon=True,
            name=f"docker-wait-{w.container_id[:8]}",
        ).start()

    def _client_for(self, w: Watch) -> docker.APIClient:
        client = self._new_client()
        w.clients.append(client)
        return client

    async def wait(self, container_id: str) -> Termination:
        """Wait until the container ends and its logs are in the sandbox."""
        return await asyncio.shield(self._get(container_id).termination)

    async def kill(self, container_id: str, grace: float) -> Termination:
        """Send the image's stop signal (SIGTERM), SIGKILL after ``grace`` seconds."""
        w = self._get(container_id)
        if not w.launched.done():
            w.cancel.set()
            await asyncio.shield(w.launched)
            if w.docker_id is None or container_id not in self._watches:
                return await asyncio.shield(w.termination)
        if not w.termination.done():
            w.killed = True
            await self._signal(w, w.stop_signal)
            if grace > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(w.termination), grace)
            if not w.termination.done():
                await self._signal(w, "SIGKILL")
        return await asyncio.shield(w.termination)

    async def exec_command(self, container_id: str, argv: list[str], env: dict[str, str],
                           timeout: float) -> tuple[int | None, str]:
        """Run ``argv`` inside the running container (health checks).

        Returns (exit code, the tail of its output); (None, why) when it could
        not run or did not finish within ``timeout`` seconds (the command is
        left to end by itself: Docker cannot kill an exec).
        """
        w = self._get(container_id)
        if w.docker_id is None:
            return None, "the container is not running"

        def run() -> tuple[int | None, str]:
            created = self._api.exec_create(w.docker_id, argv, environment=env,
                                            stdout=True, stderr=True)
            output = self._api.exec_start(created["Id"])
            code = self._api.exec_inspect(created["Id"]).get("ExitCode")
            text = output.decode("utf-8", "replace") if isinstance(output, bytes) else ""
            return code, text[-400:]

        try:
            return await asyncio.wait_for(self._call(run), timeout)
        except TimeoutError:
            return None, f"timed out after {timeout:g}s"
        except (docker.errors.APIError, DockerUnavailableError) as exc:
            return None, explain(exc)

    async def _signal(self, w: Watch, sig: str) -> None:
        try:
            await self._call(self._api.kill, w.docker_id, signal=sig)
        except docker.errors.APIError:
            pass  # not running any more (409) or gone (404): the waiter reports it

    # ------------------------------------------------------------ recovery

    async def recover(self, checkpointed: Iterable[RecoveredContainer]) -> set[str]:
        """Reattach to this agent's labelled containers named in the checkpoint.

        Returns the ids found: running ones are watched again (not restarted);
        ones that exited while the agent was down resolve :meth:`wait` at once
        with their exit status (their remaining logs are copied first); ones
        created but never started are removed and not returned.  Labelled
        containers of this agent scope not in the checkpoint are removed when
        ``kill_orphans`` is set.
        """
        wanted = {c.container_id: c for c in checkpointed}
        found = await self._call(
            self._api.containers, all=True, filters={"label": f"{LABEL_SCOPE}={self.agent_scope}"}
        )
        loop = asyncio.get_running_loop()
        recovered: set[str] = set()
        for summary in found:
            labels = summary.get("Labels") or {}
            cid = labels.get(LABEL_CONTAINER, "")
            if cid in wanted and cid not in self._watches and labels.get(LABEL_SANDBOX):
                info = await self._call(self._api.inspect_container, summary["Id"])
                if info["State"].get("Status") == "created":
                    # The previous run died between create and start: nothing ran, and
                    # waiting on it would report a bogus exit 0.  It is not recovered.
                    log.warning("Removing docker container %s: created but never started", cid)
                    with contextlib.suppress(docker.errors.NotFound):
                        await self._call(self._api.remove_container, summary["Id"], force=True)
                    continue
                w = Watch(cid, labels[LABEL_SANDBOX], loop)
                w.docker_id = summary["Id"]
                w.pid = int(info["State"].get("Pid") or 0)
                w.mem_limit = int(info["HostConfig"].get("Memory") or 0)
                w.stop_signal = info["Config"].get("StopSignal") or "SIGTERM"
                w.networks = container_networks(info)
                w.create_time = wanted[cid].create_time or w.create_time
                w.launched.set_result(None)
                self._watches[cid] = w
                self._watch(w)
                recovered.add(cid)
                log.info("Reattached to docker container %s (%s)", cid,
                         "running" if info["State"].get("Running") else "exited")
            elif cid not in self._watches and self.options.kill_orphans:
                log.warning("Removing orphan docker container %s (%s)",
                            summary["Names"], summary["Id"][:12])
                with contextlib.suppress(docker.errors.NotFound):
                    await self._call(self._api.remove_container, summary["Id"], force=True)
                self.orphans_removed.append(cid or summary["Id"])
        return recovered

    # ------------------------------------------------------------ usage and bookkeeping

    def usage(self, container_id: str) -> DockerUsage | None:
        """Cpu, memory and network counters (blocking: call from a worker thread)."""
        w = self._watches.get(container_id)
        if w is None or w.docker_id is None or w.termination.done():
            return None
        try:
            stats = self._api.stats(w.docker_id, stream=False, one_shot=True)
        except Exception:  # noqa: BLE001 - gone or daemon away: no usage
            return None
        cpu = (stats.get("cpu_stats") or {}).get("cpu_usage") or {}
        mem = stats.get("memory_stats") or {}
        detail = mem.get("stats") or {}
        rss = detail.get("total_rss", detail.get("rss", detail.get("anon", mem.get("usage", 0))))
        # cgroup v1 reports "cache" (and "total_cache" with hierarchy), v2 "file".
        cache = detail.get("total_cache", detail.get("cache", detail.get("file")))
        network: dict[str, int] = {}
        for counters in (stats.get("networks") or {}).values():
            for direction in ("rx", "tx"):
                for what in ("bytes", "packets", "errors", "dropped"):
                    key = f"net_{direction}_{what}"
                    network[key] = network.get(key, 0) + int(counters.get(f"{direction}_{what}", 0))
        return DockerUsage(
            timestamp=time.time(),
            cpus_user_time_secs=cpu.get("usage_in_usermode", 0) / 1e9,
            cpus_system_time_secs=cpu.get("usage_in_kernelmode", 0) / 1e9,
            mem_rss_bytes=int(rss or 0),
            processes=int((stats.get("pids_stats") or {}).get("current", 0) or 0),
            mem_limit_bytes=int(mem.get("limit", 0) or 0) if w.mem_limit else 0,
            network=network,
            mem_cache_bytes=None if cache is None else int(cache),
        )

    def ended(self, container_id: str) -> bool:
        """True once the container's end (and its exit status) is known."""
        return self._get(container_id).termination.done()

    def containers(self) -> set[str]:
        """Containers being watched (ended ones until :meth:`remove`)."""
        return set(self._watches)

    def pid(self, container_id: str) -> int | None:
        """The host pid of the container's first process."""
        w = self._watches.get(container_id)
        return w.pid if w else None

    def create_time(self, container_id: str) -> float | None:
        """When the container was launched (epoch seconds)."""
        w = self._watches.get(container_id)
        return w.create_time if w else None

    def docker_id(self, container_id: str) -> str | None:
        """The Docker engine's id of a container."""
        w = self._watches.get(container_id)
        return w.docker_id if w else None

    def remove(self, container_id: str) -> None:
        """Forget a container; an ended one is also removed from the engine (in the background)."""
        w = self._watches.pop(container_id, None)
        if w is None:
            return
        ended = w.docker_id if w.termination.done() else None
        w.close()
        if ended is not None and not self._closed:
            fut = self._pool.submit(self._api.remove_container, ended, force=True)
            fut.add_done_callback(lambda f: f.exception())  # errors are not interesting

    def close(self) -> None:
        """Stop watching everything (containers keep running) and release the clients."""
        self._closed = True
        for w in self._watches.values():
            w.close()
        self._watches.clear()
        self._pool.shutdown(wait=False)
        with contextlib.suppress(Exception):
            self._api.close()


def _plan_and_prepare(container_id: str, spec: DockerLaunchSpec, options: DockerOptions,
                      agent_scope: str) -> ContainerPlan:
    """Validate the spec into a plan, then prepare the sandbox (blocking: a worker thread)."""
    plan = plan_container(container_id, spec, options, agent_scope)
    try:
        _prepare_sandbox_files(spec.sandbox)
    except OSError as exc:
        raise DockerLaunchError(f"sandbox: cannot create {spec.sandbox!r}: {exc}") from exc
    return plan


def _prepare_sandbox_files(sandbox: str) -> None:
    """The run directory, its ``latest`` link and empty stdout/stderr files."""
    prepare_sandbox(sandbox)
    for name in ("stdout", "stderr"):
        with open(os.path.join(sandbox, name), "ab"):
            pass


__all__ = [
    "DEFAULT_ALLOWED_PARAMETERS",
    "SANDBOX_MOUNT",
    "SUPPORTED_PARAMETERS",
    "DockerContainerizer",
    "DockerLaunchError",
    "DockerLaunchSpec",
    "DockerOptions",
    "DockerPullError",
    "DockerTermination",
    "DockerUnavailableError",
    "DockerUsage",
    "container_name",
    "exit_code_to_wait_status",
    "parse_log_timestamp",
    "plan_container",
]
