"""Unit tests for the agent's status-update manager (pure, fake clock)."""

from __future__ import annotations

import uuid

import pytest

from mesoslite.agent.update_streams import AddOutcome, StatusUpdateManager
from mesoslite.protocol import StatusUpdate, TaskState, TaskStatus
from mesoslite.testing import FakeClock

FW = "F-1"


def update(task_id: str, state: TaskState, framework_id: str = FW) -> StatusUpdate:
    """A status update with a fresh uuid."""
    return StatusUpdate(
        framework_id=framework_id,
        status=TaskStatus(task_id=task_id, state=state, uuid=uuid.uuid4().bytes),
    )


def make(retry_min: float = 10.0,
         retry_max: float = 600.0) -> tuple[StatusUpdateManager, FakeClock]:
    """A manager on a fake clock."""
    clock = FakeClock()
    return StatusUpdateManager(clock, retry_min, retry_max), clock


def test_first_update_is_sent_at_once_and_later_ones_wait_for_the_ack() -> None:
    """Only the head of a task's stream is in flight; the rest queue in order."""
    sum_, _ = make()
    starting, running, finished = (update("t", s) for s in (
        TaskState.TASK_STARTING, TaskState.TASK_RUNNING, TaskState.TASK_FINISHED))
    assert sum_.add(starting).send == starting
    assert sum_.add(running).send is None
    assert sum_.add(finished).send is None
    assert sum_.pending(FW, "t") == (starting, running, finished)
    assert sum_.head(FW, "t") == starting


def test_acks_pop_in_order_and_terminal_ack_closes_the_stream() -> None:
    """Each ack pops the head and returns the next; the terminal ack closes the stream."""
    sum_, _ = make()
    starting, running, finished = (update("t", s) for s in (
        TaskState.TASK_STARTING, TaskState.TASK_RUNNING, TaskState.TASK_FINISHED))
    for u in (starting, running, finished):
        sum_.add(u)
    first = sum_.acknowledge(FW, "t", starting.status.uuid)
    assert first.accepted and first.acked == starting and first.send == running
    second = sum_.acknowledge(FW, "t", running.status.uuid)
    assert second.send == finished and not second.closed
    last = sum_.acknowledge(FW, "t", finished.status.uuid)
    assert last.accepted and last.closed and last.send is None
    assert (FW, "t") not in sum_ and len(sum_) == 0


def test_unknown_or_out_of_order_acks_are_ignored() -> None:
    """An ack that is not for the head (or for no stream) changes nothing."""
    sum_, _ = make()
    starting, running = update("t", TaskState.TASK_STARTING), update("t", TaskState.TASK_RUNNING)
    sum_.add(starting)
    sum_.add(running)
    wrong = sum_.acknowledge(FW, "t", running.status.uuid)
    assert not wrong.accepted and "unexpected uuid" in wrong.reason
    nothing = sum_.acknowledge(FW, "other", b"x" * 16)
    assert not nothing.accepted and "no pending updates" in nothing.reason
    assert sum_.pending(FW, "t") == (starting, running)


def test_streams_of_different_tasks_are_independent() -> None:
    """Each task has its own head in flight."""
    sum_, _ = make()
    a, b = update("a", TaskState.TASK_RUNNING), update("b", TaskState.TASK_RUNNING)
    assert sum_.add(a).send == a
    assert sum_.add(b).send == b
    assert sum_.add(update("a", TaskState.TASK_FINISHED, "F-2")).send is not None


def test_retry_backoff_doubles_and_is_capped() -> None:
    """An unacknowledged head is resent after 10, 20, 40 ... seconds, capped at the maximum."""
    sum_, clock = make(retry_min=10.0, retry_max=35.0)
    head = update("t", TaskState.TASK_RUNNING)
    sum_.add(head)
    start = clock.monotonic()
    assert sum_.next_retry_time() == start + 10.0
    clock.advance(9.9)
    assert sum_.due() == []
    resend_times = []
    for _ in range(5):
        clock.advance(sum_.next_retry_time() - clock.monotonic())
        assert sum_.due() == [head]
        resend_times.append(clock.monotonic() - start)
    # intervals: 10, 20, then capped at 35
    assert resend_times == [10.0, 30.0, 65.0, 100.0, 135.0]


