"""CURVE encryption and authentication for the ZeroMQ links.

Owns: key generation (``mesoslite keygen``), loading key files, and applying
keys to sockets.  A server (master or agent) holds a key pair and a directory
of authorised client public keys; a client holds its own key pair and the
server's public key.  Off unless configured (``local`` mode runs without it).

Key files are the ZeroMQ certificate format written by :func:`generate`:
``<name>.key`` (public) and ``<name>.key_secret`` (public + secret, mode 0600).
Secret keys are never logged.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator


def generate(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Write a new key pair as ``name.key`` and ``name.key_secret`` in ``directory``."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(path), name)
    os.chmod(secret, 0o600)
    os.chmod(public, 0o644)  # public: meant to be handed out
    return Path(public), Path(secret)


def load_keypair(secret_file: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """Return (public, secret) from a ``.key_secret`` file; ValueError if it has no secret."""
    public, secret = zmq.auth.load_certificate(str(secret_file))
    if not secret:
        raise ValueError(f"{secret_file}: no secret key in this file")
    return public, secret


def load_public(public_file: str | os.PathLike[str]) -> bytes:
    """Return the public key from a ``.key`` (or ``.key_secret``) file."""
    public, _ = zmq.auth.load_certificate(str(public_file))
    return public


@attrs.frozen(repr=False)
class CurveServerKeys:
    """A server's key pair and the directory of client public keys it accepts."""

    public: bytes
    secret: bytes
    authorized_dir: str

    def __repr__(self) -> str:  # never show the secret
        return f"CurveServerKeys(authorized_dir={self.authorized_dir!r})"

    @classmethod
    def from_files(cls, secret_file: str, authorized_dir: str) -> CurveServerKeys:
        """Load the server key pair and remember where client keys live."""
        public, secret = load_keypair(secret_file)
        if not Path(authorized_dir).is_dir():
            raise ValueError(f"authorized keys directory {authorized_dir!r} does not exist")
        return cls(public=public, secret=secret, authorized_dir=authorized_dir)

    def apply(self, sock: zmq.Socket[bytes]) -> None:
        """Make ``sock`` a CURVE server that admits only authorised clients."""
        _authenticator(self.authorized_dir)
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True


@attrs.frozen(repr=False)
class CurveClientKeys:
    """A client's key pair and the public key of the server it trusts."""

    public: bytes
    secret: bytes
    server_public: bytes

    def __repr__(self) -> str:
        return "CurveClientKeys(...)"

    @classmethod
    def from_files(cls, secret_file: str, server_public_file: str) -> CurveClientKeys:
        """Load the client key pair and the server's public key."""
        public, secret = load_keypair(secret_file)
        return cls(public=public, secret=secret, server_public=load_public(server_public_file))

    def apply(self, sock: zmq.Socket[bytes]) -> None:
        """Make ``sock`` a CURVE client of the trusted server."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_serverkey = self.server_public


_AUTHENTICATORS: dict[str, ThreadAuthenticator] = {}


def _authenticator(authorized_dir: str) -> ThreadAuthenticator:
    # One ZAP handler per process serves every CURVE socket in it.
    auth = _AUTHENTICATORS.get(authorized_dir)
    if auth is None:
        if _AUTHENTICATORS:
            raise ValueError("one authorised-keys directory per process is supported")
        auth = ThreadAuthenticator(zmq.Context.instance())
        auth.start()
        auth.configure_curve(domain="*", location=authorized_dir)
        _AUTHENTICATORS[authorized_dir] = auth
    return auth
