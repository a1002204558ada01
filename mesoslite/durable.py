"""Durable file writes shared by every on-disk state (mechanism only, no policy).

Owns: :func:`write_all` (``os.write`` until every byte is out),
:func:`fsync_dir` (make renames and new entries in a directory durable) and
:func:`atomic_write` (temp file, fsync, rename, fsync the directory: after a
crash the path holds either the old bytes or the new ones, never a mix).
Used by the agent's checkpoint and journal, the master's file registry and
the Marathon-style framework's file store.
"""

from __future__ import annotations

import contextlib
import os


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte of ``data`` is written."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so renames and new entries in it survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes, *,
                 tmp_path: str | os.PathLike[str] | None = None, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    ``tmp_path`` (default ``<path>.tmp<pid>``, next to ``path``) is where the
    bytes are staged; it is removed when anything fails.
    """
    target = os.fspath(path)
    tmp = os.fspath(tmp_path) if tmp_path is not None else f"{target}.tmp{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(target) or ".")
