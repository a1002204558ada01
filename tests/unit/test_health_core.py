"""The pure health-check core: scheduling, grace, transitions, kill verdict, validation."""

from __future__ import annotations

import pytest

from mesoslite.health.schedule import HealthCheckState, HealthVerdict, validate_health_check
from mesoslite.protocol import CommandInfo, HealthCheck, HTTPCheck, TCPCheck
from mesoslite.testing import FakeClock


def command_check(**fields: object) -> HealthCheck:
    """A COMMAND check with the given timing fields."""
    return HealthCheck(type="COMMAND", command=CommandInfo(value="true"), **fields)  # type: ignore[arg-type]


def state_with(clock: FakeClock, **fields: object) -> HealthCheckState:
    """A state for a COMMAND check started now."""
    return HealthCheckState(command_check(**fields), clock)


def test_first_probe_is_due_after_delay_seconds() -> None:
    """No probe is due before delay_seconds; one is due at delay_seconds."""
    clock = FakeClock()
    state = state_with(clock, delay_seconds=15.0)
    assert not state.probe_due()
    assert state.seconds_until_probe() == pytest.approx(15.0)
    clock.advance(14.9)
    assert not state.probe_due()
    clock.advance(0.1)
    assert state.probe_due()
    assert state.seconds_until_probe() == 0.0


def test_zero_delay_probes_at_once() -> None:
    """delay_seconds 0 makes the first probe due immediately."""
    state = state_with(FakeClock(), delay_seconds=0.0)
    assert state.probe_due()


def test_next_probe_is_interval_after_the_previous_one_finished() -> None:
    """After a result, the next probe is due interval_seconds after that result."""
    clock = FakeClock()
    state = state_with(clock, delay_seconds=1.0, interval_seconds=10.0)
    clock.advance(1.0)
    clock.advance(2.5)  # the probe itself took 2.5 s
    state.record(True)
    assert state.next_probe_at == pytest.approx(clock.monotonic() + 10.0)
    clock.advance(9.9)
    assert not state.probe_due()
    clock.advance(0.1)
    assert state.probe_due()


def test_first_success_reports_healthy_once() -> None:
    """The first success reports healthy=True; later successes report nothing."""
    clock = FakeClock()
    state = state_with(clock, delay_seconds=0.0)
    assert state.record(True, "ok") == HealthVerdict(healthy=True, message="ok")
    assert state.record(True).healthy is None
    assert state.record(True).healthy is None
    assert state.healthy is True and state.ever_healthy


def test_failures_in_grace_period_are_ignored() -> None:
    """Within grace_period_seconds of the start (never healthy), failures are not counted."""
    clock = FakeClock()
    state = state_with(clock, delay_seconds=0.0, grace_period_seconds=10.0,
                       consecutive_failures=1)
    for _ in range(5):
        clock.advance(1.0)
        verdict = state.record(False, "boom")
        assert not verdict.counted and verdict.healthy is None and not verdict.kill
        assert "grace" in verdict.message and "boom" in verdict.message
    assert state.consecutive_failures == 0 and state.healthy is None
    clock.advance(5.5)  # 10.5 s after the start: the grace period is over
    verdict = state.record(False, "boom")
    assert verdict.counted and verdict.healthy is False and verdict.kill


def test_first_success_ends_the_grace_period() -> None:
    """Once healthy, a failure counts even within grace_period_seconds."""
    clock = FakeClock()
    state = state_with(clock, delay_seconds=0.0, grace_period_seconds=100.0,
                       consecutive_failures=3)
    clock.advance(1.0)
    assert state.record(True).healthy is True
    assert not state.in_grace()
    clock.advance(1.0)
    verdict = state.record(False, "down")
    assert verdict.counted and verdict.healthy is False and not verdict.kill
    assert state.consecutive_failures == 1


def test_zero_grace_counts_the_first_failure() -> None:
    """grace_period_seconds 0: the very first failure counts and reports unhealthy."""
    clock = FakeClock()
    state = state_with(clock, delay_seconds=0.0, grace_period_seconds=0.0)
    verdict = state.record(False, "nope")
    assert verdict == HealthVerdict(healthy=False, kill=False, counted=True, message="nope")


def test_consecutive_failures_give_the_kill_verdict() -> None:
    """consecutive_failures counted failures in a row → kill; then no more probes."""
    clock = FakeClock()
    state = state_with(clock, delay_seconds=0.0, grace_period_seconds=0.0,
                       consecutive_failures=3, interval_seconds=1.0)
    first = state.record(False)
    assert first.healthy is False and not first.kill
    clock.advance(1.0)
    second = state.record(False)
    assert second.healthy is None and not second.kill  # no transition, no report
    clock.advance(1.0)
    third = state.record(False)
    assert third.kill and third.counted
    assert state.kill_requested and state.next_probe_at is None
    assert state.seconds_until_probe() is None and not state.probe_due()
    assert not state.record(True).counted  # results after the verdict are ignored


