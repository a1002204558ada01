"""A task's user: looked up, checked, and given its sandbox (I/O: the user database).

Owns: :class:`TaskUser` (name, uid, gid, supplementary groups as ``initgroups`` gives
them, home) and :func:`task_user`, which decides who a task runs as: nobody new when
``--switch_user`` is off or no user is named (the executor's own user), else
``CommandInfo.user`` or the framework's user, looked up in the user database
(:class:`UserError` naming an unknown user, or why a non-root agent cannot switch);
:func:`own_sandbox` gives the sandbox to the user, mode 0750.
"""

from __future__ import annotations

import os
import pwd

import attrs

from mesoslite.isolation.spec import user_problem


class UserError(ValueError):
    """The task cannot run as the user it names (the message says why)."""


@attrs.frozen
class TaskUser:
    """Who a task runs as."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    @property
    def switches(self) -> bool:
        """True when this is not the calling process's user (credentials must change)."""
        return self.uid != os.geteuid() or self.gid != os.getegid()


def lookup(name: str) -> TaskUser:
    """The user ``name`` from the user database (UserError when it does not exist)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise UserError(f"user {name!r} does not exist on this agent") from None
    try:
        groups = tuple(os.getgrouplist(name, entry.pw_gid))
    except OSError:
        groups = (entry.pw_gid,)
    return TaskUser(name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)


def current() -> TaskUser:
    """The calling process's own user."""
    uid = os.geteuid()
    try:
        entry = pwd.getpwuid(uid)
        name, home = entry.pw_name, entry.pw_dir
    except KeyError:
        name, home = str(uid), os.environ.get("HOME", "/")
    return TaskUser(name, uid, os.getegid(), tuple(os.getgroups()), home)


def task_user(command_user: str, framework_user: str, switch_user: bool) -> TaskUser:
    """Who a task runs as (UserError naming the user when it cannot)."""
    me = current()
    name = command_user or framework_user
    if not switch_user or not name or name == me.name:
        return me
    user = lookup(name)
    problem = user_problem(name, user.uid, me.uid, me.name)
    if problem:
        raise UserError(problem)
    return user


def own_sandbox(path: str, user: TaskUser) -> None:
    """Give the sandbox directory to ``user`` (its primary group), mode 0750."""
    if user.switches:
        os.chown(path, user.uid, user.gid)
    os.chmod(path, 0o750)  # noqa: S103 - the owner's group may read, as Mesos

