"""Unpacking fetched archives into a sandbox without letting anything out.

Owns: :func:`extract_archive` (``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``/``.tbz2``,
``.tar.xz``/``.txz``, ``.zip``) and :class:`ArchiveError`.  Every member is checked
before anything is written, and the whole archive is refused (naming the member)
when one member is an absolute path, has a ``..`` segment, is a device, FIFO or
socket, is a link pointing outside the destination (a symbolic link's target is
resolved where it would be created, through links made before it), or when the
members together unpack to more than ``max_size`` bytes.  Tar members are then
written through the standard library's ``data`` filter (which re-checks the same
rules against the real file system and drops set-uid bits); zip members are
written one by one after their resolved path is checked.  Blocking: call it from a
worker thread.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile

__all__ = ["ArchiveError", "extract_archive"]

_CHUNK = 1 << 16


class ArchiveError(ValueError):
    """An archive cannot be unpacked safely (or at all); the message names the member."""


def _inside(root: str, path: str) -> bool:
    """True when ``path`` (already absolute and normalised) is ``root`` or below it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def _check_name(name: str) -> None:
    """Refuse a member name that is absolute or climbs out with ``..``."""
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"member {name!r} has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise ArchiveError(f"member {name!r} climbs out of the sandbox with '..'")
    if "\x00" in name:
        raise ArchiveError(f"member {name!r} has a NUL character in its name")


def _check_tar_member(member: tarfile.TarInfo, root: str) -> None:
    _check_name(member.name)
    if member.ischr() or member.isblk() or member.isfifo() or not (
            member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise ArchiveError(f"member {member.name!r} is a device, FIFO or other special file")
    if member.issym():
        if member.linkname.startswith("/"):
            raise ArchiveError(f"member {member.name!r} is a symbolic link to the absolute "
                               f"path {member.linkname!r}")
        where = os.path.dirname(os.path.join(root, member.name))
        target = os.path.normpath(os.path.join(where, member.linkname))
        if not _inside(root, target):
            raise ArchiveError(f"member {member.name!r} is a symbolic link pointing out of "
                               f"the sandbox ({member.linkname!r})")
    if member.islnk():
        _check_name(member.linkname)


def _extract_tar(path: str, root: str, max_size: int) -> None:
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed below
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"not a readable tar archive: {exc}") from None
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArchiveError(f"corrupt tar archive: {exc}") from None
        total = 0
        for member in members:
            _check_tar_member(member, root)
            total += max(member.size, 0)
            if total > max_size:
                raise ArchiveError(f"unpacks to more than {max_size} bytes "
                                   f"(--fetcher_max_size)")
        try:
            tar.extractall(root, members=members, filter="data")
        except tarfile.FilterError as exc:
            raise ArchiveError(f"refused member: {exc}") from None
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArchiveError(f"could not unpack: {exc}") from None


def _zip_mode(info: zipfile.ZipInfo) -> int:
    return (info.external_attr >> 16) & 0xFFFF


def _extract_zip(path: str, root: str, max_size: int) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"not a readable zip archive: {exc}") from None
    with archive:
        infos = archive.infolist()
        total = 0
        for info in infos:
            _check_name(info.filename)
            mode = _zip_mode(info)
            if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise ArchiveError(f"member {info.filename!r} is a link, device or other "
                                   f"special file (zip archives may hold files and "
                                   f"directories only)")
            total += info.file_size
            if total > max_size:
                raise ArchiveError(f"unpacks to more than {max_size} bytes "
                                   f"(--fetcher_max_size)")
        for info in infos:
            _write_zip_member(archive, info, root)


def _write_zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, root: str) -> None:
    target = os.path.join(root, info.filename)
    parent = os.path.realpath(os.path.dirname(target.rstrip("/")))
    if not _inside(root, parent):
        raise ArchiveError(f"member {info.filename!r} would be written out of the sandbox")
    if info.is_dir():
        os.makedirs(target, mode=0o755, exist_ok=True)
        return
    os.makedirs(parent, mode=0o755, exist_ok=True)
    if os.path.islink(target):
        os.unlink(target)
    try:
        with archive.open(info) as src, open(target, "wb") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ArchiveError(f"could not unpack member {info.filename!r}: {exc}") from None
    os.chmod(target, 0o755 if _zip_mode(info) & 0o111 else 0o644)


def extract_archive(path: str, root: str, max_size: int) -> None:
    """Unpack the archive at ``path`` into the directory ``root`` (ArchiveError if unsafe).

    The kind is chosen by ``path``'s ending (``.zip``, else tar with any compression).
    """
    root = os.path.realpath(root)
    if path.lower().endswith(".zip"):
        _extract_zip(path, root, max_size)
    else:
        _extract_tar(path, root, max_size)
