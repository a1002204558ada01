"""The master's histogram record and its Prometheus rendering."""

from __future__ import annotations

from mesoslite.master.metrics import histogram_text
from mesoslite.master.records import Histogram
from tests.support import promtext


def test_observations_land_in_the_first_bucket_that_holds_them() -> None:
    """Bounds are inclusive upper bounds; beyond the last bound is +Inf; sum and count add."""
    h = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0, -3.0):
        h.observe(value)
    assert h.counts == [3, 2, 1]  # -3 counts as 0
    assert h.cumulative() == [(0.1, 3), (1.0, 5), (float("inf"), 6)]
    assert h.count == 6 and abs(h.total - 8.65) < 1e-9


def test_histogram_text_is_cumulative_and_parses() -> None:
    """_bucket lines with le labels (cumulative, +Inf last), then _sum and _count."""
    h = Histogram((0.5,))
    h.observe(0.25)
    h.observe(2.0)
    text = histogram_text("x_seconds", "Some seconds.", h)
    assert "# TYPE x_seconds histogram\n" in text
    samples = promtext.parse(text)
    assert samples[("x_seconds_bucket", (("le", "0.5"),))] == 1.0
    assert samples[("x_seconds_bucket", (("le", "+Inf"),))] == 2.0
    assert samples[("x_seconds_sum", ())] == 2.25
    assert samples[("x_seconds_count", ())] == 2.0


def test_the_reader_refuses_malformed_text() -> None:
    """The test reader is strict: an untyped sample or a bad label fails (so tests can fail)."""
    for bad in ("x 1\n", '# TYPE x gauge\nx{a="1} 1\n', '# TYPE x gauge\nx{a="1"} one\n',
                "# TYPE x gauge\nx 1\nx 2\n"):
        try:
            promtext.parse(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")
