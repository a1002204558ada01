"""The agent's secret store: secret references resolved to values right before a task starts.

Owns: :func:`resolve_secrets` and :class:`SecretError`.  The store is a directory
(``--secret_store_dir``) of files, one per secret: the reference ``/prod/db/password``
(or ``prod/db/password``) is the file ``<store>/prod/db/password``.  A file must be a
regular file (no link is followed, a FIFO cannot block), readable by its owner only
(mode 0600 or 0400: anything group- or world-readable is refused, since such a value
is no secret any more), at most :data:`MAX_SECRET_SIZE` bytes of UTF-8; one trailing
newline is dropped.  Errors name the variable and the reference, never a value; no
value is logged.  Blocking: call it from a worker thread.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

__all__ = ["MAX_SECRET_SIZE", "SecretError", "resolve_secrets"]

#: The largest secret value (bytes), as an environment variable should stay small.
MAX_SECRET_SIZE = 64 << 10


class SecretError(RuntimeError):
    """A secret could not be resolved; the message names it (never its value)."""


def _path(store: str, reference: str, where: str) -> str:
    relative = reference.lstrip("/")
    parts = relative.split("/")
    if not relative or any(p in ("", ".", "..") for p in parts) or "\x00" in relative:
        raise SecretError(f"{where}: not a path inside the secret store (no '', '.' or "
                          f"'..' segments)")
    return os.path.join(store, relative)


def _read(store: str, name: str, reference: str) -> str:
    where = f"secret {reference[:100]!r} (variable {name})"
    path = _path(store, reference, where)
    if not os.path.realpath(path).startswith(store.rstrip("/") + "/"):
        raise SecretError(f"{where}: leads out of the secret store through a link")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SecretError(f"{where}: not in the secret store") from None
    except OSError as exc:
        raise SecretError(f"{where}: cannot open it ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(f"{where}: not a regular file")
        if info.st_mode & 0o077:
            raise SecretError(f"{where}: readable by group or others (mode "
                              f"{stat.S_IMODE(info.st_mode):04o}); chmod 600 it")
        data = handle.read(MAX_SECRET_SIZE + 1)
    if len(data) > MAX_SECRET_SIZE:
        raise SecretError(f"{where}: larger than {MAX_SECRET_SIZE} bytes")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise SecretError(f"{where}: not UTF-8 text") from None
    if "\x00" in text:
        raise SecretError(f"{where}: holds a NUL character")
    return text.removesuffix("\n")


def resolve_secrets(store: str, references: Mapping[str, str]) -> dict[str, str]:
    """Variable name → value for ``references`` (variable → reference) from ``store``."""
    if not references:
        return {}
    if not store:
        name, reference = next(iter(references.items()))
        raise SecretError(f"secret {reference!r} (variable {name}): this agent has no "
                          f"secret store (--secret_store_dir)")
    real = os.path.realpath(store)
    return {name: _read(real, name, reference) for name, reference in references.items()}
