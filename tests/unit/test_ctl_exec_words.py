"""``ctl exec``'s command line and exit status (no cluster needed)."""

from __future__ import annotations

import pytest

from mesoslite.ctl.common import CtlError
from mesoslite.ctl.exec import exit_code, session_call, split_words


def test_words_split_into_task_options_and_command() -> None:
    """Options before --, the command after it (its own -c flags untouched)."""
    assert split_words(["t1", "--timeout", "2", "--", "sh", "-c", "x"], None) == (
        "t1", ["sh", "-c", "x"], 2.0)
    assert split_words(["t1", "--timeout=0.5", "--", "--timeout"], None) == (
        "t1", ["--timeout"], 0.5)
    assert split_words(["t1", "ls", "-l"], 7.0) == ("t1", ["ls", "-l"], 7.0)


@pytest.mark.parametrize("words", [[], ["--", "ls"], ["t1", "--bogus", "--", "ls"],
                                   ["t1", "--timeout", "-1", "--", "ls"]])
def test_bad_words_are_refused_naming_what_is_wrong(words: list[str]) -> None:
    """No task, an unknown option or a bad timeout is a CtlError."""
    with pytest.raises(CtlError, match="exec"):
        split_words(words, None)


def test_exit_status_follows_the_shell_convention() -> None:
    """exit_code as is; a signal N is 128+N; unknown is 1."""
    assert exit_code({"exit_code": 3, "signal": None}) == 3
    assert exit_code({"exit_code": None, "signal": 9}) == 137
    assert exit_code({"status": None}) == 1


def test_the_call_runs_the_argv_without_a_shell() -> None:
    """The v1 call names the task, the argv (no shell) and the timeout in nanoseconds."""
    call = session_call("t1", ["echo", "a b"], 1.5)["launch_nested_container_session"]
    assert call["task_id"] == {"value": "t1"}
    assert call["command"] == {"shell": False, "value": "echo", "arguments": ["echo", "a b"]}
    assert call["timeout"] == {"nanoseconds": 1_500_000_000}
