"""The ``mesoslite`` command: master, agent, local, marathon, ctl, dns, keygen.

Owns: argument parsing, logging setup, signal handling and the process
lifecycle of each role.  Flags are generated from the attrs config classes
(:class:`~mesoslite.master.MasterConfig`, :class:`~mesoslite.agent.AgentConfig`),
so every config field is a flag (``--work_dir`` and ``--work-dir`` both work)
and can also come from the environment as ``MESOSLITE_<FIELD>`` (for example
``MESOSLITE_WORK_DIR``).  A flag given on the command line wins over the
environment, which wins over the default.  A bad flag or value exits with
status 2 and one line naming the flag, the value and what was expected, read
from the :class:`~mesoslite.config_checks.ConfigError` the config raised.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from mesoslite import __version__
from mesoslite.config_checks import NO_VALUE, ConfigError, mask_secrets
from mesoslite.logs import FORMATS as LOG_FORMATS
from mesoslite.logs import configure as configure_logs
from mesoslite.logs import set_log_context

log = logging.getLogger("mesoslite.cli")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

#: Mesos-compatible extra spellings of some flags.
_ALIASES: dict[str, tuple[str, ...]] = {"http_port": ("--port",)}


class FlagError(ConfigError):
    """A command-line flag's value is invalid; ``flag`` names it (``--agents``).

    The :class:`~mesoslite.config_checks.ConfigError` the CLI raises: from
    :func:`build_config` for a config field's flag, or from a command for a
    flag of its own; with two arguments, the second is the whole explanation.
    """

    def __init__(self, flag: str, expected: str, value: Any = NO_VALUE, *,
                 detail: str = "") -> None:
        super().__init__(flag.removeprefix("--"), expected, value, detail=detail)


def _convert(text: str, tp: Any, field: str) -> Any:
    """The flag text of config field ``field`` as a value of type ``tp`` (ConfigError if not)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if text.strip().lower() in ("", "none", "null"):
            return None
        return _convert(text, inner[0], field)
    if tp is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(field, "true or false", text)
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            raise ConfigError(field, "an integer" if tp is int else "a number", text) from None
    if origin is dict:
        out: dict[str, Any] = {}
        value_type = args[1] if len(args) == 2 else str
        for item in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(field, "key=value[,key=value]", item)
            out[key.strip()] = _convert(value.strip(), value_type, field)
        return out
    if origin is tuple:
        return tuple(p.strip() for p in text.split(",") if p.strip())
    return text


def add_config_flags(parser: argparse.ArgumentParser, config_cls: type,
                     skip: Sequence[str] = ()) -> None:
    """Add one flag per field of an attrs config class."""
    group = parser.add_argument_group(f"{config_cls.__name__} flags")
    for field in attrs.fields(config_cls):
        if field.name.startswith("_") or field.name in skip:
            continue
        names = [f"--{field.name}"]
        if "_" in field.name:
            names.append(f"--{field.name.replace('_', '-')}")
        names.extend(_ALIASES.get(field.name, ()))
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        help_text = field.metadata.get("help", "")
        env = f"MESOSLITE_{field.name.upper()}"
        group.add_argument(
            *names,
            dest=field.name,
            default=None,
            metavar=field.name.upper(),
            help=f"{help_text} (default {default!r}; env {env})".strip(),
        )


