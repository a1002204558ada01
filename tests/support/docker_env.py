"""A real Docker engine for tests, and a tiny local registry to pull from.

Owns: :func:`ensure_docker` (runs ``scripts/ensure-docker.sh`` once per test
process, one process at a time: it installs Docker and busybox-static if missing, starts ``dockerd``
if it does not answer and builds the test image; when it fails the calling
test fails — nothing is skipped), :data:`TEST_IMAGE`, :func:`docker_api`, the
fixtures ``docker_engine`` (session) and ``docker_scope`` (per test: a unique
agent scope whose labelled containers are force-removed afterwards), and
:class:`LocalRegistry`, a Registry v2 server on 127.0.0.1 serving a busybox
image built in memory (a fresh layer per registry, so every pull really
downloads it), optionally throttled to make a pull slow, and
:class:`SocketProxy`, a cuttable forwarder to the Docker socket (a daemon
outage without stopping the shared daemon); plus the helpers the Docker
containerizer tests share (:func:`spec` builds a launch spec, :func:`run`,
:func:`until`, :func:`refused_launch`, exit-status readers).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self, TypeVar

import docker
import docker.errors
import pytest

from mesoslite.agent.containerizer.docker import (
    DockerContainerizer,
    DockerLaunchError,
    DockerLaunchSpec,
    DockerOptions,
)
from mesoslite.protocol import (
    CommandInfo,
    ContainerInfo,
    DockerInfo,
    Parameter,
    PortMapping,
    Reason,
    Volume,
)
from mesoslite.resources import Resources
from tests.support.procs import ROOT, machine_lock, until, wait_for

ENSURE_SCRIPT = ROOT / "scripts" / "ensure-docker.sh"
TEST_IMAGE = "mesoslite-test/busybox:latest"
#: The label the Docker containerizer scopes its containers with.
SCOPE_LABEL = "mesoslite.agent_scope"

_ensured: str | None = None
_lock = threading.Lock()


def ensure_docker() -> str:
    """Make sure the engine answers and the test image exists; returns the image name.

    Raises ``subprocess.CalledProcessError`` (with the script's output) on failure.
    """
    global _ensured
    with _lock:
        if _ensured is None:
            with machine_lock("ensure-docker"):
                result = subprocess.run(
                    ["bash", str(ENSURE_SCRIPT)],
                    check=False, capture_output=True, text=True, timeout=900,
                )
            if result.returncode != 0:
                raise subprocess.CalledProcessError(
                    result.returncode, result.args, result.stdout, result.stderr
                )
            _ensured = result.stdout.strip().splitlines()[-1]
        return _ensured


def docker_api() -> docker.APIClient:
    """A low-level client for test assertions (API 1.41, what Debian's engine speaks)."""
    return docker.APIClient(version="1.41", timeout=60)


def scope_containers(api: docker.APIClient, scope: str) -> list[dict[str, Any]]:
    """Every container (running or not) labelled with ``scope``."""
    return list(api.containers(all=True, filters={"label": f"{SCOPE_LABEL}={scope}"}))


def remove_scope_containers(scope: str, timeout: float = 30.0) -> None:
    """Force-remove every container labelled with ``scope`` and wait until they are gone."""
    api = docker_api()

    def removed() -> bool:
        left = scope_containers(api, scope)
        for summary in left:
            # 404: gone meanwhile; 409: a removal is already in progress.
            with contextlib.suppress(docker.errors.APIError):
                api.remove_container(summary["Id"], force=True)
        return not left

    try:
        wait_for(removed, timeout, f"every container of {scope} removed")
    finally:
        api.close()


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """The test image name, once the engine answers (installed and started if needed)."""
    return ensure_docker()


@contextlib.contextmanager
def agent_scope(tmp_path: Path) -> Iterator[str]:
    """A unique agent scope under ``tmp_path``; its containers are removed on exit."""
    scope = f"{tmp_path}/agent-{uuid.uuid4().hex[:8]}"
    try:
        yield scope
    finally:
        remove_scope_containers(scope)


@pytest.fixture
def docker_scope(docker_engine: str, tmp_path: Path) -> Iterator[str]:
    """A unique agent scope for one test; its containers are removed afterwards."""
    with agent_scope(tmp_path) as scope:
        yield scope


class SocketProxy:
    """A Unix-socket forwarder to the Docker socket that a test can cut and restore.

    Clients connect to :attr:`path`; :meth:`stop` closes the listener and
    every open connection (the daemon looks gone), :meth:`start` listens again.
    """

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        """Forward ``path`` to ``target`` once started."""
        self.path = path
        self.target = target
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The ``unix://`` address to give a Docker client."""
        return f"unix://{self.path}"

    def start(self) -> None:
        """Listen (again) and forward every connection."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Stop listening and cut every forwarded connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                self._conns |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _busybox_layer(marker: str) -> bytes:
    """An uncompressed layer: /bin/busybox, a link per applet, and a unique marker file."""
    busybox = Path("/bin/busybox").read_bytes()
    applets = subprocess.run(
        ["/bin/busybox", "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("bin", "etc", "tmp"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(busybox), 0o755
        tar.addfile(info, io.BytesIO(busybox))
        for applet in applets:
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "/bin/busybox"
            tar.addfile(link)
        data = marker.encode() + b"\n"
        info = tarfile.TarInfo("etc/mesoslite-registry")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class LocalRegistry:
    """A read-only Docker Registry v2 on 127.0.0.1 serving one image under any name it is told.

    ``rate`` (bytes/second, 0 = unlimited) throttles blob downloads.  Docker
    treats 127.0.0.0/8 registries as insecure (plain HTTP) by default.
    """

    MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"

    def __init__(self, repositories: set[str], rate: int = 0) -> None:
        """Serve the image as each ``name:tag`` in ``repositories``."""
        self.repositories = set(repositories)
        self.rate = rate
        layer = _busybox_layer(uuid.uuid4().hex)
        blob = gzip.compress(layer, compresslevel=1)
        config = json.dumps({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
            "history": [{"created_by": "tests.support.docker_env.LocalRegistry"}],
        }).encode()
        self.blobs = {_digest(blob): blob, _digest(config): config}
        self.manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": self.MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config), "digest": _digest(config),
            },
            "layers": [{
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": len(blob), "digest": _digest(blob),
            }],
        }).encode()
        self.blob_size = len(blob)
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, the registry part of image names."""
        return f"127.0.0.1:{self._server.server_address[1]}"

    def image(self, repository: str) -> str:
        """The full image name of ``repository`` (``name:tag``) on this registry."""
        return f"{self.address}/{repository}"

    def __enter__(self) -> Self:
        """Start serving."""
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                command = getattr(self, "command", None) or "?"
                registry.requests.append(f"{command} {getattr(self, 'path', '')} {format % args}")

            def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(code)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.end_headers()
                if self.command == "GET":
                    self._write(body, throttle=code == 200 and "/blobs/" in self.path)

            def _write(self, body: bytes, throttle: bool) -> None:
                if not (throttle and registry.rate):
                    self.wfile.write(body)
                    return
                chunk = max(1, registry.rate // 20)
                start = time.monotonic()
                for offset in range(0, len(body), chunk):
                    self.wfile.write(body[offset:offset + chunk])
                    self.wfile.flush()
                    due = start + (offset + chunk) / registry.rate
                    time.sleep(max(0.0, due - time.monotonic()))

            def _not_found(self, code: str) -> None:
                body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
                self._send(404, body, {"Content-Type": "application/json"})

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in ("/v2/", "/v2"):
                    self._send(200, b"{}", {"Content-Type": "application/json"})
                    return
                m = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", path)
                if not m:
                    self._not_found("NAME_UNKNOWN")
                    return
                name, kind, ref = m.groups()
                if kind == "manifests":
                    if f"{name}:{ref}" not in registry.repositories and ref != _digest(
                        registry.manifest
                    ):
                        self._not_found("MANIFEST_UNKNOWN")
                        return
                    self._send(200, registry.manifest, {
                        "Content-Type": registry.MANIFEST_TYPE,
                        "Docker-Content-Digest": _digest(registry.manifest),
                    })
                    return
                blob = registry.blobs.get(ref)
                if blob is None:
                    self._not_found("BLOB_UNKNOWN")
                    return
                self._send(200, blob, {
                    "Content-Type": "application/octet-stream", "Docker-Content-Digest": ref,
                })

            do_HEAD = do_GET  # noqa: N815 - http.server's name for HEAD

        return Handler


def remove_image(name: str) -> None:
    """Remove an image if present (pull tests clean up after themselves)."""
    api = docker_api()
    try:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            api.remove_image(name, force=True)
    finally:
        api.close()


# ---------------------------------------------------------------- driving the containerizer

T = TypeVar("T")
#: The agent id test specs are launched for.
AGENT_ID = "agent-1"


def run(coro: Awaitable[T]) -> T:
    """Run a coroutine on a fresh event loop (one per test)."""

    async def main() -> T:
        return await coro

    return asyncio.run(main())


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking call (a file read, an HTTP request, usage()) off the loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def read(path: Path) -> str:
    """A sandbox file's text ('' while missing)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def spec(
    tmp_path: Path,
    cid: str,
    command: str = "",
    *,
    shell: bool = True,
    arguments: tuple[str, ...] = (),
    resources: str = "cpus:0.5;mem:64",
    image: str = TEST_IMAGE,
    network: str = "HOST",
    port_mappings: tuple[PortMapping, ...] = (),
    parameters: tuple[Parameter, ...] = (),
    volumes: tuple[Volume, ...] = (),
    privileged: bool = False,
    force_pull: bool = False,
    environment: dict[str, str] | None = None,
) -> DockerLaunchSpec:
    """A DockerLaunchSpec for a test task with container id ``cid``."""
    return DockerLaunchSpec(
        command=CommandInfo(value=command, shell=shell, arguments=arguments),
        sandbox=str(tmp_path / "runs" / cid),
        environment=environment if environment is not None else {"MESOS_TASK_ID": f"task-{cid}"},
        resources=Resources.parse(resources),
        container_info=ContainerInfo(
            type="DOCKER",
            docker=DockerInfo(
                image=image, network=network, port_mappings=port_mappings,
                privileged=privileged, parameters=parameters, force_pull_image=force_pull,
            ),
            volumes=volumes,
        ),
        agent_id=AGENT_ID,
        framework_id="fw-1",
        executor_id=f"task-{cid}",
        task_id=f"task-{cid}",
        labels={"team": "tests"},
    )


def sandbox(tmp_path: Path, cid: str) -> Path:
    """The sandbox directory of container ``cid``."""
    return tmp_path / "runs" / cid


def new_cid() -> str:
    """A fresh container id."""
    return uuid.uuid4().hex


def exit_status(termination: Any) -> int | None:
    """The exit code of a normal exit (None when signalled)."""
    status = termination.status
    return os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None


def signal_of(termination: Any) -> int | None:
    """The terminating signal (None for a normal exit)."""
    status = termination.status
    return os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None


def refused_launch(scope: str, tmp_path: Path, launch_spec: DockerLaunchSpec,
             options: DockerOptions | None = None) -> DockerLaunchError:
    """Launch ``launch_spec``; expect a DockerLaunchError and no container left behind."""
    cid = launch_spec.sandbox.rsplit("/", 1)[-1]

    async def main() -> DockerLaunchError:
        dc = DockerContainerizer(scope, options)
        try:
            with pytest.raises(DockerLaunchError) as refused:
                await dc.launch(cid, launch_spec)
            assert dc.containers() == set()
            return refused.value
        finally:
            dc.close()

    error = run(main())
    assert error.reason is Reason.REASON_CONTAINER_LAUNCH_FAILED
    assert scope_containers(docker_api(), scope) == []
    return error


__all__ = [
    "AGENT_ID",
    "SCOPE_LABEL",
    "TEST_IMAGE",
    "LocalRegistry",
    "SocketProxy",
    "agent_scope",
    "blocking",
    "docker_api",
    "docker_engine",
    "docker_scope",
    "ensure_docker",
    "exit_status",
    "new_cid",
    "read",
    "refused_launch",
    "remove_image",
    "remove_scope_containers",
    "run",
    "sandbox",
    "scope_containers",
    "signal_of",
    "spec",
    "until",
]
