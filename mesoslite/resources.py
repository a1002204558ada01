"""Resource values offered by agents and consumed by tasks (PURE).

This module owns :class:`Resources`, the immutable value type for named resources, and
everything needed to build, print and combine it: the Mesos text syntax
(``cpus:4;mem:8192;ports:[31000-32000];tags:{a,b}``), plain dicts, the Mesos JSON wire
form, and the arithmetic, containment and range helpers used on the allocator's hot path.
It performs no I/O. Contents: :class:`Resources`, :class:`ResourcesError`,
:data:`SCALAR_NAMES_ORDER`, :data:`MAX_SCALAR`, :data:`MAX_RANGE_VALUE`.

Each name has exactly one kind of value:

* SCALAR: fixed point with three decimals, held as integer thousandths so sums never
  drift (``0.1 + 0.2 == 0.3``); extra decimals are rounded half to even.
  ``cpus``, ``gpus``, ``mem`` and ``disk`` are always scalars.
* RANGES: unsigned 64-bit ranges, kept sorted with overlapping and adjacent ones merged.
* SET: a set of item strings.

Empty values (zero scalars, no ranges, no items) are dropped: a resource is either present
with a positive amount or absent. Reservations (a role other than ``*``) are rejected.
Internally a Resources wraps a plain dict of name to ``int`` (thousandths), a tuple of
``(begin, end)`` pairs, or a ``frozenset`` of items; the Python type is the kind.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Context, Decimal, DecimalException
from typing import Any, Final, final

__all__ = ["MAX_RANGE_VALUE", "MAX_SCALAR", "SCALAR_NAMES_ORDER", "Resources", "ResourcesError"]

SCALAR_NAMES_ORDER: Final = ("cpus", "gpus", "mem", "disk")
"""Well-known scalar names, in printing order; they must always be scalars."""

MAX_SCALAR: Final = 10**12
"""Largest scalar accepted on input: every value up to it survives a float exactly."""

MAX_RANGE_VALUE: Final = 2**64 - 1
"""Largest range bound (Mesos ranges are uint64)."""

_MAX_SCALAR_DEC: Final = Decimal(MAX_SCALAR)
_MILLI_QUANTUM: Final = Decimal("0.001")
_DEC_CTX: Final = Context(prec=60, rounding=ROUND_HALF_EVEN)
_WELL_KNOWN: Final = frozenset(SCALAR_NAMES_ORDER)
_ORDER_INDEX: Final = {name: i for i, name in enumerate(SCALAR_NAMES_ORDER)}

_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")
_ROLE_RE: Final = re.compile(r"([^()]*?)\s*\(\s*([^()]*?)\s*\)")
_ITEM_RE: Final = re.compile(r"[A-Za-z0-9_.\-/@+=~%]+")
_SCALAR_RE: Final = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_RANGE_RE: Final = re.compile(r"\s*([0-9]+)\s*-\s*([0-9]+)\s*")

_NAME_CHARS: Final = "a non-empty name of characters [A-Za-z0-9_.-]"
_ITEM_CHARS: Final = "a set item of characters [A-Za-z0-9_.-/@+=~%]"
_KIND_NAMES: Final[dict[type, str]] = {int: "SCALAR", tuple: "RANGES", frozenset: "SET"}
_WIRE_KINDS: Final[dict[str, tuple[type, str]]] = {
    "SCALAR": (int, "scalar"),
    "RANGES": (tuple, "ranges"),
    "SET": (frozenset, "set"),
}
_WIRE_KEYS: Final = frozenset(
    {"name", "type", "scalar", "ranges", "set", "role", "allocation_info"}
)
_PAYLOAD_KEYS: Final = {
    int: frozenset({"value"}),
    tuple: frozenset({"range"}),
    frozenset: frozenset({"item"}),
}
_BOUND_KEYS: Final = ("begin", "end")

_RangeList = tuple[tuple[int, int], ...]


class ResourcesError(ValueError):
    """Raised for invalid resources; ``.field`` names the offending part.

    Fields look like ``'cpus'``, ``'resources[1].name'`` or ``'resources[2].scalar.value'``;
    ``str(err)`` is ``'<field>: <message>'`` and names the value and what was expected.
    """

    field: str

    def __init__(self, message: str, field: str = "resources") -> None:
        """Create the error for ``field``."""
        super().__init__(f"{field}: {message}")
        self.field = field


def _show(value: object) -> str:
    """Return a short repr of ``value`` for error messages; never raises."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # deeply nested containers; ints too long to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def _expected(field: str, what: str, value: object) -> ResourcesError:
    """Build the standard error: '<field>: expected <what>, got <value>'."""
    return ResourcesError(f"expected {what}, got {_show(value)}", field)


