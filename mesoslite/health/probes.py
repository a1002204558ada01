"""Health-check probes and the loop that runs them beside a task (asyncio I/O).

Owns: the three probes of a Mesos :class:`~mesoslite.protocol.HealthCheck`,
each bounded by ``timeout_seconds`` and answering a :class:`ProbeResult`:

- :func:`command_probe`: ``/bin/sh -c value`` (or the argv form) with the
  task's environment (plus the check command's own), in the task's sandbox,
  in its own session (:func:`mesoslite.proc.run_captured`); passes on exit 0;
  at the timeout, and whenever the probe is abandoned, its whole process
  group is SIGKILLed;
- :func:`http_probe`: ``GET scheme://host:port/path`` (HTTPS without
  certificate checks, as Mesos and Marathon do); passes on 200-399;
- :func:`tcp_probe`: passes when a connection opens.

and :class:`HealthChecker`, which runs probes on the event loop as the pure
:class:`~mesoslite.health.schedule.HealthCheckState` schedules them and calls
``on_status(healthy, message)`` on each health transition and
``on_kill(message)`` once, when the task should be killed.  It knows nothing
of executors, so the command executor and the agent's Docker task runner can
both use it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping

import attrs

from mesoslite.clock import SYSTEM_CLOCK, Clock
from mesoslite.health.schedule import HealthCheckState, HealthVerdict
from mesoslite.proc import (
    CommandError,
    Credentials,
    command_argv,
    describe_wait_status,
    run_captured,
)
from mesoslite.protocol import CommandInfo, HealthCheck

log = logging.getLogger("mesoslite.health")

#: The host probes connect to: the task shares the host's network.
DEFAULT_HOST = "127.0.0.1"
#: How much of a command probe's output is kept for the message.
OUTPUT_TAIL = 200
#: The longest HTTP status line read (a server sending more fails the probe).
_STATUS_LINE_LIMIT = 8192


@attrs.frozen
class ProbeResult:
    """The outcome of one probe: passed or not, and a message saying why."""

    ok: bool
    message: str


#: A probe: run once, answer within its own timeout.
Probe = Callable[[], Awaitable[ProbeResult]]
#: ``on_status(healthy, message)``.
StatusCallback = Callable[[bool, str], None]
#: ``on_kill(message)``.
KillCallback = Callable[[str], None]


# ------------------------------------------------------------------- probes


def _describe_output(tail: bytes) -> str:
    text = " ".join(tail.decode("utf-8", "replace").split())
    return f": {text[-OUTPUT_TAIL:]}" if text else ""


async def command_probe(command: CommandInfo, env: Mapping[str, str], cwd: str,
                        timeout: float, credentials: Credentials | None = None) -> ProbeResult:
    """Run ``command`` in ``cwd`` with ``env`` (plus its own environment), as the task's
    user when ``credentials`` are given; pass on exit 0."""
    try:
        argv, executable = command_argv(command)
    except CommandError as exc:
        return ProbeResult(False, f"Health check command is invalid: {exc}")
    try:
        outcome = await run_captured(argv, executable=executable, cwd=cwd or None,
                                     env={**env, **command.environment}, timeout=timeout,
                                     keep=OUTPUT_TAIL * 4, credentials=credentials)
    except OSError as exc:
        return ProbeResult(False, f"Failed to run the health check command: {exc}")
    if outcome.status is None:
        return ProbeResult(False, f"Health check command timed out after {timeout:g}s")
    if outcome.status == 0:
        return ProbeResult(True, "health check command passed")
    return ProbeResult(False, f"Health check command {describe_wait_status(outcome.status)}"
                              f"{_describe_output(outcome.output)}")


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def http_probe(port: int, path: str = "/", scheme: str = "http", *, timeout: float,
                     host: str = DEFAULT_HOST) -> ProbeResult:
    """``GET scheme://host:port/path``; pass on a status in 200-399 within ``timeout``."""
    url = f"{scheme}://{host}:{port}{path}"
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=_insecure_context() if scheme == "https" else None,
                limit=_STATUS_LINE_LIMIT,
            )
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"User-Agent: mesoslite-health-check\r\nAccept: */*\r\n"
                f"Connection: close\r\n\r\n".encode("ascii")
            )
            await writer.drain()
            line = await reader.readline()
    except TimeoutError:
        return ProbeResult(False, f"HTTP GET {url} timed out after {timeout:g}s")
    except (OSError, ValueError, asyncio.LimitOverrunError) as exc:
        return ProbeResult(False, f"HTTP GET {url} failed: {str(exc) or type(exc).__name__}")
    finally:
        if writer is not None:
            writer.close()
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        shown = line[:80].decode("latin-1").strip() or "nothing"
        return ProbeResult(False, f"HTTP GET {url}: not an HTTP response (got {shown!r})")
    code = int(parts[1])
    if 200 <= code < 400:
        return ProbeResult(True, f"HTTP GET {url} returned {code}")
    return ProbeResult(False, f"HTTP GET {url} returned {code}, expected 200-399")