def test_success_resets_the_failure_count_and_reports_recovery() -> None:
    """A success between failures resets the count and reports healthy=True (recovery)."""
    clock = FakeClock()
    state = state_with(clock, delay_seconds=0.0, grace_period_seconds=0.0,
                       consecutive_failures=2)
    assert state.record(True).healthy is True
    assert state.record(False).healthy is False
    recovered = state.record(True)
    assert recovered.healthy is True
    assert state.consecutive_failures == 0
    assert state.record(False).healthy is False and not state.kill_requested
    assert state.record(False).kill


def test_unhealthy_reported_only_on_transitions() -> None:
    """A sequence of results reports exactly its transitions."""
    clock = FakeClock()
    state = state_with(clock, delay_seconds=0.0, grace_period_seconds=0.0,
                       consecutive_failures=0)
    results = [True, True, False, False, True, False, True, True]
    reports = [state.record(ok).healthy for ok in results]
    assert reports == [True, None, False, None, True, False, True, None]


def test_zero_consecutive_failures_never_kills() -> None:
    """consecutive_failures 0 never gives the kill verdict, however many failures."""
    clock = FakeClock()
    state = state_with(clock, delay_seconds=0.0, grace_period_seconds=0.0,
                       consecutive_failures=0)
    verdicts = [state.record(False) for _ in range(50)]
    assert not any(v.kill for v in verdicts)
    assert state.consecutive_failures == 50 and state.probe_due() is False
    clock.advance(state.check.interval_seconds)
    assert state.probe_due()


def test_stop_ends_scheduling() -> None:
    """stop() leaves no probe due and ignores late results."""
    clock = FakeClock()
    state = state_with(clock, delay_seconds=0.0)
    state.stop()
    assert state.seconds_until_probe() is None
    assert state.record(True) == HealthVerdict(counted=False,
                                               message="the health checker is stopped")


@pytest.mark.parametrize(
    ("check", "field"),
    [
        (HealthCheck(type="GRPC"), "health_check.type"),
        (HealthCheck(type="COMMAND"), "health_check.command"),
        (HealthCheck(type="HTTP"), "health_check.http"),
        (HealthCheck(type="TCP", tcp=TCPCheck(80), http=HTTPCheck(80)), "health_check.http"),
        (command_check(interval_seconds=0.0), "health_check.interval_seconds"),
        (command_check(timeout_seconds=-1.0), "health_check.timeout_seconds"),
        (command_check(delay_seconds=-1.0), "health_check.delay_seconds"),
        (command_check(grace_period_seconds=float("nan")), "health_check.grace_period_seconds"),
        (command_check(consecutive_failures=-1), "health_check.consecutive_failures"),
        (HealthCheck(type="COMMAND", command=CommandInfo(value="")), "health_check.command.value"),
        (HealthCheck(type="HTTP", http=HTTPCheck(0)), "health_check.http.port"),
        (HealthCheck(type="HTTP", http=HTTPCheck(80, scheme="ftp")), "health_check.http.scheme"),
        (HealthCheck(type="HTTP", http=HTTPCheck(80, path="health")), "health_check.http.path"),
        (HealthCheck(type="HTTP", http=HTTPCheck(80, path="/a\r\nX: y")),
         "health_check.http.path"),
        (HealthCheck(type="TCP", tcp=TCPCheck(0)), "health_check.tcp.port"),
    ],
)
def test_invalid_checks_are_refused_naming_the_field(check: HealthCheck, field: str) -> None:
    """validate_health_check names the offending field; the state refuses the check."""
    error = validate_health_check(check)
    assert error.startswith(field + ":"), error
    with pytest.raises(ValueError, match=field):
        HealthCheckState(check, FakeClock())


@pytest.mark.parametrize(
    "check",
    [
        command_check(),
        HealthCheck(type="HTTP", http=HTTPCheck(8080, "/health", "https")),
        HealthCheck(type="TCP", tcp=TCPCheck(22), consecutive_failures=0, delay_seconds=0.0),
    ],
)
def test_valid_checks_pass(check: HealthCheck) -> None:
    """Well-formed checks (defaults included) validate."""
    assert validate_health_check(check) == ""
    assert HealthCheckState(check, FakeClock()).healthy is None