def test_ack_resets_backoff_for_the_next_update() -> None:
    """After an ack the next head starts again at the minimum interval."""
    sum_, clock = make(retry_min=1.0, retry_max=100.0)
    first, second = update("t", TaskState.TASK_STARTING), update("t", TaskState.TASK_RUNNING)
    sum_.add(first)
    sum_.add(second)
    for _ in range(3):
        clock.advance(sum_.next_retry_time() - clock.monotonic())
        sum_.due()
    sum_.acknowledge(FW, "t", first.status.uuid)
    assert sum_.next_retry_time() == clock.monotonic() + 1.0
    sum_.acknowledge(FW, "t", second.status.uuid)
    assert sum_.next_retry_time() is None


def test_duplicates_and_updates_after_terminal_are_not_queued() -> None:
    """A repeated uuid is a duplicate; anything after a terminal update is refused."""
    sum_, _ = make()
    running = update("t", TaskState.TASK_RUNNING)
    sum_.add(running)
    assert sum_.add(running).outcome is AddOutcome.DUPLICATE
    sum_.add(update("t", TaskState.TASK_FAILED))
    late = sum_.add(update("t", TaskState.TASK_RUNNING))
    assert late.outcome is AddOutcome.REFUSED and "terminal" in late.reason
    no_uuid = StatusUpdate(FW, TaskStatus(task_id="u", state=TaskState.TASK_RUNNING))
    assert sum_.add(no_uuid).outcome is AddOutcome.REFUSED
    assert len(sum_.pending(FW, "t")) == 2


def test_resend_all_returns_every_head_and_restarts_backoff() -> None:
    """After (re-)registration every head is sent again."""
    sum_, clock = make(retry_min=5.0)
    a, b = update("a", TaskState.TASK_RUNNING), update("b", TaskState.TASK_RUNNING)
    sum_.add(a)
    sum_.add(b)
    sum_.add(update("a", TaskState.TASK_FINISHED))
    clock.advance(100)
    assert sorted(u.status.task_id for u in sum_.resend_all()) == ["a", "b"]
    assert sum_.next_retry_time() == clock.monotonic() + 5.0


def test_remove_framework_drops_its_streams() -> None:
    """Shutting a framework down forgets its pending updates only."""
    sum_, _ = make()
    sum_.add(update("a", TaskState.TASK_RUNNING))
    sum_.add(update("b", TaskState.TASK_RUNNING, "F-2"))
    assert sum_.remove_framework(FW) == 1
    assert sum_.streams() == [("F-2", "b")]


def test_replay_rebuilds_streams_from_checkpoint_records() -> None:
    """Replaying UPDATE/ACK records restores the unacknowledged tail; closed streams vanish."""
    sum_, _ = make()
    starting, running, finished = (update("t", s) for s in (
        TaskState.TASK_STARTING, TaskState.TASK_RUNNING, TaskState.TASK_FINISHED))
    records = [("UPDATE", starting), ("UPDATE", running), ("ACK", starting.status.uuid),
               ("UPDATE", finished), ("UPDATE", running)]
    sum_.replay(FW, "t", records)
    assert sum_.pending(FW, "t") == (running, finished)
    assert sum_.resend_all() == [running]
    assert sum_.add(running).outcome is AddOutcome.DUPLICATE
    done = [("UPDATE", finished), ("ACK", finished.status.uuid)]
    sum_.replay(FW, "gone", done)
    assert (FW, "gone") not in sum_
    with pytest.raises(ValueError, match="record kind"):
        sum_.replay(FW, "bad", [("NOPE", None)])


def test_constructor_validates_intervals() -> None:
    """Retry bounds must be positive and ordered."""
    with pytest.raises(ValueError, match="retry_min"):
        StatusUpdateManager(FakeClock(), 0.0, 1.0)
    with pytest.raises(ValueError, match="retry_min"):
        StatusUpdateManager(FakeClock(), 10.0, 1.0)