async def tcp_probe(port: int, *, timeout: float, host: str = DEFAULT_HOST) -> ProbeResult:
    """Pass when a TCP connection to ``host:port`` opens within ``timeout``."""
    target = f"{host}:{port}"
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return ProbeResult(False, f"TCP connection to {target} timed out after {timeout:g}s")
    except OSError as exc:
        return ProbeResult(False, f"TCP connection to {target} failed: {exc}")
    writer.close()
    return ProbeResult(True, f"TCP connection to {target} opened")


def make_probe(check: HealthCheck, env: Mapping[str, str], cwd: str,
               host: str = DEFAULT_HOST, credentials: Credentials | None = None) -> Probe:
    """The probe ``check`` describes (``check`` must be valid: see ``validate_health_check``)."""
    timeout = check.timeout_seconds
    if check.type == "COMMAND" and check.command is not None:
        command = check.command
        return lambda: command_probe(command, env, cwd, timeout, credentials)
    if check.type == "HTTP" and check.http is not None:
        http = check.http
        return lambda: http_probe(http.port, http.path, http.scheme, timeout=timeout, host=host)
    if check.type == "TCP" and check.tcp is not None:
        port = check.tcp.port
        return lambda: tcp_probe(port, timeout=timeout, host=host)
    raise ValueError(f"health_check.type: cannot probe a {check.type!r} check without "
                     f"its {check.type.lower()} member")


# ------------------------------------------------------------------- driver


class HealthChecker:
    """Runs one task's health checks on the event loop and reports transitions.

    ``on_status(healthy, message)`` is called on each health transition and
    ``on_kill(message)`` once, after ``consecutive_failures`` counted
    failures; then the checker stops by itself.  ``probe`` replaces the probe
    ``check`` describes (tests); ``host`` is where HTTP and TCP probes connect.
    """

    def __init__(
        self,
        check: HealthCheck,
        *,
        env: Mapping[str, str],
        cwd: str,
        on_status: StatusCallback,
        on_kill: KillCallback,
        clock: Clock = SYSTEM_CLOCK,
        host: str = DEFAULT_HOST,
        name: str = "",
        probe: Probe | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        """Nothing runs until :meth:`start`; ValueError if ``check`` is invalid."""
        self.name = name
        self.state = HealthCheckState(check, clock)
        self._clock = clock
        self._probe = probe or make_probe(check, dict(env), cwd, host, credentials)
        self._on_status = on_status
        self._on_kill = on_kill
        self._job: asyncio.Task[None] | None = None
        self.last_result: ProbeResult | None = None
        self.probes_run = 0

    @property
    def running(self) -> bool:
        """True while the checker is started and not stopped."""
        return self._job is not None and not self._job.done()

    def start(self) -> None:
        """Start on the running loop; the first probe comes ``delay_seconds`` from creation."""
        if self._job is None:
            self._job = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        """Stop probing (a probe in flight is abandoned; its processes are killed)."""
        self.state.stop()
        if self._job is not None and not self._job.done():
            self._job.cancel()

    async def wait(self) -> None:
        """Wait until the checker has ended (stopped, or done after its kill verdict)."""
        if self._job is not None:
            await asyncio.gather(self._job, return_exceptions=True)

    async def _run(self) -> None:
        try:
            while True:
                wait = self.state.seconds_until_probe()
                if wait is None:
                    return
                if wait > 0:
                    await asyncio.sleep(wait)
                try:
                    result = await self._probe()
                except Exception as exc:  # a probe must never end the checker
                    log.exception("Health check %s: probe raised", self.name)
                    result = ProbeResult(False, f"health check probe raised {exc!r}")
                self.probes_run += 1
                self.last_result = result
                if self._digest(self.state.record(result.ok, result.message)):
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Health checker %s stopped by an error", self.name)

    def _digest(self, verdict: HealthVerdict) -> bool:
        """Report the verdict; True when the checker is done (kill requested)."""
        if not verdict.counted:
            log.info("Health check %s: %s", self.name, verdict.message)
        elif verdict.healthy is not None:
            log.info("Health check %s: %s now (%s)", self.name,
                     "healthy" if verdict.healthy else "unhealthy", verdict.message)
        if verdict.healthy is not None:
            self._call(self._on_status, verdict.healthy, verdict.message)
        if verdict.kill:
            failures = self.state.consecutive_failures
            message = (f"health check failed {failures} consecutive "
                       f"time{'s' if failures != 1 else ''}: {verdict.message}")
            log.warning("Health check %s: killing the task (%s)", self.name, message)
            self._call(self._on_kill, message)
            return True
        return False

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("Health checker %s: callback %r raised", self.name, callback)
