"""Reading and checking Marathon JSON values, collecting every error (PURE).

Owns: :class:`AppValidationError` (Marathon's 422 body: a message and
``details`` of ``{"path", "errors"}``), the :class:`Reader` that type-checks
JSON values and records an error per offending path instead of raising, the
app id grammar (:func:`resolve_app_id`) and the constraint rules.  The App
parser (``app_json``) and its part parsers (``app_parts``) build on these.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from frameworks.marathon.core.regex_safety import catastrophic

#: One segment of an app or group id: DNS-like labels of lowercase letters,
#: digits and ``-`` (not at either end), joined by dots.
_LABEL = r"([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])"
_SEGMENT_RE = re.compile(rf"^({_LABEL}\.)*{_LABEL}$")
#: Port names (portDefinitions, portMappings): Marathon's "legacy name".
PORT_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9]+)*$")
#: Longest app id accepted: task ids (``<id>.instance-<uuid>._app.<n>``) must stay
#: within the 255 characters the cluster allows for ids.
MAX_APP_ID_LENGTH = 190
#: At most this many paths are reported in one error (a huge bad body stays small).
MAX_DETAILS = 100
#: Longest LIKE/UNLIKE regular expression accepted.
MAX_CONSTRAINT_REGEX = 1000
#: Constraint operators Marathon knows.
CONSTRAINT_OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS")
#: Port protocols of port definitions and mappings.
PORT_PROTOCOLS = ("tcp", "udp", "udp,tcp")

#: Marker for "the value was invalid" (an error has been recorded).
BAD: Any = object()
#: Marker for "the key was not sent".
MISSING: Any = object()


class AppValidationError(ValueError):
    """An app definition is invalid: answered as HTTP 422 with per-field details."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[dict[str, Any]] = list(details or [])

    def to_json(self) -> dict[str, Any]:
        """Marathon's error body ``{"message": ..., "details": [{"path", "errors"}]}``."""
        return {"message": self.message, "details": [dict(d) for d in self.details]}

    def __str__(self) -> str:
        parts = [f"{d['path']}: {'; '.join(d['errors'])}" for d in self.details]
        return self.message + (" (" + ", ".join(parts) + ")" if parts else "")


def show(value: Any) -> str:
    """A short rendering of a JSON value for error messages."""
    if isinstance(value, list | dict) and len(value) > 20:
        return f"a JSON {'array' if isinstance(value, list) else 'object'} of {len(value)} items"
    try:
        text = repr(value)
    except RecursionError:
        return f"a deeply nested JSON {'array' if isinstance(value, list) else 'object'}"
    return text if len(text) <= 60 else text[:57] + "..."


def resolve_app_id(text: str, group: str = "/") -> str:
    """The absolute, canonical form of an app id (``/grp/app``).

    Relative ids are resolved against ``group``; ``.`` and ``..`` segments and
    repeated slashes are resolved away.  Raises :class:`ValueError` with a
    message naming the value when the id breaks Marathon's grammar.
    """
    if not isinstance(text, str) or text.strip() == "":
        raise ValueError(f"expected a non-empty path id string, got {show(text)}")
    parts: list[str] = [] if text.startswith("/") else [p for p in group.split("/") if p]
    for segment in text.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                raise ValueError(f"path id {text!r} points above the root group")
            parts.pop()
            continue
        if not _SEGMENT_RE.match(segment):
            raise ValueError(
                f"path id {text!r}: segment {segment!r} must be lowercase letters, digits and "
                f"'-' (labels joined by '.', no '-' or '.' at either end)"
            )
        parts.append(segment)
    if not parts:
        raise ValueError(f"path id {text!r} names the root group, expected an app id")
    resolved = "/" + "/".join(parts)
    if len(resolved) > MAX_APP_ID_LENGTH:
        raise ValueError(f"path id {show(text)} is {len(resolved)} characters long, expected "
                         f"at most {MAX_APP_ID_LENGTH}")
    return resolved


