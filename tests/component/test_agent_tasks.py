"""Command tasks on a real agent with real processes, driven by a fake master."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from mesoslite.agent.main import AgentProcess
from mesoslite.protocol import (
    ExitedExecutor,
    KillPolicy,
    KillTask,
    Reason,
    ShutdownAgent,
    ShutdownFramework,
    Source,
    StatusUpdate,
    TaskState,
    UnregisterAgent,
    UpdateFramework,
)
from tests.support.agent_fakemaster import (
    AGENT_ID,
    FRAMEWORK_ID,
    FakeMaster,
    framework_info,
    launch,
    read_sandbox_file,
    run,
    shell_task,
    started,
)
from tests.support.procs import until


def states(master: FakeMaster, task_id: str) -> list[str]:
    """Distinct states reported for a task, in order."""
    out: list[str] = []
    for update in master.updates(task_id):
        if not out or out[-1] != update.status.state.value:
            out.append(update.status.state.value)
    return out


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


async def all_gone(procs: list[psutil.Process], timeout: float = 5.0) -> None:
    """Wait (without blocking the loop) until none of ``procs`` is alive."""
    await until(lambda: not [p for p in procs if _alive(p)], timeout)


def processes_in(work_dir: str) -> list[psutil.Process]:
    """Live processes whose working directory is inside ``work_dir``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.cwd().startswith(work_dir):
                found.append(proc)
        except psutil.Error:
            continue
    return found


async def stop(agent: AgentProcess, master: FakeMaster) -> None:
    """Stop the agent (killing tasks) and the fake master."""
    await agent.stop(kill_tasks=True)
    master.close()


def test_shell_task_runs_to_finished_in_order(tmp_path: Path) -> None:
    """`echo hi; sleep 0.2` reports STARTING, RUNNING, FINISHED in order and writes stdout."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            launch(master, shell_task("t1", "echo hi; sleep 0.2"))
            done = await master.wait_state("t1", TaskState.TASK_FINISHED)
            assert states(master, "t1") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
            assert done.status.source is Source.SOURCE_EXECUTOR
            assert done.status.agent_id == AGENT_ID
            assert done.status.executor_id == "t1"
            assert len(done.status.uuid) == 16
            assert read_sandbox_file(agent, "t1", "stdout") == "hi\n"
            # The acknowledged terminal update retires the command executor.
            exited = await master.wait_for(lambda: master.of_type(ExitedExecutor))
            assert exited[0].executor_id == "t1" and exited[0].status == 0
        finally:
            await stop(agent, master)

    run(body())


def test_task_environment_and_stderr(tmp_path: Path) -> None:
    """A task sees MESOS_* variables, PORT0..n, PORTS, PORT, HOST and its own variables."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            command = (
                'echo "$MESOS_TASK_ID|$MESOS_FRAMEWORK_ID|$MESOS_EXECUTOR_ID|$PORT0|$PORT1|'
                '$PORT|$PORTS|$HOST|$GREETING|$MESOS_AGENT_ENDPOINT"; '
                'echo "sandbox=$MESOS_SANDBOX" >&2; pwd >&2'
            )
            task = shell_task("env-task", command, env={"GREETING": "hello"},
                              ports="[31002-31003]")
            launch(master, task)
            await master.wait_state("env-task", TaskState.TASK_FINISHED)
            line = read_sandbox_file(agent, "env-task", "stdout").strip()
            assert line == (
                f"env-task|{FRAMEWORK_ID}|env-task|31002|31003|31002|31002,31003|127.0.0.1|hello|"
                f"127.0.0.1:{agent.http_port}"
            )
            err = read_sandbox_file(agent, "env-task", "stderr").splitlines()
            sandbox = err[0].removeprefix("sandbox=")
            assert err[1] == sandbox
            assert sandbox.startswith(
                os.path.join(agent.work_dir, "agents", AGENT_ID, "frameworks", FRAMEWORK_ID,
                             "executors", "env-task", "runs"))
        finally:
            await stop(agent, master)

    run(body())


