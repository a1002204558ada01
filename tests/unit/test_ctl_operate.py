"""The pure parts of `ctl weights` and `ctl top`: argument parsing, cpu % and the table rows."""

from __future__ import annotations

import pytest

from mesoslite.ctl.common import CtlError
from mesoslite.ctl.operate import cpu_percent, parse_weight_assignments, top_rows


def test_weight_assignments_parse_roles_and_numbers() -> None:
    """ROLE=WEIGHT pairs become a dict; hierarchical roles, * and exponents are fine."""
    assert parse_weight_assignments(["eng=2", "ops/web=0.25", "*=1e1"]) == {
        "eng": 2.0, "ops/web": 0.25, "*": 10.0}
    assert parse_weight_assignments([]) == {}


@pytest.mark.parametrize(("bad", "said"), [
    ("eng", "expected ROLE=WEIGHT"), ("eng=", "expected a finite number > 0, got ''"),
    ("eng=0", "got '0'"), ("eng=-2", "got '-2'"), ("eng=inf", "got 'inf'"),
    ("eng=nan", "got 'nan'"), ("eng=two", "got 'two'"), ("=1", "role ''"),
    ("-x=1", "role '-x'"), ("a//b=1", "role 'a//b'"), ("a b=1", "role 'a b'"),
])
def test_bad_weight_assignments_name_the_argument(bad: str, said: str) -> None:
    """Every bad argument is refused with its own text in the message."""
    with pytest.raises(CtlError) as info:
        parse_weight_assignments(["ok=1", bad])
    assert f"weight {bad!r}" in str(info.value) and said in str(info.value)


def test_a_role_given_twice_is_refused() -> None:
    """A role named twice is ambiguous: refused."""
    with pytest.raises(CtlError, match="role 'eng' given twice"):
        parse_weight_assignments(["eng=1", "eng=2"])


def _stats(t: float, user: float, system: float, rss: int = 0) -> dict[str, float]:
    return {"timestamp": t, "cpus_user_time_secs": user, "cpus_system_time_secs": system,
            "mem_rss_bytes": rss, "mem_limit_bytes": 64 * 1024 * 1024, "cpus_limit": 0.5,
            "processes": 2}


def test_cpu_percent_is_cpu_seconds_over_elapsed_seconds() -> None:
    """100 is one full core; unknown without a first sample or elapsed time."""
    assert cpu_percent(_stats(10, 1, 1), _stats(12, 2, 1.5)) == pytest.approx(75.0)
    assert cpu_percent(None, _stats(12, 2, 1.5)) is None
    assert cpu_percent(_stats(12, 1, 1), _stats(12, 2, 1)) is None  # no time passed
    assert cpu_percent(_stats(10, 5, 1), _stats(11, 1, 1)) == 0.0  # a restarted counter
    assert cpu_percent({"timestamp": 1}, _stats(2, 1, 1)) is None


def test_top_rows_busiest_first_with_names_and_megabytes() -> None:
    """Rows sorted by cpu %, named from the master's tasks, memory in MB."""
    tasks = {"a": {"name": "web"}, "b": {"name": "db"}}
    before = {("ag", "a"): {"statistics": _stats(0, 0, 0)},
              ("ag", "b"): {"statistics": _stats(0, 0, 0)}}
    after = {("ag", "a"): {"executor_id": "a", "statistics": _stats(1, 0.1, 0, 8 << 20)},
             ("ag", "b"): {"executor_id": "b", "statistics": _stats(1, 0.5, 0.3, 1 << 20)},
             ("ag", "c"): {"executor_id": "c", "executor_name": "new",
                           "statistics": _stats(1, 0, 0)}}
    assert top_rows(tasks, before, after) == [
        ("b", "db", "ag", "80.0", 0.5, "1.0", "64.0", 2),
        ("a", "web", "ag", "10.0", 0.5, "8.0", "64.0", 2),
        ("c", "new", "ag", "", 0.5, "0.0", "64.0", 2),
    ]
