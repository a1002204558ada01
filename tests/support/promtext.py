"""A strict reader of the Prometheus text exposition format (version 0.0.4) for tests.

:func:`parse` returns every sample as ``{(name, labels): value}`` with ``labels`` a
sorted tuple of ``(label, value)`` pairs (escapes undone), and raises ``ValueError``
on any line that is not a comment, a blank line or a well-formed sample, on a
sample whose ``# TYPE`` is missing, and on a series given twice.
"""

from __future__ import annotations

import math
import re

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE_RE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)(?: -?\d+)?$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
_TYPE_RE = re.compile(rf"^# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)$")
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

Labels = tuple[tuple[str, str], ...]


def _labels(text: str) -> Labels:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _LABEL_RE.match(text, pos)
        if m is None:
            raise ValueError(f"bad labels at {text[pos:]!r}")
        if m.group(1) in out:
            raise ValueError(f"label {m.group(1)} given twice")
        out[m.group(1)] = re.sub(r"\\[\\\"n]", lambda e: _ESCAPES[e.group(0)], m.group(2))
        pos = m.end()
    return tuple(sorted(out.items()))


def _family(name: str, types: dict[str, str]) -> str | None:
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and types.get(base) in ("histogram", "summary"):
            return base
    return None


def parse(text: str) -> dict[tuple[str, Labels], float]:
    """Every sample of ``text``; ``ValueError`` naming the first malformed line."""
    types: dict[str, str] = {}
    samples: dict[tuple[str, Labels], float] = {}
    for line in text.split("\n"):
        if not line or (line.startswith("#") and not line.startswith("# TYPE ")):
            continue
        typed = _TYPE_RE.match(line)
        if typed:
            types[typed.group(1)] = typed.group(2)
            continue
        m = _SAMPLE_RE.match(line)
        if m is None:
            raise ValueError(f"malformed line {line!r}")
        if _family(m.group(1), types) is None:
            raise ValueError(f"sample without # TYPE: {line!r}")
        key = (m.group(1), _labels(m.group(2) or ""))
        if key in samples:
            raise ValueError(f"series given twice: {line!r}")
        value = float(m.group(3))
        if math.isnan(value):
            raise ValueError(f"NaN sample: {line!r}")
        samples[key] = value
    return samples


def series(samples: dict[tuple[str, Labels], float], name: str,
           **labels: str) -> dict[Labels, float]:
    """The samples of metric ``name`` whose labels include all of ``labels``."""
    want = set(labels.items())
    return {lab: v for (n, lab), v in samples.items() if n == name and want <= set(lab)}
