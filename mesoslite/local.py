"""The one assembler of a whole cluster in one process (``mesoslite local``, tests).

Owns: :class:`LocalCluster`, one master and N agents (and, if asked, the
bundled Marathon-style framework) on one event loop in one process
(executors and tasks are still separate processes), with the standalone
election and the registry in a local file: no ZooKeeper, no Docker.  Every
part is built by its composition root (:class:`~mesoslite.master.main.MasterProcess`,
:class:`~mesoslite.agent.main.AgentProcess`,
:class:`~frameworks.marathon.main.MarathonProcess`); this module only
chooses their configuration.  Each agent gets its own HTTP port, work
directory and slice of the port range, and by default its share of the
machine's cpus and memory, so tasks on different agents never collide.
:meth:`LocalCluster.stop` kills every task and executor it started.
:class:`mesoslite.testing.InProcessCluster` is this class with test defaults
(ephemeral ports, a temporary work directory, quick allocation and retries).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import secrets as secrets_mod
import shutil
import tempfile
from pathlib import Path
from typing import Any, Self

import psutil

from mesoslite.agent import AgentConfig
from mesoslite.agent.main import AgentProcess
from mesoslite.clock import Clock
from mesoslite.master import MasterConfig
from mesoslite.master.main import MasterProcess
from mesoslite.resources import Resources

log = logging.getLogger("mesoslite.local")

#: Memory left to the machine itself, in MB (Mesos reserves 1 GB on an agent).
MEMORY_RESERVE_MB = 1024


def split_ports(index: int, count: int, first: int = 31000, last: int = 32000) -> str:
    """The ``index``-th of ``count`` equal slices of the port range, in Mesos syntax."""
    size = (last - first + 1) // count
    begin = first + index * size
    end = last if index == count - 1 else begin + size - 1
    return f"[{begin}-{end}]"


def default_agent_resources(count: int) -> str:
    """The machine's cpus and memory (less a reserve) divided among ``count`` agents."""
    cpus = (os.cpu_count() or 1) / count
    total_mb = psutil.virtual_memory().total // (1024 * 1024)
    mem = max(256, (total_mb - MEMORY_RESERVE_MB) // count)
    return f"cpus:{round(cpus, 3)};mem:{mem}"


class LocalCluster:
    """A master and ``agents`` agents (and optionally the framework) in this process.

    ``agent_resources`` is Mesos resource text for every agent, or a list
    with one entry per agent; without ``ports`` each agent gets its own
    slice of 31000-32000 (unless ``split_port_range`` is False: the text is
    used as given), and empty text means the machine's share.  Port 0
    (``http_port``, ``zmq_port``, ``agent_port_base``) binds an ephemeral
    port.  ``master_options``/``agent_options`` override
    :class:`~mesoslite.master.MasterConfig`/:class:`~mesoslite.agent.AgentConfig`
    fields; ``clock`` times both.  ``marathon_port`` (None: not started)
    starts the bundled framework there; ``dns_port`` (None: not started) starts
    ``mesoslite dns`` there (UDP and TCP) following the master, with its HTTP API on
    ``dns_http_port``.  An agent that does not register
    within ``registration_timeout`` seconds fails :meth:`start`.  Without a
    ``work_dir`` the cluster makes a temporary one at :meth:`start` and
    removes it at :meth:`stop`.  Agents register one after another, so
    ``agents[i]`` has the master's i-th agent id.
    """

    def __init__(
        self,
        agents: int = 2,
        *,
        ip: str = "127.0.0.1",
        http_port: int = 5050,
        zmq_port: int = 5055,
        work_dir: str | Path | None = "/tmp/mesoslite/local",
        agent_resources: str | list[str] = "",
        agent_port_base: int = 5051,
        master_options: dict[str, Any] | None = None,
        agent_options: dict[str, Any] | None = None,
        marathon_port: int | None = None,
        marathon_options: dict[str, Any] | None = None,
        dns_port: int | None = None,
        dns_http_port: int = 8123,
        clock: Clock | None = None,
        registration_timeout: float = 60.0,
        split_port_range: bool = True,
    ) -> None:
        """Describe the cluster (ValueError naming a bad argument); nothing starts yet."""
        if isinstance(agents, bool) or not isinstance(agents, int) or agents < 0:
            raise ValueError(f"agents: expected an integer >= 0, got {agents!r}")
        self._resources = _per_agent(agent_resources, agents)
        self._given_work_dir = Path(work_dir) if work_dir is not None else None
        #: Where the master, agents and framework keep their state (set by :meth:`start`
        #: when the cluster makes a temporary one).
        self.work_dir: Path | None = self._given_work_dir
        self._count = agents
        self._ip = ip
        self._http_port = http_port
        self._zmq_port = zmq_port
        self._agent_port_base = agent_port_base
        self._master_options = dict(master_options or {})
        self._agent_options = dict(agent_options or {})
        self._marathon_port = marathon_port
        self._marathon_options = dict(marathon_options or {})
        self._dns_ports = (dns_port, dns_http_port)
        self._clock = clock
        self._registration_timeout = registration_timeout
        self._split_ports = split_port_range
        self.master: MasterProcess | None = None
        self.agents: list[AgentProcess] = []
        #: The bundled Marathon-style framework (None: not started).
        self.marathon: Any = None
        #: The DNS server (None: not started).
        self.dns: Any = None
        #: Stops the bundled framework once the master ended it (see _watch_marathon).
        self._marathon_watch: asyncio.Task[None] | None = None
        self._next_agent = 0
        self._started = False

    # ------------------------------------------------------------ addresses

    @property
    def master_address(self) -> str:
        """``host:port`` of the master's ZMQ endpoint, as frameworks and agents take it."""
        if self.master is None or not self.master.zmq_port:
            raise RuntimeError("the cluster is not started")
        return f"{self._ip}:{self.master.zmq_port}"

    @property
    def http_url(self) -> str:
        """Base URL of the master's HTTP endpoints."""
        if self.master is None or not self.master.http_port:
            raise RuntimeError("the cluster is not started")
        return f"http://{self._ip}:{self.master.http_port}"

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> Self:
        """Start the master, the agents and the framework; return once every agent registered.

        Raises TimeoutError naming the agent that did not register in time
        (everything started is stopped first).
        """
        if self._started:
            raise RuntimeError("the cluster is already started")
        self._started = True
        if self._given_work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="mesoslite-cluster-"))
        work_dir = self._dir()
        work_dir.mkdir(parents=True, exist_ok=True)
        self.master = MasterProcess(MasterConfig(
            ip=self._ip, http_port=self._http_port, zmq_port=self._zmq_port,
            work_dir=str(work_dir / "master"), **self._master_options,
        ), clock=self._clock)
        try:
            await self.master.start()
            for text in self._resources:
                await self._registered(*await self._start_agent(text))
            if self._marathon_port is not None:
                await self._start_marathon(self._marathon_port)
            dns_port, dns_http_port = self._dns_ports
            if dns_port is not None:
                await self._start_dns(dns_port, dns_http_port)
        except BaseException:
            await self.stop()
            raise
        log.info("cluster up: master %s, %d agents", self.master_address, len(self.agents))
        return self

    async def add_agent(self, resources: str = "", **overrides: Any) -> AgentProcess:
        """Start one more agent (``overrides``: AgentConfig fields); return it once registered."""
        if self.master is None:
            raise RuntimeError("start the cluster before adding agents")
        agent, index = await self._start_agent(resources, overrides)
        await self._registered(agent, index)
        return agent

    async def _start_agent(self, resources: str,
                           overrides: dict[str, Any] | None = None) -> tuple[AgentProcess, int]:
        index = self._next_agent
        self._next_agent += 1
        base = self._agent_port_base
        fields: dict[str, Any] = {
            "master": self.master_address, "ip": self._ip,
            "http_port": 0 if base == 0 else base + index,
            "work_dir": str(self._dir() / f"agent-{index}"),
            "resources": self._resources_for(resources, index),
            **self._agent_options, **(overrides or {}),
        }
        agent = AgentProcess(AgentConfig(**fields), clock=self._clock)
        self.agents.append(agent)
        await agent.start()
        return agent, index

    async def _registered(self, agent: AgentProcess, index: int) -> None:
        try:
            await asyncio.wait_for(agent.registered.wait(), self._registration_timeout)
        except TimeoutError:
            raise TimeoutError(
                f"agent {index} did not register with {self.master_address} "
                f"within {self._registration_timeout} s"
            ) from None

    async def _start_marathon(self, port: int) -> None:
        from frameworks.marathon.config import MarathonConfig
        from frameworks.marathon.main import MarathonProcess

        self.marathon = MarathonProcess(MarathonConfig(
            master=self.master_address, http_address=self._ip, http_port=port,
            state_dir=str(self._dir() / "marathon"), reconciliation_initial_delay=1.0,
            **self._marathon_options))
        await self.marathon.start()
        self._marathon_watch = asyncio.get_running_loop().create_task(
            self._watch_marathon(self.marathon))

    async def _watch_marathon(self, marathon: Any) -> None:
        """When the master ends the bundled framework (another scheduler subscribed with its
        id, or it was torn down), stop it, as ``mesoslite marathon`` exits: its API must not
        serve state it no longer owns.  The master, agents and tasks keep running."""
        await marathon.deposed.wait()
        log.error("the bundled framework stopped: %s; restart mesoslite local to start it "
                  "again", marathon.deposed_reason)
        if self.marathon is marathon:
            self.marathon = None
            await marathon.stop()

    async def _start_dns(self, port: int, http_port: int) -> None:
        from mesoslite.dns.config import DnsConfig
        from mesoslite.dns.main import DnsProcess

        assert self.master is not None
        self.dns = DnsProcess(DnsConfig(master=f"{self._ip}:{self.master.http_port}",
                                        ip=self._ip, port=port, http_port=http_port,
                                        authorization=self._master_authorization()))
        await self.dns.start()

    def _master_authorization(self) -> str:
        """HTTP Basic for the master's API as its first principal, when it authenticates."""
        import base64

        from mesoslite.httpguard.policy import parse_credentials

        path = self._master_options.get("credentials")
        if not path or not self._master_options.get("authenticate_http_readonly"):
            return ""
        with open(path, encoding="utf-8") as f:
            principal, secret = next(iter(parse_credentials(f.read(), str(path)).items()))
        return "Basic " + base64.b64encode(f"{principal}:{secret}".encode()).decode("ascii")

    def _dir(self) -> Path:
        if self.work_dir is None:
            raise RuntimeError("the cluster is not started")
        return self.work_dir

    def _resources_for(self, text: str, index: int) -> str:
        """An agent's resources: ``text`` (or the machine's share), with its own port slice.

        The port range is split among the agents the cluster was built with; an
        agent added beyond them must name its own ``ports`` (ValueError otherwise),
        so that no two agents offer the same host port.
        """
        text = text or default_agent_resources(max(self._count, 1))
        if self._split_ports and "ports" not in Resources.parse(text).names():
            if index >= self._count:
                raise ValueError(
                    f"resources: agent {index} is beyond the {self._count} the port range "
                    f"was split for; give it its own ports (e.g. {text};ports:[33000-33099])")
            text = f"{text};ports:{split_ports(index, self._count)}"
        return text

    async def stop(self, kill_tasks: bool = True) -> None:
        """Stop the framework, the agents (killing their tasks unless ``kill_tasks=False``),
        then the master.  Safe to call twice."""
        if self.dns is not None:
            dns, self.dns = self.dns, None
            try:
                await dns.stop()
            except Exception:  # keep stopping the rest
                log.exception("the DNS server did not stop cleanly")
        if self._marathon_watch is not None and \
                self._marathon_watch is not asyncio.current_task():
            self._marathon_watch.cancel()
        if self.marathon is not None:
            marathon, self.marathon = self.marathon, None
            try:
                await marathon.stop()
            except Exception:  # keep stopping the rest
                log.exception("the framework did not stop cleanly")
        for agent in reversed(self.agents):
            try:
                await agent.stop(kill_tasks=kill_tasks)
            except Exception:  # keep stopping the others
                log.exception("agent %s did not stop cleanly", agent.agent_id)
        self.agents = []
        if self.master is not None:
            try:
                await self.master.stop()
            except Exception:
                log.exception("the master did not stop cleanly")
        if self._given_work_dir is None and self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None

    def describe(self) -> str:
        """A few lines saying where everything listens."""
        lines = [
            f"mesoslite local: master {self.http_url}  zmq tcp://{self.master_address}",
        ]
        for agent in self.agents:
            lines.append(
                f"  agent {agent.agent_id} http://{self._ip}:{agent.http_port}  "
                f"{agent.resources}"
            )
        if self.marathon is not None:
            lines.append(f"  marathon {self.marathon.url}  (REST API v2: /v2/apps, /v2/events)")
        if self.dns is not None:
            lines.append(f"  dns {self._ip}:{self.dns.port} (udp, tcp; domain "
                         f"{self.dns.config.domain})  http://{self._ip}:{self.dns.http_port}/v1")
        lines.append("Ctrl-C stops the cluster and every task it started.")
        return "\n".join(lines)


