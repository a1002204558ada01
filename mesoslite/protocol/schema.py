"""Strict conversion between attrs message classes and plain wire values (PURE).

Owns: :class:`DecodeError` and the per-class compiled converters that turn a
decoded msgpack value (dicts, lists, str, int, float, bool, bytes, None) into a
frozen attrs instance and back.  Every field is checked against its declared
type; a missing, extra or mistyped field raises :class:`DecodeError` whose
``field`` is a dotted path such as ``RunTask.task.resources[0].name``.

Supported field types: ``str``, ``int``, ``float``, ``bool``, ``bytes``,
``X | None``, ``tuple[X, ...]``, ``dict[str, X]``, str-valued :class:`enum.Enum`
subclasses, :class:`~mesoslite.resources.Resources`, and nested attrs classes.
Converters are compiled once per class and cached, so decoding costs one
closure call per field.
"""

from __future__ import annotations

import enum
import math
import types
import typing
from collections.abc import Callable
from typing import Any

import attrs

from mesoslite.resources import Resources, ResourcesError

Decoder = Callable[[Any, str], Any]
Encoder = Callable[[Any], Any]

#: Upper bounds that keep a hostile message from building huge structures.
MAX_STRING_LENGTH = 1 << 20
MAX_SEQUENCE_LENGTH = 100_000


