"""Fetch URIs: which ones the fetcher takes, where each lands, how they are shown (PURE).

Owns: :func:`check_uri` (the first problem of a :class:`~mesoslite.protocol.CommandURI`
as ``(field, message)``, shared by the master, the v1 API, the agent and the
Marathon-style framework so that all refuse the same URIs with the same words),
:func:`split_uri`, :func:`task_uris_problem` (the same for every URI a TaskInfo carries),
:func:`fetch_name` (the sandbox-relative name a URI is stored under),
:func:`is_archive` and :func:`mask_uri` (``user:password@`` never shown).

Accepted: ``http://host/...``, ``https://host/...``, ``file:///abs/path`` (or
``file://localhost/...``) and absolute paths.  Nothing else (no ftp, hdfs, s3:
there is no Hadoop client here), no whitespace or control characters, at most
:data:`MAX_URI_LENGTH` characters.  ``output_file`` is relative, without ``..``.
"""

from __future__ import annotations

import re

from mesoslite.protocol.types import CommandURI, TaskInfo

#: The schemes the fetcher speaks (an absolute path counts as ``file``).
SCHEMES = ("http", "https", "file")
#: File name endings the fetcher unpacks when ``extract`` is set (as Mesos and Marathon).
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")
#: The longest URI accepted.
MAX_URI_LENGTH = 4096

_URI_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$")
_USERINFO_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#@]*@")


def mask_uri(value: str) -> str:
    """``value`` with any ``user:password@`` replaced by ``***@`` (for logs and messages)."""
    return _USERINFO_RE.sub(r"\1***@", value)


def show_uri(value: str) -> str:
    """``value`` masked and cut to 200 characters, quoted, for a message."""
    masked = mask_uri(value)
    return repr(masked if len(masked) <= 200 else masked[:197] + "...")


def split_uri(value: str) -> tuple[str, str, str]:
    """(scheme, authority, path) of an accepted URI; ValueError when it is not one."""
    if value.startswith("/"):
        return "file", "", value
    match = _URI_RE.match(value)
    if match is None:
        raise ValueError("expected an http://, https:// or file:// URI or an absolute path")
    return match.group(1).lower(), match.group(2), match.group(3)


def is_archive(name: str) -> bool:
    """True when ``name`` ends like an archive the fetcher can unpack."""
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def fetch_name(uri: CommandURI) -> str:
    """The sandbox-relative path ``uri`` is stored under: ``output_file``, else the
    last segment of the URI's path.  Assumes :func:`check_uri` passed."""
    if uri.output_file:
        return uri.output_file
    return split_uri(uri.value)[2].rstrip("/").rsplit("/", 1)[-1]


def _check_relative(value: str) -> str:
    """Why ``value`` is not a safe sandbox-relative file path ("" when it is)."""
    if value.startswith("/"):
        return f"expected a path relative to the sandbox, got the absolute path {value!r}"
    parts = value.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return (f"expected a relative path without '', '.' or '..' segments, got "
                f"{value[:100]!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "expected a path without control characters"
    return ""


def _check_value(value: str) -> str:
    """Why ``value`` is not a URI the fetcher takes ("" when it is)."""
    if not value:
        return "expected a URI, got ''"
    if len(value) > MAX_URI_LENGTH:
        return f"expected at most {MAX_URI_LENGTH} characters, got {len(value)}"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return f"expected a URI without spaces or control characters, got {show_uri(value)}"
    try:
        scheme, authority, path = split_uri(value)
    except ValueError as exc:
        return f"{exc}, got {show_uri(value)}"
    if scheme not in SCHEMES:
        return (f"scheme {scheme!r} is not supported (in {show_uri(value)}); expected "
                f"http, https, file or an absolute path")
    if scheme == "file" and authority not in ("", "localhost"):
        return (f"a file URI names a file on the agent: expected file:///path, got host "
                f"{authority!r}")
    host = authority.rsplit("@", 1)[-1]
    if scheme != "file" and not host:
        return f"expected a host name in {show_uri(value)}"
    if scheme == "file" and not path.startswith("/"):
        return f"expected an absolute path in {show_uri(value)}"
    return ""


def check_uri(uri: CommandURI) -> tuple[str, str] | None:
    """The first problem of ``uri`` as (``value`` | ``output_file``, message), or None."""
    problem = _check_value(uri.value)
    if problem:
        return "value", problem
    if uri.output_file:
        problem = _check_relative(uri.output_file)
        if problem:
            return "output_file", problem
        return None
    name = fetch_name(uri)
    if name in ("", ".", ".."):
        return "value", (f"{show_uri(uri.value)} names no file (its path ends in "
                         f"{name or '/'!r}); set output_file")
    return None


def check_uris(uris: tuple[CommandURI, ...], field: str) -> tuple[str, str] | None:
    """The first problem of any of ``uris`` as (``field[i].value``, message), or None."""
    for index, uri in enumerate(uris):
        problem = check_uri(uri)
        if problem is not None:
            return f"{field}[{index}].{problem[0]}", problem[1]
    return None


def task_uris_problem(task: TaskInfo) -> tuple[str, str] | None:
    """The first URI of ``task`` nothing would fetch correctly, as (field, message).

    A command task's ``command.uris`` are fetched (each must pass :func:`check_uri`);
    a custom executor's ``executor.command.uris`` and a health check's
    ``health_check.command.uris`` are not, so they are refused rather than ignored.
    """
    if task.command is not None:
        found = check_uris(task.command.uris, "command.uris")
        if found is not None:
            return found
    if task.executor is not None and task.executor.command.uris:
        return ("executor.command.uris", ("fetching URIs for a custom executor is not "
                                          "supported; fetch them in the executor, or run a "
                                          "command task"))
    check = task.health_check.command if task.health_check is not None else None
    if check is not None and check.uris:
        return "health_check.command.uris", "a health check's command fetches nothing"
    return None
