"""Path safety and listings for the agent's ``/files`` endpoints.

Owns: the rule that a path from a request never escapes the agent's work
directory.  :func:`check_request_path` (PURE) rejects empty paths, NUL bytes
and ``..`` components; :func:`is_within` (PURE) compares resolved paths;
:func:`resolve_request_path` joins a relative path to the work directory,
resolves every symlink with ``os.path.realpath`` and refuses anything that
lands outside.  :func:`browse_entry` describes one file the way Mesos does.
"""

from __future__ import annotations

import os
import stat

import attrs


@attrs.frozen
class PathRefused(Exception):
    """A requested path is refused: ``status`` is the HTTP status to answer."""

    status: int
    message: str
    field: str = "path"

    def __str__(self) -> str:
        """The message (it names the path)."""
        return self.message


def check_request_path(raw: str) -> str:
    """Reject an unusable path (PURE); returns it unchanged when acceptable."""
    if not raw:
        raise PathRefused(400, "path: expected a non-empty path")
    if "\x00" in raw:
        raise PathRefused(403, "path: NUL bytes are not allowed")
    parts = raw.replace("\\", "/").split("/")
    if ".." in parts:
        raise PathRefused(403, f"path: '..' is not allowed in {raw!r}")
    return raw


def is_within(root: str, path: str) -> bool:
    """True when resolved ``path`` is ``root`` or lies below it (PURE; both absolute)."""
    root = root.rstrip("/") or "/"
    if path == root:
        return True
    prefix = root if root.endswith("/") else root + "/"
    return path.startswith(prefix)


def resolve_request_path(work_dir: str, raw: str) -> str:
    """Resolve a request path inside ``work_dir`` (relative paths are under it).

    Raises :class:`PathRefused` (403 outside the work directory, 404 missing).
    """
    check_request_path(raw)
    root = os.path.realpath(work_dir)
    joined = raw if os.path.isabs(raw) else os.path.join(root, raw)
    resolved = os.path.realpath(joined)
    if not is_within(root, resolved):
        raise PathRefused(403, f"path: {raw!r} is outside the agent's sandboxes")
    if not os.path.exists(resolved):
        raise PathRefused(404, f"path: {raw!r} does not exist")
    return resolved


def browse_entry(path: str, shown_path: str) -> dict[str, object]:
    """One ``/files/browse`` entry: path, nlink, size, mtime, mode (ls -l), uid, gid, inode."""
    st = os.lstat(path)
    return {
        "path": shown_path,
        "nlink": st.st_nlink,
        "size": st.st_size,
        "mtime": int(st.st_mtime),
        "mode": stat.filemode(st.st_mode),
        "uid": _user_name(st.st_uid),
        "gid": _group_name(st.st_gid),
        # Not in Mesos: lets a reader follow a log across rotations (stdout -> stdout.1).
        "inode": st.st_ino,
    }


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (KeyError, ImportError):
        return str(gid)
