"""Unit tests for Marathon placement constraints (frameworks.marathon.core.constraints)."""

from __future__ import annotations

import pytest

from frameworks.marathon.core.constraints import check, check_all, field_value, first_unmet


def agent(host: str, **attrs: str) -> dict[str, str]:
    """An agent attribute dict with its hostname."""
    return {"hostname": host, **attrs}


A = agent("a", rack="r1", region="eu", zone="eu-1", gpu="1.0")
B = agent("b", rack="r2", region="eu", zone="eu-2")
C = agent("c", rack="r3", region="us", zone="us-1")
BARE = agent("d")  # no attributes besides hostname

CASES = [
    # (constraint, candidate, placed, expected, why)
    (("hostname", "UNIQUE"), A, [], True, "nothing placed"),
    (("hostname", "UNIQUE"), A, [B], True, "other host"),
    (("hostname", "UNIQUE"), A, [A], False, "same host taken"),
    (("rack", "UNIQUE"), A, [agent("x", rack="r1")], False, "same rack on another host"),
    (("rack", "UNIQUE"), BARE, [], False, "missing attribute"),
    (("rack", "CLUSTER", "r1"), A, [], True, "value given, matches"),
    (("rack", "CLUSTER", "r1"), B, [], False, "value given, differs"),
    (("rack", "CLUSTER"), B, [], True, "no value, nothing placed"),
    (("rack", "CLUSTER"), B, [A], False, "no value, first placed is r1"),
    (("rack", "CLUSTER"), A, [BARE, A, B], True, "first placed with the field is r1"),
    (("rack", "CLUSTER", "r1"), BARE, [], False, "missing attribute"),
    (("rack", "GROUP_BY"), A, [], True, "first task"),
    (("rack", "GROUP_BY"), B, [A], True, "new value always accepted"),
    (("rack", "GROUP_BY"), A, [A, B], True, "A at the minimum"),
    (("rack", "GROUP_BY"), A, [A, A, B], False, "A above the minimum"),
    (("rack", "GROUP_BY", "3"), A, [A, B], False, "3 expected, only 2 in use: spread"),
    (("rack", "GROUP_BY", "3"), C, [A, B], True, "3 expected, C is new"),
    (("rack", "GROUP_BY", "3"), A, [A, B, C], True, "3 in use, A at minimum"),
    (("rack", "GROUP_BY", "2"), A, [A, B, B], True, "A has fewer"),
    (("rack", "GROUP_BY"), BARE, [], False, "missing attribute"),
    (("rack", "LIKE", "r[12]"), A, [], True, "regex matches"),
    (("rack", "LIKE", "r[12]"), C, [], False, "regex does not match"),
    (("rack", "LIKE", "r"), A, [], False, "full match required"),
    (("rack", "LIKE", "r1"), BARE, [], False, "missing attribute"),
    (("rack", "LIKE", "("), A, [], False, "invalid regex never matches"),
    (("rack", "UNLIKE", "r[12]"), C, [], True, "regex does not match"),
    (("rack", "UNLIKE", "r[12]"), A, [], False, "regex matches"),
    (("rack", "UNLIKE", "r1"), BARE, [], True, "missing attribute accepted by UNLIKE"),
    (("hostname", "MAX_PER", "2"), A, [A], True, "one of two"),
    (("hostname", "MAX_PER", "2"), A, [A, A], False, "two of two"),
    (("rack", "MAX_PER", "1"), B, [A], True, "other rack"),
    (("rack", "MAX_PER", "1"), BARE, [], False, "missing attribute"),
    (("rack", "IS", "r1"), A, [], True, "equal"),
    (("rack", "IS", "r1"), B, [], False, "different"),
    (("gpu", "IS", "1"), A, [], True, "numbers compare as numbers"),
    (("rack", "IS", "r1"), BARE, [], False, "missing attribute"),
    (("@region", "UNIQUE"), B, [A], False, "@region reads the region attribute"),
    (("@zone", "UNIQUE"), B, [A], True, "@zone reads the zone attribute"),
    (("@zone", "IS", "us-1"), C, [], True, "@zone IS"),
    (("@hostname", "UNIQUE"), A, [A], False, "@hostname is hostname"),
    (("@region", "CLUSTER"), BARE, [], False, "missing region"),
    (("rack", "BOGUS", "x"), A, [], False, "unknown operator"),
    (("rack",), A, [], False, "malformed constraint"),
]


@pytest.mark.parametrize(
    ("constraint", "candidate", "placed", "expected"),
    [c[:4] for c in CASES],
    ids=[f"{'-'.join(c[0])}: {c[4]}" for c in CASES],
)
def test_constraint_table(
    constraint: tuple[str, ...],
    candidate: dict[str, str],
    placed: list[dict[str, str]],
    expected: bool,
) -> None:
    """Each constraint case accepts or rejects the candidate as Marathon would."""
    assert check(constraint, candidate, placed) is expected


def test_field_value_aliases() -> None:
    """@region/@zone/@hostname map to the attributes region/zone/hostname."""
    assert field_value("@region", A) == "eu"
    assert field_value("@zone", A) == "eu-1"
    assert field_value("@hostname", A) == "a"
    assert field_value("rack", BARE) is None


def test_check_all_and_first_unmet() -> None:
    """All constraints must hold; first_unmet names the first failing one."""
    constraints = [("hostname", "UNIQUE"), ("rack", "IS", "r2")]
    assert check_all(constraints, B, [A])
    assert not check_all(constraints, A, [])
    assert first_unmet(constraints, A, []) == ("rack", "IS", "r2")
    assert first_unmet(constraints, B, [A]) is None
    assert check_all([], BARE, [])
