"""Following Docker containers from threads: their logs into the sandbox, their end.

Owns: :class:`Watch` (one container's Docker id, sandbox, watcher threads and
how it ended), :func:`follow_logs` (a container's stdout or stderr appended to
the sandbox file as it is written, resumable after an agent restart without
duplicating lines), :func:`wait_exit` and :func:`termination_of` (the end of a
container and its exit status), :class:`PullProgress` (pull events as one
line) and the small helpers the Docker containerizer shares with them.  Every
function here blocks: they run on threads of
:class:`~mesoslite.agent.containerizer.docker.DockerContainerizer`, and hand
results to the event loop with :func:`to_loop`.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions

from mesoslite.agent.containerizer.docker_spec import DockerTermination, exit_code_to_wait_status
from mesoslite.proc import describe_wait_status
from mesoslite.protocol import Reason

log = logging.getLogger("mesoslite.agent.docker")


def to_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """Hand a result to the loop from a thread (dropped when the loop is gone)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


def explain(exc: BaseException) -> str:
    """The daemon's own message when there is one."""
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc) or type(exc).__name__


def is_read_timeout(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a read timeout: the call may simply be retried."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, requests.exceptions.ReadTimeout | urllib3.exceptions.ReadTimeoutError):
            return True
        if any(isinstance(a, urllib3.exceptions.ReadTimeoutError) for a in seen.args):
            return True
        seen = seen.__context__
    return False


def unreachable(exc: BaseException) -> bool:
    """True for failures to talk to the daemon at all (not its refusals)."""
    return isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout)


_TS = re.compile(rb"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$")


def parse_log_timestamp(raw: bytes) -> int | None:
    """Nanoseconds since the epoch of a Docker RFC 3339 log timestamp (UTC)."""
    m = _TS.match(raw)
    if not m:
        return None
    secs = calendar.timegm(time.strptime(m.group(1).decode(), "%Y-%m-%dT%H:%M:%S"))
    frac = (m.group(2) or b"0").decode()
    return secs * 1_000_000_000 + int(frac.ljust(9, "0"))


class PullProgress:
    """Turns the daemon's per-layer pull events into one line."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.layers: dict[str, tuple[str, int, int]] = {}
        self.last_status = ""

    def update(self, event: dict[str, Any]) -> None:
        """Take one event of the daemon's pull stream into account."""
        layer = event.get("id")
        status = str(event.get("status", ""))
        if layer and status and not status.startswith(("Pulling from", "Digest", "Status")):
            detail = event.get("progressDetail") or {}
            _, cur, total = self.layers.get(layer, ("", 0, 0))
            cur = int(detail.get("current", cur) or cur)
            total = int(detail.get("total", total) or total)
            self.layers[layer] = (status, cur, total)
        elif status:
            self.last_status = status

    def message(self) -> str:
        """One line: layers downloaded and megabytes so far."""
        if not self.layers:
            return f"pulling image {self.image}: {self.last_status or 'started'}"
        done = sum(1 for s, _, _ in self.layers.values() if s in (
            "Pull complete", "Already exists", "Download complete", "Extracting"))
        cur = sum(c for _, c, _ in self.layers.values())
        total = sum(t for _, _, t in self.layers.values())
        size = f", {cur / 1e6:.1f} of {total / 1e6:.1f} MB" if total else ""
        return f"pulling image {self.image}: {done}/{len(self.layers)} layers downloaded{size}"


class Watch:
    """One container: its Docker id, sandbox, watcher threads and how it ended."""

    def __init__(self, container_id: str, sandbox: str, loop: asyncio.AbstractEventLoop) -> None:
        self.container_id = container_id
        self.sandbox = sandbox
        self.loop = loop
        self.docker_id: str | None = None
        self.pid = 0
        self.create_time = time.time()
        self.mem_limit = 0
        self.stop_signal = "SIGTERM"
        #: (network name, IP) of the container on Docker's networks (empty on the host's).
        self.networks: tuple[tuple[str, str], ...] = ()
        self.launched: asyncio.Future[None] = loop.create_future()
        self.termination: asyncio.Future[DockerTermination] = loop.create_future()
        self.cancel = threading.Event()
        self.closed = threading.Event()
        self.killed = False
        self.log_threads: list[threading.Thread] = []
        self.streams: list[Any] = []
        self.clients: list[docker.APIClient] = []

    @property
    def started_id(self) -> str:
        """The Docker id of a created container (set before any thread follows it)."""
        if self.docker_id is None:
            raise RuntimeError(f"docker container {self.container_id}: not created yet")
        return self.docker_id

    def finish(self, termination: DockerTermination) -> None:
        """Resolve the termination (on the loop; the first one wins)."""
        if not self.termination.done():
            self.termination.set_result(termination)

    def close(self) -> None:
        """Stop following: unblock the log threads and release the clients."""
        self.closed.set()
        for stream in list(self.streams):
            with contextlib.suppress(Exception):  # best effort: unblocks a log thread
                stream.close()
        for client in list(self.clients):
            with contextlib.suppress(Exception):
                client.close()


