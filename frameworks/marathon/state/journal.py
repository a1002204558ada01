"""The on-disk format and in-memory key tree behind the file store (``file_store.FileStore``).

Owns: the key tree held in memory (:class:`KeyTree`), the framing of journal and
snapshot records, reading them back (torn tails vs corruption), atomic file
replacement, and reading the old one-directory-per-key layout for migration.

Files in a state directory:

* ``journal`` -- ``JOURNAL_MAGIC``, then framed records.  The first record is the
  header ``{"generation": g}``; every later one is a commit
  ``{"puts": {key: bytes}, "deletes": [key, ...]}``.
* ``snapshot`` -- ``SNAPSHOT_MAGIC`` and one framed record
  ``{"generation": g, "values": {key: bytes}}``.

A frame is a 4-byte big-endian body length, the body's CRC32 (4 bytes, big-endian)
and the msgpack body.  A journal is replayed on a snapshot only when both carry the
same generation; a journal older than the snapshot was folded into it already.
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgpack

from mesoslite.durable import atomic_write

JOURNAL_MAGIC = b"MLJRNL1\n"
SNAPSHOT_MAGIC = b"MLSNAP1\n"
TMP_MARKER = ".tmp-"
_FRAME = struct.Struct(">II")
#: The old layout kept a key's value in this file inside the key's directory.
OLD_VALUE_FILE = ".value"


class JournalError(Exception):
    """A journal or snapshot is unreadable; the message names the file and offset."""


# ------------------------------------------------------------------ key tree


def parent_of(key: str) -> tuple[str, str]:
    """(parent key, last segment) of a non-root key."""
    cut = key.rfind("/")
    return (key[:cut] or "/"), key[cut + 1:]


class KeyTree:
    """Every key's value in a dict, plus the child segments of each key that has any.

    A key is listed under its parent while it holds a value or has descendants
    that do; parents exist implicitly.  Keys must already be validated.
    """

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.kids: dict[str, set[str]] = {}
        #: Approximate bytes of live keys and values (drives compaction).
        self.live_bytes = 0

    def get(self, key: str) -> bytes | None:
        """The value of ``key`` or None."""
        return self.values.get(key)

    def children(self, key: str) -> list[str]:
        """The child segments of ``key``, sorted."""
        return sorted(self.kids.get(key, ()))

    def put(self, key: str, data: bytes) -> None:
        """Set ``key`` and link it into its ancestors."""
        old = self.values.get(key)
        self.live_bytes += len(data) - len(old) if old is not None else len(key) + len(data)
        self.values[key] = data
        while key != "/":
            parent, name = parent_of(key)
            siblings = self.kids.setdefault(parent, set())
            if name in siblings:
                return
            siblings.add(name)
            key = parent

    def delete(self, key: str) -> None:
        """Remove ``key`` and its subtree; unlink ancestors left with no value or children."""
        stack = [key]
        while stack:
            current = stack.pop()
            old = self.values.pop(current, None)
            if old is not None:
                self.live_bytes -= len(old) + len(current)
            for name in self.kids.pop(current, ()):
                stack.append(f"{current}/{name}" if current != "/" else f"/{name}")
        while key != "/":
            parent, name = parent_of(key)
            siblings = self.kids.get(parent)
            if siblings is None or name not in siblings:
                return
            siblings.discard(name)
            if siblings:
                return
            del self.kids[parent]
            if parent in self.values:
                return
            key = parent

    def apply(self, puts: Mapping[str, bytes], deletes: Sequence[str]) -> None:
        """Apply a commit: its puts in order, then its deletes in order."""
        for key, data in puts.items():
            self.put(key, data)
        for key in deletes:
            self.delete(key)


# ------------------------------------------------------------------ framing


def frame(body: Any) -> bytes:
    """msgpack ``body`` and prefix it with its length and CRC32."""
    raw = msgpack.packb(body, use_bin_type=True)
    return _FRAME.pack(len(raw), zlib.crc32(raw)) + raw


def encode_commit(puts: Mapping[str, bytes], deletes: Sequence[str]) -> bytes:
    """One journal record for a commit."""
    return frame({"puts": dict(puts), "deletes": list(deletes)})


def encode_journal_start(generation: int) -> bytes:
    """The bytes of an empty journal of ``generation``."""
    return JOURNAL_MAGIC + frame({"generation": generation})


def encode_snapshot(generation: int, values: Mapping[str, bytes]) -> bytes:
    """The bytes of a snapshot of ``values``."""
    return SNAPSHOT_MAGIC + frame({"generation": generation, "values": values})


def _unpack(path: Path, offset: int, raw: bytes) -> Any:
    try:
        return msgpack.unpackb(raw, raw=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise JournalError(f"{path}: record at offset {offset} does not decode: {exc}") from exc


def _check_values(path: Path, offset: int, values: Any, field: str) -> dict[str, bytes]:
    if not isinstance(values, dict) or not all(
            isinstance(k, str) and k.startswith("/") and isinstance(v, bytes) and v
            for k, v in values.items()):
        raise JournalError(f"{path}: record at offset {offset}: {field!r} is not a map of "
                           "key to non-empty bytes")
    return values


def read_snapshot(path: Path) -> tuple[int, dict[str, bytes]]:
    """(generation, values) of the snapshot at ``path``; JournalError if damaged."""
    data = path.read_bytes()
    if not data.startswith(SNAPSHOT_MAGIC):
        raise JournalError(f"{path}: not a snapshot (bad magic at offset 0)")
    offset = len(SNAPSHOT_MAGIC)
    if len(data) < offset + _FRAME.size:
        raise JournalError(f"{path}: truncated at offset {offset}")
    length, crc = _FRAME.unpack_from(data, offset)
    raw = data[offset + _FRAME.size:offset + _FRAME.size + length]
    if len(raw) != length or zlib.crc32(raw) != crc:
        raise JournalError(f"{path}: record at offset {offset} is truncated or fails its CRC")
    body = _unpack(path, offset, raw)
    if not isinstance(body, dict) or not isinstance(body.get("generation"), int):
        raise JournalError(f"{path}: record at offset {offset}: expected a generation")
    return body["generation"], _check_values(path, offset, body.get("values"), "values")


class JournalScan:
    """What :func:`scan_journal` found: generation, commits, and where the good part ends."""

    def __init__(self, generation: int, commits: list[tuple[dict[str, bytes], list[str]]],
                 good_end: int, size: int) -> None:
        self.generation = generation
        self.commits = commits
        #: Offset just past the last intact record; bytes after it are a torn tail.
        self.good_end = good_end
        self.size = size


def _records(path: Path, data: bytes, offset: int) -> Iterator[tuple[int, bytes | None]]:
    """(offset, body) per intact record; a final (offset, None) marks a torn tail."""
    size = len(data)
    while offset < size:
        end = offset + _FRAME.size
        if end > size:
            yield offset, None
            return
        length, crc = _FRAME.unpack_from(data, offset)
        end += length
        raw = data[offset + _FRAME.size:end]
        if length and end <= size and zlib.crc32(raw) == crc:
            yield offset, raw
            offset = end
            continue
        # A torn write only hits the last record: it runs to (or past) the end of the
        # file, or what follows is the zero fill of blocks allocated but never written.
        if end >= size or not data[offset:].strip(b"\0"):
            yield offset, None
            return
        reason = "has length 0" if not length else "fails its CRC"
        raise JournalError(f"{path}: record at offset {offset} {reason} and is not the "
                           "last one (the journal is corrupt; restore it or remove the damage)")


def scan_journal(path: Path) -> JournalScan:
    """Read a journal; a torn last record is reported (good_end < size), not raised."""
    data = path.read_bytes()
    if not data.startswith(JOURNAL_MAGIC):
        raise JournalError(f"{path}: not a journal (bad magic at offset 0)")
    records = _records(path, data, len(JOURNAL_MAGIC))
    first = next(records, None)
    if first is None or first[1] is None:
        raise JournalError(f"{path}: header record at offset {len(JOURNAL_MAGIC)} is missing "
                           "or damaged")
    header = _unpack(path, first[0], first[1])
    if not isinstance(header, dict) or not isinstance(header.get("generation"), int):
        raise JournalError(f"{path}: header at offset {first[0]}: expected a generation")
    commits: list[tuple[dict[str, bytes], list[str]]] = []
    good_end = len(data)
    for offset, raw in records:
        if raw is None:
            good_end = offset
            break
        body = _unpack(path, offset, raw)
        deletes = body.get("deletes") if isinstance(body, dict) else None
        if not isinstance(deletes, list) or not all(
                isinstance(k, str) and k.startswith("/") for k in deletes):
            raise JournalError(f"{path}: record at offset {offset}: 'deletes' is not a list "
                               "of keys")
        commits.append((_check_values(path, offset, body.get("puts"), "puts"), deletes))
    return JournalScan(header["generation"], commits, good_end, len(data))


# ------------------------------------------------------------------ files


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` durably; the temp file carries :data:`TMP_MARKER`."""
    atomic_write(path, data, tmp_path=path.with_name(f"{path.name}{TMP_MARKER}{uuid.uuid4().hex}"),
                 mode=0o600)


def read_old_layout(root: Path, skip: set[str]) -> dict[str, bytes]:
    """key → value of every non-empty ``<key>/.value`` file under ``root`` (old layout).

    Top-level names in ``skip`` and hidden directories (old temp and trash) are ignored.
    """
    found: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")
                       and not (here == root and d in skip)]
        if here == root or OLD_VALUE_FILE not in filenames:
            continue
        data = (here / OLD_VALUE_FILE).read_bytes()
        if data:
            found["/" + here.relative_to(root).as_posix()] = data
    return found


__all__ = [
    "JOURNAL_MAGIC",
    "OLD_VALUE_FILE",
    "SNAPSHOT_MAGIC",
    "TMP_MARKER",
    "JournalError",
    "JournalScan",
    "KeyTree",
    "encode_commit",
    "encode_journal_start",
    "encode_snapshot",
    "frame",
        "read_old_layout",
    "read_snapshot",
    "scan_journal",
        "write_atomic",
]
