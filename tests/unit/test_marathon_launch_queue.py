"""Unit tests of launch delays and crash-loop protection (frameworks.marathon.core.launch_queue)."""

from __future__ import annotations

import pytest

from frameworks.marathon.core.launch_queue import LaunchQueue
from frameworks.marathon.core.model import App
from mesoslite.testing import FakeClock


def app(version: str = "v1", **fields: object) -> App:
    """The app under test with Marathon's default backoff unless told otherwise."""
    return App(id="/crash", cmd="false", version=version, **fields)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock."""
    return FakeClock()


def test_no_delay_until_a_failure(clock: FakeClock) -> None:
    """An app that never failed may launch at once."""
    queue = LaunchQueue(clock)
    assert queue.delay_for("/crash") == (0.0, True)
    assert queue.can_launch("/crash")
    assert queue.current_delay("/crash") is None


def test_delay_grows_by_factor_and_is_capped(clock: FakeClock) -> None:
    """backoffSeconds, then × backoffFactor per failure, capped at maxLaunchDelaySeconds."""
    queue = LaunchQueue(clock)
    a = app(backoff_seconds=2.0, backoff_factor=3.0, max_launch_delay_seconds=50.0)
    assert [queue.task_failed(a) for _ in range(5)] == [2.0, 6.0, 18.0, 50.0, 50.0]
    assert queue.current_delay("/crash") == 50.0


def test_marathon_defaults(clock: FakeClock) -> None:
    """Defaults: 1 s, × 1.15, capped at 300 s."""
    queue = LaunchQueue(clock)
    a = app()
    delays = [queue.task_failed(a) for _ in range(60)]
    assert delays[0] == 1.0
    assert delays[1] == pytest.approx(1.15)
    assert max(delays) == 300.0


def test_time_left_and_overdue(clock: FakeClock) -> None:
    """delay_for counts down with the clock and turns overdue when the delay is over."""
    queue = LaunchQueue(clock)
    queue.task_failed(app(backoff_seconds=10.0))
    left, overdue = queue.delay_for("/crash")
    assert (left, overdue) == (10.0, False)
    assert not queue.can_launch("/crash")
    clock.advance(4)
    assert queue.delay_for("/crash") == (pytest.approx(6.0), False)
    clock.advance(6)
    assert queue.delay_for("/crash") == (0.0, True)
    assert queue.can_launch("/crash")


def test_reset_clears_delay(clock: FakeClock) -> None:
    """reset (DELETE /v2/queue/{app}/delay) clears the delay and restarts the progression."""
    queue = LaunchQueue(clock)
    a = app(backoff_seconds=5.0, backoff_factor=2.0)
    queue.task_failed(a)
    queue.task_failed(a)
    queue.reset("/crash")
    assert queue.delay_for("/crash") == (0.0, True)
    assert queue.task_failed(a) == 5.0


def test_new_version_resets_delay(clock: FakeClock) -> None:
    """A new app version clears the delay; failures then start from backoffSeconds."""
    queue = LaunchQueue(clock)
    v1 = app("v1", backoff_seconds=5.0, backoff_factor=2.0)
    queue.app_updated(v1)
    queue.task_failed(v1)
    queue.task_failed(v1)
    assert queue.current_delay("/crash") == 10.0
    v2 = app("v2", backoff_seconds=5.0, backoff_factor=2.0)
    queue.app_updated(v2)
    assert queue.delay_for("/crash") == (0.0, True)
    assert queue.task_failed(v2) == 5.0
    queue.app_updated(v2)  # same version again: no reset
    assert queue.current_delay("/crash") == 5.0


def test_crash_loop_running_does_not_reset_before_min_uptime(clock: FakeClock) -> None:
    """A task that reaches RUNNING and dies before the minimum uptime keeps growing the delay."""
    queue = LaunchQueue(clock)
    a = app(backoff_seconds=1.0, backoff_factor=2.0, max_launch_delay_seconds=1000.0)
    delays = []
    for n in range(6):
        delays.append(queue.task_failed(a))
        clock.advance(delays[-1])
        assert queue.can_launch("/crash")
        task_id = f"t{n}"
        queue.task_running(a, task_id)  # RUNNING...
        clock.advance(5)  # ...for 5 s, less than the 30 s minimum
        queue.tick()
        queue.task_gone(task_id)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert queue.task_failed(a) == 64.0


def test_running_past_min_uptime_resets(clock: FakeClock) -> None:
    """A task that stays RUNNING for the minimum uptime resets the backoff."""
    queue = LaunchQueue(clock)
    a = app(backoff_seconds=1.0, backoff_factor=2.0)
    for _ in range(4):
        queue.task_failed(a)
    assert queue.min_uptime_for(a) == 30.0
    clock.advance(8)
    queue.task_running(a, "t1")
    clock.advance(29.9)
    assert queue.current_delay("/crash") == 8.0
    clock.advance(0.1)
    assert queue.current_delay("/crash") is None
    assert queue.task_failed(a) == 1.0


def test_min_uptime_follows_backoff_seconds_or_override(clock: FakeClock) -> None:
    """The minimum uptime is max(backoffSeconds, 30 s) unless configured."""
    assert LaunchQueue(clock).min_uptime_for(app(backoff_seconds=45.0)) == 45.0
    assert LaunchQueue(clock, min_uptime_seconds=5.0).min_uptime_for(app()) == 5.0


def test_old_running_task_does_not_hide_a_crash_loop(clock: FakeClock) -> None:
    """Only tasks that started after the latest failure can reset the backoff."""
    queue = LaunchQueue(clock, min_uptime_seconds=10.0)
    a = app(backoff_seconds=1.0, backoff_factor=2.0)
    queue.task_running(a, "stable")
    clock.advance(5)
    queue.task_failed(a)
    queue.task_failed(a)
    clock.advance(20)  # "stable" is now up 25 s, but it started before the failures
    assert queue.current_delay("/crash") == 2.0


def test_since_tracks_waiting(clock: FakeClock) -> None:
    """since is when the app started waiting to launch, cleared when nothing waits."""
    queue = LaunchQueue(clock)
    queue.note_wanted("/crash", 2)
    start = clock.time()
    clock.advance(3)
    queue.note_wanted("/crash", 1)
    assert queue.since("/crash") == start
    queue.note_wanted("/crash", 0)
    assert queue.since("/crash") is None


def test_remove_and_next_deadline(clock: FakeClock) -> None:
    """next_deadline reports the earliest timer; remove forgets the app."""
    queue = LaunchQueue(clock, min_uptime_seconds=20.0)
    a = app(backoff_seconds=7.0)
    assert queue.next_deadline() is None
    queue.task_failed(a)
    assert queue.next_deadline() == clock.monotonic() + 7.0
    queue.task_running(a, "t")
    queue.remove("/crash")
    assert queue.next_deadline() is None
    assert queue.delay_for("/crash") == (0.0, True)
