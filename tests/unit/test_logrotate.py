"""The rotating container logger's file, and following a stream across its rotations."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from mesoslite.agent import AgentConfig
from mesoslite.agent.files import browse_entry
from mesoslite.cli import FlagError, build_config, build_parser
from mesoslite.ctl.follow import StreamFollower
from mesoslite.executor.logrotate import RotatingFile


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_rotation_caps_every_file_and_keeps_max_files(tmp_path: Path) -> None:
    """Files never pass max_size; stdout.1 is the newest rotated; beyond max_files is dropped."""
    out = RotatingFile(str(tmp_path / "stdout"), max_size=10, max_files=2)
    out.write(b"0123456789abcdef")  # split at the cap: one full file, rotated
    assert _files(tmp_path) == {"stdout": b"abcdef", "stdout.1": b"0123456789"}
    out.write(b"ghijKLMNOPQRSTUVWXYZ")
    files = _files(tmp_path)
    assert files == {"stdout": b"UVWXYZ", "stdout.1": b"KLMNOPQRST", "stdout.2": b"abcdefghij"}
    assert out.rotations == 3  # 0123456789 rotated out of existence (max_files=2)
    out.close()


def test_rotating_file_appends_to_what_is_there(tmp_path: Path) -> None:
    """A logger restarted on an existing file continues it and counts its size."""
    (tmp_path / "stderr").write_bytes(b"12345678")
    out = RotatingFile(str(tmp_path / "stderr"), max_size=10, max_files=1)
    out.write(b"abc")
    out.close()
    assert _files(tmp_path) == {"stderr": b"c", "stderr.1": b"12345678ab"}


def test_bad_sizes_are_refused(tmp_path: Path) -> None:
    """max_size and max_files below 1 are refused."""
    with pytest.raises(ValueError, match="max_size"):
        RotatingFile(str(tmp_path / "x"), max_size=0, max_files=1)


class _Agent:
    """``/files/browse`` and ``/files/read`` over a real directory, as the agent answers."""

    def __init__(self, directory: Path, on_read: Any = None) -> None:
        self.directory = directory
        self.on_read = on_read
        self.reads = 0

    def __call__(self, url: str) -> Any:
        parsed = urllib.parse.urlparse(url)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        if parsed.path == "/files/browse":
            return [browse_entry(str(p), str(p)) for p in sorted(self.directory.iterdir())]
        assert parsed.path == "/files/read"
        self.reads += 1
        with open(query["path"], "rb") as f:
            f.seek(int(query["offset"]))
            data = f.read(int(query["length"]))
        if self.on_read is not None:
            self.on_read(self.reads)
        return {"data": data.decode(), "offset": int(query["offset"])}


def test_follower_reads_across_rotations_without_loss(tmp_path: Path) -> None:
    """Lines written between polls, across several rotations, come out once and in order."""
    out = RotatingFile(str(tmp_path / "stdout"), max_size=64, max_files=5)
    follower = StreamFollower(_Agent(tmp_path), "", str(tmp_path), "stdout", chunk=16)
    seen = []
    for batch in range(10):
        for i in range(7):
            out.write(f"line-{batch:02d}-{i}\n".encode())
        seen.append(follower.poll())
    assert "".join(seen) == "".join(f"line-{b:02d}-{i}\n" for b in range(10) for i in range(7))
    assert out.rotations >= 5
    assert follower.poll() == ""


def test_follower_discards_a_read_that_raced_a_rotation(tmp_path: Path) -> None:
    """A rotation between the listing and the read is detected by inode and read again."""
    out = RotatingFile(str(tmp_path / "stdout"), max_size=8, max_files=3)
    out.write(b"aaaa")

    def rotate_on_first_read(count: int) -> None:
        if count == 1:
            out.write(b"bbbbcccc")  # stdout (aaaabbbb) becomes stdout.1; stdout = cccc

    follower = StreamFollower(_Agent(tmp_path, rotate_on_first_read), "", str(tmp_path),
                              "stdout")
    assert follower.poll() == "aaaabbbbcccc"


def test_follower_continues_with_the_oldest_when_its_file_rotated_away(tmp_path: Path) -> None:
    """More rotations than kept files between polls: continue with the oldest left."""
    out = RotatingFile(str(tmp_path / "stdout"), max_size=4, max_files=1)
    follower = StreamFollower(_Agent(tmp_path), "", str(tmp_path), "stdout")
    out.write(b"0123")
    assert follower.poll() == "0123"
    out.write(b"4567" + b"89ab" + b"cd")  # 0123 and 4567 are gone
    assert follower.poll() == "89abcd"


def test_follower_without_inodes_reads_the_current_file(tmp_path: Path) -> None:
    """An agent that lists no inodes: the current file is still read (no rotation support)."""
    (tmp_path / "stdout").write_text("hello\n")
    agent = _Agent(tmp_path)

    def no_inodes(url: str) -> Any:
        answer = agent(url)
        if isinstance(answer, list):
            return [{k: v for k, v in e.items() if k != "inode"} for e in answer]
        return answer

    assert StreamFollower(no_inodes, "", str(tmp_path), "stdout").poll() == "hello\n"


def test_logger_flags_and_environment() -> None:
    """--container_logger rotating with Mesos byte text; the executor's environment says so."""
    args = build_parser().parse_args(["agent", "--container_logger", "rotating",
                                      "--logrotate_max_stdout_size", "2MB",
                                      "--logrotate_max_stderr_size", "512KB",
                                      "--logrotate_max_files", "3"])
    cfg = build_config(AgentConfig, args)
    env = cfg.container_logger_environment()
    assert env == {"MESOSLITE_CONTAINER_LOGGER": "rotating",
                   "MESOSLITE_LOGROTATE_MAX_STDOUT_SIZE": str(2 << 20),
                   "MESOSLITE_LOGROTATE_MAX_STDERR_SIZE": str(512 << 10),
                   "MESOSLITE_LOGROTATE_MAX_FILES": "3"}
    assert AgentConfig().container_logger_environment() == {}
    assert AgentConfig().logrotate_max_stdout_size == 10 << 20  # Mesos's 10MB
    for flag, value in (("--container_logger", "syslog"), ("--logrotate_max_stdout_size", "0"),
                        ("--logrotate_max_stderr_size", "10XB"), ("--logrotate_max_files", "0")):
        with pytest.raises(FlagError) as err:
            build_config(AgentConfig, build_parser().parse_args(["agent", flag, value]))
        assert err.value.flag == flag


def test_inode_is_listed(tmp_path: Path) -> None:
    """/files/browse entries carry the inode a follower needs."""
    (tmp_path / "f").write_text("x")
    assert browse_entry(str(tmp_path / "f"), "f")["inode"] == os.stat(tmp_path / "f").st_ino
