"""The agent's secret store: references resolved from owner-only files, values never shown.

Real files in a temporary store: a value (one trailing newline dropped), references
with and without a leading ``/``; refused with a message naming the variable and the
reference but never the value: no store, a missing file, a group- or world-readable
file, a symbolic link, a FIFO (refused at once, never blocking), ``..``, an oversized
or binary value.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mesoslite.agent.secrets import MAX_SECRET_SIZE, SecretError, resolve_secrets


def store(tmp_path: Path) -> Path:
    """A store with ``prod/db`` (0600, value ``hunter2``)."""
    root = tmp_path / "store"
    (root / "prod").mkdir(parents=True)
    secret = root / "prod" / "db"
    secret.write_text("hunter2\n")
    secret.chmod(0o600)
    return root


def test_references_resolve_to_values(tmp_path: Path) -> None:
    """'/prod/db' and 'prod/db' name one file; a trailing newline is dropped."""
    root = store(tmp_path)
    assert resolve_secrets(str(root), {"A": "/prod/db", "B": "prod/db"}) == {
        "A": "hunter2", "B": "hunter2"}
    assert resolve_secrets("", {}) == {}


def _refused(root: Path | str, reference: str, words: str) -> None:
    with pytest.raises(SecretError) as caught:
        resolve_secrets(str(root), {"DB": reference})
    message = str(caught.value)
    assert words in message and "DB" in message and "hunter2" not in message, message


def test_bad_references_and_files_are_refused_naming_them(tmp_path: Path) -> None:
    """No store, missing, group-readable, link, FIFO, '..', too big, binary: refused."""
    root = store(tmp_path)
    _refused("", "/prod/db", "no secret store (--secret_store_dir)")
    _refused(root, "/prod/nope", "not in the secret store")
    loose = root / "prod" / "loose"
    loose.write_text("hunter2")
    loose.chmod(0o640)
    _refused(root, "prod/loose", "readable by group or others (mode 0640)")
    os.symlink(root / "prod" / "db", root / "prod" / "link")
    _refused(root, "prod/link", "cannot open it")
    os.symlink("/etc", root / "etc")
    _refused(root, "etc/hostname", "leads out of the secret store")
    os.mkfifo(root / "prod" / "fifo", 0o600)
    _refused(root, "prod/fifo", "not a regular file")
    _refused(root, "../store/prod/db", "not a path inside the secret store")
    big = root / "big"
    big.write_bytes(b"x" * (MAX_SECRET_SIZE + 1))
    big.chmod(0o600)
    _refused(root, "big", f"larger than {MAX_SECRET_SIZE} bytes")
    binary = root / "bin"
    binary.write_bytes(b"\xff\xfe")
    binary.chmod(0o600)
    _refused(root, "bin", "not UTF-8")
