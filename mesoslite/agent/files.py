"""Path safety, file types and listings for the agent's ``/files`` endpoints.

Owns: the rule that a path from a request names something inside one task sandbox
(``agents/<aid>/frameworks/<fid>/executors/<eid>/runs/<cid>``, ``runs/latest``
included) and stays inside that same sandbox once every symlink is resolved: never
the agent's ``meta/`` (checkpoints), never another task's sandbox, never outside the
work directory.  :func:`check_request_path` (PURE) rejects empty paths, NUL bytes
and ``..`` components; :func:`is_within` (PURE) compares resolved paths;
:func:`sandbox_of` (PURE) finds the sandbox a path lies in;
:func:`resolve_request_path` applies all of it.  :func:`open_regular` opens a
regular file only (non-blocking, without following a final symlink, checked with
``fstat`` after opening: a FIFO, a device or a socket is refused without blocking,
and a file swapped for a link after the check is refused too); :func:`read_range`
and :func:`list_dir` are what the handlers run off the event loop.
:func:`browse_entry` describes one file the way Mesos does.
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


#: The directory names of a sandbox path below the work directory; ``*`` is any one name.
SANDBOX_SHAPE = ("agents", "*", "frameworks", "*", "executors", "*", "runs", "*")


def sandbox_of(relative: str) -> str | None:
    """The sandbox prefix of a normalised path relative to the work directory (PURE).

    ``agents/a/frameworks/f/executors/e/runs/c/stdout`` -> ``agents/a/.../runs/c``;
    None when the path is not inside a sandbox.
    """
    parts = relative.split("/")
    if len(parts) < len(SANDBOX_SHAPE):
        return None
    for part, shape in zip(parts, SANDBOX_SHAPE, strict=False):
        if not part or part in (".", "..") or (shape != "*" and part != shape):
            return None
    return "/".join(parts[:len(SANDBOX_SHAPE)])


@attrs.frozen
class Resolved:
    """A request path resolved: the file and the (resolved) sandbox it must stay in."""

    path: str
    sandbox: str


def resolve_request_path(work_dir: str, raw: str) -> Resolved:
    """Resolve a request path inside one sandbox of ``work_dir`` (relative paths are under it).

    Raises :class:`PathRefused` (403 outside a sandbox or escaping it, 404 missing).
    """
    check_request_path(raw)
    outside = PathRefused(403, f"path: {raw!r} is outside the task sandboxes")
    given = os.path.abspath(work_dir)
    root = os.path.realpath(work_dir)
    joined = os.path.normpath(raw if os.path.isabs(raw) else os.path.join(root, raw))
    base = next((b for b in (root, given) if is_within(b, joined) and joined != b), None)
    if base is None:
        raise outside
    prefix = sandbox_of(os.path.relpath(joined, base))
    if prefix is None:
        raise outside
    sandbox = os.path.realpath(os.path.join(base, prefix))
    real_prefix = sandbox_of(os.path.relpath(sandbox, root)) if is_within(root, sandbox) \
        else None
    resolved = os.path.realpath(joined)
    if real_prefix is None or not is_within(sandbox, resolved):
        raise outside
    if not os.path.lexists(resolved):
        raise PathRefused(404, f"path: {raw!r} does not exist")
    return Resolved(resolved, sandbox)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(target: Resolved, shown: str) -> int:
    """A read-only descriptor of ``target`` if it is a regular file in its sandbox.

    Never blocks (a FIFO is opened non-blocking and refused after ``fstat``); a final
    symlink is not followed; a path that moved out of the sandbox after resolution is
    refused (checked through ``/proc/self/fd``).  PathRefused otherwise.
    """
    before = os.lstat(target.path)
    if not stat.S_ISREG(before.st_mode):
        status = 400 if stat.S_ISDIR(before.st_mode) else 403
        raise PathRefused(status, f"path: {shown!r} is {_kind(before.st_mode)}; only regular "
                                  "files are served")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(target.path, flags)
    except OSError as exc:
        raise PathRefused(403, f"path: {shown!r} cannot be opened ({exc.strerror})") from None
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise PathRefused(403, f"path: {shown!r} is {_kind(found.st_mode)}; only regular "
                                   "files are served")
        link = f"/proc/self/fd/{fd}"
        if os.path.exists(link) and not is_within(target.sandbox, os.readlink(link)):
            raise PathRefused(403, f"path: {shown!r} is outside the task sandboxes")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_range(target: Resolved, shown: str, offset: int, length: int) -> tuple[bytes, int]:
    """(up to ``length`` bytes at ``offset``, the file size) of a regular file."""
    fd = open_regular(target, shown)
    try:
        size = os.fstat(fd).st_size
        if offset < 0:
            return b"", size
        return os.pread(fd, length, offset), size
    finally:
        os.close(fd)


def list_dir(target: Resolved) -> list[dict[str, object]]:
    """``/files/browse`` entries: the directory's entries, or the file itself."""
    if not os.path.isdir(target.path):
        return [browse_entry(target.path, target.path)]
    entries = []
    for name in sorted(os.listdir(target.path)):
        full = os.path.join(target.path, name)
        try:
            entries.append(browse_entry(full, full))
        except FileNotFoundError:
            continue
    return entries


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
