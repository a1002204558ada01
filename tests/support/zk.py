"""Real ZooKeeper servers for tests: one standalone server or a three-node ensemble.

Owns: :class:`ZooKeeperServer` and :class:`ZooKeeperEnsemble`, which write a
``zoo.cfg`` into a temp directory, start Debian's ZooKeeper on free loopback
ports, wait (with a deadline) until a kazoo client can connect, and stop,
kill -9 or restart it; plus :func:`ensure_zookeeper` (runs
``scripts/ensure-zookeeper.sh`` when ZooKeeper is not installed) and
:func:`expire_session` (ends another client's session, as a server would on
timeout).

The JVM is started directly (the same class and classpath ``zkServer.sh``
uses) rather than through ``zkServer.sh start``: Debian's ``zkEnv.sh``
overrides ``ZOOCFGDIR`` and ``ZOO_LOG_DIR``, the script sleeps a second per
start, and a direct child gives the exact pid for ``kill -9``.  Server output
goes to ``zookeeper.out`` in the node's directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

from kazoo.client import KazooClient

from tests.support.procs import ROOT, WaitAborted, free_port, machine_lock, wait_for

ZK_HOME = Path("/usr/share/zookeeper")
ZK_SERVER_SH = ZK_HOME / "bin" / "zkServer.sh"
ZK_JAR = Path("/usr/share/java/zookeeper.jar")
#: An SLF4J binding so the server logs to zookeeper.out (optional).
SLF4J_SIMPLE = Path("/usr/share/java/slf4j-simple.jar")
ENSURE_SCRIPT = ROOT / "scripts" / "ensure-zookeeper.sh"
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


def ensure_zookeeper() -> Path:
    """Install ZooKeeper with scripts/ensure-zookeeper.sh if zkServer.sh is missing."""
    if not ZK_SERVER_SH.exists() or not ZK_JAR.exists():
        with machine_lock("ensure-zookeeper"):
            subprocess.run(["bash", str(ENSURE_SCRIPT)], check=True, stdout=subprocess.DEVNULL)
    if not ZK_JAR.exists():
        raise RuntimeError(f"ZooKeeper is still not installed ({ZK_JAR} missing)")
    return ZK_SERVER_SH


def can_connect(hosts: str, timeout: float = 1.0) -> bool:
    """True when a kazoo client can open a session with ``hosts`` within ``timeout``."""
    client = KazooClient(hosts=hosts, timeout=max(timeout, 1.0),
                         connection_retry={"max_tries": 0})
    try:
        client.start(timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False
    finally:
        with contextlib.suppress(Exception):  # best-effort cleanup
            client.stop()
            client.close()


def expire_session(hosts: str, client_id: tuple[int, bytes], timeout: float = 10.0) -> None:
    """End the session ``client_id`` on the server, as if it had timed out.

    A second client attaches to the same session and closes it: the server
    drops the session's ephemeral znodes, and the original client is told its
    session expired when it next talks to the server.
    """
    client = KazooClient(hosts=hosts, client_id=client_id, timeout=timeout)
    client.start(timeout=timeout)
    client.stop()
    client.close()


def four_letter_word(port: int, word: str, timeout: float = 2.0) -> str:
    """Send a ZooKeeper four-letter command to 127.0.0.1:``port``; the reply ("" on failure)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(word.encode("ascii"))
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return ""


def _java() -> str:
    java = shutil.which("java") or "/usr/bin/java"
    if not Path(java).exists():
        raise RuntimeError("no java found (Debian's zookeeper package depends on one)")
    return java


