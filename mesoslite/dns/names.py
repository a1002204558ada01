"""Hostname labels for tasks, frameworks and agents, as Mesos-DNS makes them (PURE).

Owns: :func:`label` (any name → one RFC 1123 label: lower case, every character other
than a letter, digit or hyphen becomes a hyphen, no hyphen at either end, at most 63
characters; Marathon's task name ``app.group`` for the app ``/group/app`` so becomes
``app-group``), :func:`check_domain` (the ``--domain`` flag) and :func:`tag` (a short,
stable label part derived from an id, for per-task SRV targets).
"""

from __future__ import annotations

import functools
import hashlib
import re

#: Longest label (RFC 1035).
MAX_LABEL = 63
#: Longest name in presentation form, without the final dot (RFC 1035: 255 octets on the wire).
MAX_NAME = 253

_NOT_LABEL = re.compile(r"[^a-z0-9-]")
_DOMAIN_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@functools.lru_cache(maxsize=65536)
def label(name: str) -> str:
    """``name`` as one hostname label ("" when nothing usable is left)."""
    text = _NOT_LABEL.sub("-", name.lower()).strip("-")
    return text[:MAX_LABEL].rstrip("-")


def check_domain(domain: str) -> str:
    """``domain`` in lower case without a final dot (ValueError saying what is wrong)."""
    text = domain.strip().lower().rstrip(".")
    if not text:
        raise ValueError("expected a domain such as 'mesos', got an empty one")
    if len(text) > MAX_NAME - 64:
        raise ValueError(f"expected a domain of at most {MAX_NAME - 64} characters, "
                         f"got {len(text)}")
    for part in text.split("."):
        if not _DOMAIN_LABEL.match(part):
            raise ValueError(f"expected labels of letters, digits and inner hyphens, "
                             f"got {part!r} in {domain!r}")
    return text


@functools.lru_cache(maxsize=65536)
def tag(value: str, size: int = 5) -> str:
    """``size`` letters and digits derived from ``value`` (the same value, the same tag)."""
    digest = int.from_bytes(hashlib.sha1(value.encode(), usedforsecurity=False).digest()[:8],
                            "big")
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    out = []
    for _ in range(size):
        digest, index = divmod(digest, len(alphabet))
        out.append(alphabet[index])
    return "".join(out)