def test_failing_command_reports_exit_status(tmp_path: Path) -> None:
    """A command exiting 3 is TASK_FAILED with 'Command exited with status 3'."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            launch(master, shell_task("bad", "echo oops >&2; exit 3"))
            failed = await master.wait_state("bad", TaskState.TASK_FAILED)
            assert "Command exited with status 3" in failed.status.message
            assert read_sandbox_file(agent, "bad", "stderr") == "oops\n"
            launch(master, shell_task("sig", "kill -USR1 $$"))
            signalled = await master.wait_state("sig", TaskState.TASK_FAILED)
            assert "terminated by signal 10" in signalled.status.message
        finally:
            await stop(agent, master)

    run(body())


def test_kill_runs_the_sigterm_trap(tmp_path: Path) -> None:
    """A kill sends TASK_KILLING (capability), SIGTERM runs the task's trap, then TASK_KILLED."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        info = framework_info("TASK_KILLING_STATE")
        try:
            command = ("trap 'echo trapped > \"$MESOS_SANDBOX/trap.txt\"; exit 0' TERM; "
                       "echo ready; while true; do sleep 0.05; done")
            launch(master, shell_task("trap", command, grace=5.0), info)
            await master.wait_state("trap", TaskState.TASK_RUNNING)
            await until(lambda: read_sandbox_file(agent, "trap", "stdout") == "ready\n")
            master.send(KillTask(framework_id=FRAMEWORK_ID, task_id="trap"))
            killed = await master.wait_state("trap", TaskState.TASK_KILLED)
            assert states(master, "trap")[-2:] == ["TASK_KILLING", "TASK_KILLED"]
            assert read_sandbox_file(agent, "trap", "trap.txt") == "trapped\n"
            assert "exited with status 0" in killed.status.message
        finally:
            await stop(agent, master)

    run(body())


def test_kill_escalates_to_sigkill_after_grace(tmp_path: Path) -> None:
    """A task ignoring SIGTERM is SIGKILLed once the kill policy's grace period is over."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            launch(master, shell_task("stubborn", "trap '' TERM; echo ready; sleep 30"))
            await master.wait_state("stubborn", TaskState.TASK_RUNNING)
            await until(lambda: read_sandbox_file(agent, "stubborn", "stdout") == "ready\n")
            began = time.monotonic()
            master.send(KillTask(framework_id=FRAMEWORK_ID, task_id="stubborn",
                                 kill_policy=KillPolicy(0.6)))
            killed = await master.wait_state("stubborn", TaskState.TASK_KILLED)
            elapsed = time.monotonic() - began
            assert elapsed >= 0.55, elapsed
            assert "terminated by signal 9" in killed.status.message
            # Without the capability there is no TASK_KILLING.
            assert "TASK_KILLING" not in states(master, "stubborn")
        finally:
            await stop(agent, master)

    run(body())


def test_kill_before_delivery_and_kill_of_unknown_task(tmp_path: Path) -> None:
    """A task killed before reaching its executor is KILLED by the agent; unknown → LOST."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            launch(master, shell_task("early", "echo should-not-run"))
            master.send(KillTask(framework_id=FRAMEWORK_ID, task_id="early"))
            killed = await master.wait_state("early", TaskState.TASK_KILLED)
            assert killed.status.reason is Reason.REASON_TASK_KILLED_DURING_LAUNCH
            assert killed.status.source is Source.SOURCE_AGENT
            master.send(KillTask(framework_id=FRAMEWORK_ID, task_id="ghost"))
            lost = await master.wait_state("ghost", TaskState.TASK_LOST)
            assert lost.status.reason is Reason.REASON_EXECUTOR_TERMINATED
            assert states(master, "early") == ["TASK_KILLED"]
            assert read_sandbox_file(agent, "early", "stdout") == ""
        finally:
            await stop(agent, master)

    run(body())


def test_updates_are_retried_one_at_a_time_with_backoff(tmp_path: Path) -> None:
    """An unacknowledged head is resent with doubling backoff; the next waits for its ack."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master, status_update_retry_min=0.2,
                              status_update_retry_max=0.4)
        try:
            launch(master, shell_task("slow-ack", "true"))

            def starting_copies() -> list[StatusUpdate]:
                copies = master.updates("slow-ack")
                return copies if len(copies) >= 4 else []

            copies = (await master.wait_for(starting_copies, timeout=10))[:4]
            assert {c.status.state for c in copies} == {TaskState.TASK_STARTING}
            assert len({c.status.uuid for c in copies}) == 1
            times = [master.arrival[id(c)] for c in copies]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert 0.15 <= gaps[0] <= 0.35, gaps
            assert all(0.3 <= g <= 0.6 for g in gaps[1:3]), gaps
            await master.wait_state("slow-ack", TaskState.TASK_FINISHED)
            assert states(master, "slow-ack") == [
                "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
        finally:
            await stop(agent, master)

    run(body())


def test_executor_death_fails_its_tasks(tmp_path: Path) -> None:
    """Killing the command executor fails its running tasks and cleans up their processes."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            launch(master, shell_task("orphan", "echo ready; sleep 30"))
            await master.wait_state("orphan", TaskState.TASK_RUNNING)
            await until(lambda: read_sandbox_file(agent, "orphan", "stdout") == "ready\n")
            host = agent.frameworks[0].command_host
            assert host is not None and host.pid is not None
            sleepers = [p for p in processes_in(agent.work_dir) if p.pid != host.pid]
            assert sleepers
            os.kill(host.pid, signal.SIGKILL)
            failed = await master.wait_state("orphan", TaskState.TASK_FAILED)
            assert failed.status.reason is Reason.REASON_EXECUTOR_TERMINATED
            assert "terminated by signal 9" in failed.status.message
            exited = await master.wait_for(lambda: master.of_type(ExitedExecutor))
            assert exited[0].executor_id == "orphan" and exited[0].status == signal.SIGKILL
            await all_gone(sleepers)
            # The next command task gets a fresh command executor.
            launch(master, shell_task("after", "true"))
            await master.wait_state("after", TaskState.TASK_FINISHED)
        finally:
            await stop(agent, master)

    run(body())


