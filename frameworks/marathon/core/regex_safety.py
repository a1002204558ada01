"""Which LIKE/UNLIKE patterns could take exponential time to match (PURE).

Owns :func:`catastrophic`, which reads a pattern's parse tree (the standard
library's own parser) and names the first form that makes a backtracking engine
blow up, or returns None:

- a variable quantifier (``+``, ``*``, ``?``, ``{m,n}``) nested in another one that
  repeats: ``(a+)+``, ``(a*)*``, ``(\\w+\\s?)*`` (also the safe ``(x+y)+``: such a
  pattern must be written without the nesting);
- an alternation under a repeat whose branches can start with the same character:
  ``(a|a)*``, ``(\\w|\\d)+``;
- a backreference (``(a)\\1``);
- more than :data:`MAX_UNBOUNDED` unbounded quantifiers in one pattern (``.*a.*a.*a.*a``
  is polynomial of that degree).

Patterns are also limited in length by the API (``MAX_CONSTRAINT_REGEX``).
"""

from __future__ import annotations

import re
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

#: Unbounded quantifiers (``*``, ``+``, ``{n,}``) allowed in one pattern.
MAX_UNBOUNDED = 3
#: A bounded quantifier repeating more than this many times counts as repeating.
_REPEATS = 10
_ANY = frozenset({-1})  # "any character" in first-character sets
_REPEAT_OPS = (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT))


class _Unsafe(Exception):
    """A catastrophic form, with its description."""


def catastrophic(pattern: str) -> str | None:
    """Why ``pattern`` could take exponential (or high-polynomial) time; None if it cannot.

    A pattern that does not compile is not judged here (None).
    """
    try:
        tree = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError, ValueError):
        return None
    counter = [0]
    try:
        _walk(list(tree), False, counter)
    except _Unsafe as exc:
        return str(exc)
    if counter[0] > MAX_UNBOUNDED:
        return (f"{counter[0]} unbounded quantifiers (*, +, {{n,}}), at most {MAX_UNBOUNDED} "
                "are allowed")
    return None


def _walk(items: list[Any], repeated: bool, counter: list[int]) -> None:
    for op, av in items:
        if op in _REPEAT_OPS:
            low, high, body = av
            if high == sre.MAXREPEAT:
                counter[0] += 1
            repeats = high == sre.MAXREPEAT or high > _REPEATS
            if repeated and low != high:
                raise _Unsafe("a quantifier nested in another quantifier, like (a+)+")
            _walk(list(body), repeated or repeats, counter)
        elif op == sre.SUBPATTERN:
            _walk(list(av[-1]), repeated, counter)
        elif op == sre.BRANCH:
            branches = [list(branch) for branch in av[1]]
            if repeated:
                _check_disjoint(branches)
            for branch in branches:
                _walk(branch, repeated, counter)
        elif op in (sre.GROUPREF, sre.GROUPREF_EXISTS):
            raise _Unsafe("a backreference")
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            _walk(list(av[1]), repeated, counter)


def _check_disjoint(branches: list[list[Any]]) -> None:
    seen: set[int] = set()
    for branch in branches:
        first = _first(branch)
        if first == _ANY or first & seen or (-1 in seen):
            raise _Unsafe("alternatives that can start with the same character under a "
                          "quantifier, like (a|ab)*")
        seen |= first


def _first(items: list[Any]) -> frozenset[int]:
    """The characters a match of ``items`` can start with (``_ANY`` when not known)."""
    for op, av in items:
        if op == sre.AT:
            continue
        if op == sre.LITERAL:
            return frozenset({av})
        if op == sre.IN:
            return _set_chars(av)
        if op == sre.SUBPATTERN:
            return _first(list(av[-1]))
        if op in _REPEAT_OPS and av[0] > 0:
            return _first(list(av[2]))
        return _ANY
    return _ANY  # can match the empty text


def _set_chars(av: list[Any]) -> frozenset[int]:
    chars: set[int] = set()
    for op, value in av:
        if op == sre.LITERAL:
            chars.add(value)
        elif op == sre.RANGE and value[1] - value[0] <= 256:
            chars.update(range(value[0], value[1] + 1))
        else:
            return _ANY
    return frozenset(chars)