class DecodeError(ValueError):
    """A wire value does not match the schema; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _dec_str(value: Any, path: str) -> str:
    if type(value) is not str:
        raise DecodeError(path, f"expected a string, got {_describe(value)}")
    if len(value) > MAX_STRING_LENGTH:
        raise DecodeError(path, f"string longer than {MAX_STRING_LENGTH} characters")
    return value


def _dec_int(value: Any, path: str) -> int:
    if type(value) is not int:
        raise DecodeError(path, f"expected an integer, got {_describe(value)}")
    return value


def _dec_float(value: Any, path: str) -> float:
    kind = type(value)
    if kind is float:
        number: float = value
        if not math.isfinite(number):
            raise DecodeError(path, f"expected a finite number, got {number!r}")
        return number
    if kind is int:
        return float(value)
    raise DecodeError(path, f"expected a number, got {_describe(value)}")


def _dec_bool(value: Any, path: str) -> bool:
    if type(value) is not bool:
        raise DecodeError(path, f"expected a boolean, got {_describe(value)}")
    return value


def _dec_bytes(value: Any, path: str) -> bytes:
    if type(value) is not bytes:
        raise DecodeError(path, f"expected bytes, got {_describe(value)}")
    return value


#: Decoded resources by the repr of their wire form: agents and offers repeat the same few
#: shapes (Resources are immutable, so they are shared); bounded, emptied when full.  Only
#: short forms are kept (a key is at most ``_RESOURCES_MEMO_KEY`` characters).
_RESOURCES_MEMO: dict[str, Resources] = {}
_RESOURCES_MEMO_SIZE = 4096
_RESOURCES_MEMO_KEY = 2048


def _dec_resources(value: Any, path: str) -> Resources:
    key = repr(value) if type(value) is list and len(value) <= 16 else ""
    if len(key) > _RESOURCES_MEMO_KEY:
        key = ""
    found = _RESOURCES_MEMO.get(key) if key else None
    if found is not None:
        return found
    try:
        decoded = Resources.from_wire(value)
        if key:
            if len(_RESOURCES_MEMO) >= _RESOURCES_MEMO_SIZE:
                _RESOURCES_MEMO.clear()
            _RESOURCES_MEMO[key] = decoded
        return decoded
    except ResourcesError as exc:
        field = exc.field or ""
        if field.startswith("resources"):
            field = field[len("resources"):]
        elif field:
            field = "." + field
        raise DecodeError(path + field, str(exc)) from None


def _identity(value: Any) -> Any:
    return value


def _enc_enum(value: enum.Enum) -> Any:
    return value.value


def _enc_resources(value: Resources) -> Any:
    return value.to_wire()


_SCALARS: dict[Any, Decoder] = {
    str: _dec_str,
    int: _dec_int,
    float: _dec_float,
    bool: _dec_bool,
    bytes: _dec_bytes,
}

_CACHE: dict[Any, tuple[Decoder, Encoder]] = {}
#: Pairs compiled by one :func:`converters` call, not yet published to ``_CACHE``.
Pending = dict[Any, tuple[Decoder, Encoder]]


def converters(tp: Any) -> tuple[Decoder, Encoder]:
    """Return the (decode, encode) pair for a field type, compiling it once.

    Everything one call compiles is published to the cache together, once
    every generated converter has its field converters bound: a thread that
    finds a pair in the cache can always run it (several threads compiling
    the same type at once each build a complete pair; the last one is kept).
    """
    try:
        return _CACHE[tp]
    except (KeyError, TypeError):
        pass
    pending: Pending = {}
    pair = _lookup(tp, pending)
    _CACHE.update(pending)
    return pair


def _lookup(tp: Any, pending: Pending) -> tuple[Decoder, Encoder]:
    """The pair for ``tp`` from the cache, from this compilation pass, or compiled now."""
    try:
        return _CACHE[tp]
    except (KeyError, TypeError):
        pass
    try:
        return pending[tp]
    except (KeyError, TypeError):
        pass
    pair = _compile(tp, pending)
    try:
        pending[tp] = pair
    except TypeError:  # unhashable typing construct; compile again next time
        pass
    return pair


def _compile(tp: Any, pending: Pending) -> tuple[Decoder, Encoder]:
    if tp in _SCALARS:
        return _SCALARS[tp], _identity
    if tp is Resources:
        return _dec_resources, _enc_resources
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _compile_enum(tp)
    if isinstance(tp, type) and attrs.has(tp):
        return _compile_class(tp, pending)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1 or len(args) != 2:
            raise TypeError(f"unsupported union {tp!r}: only 'X | None' is allowed")
        return _compile_optional(inner[0], pending)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _compile_tuple(args[0], pending)
    if origin is dict and len(args) == 2 and args[0] is str:
        return _compile_dict(args[1], pending)
    raise TypeError(f"unsupported field type {tp!r}")


def _compile_enum(tp: type[enum.Enum]) -> tuple[Decoder, Encoder]:
    members = {m.value: m for m in tp}
    expected = ", ".join(sorted(str(v) for v in members))

    def dec(value: Any, path: str) -> enum.Enum:
        try:
            return members[value]
        except (KeyError, TypeError):
            raise DecodeError(
                path, f"expected one of {tp.__name__} ({expected}), got {_describe(value)}"
            ) from None

    return dec, _enc_enum


def _compile_optional(inner: Any, pending: Pending) -> tuple[Decoder, Encoder]:
    dec_inner, enc_inner = _lookup(inner, pending)

    def dec(value: Any, path: str) -> Any:
        return None if value is None else dec_inner(value, path)

    def enc(value: Any) -> Any:
        return None if value is None else enc_inner(value)

    return dec, enc


def _compile_tuple(item: Any, pending: Pending) -> tuple[Decoder, Encoder]:
    dec_item, enc_item = _lookup(item, pending)
    trivial = enc_item is _identity

    def dec(value: Any, path: str) -> tuple[Any, ...]:
        if type(value) is not list:
            raise DecodeError(path, f"expected a list, got {_describe(value)}")
        if len(value) > MAX_SEQUENCE_LENGTH:
            raise DecodeError(path, f"list longer than {MAX_SEQUENCE_LENGTH} items")
        if item is str and all(type(v) is str and len(v) <= MAX_STRING_LENGTH for v in value):
            return tuple(value)  # the common case, checked without building item paths
        return tuple(dec_item(v, f"{path}[{i}]") for i, v in enumerate(value))

    def enc(value: tuple[Any, ...]) -> list[Any]:
        return list(value) if trivial else [enc_item(v) for v in value]

    return dec, enc


def _compile_dict(item: Any, pending: Pending) -> tuple[Decoder, Encoder]:
    dec_item, enc_item = _lookup(item, pending)
    trivial = enc_item is _identity

    def dec(value: Any, path: str) -> dict[str, Any]:
        if type(value) is not dict:
            raise DecodeError(path, f"expected a map, got {_describe(value)}")
        if len(value) > MAX_SEQUENCE_LENGTH:
            raise DecodeError(path, f"map larger than {MAX_SEQUENCE_LENGTH} entries")
        if item is str and all(
            type(k) is str and type(v) is str and len(v) <= MAX_STRING_LENGTH
            for k, v in value.items()
        ):
            return value  # the common case, checked without building item paths
        out: dict[str, Any] = {}
        for key, v in value.items():
            if type(key) is not str:
                raise DecodeError(path, f"expected string keys, got {_describe(key)}")
            out[key] = dec_item(v, f"{path}[{key!r}]")
        return out

    def enc(value: dict[str, Any]) -> dict[str, Any]:
        return dict(value) if trivial else {k: enc_item(v) for k, v in value.items()}

    return dec, enc


def _compile_class(cls: type, pending: Pending) -> tuple[Decoder, Encoder]:
    """Generate a decoder and an encoder specialised to ``cls`` (source code, compiled once).

    The generated decoder checks each field inline (scalars without a call,
    nested values through their own converters) and builds the dotted error
    path only when a check fails, so the errors are exactly those of the
    generic converters.  Field converters are bound after the functions
    exist (the pair is in ``pending`` meanwhile), so that recursive classes
    resolve to themselves; :func:`converters` publishes the pair afterwards.
    """
    hints = typing.get_type_hints(cls)
    fields = attrs.fields(cls)
    name = cls.__name__
    ns: dict[str, Any] = {
        "cls": cls,
        "DecodeError": DecodeError,
        "_describe": _describe,
        "_MISSING": _MISSING,
        "isfinite": math.isfinite,
        "MAX_STR": MAX_STRING_LENGTH,
        "KNOWN": frozenset(f.name for f in fields),
    }
    dec_lines = [
        "def dec(value, path):",
        "    if type(value) is not dict:",
        f"        raise DecodeError(path, f'expected a map for {name}, got {{_describe(value)}}')",
        "    get = value.get",
        "    kw = {}",
        "    seen = 0",
    ]
    enc_items: list[str] = []
    for i, f in enumerate(fields):
        tp = hints[f.name]
        required = f.default is attrs.NOTHING
        fname = f.name
        ns[f"n{i}"] = fname
        dec_lines.append(f"    v = get({fname!r}, _MISSING)")
        if required:
            dec_lines += [
                "    if v is _MISSING:",
                f"        raise DecodeError(path + '.{fname}', 'required field is missing')",
            ]
            indent = "    "
        else:
            dec_lines.append("    if v is not _MISSING:")
            indent = "        "
        dec_lines.append(f"{indent}seen += 1")
        dec_lines += [indent + line for line in _field_check(tp, i, fname, ns)]
        dec_lines.append(f"{indent}kw[{fname!r}] = v")
        enc_items.append(f"{fname!r}: {_field_encode(tp, i, fname, ns)}")
    dec_lines += [
        "    if seen != len(value):",
        "        extra = sorted(str(k) for k in value if k not in KNOWN)",
        f"        raise DecodeError(f'{{path}}.{{extra[0]}}', 'unknown field for {name}')",
        "    try:",
        "        return cls(**kw)",
        "    except (ValueError, TypeError) as exc:",
        "        field = getattr(exc, 'field', '')",
        "        raise DecodeError(f'{path}.{field}' if field else path, str(exc)) from None",
    ]
    enc_lines = ["def enc(value):", "    return {" + ", ".join(enc_items) + "}"]
    source = "\n".join(dec_lines) + "\n\n" + "\n".join(enc_lines) + "\n"
    code = compile(source, f"<mesoslite.protocol.schema converters for {name}>", "exec")
    exec(code, ns)  # noqa: S102 - source generated above from the class's own fields
    dec, enc = ns["dec"], ns["enc"]
    pending[cls] = (dec, enc)
    for i, f in enumerate(fields):
        fdec, fenc = _lookup(hints[f.name], pending)
        ns[f"d{i}"] = fdec
        ns[f"e{i}"] = fenc
    return dec, enc


_MISSING = object()


def _field_check(tp: Any, i: int, fname: str, ns: dict[str, Any]) -> list[str]:
    """Lines that check (and maybe convert) ``v``, the wire value of field ``i``."""
    slow = f"v = d{i}(v, path + '.{fname}')"  # the generic converter: raises the exact error
    if tp is str:
        return ["if type(v) is not str or len(v) > MAX_STR:", f"    {slow}"]
    if tp in (int, bool, bytes):
        ns[f"t{i}"] = tp
        return [f"if type(v) is not t{i}:", f"    {slow}"]
    if tp is float:
        return ["if type(v) is not float or not isfinite(v):", f"    {slow}"]
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in typing.get_args(tp) if a is not type(None))
        if inner is str:
            return ["if v is not None and (type(v) is not str or len(v) > MAX_STR):",
                    f"    {slow}"]
        if inner in (int, bool, bytes):
            ns[f"t{i}"] = inner
            return [f"if v is not None and type(v) is not t{i}:", f"    {slow}"]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        ns[f"m{i}"] = {m.value: m for m in tp}
        return [
            f"w = m{i}.get(v) if type(v) is str else None",
            "if w is None:",
            f"    {slow}",
            "else:",
            "    v = w",
        ]
    return [slow]


def _field_encode(tp: Any, i: int, fname: str, ns: dict[str, Any]) -> str:
    """An expression that encodes field ``i`` of ``value``."""
    if tp in _SCALARS:
        return f"value.{fname}"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return f"value.{fname}.value"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in typing.get_args(tp) if a is not type(None))
        if inner in _SCALARS:
            return f"value.{fname}"
    return f"e{i}(value.{fname})"


def structure(cls: type, value: Any, path: str | None = None) -> Any:
    """Build an instance of attrs class ``cls`` from a plain value, strictly."""
    dec, _ = converters(cls)
    return dec(value, path or cls.__name__)


def unstructure(obj: Any) -> Any:
    """Turn an attrs instance (or any supported value) into plain wire values."""
    _, enc = converters(type(obj))
    return enc(obj)
