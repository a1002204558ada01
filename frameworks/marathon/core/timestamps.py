"""ISO-8601 timestamps the way Marathon shows them (PURE).

Owns: :func:`iso` (epoch seconds → ``2026-01-02T03:04:05.678Z``),
:func:`parse_iso` (the reverse, accepting what Marathon accepts for
versions: ``Z`` or a numeric offset, with or without fractional seconds)
and :func:`new_version` (a fresh app version from an injected clock).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import time
from typing import Protocol

_ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))$"
)


#: Epoch seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
_MIN_SECONDS = -62135596800
_MAX_SECONDS = 253402300799


class _Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch."""
        ...


def iso(ts: float) -> str:
    """Epoch seconds as ISO-8601 UTC with milliseconds and a ``Z`` suffix."""
    if not math.isfinite(ts):
        raise ValueError(f"timestamp: expected a finite number of seconds, got {ts!r}")
    millis = round(ts * 1000)
    seconds, ms = divmod(millis, 1000)
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS:
        raise ValueError(f"timestamp: {ts!r} is outside the years 1-9999")
    # time.gmtime + % formatting: ~4x faster than datetime + strftime, and /v2/apps
    # renders tens of thousands of these per request.
    t = time.gmtime(seconds)
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{ms:03d}Z")


def parse_iso(text: str) -> float:
    """Epoch seconds of an ISO-8601 date-time with ``Z`` or an offset.

    Raises :class:`ValueError` naming the value when it is not such a time.
    """
    match = _ISO_RE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"expected an ISO-8601 date-time such as 2026-01-02T03:04:05.678Z, got {text!r}"
        )
    year, month, day, hour, minute = (int(match.group(i)) for i in range(1, 6))
    second = int(match.group(6) or 0)
    fraction = match.group(7) or ""
    micros = int((fraction + "000000")[:6]) if fraction else 0
    offset = _dt.timedelta(0)
    if match.group(9):
        offset = _dt.timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
        if match.group(9) == "-":
            offset = -offset
    try:
        moment = _dt.datetime(
            year, month, day, hour, minute, second, micros, tzinfo=_dt.timezone(offset)
        )
        return moment.timestamp()
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"expected a valid date-time, got {text!r}: {exc}") from None


def new_version(clock: _Clock) -> str:
    """A new app version: the clock's current time, rendered with :func:`iso`."""
    return iso(clock.time())
