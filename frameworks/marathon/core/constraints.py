"""Placement constraints of Marathon apps, evaluated (PURE).

Owns: the meaning of ``[field, OPERATOR, value?]`` constraints for one
candidate agent, given where the app's tasks already are.  Parsing and
validation of the JSON form live in ``wire.validation``; here a constraint is an
already-valid tuple such as ``("hostname", "UNIQUE")`` or
``("rack", "GROUP_BY", "3")``.

The field is ``hostname`` (or ``@hostname``), ``@region``/``@zone`` (read from
the agent attributes ``region``/``zone``) or any agent attribute name.  A
*placed* entry is the attribute dict of one of the app's active tasks (with
its agent's ``hostname`` under ``"hostname"``), including tasks already placed
earlier in the same matching round.

Operators (Marathon's meaning):

* ``UNIQUE``: no placed task has the candidate's value.
* ``CLUSTER``: the candidate's value equals the given value; without a value,
  equals the value of the first placed task that has one (anything goes when
  none has).
* ``GROUP_BY``: spread evenly.  A value no placed task has yet is always
  accepted; a value already used is accepted only once at least ``value``
  distinct values are in use (default: the number in use) and that value has
  the minimum count among them.
* ``LIKE`` / ``UNLIKE``: the value (a regular expression) matches / does not
  match the candidate's whole value.
* ``MAX_PER``: fewer than ``value`` placed tasks share the candidate's value.
* ``IS``: the candidate's value equals ``value`` (numbers compare as numbers,
  so ``"1.0"`` IS ``"1"``).

An agent without the field is accepted only by ``UNLIKE``.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from frameworks.marathon.core.regex_safety import catastrophic

__all__ = ["OPERATORS", "check", "check_all", "field_value", "first_unmet"]

#: The operators understood by :func:`check`.
OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS")

#: Longest LIKE/UNLIKE pattern matched (the API refuses longer ones).
MAX_PATTERN_LENGTH = 1000

_AT_FIELDS = {"@hostname": "hostname", "@region": "region", "@zone": "zone"}


def field_value(field: str, attrs: Mapping[str, str]) -> str | None:
    """The value of constraint field ``field`` in an agent's attributes (None if absent)."""
    return attrs.get(_AT_FIELDS.get(field, field))


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str] | None:
    """The compiled pattern, or None when it is not a valid or not a safe regular expression.

    A pattern stored before the API refused catastrophic forms
    (:func:`~frameworks.marathon.core.regex_safety.catastrophic`) matches nothing.
    """
    if len(pattern) > MAX_PATTERN_LENGTH or catastrophic(pattern) is not None:
        return None
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return None


@functools.lru_cache(maxsize=4096)
def _matches(pattern: str, value: str) -> bool | None:
    """Whether ``value`` matches all of ``pattern`` (cached); None for a refused pattern."""
    regex = _regex(pattern)
    if regex is None:
        return None
    return regex.fullmatch(value) is not None


def _as_int(value: str | None, default: int) -> int:
    """``value`` as an int (floats like ``"2.0"`` accepted); ``default`` when absent/bad."""
    if value is None or value == "":
        return default
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return default


def _same_value(a: str, b: str) -> bool:
    """Text equality, or numeric equality when both parse as numbers."""
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def _placed_values(field: str, placed: Iterable[Mapping[str, str]]) -> list[str]:
    """The field's values among placed tasks, in order, skipping tasks without it."""
    out = []
    for attrs in placed:
        value = field_value(field, attrs)
        if value is not None:
            out.append(value)
    return out


def check(
    constraint: Sequence[str],
    candidate_attrs: Mapping[str, str],
    placed: Sequence[Mapping[str, str]],
) -> bool:
    """True when one more task of the app may go onto an agent with ``candidate_attrs``.

    ``constraint`` is ``(field, OPERATOR)`` or ``(field, OPERATOR, value)``;
    an unknown operator or a malformed constraint never matches.
    """
    if len(constraint) < 2:
        return False
    field, op = constraint[0], constraint[1]
    value = constraint[2] if len(constraint) > 2 else None
    mine = field_value(field, candidate_attrs)
    if op == "UNLIKE":
        if mine is None:
            return True
        return _matches(value or "", mine) is False
    if mine is None:
        return False
    if op == "UNIQUE":
        return all(v != mine for v in _placed_values(field, placed))
    if op == "CLUSTER":
        if value:
            return mine == value
        values = _placed_values(field, placed)
        return not values or values[0] == mine
    if op == "GROUP_BY":
        counts = Counter(_placed_values(field, placed))
        if mine not in counts:
            return True
        expected = _as_int(value, len(counts))
        return len(counts) >= expected and counts[mine] == min(counts.values())
    if op == "LIKE":
        return _matches(value or "", mine) is True
    if op == "MAX_PER":
        limit = _as_int(value, 0)
        return sum(1 for v in _placed_values(field, placed) if v == mine) < limit
    if op == "IS":
        return value is not None and _same_value(mine, value)
    return False


def first_unmet(
    constraints: Iterable[Sequence[str]],
    candidate_attrs: Mapping[str, str],
    placed: Sequence[Mapping[str, str]],
) -> Sequence[str] | None:
    """The first constraint the candidate does not satisfy, or None when all hold."""
    for constraint in constraints:
        if not check(constraint, candidate_attrs, placed):
            return constraint
    return None


def check_all(
    constraints: Iterable[Sequence[str]],
    candidate_attrs: Mapping[str, str],
    placed: Sequence[Mapping[str, str]],
) -> bool:
    """True when the candidate satisfies every constraint."""
    return first_unmet(constraints, candidate_attrs, placed) is None