# -- validation and conversion ----------------------------------------------------------


def _decimal_to_milli(text: str, field: str, given: object) -> int:
    """Convert decimal text to thousandths; rejects negative, non-finite and too large."""
    try:
        value = Decimal(text)
        if not value.is_finite() or value < 0:
            raise _expected(field, "a non-negative finite number", given)
        if value > _MAX_SCALAR_DEC:
            raise _expected(field, f"a number at most {MAX_SCALAR}", given)
        return int(value.quantize(_MILLI_QUANTUM, context=_DEC_CTX).scaleb(3, context=_DEC_CTX))
    except DecimalException:
        raise _expected(field, "a representable number", given) from None


def _number_to_milli(value: object, field: str) -> int:
    """Convert an int or float (never a bool) to thousandths."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _expected(field, "a number", value)
    if isinstance(value, int):
        if not 0 <= value <= MAX_SCALAR:
            raise _expected(field, f"a number between 0 and {MAX_SCALAR}", value)
        return value * 1000
    if not math.isfinite(value):
        raise _expected(field, "a non-negative finite number", value)
    # repr() is the shortest text that maps back to the float: what the caller meant by 0.1.
    return _decimal_to_milli(repr(value), field, value)


def _range_bound(value: object, field: str) -> int:
    """Validate one range bound: an int (never a bool) in 0..MAX_RANGE_VALUE."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RANGE_VALUE:
        raise _expected(field, f"an integer range bound between 0 and {MAX_RANGE_VALUE}", value)
    return value


def _check_pair(begin: int, end: int, field: str) -> tuple[int, int]:
    """Reject a range whose begin exceeds its end."""
    if begin > end:
        raise _expected(field, "a range with begin <= end", f"{begin}-{end}")
    return (begin, end)


def _check_item(item: object, field: str) -> str:
    """Validate one set item."""
    if not isinstance(item, str) or _ITEM_RE.fullmatch(item) is None:
        raise _expected(field, _ITEM_CHARS, item)
    return item


def _check_name(name: object, field: str, allow_role: bool) -> str:
    """Validate a resource name; with ``allow_role``, ``name(*)`` means unreserved ``name``."""
    if not isinstance(name, str):
        raise _expected(field, "a resource name string", name)
    if allow_role and "(" in name:
        match = _ROLE_RE.fullmatch(name)
        if match is None:
            raise _expected(field, "a name like 'cpus' or 'cpus(*)'", name)
        if match.group(2) != "*":
            raise ResourcesError(
                f"reservations are not supported: {name!r} reserves for role"
                f" {match.group(2)!r}; expected an unreserved resource such as 'cpus:4'",
                field,
            )
        name = match.group(1)
    if _NAME_RE.fullmatch(name) is None:
        raise _expected(field, _NAME_CHARS, name)
    return name


# -- range algebra (inputs and outputs are normalized: sorted, disjoint, non-adjacent) ----


def _normalize(pairs: Iterable[tuple[int, int]]) -> _RangeList:
    """Sort ranges and merge overlapping or adjacent ones."""
    ordered = sorted(pairs)
    if not ordered:
        return ()
    out: list[tuple[int, int]] = []
    cur_begin, cur_end = ordered[0]
    for begin, end in ordered:
        if begin <= cur_end + 1:
            cur_end = max(cur_end, end)
        else:
            out.append((cur_begin, cur_end))
            cur_begin, cur_end = begin, end
    out.append((cur_begin, cur_end))
    return tuple(out)


