"""Unpacking fetched archives: everything stays in the sandbox, or nothing is unpacked.

Real archives built in a temporary directory: members with ``..``, absolute paths,
symbolic and hard links pointing out (directly or through a link made earlier in the
same archive), devices and FIFOs are refused naming the member, and nothing lands
outside the sandbox; good archives of every supported kind unpack with their modes.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from mesoslite.agent.archives import ArchiveError, extract_archive

Member = Callable[[tarfile.TarFile], None]


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))
    return add


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, target
        tar.addfile(info)
    return add


def _special(name: str, kind: bytes) -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        tar.addfile(info)
    return add


def _tar(path: Path, *members: Member, mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:  # type: ignore[call-overload]
        for add in members:
            add(tar)
    return path


def _sandbox(tmp_path: Path) -> Path:
    box = tmp_path / "box" / "sandbox"
    box.mkdir(parents=True)
    return box


def _outside(tmp_path: Path) -> set[str]:
    """What exists beside the sandbox (nothing should ever be written there)."""
    return {p.name for p in (tmp_path / "box").iterdir()} - {"sandbox"}


UNSAFE = [
    ("dotdot", [_file("../evil")], "climbs out"),
    ("deep-dotdot", [_file("a/../../evil")], "climbs out"),
    ("absolute", [_file("/tmp/evil-abs")], "absolute path"),
    ("symlink-absolute", [_link("l", "/etc")], "absolute path '/etc'"),
    ("symlink-out", [_link("l", "../../etc")], "pointing out"),
    ("symlink-chain", [_link("a", "."), _link("b", "a/.."), _file("b/evil")],
     "refused member"),
    ("hardlink-out", [_link("h", "../x", tarfile.LNKTYPE)], "climbs out"),
    ("chardev", [_special("null", tarfile.CHRTYPE)], "device"),
    ("blockdev", [_special("sda", tarfile.BLKTYPE)], "device"),
    ("fifo", [_special("pipe", tarfile.FIFOTYPE)], "FIFO"),
]


@pytest.mark.parametrize(("name", "members", "words"), UNSAFE, ids=[u[0] for u in UNSAFE])
def test_unsafe_tar_members_are_refused_and_nothing_escapes(
        tmp_path: Path, name: str, members: list[Member], words: str) -> None:
    """Each unsafe member refuses the archive with its name; nothing lands beside the box."""
    box = _sandbox(tmp_path)
    archive = _tar(tmp_path / f"{name}.tar.gz", _file("ok.txt"), *members)
    with pytest.raises(ArchiveError, match=words):
        extract_archive(str(archive), str(box), 1 << 20)
    assert _outside(tmp_path) == set()
    assert not Path("/tmp/evil-abs").exists()


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "tgz", "tar.bz2", "tar.xz"])
def test_good_tars_unpack_with_links_inside_and_modes(tmp_path: Path, kind: str) -> None:
    """Every tar flavour unpacks: files, directories, inside links, the executable bit kept,
    set-uid dropped."""
    box = _sandbox(tmp_path)
    mode = {"tar": "w", "tar.gz": "w:gz", "tgz": "w:gz", "tar.bz2": "w:bz2",
            "tar.xz": "w:xz"}[kind]
    archive = _tar(tmp_path / f"a.{kind}", _file("app/run.sh", b"#!/bin/sh\n", 0o4755),
                   _file("app/lib/data.txt", b"data"), _link("app/bin", "lib"),
                   _link("app/up", "../app/lib/data.txt"), mode=mode)
    extract_archive(str(archive), str(box), 1 << 20)
    run = box / "app" / "run.sh"
    assert run.read_bytes() == b"#!/bin/sh\n"
    assert os.access(run, os.X_OK) and not run.stat().st_mode & stat.S_ISUID
    assert (box / "app" / "bin" / "data.txt").read_bytes() == b"data"
    assert (box / "app" / "up").read_bytes() == b"data"


def test_an_archive_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    """The members' total size above max_size refuses the archive before writing."""
    box = _sandbox(tmp_path)
    archive = _tar(tmp_path / "big.tar", _file("a", b"x" * 600), _file("b", b"x" * 600),
                   mode="w")
    with pytest.raises(ArchiveError, match="more than 1000 bytes"):
        extract_archive(str(archive), str(box), 1000)
    assert list(box.iterdir()) == []


def test_a_corrupt_archive_is_refused(tmp_path: Path) -> None:
    """Bytes that are no archive: ArchiveError, not a crash."""
    box = _sandbox(tmp_path)
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"not an archive at all")
    with pytest.raises(ArchiveError):
        extract_archive(str(bogus), str(box), 1 << 20)
    fake_zip = tmp_path / "bogus.zip"
    fake_zip.write_bytes(b"PK nope")
    with pytest.raises(ArchiveError):
        extract_archive(str(fake_zip), str(box), 1 << 20)


def _zip(path: Path, entries: list[tuple[str, bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, data)
    return path


def test_zip_unpacks_with_the_executable_bit(tmp_path: Path) -> None:
    """A zip's files and directories unpack; an executable member stays executable."""
    box = _sandbox(tmp_path)
    archive = _zip(tmp_path / "a.zip", [("d/", b"", stat.S_IFDIR | 0o755),
                                        ("d/tool", b"#!/bin/sh\n", stat.S_IFREG | 0o755),
                                        ("d/notes", b"n", stat.S_IFREG | 0o644)])
    extract_archive(str(archive), str(box), 1 << 20)
    assert os.access(box / "d" / "tool", os.X_OK)
    assert not os.access(box / "d" / "notes", os.X_OK)


@pytest.mark.parametrize(("entry", "words"), [
    (("../evil", b"x", stat.S_IFREG | 0o644), "climbs out"),
    (("/tmp/evil-zip", b"x", stat.S_IFREG | 0o644), "absolute path"),
    (("link", b"/etc/passwd", stat.S_IFLNK | 0o777), "link"),
])
def test_unsafe_zip_members_are_refused(tmp_path: Path, entry: tuple[str, bytes, int],
                                        words: str) -> None:
    """Zip members climbing out, absolute, or links: refused naming the member."""
    box = _sandbox(tmp_path)
    archive = _zip(tmp_path / "bad.zip", [("ok", b"x", stat.S_IFREG | 0o644), entry])
    with pytest.raises(ArchiveError, match=words):
        extract_archive(str(archive), str(box), 1 << 20)
    assert _outside(tmp_path) == set() and not Path("/tmp/evil-zip").exists()