def _per_agent(resources: str | list[str], agents: int) -> list[str]:
    """One resource text per agent, each checked (ValueError naming the bad part)."""
    if isinstance(resources, str):
        texts = [resources] * agents
    else:
        texts = list(resources)
        if len(texts) != agents:
            raise ValueError(
                f"agent_resources: expected {agents} entries (one per agent), got {len(texts)}"
            )
    for text in texts:
        if text:
            Resources.parse(text)  # fail early, naming the bad part
    return texts


# ------------------------------------------------------------------ --secure


@dataclasses.dataclass(frozen=True)
class SecureSetup:
    """What ``mesoslite local --secure`` made in ``<work_dir>/secure`` and the options
    that turn it on: CURVE on the master's ZeroMQ port (master key pair, one key pair
    per client kind, their public keys in the authorised directory), framework and agent
    authentication with generated principals, and HTTP authentication."""

    directory: Path
    credentials: Path
    master_options: dict[str, Any]
    agent_options: dict[str, Any]
    marathon_options: dict[str, Any]

    def describe(self) -> str:
        """Where the secrets are, and how a client of the cluster uses them."""
        d = self.directory
        return "\n".join([
            (f"secure: credentials {self.credentials} (principals operator, marathon, agent, "
             f"client); ACLs {d / 'acls.json'}; CURVE keys in {d / 'keys'}"),
            (f"  frameworks: principal 'client' (secret in {d / 'client.secret'}), CURVE "
             f"{d / 'keys' / 'client.key_secret'} and master key {d / 'keys' / 'master.key'}"),
            f"  HTTP: MESOSLITE_PRINCIPAL=operator MESOSLITE_SECRET_FILE={d / 'operator.secret'}",
            (f"  examples/hello_framework.py: MESOSLITE_PRINCIPAL=client "
             f"MESOSLITE_SECRET_FILE={d / 'client.secret'} "
             f"MESOSLITE_CURVE_SECRET_FILE={d / 'keys' / 'client.key_secret'} "
             f"MESOSLITE_MASTER_PUBLIC_KEY_FILE={d / 'keys' / 'master.key'}"),
        ])


