"""Following a task's stdout or stderr through an agent's ``/files``, across rotations.

Owns: :class:`StreamFollower`.  With ``--container_logger=rotating`` the agent renames
``stdout`` to ``stdout.1`` (and shifts older files up) whenever it is full, so an offset
into "stdout" is meaningless after a rotation.  The follower remembers the *inode* of the
file it reads (``/files/browse`` lists it): after a rotation it finds that file under its
new name, reads it to the end, then moves to the next newer file from offset 0, until it
reaches the current ``stdout``.  A read is kept only when the listing before and after it
shows the same inode under the name read, so a rotation during a read is never mistaken
for data.  A file rotated out of existence (more rotations than kept files between two
polls) is skipped: the follower continues with the oldest file left (a new file that reuses the
inode number is told apart by being shorter than the offset reached, or by not ending
that offset with the last bytes read, checked once per poll).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Any

#: ``get_json(url)``: how the follower reads the agent (the ctl's HTTP helper).
GetJson = Callable[[str], Any]
#: How many of the last bytes read identify the file (against a reused inode number).
_TAIL = 32


class StreamFollower:
    """Reads ``<directory>/<name>`` and its rotated ``<name>.N`` (oldest first) from ``/files``."""

    def __init__(self, get_json: GetJson, base: str, directory: str, name: str,
                 chunk: int = 64 * 1024) -> None:
        """Start at the beginning of the oldest file kept (``<name>.N``, else ``<name>``)."""
        self._get = get_json
        self._base = base
        self._dir = directory.rstrip("/")
        self._name = name
        self._chunk = chunk
        self._rotated = re.compile(rf"^{re.escape(name)}(?:\.(\d+))?$")
        self.inode: int | None = None
        self.offset = 0
        self._tail = b""

    def _listing(self) -> dict[int, tuple[int, int]]:
        """Index (0 = current, N = ``name.N``) → (inode, size)."""
        query = urllib.parse.urlencode({"path": self._dir})
        out: dict[int, tuple[int, int]] = {}
        for entry in self._get(f"{self._base}/files/browse?{query}"):
            match = self._rotated.match(str(entry.get("path", "")).rsplit("/", 1)[-1])
            if match is None:
                continue
            index = int(match.group(1) or 0)
            if "inode" in entry:
                out[index] = (int(entry["inode"]), int(entry["size"]))
            elif index == 0:  # an agent that does not list inodes: no rotation to follow
                out[0] = (-1, int(entry.get("size", 0)))
        return out

    def _read(self, index: int, offset: int | None = None, length: int | None = None) -> str:
        name = self._name if index == 0 else f"{self._name}.{index}"
        query = urllib.parse.urlencode({
            "path": f"{self._dir}/{name}",
            "offset": self.offset if offset is None else offset,
            "length": self._chunk if length is None else length})
        return str(self._get(f"{self._base}/files/read?{query}").get("data", ""))

    def _same_file(self, index: int) -> bool:
        """The file at ``index`` ends its first ``offset`` bytes with what we read last."""
        if not self._tail:
            return True
        size = len(self._tail)
        return self._read(index, self.offset - size, size).encode("utf-8") == self._tail

    def _remember(self, text: str) -> None:
        data = text.encode("utf-8")
        self.offset += len(data)
        self._tail = (self._tail + data)[-_TAIL:]

    def _where(self, listing: dict[int, tuple[int, int]]) -> int | None:
        for index, (inode, size) in listing.items():
            # A file only grows until it is rotated: a smaller one with our inode number is a
            # new file that reused the number of ours, which was rotated out of existence.
            if inode == self.inode and size >= self.offset:
                return index
        return None

    def poll(self) -> str:
        """Everything written since the last poll (possibly ``""``)."""
        out: list[str] = []
        listing = self._listing()
        checked = False
        while True:
            if self.inode is None:  # start with the oldest file kept
                if not listing:
                    return "".join(out)
                self._start(listing[max(listing)][0])
            index = self._where(listing)
            if index is not None and not checked:
                same = self._same_file(index)
                after = self._listing()
                if after.get(index, (None, 0))[0] != self.inode:
                    listing = after  # rotated during the check: look for it again
                    continue
                checked = True
                if not same:
                    index = None
            if index is None:  # rotated away between two polls: continue with the oldest
                oldest = max(listing, default=None)
                if oldest is None:
                    return "".join(out)
                self._start(listing[oldest][0])
                continue
            text = self._read(index)
            after = self._listing()
            if after.get(index, (None, 0))[0] != self.inode:
                listing = after  # rotated during the read: read again under the new name
                continue
            listing = after
            if text:
                out.append(text)
                self._remember(text)
                continue
            if index == 0:
                return "".join(out)
            newer = listing.get(index - 1)  # done with this one: on to the next newer file
            if newer is None:
                return "".join(out)
            self._start(newer[0])

    def _start(self, inode: int) -> None:
        self.inode, self.offset, self._tail = inode, 0, b""
