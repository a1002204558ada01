"""Who a task runs as, read from this machine's user database (``nobody`` exists)."""

from __future__ import annotations

import os

import pytest

from mesoslite.isolation.users import UserError, current, task_user


def test_task_user_choice() -> None:
    """CommandInfo.user wins over the framework's; none or --switch_user=false: ours."""
    me = current()
    assert task_user("", "", True) == me
    assert task_user("nobody", "root", False) == me
    nobody = task_user("nobody", "root", True)
    assert (nobody.uid, nobody.name) == (65534, "nobody")
    assert nobody.gid in nobody.groups
    assert task_user("", "nobody", True).uid == 65534
    assert nobody.switches is (os.geteuid() != 65534)


def test_unknown_user_is_named() -> None:
    """An unknown user is an error that names it."""
    with pytest.raises(UserError, match="'no-such-user-q' does not exist"):
        task_user("no-such-user-q", "", True)
