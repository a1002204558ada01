"""The agent's link to the leading master: connection, registration and liveness.

Owns: the ``DealerClient`` to the master, (re-)registration with randomised
capped backoff (delay uniform in ``[0, factor·2^n]``, capped at
``registration_backoff_max``), the ``registered`` event, the watchdog
that re-registers when no ``Ping`` arrived for ``ping_interval ×
ping_timeout_factor``, and following the leader of a ``zk://`` master
through a coordination detector (move the socket, re-register at once).
What to register with and what to do once registered is the agent's
business (the callables given to it); the socket itself is built by the
composition root (:mod:`mesoslite.agent.main`) and attached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable
from typing import Any

import attrs

from mesoslite.agent.config import AgentConfig
from mesoslite.clock import Clock
from mesoslite.config_checks import mask_secrets
from mesoslite.coordination import CoordinationError, create_detector
from mesoslite.protocol import (
    AuthenticationCompleted,
    AuthenticationFailed,
    AuthenticationStep,
    ClientAuthn,
    Credential,
    RegisterAgent,
    ReregisterAgent,
    parse_credential,
)
from mesoslite.transport import DealerClient, tcp_endpoint

log = logging.getLogger("mesoslite.agent")


def master_endpoint(address: str) -> str | None:
    """The ZMQ endpoint for ``host:port`` / ``tcp://``; None for ``zk://`` (a detector's job)."""
    if address.startswith("zk://"):
        return None
    return tcp_endpoint(address)