def _operator_only(objects: str) -> list[dict[str, Any]]:
    """One ACL rule: the principal ``operator`` may, on any object."""
    return [{"principals": {"values": ["operator"]}, objects: {"type": "ANY"}}]


#: The ACLs of ``local --secure`` (not permissive: what no rule allows is refused): the
#: frameworks ``marathon`` and ``client`` register in any role and run tasks as any user
#: (the agents' --switch_user confines them); only ``operator`` (ctl, the web UI, the DNS
#: server) sees the cluster, reads sandboxes and flags, tears down and sets weights.
SECURE_ACLS: dict[str, Any] = {
    "permissive": False,
    "register_frameworks": [{"principals": {"values": ["marathon", "client"]},
                             "roles": {"type": "ANY"}}],
    "run_tasks": [{"principals": {"values": ["marathon", "client"]}, "users": {"type": "ANY"}}],
    "teardown_frameworks": _operator_only("framework_principals"),
    "update_weights": _operator_only("roles"),
    "view_frameworks": _operator_only("users"),
    "view_tasks": _operator_only("users"),
    "view_executors": _operator_only("users"),
    "access_sandboxes": _operator_only("users"),
    "get_endpoints": _operator_only("paths"),
}


def _write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 (kept when it exists)."""
    if path.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


#: The principal ``mesoslite local``'s own agents authenticate as (without --secure).
LOCAL_AGENT_PRINCIPAL = "local-agent"


def agent_identity(work_dir: str | Path, master_options: dict[str, Any],
                   agent_options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Options so that only the cluster's own agents may register (``--authenticate_agents``).

    ``mesoslite local`` starts its agents itself, so requiring them to authenticate costs
    nothing and keeps a stranger on the machine from registering a fake agent: a
    credential made under umask 077 in ``<work_dir>/agent-auth`` (reused when it exists),
    given to the agents; the master's ``--credentials`` file there holds it, plus the
    principals of the user's ``--credentials`` (HTTP) when given.
    """
    from mesoslite.httpguard.policy import parse_credentials

    directory = Path(work_dir) / "agent-auth"
    old = os.umask(0o077)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        secret_file = directory / "agent.secret"
        _write_secret(secret_file, secrets_mod.token_urlsafe(24))
        secret = secret_file.read_text(encoding="utf-8").strip()
        principals = {LOCAL_AGENT_PRINCIPAL: secret}
        if master_options.get("credentials"):
            with open(master_options["credentials"], encoding="utf-8") as f:
                users = parse_credentials(f.read(), str(master_options["credentials"]))
            principals = {**users, **principals}
        credentials = directory / "credentials.json"
        text = json.dumps({"credentials": [{"principal": p, "secret": s}
                                           for p, s in principals.items()]})
        fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        credential = directory / "agent.credential"
        _write_secret(credential, json.dumps({"principal": LOCAL_AGENT_PRINCIPAL,
                                              "secret": secret}))
    finally:
        os.umask(old)
    return ({**master_options, "authenticate_agents": True, "credentials": str(credentials)},
            {**agent_options, "credential": str(credential)})


