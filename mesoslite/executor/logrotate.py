"""The rotating container logger: a task's stdout and stderr written to size-capped files.

Owns: :class:`RotatingFile` (append to ``<sandbox>/stdout``; when the next write would
pass ``max_size`` bytes the file becomes ``stdout.1``, the older ones shift up to
``stdout.<max_files>`` and the oldest is deleted, as logrotate's numbered rotation does)
and the ``python -m mesoslite.executor.logrotate`` process that the command executor
starts beside a task when the agent runs ``--container_logger=rotating`` (Mesos's
LogrotateContainerLogger): it reads the task's stdout from its standard input and its
stderr from ``--stderr_fd``, writes each to its own :class:`RotatingFile`, and exits once
both pipes are closed (the task and everything it started have exited).  It runs in its
own session, so killing the task's process group does not lose what is still in the
pipes.  A reader follows a stream across rotations by the file's inode
(``/files/browse`` lists it; ``mesoslite ctl logs -f`` does this).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import sys

#: Mesos's LogrotateContainerLogger defaults: 10 MB per stream.
DEFAULT_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 5
_CHUNK = 64 * 1024


def rotated_name(path: str, index: int) -> str:
    """``stdout`` for 0, ``stdout.1`` … for older files."""
    return path if index == 0 else f"{path}.{index}"


class RotatingFile:
    """An append-only file rotated by size, keeping ``max_files`` rotated files."""

    def __init__(self, path: str, max_size: int, max_files: int) -> None:
        """Open (append to) ``path``; rotation happens on :meth:`write`."""
        if max_size < 1 or max_files < 1:
            raise ValueError(f"max_size and max_files: expected >= 1, got {max_size}, "
                             f"{max_files}")
        self.path = path
        self.max_size = max_size
        self.max_files = max_files
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._size = os.fstat(self._fd).st_size
        self.rotations = 0

    def write(self, data: bytes) -> None:
        """Append ``data``, rotating first whenever the current file would pass the cap.

        Data larger than the cap is split at the cap, so no file is ever larger.
        """
        view = memoryview(data)
        while view:
            room = self.max_size - self._size
            if room <= 0:
                self.rotate()
                room = self.max_size
            part = view[:room]
            written = os.write(self._fd, part)
            self._size += written
            view = view[written:]

    def rotate(self) -> None:
        """``stdout`` → ``stdout.1`` → … → ``stdout.<max_files>``; drop the oldest; reopen."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(rotated_name(self.path, self.max_files))
        for index in range(self.max_files - 1, -1, -1):
            with contextlib.suppress(FileNotFoundError):
                os.rename(rotated_name(self.path, index), rotated_name(self.path, index + 1))
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                           0o644)
        self._size = 0
        self.rotations += 1

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


def pump(streams: dict[int, RotatingFile]) -> None:
    """Copy every readable descriptor to its file until all of them reach end of file."""
    selector = selectors.DefaultSelector()
    for fd in streams:
        os.set_blocking(fd, True)
        selector.register(fd, selectors.EVENT_READ)
    open_fds = set(streams)
    while open_fds:
        for key, _events in selector.select():
            fd = int(key.fd)
            try:
                data = os.read(fd, _CHUNK)
            except InterruptedError:
                continue
            if data:
                streams[fd].write(data)
                continue
            selector.unregister(fd)
            open_fds.discard(fd)
    for out in streams.values():
        out.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m mesoslite.executor.logrotate --dir SANDBOX --stderr_fd N [sizes]``."""
    parser = argparse.ArgumentParser(description="rotate a task's stdout/stderr by size")
    parser.add_argument("--dir", required=True, help="the sandbox")
    parser.add_argument("--stderr_fd", type=int, required=True)
    parser.add_argument("--max_stdout_size", type=int, default=DEFAULT_MAX_SIZE)
    parser.add_argument("--max_stderr_size", type=int, default=DEFAULT_MAX_SIZE)
    parser.add_argument("--max_files", type=int, default=DEFAULT_MAX_FILES)
    args = parser.parse_args(argv)
    streams = {
        0: RotatingFile(os.path.join(args.dir, "stdout"), args.max_stdout_size, args.max_files),
        args.stderr_fd: RotatingFile(os.path.join(args.dir, "stderr"), args.max_stderr_size,
                                     args.max_files),
    }
    pump(streams)
    return 0


if __name__ == "__main__":
    sys.exit(main())