def _subtract_ranges(have: _RangeList, remove: _RangeList) -> _RangeList:
    """Return ``have`` minus ``remove``."""
    out: list[tuple[int, int]] = []
    j, n_remove = 0, len(remove)
    for begin, end in have:
        while j < n_remove and remove[j][1] < begin:
            j += 1
        cur, k = begin, j
        while k < n_remove and remove[k][0] <= end:
            r_begin, r_end = remove[k]
            if r_begin > cur:
                out.append((cur, r_begin - 1))
            cur = max(cur, r_end + 1)
            if cur > end:
                break
            k += 1
        if cur <= end:
            out.append((cur, end))
    return tuple(out)


def _ranges_contain(have: _RangeList, want: _RangeList) -> bool:
    """True when every range of ``want`` lies inside ``have``."""
    i, n_have = 0, len(have)
    for begin, end in want:
        while i < n_have and have[i][1] < begin:
            i += 1
        if i == n_have or have[i][0] > begin or have[i][1] < end:
            return False
    return True


# -- text syntax -------------------------------------------------------------------------


def _format_value(value: Any) -> str:
    """Print one internal value in Mesos text syntax ('0.5', '[1-2,5-9]', '{a,b}')."""
    if type(value) is int:
        whole, frac = divmod(value, 1000)
        return str(whole) if frac == 0 else f"{whole}.{frac:03d}".rstrip("0")
    if type(value) is tuple:
        return "[" + ",".join(f"{b}-{e}" for b, e in value) + "]"
    return "{" + ",".join(sorted(value)) + "}"


def _parse_ranges_text(text: str, field: str) -> list[tuple[int, int]]:
    """Parse '[1-2, 5-9]' into pairs."""
    if len(text) < 2 or not text.endswith("]"):
        raise _expected(field, "ranges like '[31000-32000,33000-33010]'", text)
    inner = text[1:-1].strip()
    pairs: list[tuple[int, int]] = []
    for part in inner.split(",") if inner else ():
        match = _RANGE_RE.fullmatch(part)
        if match is None:
            raise _expected(field, f"ranges like '[31000-32000,33000-33010]' in {text!r}", part)
        begin_text, end_text = match.groups()
        if max(len(begin_text), len(end_text)) > 20 or int(end_text) > MAX_RANGE_VALUE:
            raise _expected(field, f"range bounds between 0 and {MAX_RANGE_VALUE}", part.strip())
        pairs.append(_check_pair(int(begin_text), int(end_text), field))
    return pairs


def _parse_set_text(text: str, field: str) -> set[str]:
    """Parse '{a, b}' into items."""
    if len(text) < 2 or not text.endswith("}"):
        raise _expected(field, "a set like '{a,b}'", text)
    inner = text[1:-1].strip()
    return {_check_item(part.strip(), field) for part in inner.split(",")} if inner else set()


def _parse_text_value(text: str, field: str) -> tuple[type, Any]:
    """Parse a stripped text value: '4' -> SCALAR, '[1-2]' -> RANGES, '{a,b}' -> SET."""
    if text.startswith("["):
        return tuple, _parse_ranges_text(text, field)
    if text.startswith("{"):
        return frozenset, _parse_set_text(text, field)
    if _SCALAR_RE.fullmatch(text) is None:
        raise _expected(
            field, "a non-negative decimal number, '[begin-end,...]' or '{item,...}'", text
        )
    return int, _decimal_to_milli(text, field, text)


# -- dict and wire forms -----------------------------------------------------------------