class Reader:
    """Type-checks JSON values, recording ``(path, message)`` errors instead of raising."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def error(self, path: str, message: str) -> Any:
        """Record an error at ``path``; returns :data:`BAD` for convenience."""
        path = path or "/"
        if path not in self.errors and len(self.errors) >= MAX_DETAILS:
            return BAD
        bucket = self.errors.setdefault(path, [])
        if message not in bucket:
            bucket.append(message)
        return BAD

    def details(self) -> list[dict[str, Any]]:
        """The recorded errors in Marathon's ``details`` shape."""
        return [{"path": p, "errors": list(e)} for p, e in self.errors.items()]

    # --- primitives -------------------------------------------------------
    def obj(self, value: Any, path: str) -> dict[str, Any] | Any:
        """``value`` when it is a JSON object, else :data:`BAD`."""
        if isinstance(value, dict):
            return value
        return self.error(path, f"expected an object, got {show(value)}")

    def arr(self, value: Any, path: str) -> list[Any] | Any:
        """``value`` when it is a JSON array, else :data:`BAD`."""
        if isinstance(value, list | tuple):
            return list(value)
        return self.error(path, f"expected an array, got {show(value)}")

    def string(self, value: Any, path: str, *, min_len: int = 0) -> str | Any:
        """``value`` when it is a string of at least ``min_len`` characters."""
        if not isinstance(value, str):
            return self.error(path, f"expected a string, got {show(value)}")
        if len(value) < min_len:
            return self.error(path, f"expected at least {min_len} character(s), got {show(value)}")
        return value

    def boolean(self, value: Any, path: str) -> bool | Any:
        """``value`` when it is a JSON boolean."""
        if isinstance(value, bool):
            return value
        return self.error(path, f"expected a boolean, got {show(value)}")

    def number(
        self,
        value: Any,
        path: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        integer: bool = False,
        above: float | None = None,
    ) -> float | int | Any:
        """A finite JSON number (not a boolean) within the bounds.

        ``integer`` demands a whole number (``2.0`` is accepted as 2);
        ``above`` is an exclusive lower bound.
        """
        if isinstance(value, bool) or not isinstance(value, int | float):
            kind = "an integer" if integer else "a number"
            return self.error(path, f"expected {kind}, got {show(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            return self.error(path, f"expected a finite number, got {show(value)}")
        if abs(value) > 2**53:
            return self.error(path, f"expected a number of magnitude at most 2^53, "
                                    f"got {show(value)}")
        if integer and isinstance(value, float):
            if not value.is_integer():
                return self.error(path, f"expected an integer, got {show(value)}")
            value = int(value)
        if minimum is not None and value < minimum:
            return self.error(path, f"got {show(value)}, expected {_fmt(minimum)} or more")
        if above is not None and value <= above:
            return self.error(path, f"got {show(value)}, expected more than {_fmt(above)}")
        if maximum is not None and value > maximum:
            return self.error(path, f"got {show(value)}, expected {_fmt(maximum)} or less")
        return value

    def port(self, value: Any, path: str) -> int | Any:
        """An integer port number in 0-65535."""
        return self.number(value, path, minimum=0, maximum=65535, integer=True)

    def enum(self, value: Any, path: str, choices: tuple[str, ...]) -> str | Any:
        """``value`` when it is one of ``choices``."""
        if isinstance(value, str) and value in choices:
            return value
        return self.error(path, f"expected one of {', '.join(choices)}, got {show(value)}")

    def str_map(self, value: Any, path: str) -> dict[str, str] | Any:
        """A JSON object of string values (labels)."""
        value = self.obj(value, path)
        if value is BAD:
            return BAD
        out: dict[str, str] = {}
        ok = True
        for key, item in value.items():
            if not isinstance(item, str):
                self.error(f"{path}/{key}", f"expected a string, got {show(item)}")
                ok = False
            else:
                out[str(key)] = item
        return out if ok else BAD

    def str_list(self, value: Any, path: str, *, unique: bool = False) -> list[str] | Any:
        """A JSON array of strings (optionally without repeats)."""
        value = self.arr(value, path)
        if value is BAD:
            return BAD
        out: list[str] = []
        ok = True
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.error(f"{path}/{i}", f"expected a string, got {show(item)}")
                ok = False
            elif unique and item in out:
                self.error(f"{path}/{i}", f"{item!r} appears more than once")
                ok = False
            else:
                out.append(item)
        return out if ok else BAD

    def items(
        self, value: Any, path: str, parse: Callable[[Any, str], Any]
    ) -> list[Any] | Any:
        """Parse each element of a JSON array with ``parse(element, path)``."""
        value = self.arr(value, path)
        if value is BAD:
            return BAD
        out = [parse(item, f"{path}/{i}") for i, item in enumerate(value)]
        return BAD if any(item is BAD for item in out) else out


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def check_constraint(reader: Reader, value: Any, path: str) -> tuple[str, ...] | Any:
    """One ``[field, OPERATOR, value?]`` constraint, checked as Marathon does."""
    value = reader.arr(value, path)
    if value is BAD:
        return BAD
    if len(value) not in (2, 3):
        return reader.error(path, f"expected [field, operator] or [field, operator, value], "
                                  f"got {show(value)}")
    field = reader.string(value[0], f"{path}/0", min_len=1)
    op = value[1]
    if not isinstance(op, str) or op.upper() not in CONSTRAINT_OPERATORS:
        reader.error(f"{path}/1", f"expected one of {', '.join(CONSTRAINT_OPERATORS)}, "
                                  f"got {show(op)}")
        return BAD
    op = op.upper()
    arg: Any = None
    if len(value) == 3:
        arg = value[2]
        if isinstance(arg, int | float) and not isinstance(arg, bool) and math.isfinite(arg):
            arg = str(int(arg)) if float(arg).is_integer() else str(arg)
        elif not isinstance(arg, str):
            reader.error(f"{path}/2", f"expected a string value, got {show(arg)}")
            return BAD
    if field is BAD:
        return BAD
    if op in ("LIKE", "UNLIKE", "IS", "MAX_PER") and arg is None:
        return reader.error(path, f"operator {op} needs a value")
    if op in ("LIKE", "UNLIKE"):
        if len(arg) > MAX_CONSTRAINT_REGEX:
            return reader.error(f"{path}/2", f"{op} value is {len(arg)} characters long, "
                                             f"expected at most {MAX_CONSTRAINT_REGEX}")
        try:
            re.compile(arg)
        except (re.error, RecursionError, OverflowError) as exc:
            return reader.error(f"{path}/2", f"{op} value {arg!r} is not a valid regular "
                                             f"expression: {exc}")
        unsafe = catastrophic(arg)
        if unsafe is not None:
            return reader.error(f"{path}/2", f"{op} value {arg[:100]!r} could take "
                                             f"exponential time to match: {unsafe}")
    if op in ("MAX_PER", "GROUP_BY") and arg not in (None, "") and (
            not re.fullmatch(r"\d+", arg) or (op == "MAX_PER" and int(arg) < 1)):
            return reader.error(f"{path}/2", f"{op} value must be a positive integer, "
                                             f"got {arg!r}")
    return (field, op) if arg is None else (field, op, arg)