def secure_setup(work_dir: str | Path) -> SecureSetup:
    """Make (or reuse) credentials and CURVE keys in ``<work_dir>/secure``, under umask 077."""
    from mesoslite.transport import generate_keys

    directory = Path(work_dir) / "secure"
    keys, authorized = directory / "keys", directory / "keys" / "authorized"
    old = os.umask(0o077)
    try:
        authorized.mkdir(parents=True, exist_ok=True)
        secrets_by_principal: dict[str, str] = {}
        for principal in ("operator", "marathon", "agent", "client"):
            path = directory / f"{principal}.secret"
            _write_secret(path, secrets_mod.token_urlsafe(24))
            secrets_by_principal[principal] = path.read_text(encoding="utf-8").strip()
        credentials = directory / "credentials.json"
        _write_secret(credentials, json.dumps({"credentials": [
            {"principal": p, "secret": s} for p, s in secrets_by_principal.items()]}))
        acls = directory / "acls.json"
        _write_secret(acls, json.dumps(SECURE_ACLS, indent=1))
        agent_credential = directory / "agent.credential"
        _write_secret(agent_credential, json.dumps(
            {"principal": "agent", "secret": secrets_by_principal["agent"]}))
        for name in ("master", "agent", "marathon", "client"):
            if not (keys / f"{name}.key_secret").exists():
                public, _secret = generate_keys(keys, name)
                if name != "master":
                    shutil.copy(public, authorized / public.name)
    finally:
        os.umask(old)
    master_key = str(keys / "master.key")
    http = {"authenticate_http_readonly": True, "authenticate_http_readwrite": True,
            "credentials": str(credentials), "acls": str(acls)}
    return SecureSetup(
        directory=directory, credentials=credentials,
        master_options={**http, "authenticate_frameworks": True, "authenticate_agents": True,
                        "curve_secret_key": str(keys / "master.key_secret"),
                        "curve_authorized_dir": str(authorized)},
        agent_options={**http, "credential": str(agent_credential),
                       "curve_secret_file": str(keys / "agent.key_secret"),
                       "master_public_key_file": master_key},
        marathon_options={"mesos_authentication_principal": "marathon",
                          "mesos_authentication_secret_file": str(directory / "marathon.secret"),
                          "curve_secret_file": str(keys / "marathon.key_secret"),
                          "master_public_key_file": master_key,
                          "http_credentials": f"operator:{secrets_by_principal['operator']}"},
    )