def test_shutdown_framework_kills_tasks_and_refuses_new_ones(tmp_path: Path) -> None:
    """ShutdownFramework kills its tasks; a RunTask meanwhile is LOST (partition-aware: DROPPED)."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            launch(master, shell_task("long", "sleep 30"))
            await master.wait_state("long", TaskState.TASK_RUNNING)
            master.send(ShutdownFramework(framework_id=FRAMEWORK_ID))
            launch(master, shell_task("late", "true"))
            launch(master, shell_task("late-pa", "true"), framework_info("PARTITION_AWARE"))
            lost = await master.wait_state("late", TaskState.TASK_LOST)
            assert lost.status.reason is Reason.REASON_FRAMEWORK_REMOVED
            await master.wait_state("late-pa", TaskState.TASK_DROPPED)
            await master.wait_state("long", TaskState.TASK_KILLED)
            await until(lambda: not agent.frameworks)
            assert agent.completed_frameworks[0].id == FRAMEWORK_ID
        finally:
            await stop(agent, master)

    run(body())


def test_stop_kills_everything(tmp_path: Path) -> None:
    """stop(kill_tasks=True) reports the tasks killed and leaves no process behind."""

    async def body() -> None:
        master = FakeMaster(auto_ack=True)
        agent = await started(tmp_path, master)
        launch(master, shell_task("a", "sleep 30"))
        launch(master, shell_task("b", "sleep 30 & sleep 30; wait"))
        launch(master, shell_task("c", "trap '' TERM; sleep 30"))
        for task_id in "abc":
            await master.wait_for(
                lambda t=task_id: any(u.status.state is TaskState.TASK_RUNNING
                                      for u in master.updates(t)))
        await until(lambda: len(processes_in(agent.work_dir)) >= 5)
        before = processes_in(agent.work_dir)
        await agent.stop(kill_tasks=True)
        await all_gone(before)
        assert not processes_in(agent.work_dir)
        for task_id in "abc":
            assert master.updates(task_id)[-1].status.state is TaskState.TASK_KILLED
        assert master.of_type(UnregisterAgent)[0].agent_id == AGENT_ID
        master.close()

    run(body())


def test_shutdown_agent_from_master_stops_without_unregistering(tmp_path: Path) -> None:
    """ShutdownAgent kills the tasks, stops the agent and does not send UnregisterAgent."""

    async def body() -> None:
        master = FakeMaster(auto_ack=True)
        agent = await started(tmp_path, master)
        launch(master, shell_task("doomed", "sleep 30"))
        await master.wait_state("doomed", TaskState.TASK_RUNNING)
        before = processes_in(agent.work_dir)
        master.send(ShutdownAgent(message="removed"))
        await asyncio.wait_for(agent.stopped.wait(), 10)
        await all_gone(before)
        assert master.updates("doomed")[-1].status.state is TaskState.TASK_KILLED
        assert not master.of_type(UnregisterAgent)
        master.close()

    run(body())


def test_update_framework_replaces_framework_info(tmp_path: Path) -> None:
    """UpdateFramework changes the framework's info (e.g. capabilities for later kills)."""

    async def body() -> None:
        master = FakeMaster()
        agent = await started(tmp_path, master)
        try:
            launch(master, shell_task("u1", "sleep 30"))
            await master.wait_state("u1", TaskState.TASK_RUNNING)
            master.send(UpdateFramework(framework_info=framework_info("TASK_KILLING_STATE")))
            await until(lambda: agent.frameworks[0].info.capabilities
                             == ("TASK_KILLING_STATE",))
        finally:
            await stop(agent, master)

    run(body())


def test_a_failed_checkpoint_write_does_not_stop_the_updates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint write that fails is counted; the task's updates still reach the master."""

    async def body() -> None:
        master = FakeMaster(auto_ack=True)
        agent = await started(tmp_path, master)
        real_write = agent.checkpointer.write

        def failing_write(effect: object, **kwargs: object) -> None:
            if type(effect).__name__ == "WriteTask":
                raise OSError(28, "No space left on device")
            real_write(effect, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(agent.checkpointer, "write", failing_write)
        try:
            launch(master, shell_task("t1", "true"), framework_info(checkpoint=True))
            await master.wait_state("t1", TaskState.TASK_FINISHED)
            assert agent.metrics.checkpoint_failures == 1
        finally:
            await agent.stop()
            master.close()

    run(body())
