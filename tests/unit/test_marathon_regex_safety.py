"""Unit tests of frameworks.marathon.core.regex_safety and the LIKE/UNLIKE checks using it."""

from __future__ import annotations

import pytest

from frameworks.marathon.core import constraints
from frameworks.marathon.core.regex_safety import catastrophic


@pytest.mark.parametrize("pattern", [
    r"(a+)+$", r"(a*)*", r"(\w+\s?)*$", r"(a|a)*b", r"(a|ab)+c", r"(a)\1",
    r".*a.*a.*a.*a", r"^(([a-z])+.)+[A-Z]([a-z])+$", r"(x{1,20}){1,20}",
])
def test_catastrophic_forms_are_named(pattern: str) -> None:
    """Nested quantifiers, overlapping repeated alternatives, backreferences: refused."""
    assert catastrophic(pattern)


@pytest.mark.parametrize("pattern", [
    r"rack-[0-9]+", r"(us-east|us-west)-.*", r"[a-z]+\.example\.com", r"(rack-1|rack-2)*",
    r"a{3}", r"(ab){2,5}", r"(a{2})+", r".*", r"(a|b)+", r"host-\d{1,3}", "[",
])
def test_ordinary_patterns_pass(pattern: str) -> None:
    """Patterns operators write for attributes are accepted (an invalid one is not judged)."""
    assert catastrophic(pattern) is None


def test_a_catastrophic_stored_pattern_never_matches_and_never_stalls() -> None:
    """The probe: LIKE (a+)+$ against a long value answers at once (it matches nothing)."""
    value = "a" * 40 + "!"  # a backtracking match of (a+)+$ would take hours
    assert not constraints.check(("rack", "LIKE", r"(a+)+$"), {"rack": value}, [])
    assert not constraints.check(("rack", "UNLIKE", r"(a+)+$"), {"rack": value}, [])
    assert constraints.check(("rack", "LIKE", "r[0-9]+"), {"rack": "r12"}, [])
    assert constraints.check(("rack", "UNLIKE", "r[0-9]+"), {"rack": "x"}, [])
