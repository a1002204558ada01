"""RecordIO, the framing of Mesos's event streams (PURE).

Owns: :func:`encode` (one record: ``<decimal length>\\n<bytes>``, no trailing newline)
and :class:`Decoder`, an incremental parser (feed bytes, get whole records) that
refuses a malformed or oversized length with :class:`RecordIOError`.
"""

from __future__ import annotations

#: Largest record a :class:`Decoder` accepts by default (bytes).
DEFAULT_MAX_RECORD = 64 * 1024 * 1024
#: Longest decimal length prefix accepted (digits of a uint64).
_MAX_DIGITS = 20


class RecordIOError(ValueError):
    """The stream is not RecordIO (a bad or oversized length)."""


def encode(record: bytes) -> bytes:
    """One RecordIO record for ``record`` (which must not be empty)."""
    if not record:
        raise RecordIOError("a record is never empty")
    return b"%d\n%s" % (len(record), record)


class Decoder:
    """Turns a byte stream into records; keeps a partial record until it is whole."""

    def __init__(self, max_record: int = DEFAULT_MAX_RECORD) -> None:
        """Refuse records longer than ``max_record`` bytes."""
        self.max_record = max_record
        self._buffer = bytearray()
        self._want: int | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the records it completed (RecordIOError on bad framing)."""
        self._buffer += data
        records: list[bytes] = []
        while True:
            if self._want is None:
                newline = self._buffer.find(b"\n")
                if newline < 0:
                    if len(self._buffer) > _MAX_DIGITS:
                        raise RecordIOError("expected a decimal length and a newline")
                    return records
                head = bytes(self._buffer[:newline])
                if not head.isdigit() or len(head) > _MAX_DIGITS:
                    raise RecordIOError(f"expected a decimal length, got {head[:24]!r}")
                length = int(head)
                if length == 0 or length > self.max_record:
                    raise RecordIOError(
                        f"record length {length} outside 1-{self.max_record}")
                del self._buffer[:newline + 1]
                self._want = length
            if len(self._buffer) < self._want:
                return records
            records.append(bytes(self._buffer[:self._want]))
            del self._buffer[:self._want]
            self._want = None

    @property
    def pending(self) -> int:
        """Bytes held that do not form a whole record yet."""
        return len(self._buffer)