def _given_values(config_cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The config fields given as flags, else in the environment, parsed (ConfigError if bad)."""
    hints = typing.get_type_hints(config_cls)
    values: dict[str, Any] = {}
    for field in attrs.fields(config_cls):
        if field.name.startswith("_"):
            continue
        raw = getattr(args, field.name, None)
        if raw is None:
            raw = os.environ.get(f"MESOSLITE_{field.name.upper()}")
        if raw is None:
            continue
        parse = field.metadata.get("parse")
        values[field.name] = parse(raw) if parse else _convert(raw, hints[field.name], field.name)
    return values


def build_config(config_cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """Build a config from parsed flags, then the environment, then defaults.

    A bad value raises :class:`FlagError` naming the flag, the value and what was expected.
    """
    try:
        return config_cls(**{**_given_values(config_cls, args), **overrides})
    except ConfigError as exc:
        raise FlagError(exc.flag, exc.expected, exc.value, detail=exc.detail) from None


class _LineFormatter(logging.Formatter):
    """``logging.Formatter`` whose date text is computed once per second, not per line."""

    _second = -1
    _text = ""

    def formatTime(self, record: logging.LogRecord,  # noqa: N802 - logging.Formatter's name
                   datefmt: str | None = None) -> str:
        """The default ``YYYY-mm-dd HH:MM:SS,mmm`` (``datefmt`` is not supported)."""
        second = int(record.created)
        if second != self._second:
            self._text = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return (self.default_msec_format or "%s,%03d") % (self._text, record.msecs)


def setup_logging(level: str, fmt: str = "text", process: str = "mesoslite") -> None:
    """Log to stderr, one line per event, with the component name (or JSON: ``fmt``).

    The records carry only what the format prints: no caller lookup, thread
    or process names (the logging HOWTO's optimisations), and the date text
    is reused within a second; a busy master logs several lines per task.
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # no stack walk per record (see the logging HOWTO)
    configure_logs(level, fmt, process,
                   _LineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))


async def _serve_until_signalled(
    start: Callable[[], typing.Awaitable[None]],
    stop: Callable[[], typing.Awaitable[None]],
    finished: asyncio.Event | None = None,
) -> None:
    """Run ``start``, wait for SIGINT/SIGTERM (or ``finished``), then ``stop``."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    relay: asyncio.Task[None] | None = None
    try:
        await start()
        if finished is not None:
            async def _relay() -> None:
                await finished.wait()
                stopping.set()
            relay = asyncio.create_task(_relay())
        await stopping.wait()
    finally:
        if relay is not None:
            relay.cancel()
        log.info("shutting down")
        await stop()


# ------------------------------------------------------------------ master


#: Exit status of a master that lost leadership (a supervisor restarts it as a candidate).
EXIT_DEPOSED = 3


def _cmd_master(args: argparse.Namespace) -> int:
    from mesoslite.coordination import CoordinationError
    from mesoslite.master import MasterConfig
    from mesoslite.master.main import MasterProcess

    config = build_config(MasterConfig, args)
    master = MasterProcess(config)  # a ConfigError is reported by main() naming its flag

    async def start() -> None:
        await master.start()
        zk = master.leadership.zk_url  # str() masks the password
        mode = f"contending at {zk}" if zk is not None else "standalone, leading"
        print(f"mesoslite master: http://{config.ip}:{master.http_port}  "
              f"zmq {master.zmq_endpoint}  ({mode})", flush=True)

    try:
        asyncio.run(_serve_until_signalled(start, master.stop, master.deposed))
    except CoordinationError as exc:
        log.error("mesoslite master: cannot take part in the election: %s", exc)
        return 1
    if master.deposed.is_set():
        log.error("mesoslite master: no longer the leading master (%s); exiting with status %d "
                  "so that a supervisor restarts it as a new candidate",
                  master.leadership.deposed_reason, EXIT_DEPOSED)
        return EXIT_DEPOSED
    return 0


# ------------------------------------------------------------------- agent


def _cmd_agent(args: argparse.Namespace) -> int:
    from mesoslite.agent import AgentConfig
    from mesoslite.agent.main import AgentProcess

    config = build_config(AgentConfig, args)
    agent = AgentProcess(config)
    set_log_context(agent_id=lambda: agent.agent_id)

    async def start() -> None:
        await agent.start()
        print(f"mesoslite agent: http://{config.ip}:{agent.http_port}  "
              f"master {mask_secrets(config.master)}", flush=True)

    asyncio.run(_serve_until_signalled(start, lambda: agent.stop(kill_tasks=True),
                                       agent.stopped))
    return 0


# ------------------------------------------------------------------- local


def _local_auth(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(master and agent options, framework options) for ``mesoslite local --credentials``."""
    if not path:
        return {}, {}
    from mesoslite.httpguard.policy import CredentialsError, parse_credentials

    try:
        with open(path, encoding="utf-8") as f:
            credentials = parse_credentials(f.read(), f"--credentials {path}")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlagError("--credentials", f"cannot read {path} ({exc})") from None
    except CredentialsError as exc:
        raise FlagError("--credentials", str(exc)) from None
    if any("," in secret for secret in credentials.values()):
        raise FlagError("--credentials", "a secret with ',' cannot be given to the framework's "
                                         "--http_credentials")
    auth = {"authenticate_http_readonly": True, "authenticate_http_readwrite": True,
            "credentials": path}
    users = ",".join(f"{principal}:{secret}" for principal, secret in credentials.items())
    return auth, {"http_credentials": users}


def _cmd_local(args: argparse.Namespace) -> int:
    from mesoslite.local import LocalCluster

    if args.agents < 1:
        raise FlagError("--agents", f"expected at least 1 agent, got {args.agents}")
    auth, marathon_options = _local_auth(args.credentials)
    agent_options, secure = dict(auth), None
    if args.secure:
        from mesoslite.local import secure_setup

        if args.credentials:
            raise FlagError("--secure", "makes its own credentials; drop --credentials")
        secure = secure_setup(args.work_dir)
        auth, agent_options = secure.master_options, dict(secure.agent_options)
        marathon_options = secure.marathon_options
    else:  # only the cluster's own agents may register (they authenticate; costs nothing)
        from mesoslite.local import agent_identity

        auth, agent_options = agent_identity(args.work_dir, auth, agent_options)
    if args.acls:  # the master and every agent enforce the same ACLs
        auth = {**auth, "acls": args.acls}
        agent_options["acls"] = args.acls
    if args.secret_store_dir:
        agent_options["secret_store_dir"] = os.path.abspath(args.secret_store_dir)
    cluster = LocalCluster(
        master_options=auth, agent_options=agent_options, marathon_options=marathon_options,
        agents=args.agents,
        ip=args.ip,
        http_port=args.port,
        zmq_port=args.zmq_port,
        work_dir=args.work_dir,
        agent_resources=args.agent_resources,
        agent_port_base=args.agent_port_base,
        marathon_port=None if args.no_marathon else args.marathon_port,
        dns_port=None if args.no_dns else args.dns_port,
        dns_http_port=args.dns_http_port,
    )

    async def start() -> None:
        await cluster.start()
        print(cluster.describe(), flush=True)
        if secure is not None:
            print(secure.describe(), flush=True)

    asyncio.run(_serve_until_signalled(start, cluster.stop))
    return 0


# ---------------------------------------------------------------- marathon


def _cmd_marathon(args: argparse.Namespace) -> int:
    from frameworks.marathon.config import MarathonConfig
    from frameworks.marathon.main import MarathonProcess
    from mesoslite.coordination import CoordinationError

    config = build_config(MarathonConfig, args)
    process = MarathonProcess(config)
    set_log_context(framework_id=lambda: process.service.framework_id
                    if process.service is not None else None)

    async def start() -> None:
        await process.start()
        mode = (f"contending at {mask_secrets(config.zk)}" if config.zk
                else f"state in {config.state_dir}")
        print(f"mesoslite marathon: {process.url}  master {mask_secrets(config.master)}  "
              f"({mode})", flush=True)

    try:
        asyncio.run(_serve_until_signalled(start, process.stop, process.deposed))
    except CoordinationError as exc:
        log.error("mesoslite marathon: cannot take part in the election: %s", exc)
        return 1
    if process.deposed.is_set():
        log.error("mesoslite marathon: no longer the leader (%s); exiting with status %d",
                  process.deposed_reason, EXIT_DEPOSED)
        return EXIT_DEPOSED
    return 0


# ---------------------------------------------------------------------- lb


def _cmd_lb(args: argparse.Namespace) -> int:
    from mesoslite.lb.balancer import Balancer
    from mesoslite.lb.config import LbConfig
    from mesoslite.lb.http import start_api

    config = build_config(LbConfig, args)
    balancer = Balancer(config)

    async def start() -> None:
        await balancer.start()
        _server, port = start_api(balancer, config.bind_address, config.api_port)
        print(f"mesoslite lb: api http://{config.bind_address}:{port}  following "
              f"{config.marathon} (group {config.group})  haproxy {balancer.haproxy.config}",
              flush=True)

    asyncio.run(_serve_until_signalled(start, balancer.stop))
    return 0


# --------------------------------------------------------------------- dns


def _cmd_dns(args: argparse.Namespace) -> int:
    from mesoslite.dns.main import DnsProcess, config_from_args

    config = config_from_args(args)
    process = DnsProcess(config)

    async def start() -> None:
        await process.start()
        print(f"mesoslite dns: {config.domain} on {config.ip}:{process.port} (udp, tcp)  "
              f"http://{config.ip}:{process.http_port}  master {config.master}", flush=True)

    asyncio.run(_serve_until_signalled(start, process.stop))
    return 0


# ------------------------------------------------------------------ keygen


def _cmd_keygen(args: argparse.Namespace) -> int:
    from mesoslite.transport import generate_keys

    old = os.umask(0o077)  # the secret file is never readable by others, even briefly
    try:
        public, secret = generate_keys(args.dir_pos or args.dir, args.name_pos or args.name)
    finally:
        os.umask(old)
    print(f"public key: {public}\nsecret key: {secret} (mode 0600; never share it)")
    return 0


# -------------------------------------------------------------------- main


def _add_local_parser(sub: Any) -> None:
    """``mesoslite local`` and its flags."""
    p = sub.add_parser("local", help="run a master and agents in one process (no ZooKeeper)")
    env = os.environ.get
    p.add_argument("--agents", type=int, default=int(env("MESOSLITE_AGENTS", "2")),
                   help="number of agents (default 2; env MESOSLITE_AGENTS)")
    p.add_argument("--ip", default=env("MESOSLITE_IP", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(env("MESOSLITE_PORT", "5050")),
                   help="master HTTP port (default 5050)")
    p.add_argument("--zmq_port", "--zmq-port", type=int,
                   default=int(env("MESOSLITE_ZMQ_PORT", "5055")),
                   help="master ZMQ port (default 5055)")
    p.add_argument("--agent_port_base", "--agent-port-base", type=int,
                   default=int(env("MESOSLITE_AGENT_PORT_BASE", "5051")),
                   help="HTTP port of the first agent; the others follow (default 5051)")
    p.add_argument("--work_dir", "--work-dir",
                   default=env("MESOSLITE_WORK_DIR", "/tmp/mesoslite/local"),
                   help="where the master and agents keep state and sandboxes")
    p.add_argument("--agent_resources", "--agent-resources",
                   default=env("MESOSLITE_AGENT_RESOURCES", ""),
                   help="resources of each agent in Mesos syntax (default: detected, "
                        "cpus and mem divided among the agents)")
    p.add_argument("--marathon_port", "--marathon-port", type=int,
                   default=int(env("MESOSLITE_MARATHON_PORT", "8080")),
                   help="REST API port of the bundled Marathon-style framework (default 8080)")
    p.add_argument("--no_marathon", "--no-marathon", action="store_true",
                   help="do not start the Marathon-style framework")
    p.add_argument("--credentials", default=env("MESOSLITE_CREDENTIALS", ""),
                   help="Mesos credentials JSON file: every HTTP API (master, agents, "
                        "framework) then requires HTTP Basic with one of its principals "
                        "(env MESOSLITE_CREDENTIALS)")
    p.add_argument("--acls", default=env("MESOSLITE_ACLS", ""),
                   help="Mesos ACLs (JSON, a file name or a file:// URL) for the master and "
                        "every agent: register_frameworks, run_tasks, teardown_frameworks, "
                        "view_*, access_sandboxes, update_weights, get_endpoints (env "
                        "MESOSLITE_ACLS; see docs/acls.example.json)")
    p.add_argument("--secure", action="store_true",
                   default=env("MESOSLITE_SECURE", "") in ("1", "true"),
                   help="turn on CURVE on the master's ZeroMQ port, framework and agent "
                        "authentication and HTTP authentication, with credentials and keys "
                        "made (or reused) in WORK_DIR/secure under umask 077 "
                        "(env MESOSLITE_SECURE)")
    p.add_argument("--dns_port", "--dns-port", type=int,
                   default=int(env("MESOSLITE_DNS_PORT", "8053")),
                   help="port of the DNS server for the cluster's tasks, UDP and TCP "
                        "(default 8053; `mesoslite dns`)")
    p.add_argument("--dns_http_port", "--dns-http-port", type=int,
                   default=int(env("MESOSLITE_DNS_HTTP_PORT", "8123")),
                   help="port of the DNS server's HTTP API /v1/... (default 8123)")
    p.add_argument("--no_dns", "--no-dns", action="store_true",
                   help="do not start the DNS server")
    p.add_argument("--secret_store_dir", "--secret-store-dir",
                   default=env("MESOSLITE_SECRET_STORE_DIR", ""),
                   help="the agents' secret store: one 0600 file per secret reference, read "
                        "into tasks' secret env variables (env MESOSLITE_SECRET_STORE_DIR)")
    p.set_defaults(func=_cmd_local)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and docs)."""
    from mesoslite.agent import AgentConfig
    from mesoslite.ctl.main import add_ctl_parser
    from mesoslite.master import MasterConfig

    parser = argparse.ArgumentParser(
        prog="mesoslite", description="A two-level resource-offer cluster scheduler."
    )
    parser.add_argument("--version", action="version", version=f"mesoslite {__version__}")
    parser.add_argument("--log_format", "--log-format", choices=LOG_FORMATS,
                        default=os.environ.get("MESOSLITE_LOG_FORMAT", "text"),
                        help="text lines, or json: one object per line with time, level, "
                             "process and the ids known (env MESOSLITE_LOG_FORMAT)")
    parser.add_argument("--log_level", "--log-level",
                        default=os.environ.get("MESOSLITE_LOG_LEVEL", "INFO"),
                        help="DEBUG, INFO, WARNING or ERROR (env MESOSLITE_LOG_LEVEL)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("master", help="run a master")
    add_config_flags(p, MasterConfig)
    p.set_defaults(func=_cmd_master)

    p = sub.add_parser("agent", help="run an agent")
    add_config_flags(p, AgentConfig)
    p.set_defaults(func=_cmd_agent)

    _add_local_parser(sub)

    from frameworks.marathon.config import MarathonConfig

    p = sub.add_parser("marathon", help="run the Marathon-style framework (REST API v2)")
    add_config_flags(p, MarathonConfig)
    p.set_defaults(func=_cmd_marathon)

    from mesoslite.lb.config import LbConfig

    p = sub.add_parser("lb", help="run the HAProxy load balancer following the framework")
    add_config_flags(p, LbConfig)
    p.set_defaults(func=_cmd_lb)

    add_ctl_parser(sub)

    from mesoslite.dns.main import add_flags as add_dns_flags

    p = sub.add_parser("dns", help="run the DNS server for the cluster's tasks (Mesos-DNS names)")
    add_dns_flags(p)
    p.set_defaults(func=_cmd_dns)

    p = sub.add_parser("keygen", help="make a CURVE key pair for encrypted, authenticated links")
    p.add_argument("dir_pos", nargs="?", metavar="DIR", default="",
                   help="directory to write the key files into (or --dir)")
    p.add_argument("name_pos", nargs="?", metavar="NAME", default="",
                   help="base name of the key files (or --name): NAME.key is the public "
                        "key, NAME.key_secret the secret one")
    p.add_argument("--dir", default=".", help="directory to write the key files into")
    p.add_argument("--name", default="mesoslite", help="base name of the key files")
    p.set_defaults(func=_cmd_keygen)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mesoslite`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format, args.command)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:  # a bad flag (FlagError) or config value: one line naming it
        parser.exit(2, f"mesoslite {args.command}: error: {exc.flag}: {exc.problem}\n")
    except OSError as exc:  # e.g. a port already in use: one clear line, no traceback
        log.error("mesoslite %s: %s", args.command, exc.strerror or exc)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
