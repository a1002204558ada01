"""Who a framework or agent connection is: authentication and identity binding (PURE).

Owns: :class:`Authenticator`, the master's side of the challenge–response of
:mod:`mesoslite.protocol.authn` (a single-use nonce per connection that times out
after ``timeout`` seconds; the principal it proves is bound to the connection's
routing id), and the checks the handlers call:

* :func:`check_subscribe` -- with ``--authenticate_frameworks`` an unauthenticated
  Subscribe is refused; ``framework_info.principal`` must equal the principal the
  connection proved; failing over to an existing framework id needs the principal
  it was registered with (with or without authentication, as Mesos).
* :func:`check_agent` / :func:`bind_agent` -- with ``--authenticate_agents`` an
  unauthenticated RegisterAgent/ReregisterAgent is refused; an agent id is bound to
  the identity that registered it (its authenticated principal and the SHA-256 of its
  secret ``agent_token``), and only the same identity may re-register that id.

Secrets and tokens are never logged; only token digests are kept.  Nothing here
does I/O: the shell reads ``--credentials`` and hands the principals in.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

from mesoslite.clock import Clock
from mesoslite.master.config import MasterConfig
from mesoslite.master.records import FrameworkRecord, Send, to_peer
from mesoslite.protocol import (
    Authenticate,
    AuthenticationCompleted,
    AuthenticationFailed,
    AuthenticationResponse,
    AuthenticationStep,
    Error,
    FrameworkInfo,
)
from mesoslite.protocol.authn import (
    MECHANISM,
    NONCE_BYTES,
    NOT_AUTHENTICATED,
    ROLES,
    UNAUTHENTICATED,
    client_digest,
    master_proof,
)

log = logging.getLogger("mesoslite.master")

#: Seconds a challenge stays valid (Mesos: ``--authentication_v0_timeout``, 15 s).
DEFAULT_TIMEOUT = 15.0
#: Shortest routing id a session may be bound to: shorter ones are ZeroMQ's own,
#: which are sequential and so guessable (a peer could claim one with ROUTER_HANDOVER).
MIN_PEER_ID_BYTES = 16
#: Challenges outstanding at once, and authenticated connections remembered.
MAX_PENDING = 10_000
MAX_SESSIONS = 100_000


@attrs.define
class _Pending:
    principal: str
    role: str
    server_nonce: bytes
    client_nonce: bytes
    deadline: float


class Authenticator:
    """The master's authenticator: challenges, proofs, and which principal each
    connection proved (per role)."""

    def __init__(self, credentials: Mapping[str, str], clock: Clock, *,
                 timeout: float = DEFAULT_TIMEOUT,
                 random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> None:
        """Accept the principals of ``credentials`` (principal -> secret)."""
        self._credentials = dict(credentials)
        self._clock = clock
        self.timeout = timeout
        self._random = random_bytes
        self._pending: dict[bytes, _Pending] = {}
        self._sessions: dict[tuple[bytes, str], str] = {}
        self.counters = {"succeeded": 0, "failed": 0}

    def __repr__(self) -> str:
        return f"Authenticator({len(self._credentials)} principals)"

    def begin(self, peer: bytes, msg: Authenticate) -> Any:
        """The first step: a challenge (also for unknown principals: no enumeration)."""
        if not self._credentials:
            return self._fail(peer, msg.principal, "this master has no --credentials: it "
                              "authenticates no one")
        if msg.mechanism != MECHANISM:
            return self._fail(peer, msg.principal, f"mechanism {msg.mechanism!r} is not "
                              f"supported (expected {MECHANISM})")
        if msg.role not in ROLES:
            return self._fail(peer, msg.principal, f"role {msg.role!r}: expected one of {ROLES}")
        if len(peer) < MIN_PEER_ID_BYTES:
            return self._fail(peer, msg.principal, "the connection's routing id is too short "
                              f"to bind a session to (at least {MIN_PEER_ID_BYTES} random bytes)")
        if len(msg.client_nonce) < 16:
            return self._fail(peer, msg.principal, "client_nonce: expected at least 16 bytes")
        now = self._clock.monotonic()
        if len(self._pending) >= MAX_PENDING:
            self._pending = {p: c for p, c in self._pending.items() if c.deadline > now}
            if len(self._pending) >= MAX_PENDING:
                return self._fail(peer, msg.principal, "too many authentications in progress")
        nonce = self._random(NONCE_BYTES)
        self._pending[peer] = _Pending(msg.principal, msg.role, nonce, msg.client_nonce,
                                       now + self.timeout)
        return AuthenticationStep(server_nonce=nonce)

    def finish(self, peer: bytes, msg: AuthenticationResponse) -> Any:
        """The second step: check the digest; bind the principal to ``peer`` when right."""
        pending = self._pending.pop(peer, None)  # single use, right or wrong
        if pending is None:
            return self._fail(peer, msg.principal, "no authentication in progress on this "
                              "connection (send Authenticate first)")
        if self._clock.monotonic() > pending.deadline:
            return self._fail(peer, msg.principal, f"the challenge expired (after "
                              f"{self.timeout:g} s)")
        secret = self._credentials.get(pending.principal)
        ok = (secret is not None and msg.principal == pending.principal
              and hmac.compare_digest(msg.server_nonce, pending.server_nonce))
        if ok:
            assert secret is not None
            expected = client_digest(secret, pending.role, pending.principal,
                                     pending.server_nonce, pending.client_nonce)
            ok = hmac.compare_digest(expected, msg.digest)
        if not ok:
            return self._fail(peer, msg.principal, "wrong principal or secret")
        assert secret is not None
        if len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
        self._sessions[(peer, pending.role)] = pending.principal
        self.counters["succeeded"] += 1
        log.info("%s connection %s authenticated as principal %r", pending.role,
                 peer.hex()[:16], pending.principal)
        proof = master_proof(secret, pending.role, pending.principal, pending.server_nonce,
                             pending.client_nonce)
        return AuthenticationCompleted(principal=pending.principal, proof=proof)

    def _fail(self, peer: bytes, principal: str, why: str) -> AuthenticationFailed:
        self.counters["failed"] += 1
        log.warning("authentication of principal %r on connection %s refused: %s",
                    principal[:100], peer.hex()[:16], why)
        return AuthenticationFailed(message=f"authentication refused: {why}")

    def principal_of(self, peer: bytes, role: str) -> str | None:
        """The principal ``peer`` proved as ``role``, or None."""
        return self._sessions.get((peer, role))


class StateCore(Protocol):
    """What the checks read of the master's state (:class:`mesoslite.master.core.StateCore`)."""

    authn: Authenticator
    config: MasterConfig
    frameworks: dict[str, FrameworkRecord]
    agent_identities: dict[str, str]
    counters: Any

    def refuse(self, peer: bytes, msg: Any, message: str, field: str = "",
               code: str = "INVALID") -> list[Send]:
        """Count, log and answer a refusal."""
        ...


