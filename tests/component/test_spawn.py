"""spawn_now: posix_spawn in a sandbox, in a new session, on the caller's thread."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path

import pytest

from mesoslite import proc as process
from mesoslite.proc import ManagedProcess, spawn_now

_real_count = threading.active_count


@pytest.fixture(autouse=True)
def single_threaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle threads left by earlier tests in this pytest process would select the Popen path."""
    monkeypatch.setattr(process.threading, "active_count", lambda: 1)


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _spawn(tmp_path: Path, argv: list[str], executable: str | None = None,
                 env: dict[str, str] | None = None) -> tuple[ManagedProcess, Path]:
    sandbox = tmp_path / "executors" / "e1" / "runs" / "c1"
    proc = spawn_now(
        argv, executable=executable, cwd=str(sandbox),
        env=env if env is not None else {"PATH": os.environ["PATH"], "X": "42"},
        stdout_path=str(sandbox / "stdout"), stderr_path=str(sandbox / "stderr"),
        make_sandbox=True,
    )
    return proc, sandbox


def test_command_runs_in_its_sandbox_session_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox and its latest link are made; the command runs there, in its own session."""
    calls: list[str] = []
    real = os.posix_spawn

    def spy(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "posix_spawn", spy)

    async def body() -> None:
        home = os.getcwd()
        script = 'echo "$X $(pwd)"; ps -o sid= -o pgid= -p $$ >&2; exit 3'
        proc, sandbox = await _spawn(tmp_path, ["/bin/sh", "-c", script])
        status = await proc.exited
        assert os.getcwd() == home
        assert os.waitstatus_to_exitcode(status) == 3  # type: ignore[arg-type]
        assert (sandbox / "stdout").read_text() == f"42 {sandbox}\n"
        sid, pgid = (sandbox / "stderr").read_text().split()
        assert int(sid) == int(pgid) == proc.pid
        assert os.readlink(sandbox.parent / "latest") == "c1"
        assert calls == ["/bin/sh"]  # the posix_spawn path, not Popen

    _run(body())


def test_sigpipe_is_back_at_its_default_in_the_child(tmp_path: Path) -> None:
    """Python ignores SIGPIPE; the spawned command gets the default action back."""

    async def body() -> None:
        proc, _ = await _spawn(tmp_path, ["/bin/sh", "-c", "kill -PIPE $$; sleep 5"])
        status = await asyncio.wait_for(proc.exited, 10)
        assert status is not None and os.WIFSIGNALED(status)
        assert os.WTERMSIG(status) == signal.SIGPIPE

    _run(body())


def test_executables_are_found_like_popen_finds_them(tmp_path: Path) -> None:
    """A bare name is looked up on the child's PATH; ./name is relative to the sandbox."""

    async def body() -> None:
        proc, sandbox = await _spawn(tmp_path, ["echo", "from-path"], executable="echo")
        await proc.exited
        assert (sandbox / "stdout").read_text() == "from-path\n"
        script = sandbox / "hello"
        script.write_text("#!/bin/sh\necho relative\n")
        script.chmod(0o755)
        again = spawn_now(["./hello"], executable="./hello", cwd=str(sandbox),
                          env={"PATH": "/nonexistent"}, stdout_path=str(sandbox / "stdout"),
                          stderr_path=str(sandbox / "stderr"))
        await again.exited
        assert (sandbox / "stdout").read_text() == "from-path\nrelative\n"

    _run(body())


def test_missing_executable_raises_and_leaves_the_cwd_alone(tmp_path: Path) -> None:
    """A command that cannot start raises OSError; this process stays where it was."""

    async def body() -> None:
        home = os.getcwd()
        with pytest.raises(FileNotFoundError):
            await _spawn(tmp_path, ["no-such-command-here"], executable="no-such-command-here")
        with pytest.raises(OSError):
            await _spawn(tmp_path, ["/nonexistent/bin"], executable="/nonexistent/bin")
        assert os.getcwd() == home

    _run(body())


def test_with_other_threads_alive_it_takes_the_popen_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another thread runs (the cwd switch would be unsafe) Popen spawns instead."""

    def refuse(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("posix_spawn must not be used while other threads run")

    monkeypatch.setattr(os, "posix_spawn", refuse)
    monkeypatch.setattr(process.threading, "active_count", _real_count)

    async def body() -> None:
        stop = threading.Event()
        other = threading.Thread(target=stop.wait)
        other.start()
        try:
            proc, sandbox = await _spawn(tmp_path, ["/bin/sh", "-c", 'echo "$X"; pwd'])
            await proc.exited
            assert (sandbox / "stdout").read_text() == f"42\n{sandbox}\n"
        finally:
            stop.set()
            other.join()

    _run(body())
