"""The suite's one way to wait: wait_for/until poll a condition with a deadline, holds/holding
check one stays true; failures name what was awaited and the last value seen."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.support.procs import WaitAborted, holding, holds, until, wait_for


def test_wait_for_returns_the_first_truthy_value() -> None:
    """The predicate's first truthy value is returned; falsy ones and errors mean "not yet"."""
    answers = iter([None, ConnectionRefusedError("not up"), [], {"ready": True}])

    def poll() -> object:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_for(poll, timeout=5, interval=0.001) == {"ready": True}


def test_a_timeout_names_what_was_awaited_the_last_value_and_error() -> None:
    """The failure says what was awaited, the deadline, the last value and the last error."""
    calls = itertools.count()

    def poll() -> list[int]:
        if next(calls) == 0:
            raise ConnectionRefusedError("not up")
        return []

    with pytest.raises(AssertionError) as failure:
        wait_for(poll, timeout=0.05, what="the server's task list", interval=0.001)
    message = str(failure.value)
    assert "the server's task list: not met within 0.05s" in message
    assert "last value: []" in message and "ConnectionRefusedError('not up')" in message


def test_wait_aborted_ends_the_wait_at_once() -> None:
    """A predicate raising WaitAborted (the awaited process died) is not retried."""
    calls = itertools.count()

    def poll() -> bool:
        next(calls)
        raise WaitAborted("the process exited")

    with pytest.raises(WaitAborted, match="the process exited"):
        wait_for(poll, timeout=30)
    assert next(calls) == 1


def test_until_awaits_coroutine_predicates_with_the_same_rules() -> None:
    """until() runs on the loop, awaits an async predicate and fails like wait_for."""
    state = {"polls": 0}

    async def ready() -> int:
        state["polls"] += 1
        return state["polls"] if state["polls"] >= 3 else 0

    async def main() -> None:
        assert await until(ready, timeout=5, interval=0.001) == 3
        with pytest.raises(AssertionError, match=r"never: not met within 0\.02s; last value: 0"):
            await until(lambda: 0, 0.02, "never", interval=0.001)

    asyncio.run(main())


def test_holds_fails_as_soon_as_the_condition_breaks() -> None:
    """holds()/holding() sample a condition for a while and fail when it stops holding."""
    holds(lambda: True, 0.02, "always", interval=0.001)
    values = iter([True, True, False])
    with pytest.raises(AssertionError, match="stays up: broken after"):
        holds(lambda: next(values), 5, "stays up", interval=0.001)

    async def main() -> None:
        await holding(lambda: True, 0.02, "always", interval=0.001)
        flips = iter([True, 0])
        with pytest.raises(AssertionError, match="on the loop: broken after"):
            await holding(lambda: next(flips), 5, "on the loop", interval=0.001)

    asyncio.run(main())
