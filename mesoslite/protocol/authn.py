"""Challenge–response authentication of a principal over the ZeroMQ links (PURE).

Owns: the four authentication messages, the proofs both sides compute, and
:class:`ClientAuthn`, the client's side of one exchange (schedulers and agents
use it; the master's side is :mod:`mesoslite.master.authn`).  The secret never
crosses the wire:

```
client ──Authenticate(principal, mechanism, client_nonce)──▶ master
client ◀──AuthenticationStep(server_nonce)────────────────── master   (single use, times out)
client ──AuthenticationResponse(principal, server_nonce, digest)──▶ master
        digest = HMAC-SHA256(secret, "mesoslite-authn-v1" | role | principal | snonce | cnonce)
client ◀──AuthenticationCompleted(principal, proof) | AuthenticationFailed(message)── master
        proof  = HMAC-SHA256(secret, "mesoslite-authn-v1-master" | … the same fields)
```

The master binds the principal to the connection (its routing id, random and
unguessable: :class:`mesoslite.transport.DealerClient`), so a later Subscribe or
RegisterAgent on it acts as that principal.  The client checks ``proof``, so a
fake master that does not know the secret cannot pretend to have accepted it.
This is Mesos's CRAM-MD5 authenticatee/authenticator flow with SHA-256 and nonces
from both sides.  Also :func:`parse_credential`: Mesos's agent ``--credential``
file (JSON ``{"principal": …, "secret": …}`` or the text ``principal secret``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import attrs

from mesoslite.protocol.messages import message

#: The one mechanism spoken (Mesos's default is CRAM-MD5; this is its stronger cousin).
MECHANISM = "HMAC-SHA256"
#: Length of each side's nonce in bytes.
NONCE_BYTES = 32
#: How the master's refusal of an unauthenticated Subscribe begins (a driver holding a
#: credential authenticates again when it sees it: the master forgot the connection).
NOT_AUTHENTICATED = "framework is not authenticated"
#: The ProtocolError code of an agent registration refused for its identity.
UNAUTHENTICATED = "UNAUTHENTICATED"
#: The roles a principal authenticates as (mixed into the digest: a proof for one is
#: worthless for the other).
ROLES = ("framework", "agent")


@message
@attrs.frozen
class Authenticate:
    """A client starts authenticating ``principal`` as a ``role`` (framework or agent)."""

    principal: str
    role: str = "framework"
    mechanism: str = MECHANISM
    client_nonce: bytes = b""


@message
@attrs.frozen
class AuthenticationStep:
    """The master's challenge: a fresh single-use nonce."""

    server_nonce: bytes
    mechanism: str = MECHANISM


@message
@attrs.frozen
class AuthenticationResponse:
    """The client's answer: the HMAC of both nonces with its secret."""

    principal: str
    server_nonce: bytes
    digest: bytes


@message
@attrs.frozen
class AuthenticationCompleted:
    """The master accepted ``principal`` on this connection; ``proof`` shows it knows the
    secret too."""

    principal: str
    proof: bytes = b""


@message
@attrs.frozen
class AuthenticationFailed:
    """The master refused to authenticate this connection (``message`` says why)."""

    message: str


def _fields(role: str, principal: str, server_nonce: bytes, client_nonce: bytes) -> bytes:
    parts = [role.encode(), principal.encode(), server_nonce, client_nonce]
    # Length-prefixed: no two different field tuples give the same bytes.
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def client_digest(secret: str, role: str, principal: str, server_nonce: bytes,
                  client_nonce: bytes) -> bytes:
    """What the client proves it knows ``secret`` with."""
    data = b"mesoslite-authn-v1" + _fields(role, principal, server_nonce, client_nonce)
    return hmac.new(secret.encode(), data, hashlib.sha256).digest()


def master_proof(secret: str, role: str, principal: str, server_nonce: bytes,
                 client_nonce: bytes) -> bytes:
    """What the master proves it knows ``secret`` with (a different label: no reflection)."""
    data = b"mesoslite-authn-v1-master" + _fields(role, principal, server_nonce, client_nonce)
    return hmac.new(secret.encode(), data, hashlib.sha256).digest()


@attrs.frozen(repr=False)
class Credential:
    """One principal and its secret (the secret is never shown)."""

    principal: str
    secret: str = attrs.field(repr=False)

    def __repr__(self) -> str:
        return f"Credential(principal={self.principal!r})"


def parse_credential(text: str, source: str = "credential") -> Credential:
    """Mesos's ``--credential`` file: JSON ``{"principal", "secret"}`` or ``principal secret``.

    ValueError naming ``source`` and what is wrong (never showing the secret).
    """
    stripped = text.strip()
    document: Any
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except ValueError:
            raise ValueError(f"{source}: not valid JSON") from None
        if not isinstance(document, dict) or set(document) - {"principal", "secret"}:
            raise ValueError(f"{source}: expected {{\"principal\": ..., \"secret\": ...}}")
        principal, secret = document.get("principal"), document.get("secret")
    else:
        principal, _, secret = stripped.partition(" ")
        secret = secret.strip()
    if not isinstance(principal, str) or not principal or ":" in principal:
        raise ValueError(f"{source}: principal: expected a non-empty name without ':'")
    if not isinstance(secret, str) or not secret:
        raise ValueError(f"{source}: secret: expected a non-empty string")
    return Credential(principal, secret)


class ClientAuthn:
    """The client's side of one exchange (a fresh one per connection attempt).

    ``start()`` gives the Authenticate to send; ``on_step()`` the response to the
    master's challenge; ``on_completed()`` checks the master's proof.  ``nonce`` is
    ``NONCE_BYTES`` random bytes the caller draws (this module does no I/O).
    """

    def __init__(self, credential: Credential, role: str, nonce: bytes) -> None:
        """Authenticate ``credential`` as ``role`` (``framework`` or ``agent``)."""
        if role not in ROLES:
            raise ValueError(f"role: expected one of {ROLES}, got {role!r}")
        self.credential = credential
        self.role = role
        self._client_nonce = nonce
        self._server_nonce = b""

    def start(self) -> Authenticate:
        """The message that opens the exchange."""
        return Authenticate(principal=self.credential.principal, role=self.role,
                            client_nonce=self._client_nonce)

    def on_step(self, msg: AuthenticationStep) -> AuthenticationResponse:
        """Answer the master's challenge."""
        self._server_nonce = msg.server_nonce
        cred = self.credential
        digest = client_digest(cred.secret, self.role, cred.principal, msg.server_nonce,
                               self._client_nonce)
        return AuthenticationResponse(principal=cred.principal, server_nonce=msg.server_nonce,
                                      digest=digest)

    def on_completed(self, msg: AuthenticationCompleted) -> bool:
        """True when the master proved it knows the secret for the principal we sent."""
        cred = self.credential
        if msg.principal != cred.principal or not self._server_nonce:
            return False
        expected = master_proof(cred.secret, self.role, cred.principal, self._server_nonce,
                                self._client_nonce)
        return hmac.compare_digest(expected, msg.proof)