def read_credential(path: str) -> Credential:
    """Mesos's agent ``--credential FILE``; ValueError naming the flag and the problem."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--credential {path}: cannot read it ({exc})") from None
    return parse_credential(text, f"--credential {path}")


#: Seconds an authentication exchange may take before a retry starts a new one.
AUTHENTICATION_TIMEOUT = 5.0


class MasterLink:
    """Connection to the master plus the registration and ping-liveness loops."""

    def __init__(
        self,
        config: AgentConfig,
        clock: Clock,
        registration_message: Callable[[], Any],
        *,
        on_unregistered: Callable[[], None] | None = None,
    ) -> None:
        """Nothing is connected until a client is attached and :meth:`connect` runs;
        ``on_unregistered`` is called whenever the link stops being registered."""
        self._config = config
        self._clock = clock
        self._registration_message = registration_message
        self._on_unregistered = on_unregistered
        self._client: DealerClient | None = None
        self._client_started = False
        self.registered = asyncio.Event()
        self.ping_interval = 15.0
        self._last_ping = 0.0
        self._running = False
        self._jobs: set[asyncio.Task[Any]] = set()
        self._register_job: asyncio.Task[Any] | None = None
        self.registration_attempts = 0
        self.reregistrations = 0
        self.leader_changes = 0
        self._detector: Any = None
        self._detector_retry = 1.0
        #: True when the leader comes from a ZooKeeper detector (a zk:// master).
        self.follows_detector = False
        #: This agent's secret identity token (sent with every (re-)registration).
        self.agent_token = ""
        #: ``--credential``: authenticate this principal before registering (None: don't).
        self.credential: Credential | None = None
        self._authn: ClientAuthn | None = None
        self._authn_started = 0.0
        self._authn_on = b""
        self._authenticated_on = b""
        self.authentication_failures = 0

    def attach(self, client: DealerClient) -> None:
        """Use ``client`` (not connected yet) to talk to the master."""
        self._client = client

    def connect(self, endpoint: str) -> None:
        """Connect (or move) to ``endpoint``."""
        if self._client is None:
            raise RuntimeError("master link: attach a client before connecting")
        self._client.connect(endpoint)
        if not self._client_started:
            self._client_started = True
            self._client.start()

    def _unregister(self) -> None:
        self.registered.clear()
        if self._on_unregistered is not None:
            self._on_unregistered()

    @property
    def endpoint(self) -> str | None:
        """The master endpoint the socket is connected to (None before the first leader)."""
        return self._client.endpoint if self._client is not None else None

    def start(self, follow: str | None = None) -> None:
        """Start registering and watching pings; with ``follow`` (a ``zk://`` URL) the
        leader's endpoint comes from a detector and registration starts once one is known."""
        self._running = True
        self.follows_detector = follow is not None
        self._last_ping = self._clock.monotonic()
        if follow is None:
            self.begin_registration("starting")
        else:
            self._spawn(self._follow_leader(follow))
        self._spawn(self._ping_watchdog())

    def move_to(self, endpoint: str, why: str) -> None:
        """Connect to ``endpoint`` (if not there already) and re-register from attempt 0."""
        endpoint = tcp_endpoint(endpoint)
        if endpoint != self.endpoint:
            self.connect(endpoint)
        if not self._running:
            return
        self._unregister()
        if self._register_job is not None:
            self._register_job.cancel()
        log.info("Agent (re-)registering with %s: %s", endpoint, why)
        self._register_job = self._spawn(self._registration_loop())

    async def _follow_leader(self, url: str) -> None:
        """Follow the leader of ``url``: on every endpoint change move there and re-register."""
        while self._running and self._detector is None:
            detector = create_detector(url)
            try:
                await detector.start()
            except CoordinationError as exc:
                log.warning("Cannot follow the master through %s yet (%s); retrying in %.0fs",
                            mask_secrets(url), exc, self._detector_retry)
                with contextlib.suppress(Exception):
                    await detector.stop()
                await asyncio.sleep(self._detector_retry)
                continue
            self._detector = detector
        leader = self._detector.current() if self._detector is not None else None
        while self._running and self._detector is not None:
            endpoint = leader.zmq_endpoint if leader is not None else ""
            if not endpoint:
                log.warning("No leading master known (%s); waiting for one",
                            mask_secrets(url))
            elif tcp_endpoint(endpoint) != self.endpoint:
                self.leader_changes += 1
                self.move_to(endpoint, f"leading master is {leader.id if leader else '?'}")
            try:
                leader = await self._detector.wait_for_change(leader)
            except CoordinationError as exc:
                log.warning("Leader detection through %s failed (%s); retrying",
                            mask_secrets(url), exc)
                await asyncio.sleep(self._detector_retry)
                leader = self._detector.current() if self._detector is not None else None

    def send(self, msg: Any) -> None:
        """Send to the master (dropped once closed)."""
        if self._client is not None:
            self._client.send(msg)

    def note_ping(self) -> None:
        """A Ping arrived: the master is alive."""
        self._last_ping = self._clock.monotonic()

    def registered_with(self, ping_interval: float) -> bool:
        """Record a (re-)registration; False when it was already registered."""
        if ping_interval > 0:
            self.ping_interval = ping_interval
        self._last_ping = self._clock.monotonic()
        already = self.registered.is_set()
        self.registered.set()
        return not already

    def begin_registration(self, why: str) -> None:
        """Start (re-)registering unless that is already going on."""
        if not self._running:
            return
        self._unregister()
        if self._register_job is None or self._register_job.done():
            log.info("Agent (re-)registering: %s", why)
            self._register_job = self._spawn(self._registration_loop())

    def stop_registering(self) -> None:
        """Stop the loops (the socket stays open until :meth:`close`)."""
        self._running = False
        for job in list(self._jobs):
            job.cancel()

    async def close(self) -> None:
        """Give ZeroMQ a moment to flush the last messages, then close (and stop the detector)."""
        self.stop_registering()
        self._unregister()
        if self._detector is not None:
            detector, self._detector = self._detector, None
            with contextlib.suppress(Exception):
                await detector.stop()
        if self._client is not None:
            await asyncio.sleep(0.05)
            self._client.close()
            self._client = None

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        job = asyncio.get_running_loop().create_task(coro)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return job

    def backoff_bound(self, attempt: int) -> float:
        """Upper bound of the random delay before registration attempt ``attempt`` + 1."""
        factor = self._config.registration_backoff_factor
        return min(factor * (2**attempt), self._config.registration_backoff_max)

    def _registration(self) -> Any:
        msg = self._registration_message()
        if self.agent_token and isinstance(msg, (RegisterAgent, ReregisterAgent)):
            msg = attrs.evolve(msg, agent_token=self.agent_token)
        return msg

    def _register_or_authenticate(self) -> None:
        client = self._client
        if self.credential is not None and client is not None \
                and self._authenticated_on != client.identity:
            # A retry does not cut an exchange in progress short (unless it is stale).
            now = self._clock.monotonic()
            if self._authn is None or self._authn_on != client.identity \
                    or now - self._authn_started > AUTHENTICATION_TIMEOUT:
                self._authn = ClientAuthn(self.credential, "agent", os.urandom(32))
                self._authn_started = now
                self._authn_on = client.identity
                self.send(self._authn.start())
            return
        self.send(self._registration())

    def on_authentication_step(self, msg: AuthenticationStep) -> None:
        """The master's challenge: answer it."""
        if self._authn is not None:
            self.send(self._authn.on_step(msg))

    def on_authentication_completed(self, msg: AuthenticationCompleted) -> None:
        """Authenticated (when the master's proof is right): register at once."""
        authn, self._authn = self._authn, None
        if authn is None or self._client is None:
            return
        if not authn.on_completed(msg):
            self.authentication_failures += 1
            log.error("Master %s did not prove it knows this agent's secret; not "
                      "registering there", self.endpoint)
            return
        log.info("Agent authenticated as principal %r with %s", msg.principal, self.endpoint)
        self._authenticated_on = self._client.identity
        if not self.registered.is_set():
            self.send(self._registration())

    def on_authentication_failed(self, msg: AuthenticationFailed) -> None:
        """The master refused our credential: log it; registration keeps retrying."""
        self._authn = None
        self.authentication_failures += 1
        log.error("Master %s refused this agent's authentication: %s", self.endpoint,
                  msg.message)

    def authentication_refused(self) -> None:
        """The master does not (or no longer) know our authentication: redo it next time."""
        self._authenticated_on = b""

    async def _registration_loop(self) -> None:
        attempt = 0
        while not self.registered.is_set() and self._running:
            self._register_or_authenticate()
            self.registration_attempts += 1
            delay = max(random.uniform(0.0, self.backoff_bound(attempt)), 0.05)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.registered.wait(), delay)

    async def _ping_watchdog(self) -> None:
        while self._running:
            limit = self.ping_interval * self._config.ping_timeout_factor
            await asyncio.sleep(min(max(limit / 4, 0.05), 1.0))
            if not self.registered.is_set():
                continue
            silent = self._clock.monotonic() - self._last_ping
            if silent > limit:
                log.warning("No Ping from the master for %.1fs (limit %.1fs); re-registering",
                            silent, limit)
                self.reregistrations += 1
                self._last_ping = self._clock.monotonic()
                self.begin_registration("master silent")