def token_digest(token: str) -> str:
    """What the master keeps of an agent's token (hex SHA-256; "" for no token)."""
    return hashlib.sha256(token.encode()).hexdigest() if token else ""


# ------------------------------------------------------------------ frameworks


def check_subscribe(state: StateCore, peer: bytes, info: FrameworkInfo) -> list[Send]:
    """A refusal (an Error to ``peer``) when this subscription may not proceed, else []."""
    principal = state.authn.principal_of(peer, "framework")
    why = ""
    if principal is None and state.config.authenticate_frameworks:
        why = (f"{NOT_AUTHENTICATED}: this master requires framework "
               "authentication (--authenticate_frameworks); give the scheduler a credential")
    elif principal is not None and info.principal != principal:
        why = (f"framework_info.principal {info.principal!r} does not match the "
               f"authenticated principal {principal!r}")
    elif info.id:
        known = state.frameworks.get(info.id)
        owner = known.info.principal if known is not None else ""
        if owner and owner != info.principal:
            why = (f"framework {info.id} is registered with principal {owner!r}: a scheduler "
                   f"with principal {info.principal!r} cannot fail over to it")
    if not why:
        return []
    state.counters["refused"] += 1
    state.counters["authentication_refusals"] += 1
    log.warning("refused a subscription from %s: %s", peer.hex()[:16], why)
    return [to_peer(peer, Error(why))]


# ---------------------------------------------------------------------- agents


def agent_identity(state: StateCore, peer: bytes, token: str) -> str:
    """The identity an agent presents: its authenticated principal and token digest."""
    principal = state.authn.principal_of(peer, "agent") or ""
    return f"{principal}:{token_digest(token)}"


def check_agent(state: StateCore, peer: bytes, msg: Any, agent_id: str) -> list[Send]:
    """A refusal when ``peer`` may not (re-)register (as ``agent_id``, when given), else []."""
    principal = state.authn.principal_of(peer, "agent")
    why = ""
    if principal is None and state.config.authenticate_agents:
        why = ("agent is not authenticated: this master requires agent authentication "
               "(--authenticate_agents); give the agent a --credential")
    elif agent_id:
        bound = state.agent_identities.get(agent_id)
        presented = agent_identity(state, peer, getattr(msg, "agent_token", ""))
        if bound is not None and not hmac.compare_digest(bound, presented):
            bound_principal = bound.partition(":")[0]
            why = (f"agent {agent_id} is bound to another identity (principal "
                   f"{bound_principal!r} and its own agent token): refused to re-register it")
    if not why:
        return []
    state.counters["authentication_refusals"] += 1
    return state.refuse(peer, msg, why, "agent_info.id" if agent_id else "principal",
                        UNAUTHENTICATED)


def bind_agent(state: StateCore, peer: bytes, agent_id: str, token: str) -> None:
    """Bind ``agent_id`` to the identity on ``peer`` (kept when already bound)."""
    state.agent_identities.setdefault(agent_id, agent_identity(state, peer, token))


# ------------------------------------------------------------ message handlers


def authenticate(state: StateCore, peer: bytes, msg: Authenticate) -> list[Send]:
    """Authenticate: answer the challenge (or the refusal)."""
    return [to_peer(peer, state.authn.begin(peer, msg))]


def authentication_response(state: StateCore, peer: bytes,
                            msg: AuthenticationResponse) -> list[Send]:
    """AuthenticationResponse: completed or failed."""
    return [to_peer(peer, state.authn.finish(peer, msg))]
