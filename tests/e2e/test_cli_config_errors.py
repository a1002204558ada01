"""The real CLI refuses a non-finite duration for master, agent and framework in one line."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.procs import ROOT, mesoslite


@pytest.mark.parametrize(("command", "flag", "value"), [
    ("master", "--allocation_interval", "inf"),
    ("master", "--offer_timeout", "nan"),
    ("agent", "--executor_registration_timeout", "inf"),
    ("agent", "--status_update_retry_min", "-1"),
    ("marathon", "--decline_offer_duration", "inf"),
    ("marathon", "--decline_offer_duration", "nan"),
    ("marathon", "--reconciliation_initial_delay", "-1"),
])
def test_a_non_finite_duration_exits_2_with_one_line_naming_the_flag(
        command: str, flag: str, value: str) -> None:
    """`mesoslite <command> --<duration>=inf` (or nan, or -1) exits 2 with one error line."""
    result = subprocess.run(mesoslite(command, f"{flag}={value}"), check=False,
                            capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    shown = "-1.0" if value == "-1" else value
    assert lines[0] == (f"mesoslite {command}: error: {flag}: expected a finite number of "
                        f"seconds {'>=' if 'delay' in flag else '>'} 0"
                        f"{' (or none)' if flag == '--offer_timeout' else ''}, got {shown}")
    assert result.stdout == ""