def follow_logs(w: Watch, stream: str, client: docker.APIClient) -> None:
    """Append the container's ``stream`` to ``<sandbox>/<stream>`` as it is written.

    The timestamp of the last entry written is kept in a hidden file beside
    it, so a reattached agent continues where the previous one stopped.
    """
    path = os.path.join(w.sandbox, stream)
    mark_path = os.path.join(w.sandbox, f".{stream}.docker-offset")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        mark = os.open(mark_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        log.error("Cannot write %s of container %s: %s", path, w.container_id, exc)
        return
    try:
        raw = os.pread(mark, 32, 0).strip()
        last_ns = int(raw) if raw.isdigit() else 0
        backoff = 0.5
        while not w.closed.is_set():
            since = (last_ns - 1000) / 1e9 if last_ns > 1000 else None
            try:
                logs = client.logs(
                    w.started_id, stdout=stream == "stdout", stderr=stream == "stderr",
                    stream=True, follow=True, timestamps=True, since=since,
                )
                w.streams.append(logs)
                for chunk in logs:
                    stamp, _, payload = chunk.partition(b" ")
                    ns = parse_log_timestamp(stamp)
                    if ns is None:
                        payload = chunk
                    elif ns <= last_ns:
                        continue
                    while payload:
                        payload = payload[os.write(fd, payload):]
                    if ns is not None:
                        last_ns = ns
                        os.pwrite(mark, b"%020d\n" % ns, 0)
                w.streams.remove(logs)
                state = client.inspect_container(w.started_id)["State"]
                if not state.get("Running"):
                    return
                w.closed.wait(0.2)  # the stream ended early (daemon restart): follow again
            except docker.errors.NotFound:
                return
            except Exception as exc:  # noqa: BLE001 - retried: the daemon may come back
                if w.closed.is_set():
                    return
                log.debug("Log stream %s of %s broke: %s", stream, w.container_id, exc)
                w.closed.wait(backoff)
                backoff = min(backoff * 2, 5.0)
    finally:
        os.close(fd)
        os.close(mark)

def wait_exit(w: Watch, client: docker.APIClient, on_outage: Callable[[BaseException], None]
              ) -> None:
    """Block until the container stops; then resolve its termination on the loop.

    ``on_outage(exc)`` is called (on this thread) each time the daemon cannot be reached.
    """
    backoff = 0.5
    while not w.closed.is_set():
        try:
            client.wait(w.started_id, timeout=30)
            break
        except docker.errors.NotFound:
            break
        except Exception as exc:  # noqa: BLE001 - read timeouts loop, outages retry
            if w.closed.is_set():
                return
            if is_read_timeout(exc):
                continue
            on_outage(exc)
            w.closed.wait(backoff)
            backoff = min(backoff * 2, 5.0)
    if w.closed.is_set():
        return
    for t in w.log_threads:
        t.join(timeout=10.0)
    termination = termination_of(client, w)
    if not w.closed.is_set():
        to_loop(w.loop, w.finish, termination)

def termination_of(client: docker.APIClient, w: Watch) -> DockerTermination:
    """How a stopped container ended, from the daemon (exit code, OOM kill, error)."""
    try:
        state = client.inspect_container(w.started_id)["State"]
    except docker.errors.NotFound:
        return DockerTermination(None, "container disappeared (removed outside the agent)")
    except Exception as exc:  # noqa: BLE001 - the end is known, its status is not
        return DockerTermination(None, f"exited (status unknown: {explain(exc)})")
    code = state.get("ExitCode")
    status = exit_code_to_wait_status(code)
    oom = bool(state.get("OOMKilled"))
    message = describe_wait_status(status)
    reason = None
    if oom:
        limit = f" of {w.mem_limit // (1024 * 1024)} MB" if w.mem_limit else ""
        message += f" (out of memory: the memory limit{limit} was reached)"
        reason = Reason.REASON_CONTAINER_LIMITATION_MEMORY
    elif state.get("Error"):
        message += f" ({state['Error']})"
    return DockerTermination(status, message, exit_code=code, oom_killed=oom, reason=reason)