def _dict_entry(name: str, value: object) -> tuple[type, Any]:
    """Convert one ``from_dict`` value to (kind, value)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int, _number_to_milli(value, name)
    if isinstance(value, str):
        return _parse_text_value(value.strip(), name)
    if isinstance(value, set | frozenset):
        return frozenset, {_check_item(item, name) for item in value}
    if isinstance(value, bool | Mapping | bytes | bytearray) or not isinstance(value, Iterable):
        raise _expected(
            name, "a number, (begin, end) pairs, a set of strings or a text value", value
        )
    pairs: list[tuple[int, int]] = []
    for pair in value:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise _expected(name, "a (begin, end) pair", pair)
        pairs.append(_check_pair(_range_bound(pair[0], name), _range_bound(pair[1], name), name))
    return tuple, pairs


def _expect_dict(value: object, field: str, allowed: frozenset[str]) -> dict[Any, Any]:
    """Require a JSON object whose keys are all in ``allowed``."""
    if not isinstance(value, dict):
        raise _expected(field, "an object", value)
    for key in value:
        if key not in allowed:
            raise _expected(field, f"only the keys {sorted(allowed)}", key)
    return value


def _expect_list(value: object, field: str) -> list[Any] | tuple[Any, ...]:
    """Require a JSON array."""
    if not isinstance(value, list | tuple):
        raise _expected(field, "a list", value)
    return value


def _wire_entry(item: object, field: str) -> tuple[str, type, Any]:
    """Validate one Mesos JSON resource object and return (name, kind, value)."""
    if not isinstance(item, dict):
        raise _expected(field, "a resource object", item)
    for key in item:
        if key not in _WIRE_KEYS:
            raise _expected(f"{field}.{key}", f"only the keys {sorted(_WIRE_KEYS)}", key)
    if "name" not in item:
        raise _expected(f"{field}.name", "a 'name' key", None)
    name = _check_name(item["name"], f"{field}.name", allow_role=False)
    wire_type = item.get("type")
    if not isinstance(wire_type, str) or wire_type not in _WIRE_KINDS:
        raise _expected(f"{field}.type", "one of 'SCALAR', 'RANGES', 'SET'", wire_type)
    role = item.get("role", "*")
    if not (isinstance(role, str) and role == "*"):
        raise _expected(f"{field}.role", "role '*' (reservations are not supported)", role)
    if not isinstance(item.get("allocation_info", {}), dict):
        raise _expected(f"{field}.allocation_info", "an object", item["allocation_info"])
    kind, value_key = _WIRE_KINDS[wire_type]
    for other in ("scalar", "ranges", "set"):
        if other != value_key and other in item:
            raise _expected(
                f"{field}.{other}", f"no {other!r} key for type {wire_type}", item[other]
            )
    field = f"{field}.{value_key}"
    payload = _expect_dict(item.get(value_key), field, _PAYLOAD_KEYS[kind])
    if kind is int:
        if "value" not in payload:
            raise _expected(f"{field}.value", "a 'value' key", None)
        return name, kind, _number_to_milli(payload["value"], f"{field}.value")
    if kind is tuple:
        pairs: list[tuple[int, int]] = []
        for j, entry in enumerate(_expect_list(payload.get("range", []), f"{field}.range")):
            entry_field = f"{field}.range[{j}]"
            entry = _expect_dict(entry, entry_field, frozenset(_BOUND_KEYS))
            bounds = [_range_bound(entry.get(key), f"{entry_field}.{key}") for key in _BOUND_KEYS]
            pairs.append(_check_pair(bounds[0], bounds[1], entry_field))
        return name, kind, pairs
    items = _expect_list(payload.get("item", []), f"{field}.item")
    return name, kind, {_check_item(x, f"{field}.item[{j}]") for j, x in enumerate(items)}


class _Builder:
    """Accumulates entries, merging repeated names and enforcing one kind per name."""

    __slots__ = ("kinds", "values")

    def __init__(self) -> None:
        """Start empty."""
        self.kinds: dict[str, type] = {}
        self.values: dict[str, Any] = {}

    def add(self, name: str, kind: type, value: Any, field: str) -> None:
        """Add an entry: int thousandths, a list of pairs, or a set of items."""
        previous = self.kinds.get(name)
        if previous is None:
            if kind is not int and name in _WELL_KNOWN:
                raise _expected(field, f"{name!r} to be a SCALAR", _KIND_NAMES[kind])
            self.kinds[name] = kind
            self.values[name] = value
        elif previous is not kind:
            raise _expected(
                field, f"{name!r} to be {_KIND_NAMES[previous]} as before", _KIND_NAMES[kind]
            )
        elif kind is int:
            self.values[name] += value
        else:
            self.values[name] = (
                self.values[name] + value if kind is tuple else value | self.values[name]
            )

    def build(self) -> Resources:
        """Normalize into a Resources, dropping empty values."""
        out: dict[str, Any] = {}
        for name, value in self.values.items():
            kind = self.kinds[name]
            if kind is tuple:
                value = _normalize(value)
            elif kind is frozenset:
                value = frozenset(value)
            if value:
                out[name] = value
        return _new(out)


def _sort_key(name: str) -> tuple[int, str]:
    """Canonical order: cpus, gpus, mem, disk, then the other names alphabetically."""
    return (_ORDER_INDEX.get(name, len(SCALAR_NAMES_ORDER)), name)


# -- the value type ----------------------------------------------------------------------


@final
class Resources:
    """An immutable, hashable bag of named resources with equality by value.

    Build with :meth:`parse`, :meth:`from_dict` or :meth:`from_wire`; ``Resources()`` is
    empty. ``+`` sums and unions, ``-`` removes what is there and never raises, ``a <= b``
    means ``b`` contains everything in ``a``.
    """

    __slots__ = ("_d", "_h")

    _d: dict[str, Any]
    _h: int

    def __init__(self) -> None:
        """Create an empty Resources."""
        _set_d(self, {})

    @classmethod
    def parse(cls, text: str) -> Resources:
        """Parse Mesos text such as ``'cpus:4;mem:8192;ports:[31000-32000];tags:{a,b}'``.

        Whitespace around tokens is ignored and a name given twice is added together.
        """
        if not isinstance(text, str):
            raise _expected("resources", "resources text", text)
        builder = _Builder()
        for i, token in enumerate(text.split(";")):
            token = token.strip()
            if not token:
                continue
            raw_name, sep, raw_value = token.partition(":")
            if not sep:
                raise _expected(f"resources[{i}]", "'name:value'", token)
            name = _check_name(raw_name.strip(), f"resources[{i}].name", allow_role=True)
            kind, value = _parse_text_value(raw_value.strip(), name)
            builder.add(name, kind, value, name)
        return builder.build()

    @classmethod
    def from_dict(
        cls,
        d: Mapping[str, float | int | Iterable[tuple[int, int]] | set[str] | frozenset[str] | str],
    ) -> Resources:
        """Build from a mapping of name to value.

        Numbers become scalars, iterables of ``(begin, end)`` pairs ranges, sets of strings
        sets; strings are parsed as text values (``'4'``, ``'[1-2]'``, ``'{a,b}'``).
        """
        if not isinstance(d, Mapping):
            raise _expected("resources", "a mapping of name to value", d)
        builder = _Builder()
        for key, value in d.items():
            name = _check_name(key, "resources", allow_role=True)
            builder.add(name, *_dict_entry(name, value), name)
        return builder.build()

    @classmethod
    def from_wire(cls, items: object) -> Resources:
        """Build from the Mesos JSON form (a list of resource objects), strictly validated.

        Optional ``role`` (only ``'*'``) and ``allocation_info`` (an object, ignored) are
        tolerated; any other extra key is an error. Repeated names are added together.
        """
        if not isinstance(items, list | tuple):
            raise _expected("resources", "a list of resource objects", items)
        builder = _Builder()
        for i, item in enumerate(items):
            builder.add(*_wire_entry(item, f"resources[{i}]"), f"resources[{i}].type")
        return builder.build()

    def to_wire(self) -> list[dict[str, Any]]:
        """The Mesos JSON form, in canonical name order; ``from_wire`` reads it back."""
        out: list[dict[str, Any]] = []
        for name in sorted(self._d, key=_sort_key):
            value = self._d[name]
            if type(value) is int:
                out.append({"name": name, "type": "SCALAR", "scalar": {"value": value / 1000}})
            elif type(value) is tuple:
                ranges = [{"begin": b, "end": e} for b, e in value]
                out.append({"name": name, "type": "RANGES", "ranges": {"range": ranges}})
            else:
                out.append({"name": name, "type": "SET", "set": {"item": sorted(value)}})
        return out

    def __str__(self) -> str:
        """Canonical Mesos text: cpus, gpus, mem, disk, then other names alphabetically."""
        d = self._d
        return ";".join(f"{name}:{_format_value(d[name])}" for name in sorted(d, key=_sort_key))

    def __repr__(self) -> str:
        """An evaluable representation."""
        return f"Resources.parse({str(self)!r})"

    def to_json_dict(self) -> dict[str, float | str]:
        """Mesos /state style: scalars as floats, others as text; cpus/mem/disk/gpus always."""
        out: dict[str, float | str] = dict.fromkeys(SCALAR_NAMES_ORDER, 0.0)
        for name in sorted(self._d, key=_sort_key):
            value = self._d[name]
            out[name] = value / 1000 if type(value) is int else _format_value(value)
        return out

    def __eq__(self, other: object) -> bool:
        """Equal when both hold exactly the same values."""
        if type(other) is not Resources:
            return NotImplemented
        return self._d == other._d

    def __hash__(self) -> int:
        """Hash of the contents, computed on first use."""
        try:
            return self._h
        except AttributeError:
            h = hash(frozenset(self._d.items()))
            _set_h(self, h)
            return h

    def __setattr__(self, name: str, value: object) -> None:
        """Refuse mutation: Resources is immutable."""
        raise AttributeError(f"Resources is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        """Refuse mutation: Resources is immutable."""
        raise AttributeError(f"Resources is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle (and copy) support."""
        return (_rebuild, (tuple(self._d.items()),))

    def __bool__(self) -> bool:
        """False when empty."""
        return bool(self._d)

    def is_empty(self) -> bool:
        """True when no resource is present."""
        return not self._d

    def __add__(self, other: Resources) -> Resources:
        """Sum scalars, union ranges and sets; a name held with two kinds raises."""
        if type(other) is not Resources:
            return NotImplemented
        a, b = self._d, other._d
        if not b:
            return self
        if not a:
            return other
        d = a.copy()
        for name, value in b.items():
            current = d.get(name)
            if current is None:
                d[name] = value
            elif type(current) is not type(value):
                raise ResourcesError(
                    f"expected {_KIND_NAMES[type(current)]} to add to"
                    f" {_format_value(current)!r}, got {_KIND_NAMES[type(value)]}"
                    f" {_format_value(value)!r}",
                    name,
                )
            elif type(value) is int:
                d[name] = current + value
            elif type(value) is tuple:
                d[name] = _normalize(current + value)
            else:
                d[name] = current | value
        return _new(d)

    def __sub__(self, other: Resources) -> Resources:
        """Remove what is there: scalars reaching <= 0 vanish, ranges/sets are differenced."""
        if type(other) is not Resources:
            return NotImplemented
        a, b = self._d, other._d
        if not b or not a:
            return self
        d = a.copy()
        for name, value in b.items():
            current = d.get(name)
            if current is None or type(current) is not type(value):
                continue
            if type(value) is int:
                rest = current - value if current > value else 0
            elif type(value) is tuple:
                rest = _subtract_ranges(current, value)
            else:
                rest = current - value
            if rest:
                d[name] = rest
            else:
                del d[name]
        return _new(d)

    def contains(self, other: Resources) -> bool:
        """True when every scalar here is >= other's and every range/set item is present."""
        a = self._d
        for name, value in other._d.items():
            current = a.get(name)
            kind = type(value)
            if current is None or type(current) is not kind:
                return False
            if kind is int:
                if current < value:
                    return False
            elif kind is tuple:
                if not _ranges_contain(current, value):
                    return False
            elif not value <= current:
                return False
        return True

    def __le__(self, other: Resources) -> bool:
        """``self`` is contained in ``other``."""
        if type(other) is not Resources:
            return NotImplemented
        return other.contains(self)

    def __ge__(self, other: Resources) -> bool:
        """``self`` contains ``other``."""
        if type(other) is not Resources:
            return NotImplemented
        return self.contains(other)

    def names(self) -> frozenset[str]:
        """Names of the resources present."""
        return frozenset(self._d)

    def kind(self, name: str) -> str | None:
        """'SCALAR', 'RANGES' or 'SET' for a present resource; None when absent."""
        value = self._d.get(name)
        return None if value is None else _KIND_NAMES[type(value)]

    def scalar(self, name: str) -> float:
        """The scalar value of ``name``; 0.0 when absent or not a scalar."""
        value = self._d.get(name)
        return value / 1000 if type(value) is int else 0.0

    def scalar_milli(self, name: str) -> int:
        """The exact scalar value of ``name`` in thousandths; 0 when absent or not a scalar."""
        value = self._d.get(name)
        return value if type(value) is int else 0

    def scalars(self) -> dict[str, float]:
        """All scalar resources as floats."""
        return {name: v / 1000 for name, v in self._d.items() if type(v) is int}

    @property
    def cpus(self) -> float:
        """Number of CPUs (0.0 when absent)."""
        return self.scalar("cpus")

    @property
    def mem(self) -> float:
        """Memory in MB (0.0 when absent)."""
        return self.scalar("mem")

    @property
    def disk(self) -> float:
        """Disk in MB (0.0 when absent)."""
        return self.scalar("disk")

    @property
    def gpus(self) -> float:
        """Number of GPUs (0.0 when absent)."""
        return self.scalar("gpus")

    def ranges(self, name: str) -> tuple[tuple[int, int], ...]:
        """Ranges of ``name``, sorted with adjacent ones merged; () when absent or not ranges."""
        value = self._d.get(name)
        return value if type(value) is tuple else ()

    def set_items(self, name: str) -> frozenset[str]:
        """Items of the set ``name``; empty when absent or not a set."""
        value = self._d.get(name)
        return value if type(value) is frozenset else frozenset()

    def count_range_values(self, name: str) -> int:
        """Number of integers covered by the ranges of ``name``."""
        return sum(end - begin + 1 for begin, end in self.ranges(name))

    def take_ranges(self, name: str, count: int) -> Resources | None:
        """The lowest ``count`` values of ranges ``name`` (e.g. ports); None if not enough."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise _expected("count", "a non-negative integer", count)
        if count == 0:
            return _new({})
        taken: list[tuple[int, int]] = []
        for begin, end in self.ranges(name):
            if end - begin + 1 >= count:
                taken.append((begin, begin + count - 1))
                return _new({name: tuple(taken)})
            taken.append((begin, end))
            count -= end - begin + 1
        return None

    def only(self, *names: str) -> Resources:
        """Just the resources with the given names."""
        d = self._d
        return _new({name: d[name] for name in names if name in d})

    def without(self, *names: str) -> Resources:
        """Everything except the resources with the given names."""
        drop = set(names)
        return _new({name: v for name, v in self._d.items() if name not in drop})


_set_d = Resources.__dict__["_d"].__set__
_set_h = Resources.__dict__["_h"].__set__
_object_new = object.__new__


def _new(d: dict[str, Any]) -> Resources:
    """Wrap an already-normalized internal dict (no validation)."""
    r = _object_new(Resources)
    _set_d(r, d)
    return r


def _rebuild(items: tuple[tuple[str, Any], ...]) -> Resources:
    """Unpickle helper."""
    return _new(dict(items))