class _Node:
    """One ZooKeeper server process with its own directory and config."""

    def __init__(self, directory: Path, client_port: int, extra_config: list[str],
                 myid: int | None = None) -> None:
        self.directory = directory
        self.client_port = client_port
        self.extra_config = extra_config
        self.myid = myid
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def config_path(self) -> Path:
        return self.directory / "zoo.cfg"

    def write_config(self) -> None:
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        lines = [
            "tickTime=500",
            "initLimit=10",
            "syncLimit=5",
            f"dataDir={data}",
            f"clientPort={self.client_port}",
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr,stat",
            *self.extra_config,
        ]
        self.config_path.write_text("\n".join(lines) + "\n")
        if self.myid is not None:
            (data / "myid").write_text(f"{self.myid}\n")

    def launch(self) -> None:
        ensure_zookeeper()
        self.write_config()
        classpath = [str(self.directory), str(ZK_JAR)]
        if SLF4J_SIMPLE.exists():
            classpath.append(str(SLF4J_SIMPLE))
        cmd = [
            _java(), "-Xmx1g", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            f"-Dzookeeper.log.dir={self.directory}",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-cp", ":".join(classpath), MAIN_CLASS, str(self.config_path),
        ]
        env = dict(os.environ, ZOOCFGDIR=str(self.directory), ZOO_LOG_DIR=str(self.directory))
        with open(self.directory / "zookeeper.out", "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output_tail(self, size: int = 3000) -> str:
        try:
            return (self.directory / "zookeeper.out").read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def wait_serving(self, timeout: float) -> None:
        def serving() -> bool:
            if not self.alive():
                raise WaitAborted(
                    f"ZooKeeper on port {self.client_port} exited:\n{self.output_tail()}")
            return can_connect(self.hosts, timeout=1.0)
        try:
            wait_for(serving, timeout, f"ZooKeeper serving on port {self.client_port}")
        except WaitAborted:
            raise
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.output_tail()}") from None

    def signal(self, sig: int, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.proc = None


class ZooKeeperServer:
    """A standalone ZooKeeper on 127.0.0.1 with its data under ``tmp_dir``.

    The port is chosen once (free at construction unless given), so a restart
    keeps it and clients reconnect; the data directory also survives restarts.
    """

    def __init__(self, tmp_dir: str | os.PathLike[str], port: int | None = None) -> None:
        self.directory = Path(tmp_dir)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._node = _Node(self.directory, self.port, [])

    @property
    def hosts(self) -> str:
        """``127.0.0.1:<port>`` for kazoo and zk:// URLs."""
        return self._node.hosts

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._node.proc.pid if self._node.proc is not None else None

    def alive(self) -> bool:
        """True while the server process runs."""
        return self._node.alive()

    def start(self, timeout: float = 30.0) -> ZooKeeperServer:
        """Start and wait until a client can connect (AssertionError with the log after timeout)."""
        if not self.alive():
            self._node.launch()
        self._node.wait_serving(timeout)
        return self

    def stop(self) -> None:
        """Stop with SIGTERM (SIGKILL if it lingers)."""
        self._node.signal(signal.SIGTERM)

    def kill(self) -> None:
        """kill -9: no goodbye to clients, as in a crash."""
        self._node.signal(signal.SIGKILL)

    def restart(self, timeout: float = 30.0) -> ZooKeeperServer:
        """Stop, then start again on the same port with the same data."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ZooKeeperEnsemble:
    """``n`` ZooKeeper servers on 127.0.0.1 forming one ensemble (``server.N`` lines, myid files).

    Nodes are numbered by their server id, 1..n.
    """

    def __init__(self, tmp_dir: str | os.PathLike[str], n: int = 3) -> None:
        if n < 1:
            raise ValueError(f"n: expected at least 1 server, got {n}")
        self.directory = Path(tmp_dir)
        self.n = n
        ports = [(free_port(), free_port(), free_port()) for _ in range(n)]
        servers = [f"server.{i + 1}=127.0.0.1:{p[1]}:{p[2]}" for i, p in enumerate(ports)]
        # `cons` lets a test find which server holds a given session (see node_of_session).
        servers.append("4lw.commands.whitelist=ruok,srvr,stat,cons")
        self._nodes = {
            i + 1: _Node(self.directory / f"node{i + 1}", ports[i][0], servers, myid=i + 1)
            for i in range(n)
        }
        for node in self._nodes.values():
            node.directory.mkdir(parents=True, exist_ok=True)

    @property
    def hosts(self) -> str:
        """All client addresses, comma-separated."""
        return ",".join(node.hosts for node in self._nodes.values())

    def node_hosts(self, i: int) -> str:
        """The client address of server ``i``."""
        return self._node(i).hosts

    def alive(self, i: int) -> bool:
        """True while server ``i`` runs."""
        return self._node(i).alive()

    def node_of_session(self, session_id: int) -> int | None:
        """The id of the running server a client session is connected to (None if none)."""
        wanted = f"sid=0x{session_id:x},"
        for i, node in self._nodes.items():
            if node.alive() and wanted in four_letter_word(node.client_port, "cons"):
                return i
        return None

    def _node(self, i: int) -> _Node:
        if i not in self._nodes:
            raise ValueError(f"i: expected a server id in 1..{self.n}, got {i!r}")
        return self._nodes[i]

    def start(self, timeout: float = 60.0) -> ZooKeeperEnsemble:
        """Start every server and wait until each one serves clients."""
        for node in self._nodes.values():
            if not node.alive():
                node.launch()
        deadline = time.monotonic() + timeout
        for node in self._nodes.values():
            node.wait_serving(max(1.0, deadline - time.monotonic()))
        return self

    def stop_node(self, i: int) -> None:
        """Stop server ``i`` (SIGTERM)."""
        self._node(i).signal(signal.SIGTERM)

    def kill_node(self, i: int) -> None:
        """kill -9 server ``i``."""
        self._node(i).signal(signal.SIGKILL)

    def start_node(self, i: int, timeout: float = 30.0) -> None:
        """Start server ``i`` again and wait until it serves clients (needs a quorum)."""
        node = self._node(i)
        if not node.alive():
            node.launch()
        node.wait_serving(timeout)

    def stop(self) -> None:
        """Stop every server."""
        for node in self._nodes.values():
            node.signal(signal.SIGTERM)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
