"""The agent's secrets: its identity token for the master and per-executor tokens.

Owns: :class:`AgentSecrets`, loaded from (or created in) ``<work_dir>/meta/agent.key``
(32 random bytes, mode 0600, written under umask 077), from which it derives

* ``agent_token`` -- what the agent presents with RegisterAgent/ReregisterAgent; the
  master binds the agent id to it, so a process that does not hold this file cannot
  re-register (take over) this agent's id;
* :meth:`AgentSecrets.executor_token` -- the per-container
  ``MESOS_EXECUTOR_AUTHENTICATION_TOKEN`` (Mesos's variable) put in an executor's
  environment, checked by :meth:`AgentSecrets.check_executor` when the executor
  (re-)registers; the connection it registered on is bound to that container, so a
  forged update from another connection is refused.  Derived, not stored: an executor
  that outlives an agent restart still holds a token the restarted agent accepts.

Tokens are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import os

#: The environment variable an executor finds its token in (Mesos's name).
TOKEN_ENV = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"  # noqa: S105 - a variable name
KEY_BYTES = 32


def load_or_create_key(path: str) -> bytes:
    """The key in ``path``, created (0600, under umask 077) when missing or empty."""
    try:
        with open(path, "rb") as f:
            key = f.read()
        if len(key) >= KEY_BYTES:
            return key
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    key = os.urandom(KEY_BYTES)
    old = os.umask(0o077)
    try:
        tmp = f"{path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        os.umask(old)
    return key


class AgentSecrets:
    """The agent's identity token and its executors' tokens, from one key."""

    def __init__(self, key: bytes) -> None:
        """Derive from ``key`` (see :func:`load_or_create_key`)."""
        self._key = key
        self.agent_token = self._derive(b"agent-identity")

    def __repr__(self) -> str:
        return "AgentSecrets(...)"

    @classmethod
    def in_work_dir(cls, work_dir: str) -> AgentSecrets:
        """The secrets of the agent whose work directory is ``work_dir``."""
        return cls(load_or_create_key(os.path.join(work_dir, "meta", "agent.key")))

    def _derive(self, label: bytes) -> str:
        return hmac.new(self._key, label, hashlib.sha256).hexdigest()

    def executor_token(self, container_id: str) -> str:
        """The token of the executor in container ``container_id``."""
        return self._derive(b"executor\0" + container_id.encode())

    def check_executor(self, container_id: str, token: str) -> bool:
        """True when ``token`` is the token of ``container_id`` (constant time)."""
        if not token or not container_id:
            return False
        return hmac.compare_digest(self.executor_token(container_id), token)
